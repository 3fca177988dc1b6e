//! Exit codes, documented in the README.

/// The run succeeded; `check` found no errors.
pub const SUCCESS: i32 = 0;
/// A step, verification or precondition failed.
pub const FAILED: i32 = 1;
/// Invalid runbook, inputs or usage.
pub const INVALID: i32 = 2;
/// The operator aborted (declined a gate).
pub const ABORTED: i32 = 3;
/// A non-interactive run reached a gate with no answer.
pub const NEEDS_ANSWER: i32 = 4;
/// The run's journal could not be created, reopened or locked: nothing was run.
pub const JOURNAL: i32 = 5;
/// The runtime could not start (threads, timers): nothing was run.
pub const RUNTIME: i32 = 6;
/// Interrupted by SIGINT or SIGTERM.
pub const INTERRUPTED: i32 = 130;

//! The events a run emits. The journal stores them one per line; the terminal view, the
//! report and the tests all read these and nothing else.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::spec::Safety;

/// Journal format version, written in every line as `"v"`.
pub const JOURNAL_VERSION: u32 = 1;

/// One journal line: the event plus its sequence number, time and run id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    pub seq: u64,
    /// RFC 3339 with milliseconds, UTC.
    pub ts: String,
    pub run_id: String,
    #[serde(flatten)]
    pub event: Event,
}

/// Where a step runs: the main list, the rollback, or the failure handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Main,
    Undo,
    OnFailure,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    Succeeded,
    Failed,
    Skipped,
    Aborted,
    NeedsAnswer,
}

impl StepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Succeeded => "succeeded",
            StepOutcome::Failed => "failed",
            StepOutcome::Skipped => "skipped",
            StepOutcome::Aborted => "aborted",
            StepOutcome::NeedsAnswer => "needs-answer",
        }
    }
}

/// Why a step was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipCause {
    /// Its `when` was false: skipped by design.
    Guard,
    /// A confirmation that guards it was answered `skip`.
    Answer,
    /// The operator said on resume that it had completed before the interruption.
    Resume,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    Succeeded,
    Failed,
    Aborted,
    NeedsAnswer,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
            RunOutcome::Aborted => "aborted",
            RunOutcome::NeedsAnswer => "needs-answer",
        }
    }

    /// The process exit code for this outcome (see the README's table). A run interrupted by
    /// SIGINT/SIGTERM is `aborted` too, but exits with 130 (`exit::INTERRUPTED`).
    pub fn exit_code(self) -> i32 {
        match self {
            RunOutcome::Succeeded => crate::exit::SUCCESS,
            RunOutcome::Failed => crate::exit::FAILED,
            RunOutcome::Aborted => crate::exit::ABORTED,
            RunOutcome::NeedsAnswer => crate::exit::NEEDS_ANSWER,
        }
    }
}

/// Why a run asked the operator: the kind of gate, as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    Confirm,
    Manual,
    Input,
    /// A step of safety `terminal`.
    Terminal,
    /// Resuming a run whose step may have run.
    Resume,
    /// A verification that had no data to judge: accept it anyway?
    Inconclusive,
    /// Resuming while a step's process group from before the interruption is still alive.
    Process,
}

impl Gate {
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Confirm => "confirm",
            Gate::Manual => "manual",
            Gate::Input => "input",
            Gate::Terminal => "terminal",
            Gate::Resume => "resume",
            Gate::Inconclusive => "inconclusive",
            Gate::Process => "process",
        }
    }
}

impl std::fmt::Display for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run was started: at a terminal, unattended, as a drill, or as training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunMode {
    Interactive,
    NonInteractive,
    Drill,
    Training,
}

impl RunMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Interactive => "interactive",
            RunMode::NonInteractive => "non-interactive",
            RunMode::Drill => "drill",
            RunMode::Training => "training",
        }
    }

    /// Against a drill's simulated world rather than real systems.
    pub fn simulated(self) -> bool {
        matches!(self, RunMode::Drill | RunMode::Training)
    }
}

impl std::fmt::Display for RunMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an answer was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnswerVia {
    /// Typed at an interactive prompt.
    Prompt,
    /// `--answer ID=VALUE`.
    AnswerFlag,
    /// `--yes`.
    YesFlag,
    /// Scripted in a drill file.
    Drill,
}

/// One verification: the expression, whether it held, and the values it read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub that: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Dotted name -> value read while evaluating (e.g. `result.status: 503`).
    #[serde(default)]
    pub observed: serde_json::Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// pass, fail or inconclusive (journals written before it had only `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::exec::verdict::Verdict>,
    /// Why the check is inconclusive: no data (with the query as sent), NaN, several series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Check {
    pub fn verdict(&self) -> crate::exec::verdict::Verdict {
        use crate::exec::verdict::Verdict;
        self.verdict.unwrap_or(if self.ok {
            Verdict::Pass
        } else {
            Verdict::Fail
        })
    }
}

/// One metric read by an analysis check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricReading {
    pub name: String,
    /// The query as sent.
    pub query: String,
    /// The value read (`null` when there was none, or it was NaN/±Inf: see `text`).
    pub value: Option<f64>,
    /// The value as Prometheus wrote it (`NaN`, `+Inf`), or why there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    pub verdict: crate::exec::verdict::Verdict,
}

/// Runbook identity recorded when a run starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunbookInfo {
    pub path: String,
    pub name: String,
    pub title: String,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mttr_target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Step ids in order (main steps), so a report can list steps that never started.
    #[serde(default)]
    pub steps: Vec<String>,
    /// Every runbook file the run loaded (this one and the runbooks it calls) with its
    /// sha256: `resume` refuses when any of them changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileHash>,
}

/// A runbook file and the sha256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    pub path: String,
    pub sha256: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

// Events are written once and read back; the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        runbook: RunbookInfo,
        /// Inputs after defaults, secrets redacted.
        inputs: Value,
        operator: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        host: String,
        engine_version: String,
        mode: RunMode,
        /// Times are virtual (a drill, or training with `--fast`): waits took no real time.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        virtual_time: bool,
    },
    RunResumed {
        operator: String,
        /// The runbook changed since the run started and `--force` was given.
        forced: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
        /// With `forced`: the runbook files (and hashes) the run goes on with.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<FileHash>,
    },
    Precondition {
        index: usize,
        that: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        #[serde(default)]
        observed: serde_json::Map<String, Value>,
    },
    StepStarted {
        step: String,
        title: String,
        /// `shell`, `http`, `kubernetes.set_image`, ...
        action: String,
        safety: Safety,
        phase: Phase,
        /// The action as rendered, secrets shown as `***`.
        rendered: Value,
    },
    StepSkipped {
        step: String,
        /// The step's title (absent in journals written before it was recorded).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        title: String,
        reason: String,
        phase: Phase,
        /// Why it was skipped: by design (`when` was false), by an operator's answer, or on
        /// resume (absent in journals written before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<SkipCause>,
    },
    GateAsked {
        step: String,
        gate: Gate,
        prompt: String,
    },
    GateAnswered {
        step: String,
        gate: Gate,
        answer: String,
        by: String,
        via: AnswerVia,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    AttemptStarted {
        step: String,
        attempt: u32,
        of: u32,
    },
    AttemptFinished {
        step: String,
        attempt: u32,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        duration_ms: u64,
        /// Number of polls (executions) in this attempt.
        polls: u32,
        /// The last result, bounded and redacted (evidence for the report).
        #[serde(default, skip_serializing_if = "Value::is_null")]
        result: Value,
        /// The attempt was stopped by a signal: it did not finish, whatever it did so far.
        #[serde(default, skip_serializing_if = "is_false")]
        interrupted: bool,
    },
    /// A step's process started (its own process group), journaled as soon as the backend
    /// reports it (the process may already be running its program: a SIGKILL of the runner in
    /// between leaves a group no event names, see the README's "Not there yet"). `resume`
    /// checks whether the group is still alive.
    ProcessStarted {
        step: String,
        attempt: u32,
        /// The process group id (the leader's pid).
        pgid: u32,
        host: String,
        /// The kernel's boot id: a group from another boot cannot be alive.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        boot_id: String,
        /// The leader's start time (clock ticks since boot), to tell a reused pid apart.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_ticks: Option<u64>,
    },
    VerifyEvaluated {
        step: String,
        attempt: u32,
        poll: u32,
        ok: bool,
        checks: Vec<Check>,
        /// pass, fail or inconclusive.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verdict: Option<crate::exec::verdict::Verdict>,
        /// Whether the step polls (`until`): the view numbers polls only then.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        polling: bool,
    },
    /// One check of an `analysis` step: every metric's query, value and verdict.
    AnalysisCheck {
        step: String,
        /// 1-based.
        check: u32,
        verdict: crate::exec::verdict::Verdict,
        metrics: Vec<MetricReading>,
        /// Failed checks so far (inconclusive ones included when they count as failed).
        failed: u32,
    },
    Capture {
        step: String,
        name: String,
        value: Value,
    },
    /// A simulated world changed (drills): what the step did to it.
    WorldChanged {
        step: String,
        diff: Value,
    },
    StepFinished {
        step: String,
        outcome: StepOutcome,
        phase: Phase,
        duration_ms: u64,
        attempts: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    UndoStarted {
        step: String,
        title: String,
        /// The undo's action (`shell`, `kubernetes.set_image`, ...); empty in journals
        /// written before it was recorded.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        action: String,
        /// The undo's own safety class, as the runner gated it (`terminal` asks first);
        /// absent in journals written before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        safety: Option<Safety>,
        rendered: Value,
    },
    UndoFinished {
        step: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        duration_ms: u64,
    },
    RunFinished {
        outcome: RunOutcome,
        duration_ms: u64,
        /// 130 when the run was interrupted by a signal (outcome `aborted`).
        exit_code: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failed_step: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

impl Event {
    /// The snake_case name of the event, as written in the journal.
    pub fn name(&self) -> &'static str {
        match self {
            Event::RunStarted { .. } => "run_started",
            Event::RunResumed { .. } => "run_resumed",
            Event::Precondition { .. } => "precondition",
            Event::StepStarted { .. } => "step_started",
            Event::StepSkipped { .. } => "step_skipped",
            Event::GateAsked { .. } => "gate_asked",
            Event::GateAnswered { .. } => "gate_answered",
            Event::AttemptStarted { .. } => "attempt_started",
            Event::AttemptFinished { .. } => "attempt_finished",
            Event::ProcessStarted { .. } => "process_started",
            Event::VerifyEvaluated { .. } => "verify_evaluated",
            Event::AnalysisCheck { .. } => "analysis_check",
            Event::Capture { .. } => "capture",
            Event::WorldChanged { .. } => "world_changed",
            Event::StepFinished { .. } => "step_finished",
            Event::UndoStarted { .. } => "undo_started",
            Event::UndoFinished { .. } => "undo_finished",
            Event::RunFinished { .. } => "run_finished",
        }
    }
}

//! Executing runbooks: the runner, its events and journal, gates, clock, redaction.

pub mod actions;
pub mod clock;
pub mod context;
pub mod emitter;
pub mod events;
#[cfg(test)]
mod events_docs;
pub mod gate;
pub mod host;
pub mod journal;
pub mod lock;
pub mod preflight;
pub mod redact;
pub mod render;
pub mod resume;
pub mod runner;
pub mod summary;
pub mod verdict;

//! The checked drill: what the checker proved about a drill file, ready to run any number of
//! times (each run starts from a fresh copy of the initial world).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::spec::{ExpectedOutcome, ExpectedStep, WorldStateSpec};
use super::world::{State, World};
use crate::exec::events::Envelope;
use crate::exec::runner::RunResult;
use crate::model::Runbook;

/// Where the virtual clock starts unless the drill says otherwise.
pub const DEFAULT_START: &str = "2026-01-01T00:00:00Z";

#[derive(Debug, Clone)]
pub struct Drill {
    pub name: String,
    pub description: Option<String>,
    /// The path as given, for messages.
    pub file: String,
    pub path: PathBuf,
    pub runbook: Arc<Runbook>,
    /// Resolved inputs (defaults applied, types checked).
    pub inputs: IndexMap<String, Value>,
    pub operator: String,
    pub reason: String,
    /// Scripted answers by gate id, as `--answer` text.
    pub answers: HashMap<String, String>,
    /// A value for every secret of the runbook and of the runbooks it calls.
    pub secrets: IndexMap<String, String>,
    /// A value for every environment variable they declare.
    pub env: Map<String, Value>,
    pub start: DateTime<Utc>,
    /// The world as the drill starts, faults included.
    pub world: State,
    pub expect: Expect,
}

impl Drill {
    /// `<start>-<drill name>-drill`: shaped like a real run id, and the same on every run, so
    /// that the same drill gives the same journal.
    pub fn run_id(&self) -> String {
        format!(
            "{}-{}-drill",
            self.start.format("%Y%m%dT%H%M%SZ"),
            self.name
        )
    }
}

/// The report file written next to a drill's journal.
pub const REPORT_NAME: &str = "report.md";

/// One finished drill run (`session::drill`): its events (as journaled), the world it left,
/// and when it ended.
pub struct DrillRun {
    pub events: Vec<Envelope>,
    pub result: RunResult,
    pub world: World,
    pub end: DateTime<Utc>,
    /// The journal file, when the run was journaled to disk.
    pub journal: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Expect {
    pub outcome: ExpectedOutcome,
    pub failed_step: Option<String>,
    pub message: Option<String>,
    pub steps: IndexMap<String, ExpectedStep>,
    pub world: Option<WorldStateSpec>,
    pub within: Option<Duration>,
}

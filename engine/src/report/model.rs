//! The report as data: what a post-incident review can say about one run. Every field is
//! derived from the journal (`build.rs`); the three renderers only lay it out.
//!
//! The Markdown template (built-in or `--template`) sees exactly these fields, so renaming
//! one is a breaking change for teams' templates: docs/report.md lists them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the run ended, as far as the journal knows. A run stopped by Ctrl-C or SIGTERM is
/// `aborted` with exit code 130 (`Report::interrupted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Succeeded,
    Failed,
    Aborted,
    NeedsAnswer,
    /// The journal has no `run_finished` event: a crash, a kill, or a run still going.
    Incomplete,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Aborted => "aborted",
            Outcome::NeedsAnswer => "needs-answer",
            Outcome::Incomplete => "incomplete",
        }
    }
}

/// Where a step got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    Succeeded,
    Failed,
    Skipped,
    Aborted,
    NeedsAnswer,
    /// Started and never finished (the journal ends, or the run was interrupted).
    InFlight,
    /// A step of the runbook that never started.
    NotRun,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
            StepState::Aborted => "aborted",
            StepState::NeedsAnswer => "needs-answer",
            StepState::InFlight => "in-flight",
            StepState::NotRun => "not-run",
        }
    }
}

/// A moment, shown in the zone the report was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    /// RFC 3339 with milliseconds and the UTC offset.
    pub iso: String,
    /// `HH:MM:SS` for timelines.
    pub clock: String,
    /// Milliseconds since the run started (for charts; negative never happens in practice).
    pub offset_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `<runbook title> — <reason>` (or just the title).
    pub title: String,
    pub runbook: RunbookRef,
    pub run: RunRef,
    pub outcome: Outcome,
    /// One line: `failed at `deploy`: …`.
    pub outcome_text: String,
    pub exit_code: Option<i32>,
    pub failed_step: Option<String>,
    /// The step that was running when the journal ends without a result.
    pub in_flight_step: Option<String>,
    pub message: Option<String>,
    pub times: Times,
    pub preconditions: Vec<Precondition>,
    /// Main steps in runbook order, then `on_failure` steps and undo steps as they ran.
    pub steps: Vec<StepReport>,
    pub timeline: Vec<Entry>,
    pub impact: Section,
    pub root_cause: Section,
    pub went_well: Section,
    pub went_wrong: Section,
    pub action_items: Section,
    pub lessons: Section,
    /// Problems with the journal itself (cut short, unreadable lines): shown at the top.
    pub notes: Vec<String>,
    pub journal: JournalInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunbookRef {
    pub name: String,
    pub title: String,
    pub path: String,
    pub sha256: String,
    pub severity: Option<String>,
    pub mttr_target: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRef {
    pub id: String,
    /// Who started the run: the incident commander for the PIR.
    pub operator: String,
    pub reason: Option<String>,
    pub host: String,
    pub mode: String,
    pub engine_version: String,
    /// Times are virtual (a drill, or training with `--fast`).
    #[serde(default)]
    pub virtual_time: bool,
    /// Inputs as journaled (secrets already masked).
    pub inputs: Vec<NameValue>,
    pub resumed: Vec<Resumed>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resumed {
    pub at: Stamp,
    pub operator: String,
    /// The runbook had changed and `--force` was given.
    pub forced: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Times {
    /// `UTC` or `UTC+05:30`.
    pub zone: String,
    /// The day the run started, `YYYY-MM-DD`.
    pub date: String,
    pub start: Option<Stamp>,
    /// The last event: `run_finished`, or wherever the journal ends.
    pub end: Option<Stamp>,
    pub duration_ms: u64,
    /// `2m28s`.
    pub duration: String,
    /// From the run's start to the last verification that held in the main steps.
    pub time_to_verified_ms: Option<u64>,
    pub mttr_target_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameValue {
    pub name: String,
    /// Compact JSON (strings unquoted), bounded, for reading.
    pub value: String,
    /// The value as journaled, for machines (the JSON summary).
    pub raw: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Precondition {
    pub that: String,
    pub ok: bool,
    pub message: Option<String>,
    /// `name = value, ...` as read when it was evaluated.
    pub observed: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    /// As journaled: `deploy`, `call-step/child`, `deploy.undo`.
    pub id: String,
    pub title: String,
    /// `main`, `undo` or `on-failure`.
    pub phase: String,
    /// `shell`, `http`, `kubernetes.set_image`, ...; empty for a step that never started.
    pub action: String,
    /// `read-only`, `idempotent`, `reversible` or `terminal`; `unknown` for an undo journaled
    /// before `undo_started` recorded its class (and not told by its action or a terminal
    /// gate); empty for a step that never started.
    pub safety: String,
    pub state: StepState,
    pub started: Option<Stamp>,
    pub ended: Option<Stamp>,
    pub duration_ms: Option<u64>,
    pub duration: String,
    pub attempts: Vec<Attempt>,
    /// Attempts beyond the first.
    pub retries: u32,
    pub error: Option<String>,
    pub note: Option<String>,
    pub skip_reason: Option<String>,
    /// Skipped by design: its `when` was false (not a failure of the runbook).
    #[serde(default)]
    pub skipped_by_design: bool,
    /// One line: the command, `GET <url>`, the Kubernetes verb and object...
    pub summary: String,
    /// The rendered action as journaled (secrets `***`): a shell script as written, anything
    /// else as pretty JSON.
    pub rendered: String,
    /// `sh` or `json`: the language of `rendered`, for syntax highlighting.
    pub rendered_lang: String,
    pub gates: Vec<Gate>,
    pub captures: Vec<NameValue>,
    pub verification: Option<Verification>,
    /// The checks of an `analysis` step, in order.
    #[serde(default)]
    pub analysis: Option<AnalysisTable>,
    /// Changes to a drill's simulated world, compact JSON each.
    pub world: Vec<String>,
    pub output: Option<OutputTail>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub n: u32,
    pub of: u32,
    pub ok: Option<bool>,
    pub error: Option<String>,
    pub duration_ms: Option<u64>,
    pub polls: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gate {
    /// `confirm`, `manual`, `input`, `terminal`, `resume`.
    pub kind: String,
    pub prompt: String,
    pub asked: Stamp,
    pub answer: Option<String>,
    pub by: Option<String>,
    /// `prompt`, `--answer`, `--yes`, `drill`.
    pub via: Option<String>,
    pub note: Option<String>,
    pub answered: Option<Stamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verification {
    pub ok: bool,
    pub polls: u32,
    pub duration_ms: u64,
    /// `result.status 503 → 503 → 200 after 3 polls, 20s`.
    pub summary: String,
    /// The last evaluation of each condition.
    pub checks: Vec<CheckLine>,
}

/// The series of checks of a canary analysis: one row per check, one column per metric.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct AnalysisTable {
    /// Metric names, with their bounds: `success-rate (min 99)`.
    pub metrics: Vec<String>,
    pub bounds: Vec<(Option<f64>, Option<f64>)>,
    pub rows: Vec<AnalysisRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnalysisRow {
    pub check: u32,
    pub at: String,
    /// pass, fail or inconclusive.
    pub verdict: String,
    /// Each metric's value as text (`92`, `NaN`, `no data`), in `metrics` order.
    pub values: Vec<String>,
    /// Each metric's value as a number, when it had one (for the chart).
    pub numbers: Vec<Option<f64>>,
    /// Failed checks so far.
    pub failed: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckLine {
    pub that: String,
    pub ok: bool,
    pub message: Option<String>,
    pub observed: String,
    pub error: Option<String>,
}

/// The end of what the step printed or returned, bounded for the appendix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputTail {
    pub text: String,
    /// Lines left out at the top (0 when the whole output is shown).
    pub lines_cut: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub at: Stamp,
    /// `detection`, `precondition`, `step`, `gate`, `retry`, `verify`, `world`, `undo`,
    /// `resume`, `resolution`, `journal`.
    pub kind: String,
    /// `ok`, `fail`, `warn` or `info`: how a reader should see it.
    pub status: String,
    pub step: Option<String>,
    /// Short Markdown: identifiers in backticks, nothing else.
    pub text: String,
}

/// A PIR section: lines the journal gives evidence for, and what a human must add.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Section {
    pub items: Vec<String>,
    pub prompt: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalInfo {
    pub path: String,
    pub events: usize,
    /// The last line was cut mid-write.
    pub truncated: bool,
    pub bad_lines: usize,
}

impl Report {
    /// Stopped by a signal: the journal records it as aborted with the signal exit code.
    pub fn interrupted(&self) -> bool {
        self.outcome == Outcome::Aborted && self.exit_code == Some(crate::exit::INTERRUPTED)
    }

    pub fn step(&self, id: &str) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Main and on-failure steps (not undo, not steps that never started).
    pub fn ran_steps(&self) -> impl Iterator<Item = &StepReport> {
        self.steps
            .iter()
            .filter(|s| s.phase != "undo" && s.state != StepState::NotRun)
    }
}

/// Compact JSON for a value in a sentence: strings bare, everything bounded.
pub fn value_text(v: &Value, max: usize) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    super::text::one_line(&s, max)
}

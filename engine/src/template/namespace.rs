//! The names a template reads that a run defines: `run.*` and `steps.<id>.*` (besides a
//! step's captures). Defined once, here, for `check` (what a template may name), `plan` (its
//! placeholders) and the runner (what a run sets).

use serde_json::{json, Map, Value};

use crate::spec::StepSpec;

/// `run.*`: who runs which runbook, where, since when and why.
#[derive(Debug, Clone, Default)]
pub struct RunFields {
    /// The run's id (`<runbook>-<time>-<suffix>`).
    pub id: String,
    pub operator: String,
    /// The reason given (empty without one).
    pub reason: String,
    /// RFC 3339, when the run first started (a resumed run keeps it).
    pub started_at: String,
    /// The runbook's name.
    pub runbook: String,
    /// The machine it runs on.
    pub host: String,
}

impl RunFields {
    /// The field names, in the order `check` lists them.
    pub const NAMES: [&'static str; 6] =
        ["id", "operator", "reason", "started_at", "runbook", "host"];

    /// `run.*` as the template context holds it.
    pub fn to_map(&self) -> Map<String, Value> {
        let RunFields {
            id,
            operator,
            reason,
            started_at,
            runbook,
            host,
        } = self;
        let values = [id, operator, reason, started_at, runbook, host];
        Self::NAMES
            .iter()
            .zip(values)
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect()
    }
}

/// A field of `steps.<id>.*` a run sets (the step's captures aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepField {
    /// `succeeded`, `failed`, `skipped`... (every step).
    Outcome,
    /// The action's result (steps with an action: `shell`, `http`, `kubernetes`, `compose`,
    /// `wait`, `prometheus`, `analysis`).
    Result,
    /// How many attempts the action took (the same, but `analysis`).
    Attempts,
    /// An `input` step's value.
    Value,
    /// A `manual` step's note.
    Note,
    /// A `confirm` step's answer.
    Answer,
}

impl StepField {
    pub const ALL: [StepField; 6] = [
        StepField::Outcome,
        StepField::Result,
        StepField::Attempts,
        StepField::Value,
        StepField::Note,
        StepField::Answer,
    ];

    /// Fields of every step.
    pub const EVERY_STEP: [StepField; 1] = [StepField::Outcome];

    pub fn name(self) -> &'static str {
        match self {
            StepField::Outcome => "outcome",
            StepField::Result => "result",
            StepField::Attempts => "attempts",
            StepField::Value => "value",
            StepField::Note => "note",
            StepField::Answer => "answer",
        }
    }

    /// Whether steps of this kind have it: what the runner sets when such a step ends.
    pub fn of(self, step: &StepSpec) -> bool {
        // Actions run in attempts (`attempts`), each giving a result.
        let attempted = step.shell.is_some()
            || step.http.is_some()
            || step.kubernetes.is_some()
            || step.compose.is_some()
            || step.wait.is_some()
            || step.prometheus.is_some();
        match self {
            StepField::Outcome => true,
            // An analysis gives its checks' history as its result.
            StepField::Result => attempted || step.analysis.is_some(),
            StepField::Attempts => attempted,
            StepField::Value => step.input.is_some(),
            StepField::Note => step.manual.is_some(),
            StepField::Answer => step.confirm.is_some(),
        }
    }

    /// The fields a step of this kind has, in `ALL`'s order.
    pub fn of_step(step: &StepSpec) -> impl Iterator<Item = StepField> + '_ {
        Self::ALL.into_iter().filter(|f| f.of(step))
    }

    /// Whether `name` is a field of every step.
    pub fn of_every_step(name: &str) -> bool {
        Self::EVERY_STEP.iter().any(|f| f.name() == name)
    }
}

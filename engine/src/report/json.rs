//! The JSON summary: a stable, versioned shape for dashboards and CI archives. It is not a
//! dump of the report model: fields are added, never renamed or removed, within a
//! `schema_version`. docs/report.md documents every field (a test keeps them in step).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Serialize;

use super::model::{Outcome, Report, StepState};

/// Bumped when a field is renamed, removed or changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize, JsonSchema)]
pub struct Summary {
    pub schema_version: u32,
    pub run_id: String,
    pub runbook: RunbookSummary,
    pub engine_version: String,
    pub operator: String,
    pub reason: Option<String>,
    pub host: String,
    pub mode: String,
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub failed_step: Option<String>,
    pub in_flight_step: Option<String>,
    pub message: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration_ms: u64,
    pub time_to_verified_ms: Option<u64>,
    pub mttr_target_ms: Option<u64>,
    pub within_mttr_target: Option<bool>,
    pub journal: JournalSummary,
    pub counts: Counts,
    pub steps: Vec<StepSummary>,
    pub went_well: Vec<String>,
    pub went_wrong: Vec<String>,
    pub action_items: Vec<String>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RunbookSummary {
    pub name: String,
    pub title: String,
    pub path: String,
    pub sha256: String,
    pub severity: Option<String>,
    pub mttr_target: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct JournalSummary {
    pub path: String,
    pub events: usize,
    pub truncated: bool,
    pub bad_lines: usize,
}

#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct Counts {
    pub steps: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    pub aborted: usize,
    pub needs_answer: usize,
    pub in_flight: usize,
    pub not_run: usize,
    pub retries: u32,
    pub gates: usize,
    pub undo_succeeded: usize,
    pub undo_failed: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StepSummary {
    pub id: String,
    pub title: String,
    pub phase: String,
    pub action: String,
    /// `read-only`, `idempotent`, `reversible` or `terminal`; `unknown` for an undo journaled
    /// before `undo_started` recorded its class (and not told by its action or a terminal
    /// gate); empty for a step that never started.
    pub safety: String,
    pub outcome: StepState,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub attempts: usize,
    pub retries: u32,
    pub error: Option<String>,
    pub note: Option<String>,
    pub verification: Option<VerificationSummary>,
    pub gates: Vec<GateSummary>,
    /// Capture name -> value as journaled (any JSON).
    pub captures: IndexMap<String, serde_json::Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct VerificationSummary {
    pub ok: bool,
    pub polls: u32,
    pub duration_ms: u64,
    pub summary: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GateSummary {
    pub kind: String,
    pub answer: Option<String>,
    pub by: Option<String>,
    pub via: Option<String>,
    pub note: Option<String>,
}

pub fn summary(r: &Report) -> Summary {
    let mut counts = Counts::default();
    for s in &r.steps {
        if s.phase == "undo" {
            match s.state {
                StepState::Succeeded => counts.undo_succeeded += 1,
                StepState::Failed => counts.undo_failed += 1,
                _ => {}
            }
            continue;
        }
        counts.steps += 1;
        counts.retries += s.retries;
        counts.gates += s.gates.len();
        match s.state {
            StepState::Succeeded => counts.succeeded += 1,
            StepState::Failed => counts.failed += 1,
            StepState::Skipped => counts.skipped += 1,
            StepState::Aborted => counts.aborted += 1,
            StepState::NeedsAnswer => counts.needs_answer += 1,
            StepState::InFlight => counts.in_flight += 1,
            StepState::NotRun => counts.not_run += 1,
        }
    }
    let within = match (
        r.times.mttr_target_ms,
        r.times.time_to_verified_ms,
        r.outcome,
    ) {
        (Some(t), Some(v), _) => Some(v <= t),
        (Some(t), None, Outcome::Succeeded) => Some(r.times.duration_ms <= t),
        _ => None,
    };
    Summary {
        schema_version: SCHEMA_VERSION,
        run_id: r.run.id.clone(),
        runbook: RunbookSummary {
            name: r.runbook.name.clone(),
            title: r.runbook.title.clone(),
            path: r.runbook.path.clone(),
            sha256: r.runbook.sha256.clone(),
            severity: r.runbook.severity.clone(),
            mttr_target: r.runbook.mttr_target.clone(),
        },
        engine_version: r.run.engine_version.clone(),
        operator: r.run.operator.clone(),
        reason: r.run.reason.clone(),
        host: r.run.host.clone(),
        mode: r.run.mode.clone(),
        outcome: r.outcome,
        exit_code: r.exit_code,
        failed_step: r.failed_step.clone(),
        in_flight_step: r.in_flight_step.clone(),
        message: r.message.clone(),
        started_at: r.times.start.as_ref().map(|s| s.iso.clone()),
        ended_at: r.times.end.as_ref().map(|s| s.iso.clone()),
        duration_ms: r.times.duration_ms,
        time_to_verified_ms: r.times.time_to_verified_ms,
        mttr_target_ms: r.times.mttr_target_ms,
        within_mttr_target: within,
        journal: JournalSummary {
            path: r.journal.path.clone(),
            events: r.journal.events,
            truncated: r.journal.truncated,
            bad_lines: r.journal.bad_lines,
        },
        counts,
        steps: r
            .steps
            .iter()
            .map(|s| StepSummary {
                id: s.id.clone(),
                title: s.title.clone(),
                phase: s.phase.clone(),
                action: s.action.clone(),
                safety: s.safety.clone(),
                outcome: s.state,
                started_at: s.started.as_ref().map(|t| t.iso.clone()),
                ended_at: s.ended.as_ref().map(|t| t.iso.clone()),
                duration_ms: s.duration_ms,
                attempts: s.attempts.len(),
                retries: s.retries,
                error: s.error.clone(),
                note: s.note.clone(),
                verification: s.verification.as_ref().map(|v| VerificationSummary {
                    ok: v.ok,
                    polls: v.polls,
                    duration_ms: v.duration_ms,
                    summary: v.summary.clone(),
                }),
                gates: s
                    .gates
                    .iter()
                    .map(|g| GateSummary {
                        kind: g.kind.clone(),
                        answer: g.answer.clone(),
                        by: g.by.clone(),
                        via: g.via.clone(),
                        note: g.note.clone(),
                    })
                    .collect(),
                captures: s
                    .captures
                    .iter()
                    .map(|c| (c.name.clone(), c.raw.clone()))
                    .collect(),
            })
            .collect(),
        went_well: r.went_well.items.clone(),
        went_wrong: r.went_wrong.items.clone(),
        action_items: r.action_items.items.clone(),
        notes: r.notes.clone(),
    }
}

pub fn render(r: &Report) -> String {
    let mut s = serde_json::to_string_pretty(&summary(r)).expect("the summary serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    /// Every property name in the summary's schema, at any depth.
    fn properties(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Object(props)) = m.get("properties") {
                    out.extend(props.keys().cloned());
                }
                m.values().for_each(|x| properties(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| properties(x, out)),
            _ => {}
        }
    }

    #[test]
    fn docs_describe_every_summary_field() {
        let schema = serde_json::to_value(schemars::schema_for!(super::Summary)).unwrap();
        let mut names = BTreeSet::new();
        properties(&schema, &mut names);
        assert!(names.len() > 30, "{names:?}");
        let docs = include_str!("../../../docs/report.md");
        let missing: Vec<&String> = names
            .iter()
            // Written alone (`field`) or as the end of a path (`counts.field`, `.field`).
            .filter(|n| !docs.contains(&format!("`{n}`")) && !docs.contains(&format!(".{n}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/report.md does not document these JSON summary fields: {missing:?}"
        );
    }
}

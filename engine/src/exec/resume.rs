//! Resuming: what a journal says about a run that stopped before its end.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::events::{Event, Phase, RunMode, RunOutcome, StepOutcome};
use super::journal;

/// The state of an unfinished run, replayed from its journal.
#[derive(Debug, Clone, Default)]
pub struct ResumeState {
    pub run_id: String,
    pub runbook_path: String,
    pub sha256: String,
    pub operator: String,
    pub reason: Option<String>,
    /// `None` until the journal's `run_started` is read.
    pub mode: Option<RunMode>,
    pub started_at: String,
    pub inputs: IndexMap<String, Value>,
    /// Main-phase steps that finished (succeeded, skipped, or failed-but-continued).
    pub done: HashMap<String, StepOutcome>,
    /// Fields (`steps.<id>.*`) recorded for finished steps: captures, values, notes.
    pub fields: HashMap<String, Map<String, Value>>,
    /// Steps that started executing (an attempt began) but did not finish.
    pub in_flight: HashSet<String>,
    /// In-flight steps whose last attempt is journaled as a success (with its captures): the
    /// action took effect and only `step_finished` is missing. Value: that attempt's number.
    pub succeeded_attempt: HashMap<String, u32>,
    /// The answers given at gates (`confirm`, terminal steps), by step: a confirmation
    /// answered `skip` keeps the steps it guards skipped after a resume.
    pub answers: HashMap<String, String>,
    /// The run undid its changes (an `abort` answer, or its rollback strategy).
    pub rolled_back: bool,
    /// How the run ended, if it recorded an end.
    pub ended: Option<RunOutcome>,
    /// The last sequence number, so new events continue the numbering.
    pub last_seq: u64,
    pub truncated: bool,
}

impl ResumeState {
    /// Replays a journal.
    pub fn load(path: &Path) -> Result<ResumeState, String> {
        let read =
            journal::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if let Some((line, err)) = read.bad_lines.first() {
            return Err(format!(
                "{}:{line}: not a journal event: {err}",
                path.display()
            ));
        }
        let mut s = ResumeState {
            truncated: read.truncated,
            ..Default::default()
        };
        let mut attempted: HashSet<String> = HashSet::new();
        let mut continued: HashSet<String> = HashSet::new();
        for env in &read.events {
            s.last_seq = s.last_seq.max(env.seq);
            s.run_id = env.run_id.clone();
            match &env.event {
                Event::RunStarted {
                    runbook,
                    inputs,
                    operator,
                    reason,
                    mode,
                    ..
                } => {
                    s.runbook_path = runbook.path.clone();
                    s.sha256 = runbook.sha256.clone();
                    s.operator = operator.clone();
                    s.reason = reason.clone();
                    s.mode = Some(*mode);
                    s.started_at = env.ts.clone();
                    if let Value::Object(m) = inputs {
                        s.inputs = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    }
                }
                Event::RunResumed {
                    sha256: Some(h), ..
                } => s.sha256 = h.clone(),
                Event::AttemptStarted { step, .. } => {
                    attempted.insert(step.clone());
                    s.in_flight.insert(step.clone());
                    s.succeeded_attempt.remove(step);
                }
                Event::AttemptFinished {
                    step,
                    attempt,
                    ok: true,
                    ..
                } => {
                    s.succeeded_attempt.insert(step.clone(), *attempt);
                }
                Event::Capture { step, name, value } => {
                    s.fields
                        .entry(step.clone())
                        .or_default()
                        .insert(name.clone(), value.clone());
                }
                Event::StepSkipped {
                    step,
                    phase: Phase::Main,
                    ..
                } => {
                    s.done.insert(step.clone(), StepOutcome::Skipped);
                }
                Event::StepFinished {
                    step,
                    outcome,
                    phase: Phase::Main,
                    note,
                    ..
                } => {
                    s.in_flight.remove(step);
                    s.succeeded_attempt.remove(step);
                    match outcome {
                        StepOutcome::Succeeded | StepOutcome::Skipped => {
                            s.done.insert(step.clone(), *outcome);
                        }
                        StepOutcome::Failed => {
                            continued.insert(step.clone());
                        }
                        _ => {}
                    }
                    if let Some(n) = note {
                        s.fields
                            .entry(step.clone())
                            .or_default()
                            .insert("note".into(), Value::String(n.clone()));
                    }
                }
                Event::UndoStarted { .. } => s.rolled_back = true,
                Event::GateAnswered { step, answer, .. } => {
                    s.answers.insert(step.clone(), answer.clone());
                }
                Event::RunFinished { outcome, .. } => s.ended = Some(*outcome),
                _ => {}
            }
        }
        let _ = (attempted, continued);
        if s.run_id.is_empty() || s.sha256.is_empty() {
            return Err(format!(
                "{} has no run_started event; it is not a run journal",
                path.display()
            ));
        }
        Ok(s)
    }

    /// Can this run be resumed? Finished runs (succeeded, failed) cannot.
    pub fn resumable(&self) -> Result<(), String> {
        if let Some(mode) = self.mode.filter(|m| m.simulated()) {
            return Err(format!(
                "it ran against a drill's simulated world ({mode} mode); resuming would continue against real systems. Start it again with `runbook run {} --world <drill>`",
                self.runbook_path
            ));
        }
        if self.rolled_back && self.ended.is_some() {
            return Err(
                "the run stopped and undid what it had changed (the operator answered abort); start a new run instead"
                    .into(),
            );
        }
        match self.ended {
            Some(RunOutcome::Succeeded) => {
                Err("the run already succeeded; there is nothing to resume".into())
            }
            Some(RunOutcome::Failed) => Err(
                "the run failed and its rollback and on_failure steps ran; start a new run instead"
                    .into(),
            ),
            _ => Ok(()),
        }
    }
}

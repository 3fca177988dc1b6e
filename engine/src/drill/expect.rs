//! Checks a drill's `expect` against its run: the outcome and per-step outcomes read from the
//! journal's events, the world it left behind, and the virtual time it took.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use super::model::DrillRun;
use super::model::Expect;
use super::world::predicate::mismatches;
use crate::exec::events::{Envelope, Event};
use crate::model::fmt_duration;

/// An expectation the run did not meet.
#[derive(Debug, Clone, PartialEq)]
pub struct Unmet {
    pub what: String,
    pub expected: String,
    pub actual: String,
}

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, got {}",
            self.what, self.expected, self.actual
        )
    }
}

/// How a run ended, as its `run_finished` event says.
#[derive(Debug, Clone, Default)]
pub struct Ending {
    pub outcome: String,
    pub failed_step: Option<String>,
    pub message: Option<String>,
    pub duration: Duration,
}

pub fn ending(events: &[Envelope]) -> Ending {
    events
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            Event::RunFinished {
                outcome,
                duration_ms,
                failed_step,
                message,
                ..
            } => Some(Ending {
                outcome: outcome.as_str().to_string(),
                failed_step: failed_step.clone(),
                message: message.clone(),
                duration: Duration::from_millis(*duration_ms),
            }),
            _ => None,
        })
        .unwrap_or_else(|| Ending {
            outcome: "unfinished".into(),
            ..Default::default()
        })
}

/// How each step (and `<step>.undo`) ended; steps never started are absent.
pub fn step_outcomes(events: &[Envelope]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for e in events {
        match &e.event {
            Event::StepFinished { step, outcome, .. } => {
                out.insert(step.clone(), outcome.as_str().to_string());
            }
            Event::StepSkipped { step, .. } => {
                out.insert(step.clone(), "skipped".to_string());
            }
            Event::UndoFinished { step, ok, .. } => {
                let o = if *ok { "succeeded" } else { "failed" };
                out.insert(format!("{step}.undo"), o.to_string());
            }
            _ => {}
        }
    }
    out
}

/// Every unmet expectation, most telling first: outcome, stopping step, message, steps,
/// world, time budget.
pub fn evaluate(expect: &Expect, run: &DrillRun) -> Vec<Unmet> {
    let mut out = vec![];
    let end = ending(&run.events);
    let mut unmet = |what: &str, expected: String, actual: String| {
        out.push(Unmet {
            what: what.to_string(),
            expected,
            actual,
        })
    };
    if end.outcome != expect.outcome.as_str() {
        let mut actual = end.outcome.clone();
        if let Some(s) = &end.failed_step {
            actual.push_str(&format!(" at step `{s}`"));
        }
        if let Some(m) = &end.message {
            actual.push_str(&format!(" ({m})"));
        }
        unmet("outcome", expect.outcome.as_str().to_string(), actual);
    }
    if let Some(s) = &expect.failed_step {
        if end.failed_step.as_ref() != Some(s) {
            let actual = end
                .failed_step
                .as_ref()
                .map_or("no failed step".into(), |f| format!("`{f}`"));
            unmet("failed step", format!("`{s}`"), actual);
        }
    }
    if let Some(m) = &expect.message {
        let actual = end.message.clone().unwrap_or_default();
        if !actual.contains(m.as_str()) {
            unmet(
                "message",
                format!("text containing {m:?}"),
                format!("{actual:?}"),
            );
        }
    }
    let steps = step_outcomes(&run.events);
    for (id, want) in &expect.steps {
        let got = steps.get(id).map_or("not-run", String::as_str);
        if got != want.as_str() {
            unmet(
                &format!("step `{id}`"),
                want.as_str().to_string(),
                got.to_string(),
            );
        }
    }
    if let Some(w) = &expect.world {
        for m in run.world.inspect(run.end, |st| mismatches(st, w, run.end)) {
            unmet(
                &format!("world: {}", m.what),
                m.expected.to_string(),
                m.actual.to_string(),
            );
        }
    }
    if let Some(budget) = expect.within {
        if end.duration > budget {
            unmet(
                "virtual duration",
                format!("within {}", fmt_duration(budget)),
                fmt_duration(end.duration),
            );
        }
    }
    out
}

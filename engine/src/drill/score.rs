//! Scores a drill run from its events: virtual time to recovery against the runbook's MTTR
//! target, gates the operator had to answer, steps that needed retries, undos that ran.

use std::collections::HashSet;
use std::time::Duration;

use super::expect::ending;
use crate::exec::events::{Envelope, Event};
use crate::model::fmt_duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// How the run ended; `succeeded` means the system recovered.
    pub outcome: String,
    pub recovered: bool,
    /// Virtual time from the first event to the last.
    pub duration: Duration,
    pub mttr_target: Option<Duration>,
    /// Gates asked (confirmations, manual and input steps, terminal steps, manual undos).
    pub gates: usize,
    /// Steps that needed more than one attempt, and the extra attempts in all.
    pub retried_steps: usize,
    pub retries: u32,
    /// Undo actions that ran (the rollback).
    pub undos: usize,
}

impl Score {
    pub fn of(events: &[Envelope], mttr_target: Option<Duration>) -> Score {
        let end = ending(events);
        let mut gates = 0;
        let mut retried = HashSet::new();
        let mut retries = 0;
        let mut undos = 0;
        for e in events {
            match &e.event {
                Event::GateAsked { .. } => gates += 1,
                Event::AttemptStarted { step, attempt, .. } if *attempt > 1 => {
                    retried.insert(step.clone());
                    retries += 1;
                }
                Event::UndoStarted { .. } => undos += 1,
                _ => {}
            }
        }
        Score {
            recovered: end.outcome == "succeeded",
            outcome: end.outcome,
            duration: end.duration,
            mttr_target,
            gates,
            retried_steps: retried.len(),
            retries,
            undos,
        }
    }

    /// Within the MTTR target (None when the runbook sets none or the run did not recover).
    pub fn met_target(&self) -> Option<bool> {
        match (self.recovered, self.mttr_target) {
            (true, Some(t)) => Some(self.duration <= t),
            _ => None,
        }
    }

    /// `recovered in 1m15s (MTTR target 15m: met); 2 gates, 1 step retried (2 retries), 0 undos`
    pub fn summary(&self) -> String {
        let time = if self.recovered {
            let target = match (self.mttr_target, self.met_target()) {
                (Some(t), Some(true)) => format!(" (MTTR target {}: met)", fmt_duration(t)),
                (Some(t), _) => format!(" (MTTR target {}: missed)", fmt_duration(t)),
                (None, _) => " (no MTTR target)".into(),
            };
            format!("recovered in {}{target}", fmt_duration(self.duration))
        } else {
            format!(
                "not recovered (the run {} after {})",
                self.outcome,
                fmt_duration(self.duration)
            )
        };
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        format!(
            "{time}; {}, {} ({}), {}",
            plural(self.gates, "gate", "gates"),
            plural(self.retried_steps, "step retried", "steps retried"),
            plural(self.retries as usize, "retry", "retries"),
            plural(self.undos, "undo", "undos"),
        )
    }
}

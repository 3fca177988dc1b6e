//! Folds journal events into the report model. This file holds the run-level events and the
//! end (outcome, notes about the journal); `steps.rs` folds the step events and `verify.rs`
//! the verification polls. Nothing here reads anything but the events.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::model::*;
use super::steps::{new_step, observed_text};
use super::text::{duration, one_line, plural, Zone};
use super::verify::Poll;
use super::ReportError;
use crate::exec::events::{Envelope, Event, RunOutcome};
use crate::exec::journal::Read;

/// Builds the report of one journal. Fails only when there is nothing to report on.
pub fn build(read: &Read, journal_path: &str, zone: Zone) -> Result<Report, ReportError> {
    let Some(first) = read.events.first() else {
        let why = match read.bad_lines.first() {
            Some((line, err)) => format!("line {line}: {err}"),
            None if read.truncated => "its only line was cut mid-write".into(),
            None => "it is empty".into(),
        };
        return Err(ReportError::NotAJournal {
            path: journal_path.to_string(),
            why,
        });
    };
    // The run starts at the first readable time: one bad stamp must not date it to 1970.
    let t0 = read
        .events
        .iter()
        .find_map(|e| parse_ts(&e.ts))
        .unwrap_or_default();
    let mut b = Builder {
        zone,
        t0,
        last: t0,
        r: empty_report(first, journal_path, zone, t0),
        index: HashMap::new(),
        polls: HashMap::new(),
        first_attempt: HashMap::new(),
        bad_times: 0,
    };
    for e in &read.events {
        b.event(e);
    }
    b.finish(read);
    let mut r = b.r;
    super::findings::fill(&mut r);
    Ok(r)
}

fn parse_ts(ts: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn empty_report(first: &Envelope, path: &str, zone: Zone, t0: DateTime<Utc>) -> Report {
    let section = Section::default;
    Report {
        title: String::new(),
        runbook: RunbookRef {
            name: "unknown".into(),
            title: "unknown runbook".into(),
            path: String::new(),
            sha256: String::new(),
            severity: None,
            mttr_target: None,
            description: None,
        },
        run: RunRef {
            id: first.run_id.clone(),
            operator: "unknown".into(),
            reason: None,
            host: "unknown".into(),
            mode: "unknown".into(),
            engine_version: "unknown".into(),
            virtual_time: false,
            inputs: vec![],
            resumed: vec![],
        },
        outcome: Outcome::Incomplete,
        outcome_text: String::new(),
        exit_code: None,
        failed_step: None,
        in_flight_step: None,
        message: None,
        times: Times {
            zone: zone.label(t0),
            date: zone.at(t0).format("%Y-%m-%d").to_string(),
            start: Some(zone.stamp(t0, t0)),
            end: None,
            duration_ms: 0,
            duration: String::new(),
            time_to_verified_ms: None,
            mttr_target_ms: None,
        },
        preconditions: vec![],
        steps: vec![],
        timeline: vec![],
        impact: section(),
        root_cause: section(),
        went_well: section(),
        went_wrong: section(),
        action_items: section(),
        lessons: section(),
        notes: vec![],
        journal: JournalInfo {
            path: path.to_string(),
            events: 0,
            truncated: false,
            bad_lines: 0,
        },
    }
}

pub(super) struct Builder {
    pub(super) zone: Zone,
    pub(super) t0: DateTime<Utc>,
    pub(super) last: DateTime<Utc>,
    pub(super) r: Report,
    /// step id -> index in `r.steps`.
    pub(super) index: HashMap<String, usize>,
    pub(super) polls: HashMap<String, Vec<Poll>>,
    pub(super) first_attempt: HashMap<String, DateTime<Utc>>,
    pub(super) bad_times: usize,
}

impl Builder {
    pub(super) fn stamp(&self, t: DateTime<Utc>) -> Stamp {
        self.zone.stamp(t, self.t0)
    }

    pub(super) fn line(
        &mut self,
        t: DateTime<Utc>,
        kind: &str,
        status: &str,
        step: Option<&str>,
        text: String,
    ) {
        let at = self.stamp(t);
        self.r.timeline.push(Entry {
            at,
            kind: kind.into(),
            status: status.into(),
            step: step.map(str::to_string),
            text,
        });
    }

    /// The step's entry, created on first sight. A step inside a `call` goes after its
    /// caller and the caller's earlier children, so the list reads in running order.
    pub(super) fn step_mut(&mut self, id: &str, phase: &str) -> &mut StepReport {
        if let Some(&i) = self.index.get(id) {
            return &mut self.r.steps[i];
        }
        let pos = match id.rsplit_once('/') {
            Some((parent, _)) => self
                .r
                .steps
                .iter()
                .rposition(|s| s.id == parent || s.id.starts_with(&format!("{parent}/")))
                .map_or(self.r.steps.len(), |p| p + 1),
            None => self.r.steps.len(),
        };
        self.r.steps.insert(pos, new_step(id, phase));
        for v in self.index.values_mut() {
            if *v >= pos {
                *v += 1;
            }
        }
        self.index.insert(id.to_string(), pos);
        &mut self.r.steps[pos]
    }

    fn event(&mut self, env: &Envelope) {
        let t = match parse_ts(&env.ts) {
            Some(t) => t,
            None => {
                self.bad_times += 1;
                self.last
            }
        };
        self.last = self.last.max(t);
        self.r.journal.events += 1;
        match &env.event {
            Event::RunStarted {
                runbook,
                inputs,
                operator,
                reason,
                host,
                engine_version,
                mode,
                virtual_time,
            } => {
                self.r.run.virtual_time = *virtual_time;
                self.r.runbook = RunbookRef {
                    name: runbook.name.clone(),
                    title: runbook.title.clone(),
                    path: runbook.path.clone(),
                    sha256: runbook.sha256.clone(),
                    severity: runbook.severity.clone(),
                    mttr_target: runbook.mttr_target.clone(),
                    description: runbook.description.clone(),
                };
                self.r.run.operator = operator.clone();
                self.r.run.reason = reason.clone().filter(|r| !r.trim().is_empty());
                self.r.run.host = host.clone();
                self.r.run.mode = mode.to_string();
                self.r.run.engine_version = engine_version.clone();
                if let Value::Object(m) = inputs {
                    self.r.run.inputs = m
                        .iter()
                        .map(|(k, v)| NameValue {
                            name: k.clone(),
                            value: value_text(v, 120),
                            raw: v.clone(),
                        })
                        .collect();
                }
                for id in &runbook.steps {
                    self.step_mut(id, "main");
                }
                let why = reason
                    .as_deref()
                    .filter(|r| !r.trim().is_empty())
                    .map(|r| format!(" — reason: {}", one_line(r, 200)))
                    .unwrap_or_default();
                let text = format!(
                    "Detection: runbook `{}` started by {} on {} ({mode}){why}",
                    runbook.name, operator, host
                );
                self.line(t, "detection", "info", None, text);
            }
            Event::RunResumed {
                operator, forced, ..
            } => {
                let at = self.stamp(t);
                self.r.run.resumed.push(Resumed {
                    at,
                    operator: operator.clone(),
                    forced: *forced,
                });
                let forced = if *forced {
                    " with --force (the runbook had changed since the run started)"
                } else {
                    ""
                };
                self.line(
                    t,
                    "resume",
                    "warn",
                    None,
                    format!("Run resumed by {operator}{forced}"),
                );
            }
            Event::Precondition {
                that,
                ok,
                message,
                observed,
                ..
            } => {
                let obs = observed_text(observed);
                self.r.preconditions.push(Precondition {
                    that: that.clone(),
                    ok: *ok,
                    message: message.clone(),
                    observed: obs.clone(),
                });
                let shown = if obs.is_empty() {
                    String::new()
                } else {
                    format!(" ({obs})")
                };
                let text = if *ok {
                    format!("Precondition `{that}` held{shown}")
                } else {
                    let m = message
                        .as_deref()
                        .map(|m| format!(": {}", one_line(m, 200)))
                        .unwrap_or_default();
                    format!("Precondition `{that}` was false{shown}{m}; nothing was run")
                };
                let status = if *ok { "ok" } else { "fail" };
                self.line(t, "precondition", status, None, text);
            }
            Event::RunFinished {
                outcome,
                duration_ms: _,
                exit_code,
                failed_step,
                message,
            } => {
                self.r.outcome = match outcome {
                    RunOutcome::Succeeded => Outcome::Succeeded,
                    RunOutcome::Failed => Outcome::Failed,
                    RunOutcome::Aborted => Outcome::Aborted,
                    RunOutcome::NeedsAnswer => Outcome::NeedsAnswer,
                };
                self.r.exit_code = Some(*exit_code);
                self.r.failed_step = failed_step.clone();
                self.r.message = message.clone();
                // An undo stopped at its gate (declined, or waiting for an answer) ran nothing.
                // The runner journals no `undo_finished` for it, so that a resume asks again;
                // its row says how the run left it, not `in-flight` (which means it may have
                // run).
                let stopped = match outcome {
                    RunOutcome::Aborted => Some(StepState::Aborted),
                    RunOutcome::NeedsAnswer => Some(StepState::NeedsAnswer),
                    _ => None,
                };
                let undo = failed_step.as_deref().filter(|id| id.ends_with(".undo"));
                if let (Some(state), Some(&i)) = (stopped, undo.and_then(|id| self.index.get(id))) {
                    let at = self.stamp(t);
                    let s = &mut self.r.steps[i];
                    if s.state == StepState::InFlight && s.attempts.is_empty() {
                        s.state = state;
                        s.ended = Some(at);
                        // Its timeline line said it started: say it never ran.
                        let id = s.id.clone();
                        if let Some(e) =
                            self.r.timeline.iter_mut().rev().find(|e| {
                                e.kind == "undo" && e.step.as_deref() == Some(id.as_str())
                            })
                        {
                            e.text = e.text.replacen(
                                " started — ",
                                " stopped at its gate, not run — ",
                                1,
                            );
                            e.status = "warn".into();
                        }
                    }
                }
            }
            other => self.step_event(t, other),
        }
    }

    fn finish(&mut self, read: &Read) {
        // Verifications of steps that never finished still count as evidence.
        let open: Vec<String> = self.polls.keys().cloned().collect();
        for id in open {
            self.close_verification(&id, false);
        }
        let end = self.last;
        let r = &mut self.r;
        r.times.end = Some(self.zone.stamp(end, self.t0));
        let total = (end - self.t0).num_milliseconds().max(0) as u64;
        r.times.duration_ms = total;
        r.times.duration = duration(total);
        r.times.mttr_target_ms = r
            .runbook
            .mttr_target
            .as_deref()
            .and_then(|m| crate::model::parse_duration(m).ok())
            .map(|d| d.as_millis() as u64);
        r.journal.truncated = read.truncated;
        r.journal.bad_lines = read.bad_lines.len();
        r.in_flight_step = r
            .steps
            .iter()
            .filter(|s| s.state == StepState::InFlight)
            .max_by_key(|s| s.started.as_ref().map(|a| a.offset_ms))
            .map(|s| s.id.clone());
        if r.run.operator == "unknown" && r.runbook.name == "unknown" {
            r.notes.push(
                "The journal has no `run_started` event: runbook, operator and reason are unknown."
                    .into(),
            );
        }
        if read.truncated {
            r.notes.push(format!(
                "The journal ended early: its last line was cut mid-write (the engine crashed or was \
                 killed while writing), so the events after {} are missing.",
                self.zone.stamp(end, self.t0).clock
            ));
        }
        if let Some((line, err)) = read.bad_lines.first() {
            r.notes.push(format!(
                "{} of the journal could not be read and {} left out (first: line {line}: {}).",
                plural(read.bad_lines.len() as u64, "line", "lines"),
                if read.bad_lines.len() == 1 {
                    "was"
                } else {
                    "were"
                },
                one_line(err, 120)
            ));
        }
        if self.bad_times > 0 {
            r.notes.push(format!(
                "{} had an unreadable time; the previous event's time was used.",
                plural(self.bad_times as u64, "event", "events")
            ));
        }
        let in_flight = r
            .in_flight_step
            .as_deref()
            .map(|s| format!(" while step `{s}` was running"))
            .unwrap_or_default();
        if r.outcome == Outcome::Incomplete && !read.truncated {
            r.notes.push(
                "The journal has no `run_finished` event: the run crashed, was killed, or is \
                 still running."
                    .into(),
            );
        }
        r.outcome_text = outcome_text(r);
        let kind = match r.run.mode.as_str() {
            "training" => "Training run: ",
            "drill" => "Drill: ",
            _ => "",
        };
        r.title = match &r.run.reason {
            Some(reason) => format!("{kind}{} — {}", r.runbook.title, one_line(reason, 120)),
            None => format!("{kind}{}", r.runbook.title),
        };
        if !kind.is_empty() {
            r.notes.push(format!(
                "This was a {} against a simulated world: nothing real was changed.",
                if r.run.mode == "drill" {
                    "drill"
                } else {
                    "training run"
                }
            ));
        }
        if r.run.virtual_time {
            r.notes.push(
                "Times are virtual (a drill, or training with `--fast`): waits took no real time, and the durations are those of the simulation."
                    .into(),
            );
        }
        let (kind, status, text) = match r.outcome {
            Outcome::Succeeded => (
                "resolution",
                "ok",
                format!("Resolution: the run {}", r.outcome_text),
            ),
            Outcome::Incomplete => (
                "journal",
                "fail",
                format!("Journal ends: the run did not finish{in_flight}"),
            ),
            _ => (
                "resolution",
                "fail",
                format!("End: the run {}", r.outcome_text),
            ),
        };
        self.line(end, kind, status, None, text);
        self.r.times.time_to_verified_ms = self
            .r
            .steps
            .iter()
            .filter(|s| s.phase == "main")
            .filter_map(|s| {
                let v = s.verification.as_ref().filter(|v| v.ok)?;
                let start = self.first_attempt.get(&s.id)?;
                Some((*start - self.t0).num_milliseconds().max(0) as u64 + v.duration_ms)
            })
            .max();
        // Events are stamped in order, but verification lines are written when their step
        // ends; a stable sort puts them back where they happened.
        self.r.timeline.sort_by_key(|e| e.at.offset_ms);
    }
}

fn outcome_text(r: &Report) -> String {
    let at = r
        .failed_step
        .as_deref()
        .map(|s| format!(" at `{s}`"))
        .unwrap_or_default();
    let why = r
        .message
        .as_deref()
        .map(|m| format!(": {}", one_line(m, 200)))
        .unwrap_or_default();
    match r.outcome {
        Outcome::Succeeded => format!("succeeded in {}", r.times.duration),
        Outcome::Incomplete => format!(
            "incomplete: the journal ends{}",
            r.in_flight_step
                .as_deref()
                .map(|s| format!(" while `{s}` was in flight"))
                .unwrap_or_default()
        ),
        o => format!("{}{at} after {}{why}", o.as_str(), r.times.duration),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal from JSON lines, each given the envelope fields (`seq`, `ts` 1s apart).
    fn journal(events: &[serde_json::Value]) -> Read {
        let mut text = String::new();
        for (i, e) in events.iter().enumerate() {
            let mut e = e.clone();
            e["v"] = 1.into();
            e["seq"] = (i + 1).into();
            e["run_id"] = "r1".into();
            if e.get("ts").is_none() {
                e["ts"] = format!("2026-01-02T03:04:{:02}.000Z", i).into();
            }
            text.push_str(&e.to_string());
            text.push('\n');
        }
        crate::exec::journal::parse(text.as_bytes())
    }

    #[test]
    fn calls_skips_resumes_and_unanswered_gates() {
        use serde_json::json;
        let read = journal(&[
            json!({"event": "run_started", "runbook": {"path": "rb.yaml", "name": "rb", "title": "RB",
                   "sha256": "ab", "steps": ["deploy", "check", "approve"]},
                   "inputs": {"env": "prod"}, "operator": "ann", "host": "h", "engine_version": "0",
                   "mode": "drill"}),
            json!({"event": "step_started", "step": "deploy", "title": "Deploy", "action": "call",
                   "safety": "reversible", "phase": "main", "rendered": {"runbook": "child.yaml"}}),
            json!({"event": "step_started", "step": "deploy/push", "title": "Push", "action": "shell",
                   "safety": "reversible", "phase": "main", "rendered": {"argv": ["push"]}}),
            json!({"event": "world_changed", "step": "deploy/push", "diff": {"image": "v2"}}),
            json!({"event": "step_finished", "step": "deploy/push", "outcome": "succeeded",
                   "phase": "main", "duration_ms": 5, "attempts": 1}),
            json!({"event": "step_finished", "step": "deploy", "outcome": "succeeded",
                   "phase": "main", "duration_ms": 9, "attempts": 1}),
            json!({"event": "step_skipped", "step": "check", "reason": "`inputs.env == 'dev'` is false",
                   "phase": "main", "ts": "not a time"}),
            json!({"event": "run_resumed", "operator": "bo", "forced": false}),
            json!({"event": "step_started", "step": "approve", "title": "Approve", "action": "confirm",
                   "safety": "read-only", "phase": "main", "rendered": {"prompt": "Go?"}}),
            json!({"event": "gate_asked", "step": "approve", "gate": "confirm", "prompt": "Go?"}),
            json!({"event": "step_finished", "step": "approve", "outcome": "needs-answer", "phase": "main",
                   "duration_ms": 0, "attempts": 0, "error": "needs an answer: --answer approve=yes"}),
            json!({"event": "run_finished", "outcome": "needs-answer", "duration_ms": 10, "exit_code": 4,
                   "failed_step": "approve"}),
        ]);
        let r = build(&read, "j", Zone::Utc).unwrap();
        let ids: Vec<&str> = r.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["deploy", "deploy/push", "check", "approve"]);
        assert_eq!(r.outcome, Outcome::NeedsAnswer);
        assert_eq!(r.step("check").unwrap().state, StepState::Skipped);
        assert_eq!(r.step("deploy/push").unwrap().world, [r#"{"image":"v2"}"#]);
        assert_eq!(r.run.resumed[0].operator, "bo");
        assert_eq!(r.run.inputs[0].value, "prod");
        assert!(r
            .notes
            .iter()
            .any(|n| n.contains("1 event had an unreadable time")));
        assert!(r
            .went_wrong
            .items
            .iter()
            .any(|i| i.starts_with("The confirm gate of `approve` had no answer in a drill run")));
        assert!(r
            .action_items
            .items
            .iter()
            .any(|i| i.contains("`--answer approve=...`")));
        assert!(r.timeline.iter().any(|e| e.text == "Run resumed by bo"));
    }

    #[test]
    fn an_undo_shows_its_journaled_class_or_what_the_journal_tells() {
        use serde_json::json;
        let undo = |step: &str, action: &str| {
            json!({"event": "undo_started", "step": step, "title": format!("undo: {action}"),
                   "action": action, "rendered": {}})
        };
        let mut recorded = undo("scale", "kubernetes.scale");
        recorded["safety"] = "terminal".into();
        let read = journal(&[
            json!({"event": "run_started", "runbook": {"path": "rb.yaml", "name": "rb", "title": "RB",
                   "sha256": "ab", "steps": []}, "inputs": {}, "operator": "ann", "host": "h",
                   "engine_version": "0", "mode": "non-interactive"}),
            recorded,
            // Journals from before the class was recorded.
            undo("del", "kubernetes.delete"),
            undo("down", "compose.down"),
            undo("up", "compose.up"),
            undo("sh", "shell"),
            json!({"event": "gate_asked", "step": "sh.undo", "gate": "terminal", "prompt": "Run it?"}),
            json!({"event": "run_resumed", "operator": "bo", "forced": false}),
            json!({"event": "gate_asked", "step": "sh.undo", "gate": "resume", "prompt": "Again?"}),
            undo("sh", "shell"),
            undo("web", "http"),
        ]);
        let r = build(&read, "j", Zone::Utc).unwrap();
        let class = |id: &str| r.step(id).unwrap().safety.as_str();
        // Recorded: as journaled, even above the verb's own class.
        assert_eq!(class("scale.undo"), "terminal");
        // A verb whose own class is terminal: no declaration lowers it.
        assert_eq!(class("del.undo"), "terminal");
        assert_eq!(class("down.undo"), "terminal");
        // A lower verb class may have been raised by a declaration.
        assert_eq!(class("up.undo"), "unknown");
        // The terminal gate told it, before the resume too.
        assert_eq!(class("sh.undo"), "terminal");
        assert_eq!(class("web.undo"), "unknown");
    }

    #[test]
    fn nothing_to_report_is_an_error() {
        let read = crate::exec::journal::parse(b"not json\n");
        let e = build(&read, "x.jsonl", Zone::Utc).unwrap_err().to_string();
        assert!(
            e.starts_with("x.jsonl is not a runbook journal (line 1: "),
            "{e}"
        );
    }
}

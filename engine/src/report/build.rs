//! Folds journal events into the report model: steps with their attempts, gates, captures and
//! verifications, undo steps, and a timeline of what mattered. Nothing here reads anything
//! but the events.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::model::*;
use super::text::{self, duration, one_line, plural, Zone};
use super::ReportError;
use crate::exec::events::{AnswerVia, Check, Envelope, Event, Phase, RunOutcome, StepOutcome};
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
    let t0 = parse_ts(&first.ts).unwrap_or_default();
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

/// One verification poll, kept until the step ends and its summary can be written.
struct Poll {
    at: DateTime<Utc>,
    ok: bool,
    checks: Vec<Check>,
}

struct Builder {
    zone: Zone,
    t0: DateTime<Utc>,
    last: DateTime<Utc>,
    r: Report,
    /// step id -> index in `r.steps`.
    index: HashMap<String, usize>,
    polls: HashMap<String, Vec<Poll>>,
    first_attempt: HashMap<String, DateTime<Utc>>,
    bad_times: usize,
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Main => "main",
        Phase::Undo => "undo",
        Phase::OnFailure => "on-failure",
    }
}

fn via_name(v: AnswerVia) -> &'static str {
    match v {
        AnswerVia::Prompt => "prompt",
        AnswerVia::AnswerFlag => "--answer",
        AnswerVia::YesFlag => "--yes",
        AnswerVia::Drill => "drill",
    }
}

fn state_of(o: StepOutcome) -> StepState {
    match o {
        StepOutcome::Succeeded => StepState::Succeeded,
        StepOutcome::Failed => StepState::Failed,
        StepOutcome::Skipped => StepState::Skipped,
        StepOutcome::Aborted => StepState::Aborted,
        StepOutcome::NeedsAnswer => StepState::NeedsAnswer,
    }
}

fn new_step(id: &str, phase: &str) -> StepReport {
    StepReport {
        id: id.to_string(),
        title: id.to_string(),
        phase: phase.to_string(),
        action: String::new(),
        safety: String::new(),
        state: StepState::NotRun,
        started: None,
        ended: None,
        duration_ms: None,
        duration: String::new(),
        attempts: vec![],
        retries: 0,
        error: None,
        note: None,
        skip_reason: None,
        summary: String::new(),
        rendered: String::new(),
        rendered_lang: String::new(),
        gates: vec![],
        captures: vec![],
        verification: None,
        world: vec![],
        output: None,
    }
}

fn observed_text(obs: &Map<String, Value>) -> String {
    obs.iter()
        .map(|(k, v)| format!("{k} = {}", value_text(v, 60)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Builder {
    fn stamp(&self, t: DateTime<Utc>) -> Stamp {
        self.zone.stamp(t, self.t0)
    }

    fn line(
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
    fn step_mut(&mut self, id: &str, phase: &str) -> &mut StepReport {
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
            } => {
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
                self.r.run.mode = mode.clone();
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
                operator,
                forced,
                sha256: _,
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
            Event::StepStarted {
                step,
                title,
                action,
                safety,
                phase,
                rendered,
            } => {
                let at = self.stamp(t);
                let s = self.step_mut(step, phase_name(*phase));
                s.title = title.clone();
                s.phase = phase_name(*phase).into();
                s.action = action.clone();
                s.safety = safety.clone();
                s.state = StepState::InFlight;
                s.summary = text::action_summary(action, rendered);
                (s.rendered, s.rendered_lang) = pretty(rendered);
                // A step started again after a resume keeps its first start.
                s.started.get_or_insert(at);
                s.ended = None;
                let summary = if s.summary.is_empty() || s.summary == *title {
                    String::new()
                } else {
                    format!(": {}", tick(&one_line(&s.summary, 100)))
                };
                let phase = match phase {
                    Phase::OnFailure => " (on_failure)",
                    _ => "",
                };
                let title = if title == step {
                    String::new()
                } else {
                    format!(" — {title}")
                };
                let text =
                    format!("Step `{step}` started{phase}{title} ({action}, {safety}){summary}");
                self.line(t, "step", "info", Some(step), text);
            }
            Event::StepSkipped {
                step,
                reason,
                phase,
            } => {
                let at = self.stamp(t);
                let s = self.step_mut(step, phase_name(*phase));
                s.state = StepState::Skipped;
                s.skip_reason = Some(reason.clone());
                s.ended = Some(at);
                let text = format!("Step `{step}` skipped: {}", one_line(reason, 200));
                self.line(t, "step", "info", Some(step), text);
            }
            Event::GateAsked { step, gate, prompt } => {
                let asked = self.stamp(t);
                let s = self.step_mut(step, "main");
                s.gates.push(Gate {
                    kind: gate.clone(),
                    prompt: prompt.clone(),
                    asked,
                    answer: None,
                    by: None,
                    via: None,
                    note: None,
                    answered: None,
                });
            }
            Event::GateAnswered {
                step,
                gate,
                answer,
                by,
                via,
                note,
            } => {
                let answered = self.stamp(t);
                let s = self.step_mut(step, "main");
                let waited = match s.gates.last_mut() {
                    Some(g) if g.answer.is_none() => {
                        g.answer = Some(answer.clone());
                        g.by = Some(by.clone());
                        g.via = Some(via_name(*via).into());
                        g.note = note.clone();
                        let w = (answered.offset_ms - g.asked.offset_ms).max(0) as u64;
                        g.answered = Some(answered);
                        w
                    }
                    _ => 0,
                };
                let note = note
                    .as_deref()
                    .map(|n| format!(" — note: “{}”", one_line(n, 300)))
                    .unwrap_or_default();
                let waited = if waited >= 1000 {
                    format!(", after {}", duration(waited))
                } else {
                    String::new()
                };
                let status = match answer.as_str() {
                    "no" | "abort" | "failed" => "fail",
                    "skip" | "skipped" => "warn",
                    _ => "ok",
                };
                let text = format!(
                    "Gate `{step}` ({gate}): {by} answered `{}` via {}{waited}{note}",
                    one_line(answer, 80),
                    via_name(*via)
                );
                self.line(t, "gate", status, Some(step), text);
            }
            Event::AttemptStarted { step, attempt, of } => {
                self.first_attempt.entry(step.clone()).or_insert(t);
                let s = self.step_mut(step, "main");
                s.attempts.push(Attempt {
                    n: *attempt,
                    of: *of,
                    ok: None,
                    error: None,
                    duration_ms: None,
                    polls: None,
                });
            }
            Event::AttemptFinished {
                step,
                attempt,
                ok,
                error,
                duration_ms,
                polls,
                result,
            } => {
                let s = self.step_mut(step, "main");
                let of = match s.attempts.iter_mut().rev().find(|a| a.n == *attempt) {
                    Some(a) => {
                        a.ok = Some(*ok);
                        a.error = error.clone();
                        a.duration_ms = Some(*duration_ms);
                        a.polls = Some(*polls);
                        a.of
                    }
                    None => 1,
                };
                if let Some(tail) = text::output_tail(result) {
                    s.output = Some(tail);
                }
                if !*ok && *attempt < of {
                    let err = error
                        .as_deref()
                        .map(|e| format!(": {}", one_line(e, 200)))
                        .unwrap_or_default();
                    let text =
                        format!("Step `{step}` attempt {attempt} of {of} failed{err}; retrying");
                    self.line(t, "retry", "warn", Some(step), text);
                }
            }
            Event::VerifyEvaluated {
                step, ok, checks, ..
            } => {
                self.polls.entry(step.clone()).or_default().push(Poll {
                    at: t,
                    ok: *ok,
                    checks: checks.clone(),
                });
            }
            Event::Capture { step, name, value } => {
                let s = self.step_mut(step, "main");
                s.captures.push(NameValue {
                    name: name.clone(),
                    value: value_text(value, 300),
                    raw: value.clone(),
                });
            }
            Event::WorldChanged { step, diff } => {
                let d = one_line(&diff.to_string(), 200);
                self.step_mut(step, "main").world.push(d.clone());
                self.line(
                    t,
                    "world",
                    "info",
                    Some(step),
                    format!("`{step}` changed the world: `{d}`"),
                );
            }
            Event::StepFinished {
                step,
                outcome,
                phase,
                duration_ms,
                attempts,
                error,
                note,
            } => {
                self.close_verification(step, true);
                let at = self.stamp(t);
                let s = self.step_mut(step, phase_name(*phase));
                s.state = state_of(*outcome);
                s.ended = Some(at);
                s.duration_ms = Some(*duration_ms);
                s.duration = duration(*duration_ms);
                s.retries = attempts.saturating_sub(1);
                s.error = error.clone();
                s.note = note.clone();
                let tries = if *attempts > 1 {
                    format!(
                        " after {}",
                        plural(u64::from(*attempts), "attempt", "attempts")
                    )
                } else {
                    String::new()
                };
                let why = error
                    .as_deref()
                    .map(|e| format!(": {}", one_line(e, 200)))
                    .unwrap_or_default();
                // A manual step's note was already shown with the answer that gave it.
                let note = note
                    .as_deref()
                    .filter(|n| !s.gates.iter().any(|g| g.note.as_deref() == Some(n)))
                    .map(|n| format!(" — note: “{}”", one_line(n, 300)))
                    .unwrap_or_default();
                let (verb, status) = match outcome {
                    StepOutcome::Succeeded => ("succeeded", "ok"),
                    StepOutcome::Failed => ("failed", "fail"),
                    StepOutcome::Skipped => ("was skipped", "warn"),
                    StepOutcome::Aborted => ("was aborted", "fail"),
                    StepOutcome::NeedsAnswer => ("stopped: needs an answer", "fail"),
                };
                let text = format!(
                    "Step `{step}` {verb} in {}{tries}{why}{note}",
                    duration(*duration_ms)
                );
                self.line(t, "step", status, Some(step), text);
            }
            Event::UndoStarted {
                step,
                title,
                rendered,
            } => {
                let id = format!("{step}.undo");
                let at = self.stamp(t);
                let s = self.step_mut(&id, "undo");
                s.title = title.clone();
                s.phase = "undo".into();
                s.action = action_of(title, rendered);
                s.safety = "reversible".into();
                s.state = StepState::InFlight;
                s.summary = text::action_summary(&s.action, rendered);
                (s.rendered, s.rendered_lang) = pretty(rendered);
                s.started.get_or_insert(at);
                let text = format!("Undo of `{step}` started — {title}");
                self.line(t, "undo", "info", Some(&id), text);
            }
            Event::UndoFinished {
                step,
                ok,
                error,
                duration_ms,
            } => {
                let id = format!("{step}.undo");
                self.close_verification(&id, true);
                let at = self.stamp(t);
                let s = self.step_mut(&id, "undo");
                s.state = if *ok {
                    StepState::Succeeded
                } else {
                    StepState::Failed
                };
                s.ended = Some(at);
                s.duration_ms = Some(*duration_ms);
                s.duration = duration(*duration_ms);
                s.retries = (s.attempts.len() as u32).saturating_sub(1);
                s.error = error.clone();
                let text = if *ok {
                    format!("Undo of `{step}` succeeded in {}", duration(*duration_ms))
                } else {
                    let e = error
                        .as_deref()
                        .map(|e| one_line(e, 200))
                        .unwrap_or_default();
                    format!("Undo of `{step}` FAILED: {e}")
                };
                self.line(t, "undo", if *ok { "ok" } else { "fail" }, Some(&id), text);
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
            }
        }
    }

    /// Writes the verification summary of a step from its polls, and its timeline line.
    /// `ended` is false when the journal stops while the step is still polling.
    fn close_verification(&mut self, id: &str, ended: bool) {
        let Some(polls) = self.polls.remove(id) else {
            return;
        };
        let Some(last) = polls.last() else { return };
        let start = self.first_attempt.get(id).copied().unwrap_or(polls[0].at);
        let spent = (last.at - start).num_milliseconds().max(0) as u64;
        let ok = last.ok;
        let n = polls.len() as u32;
        let chain = value_chains(&polls);
        let count = plural(u64::from(n), "poll", "polls");
        let summary = if ok {
            format!("{chain} after {count}, {}", duration(spent))
        } else if ended {
            format!("{chain} — still failing after {count}, {}", duration(spent))
        } else {
            format!(
                "{chain} so far ({count}, {}); the journal ends here",
                duration(spent)
            )
        };
        let checks = last
            .checks
            .iter()
            .map(|c| CheckLine {
                that: c.that.clone(),
                ok: c.ok,
                message: c.message.clone(),
                observed: observed_text(&c.observed),
                error: c.error.clone(),
            })
            .collect();
        let at = last.at;
        self.step_mut(id, "main").verification = Some(Verification {
            ok,
            polls: n,
            duration_ms: spent,
            summary: summary.clone(),
            checks,
        });
        let (verb, status) = match (ok, ended) {
            (true, _) => ("verified", "ok"),
            (false, true) => ("verification failed", "fail"),
            (false, false) => ("verification unfinished", "warn"),
        };
        self.line(
            at,
            "verify",
            status,
            Some(id),
            format!("`{id}` {verb}: {summary}"),
        );
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
        r.title = match &r.run.reason {
            Some(reason) => format!("{} — {}", r.runbook.title, one_line(reason, 120)),
            None => r.runbook.title.clone(),
        };
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

/// `result.status 503 → 503 → 200`: each observed value across the polls, in order.
fn value_chains(polls: &[Poll]) -> String {
    let mut keys: Vec<String> = vec![];
    for p in polls {
        for c in &p.checks {
            for k in c.observed.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    if keys.is_empty() {
        // Nothing observed (a constant expression): say which conditions held each time.
        let marks: Vec<&str> = polls
            .iter()
            .map(|p| if p.ok { "held" } else { "false" })
            .collect();
        let thats: Vec<String> = polls
            .last()
            .map(|p| p.checks.iter().map(|c| format!("`{}`", c.that)).collect())
            .unwrap_or_default();
        return format!("{} {}", thats.join(", "), chain(&marks));
    }
    keys.iter()
        .map(|k| {
            let vals: Vec<String> = polls
                .iter()
                .filter_map(|p| {
                    p.checks
                        .iter()
                        .find_map(|c| c.observed.get(k))
                        .map(|v| value_text(v, 40))
                })
                .collect();
            let vals: Vec<&str> = vals.iter().map(String::as_str).collect();
            format!("{k} {}", chain(&vals))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `a → b → c`, with the middle of long chains elided.
fn chain(vals: &[&str]) -> String {
    const EDGE: usize = 3;
    if vals.len() <= 2 * EDGE + 1 {
        return vals.join(" → ");
    }
    format!(
        "{} → … → {}",
        vals[..EDGE].join(" → "),
        vals[vals.len() - EDGE..].join(" → ")
    )
}

/// A code span for the timeline's short Markdown; a backtick inside would end it early.
fn tick(s: &str) -> String {
    format!("`{}`", s.replace('`', "'"))
}

/// The rendered action for the appendix, and its language: a shell script reads best as the
/// script itself (its other settings are rare), everything else as JSON.
fn pretty(v: &Value) -> (String, String) {
    match v {
        Value::Null => (String::new(), String::new()),
        Value::Object(m) if m.len() == 1 && m.get("script").is_some_and(Value::is_string) => {
            let script = m["script"].as_str().unwrap_or_default();
            (script.trim_end().to_string(), "sh".into())
        }
        other => (
            serde_json::to_string_pretty(other).unwrap_or_default(),
            "json".into(),
        ),
    }
}

/// `undo_started` carries no action kind: an untitled undo is called `undo: <kind>`, and
/// otherwise the rendered body's keys tell the common kinds apart.
fn action_of(title: &str, rendered: &Value) -> String {
    if let Some(kind) = title.strip_prefix("undo: ") {
        return kind.to_string();
    }
    match rendered.as_object() {
        Some(m) if m.contains_key("argv") || m.contains_key("script") => "shell".into(),
        Some(m) if m.contains_key("request") => "http".into(),
        Some(m) if m.contains_key("instructions") => "manual".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_chains_keep_both_ends() {
        let v: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        assert_eq!(chain(&v), "1 → 2 → 3 → … → 8 → 9 → 10");
        assert_eq!(chain(&["503", "200"]), "503 → 200");
    }
}

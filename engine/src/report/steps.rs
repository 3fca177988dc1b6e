//! The step events of a journal, folded into the report's steps: start, gates, attempts,
//! captures, world changes, the end, and undo. Each leaves a line on the timeline when it
//! matters to a reader.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::build::Builder;
use super::model::*;
use super::text::{self, duration, one_line, plural};
use super::verify::Poll;
use crate::exec::events::{
    AnswerVia, Event, Gate as JournalGate, Phase, Safety, SkipCause, StepOutcome,
};
use crate::model::verb_safety;

/// The safety class of an undo that the journal does not tell.
const UNKNOWN: &str = "unknown";

impl Builder {
    pub(super) fn step_event(&mut self, t: DateTime<Utc>, event: &Event) {
        match event {
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
                s.safety = safety.as_str().into();
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
                title,
                reason,
                phase,
                cause,
            } => {
                let at = self.stamp(t);
                let s = self.step_mut(step, phase_name(*phase));
                if !title.is_empty() {
                    s.title = title.clone();
                }
                s.state = StepState::Skipped;
                s.skip_reason = Some(reason.clone());
                // Journals written before `cause` was recorded: a guard's reason reads
                // "`<when>` is false".
                s.skipped_by_design = match cause {
                    Some(c) => *c == SkipCause::Guard,
                    None => reason.starts_with('`') && reason.contains("` is false"),
                };
                s.ended = Some(at);
                let text = format!("Step `{step}` skipped: {}", one_line(reason, 200));
                self.line(t, "step", "info", Some(step), text);
            }
            Event::GateAsked { step, gate, prompt } => {
                let asked = self.stamp(t);
                let s = self.step_mut(step, "main");
                // The runner asks the terminal gate of an undo only when its class is terminal:
                // that tells the class of an undo journaled before `undo_started` recorded it.
                if *gate == JournalGate::Terminal && s.phase == "undo" && s.safety == UNKNOWN {
                    s.safety = Safety::Terminal.as_str().into();
                }
                s.gates.push(Gate {
                    kind: gate.to_string(),
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
                ..
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
            Event::AnalysisCheck {
                step,
                check,
                verdict,
                metrics,
                failed,
            } => {
                let at = self.stamp(t).clock;
                let s = self.step_mut(step, "main");
                let table = s.analysis.get_or_insert_with(AnalysisTable::default);
                if table.metrics.is_empty() {
                    for m in metrics {
                        let mut b = vec![];
                        if let Some(x) = m.min {
                            b.push(format!("min {x}"));
                        }
                        if let Some(x) = m.max {
                            b.push(format!("max {x}"));
                        }
                        table.metrics.push(format!("{} ({})", m.name, b.join(", ")));
                        table.bounds.push((m.min, m.max));
                    }
                }
                table.rows.push(AnalysisRow {
                    check: *check,
                    at,
                    verdict: verdict.as_str().to_string(),
                    values: metrics
                        .iter()
                        .map(|m| match (m.value, &m.text) {
                            (Some(v), _) => crate::backends::prometheus::value_text(v),
                            (None, Some(t)) => t.clone(),
                            (None, None) => "no value".into(),
                        })
                        .collect(),
                    numbers: metrics.iter().map(|m| m.value).collect(),
                    failed: *failed,
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
                action,
                safety,
                rendered,
            } => {
                let id = format!("{step}.undo");
                let at = self.stamp(t);
                let s = self.step_mut(&id, "undo");
                s.title = title.clone();
                s.phase = "undo".into();
                s.action = if action.is_empty() {
                    // Journals written before `undo_started` recorded the action.
                    action_of(title, rendered)
                } else {
                    action.clone()
                };
                match safety {
                    Some(c) => s.safety = c.as_str().into(),
                    // Journals written before `undo_started` recorded the class (a resumed
                    // undo keeps what its terminal gate told before the interruption).
                    None if s.safety == Safety::Terminal.as_str() => {}
                    None => s.safety = unrecorded_undo_safety(&s.action).into(),
                }
                s.state = StepState::InFlight;
                s.summary = text::action_summary(&s.action, rendered);
                (s.rendered, s.rendered_lang) = pretty(rendered);
                s.started.get_or_insert(at);
                let class = match safety {
                    Some(c) => format!(" ({}, {c})", s.action),
                    None => String::new(),
                };
                let text = format!("Undo of `{step}` started — {title}{class}");
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
            _ => {}
        }
    }
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

pub(super) fn new_step(id: &str, phase: &str) -> StepReport {
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
        skipped_by_design: false,
        summary: String::new(),
        rendered: String::new(),
        rendered_lang: String::new(),
        gates: vec![],
        captures: vec![],
        verification: None,
        analysis: None,
        world: vec![],
        output: None,
    }
}

pub(super) fn observed_text(obs: &Map<String, Value>) -> String {
    obs.iter()
        .map(|(k, v)| format!("{k} = {}", value_text(v, 60)))
        .collect::<Vec<_>>()
        .join(", ")
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

/// The class of an undo journaled without it, from its action the way `check` gives it: a
/// Kubernetes or Compose verb that is terminal is terminal whatever was declared (a declaration
/// never lowers a verb's class); any other class may have been raised (or, for shell and HTTP,
/// lowered) by the runbook, which the journal does not hold: unknown, never a guess.
fn unrecorded_undo_safety(action: &str) -> &'static str {
    match verb_safety(action) {
        Some(Safety::Terminal) => Safety::Terminal.as_str(),
        _ => UNKNOWN,
    }
}

/// Journals written before `undo_started` recorded the action kind: an untitled undo is called `undo: <kind>`, and
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

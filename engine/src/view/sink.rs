//! The view as an event sink: one terminal line (or spinner) per journal event.

use std::time::{Duration, Instant};

use super::format::{describe, reflow, result_lines, short, spaced};
use super::{spinner, Row, Running, Style, TerminalView};
use crate::exec::emitter::EventSink;
use crate::exec::events::{Envelope, Event, StepOutcome};
use crate::model::fmt_duration;

pub(super) fn mark(outcome: StepOutcome) -> &'static str {
    match outcome {
        StepOutcome::Succeeded => "✔",
        StepOutcome::Failed => "✘",
        StepOutcome::Skipped => "↷",
        StepOutcome::Aborted => "■",
        StepOutcome::NeedsAnswer => "?",
    }
}

impl EventSink for TerminalView {
    fn event(&mut self, e: &Envelope) {
        self.with(|i| {
            let ts = e.ts.clone();
            match &e.event {
                Event::RunStarted {
                    runbook,
                    operator,
                    reason,
                    mode,
                    ..
                } => {
                    let sev = runbook
                        .severity
                        .clone()
                        .map(|s| format!(" [{s}]"))
                        .unwrap_or_default();
                    i.log(
                        &ts,
                        &format!("runbook {}{sev}: {}", runbook.name, runbook.title),
                    );
                    i.log(&ts, &format!("run {} by {operator} ({mode})", e.run_id));
                    if let Some(r) = reason {
                        i.log(&ts, &format!("reason: {r}"));
                    }
                    if i.style == Style::Rich {
                        if let Some(d) = &runbook.description {
                            i.println("");
                            for l in reflow(d.trim()) {
                                i.println(&format!("  {l}"));
                            }
                            i.println("");
                        }
                    }
                }
                Event::RunResumed {
                    operator, forced, ..
                } => {
                    i.log(
                        &ts,
                        &format!(
                            "resuming run {} as {operator}{}",
                            e.run_id,
                            if *forced {
                                " (forced: the runbook changed)"
                            } else {
                                ""
                            }
                        ),
                    );
                }
                Event::Precondition {
                    that, ok, message, ..
                } => {
                    if !ok {
                        i.log(
                            &ts,
                            &format!(
                                "✘ precondition `{that}` is false{}",
                                message
                                    .as_ref()
                                    .map(|m| format!(": {m}"))
                                    .unwrap_or_default()
                            ),
                        );
                    } else if i.style == Style::Plain {
                        i.log(&ts, &format!("✔ precondition `{that}`"));
                    }
                }
                Event::StepStarted {
                    step,
                    title,
                    action,
                    safety,
                    rendered,
                    phase,
                } => {
                    let nested = step.contains('/');
                    if !nested {
                        i.index = i.numbers.get(step).copied().unwrap_or(i.index + 1);
                    }
                    i.titles.insert(step.clone(), title.clone());
                    let pos = if nested {
                        format!("↳ {step}: ")
                    } else if *phase == crate::exec::events::Phase::Main {
                        format!("[{}/{}] ", i.index.min(i.total.max(1)), i.total)
                    } else {
                        format!("[{phase:?}] ").to_lowercase()
                    };
                    i.log(&ts, &format!("▶ {pos}{title} ({action}, {safety})"));
                    let detail = describe(rendered);
                    if !detail.is_empty() {
                        i.log(&ts, &format!("    {detail}"));
                    }
                    i.stop_bar();
                    let key = step.rsplit('/').next().unwrap_or(step).to_string();
                    let budget = i.budgets.get(&key).copied();
                    let bar = (i.style == Style::Rich).then(spinner);
                    i.running = Some(Running {
                        bar,
                        title: title.clone(),
                        started: Instant::now(),
                        attempt: 1,
                        of: 1,
                        budget,
                        paused: false,
                        status: String::new(),
                        safety: safety.as_str().to_string(),
                        result: None,
                        polls: 0,
                    });
                    i.refresh();
                }
                Event::StepSkipped {
                    step,
                    title,
                    reason,
                    ..
                } => {
                    if !step.contains('/') {
                        i.index = i.numbers.get(step).copied().unwrap_or(i.index + 1);
                    }
                    i.log(&ts, &format!("↷ {step} skipped: {reason}"));
                    i.rows.replace(Row {
                        step: step.clone(),
                        title: title.clone(),
                        outcome: "skipped".into(),
                        duration_ms: 0,
                        attempts: 0,
                    });
                }
                Event::GateAsked { step, gate, prompt } => {
                    if i.style != Style::Rich {
                        i.log(
                            &ts,
                            &format!(
                                "? {step} ({gate}): {}",
                                prompt.trim().lines().next().unwrap_or("")
                            ),
                        );
                    }
                    // Clear the spinner while a prompt owns the terminal: a hidden one would
                    // leave its last frame, frozen, above the question.
                    if let Some(r) = i.running.as_mut() {
                        r.paused = true;
                        if let Some(b) = r.bar.take() {
                            b.finish_and_clear();
                        }
                    }
                }
                Event::GateAnswered {
                    step,
                    answer,
                    by,
                    via,
                    note,
                    ..
                } => {
                    let via = serde_json::to_value(via)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    i.log(
                        &ts,
                        &format!(
                            "  {step}: {answer} (by {by} via {via}){}",
                            note.as_ref().map(|n| format!(" — {n}")).unwrap_or_default()
                        ),
                    );
                    let rich = i.style == Style::Rich;
                    if let Some(r) = i.running.as_mut() {
                        r.paused = false;
                        if rich && r.bar.is_none() {
                            r.bar = Some(spinner());
                        }
                    }
                }
                Event::AttemptStarted { attempt, of, step } => {
                    if let Some(r) = i.running.as_mut() {
                        r.attempt = *attempt;
                        r.of = *of;
                    }
                    if *attempt > 1 {
                        i.log(&ts, &format!("  {step}: attempt {attempt} of {of}"));
                    }
                    i.refresh();
                }
                Event::AttemptFinished {
                    step,
                    ok,
                    error,
                    attempt,
                    result,
                    polls,
                    ..
                } => {
                    if let Some(r) = i.running.as_mut() {
                        r.polls += polls;
                        if *ok {
                            r.result = Some(result.clone());
                        }
                    }
                    if !ok {
                        if let Some(err) = error {
                            i.log(&ts, &format!("  {step}: attempt {attempt} failed: {err}"));
                        }
                    }
                }
                Event::VerifyEvaluated {
                    step,
                    ok,
                    checks,
                    poll,
                    polling,
                    ..
                } => {
                    if !ok {
                        let failing: Vec<String> = checks
                            .iter()
                            .filter(|c| !c.ok)
                            .map(|c| {
                                // The author's message (rendered: it can name what was read,
                                // e.g. a controller's reason) says why; the values read show
                                // what was measured.
                                let label = c.message.as_deref().unwrap_or(&c.that);
                                let obs: Vec<String> = c
                                    .observed
                                    .iter()
                                    .map(|(k, v)| format!("{k}={}", spaced(v)))
                                    .collect();
                                let mut t = if obs.is_empty() {
                                    label.to_string()
                                } else {
                                    format!("{label} ({})", obs.join(", "))
                                };
                                if c.verdict() == crate::exec::verdict::Verdict::Inconclusive {
                                    t = format!(
                                        "no data for {t}: {}",
                                        c.reason.as_deref().unwrap_or("no value")
                                    );
                                }
                                t
                            })
                            .collect();
                        // Only a step that polls has polls to count.
                        let lead = if *polling {
                            format!("poll {poll}: not yet")
                        } else {
                            "verify".to_string()
                        };
                        i.log(&ts, &format!("  {step}: {lead}: {}", failing.join("; ")));
                    }
                }
                Event::AnalysisCheck {
                    step,
                    check,
                    verdict,
                    metrics,
                    failed,
                } => {
                    let vals: Vec<String> = metrics
                        .iter()
                        .map(|m| {
                            let v = m
                                .value
                                .map(crate::backends::prometheus::value_text)
                                .or(m.text.clone())
                                .unwrap_or_else(|| "no value".into());
                            format!("{}={v} {}", m.name, m.verdict.as_str())
                        })
                        .collect();
                    i.log(
                        &ts,
                        &format!(
                            "  {step}: check {check}: {} ({}); {failed} failed",
                            verdict.as_str(),
                            vals.join(", ")
                        ),
                    );
                }
                Event::Capture { step, name, value } => {
                    i.log(&ts, &format!("  {step}.{name} = {}", short(&spaced(value))));
                }
                // The journal's record for `resume`; nothing to show.
                Event::ProcessStarted { .. } => {}
                Event::WorldChanged { step, diff } => {
                    // Simulated worlds only (training): show what the step changed.
                    for (entity, fields) in diff.as_object().into_iter().flatten() {
                        for (field, change) in fields.as_object().into_iter().flatten() {
                            i.log(
                                &ts,
                                &format!(
                                    "  {step}: world: {entity} {field}: {} → {}",
                                    short(&spaced(&change["from"])),
                                    short(&spaced(&change["to"]))
                                ),
                            );
                        }
                    }
                }
                Event::StepFinished {
                    step,
                    outcome,
                    duration_ms,
                    attempts,
                    error,
                    note,
                    ..
                } => {
                    // Every execution counts (polls of every attempt); a step that executed
                    // nothing (a gate) keeps the runner's count.
                    let executions = i
                        .running
                        .as_ref()
                        .map(|r| r.polls)
                        .filter(|n| *n > 0)
                        .unwrap_or(*attempts);
                    // What a read-only step read: the operator ran it to see it.
                    let read = i
                        .running
                        .as_ref()
                        .filter(|r| r.safety == "read-only")
                        .filter(|_| *outcome == StepOutcome::Succeeded)
                        .and_then(|r| r.result.as_ref())
                        .map(result_lines)
                        .unwrap_or_default();
                    i.stop_bar();
                    let title = i.titles.get(step).cloned().unwrap_or_default();
                    let tail = match (error, note) {
                        (Some(e), _) => format!(": {e}"),
                        (None, Some(n)) => format!(" — {n}"),
                        _ => String::new(),
                    };
                    i.log(
                        &ts,
                        &format!(
                            "{} {step} {} in {}{tail}",
                            mark(*outcome),
                            outcome.as_str(),
                            fmt_duration(Duration::from_millis(*duration_ms))
                        ),
                    );
                    for l in read {
                        i.log(&ts, &format!("    {l}"));
                    }
                    i.rows.replace(Row {
                        step: step.clone(),
                        title,
                        outcome: outcome.as_str().into(),
                        duration_ms: *duration_ms,
                        attempts: executions,
                    });
                }
                Event::UndoStarted {
                    step,
                    title,
                    rendered,
                    ..
                } => {
                    i.log(&ts, &format!("↺ undo {step}: {title}"));
                    let d = describe(rendered);
                    if !d.is_empty() {
                        i.log(&ts, &format!("    {d}"));
                    }
                }
                Event::UndoFinished {
                    step, ok, error, ..
                } => {
                    i.log(
                        &ts,
                        &format!(
                            "  undo {step}: {}{}",
                            if *ok { "done" } else { "FAILED" },
                            error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                        ),
                    );
                    i.rows.push(Row {
                        step: format!("{step}.undo"),
                        title: "undo".into(),
                        outcome: if *ok {
                            "undone".into()
                        } else {
                            "undo-failed".into()
                        },
                        duration_ms: 0,
                        attempts: 1,
                    });
                }
                Event::RunFinished {
                    outcome,
                    duration_ms,
                    message,
                    failed_step,
                    ..
                } => {
                    i.stop_bar();
                    i.summary();
                    i.println("");
                    // A resumed run: the whole run's time, from its first start.
                    let whole = i.first_ts.as_deref().and_then(|first| {
                        let a = chrono::DateTime::parse_from_rfc3339(first).ok()?;
                        let b = chrono::DateTime::parse_from_rfc3339(&ts).ok()?;
                        let ms = (b - a).num_milliseconds().max(0) as u64;
                        Some(format!(
                            "{} since it first started, this session {}",
                            fmt_duration(Duration::from_secs(ms / 1000)),
                            fmt_duration(Duration::from_millis(*duration_ms))
                        ))
                    });
                    i.log(
                        &ts,
                        &format!(
                            "run {} {}{} in {}{}",
                            e.run_id,
                            outcome.as_str(),
                            failed_step
                                .as_ref()
                                .map(|s| format!(" at `{s}`"))
                                .unwrap_or_default(),
                            whole.unwrap_or_else(|| fmt_duration(Duration::from_millis(
                                *duration_ms
                            ))),
                            message
                                .as_ref()
                                .map(|m| format!(": {m}"))
                                .unwrap_or_default()
                        ),
                    );
                }
            }
        });
    }
}

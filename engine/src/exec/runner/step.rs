//! One step's lifecycle: `when`, resume, the gate, the action's attempts, captures, the outcome.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::exec::actions::{self, RenderedAction};
use crate::exec::clock::millis_between;
use crate::exec::context::{bound, observe, steps_read, steps_read_in};
use crate::exec::events::{Event, Phase, SkipCause, StepOutcome};
use crate::exec::gate::{Answer, Decision, GateKind, GateRequest, ManualReply, Reply};
use crate::exec::verdict::{self, Verdict};
use crate::model::{ActionKind, Step, Undo};
use crate::template;
use crate::template::namespace::StepField;

use super::attempts::evaluate;
use super::evidence::{checks_verdict, failed_checks_message, observed_text};
use super::{Frame, Runner, StepEnd, UndoEntry};

impl Runner {
    pub(super) fn push_undo(&mut self, sid: &str, undo: &Undo, frame: &Frame) {
        // The undo's context as it is now, holding only the steps the undo reads: a copy of
        // every step per undoable step would make long runs quadratic in time and memory.
        let only = steps_read_in([], [&undo.action.body]);
        self.undo_stack.push(UndoEntry {
            step: sid.to_string(),
            undo: undo.clone(),
            rb: frame.rb.clone(),
            ctx: frame.ctx.subset(only.as_ref()),
            backends_real: frame.backends_real.clone(),
        });
    }

    pub(super) fn step_failed(
        &mut self,
        sid: &str,
        phase: Phase,
        started: DateTime<Utc>,
        attempts: u32,
        msg: String,
    ) -> StepEnd {
        let msg = self.emitter.redactor().str(&msg);
        self.emit(Event::StepFinished {
            step: sid.to_string(),
            outcome: StepOutcome::Failed,
            phase,
            duration_ms: millis_between(started, self.clock.now()),
            attempts,
            error: Some(msg.clone()),
            note: None,
        });
        StepEnd::Failed(msg)
    }

    /// Ends a step that an answer decided (no action ran).
    pub(super) fn settle(
        &mut self,
        frame: &mut Frame,
        step: &Step,
        sid: &str,
        phase: Phase,
        started: DateTime<Utc>,
        outcome: StepOutcome,
        note: Option<String>,
        error: Option<String>,
    ) -> StepEnd {
        frame
            .ctx
            .set_step_field(&step.id, StepField::Outcome, json!(outcome.as_str()));
        self.step_done(sid, phase, started, 0, outcome, note, error.clone());
        match outcome {
            StepOutcome::Succeeded | StepOutcome::Skipped => StepEnd::Done,
            StepOutcome::Failed => StepEnd::Failed(error.unwrap_or_default()),
            StepOutcome::NeedsAnswer => StepEnd::NeedsAnswer(error.unwrap_or_default()),
            StepOutcome::Aborted => StepEnd::Aborted(format!("the operator declined `{sid}`")),
        }
    }

    pub(super) fn step_done(
        &mut self,
        sid: &str,
        phase: Phase,
        started: DateTime<Utc>,
        attempts: u32,
        outcome: StepOutcome,
        note: Option<String>,
        error: Option<String>,
    ) {
        self.emit(Event::StepFinished {
            step: sid.to_string(),
            outcome,
            phase,
            duration_ms: millis_between(started, self.clock.now()),
            attempts,
            error,
            note,
        });
    }

    pub(super) async fn run_step(
        &mut self,
        step: &Step,
        sid: &str,
        phase: Phase,
        frame: &mut Frame,
        pre_approved: bool,
    ) -> StepEnd {
        let rb = frame.rb.clone();
        // 0. A confirmation answered `skip` guards this step: it does not run.
        if let Some(confirm) = self.skipped_by.get(sid).cloned() {
            self.emit(Event::StepSkipped {
                step: sid.to_string(),
                title: step.title.clone(),
                reason: format!("`{confirm}` was answered skip: this change was not made"),
                phase,
                cause: Some(SkipCause::Answer),
            });
            frame
                .ctx
                .set_step_field(&step.id, StepField::Outcome, json!("skipped"));
            return StepEnd::Done;
        }
        // 1. Guard.
        if let Some(w) = &step.spec.when {
            // Only the steps the guard reads (see `steps_read`): keeps long runs linear.
            let only = steps_read([w.as_str()], []);
            let real = frame.ctx.real_reading(None, only.as_ref());
            let failed = match verdict::guard(w, &real) {
                verdict::Guard::Run => None,
                verdict::Guard::Skip => {
                    let obs = observe(w, &frame.ctx.display_reading(None, only.as_ref()));
                    let shown = if obs.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", observed_text(&obs))
                    };
                    self.emit(Event::StepSkipped {
                        step: sid.to_string(),
                        title: step.title.clone(),
                        reason: format!("`{w}` is false{shown}"),
                        phase,
                        cause: Some(SkipCause::Guard),
                    });
                    frame
                        .ctx
                        .set_step_field(&step.id, StepField::Outcome, json!("skipped"));
                    return StepEnd::Done;
                }
                // Neither running nor skipping is known to be right: fail closed.
                verdict::Guard::NoData(why) => Some(format!(
                    "guard `{w}` is inconclusive ({why}): the step was neither run nor skipped; \
                     say in the guard what no data means (`… is none or …`, `| default(…)`)"
                )),
                verdict::Guard::Error(e) => {
                    Some(format!("guard `{w}` could not be evaluated: {e}"))
                }
            };
            if let Some(msg) = failed {
                let now = self.clock.now();
                // Every step end has its start in the journal (resume checks it).
                self.emit(Event::StepStarted {
                    step: sid.to_string(),
                    title: step.title.clone(),
                    action: step.action.kind.label(),
                    safety: step.safety,
                    phase,
                    rendered: Value::Null,
                });
                return self.step_failed(sid, phase, now, 0, msg);
            }
        }
        // 2. Journal health: never change the world unjournaled.
        if step.is_mutating() {
            if let Some(why) = self.emitter.broken() {
                return StepEnd::Failed(format!("stopped before `{sid}`: {why}"));
            }
        }
        // 3. Render.
        let started = self.clock.now();
        // Building the context copies every earlier step's values: only do it when the
        // action has templates to render (a run of N plain steps stays linear in N).
        let (real_ctx, display_ctx) = if template::has_templates(&step.action.body) {
            let only = steps_read_in([], [&step.action.body]);
            (
                frame.ctx.real_reading(None, only.as_ref()),
                frame.ctx.display_reading(None, only.as_ref()),
            )
        } else {
            (Value::Null, Value::Null)
        };
        let rendered = match actions::render(&step.action, &real_ctx, &display_ctx) {
            Ok(r) => r,
            Err(e) => {
                self.emit(Event::StepStarted {
                    step: sid.to_string(),
                    title: step.title.clone(),
                    action: step.action.kind.label(),
                    safety: step.safety,
                    phase,
                    rendered: Value::Null,
                });
                return self.step_failed(
                    sid,
                    phase,
                    started,
                    0,
                    format!("rendering the action: {e}"),
                );
            }
        };
        // The context only serves to show an HTTP backend's base URL; backends are rendered
        // when their frame starts, before any step of it has values.
        let summary_ctx = if matches!(step.action.kind, ActionKind::Http(_)) {
            frame.ctx.display_reading(None, Some(&HashSet::new()))
        } else {
            Value::Null
        };
        let summary = actions::display_summary(&rb, &step.action, &rendered.display, &summary_ctx);
        self.emit(Event::StepStarted {
            step: sid.to_string(),
            title: step.title.clone(),
            action: step.action.kind.label(),
            safety: step.safety,
            phase,
            rendered: rendered.display.clone(),
        });

        // 4. Gate.
        if step.is_gate() && !pre_approved {
            let kind = match &step.action.kind {
                ActionKind::Confirm(_) => GateKind::Confirm,
                ActionKind::Manual(_) => GateKind::Manual,
                ActionKind::Input(_) => match &rendered.action {
                    RenderedAction::Input(ia) => {
                        GateKind::Input(Box::new(crate::inputs::input_action_spec(ia)))
                    }
                    RenderedAction::Invalid(e) => {
                        return self.step_failed(sid, phase, started, 0, e.message.clone())
                    }
                    _ => unreachable!("an input step renders to an input"),
                },
                _ => GateKind::Terminal,
            };
            let prompt = match &step.action.kind {
                ActionKind::Confirm(_) | ActionKind::Input(_) => rendered
                    .display
                    .get("prompt")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                ActionKind::Manual(_) => rendered
                    .display
                    .get("instructions")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                _ => format!(
                    "`{}` is terminal (it cannot be undone): {summary}. Run it?",
                    step.title
                ),
            };
            // What the gate guards, as it will be made: the confirmation's guarded steps, or
            // the terminal step itself.
            let guarded = match &step.action.kind {
                ActionKind::Confirm(_) => {
                    let mut out = vec![];
                    for g in rb.guarded_by(step) {
                        if let Some(d) = self.describe_change(g, frame).await {
                            out.push(d);
                        }
                    }
                    out
                }
                ActionKind::Manual(_) | ActionKind::Input(_) => vec![],
                _ => self
                    .describe_change(step, frame)
                    .await
                    .into_iter()
                    .collect(),
            };
            let req = GateRequest {
                step: sid.to_string(),
                title: step.title.clone(),
                kind: kind.clone(),
                prompt: prompt.clone(),
                safety: step.safety,
                action: summary.clone(),
                guarded,
            };
            let decision = match self.ask_gate(&req, kind.journaled()) {
                Ok(d) => d,
                Err(e) => {
                    let end = self.prompt_failed(&e);
                    let why = match end {
                        StepEnd::Interrupted => "interrupted at the prompt (Ctrl-C)".to_string(),
                        _ => format!("prompt failed: {e}"),
                    };
                    self.step_done(
                        sid,
                        phase,
                        started,
                        0,
                        StepOutcome::Aborted,
                        None,
                        Some(why),
                    );
                    return match end {
                        StepEnd::Interrupted => end,
                        _ => StepEnd::Aborted(format!("the prompt for `{sid}` failed: {e}")),
                    };
                }
            };
            let answer = match decision {
                Decision::Answered { answer, .. } => answer,
                Decision::NeedsAnswer { hint } => {
                    self.step_done(
                        sid,
                        phase,
                        started,
                        0,
                        StepOutcome::NeedsAnswer,
                        None,
                        Some(format!("needs an answer: {hint}")),
                    );
                    return StepEnd::NeedsAnswer(hint);
                }
                Decision::Invalid(msg) => {
                    self.step_done(
                        sid,
                        phase,
                        started,
                        0,
                        StepOutcome::NeedsAnswer,
                        None,
                        Some(msg.clone()),
                    );
                    return StepEnd::NeedsAnswer(msg);
                }
            };
            let abandon = matches!(answer, Answer::Reply(Reply::Abort));
            let declined = |r: Reply| {
                match r {
                Reply::Abort => format!(
                    "the operator answered abort at `{sid}`: the run stopped and undoes what it changed"
                ),
                _ => format!("the operator answered no at `{sid}`: nothing it guards was changed"),
            }
            };
            // The answer either settles the step (confirm, manual, input, a declined gate)
            // or lets a terminal action run.
            let settled: Option<(StepOutcome, Option<String>, Option<String>)> =
                match (&step.action.kind, answer) {
                    (ActionKind::Confirm(_), Answer::Reply(r)) => {
                        let text = Answer::Reply(r).text();
                        frame
                            .ctx
                            .set_step_field(&step.id, StepField::Answer, json!(text));
                        Some(match r {
                            Reply::Yes => (StepOutcome::Succeeded, None, None),
                            Reply::Skip => {
                                let skipped = self.skip_guarded(&rb, step, &frame.prefix, sid);
                                let note = (!skipped.is_empty()).then(|| {
                                    format!("skipped, and with it: {}", skipped.join(", "))
                                });
                                (StepOutcome::Skipped, note, None)
                            }
                            Reply::No | Reply::Abort => {
                                (StepOutcome::Aborted, None, Some(declined(r)))
                            }
                        })
                    }
                    (ActionKind::Manual(_), Answer::Manual(m, note)) => {
                        if let Some(n) = &note {
                            frame
                                .ctx
                                .set_step_field(&step.id, StepField::Note, json!(n));
                        }
                        Some(match m {
                            ManualReply::Done => (StepOutcome::Succeeded, note, None),
                            ManualReply::Skipped => (StepOutcome::Skipped, note, None),
                            ManualReply::Failed => {
                                let msg = format!(
                                    "the operator marked `{sid}` as failed{}",
                                    note.as_ref().map(|n| format!(": {n}")).unwrap_or_default()
                                );
                                (StepOutcome::Failed, note, Some(msg))
                            }
                        })
                    }
                    (ActionKind::Input(_), Answer::Input(v)) => {
                        frame
                            .ctx
                            .set_step_field(&step.id, StepField::Value, v.clone());
                        self.emit(Event::Capture {
                            step: sid.to_string(),
                            name: "value".into(),
                            value: v,
                        });
                        Some((StepOutcome::Succeeded, None, None))
                    }
                    (_, Answer::Reply(Reply::Yes)) => None,
                    (_, Answer::Reply(Reply::Skip)) => Some((
                        StepOutcome::Skipped,
                        None,
                        Some("skipped by the operator".into()),
                    )),
                    (_, Answer::Reply(r)) => Some((StepOutcome::Aborted, None, Some(declined(r)))),
                    _ => Some((
                        StepOutcome::Aborted,
                        None,
                        Some("declined by the operator".into()),
                    )),
                };
            if let Some((outcome, note, error)) = settled {
                if outcome == StepOutcome::Aborted {
                    let msg = error.clone().unwrap_or_default();
                    self.settle(frame, step, sid, phase, started, outcome, note, error);
                    return if abandon {
                        StepEnd::Abandoned(msg)
                    } else {
                        StepEnd::Aborted(msg)
                    };
                }
                return self.settle(frame, step, sid, phase, started, outcome, note, error);
            }
        }

        // 5. Execute.
        match &rendered.action {
            RenderedAction::Assert(conds) => {
                let display = frame.ctx.display(None);
                let real = frame.ctx.real(None);
                // No conditions prove nothing: it fails closed. (Conditions that do not read
                // as conditions never reach the model: `check` rejects them at their line.)
                let (checks, malformed) = if conds.is_empty() {
                    (vec![], Some("the assert has no conditions".to_string()))
                } else {
                    (evaluate(conds, &real, &display, None), None)
                };
                let ok = malformed.is_none() && checks.iter().all(|c| c.ok);
                self.emit(Event::AttemptStarted {
                    step: sid.to_string(),
                    attempt: 1,
                    of: 1,
                });
                self.emit(Event::VerifyEvaluated {
                    step: sid.to_string(),
                    attempt: 1,
                    poll: 1,
                    ok,
                    verdict: Some(match malformed {
                        Some(_) => Verdict::Fail,
                        None => checks_verdict(&checks),
                    }),
                    polling: false,
                    checks: checks.clone(),
                });
                self.emit(Event::AttemptFinished {
                    step: sid.to_string(),
                    attempt: 1,
                    ok,
                    error: malformed.clone(),
                    duration_ms: 0,
                    polls: 1,
                    result: Value::Null,
                    interrupted: false,
                });
                frame.ctx.set_step_field(
                    &step.id,
                    StepField::Outcome,
                    json!(if ok { "succeeded" } else { "failed" }),
                );
                if ok {
                    self.step_done(sid, phase, started, 1, StepOutcome::Succeeded, None, None);
                    return StepEnd::Done;
                }
                let why = malformed.unwrap_or_else(|| failed_checks_message(&checks));
                return self.step_failed(sid, phase, started, 1, why);
            }
            RenderedAction::Call { runbook, inputs } => {
                return self
                    .run_call(step, sid, phase, frame, runbook.clone(), inputs, started)
                    .await;
            }
            RenderedAction::Analysis { interval, spec } => {
                return self
                    .run_analysis(step, sid, phase, frame, spec, *interval, started)
                    .await;
            }
            RenderedAction::Confirm | RenderedAction::Manual | RenderedAction::Input(_) => {
                unreachable!("gates return above")
            }
            // A call or an analysis that does not hold once rendered fails before it starts;
            // a backend's action fails in its attempt, as the backend would fail it.
            RenderedAction::Invalid(e)
                if matches!(
                    step.action.kind,
                    ActionKind::Call(_) | ActionKind::Analysis { .. }
                ) =>
            {
                return self.step_failed(sid, phase, started, 0, e.message.clone());
            }
            _ => {}
        }

        self.needs_answer = None;
        // A templated timeout is rendered over the inputs now; a bad value fails the step.
        let timeout = match &step.timeout_template {
            None => Ok(step.timeout),
            Some(src) => crate::model::render_duration(
                "timeout",
                src,
                &json!({ "inputs": frame.ctx.inputs, "env": frame.ctx.env }),
            )
            .map(Some),
        };
        let (ok, attempts, last, err) = match timeout {
            Ok(timeout) => {
                self.attempts(step, sid, frame, &rendered.action, &step.retry, timeout)
                    .await
            }
            Err(e) => (false, 0, None, Some(e)),
        };
        if let Some(hint) = self.needs_answer.take() {
            frame
                .ctx
                .set_step_field(&step.id, StepField::Outcome, json!("failed"));
            self.step_done(
                sid,
                phase,
                started,
                attempts,
                StepOutcome::NeedsAnswer,
                None,
                Some(format!("needs an answer: {hint}")),
            );
            return StepEnd::NeedsAnswer(hint);
        }
        if let Some(r) = &last {
            frame.ctx.set_step_field(
                &step.id,
                StepField::Result,
                self.emitter.redactor().value(&bound(r)),
            );
        }
        frame
            .ctx
            .set_step_field(&step.id, StepField::Attempts, json!(attempts));
        // Captures derived from a secret show as `***` from now on.
        frame.ctx.tainted.extend(self.tainted_now.drain(..));
        if self.cancel.is_cancelled() {
            self.step_done(
                sid,
                phase,
                started,
                attempts,
                StepOutcome::Aborted,
                None,
                Some("interrupted by a signal (Ctrl-C or SIGTERM)".into()),
            );
            return StepEnd::Interrupted;
        }
        if ok {
            // Captures were evaluated (and journaled) on the last result; keep them.
            if let Some(r) = last.as_ref().filter(|_| !step.spec.capture.is_empty()) {
                let only = steps_read(step.spec.capture.values().map(String::as_str), []);
                let ctx_v = frame.ctx.real_reading(Some(r), only.as_ref());
                for (name, expr) in &step.spec.capture {
                    if let Ok(v) = template::eval(expr, &ctx_v) {
                        frame.ctx.set_step_entry(&step.id, name, v);
                    }
                }
            }
            frame
                .ctx
                .set_step_field(&step.id, StepField::Outcome, json!("succeeded"));
            if let Some(u) = &step.undo {
                self.push_undo(sid, u, frame);
            }
            self.step_done(
                sid,
                phase,
                started,
                attempts,
                StepOutcome::Succeeded,
                None,
                None,
            );
            StepEnd::Done
        } else {
            frame
                .ctx
                .set_step_field(&step.id, StepField::Outcome, json!("failed"));
            self.step_failed(
                sid,
                phase,
                started,
                attempts,
                err.unwrap_or_else(|| "failed".into()),
            )
        }
    }
}

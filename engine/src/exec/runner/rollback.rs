//! Rollback: the `undo` of finished steps, newest first, each through the gate when terminal.

use serde_json::Value;

use crate::exec::actions;
use crate::exec::clock::millis_between;
use crate::exec::events::{Event, Gate};
use crate::exec::gate::{Answer, Decision, GateKind, GateRequest, ManualReply, Reply};
use crate::exec::resume::{undo_id, Resumption};
use crate::model::{ActionKind, Step};
use crate::spec::Safety;

use super::{Frame, ResumeAnswer, Runner, StepEnd};

impl Runner {
    /// Runs the `undo` of finished steps, newest first. A terminal undo goes through the gate
    /// like any terminal step. Returns where and why the rollback stopped before its end (an
    /// interruption, a missing answer, a declined undo): the run then ends resumable, and a
    /// resumed run goes on with the undos that did not finish.
    pub(super) async fn rollback(&mut self) -> Option<(StepEnd, String)> {
        while let Some(entry) = self.undo_stack.pop() {
            let uid = undo_id(&entry.step);
            if self.cancel.is_cancelled() {
                return Some((StepEnd::Interrupted, uid));
            }
            let manual = matches!(entry.undo.action.kind, ActionKind::Manual(_));
            let mut pre_approved = false;
            if let Some(r) = &self.resume {
                match r.resumption(&uid) {
                    Resumption::Run => {}
                    // Done (or failed) before the interruption: never run twice.
                    Resumption::Finished(..) => continue,
                    Resumption::Complete { ok, error, .. } => {
                        self.emit(Event::UndoFinished {
                            step: entry.step.clone(),
                            ok,
                            error,
                            duration_ms: 0,
                        });
                        continue;
                    }
                    Resumption::Reached if manual || entry.undo.safety <= Safety::Idempotent => {}
                    Resumption::Reached => {
                        match self.resume_gate(
                            &uid,
                            &entry.undo.title,
                            entry.undo.safety,
                            entry.undo.action.kind.label(),
                        ) {
                            Ok(ResumeAnswer::RunAgain) => pre_approved = true,
                            Ok(ResumeAnswer::Completed) => {
                                self.emit(Event::UndoFinished {
                                    step: entry.step.clone(),
                                    ok: true,
                                    error: None,
                                    duration_ms: 0,
                                });
                                continue;
                            }
                            Ok(ResumeAnswer::Failed) => {
                                self.emit(Event::UndoFinished {
                                    step: entry.step.clone(),
                                    ok: false,
                                    error: Some("it ran and failed before the interruption, as the operator said on resume".into()),
                                    duration_ms: 0,
                                });
                                continue;
                            }
                            Err(end) => return Some((end, uid)),
                        }
                    }
                }
            }
            let t0 = self.clock.now();
            let rendered = actions::render(
                &entry.undo.action,
                &entry.ctx.real(None),
                &entry.ctx.display(None),
            );
            let rendered = match rendered {
                Ok(r) => r,
                Err(e) => {
                    self.emit(Event::UndoStarted {
                        step: entry.step.clone(),
                        title: entry.undo.title.clone(),
                        action: entry.undo.action.kind.label(),
                        safety: Some(entry.undo.safety),
                        rendered: Value::Null,
                    });
                    self.emit(Event::UndoFinished {
                        step: entry.step.clone(),
                        ok: false,
                        error: Some(format!("rendering the undo: {e}")),
                        duration_ms: 0,
                    });
                    continue;
                }
            };
            self.emit(Event::UndoStarted {
                step: entry.step.clone(),
                title: entry.undo.title.clone(),
                action: entry.undo.action.kind.label(),
                safety: Some(entry.undo.safety),
                rendered: rendered.display.clone(),
            });
            // A terminal undo: the same gate as a terminal step.
            if entry.undo.safety == Safety::Terminal && !manual && !pre_approved {
                let summary = actions::display_summary(
                    &entry.rb,
                    &entry.undo.action,
                    &rendered.display,
                    &Value::Null,
                );
                let req = GateRequest {
                    step: uid.clone(),
                    title: entry.undo.title.clone(),
                    kind: GateKind::Terminal,
                    prompt: format!(
                        "`{}` (the undo of `{}`) is terminal (it cannot be undone): {summary}. Run it?",
                        entry.undo.title, entry.step
                    ),
                    safety: Safety::Terminal,
                    action: summary,
                    guarded: vec![],
                };
                match self.ask_gate(&req, Gate::Terminal) {
                    Ok(Decision::Answered { answer, .. }) => match answer {
                        Answer::Reply(Reply::Yes) => {}
                        Answer::Reply(Reply::Skip) => {
                            self.emit(Event::UndoFinished {
                                step: entry.step.clone(),
                                ok: false,
                                error: Some("skipped by the operator".into()),
                                duration_ms: millis_between(t0, self.clock.now()),
                            });
                            continue;
                        }
                        _ => {
                            return Some((
                                StepEnd::Aborted(format!("the operator declined `{uid}`")),
                                uid,
                            ))
                        }
                    },
                    Ok(Decision::NeedsAnswer { hint }) => {
                        return Some((StepEnd::NeedsAnswer(hint), uid))
                    }
                    Ok(Decision::Invalid(m)) => return Some((StepEnd::NeedsAnswer(m), uid)),
                    Err(e) => return Some((self.prompt_failed(&e), uid)),
                }
            }
            let (ok, error) = match &entry.undo.action.kind {
                ActionKind::Manual(_) => {
                    let prompt = rendered
                        .display
                        .get("instructions")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let req = GateRequest {
                        step: uid.clone(),
                        title: entry.undo.title.clone(),
                        kind: GateKind::Manual,
                        prompt: prompt.clone(),
                        safety: Safety::ReadOnly,
                        action: "manual undo".into(),
                        guarded: vec![],
                    };
                    match self.ask_gate(&req, Gate::Manual) {
                        Ok(Decision::Answered { answer, .. }) => match answer {
                            Answer::Manual(ManualReply::Done, _) => (true, None),
                            other => (
                                false,
                                Some(format!("manual undo answered `{}`", other.text())),
                            ),
                        },
                        // The rollback waits for the answer: the run stops, resumable.
                        Ok(Decision::NeedsAnswer { hint }) => {
                            return Some((StepEnd::NeedsAnswer(hint), uid))
                        }
                        Ok(Decision::Invalid(m)) => return Some((StepEnd::NeedsAnswer(m), uid)),
                        Err(e) => return Some((self.prompt_failed(&e), uid)),
                    }
                }
                _ => {
                    let pseudo = Step {
                        id: entry
                            .step
                            .rsplit('/')
                            .next()
                            .unwrap_or(&entry.step)
                            .to_string(),
                        title: entry.undo.title.clone(),
                        loc: Default::default(),
                        spec: Default::default(),
                        action: entry.undo.action.clone(),
                        safety: entry.undo.safety.max(Safety::Reversible),
                        timeout: entry.undo.timeout,
                        timeout_template: None,
                        retry: entry.undo.retry.clone(),
                        until: None,
                        undo: None,
                    };
                    let frame = Frame {
                        rb: entry.rb.clone(),
                        ctx: entry.ctx.clone(),
                        backends_real: entry.backends_real.clone(),
                        prefix: String::new(),
                    };
                    let (ok, _, _, err) = self
                        .attempts(
                            &pseudo,
                            &uid,
                            &frame,
                            &rendered.action,
                            &entry.undo.retry,
                            entry.undo.timeout,
                        )
                        .await;
                    if !ok && self.cancel.is_cancelled() {
                        // Stopped by a signal: the undo did not finish (no `undo_finished`);
                        // a resumed run decides about it.
                        return Some((StepEnd::Interrupted, uid));
                    }
                    (ok, err)
                }
            };
            let error = error.map(|e| self.emitter.redactor().str(&e));
            self.emit(Event::UndoFinished {
                step: entry.step.clone(),
                ok,
                error,
                duration_ms: millis_between(t0, self.clock.now()),
            });
        }
        None
    }
}

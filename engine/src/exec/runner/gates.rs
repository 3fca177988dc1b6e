//! The gate: every question a run asks (confirmations, terminal steps, inconclusive
//! verifications) goes through `ask_gate`, which journals the question, decides and records the answer.

use std::collections::HashSet;

use crate::exec::actions::{self, RenderedAction};
use crate::exec::context::{steps_read, steps_read_in};
use crate::exec::events::{Event, Gate};
use crate::exec::gate::{Answer, Decision, GateKind, GateRequest, Guarded, Reply};
use crate::exec::verdict;
use crate::model::{ActionKind, Runbook, Step};
use crate::spec::Safety;

use super::{Frame, Runner, StepEnd};

impl Runner {
    /// Asks one gate, the one way every gate of a run is asked: journals the question, decides
    /// it (scripted answer, `--yes`, the prompter, or no answer), and journals the answer when
    /// there is one, with a manual answer's note. The caller acts on the decision.
    pub(super) fn ask_gate(&mut self, req: &GateRequest, gate: Gate) -> std::io::Result<Decision> {
        self.emit(Event::GateAsked {
            step: req.step.clone(),
            gate,
            prompt: req.prompt.clone(),
        });
        let decision = self.gate.decide(req)?;
        if let Decision::Answered { answer, via } = &decision {
            let note = match answer {
                Answer::Manual(_, n) => n.clone(),
                _ => None,
            };
            self.emit(Event::GateAnswered {
                step: req.step.clone(),
                gate,
                answer: answer.text(),
                by: self.operator.clone(),
                via: *via,
                note,
            });
        }
        Ok(decision)
    }

    /// A prompt that failed: Ctrl-C at the prompt interrupts the run (130, resumable);
    /// anything else aborts it.
    pub(super) fn prompt_failed(&mut self, e: &std::io::Error) -> StepEnd {
        if e.kind() == std::io::ErrorKind::Interrupted {
            self.cancel.cancel();
            StepEnd::Interrupted
        } else {
            StepEnd::Aborted(format!("prompt failed: {e}"))
        }
    }

    /// Records that the steps `confirm` guards are not to run (it was answered `skip`).
    /// Returns their ids.
    pub(super) fn skip_guarded(
        &mut self,
        rb: &Runbook,
        confirm: &Step,
        prefix: &str,
        sid: &str,
    ) -> Vec<String> {
        let ids: Vec<String> = rb
            .guarded_by(confirm)
            .into_iter()
            .map(|g| format!("{prefix}{}", g.id))
            .collect();
        for id in &ids {
            self.skipped_by.insert(id.clone(), sid.to_string());
        }
        ids
    }

    /// A guarded step's change as it will be made, rendered with what the run knows now, the
    /// live system's view of it (Kubernetes, as `plan --live`), and its undo. `None` when its
    /// `when` is already known to be false (it will not run either way).
    pub(super) async fn describe_change(&mut self, g: &Step, frame: &Frame) -> Option<Guarded> {
        let rb = frame.rb.clone();
        let redactor = self.emitter.redactor().clone();
        if let Some(w) = &g.spec.when {
            let only = steps_read([w.as_str()], []);
            let real = frame.ctx.real_reading(None, only.as_ref());
            if verdict::guard(w, &real) == verdict::Guard::Skip {
                return None;
            }
        }
        let mut change = vec![];
        let only = steps_read_in([], [&g.action.body]);
        let real_ctx = frame.ctx.real_reading(None, only.as_ref());
        let display_ctx = frame.ctx.display_reading(None, only.as_ref());
        let summary_ctx = frame.ctx.display_reading(None, Some(&HashSet::new()));
        match actions::render(&g.action, &real_ctx, &display_ctx) {
            Ok(r) => {
                change.push(actions::display_summary(
                    &rb,
                    &g.action,
                    &r.display,
                    &summary_ctx,
                ));
                match &g.action.kind {
                    ActionKind::Http(_) => {
                        if let Some(j) = r.display.pointer("/request/json") {
                            change.push(format!("JSON body: {j}"));
                        }
                    }
                    ActionKind::Kubernetes { .. } => {
                        let target = g
                            .action
                            .backend
                            .as_ref()
                            .and_then(|b| frame.backends_real.get(b))
                            .and_then(|b| b.kubernetes.clone())
                            .unwrap_or_default();
                        // Arguments the verb rejects are what the step would fail with.
                        let live = match &r.action {
                            RenderedAction::Kubernetes(call) => {
                                crate::backends::preview_kube(
                                    &*self.backends.kubernetes,
                                    &target,
                                    call,
                                    &rb.dir(),
                                )
                                .await
                            }
                            RenderedAction::Invalid(e) => {
                                Some(format!("the step would fail: {}", e.message))
                            }
                            _ => None,
                        };
                        if let Some(live) = live {
                            change.push(format!("live: {}", redactor.str(&live)));
                        }
                    }
                    _ => {}
                }
            }
            Err(e) => change.push(format!(
                "{} (its values are known only when it runs: {e})",
                g.action.kind.label()
            )),
        }
        let undo = if g.safety == Safety::Terminal {
            "cannot be undone (terminal)".to_string()
        } else if let Some(u) = &g.undo {
            let only = steps_read_in([], [&u.action.body]);
            let shown = match actions::render(
                &u.action,
                &frame.ctx.real_reading(None, only.as_ref()),
                &frame.ctx.display_reading(None, only.as_ref()),
            ) {
                Ok(r) => actions::display_summary(&rb, &u.action, &r.display, &summary_ctx),
                Err(_) => u.action.kind.label(),
            };
            format!("undo: {} ({shown})", u.title)
        } else if let Some(why) = &g.spec.no_undo {
            format!("no undo: {why}")
        } else {
            "no undo declared".to_string()
        };
        Some(Guarded {
            step: format!("{}{}", frame.prefix, g.id),
            title: g.title.clone(),
            safety: g.safety,
            change: change.into_iter().map(|c| redactor.str(&c)).collect(),
            undo: redactor.str(&undo),
        })
    }

    /// Asks the operator whether a verification without data may count as passed
    /// (`on_inconclusive: ask`). Some(yes?), or None when no answer can be given (the hint is
    /// left in `needs_answer`).
    pub(super) fn ask_inconclusive(&mut self, step: &Step, sid: &str, why: &str) -> Option<bool> {
        let prompt = format!(
            "`{}` cannot tell whether it worked: {why}. Count it as passed and go on?",
            step.title
        );
        let req = GateRequest {
            step: sid.to_string(),
            title: step.title.clone(),
            kind: GateKind::Inconclusive,
            prompt: prompt.clone(),
            safety: step.safety,
            action: "accept a verification with no data".into(),
            guarded: vec![],
        };
        match self.ask_gate(&req, Gate::Inconclusive) {
            Ok(Decision::Answered { answer, .. }) => {
                Some(matches!(answer, Answer::Reply(Reply::Yes)))
            }
            Ok(Decision::NeedsAnswer { hint }) | Ok(Decision::Invalid(hint)) => {
                self.needs_answer = Some(format!("{why}; {hint}"));
                None
            }
            Err(e) => {
                self.needs_answer = Some(format!("{why}; the prompt failed: {e}"));
                None
            }
        }
    }
}

//! Resuming: what the journal says about each step, the resume gate, processes left running.

use std::time::Duration;

use serde_json::json;

use crate::backends::shell;
use crate::exec::events::{Gate, Phase, StepOutcome};
use crate::exec::gate::{
    Answer, Decision, GateKind, GateRequest, ManualReply, ProcessReply, Reply,
};
use crate::exec::resume::{Process, ResumeState, Resumption};
use crate::model::{ActionKind, Step};
use crate::spec::Safety;
use crate::template::namespace::StepField;

use super::{Frame, ResumeAnswer, Resumed, Runner, StepEnd};

impl Runner {
    /// What the journal says about a step of a resumed run: run it (asking first when it
    /// reached its backend and is not safe to repeat), or settle it from the journal.
    pub(super) fn resume_step(
        &mut self,
        step: &Step,
        sid: &str,
        phase: Phase,
        frame: &mut Frame,
    ) -> Resumed {
        let Some(r) = &self.resume else {
            return Resumed::Proceed {
                pre_approved: false,
            };
        };
        let restore = |frame: &mut Frame, r: &ResumeState| {
            for (k, v) in r.fields.get(sid).cloned().unwrap_or_default() {
                frame.ctx.set_step_entry(&step.id, &k, v);
            }
        };
        match r.resumption(sid) {
            Resumption::Run => Resumed::Proceed {
                pre_approved: false,
            },
            Resumption::Finished(outcome, error) => {
                restore(frame, r);
                frame
                    .ctx
                    .set_step_field(&step.id, StepField::Outcome, json!(outcome.as_str()));
                if r.answers.get(sid).map(String::as_str) == Some("skip")
                    && matches!(step.action.kind, ActionKind::Confirm(_))
                {
                    // A confirmation answered `skip` before the interruption: what it guards
                    // stays skipped.
                    let rb = frame.rb.clone();
                    let prefix = frame.prefix.clone();
                    self.skip_guarded(&rb, step, &prefix, sid);
                }
                match outcome {
                    StepOutcome::Succeeded => {
                        if let Some(u) = &step.undo {
                            self.push_undo(sid, u, frame);
                        }
                        Resumed::Settled(StepEnd::Done)
                    }
                    StepOutcome::Failed => Resumed::Settled(StepEnd::Failed(
                        error.unwrap_or_else(|| format!("`{sid}` failed")),
                    )),
                    _ => Resumed::Settled(StepEnd::Done),
                }
            }
            Resumption::Complete {
                ok,
                attempts,
                error,
            } => {
                // Its last attempt's end is journaled (with its captures, when it succeeded):
                // only the step's end is missing. Completing it runs nothing and asks nothing.
                restore(frame, r);
                let now = self.clock.now();
                if ok {
                    frame
                        .ctx
                        .set_step_field(&step.id, StepField::Outcome, json!("succeeded"));
                    if let Some(u) = &step.undo {
                        self.push_undo(sid, u, frame);
                    }
                    self.step_done(
                        sid,
                        phase,
                        now,
                        attempts,
                        StepOutcome::Succeeded,
                        None,
                        None,
                    );
                    Resumed::Settled(StepEnd::Done)
                } else {
                    frame
                        .ctx
                        .set_step_field(&step.id, StepField::Outcome, json!("failed"));
                    Resumed::Settled(self.step_failed(
                        sid,
                        phase,
                        now,
                        attempts,
                        error.unwrap_or_else(|| "failed".into()),
                    ))
                }
            }
            // A call is entered again: its own steps decide.
            Resumption::Reached if matches!(step.action.kind, ActionKind::Call(_)) => {
                Resumed::Proceed {
                    pre_approved: false,
                }
            }
            // Safe to repeat: run it again.
            Resumption::Reached if step.safety <= Safety::Idempotent => Resumed::Proceed {
                pre_approved: false,
            },
            Resumption::Reached => {
                let attempts = r.steps.get(sid).map_or(0, |t| t.attempt);
                match self.resume_gate(sid, &step.title, step.safety, step.action.kind.label()) {
                    Ok(ResumeAnswer::RunAgain) => Resumed::Proceed { pre_approved: true },
                    Ok(ResumeAnswer::Completed) => {
                        // It took effect: it is done, and a rollback undoes it. Its captures,
                        // if it had any, were never journaled.
                        frame
                            .ctx
                            .set_step_field(&step.id, StepField::Outcome, json!("succeeded"));
                        if let Some(u) = &step.undo {
                            self.push_undo(sid, u, frame);
                        }
                        let now = self.clock.now();
                        self.step_done(
                            sid,
                            phase,
                            now,
                            attempts,
                            StepOutcome::Succeeded,
                            Some("completed before the interruption, as the operator confirmed on resume".into()),
                            None,
                        );
                        Resumed::Settled(StepEnd::Done)
                    }
                    Ok(ResumeAnswer::Failed) => {
                        frame
                            .ctx
                            .set_step_field(&step.id, StepField::Outcome, json!("failed"));
                        let now = self.clock.now();
                        Resumed::Settled(self.step_failed(
                            sid,
                            phase,
                            now,
                            attempts,
                            "it ran and failed before the interruption, as the operator said on resume".into(),
                        ))
                    }
                    Err(end) => Resumed::Settled(end),
                }
            }
        }
    }

    /// Resuming: a process group that a step started before the interruption and that is
    /// still alive would go on having its effect while the run goes on (or runs the step
    /// again). Say so, and wait for it or kill it, as answered, before anything else runs.
    pub(super) async fn settle_processes(&mut self) -> Option<(StepEnd, String)> {
        let state = self.resume.as_ref()?;
        let mut procs = state.unfinished_processes();
        let here = shell::host_name();
        let boot = shell::boot_id();
        // An attempt whose process group was never journaled (the runner was killed in the
        // instant between the two): its processes carry the run's and the step's marks.
        for (sid, attempt) in state.unjournaled_attempts() {
            for (pgid, start_ticks) in shell::marked_groups(&state.run_id, &sid) {
                if !procs.iter().any(|(s, p)| *s == sid && p.pgid == pgid) {
                    procs.push((
                        sid.clone(),
                        Process {
                            attempt,
                            pgid,
                            host: here.clone(),
                            boot_id: boot.clone(),
                            start_ticks,
                        },
                    ));
                }
            }
        }
        for (sid, p) in procs {
            if p.host != here {
                self.progress.status(&format!(
                    "`{sid}` started process group {} on host {}: it cannot be checked from {here}; make sure it ended",
                    p.pgid, p.host
                ));
                continue;
            }
            if !p.boot_id.is_empty() && !boot.is_empty() && p.boot_id != boot {
                continue; // the machine rebooted since: the group is gone
            }
            if !shell::journaled_group_alive(p.pgid, p.start_ticks) {
                continue;
            }
            let gid = format!("{sid}.process");
            let req = GateRequest {
                step: gid.clone(),
                title: sid.clone(),
                kind: GateKind::Process,
                prompt: format!(
                    "`{sid}` started process group {} before the interruption and it is still running: its action may still be having its effect. Wait for it to end, or kill it?",
                    p.pgid
                ),
                safety: Safety::Reversible,
                action: format!("process group {}", p.pgid),
                guarded: vec![],
            };
            let answer = match self.ask_gate(&req, Gate::Process) {
                Ok(Decision::Answered { answer, .. }) => answer,
                Ok(Decision::NeedsAnswer { hint }) => {
                    return Some((StepEnd::NeedsAnswer(hint), gid))
                }
                Ok(Decision::Invalid(m)) => return Some((StepEnd::NeedsAnswer(m), gid)),
                Err(e) => return Some((self.prompt_failed(&e), gid)),
            };
            match answer {
                Answer::Process(ProcessReply::Wait) => {
                    while shell::journaled_group_alive(p.pgid, p.start_ticks) {
                        self.progress.status(&format!(
                            "waiting for process group {} of `{sid}` to end",
                            p.pgid
                        ));
                        if !self.sleep(Duration::from_millis(100)).await {
                            return Some((StepEnd::Interrupted, gid));
                        }
                    }
                }
                Answer::Process(ProcessReply::Kill) => {
                    shell::kill_journaled_group(p.pgid).await;
                }
                _ => {
                    return Some((
                        StepEnd::Aborted(format!(
                            "process group {} of `{sid}` is still running",
                            p.pgid
                        )),
                        gid,
                    ))
                }
            }
        }
        None
    }

    /// Asks whether a half-done, non-repeatable step (or undo) may run again, or how it ended.
    pub(super) fn resume_gate(
        &mut self,
        sid: &str,
        title: &str,
        safety: Safety,
        action: String,
    ) -> Result<ResumeAnswer, StepEnd> {
        let req = GateRequest {
            step: sid.to_string(),
            title: title.to_string(),
            kind: GateKind::Resume,
            prompt: format!(
                "`{}` ({}) reached its backend before the interruption and did not finish as succeeded: it may have had its effect. Run it again?",
                title,
                safety.as_str()
            ),
            safety,
            action,
            guarded: vec![],
        };
        match self.ask_gate(&req, Gate::Resume) {
            Ok(Decision::Answered { answer, .. }) => {
                match answer {
                    Answer::Reply(Reply::Yes) => Ok(ResumeAnswer::RunAgain),
                    Answer::Reply(Reply::Skip) => Ok(ResumeAnswer::Completed),
                    Answer::Manual(ManualReply::Failed, _) => Ok(ResumeAnswer::Failed),
                    Answer::Reply(Reply::Abort) => Err(StepEnd::Abandoned(format!(
                        "the operator answered abort on resume at `{sid}`: the run stopped and undoes what it changed"
                    ))),
                    _ => Err(StepEnd::Aborted(format!(
                        "the operator declined to re-run `{sid}`"
                    ))),
                }
            }
            Ok(Decision::NeedsAnswer { hint }) => Err(StepEnd::NeedsAnswer(hint)),
            Ok(Decision::Invalid(m)) => Err(StepEnd::NeedsAnswer(m)),
            Err(e) => Err(self.prompt_failed(&e)),
        }
    }
}

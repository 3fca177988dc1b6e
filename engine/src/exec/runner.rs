//! The runner: preconditions, then per step the guard, the gate, the action with its timeout,
//! captures, verifications polled within their budget, retries with backoff; on failure the
//! rollback strategy and `on_failure`. Every transition is an event; nothing else is state.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::actions::{self, Env};
use super::clock::{later, millis_between, stamp, Clock};
use super::context::{bound, observe, steps_read, steps_read_in, RunContext};
use super::emitter::Emitter;
use super::events::{
    Check, Event, Gate, Phase, RunMode, RunOutcome, RunbookInfo, SkipCause, StepOutcome,
};
use super::gate::{
    Answer, Decision, GateKind, GateRequest, Gatekeeper, Guarded, ManualReply, ProcessReply, Reply,
};
use super::resume::{undo_id, ResumeState, Resumption};
use super::verdict::{self, Verdict};
use crate::backends::{shell, ActionError, Backends, CallCtx, ErrorKind, Output, Progress};
use crate::model::{fmt_duration, ActionKind, Retry, Runbook, Step, Undo};
use crate::spec::{BackendSpec, OnInconclusive, RollbackStrategy, Safety};
use crate::template;

/// Who runs, why, and with what.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub operator: String,
    pub reason: Option<String>,
    /// `interactive`, `non-interactive`, `drill`, `training`.
    pub mode: RunMode,
    pub inputs: IndexMap<String, Value>,
    pub secrets: IndexMap<String, String>,
    pub env: Map<String, Value>,
    pub host: String,
    pub resume: Option<ResumeState>,
    /// Resume even though the runbook changed (journaled).
    pub forced: bool,
    /// Drills and training: called runbooks take their secrets and environment variables by
    /// name from `secrets` and `env` above, never from the host.
    pub isolated: bool,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub outcome: RunOutcome,
    pub exit_code: i32,
    pub message: Option<String>,
    pub failed_step: Option<String>,
    /// For needs-answer: the flag that would answer the gate.
    pub hint: Option<String>,
    pub duration: Duration,
    /// The operator answered `abort`: the run stopped and undid its changes (it cannot be
    /// resumed).
    pub abandoned: bool,
}

/// One runbook being executed (the top one, or one entered through a `call` step).
struct Frame {
    rb: Arc<Runbook>,
    ctx: RunContext,
    backends_real: IndexMap<String, BackendSpec>,
    /// Prefix of step ids in events: "" at the top, "<call step id>/" inside a call.
    prefix: String,
}

struct UndoEntry {
    step: String,
    undo: Undo,
    rb: Arc<Runbook>,
    ctx: RunContext,
    backends_real: IndexMap<String, BackendSpec>,
}

/// What resuming decided for a step before it runs.
enum Resumed {
    /// Run it (`pre_approved`: the operator already said yes at the resume gate).
    Proceed { pre_approved: bool },
    /// Settled from the journal or by an answer; the step does not run.
    Settled(StepEnd),
}

/// The operator's answer about a step that reached its backend before the interruption.
enum ResumeAnswer {
    /// Run it again.
    RunAgain,
    /// It completed (the operator checked): recorded as succeeded, without running it.
    Completed,
    /// It ran and failed: recorded as failed, without running it.
    Failed,
}

enum StepEnd {
    Done,
    Failed(String),
    Aborted(String),
    /// `abort` at a gate: stop and undo what the run changed so far.
    Abandoned(String),
    NeedsAnswer(String),
    Interrupted,
}

pub struct Runner {
    backends: Backends,
    clock: Arc<dyn Clock>,
    gate: Gatekeeper,
    emitter: Emitter,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
    run_dir: PathBuf,
    undo_stack: Vec<UndoEntry>,
    resume: Option<ResumeState>,
    operator: String,
    /// Secrets and env for called runbooks when the run is isolated from the host.
    isolated: Option<(IndexMap<String, String>, Map<String, Value>)>,
    /// Set by `attempts` when an inconclusive verification needs the operator's answer
    /// (`on_inconclusive: ask`) and none can be given: the hint to show.
    needs_answer: Option<String>,
    /// Captures of the step running now found derived from a secret (step id, name).
    tainted_now: Vec<(String, String)>,
    /// Steps a confirmation answered `skip` guards: step id (with prefix) → the confirmation.
    skipped_by: std::collections::HashMap<String, String>,
}

impl Runner {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        backends: Backends,
        clock: Arc<dyn Clock>,
        gate: Gatekeeper,
        emitter: Emitter,
        progress: Arc<dyn Progress>,
        cancel: CancellationToken,
        run_dir: PathBuf,
    ) -> Self {
        Runner {
            backends,
            clock,
            gate,
            emitter,
            progress,
            cancel,
            run_dir,
            undo_stack: vec![],
            resume: None,
            operator: String::new(),
            isolated: None,
            needs_answer: None,
            tainted_now: vec![],
            skipped_by: Default::default(),
        }
    }

    pub fn emitter(&self) -> &Emitter {
        &self.emitter
    }

    /// Masks `value` (and every string in it) from now on, in the journal and on the terminal.
    fn add_secret(&mut self, value: &Value) {
        match value {
            Value::String(v) => {
                self.emitter.redactor_mut().add(v);
                self.progress.secret(v);
            }
            Value::Array(a) => a.iter().for_each(|x| self.add_secret(x)),
            Value::Object(m) => m.values().for_each(|x| self.add_secret(x)),
            _ => {}
        }
    }

    fn emit(&mut self, e: Event) {
        // A failed journal write is recorded in the emitter; mutating steps check it.
        let _ = self.emitter.emit(e);
    }

    /// Runs a checked runbook to its end.
    pub async fn run(&mut self, rb: Arc<Runbook>, cfg: RunConfig) -> RunResult {
        let started = self.clock.now();
        self.operator = cfg.operator.clone();
        self.resume = cfg.resume.clone();
        self.isolated = cfg.isolated.then(|| (cfg.secrets.clone(), cfg.env.clone()));
        let run_id = self.emitter.run_id().to_string();
        let run_started_at = cfg
            .resume
            .as_ref()
            .map(|r| r.started_at.clone())
            .unwrap_or_else(|| stamp(started));

        let mut ctx = RunContext {
            inputs: cfg.inputs.clone(),
            secrets: cfg.secrets.clone(),
            env: cfg.env.clone(),
            run: Map::new(),
            steps: Map::new(),
            tainted: Default::default(),
        };
        ctx.run.insert("id".into(), json!(run_id));
        ctx.run.insert("operator".into(), json!(cfg.operator));
        ctx.run.insert(
            "reason".into(),
            json!(cfg.reason.clone().unwrap_or_default()),
        );
        ctx.run.insert("started_at".into(), json!(run_started_at));
        ctx.run.insert("runbook".into(), json!(rb.name()));
        ctx.run.insert("host".into(), json!(cfg.host));

        if let Some(r) = &cfg.resume {
            self.emit(Event::RunResumed {
                operator: cfg.operator.clone(),
                forced: cfg.forced,
                sha256: cfg.forced.then(|| rb.sha256.clone()),
                files: if cfg.forced { rb.files() } else { vec![] },
            });
            let _ = r;
        } else {
            let redactor = self.emitter.redactor().clone();
            self.emit(Event::RunStarted {
                runbook: RunbookInfo {
                    path: rb.file.clone(),
                    name: rb.name().to_string(),
                    title: rb.spec.metadata.title.clone(),
                    sha256: rb.sha256.clone(),
                    severity: rb.spec.metadata.severity.map(|s| format!("{s:?}")),
                    mttr_target: rb.spec.metadata.mttr_target.clone(),
                    description: rb.spec.metadata.description.clone(),
                    steps: rb.steps.iter().map(|s| s.id.clone()).collect(),
                    files: rb.files(),
                },
                inputs: redactor.value(&Value::Object(
                    cfg.inputs
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )),
                operator: cfg.operator.clone(),
                reason: cfg.reason.clone(),
                host: cfg.host.clone(),
                engine_version: env!("CARGO_PKG_VERSION").to_string(),
                mode: cfg.mode,
                virtual_time: self.clock.is_virtual(),
            });
        }

        let backends_real = match render_backends(&rb, &ctx) {
            Ok(b) => b,
            Err(e) => return self.finish(started, RunOutcome::Failed, None, Some(e), None),
        };
        let mut frame = Frame {
            rb: rb.clone(),
            ctx,
            backends_real,
            prefix: String::new(),
        };

        // Every value whose destination is known now can travel there (a header without a
        // line break, a URL value that keeps the URL's shape): checked before any step runs.
        if cfg.resume.is_none() {
            let problems = super::preflight::check(&rb, &frame.ctx);
            if !problems.is_empty() {
                return self.finish(
                    started,
                    RunOutcome::Failed,
                    None,
                    Some(problems.join("\n")),
                    None,
                );
            }
        }

        // Preconditions: evaluated once, at the start (a resumed run already passed them).
        if cfg.resume.is_none() {
            let display = frame.ctx.display(None);
            let real = frame.ctx.real(None);
            for (i, c) in rb.spec.preconditions.iter().enumerate() {
                let (ok, err) = match verdict::guard(&c.that, &real) {
                    verdict::Guard::Run => (true, None),
                    verdict::Guard::Skip => (false, None),
                    verdict::Guard::NoData(why) => (false, Some(format!("inconclusive: {why}"))),
                    verdict::Guard::Error(e) => {
                        (false, Some(format!("could not be evaluated: {e}")))
                    }
                };
                let message = c.message.as_ref().map(|m| render_text(m, &display));
                self.emit(Event::Precondition {
                    index: i,
                    that: c.that.clone(),
                    ok,
                    message: message.clone(),
                    observed: observe(&c.that, &display),
                });
                if !ok {
                    let msg = match err {
                        Some(e) => format!("precondition `{}` {e}: nothing was run", c.that),
                        None => format!(
                            "precondition `{}` is false{}: nothing was run",
                            c.that,
                            message.map(|m| format!(" ({m})")).unwrap_or_default()
                        ),
                    };
                    return self.finish(started, RunOutcome::Failed, None, Some(msg), None);
                }
            }
        }

        // Main steps (on resume, after the processes that outlived the interruption).
        let (end, failed_step) = match self.settle_processes().await {
            Some((end, at)) => (end, Some(at)),
            None => self.run_steps(&mut frame, Phase::Main).await,
        };
        let strategy = rb.spec.rollback_strategy;
        let (end, failed_step) = match end {
            StepEnd::Done => {
                let stopped = if strategy == RollbackStrategy::Always {
                    self.rollback().await
                } else {
                    None
                };
                match stopped {
                    None => return self.finish(started, RunOutcome::Succeeded, None, None, None),
                    Some((end, at)) => (end, Some(at)),
                }
            }
            StepEnd::Failed(msg) => {
                let mut stopped = None;
                if strategy != RollbackStrategy::Never {
                    stopped = self.rollback().await;
                }
                if stopped.is_none() {
                    stopped = self.run_on_failure(&mut frame).await;
                }
                match stopped {
                    None => {
                        return self.finish(
                            started,
                            RunOutcome::Failed,
                            failed_step,
                            Some(msg),
                            None,
                        )
                    }
                    // The rollback or on_failure sequence stopped before its end: the run
                    // ends resumable, and a resume goes on where it stopped.
                    Some((end, at)) => (end, Some(at)),
                }
            }
            other => (other, failed_step),
        };
        match end {
            StepEnd::Done | StepEnd::Failed(_) => unreachable!("handled above"),
            StepEnd::Aborted(msg) => {
                self.finish(started, RunOutcome::Aborted, failed_step, Some(msg), None)
            }
            StepEnd::Abandoned(msg) => {
                let msg = if strategy == RollbackStrategy::Never {
                    format!("{msg}; the runbook's rollback_strategy is `never`: nothing was undone")
                } else {
                    self.rollback().await;
                    msg
                };
                RunResult {
                    abandoned: true,
                    ..self.finish(started, RunOutcome::Aborted, failed_step, Some(msg), None)
                }
            }
            StepEnd::NeedsAnswer(hint) => {
                let msg = format!(
                    "step `{}` needs an answer: pass {hint}",
                    failed_step.clone().unwrap_or_default()
                );
                self.finish(
                    started,
                    RunOutcome::NeedsAnswer,
                    failed_step,
                    Some(msg),
                    Some(hint),
                )
            }
            StepEnd::Interrupted => self.finish_with(
                started,
                RunOutcome::Aborted,
                crate::exit::INTERRUPTED,
                failed_step,
                Some("interrupted by a signal (Ctrl-C, SIGTERM or SIGHUP)".into()),
                None,
            ),
        }
    }

    fn finish(
        &mut self,
        started: DateTime<Utc>,
        outcome: RunOutcome,
        failed_step: Option<String>,
        message: Option<String>,
        hint: Option<String>,
    ) -> RunResult {
        self.finish_with(
            started,
            outcome,
            outcome.exit_code(),
            failed_step,
            message,
            hint,
        )
    }

    fn finish_with(
        &mut self,
        started: DateTime<Utc>,
        outcome: RunOutcome,
        exit_code: i32,
        failed_step: Option<String>,
        message: Option<String>,
        hint: Option<String>,
    ) -> RunResult {
        let duration_ms = millis_between(started, self.clock.now());
        let message = message.map(|m| self.emitter.redactor().str(&m));
        self.emit(Event::RunFinished {
            outcome,
            duration_ms,
            exit_code,
            failed_step: failed_step.clone(),
            message: message.clone(),
        });
        RunResult {
            outcome,
            exit_code,
            message,
            failed_step,
            hint,
            duration: Duration::from_millis(duration_ms),
            abandoned: false,
        }
    }

    /// Runs a frame's main steps. Returns how they ended and the step that stopped them.
    async fn run_steps(&mut self, frame: &mut Frame, phase: Phase) -> (StepEnd, Option<String>) {
        let rb = frame.rb.clone();
        let mut failure: Option<(String, String)> = None;
        for step in &rb.steps {
            let sid = format!("{}{}", frame.prefix, step.id);
            if self.cancel.is_cancelled() {
                return (StepEnd::Interrupted, Some(sid));
            }
            // Resume: what the journal says about this step decides whether it runs.
            let pre_approved = match self.resume_step(step, &sid, phase, frame) {
                Resumed::Proceed { pre_approved } => pre_approved,
                Resumed::Settled(StepEnd::Done) => continue,
                Resumed::Settled(StepEnd::Failed(msg)) if step.spec.continue_on_failure => {
                    failure.get_or_insert((sid.clone(), msg));
                    continue;
                }
                Resumed::Settled(other) => return (other, Some(sid)),
            };
            match self.run_step(step, &sid, phase, frame, pre_approved).await {
                StepEnd::Done => {}
                StepEnd::Failed(msg) if step.spec.continue_on_failure => {
                    failure.get_or_insert((sid.clone(), msg));
                }
                StepEnd::Failed(msg) => return (StepEnd::Failed(msg), Some(sid)),
                other => return (other, Some(sid)),
            }
        }
        match failure {
            // A step marked continue_on_failure failed: the run still fails, at the end.
            Some((sid, msg)) => (StepEnd::Failed(msg), Some(sid)),
            None => (StepEnd::Done, None),
        }
    }

    /// What the journal says about a step of a resumed run: run it (asking first when it
    /// reached its backend and is not safe to repeat), or settle it from the journal.
    fn resume_step(&mut self, step: &Step, sid: &str, phase: Phase, frame: &mut Frame) -> Resumed {
        let Some(r) = &self.resume else {
            return Resumed::Proceed {
                pre_approved: false,
            };
        };
        let restore = |frame: &mut Frame, r: &ResumeState| {
            for (k, v) in r.fields.get(sid).cloned().unwrap_or_default() {
                frame.ctx.set_step_field(&step.id, &k, v);
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
                    .set_step_field(&step.id, "outcome", json!(outcome.as_str()));
                if r.answers.get(sid).map(String::as_str) == Some("skip")
                    && matches!(step.action.kind, ActionKind::Confirm)
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
                        .set_step_field(&step.id, "outcome", json!("succeeded"));
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
                        .set_step_field(&step.id, "outcome", json!("failed"));
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
                            .set_step_field(&step.id, "outcome", json!("succeeded"));
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
                            .set_step_field(&step.id, "outcome", json!("failed"));
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
    async fn settle_processes(&mut self) -> Option<(StepEnd, String)> {
        let procs = self.resume.as_ref()?.unfinished_processes();
        let here = shell::host_name();
        let boot = shell::boot_id();
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
    fn resume_gate(
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

    /// A prompt that failed: Ctrl-C at the prompt interrupts the run (130, resumable);
    /// anything else aborts it.
    /// Asks one gate, the one way every gate of a run is asked: journals the question, decides
    /// it (scripted answer, `--yes`, the prompter, or no answer), and journals the answer when
    /// there is one, with a manual answer's note. The caller acts on the decision.
    fn ask_gate(&mut self, req: &GateRequest, gate: Gate) -> std::io::Result<Decision> {
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

    fn prompt_failed(&mut self, e: &std::io::Error) -> StepEnd {
        if e.kind() == std::io::ErrorKind::Interrupted {
            self.cancel.cancel();
            StepEnd::Interrupted
        } else {
            StepEnd::Aborted(format!("prompt failed: {e}"))
        }
    }

    /// Records that the steps `confirm` guards are not to run (it was answered `skip`).
    /// Returns their ids.
    fn skip_guarded(
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
    async fn describe_change(&mut self, g: &Step, frame: &Frame) -> Option<Guarded> {
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
                    ActionKind::Http => {
                        if let Some(j) = r.display.pointer("/request/json") {
                            change.push(format!("JSON body: {j}"));
                        }
                    }
                    ActionKind::Kubernetes { verb } => {
                        let mut target = g
                            .action
                            .backend
                            .as_ref()
                            .and_then(|b| frame.backends_real.get(b))
                            .and_then(|b| b.kubernetes.clone())
                            .unwrap_or_default();
                        let mut args = r.real[*verb].clone();
                        let absolute = |p: &str| {
                            let p = crate::backends::expand_home(p);
                            rb.dir().join(p).display().to_string()
                        };
                        if let Some(k) = target.kubeconfig.as_mut() {
                            *k = absolute(k);
                        }
                        if let Some(Value::String(f)) = args.get_mut("file") {
                            *f = absolute(f);
                        }
                        if let Some(live) =
                            self.backends.kubernetes.preview(&target, verb, &args).await
                        {
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

    fn push_undo(&mut self, sid: &str, undo: &Undo, frame: &Frame) {
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

    fn step_failed(
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
    fn settle(
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
            .set_step_field(&step.id, "outcome", json!(outcome.as_str()));
        self.step_done(sid, phase, started, 0, outcome, note, error.clone());
        match outcome {
            StepOutcome::Succeeded | StepOutcome::Skipped => StepEnd::Done,
            StepOutcome::Failed => StepEnd::Failed(error.unwrap_or_default()),
            StepOutcome::NeedsAnswer => StepEnd::NeedsAnswer(error.unwrap_or_default()),
            StepOutcome::Aborted => StepEnd::Aborted(format!("the operator declined `{sid}`")),
        }
    }

    fn step_done(
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

    async fn run_step(
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
                .set_step_field(&step.id, "outcome", json!("skipped"));
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
                        .set_step_field(&step.id, "outcome", json!("skipped"));
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
        let summary_ctx = if matches!(step.action.kind, ActionKind::Http) {
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
                ActionKind::Confirm => GateKind::Confirm,
                ActionKind::Manual => GateKind::Manual,
                ActionKind::Input => {
                    let ia: crate::spec::InputAction =
                        match serde_json::from_value(rendered.real.clone()) {
                            Ok(i) => i,
                            Err(e) => {
                                return self.step_failed(
                                    sid,
                                    phase,
                                    started,
                                    0,
                                    format!("input step: {e}"),
                                )
                            }
                        };
                    GateKind::Input(Box::new(crate::inputs::input_action_spec(&ia)))
                }
                _ => GateKind::Terminal,
            };
            let prompt = match &step.action.kind {
                ActionKind::Confirm | ActionKind::Input => rendered
                    .display
                    .get("prompt")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                ActionKind::Manual => rendered
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
                ActionKind::Confirm => {
                    let mut out = vec![];
                    for g in rb.guarded_by(step) {
                        if let Some(d) = self.describe_change(g, frame).await {
                            out.push(d);
                        }
                    }
                    out
                }
                ActionKind::Manual | ActionKind::Input => vec![],
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
                    (ActionKind::Confirm, Answer::Reply(r)) => {
                        let text = Answer::Reply(r).text();
                        frame.ctx.set_step_field(&step.id, "answer", json!(text));
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
                    (ActionKind::Manual, Answer::Manual(m, note)) => {
                        if let Some(n) = &note {
                            frame.ctx.set_step_field(&step.id, "note", json!(n));
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
                    (ActionKind::Input, Answer::Input(v)) => {
                        frame.ctx.set_step_field(&step.id, "value", v.clone());
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
        match &step.action.kind {
            ActionKind::Assert => {
                let display = frame.ctx.display(None);
                let real = frame.ctx.real(None);
                // A body that does not read as conditions proves nothing: it fails closed.
                let (checks, malformed) = match serde_json::from_value::<
                    Vec<crate::spec::ConditionSpec>,
                >(step.action.body.clone())
                {
                    Ok(conds) if conds.is_empty() => {
                        (vec![], Some("the assert has no conditions".to_string()))
                    }
                    Ok(conds) => (evaluate(&conds, &real, &display, None), None),
                    Err(e) => (
                        vec![],
                        Some(format!("the assert's conditions do not deserialize: {e}")),
                    ),
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
                    "outcome",
                    json!(if ok { "succeeded" } else { "failed" }),
                );
                if ok {
                    self.step_done(sid, phase, started, 1, StepOutcome::Succeeded, None, None);
                    return StepEnd::Done;
                }
                let why = malformed.unwrap_or_else(|| failed_checks_message(&checks));
                return self.step_failed(sid, phase, started, 1, why);
            }
            ActionKind::Call(child) => {
                return self
                    .run_call(
                        step,
                        sid,
                        phase,
                        frame,
                        child.clone(),
                        &rendered.real,
                        started,
                    )
                    .await;
            }
            ActionKind::Analysis { interval } => {
                return self
                    .run_analysis(step, sid, phase, frame, &rendered.real, *interval, started)
                    .await;
            }
            ActionKind::Confirm | ActionKind::Manual | ActionKind::Input => {
                unreachable!("gates return above")
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
                self.attempts(step, sid, frame, &rendered.real, &step.retry, timeout)
                    .await
            }
            Err(e) => (false, 0, None, Some(e)),
        };
        if let Some(hint) = self.needs_answer.take() {
            frame
                .ctx
                .set_step_field(&step.id, "outcome", json!("failed"));
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
            frame
                .ctx
                .set_step_field(&step.id, "result", self.emitter.redactor().value(&bound(r)));
        }
        frame
            .ctx
            .set_step_field(&step.id, "attempts", json!(attempts));
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
                        frame.ctx.set_step_field(&step.id, name, v);
                    }
                }
            }
            frame
                .ctx
                .set_step_field(&step.id, "outcome", json!("succeeded"));
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
                .set_step_field(&step.id, "outcome", json!("failed"));
            self.step_failed(
                sid,
                phase,
                started,
                attempts,
                err.unwrap_or_else(|| "failed".into()),
            )
        }
    }

    /// Runs the attempts of an action: each attempt executes (and polls `verify` within the
    /// `until` budget); failed attempts are retried with backoff. Returns (ok, attempts,
    /// last result, error).
    async fn attempts(
        &mut self,
        step: &Step,
        sid: &str,
        frame: &Frame,
        real: &Value,
        retry: &Retry,
        timeout: Option<Duration>,
    ) -> (bool, u32, Option<Value>, Option<String>) {
        let rb = frame.rb.clone();
        let mut last: Option<Value> = None;
        let mut error: Option<String> = None;
        let mut attempt = 0;
        // The poll budget and interval of this run (templates over inputs are rendered now).
        let until = match step
            .until
            .as_ref()
            .map(|u| u.resolve(&json!({ "inputs": frame.ctx.inputs, "env": frame.ctx.env })))
        {
            None => None,
            Some(Ok(u)) => Some(u),
            Some(Err(e)) => return (false, 0, None, Some(e)),
        };
        while attempt < retry.attempts {
            attempt += 1;
            self.emit(Event::AttemptStarted {
                step: sid.to_string(),
                attempt,
                of: retry.attempts,
            });
            // The journal may have broken on this step's own events (a full disk): a change to
            // the world that the journal cannot record must not happen.
            if step.is_mutating() {
                if let Some(why) = self.emitter.broken() {
                    return (
                        false,
                        attempt,
                        last,
                        Some(format!("stopped before `{sid}` ran: {why}")),
                    );
                }
            }
            let a0 = self.clock.now();
            let poll_deadline = until.map(|(t, _)| later(a0, t));
            let mut polls = 0;
            let mut fatal = false;
            let mut captured: Vec<(String, Value)> = vec![];
            // The verdict of the last evaluation that did not pass (None: an error).
            let mut last_verdict: Option<Verdict> = None;
            let mut captured_if_passed: Vec<(String, Value)> = vec![];
            // Captures derived from a secret, with the value they show instead.
            let mut tainted: IndexMap<String, Value> = IndexMap::new();
            let (spawned_tx, mut spawned_rx) = tokio::sync::mpsc::unbounded_channel();
            // The attempt was stopped by a signal (not failed on its own).
            let mut interrupted = false;
            let ok = loop {
                polls += 1;
                let p0 = self.clock.now();
                let deadline = timeout.map(|t| later(p0, t));
                // The backends' redactor (a copy: the journal is written while they run).
                let redactor = self.emitter.redactor().clone();
                let cctx = CallCtx {
                    step: sid.to_string(),
                    attempt,
                    deadline,
                    clock: self.clock.clone(),
                    cancel: self.cancel.clone(),
                    progress: self.progress.clone(),
                    run_dir: self.run_dir.clone(),
                    base_dir: rb.dir(),
                    spawned: Some(spawned_tx.clone()),
                };
                let env = Env {
                    rb: &rb,
                    backends_real: &frame.backends_real,
                    backends: &self.backends,
                    input_env: frame.ctx.input_env(),
                    step_timeout: timeout,
                    redactor: &redactor,
                };
                let has_verify = !step.spec.verify.is_empty();
                let res = {
                    let fut = with_timeout(
                        self.clock.as_ref(),
                        timeout,
                        actions::execute(
                            &step.action.kind,
                            step.action.backend.as_deref(),
                            real,
                            &env,
                            &cctx,
                            has_verify,
                        ),
                    );
                    tokio::pin!(fut);
                    // Every process group the action starts is journaled as it starts, so that
                    // `resume` can tell whether it outlived an interruption.
                    loop {
                        tokio::select! {
                            biased;
                            Some(sp) = spawned_rx.recv() => {
                                let _ = self.emitter.emit(process_started(sid, attempt, sp));
                            }
                            r = &mut fut => break r,
                        }
                    }
                };
                while let Ok(sp) = spawned_rx.try_recv() {
                    let _ = self.emitter.emit(process_started(sid, attempt, sp));
                }
                let poll_ok = match res {
                    Err(e) => {
                        if let Some(diff) = e.world_diff.clone() {
                            self.emit(Event::WorldChanged {
                                step: sid.to_string(),
                                diff,
                            });
                        }
                        last = e.result.clone().or(last.take());
                        error = Some(e.message.clone());
                        last_verdict = None;
                        if e.kind == ErrorKind::Cancelled || self.cancel.is_cancelled() {
                            interrupted = e.kind == ErrorKind::Cancelled;
                            fatal = true;
                            break false;
                        }
                        if !e.retryable() {
                            fatal = true;
                            break false;
                        }
                        // While polling, an unreachable target is "not yet"; otherwise the attempt failed.
                        if poll_deadline.is_none() {
                            break false;
                        }
                        false
                    }
                    Ok(Output { result, world_diff }) => {
                        if let Some(diff) = world_diff {
                            self.emit(Event::WorldChanged {
                                step: sid.to_string(),
                                diff,
                            });
                        }
                        if step.spec.capture.is_empty() && step.spec.verify.is_empty() {
                            // Nothing reads the result here: no context to build.
                            last = Some(result);
                            error = None;
                            break true;
                        }
                        // Only the steps that captures and verifications read (and this one).
                        let mut only = steps_read(
                            step.spec
                                .capture
                                .values()
                                .map(String::as_str)
                                .chain(step.spec.verify.iter().map(|c| c.that.as_str())),
                            step.spec.verify.iter().filter_map(|c| c.message.as_deref()),
                        );
                        if let Some(ids) = only.as_mut() {
                            ids.insert(step.id.clone());
                        }
                        let mut with_caps = frame.ctx.real_reading(Some(&result), only.as_ref());
                        // The same context without secrets (masked, and masked in the result):
                        // a capture whose value differs there is derived from a secret.
                        let without_secrets = (!step.spec.capture.is_empty()).then(|| {
                            self.emitter
                                .redactor()
                                .value(&frame.ctx.display_reading(Some(&result), only.as_ref()))
                        });
                        last = Some(result);
                        // Captures must evaluate; verify reads them as `steps.<self>.<name>` too.
                        let mut cap_err = None;
                        let mut caps = Vec::new();
                        tainted.clear();
                        for (name, expr) in &step.spec.capture {
                            // Computing with a value that is not there: no data, not `none`.
                            if let Some(u) = template::unusable_operand(expr, &with_caps) {
                                cap_err = Some((
                                    format!("capture `{name}` = `{expr}`: {}", u.describe()),
                                    true,
                                ));
                                continue;
                            }
                            match template::eval(expr, &with_caps) {
                                // `rate: result.value` of a Prometheus answer that is NaN or
                                // has no series: no data, never a `null` that a later
                                // comparison would silently accept.
                                Ok(Value::Null)
                                    if expr.contains("result.value")
                                        && !verdict::tests_presence(expr)
                                        && last
                                            .as_ref()
                                            .and_then(crate::backends::prometheus::why_no_value)
                                            .is_some() =>
                                {
                                    cap_err = Some((
                                        format!("capture `{name}` = `{expr}`: no value"),
                                        true,
                                    ))
                                }
                                Ok(v) => {
                                    let shown = without_secrets
                                        .as_ref()
                                        .and_then(|c| template::eval(expr, c).ok());
                                    if shown.as_ref() != Some(&v) {
                                        tainted.insert(
                                            name.clone(),
                                            shown.unwrap_or_else(|| json!(super::redact::MASK)),
                                        );
                                    }
                                    caps.push((name, v))
                                }
                                Err(e) => {
                                    let undefined = e.contains("undefined");
                                    cap_err = Some((
                                        format!(
                                            "capture `{name}` = `{expr}`: {e}{}",
                                            last.as_ref()
                                                .and_then(|r| result_evidence(&step.action.kind, r))
                                                .map(|w| format!(" — {w}"))
                                                .unwrap_or_default()
                                        ),
                                        undefined,
                                    ))
                                }
                            }
                        }
                        for (name, v) in caps {
                            with_caps["steps"][&step.id][name] = v;
                        }
                        if let Some((e, undefined)) = cap_err {
                            // A capture that reads a value that is not there (no series, a
                            // missing field) has no data: inconclusive, not a crash.
                            if undefined {
                                let why = last
                                    .as_ref()
                                    .and_then(crate::backends::prometheus::why_no_value);
                                let reason = match why {
                                    Some(w) => format!("{w}, read by {e}"),
                                    None => format!("no data: {e}"),
                                };
                                // Journaled like any evaluation: its verdict and why.
                                self.emit(Event::VerifyEvaluated {
                                    step: sid.to_string(),
                                    attempt,
                                    poll: polls,
                                    ok: false,
                                    verdict: Some(Verdict::Inconclusive),
                                    polling: step.until.is_some(),
                                    checks: vec![Check {
                                        that: e.split(": ").next().unwrap_or(&e).to_string(),
                                        ok: false,
                                        message: None,
                                        observed: Map::new(),
                                        error: None,
                                        verdict: Some(Verdict::Inconclusive),
                                        reason: Some(reason.clone()),
                                    }],
                                });
                                error = Some(format!("verify inconclusive: {reason}"));
                                last_verdict = Some(Verdict::Inconclusive);
                            } else {
                                error = Some(e);
                                last_verdict = None;
                            }
                            if poll_deadline.is_none() {
                                break false;
                            }
                            false
                        } else if step.spec.verify.is_empty() {
                            error = None;
                            captured = captures_of(step, &with_caps);
                            break true;
                        } else {
                            let shown = last.as_ref().map(|r| self.emitter.redactor().value(r));
                            let mut ctx_display =
                                frame.ctx.display_reading(shown.as_ref(), only.as_ref());
                            // The step's own captures are shown as observed values too (the
                            // measured rate, not only the threshold it is compared with).
                            for name in step.spec.capture.keys() {
                                let v = &with_caps["steps"][&step.id][name];
                                ctx_display["steps"][&step.id][name] =
                                    self.emitter.redactor().value(v);
                            }
                            let checks = evaluate(
                                &step.spec.verify,
                                &with_caps,
                                &ctx_display,
                                Some(&step.id),
                            );
                            let all = checks.iter().all(|c| c.ok);
                            let v = checks_verdict(&checks);
                            self.emit(Event::VerifyEvaluated {
                                step: sid.to_string(),
                                attempt,
                                poll: polls,
                                ok: all,
                                verdict: Some(v),
                                polling: step.until.is_some(),
                                checks: checks.clone(),
                            });
                            if all {
                                error = None;
                                captured = captures_of(step, &with_caps);
                                break true;
                            }
                            last_verdict = Some(v);
                            if v == Verdict::Inconclusive {
                                captured_if_passed = captures_of(step, &with_caps);
                            }
                            let mut msg = failed_checks_message(&checks);
                            // A check that could not be evaluated (a value absent from the
                            // result) is explained by what the backend answered.
                            if checks.iter().any(|c| !c.ok && c.error.is_some()) {
                                if let Some(w) = last
                                    .as_ref()
                                    .and_then(|r| result_evidence(&step.action.kind, r))
                                {
                                    msg.push_str(&format!(" — {w}"));
                                }
                            }
                            error = Some(msg);
                            false
                        }
                    }
                };
                if poll_ok {
                    break true;
                }
                // Poll again if the budget allows.
                match (until, poll_deadline) {
                    (Some((u_timeout, u_interval)), Some(pd)) => {
                        let next = later(self.clock.now(), u_interval);
                        if next > pd {
                            let e = error.take().unwrap_or_else(|| "verify did not hold".into());
                            let still = if last_verdict == Some(Verdict::Inconclusive) {
                                "still no data"
                            } else {
                                "still failing"
                            };
                            error = Some(format!(
                                "{e} — {still} after {} of polling ({polls} polls)",
                                fmt_duration(u_timeout)
                            ));
                            break false;
                        }
                        let why = error
                            .as_deref()
                            .map(|e| format!(": {}", first_chars(e, 240)))
                            .unwrap_or_default();
                        self.progress.status(&format!(
                            "poll {polls}: not yet{why}; next in {}",
                            fmt_duration(u_interval)
                        ));
                        if !self.sleep(u_interval).await {
                            interrupted = true;
                            fatal = true;
                            break false;
                        }
                    }
                    _ => break false,
                }
            };
            // No data at the end of the budget: what the author chose it to mean.
            let mut ok = ok;
            if !ok && !fatal && last_verdict == Some(Verdict::Inconclusive) {
                match step.spec.on_inconclusive.unwrap_or_default() {
                    OnInconclusive::Fail => {}
                    OnInconclusive::Pass => {
                        self.progress.status(&format!(
                            "`{sid}`: no data, counted as passed (on_inconclusive: pass)"
                        ));
                        ok = true;
                        error = None;
                        captured = std::mem::take(&mut captured_if_passed);
                    }
                    OnInconclusive::Ask => {
                        let why = error.clone().unwrap_or_default();
                        match self.ask_inconclusive(step, sid, &why) {
                            Some(true) => {
                                ok = true;
                                error = None;
                                captured = std::mem::take(&mut captured_if_passed);
                            }
                            Some(false) => {
                                error = Some(format!("{why} (the operator did not accept it)"));
                                fatal = true;
                            }
                            None => fatal = true,
                        }
                    }
                }
            }
            let duration_ms = millis_between(a0, self.clock.now());
            let shown = last
                .as_ref()
                .map(|r| self.emitter.redactor().value(&bound(r)))
                .unwrap_or(Value::Null);
            // A successful attempt and its captures are one journal write: a journaled success
            // then always comes with its captures, and `resume` can complete the step from the
            // journal alone instead of running it again.
            // A capture derived from a secret is a secret: masked from now on, and journaled as
            // it shows without the secret (its value may be too short to mask).
            for (name, value) in &captured {
                if tainted.contains_key(name) {
                    self.add_secret(value);
                    self.tainted_now.push((step.id.clone(), name.clone()));
                }
            }
            let mut batch: Vec<Event> = captured
                .into_iter()
                .map(|(name, value)| {
                    let value = tainted.get(&name).cloned().unwrap_or(value);
                    Event::Capture {
                        step: sid.to_string(),
                        name,
                        value: bound(&value),
                    }
                })
                .collect();
            batch.push(Event::AttemptFinished {
                step: sid.to_string(),
                attempt,
                ok,
                error: error.clone(),
                duration_ms,
                polls,
                result: shown,
                interrupted: !ok && interrupted,
            });
            let _ = self.emitter.emit_all(batch);
            if ok {
                return (true, attempt, last, None);
            }
            if fatal || attempt >= retry.attempts {
                break;
            }
            let delay = retry.delay_after(attempt);
            self.progress.status(&format!(
                "attempt {attempt} of {} failed; retrying in {}",
                retry.attempts,
                fmt_duration(delay)
            ));
            if !self.sleep(delay).await {
                break;
            }
        }
        (false, attempt, last, error)
    }

    /// A canary analysis: `checks` checks, one every `interval`, each reading every metric
    /// once; the step fails when `failed_checks` checks have failed, and passes after `checks`.
    /// Each check is journaled with every metric's query as sent, value and verdict.
    #[allow(clippy::too_many_arguments)]
    async fn run_analysis(
        &mut self,
        step: &Step,
        sid: &str,
        phase: Phase,
        frame: &mut Frame,
        real: &Value,
        interval: Duration,
        started: DateTime<Utc>,
    ) -> StepEnd {
        let a: crate::spec::AnalysisAction = match serde_json::from_value(real.clone()) {
            Ok(a) => a,
            Err(e) => return self.step_failed(sid, phase, started, 0, format!("analysis: {e}")),
        };
        let on_inc = a.on_inconclusive.unwrap_or_default();
        let rb = frame.rb.clone();
        self.emit(Event::AttemptStarted {
            step: sid.to_string(),
            attempt: 1,
            of: 1,
        });
        let mut failed = 0u32;
        let mut history: Vec<Value> = vec![];
        let mut outcome: Result<(), String> = Ok(());
        for check in 1..=a.checks {
            if check > 1 && !self.sleep(interval).await {
                outcome = Err("interrupted".into());
                break;
            }
            let cctx = CallCtx {
                step: sid.to_string(),
                attempt: check,
                deadline: step
                    .timeout
                    .map(|t| self.clock.now() + chrono::Duration::from_std(t).unwrap_or_default()),
                clock: self.clock.clone(),
                cancel: self.cancel.clone(),
                progress: self.progress.clone(),
                run_dir: self.run_dir.clone(),
                base_dir: rb.dir(),
                spawned: None,
            };
            let env = Env {
                rb: &rb,
                backends_real: &frame.backends_real,
                backends: &self.backends,
                input_env: vec![],
                step_timeout: step.timeout,
                redactor: self.emitter.redactor(),
            };
            let target = match actions::prom_target(step.action.backend.as_deref(), &env, &cctx) {
                Ok(t) => t,
                Err(e) => {
                    outcome = Err(e.message);
                    break;
                }
            };
            let mut readings = vec![];
            for m in &a.metrics {
                let q = crate::backends::prometheus::PromQuery {
                    query: m.query.clone(),
                    range: None,
                    name: Some(m.name.clone()),
                };
                let (value, text) = match self.backends.prometheus.query(&target, &q, &cctx).await {
                    Ok(ans) => match ans.series.len() {
                        0 => (None, Some("no data".to_string())),
                        1 => {
                            let v = ans.series[0].last();
                            let t = v
                                .filter(|x| !x.is_finite())
                                .map(crate::backends::prometheus::value_text);
                            (v, t)
                        }
                        n => (None, Some(format!("{n} series where one was expected"))),
                    },
                    Err(e) => (None, Some(format!("query failed: {}", e.message))),
                };
                let verdict = verdict::within(value, m.min, m.max);
                readings.push(super::events::MetricReading {
                    name: m.name.clone(),
                    query: m.query.clone(),
                    value: value.filter(|v| v.is_finite()),
                    text,
                    min: m.min,
                    max: m.max,
                    verdict,
                });
            }
            let v = Verdict::all(readings.iter().map(|r| r.verdict));
            let counts = match v {
                Verdict::Pass => false,
                Verdict::Fail => true,
                Verdict::Inconclusive => match on_inc {
                    OnInconclusive::Fail => true,
                    OnInconclusive::Pass => false,
                    OnInconclusive::Ask => {
                        let why = format!("check {check}: {}", readings_text(&readings));
                        match self.ask_inconclusive(step, sid, &why) {
                            Some(yes) => !yes,
                            None => {
                                let hint = self.needs_answer.take().unwrap_or_default();
                                self.emit(Event::AnalysisCheck {
                                    step: sid.to_string(),
                                    check,
                                    verdict: v,
                                    metrics: readings,
                                    failed,
                                });
                                self.step_done(
                                    sid,
                                    phase,
                                    started,
                                    1,
                                    StepOutcome::NeedsAnswer,
                                    None,
                                    Some(format!("needs an answer: {hint}")),
                                );
                                return StepEnd::NeedsAnswer(hint);
                            }
                        }
                    }
                },
            };
            if counts {
                failed += 1;
            }
            let text = readings_text(&readings);
            history.push(json!({ "check": check, "verdict": v.as_str(), "metrics": readings }));
            self.emit(Event::AnalysisCheck {
                step: sid.to_string(),
                check,
                verdict: v,
                metrics: readings,
                failed,
            });
            self.progress.status(&format!(
                "check {check} of {}: {} ({text}); {failed} failed of {} allowed",
                a.checks,
                v.as_str(),
                a.failed_checks
            ));
            if failed >= a.failed_checks {
                let no_data = if v == Verdict::Inconclusive {
                    " (no data)"
                } else {
                    ""
                };
                outcome = Err(format!(
                    "analysis failed: {failed} failed checks of {check} (limit {}); last check{no_data}: {text}",
                    a.failed_checks
                ));
                break;
            }
        }
        let result = json!({ "checks": history.len(), "failed": failed, "history": history });
        let ok = outcome.is_ok();
        self.emit(Event::AttemptFinished {
            step: sid.to_string(),
            attempt: 1,
            ok,
            error: outcome.as_ref().err().cloned(),
            duration_ms: millis_between(started, self.clock.now()),
            polls: history.len() as u32,
            result: bound(&result),
            interrupted: !ok && self.cancel.is_cancelled(),
        });
        frame.ctx.set_step_field(&step.id, "result", bound(&result));
        frame.ctx.set_step_field(
            &step.id,
            "outcome",
            json!(if ok { "succeeded" } else { "failed" }),
        );
        if self.cancel.is_cancelled() {
            self.step_done(
                sid,
                phase,
                started,
                1,
                StepOutcome::Aborted,
                None,
                Some("interrupted by a signal (Ctrl-C or SIGTERM)".into()),
            );
            return StepEnd::Interrupted;
        }
        match outcome {
            Ok(()) => {
                self.step_done(sid, phase, started, 1, StepOutcome::Succeeded, None, None);
                StepEnd::Done
            }
            Err(e) => self.step_failed(sid, phase, started, 1, e),
        }
    }

    /// Asks the operator whether a verification without data may count as passed
    /// (`on_inconclusive: ask`). Some(yes?), or None when no answer can be given (the hint is
    /// left in `needs_answer`).
    fn ask_inconclusive(&mut self, step: &Step, sid: &str, why: &str) -> Option<bool> {
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

    /// Sleeps on the run's clock; false when interrupted.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.clock.sleep(d) => true,
            _ = self.cancel.cancelled() => false,
        }
    }

    async fn run_call(
        &mut self,
        step: &Step,
        sid: &str,
        phase: Phase,
        frame: &mut Frame,
        child: Arc<Runbook>,
        real: &Value,
        started: DateTime<Utc>,
    ) -> StepEnd {
        let supplied: IndexMap<String, Value> = real
            .get("inputs")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let mut inputs = IndexMap::new();
        for (name, spec) in &child.spec.inputs {
            let v = match supplied.get(name).or(spec.default.as_ref()) {
                Some(v) => v.clone(),
                None => {
                    return self.step_failed(
                        sid,
                        phase,
                        started,
                        0,
                        format!("call: input `{name}` of `{}` has no value", child.name()),
                    )
                }
            };
            let v = match (&v, spec.kind) {
                (Value::String(s), k) if k != crate::spec::InputType::String => {
                    match crate::inputs::coerce(name, spec, s) {
                        Ok(v) => v,
                        Err(e) => {
                            return self.step_failed(sid, phase, started, 0, format!("call: {e}"))
                        }
                    }
                }
                _ => v,
            };
            if let Err(e) = crate::inputs::validate_value(name, spec, &v) {
                return self.step_failed(sid, phase, started, 0, format!("call: {e}"));
            }
            inputs.insert(name.clone(), v);
        }
        let secrets = match &self.isolated {
            Some((known, _)) => child
                .spec
                .secrets
                .keys()
                .map(|k| (k.clone(), known.get(k).cloned().unwrap_or_default()))
                .collect(),
            None => match load_secrets(&child) {
                Ok(s) => s,
                Err(e) => return self.step_failed(sid, phase, started, 0, format!("call: {e}")),
            },
        };
        for v in secrets.values() {
            self.add_secret(&Value::String(v.clone()));
        }
        let ctx = RunContext {
            inputs,
            secrets,
            env: match &self.isolated {
                Some((_, known)) => child
                    .spec
                    .env
                    .iter()
                    .map(|k| (k.clone(), known.get(k).cloned().unwrap_or(json!(""))))
                    .collect(),
                None => declared_env(&child),
            },
            run: frame.ctx.run.clone(),
            steps: Map::new(),
            tainted: Default::default(),
        };
        let backends_real = match render_backends(&child, &ctx) {
            Ok(b) => b,
            Err(e) => return self.step_failed(sid, phase, started, 0, format!("call: {e}")),
        };
        let mut child_frame = Frame {
            rb: child.clone(),
            ctx,
            backends_real,
            prefix: format!("{sid}/"),
        };
        let (end, inner) = Box::pin(self.run_steps(&mut child_frame, phase)).await;
        // The caller sees the child's captures as `steps.<call id>.<child step>.<capture>`.
        for (k, v) in child_frame.ctx.steps {
            frame.ctx.set_step_field(&step.id, &k, v);
        }
        match end {
            StepEnd::Done => {
                frame
                    .ctx
                    .set_step_field(&step.id, "outcome", json!("succeeded"));
                self.step_done(sid, phase, started, 1, StepOutcome::Succeeded, None, None);
                StepEnd::Done
            }
            StepEnd::Failed(m) => self.step_failed(
                sid,
                phase,
                started,
                1,
                format!(
                    "`{}` failed at `{}`: {m}",
                    child.name(),
                    inner.unwrap_or_default()
                ),
            ),
            other => {
                let outcome = match &other {
                    StepEnd::NeedsAnswer(_) => StepOutcome::NeedsAnswer,
                    _ => StepOutcome::Aborted,
                };
                self.step_done(sid, phase, started, 1, outcome, None, None);
                other
            }
        }
    }

    /// Runs the `undo` of finished steps, newest first. A terminal undo goes through the gate
    /// like any terminal step. Returns where and why the rollback stopped before its end (an
    /// interruption, a missing answer, a declined undo): the run then ends resumable, and a
    /// resumed run goes on with the undos that did not finish.
    async fn rollback(&mut self) -> Option<(StepEnd, String)> {
        while let Some(entry) = self.undo_stack.pop() {
            let uid = undo_id(&entry.step);
            if self.cancel.is_cancelled() {
                return Some((StepEnd::Interrupted, uid));
            }
            let manual = matches!(entry.undo.action.kind, ActionKind::Manual);
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
                ActionKind::Manual => {
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
                            &rendered.real,
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

    /// Runs the `on_failure` steps. A failed handler does not stop the others; an
    /// interruption, a missing answer or a declined gate stops the sequence (resumable).
    async fn run_on_failure(&mut self, frame: &mut Frame) -> Option<(StepEnd, String)> {
        let rb = frame.rb.clone();
        for step in &rb.on_failure {
            let sid = step.id.clone();
            if self.cancel.is_cancelled() {
                return Some((StepEnd::Interrupted, sid));
            }
            let pre_approved = match self.resume_step(step, &sid, Phase::OnFailure, frame) {
                Resumed::Proceed { pre_approved } => pre_approved,
                Resumed::Settled(StepEnd::Done | StepEnd::Failed(_)) => continue,
                Resumed::Settled(other) => return Some((other, sid)),
            };
            match self
                .run_step(step, &sid, Phase::OnFailure, frame, pre_approved)
                .await
            {
                StepEnd::Done | StepEnd::Failed(_) => {}
                other => return Some((other, sid)),
            }
        }
        None
    }
}

/// Runs a future with the attempt's timeout. On a virtual clock the simulated backends
/// account their own time, so the limit is checked against the clock afterwards.
async fn with_timeout<F>(
    clock: &dyn Clock,
    timeout: Option<Duration>,
    fut: F,
) -> Result<Output, ActionError>
where
    F: std::future::Future<Output = Result<Output, ActionError>>,
{
    let Some(t) = timeout else { return fut.await };
    if clock.is_virtual() {
        let start = clock.now();
        let r = fut.await;
        let spent = (clock.now() - start).to_std().unwrap_or_default();
        if spent > t && r.is_ok() {
            return Err(ActionError::new(
                ErrorKind::Timeout,
                format!("timed out after {}", fmt_duration(t)),
            ));
        }
        return r;
    }
    // Backends enforce the deadline themselves (and kill what they started); this is the
    // safety net for one that does not.
    match tokio::time::timeout(
        t + crate::backends::shell::KILL_GRACE + Duration::from_secs(1),
        fut,
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(ActionError::new(
            ErrorKind::Timeout,
            format!("timed out after {}", fmt_duration(t)),
        )),
    }
}

/// The journal event for a process group a step's attempt started.
fn process_started(step: &str, attempt: u32, sp: crate::backends::Spawn) -> Event {
    Event::ProcessStarted {
        step: step.to_string(),
        attempt,
        pgid: sp.pgid,
        host: crate::backends::shell::host_name(),
        boot_id: crate::backends::shell::boot_id(),
        start_ticks: sp.start_ticks,
    }
}

/// The captured values of a successful poll, in the order the step declares them.
fn captures_of(step: &Step, with_caps: &Value) -> Vec<(String, Value)> {
    step.spec
        .capture
        .keys()
        .map(|name| (name.clone(), with_caps["steps"][&step.id][name].clone()))
        .collect()
}

/// Evaluates conditions; observed values come from the display context (secrets masked).
fn evaluate(
    conds: &[crate::spec::ConditionSpec],
    real: &Value,
    display: &Value,
    own: Option<&str>,
) -> Vec<Check> {
    conds
        .iter()
        .map(|c| {
            let ev = verdict::evaluate(&c.that, real, own);
            Check {
                that: c.that.clone(),
                ok: ev.verdict == Verdict::Pass,
                message: c.message.as_ref().map(|m| render_text(m, display)),
                observed: observe(&c.that, display),
                error: ev.error,
                verdict: Some(ev.verdict),
                reason: ev.reason,
            }
        })
        .collect()
}

/// The verdict of a set of checks.
fn checks_verdict(checks: &[Check]) -> Verdict {
    Verdict::all(checks.iter().map(Check::verdict))
}

fn observed_text(obs: &Map<String, Value>) -> String {
    obs.iter()
        .map(|(k, v)| format!("{k} = {}", short_json(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `success-rate = 92 (min 99): fail, p99-ms = no data: inconclusive`
fn readings_text(rs: &[super::events::MetricReading]) -> String {
    rs.iter()
        .map(|r| {
            let v = match (r.value, &r.text) {
                (Some(v), _) => crate::backends::prometheus::value_text(v),
                (None, Some(t)) => t.clone(),
                (None, None) => "no value".into(),
            };
            let mut bounds = vec![];
            if let Some(m) = r.min {
                bounds.push(format!("min {m}"));
            }
            if let Some(m) = r.max {
                bounds.push(format!("max {m}"));
            }
            format!(
                "{} = {v} ({}): {}",
                r.name,
                bounds.join(", "),
                r.verdict.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn first_chars(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n).collect::<String>())
    } else {
        s.to_string()
    }
}

fn short_json(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

fn failed_checks_message(checks: &[Check]) -> String {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| {
            let label = c.message.clone().unwrap_or_else(|| format!("`{}`", c.that));
            if c.verdict() == Verdict::Inconclusive {
                let why = c.reason.clone().unwrap_or_else(|| "no value".into());
                return format!("verify inconclusive: {label}: {why}");
            }
            let mut s = format!("verify failed: {label}");
            if !c.observed.is_empty() {
                s.push_str(&format!(" (observed {})", observed_text(&c.observed)));
            }
            if let Some(e) = &c.error {
                s.push_str(&format!(" [{e}]"));
            }
            s
        })
        .collect();
    failed.join("; ")
}

/// Why a result may lack what a capture or check reads: an HTTP error status (with the
/// start of the body), or a command that exited non-zero (with its last line of stderr).
/// Control characters are dropped: the text comes from a server or a process.
fn result_evidence(kind: &ActionKind, result: &Value) -> Option<String> {
    let clean = |s: &str| -> String {
        let one: String = s
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        if one.chars().count() > 160 {
            format!("{}…", one.chars().take(160).collect::<String>())
        } else {
            one
        }
    };
    match kind {
        ActionKind::Http => {
            let status = result.get("status").and_then(Value::as_u64)?;
            if status < 400 {
                return None;
            }
            let reason = u16::try_from(status)
                .ok()
                .and_then(|s| reqwest::StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .map(|r| format!(" {r}"))
                .unwrap_or_default();
            let body = result
                .get("body")
                .and_then(Value::as_str)
                .map(clean)
                .filter(|b| !b.is_empty())
                .map(|b| format!(": {b}"))
                .unwrap_or_default();
            Some(format!("the server answered HTTP {status}{reason}{body}"))
        }
        ActionKind::Shell => {
            let code = result.get("exit_code").and_then(Value::as_i64)?;
            if code == 0 {
                return None;
            }
            let last = result
                .get("stderr")
                .and_then(Value::as_str)
                .and_then(|e| e.trim().lines().last())
                .map(clean)
                .filter(|l| !l.is_empty())
                .map(|l| format!(": {l}"))
                .unwrap_or_default();
            Some(format!("the command exited with code {code}{last}"))
        }
        _ => None,
    }
}

fn render_text(src: &str, ctx: &Value) -> String {
    match template::render_str(src, ctx) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => src.to_string(),
    }
}

fn render_backends(
    rb: &Runbook,
    ctx: &RunContext,
) -> Result<IndexMap<String, BackendSpec>, String> {
    let real = ctx.real(None);
    rb.spec
        .backends
        .iter()
        .map(|(n, b)| {
            actions::render_backend(b, &real)
                .map(|r| (n.clone(), r))
                .map_err(|e| format!("backend `{n}`: {e}"))
        })
        .collect()
}

/// Reads the runbook's secrets from the environment and files.
pub fn load_secrets(rb: &Runbook) -> Result<IndexMap<String, String>, String> {
    let mut out = IndexMap::new();
    let mut missing = vec![];
    for (name, s) in &rb.spec.secrets {
        let v = if let Some(var) = &s.env {
            std::env::var(var).ok()
        } else if let Some(file) = &s.file {
            let p = rb.dir().join(file);
            std::fs::read_to_string(&p)
                .ok()
                .map(|t| t.trim_end_matches(['\n', '\r']).to_string())
        } else {
            None
        };
        match v {
            Some(v) => {
                // A value that cannot be masked safely would leak, or mask ordinary text.
                if let Some(why) = crate::exec::redact::weakness(&v) {
                    let from = match (&s.env, &s.file) {
                        (Some(var), _) => format!(" (the environment variable {var})"),
                        (_, Some(f)) => format!(" (the file {f})"),
                        _ => String::new(),
                    };
                    missing.push(format!(
                        "secret `{name}`{from} cannot be masked in output safely: {why}; use a longer, random value"
                    ));
                }
                out.insert(name.clone(), v);
            }
            None if !s.required => {
                out.insert(name.clone(), String::new());
            }
            None => missing.push(match (&s.env, &s.file) {
                (Some(var), _) => format!("secret `{name}`: set the environment variable {var}"),
                (_, Some(f)) => format!("secret `{name}`: cannot read the file {f}"),
                _ => format!("secret `{name}` has no source"),
            }),
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing.join("; "))
    }
}

/// The environment variables a runbook declared (absent ones are empty strings).
pub fn declared_env(rb: &Runbook) -> Map<String, Value> {
    rb.spec
        .env
        .iter()
        .map(|k| {
            (
                k.clone(),
                Value::String(std::env::var(k).unwrap_or_default()),
            )
        })
        .collect()
}

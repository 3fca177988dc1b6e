//! The runner: preconditions, then per step the guard, the gate, the action with its timeout,
//! captures, verifications polled within their budget, retries with backoff; on failure the
//! rollback strategy and `on_failure`. Every transition is an event; nothing else is state.
//!
//! By concern: this module holds the run (`Runner::run`) and its frames; `step` a step's
//! lifecycle; `gates` every question asked (`ask_gate`); `attempts` attempts, timeouts and
//! polling; `analysis` canary analyses; `calls` called runbooks; `rollback` the undo stack;
//! `on_failure` the failure handlers; `resume` what a resumed run reads from its journal;
//! `evidence` the texts a failure shows.

mod analysis;
mod attempts;
mod calls;
mod evidence;
mod gates;
mod on_failure;
mod resume;
mod rollback;
mod step;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::actions;
use super::clock::{millis_between, stamp, Clock};
use super::context::{observe, RunContext};
use super::emitter::Emitter;
use super::events::{Event, Phase, RunMode, RunOutcome, RunbookInfo};
use super::gate::Gatekeeper;
use super::host::{HostEnv, IsolatedHost};
use super::resume::ResumeState;
use super::verdict;
use crate::backends::{Backends, Progress};
use crate::model::{Runbook, Undo};
use crate::spec::{BackendSpec, RollbackStrategy};
use crate::template;
use crate::template::namespace::RunFields;

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
    /// Where called runbooks' secrets and environment variables come from: the host
    /// (`RealHost`), or for drills and training the values above by name (`IsolatedHost`).
    pub host_env: Arc<dyn HostEnv>,
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

#[cfg(test)]
thread_local! {
    /// Tests: the real context of the last run on this thread, after its main steps
    /// (`session::namespace_tests`).
    pub(crate) static SEEN: std::cell::RefCell<Option<Value>> = const { std::cell::RefCell::new(None) };
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
    /// Where called runbooks' secrets and env come from (`RunConfig::host_env`).
    host_env: Arc<dyn HostEnv>,
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
            host_env: Arc::new(IsolatedHost::default()),
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
        self.host_env = cfg.host_env.clone();
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
        ctx.run = RunFields {
            id: run_id.clone(),
            operator: cfg.operator.clone(),
            reason: cfg.reason.clone().unwrap_or_default(),
            started_at: run_started_at,
            runbook: rb.name().to_string(),
            host: cfg.host.clone(),
        }
        .to_map();

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
        #[cfg(test)]
        SEEN.with(|c| *c.borrow_mut() = Some(frame.ctx.real(None)));
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

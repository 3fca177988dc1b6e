//! Resuming: what a journal says about a run that stopped before its end.
//!
//! The journal is replayed into one [`Track`] per step — main steps, `on_failure` steps and
//! undos (as `<step>.undo`) alike — and each track answers one question for the runner
//! ([`ResumeState::resumption`]): run it, keep its recorded end, complete its record from its
//! journaled last attempt, or — when it reached its backend and did not finish as succeeded —
//! ask before running it again. A rollback or an `on_failure` sequence therefore resumes where
//! it stopped, like the main steps.
//!
//! Before any of that the journal's structure is validated (one run id, strictly increasing
//! sequence numbers, every end has its start): a forged or spliced journal is refused.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::events::{Envelope, Event, FileHash, Phase, RunMode, RunOutcome, StepOutcome};
use super::journal;

/// A process group a step started, as journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub attempt: u32,
    pub pgid: u32,
    pub host: String,
    pub boot_id: String,
    pub start_ticks: Option<u64>,
}

/// What the journal says about one step (or undo) of the run.
#[derive(Debug, Clone, Default)]
pub struct Track {
    pub phase: Option<Phase>,
    /// How it finished, if its end is journaled (`step_finished`, `step_skipped`,
    /// `undo_finished`).
    pub finished: Option<StepOutcome>,
    /// The error recorded with its end (a failed step's message).
    pub error: Option<String>,
    /// An attempt started since the step last started: its action may have reached the
    /// backend.
    pub reached: bool,
    /// The last attempt's number and how many it had.
    pub attempt: u32,
    pub of: u32,
    /// The last attempt's end: Some(ok) when journaled.
    pub last_ok: Option<bool>,
    /// The last attempt was stopped by a signal.
    pub interrupted: bool,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// Process groups started by its attempts since it last started.
    pub processes: Vec<Process>,
}

impl Track {
    /// Its end is journaled as succeeded, skipped or failed: nothing of it can still run.
    fn ended(&self) -> bool {
        matches!(
            self.finished,
            Some(StepOutcome::Succeeded | StepOutcome::Skipped | StepOutcome::Failed)
        )
    }
}

/// What resuming does with one step.
#[derive(Debug, Clone, PartialEq)]
pub enum Resumption {
    /// Never started, or stopped before its action reached a backend (a gate, a guard): run
    /// it; its gates ask again.
    Run,
    /// Its end is journaled: keep it (a failed step is not run again; its failure stands).
    Finished(StepOutcome, Option<String>),
    /// Its last attempt's end is journaled but not the step's: complete the record without
    /// running anything (ok: the action took effect and its captures are journaled; not ok: it
    /// failed with no attempt left).
    Complete {
        ok: bool,
        attempts: u32,
        error: Option<String>,
    },
    /// It reached its backend and did not finish as succeeded: running it again needs an
    /// answer unless it is read-only or idempotent.
    Reached,
}

/// The state of an unfinished run, replayed from its journal.
#[derive(Debug, Clone, Default)]
pub struct ResumeState {
    pub run_id: String,
    pub runbook_path: String,
    pub sha256: String,
    /// Every runbook file the run loaded, with its hash (empty in journals written before
    /// they were recorded: then only `sha256` is checked).
    pub files: Vec<FileHash>,
    pub operator: String,
    pub reason: Option<String>,
    /// `None` until the journal's `run_started` is read.
    pub mode: Option<RunMode>,
    pub started_at: String,
    pub inputs: IndexMap<String, Value>,
    /// Per step id (`<step>.undo` for undos): what the journal says about it.
    pub steps: HashMap<String, Track>,
    /// Fields (`steps.<id>.*`) recorded for steps: captures, values, notes.
    pub fields: HashMap<String, Map<String, Value>>,
    /// The answers given at gates (`confirm`, terminal steps), by step: a confirmation
    /// answered `skip` keeps the steps it guards skipped after a resume.
    pub answers: HashMap<String, String>,
    /// The run undid its changes (an `abort` answer, or its rollback strategy).
    pub rolled_back: bool,
    /// The exit code of the last recorded end (130: interrupted by a signal).
    pub last_exit: Option<i32>,
    /// How the run ended, if it recorded an end.
    pub ended: Option<RunOutcome>,
    /// The last sequence number, so new events continue the numbering.
    pub last_seq: u64,
    pub truncated: bool,
}

/// The id under which an undo is tracked (and answered: `--answer <step>.undo=...`).
pub fn undo_id(step: &str) -> String {
    format!("{step}.undo")
}

impl ResumeState {
    /// Replays a journal, after validating its structure.
    pub fn load(path: &Path) -> Result<ResumeState, String> {
        let read =
            journal::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if let Some((line, err)) = read.bad_lines.first() {
            return Err(format!(
                "{}:{line}: not a journal event: {err}",
                path.display()
            ));
        }
        validate(&read.events).map_err(|(line, msg)| {
            format!(
                "{}:{line}: {msg}; the journal was edited or mixes runs, so it cannot say what ran. Refusing to resume: start a new run",
                path.display()
            )
        })?;
        let mut s = ResumeState {
            truncated: read.truncated,
            ..Default::default()
        };
        for env in &read.events {
            s.apply(env);
        }
        if s.run_id.is_empty() || s.sha256.is_empty() {
            return Err(format!(
                "{} has no run_started event; it is not a run journal",
                path.display()
            ));
        }
        Ok(s)
    }

    fn track(&mut self, id: &str) -> &mut Track {
        self.steps.entry(id.to_string()).or_default()
    }

    fn apply(&mut self, env: &Envelope) {
        self.last_seq = self.last_seq.max(env.seq);
        self.run_id = env.run_id.clone();
        match &env.event {
            Event::RunStarted {
                runbook,
                inputs,
                operator,
                reason,
                mode,
                ..
            } => {
                self.runbook_path = runbook.path.clone();
                self.sha256 = runbook.sha256.clone();
                self.files = runbook.files.clone();
                self.operator = operator.clone();
                self.reason = reason.clone();
                self.mode = Some(*mode);
                self.started_at = env.ts.clone();
                if let Value::Object(m) = inputs {
                    self.inputs = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                }
            }
            Event::RunResumed { sha256, files, .. } => {
                if let Some(h) = sha256 {
                    self.sha256 = h.clone();
                }
                if !files.is_empty() {
                    self.files = files.clone();
                }
            }
            Event::StepStarted { step, phase, .. } => {
                *self.track(step) = Track {
                    phase: Some(*phase),
                    ..Default::default()
                };
            }
            Event::GateAnswered { step, answer, .. } => {
                self.answers.insert(step.clone(), answer.clone());
            }
            Event::UndoStarted { step, .. } => {
                self.rolled_back = true;
                *self.track(&undo_id(step)) = Track {
                    phase: Some(Phase::Undo),
                    ..Default::default()
                };
            }
            Event::AttemptStarted { step, attempt, of } => {
                let t = self.track(step);
                t.reached = true;
                t.attempt = *attempt;
                t.of = *of;
                t.last_ok = None;
                t.interrupted = false;
                t.last_error = None;
            }
            Event::AttemptFinished {
                step,
                attempt,
                ok,
                error,
                interrupted,
                ..
            } => {
                let t = self.track(step);
                if t.attempt == *attempt {
                    t.last_ok = Some(*ok);
                    t.interrupted = *interrupted;
                    t.last_error = error.clone();
                }
            }
            Event::ProcessStarted {
                step,
                attempt,
                pgid,
                host,
                boot_id,
                start_ticks,
            } => {
                self.track(step).processes.push(Process {
                    attempt: *attempt,
                    pgid: *pgid,
                    host: host.clone(),
                    boot_id: boot_id.clone(),
                    start_ticks: *start_ticks,
                });
            }
            Event::Capture { step, name, value } => {
                self.fields
                    .entry(step.clone())
                    .or_default()
                    .insert(name.clone(), value.clone());
            }
            Event::StepSkipped { step, phase, .. } => {
                let t = self.track(step);
                t.phase = Some(*phase);
                t.finished = Some(StepOutcome::Skipped);
            }
            Event::StepFinished {
                step,
                outcome,
                phase,
                note,
                error,
                ..
            } => {
                let t = self.track(step);
                t.phase = Some(*phase);
                t.finished = Some(*outcome);
                t.error = error.clone();
                if let Some(n) = note {
                    self.fields
                        .entry(step.clone())
                        .or_default()
                        .insert("note".into(), Value::String(n.clone()));
                }
            }
            Event::UndoFinished {
                step, ok, error, ..
            } => {
                let t = self.track(&undo_id(step));
                t.finished = Some(if *ok {
                    StepOutcome::Succeeded
                } else {
                    StepOutcome::Failed
                });
                t.error = error.clone();
            }
            Event::RunFinished {
                outcome, exit_code, ..
            } => {
                self.ended = Some(*outcome);
                self.last_exit = Some(*exit_code);
            }
            _ => {}
        }
    }

    /// What resuming does with a step (or `<step>.undo`).
    pub fn resumption(&self, id: &str) -> Resumption {
        let Some(t) = self.steps.get(id) else {
            return Resumption::Run;
        };
        // Stopped (interrupted, declined, waiting for an answer), or no end journaled: the
        // attempts decide.
        if let Some(o @ (StepOutcome::Succeeded | StepOutcome::Skipped | StepOutcome::Failed)) =
            t.finished
        {
            return Resumption::Finished(o, t.error.clone());
        }
        if !t.reached {
            return Resumption::Run;
        }
        match t.last_ok {
            Some(true) => Resumption::Complete {
                ok: true,
                attempts: t.attempt,
                error: None,
            },
            // It failed on its own (not stopped by a signal) with no attempt left: the step
            // failed, only its end is missing.
            Some(false) if !t.interrupted && t.attempt >= t.of => Resumption::Complete {
                ok: false,
                attempts: t.attempt,
                error: t.last_error.clone(),
            },
            _ => Resumption::Reached,
        }
    }

    /// Steps (and undos, `on_failure` steps) whose last attempt started and did not end, with
    /// no process group journaled for that attempt: a runner killed between starting the
    /// attempt's process and journaling it leaves such a step.
    pub fn unjournaled_attempts(&self) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = self
            .steps
            .iter()
            .filter(|(_, t)| {
                t.reached
                    && t.last_ok.is_none()
                    && !t.ended()
                    && !t.processes.iter().any(|p| p.attempt == t.attempt)
            })
            .map(|(id, t)| (id.clone(), t.attempt))
            .collect();
        out.sort();
        out
    }

    /// Process groups of steps that did not finish, which may still be running.
    pub fn unfinished_processes(&self) -> Vec<(String, Process)> {
        let mut out: Vec<(String, Process)> = self
            .steps
            .iter()
            .filter(|(_, t)| !t.ended())
            .flat_map(|(id, t)| t.processes.iter().map(|p| (id.clone(), p.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.pgid.cmp(&b.1.pgid)));
        out
    }

    /// Can this run be resumed? Finished runs (succeeded, failed) cannot.
    /// Whether the run can be resumed; `world`: against a simulated world (`--world`), which
    /// only a training run may be, and a training run only against one.
    pub fn resumable(&self, world: bool) -> Result<(), String> {
        match self.mode {
            Some(RunMode::Training) if world => {}
            Some(RunMode::Training) => {
                return Err(
                    "it ran against a drill's simulated world (training mode); resuming without `--world` would continue against real systems".into(),
                );
            }
            Some(mode) if mode.simulated() => {
                return Err(format!(
                    "it is a {mode} run, against a simulated world on a virtual clock; drills are not resumed: run the drill again"
                ));
            }
            _ if world => {
                return Err(
                    "it ran against real systems; `--world` resumes a training run only".into(),
                );
            }
            _ => {}
        }
        // A run that chose to undo what it changed (an `abort` answer) and finished doing so;
        // a rollback cut short by a signal (130), waiting for an answer, or stopped at an undo
        // the operator declined (its `undo_started` has no `undo_finished`) is resumable.
        let undo_open = self
            .steps
            .values()
            .any(|t| t.phase == Some(Phase::Undo) && t.finished.is_none());
        if self.rolled_back
            && !undo_open
            && self.ended.is_some_and(|o| o != RunOutcome::NeedsAnswer)
            && self.last_exit != Some(crate::exit::INTERRUPTED)
            && self.ended != Some(RunOutcome::Failed)
        {
            return Err(
                "the run stopped and undid what it had changed (the operator answered abort); start a new run instead"
                    .into(),
            );
        }
        match self.ended {
            Some(RunOutcome::Succeeded) => {
                Err("the run already succeeded; there is nothing to resume".into())
            }
            Some(RunOutcome::Failed) => Err(
                "the run failed and its rollback and on_failure steps ran; start a new run instead"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// Compares the runbook files the run loaded with those loaded now: the first difference.
    pub fn changed_file(&self, now: &[FileHash], top_sha256: &str) -> Option<String> {
        if self.files.is_empty() {
            // A journal from before every file was recorded: only the top file is known.
            return (top_sha256 != self.sha256).then(|| {
                format!(
                    "{} changed since run {} started (sha256 {} → {})",
                    self.runbook_path,
                    self.run_id,
                    short(&self.sha256),
                    short(top_sha256)
                )
            });
        }
        for f in &self.files {
            match now.iter().find(|n| n.path == f.path) {
                None => {
                    return Some(format!(
                        "{} is no longer loaded since run {} started (it loaded it with sha256 {})",
                        f.path,
                        self.run_id,
                        short(&f.sha256)
                    ))
                }
                Some(n) if n.sha256 != f.sha256 => {
                    return Some(format!(
                        "{} changed since run {} started (sha256 {} → {})",
                        f.path,
                        self.run_id,
                        short(&f.sha256),
                        short(&n.sha256)
                    ))
                }
                _ => {}
            }
        }
        now.iter()
            .find(|n| !self.files.iter().any(|f| f.path == n.path))
            .map(|n| {
                format!(
                    "{} is loaded now but was not when run {} started",
                    n.path, self.run_id
                )
            })
    }
}

fn short(h: &str) -> &str {
    &h[..12.min(h.len())]
}

/// Checks a journal's structure: the first event starts the run, every line carries its run id,
/// sequence numbers strictly increase, and every end has its start (a step, an attempt, an
/// undo, an answer). Returns the 1-based line and what is wrong.
pub fn validate(events: &[Envelope]) -> Result<(), (usize, String)> {
    let Some(first) = events.first() else {
        return Err((1, "the journal is empty".into()));
    };
    if !matches!(first.event, Event::RunStarted { .. }) {
        return Err((
            1,
            format!(
                "the first event is `{}`, not `run_started`",
                first.event.name()
            ),
        ));
    }
    let run_id = &first.run_id;
    let mut prev_seq = 0u64;
    let mut started: HashSet<&str> = HashSet::new();
    let mut attempts: HashSet<(&str, u32)> = HashSet::new();
    let mut undos: HashSet<&str> = HashSet::new();
    let mut asked: HashSet<&str> = HashSet::new();
    for (i, env) in events.iter().enumerate() {
        let line = i + 1;
        if &env.run_id != run_id {
            return Err((
                line,
                format!("run id `{}` is not this run's `{run_id}`", env.run_id),
            ));
        }
        if i > 0 && env.seq <= prev_seq {
            return Err((
                line,
                format!(
                    "sequence number {} does not follow {prev_seq} (sequence numbers strictly increase)",
                    env.seq
                ),
            ));
        }
        prev_seq = env.seq;
        let orphan = |what: &str, step: &str, needs: &str| {
            Err((
                line,
                format!("`{what}` for `{step}`, which has no `{needs}` before it"),
            ))
        };
        match &env.event {
            Event::RunStarted { .. } if i > 0 => {
                return Err((line, "a second `run_started`".into()));
            }
            Event::StepStarted { step, .. } => {
                started.insert(step);
            }
            Event::StepFinished { step, .. } if !started.contains(step.as_str()) => {
                return orphan("step_finished", step, "step_started");
            }
            Event::AttemptStarted { step, attempt, .. } => {
                if !started.contains(step.as_str())
                    && !step
                        .strip_suffix(".undo")
                        .is_some_and(|s| undos.contains(s))
                {
                    return orphan("attempt_started", step, "step_started");
                }
                attempts.insert((step, *attempt));
            }
            Event::AttemptFinished { step, attempt, .. }
            | Event::ProcessStarted { step, attempt, .. }
            | Event::VerifyEvaluated { step, attempt, .. }
                if !attempts.contains(&(step.as_str(), *attempt)) =>
            {
                return orphan(env.event.name(), step, "attempt_started");
            }
            Event::Capture { step, .. } if !started.contains(step.as_str()) => {
                return orphan("capture", step, "step_started");
            }
            Event::UndoStarted { step, .. } => {
                undos.insert(step);
            }
            Event::UndoFinished { step, .. } if !undos.contains(step.as_str()) => {
                return orphan("undo_finished", step, "undo_started");
            }
            Event::GateAsked { step, .. } => {
                asked.insert(step);
            }
            Event::GateAnswered { step, .. } if !asked.contains(step.as_str()) => {
                return orphan("gate_answered", step, "gate_asked");
            }
            _ => {}
        }
    }
    Ok(())
}

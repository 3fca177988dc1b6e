//! The session layer: prepares a run and executes it, one way for `run`, `resume`, training
//! (`--world`, see `training`) and drills (`drill`). `prepare` is that one way: the run id and
//! journal (a fresh id drawn again on a collision, a drill's own id, or a resumed run's journal),
//! the run's lock, the systems (real, or a drill's simulated world), the redactor, the emitter
//! and its sinks, the gatekeeper, the clock and the run's configuration, then the runner. Here,
//! the commands gather what differs: the runbook loaded and checked, inputs, answers, secrets,
//! who runs it and why; `terminal` shows the run and ends with the report and the next command.
//! `cli` turns flags into `Options` and calls in here; nothing here reads flags.

pub mod drill;
mod error;
pub mod prepare;
mod signals;
mod terminal;
pub mod training;
mod who;

#[cfg(test)]
mod inprocess_tests;
#[cfg(test)]
mod namespace_tests;

pub use error::SessionError;
pub use prepare::{hostname, new_run_id};
pub use signals::{install_signals, run_cancel};
pub use who::{default_operator, needs_identity, operator_for, reason_for};

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{SubsecRound, Utc};
use indexmap::IndexMap;
use serde_json::Value;

use crate::backends::kubernetes::Overrides;
use crate::exec::clock::{Clock, SystemClock, VirtualClock};
use crate::exec::events::{AnswerVia, RunMode};
use crate::exec::gate::parse_answers;
use crate::exec::host::{HostEnv, RealHost};
use crate::exec::journal;
use crate::exec::lock;
use crate::exec::resume::ResumeState;
use crate::inputs::{self, Supplied};
use crate::load::load_runbook;
use crate::model::Runbook;
use prepare::{lock_holder, prepare, Answers, Journaling, Setup, Systems};
use terminal::{execute, Terminal};
use training::Training;

/// How a run is started or resumed: what the operator said on the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Who runs it (else $RUNBOOK_OPERATOR, the login name, or a prompt).
    pub operator: Option<String>,
    /// Why: the incident, alert or ticket.
    pub reason: Option<String>,
    /// Answer confirmations of steps up to `reversible` with yes.
    pub yes: bool,
    /// Gates answered ahead, `ID=VALUE`.
    pub answers: Vec<String>,
    /// Never prompt.
    pub non_interactive: bool,
    /// Where journals go.
    pub journal_dir: PathBuf,
    /// Where the report goes at the end.
    pub report: Option<PathBuf>,
    /// Kubernetes context and namespace for every kubernetes backend.
    pub context: Option<String>,
    pub namespace: Option<String>,
}

/// Input values given for a new run: a file of them and `NAME=VALUE` pairs.
#[derive(Debug, Clone, Default)]
pub struct GivenInputs {
    pub file: Option<PathBuf>,
    pub values: Vec<String>,
}

impl Options {
    fn interactive(&self) -> bool {
        is_interactive(self.non_interactive)
    }

    /// The real systems, with the Kubernetes overrides.
    fn real_systems(&self) -> Systems {
        Systems::Real(Overrides {
            context: self.context.clone(),
            namespace: self.namespace.clone(),
        })
    }

    /// The answers given ahead: `--answer` values (checked, see `answers_for`) and `--yes`.
    fn answers(&self, given: HashMap<String, String>) -> Answers {
        Answers {
            given,
            via: AnswerVia::AnswerFlag,
            yes: self.yes,
        }
    }

    /// The `--answer` values checked against the runbook's gates.
    fn answers_for(&self, rb: &Runbook) -> Result<HashMap<String, String>, SessionError> {
        parse_answers(rb, &self.answers).map_err(SessionError::Invalid)
    }
}

/// The run's mode at a terminal or not.
fn mode(interactive: bool) -> RunMode {
    if interactive {
        RunMode::Interactive
    } else {
        RunMode::NonInteractive
    }
}

/// Input values for a new run: the given ones over `defaults` (a drill's, in training),
/// resolved against the runbook's declarations.
pub fn resolve_inputs(
    rb: &Runbook,
    given: &GivenInputs,
    defaults: IndexMap<String, Value>,
) -> Result<IndexMap<String, Value>, SessionError> {
    let mut sup = Supplied {
        file: defaults,
        args: vec![],
    };
    if let Some(f) = &given.file {
        let s = Supplied::default()
            .with_file(f)
            .map_err(|e| SessionError::Invalid(vec![e]))?;
        sup.file.extend(s.file);
    }
    let sup = sup
        .with_args(&given.values)
        .map_err(|e| SessionError::Invalid(vec![e]))?;
    inputs::resolve(&rb.spec.inputs, &sup).map_err(SessionError::Invalid)
}

/// A resumed run's inputs: the journal's (they were validated when the run started).
fn resumed_inputs(
    rb: &Runbook,
    state: &ResumeState,
) -> Result<IndexMap<String, Value>, SessionError> {
    inputs::resolve(
        &rb.spec.inputs,
        &Supplied {
            file: state.inputs.clone(),
            args: vec![],
        },
    )
    .map_err(SessionError::Invalid)
}

/// The journal directory of a run's journal (`<dir>/<run-id>/journal.jsonl`).
fn journal_dir_of(path: &Path) -> String {
    path.parent()
        .and_then(Path::parent)
        .map(|d| d.display().to_string())
        .unwrap_or_default()
}

/// Whether every file the run loaded is as it was; an error when one changed and
/// `force` is not given, naming the command that resumes anyway (`more`: its other flags).
fn unchanged_or_forced(
    state: &ResumeState,
    rb: &Runbook,
    force: bool,
    journal_dir: &str,
    more: &str,
) -> Result<bool, SessionError> {
    let changed = state.changed_file(&rb.files(), &rb.sha256);
    if let (Some(what), false) = (&changed, force) {
        return Err(SessionError::Changed {
            what: what.clone(),
            command: format!(
                "runbook resume {} --journal-dir {journal_dir}{more} --force",
                state.run_id
            ),
        });
    }
    Ok(force && changed.is_some())
}

/// Interactive when stdin and stderr are terminals, `--non-interactive` is absent and CI unset.
pub fn is_interactive(non_interactive: bool) -> bool {
    !non_interactive
        && std::env::var_os("CI").is_none()
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
}

/// A run's secrets by name, and its environment variables.
type SecretsAndEnv = (IndexMap<String, String>, serde_json::Map<String, Value>);

/// The run's secrets and environment variables: the host's, or in training the drill's
/// stand-ins.
fn secrets_and_env(
    rb: &Runbook,
    training: Option<&Training>,
) -> Result<SecretsAndEnv, SessionError> {
    Ok(match training {
        Some(t) => t.stand_ins(rb),
        None => (
            RealHost.secrets(rb).map_err(SessionError::Secrets)?,
            RealHost.env(rb),
        ),
    })
}

/// Who runs a new run and why. Signals are handled from here on (Ctrl-C at the reason prompt
/// exits 130).
fn who_and_why(
    rb: &Runbook,
    opts: &Options,
    interactive: bool,
) -> Result<(String, Option<String>), SessionError> {
    let _ = run_cancel();
    let reason = reason_for(
        rb,
        opts.reason.clone(),
        interactive,
        &rb.spec.metadata.title,
    )?;
    let operator = operator_for(rb, opts.operator.clone(), interactive)?;
    Ok((operator, reason))
}

/// A prepared run executed at the terminal. A training run says so first (`training`: its
/// banner, and the world added to the commands it prints).
async fn prepare_and_execute(
    setup: Setup,
    training: Option<(&Training, String)>,
    opts: &Options,
    interactive: bool,
) -> Result<i32, SessionError> {
    let prepared = prepare(setup)?;
    let mut resume_with = String::new();
    if let Some((t, banner)) = training {
        for note in &prepared.notes {
            eprintln!("{}", crate::view::fit(&format!("note: {note}")));
        }
        eprintln!("{}", crate::view::fit(&banner));
        resume_with = t.resume_with();
    }
    let terminal = Terminal {
        interactive,
        report: opts.report.clone(),
        resume_with,
    };
    Ok(execute(prepared, terminal).await)
}

/// `runbook run`: a new run against the real systems.
pub async fn run(runbook: &Path, given: &GivenInputs, opts: &Options) -> Result<i32, SessionError> {
    start(runbook, given, opts, None).await
}

/// A new run, against the real systems or a drill's simulated world (`training`, with
/// virtual time when `fast`).
async fn start(
    runbook: &Path,
    given: &GivenInputs,
    opts: &Options,
    training: Option<(&Training, bool)>,
) -> Result<i32, SessionError> {
    let (rb, _warnings) = load_runbook(runbook)?;
    if let Some((t, _)) = training {
        t.note_if_written_for(&rb);
    }
    let defaults = training.map_or_else(IndexMap::new, |(t, _)| t.default_inputs(&rb));
    let inputs = resolve_inputs(&rb, given, defaults)?;
    let answers = opts.answers_for(&rb)?;
    let (secrets, env) = secrets_and_env(&rb, training.map(|(t, _)| t))?;
    let interactive = opts.interactive();
    let (operator, reason) = who_and_why(&rb, opts, interactive)?;
    // The journal keeps milliseconds; a virtual clock starting mid-millisecond would not.
    let now = Utc::now().trunc_subsecs(3);
    let (clock, systems, mode): (Arc<dyn Clock>, _, _) = match training {
        Some((t, fast)) => (
            if fast {
                Arc::new(VirtualClock::new(now))
            } else {
                Arc::new(SystemClock)
            },
            t.world(now, vec![]),
            RunMode::Training,
        ),
        None => (
            Arc::new(SystemClock),
            opts.real_systems(),
            mode(interactive),
        ),
    };
    let training = training.map(|(t, fast)| (t, t.banner(rb.name(), fast)));
    let setup = Setup {
        rb: Arc::new(rb),
        journaling: Journaling::Fresh {
            dir: opts.journal_dir.clone(),
            start: now,
            command: "run",
        },
        systems,
        clock,
        mode,
        operator,
        reason,
        inputs,
        secrets,
        env,
        host: hostname(),
        answers: opts.answers(answers),
        forced: false,
    };
    prepare_and_execute(setup, training, opts, interactive).await
}

/// `runbook resume`: a run that stopped goes on (against its simulated world with `world`,
/// a training run's drill: as the run left it, rebuilt from the changes its journal recorded,
/// on the run's kind of clock).
pub async fn resume(
    run: &str,
    opts: &Options,
    force: bool,
    world: Option<&Path>,
) -> Result<i32, SessionError> {
    let path = journal::locate(run, &opts.journal_dir).map_err(SessionError::NoRun)?;
    // One process at a time: taken before the journal is read, held until the run ends.
    let run_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let lock =
        lock::acquire(&run_dir, &lock_holder("resume")).map_err(|why| SessionError::Busy {
            run: run.to_string(),
            why,
            command: format!(
                "runbook resume {} --journal-dir {}",
                run_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| run.to_string()),
                run_dir
                    .parent()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            ),
        })?;
    let state = ResumeState::load(&path).map_err(SessionError::Journal)?;
    let journal_dir = journal_dir_of(&path);
    if let Err(e) = state.resumable(world.is_some()) {
        let (id, dir) = (&state.run_id, &journal_dir);
        return Err(SessionError::NotResumable {
            run: id.clone(),
            why: e,
            next: match state.mode {
                Some(RunMode::Training) if world.is_none() => format!(
                    "to continue it against its simulated world: runbook resume {id} --journal-dir {dir} --world <the drill it ran with>"
                ),
                _ => format!("its report: runbook report {id} --journal-dir {dir}"),
            },
        });
    }
    let training = world.map(Training::load).transpose()?;
    let (rb, _warnings) = load_runbook(Path::new(&state.runbook_path))?;
    // Every runbook file the run loaded (the called ones too) must be as it was.
    let more = training
        .as_ref()
        .map_or_else(String::new, Training::resume_with);
    let forced = unchanged_or_forced(&state, &rb, force, &journal_dir, &more)?;
    let answers = opts.answers_for(&rb)?;
    let interactive = opts.interactive();
    // Against a drill's world: as the run left it, on the run's kind of clock.
    let mut banner = None;
    let (clock, systems, mode): (Arc<dyn Clock>, _, _) = match &training {
        Some(t) => {
            let left = training::left_by(&path, &state)?;
            banner = Some(t.resume_banner(rb.name(), &left));
            let clock: Arc<dyn Clock> = match left.virtual_now {
                Some(now) => Arc::new(VirtualClock::new(now)),
                None => Arc::new(SystemClock),
            };
            (
                clock,
                t.world(left.started, left.recorded),
                RunMode::Training,
            )
        }
        None => (
            Arc::new(SystemClock),
            opts.real_systems(),
            mode(interactive),
        ),
    };
    let (secrets, env) = secrets_and_env(&rb, training.as_ref())?;
    let inputs = resumed_inputs(&rb, &state)?;
    let operator = operator_for(&rb, opts.operator.clone(), interactive)?;
    let setup = Setup {
        rb: Arc::new(rb),
        reason: state.reason.clone(),
        journaling: Journaling::Resumed {
            path,
            state: Box::new(state),
            lock,
        },
        systems,
        clock,
        mode,
        operator,
        inputs,
        secrets,
        env,
        host: hostname(),
        answers: opts.answers(answers),
        forced,
    };
    let training = training.as_ref().zip(banner);
    prepare_and_execute(setup, training, opts, interactive).await
}

//! The session layer: prepares a run and executes it, the same way for `run`, `resume` and
//! training (`--world`, see `training`): the runbook loaded and checked, inputs, answers,
//! secrets, who runs it and why, the journal (a fresh run id, drawn again on a collision), the
//! run's lock, then the runner with the terminal view, and at the end the report and the next
//! command. `cli` turns flags into `Options` and calls in here; nothing here reads flags.

mod error;
mod signals;
pub mod training;
mod who;

pub use error::SessionError;
pub use signals::{install_signals, run_cancel};
pub use who::{default_operator, needs_identity, operator_for, reason_for};

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::Value;

use crate::backends::{kubernetes::Overrides, Backends, Progress};
use crate::exec::clock::{Clock, SystemClock};
use crate::exec::emitter::Emitter;
use crate::exec::events::{AnswerVia, RunMode, RunOutcome};
use crate::exec::gate::{parse_answers, Gatekeeper, Prompter};
use crate::exec::host::{HostEnv, RealHost};
use crate::exec::journal::{self, Journal};
use crate::exec::lock;
use crate::exec::redact::Redactor;
use crate::exec::resume::ResumeState;
use crate::exec::runner::{RunConfig, RunResult, Runner};
use crate::inputs::{self, Supplied};
use crate::load::load_runbook;
use crate::model::Runbook;
use crate::view::{Style, TerminalView};

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

    /// The real backends, with the Kubernetes overrides.
    fn real_backends(&self) -> Backends {
        Backends::real(Overrides {
            context: self.context.clone(),
            namespace: self.namespace.clone(),
        })
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

/// Creates the journal of a new run (an error: nothing was run).
fn new_journal(
    dir: &Path,
    name: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(String, Journal), SessionError> {
    create_journal(dir, || new_run_id(name, now)).map_err(|source| SessionError::JournalCreate {
        dir: dir.to_path_buf(),
        source,
    })
}

/// Reopens a resumed run's journal to append to it.
fn reopen_journal(path: &Path) -> Result<Journal, SessionError> {
    Journal::reopen(path).map_err(|source| SessionError::JournalReopen {
        path: path.to_path_buf(),
        source,
    })
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

impl Prepared {
    /// A run ready to execute, with what the options say about answers, style and report.
    #[allow(clippy::too_many_arguments)]
    fn new(
        rb: Runbook,
        cfg: RunConfig,
        journal: Journal,
        run_id: String,
        backends: Backends,
        clock: Arc<dyn Clock>,
        answers: HashMap<String, String>,
        opts: &Options,
        interactive: bool,
        resume_with: String,
    ) -> Self {
        Prepared {
            rb: Arc::new(rb),
            cfg,
            journal,
            run_id,
            backends,
            clock,
            answers,
            answers_via: AnswerVia::AnswerFlag,
            yes: opts.yes,
            interactive,
            style: if interactive {
                Style::Rich
            } else {
                Style::Plain
            },
            report: opts.report.clone(),
            resume_with,
        }
    }
}

/// This process as the holder of a run's lock.
fn lock_holder(command: &str) -> lock::Holder {
    lock::Holder {
        pid: std::process::id(),
        host: hostname(),
        since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        command: command.into(),
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Interactive when stdin and stderr are terminals, `--non-interactive` is absent and CI unset.
pub fn is_interactive(non_interactive: bool) -> bool {
    !non_interactive
        && std::env::var_os("CI").is_none()
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
}

/// A new run id: UTC time, runbook name, and a short random suffix.
pub fn new_run_id(name: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let salt = (nanos ^ (std::process::id().wrapping_mul(2_654_435_761))) & 0xffff;
    format!("{}-{name}-{salt:04x}", now.format("%Y%m%dT%H%M%SZ"))
}

/// Creates the journal of a new run under a fresh id. Runs started in the same second can draw
/// the same id (16 random bits); the loser of that race draws again instead of failing.
pub fn create_journal(
    dir: &Path,
    mut new_id: impl FnMut() -> String,
) -> std::io::Result<(String, Journal)> {
    let mut tries = 0;
    loop {
        let id = new_id();
        match Journal::create(dir, &id) {
            Ok(j) => return Ok((id, j)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 20 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Everything needed to execute a prepared run.
pub struct Prepared {
    pub rb: Arc<Runbook>,
    pub cfg: RunConfig,
    pub journal: Journal,
    pub run_id: String,
    pub backends: Backends,
    pub clock: Arc<dyn Clock>,
    pub answers: HashMap<String, String>,
    pub answers_via: AnswerVia,
    pub yes: bool,
    pub interactive: bool,
    pub style: Style,
    pub report: Option<PathBuf>,
    /// Added to the `runbook resume` command printed at the end (a training run's `--world`).
    pub resume_with: String,
}

/// Executes a prepared run with the terminal view, then prints how to continue.
pub async fn execute(p: Prepared) -> i32 {
    let mut redactor = Redactor::new(p.cfg.secrets.values().cloned());
    for (k, v) in &p.cfg.env {
        if k.to_ascii_uppercase().contains("TOKEN") || k.to_ascii_uppercase().contains("SECRET") {
            redactor.add(v.as_str().unwrap_or_default());
        }
    }
    let view = TerminalView::new(p.style, redactor.clone(), &p.rb);
    if p.cfg.resume.is_some() {
        // The summary and the final line cover the whole run, not only this session.
        if let Ok(read) = journal::read(p.journal.path()) {
            view.replay(&read.events);
        }
    }
    let prompter: Option<Box<dyn Prompter>> = if p.interactive {
        Some(Box::new(crate::prompt::TerminalPrompter::new(view.clone())))
    } else {
        None
    };
    let gate = Gatekeeper::new(p.answers, p.answers_via, p.yes, prompter);
    let journal_path = p.journal.path().to_path_buf();
    let run_dir = p.journal.run_dir().to_path_buf();
    let first_seq = p.cfg.resume.as_ref().map_or(0, |r| r.last_seq);
    let mut emitter = Emitter::new(
        Some(p.journal),
        redactor,
        p.clock.clone(),
        p.run_id.clone(),
        first_seq,
    );
    emitter.add_sink(Box::new(view.clone()));
    let cancel = run_cancel();
    let progress: Arc<dyn Progress> = Arc::new(view.clone());
    let mut runner = Runner::new(
        p.backends, p.clock, gate, emitter, progress, cancel, run_dir,
    );
    let res: RunResult = runner.run(p.rb.clone(), p.cfg).await;
    if let Some(why) = runner.emitter().broken() {
        eprintln!("error: {why}; the run stopped before changing anything else");
    }
    eprintln!("journal: {}", journal_path.display());
    let journal_dir = crate::exec::actions::shell_quote(
        &journal_path
            .parent()
            .and_then(Path::parent)
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
    );
    // Each ending names the next command; at a terminal a long one goes on lines of its own,
    // continued with ` \`, so that it pastes as one command.
    let say = |message: &str, command: String| {
        eprintln!("{}", crate::view::with_command(message, &command));
    };
    if p.report.is_none() {
        say(
            "report",
            format!("runbook report {} --journal-dir {journal_dir}", p.run_id),
        );
    }
    if let Some(path) = &p.report {
        match crate::report::write_for_journal_with(
            &journal_path,
            path,
            runner.emitter().redactor(),
        ) {
            Ok(()) => eprintln!("report: {}", path.display()),
            Err(e) => eprintln!("error: writing the report: {e}"),
        }
    }
    let resume = format!(
        "runbook resume {} --journal-dir {journal_dir}{}",
        p.run_id, p.resume_with
    );
    match res.outcome {
        RunOutcome::Aborted if res.abandoned => say(
            "the run stopped and undid what it had changed; it cannot be resumed. To start again",
            format!(
                "runbook run {}{}",
                crate::exec::actions::shell_quote(&p.rb.file),
                p.resume_with
            ),
        ),
        RunOutcome::NeedsAnswer => {
            let hint = res.hint.clone().unwrap_or_default();
            let flag = hint
                .split(" (")
                .next()
                .unwrap_or(&hint)
                .split(" to ")
                .next()
                .unwrap_or(&hint);
            say(
                &format!("needs an answer: to continue this run, pass {flag}"),
                format!("{resume} {flag}"),
            );
        }
        RunOutcome::Aborted => say("to continue", resume),
        _ => {}
    }
    res.exit_code
}

/// `runbook run`: a new run against the real systems.
pub async fn run(runbook: &Path, given: &GivenInputs, opts: &Options) -> Result<i32, SessionError> {
    let (rb, _warnings) = load_runbook(runbook)?;
    let inputs = resolve_inputs(&rb, given, IndexMap::new())?;
    let answers = opts.answers_for(&rb)?;
    let secrets = RealHost.secrets(&rb).map_err(SessionError::Secrets)?;
    let interactive = opts.interactive();
    // Signals are handled from here on (Ctrl-C at the reason prompt exits 130).
    let _ = run_cancel();
    let reason = reason_for(
        &rb,
        opts.reason.clone(),
        interactive,
        &rb.spec.metadata.title,
    )?;
    let operator = operator_for(&rb, opts.operator.clone(), interactive)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (run_id, journal) = new_journal(&opts.journal_dir, rb.name(), clock.now())?;
    // Held until this process ends: a `resume` of this run meanwhile is refused.
    let _lock =
        lock::acquire(journal.run_dir(), &lock_holder("run")).map_err(SessionError::Lock)?;
    let cfg = RunConfig {
        operator,
        reason,
        mode: mode(interactive),
        inputs,
        secrets,
        env: RealHost.env(&rb),
        host: hostname(),
        resume: None,
        forced: false,
        host_env: Arc::new(RealHost),
    };
    let backends = opts.real_backends();
    let p = Prepared::new(
        rb,
        cfg,
        journal,
        run_id,
        backends,
        clock,
        answers,
        opts,
        interactive,
        String::new(),
    );
    Ok(execute(p).await)
}

/// `runbook resume`: a run that stopped goes on (against its simulated world with `world`,
/// a training run's drill).
pub async fn resume(
    run: &str,
    opts: &Options,
    force: bool,
    world: Option<&Path>,
) -> Result<i32, SessionError> {
    let path = journal::locate(run, &opts.journal_dir).map_err(SessionError::NoRun)?;
    // One process at a time: taken before the journal is read, held until this process ends.
    let run_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let _lock =
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
    if let Some(world) = world {
        return training::resume(opts, force, world, &path, state).await;
    }
    let (rb, _warnings) = load_runbook(Path::new(&state.runbook_path))?;
    // Every runbook file the run loaded (the called ones too) must be as it was.
    let forced = unchanged_or_forced(&state, &rb, force, &journal_dir, "")?;
    let answers = opts.answers_for(&rb)?;
    let secrets = RealHost.secrets(&rb).map_err(SessionError::Secrets)?;
    let inputs = resumed_inputs(&rb, &state)?;
    let journal = reopen_journal(&path)?;
    let interactive = opts.interactive();
    let operator = operator_for(&rb, opts.operator.clone(), interactive)?;
    let cfg = RunConfig {
        operator,
        reason: state.reason.clone(),
        mode: mode(interactive),
        inputs,
        secrets,
        env: RealHost.env(&rb),
        host: hostname(),
        resume: Some(state.clone()),
        forced,
        host_env: Arc::new(RealHost),
    };
    let backends = opts.real_backends();
    let p = Prepared::new(
        rb,
        cfg,
        journal,
        state.run_id.clone(),
        backends,
        Arc::new(SystemClock),
        answers,
        opts,
        interactive,
        String::new(),
    );
    Ok(execute(p).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_already_taken_is_drawn_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("taken")).unwrap();
        let mut ids = ["taken", "taken", "free"].into_iter();
        let (id, j) = create_journal(dir.path(), || ids.next().unwrap().to_string()).unwrap();
        assert_eq!(id, "free");
        assert!(j.path().ends_with("free/journal.jsonl"));
    }
}

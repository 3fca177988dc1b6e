//! The one preparation and execution of a run, for `run`, `resume`, training (`--world`) and
//! drills. What differs between them is data in a [`Setup`], not code:
//!
//! - the run id and journal ([`Journaling`]): a new run draws `<start>-<runbook>-<random>` (again
//!   on a collision) and holds the run's lock; a drill keeps its deterministic
//!   `<start>-<drill>-drill` and replaces an earlier journal of the same drill (or journals in
//!   memory only); a resumed run reopens its journal under the lock its caller took;
//! - the systems ([`Systems`]): the real backends, or a drill's simulated world bound to the
//!   run's values (and rebuilt from a resumed run's recorded changes);
//! - the clock (real or virtual), the answers (`--answer`/`--yes` or a drill's script), and who
//!   faces the run ([`Front`]: the terminal view and its prompter, or an in-memory collector).
//!
//! Everything else is the same for all: the redactor (every secret, and every environment value
//! whose name says TOKEN or SECRET), the emitter writing the journal first, the gatekeeper, the
//! run's configuration, and the runner.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::SessionError;
use crate::backends::{kubernetes::Overrides, Backends, Progress};
use crate::drill::model::REPORT_NAME;
use crate::drill::world::restore::Recorded;
use crate::drill::world::run_values::RunValues;
use crate::drill::world::{State, World};
use crate::exec::clock::{stamp, Clock};
use crate::exec::emitter::{Emitter, EventSink};
use crate::exec::events::{AnswerVia, RunMode};
use crate::exec::gate::{Gatekeeper, Prompter};
use crate::exec::host::{HostEnv, IsolatedHost, RealHost};
use crate::exec::journal::{Journal, FILE_NAME};
use crate::exec::lock::{self, RunLock};
use crate::exec::redact::Redactor;
use crate::exec::resume::ResumeState;
use crate::exec::runner::{RunConfig, RunResult, Runner};
use crate::model::Runbook;

/// What a run is, before anything is created: every way one run differs from another.
pub struct Setup {
    pub rb: Arc<Runbook>,
    pub journaling: Journaling,
    pub systems: Systems,
    pub clock: Arc<dyn Clock>,
    pub mode: RunMode,
    pub operator: String,
    pub reason: Option<String>,
    pub inputs: IndexMap<String, Value>,
    pub secrets: IndexMap<String, String>,
    pub env: Map<String, Value>,
    /// The host the journal names (`drill` for drills).
    pub host: String,
    pub answers: Answers,
    /// Resume even though the runbook changed (journaled).
    pub forced: bool,
}

/// The answers given ahead: `--answer` values (or a drill's script) and `--yes`.
pub struct Answers {
    pub given: HashMap<String, String>,
    pub via: AnswerVia,
    pub yes: bool,
}

/// How a run gets its id and its journal.
pub enum Journaling {
    /// A new run in `dir`: `<start>-<runbook>-<random>`, drawn again on a collision, and the
    /// run's lock held by this process (`command`, for whoever finds it taken).
    Fresh {
        dir: PathBuf,
        start: DateTime<Utc>,
        command: &'static str,
    },
    /// A drill: its deterministic id. In `dir`, it replaces the journal and report an earlier
    /// run of the same drill left there; without, events are kept in memory only.
    Drill {
        dir: Option<PathBuf>,
        id: String,
        start: DateTime<Utc>,
    },
    /// A resumed run: its journal reopened, under the lock its caller took before reading it.
    Resumed {
        path: PathBuf,
        state: Box<ResumeState>,
        lock: RunLock,
    },
}

/// What the run's actions reach.
pub enum Systems {
    /// The real backends (Kubernetes context and namespace overrides).
    Real(Overrides),
    /// A drill's simulated world: moved to start at `rebase` when given, bound to the run's
    /// values (id, operator, reason, start), then given the `recorded` changes of the run it
    /// resumes. Called runbooks take their secrets and environment from the run
    /// (`IsolatedHost`), never the host.
    World {
        state: Box<State>,
        rebase: Option<DateTime<Utc>>,
        recorded: Vec<Recorded>,
    },
}

/// A run ready to execute: its journal open (and the run locked), its systems and redactor.
pub struct Prepared {
    pub rb: Arc<Runbook>,
    pub run_id: String,
    journal: Option<Journal>,
    /// The journal file, when the run is journaled to disk.
    pub journal_path: Option<PathBuf>,
    run_dir: PathBuf,
    lock: Option<RunLock>,
    backends: Backends,
    pub world: Option<World>,
    /// What rebuilding a resumed run's world could not restore.
    pub notes: Vec<String>,
    pub redactor: Redactor,
    pub clock: Arc<dyn Clock>,
    pub cfg: RunConfig,
    answers: Answers,
}

/// Who faces the run: the event sinks after the journal, the progress of running steps, the
/// prompter (none: an unanswered gate ends the run as needs-answer) and the cancellation.
pub struct Front {
    pub sinks: Vec<Box<dyn EventSink>>,
    pub progress: Arc<dyn Progress>,
    pub prompter: Option<Box<dyn Prompter>>,
    pub cancel: CancellationToken,
}

/// A run that ended.
pub struct Finished {
    pub result: RunResult,
    pub run_id: String,
    pub journal_path: Option<PathBuf>,
    /// Why the journal could not be written, when it could not (the run stopped there).
    pub broken: Option<String>,
    /// The redactor as the run left it (it learns values during the run).
    pub redactor: Redactor,
    pub world: Option<World>,
    /// The clock's time at the end.
    pub end: DateTime<Utc>,
    /// Dropped when the caller is done: until then, no other process resumes the run.
    pub lock: Option<RunLock>,
}

/// Creates the run's journal (and takes its lock), builds its systems, redactor and
/// configuration.
pub fn prepare(s: Setup) -> Result<Prepared, SessionError> {
    let (run_id, journal, lock, started_at, resume) = match s.journaling {
        Journaling::Fresh {
            dir,
            start,
            command,
        } => {
            let (id, journal) = create_journal(&dir, || draw_id(s.rb.name(), start))
                .map_err(|source| SessionError::JournalCreate { dir, source })?;
            // Held until the run ends: a `resume` of this run meanwhile is refused.
            let lock = lock::acquire(journal.run_dir(), &lock_holder(command))
                .map_err(SessionError::Lock)?;
            (id, Some(journal), Some(lock), stamp(start), None)
        }
        Journaling::Drill { dir, id, start } => {
            let journal = dir
                .map(|d| replace_journal(&d, &id))
                .transpose()
                .map_err(SessionError::DrillJournal)?;
            (id, journal, None, stamp(start), None)
        }
        Journaling::Resumed { path, state, lock } => {
            let journal = Journal::reopen(&path)
                .map_err(|source| SessionError::JournalReopen { path, source })?;
            (
                state.run_id.clone(),
                Some(journal),
                Some(lock),
                state.started_at.clone(),
                Some(*state),
            )
        }
    };
    // Where called runbooks' secrets and environment come from: the host, or (a world) the
    // run's own values, by name.
    let (backends, world, notes, host_env): (_, _, _, Arc<dyn HostEnv>) = match s.systems {
        Systems::Real(overrides) => (Backends::real(overrides), None, vec![], Arc::new(RealHost)),
        Systems::World {
            mut state,
            rebase,
            recorded,
        } => {
            if let Some(at) = rebase {
                state.rebase(at);
            }
            // The world answers with this run's values where the drill says `{{ run.* }}`.
            state.bind_run(&RunValues {
                id: run_id.clone(),
                operator: s.operator.clone(),
                reason: s.reason.clone().unwrap_or_default(),
                started_at,
            });
            let notes = state.restore(&recorded);
            let world = World::new(*state);
            let host = IsolatedHost::new(s.secrets.clone(), s.env.clone());
            (world.backends(), Some(world), notes, Arc::new(host))
        }
    };
    let mut redactor = Redactor::new(s.secrets.values().cloned());
    for (k, v) in &s.env {
        let k = k.to_ascii_uppercase();
        if k.contains("TOKEN") || k.contains("SECRET") {
            redactor.add(v.as_str().unwrap_or_default());
        }
    }
    let journal_path = journal.as_ref().map(|j| j.path().to_path_buf());
    // Simulated backends write no files; the runner still wants a run directory.
    let run_dir = journal
        .as_ref()
        .map(|j| j.run_dir().to_path_buf())
        .unwrap_or_else(std::env::temp_dir);
    let cfg = RunConfig {
        operator: s.operator,
        reason: s.reason,
        mode: s.mode,
        inputs: s.inputs,
        secrets: s.secrets,
        env: s.env,
        host: s.host,
        resume,
        forced: s.forced,
        host_env,
    };
    Ok(Prepared {
        rb: s.rb,
        run_id,
        journal,
        journal_path,
        run_dir,
        lock,
        backends,
        world,
        notes,
        redactor,
        clock: s.clock,
        cfg,
        answers: s.answers,
    })
}

impl Prepared {
    /// Runs it: the emitter writes the journal first, then the front's sinks.
    pub async fn execute(self, front: Front) -> Finished {
        let gate = Gatekeeper::new(
            self.answers.given,
            self.answers.via,
            self.answers.yes,
            front.prompter,
        );
        let first_seq = self.cfg.resume.as_ref().map_or(0, |r| r.last_seq);
        let mut emitter = Emitter::new(
            self.journal,
            self.redactor,
            self.clock.clone(),
            self.run_id.clone(),
            first_seq,
        );
        for sink in front.sinks {
            emitter.add_sink(sink);
        }
        let mut runner = Runner::new(
            self.backends,
            self.clock.clone(),
            gate,
            emitter,
            front.progress,
            front.cancel,
            self.run_dir,
        );
        let result = runner.run(self.rb, self.cfg).await;
        Finished {
            result,
            run_id: self.run_id,
            journal_path: self.journal_path,
            broken: runner.emitter().broken().map(str::to_string),
            redactor: runner.emitter().redactor().clone(),
            world: self.world,
            end: self.clock.now(),
            lock: self.lock,
        }
    }
}

/// This process as the holder of a run's lock.
pub(super) fn lock_holder(command: &str) -> lock::Holder {
    lock::Holder {
        pid: std::process::id(),
        host: hostname(),
        since: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        command: command.into(),
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// A new run id: UTC time, runbook name, and a short random suffix.
pub fn new_run_id(name: &str, now: DateTime<Utc>) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let salt = (nanos ^ (std::process::id().wrapping_mul(2_654_435_761))) & 0xffff;
    format!("{}-{name}-{salt:04x}", now.format("%Y%m%dT%H%M%SZ"))
}

#[cfg(test)]
thread_local! {
    /// Ids a test makes the next fresh runs of its thread draw, in order.
    static DRAWS: std::cell::RefCell<std::collections::VecDeque<String>> = Default::default();
}

/// The id a fresh run draws: [`new_run_id`] (in tests, the ids queued in `DRAWS` first).
fn draw_id(name: &str, start: DateTime<Utc>) -> String {
    #[cfg(test)]
    if let Some(id) = DRAWS.with(|d| d.borrow_mut().pop_front()) {
        return id;
    }
    new_run_id(name, start)
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

/// Creates `<dir>/<id>/journal.jsonl` for a drill, first removing what an earlier run of the
/// same drill left there (its journal and report, nothing else).
fn replace_journal(dir: &Path, id: &str) -> Result<Journal, String> {
    let run_dir = dir.join(id);
    if run_dir.is_dir() {
        for name in [FILE_NAME, REPORT_NAME] {
            let f = run_dir.join(name);
            if f.exists() {
                std::fs::remove_file(&f)
                    .map_err(|e| format!("cannot replace {}: {e}", f.display()))?;
            }
        }
        std::fs::remove_dir(&run_dir).map_err(|e| {
            format!(
                "cannot replace {}: {e} (it holds files a drill did not write; move them away)",
                run_dir.display()
            )
        })?;
    }
    Journal::create(dir, id)
        .map_err(|e| format!("cannot create the journal in {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::clock::VirtualClock;

    /// A training run's setup (a drill's world, a fresh journal in `dir`).
    fn training(dir: &Path) -> Setup {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/drills/rollback-recovers.yaml");
        let report = crate::drill::check::check_drill_path(&file);
        let drill = report.checked.expect("the fixture drill checks");
        let start = drill.start;
        Setup {
            rb: drill.runbook.clone(),
            journaling: Journaling::Fresh {
                dir: dir.to_path_buf(),
                start,
                command: "run",
            },
            systems: Systems::World {
                state: Box::new(drill.world.clone()),
                rebase: Some(start),
                recorded: vec![],
            },
            clock: Arc::new(VirtualClock::new(start)),
            mode: RunMode::Training,
            operator: "trainee".into(),
            reason: None,
            inputs: drill.inputs.clone(),
            secrets: drill.secrets.clone(),
            env: drill.env.clone(),
            host: "here".into(),
            answers: Answers {
                given: HashMap::new(),
                via: AnswerVia::AnswerFlag,
                yes: false,
            },
            forced: false,
        }
    }

    /// Issue 13 §3: training prepares its run like any run, so an id already taken is drawn
    /// again (training used to fail on it), and the run is locked.
    #[test]
    fn a_training_run_whose_id_is_taken_draws_again_and_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("taken")).unwrap();
        DRAWS.with(|d| {
            d.borrow_mut()
                .extend(["taken", "taken", "free"].map(String::from))
        });
        let p = prepare(training(dir.path())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.run_id, "free");
        assert_eq!(
            p.journal_path.as_deref(),
            Some(dir.path().join("free/journal.jsonl").as_path())
        );
        assert!(p.lock.is_some() && dir.path().join("free/lock").is_file());
        assert!(
            format!("{:?}", p.cfg.host_env).starts_with("IsolatedHost"),
            "a world's run takes nothing from the host: {:?}",
            p.cfg.host_env
        );
    }

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

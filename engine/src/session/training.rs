//! Training mode: `runbook run RUNBOOK --world DRILL` runs a runbook exactly as in an incident
//! (prompts, progress, journal, report) against a drill's simulated world instead of real
//! systems: real time by default, virtual time with `--fast`. The drill's scripted answers are
//! not used; the trainee answers (or, in CI, `--answer` and `--yes` do). It goes through the
//! same session as any run (`super::start`, `super::resume`); what is here is what differs:
//! the drill's world, its inputs as defaults, stand-in secrets, and the world a resumed
//! training run left (rebuilt from its journal).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::prepare::Systems;
use super::{GivenInputs, Options, SessionError};
use crate::drill::check::stand_ins;
use crate::drill::model::Drill;
use crate::drill::world::restore::Recorded;
use crate::exec::events::Event;
use crate::exec::resume::ResumeState;
use crate::load::load_drill;
use crate::model::Runbook;

/// `runbook run RUNBOOK --world DRILL` (`fast`: on virtual time).
pub async fn run(
    runbook: &Path,
    given: &GivenInputs,
    opts: &Options,
    world_file: &Path,
    fast: bool,
) -> Result<i32, SessionError> {
    let training = Training::load(world_file)?;
    super::start(runbook, given, opts, Some((&training, fast))).await
}

/// The drill whose world a training run uses, and the file it came from.
pub(super) struct Training {
    drill: Drill,
    file: PathBuf,
}

impl Training {
    /// The drill a `--world` names, checked.
    pub(super) fn load(world_file: &Path) -> Result<Training, SessionError> {
        Ok(Training {
            drill: load_drill(world_file)?,
            file: world_file.to_path_buf(),
        })
    }

    /// Says so when the drill was written for another runbook (its world is used as it is).
    pub(super) fn note_if_written_for(&self, rb: &Runbook) {
        let same = |p: &Path| std::fs::canonicalize(p).ok();
        if same(&rb.path) != same(&self.drill.runbook.path) {
            eprintln!(
                "note: {} was written for {}; its world is used as it is",
                self.file.display(),
                self.drill.runbook.file
            );
        }
    }

    /// The drill's inputs that `rb` declares: they describe its world, so they are the
    /// defaults of a new training run.
    pub(super) fn default_inputs(&self, rb: &Runbook) -> IndexMap<String, Value> {
        self.drill
            .inputs
            .iter()
            .filter(|(k, _)| rb.spec.inputs.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The secrets and environment of a training run: the drill's, else stand-ins (never the
    /// host's).
    pub(super) fn stand_ins(&self, rb: &Runbook) -> (IndexMap<String, String>, Map<String, Value>) {
        let env: IndexMap<String, String> = self
            .drill
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        stand_ins(rb, &self.drill.secrets, &env)
    }

    /// The drill's world as it starts, moved to start at `start`, then given `recorded`.
    pub(super) fn world(&self, start: DateTime<Utc>, recorded: Vec<Recorded>) -> Systems {
        Systems::World {
            state: Box::new(self.drill.world.clone()),
            rebase: Some(start),
            recorded,
        }
    }

    /// ` --world <drill>`, for the commands a training run prints.
    pub(super) fn resume_with(&self) -> String {
        format!(
            " --world {}",
            crate::exec::actions::shell_quote(&self.file.display().to_string())
        )
    }

    /// What a new training run says first.
    pub(super) fn banner(&self, runbook: &str, fast: bool) -> String {
        format!(
            "training: `{runbook}` against the simulated world of drill `{}` ({}); nothing real is touched",
            self.drill.name,
            if fast { "virtual time" } else { "real time" }
        )
    }

    /// What a resumed training run says first.
    pub(super) fn resume_banner(&self, runbook: &str, left: &Left) -> String {
        let n = left.recorded.len();
        format!(
            "training: resuming `{runbook}` against the simulated world of drill `{}` ({}), rebuilt from {n} recorded change{}; nothing real is touched",
            self.drill.name,
            if left.virtual_now.is_some() { "virtual time" } else { "real time" },
            if n == 1 { "" } else { "s" }
        )
    }
}

/// What a training run's journal says about the world it left.
pub(super) struct Left {
    /// When the run started: its world is moved there before the changes are replayed.
    pub started: DateTime<Utc>,
    /// The changes the run made to its world, in order.
    pub recorded: Vec<Recorded>,
    /// On virtual time: where its journal stopped (the resumed run goes on from there).
    pub virtual_now: Option<DateTime<Utc>>,
}

/// Reads what a training run's journal at `path` recorded.
pub(super) fn left_by(path: &Path, rs: &ResumeState) -> Result<Left, SessionError> {
    let events = crate::exec::journal::read(path)
        .map_err(|e| SessionError::Journal(format!("cannot read {}: {e}", path.display())))?
        .events;
    let (mut virtual_time, mut last) = (false, None);
    let mut recorded = vec![];
    for e in &events {
        let at = DateTime::parse_from_rfc3339(&e.ts)
            .map(|t| t.with_timezone(&Utc))
            .ok();
        last = at.or(last);
        match &e.event {
            Event::RunStarted {
                virtual_time: v, ..
            } => virtual_time = *v,
            Event::WorldChanged { step, diff } => {
                if let Some(at) = at {
                    recorded.push(Recorded {
                        at,
                        step: step.clone(),
                        diff: diff.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    let Some(started) = DateTime::parse_from_rfc3339(&rs.started_at)
        .ok()
        .map(|t| t.with_timezone(&Utc))
    else {
        return Err(SessionError::Journal(format!(
            "{}: the run's start time `{}` is not a time",
            path.display(),
            rs.started_at
        )));
    };
    Ok(Left {
        started,
        recorded,
        virtual_now: virtual_time.then(|| last.unwrap_or(started)),
    })
}

//! Runs one drill: a fresh copy of its world, the real runner with the drill's answers and no
//! prompter (so an unscripted gate ends the run as needs-answer), a virtual clock from the
//! drill's start, and a run id derived from its name, so the same drill gives the same journal.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::model::Drill;
use super::world::run_values::RunValues;
use super::world::World;
use crate::backends::NoProgress;
use crate::exec::clock::{Clock, VirtualClock};
use crate::exec::emitter::{Collect, Emitter};
use crate::exec::events::{AnswerVia, Envelope, RunMode};
use crate::exec::gate::Gatekeeper;
use crate::exec::host::IsolatedHost;
use crate::exec::journal::{Journal, FILE_NAME};
use crate::exec::redact::Redactor;
use crate::exec::runner::{RunConfig, RunResult, Runner};

/// One finished drill run: its events (as journaled), the world it left, and when it ended.
pub struct DrillRun {
    pub events: Vec<Envelope>,
    pub result: RunResult,
    pub world: World,
    pub end: DateTime<Utc>,
    /// The journal file, when the run was journaled to disk.
    pub journal: Option<PathBuf>,
}

/// `<start>-<drill name>-drill`: shaped like a real run id, and the same on every run.
pub fn run_id(drill: &Drill) -> String {
    format!(
        "{}-{}-drill",
        drill.start.format("%Y%m%dT%H%M%SZ"),
        drill.name
    )
}

/// The report file written next to a drill's journal.
pub const REPORT_NAME: &str = "report.md";

/// Runs a drill. With `journal_dir`, the journal goes to `<journal_dir>/<run id>/` (replacing
/// the one an earlier `runbook drill` left there); otherwise events are kept in memory only.
pub async fn run(drill: &Drill, journal_dir: Option<&Path>) -> Result<DrillRun, String> {
    let clock = Arc::new(VirtualClock::new(drill.start));
    let id = run_id(drill);
    let mut state = drill.world.clone();
    state.bind_run(&RunValues {
        id: id.clone(),
        operator: drill.operator.clone(),
        reason: drill.reason.clone(),
        started_at: crate::exec::clock::stamp(drill.start),
    });
    let world = World::new(state);
    let journal = journal_dir.map(|d| fresh_journal(d, &id)).transpose()?;
    let journal_path = journal.as_ref().map(|j| j.path().to_path_buf());
    // Simulated backends write no files; the runner still wants a run directory.
    let run_dir = journal
        .as_ref()
        .map(|j| j.run_dir().to_path_buf())
        .unwrap_or_else(std::env::temp_dir);
    let collected = Collect(Arc::new(Mutex::new(vec![])));
    let mut emitter = Emitter::new(
        journal,
        Redactor::new(drill.secrets.values().cloned()),
        clock.clone(),
        id,
        0,
    );
    emitter.add_sink(Box::new(collected.clone()));
    let gate = Gatekeeper::new(drill.answers.clone(), AnswerVia::Drill, false, None);
    let mut runner = Runner::new(
        world.backends(),
        clock.clone(),
        gate,
        emitter,
        Arc::new(NoProgress),
        CancellationToken::new(),
        run_dir,
    );
    let cfg = RunConfig {
        operator: drill.operator.clone(),
        reason: Some(drill.reason.clone()),
        mode: RunMode::Drill,
        inputs: drill.inputs.clone(),
        secrets: drill.secrets.clone(),
        env: drill.env.clone(),
        host: "drill".into(),
        resume: None,
        forced: false,
        host_env: Arc::new(IsolatedHost::new(drill.secrets.clone(), drill.env.clone())),
    };
    let result = runner.run(drill.runbook.clone(), cfg).await;
    if let Some(why) = runner.emitter().broken() {
        return Err(why.to_string());
    }
    let events = collected
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(DrillRun {
        events,
        result,
        world,
        end: clock.now(),
        journal: journal_path,
    })
}

/// Creates `<dir>/<id>/journal.jsonl`, first removing what an earlier drill run left there
/// (its journal and report, nothing else).
fn fresh_journal(dir: &Path, id: &str) -> Result<Journal, String> {
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

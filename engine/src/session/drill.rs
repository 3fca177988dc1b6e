//! One drill run, through the session layer like every run: a fresh copy of its world, the
//! drill's scripted answers and no prompter (so an unscripted gate ends the run as
//! needs-answer), a virtual clock from the drill's start, and its deterministic run id
//! (`Drill::run_id`), so that the same drill gives the same journal.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::prepare::{prepare, Answers, Front, Journaling, Setup, Systems};
use crate::backends::NoProgress;
use crate::drill::{Drill, DrillRun};
use crate::exec::clock::VirtualClock;
use crate::exec::emitter::Collect;
use crate::exec::events::{AnswerVia, RunMode};

/// Runs a drill. With `journal_dir`, the journal goes to `<journal_dir>/<run id>/` (replacing
/// the one an earlier `runbook drill` left there); otherwise events are kept in memory only.
pub async fn run(drill: &Drill, journal_dir: Option<&Path>) -> Result<DrillRun, String> {
    let prepared = prepare(Setup {
        rb: drill.runbook.clone(),
        journaling: Journaling::Drill {
            dir: journal_dir.map(Path::to_path_buf),
            id: drill.run_id(),
            start: drill.start,
        },
        systems: Systems::World {
            state: Box::new(drill.world.clone()),
            rebase: None,
            recorded: vec![],
        },
        clock: Arc::new(VirtualClock::new(drill.start)),
        mode: RunMode::Drill,
        operator: drill.operator.clone(),
        reason: Some(drill.reason.clone()),
        inputs: drill.inputs.clone(),
        secrets: drill.secrets.clone(),
        env: drill.env.clone(),
        host: "drill".into(),
        answers: Answers {
            given: drill.answers.clone(),
            via: AnswerVia::Drill,
            yes: false,
        },
        forced: false,
    })
    .map_err(|e| e.to_string())?;
    let collected = Collect(Arc::new(Mutex::new(vec![])));
    let done = prepared
        .execute(Front {
            sinks: vec![Box::new(collected.clone())],
            progress: Arc::new(NoProgress),
            prompter: None,
            cancel: CancellationToken::new(),
        })
        .await;
    if let Some(why) = done.broken {
        return Err(why);
    }
    let events = collected
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(DrillRun {
        events,
        result: done.result,
        world: done.world.ok_or("a drill runs against its world")?,
        end: done.end,
        journal: done.journal_path,
    })
}

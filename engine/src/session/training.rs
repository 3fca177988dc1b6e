//! Training mode: `runbook run RUNBOOK --world DRILL` runs a runbook exactly as in an incident
//! (prompts, progress, journal, report) against a drill's simulated world instead of real
//! systems: real time by default, virtual time with `--fast`. The drill's scripted answers are
//! not used; the trainee answers (or, in CI, `--answer` and `--yes` do).

use std::path::Path;
use std::sync::Arc;

use chrono::{SubsecRound, Utc};
use indexmap::IndexMap;
use serde_json::Value;

use super::{
    execute, hostname, journal_dir_of, new_journal, operator_for, reason_for, reopen_journal,
    resolve_inputs, resumed_inputs, unchanged_or_forced, GivenInputs, Options, Prepared,
    SessionError,
};
use crate::drill::check::stand_ins;
use crate::drill::world::restore::Recorded;
use crate::drill::world::run_values::RunValues;
use crate::drill::world::World;
use crate::exec::clock::{Clock, SystemClock, VirtualClock};
use crate::exec::events::{Event, RunMode};
use crate::exec::host::IsolatedHost;
use crate::exec::resume::ResumeState;
use crate::exec::runner::RunConfig;
use crate::load::{load_drill, load_runbook};

/// ` --world <drill>`, for the `runbook resume` command a training run prints.
fn resume_with(world_file: &Path) -> String {
    format!(
        " --world {}",
        crate::exec::actions::shell_quote(&world_file.display().to_string())
    )
}

/// `runbook run RUNBOOK --world DRILL` (`fast`: on virtual time).
pub async fn run(
    runbook: &Path,
    given: &GivenInputs,
    opts: &Options,
    world_file: &Path,
    fast: bool,
) -> Result<i32, SessionError> {
    let drill = load_drill(world_file)?;
    let (rb, _warnings) = load_runbook(runbook)?;
    let same = |p: &Path| std::fs::canonicalize(p).ok();
    if same(&rb.path) != same(&drill.runbook.path) {
        eprintln!(
            "note: {} was written for {}; its world is used as it is",
            world_file.display(),
            drill.runbook.file
        );
    }
    // The drill's inputs describe its world, so they are the defaults here.
    let defaults = drill
        .inputs
        .iter()
        .filter(|(k, _)| rb.spec.inputs.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let inputs = resolve_inputs(&rb, given, defaults)?;
    let answers = opts.answers_for(&rb)?;
    let env: IndexMap<String, String> = drill
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let (secrets, env) = stand_ins(&rb, &drill.secrets, &env);
    let interactive = opts.interactive();
    let reason = reason_for(
        &rb,
        opts.reason.clone(),
        interactive,
        &rb.spec.metadata.title,
    )?;
    let operator = operator_for(&rb, opts.operator.clone(), interactive)?;
    // The journal keeps milliseconds; a virtual clock starting mid-millisecond would not.
    let now = Utc::now().trunc_subsecs(3);
    let clock: Arc<dyn Clock> = if fast {
        Arc::new(VirtualClock::new(now))
    } else {
        Arc::new(SystemClock)
    };
    // The journal first: the world answers with the run's id.
    let (run_id, journal) = new_journal(&opts.journal_dir, rb.name(), now)?;
    let mut state = drill.world.clone();
    state.rebase(now);
    // The world answers with this run's operator and reason where the drill says
    // `{{ run.operator }}` / `{{ run.reason }}`: training works with any of them.
    state.bind_run(&RunValues {
        id: run_id.clone(),
        operator: operator.clone(),
        reason: reason.clone().unwrap_or_default(),
        started_at: crate::exec::clock::stamp(now),
    });
    let world = World::new(state);
    eprintln!(
        "{}",
        crate::view::fit(&format!(
            "training: `{}` against the simulated world of drill `{}` ({}); nothing real is touched",
            rb.name(),
            drill.name,
            if fast { "virtual time" } else { "real time" }
        ))
    );
    let env = env.into_iter().collect::<serde_json::Map<String, Value>>();
    let host_env = Arc::new(IsolatedHost::new(secrets.clone(), env.clone()));
    let cfg = RunConfig {
        operator,
        reason,
        mode: RunMode::Training,
        inputs,
        secrets,
        env,
        host: hostname(),
        resume: None,
        forced: false,
        host_env,
    };
    let backends = world.backends();
    Ok(execute(Prepared::new(
        rb,
        cfg,
        journal,
        run_id,
        backends,
        clock,
        answers,
        opts,
        interactive,
        resume_with(world_file),
    ))
    .await)
}

/// `runbook resume RUN --world DRILL`: a training run goes on against the drill's world as the
/// run left it, rebuilt from the effects its journal recorded (see `world::restore`), on the
/// run's kind of clock (virtual from where the journal stopped, with `--fast`; else real).
pub async fn resume(
    opts: &Options,
    force: bool,
    world_file: &Path,
    path: &Path,
    rs: ResumeState,
) -> Result<i32, SessionError> {
    let drill = load_drill(world_file)?;
    let (rb, _warnings) = load_runbook(Path::new(&rs.runbook_path))?;
    let more = format!(" --world {}", world_file.display());
    let forced = unchanged_or_forced(&rs, &rb, force, &journal_dir_of(path), &more)?;
    let answers = opts.answers_for(&rb)?;
    let events = crate::exec::journal::read(path)
        .map_err(|e| SessionError::Journal(format!("cannot read {}: {e}", path.display())))?
        .events;
    let (mut virtual_time, mut last) = (false, None);
    let mut recorded = vec![];
    for e in &events {
        let at = chrono::DateTime::parse_from_rfc3339(&e.ts)
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
    let Some(started) = chrono::DateTime::parse_from_rfc3339(&rs.started_at)
        .ok()
        .map(|t| t.with_timezone(&Utc))
    else {
        return Err(SessionError::Journal(format!(
            "{}: the run's start time `{}` is not a time",
            path.display(),
            rs.started_at
        )));
    };
    let inputs = resumed_inputs(&rb, &rs)?;
    let env: IndexMap<String, String> = drill
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let (secrets, env) = stand_ins(&rb, &drill.secrets, &env);
    let interactive = opts.interactive();
    let operator = operator_for(&rb, opts.operator.clone(), interactive)?;
    let journal = reopen_journal(path)?;
    // The world as the drill starts it, at the run's start, then the run's recorded effects.
    let mut state = drill.world.clone();
    state.rebase(started);
    state.bind_run(&RunValues {
        id: rs.run_id.clone(),
        operator: operator.clone(),
        reason: rs.reason.clone().unwrap_or_default(),
        started_at: rs.started_at.clone(),
    });
    for problem in state.restore(&recorded) {
        eprintln!("{}", crate::view::fit(&format!("note: {problem}")));
    }
    let now = last.unwrap_or(started);
    let clock: Arc<dyn Clock> = if virtual_time {
        Arc::new(VirtualClock::new(now))
    } else {
        Arc::new(SystemClock)
    };
    eprintln!(
        "{}",
        crate::view::fit(&format!(
            "training: resuming `{}` against the simulated world of drill `{}` ({}), rebuilt from {} recorded change{}; nothing real is touched",
            rb.name(),
            drill.name,
            if virtual_time { "virtual time" } else { "real time" },
            recorded.len(),
            if recorded.len() == 1 { "" } else { "s" }
        ))
    );
    let world = World::new(state);
    let env = env.into_iter().collect::<serde_json::Map<String, Value>>();
    let host_env = Arc::new(IsolatedHost::new(secrets.clone(), env.clone()));
    let cfg = RunConfig {
        operator,
        reason: rs.reason.clone(),
        mode: RunMode::Training,
        inputs,
        secrets,
        env,
        host: hostname(),
        resume: Some(rs.clone()),
        forced,
        host_env,
    };
    let backends = world.backends();
    Ok(execute(Prepared::new(
        rb,
        cfg,
        journal,
        rs.run_id.clone(),
        backends,
        clock,
        answers,
        opts,
        interactive,
        resume_with(world_file),
    ))
    .await)
}

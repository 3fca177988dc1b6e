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
};
use crate::drill::check::stand_ins;
use crate::drill::model::Drill;
use crate::drill::world::restore::Recorded;
use crate::drill::world::run_values::RunValues;
use crate::drill::world::World;
use crate::exec::clock::{Clock, SystemClock, VirtualClock};
use crate::exec::events::{Event, RunMode};
use crate::exec::resume::ResumeState;
use crate::exec::runner::RunConfig;
use crate::exit;
use crate::load::{self, load_or_report, Checked};

/// The drill a `--world` names, checked; its errors printed.
fn load_drill(world_file: &Path) -> Result<Drill, i32> {
    let report = load::check_path(world_file);
    if report.has_errors() {
        report.print(crate::term::color());
        eprintln!(
            "error: {} has errors; nothing was run",
            world_file.display()
        );
        return Err(exit::INVALID);
    }
    let Some(Checked::Drill(drill)) = report.checked else {
        eprintln!(
            "error: {} is not a drill: `--world` takes a `kind: Drill` file, whose `world:` the run uses",
            world_file.display()
        );
        return Err(exit::INVALID);
    };
    Ok(*drill)
}

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
) -> i32 {
    let drill = match load_drill(world_file) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let rb = match load_or_report(runbook, false) {
        Ok(r) => r,
        Err(c) => return c,
    };
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
    let inputs = match resolve_inputs(&rb, given, defaults) {
        Ok(i) => i,
        Err(c) => return c,
    };
    let answers = match opts.answers_for(&rb) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let env: IndexMap<String, String> = drill
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let (secrets, env) = stand_ins(&rb, &drill.secrets, &env);
    let interactive = opts.interactive();
    let reason = match reason_for(
        &rb,
        opts.reason.clone(),
        interactive,
        &rb.spec.metadata.title,
    ) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let operator = match operator_for(&rb, opts.operator.clone(), interactive) {
        Ok(o) => o,
        Err(c) => return c,
    };
    // The journal keeps milliseconds; a virtual clock starting mid-millisecond would not.
    let now = Utc::now().trunc_subsecs(3);
    let clock: Arc<dyn Clock> = if fast {
        Arc::new(VirtualClock::new(now))
    } else {
        Arc::new(SystemClock)
    };
    // The journal first: the world answers with the run's id.
    let (run_id, journal) = match new_journal(&opts.journal_dir, rb.name(), now) {
        Ok(j) => j,
        Err(c) => return c,
    };
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
    let cfg = RunConfig {
        operator,
        reason,
        mode: RunMode::Training,
        inputs,
        secrets,
        env: env.into_iter().collect::<serde_json::Map<String, Value>>(),
        host: hostname(),
        resume: None,
        forced: false,
        isolated: true,
    };
    let backends = world.backends();
    execute(Prepared::new(
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
    .await
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
) -> i32 {
    let drill = match load_drill(world_file) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let rb = match load_or_report(Path::new(&rs.runbook_path), false) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let more = format!(" --world {}", world_file.display());
    let forced = match unchanged_or_forced(&rs, &rb, force, &journal_dir_of(path), &more) {
        Ok(f) => f,
        Err(c) => return c,
    };
    let answers = match opts.answers_for(&rb) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let events = match crate::exec::journal::read(path) {
        Ok(r) => r.events,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return exit::INVALID;
        }
    };
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
        eprintln!(
            "error: {}: the run's start time `{}` is not a time",
            path.display(),
            rs.started_at
        );
        return exit::INVALID;
    };
    let inputs = match resumed_inputs(&rb, &rs) {
        Ok(i) => i,
        Err(c) => return c,
    };
    let env: IndexMap<String, String> = drill
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let (secrets, env) = stand_ins(&rb, &drill.secrets, &env);
    let interactive = opts.interactive();
    let operator = match operator_for(&rb, opts.operator.clone(), interactive) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let journal = match reopen_journal(path) {
        Ok(j) => j,
        Err(c) => return c,
    };
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
    let cfg = RunConfig {
        operator,
        reason: rs.reason.clone(),
        mode: RunMode::Training,
        inputs,
        secrets,
        env: env.into_iter().collect::<serde_json::Map<String, Value>>(),
        host: hostname(),
        resume: Some(rs.clone()),
        forced,
        isolated: true,
    };
    let backends = world.backends();
    execute(Prepared::new(
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
    .await
}

//! Pre-fills the PIR's judgement sections (impact, root cause, went well, went wrong, action
//! items, lessons) from the evidence in the model, and says what a human must add where the
//! journal cannot know.

use super::model::{Outcome, Report, Section, StepReport, StepState};
use super::text::{duration, one_line, plural};

pub fn fill(r: &mut Report) {
    r.impact = impact(r);
    r.root_cause = root_cause(r);
    r.went_well = went_well(r);
    r.went_wrong = went_wrong(r);
    r.action_items = action_items(r);
    r.lessons = lessons(r);
}

const OWNER: &str = " — Owner: [name] — Due: [date]";

fn impact(r: &Report) -> Section {
    let mut items = vec![];
    if let (Some(s), Some(e)) = (&r.times.start, &r.times.end) {
        items.push(format!(
            "Mitigation window covered by this run: {} – {} ({}, {}); the incident began before it.",
            s.clock, e.clock, r.times.zone, r.times.duration
        ));
    }
    Section {
        items,
        prompt: "Fill in: users affected, requests or flows that failed, revenue impact \
                 (write \"None\" where there was none), and when the incident began."
            .into(),
    }
}

fn root_cause(r: &Report) -> Section {
    let mut items = vec![];
    if let Some(s) = r.failed_step.as_deref().and_then(|id| r.step(id)) {
        if let Some(e) = &s.error {
            items.push(format!(
                "The run stopped at `{}`: {} (where the run stopped, not necessarily why the \
                 incident happened).",
                s.id,
                one_line(e, 200)
            ));
        }
    }
    Section {
        items,
        prompt: "Fill in: one or two paragraphs on why the incident happened; the journal only \
                 shows what the run did about it."
            .into(),
    }
}

/// Errors of the failed attempts, grouped: `connection refused ×2; timed out`.
fn attempt_errors(s: &StepReport) -> String {
    let mut groups: Vec<(String, usize)> = vec![];
    for a in s.attempts.iter().filter(|a| a.ok == Some(false)) {
        let e = one_line(a.error.as_deref().unwrap_or("failed"), 100);
        match groups.iter_mut().find(|(g, _)| *g == e) {
            Some((_, n)) => *n += 1,
            None => groups.push((e, 1)),
        }
    }
    groups
        .into_iter()
        .map(|(e, n)| if n > 1 { format!("{e} ×{n}") } else { e })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Time to recovery against the runbook's MTTR target: (text, within target?).
fn recovery(r: &Report) -> Option<(String, bool)> {
    let target = r.runbook.mttr_target.as_deref();
    let (what, ms) = match (r.times.time_to_verified_ms, r.outcome) {
        (Some(ms), _) => ("verification passed", ms),
        (None, Outcome::Succeeded) => ("the run succeeded", r.times.duration_ms),
        _ => return None,
    };
    Some(match (target, r.times.mttr_target_ms) {
        (Some(t), Some(t_ms)) => {
            let within = ms <= t_ms;
            let rel = if within { "within" } else { "beyond" };
            (
                format!(
                    "{} {} after the run started, {rel} the MTTR target of {t}",
                    capital(what),
                    duration(ms)
                ),
                within,
            )
        }
        _ => (
            format!(
                "{} {} after the run started (the runbook sets no MTTR target)",
                capital(what),
                duration(ms)
            ),
            true,
        ),
    })
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn went_well(r: &Report) -> Section {
    let mut items = vec![];
    let ran: Vec<&StepReport> = r.ran_steps().collect();
    if r.outcome == Outcome::Succeeded {
        let retried = ran.iter().filter(|s| s.retries > 0).count();
        let clean = if retried == 0 {
            ", none needed a retry".to_string()
        } else {
            String::new()
        };
        items.push(format!(
            "The runbook resolved it: {} completed in {}{clean}.",
            plural(ran.len() as u64, "step", "steps"),
            r.times.duration
        ));
    }
    if let Some((text, true)) = recovery(r) {
        items.push(format!("{text}."));
    }
    for s in &ran {
        if let Some(v) = s.verification.as_ref().filter(|v| v.ok && v.polls > 1) {
            items.push(format!(
                "`{}` kept polling until its verification held: {}.",
                s.id, v.summary
            ));
        }
    }
    match r.preconditions.as_slice() {
        [] => {}
        [p] if p.ok => items.push(format!(
            "The precondition `{}` held before the first step.",
            p.that
        )),
        ps if ps.iter().all(|p| p.ok) => items.push(format!(
            "All {} preconditions held before the first step.",
            ps.len()
        )),
        _ => {}
    }
    let undone: Vec<String> = r
        .steps
        .iter()
        .filter(|s| s.phase == "undo" && s.state == StepState::Succeeded)
        .map(|s| format!("`{}`", s.id))
        .collect();
    if !undone.is_empty() {
        items.push(format!("The rollback ran cleanly: {}.", undone.join(", ")));
    }
    for s in &ran {
        if s.action == "manual" && s.state == StepState::Succeeded {
            let by = s
                .gates
                .last()
                .and_then(|g| g.by.clone())
                .unwrap_or_default();
            let note = s
                .note
                .as_deref()
                .map(|n| format!(": “{}”", one_line(n, 200)))
                .unwrap_or_default();
            items.push(format!("Manual step `{}` done by {by}{note}.", s.id));
        }
    }
    Section {
        items,
        prompt: "Add what else went well: detection, communication, the team's response.".into(),
    }
}

fn went_wrong(r: &Report) -> Section {
    let mut items = vec![];
    for p in r.preconditions.iter().filter(|p| !p.ok) {
        let m = p
            .message
            .as_deref()
            .map(|m| format!(" ({})", one_line(m, 200)))
            .unwrap_or_default();
        items.push(format!(
            "Precondition `{}` was false{m}: nothing was run.",
            p.that
        ));
    }
    for s in r.steps.iter() {
        let kind = if s.phase == "undo" { "Undo" } else { "Step" };
        match s.state {
            StepState::Failed => {
                let e = s
                    .error
                    .as_deref()
                    .map(|e| one_line(e, 200))
                    .unwrap_or_default();
                let tries = if s.attempts.len() > 1 {
                    format!(
                        " after {}",
                        plural(s.attempts.len() as u64, "attempt", "attempts")
                    )
                } else {
                    String::new()
                };
                items.push(format!("{kind} `{}` failed{tries}: {e}.", s.id));
            }
            StepState::Succeeded if s.retries > 0 => {
                items.push(format!(
                    "{kind} `{}` needed {} ({}).",
                    s.id,
                    plural(u64::from(s.retries), "retry", "retries"),
                    attempt_errors(s)
                ));
            }
            _ => {}
        }
        for g in &s.gates {
            match g.answer.as_deref() {
                Some("no" | "abort") => items.push(format!(
                    "The {} gate of `{}` was declined by {} (via {}): the run stopped there.",
                    g.kind,
                    s.id,
                    g.by.as_deref().unwrap_or("someone"),
                    g.via.as_deref().unwrap_or("?")
                )),
                Some("skip" | "skipped") => items.push(format!(
                    "`{}` was skipped by {}{}.",
                    s.id,
                    g.by.as_deref().unwrap_or("someone"),
                    g.note
                        .as_deref()
                        .map(|n| format!(": “{}”", one_line(n, 200)))
                        .unwrap_or_default()
                )),
                Some("failed") => items.push(format!(
                    "Manual step `{}` was marked failed by {}{}.",
                    s.id,
                    g.by.as_deref().unwrap_or("someone"),
                    g.note
                        .as_deref()
                        .map(|n| format!(": “{}”", one_line(n, 200)))
                        .unwrap_or_default()
                )),
                None if s.state == StepState::NeedsAnswer => items.push(format!(
                    "The {} gate of `{}` had no answer in a {} run: {}.",
                    g.kind,
                    s.id,
                    r.run.mode,
                    s.error
                        .as_deref()
                        .map(|e| one_line(e, 200))
                        .unwrap_or_default()
                )),
                _ => {}
            }
        }
    }
    if r.interrupted() {
        items.push(format!(
            "The run was interrupted (Ctrl-C or SIGTERM){}.",
            r.failed_step
                .as_deref()
                .map(|s| format!(" during `{s}`"))
                .unwrap_or_default()
        ));
    }
    if r.outcome == Outcome::Incomplete {
        items.push(format!(
            "The run has no recorded end: the engine crashed or was killed{}.",
            r.in_flight_step
                .as_deref()
                .map(|s| format!(" while `{s}` was in flight"))
                .unwrap_or_default()
        ));
    }
    if let Some((text, false)) = recovery(r) {
        items.push(format!("{text}."));
    }
    if r.journal.truncated {
        items.push(
            "The journal's last line was cut mid-write: the end of the run is missing.".into(),
        );
    }
    Section {
        items,
        prompt: "Add what else went wrong: detection delay, missing access, unclear or missing \
                 steps."
            .into(),
    }
}

fn action_items(r: &Report) -> Section {
    let mut items = vec![];
    for p in r.preconditions.iter().filter(|p| !p.ok) {
        items.push(format!(
            "Find out why the precondition `{}` was false, or correct it if the runbook is wrong{OWNER}",
            p.that
        ));
    }
    for s in &r.steps {
        match s.state {
            StepState::Failed if s.phase == "undo" => items.push(format!(
                "Check by hand what the failed `{}` left behind, then fix the undo{OWNER}",
                s.id
            )),
            StepState::Failed => items.push(format!(
                "Find and fix why `{}` failed ({}){OWNER}",
                s.id,
                one_line(s.error.as_deref().unwrap_or("failed"), 120)
            )),
            StepState::Succeeded if s.retries > 0 => items.push(format!(
                "Find out why `{}` needed {}{OWNER}",
                s.id,
                plural(u64::from(s.retries), "retry", "retries")
            )),
            StepState::NeedsAnswer => items.push(format!(
                "Decide who answers the gate of `{}` in unattended runs (`--answer {}=...`){OWNER}",
                s.id, s.id
            )),
            _ => {}
        }
    }
    if let Some((text, false)) = recovery(r) {
        items.push(format!("Shorten the time to recovery: {text}{OWNER}"));
    }
    if matches!(
        r.outcome,
        Outcome::Aborted | Outcome::NeedsAnswer | Outcome::Incomplete
    ) {
        items.push(format!(
            "Decide whether to finish the run (`runbook resume {}`) or put things back by hand{OWNER}",
            r.run.id
        ));
    }
    Section {
        items,
        prompt: "Add the actions that prevent a recurrence, each with an owner and a due date."
            .into(),
    }
}

fn lessons(r: &Report) -> Section {
    // Steps skipped by design (a `when` that was false) were never meant to run here.
    let by_design = r
        .steps
        .iter()
        .filter(|s| s.phase == "main" && s.skipped_by_design)
        .count();
    let planned: Vec<&StepReport> = r
        .steps
        .iter()
        .filter(|s| s.phase == "main" && !s.skipped_by_design)
        .collect();
    let mut items = vec![];
    if !planned.is_empty() {
        let ok = planned
            .iter()
            .filter(|s| s.state == StepState::Succeeded)
            .count();
        let first_try = planned
            .iter()
            .filter(|s| s.state == StepState::Succeeded && s.retries == 0)
            .count();
        let skipped = if by_design > 0 {
            format!(" ({by_design} more skipped by design: their `when` was false)")
        } else {
            String::new()
        };
        items.push(format!(
            "Runbook effectiveness: {} of {} planned steps succeeded ({}%){skipped}, {} on the first attempt; \
             outcome {}.",
            ok,
            planned.len(),
            ok * 100 / planned.len(),
            first_try,
            r.outcome.as_str()
        ));
    }
    Section {
        items,
        prompt: "Fill in: the key takeaways for future incidents.".into(),
    }
}

//! The runner, in process: small runbooks run against a simulated world on the virtual clock
//! (milliseconds each, whatever the virtual durations), through the public entry points only
//! (`drill::check::check_drill_path`, `session::drill::run`, `drill::expect`), so that they hold whatever
//! shape the runner's code takes inside.

use std::path::Path;
use std::time::Duration;

use crate::drill::check::check_drill_path;
use crate::drill::expect::{ending, step_outcomes};
use crate::drill::Drill;
use crate::drill::DrillRun;
use crate::exec::events::Event;
use crate::session::drill::run;

/// Writes `rb.yaml` and `rb.drill.yaml` (a drill of it with `drill`'s body) and checks the drill.
fn drill(dir: &Path, runbook: &str, drill: &str) -> Drill {
    std::fs::write(dir.join("rb.yaml"), runbook).unwrap();
    let text = format!(
        "apiVersion: runbook/v1\nkind: Drill\nmetadata: {{ name: t }}\nrunbook: rb.yaml\n{drill}"
    );
    let path = dir.join("rb.drill.yaml");
    std::fs::write(&path, text).unwrap();
    let report = check_drill_path(&path);
    match report.checked {
        Some(d) if !report.has_errors() => d,
        _ => panic!("the drill does not check: {:#?}", report.diagnostics),
    }
}

fn run_drill(d: &Drill) -> DrillRun {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(d, None))
        .unwrap()
}

/// The names of the events of one step, in order.
fn events_of(r: &DrillRun, step: &str) -> Vec<&'static str> {
    r.events
        .iter()
        .filter(|e| {
            serde_json::to_value(&e.event)
                .ok()
                .and_then(|v| v["step"].as_str().map(String::from))
                == Some(step.to_string())
        })
        .map(|e| e.event.name())
        .collect()
}

const HEAD: &str = "apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: t, title: T }\n";

#[test]
fn half_an_hour_of_waiting_and_polling_is_virtual() {
    let dir = tempfile::tempdir().unwrap();
    let d = drill(
        dir.path(),
        &format!(
            "{HEAD}steps:
  - id: settle
    wait: 30m
  - id: health
    safety: read-only
    http: {{ request: {{ url: \"https://svc.internal/health\" }} }}
    verify: [ {{ that: \"result.status == 200\" }} ]
    until: {{ timeout: 10m, interval: 10s }}
"
        ),
        "world:
  http:
    - match: { url: \"https://svc.internal/health\" }
      respond:
        - { status: 503, times: 5 }
        - { status: 200 }
",
    );
    let r = run_drill(&d);
    let end = ending(&r.events);
    assert_eq!(end.outcome, "succeeded", "{:?}", end.message);
    // 30 minutes of waiting, then five failed polls 10 s apart before the sixth passes.
    assert_eq!(end.duration, Duration::from_secs(30 * 60 + 50));
    assert_eq!(r.end - d.start, chrono::Duration::seconds(30 * 60 + 50));
    let verdicts = events_of(&r, "health")
        .into_iter()
        .filter(|n| *n == "verify_evaluated")
        .count();
    assert_eq!(verdicts, 6, "one verification per poll");
}

#[test]
fn a_failed_step_undoes_the_changes_before_it_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = drill(
        dir.path(),
        &format!(
            "{HEAD}rollback_strategy: on-failure
steps:
  - id: first
    shell: {{ argv: [\"deploy\", \"first\"] }}
    undo: {{ shell: {{ argv: [\"revert\", \"first\"] }} }}
  - id: second
    shell: {{ argv: [\"deploy\", \"second\"] }}
    undo: {{ shell: {{ argv: [\"revert\", \"second\"] }} }}
  - id: check
    safety: read-only
    shell: {{ argv: [\"check\"] }}
  - id: never
    shell: {{ argv: [\"deploy\", \"never\"] }}
    no_undo: not reached
"
        ),
        "world:
  shell:
    - match: { argv: [\"check\"] }
      respond: { exit: 3, stderr: \"error budget exhausted\" }
    - match: { argv: [\"**\"] }
      respond: { exit: 0 }
",
    );
    let r = run_drill(&d);
    let end = ending(&r.events);
    assert_eq!(end.outcome, "failed");
    assert_eq!(end.failed_step.as_deref(), Some("check"));
    assert!(
        end.message
            .as_deref()
            .is_some_and(|m| m.contains("error budget exhausted")),
        "the failure names the command's last line: {:?}",
        end.message
    );
    let outcomes = step_outcomes(&r.events);
    assert_eq!(outcomes.get("never"), None, "{outcomes:?}");
    // Both undos ran, the newest change first.
    let undone: Vec<String> = r
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::UndoFinished { step, .. } => Some(step.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(undone, ["second", "first"]);
}

#[test]
fn an_unanswered_confirmation_stops_the_run_before_its_change() {
    let dir = tempfile::tempdir().unwrap();
    let rb = format!(
        "{HEAD}steps:
  - id: look
    safety: read-only
    shell: {{ argv: [\"status\"] }}
  - id: approve
    confirm: {{ prompt: \"Restart it?\" }}
  - id: restart
    shell: {{ argv: [\"restart\"] }}
    no_undo: test
"
    );
    let world = "world:\n  shell:\n    - match: { argv: [\"**\"] }\n      respond: { exit: 0 }\n";
    let d = drill(dir.path(), &rb, world);
    let r = run_drill(&d);
    assert_eq!(ending(&r.events).outcome, "needs-answer");
    assert!(
        events_of(&r, "restart").is_empty(),
        "the guarded change never started: {:?}",
        events_of(&r, "restart")
    );
    assert!(
        r.result
            .hint
            .as_deref()
            .is_some_and(|h| h.starts_with("--answer approve=yes")),
        "{:?}",
        r.result.hint
    );

    // `skip` leaves the guarded change out and the run goes on.
    let d = drill(
        dir.path(),
        &rb,
        &format!("answers: {{ approve: skip }}\n{world}"),
    );
    let r = run_drill(&d);
    assert_eq!(ending(&r.events).outcome, "succeeded");
    assert_eq!(
        step_outcomes(&r.events).get("restart").map(String::as_str),
        Some("skipped")
    );
    assert!(!events_of(&r, "restart").contains(&"attempt_started"));
}

#[test]
fn a_fault_on_the_first_attempt_is_retried_after_its_virtual_delay() {
    let dir = tempfile::tempdir().unwrap();
    let d = drill(
        dir.path(),
        &format!(
            "{HEAD}steps:
  - id: flip
    safety: idempotent
    http:
      request: {{ method: PUT, url: \"https://flags.internal/f\", json: {{ on: false }} }}
    retry: {{ attempts: 3, delay: 2m }}
"
        ),
        "world:
  http:
    - match: { method: PUT, url: \"https://flags.internal/f\" }
      respond: { status: 200 }
faults:
  - step: flip
    attempt: 1
    error: connection reset by peer
",
    );
    let r = run_drill(&d);
    let end = ending(&r.events);
    assert_eq!(end.outcome, "succeeded", "{:?}", end.message);
    let attempts = events_of(&r, "flip")
        .into_iter()
        .filter(|n| *n == "attempt_started")
        .count();
    assert_eq!(attempts, 2);
    assert_eq!(end.duration, Duration::from_secs(120));
}

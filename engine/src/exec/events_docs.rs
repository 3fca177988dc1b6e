//! docs/journal.md documents every journal event and every field an event can have: one
//! sample of each event with all its optional fields set must round-trip through `Event`
//! unchanged (so its fields are exactly the event's), and each field must be named in the
//! event's section of the reference.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::events::{Envelope, Event};

const DOCS: &str = include_str!("../../../docs/journal.md");

/// Fields whose value is free-form JSON (rendered actions, results, values read): their
/// contents are not fields of the journal.
const FREE_FORM: &[&str] = &["inputs", "rendered", "observed", "result", "diff", "value"];

/// One of each event, every optional field set to a value that is written.
fn samples() -> Vec<Value> {
    let files = json!([{"path": "rb.yaml", "sha256": "ab"}]);
    vec![
        json!({"event": "run_started", "runbook": {"path": "rb.yaml", "name": "rb", "title": "RB",
               "sha256": "ab", "severity": "P1", "mttr_target": "15m", "description": "d",
               "steps": ["a"], "files": files}, "inputs": {"env": "prod"}, "operator": "ann",
               "reason": "INC-1", "host": "h", "engine_version": "0.1.0", "mode": "drill",
               "virtual_time": true}),
        json!({"event": "run_resumed", "operator": "bo", "forced": true, "sha256": "cd",
               "files": files}),
        json!({"event": "precondition", "index": 0, "that": "x > 1", "ok": false,
               "message": "m", "observed": {"x": 1}}),
        json!({"event": "step_started", "step": "a", "title": "A", "action": "shell",
               "safety": "reversible", "phase": "main", "rendered": {"argv": ["true"]}}),
        json!({"event": "step_skipped", "step": "a", "title": "A", "reason": "r",
               "phase": "on_failure", "cause": "guard"}),
        json!({"event": "gate_asked", "step": "a", "gate": "terminal", "prompt": "Run it?"}),
        json!({"event": "gate_answered", "step": "a", "gate": "manual", "answer": "done",
               "by": "ann", "via": "answer-flag", "note": "n"}),
        json!({"event": "attempt_started", "step": "a", "attempt": 1, "of": 3}),
        json!({"event": "attempt_finished", "step": "a", "attempt": 1, "ok": false,
               "error": "e", "duration_ms": 5, "polls": 2, "result": {"exit_code": 1},
               "interrupted": true}),
        json!({"event": "process_started", "step": "a", "attempt": 1, "pgid": 42, "host": "h",
               "boot_id": "b", "start_ticks": 7}),
        json!({"event": "verify_evaluated", "step": "a", "attempt": 1, "poll": 1, "ok": false,
               "checks": [{"that": "x", "ok": false, "message": "m", "observed": {"x": 1},
                           "error": "e", "verdict": "inconclusive", "reason": "no data"}],
               "verdict": "inconclusive", "polling": true}),
        json!({"event": "analysis_check", "step": "a", "check": 1, "verdict": "fail",
               "metrics": [{"name": "errors", "query": "q", "value": 1.5, "text": "1.5",
                            "min": 0.5, "max": 1.0, "verdict": "fail"}], "failed": 1}),
        json!({"event": "capture", "step": "a", "name": "n", "value": {"k": 1}}),
        json!({"event": "world_changed", "step": "a", "diff": {"image": "v2"}}),
        json!({"event": "step_finished", "step": "a", "outcome": "needs-answer",
               "phase": "undo", "duration_ms": 5, "attempts": 1, "error": "e", "note": "n"}),
        json!({"event": "undo_started", "step": "a", "title": "undo: shell", "action": "shell",
               "safety": "terminal", "rendered": {"script": "x"}}),
        json!({"event": "undo_finished", "step": "a", "ok": false, "error": "e",
               "duration_ms": 5}),
        json!({"event": "run_finished", "outcome": "failed", "duration_ms": 9, "exit_code": 1,
               "failed_step": "a", "message": "m"}),
    ]
}

/// Each event's place in `samples`: a new event does not compile here until it has one.
fn variant(e: &Event) -> usize {
    match e {
        Event::RunStarted { .. } => 0,
        Event::RunResumed { .. } => 1,
        Event::Precondition { .. } => 2,
        Event::StepStarted { .. } => 3,
        Event::StepSkipped { .. } => 4,
        Event::GateAsked { .. } => 5,
        Event::GateAnswered { .. } => 6,
        Event::AttemptStarted { .. } => 7,
        Event::AttemptFinished { .. } => 8,
        Event::ProcessStarted { .. } => 9,
        Event::VerifyEvaluated { .. } => 10,
        Event::AnalysisCheck { .. } => 11,
        Event::Capture { .. } => 12,
        Event::WorldChanged { .. } => 13,
        Event::StepFinished { .. } => 14,
        Event::UndoStarted { .. } => 15,
        Event::UndoFinished { .. } => 16,
        Event::RunFinished { .. } => 17,
    }
}

/// Every field name in `v`, nested ones too, but not inside free-form values.
fn fields(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.insert(k.clone());
                if !FREE_FORM.contains(&k.as_str()) {
                    fields(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| fields(x, out)),
        _ => {}
    }
}

/// The text of the reference's section (`### ` heading) that names `event`.
fn section(event: &str) -> &'static str {
    let name = format!("`{event}`");
    DOCS.split("\n### ")
        .skip(1)
        .find(|s| s.lines().next().is_some_and(|h| h.contains(&name)))
        .unwrap_or_else(|| panic!("docs/journal.md has no `### ` section for {name}"))
}

#[test]
fn the_reference_documents_every_event_and_field() {
    let mut seen = [false; 18];
    for sample in samples() {
        let e: Event =
            serde_json::from_value(sample.clone()).unwrap_or_else(|err| panic!("{err}: {sample}"));
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            sample,
            "the sample's fields are not exactly the event's"
        );
        seen[variant(&e)] = true;
        let text = section(e.name());
        let mut names = BTreeSet::new();
        fields(&sample, &mut names);
        names.remove("event");
        let missing: Vec<_> = names
            .iter()
            .filter(|n| !text.contains(&format!("`{n}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/journal.md does not describe these fields of `{}`: {missing:?}",
            e.name()
        );
    }
    assert!(seen.iter().all(|s| *s), "an event has no sample: {seen:?}");

    let env = Envelope {
        v: 1,
        seq: 1,
        ts: "t".into(),
        run_id: "r".into(),
        event: Event::AttemptStarted {
            step: "a".into(),
            attempt: 1,
            of: 1,
        },
    };
    let envelope = DOCS
        .split_once("## The envelope")
        .and_then(|(_, rest)| rest.split_once("\n## "))
        .expect("docs/journal.md has a section `## The envelope`")
        .0;
    let v = serde_json::to_value(&env).unwrap();
    for k in v.as_object().unwrap().keys() {
        if !["step", "attempt", "of"].contains(&k.as_str()) {
            assert!(
                envelope.contains(&format!("| `{k}` |")),
                "the envelope's `{k}`"
            );
        }
    }
}

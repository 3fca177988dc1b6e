//! Load: 50 runs at once (separate processes, one journal directory) against one loopback
//! server. Every run succeeds, every journal is complete and tells its own run, and the server
//! saw each run's requests exactly once.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;

use common::*;
use serde_json::{json, Value};

const RUNS: usize = 50;

fn runbook_text(base: &str) -> String {
    format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: loaded, title: One of many }}
inputs:
  n: {{ type: integer }}
backends:
  api: {{ http: {{ base_url: "{base}" }} }}
steps:
  - id: health
    safety: read-only
    http: {{ backend: api, request: {{ path: /health }} }}
    verify: [ {{ that: "result.status == 200 and result.json.ok" }} ]
    until: {{ timeout: 30s, interval: 50ms }}
  - id: work
    http: {{ backend: api, request: {{ method: POST, path: /work, json: {{ n: "{{{{ inputs.n }}}}", run: "{{{{ run.id }}}}" }} }} }}
    verify: [ {{ that: "result.status == 200" }} ]
    no_undo: test
  - id: echo
    safety: read-only
    shell: {{ argv: ["echo", "{{{{ inputs.n }}}}"] }}
    capture: {{ n: "result.stdout | trim | int" }}
  - id: agree
    assert: [ {{ that: "steps.echo.n == inputs.n" }} ]
"#
    )
}

#[test]
fn fifty_concurrent_runs_each_leave_a_complete_correct_journal() {
    let srv = Server::start(vec![
        ("/health", vec![Reply::json(200, json!({"ok": true}))]),
        ("/work", vec![Reply::json(200, json!({"done": true}))]),
    ]);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", &runbook_text(&srv.url("")));
    let children: Vec<_> = (0..RUNS)
        .map(|i| {
            runbook(dir.path())
                .args([
                    "run",
                    "rb.yaml",
                    "--non-interactive",
                    "--journal-dir",
                    "runs",
                    "--input",
                    &format!("n={i}"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "run {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let mut by_n: BTreeMap<i64, String> = BTreeMap::new();
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), RUNS);
    for r in runs {
        let path = r.path().join("journal.jsonl");
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.ends_with(b"\n"));
        let ev = events(&path);
        let id = r.file_name().to_string_lossy().into_owned();
        // Whole, ordered, one run's events only.
        for (i, e) in ev.iter().enumerate() {
            assert_eq!(e["seq"], json!(i + 1), "{id}");
            assert_eq!(e["run_id"], json!(id));
        }
        assert_eq!(ev[0]["event"], "run_started");
        let last = ev.last().unwrap();
        assert_eq!(last["event"], "run_finished");
        assert_eq!(last["outcome"], "succeeded");
        let finished: Vec<_> = of_kind(&ev, "step_finished")
            .iter()
            .map(|e| (e["step"].clone(), e["outcome"].clone()))
            .collect();
        assert_eq!(finished.len(), 4, "{id}: {finished:?}");
        assert!(
            finished.iter().all(|(_, o)| o == "succeeded"),
            "{finished:?}"
        );
        let n = ev[0]["inputs"]["n"].as_i64().unwrap();
        assert_eq!(of_kind(&ev, "capture")[0]["value"], json!(n), "{id}");
        assert!(by_n.insert(n, id).is_none(), "two journals for n={n}");
    }
    assert_eq!(
        by_n.keys().copied().collect::<Vec<_>>(),
        (0..RUNS as i64).collect::<Vec<_>>()
    );

    // The server saw each run's POST exactly once, carrying that run's id.
    let seen = srv.seen.lock().unwrap();
    let posts: Vec<Value> = seen
        .iter()
        .filter(|s| s.path == "/work")
        .map(|s| serde_json::from_slice(&s.body).unwrap())
        .collect();
    assert_eq!(posts.len(), RUNS);
    let got: BTreeSet<(i64, String)> = posts
        .iter()
        .map(|p| {
            (
                p["n"].as_i64().unwrap(),
                p["run"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(i64, String)> = by_n.into_iter().collect();
    assert_eq!(got, want);
}

//! `runbook report` as a command: finding the journal, formats, zones, templates, and clear
//! errors (never a panic) for input that is not a journal.

use crate::report_support;

use std::process::Output;

use report_support::{fixture, json, Workspace};

/// A journal checked in from a real failed run (started 2026-11-23T17:31:53.084Z).
const JOURNAL: &str = "payments-failed.jsonl";
const RUN_ID: &str = "20261123T173153Z-rollback-payments-6ef1";

fn with_journal() -> Workspace {
    let ws = Workspace::new(&[JOURNAL]);
    let dir = ws.path().join(".runbook/runs").join(RUN_ID);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture(JOURNAL), dir.join("journal.jsonl")).unwrap();
    ws
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn finds_the_journal_by_run_id_file_or_directory() {
    let ws = with_journal();
    let by_id = ws.report(&[RUN_ID]);
    let by_file = ws.report(&[JOURNAL]);
    let dir = format!(".runbook/runs/{RUN_ID}");
    let by_dir = ws.report(&[&dir]);
    for md in [&by_id, &by_file, &by_dir] {
        assert!(md.starts_with("# Post-Incident Review: Move payments to the new schema — INC-7"));
        assert!(md.contains("- **Incident Commander:** dana"), "{md}");
    }
    let moved = ws.path().join("elsewhere");
    std::fs::rename(ws.path().join(".runbook"), &moved).unwrap();
    let md = ws.report(&[RUN_ID, "--journal-dir", "elsewhere/runs"]);
    let body = |s: &str| s.rsplit_once("\n---\n").map(|(b, _)| b.to_string());
    assert_eq!(body(&md), body(&by_id));
    assert!(
        md.contains(&format!("`elsewhere/runs/{RUN_ID}/journal.jsonl`")),
        "{md}"
    );
}

#[test]
fn times_follow_tz_or_utc() {
    let ws = with_journal();
    let kolkata = ws.report(&[RUN_ID]);
    assert!(
        kolkata.contains("- **Date:** 2026-11-23 (UTC+05:30)"),
        "{kolkata}"
    );
    assert!(kolkata.contains("- `23:01:53` Detection:"), "{kolkata}");

    let utc = ws.report(&[RUN_ID, "--utc"]);
    assert!(utc.contains("- **Date:** 2026-11-23 (UTC)"), "{utc}");
    assert!(utc.contains("- `17:31:53` Detection:"), "{utc}");
    let s = json(&ws.report(&[RUN_ID, "--utc", "--format", "json"]));
    assert_eq!(s["started_at"], "2026-11-23T17:31:53.084Z");

    let out = ws
        .command(&["report", RUN_ID])
        .env("TZ", "America/New_York")
        .output()
        .unwrap();
    let ny = String::from_utf8(out.stdout).unwrap();
    assert!(
        ny.contains("(UTC-05:00)") && ny.contains("`12:31:53`"),
        "{ny}"
    );
}

#[test]
fn format_comes_from_the_flag_or_the_extension() {
    let ws = with_journal();
    let out = ws.runbook(&["report", RUN_ID, "-o", "out/pir.html"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(ws.path().join("out/pir.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));

    let out = ws.runbook(&["report", RUN_ID, "-o", "pir.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = json(&std::fs::read_to_string(ws.path().join("pir.json")).unwrap());
    assert_eq!(s["outcome"], "failed");
    assert_eq!(s["counts"]["undo_succeeded"], 2);
    assert_eq!(
        s["steps"][0]["captures"]["line"],
        "snapshot payments-2024 taken"
    );

    let out = ws.runbook(&["report", RUN_ID, "-o", "pir.txt"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("name it .md, .json or .html"),
        "{}",
        stderr(&out)
    );

    let out = ws.runbook(&["report", RUN_ID, "-o", "pir.txt", "--format", "md"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_team_template_gets_the_same_context() {
    let ws = with_journal();
    let tmpl = ws.path().join("team.md.j2");
    // Block tags swallow the newline after them (trim_blocks), as in the built-in template.
    std::fs::write(
        &tmpl,
        "{{ run.id }} {{ outcome }} by {{ run.operator }}\n\
         {% for s in steps %}{{ s.id }}={{ s.state }} {% endfor %}\n\
         | {{ went_wrong['items'][0] | inline }}\n",
    )
    .unwrap();
    let md = ws.report(&[RUN_ID, "--template", "team.md.j2"]);
    assert_eq!(
        md,
        format!(
            "{RUN_ID} failed by dana\n\
             snapshot=succeeded pause-writers=succeeded migrate=failed resume-traffic=not-run \
             pause-writers.undo=succeeded snapshot.undo=succeeded notify=succeeded \
             | Step `migrate` failed: `sh` exited with code 2: migration 42 failed: lock timeout on payments.\n"
        )
    );
}

#[test]
fn template_errors_say_where() {
    let ws = with_journal();
    std::fs::write(ws.path().join("broken.j2"), "ok\n{% for s in %}\n").unwrap();
    let out = ws.runbook(&["report", RUN_ID, "--template", "broken.j2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the template broken.j2: line 2"),
        "{}",
        stderr(&out)
    );

    std::fs::write(ws.path().join("typo.j2"), "{{ run.operatr }}\n").unwrap();
    let out = ws.runbook(&["report", RUN_ID, "--template", "typo.j2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("undefined"), "{}", stderr(&out));

    let out = ws.runbook(&[
        "report",
        RUN_ID,
        "--template",
        "typo.j2",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--template renders Markdown"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let ws = Workspace::new(&[]);
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "words.jsonl",
            b"hello\nworld\n",
            "is not a runbook journal (line 1:",
        ),
        ("empty.jsonl", b"", "is not a runbook journal (it is empty)"),
        (
            "binary.jsonl",
            &[0xff, 0xfe, 0x00, 0x01, 0x9c],
            "is not a runbook journal",
        ),
        (
            "other.json",
            b"{\"name\": \"x\"}\n",
            "is not a runbook journal (line 1:",
        ),
    ];
    for (name, bytes, expect) in cases {
        std::fs::write(ws.path().join(name), bytes).unwrap();
        let out = ws.runbook(&["report", name]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(expect), "{name}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("panicked"),
            "{name}: {}",
            stderr(&out)
        );
    }
    let out = ws.runbook(&["report", "20990101T000000Z-nope-0000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no journal for `20990101T000000Z-nope-0000`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unreadable_lines_are_left_out_and_said() {
    let ws = Workspace::new(&[]);
    let text = std::fs::read_to_string(fixture(JOURNAL)).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(3, "{\"v\":1,\"seq\":\"garbled");
    std::fs::write(ws.path().join("j.jsonl"), lines.join("\n") + "\n").unwrap();
    let md = ws.report(&["j.jsonl"]);
    assert!(
        md.contains(
            "> **Note:** 1 line of the journal could not be read and was left out (first: line 4:"
        ),
        "{md}"
    );
    assert!(md.contains("Step `migrate` failed"), "{md}");
}

/// `run --report` writes the same report at the end of the run.
#[test]
fn run_writes_its_report() {
    let ws = Workspace::new(&["cutover-dns.yaml"]);
    let run = ws.run(
        "cutover-dns.yaml",
        &[
            "--reason",
            "INC-9",
            "--answer",
            "confirm-cutover=no",
            "--report",
            "reports/pir.json",
        ],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("report: reports/pir.json"),
        "{}",
        run.stderr
    );
    let s = json(&std::fs::read_to_string(ws.path().join("reports/pir.json")).unwrap());
    assert_eq!(s["run_id"], run.id.as_str());
    assert_eq!(s["outcome"], "aborted");
    assert_eq!(s, json(&ws.report(&[&run.id, "--format", "json"])));
}

/// Starts `slow-drain.yaml`, waits until `drain` is running, sends `signal`, and returns the
/// workspace, the run id and the engine's exit code.
fn stop_mid_step(signal: i32) -> (Workspace, String, Option<i32>) {
    let ws = Workspace::new(&["slow-drain.yaml"]);
    let mut child = ws
        .command(&[
            "run",
            "slow-drain.yaml",
            "--non-interactive",
            "--operator",
            "alice",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let runs = ws.path().join(".runbook/runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let journal = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "`drain` never started"
        );
        let found = std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path().join("journal.jsonl"));
        if let Some(j) = found {
            let text = std::fs::read_to_string(&j).unwrap_or_default();
            if text.contains("\"attempt_started\",\"step\":\"drain\"") {
                break j;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // SAFETY: kill(2) on the child we spawned, by its pid.
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = child.wait().unwrap();
    let id = journal
        .parent()
        .and_then(|p| p.file_name())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    (ws, id, status.code())
}

#[test]
fn an_interrupted_run_reports_aborted_and_says_why() {
    let (ws, id, code) = stop_mid_step(libc::SIGINT);
    assert_eq!(code, Some(130));
    let s = json(&ws.report(&[&id, "--format", "json"]));
    assert_eq!(s["outcome"], "aborted");
    assert_eq!(s["exit_code"], 130);
    assert_eq!(s["failed_step"], "drain");
    let md = ws.report(&[&id]);
    assert!(
        md.contains("The run was interrupted (Ctrl-C or SIGTERM) during `drain`"),
        "{md}"
    );
    assert!(md.contains("| `after` | main | not-run |"), "{md}");
}

#[test]
fn a_killed_run_reports_incomplete_with_the_step_in_flight() {
    let (ws, id, code) = stop_mid_step(libc::SIGKILL);
    assert_eq!(code, None, "killed by a signal");
    let s = json(&ws.report(&[&id, "--format", "json"]));
    assert_eq!(s["outcome"], "incomplete");
    assert_eq!(s["in_flight_step"], "drain");
    assert_eq!(s["exit_code"], serde_json::Value::Null);
    let md = ws.report(&[&id]);
    assert!(
        md.contains("incomplete: the journal ends while `drain` was in flight"),
        "{md}"
    );
    assert!(md.contains("no `run_finished` event"), "{md}");
}

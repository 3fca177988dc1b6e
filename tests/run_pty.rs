//! A guided run in a real pseudo-terminal: the reason, a confirmation and a manual step are
//! answered at dialoguer prompts, and the journal records who answered, how.

mod common;

use std::time::Duration;

use common::*;
use expectrl::{Expect, Session};

#[test]
fn interactive_run_answers_confirmation_and_manual_step_at_prompts() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata:
  name: guided
  title: A guided run
  severity: P3
  description: Practise answering prompts.
secrets:
  token: { env: PTY_TOKEN }
steps:
  - id: look
    safety: read-only
    shell: { argv: ["echo", "looking around with {{ secrets.token }}"] }
  - id: approve
    confirm: { prompt: "Restart the widget with {{ secrets.token }}?" }
  - id: restart
    shell: { argv: ["touch", "restarted"] }
    no_undo: test
  - id: tell
    manual: { instructions: "Tell #ops that the widget was restarted." }
"#,
    );
    let mut cmd = std::process::Command::new(bin());
    cmd.current_dir(dir.path())
        .env_remove("CI")
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("RUNBOOK_OPERATOR", "alice")
        .env("PTY_TOKEN", "pty-s3cret-value")
        .args(["run", "rb.yaml", "--journal-dir", "runs"]);
    let mut s = Session::spawn(cmd).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    let mut screen = String::new();
    let mut seen = |c: expectrl::Captures| {
        screen.push_str(&String::from_utf8_lossy(c.before()));
        for m in c.matches() {
            screen.push_str(&String::from_utf8_lossy(m));
        }
    };
    seen(s.expect("Why are you running").unwrap());
    s.send("ticket INC-42\r").unwrap();
    seen(s.expect("looking around with ***").unwrap());
    seen(s.expect("Restart the widget with ***?").unwrap());
    // The default is "no"; move up to "yes".
    s.send("\x1b[A").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.send("\r").unwrap();
    seen(s.expect("Tell #ops").unwrap());
    seen(s.expect("mark the step").unwrap());
    s.send("\r").unwrap(); // done
    seen(s.expect("Note for the journal").unwrap());
    s.send("posted in #ops\r").unwrap();
    seen(s.expect("succeeded in").unwrap());
    seen(s.expect(expectrl::Eof).unwrap());
    assert!(
        !screen.contains("pty-s3cret-value"),
        "the terminal showed the secret:\n{screen}"
    );
    assert!(dir.path().join("restarted").exists());
    let ev = events(&journal_path(&dir.path().join("runs")));
    let started = of_kind(&ev, "run_started");
    assert_eq!(started[0]["mode"], "interactive");
    assert_eq!(started[0]["reason"], "ticket INC-42");
    let answers = of_kind(&ev, "gate_answered");
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["step"], "approve");
    assert_eq!(answers[0]["answer"], "yes");
    assert_eq!(answers[0]["via"], "prompt");
    assert_eq!(answers[0]["by"], "alice");
    assert_eq!(answers[1]["answer"], "done");
    assert_eq!(answers[1]["note"], "posted in #ops");
    assert_eq!(of_kind(&ev, "run_finished")[0]["outcome"], "succeeded");
}

//! Issue 11: the operator's terminal and the engine's resources under hostile input. The
//! terminal items run the real binary in a pseudo-terminal and read the screen as a terminal
//! emulator would (vt100): what the operator *sees*, not which bytes were written.

use crate::common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use expectrl::process::unix::WaitStatus;
use expectrl::{Eof, Expect, Session};

const ROWS: u16 = 120;
const COLS: u16 = 200;

/// A terminal emulator's view of the bytes: the screen, and the window title escapes set.
struct Screen {
    text: String,
    title: String,
    raw: Vec<u8>,
}

#[derive(Default)]
struct Title(Vec<u8>);

impl vt100::Callbacks for Title {
    fn set_window_title(&mut self, _: &mut vt100::Screen, title: &[u8]) {
        self.0 = title.to_vec();
    }
}

fn emulate(raw: &[u8]) -> Screen {
    let n = |x: u16| std::num::NonZeroU16::new(x).unwrap();
    let mut p = vt100::Parser::new_with_callbacks(n(ROWS), n(COLS), 0, Title::default());
    p.process(raw);
    Screen {
        text: p.screen().contents(),
        title: String::from_utf8_lossy(&p.callbacks().0).into_owned(),
        raw: raw.to_vec(),
    }
}

/// The binary in a pseudo-terminal of ROWS x COLS.
struct Pty {
    s: expectrl::session::OsSession,
    bytes: Vec<u8>,
}

impl Pty {
    fn spawn(mut cmd: Command) -> Pty {
        cmd.env("TERM", "xterm")
            .env("NO_COLOR", "1")
            .env("RUNBOOK_OPERATOR", "alice");
        let mut s = Session::spawn(cmd).expect("spawn in a pty");
        s.get_process_mut()
            .set_window_size(COLS, ROWS)
            .expect("window size");
        s.set_expect_timeout(Some(Duration::from_secs(60)));
        Pty { s, bytes: vec![] }
    }

    fn wait_for(&mut self, text: &str) {
        match self.s.expect(text) {
            Ok(c) => {
                self.bytes.extend_from_slice(c.before());
                for m in c.matches() {
                    self.bytes.extend_from_slice(m);
                }
            }
            Err(e) => panic!(
                "`{text}` never appeared ({e}); the screen:\n{}",
                emulate(&self.bytes).text
            ),
        }
    }

    fn send(&mut self, text: &str) {
        self.s.send(text).expect("send");
    }

    /// Reads to the end; the screen and the exit code.
    fn finish(mut self) -> (Screen, i32) {
        let c = self.s.expect(Eof).unwrap_or_else(|e| {
            panic!(
                "the run did not end ({e}); the screen:\n{}",
                emulate(&self.bytes).text
            )
        });
        self.bytes.extend_from_slice(c.before());
        for m in c.matches() {
            self.bytes.extend_from_slice(m);
        }
        let code = match self.s.get_process().wait().expect("wait") {
            WaitStatus::Exited(_, c) => c,
            other => panic!("ended by {other:?}"),
        };
        (emulate(&self.bytes), code)
    }
}

fn cmd_in(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(dir).env_remove("CI").args(args);
    c
}

/// The line of the screen that contains `needle`.
fn line_with<'a>(screen: &'a Screen, needle: &str) -> &'a str {
    screen
        .text
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with `{needle}` on the screen:\n{}", screen.text))
}

const SPOOF: &str = "production\x1b[2K\rRoll back staging-scratch (harmless)";

const GUIDED: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata:
  name: spoof
  title: Roll back
inputs:
  target: { type: string }
steps:
  - id: look
    safety: read-only
    shell:
      script: |
        printf 'first line\n\033[2J\033[Hscreen cleared\033]0;pwned\007\n'
  - id: approve
    confirm: { prompt: "Roll back {{ inputs.target }}?" }
  - id: roll
    shell: { argv: ["touch", "rolled-back"] }
    no_undo: test
"#;

/// Item 10: a value, a step's output and a prompt cannot clear the screen, set the title or
/// rewrite the confirmation: the screen shows the escapes, and the prompt names production.
#[test]
fn a_guided_run_shows_escapes_instead_of_obeying_them() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", GUIDED);
    let mut pty = Pty::spawn(cmd_in(
        dir.path(),
        &[
            "run",
            "rb.yaml",
            "--reason",
            "INC-1",
            "--journal-dir",
            "runs",
            "--input",
            &format!("target={SPOOF}"),
        ],
    ));
    pty.wait_for("(harmless)?");
    std::thread::sleep(Duration::from_millis(200));
    pty.send("\r"); // the default: no
    let (screen, _) = pty.finish();
    assert!(
        !dir.path().join("rolled-back").exists(),
        "answering no rolled back"
    );
    assert_eq!(screen.title, "", "a step's output set the window title");
    // Nothing cleared the screen: the run's first lines are still there.
    line_with(&screen, "runbook spoof: Roll back");
    line_with(&screen, "first line");
    line_with(&screen, "\\x1b[2J\\x1b[Hscreen cleared\\x1b]0;pwned\\x07");
    // The prompt still says what the run targets, with the spoofing escapes shown.
    let prompt = line_with(&screen, "(harmless)?");
    assert!(
        prompt.contains("Roll back production\\x1b[2K\\rRoll back staging-scratch"),
        "the confirmation was rewritten: `{prompt}`\n{}",
        screen.text
    );
}

/// Item 10: `runbook plan` on a terminal cannot be made to hide a terminal step by a value
/// that moves the cursor up and erases.
#[test]
fn plan_on_a_terminal_cannot_hide_a_step() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: hide, title: Hide a step }
inputs:
  note: { type: string }
steps:
  - id: wipe
    title: Wipe the volumes
    safety: terminal
    shell: { argv: ["echo", "wiping"] }
    no_undo: test
  - id: say
    safety: read-only
    shell: { argv: ["echo", "{{ inputs.note }}"] }
"#,
    );
    let hostile = "\x1b[40A\x1b[JPlan for hide: harmless\n 1. say (read-only)";
    let pty = Pty::spawn(cmd_in(
        dir.path(),
        &["plan", "rb.yaml", "--input", &format!("note={hostile}")],
    ));
    let (screen, code) = pty.finish();
    assert_eq!(code, 0, "{}", screen.text);
    line_with(&screen, "Wipe the volumes");
    line_with(&screen, "Highest safety class: terminal");
    line_with(&screen, "\\x1b[40A\\x1b[J");
}

/// Item 10: a report shown on a terminal, of a run whose reason and step output hold
/// escapes, shows them instead of obeying them.
#[test]
fn report_on_a_terminal_shows_escapes() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rb.yaml", GUIDED);
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
            "--reason",
            "INC-2\x1b]0;pwned\x07\x1b[2J",
            "--input",
            &format!("target={SPOOF}"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{:?}", text(&out));
    let journal = journal_path(&dir.path().join("runs"));
    let pty = Pty::spawn(cmd_in(
        dir.path(),
        &["report", journal.to_str().unwrap(), "--utc"],
    ));
    let (screen, code) = pty.finish();
    assert_eq!(code, 0, "{}", screen.text);
    assert_eq!(screen.title, "", "the report set the window title");
    // (Markdown escapes the brackets.)
    line_with(&screen, "INC-2\\x1b\\]0;pwned\\x07\\x1b\\[2J");
    assert!(
        !screen.raw.contains(&0x1b),
        "the report sent an escape to the terminal"
    );
}

/// Item 10: error messages and drill output on a terminal: a file name and an input value
/// with escapes are shown, not obeyed.
#[test]
fn errors_and_drill_output_show_escapes() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: n, title: n}\n\
         inputs:\n  count: { type: integer }\n\
         steps:\n  - id: a\n    safety: read-only\n    shell: { argv: [\"true\"] }\n",
    );
    let pty = Pty::spawn(cmd_in(
        dir.path(),
        &[
            "run",
            "rb.yaml",
            "--non-interactive",
            "--reason",
            "x",
            "--input",
            "count=1\x1b]0;pwned\x07\x1b[2J",
        ],
    ));
    let (screen, code) = pty.finish();
    assert_eq!(code, 2, "{}", screen.text);
    assert_eq!(screen.title, "");
    line_with(&screen, "\\x1b]0;pwned\\x07\\x1b[2J");

    // A usage error quotes the command line.
    let out = runbook(dir.path())
        .args(["plan", "rb.yaml", "--format", "x\x1b]0;pwned\x07"])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!out.stderr.contains(&0x1b), "{err}");
    assert!(err.contains("invalid value 'x"), "{err}");

    // A drill file whose name holds escapes, and which is not a valid drill.
    let drills = dir.path().join("drills");
    write(
        &drills,
        "bad\x1b]0;pwned\x07\x1b[2K.yaml",
        "apiVersion: runbook/v1\nkind: Drill\nmetadata: {name: d}\n",
    );
    let pty = Pty::spawn(cmd_in(dir.path(), &["drill", "drills"]));
    let (screen, code) = pty.finish();
    assert_eq!(code, 2, "{}", screen.text);
    assert_eq!(screen.title, "", "{}", screen.text);
    line_with(&screen, "ERROR");
    line_with(&screen, "bad\\x1b]0;pwned\\x07\\x1b[2K.yaml");
}

/// Item 10: `check` rejects control characters in runbook text, at their file:line:column.
#[test]
fn check_rejects_control_characters_in_runbook_text() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata:\n  name: esc\n  title: \"Restart\\e[2J\"\n\
         steps:\n  - id: ask\n    confirm: { prompt: \"Go?\\u009b2J\" }\n",
    );
    let out = runbook(dir.path())
        .args(["check", "rb.yaml"])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // At the escape itself, not the start of the string.
    assert!(err.contains("rb.yaml:5:18"), "{err}");
    assert!(err.contains("U+001B"), "{err}");
    assert!(err.contains("rb.yaml:8:28"), "{err}");
    assert!(err.contains("U+009B"), "{err}");
    assert!(err.contains("control-character"), "{err}");
    assert!(!out.stderr.contains(&0x1b), "{err}");
}

/// Item 11: a step whose child opens /dev/tty (an ssh or sudo password prompt) fails at once
/// instead of being stopped by SIGTTIN while the run waits: children have no controlling
/// terminal. Run at a real terminal, in CI mode as in the report.
#[test]
fn a_child_reading_the_terminal_fails_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: tty, title: Reads the terminal }
steps:
  - id: password
    safety: read-only
    timeout: 10m
    shell: { script: "set -e; read secret < /dev/tty; echo got it" }
"#,
    );
    let mut c = cmd_in(
        dir.path(),
        &["run", "rb.yaml", "--reason", "x", "--journal-dir", "runs"],
    );
    c.env("CI", "1");
    let pty = Pty::spawn(c);
    let (screen, code) = pty.finish();
    assert_eq!(code, 1, "{}", screen.text);
    let ev = events(&journal_path(&dir.path().join("runs")));
    let finished = of_kind(&ev, "step_finished");
    assert_eq!(finished[0]["outcome"], "failed");
    let err = finished[0]["error"].as_str().unwrap_or_default();
    assert!(err.contains("/dev/tty"), "{err}");
    assert!(!err.contains("timed out"), "{err}");
}

/// Item 11: children still die with their group on timeout (they lead their own session,
/// so their session's process group is what is killed).
#[test]
fn a_timeout_still_kills_the_childs_whole_tree() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    write(
        dir.path(),
        "rb.yaml",
        &format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: tree, title: A tree }}
steps:
  - id: tree
    safety: read-only
    timeout: 1s
    shell: {{ script: "trap '' TERM; sleep 300 & echo $! > {p}; sleep 300" }}
"#,
            p = pidfile.display()
        ),
    );
    let out = runbook(dir.path())
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--reason",
            "x",
            "--journal-dir",
            "runs",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The grandchild is gone (or a zombie not yet reaped by init).
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let alive = state
        .rsplit(')')
        .next()
        .and_then(|s| s.split_whitespace().next())
        .is_some_and(|st| st != "Z");
    assert!(
        !alive,
        "the background child {pid} survived the timeout: {state}"
    );
}

fn run_args<'a>(file: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "run",
        file,
        "--non-interactive",
        "--reason",
        "x",
        "--journal-dir",
        "runs",
    ];
    v.extend_from_slice(more);
    v
}

/// Item 14: a duration that would overflow the clock is a located error at `check`, and one
/// rendered at run time fails its step instead of panicking the runner.
#[test]
fn absurd_durations_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: d, title: d}\n\
         steps:\n  - id: a\n    safety: read-only\n    timeout: 100000000w\n    shell: { argv: [\"true\"] }\n",
    );
    let out = runbook(dir.path())
        .args(["check", "rb.yaml"])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("rb.yaml:7:14"), "{err}");
    assert!(err.contains("too long"), "{err}");

    write(
        dir.path(),
        "wait.yaml",
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: w, title: w}\n\
         inputs:\n  d: { type: string }\n\
         steps:\n  - id: w\n    wait: \"{{ inputs.d }}\"\n",
    );
    let out = runbook(dir.path())
        .args(run_args("wait.yaml", &["--input", "d=100000000w"]))
        .output()
        .unwrap();
    let (o, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{o}\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    let ev = events(&journal_path(&dir.path().join("runs")));
    let finished = of_kind(&ev, "step_finished");
    assert_eq!(finished[0]["outcome"], "failed");
    assert!(
        finished[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("too long"),
        "{:?}",
        finished[0]
    );
    assert_eq!(of_kind(&ev, "run_finished").len(), 1);
}

/// Item 14: a chain of 500 calls is a located error at `check`, not a stack overflow.
#[test]
fn a_long_chain_of_calls_is_an_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..500 {
        let body = if i == 499 {
            "steps:\n  - id: end\n    safety: read-only\n    shell: { argv: [\"true\"] }\n"
                .to_string()
        } else {
            format!(
                "steps:\n  - id: next\n    call: {{ runbook: r{}.yaml }}\n",
                i + 1
            )
        };
        write(
            dir.path(),
            &format!("r{i}.yaml"),
            &format!(
                "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {{name: r{i}, title: r{i}}}\n{body}"
            ),
        );
    }
    let out = runbook(dir.path())
        .args(["check", "r0.yaml"])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("call-depth"), "{err}");
    assert!(err.contains("r15.yaml:6:"), "{err}");
}

/// Item 14: one 256 MB line without a newline keeps the engine's memory bounded (it took
/// 1 GB): the line is kept as its first and last bytes with a note of what was cut.
#[test]
fn a_huge_line_of_output_keeps_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: big, title: big}\n\
         steps:\n  - id: big\n    safety: read-only\n\
         \x20   shell: { script: \"printf start; head -c 268435456 /dev/zero | tr '\\\\0' a; printf end\" }\n",
    );
    let mut cmd = runbook(dir.path());
    let errf = dir.path().join("err");
    cmd.args(run_args("rb.yaml", &[]));
    let Some((code, peak)) = run_measured(&cmd, &errf) else {
        return;
    };
    assert_eq!(code, 0);
    assert!(
        peak < 128 << 20,
        "peak RSS {} MB for a 256 MB line",
        peak >> 20
    );
    // The line as shown: its head and tail, and what was cut.
    let err = std::fs::read_to_string(&errf).unwrap();
    let line = err
        .lines()
        .find(|l| l.contains("│ startaaa"))
        .unwrap_or_else(|| panic!("no output line in {} bytes of log", err.len()));
    assert!(line.ends_with("aaaend"), "{}", &line[line.len() - 40..]);
    assert!(line.contains("bytes of this line truncated"));
    assert!(line.len() < 128 << 10, "{} bytes shown", line.len());
}

/// Item 14: a journal with a 1 GB line is refused, naming the line, without reading it all.
#[test]
fn a_journal_with_a_huge_line_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("runs/r1");
    std::fs::create_dir_all(&run_dir).unwrap();
    let journal = run_dir.join("journal.jsonl");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&journal).unwrap();
        writeln!(f, "{{\"v\":1}}").unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..1024 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\n").unwrap();
    }
    let mut cmd = runbook(dir.path());
    cmd.args(["report", journal.to_str().unwrap()]);
    let Some((code, peak)) = run_measured(&cmd, &dir.path().join("err")) else {
        return;
    };
    let err = std::fs::read_to_string(dir.path().join("err")).unwrap();
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(peak < 256 << 20, "peak RSS {} MB", peak >> 20);
}

/// Item 15: the crash suite's pause hook exists in debug (test) builds only. In a debug build
/// it pauses (the crash suite relies on it); run with `--release` this test checks that the
/// release binary ignores the variable and finishes.
#[test]
fn the_pause_hook_is_a_debug_build_only_test_hook() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: p, title: p}\n\
         steps:\n  - id: a\n    safety: read-only\n    shell: { argv: [\"true\"] }\n",
    );
    let mut child = runbook(dir.path())
        .args(run_args("rb.yaml", &[]))
        .env("RUNBOOK_TEST_PAUSE_AFTER", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    if cfg!(debug_assertions) {
        // Paused after event 1, with its marker; let it go.
        let marker = wait_for_marker(&dir.path().join("runs"), "paused-1", &mut child);
        std::fs::remove_file(marker).unwrap();
    } else {
        // The release binary must not pause: fail at once if it does.
        while child.try_wait().unwrap().is_none() {
            let paused = std::fs::read_dir(dir.path().join("runs"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.path().join("paused-1").exists());
            if paused {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the release binary obeyed RUNBOOK_TEST_PAUSE_AFTER");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let paused = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .flatten()
        .any(|e| e.path().join("paused-1").exists());
    assert!(!paused);
    if !cfg!(debug_assertions) {
        let bytes = std::fs::read(bin()).unwrap();
        let needle = b"RUNBOOK_TEST_PAUSE_AFTER";
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the release binary holds the hook's variable name"
        );
    }
}

/// Item 16: `report -o` refuses to write over a journal: by name, and by identity (a symlink
/// to it under another name).
#[test]
fn report_never_overwrites_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: j, title: j}\n\
         steps:\n  - id: a\n    safety: read-only\n    shell: { argv: [\"true\"] }\n",
    );
    let out = runbook(dir.path())
        .args(run_args("rb.yaml", &[]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let journal = journal_path(&dir.path().join("runs"));
    let before = std::fs::read(&journal).unwrap();
    let run_dir = journal.parent().unwrap();
    std::os::unix::fs::symlink(&journal, dir.path().join("j.md")).unwrap();
    for target in [
        journal.clone(),
        dir.path().join("j.md"),
        dir.path().join("elsewhere/journal.jsonl"),
    ] {
        let out = runbook(dir.path())
            .args([
                "report",
                run_dir.to_str().unwrap(),
                "--format",
                "md",
                "-o",
                target.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", target.display());
        assert!(
            err.contains("refusing to write the report over the journal"),
            "{err}"
        );
        assert_eq!(std::fs::read(&journal).unwrap(), before);
    }
    assert!(!dir.path().join("elsewhere/journal.jsonl").exists());
}

/// Item 18: two symlinks to ancestors do not make `check`, `list` or `drill` loop, and each
/// file is checked once.
#[test]
fn symlink_loops_are_walked_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rbs");
    write(
        &root,
        "a/b/x.yaml",
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: x, title: x}\n\
         steps:\n  - id: a\n    safety: read-only\n    shell: { argv: [\"true\"] }\n",
    );
    std::os::unix::fs::symlink(&root, root.join("a/b/up")).unwrap();
    std::os::unix::fs::symlink(root.join("a"), root.join("a/b/up2")).unwrap();
    let run = |args: &[&str]| {
        let mut c = runbook(dir.path());
        c.args(args);
        let mut child = c
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A loop never ends: bound the wait (a hang, not a timing assertion).
        for _ in 0..600 {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!("`runbook {args:?}` hangs on a symlink loop");
    };
    let out = run(&["check", "rbs"]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{o}{e}");
    let all = format!("{o}{e}");
    assert!(all.contains("1 file"), "{all}");
    // Named twice (a directory and a file in it): checked once.
    let out = run(&["check", "rbs", "rbs/a/b/up/a/b/x.yaml"]);
    let (o, e) = text(&out);
    assert!(format!("{o}{e}").contains("1 file"), "{o}{e}");
    let out = run(&["list", "rbs"]);
    let (o, _) = text(&out);
    assert_eq!(o.lines().filter(|l| l.contains(" x")).count(), 1, "{o}");
    let out = run(&["drill", "rbs"]);
    let (o, e) = text(&out);
    assert!(e.contains("no drills found"), "{o}{e}");
}

/// Item 18: `--inputs`, `--template` and `drill FILE` read at most 4 MiB, whatever metadata
/// says: /dev/zero fails at once with a clear message, in bounded memory.
#[test]
fn endless_files_are_refused_after_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {name: z, title: z}\n\
         steps:\n  - id: a\n    safety: read-only\n    shell: { argv: [\"true\"] }\n",
    );
    let out = runbook(dir.path())
        .args(run_args("rb.yaml", &[]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let journal = journal_path(&dir.path().join("runs"));
    let cases: Vec<Vec<&str>> = vec![
        run_args("rb.yaml", &["--inputs", "/dev/zero"]),
        vec!["plan", "rb.yaml", "--inputs", "/dev/zero"],
        vec![
            "report",
            journal.to_str().unwrap(),
            "--template",
            "/dev/zero",
        ],
        vec!["drill", "/dev/zero"],
    ];
    for args in cases {
        let mut cmd = runbook(dir.path());
        let errf = dir.path().join("err");
        cmd.args(&args);
        let Some((code, peak)) = run_measured(&cmd, &errf) else {
            return;
        };
        let err = std::fs::read_to_string(&errf).unwrap();
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("more than 4194304 bytes") || err.contains("more than 4 MiB"),
            "{args:?}: {err}"
        );
        assert!(peak < 64 << 20, "{args:?}: peak RSS {} MB", peak >> 20);
    }
}

/// Item 20: a compose backend's `command` must be a Compose CLI: another program would run
/// with the step classed and shown as the compose verb (`ps`, read-only).
#[test]
fn a_compose_command_that_is_not_compose_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (cli, ok) in [
        ("[sh, -c, 'rm -rf /tmp/x']", false),
        ("[docker, --debug, run, compose]", false),
        ("[docker, compose, down]", false),
        ("[/usr/local/bin/evil]", false),
        ("[docker, --context, prod, compose]", true),
        ("[podman, compose]", true),
        ("[/usr/bin/docker-compose]", true),
    ] {
        write(
            dir.path(),
            "rb.yaml",
            &format!(
                "apiVersion: runbook/v1\nkind: Runbook\nmetadata: {{name: c, title: c}}\n\
                 backends:\n  s:\n    compose: {{ command: {cli} }}\n\
                 steps:\n  - id: ps\n    compose: {{ ps: {{}} }}\n"
            ),
        );
        let out = runbook(dir.path())
            .args(["check", "rb.yaml"])
            .output()
            .unwrap();
        let (_, err) = text(&out);
        if ok {
            assert_eq!(out.status.code(), Some(0), "{cli}: {err}");
        } else {
            assert_eq!(out.status.code(), Some(2), "{cli}: {err}");
            assert!(err.contains("compose-command"), "{cli}: {err}");
            assert!(err.contains("rb.yaml:6:"), "{cli}: {err}");
        }
    }
}

//! A guided run in a real pseudo-terminal: the reason, a confirmation and a manual step are
//! answered at dialoguer prompts, and the journal records who answered, how.

use crate::common;

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
    let mut cmd = pty_command(dir.path(), &["run", "rb.yaml", "--journal-dir", "runs"]);
    cmd.env("PTY_TOKEN", "pty-s3cret-value");
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

/// The binary with `args` in `dir`, for a pseudo-terminal: no CI, no colour, an xterm, the
/// operator alice.
fn pty_command(dir: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin());
    cmd.current_dir(dir)
        .env_remove("CI")
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("RUNBOOK_OPERATOR", "alice")
        .args(args);
    cmd
}

/// A run in a pseudo-terminal of 80 columns, its output read back through a terminal emulator
/// (vt100): what the operator sees, after cursor moves, line clears and wrapping.
struct Pty {
    s: expectrl::session::OsSession,
    raw: Vec<u8>,
}

const COLS: u16 = 80;
const ROWS: u16 = 400;

impl Pty {
    fn spawn(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Pty {
        let mut cmd = pty_command(dir, args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut s = Session::spawn(cmd).expect("spawn in a pty");
        s.get_process_mut()
            .set_window_size(COLS, ROWS)
            .expect("window size");
        s.set_expect_timeout(Some(Duration::from_secs(60)));
        Pty { s, raw: vec![] }
    }

    /// `runbook run rb.yaml --journal-dir runs --reason x`.
    fn run_rb(dir: &std::path::Path) -> Pty {
        Pty::spawn(
            dir,
            &["run", "rb.yaml", "--journal-dir", "runs", "--reason", "x"],
            &[],
        )
    }

    /// The screen shows each of `wants` (wrapped lines joined, see `flat`).
    fn assert_shows<S: AsRef<str>>(&self, wants: &[S]) {
        let flat = self.flat();
        for want in wants {
            let want = want.as_ref();
            assert!(
                flat.contains(want),
                "missing {want:?} in:\n{}",
                self.screen()
            );
        }
    }

    /// After a resume: the summary has a row for each of `steps` (the first session's too),
    /// and the final line gives the whole run's outcome, since it first started.
    fn assert_whole_run_summarised(&self, id: &str, steps: &[&str]) {
        let screen = self.screen();
        let table: Vec<&str> = screen
            .lines()
            .skip_while(|l| !l.starts_with("step "))
            .collect();
        for step in steps {
            assert!(
                table.iter().any(|l| l.starts_with(&format!("{step} "))),
                "no row for {step}:\n{screen}"
            );
        }
        assert!(
            self.flat().contains(&format!("run {id} succeeded in"))
                && self.flat().contains("since it first started"),
            "{screen}"
        );
    }

    /// Waits for `needle` in the output, keeping every byte.
    fn until(&mut self, needle: &str) {
        let c = self
            .s
            .expect(needle)
            .unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}\n{}", self.screen()));
        self.raw.extend_from_slice(c.before());
        for m in c.matches() {
            self.raw.extend_from_slice(m);
        }
    }

    /// Waits for the first of `needles`; returns its index.
    fn until_any(&mut self, needles: &[&str]) -> usize {
        let pattern = needles
            .iter()
            .map(|n| regex_escape(n))
            .collect::<Vec<_>>()
            .join("|");
        let c = self
            .s
            .expect(expectrl::Regex(pattern.as_str()))
            .unwrap_or_else(|e| panic!("waiting for {needles:?}: {e}\n{}", self.screen()));
        self.raw.extend_from_slice(c.before());
        let mut found = String::new();
        for m in c.matches() {
            self.raw.extend_from_slice(m);
            found.push_str(&String::from_utf8_lossy(m));
        }
        needles
            .iter()
            .position(|n| found.contains(n))
            .expect("one of them matched")
    }

    fn send(&mut self, keys: &str) {
        // Let the prompt draw itself before keys arrive.
        std::thread::sleep(Duration::from_millis(300));
        self.s.send(keys).unwrap();
    }

    fn finish(&mut self) {
        self.until_eof();
    }

    fn until_eof(&mut self) {
        let c = self.s.expect(expectrl::Eof).unwrap();
        self.raw.extend_from_slice(c.before());
        for m in c.matches() {
            self.raw.extend_from_slice(m);
        }
    }

    /// The screen's rows, as a terminal shows them.
    fn rows(&self) -> Vec<String> {
        let size = |n| std::num::NonZeroU16::new(n).expect("not zero");
        let mut p = vt100::Parser::new(size(ROWS), size(COLS), 0);
        p.process(&self.raw);
        p.screen().rows(0, COLS).collect()
    }

    fn screen(&self) -> String {
        self.rows().join("\n").trim_end().to_string()
    }

    /// The lines as printed: rows the terminal wrapped (a line longer than the screen) joined
    /// back together.
    fn lines(&self) -> Vec<String> {
        let size = |n| std::num::NonZeroU16::new(n).expect("not zero");
        let mut p = vt100::Parser::new(size(ROWS), size(COLS), 0);
        p.process(&self.raw);
        let mut out: Vec<String> = vec![];
        let mut joining = false;
        for (i, row) in p.screen().rows(0, COLS).enumerate() {
            if joining {
                out.last_mut().expect("a row before").push_str(&row);
            } else {
                out.push(row);
            }
            joining = p.screen().row_wrapped(i as u16);
        }
        out
    }

    /// Rows the terminal wrapped in the middle of a word (a line longer than the screen that
    /// the engine did not wrap itself), with the row after.
    fn words_cut(&self) -> Vec<String> {
        let size = |n| std::num::NonZeroU16::new(n).expect("not zero");
        let mut p = vt100::Parser::new(size(ROWS), size(COLS), 0);
        p.process(&self.raw);
        let rows: Vec<String> = p.screen().rows(0, COLS).collect();
        (0..rows.len().saturating_sub(1))
            .filter(|i| {
                p.screen().row_wrapped(*i as u16)
                    && rows[*i].chars().count() == usize::from(COLS)
                    && !rows[*i].ends_with(' ')
                    && !rows[i + 1].starts_with(' ')
            })
            .map(|i| format!("{}⏎{}", rows[i], rows[i + 1]))
            .collect()
    }

    /// The command printed after `lead` (on the same line or on lines of its own continued
    /// with ` \`), as a shell would read it pasted.
    fn command_after(&self, lead: &str) -> Vec<String> {
        let lines = self.lines();
        let at = lines
            .iter()
            .rposition(|l| l.contains(lead))
            .unwrap_or_else(|| panic!("no {lead:?} in:\n{}", self.screen()));
        let mut text = lines[at][lines[at].find(lead).unwrap() + lead.len()..].to_string();
        let mut i = at;
        while text.trim().is_empty() || text.trim_end().ends_with('\\') {
            text = text.trim_end().trim_end_matches('\\').to_string() + " ";
            i += 1;
            text.push_str(&lines[i]);
        }
        text.split_whitespace().map(str::to_string).collect()
    }

    /// The screen with wrapped lines joined, for phrases that may wrap.
    fn flat(&self) -> String {
        self.rows()
            .iter()
            .map(|r| r.trim())
            .collect::<Vec<_>>()
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Items 1 and 3 (issue 12): the rollback's confirmation shows the change it guards as it will
/// be made (the revision and image read from the world, as `plan --live` does), its class and
/// its undo, and what each answer does; `skip` then leaves the rollback out.
#[test]
fn the_rollback_confirmation_shows_its_change_and_skip_leaves_it_out() {
    let dir = tempfile::tempdir().unwrap();
    let rb = root().join("runbooks/k8s-rollback.yaml");
    let drill = root().join("runbooks/drills/k8s-rollback/recovers.yaml");
    let mut t = Pty::spawn(
        dir.path(),
        &[
            "run",
            rb.to_str().unwrap(),
            "--world",
            drill.to_str().unwrap(),
            "--fast",
            "--reason",
            "practice",
            "--journal-dir",
            "runs",
            "--answer",
            "metrics=done",
            "--answer",
            "tell=done",
            "--answer",
            "record=done",
            "--answer",
            "escalate=done",
        ],
        &[],
    );
    t.until("Your answer");
    let flat = t.flat();
    t.assert_shows(&[
        "? Confirm the rollback [reversible]",
        "Only `yes` lets this change run:",
        "[reversible] undo — Roll back to the previous revision",
        "live: Deployment prod/flowengine: pod template of revision 1; image: flowengine:v1.1.0 → v1.0.0",
        "undo: Put back the revision that was running before the rollback",
        "yes make the change: run `undo`",
        "no stop the run here and change nothing more",
        "skip do not run `undo`; go on with the steps after it",
        "abort stop the run and undo what it has changed so far",
    ]);
    // `pin` and `pin_container` will not run (strategy undo): not shown as changes.
    assert!(!flat.contains("[reversible] pin"), "{}", t.screen());
    // From the default (no), one down is skip.
    t.send("\x1b[B");
    t.send("\r");
    t.finish();
    let flat = t.flat();
    assert!(
        flat.contains("undo skipped: `approve` was answered skip"),
        "{}",
        t.screen()
    );
    let ev = events(&journal_path(&dir.path().join("runs")));
    assert!(
        of_kind(&ev, "world_changed").is_empty(),
        "skip changed the world:\n{}",
        t.screen()
    );
    let answers = of_kind(&ev, "gate_answered");
    assert_eq!(answers[0]["step"], "approve");
    assert_eq!(answers[0]["answer"], "skip");
}

/// Item 3: a confirmation before a terminal change and an HTTP POST shows the class of the
/// change (terminal), the argv, the method, URL and JSON body, and "cannot be undone"; the
/// terminal step then asks for its own answer, and `no` there changes nothing.
#[test]
fn a_confirmation_shows_argv_json_body_and_cannot_be_undone() {
    let srv = Server::start(vec![(
        "/api/flags",
        vec![Reply::json(200, serde_json::json!({}))],
    )]);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        &format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata:
  name: wipe
  title: Wipe the cache
steps:
  - id: approve
    confirm: {{ prompt: "Wipe the cache?" }}
  - id: flag
    http:
      request:
        method: POST
        url: "{}"
        json: {{ flag: maintenance, on: true }}
    undo:
      title: Turn maintenance off
      http:
        request: {{ method: POST, url: "{}", json: {{ flag: maintenance, on: false }} }}
  - id: wipe
    safety: terminal
    shell: {{ argv: ["touch", "wiped"] }}
"#,
            srv.url("/api/flags"),
            srv.url("/api/flags")
        ),
    );
    let mut t = Pty::run_rb(dir.path());
    t.until("Your answer");
    let url = srv.url("/api/flags");
    t.assert_shows(&[
        "? approve [terminal] Wipe the cache?".to_string(),
        "Only `yes` lets these 2 changes run:".to_string(),
        format!("[reversible] flag POST {url}"),
        r#"JSON body: {"flag":"maintenance","on":true}"#.to_string(),
        format!("undo: Turn maintenance off (POST {url})"),
        "[terminal] wipe touch wiped".to_string(),
        "cannot be undone (terminal)".to_string(),
    ]);
    // yes at the confirmation, then the terminal step asks on its own: the default is no.
    t.send("\x1b[A");
    t.send("\r");
    t.until("is TERMINAL: it cannot be undone");
    t.until("Your answer [terminal]");
    t.send("\r");
    t.finish();
    assert!(!dir.path().join("wiped").exists(), "{}", t.screen());
    assert!(
        t.flat().contains("the operator answered no at `wipe`"),
        "{}",
        t.screen()
    );
}

/// Item 8: after a resume, steps keep their numbers, the summary covers the whole run and the
/// final line gives the whole run's outcome and time.
#[test]
fn a_resumed_run_keeps_numbers_and_summarises_the_whole_run() {
    let w = Workdir::with_runbook(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata:
  name: four
  title: Four steps
steps:
  - id: one
    safety: read-only
    shell: { argv: ["true"] }
  - id: two
    safety: read-only
    shell: { argv: ["true"] }
  - id: approve
    confirm: { prompt: "Go on?" }
  - id: four
    shell: { argv: ["touch", "four"] }
    no_undo: a test
"#,
    );
    w.run("rb.yaml", &["--answer", "approve=no"]).assert_code(3);
    let id = run_id(&w.events());
    let mut t = Pty::spawn(w.path(), &["resume", &id, "--journal-dir", "runs"], &[]);
    t.until("Your answer");
    t.send("\x1b[A");
    t.send("\r");
    t.finish();
    let screen = t.screen();
    assert!(screen.contains("▶ [3/4] approve"), "{screen}");
    assert!(screen.contains("▶ [4/4] four"), "{screen}");
    assert!(!screen.contains("[1/4]"), "{screen}");
    // The summary has the steps of the first session too.
    t.assert_whole_run_summarised(&id, &["one", "two", "approve", "four"]);
}

/// Item 16: long lines wrap at word boundaries to the terminal's width; no spinner frame is
/// left above a prompt; NO_COLOR leaves no colour codes, in training too.
#[test]
fn long_lines_wrap_at_words_and_no_spinner_sits_above_a_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let words: Vec<String> = (0..30).map(|n| format!("word{n:02}")).collect();
    write(
        dir.path(),
        "rb.yaml",
        &format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata:
  name: wrap
  title: Wrap
steps:
  - id: tell
    title: Tell the team
    manual: {{ instructions: "{}" }}
"#,
            words.join(" ")
        ),
    );
    let mut t = Pty::run_rb(dir.path());
    t.until("mark the step");
    // Give a spinner time to draw, were one left running.
    std::thread::sleep(Duration::from_millis(500));
    t.send("\r");
    t.until("Note for the journal");
    t.send("\r");
    t.finish();
    let rows = t.rows();
    for w in &words {
        assert!(
            rows.iter().any(|r| r.split_whitespace().any(|x| x == w)),
            "`{w}` was cut at the edge of the screen:\n{}",
            t.screen()
        );
    }
    assert!(
        !rows.iter().any(|r| r.contains("Tell the team ·")),
        "a spinner frame sits above the prompt:\n{}",
        t.screen()
    );
    let raw = String::from_utf8_lossy(&t.raw);
    assert!(
        !regex_like_sgr(&raw),
        "colour codes despite NO_COLOR:\n{raw:?}"
    );
}

/// Item 16: training honours NO_COLOR, also for the drill's diagnostics.
#[test]
fn training_honours_no_color() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "drill.yaml",
        "apiVersion: runbook/v1\nkind: Drill\nmetadata: { name: d }\nrunbook: missing.yaml\n",
    );
    let mut t = Pty::spawn(
        dir.path(),
        &[
            "run",
            "missing.yaml",
            "--world",
            "drill.yaml",
            "--reason",
            "x",
        ],
        &[],
    );
    t.finish();
    let raw = String::from_utf8_lossy(&t.raw).into_owned();
    assert!(raw.contains("error"), "{raw}");
    assert!(
        !regex_like_sgr(&raw),
        "colour codes despite NO_COLOR: {raw:?}"
    );
}

/// Does the text hold an SGR sequence that sets a colour or a style (`ESC [ ... m` other than
/// a plain reset)?
fn regex_like_sgr(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == 0x1b && b[i + 1] == b'[' {
            let mut j = i + 2;
            while j < b.len() && (b[j].is_ascii_digit() || b[j] == b';') {
                j += 1;
            }
            if j < b.len() && b[j] == b'm' && !matches!(&s[i + 2..j], "" | "0") {
                return true;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    false
}

/// Whether a terminal shows the cursor after this output: the last `CSI ?25l` (hide) or
/// `CSI ?25h` (show) decides, as in a terminal emulator.
fn cursor_visible(screen: &[u8]) -> bool {
    let text = String::from_utf8_lossy(screen);
    match (text.rfind("\x1b[?25l"), text.rfind("\x1b[?25h")) {
        (Some(hide), Some(show)) => show > hide,
        (Some(_), None) => false,
        _ => true,
    }
}

// Issue 11, item 19: Ctrl-C at a prompt interrupts the run (130, resumable) and gives the
// cursor back.
#[test]
fn ctrl_c_at_a_prompt_exits_130_and_restores_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: asked, title: Asked }
steps:
  - id: approve
    confirm: { prompt: "Restart the widget?" }
  - id: restart
    shell: { argv: ["touch", "restarted"] }
    no_undo: test
"#,
    );
    let cmd = pty_command(
        dir.path(),
        &[
            "run",
            "rb.yaml",
            "--journal-dir",
            "runs",
            "--reason",
            "INC-1",
        ],
    );
    let mut s = Session::spawn(cmd).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    let mut screen: Vec<u8> = vec![];
    s.expect("Restart the widget?").unwrap();
    let c = s.expect("Your answer").unwrap();
    screen.extend_from_slice(c.before());
    screen.extend_from_slice(&c.matches().flat_map(|m| m.to_vec()).collect::<Vec<u8>>());
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !cursor_visible(&screen),
        "the prompt did not hide the cursor"
    );
    s.send("\x03").unwrap();
    let c = s.expect(expectrl::Eof).unwrap();
    screen.extend_from_slice(c.before());
    for m in c.matches() {
        screen.extend_from_slice(m);
    }
    let status = format!("{:?}", s.get_process().wait().unwrap());
    assert!(
        status.starts_with("Exited(") && status.ends_with(", 130)"),
        "{status}: {}",
        String::from_utf8_lossy(&screen)
    );
    assert!(
        cursor_visible(&screen),
        "the cursor stayed hidden:\n{}",
        String::from_utf8_lossy(&screen)
    );
    assert!(!dir.path().join("restarted").exists());
    let ev = events(&journal_path(&dir.path().join("runs")));
    let fin = of_kind(&ev, "run_finished");
    assert_eq!(fin[0]["outcome"], "aborted");
    assert_eq!(fin[0]["exit_code"], 130);
}

/// Item 16: the summary's `attempts` column counts the polls of a step (three here, in one
/// attempt), and a long poll line wraps at word boundaries.
#[test]
fn the_attempts_column_counts_polls_and_poll_lines_wrap_at_words() {
    let srv = Server::start(vec![(
        "/health",
        vec![
            Reply::json(503, serde_json::json!({"status": "starting"})),
            Reply::json(503, serde_json::json!({"status": "starting"})),
            Reply::json(200, serde_json::json!({"status": "ok"})),
        ],
    )]);
    let words: Vec<String> = (0..16).map(|n| format!("reason{n:02}")).collect();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        &format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: polls, title: Polls }}
steps:
  - id: healthy
    http: {{ request: {{ method: GET, url: "{}" }} }}
    verify:
      - that: "result.status == 200"
        message: "{}"
    until: {{ timeout: 30s, interval: 100ms }}
"#,
            srv.url("/health"),
            words.join(" ")
        ),
    );
    let mut t = Pty::run_rb(dir.path());
    t.finish();
    let screen = t.screen();
    let row = screen
        .lines()
        .find(|l| l.starts_with("healthy "))
        .unwrap_or_else(|| panic!("no summary row:\n{screen}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    // step, outcome, duration, attempts, title
    assert_eq!(cols[1], "succeeded", "{screen}");
    assert_eq!(cols[3], "3", "the attempts column counts polls:\n{screen}");
    assert!(t.flat().contains("healthy: poll 2: not yet"), "{screen}");
    let rows = t.rows();
    for w in &words {
        assert!(
            rows.iter().any(|r| r.split_whitespace().any(|x| x == w)),
            "`{w}` was cut at the edge of the screen:\n{screen}"
        );
    }
}

/// Item 8 (issue 12): Ctrl-C in a training run prints how to continue it; the printed command,
/// typed as shown, resumes it against the same simulated world (rebuilt from the journal: the
/// rollback is not made again, and its rollout goes on); the steps keep their numbers, the
/// summary covers the whole run and the final line the whole run's outcome and time.
#[test]
fn ctrl_c_in_training_prints_the_resume_command_and_the_resume_finishes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let rb = root().join("runbooks/k8s-rollback.yaml");
    let drill =
        std::fs::read_to_string(root().join("runbooks/drills/k8s-rollback/recovers.yaml")).unwrap();
    let quick = drill
        .replace(
            "runbook: ../../k8s-rollback.yaml",
            &format!("runbook: {}", rb.display()),
        )
        .replace("rollout: { takes: 45s }", "rollout: { takes: 8s }")
        .replace(
            "        - { status: 503, json: { status: starting }, times: 2 }\n",
            "",
        );
    assert_ne!(quick, drill);
    write(dir.path(), "quick.yaml", &quick);
    let mut t = Pty::spawn(
        dir.path(),
        &[
            "run",
            rb.to_str().unwrap(),
            "--world",
            "quick.yaml",
            "--reason",
            "practice",
            "--journal-dir",
            "runs",
        ],
        &[],
    );
    t.until("Your answer");
    t.send("\x1b[A"); // yes
    t.send("\r");
    t.until("Wait for the rollout to finish");
    t.send("\x03");
    t.finish();
    let journal = journal_path(&dir.path().join("runs"));
    let id = run_id(&events(&journal));
    let command = t.command_after("to continue:");
    assert_eq!(
        command,
        [
            "runbook",
            "resume",
            &id,
            "--journal-dir",
            "runs",
            "--world",
            "quick.yaml"
        ],
        "{}",
        t.screen()
    );
    assert!(!t.flat().contains("from the start"), "{}", t.screen());
    // No line was cut mid-word by the terminal: long ones were wrapped by the engine.
    let cut = t.words_cut();
    assert!(
        cut.is_empty(),
        "words cut at the edge of the screen:\n{}",
        cut.join("\n")
    );
    assert_eq!(of_kind(&events(&journal), "world_changed").len(), 1);

    // The command as printed.
    let args: Vec<&str> = command[1..].iter().map(String::as_str).collect();
    let mut r = Pty::spawn(dir.path(), &args, &[]);
    for _ in ["metrics", "tell", "record"] {
        r.until("mark the step");
        r.send("\r");
        r.until("Note for the journal");
        r.send("\r");
    }
    r.finish();
    let screen = r.screen();
    assert!(
        screen.contains("▶ [7/14] Wait for the rollout to finish"),
        "{screen}"
    );
    assert!(
        screen.contains("▶ [12/14] Metrics back to baseline"),
        "{screen}"
    );
    assert!(!screen.contains("[1/14]"), "{screen}");
    r.assert_whole_run_summarised(
        &id,
        &[
            "current", "history", "approve", "undo", "rollout", "running", "record",
        ],
    );
    let evs = events(&journal);
    // The world was rebuilt, not changed again: the rollback happened once, and the version
    // running after the resume is the rolled-back one.
    assert_eq!(of_kind(&evs, "world_changed").len(), 1, "{screen}");
    let running = of_kind(&evs, "capture")
        .into_iter()
        .find(|e| e["step"] == "running" && e["name"] == "image")
        .unwrap();
    assert_eq!(running["value"], "flowengine:v1.0.0");
    assert_eq!(
        of_kind(&evs, "run_finished").last().unwrap()["outcome"],
        "succeeded"
    );
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

/// The `sh` blocks of a README section, in order.
fn readme_blocks(section: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find(&format!("\n## {section}\n"))
        .unwrap_or_else(|| panic!("README has no section {section:?}"));
    let rest = &readme[start + 4..];
    let body = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    body.split("```sh\n")
        .skip(1)
        .map(|b| b[..b.find("```").unwrap()].to_string())
        .collect()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Acceptance 3 (issue 12): the README's "Try it now", followed word for word in a terminal by
/// a newcomer in a fresh copy of the repository's runbooks: its command as written, the
/// answers it says to give (any reason; `yes` to the rollback, `done` to the manual steps),
/// then its report commands with the run id the run printed; and its non-interactive form,
/// run by `sh` as written, without a terminal. The history step shows the revisions it read
/// (item 4).
#[test]
fn the_readmes_training_run_followed_word_for_word() {
    let blocks = readme_blocks("Try it now");
    assert_eq!(blocks.len(), 3, "{blocks:?}");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("runbooks"), &dir.path().join("runbooks"));
    let words: Vec<&str> = blocks[0].split_whitespace().collect();
    assert_eq!(words[0], "runbook", "{}", blocks[0]);
    // A newcomer's terminal: a login name, no RUNBOOK_OPERATOR.
    let mut t = Pty::spawn(
        dir.path(),
        &words[1..],
        &[("RUNBOOK_OPERATOR", ""), ("USER", "newcomer")],
    );
    t.until("Why are you running");
    t.send("this is practice\r");
    let mut answered = vec![];
    loop {
        match t.until_any(&["Your answer", "mark the step", "journal: "]) {
            0 => {
                // yes is above the default (no).
                t.send("\x1b[A");
                t.send("\r");
                t.until("· yes");
                answered.push("yes");
            }
            1 => {
                t.send("\r"); // done
                t.until("Note for the journal");
                t.send("\r");
                answered.push("done");
            }
            _ => break,
        }
    }
    t.finish();
    let flat = t.flat();
    assert_eq!(answered, ["yes", "done", "done", "done"], "{}", t.screen());
    let journal = journal_path(&dir.path().join(".runbook/runs"));
    let id = run_id(&events(&journal));
    assert!(
        flat.contains(&format!("run {id} succeeded in")),
        "{}",
        t.screen()
    );
    assert!(
        flat.contains(&format!("journal: .runbook/runs/{id}/journal.jsonl")),
        "{}",
        t.screen()
    );
    assert!(
        flat.contains("2 revisions:") && flat.contains("2: flowengine:v1.1.0 (current)"),
        "the history step shows what it read:\n{}",
        t.screen()
    );
    assert!(t.words_cut().is_empty(), "{:?}", t.words_cut());
    // Item 16: NO_COLOR (set by `Pty::spawn`) holds for the whole training run: prompts,
    // spinners and the view.
    let raw = String::from_utf8_lossy(&t.raw).into_owned();
    assert!(
        !regex_like_sgr(&raw),
        "colour codes despite NO_COLOR: {raw:?}"
    );
    let ev = events(&journal);
    assert_eq!(of_kind(&ev, "run_started")[0]["operator"], "newcomer");

    // Its report, with the run id the run printed.
    for line in blocks[2].lines().filter(|l| !l.trim().is_empty()) {
        let line = line.split(" #").next().unwrap();
        let words: Vec<String> = line
            .split_whitespace()
            .map(|w| {
                if w.ends_with("-k8s-rollback-ce27") {
                    id.clone()
                } else {
                    w.to_string()
                }
            })
            .collect();
        assert_eq!(words[0], "runbook", "{line}");
        let o = std::process::Command::new(bin())
            .current_dir(dir.path())
            .args(&words[1..])
            .output()
            .unwrap();
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(0), "{line}: {err}");
        if words.len() == 3 {
            let title = out
                .lines()
                .find(|l| l.starts_with("# "))
                .unwrap_or_default();
            assert!(
                title.starts_with("# Post-Incident Review: Training run: "),
                "{title}"
            );
        }
    }
    assert!(dir.path().join("report.html").exists());

    // The non-interactive form, as written, by a shell, with no terminal.
    let path = format!(
        "{}:{}",
        bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(&blocks[1])
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("CI")
        .env_remove("RUNBOOK_OPERATOR")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{}\n{err}", blocks[1]);
    assert!(err.contains("succeeded in"), "{err}");
}

/// Item 2 (issue 12): at a terminal, a run that needs an identity (a P2 runbook) and finds no
/// name in $RUNBOOK_OPERATOR, $USER or $LOGNAME asks who runs it; the journal records the
/// answer.
#[test]
fn a_run_that_needs_an_identity_asks_for_it_at_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: p2, title: A P2 runbook, severity: P2 }
steps:
  - id: look
    safety: read-only
    shell: { argv: ["true"] }
"#,
    );
    let mut t = Pty::spawn(
        dir.path(),
        &[
            "run",
            "rb.yaml",
            "--journal-dir",
            "runs",
            "--reason",
            "INC-7",
        ],
        &[("RUNBOOK_OPERATOR", ""), ("USER", ""), ("LOGNAME", " ")],
    );
    t.until("Who is running it?");
    assert!(
        t.flat()
            .contains("`p2` is a P2 runbook: the journal and the report name who runs it"),
        "{}",
        t.screen()
    );
    t.send("Dana Ops\r");
    t.finish();
    let ev = events(&journal_path(&dir.path().join("runs")));
    assert_eq!(of_kind(&ev, "run_started")[0]["operator"], "Dana Ops");
    assert_eq!(of_kind(&ev, "run_finished")[0]["outcome"], "succeeded");
}

/// Issue 14: a polled verification without data and `on_inconclusive: ask`, at a terminal:
/// the prompt says what was read (no value), the default answer fails it, `yes` accepts it.
#[test]
fn a_verification_without_data_asks_at_the_terminal_and_yes_accepts_it() {
    let srv = Server::start(vec![(
        "/m",
        vec![Reply::json(200, serde_json::json!({"rate": null}))],
    )]);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rb.yaml",
        &format!(
            r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: ask-nodata, title: Ask about no data }}
steps:
  - id: recovered
    title: Failure rate back under 1%
    http: {{ request: {{ url: "{}" }} }}
    capture: {{ rate: result.json.rate }}
    verify:
      - that: "steps.recovered.rate < 0.01"
    until: {{ timeout: 1s, interval: 300ms }}
    on_inconclusive: ask
"#,
            srv.url("/m")
        ),
    );
    let mut t = Pty::spawn(
        dir.path(),
        &[
            "run",
            "rb.yaml",
            "--reason",
            "practice",
            "--journal-dir",
            "runs",
        ],
        &[],
    );
    t.until("Count it as passed and go on?");
    t.assert_shows(&[
        "`Failure rate back under 1%` cannot tell whether it worked",
        "`steps.recovered.rate` has no value (null or NaN)",
        "still no data after 1s",
        "count the verification as passed and go on",
        "the verification fails (no data is not a pass)",
    ]);
    // The default is no; one up is yes.
    t.send("\x1b[A");
    t.send("\r");
    t.finish();
    let ev = events(&journal_path(&dir.path().join("runs")));
    let answers = of_kind(&ev, "gate_answered");
    assert_eq!(answers.len(), 1, "{}", t.screen());
    assert_eq!(answers[0]["gate"], "inconclusive");
    assert_eq!(answers[0]["answer"], "yes");
    assert_eq!(answers[0]["via"], "prompt");
    assert_eq!(of_kind(&ev, "step_finished")[0]["outcome"], "succeeded");
    assert_eq!(of_kind(&ev, "run_finished")[0]["outcome"], "succeeded");
}

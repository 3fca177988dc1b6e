//! The terminal view: a sink for run events and the progress of running actions. Guided
//! runs get spinners (indicatif) with elapsed time, attempt N of M and time left; CI runs get
//! plain, timestamped log lines. Everything goes to stderr; stdout stays for machine output.

mod format;
mod sink;
use format::terminal_width;
pub use format::{fit, reflow, with_command, wrap, wrap_command};

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::backends::Progress;
use crate::exec::events::{Envelope, Event};
use crate::exec::redact::Redactor;
use crate::model::{fmt_duration, Runbook};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Spinners and colours for a person at a terminal.
    Rich,
    /// One plain line per event, for CI logs.
    Plain,
    /// Nothing (drills print their own summary).
    Quiet,
}

struct Running {
    bar: Option<ProgressBar>,
    title: String,
    started: Instant,
    attempt: u32,
    of: u32,
    budget: Option<Duration>,
    /// A prompt owns the terminal: the spinner is hidden and lines print directly.
    paused: bool,
    /// The backend's latest status (e.g. rollout progress), redacted.
    status: String,
    /// The step's safety class, and the result of its last successful attempt: a read-only
    /// step's result is shown when it ends.
    safety: String,
    result: Option<serde_json::Value>,
    /// Executions of its action so far (every poll of every attempt): the summary's
    /// `attempts` column.
    polls: u32,
}

struct Row {
    step: String,
    title: String,
    outcome: String,
    duration_ms: u64,
    attempts: u32,
}

/// The summary's rows, in the order they were added. A step's new row replaces its earlier
/// ones (a step finished again after a resume), found through an index rather than a scan:
/// a step at the end of a long run costs what one at its start does.
#[derive(Default)]
struct Rows {
    rows: Vec<Option<Row>>,
    of_step: HashMap<String, Vec<usize>>,
}

impl Rows {
    /// Adds a row, keeping the step's earlier ones (a skipped step read back from a journal).
    fn push(&mut self, row: Row) {
        self.of_step
            .entry(row.step.clone())
            .or_default()
            .push(self.rows.len());
        self.rows.push(Some(row));
    }

    /// Adds a row at the end, removing the step's earlier ones.
    fn replace(&mut self, row: Row) {
        for at in self.of_step.remove(&row.step).unwrap_or_default() {
            self.rows[at] = None;
        }
        self.push(row);
    }

    fn iter(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().flatten()
    }

    fn is_empty(&self) -> bool {
        self.of_step.is_empty()
    }
}

struct Inner {
    style: Style,
    redactor: Redactor,
    budgets: HashMap<String, Duration>,
    running: Option<Running>,
    rows: Rows,
    titles: HashMap<String, String>,
    total: usize,
    index: usize,
    /// Each main step's number ([n/total]), from its place in the runbook: a resumed run
    /// keeps the numbers of the first one.
    numbers: HashMap<String, usize>,
    /// A resumed run: when the run first started (its journal's first event), and how many
    /// times it was resumed, for the final line.
    first_ts: Option<String>,
    out: Box<dyn Write + Send>,
    /// Plain lines not written yet: the lines of one event (or one call) go out in one write,
    /// when the call that made them returns (see `TerminalView::with`), or later for a held
    /// log (`hold`).
    pending: Vec<u8>,
    /// A plain log written in blocks (see [`HOLD`]): its lines wait for the next tick of its
    /// writer thread, for [`HOLD_BYTES`] to gather, or for anything else bound for stderr.
    hold: bool,
}

/// How long a plain log (CI) holds its lines at most before writing them. A run of quick
/// steps then writes its log a block at a time, as a program's buffered output does, instead
/// of one write per event, each waking whatever reads the log (a CI runner, a pipe): at
/// 1,000 quick shell steps that was about 35 µs a step of the run's own path. A step that
/// hangs still shows its lines within this time, written by the view's own thread; every
/// other message bound for stderr (`term::err`) writes the held lines first, and the view
/// writes them when it is dropped. Only a SIGKILL of the runner can lose them (the journal,
/// the run's record, is written as ever). With `-v` logs on, nothing is held, so that the
/// logs and the view's lines stay in order.
pub const HOLD: Duration = Duration::from_millis(100);
/// The most a held log gathers before it is written at once.
pub const HOLD_BYTES: usize = 32 * 1024;

/// Cloneable handle: one clone is the event sink, another the progress receiver.
#[derive(Clone)]
pub struct TerminalView(Arc<Mutex<Inner>>);

impl TerminalView {
    pub fn new(style: Style, redactor: Redactor, rb: &Runbook) -> Self {
        Self::with_writer(style, redactor, rb, Box::new(std::io::stderr()))
    }

    pub fn with_writer(
        style: Style,
        redactor: Redactor,
        rb: &Runbook,
        out: Box<dyn Write + Send>,
    ) -> Self {
        let mut budgets = HashMap::new();
        for s in rb.steps.iter().chain(&rb.on_failure) {
            let b = match (&s.until, s.timeout) {
                // A templated budget is only known when the step runs.
                (Some(u), _) if u.timeout_template.is_some() => None,
                (Some(u), _) => Some(u.timeout),
                (None, t) => t,
            };
            if let Some(b) = b {
                budgets.insert(s.id.clone(), b);
            }
        }
        let view = TerminalView(Arc::new(Mutex::new(Inner {
            style,
            redactor,
            budgets,
            running: None,
            rows: Rows::default(),
            titles: HashMap::new(),
            total: rb.steps.len(),
            index: 0,
            numbers: rb
                .steps
                .iter()
                .enumerate()
                .map(|(n, s)| (s.id.clone(), n + 1))
                .collect(),
            first_ts: None,
            out,
            pending: Vec::new(),
            hold: false,
        })));
        if style == Style::Plain
            && tracing::level_filters::LevelFilter::current()
                == tracing::level_filters::LevelFilter::OFF
        {
            view.hold();
        }
        if style == Style::Rich {
            // Keep elapsed time and time left moving while a step runs or polls.
            let weak = Arc::downgrade(&view.0);
            std::thread::spawn(move || {
                while let Some(inner) = weak.upgrade() {
                    if let Ok(mut i) = inner.lock() {
                        i.refresh();
                    }
                    drop(inner);
                    std::thread::sleep(Duration::from_millis(500));
                }
            });
        }
        view
    }

    /// Adds a secret discovered during the run (a called runbook's).
    pub fn redactor_add(&self, secret: &str) {
        self.0.lock().expect("view lock").redactor.add(secret);
    }

    /// Makes a plain log hold its lines (see [`HOLD`]): a thread writes what is held every
    /// [`HOLD`], and every other message for stderr writes it first. Without that thread,
    /// nothing is held.
    fn hold(&self) {
        let weak = Arc::downgrade(&self.0);
        let ticks = std::thread::Builder::new()
            .name("runbook-log".into())
            .spawn(move || loop {
                std::thread::sleep(HOLD);
                if !flush_held(&weak) {
                    break;
                }
            });
        if ticks.is_err() {
            return;
        }
        let weak = Arc::downgrade(&self.0);
        crate::term::before_stderr(Box::new(move || {
            flush_held(&weak);
        }));
        self.0.lock().expect("view lock").hold = true;
    }

    /// Writes what a held log holds (see [`HOLD`]).
    #[cfg(test)]
    fn flush(&self) {
        self.0.lock().expect("view lock").flush();
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.0.lock().expect("view lock");
        let r = f(&mut g);
        if !g.hold || g.pending.len() >= HOLD_BYTES {
            g.flush();
        }
        r
    }

    /// Prints a line above any spinner.
    pub fn println(&self, line: &str) {
        self.with(|i| i.println(line));
    }

    /// Takes in the events of the run so far (a resumed run's journal) without printing
    /// them: the summary table then covers the whole run, and the final line its whole
    /// duration.
    pub fn replay(&self, events: &[Envelope]) {
        self.with(|i| {
            i.first_ts = events.first().map(|e| e.ts.clone());
            let mut polls: HashMap<String, u32> = HashMap::new();
            for e in events {
                match &e.event {
                    Event::StepStarted { step, title, .. } => {
                        i.titles.insert(step.clone(), title.clone());
                        polls.remove(step);
                    }
                    Event::AttemptFinished { step, polls: n, .. } => {
                        *polls.entry(step.clone()).or_default() += n;
                    }
                    Event::StepSkipped { step, title, .. } => i.rows.push(Row {
                        step: step.clone(),
                        title: title.clone(),
                        outcome: "skipped".into(),
                        duration_ms: 0,
                        attempts: 0,
                    }),
                    Event::StepFinished {
                        step,
                        outcome,
                        duration_ms,
                        attempts,
                        ..
                    } => {
                        let title = i.titles.get(step).cloned().unwrap_or_default();
                        // A step finished again after the resume replaces its earlier row.
                        i.rows.replace(Row {
                            step: step.clone(),
                            title,
                            outcome: outcome.as_str().into(),
                            duration_ms: *duration_ms,
                            attempts: polls
                                .get(step)
                                .copied()
                                .filter(|n| *n > 0)
                                .unwrap_or(*attempts),
                        });
                    }
                    _ => {}
                }
            }
        });
    }

    /// Prints the table of steps, outcomes and durations.
    pub fn summary(&self) {
        self.with(|i| i.summary());
    }
}

/// Writes what the view behind `weak` holds (see [`HOLD`]); false once the view is gone.
fn flush_held(weak: &std::sync::Weak<Mutex<Inner>>) -> bool {
    let Some(inner) = weak.upgrade() else {
        return false;
    };
    if let Ok(mut i) = inner.lock() {
        i.flush();
    };
    true
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Inner {
    fn println(&mut self, line: &str) {
        if self.style == Style::Quiet {
            return;
        }
        // Redacted first (a secret split by an escape would otherwise survive), then made
        // safe to show: this is the one way into the terminal for every line of a run.
        let line = crate::term::visible(&self.redactor.str(line)).into_owned();
        // A guided run wraps long lines at word boundaries to the terminal's width, each
        // continuation indented under the start of its text; CI logs keep one line each.
        // (The width is asked of the terminal only when it is used: two ioctls a line.)
        let width = match self.style {
            Style::Rich => terminal_width(),
            _ => None,
        };
        let text = match width {
            Some(w) => wrap(&line, w),
            None => line,
        };
        match self
            .running
            .as_ref()
            .filter(|r| !r.paused)
            .and_then(|r| r.bar.as_ref())
        {
            Some(bar) => bar.println(text),
            None => {
                self.pending.extend_from_slice(text.as_bytes());
                self.pending.push(b'\n');
                // A plain log has no spinner to keep lines in order with: its lines wait for
                // the end of the call (one write for the event). Any other goes out now.
                if self.style != Style::Plain {
                    self.flush();
                }
            }
        }
    }

    /// Writes the pending lines (stderr is not buffered: one write).
    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let _ = self.out.write_all(&self.pending);
            self.pending.clear();
        }
    }

    fn log(&mut self, ts: &str, line: &str) {
        match self.style {
            Style::Plain => {
                let t = ts.get(11..19).unwrap_or(ts);
                self.println(&format!("{t} {line}"));
            }
            Style::Rich => self.println(line),
            Style::Quiet => {}
        }
    }

    fn stop_bar(&mut self) {
        if let Some(r) = self.running.take() {
            if let Some(b) = r.bar {
                b.finish_and_clear();
            }
        }
    }

    fn refresh(&mut self) {
        if let Some(r) = self.running.as_ref().filter(|r| !r.paused) {
            if let Some(bar) = &r.bar {
                bar.set_message(crate::term::visible_line(&message(r)).into_owned());
            }
        }
    }

    fn summary(&mut self) {
        if self.style == Style::Quiet || self.rows.is_empty() {
            return;
        }
        let w_step = self
            .rows
            .iter()
            .map(|r| r.step.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        let w_out = 12;
        let mut lines = vec![
            String::new(),
            format!(
                "{:<w_step$}  {:<w_out$}  {:>9}  {:>8}  title",
                "step", "outcome", "duration", "attempts"
            ),
        ];
        lines.push(format!(
            "{}  {}  {}  {}  {}",
            "-".repeat(w_step),
            "-".repeat(w_out),
            "-".repeat(9),
            "-".repeat(8),
            "-".repeat(5)
        ));
        for r in self.rows.iter() {
            lines.push(format!(
                "{:<w_step$}  {:<w_out$}  {:>9}  {:>8}  {}",
                r.step,
                r.outcome,
                fmt_duration(Duration::from_millis(r.duration_ms)),
                r.attempts,
                r.title
            ));
        }
        for l in lines {
            self.println(&l);
        }
    }
}

fn message(r: &Running) -> String {
    let elapsed = r.started.elapsed();
    let mut m = format!(
        "{} · {}",
        r.title,
        fmt_duration(Duration::from_secs(elapsed.as_secs()))
    );
    if r.of > 1 {
        m.push_str(&format!(" · attempt {} of {}", r.attempt, r.of));
    }
    if let Some(b) = r.budget {
        let left = b.saturating_sub(elapsed);
        m.push_str(&format!(
            " · {} left",
            fmt_duration(Duration::from_secs(left.as_secs()))
        ));
    }
    if !r.status.is_empty() {
        m.push_str(&format!(" · {}", r.status));
    }
    m
}

impl Progress for TerminalView {
    fn line(&self, stream: &str, line: &str) {
        self.with(|i| {
            if i.style == Style::Quiet {
                return;
            }
            let bar = if stream == "stderr" { "┆" } else { "│" };
            i.println(&format!("    {bar} {line}"));
        });
    }

    fn secret(&self, value: &str) {
        self.redactor_add(value);
    }

    fn status(&self, message: &str) {
        self.with(|i| {
            if i.style == Style::Plain {
                let now = chrono::Utc::now().to_rfc3339();
                i.log(&now, &format!("  … {message}"));
            } else {
                let redacted = i.redactor.str(message);
                if let Some(r) = i.running.as_mut() {
                    r.status = redacted;
                }
                i.refresh();
            }
        });
    }
}

/// A running step's spinner (guided runs).
fn spinner() -> ProgressBar {
    let b = ProgressBar::new_spinner();
    b.set_style(
        // `wide_msg`: cut to the terminal's width, so that clearing the line clears all of it
        // (a longer message wraps, and its first row would stay behind, frozen).
        ProgressStyle::with_template("  {spinner} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    b.enable_steady_tick(Duration::from_millis(120));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: &str, outcome: &str) -> Row {
        Row {
            step: step.into(),
            title: step.into(),
            outcome: outcome.into(),
            duration_ms: 0,
            attempts: 1,
        }
    }

    fn rows(r: &Rows) -> Vec<String> {
        r.iter()
            .map(|r| format!("{} {}", r.step, r.outcome))
            .collect()
    }

    #[test]
    fn a_step_finished_again_replaces_its_rows_at_the_end() {
        let mut r = Rows::default();
        assert!(r.is_empty());
        r.push(row("a", "skipped"));
        r.replace(row("b", "succeeded"));
        r.push(row("a", "skipped"));
        r.push(row("b.undo", "undone"));
        r.replace(row("a", "failed"));
        // Both of a's earlier rows go; the undo row of b is not b's.
        assert_eq!(rows(&r), ["b succeeded", "b.undo undone", "a failed"]);
        r.replace(row("b", "succeeded"));
        assert_eq!(rows(&r), ["b.undo undone", "a failed", "b succeeded"]);
        assert!(!r.is_empty());
    }

    /// Counts the writes that reach the terminal, and keeps what they wrote.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);
    impl Write for Writes {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_plain_log_holds_its_lines_and_writes_them_in_order_in_one_write() {
        use crate::exec::emitter::EventSink;
        use crate::exec::events::{Phase, Safety};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rb.yaml");
        std::fs::write(
            &path,
            "apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: v, title: V }\n\
             steps:\n  - id: s1\n    shell: { argv: [\"/bin/true\"] }\n",
        )
        .unwrap();
        let (rb, _) = crate::load::load_runbook(&path).unwrap();
        let out = Writes::default();
        // Held: the writer thread's first tick is HOLD after this, far longer than the calls
        // below take (unless the machine stalls: then the check is skipped).
        let started = Instant::now();
        let mut view = TerminalView::with_writer(
            Style::Plain,
            Redactor::new(Vec::<String>::new()),
            &rb,
            Box::new(out.clone()),
        );
        let env = |event| Envelope {
            v: 1,
            seq: 1,
            ts: "2026-12-07T10:00:00.000Z".into(),
            run_id: "r".into(),
            event,
        };
        view.event(&env(Event::StepStarted {
            step: "s1".into(),
            title: "First".into(),
            action: "shell".into(),
            safety: Safety::Reversible,
            rendered: serde_json::json!({ "argv": ["/bin/true"] }),
            phase: Phase::Main,
        }));
        crate::backends::Progress::line(&view, "stdout", "hello");
        if started.elapsed() < HOLD {
            assert!(out.0.lock().unwrap().is_empty());
        }
        // Written in one write, in order, when the view writes what it holds.
        view.flush();
        let w = out.0.lock().unwrap().clone();
        let all: Vec<u8> = w.concat();
        assert_eq!(
            String::from_utf8_lossy(&all),
            "10:00:00 ▶ [1/1] First (shell, reversible)\n10:00:00     $ /bin/true\n    │ hello\n"
        );
        assert!(w.len() <= 2, "{w:?}");
        // A line held while the run waits (a step that hangs) goes out on the next tick,
        // with no other call.
        crate::backends::Progress::line(&view, "stdout", "still here");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&out.0.lock().unwrap().concat()).contains("still here") {
            assert!(Instant::now() < deadline, "a held line was never written");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Past HOLD_BYTES, lines go out at once.
        let n = out.0.lock().unwrap().len();
        let long = "x".repeat(HOLD_BYTES);
        crate::backends::Progress::line(&view, "stdout", &long);
        assert_eq!(out.0.lock().unwrap().len(), n + 1);
    }

    #[test]
    fn reflow_joins_a_paragraphs_lines_but_not_list_items() {
        let text = "Use when a release\nbreaks things.\n\nSteps:\n- one\n  more\n- two\n1. three";
        assert_eq!(
            reflow(text),
            [
                "Use when a release breaks things.",
                "",
                "Steps:",
                "- one",
                "  more",
                "- two",
                "1. three"
            ]
        );
    }

    #[test]
    fn a_command_wraps_at_words_with_shell_continuations() {
        let cmd = "runbook resume 20261207T000010Z-k8s-rollback-7acd --journal-dir runs --world quick.yaml";
        let w = wrap_command(cmd, 60);
        assert!(w.lines().count() > 1, "{w}");
        assert!(w.lines().all(|l| l.chars().count() <= 60), "{w}");
        assert!(w.lines().rev().skip(1).all(|l| l.ends_with(" \\")), "{w}");
        // Pasted into a shell, it is the same command.
        let pasted: Vec<&str> = w.split_whitespace().filter(|t| *t != "\\").collect();
        assert_eq!(pasted, cmd.split_whitespace().collect::<Vec<_>>(), "{w}");
    }
}

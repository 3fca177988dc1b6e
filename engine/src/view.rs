//! The terminal view: a sink for run events and the progress of running actions. Guided
//! runs get spinners (indicatif) with elapsed time, attempt N of M and time left; CI runs get
//! plain, timestamped log lines. Everything goes to stderr; stdout stays for machine output.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::backends::Progress;
use crate::exec::emitter::EventSink;
use crate::exec::events::{Envelope, Event, StepOutcome};
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

struct Inner {
    style: Style,
    redactor: Redactor,
    budgets: HashMap<String, Duration>,
    running: Option<Running>,
    rows: Vec<Row>,
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
}

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
            rows: vec![],
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
        })));
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

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.0.lock().expect("view lock");
        f(&mut g)
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
                        i.rows.retain(|r| &r.step != step);
                        i.rows.push(Row {
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
                // One write per line (stderr is not buffered).
                let mut text = text;
                text.push('\n');
                let _ = self.out.write_all(text.as_bytes());
            }
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
        for r in &self.rows {
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

fn mark(outcome: StepOutcome) -> &'static str {
    match outcome {
        StepOutcome::Succeeded => "✔",
        StepOutcome::Failed => "✘",
        StepOutcome::Skipped => "↷",
        StepOutcome::Aborted => "■",
        StepOutcome::NeedsAnswer => "?",
    }
}

impl EventSink for TerminalView {
    fn event(&mut self, e: &Envelope) {
        self.with(|i| {
            let ts = e.ts.clone();
            match &e.event {
                Event::RunStarted {
                    runbook,
                    operator,
                    reason,
                    mode,
                    ..
                } => {
                    let sev = runbook
                        .severity
                        .clone()
                        .map(|s| format!(" [{s}]"))
                        .unwrap_or_default();
                    i.log(
                        &ts,
                        &format!("runbook {}{sev}: {}", runbook.name, runbook.title),
                    );
                    i.log(&ts, &format!("run {} by {operator} ({mode})", e.run_id));
                    if let Some(r) = reason {
                        i.log(&ts, &format!("reason: {r}"));
                    }
                    if i.style == Style::Rich {
                        if let Some(d) = &runbook.description {
                            i.println("");
                            for l in reflow(d.trim()) {
                                i.println(&format!("  {l}"));
                            }
                            i.println("");
                        }
                    }
                }
                Event::RunResumed {
                    operator, forced, ..
                } => {
                    i.log(
                        &ts,
                        &format!(
                            "resuming run {} as {operator}{}",
                            e.run_id,
                            if *forced {
                                " (forced: the runbook changed)"
                            } else {
                                ""
                            }
                        ),
                    );
                }
                Event::Precondition {
                    that, ok, message, ..
                } => {
                    if !ok {
                        i.log(
                            &ts,
                            &format!(
                                "✘ precondition `{that}` is false{}",
                                message
                                    .as_ref()
                                    .map(|m| format!(": {m}"))
                                    .unwrap_or_default()
                            ),
                        );
                    } else if i.style == Style::Plain {
                        i.log(&ts, &format!("✔ precondition `{that}`"));
                    }
                }
                Event::StepStarted {
                    step,
                    title,
                    action,
                    safety,
                    rendered,
                    phase,
                } => {
                    let nested = step.contains('/');
                    if !nested {
                        i.index = i.numbers.get(step).copied().unwrap_or(i.index + 1);
                    }
                    i.titles.insert(step.clone(), title.clone());
                    let pos = if nested {
                        format!("↳ {step}: ")
                    } else if *phase == crate::exec::events::Phase::Main {
                        format!("[{}/{}] ", i.index.min(i.total.max(1)), i.total)
                    } else {
                        format!("[{phase:?}] ").to_lowercase()
                    };
                    i.log(&ts, &format!("▶ {pos}{title} ({action}, {safety})"));
                    let detail = describe(rendered);
                    if !detail.is_empty() {
                        i.log(&ts, &format!("    {detail}"));
                    }
                    i.stop_bar();
                    let key = step.rsplit('/').next().unwrap_or(step).to_string();
                    let budget = i.budgets.get(&key).copied();
                    let bar = (i.style == Style::Rich).then(spinner);
                    i.running = Some(Running {
                        bar,
                        title: title.clone(),
                        started: Instant::now(),
                        attempt: 1,
                        of: 1,
                        budget,
                        paused: false,
                        status: String::new(),
                        safety: safety.as_str().to_string(),
                        result: None,
                        polls: 0,
                    });
                    i.refresh();
                }
                Event::StepSkipped {
                    step,
                    title,
                    reason,
                    ..
                } => {
                    if !step.contains('/') {
                        i.index = i.numbers.get(step).copied().unwrap_or(i.index + 1);
                    }
                    i.log(&ts, &format!("↷ {step} skipped: {reason}"));
                    i.rows.retain(|r| &r.step != step);
                    i.rows.push(Row {
                        step: step.clone(),
                        title: title.clone(),
                        outcome: "skipped".into(),
                        duration_ms: 0,
                        attempts: 0,
                    });
                }
                Event::GateAsked { step, gate, prompt } => {
                    if i.style != Style::Rich {
                        i.log(
                            &ts,
                            &format!(
                                "? {step} ({gate}): {}",
                                prompt.trim().lines().next().unwrap_or("")
                            ),
                        );
                    }
                    // Clear the spinner while a prompt owns the terminal: a hidden one would
                    // leave its last frame, frozen, above the question.
                    if let Some(r) = i.running.as_mut() {
                        r.paused = true;
                        if let Some(b) = r.bar.take() {
                            b.finish_and_clear();
                        }
                    }
                }
                Event::GateAnswered {
                    step,
                    answer,
                    by,
                    via,
                    note,
                    ..
                } => {
                    let via = serde_json::to_value(via)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    i.log(
                        &ts,
                        &format!(
                            "  {step}: {answer} (by {by} via {via}){}",
                            note.as_ref().map(|n| format!(" — {n}")).unwrap_or_default()
                        ),
                    );
                    let rich = i.style == Style::Rich;
                    if let Some(r) = i.running.as_mut() {
                        r.paused = false;
                        if rich && r.bar.is_none() {
                            r.bar = Some(spinner());
                        }
                    }
                }
                Event::AttemptStarted { attempt, of, step } => {
                    if let Some(r) = i.running.as_mut() {
                        r.attempt = *attempt;
                        r.of = *of;
                    }
                    if *attempt > 1 {
                        i.log(&ts, &format!("  {step}: attempt {attempt} of {of}"));
                    }
                    i.refresh();
                }
                Event::AttemptFinished {
                    step,
                    ok,
                    error,
                    attempt,
                    result,
                    polls,
                    ..
                } => {
                    if let Some(r) = i.running.as_mut() {
                        r.polls += polls;
                        if *ok {
                            r.result = Some(result.clone());
                        }
                    }
                    if !ok {
                        if let Some(err) = error {
                            i.log(&ts, &format!("  {step}: attempt {attempt} failed: {err}"));
                        }
                    }
                }
                Event::VerifyEvaluated {
                    step,
                    ok,
                    checks,
                    poll,
                    polling,
                    ..
                } => {
                    if !ok {
                        let failing: Vec<String> = checks
                            .iter()
                            .filter(|c| !c.ok)
                            .map(|c| {
                                // The author's message (rendered: it can name what was read,
                                // e.g. a controller's reason) says why; the values read show
                                // what was measured.
                                let label = c.message.as_deref().unwrap_or(&c.that);
                                let obs: Vec<String> = c
                                    .observed
                                    .iter()
                                    .map(|(k, v)| format!("{k}={}", spaced(v)))
                                    .collect();
                                let mut t = if obs.is_empty() {
                                    label.to_string()
                                } else {
                                    format!("{label} ({})", obs.join(", "))
                                };
                                if c.verdict() == crate::exec::verdict::Verdict::Inconclusive {
                                    t = format!(
                                        "no data for {t}: {}",
                                        c.reason.as_deref().unwrap_or("no value")
                                    );
                                }
                                t
                            })
                            .collect();
                        // Only a step that polls has polls to count.
                        let lead = if *polling {
                            format!("poll {poll}: not yet")
                        } else {
                            "verify".to_string()
                        };
                        i.log(&ts, &format!("  {step}: {lead}: {}", failing.join("; ")));
                    }
                }
                Event::AnalysisCheck {
                    step,
                    check,
                    verdict,
                    metrics,
                    failed,
                } => {
                    let vals: Vec<String> = metrics
                        .iter()
                        .map(|m| {
                            let v = m
                                .value
                                .map(crate::backends::prometheus::value_text)
                                .or(m.text.clone())
                                .unwrap_or_else(|| "no value".into());
                            format!("{}={v} {}", m.name, m.verdict.as_str())
                        })
                        .collect();
                    i.log(
                        &ts,
                        &format!(
                            "  {step}: check {check}: {} ({}); {failed} failed",
                            verdict.as_str(),
                            vals.join(", ")
                        ),
                    );
                }
                Event::Capture { step, name, value } => {
                    i.log(&ts, &format!("  {step}.{name} = {}", short(&spaced(value))));
                }
                // The journal's record for `resume`; nothing to show.
                Event::ProcessStarted { .. } => {}
                Event::WorldChanged { step, diff } => {
                    // Simulated worlds only (training): show what the step changed.
                    for (entity, fields) in diff.as_object().into_iter().flatten() {
                        for (field, change) in fields.as_object().into_iter().flatten() {
                            i.log(
                                &ts,
                                &format!(
                                    "  {step}: world: {entity} {field}: {} → {}",
                                    short(&spaced(&change["from"])),
                                    short(&spaced(&change["to"]))
                                ),
                            );
                        }
                    }
                }
                Event::StepFinished {
                    step,
                    outcome,
                    duration_ms,
                    attempts,
                    error,
                    note,
                    ..
                } => {
                    // Every execution counts (polls of every attempt); a step that executed
                    // nothing (a gate) keeps the runner's count.
                    let executions = i
                        .running
                        .as_ref()
                        .map(|r| r.polls)
                        .filter(|n| *n > 0)
                        .unwrap_or(*attempts);
                    // What a read-only step read: the operator ran it to see it.
                    let read = i
                        .running
                        .as_ref()
                        .filter(|r| r.safety == "read-only")
                        .filter(|_| *outcome == StepOutcome::Succeeded)
                        .and_then(|r| r.result.as_ref())
                        .map(result_lines)
                        .unwrap_or_default();
                    i.stop_bar();
                    let title = i.titles.get(step).cloned().unwrap_or_default();
                    let tail = match (error, note) {
                        (Some(e), _) => format!(": {e}"),
                        (None, Some(n)) => format!(" — {n}"),
                        _ => String::new(),
                    };
                    i.log(
                        &ts,
                        &format!(
                            "{} {step} {} in {}{tail}",
                            mark(*outcome),
                            outcome.as_str(),
                            fmt_duration(Duration::from_millis(*duration_ms))
                        ),
                    );
                    for l in read {
                        i.log(&ts, &format!("    {l}"));
                    }
                    i.rows.retain(|r| &r.step != step);
                    i.rows.push(Row {
                        step: step.clone(),
                        title,
                        outcome: outcome.as_str().into(),
                        duration_ms: *duration_ms,
                        attempts: executions,
                    });
                }
                Event::UndoStarted {
                    step,
                    title,
                    rendered,
                    ..
                } => {
                    i.log(&ts, &format!("↺ undo {step}: {title}"));
                    let d = describe(rendered);
                    if !d.is_empty() {
                        i.log(&ts, &format!("    {d}"));
                    }
                }
                Event::UndoFinished {
                    step, ok, error, ..
                } => {
                    i.log(
                        &ts,
                        &format!(
                            "  undo {step}: {}{}",
                            if *ok { "done" } else { "FAILED" },
                            error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                        ),
                    );
                    i.rows.push(Row {
                        step: format!("{step}.undo"),
                        title: "undo".into(),
                        outcome: if *ok {
                            "undone".into()
                        } else {
                            "undo-failed".into()
                        },
                        duration_ms: 0,
                        attempts: 1,
                    });
                }
                Event::RunFinished {
                    outcome,
                    duration_ms,
                    message,
                    failed_step,
                    ..
                } => {
                    i.stop_bar();
                    i.summary();
                    i.println("");
                    // A resumed run: the whole run's time, from its first start.
                    let whole = i.first_ts.as_deref().and_then(|first| {
                        let a = chrono::DateTime::parse_from_rfc3339(first).ok()?;
                        let b = chrono::DateTime::parse_from_rfc3339(&ts).ok()?;
                        let ms = (b - a).num_milliseconds().max(0) as u64;
                        Some(format!(
                            "{} since it first started, this session {}",
                            fmt_duration(Duration::from_secs(ms / 1000)),
                            fmt_duration(Duration::from_millis(*duration_ms))
                        ))
                    });
                    i.log(
                        &ts,
                        &format!(
                            "run {} {}{} in {}{}",
                            e.run_id,
                            outcome.as_str(),
                            failed_step
                                .as_ref()
                                .map(|s| format!(" at `{s}`"))
                                .unwrap_or_default(),
                            whole.unwrap_or_else(|| fmt_duration(Duration::from_millis(
                                *duration_ms
                            ))),
                            message
                                .as_ref()
                                .map(|m| format!(": {m}"))
                                .unwrap_or_default()
                        ),
                    );
                }
            }
        });
    }
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

/// The width of the terminal on stderr, if it is one.
fn terminal_width() -> Option<usize> {
    console::Term::stderr()
        .size_checked()
        .map(|(_, w)| usize::from(w))
        .filter(|w| *w >= 20)
}

/// Wraps a line at word boundaries to `width` columns. Continuation lines are indented to
/// where the text starts (after the line's leading spaces and a leading marker such as
/// `▶ [2/5]`, `│` or `-`, up to a third of the width); words longer than a line (URLs) are
/// kept whole rather than cut.
pub fn wrap(line: &str, width: usize) -> String {
    if console::measure_text_width(line) <= width {
        return line.to_string();
    }
    let lead = line.len() - line.trim_start().len();
    let indent = " ".repeat((lead + 2).min(width / 3));
    let opts = textwrap::Options::new(width)
        .subsequent_indent(&indent)
        .break_words(false)
        .word_separator(textwrap::WordSeparator::AsciiSpace);
    textwrap::wrap(line, opts).join("\n")
}

/// A text written with line breaks of its own (a YAML block's), as lines to wrap anew: the
/// lines of a paragraph are joined, except a list item (`- `, `* `, `1. `) or an indented line,
/// which starts a line; blank lines stay.
pub fn reflow(text: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    let mut open = false;
    for l in text.lines() {
        let t = l.trim_start();
        let item = t.starts_with("- ")
            || t.starts_with("* ")
            || t.split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if t.is_empty() {
            out.push(String::new());
            open = false;
        } else if open && !item && t.len() == l.len() {
            let last = out.last_mut().expect("an open line");
            last.push(' ');
            last.push_str(t);
        } else {
            out.push(l.to_string());
            open = true;
        }
    }
    out
}

/// A line for stderr, wrapped at words to the terminal's width when stderr is a terminal.
pub fn fit(line: &str) -> String {
    match terminal_width() {
        Some(w) => wrap(line, w),
        None => line.to_string(),
    }
}

/// A message that ends with a command to run, `message: command`: on one line when it fits
/// (and always off a terminal, for logs and scripts); else the message wrapped at words and the
/// command on lines of its own, continued with ` \` so that it still pastes into a shell as one
/// command.
pub fn with_command(message: &str, command: &str) -> String {
    let one = format!("{message}: {command}");
    match terminal_width() {
        Some(w) if console::measure_text_width(&one) > w => {
            format!(
                "{}\n{}",
                wrap(&format!("{message}:"), w),
                wrap_command(command, w)
            )
        }
        _ => one,
    }
}

/// A command wrapped at words to `width` columns, indented, each line but the last ending in
/// ` \` (a shell's line continuation).
pub fn wrap_command(command: &str, width: usize) -> String {
    let opts = textwrap::Options::new(width.saturating_sub(2).max(20))
        .initial_indent("  ")
        .subsequent_indent("    ")
        .break_words(false)
        .word_separator(textwrap::WordSeparator::AsciiSpace);
    textwrap::wrap(command, opts).join(" \\\n")
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

/// A JSON value as one line with a space after each `,` and `:` (as Python writes it), so that
/// a long one wraps at those spaces rather than being cut by the terminal mid-word.
fn spaced(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Array(a) => format!("[{}]", a.iter().map(spaced).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), spaced(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn short(s: &str) -> String {
    if s.chars().count() > 100 {
        format!("{}…", s.chars().take(100).collect::<String>())
    } else {
        s.to_string()
    }
}

/// What a read-only step's result says, in a few lines: the revisions of a rollout history,
/// the status and start of an HTTP answer, the image and replicas of a workload, the names in
/// a list. Nothing for results that say nothing more than "done".
fn result_lines(result: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    if let Some(revs) = result.get("revisions").and_then(Value::as_array) {
        let current = result.get("current_revision").and_then(Value::as_i64);
        let mut out = vec![format!("{} revisions:", revs.len())];
        for r in revs.iter().rev().take(10) {
            let n = r.get("revision").and_then(Value::as_i64).unwrap_or(0);
            let images: Vec<&str> = r
                .get("images")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let cause = r
                .get("change_cause")
                .and_then(Value::as_str)
                .map(|c| format!(" — {c}"))
                .unwrap_or_default();
            let mark = if Some(n) == current { " (current)" } else { "" };
            out.push(short(&format!("  {n}: {}{cause}{mark}", images.join(", "))));
        }
        return out;
    }
    if let Some(status) = result.get("status").and_then(Value::as_u64) {
        let body = result
            .get("body")
            .and_then(Value::as_str)
            .map(|b| match serde_json::from_str::<Value>(b) {
                Ok(j) => spaced(&j),
                Err(_) => b.split_whitespace().collect::<Vec<_>>().join(" "),
            })
            .unwrap_or_default();
        return vec![short(&format!("HTTP {status}: {body}"))];
    }
    if let Some(items) = result.get("items").and_then(Value::as_array) {
        let names: Vec<&str> = items
            .iter()
            .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
            .collect();
        return vec![short(&format!(
            "{} found: {}",
            items.len(),
            names.join(", ")
        ))];
    }
    if let (Some(kind), Some(name)) = (
        result.get("kind").and_then(Value::as_str),
        result.pointer("/metadata/name").and_then(Value::as_str),
    ) {
        let images: Vec<&str> = result
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.get("image").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let mut l = format!("{kind} {name}");
        if !images.is_empty() {
            l.push_str(&format!(": {}", images.join(", ")));
        }
        if let Some(rev) = result
            .pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
            .and_then(Value::as_str)
        {
            l.push_str(&format!(", revision {rev}"));
        }
        if let Some(want) = result.pointer("/spec/replicas").and_then(Value::as_u64) {
            let avail = result
                .pointer("/status/availableReplicas")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            l.push_str(&format!(", {avail}/{want} available"));
        }
        return vec![short(&l)];
    }
    vec![]
}

/// One line describing a rendered action, for the log.
fn describe(rendered: &serde_json::Value) -> String {
    use serde_json::Value;
    if let Some(argv) = rendered.get("argv").and_then(Value::as_array) {
        return format!(
            "$ {}",
            argv.iter()
                .map(|a| crate::exec::actions::shell_quote(a.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if let Some(script) = rendered.get("script").and_then(Value::as_str) {
        return format!(
            "$ sh -c {}",
            short(&crate::exec::actions::shell_quote(script.trim()))
        );
    }
    if let Some(req) = rendered.get("request") {
        let m = req.get("method").and_then(Value::as_str).unwrap_or("GET");
        let u = req
            .get("url")
            .or_else(|| req.get("path"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return format!("{m} {u}");
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

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

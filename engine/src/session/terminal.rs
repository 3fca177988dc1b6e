//! The terminal front of a run (`run`, `resume`, training): the view as the journal's first
//! sink after the journal and as the running steps' progress, the prompter at a terminal, the
//! signals, and at the end the report and the next command.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::prepare::{Front, Prepared};
use super::signals::run_cancel;
use crate::backends::Progress;
use crate::exec::actions::shell_quote;
use crate::exec::events::RunOutcome;
use crate::exec::gate::Prompter;
use crate::exec::journal;
use crate::view::{Style, TerminalView};

/// How the terminal shows a run.
pub struct Terminal {
    /// At a terminal: spinners, colours (unless `NO_COLOR`) and prompts.
    pub interactive: bool,
    /// Where the report goes at the end.
    pub report: Option<PathBuf>,
    /// Added to the commands printed at the end (a training run's ` --world <drill>`).
    pub resume_with: String,
}

/// Executes a prepared run with the terminal view, then prints how to continue.
pub async fn execute(p: Prepared, t: Terminal) -> i32 {
    let style = if t.interactive {
        Style::Rich
    } else {
        Style::Plain
    };
    let view = TerminalView::new(style, p.redactor.clone(), &p.rb);
    if let (Some(_), Some(path)) = (&p.cfg.resume, &p.journal_path) {
        // The summary and the final line cover the whole run, not only this session.
        if let Ok(read) = journal::read(path) {
            view.replay(&read.events);
        }
    }
    let prompter: Option<Box<dyn Prompter>> = if t.interactive {
        Some(Box::new(crate::prompt::TerminalPrompter::new(view.clone())))
    } else {
        None
    };
    let rb = p.rb.clone();
    let progress: Arc<dyn Progress> = Arc::new(view.clone());
    let done = p
        .execute(Front {
            sinks: vec![Box::new(view)],
            progress,
            prompter,
            cancel: run_cancel(),
        })
        .await;
    let res = &done.result;
    if let Some(why) = &done.broken {
        eprintln!("error: {why}; the run stopped before changing anything else");
    }
    let journal_path = done.journal_path.clone().unwrap_or_default();
    eprintln!("journal: {}", journal_path.display());
    let journal_dir = shell_quote(
        &journal_path
            .parent()
            .and_then(Path::parent)
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
    );
    // Each ending names the next command; at a terminal a long one goes on lines of its own,
    // continued with ` \`, so that it pastes as one command.
    let say = |message: &str, command: String| {
        eprintln!("{}", crate::view::with_command(message, &command));
    };
    if t.report.is_none() {
        say(
            "report",
            format!("runbook report {} --journal-dir {journal_dir}", done.run_id),
        );
    }
    if let Some(path) = &t.report {
        match crate::report::write_for_journal_with(&journal_path, path, &done.redactor) {
            Ok(()) => eprintln!("report: {}", path.display()),
            Err(e) => eprintln!("error: writing the report: {e}"),
        }
    }
    let resume = format!(
        "runbook resume {} --journal-dir {journal_dir}{}",
        done.run_id, t.resume_with
    );
    match res.outcome {
        RunOutcome::Aborted if res.abandoned => say(
            "the run stopped and undid what it had changed; it cannot be resumed. To start again",
            format!("runbook run {}{}", shell_quote(&rb.file), t.resume_with),
        ),
        RunOutcome::NeedsAnswer => {
            let hint = res.hint.clone().unwrap_or_default();
            let flag = hint
                .split(" (")
                .next()
                .unwrap_or(&hint)
                .split(" to ")
                .next()
                .unwrap_or(&hint);
            say(
                &format!("needs an answer: to continue this run, pass {flag}"),
                format!("{resume} {flag}"),
            );
        }
        RunOutcome::Aborted => say("to continue", resume),
        _ => {}
    }
    res.exit_code
}

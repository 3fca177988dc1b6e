//! `runbook report RUN`: the post-incident review of a run, from its journal.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::{Format, Options, ReportError, Zone};
use crate::exec::journal;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A run id (under --journal-dir) or a journal path (the file or its run directory).
    pub run: String,
    /// md, json or html [default: from the extension of -o, else md].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write the report to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Show times in UTC instead of the local zone.
    #[arg(long)]
    pub utc: bool,
    /// Where journals are.
    #[arg(long, default_value = ".runbook/runs")]
    pub journal_dir: PathBuf,
    /// Render Markdown with this minijinja template instead of the built-in one (same context;
    /// see docs/report.md).
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
}

/// Writes the report; an error is returned for `main` to print.
pub fn run(a: &ReportArgs) -> Result<(), ReportError> {
    let format = match (a.format, &a.output) {
        (Some(f), _) => f,
        (None, Some(out)) => match Format::from_path(out) {
            Some(f) => f,
            None if a.template.is_some() => Format::Md,
            None => {
                return Err(ReportError::UnknownFormat {
                    path: out.display().to_string(),
                })
            }
        },
        (None, None) => Format::Md,
    };
    let mut opts = Options::new(format);
    opts.zone = if a.utc { Zone::Utc } else { Zone::Local };
    if let Some(t) = &a.template {
        if format != Format::Md {
            return Err(ReportError::Template {
                name: t.display().to_string(),
                message: "--template renders Markdown; drop --format or name the output .md".into(),
            });
        }
        let bytes = crate::files::read_input(t, "a report template").map_err(|message| {
            ReportError::Template {
                name: t.display().to_string(),
                message,
            }
        })?;
        let src = String::from_utf8(bytes).map_err(|_| ReportError::Template {
            name: t.display().to_string(),
            message: "it is not UTF-8 text".into(),
        })?;
        opts.template = Some((t.display().to_string(), src));
    }
    let path = journal::locate(&a.run, &a.journal_dir).map_err(|e| ReportError::NoJournal {
        message: e.to_string(),
    })?;
    let text = super::render(&path, &opts)?;
    match &a.output {
        Some(out) => super::write(out, &text, &path),
        None => {
            // On a terminal, nothing from the journal may move the cursor or rewrite a line.
            let text = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                crate::term::visible(&text)
            } else {
                std::borrow::Cow::Borrowed(text.as_str())
            };
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|_| stdout.flush())
            {
                // `runbook report RUN | head` closes the pipe early; that is not a failure.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => other.map_err(|source| ReportError::Write {
                    path: "stdout".into(),
                    source,
                }),
            }
        }
    }
}

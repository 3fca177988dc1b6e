//! Post-incident review reports, built only from the journal: read it, scrub it, fold it into
//! the model, render Markdown, JSON or HTML. The same code serves `runbook report`,
//! `run --report` and drills, so a report reads the same whenever it is written.

pub mod build;
pub mod cli;
pub mod findings;
pub mod html;
pub mod json;
pub mod markdown;
pub mod model;
pub mod scrub;
mod steps;
pub mod text;
mod verify;

use std::path::Path;

use crate::exec::events::JOURNAL_VERSION;
use crate::exec::journal;
use crate::exec::redact::Redactor;

pub use model::Report;
pub use text::Zone;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Md,
    Json,
    Html,
}

impl Format {
    /// The format a file name asks for: `.md`, `.json` or `.html`.
    pub fn from_path(p: &Path) -> Option<Format> {
        match p.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "md" | "markdown" => Some(Format::Md),
            "json" => Some(Format::Json),
            "html" | "htm" => Some(Format::Html),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read the journal {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{message}; pass a run id that `runbook run` printed, or a journal path")]
    NoJournal { message: String },
    #[error(
        "{path} is not a runbook journal ({why}); give a run id, or the journal.jsonl that \
         `runbook run` writes under <journal-dir>/<run-id>/"
    )]
    NotAJournal { path: String, why: String },
    #[error("the template {name}: {message}")]
    Template { name: String, message: String },
    #[error("cannot tell the report format from `{path}`: name it .md, .json or .html, or pass --format")]
    UnknownFormat { path: String },
    #[error(
        "refusing to write the report over the journal {path}: the journal is the run's one \
         record; name the report e.g. report.md (-o {dir}/report.md)"
    )]
    OverJournal { path: String, dir: String },
    #[error("cannot write the report {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// How to render a report.
#[derive(Debug, Clone)]
pub struct Options {
    pub format: Format,
    pub zone: Zone,
    /// A Markdown template to use instead of the built-in one: (name for errors, source).
    pub template: Option<(String, String)>,
    /// Secret values the caller knows (a run's own); masked on top of the journal's redaction.
    pub redactor: Redactor,
}

impl Options {
    pub fn new(format: Format) -> Self {
        Options {
            format,
            zone: Zone::Local,
            template: None,
            redactor: Redactor::default(),
        }
    }
}

/// Reads a journal and builds its report model from events scrubbed of anything
/// secret-shaped; the scrubber comes back for a last pass over the rendered document.
pub fn load(
    path: &Path,
    redactor: &Redactor,
    zone: Zone,
) -> Result<(Report, scrub::Scrubber), ReportError> {
    let shown = path.display().to_string();
    let read = journal::read(path).map_err(|source| ReportError::Read {
        path: shown.clone(),
        source,
    })?;
    from_read(read, &shown, redactor, zone)
}

fn from_read(
    mut read: journal::Read,
    shown: &str,
    redactor: &Redactor,
    zone: Zone,
) -> Result<(Report, scrub::Scrubber), ReportError> {
    let mut scrubber = scrub::Scrubber::new(redactor.clone());
    if let Some(rb) = read.events.iter().find_map(|e| match &e.event {
        crate::exec::events::Event::RunStarted { runbook, .. } => Some(runbook.path.clone()),
        _ => None,
    }) {
        scrubber.add_runbook_secrets(&rb);
    }
    read.events = read.events.iter().map(|e| scrubber.event(e)).collect();
    read.bad_lines = read
        .bad_lines
        .iter()
        .map(|(n, e)| (*n, scrubber.text(e)))
        .collect();
    let newer = read.events.iter().map(|e| e.v).max().unwrap_or(0);
    let mut report = build::build(&read, shown, zone)?;
    if newer > JOURNAL_VERSION {
        report.notes.push(format!(
            "The journal is format v{newer}, newer than this engine's v{JOURNAL_VERSION}: \
             upgrade runbook for a complete report."
        ));
    }
    Ok((report, scrubber))
}

/// Renders the report of the journal at `path`.
pub fn render(path: &Path, opts: &Options) -> Result<String, ReportError> {
    let (report, scrubber) = load(path, &opts.redactor, opts.zone)?;
    output(&report, &scrubber, opts)
}

fn output(
    report: &Report,
    scrubber: &scrub::Scrubber,
    opts: &Options,
) -> Result<String, ReportError> {
    let out = match opts.format {
        Format::Md => match &opts.template {
            Some((name, src)) => markdown::render(report, name, src)?,
            None => markdown::render(report, markdown::BUILTIN_NAME, markdown::BUILTIN)?,
        },
        Format::Json => json::render(report),
        Format::Html => html::render(report),
    };
    Ok(scrubber.known(&out))
}

/// Writes a report file, creating its directory.
/// Writes a report to `out`, refusing to overwrite a journal: any file named
/// `journal.jsonl`, or the file of `journal` itself under another name (a symlink, a hard
/// link: compared by device and inode).
pub fn write(out: &Path, text: &str, journal: &Path) -> Result<(), ReportError> {
    let err = |source| ReportError::Write {
        path: out.display().to_string(),
        source,
    };
    if is_journal(out, journal) {
        let dir = out
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        return Err(ReportError::OverJournal {
            path: out.display().to_string(),
            dir: dir.display().to_string(),
        });
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(out, text).map_err(err)
}

/// Writes the report of the run journaled at `journal` to `out` (format from the extension).
pub fn write_for_journal(journal: &Path, out: &Path) -> Result<(), String> {
    write_for_journal_with(journal, out, &Redactor::default())
}

/// Like [`write_for_journal`], also masking the secret values a running engine knows.
pub fn write_for_journal_with(
    journal: &Path,
    out: &Path,
    redactor: &Redactor,
) -> Result<(), String> {
    let format = Format::from_path(out).ok_or_else(|| {
        ReportError::UnknownFormat {
            path: out.display().to_string(),
        }
        .to_string()
    })?;
    let mut opts = Options::new(format);
    opts.redactor = redactor.clone();
    let text = render(journal, &opts).map_err(|e| e.to_string())?;
    write(out, &text, journal).map_err(|e| e.to_string())
}

/// Whether writing to `out` would overwrite a journal (see [`write`]).
fn is_journal(out: &Path, journal: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if out.file_name() == Some(std::ffi::OsStr::new(crate::exec::journal::FILE_NAME)) {
        return true;
    }
    match (std::fs::metadata(out), std::fs::metadata(journal)) {
        (Ok(o), Ok(j)) => o.dev() == j.dev() && o.ino() == j.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const REAL: &[u8] = include_bytes!("../../../tests/fixtures/report/payments-failed.jsonl");

    proptest! {
        /// A damaged journal (bytes overwritten, cut anywhere) gives a report or a clean
        /// error in every format, never a panic, and the JSON stays JSON.
        #[test]
        fn damaged_journals_never_panic(
            cut in 0usize..REAL.len() + 1,
            flips in proptest::collection::vec((0usize..REAL.len(), any::<u8>()), 0..12),
        ) {
            let mut bytes = REAL.to_vec();
            for (i, b) in flips {
                bytes[i] = b;
            }
            bytes.truncate(cut);
            let read = journal::parse(&bytes);
            for format in [Format::Md, Format::Json, Format::Html] {
                let opts = Options::new(format);
                let out = from_read(read.clone(), "j", &opts.redactor, Zone::Utc)
                    .and_then(|(r, s)| output(&r, &s, &opts));
                match out {
                    Ok(text) if format == Format::Json => {
                        prop_assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
                    }
                    Ok(_) => {}
                    Err(e) => prop_assert!(matches!(e, ReportError::NotAJournal { .. }), "{e}"),
                }
            }
        }
    }
}

//! Loading the files a command is given: any runbook or drill file, checked by its kind
//! (`check` knows runbooks, `drill::check` drills; this module sits above both), and loading
//! a runbook for `plan` and `run` (or a drill for training), its diagnostics returned in a
//! `LoadError` for `main` to print.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::diag::Diagnostic;
use crate::drill::Drill;
use crate::model::Runbook;
use crate::yaml::Located;

pub use crate::files::{yaml_files, yaml_files_of};

/// What a file turned out to be.
#[derive(Debug)]
pub enum Checked {
    Runbook(Box<Runbook>),
    Drill(Box<Drill>),
}

/// The outcome of checking a runbook or drill file.
pub type Report = crate::check::Report<Checked>;

/// Reads and checks a runbook or drill file.
pub fn check_path(path: &Path) -> Report {
    crate::check::check_path_with(path, check_doc)
}

/// Checks runbook or drill file content. `path` resolves relative references (`call`, a
/// drill's `runbook`).
pub fn check_bytes(file: &str, path: &Path, bytes: &[u8]) -> Report {
    crate::check::check_bytes_with(file, path, bytes, check_doc)
}

fn check_doc(
    file: &str,
    path: &Path,
    text: &str,
    bytes: &[u8],
    doc: &Located,
) -> (Option<Checked>, Vec<Diagnostic>) {
    if doc.value.get("kind").and_then(Value::as_str) == Some("Drill") {
        let (drill, diags) = crate::drill::check::check_drill(file, path, text, doc);
        (drill.map(|d| Checked::Drill(Box::new(d))), diags)
    } else {
        let (rb, diags) = crate::check::check_runbook_file(file, path, text, bytes, doc);
        (rb.map(Checked::Runbook), diags)
    }
}

/// Why a runbook or drill could not be loaded for `plan`, `run` or training.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file has errors: its diagnostics, rendered (miette) before this message.
    #[error("{} has errors; nothing was run", path.display())]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
        /// The file's text, for the diagnostics' excerpts.
        text: Option<String>,
    },
    /// `--world` names a file that is a runbook, not a drill.
    #[error("{} is not a drill: `--world` takes a `kind: Drill` file, whose `world:` the run uses", path.display())]
    NotADrill { path: PathBuf },
}

impl LoadError {
    /// The diagnostics to show before the message, with the file's text.
    pub fn diagnostics(&self) -> (&[Diagnostic], Option<&str>) {
        match self {
            LoadError::Invalid {
                diagnostics, text, ..
            } => (diagnostics, text.as_deref()),
            LoadError::NotADrill { .. } => (&[], None),
        }
    }
}

/// Loads a runbook for plan/run: the runbook and its warnings, or its errors.
pub fn load_runbook(path: &Path) -> Result<(Runbook, Vec<Diagnostic>), LoadError> {
    crate::check::load_runbook(path).map_err(|r| LoadError::Invalid {
        path: path.to_path_buf(),
        diagnostics: r.diagnostics,
        text: r.source,
    })
}

/// Loads the drill a training run's `--world` names.
pub fn load_drill(path: &Path) -> Result<Drill, LoadError> {
    let report = check_path(path);
    if report.has_errors() {
        return Err(LoadError::Invalid {
            path: path.to_path_buf(),
            diagnostics: report.diagnostics,
            text: report.source,
        });
    }
    match report.checked {
        Some(Checked::Drill(drill)) => Ok(*drill),
        _ => Err(LoadError::NotADrill {
            path: path.to_path_buf(),
        }),
    }
}

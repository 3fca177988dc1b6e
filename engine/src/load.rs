//! Loading the files a command is given: any runbook or drill file, checked by its kind
//! (`check` knows runbooks, `drill::check` drills; this module sits above both), and loading
//! a runbook for `plan` and `run` with its diagnostics printed.

use std::io::Write;
use std::path::Path;

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

/// Loads a runbook for plan/run, printing diagnostics (errors, and warnings when
/// `show_warnings`). Err holds the exit code.
pub fn load_or_report(path: &Path, show_warnings: bool) -> Result<Runbook, i32> {
    let color = crate::term::color();
    match crate::check::load_runbook(path) {
        Ok((rb, warnings)) => {
            if show_warnings && !warnings.is_empty() {
                let src = std::fs::read_to_string(path).ok();
                // Rendered diagnostics carry miette's colours and sanitise their own text.
                let mut err = std::io::stderr().lock();
                for w in warnings {
                    let _ = write!(err, "{}", w.render(src.as_deref(), color));
                }
            }
            Ok(rb)
        }
        Err(r) => {
            r.print(color);
            eprintln!("error: {} has errors; nothing was run", path.display());
            Err(crate::exit::INVALID)
        }
    }
}

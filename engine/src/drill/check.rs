//! Checks drill files.

use std::path::Path;

use crate::diag::{Diagnostic, Loc};
use crate::yaml::Located;

use super::spec::Drill;

/// Checks a parsed drill document.
pub fn check_drill(
    file: &str,
    _path: &Path,
    _text: &str,
    _doc: &Located,
) -> (Option<Drill>, Vec<Diagnostic>) {
    (
        None,
        vec![
            Diagnostic::error(file, Loc::new(1, 1), "drills are not supported yet")
                .with_code("drill"),
        ],
    )
}

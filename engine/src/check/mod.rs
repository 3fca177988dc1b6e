//! The checker: turns a located YAML document into a validated `Runbook`, or reports every
//! problem in it at once (schema violations via `schema`, then references, templates,
//! backends, durations, safety) with its line and column.

mod actions;
mod calls;
mod declarations;
mod scope;
mod steps;
mod text;
use declarations::{check_backends, check_inputs, check_metadata, check_secrets};
use scope::{build_scope, check_expr, check_template, Usage};
use steps::check_step;
use text::control_characters;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::diag::{Diagnostic, Loc};
use crate::model::{parse_duration, ActionKind, Runbook};
use crate::schema::{prune_unknown, runbook_validator, schema_check};
use crate::spec::{self, RunbookSpec, Safety};
use crate::yaml::{self, Located};

pub use crate::schema::{allowed_keys, describe_pointer, schema_diagnostics};

/// The outcome of checking one file: the model when there were no errors (a runbook, or in
/// `load` whatever kind of file it turned out to be), and every diagnostic.
#[derive(Debug)]
pub struct Report<T = Box<Runbook>> {
    pub file: String,
    pub source: Option<String>,
    pub checked: Option<T>,
    pub diagnostics: Vec<Diagnostic>,
}

impl<T> Report<T> {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Prints the diagnostics on stderr; returns (errors, warnings).
    pub fn print(&self, color: bool) -> (usize, usize) {
        let mut errors = 0;
        let mut warnings = 0;
        let stderr = std::io::stderr();
        let mut err = stderr.lock();
        for d in &self.diagnostics {
            if d.is_error() {
                errors += 1;
            } else {
                warnings += 1;
            }
            let _ = write!(err, "{}", d.render(self.source.as_deref(), color));
        }
        (errors, warnings)
    }
}

/// A checker of one parsed document: (file, path, text, bytes, document) → the model, when
/// there were no errors, and its diagnostics.
pub trait CheckDoc<T>:
    FnOnce(&str, &Path, &str, &[u8], &Located) -> (Option<T>, Vec<Diagnostic>)
{
}
impl<T, F> CheckDoc<T> for F where
    F: FnOnce(&str, &Path, &str, &[u8], &Located) -> (Option<T>, Vec<Diagnostic>)
{
}

/// Reads and checks a runbook file.
pub fn check_path(path: &Path) -> Report {
    check_path_with(path, check_runbook_file)
}

/// Reads a file and checks it with `check_doc`.
pub fn check_path_with<T>(path: &Path, check_doc: impl CheckDoc<T>) -> Report<T> {
    let file = path.display().to_string();
    let failed = |d: Diagnostic| Report {
        file: file.clone(),
        source: None,
        checked: None,
        diagnostics: vec![d],
    };
    let bytes = match read_limited(path) {
        Ok(Some(b)) => b,
        Ok(None) => {
            let size = std::fs::metadata(path).ok().map(|m| m.len());
            return failed(yaml::too_large(&file, size));
        }
        Err(e) => {
            return failed(
                Diagnostic::error(&file, Loc::default(), format!("cannot read file: {e}"))
                    .with_code("io")
                    .with_help("check the path and its permissions"),
            )
        }
    };
    check_bytes_with(&file, path, &bytes, check_doc)
}

/// How deep `call`s may nest (the top-level runbook counts as one). Checking and running a
/// call recurse; a chain of hundreds would overflow the stack.
pub const MAX_CALL_DEPTH: usize = 16;

/// Reads at most one byte more than the size limit, so that a huge file (or `/dev/zero`) is
/// rejected without reading it all. `None` means the file is over the limit.
pub fn read_limited(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    crate::files::read_limited(path, yaml::MAX_FILE_BYTES)
}

/// Checks runbook file content. `path` is used to resolve relative references (`call`).
pub fn check_bytes(file: &str, path: &Path, bytes: &[u8]) -> Report {
    check_bytes_with(file, path, bytes, check_runbook_file)
}

/// Checks file content with `check_doc`: the YAML is parsed (with locations) and its text
/// checked for control characters first, the same for every kind of file.
pub fn check_bytes_with<T>(
    file: &str,
    path: &Path,
    bytes: &[u8],
    check_doc: impl CheckDoc<T>,
) -> Report<T> {
    // Text with a stray non-UTF-8 byte is still shown (the byte as U+FFFD) so the caret can
    // point at it; binary content is not.
    let source = if bytes.iter().any(|b| yaml::is_control(*b)) {
        None
    } else {
        Some(String::from_utf8_lossy(bytes).into_owned())
    };
    let mut report = Report {
        file: file.to_string(),
        source,
        checked: None,
        diagnostics: vec![],
    };
    let doc = match yaml::parse(file, bytes) {
        Ok(d) => d,
        Err(d) => {
            report.diagnostics.push((*d).with_code_if_default("yaml"));
            return report;
        }
    };
    let text = report.source.clone().unwrap_or_default();
    let controls = control_characters(file, &text, &doc);
    let (checked, diags) = check_doc(file, path, &text, bytes, &doc);
    report.diagnostics = diags;
    report.checked = checked;
    if !controls.is_empty() {
        report.diagnostics.extend(controls);
        report.checked = None;
    }
    crate::diag::sort(&mut report.diagnostics);
    report.diagnostics.dedup();
    report
}

/// Checks a parsed runbook file (the top of a `call` chain). A drill is not a runbook.
pub fn check_runbook_file(
    file: &str,
    path: &Path,
    text: &str,
    bytes: &[u8],
    doc: &Located,
) -> (Option<Box<Runbook>>, Vec<Diagnostic>) {
    if doc.value.get("kind").and_then(Value::as_str) == Some("Drill") {
        let d = Diagnostic::error(file, Loc::new(1, 1), "expected `kind: Runbook`")
            .with_code("kind")
            .with_help("`runbook run` and `plan` take runbooks; run drills with `runbook drill`");
        return (None, vec![d]);
    }
    let mut stack = vec![canonical(path)];
    let (rb, diags) = check_runbook_doc(file, path, text, bytes, doc, &mut stack);
    (rb.map(Box::new), diags)
}

/// Loads a runbook, failing with its diagnostics when it has errors.
pub fn load_runbook(path: &Path) -> Result<(Runbook, Vec<Diagnostic>), Report> {
    let mut report = check_path(path);
    if report.has_errors() {
        return Err(report);
    }
    match report.checked.take() {
        Some(rb) => Ok((*rb, report.diagnostics)),
        None => Err(report),
    }
}

/// The secrets a runbook file declares (where each one comes from), read without checking the
/// rest of the file: what the report needs to mask them. `None` when the file cannot be read
/// or its `secrets` do not have their shape.
pub fn declared_secrets(path: &Path) -> Option<indexmap::IndexMap<String, spec::SecretSpec>> {
    let bytes = read_limited(path).ok()??;
    let doc = yaml::parse(&path.display().to_string(), &bytes).ok()?;
    serde_json::from_value(doc.value.get("secrets")?.clone()).ok()
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

trait CodeIfDefault {
    fn with_code_if_default(self, code: &'static str) -> Self;
}

impl CodeIfDefault for Diagnostic {
    fn with_code_if_default(mut self, code: &'static str) -> Self {
        if self.code == "error" {
            self.code = code;
        }
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Semantic stage

/// Diagnostics at a JSON pointer of a located document: shared by the runbook and the drill
/// checkers. Implementors hand out their file name, document and diagnostics list.
pub(crate) trait Reports {
    fn parts(&mut self) -> (&str, &Located, &mut Vec<Diagnostic>);

    /// An error at the value at `ptr`.
    fn err(&mut self, ptr: &str, msg: impl Into<String>, code: &'static str) -> &mut Diagnostic {
        let (file, doc, diags) = self.parts();
        let loc = doc.value_loc(ptr);
        diags.push(Diagnostic::error(file, loc, msg).with_code(code));
        diags.last_mut().expect("just pushed")
    }

    /// An error at the key of `ptr`, underlining the key.
    fn key_err(
        &mut self,
        ptr: &str,
        msg: impl Into<String>,
        code: &'static str,
    ) -> &mut Diagnostic {
        let (file, doc, diags) = self.parts();
        let loc = doc.key_loc(ptr);
        let len = ptr.rsplit('/').next().map_or(1, |k| k.chars().count());
        diags.push(
            Diagnostic::error(file, loc, msg)
                .with_code(code)
                .with_len(len),
        );
        diags.last_mut().expect("just pushed")
    }

    /// A warning at the key of `ptr`.
    fn warn(&mut self, ptr: &str, msg: impl Into<String>, code: &'static str) -> &mut Diagnostic {
        let (file, doc, diags) = self.parts();
        let loc = doc.key_loc(ptr);
        diags.push(Diagnostic::warning(file, loc, msg).with_code(code));
        diags.last_mut().expect("just pushed")
    }
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    doc: &'a Located,
    /// The document as checked past its schema errors (see `schema::SchemaCheck`); locations
    /// still come from `doc`.
    value: &'a Value,
    diags: Vec<Diagnostic>,
}

/// Takes the value at `ptr` out of its mapping (a list item or the root stays).
fn remove_at(v: &mut Value, ptr: &str) {
    let Some((parent, key)) = ptr.rsplit_once('/') else {
        return;
    };
    let key = key.replace("~1", "/").replace("~0", "~");
    if let Some(m) = v.pointer_mut(parent).and_then(Value::as_object_mut) {
        m.remove(&key);
    }
}

impl Reports for Ctx<'_> {
    fn parts(&mut self) -> (&str, &Located, &mut Vec<Diagnostic>) {
        (self.file, self.doc, &mut self.diags)
    }
}

impl Ctx<'_> {
    fn duration(&mut self, ptr: &str, s: &str) -> Option<Duration> {
        if let Ok(d) = parse_duration(s) {
            return Some(d);
        }
        let t = s.trim();
        let number = |x: &str| !x.is_empty() && x.chars().all(|c| c.is_ascii_digit() || c == '.');
        let msg = match humantime::parse_duration(t) {
            _ if t.is_empty() => "a duration cannot be empty".to_string(),
            _ if number(t) => format!("`{t}` is not a duration: write `{t}s`"),
            Ok(_) | Err(humantime::DurationError::NumberOverflow) => format!(
                "`{t}` is too long: durations are limited to {}",
                crate::model::MAX_DURATION_TEXT
            ),
            Err(humantime::DurationError::UnknownUnit { unit, .. }) => {
                format!("`{t}` is not a duration: `{unit}` is not a unit of time")
            }
            _ => format!("`{t}` is not a duration"),
        };
        let help = if matches!(
            humantime::parse_duration(t),
            Ok(_) | Err(humantime::DurationError::NumberOverflow)
        ) {
            "a wait, timeout or delay that long cannot be meant; write a shorter one".to_string()
        } else {
            crate::model::DURATION_HELP.to_string()
        };
        let quoted = self.quoted_at(ptr);
        self.err(ptr, msg, "duration")
            .with_len_mut(s.chars().count() + if quoted { 2 } else { 0 })
            .help = Some(help);
        None
    }

    /// Is the scalar at `ptr` written in quotes?
    fn quoted_at(&self, ptr: &str) -> bool {
        let at = self.doc.value_loc(ptr);
        self.text
            .lines()
            .nth((at.line as usize).saturating_sub(1))
            .and_then(|l| l.chars().nth((at.col as usize).saturating_sub(1)))
            .is_some_and(|c| c == '"' || c == '\'')
    }

    /// Location of `needle` inside the string value at `ptr` (searching the source text from
    /// the value's start), or the value's own location.
    fn loc_in_value(&self, ptr: &str, needle: &str, char_offset: Option<usize>) -> (Loc, usize) {
        let start = self.doc.value_loc(ptr);
        let len = needle.chars().count().max(1);
        if start.line == 0 {
            return (start, len);
        }
        let lines: Vec<&str> = self.text.lines().collect();
        let first = start.line as usize - 1;
        for (i, line) in lines.iter().enumerate().skip(first).take(50) {
            let from = if i == first {
                start.col as usize - 1
            } else {
                0
            };
            let chars: Vec<char> = line.chars().collect();
            if from > chars.len() {
                continue;
            }
            let rest: String = chars[from..].iter().collect();
            if !needle.is_empty() {
                if let Some(b) = rest.find(needle) {
                    let col = from + rest[..b].chars().count() + 1;
                    return (Loc::new(i as u32 + 1, col as u32), len);
                }
            }
        }
        match char_offset {
            // Single-line plain or quoted scalars: the offset maps onto the source directly.
            Some(off) => {
                let line = lines.get(first).copied().unwrap_or("");
                let quoted = line
                    .chars()
                    .nth(start.col as usize - 1)
                    .is_some_and(|c| c == '"' || c == '\'');
                (start.shifted(off + usize::from(quoted)), 1)
            }
            None => (start, len),
        }
    }
}

trait LenMut {
    fn with_len_mut(&mut self, len: usize) -> &mut Self;
}

impl LenMut for Diagnostic {
    fn with_len_mut(&mut self, len: usize) -> &mut Self {
        self.len = len.max(1);
        self
    }
}

/// Checks a parsed runbook document. `stack` holds the files being checked, to catch `call`
/// cycles.
pub fn check_runbook_doc(
    file: &str,
    path: &Path,
    text: &str,
    bytes: &[u8],
    doc: &Located,
    stack: &mut Vec<PathBuf>,
) -> (Option<Runbook>, Vec<Diagnostic>) {
    let (schema, validator) = runbook_validator();
    let checked = schema_check(file, doc, schema, validator);
    let schema_ok = checked.diagnostics.is_empty();

    // Keep checking past schema errors: on the document as it reads with the suggested fixes
    // made and unknown keys pruned, or failing that with the other offending values taken out,
    // so that one run reports reference and template problems too.
    let mut value = checked.repaired;
    let mut spec: Option<RunbookSpec> = serde_json::from_value(value.clone()).ok();
    if spec.is_none() && !schema_ok {
        for ptr in &checked.unfixed {
            remove_at(&mut value, ptr);
        }
        prune_unknown(&mut value, schema);
        spec = serde_json::from_value(value.clone()).ok();
    }
    let mut cx = Ctx {
        file,
        text,
        doc,
        value: &value,
        diags: checked.diagnostics,
    };
    let schema_diags = cx.diags.len();
    let Some(spec) = spec else {
        if schema_ok {
            cx.err(
                "",
                "the document does not have the shape of a runbook",
                "schema",
            );
        }
        return (None, cx.diags);
    };

    let scope = build_scope(&spec, path, true);
    check_metadata(&mut cx, &spec);
    check_inputs(&mut cx, &spec);
    check_secrets(&mut cx, &spec);
    check_backends(&mut cx, &spec, &scope);
    for (i, c) in spec.preconditions.iter().enumerate() {
        let p = format!("/preconditions/{i}/that");
        check_expr(&mut cx, &scope, &p, &c.that, Usage::Plain, None);
        if let Some(m) = &c.message {
            check_template(
                &mut cx,
                &scope,
                &format!("/preconditions/{i}/message"),
                m,
                Usage::Plain,
                None,
            );
        }
    }

    let mut seen: HashMap<String, String> = HashMap::new();
    let mut steps = Vec::new();
    let mut on_failure = Vec::new();
    for (list, name) in [(&spec.steps, "steps"), (&spec.on_failure, "on_failure")] {
        let mut confirmed = false;
        for (i, s) in list.iter().enumerate() {
            let ptr = format!("/{name}/{i}");
            if let Some(prev) = seen.get(&s.id) {
                let prev = prev.clone();
                let at = doc.value_loc(&prev);
                cx.err(
                    &format!("{ptr}/id"),
                    format!("duplicate step id `{}`", s.id),
                    "duplicate-step",
                )
                .with_len_mut(s.id.chars().count())
                .help = Some(format!(
                    "step ids must be unique; the first `{}` is at line {}",
                    s.id, at.line
                ));
            } else {
                seen.insert(s.id.clone(), format!("{ptr}/id"));
            }
            let position = if name == "steps" {
                i
            } else {
                scope.main_len + i
            };
            if let Some(guards) = s.confirm.as_ref().and_then(|c| c.guards.as_ref()) {
                let later: Vec<&str> = list[i + 1..].iter().map(|l| l.id.as_str()).collect();
                for (j, g) in guards.iter().enumerate() {
                    if later.contains(&g.as_str()) {
                        continue;
                    }
                    let before = list[..i].iter().any(|l| &l.id == g);
                    let help = if before {
                        format!("`{g}` runs before this confirmation: a confirmation guards later steps only; move it after `{}`", s.id)
                    } else if later.is_empty() {
                        format!("no step follows `{}` in `{name}`", s.id)
                    } else {
                        format!("the steps after `{}`: {}", s.id, later.join(", "))
                    };
                    cx.err(
                        &format!("{ptr}/confirm/guards/{j}"),
                        format!("`guards` names `{g}`, which is not a later step of `{name}`"),
                        "unknown-guarded-step",
                    )
                    .help = Some(help);
                }
            }
            let step = check_step(&mut cx, &spec, &scope, &ptr, s, position, path, stack);
            if let Some(step) = step {
                if matches!(step.action.kind, ActionKind::Confirm(_)) {
                    confirmed = true;
                }
                if let Some(u) = step.undo.as_ref().filter(|u| u.safety == Safety::Terminal) {
                    cx.warn(&format!("{ptr}/undo"), format!(
                        "the undo of step `{}` is terminal ({}): it cannot itself be undone",
                        step.id,
                        u.action.kind.label()
                    ), "terminal-undo")
                    .help = Some(format!(
                        "a rollback asks before running it, like any terminal step (non-interactive: `--answer {}.undo=yes`); the runbook's highest class is `terminal`",
                        step.id
                    ));
                }
                if step.safety == Safety::Terminal {
                    if !confirmed {
                        cx.warn(&format!("{ptr}/id"), format!(
                            "terminal step `{}` is not preceded by a `confirm` step",
                            step.id
                        ), "unconfirmed-terminal")
                        .help = Some("the run still asks before it, but an explicit `confirm` step with a clear prompt tells the operator what is about to happen".into());
                    }
                    confirmed = false;
                }
                if name == "steps" {
                    steps.push(step)
                } else {
                    on_failure.push(step)
                }
            }
        }
    }

    // One problem, one report: a later stage's error where the schema already reported one
    // is the same cause seen again.
    let (schema_part, rest) = cx.diags.split_at(schema_diags);
    let at: HashSet<(u32, u32)> = schema_part.iter().map(|d| (d.line, d.column)).collect();
    let rest: Vec<Diagnostic> = rest
        .iter()
        .filter(|d| !at.contains(&(d.line, d.column)))
        .cloned()
        .collect();
    cx.diags.truncate(schema_diags);
    cx.diags.extend(rest);

    let mttr_target = spec
        .metadata
        .mttr_target
        .as_deref()
        .and_then(|m| parse_duration(m).ok());
    if cx.diags.iter().any(Diagnostic::is_error) {
        return (None, cx.diags);
    }
    let rb = Runbook {
        file: file.to_string(),
        path: path.to_path_buf(),
        sha256: hex::encode(Sha256::digest(bytes)),
        spec,
        mttr_target,
        steps,
        on_failure,
    };
    (Some(rb), cx.diags)
}

/// Names of all inputs, for tests and plan output.
pub fn input_names(rb: &Runbook) -> HashSet<String> {
    rb.spec.inputs.keys().cloned().collect()
}

//! The checker: turns a located YAML document into a validated `Runbook`, or reports every
//! problem in it at once (schema violations via `schema.rs`, then references, templates,
//! backends, durations, safety) with its line and column.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::diag::{did_you_mean, Diagnostic, Loc};
use crate::model::{parse_duration, Action, ActionKind, Retry, Runbook, Step, Undo, Until};
use crate::schema::{prune_unknown, runbook_validator, schema_check};
use crate::spec::{self, BackendSpec, RetrySpec, RunbookSpec, Safety, StepSpec, UndoSpec};
use crate::template;
use crate::yaml::{self, Located};

pub use crate::schema::{allowed_keys, describe_pointer, schema_diagnostics};

/// What a file turned out to be.
#[derive(Debug)]
pub enum Checked {
    Runbook(Box<Runbook>),
    Drill(Box<crate::drill::Drill>),
}

/// The outcome of checking one file: the model when there were no errors, and every diagnostic.
#[derive(Debug)]
pub struct Report {
    pub file: String,
    pub source: Option<String>,
    pub checked: Option<Checked>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Reads and checks a runbook or drill file.
pub fn check_path(path: &Path) -> Report {
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
    check_bytes(&file, path, &bytes)
}

/// How deep `call`s may nest (the top-level runbook counts as one). Checking and running a
/// call recurse; a chain of hundreds would overflow the stack.
pub const MAX_CALL_DEPTH: usize = 16;

/// Reads at most one byte more than the size limit, so that a huge file (or `/dev/zero`) is
/// rejected without reading it all. `None` means the file is over the limit.
pub fn read_limited(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    crate::files::read_limited(path, yaml::MAX_FILE_BYTES)
}

/// Checks file content. `path` is used to resolve relative references (`call`, drills).
pub fn check_bytes(file: &str, path: &Path, bytes: &[u8]) -> Report {
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
    let kind = doc.value.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind == "Drill" {
        let (drill, diags) = crate::drill::check::check_drill(file, path, &text, &doc);
        report.diagnostics = diags;
        report.checked = drill.map(|d| Checked::Drill(Box::new(d)));
    } else {
        let mut stack = vec![canonical(path)];
        let (rb, diags) = check_runbook_doc(file, path, &text, bytes, &doc, &mut stack);
        report.diagnostics = diags;
        report.checked = rb.map(|r| Checked::Runbook(Box::new(r)));
    }
    if !controls.is_empty() {
        report.diagnostics.extend(controls);
        report.checked = None;
    }
    crate::diag::sort(&mut report.diagnostics);
    report.diagnostics.dedup();
    report
}

/// Text in a runbook or drill (keys and string values: titles, prompts, descriptions,
/// instructions, arguments...) may not hold control characters other than tab and line feed,
/// nor Unicode bidirectional controls. YAML lets a double-quoted string write any of them
/// (`"\e[2J"`); shown on the operator's terminal, they could clear it or rewrite a prompt.
/// (The terminal shows them escaped anyway, see `term.rs`; this says so where they are written.)
fn control_characters(file: &str, text: &str, doc: &yaml::Located) -> Vec<Diagnostic> {
    fn walk(
        file: &str,
        text: &str,
        doc: &yaml::Located,
        v: &Value,
        ptr: &mut String,
        out: &mut Vec<Diagnostic>,
    ) {
        let found = |s: &str| {
            s.chars()
                .enumerate()
                .find(|(_, c)| crate::term::is_unsafe(*c))
        };
        let diag = |loc: Loc, what: String, (at, c): (usize, char)| {
            Diagnostic::error(
                file,
                char_loc(text, loc, at),
                format!(
                    "{what} holds the control character U+{:04X} ({}) at character {}",
                    c as u32,
                    crate::term::visible(&c.to_string()),
                    at + 1
                ),
            )
            .with_code("control-character")
            .with_help(
                "remove it: runbook text may hold tabs and line breaks, not terminal control \
                 characters (they would reach the operator's terminal); a script that needs \
                 one can write it with printf, e.g. printf '\\033'",
            )
        };
        let name = |ptr: &str| {
            if ptr.is_empty() {
                "the document".to_string()
            } else {
                format!("`{ptr}`")
            }
        };
        match v {
            Value::String(s) => {
                if let Some(hit) = found(s) {
                    out.push(diag(
                        doc.value_loc(ptr),
                        format!("the value of {}", name(ptr)),
                        hit,
                    ));
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = ptr.len();
                    ptr.push_str(&format!("/{i}"));
                    walk(file, text, doc, item, ptr, out);
                    ptr.truncate(len);
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&yaml::pointer_segment(k));
                    if let Some(hit) = found(k) {
                        out.push(diag(
                            doc.key_loc(ptr),
                            format!("the key {}", name(ptr)),
                            hit,
                        ));
                    }
                    walk(file, text, doc, item, ptr, out);
                    ptr.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = vec![];
    walk(file, text, doc, &doc.value, &mut String::new(), &mut out);
    out
}

/// Where the `at`-th character of the scalar written at `start` is, when the scalar is on one
/// line: plain, single-quoted, or double-quoted with its escapes (`\e` is one character of
/// the value, two of the source). Otherwise the scalar's start.
fn char_loc(text: &str, start: Loc, at: usize) -> Loc {
    let Some(line) = text.lines().nth((start.line as usize).saturating_sub(1)) else {
        return start;
    };
    let src: Vec<char> = line
        .chars()
        .skip((start.col as usize).saturating_sub(1))
        .collect();
    let (mut i, quote) = match src.first() {
        Some('"') => (1, Some('"')),
        Some('\'') => (1, Some('\'')),
        Some(_) => (0, None),
        None => return start,
    };
    let mut n = 0;
    while i < src.len() {
        let c = src[i];
        if n == at {
            return Loc::new(start.line, start.col + i as u32);
        }
        let width = match (quote, c) {
            (Some('"'), '"') => return start,
            (Some('"'), '\\') => match src.get(i + 1) {
                Some('x') => 4,
                Some('u') => 6,
                Some('U') => 10,
                _ => 2,
            },
            (Some('\''), '\'') if src.get(i + 1) == Some(&'\'') => 2,
            (Some('\''), '\'') => return start,
            _ => 1,
        };
        i += width;
        n += 1;
    }
    start
}

/// Loads a runbook, failing with its diagnostics when it has errors.
pub fn load_runbook(path: &Path) -> Result<(Runbook, Vec<Diagnostic>), Report> {
    let report = check_path(path);
    if report.has_errors() {
        return Err(report);
    }
    match report.checked {
        Some(Checked::Runbook(rb)) => Ok((*rb, report.diagnostics)),
        _ => {
            let mut r = report;
            let file = r.file.clone();
            r.diagnostics.push(
                Diagnostic::error(&file, Loc::new(1, 1), "expected `kind: Runbook`")
                    .with_code("kind")
                    .with_help(
                        "`runbook run` and `plan` take runbooks; run drills with `runbook drill`",
                    ),
            );
            r.checked = None;
            Err(r)
        }
    }
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

/// Facts about the runbook that reference checks need.
struct Scope<'a> {
    inputs: Vec<&'a str>,
    secrets: Vec<&'a str>,
    env: Vec<&'a str>,
    /// step id -> names it exposes under `steps.<id>.*`
    exposes: HashMap<String, BTreeSet<String>>,
    /// step ids in order: main steps, then on_failure
    order: Vec<String>,
    main_len: usize,
    /// call step id -> the called runbook's step ids and what each exposes, when the called
    /// file could be read (`steps.<call>.<step>.<name>`); otherwise anything goes there and
    /// the called runbook's own check reports its problems.
    calls: HashMap<String, HashMap<String, BTreeSet<String>>>,
}

/// Fields every step exposes besides its captures.
const STEP_FIELDS: &[&str] = &["outcome", "result", "attempts"];
const RUN_FIELDS: &[&str] = &["id", "operator", "reason", "started_at", "runbook", "host"];

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
                if matches!(step.action.kind, ActionKind::Confirm) {
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

fn build_scope<'a>(spec: &'a RunbookSpec, path: &Path, follow_calls: bool) -> Scope<'a> {
    let mut exposes = HashMap::new();
    let mut order = Vec::new();
    let mut calls = HashMap::new();
    for s in spec.steps.iter().chain(&spec.on_failure) {
        let mut names: BTreeSet<String> = s.capture.keys().cloned().collect();
        names.extend(STEP_FIELDS.iter().map(|s| s.to_string()));
        if s.input.is_some() {
            names.insert("value".into());
        }
        if s.manual.is_some() {
            names.insert("note".into());
        }
        if s.confirm.is_some() {
            names.insert("answer".into());
        }
        if let Some(call) = &s.call {
            // A call exposes the called runbook's steps. One level is followed (a called
            // runbook's own calls are checked when it is); unreadable files allow anything.
            let child = follow_calls
                .then(|| called_spec(path, &call.runbook))
                .flatten();
            match child {
                Some(child) => {
                    let cpath = path.parent().unwrap_or(Path::new(".")).join(&call.runbook);
                    let cs = build_scope(&child, &cpath, false);
                    names.extend(cs.order.iter().cloned());
                    calls.insert(s.id.clone(), cs.exposes);
                }
                None => {
                    names.insert("*".into());
                }
            }
        }
        exposes.entry(s.id.clone()).or_insert(names);
        order.push(s.id.clone());
    }
    Scope {
        inputs: spec.inputs.keys().map(String::as_str).collect(),
        secrets: spec.secrets.keys().map(String::as_str).collect(),
        env: spec.env.iter().map(String::as_str).collect(),
        exposes,
        order,
        main_len: spec.steps.len(),
        calls,
    }
}

/// A path of names as a template writes it: `steps.check.rate`, but `steps['rolled-out'].rate`
/// for a name that is not an identifier (in a template, `rolled-out` is a subtraction).
fn dotted(parts: &[&str]) -> String {
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if is_identifier(p) {
            if i > 0 {
                out.push('.');
            }
            out.push_str(p);
        } else {
            out.push_str(&format!("['{p}']"));
        }
    }
    out
}

/// The called runbook's spec, if its file can be read and has the shape of a runbook.
fn called_spec(path: &Path, runbook: &str) -> Option<RunbookSpec> {
    let target = path.parent().unwrap_or(Path::new(".")).join(runbook);
    let bytes = read_limited(&target).ok()??;
    let doc = yaml::parse(runbook, &bytes).ok()?;
    serde_json::from_value(doc.value).ok()
}

fn check_metadata(cx: &mut Ctx, spec: &RunbookSpec) {
    if let Some(m) = &spec.metadata.mttr_target {
        cx.duration("/metadata/mttr_target", m);
    }
}

fn check_inputs(cx: &mut Ctx, spec: &RunbookSpec) {
    for (name, input) in &spec.inputs {
        let ptr = format!("/inputs/{}", yaml::pointer_segment(name));
        if !is_identifier(name) {
            cx.key_err(&ptr, format!("input name `{name}` is not an identifier"), "name")
                .help = Some("use letters, digits and `_`, e.g. `deployment_name`, so templates can say `inputs.<name>`".into());
        }
        if let Some(p) = &input.pattern {
            if let Err(e) = regex_check(p) {
                cx.err(
                    &format!("{ptr}/pattern"),
                    format!("invalid regular expression: {e}"),
                    "pattern",
                );
            }
        }
        if let Some(d) = &input.default {
            if let Err(e) = crate::inputs::validate_value(name, input, d) {
                cx.err(
                    &format!("{ptr}/default"),
                    format!("default does not fit the input: {e}"),
                    "input-default",
                )
                .help = Some(
                    "change the default, or the input's `type`, `enum`, bounds or `pattern`".into(),
                );
            }
        }
        if let Some(allowed) = &input.allowed {
            for (i, a) in allowed.iter().enumerate() {
                if !crate::inputs::has_type(input.kind, a) {
                    cx.err(
                        &format!("{ptr}/enum/{i}"),
                        format!("{a} is not of the input's type {:?}", input.kind).to_lowercase(),
                        "input-enum",
                    );
                }
            }
        }
    }
}

fn regex_check(p: &str) -> Result<(), String> {
    crate::inputs::compile_pattern(p).map(|_| ())
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_secrets(cx: &mut Ctx, spec: &RunbookSpec) {
    for (name, s) in &spec.secrets {
        let ptr = format!("/secrets/{}", yaml::pointer_segment(name));
        if !is_identifier(name) {
            cx.key_err(
                &ptr,
                format!("secret name `{name}` is not an identifier"),
                "name",
            )
            .help = Some("use letters, digits and `_`".into());
        }
        match (&s.env, &s.file) {
            (Some(_), Some(_)) => {
                cx.key_err(
                    &ptr,
                    format!("secret `{name}` has both `env` and `file`"),
                    "secret-source",
                )
                .help = Some("keep one source".into());
            }
            (None, None) => {
                cx.key_err(
                    &ptr,
                    format!("secret `{name}` has no source"),
                    "secret-source",
                )
                .help = Some("add `env: VARIABLE` or `file: /path/to/secret`".into());
            }
            _ => {}
        }
    }
}

fn backend_kind(b: &BackendSpec) -> Vec<&'static str> {
    let mut k = vec![];
    if b.kubernetes.is_some() {
        k.push("kubernetes");
    }
    if b.http.is_some() {
        k.push("http");
    }
    if b.compose.is_some() {
        k.push("compose");
    }
    if b.shell.is_some() {
        k.push("shell");
    }
    if b.prometheus.is_some() {
        k.push("prometheus");
    }
    k
}

fn check_backends(cx: &mut Ctx, spec: &RunbookSpec, scope: &Scope) {
    for (name, b) in &spec.backends {
        let ptr = format!("/backends/{}", yaml::pointer_segment(name));
        let kinds = backend_kind(b);
        if kinds.len() != 1 {
            cx.key_err(
                &ptr,
                format!("backend `{name}` must have exactly one of `kubernetes`, `http`, `compose`, `shell`, `prometheus` (found {})", kinds.len()),
                "backend-kind",
            )
            .help = Some("give each backend its own name".into());
        }
        // Backend fields are templates over inputs, secrets and env (not steps: backends are
        // resolved before the first step).
        let body = cx.value.pointer(&ptr).cloned().unwrap_or(Value::Null);
        let mut strings = vec![];
        template::strings_in(&body, &ptr, &mut strings);
        for (p, s) in strings {
            check_template(cx, scope, &p, &s, Usage::Backend, None);
        }
        if let Some(h) = &b.http {
            if let Some(t) = &h.timeout {
                cx.duration(&format!("{ptr}/http/timeout"), t);
            }
        }
        // A templated command is checked again after rendering, when the step runs.
        if let Some(c) = &b.compose {
            let templated = c
                .command
                .iter()
                .any(|a| a.contains("{{") || a.contains("{%"));
            if !c.command.is_empty() && !templated {
                if let Some(why) = crate::backends::compose::cli_problem(&c.command) {
                    cx.err(&format!("{ptr}/compose/command"), why, "compose-command")
                        .help = Some(
                        "a compose step's verb sets its safety class and what `plan` shows; to run \
                         another program, use a shell step (its safety class is yours to give)"
                            .into(),
                    );
                }
            }
        }
        if let Some(p) = &b.prometheus {
            if let Some(t) = &p.timeout {
                cx.duration(&format!("{ptr}/prometheus/timeout"), t);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Usage {
    /// Action fields, guards, messages: no `result`.
    Plain,
    /// `capture` and `verify`: `result` is the action's result.
    WithResult,
    /// Backend settings: no steps either.
    Backend,
}

/// Checks that every dotted name a template or expression reads is defined and available.
#[allow(clippy::too_many_arguments)]
fn check_refs(
    cx: &mut Ctx,
    scope: &Scope,
    ptr: &str,
    src: &str,
    refs: &BTreeSet<String>,
    usage: Usage,
    position: Option<usize>,
) {
    for r in refs {
        let parts: Vec<&str> = r.split('.').collect();
        let root = parts[0];
        let problem: Option<(String, Option<String>, &'static str)> = match root {
            "inputs" => parts.get(1).and_then(|n| {
                (!scope.inputs.contains(n)).then(|| {
                    (format!("undefined input `{n}`"),
                     did_you_mean(n, scope.inputs.iter().copied()).map(|s| format!("did you mean `inputs.{s}`?"))
                        .or(Some("declare it under `inputs:`".into())),
                     "undefined-reference")
                })
            }),
            "secrets" => parts.get(1).and_then(|n| {
                (!scope.secrets.contains(n)).then(|| {
                    (format!("undefined secret `{n}`"),
                     did_you_mean(n, scope.secrets.iter().copied()).map(|s| format!("did you mean `secrets.{s}`?"))
                        .or(Some("declare it under `secrets:` with `env:` or `file:`".into())),
                     "undefined-reference")
                })
            }),
            "env" => parts.get(1).and_then(|n| {
                (!scope.env.contains(n)).then(|| {
                    (format!("environment variable `{n}` is not declared"),
                     Some(did_you_mean(n, scope.env.iter().copied()).map_or_else(
                         || format!("add `{n}` to the runbook's `env:` list; only declared variables are visible"),
                         |s| format!("did you mean `env.{s}`?"))),
                     "undefined-reference")
                })
            }),
            "run" => parts.get(1).and_then(|n| {
                (!RUN_FIELDS.contains(n)).then(|| {
                    (format!("`run.{n}` does not exist"),
                     Some(format!("`run` has: {}", RUN_FIELDS.join(", "))),
                     "undefined-reference")
                })
            }),
            "result" => (usage != Usage::WithResult).then(|| {
                ("`result` is only available in `capture` and `verify`".to_string(),
                 Some("capture the value you need in the step that produced it, then use `steps.<id>.<capture>`".into()),
                 "undefined-reference")
            }),
            "steps" => {
                if usage == Usage::Backend {
                    Some(("backends cannot read `steps`: they are set up before the first step".into(),
                        Some("set the value in the step's own request instead (e.g. its `headers:`), where `steps.<id>.*` can be read".into()),
                        "undefined-reference"))
                } else {
                    match parts.get(1) {
                        None => None,
                        Some(id) => match scope.order.iter().position(|s| s == id) {
                            None => {
                                let earlier: Vec<&str> = scope.order.iter().take(position.unwrap_or(scope.order.len())).map(String::as_str).collect();
                                let help = did_you_mean(id, scope.order.iter().map(String::as_str))
                                    .map(|s| format!("did you mean `{}`?", dotted(&["steps", &s])))
                                    .unwrap_or_else(|| if earlier.is_empty() {
                                        "no step runs before this one, so there is nothing to read yet".to_string()
                                    } else {
                                        format!("refer to an earlier step: {}", earlier.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "))
                                    });
                                Some((format!("undefined step `{id}`"), Some(help), "undefined-reference"))
                            }
                            Some(idx) => {
                                let later = match position {
                                    Some(pos) => idx >= pos && !(usage == Usage::WithResult && idx == pos),
                                    None => false,
                                };
                                let on_failure_from_main = position.is_some_and(|p| p < scope.main_len) && idx >= scope.main_len;
                                if later || on_failure_from_main {
                                    Some((format!("step `{id}` has not run yet at this point"),
                                        Some("a step can only read captures of steps before it; move this step after it".into()),
                                        "forward-reference"))
                                } else if let (Some(child), Some(field), Some(calls)) =
                                    (parts.get(2), parts.get(3), scope.calls.get(*id))
                                {
                                    // steps.<call>.<child step>.<name>
                                    match calls.get(*child) {
                                        None if STEP_FIELDS.contains(child) => None,
                                        None => Some((
                                            format!("the runbook called by `{id}` has no step `{child}`"),
                                            Some(did_you_mean(child, calls.keys().map(String::as_str)).map_or_else(
                                                || {
                                                    let mut ids: Vec<String> = calls.keys().map(|k| format!("`{k}`")).collect();
                                                    ids.sort();
                                                    format!("its steps are: {}", ids.join(", "))
                                                },
                                                |s| format!("did you mean `{}`?", dotted(&["steps", id, &s, field])))),
                                            "undefined-reference")),
                                        Some(names) => {
                                        (!names.contains(*field) && !names.contains("*")).then(|| {
                                            (format!("step `{child}` of the runbook called by `{id}` has no capture `{field}`"),
                                             Some(did_you_mean(field, names.iter().map(String::as_str)).map_or_else(
                                                 || format!("add `capture: {{ {field}: <expression over result> }}` to step `{child}` of the called runbook"),
                                                 |s| format!("did you mean `{}`?", dotted(&["steps", id, child, &s])))),
                                             "undefined-reference")
                                        })
                                        }
                                    }
                                } else if let Some(field) = parts.get(2) {
                                    let names = &scope.exposes[*id];
                                    (!names.contains(*field) && !names.contains("*")).then(|| {
                                        let what = if scope.calls.contains_key(*id) { "step or field" } else { "capture" };
                                        (format!("step `{id}` has no {what} `{field}`"),
                                         Some(did_you_mean(field, names.iter().map(String::as_str)).map_or_else(
                                             || format!("add `capture: {{ {field}: <expression over result> }}` to step `{id}`"),
                                             |s| format!("did you mean `{}`?", dotted(&["steps", id, &s])))),
                                         "undefined-reference")
                                    })
                                } else {
                                    None
                                }
                            }
                        },
                    }
                }
            }
            other => {
                let roots: Vec<&str> = template::ROOTS.to_vec();
                Some((format!("unknown name `{other}`"),
                    Some(did_you_mean(other, roots.iter().copied()).map_or_else(
                        || format!("templates can read: {}", roots.join(", ")),
                        |s| format!("did you mean `{s}`?"))),
                    "undefined-reference"))
            }
        };
        if let Some((msg, help, code)) = problem {
            let needle = r.as_str();
            let (loc, len) = cx.loc_in_value(ptr, needle, None);
            let mut d = Diagnostic::error(cx.file, loc, format!("{msg} (in `{}`)", short(src)))
                .with_code(code)
                .with_len(len);
            if let Some(h) = help {
                d = d.with_help(h);
            }
            cx.diags.push(d);
        }
    }
}

fn short(s: &str) -> String {
    let one_line = s.trim().replace('\n', " ");
    if one_line.chars().count() > 60 {
        format!("{}…", one_line.chars().take(60).collect::<String>())
    } else {
        one_line
    }
}

fn check_template(
    cx: &mut Ctx,
    scope: &Scope,
    ptr: &str,
    src: &str,
    usage: Usage,
    position: Option<usize>,
) {
    shell_placeholders(cx, scope, ptr, src);
    match template::template_refs(src) {
        Ok(refs) => check_refs(cx, scope, ptr, src, &refs, usage, position),
        Err(e) => {
            let (loc, _) = cx.loc_in_value(ptr, "\u{0}", e.offset);
            cx.diags.push(
                Diagnostic::error(
                    cx.file,
                    loc,
                    format!("template syntax error: {}", e.message),
                )
                .with_code("template-syntax")
                .with_help("templates use `{{ expression }}`, e.g. `{{ inputs.namespace }}`"),
            );
        }
    }
}

/// `${NAME}` and `$NAME` in the literal text of a template: shell syntax, which nothing here
/// expands (argv runs without a shell, URLs and prompts are sent as written). Reported with the
/// template to write instead. `$name` in lowercase that names nothing declared is left alone
/// (a price, a regex's `$`, a jq path).
fn shell_placeholders(cx: &mut Ctx, scope: &Scope, ptr: &str, src: &str) {
    for (offset, written, name) in template::shell_placeholders(src) {
        let braced = written.starts_with("${");
        let lower = name.to_ascii_lowercase();
        let input = scope
            .inputs
            .iter()
            .find(|i| i.eq_ignore_ascii_case(&name))
            .copied();
        let env = scope.env.iter().find(|e| **e == name).copied();
        let secret = scope
            .secrets
            .iter()
            .find(|s| s.eq_ignore_ascii_case(&name))
            .copied();
        let shouty = name.chars().any(|c| c.is_ascii_uppercase())
            && !name.chars().any(|c| c.is_ascii_lowercase());
        if !(braced || shouty || input.is_some() || env.is_some() || secret.is_some()) {
            continue;
        }
        let (write, why) = if let Some(i) = input {
            (
                format!("{{{{ inputs.{i} }}}}"),
                format!("`{i}` is a declared input"),
            )
        } else if let Some(e) = env {
            (
                format!("{{{{ env.{e} }}}}"),
                format!("`{e}` is declared under `env:`"),
            )
        } else if let Some(s) = secret {
            (
                format!("{{{{ secrets.{s} }}}}"),
                format!("`{s}` is a declared secret"),
            )
        } else {
            (
                format!("{{{{ env.{name} }}}}"),
                format!(
                    "add `{name}` to the runbook's `env:` list first (only declared variables are visible), or declare an input `{lower}` and write `{{{{ inputs.{lower} }}}}`"
                ),
            )
        };
        let (loc, len) = cx.loc_in_value(ptr, &written, Some(offset));
        cx.diags.push(
            Diagnostic::error(
                cx.file,
                loc,
                format!("`{written}` is shell syntax, which is not expanded here: write `{write}`"),
            )
            .with_code("shell-placeholder")
            .with_len(len)
            .with_help(format!(
                "templates use `{{{{ ... }}}}`; {why}. For a literal `$`, write `{{{{ '{written}' }}}}`"
            )),
        );
    }
}

fn check_expr(
    cx: &mut Ctx,
    scope: &Scope,
    ptr: &str,
    src: &str,
    usage: Usage,
    position: Option<usize>,
) {
    if template::is_template(src) {
        cx.err(
            ptr,
            "expressions are written without `{{ }}`",
            "expression-syntax",
        )
        .help = Some(format!(
            "write `{}`",
            src.replace("{{", "").replace("}}", "").trim()
        ));
        return;
    }
    match template::expr_refs(src) {
        Ok(refs) => check_refs(cx, scope, ptr, src, &refs, usage, position),
        Err(e) => {
            let (loc, _) = cx.loc_in_value(ptr, "\u{0}", e.offset);
            cx.diags.push(
                Diagnostic::error(
                    cx.file,
                    loc,
                    format!("expression syntax error: {}", e.message),
                )
                .with_code("expression-syntax")
                .with_help(if single_equals(src) {
                    "compare with `==`: a single `=` is not an operator in expressions"
                } else {
                    "expressions look like `result.status == 200` or `inputs.replicas > 0`"
                }),
            );
        }
    }
}

/// Does `src` use `=` on its own, where `==` was surely meant?
fn single_equals(src: &str) -> bool {
    let b = src.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'='
            && b.get(i + 1) != Some(&b'=')
            && !matches!(
                i.checked_sub(1).map(|j| b[j]),
                Some(b'=' | b'!' | b'<' | b'>')
            )
    })
}

fn action_fields_of(s: &StepSpec) -> Vec<&'static str> {
    let mut v = vec![];
    macro_rules! has { ($($f:ident),*) => { $( if s.$f.is_some() { v.push(stringify!($f)); } )* } }
    has!(
        shell, http, kubernetes, compose, confirm, manual, input, wait, assert, call, prometheus,
        analysis
    );
    v
}

fn undo_fields_of(s: &UndoSpec) -> Vec<&'static str> {
    let mut v = vec![];
    macro_rules! has { ($($f:ident),*) => { $( if s.$f.is_some() { v.push(stringify!($f)); } )* } }
    has!(
        shell, http, kubernetes, compose, confirm, manual, input, wait, assert, call, prometheus,
        analysis
    );
    v
}

#[allow(clippy::too_many_arguments)]
fn check_step(
    cx: &mut Ctx,
    spec: &RunbookSpec,
    scope: &Scope,
    ptr: &str,
    s: &StepSpec,
    position: usize,
    path: &Path,
    stack: &mut Vec<PathBuf>,
) -> Option<Step> {
    let fields = action_fields_of(s);
    let before = cx.diags.iter().filter(|d| d.is_error()).count();
    if fields.len() != 1 {
        let msg = if fields.is_empty() {
            format!("step `{}` has no action", s.id)
        } else {
            format!(
                "step `{}` has {} actions ({}); a step does one thing",
                s.id,
                fields.len(),
                fields.join(", ")
            )
        };
        cx.key_err(&format!("{ptr}/id"), msg, "step-action").help = Some(format!(
            "give it exactly one of: {}",
            spec::ACTION_KINDS.join(", ")
        ));
        return None;
    }
    let field = fields[0];
    let body = cx
        .value
        .pointer(&format!("{ptr}/{field}"))
        .cloned()
        .unwrap_or(Value::Null);
    let action = check_action(
        cx,
        spec,
        scope,
        &format!("{ptr}/{field}"),
        field,
        &body,
        s,
        Some(position),
        path,
        stack,
    )?;

    // Guard, captures, verifications.
    if let Some(w) = &s.when {
        check_expr(
            cx,
            scope,
            &format!("{ptr}/when"),
            w,
            Usage::Plain,
            Some(position),
        );
    }
    for (name, expr) in &s.capture {
        let p = format!("{ptr}/capture/{}", yaml::pointer_segment(name));
        if !is_identifier(name) {
            cx.key_err(
                &p,
                format!("capture name `{name}` is not an identifier"),
                "name",
            );
        }
        check_expr(cx, scope, &p, expr, Usage::WithResult, Some(position));
    }
    for (i, v) in s.verify.iter().enumerate() {
        check_expr(
            cx,
            scope,
            &format!("{ptr}/verify/{i}/that"),
            &v.that,
            Usage::WithResult,
            Some(position),
        );
        if let Some(m) = &v.message {
            check_template(
                cx,
                scope,
                &format!("{ptr}/verify/{i}/message"),
                m,
                Usage::WithResult,
                Some(position),
            );
        }
    }
    for text in [&s.title, &s.description].into_iter().flatten() {
        let _ = text; // titles and descriptions are shown as written, not rendered
    }
    let no_result = matches!(
        action.kind,
        ActionKind::Confirm
            | ActionKind::Manual
            | ActionKind::Input
            | ActionKind::Wait(_)
            | ActionKind::Assert
    );
    if no_result && (!s.verify.is_empty() || s.until.is_some()) {
        cx.key_err(
            &format!(
                "{ptr}/{}",
                if s.until.is_some() { "until" } else { "verify" }
            ),
            format!("a `{field}` step has no result to verify or poll"),
            "verify-kind",
        )
        .help = Some("use an `assert` step to check earlier captures".into());
    }

    let analysis_pass = matches!(action.kind, ActionKind::Analysis { .. })
        && body.get("on_inconclusive").and_then(Value::as_str) == Some("pass");
    if s.on_inconclusive == Some(spec::OnInconclusive::Pass) || analysis_pass {
        let p = if analysis_pass {
            format!("{ptr}/{field}/on_inconclusive")
        } else {
            format!("{ptr}/on_inconclusive")
        };
        cx.warn(
            &p,
            "`on_inconclusive: pass` lets no data (an empty result, NaN) count as a pass",
            "inconclusive-pass",
        )
        .help = Some(
            "prefer `fail` (the default) or `ask`; a verification that cannot see the system proves nothing"
                .into(),
        );
    }
    if s.on_inconclusive.is_some() && s.verify.is_empty() {
        cx.key_err(
            &format!("{ptr}/on_inconclusive"),
            "`on_inconclusive` applies to `verify`, but this step has no `verify`",
            "inconclusive-without-verify",
        )
        .help = Some("an `analysis` step takes `on_inconclusive` inside `analysis:`".into());
    }

    // A template over inputs (`"{{ inputs.rollout_timeout }}"`) is rendered and parsed when
    // the step runs.
    let timeout_template = s
        .timeout
        .as_ref()
        .filter(|t| template::is_template(t))
        .cloned();
    if let Some(t) = &timeout_template {
        check_template(
            cx,
            scope,
            &format!("{ptr}/timeout"),
            t,
            Usage::Backend,
            None,
        );
    }
    let timeout = s
        .timeout
        .as_ref()
        .filter(|_| timeout_template.is_none())
        .and_then(|t| cx.duration(&format!("{ptr}/timeout"), t));
    let retry = s
        .retry
        .as_ref()
        .map(|r| check_retry(cx, &format!("{ptr}/retry"), r))
        .unwrap_or_default();
    let until = match &s.until {
        None => None,
        Some(u) => {
            if s.verify.is_empty() {
                cx.key_err(
                    &format!("{ptr}/until"),
                    "`until` polls `verify`, but this step has no `verify`",
                    "poll-without-verify",
                )
                .help = Some("add `verify:` conditions, or remove `until`".into());
            }
            // A template over inputs (`"{{ inputs.sync_timeout }}"`) is rendered and parsed
            // when the step runs; a literal is parsed here.
            let templated = |cx: &mut Ctx, field: &str, src: &str| -> Option<String> {
                if !template::is_template(src) {
                    return None;
                }
                check_template(
                    cx,
                    scope,
                    &format!("{ptr}/until/{field}"),
                    src,
                    Usage::Backend,
                    None,
                );
                Some(src.to_string())
            };
            let timeout_template = templated(cx, "timeout", &u.timeout);
            let interval_template = u
                .interval
                .as_deref()
                .and_then(|i| templated(cx, "interval", i));
            let t = if timeout_template.is_some() {
                Some(Duration::ZERO)
            } else {
                cx.duration(&format!("{ptr}/until/timeout"), &u.timeout)
            };
            let i = match &u.interval {
                Some(_) if interval_template.is_some() => Some(Duration::ZERO),
                Some(i) => cx.duration(&format!("{ptr}/until/interval"), i),
                None => Some(Duration::from_secs(5)),
            };
            if let (Some(t), Some(i)) = (t, i) {
                if i.is_zero() && interval_template.is_none() {
                    cx.err(
                        &format!("{ptr}/until/interval"),
                        "poll interval must be more than zero",
                        "duration",
                    );
                }
                if t.is_zero() && timeout_template.is_none() {
                    cx.err(
                        &format!("{ptr}/until/timeout"),
                        "poll timeout must be more than zero",
                        "poll-without-timeout",
                    )
                    .help = Some("polling needs a budget, e.g. `timeout: 5m`".into());
                }
                Some(Until {
                    timeout: t,
                    interval: i,
                    timeout_template,
                    interval_template,
                })
            } else {
                None
            }
        }
    };
    if matches!(
        action.kind,
        ActionKind::Kubernetes {
            verb: crate::backends::KubeVerb::RolloutStatus
        }
    ) && timeout.is_none()
        && timeout_template.is_none()
    {
        cx.key_err(&format!("{ptr}/kubernetes"), format!("step `{}` waits for a rollout without a timeout", s.id), "poll-without-timeout")
            .help = Some("add `timeout:` to the step (e.g. `timeout: 5m`) so a stuck rollout fails instead of hanging".into());
    }

    // Safety class.
    let own = own_safety(&action);
    let safety = match s.safety {
        Some(declared)
            if declared < own && !matches!(action.kind, ActionKind::Shell | ActionKind::Http) =>
        {
            cx.err(&format!("{ptr}/safety"),
                format!("`{}` is below the action's own class `{}`", declared.as_str(), own.as_str()), "safety")
                .help = Some(format!("a step may raise its class, never lower it; remove `safety:` or use `{}` or higher", own.as_str()));
            own
        }
        Some(declared) => declared,
        None => own,
    };

    // Undo.
    let undo = match &s.undo {
        None => None,
        Some(u) => check_undo(
            cx,
            spec,
            scope,
            &format!("{ptr}/undo"),
            u,
            position,
            path,
            stack,
        ),
    };
    if undo.is_none()
        && s.undo.is_none()
        && s.no_undo.is_none()
        && safety > Safety::ReadOnly
        && !matches!(
            action.kind,
            ActionKind::Confirm
                | ActionKind::Manual
                | ActionKind::Input
                | ActionKind::Wait(_)
                | ActionKind::Assert
                | ActionKind::Call(_)
        )
    {
        cx.warn(&format!("{ptr}/id"), format!("step `{}` changes state ({}) but has no `undo`", s.id, safety.as_str()), "missing-undo")
            .help = Some("add `undo:` with the compensating action, or `no_undo: <why>` to say why there is none".into());
    }
    if s.undo.is_some() && s.no_undo.is_some() {
        cx.key_err(
            &format!("{ptr}/no_undo"),
            "a step with `undo` cannot also have `no_undo`",
            "undo",
        )
        .help = Some("keep one".into());
    }

    if cx.diags.iter().filter(|d| d.is_error()).count() > before {
        return None;
    }
    Some(Step {
        id: s.id.clone(),
        title: s.title.clone().unwrap_or_else(|| s.id.clone()),
        loc: cx.doc.value_loc(&format!("{ptr}/id")),
        spec: s.clone(),
        action,
        safety,
        timeout,
        timeout_template,
        retry,
        until,
        undo,
    })
}

fn own_safety(a: &Action) -> Safety {
    match &a.kind {
        ActionKind::Kubernetes { verb } => spec::kube_verb_safety(verb.as_str()),
        ActionKind::Compose { verb } => spec::compose_verb_safety(verb.as_str()),
        ActionKind::Shell => Safety::Reversible,
        ActionKind::Http => {
            let m = a
                .body
                .pointer("/request/method")
                .and_then(Value::as_str)
                .unwrap_or("GET");
            if matches!(m, "GET" | "HEAD" | "OPTIONS") {
                Safety::ReadOnly
            } else {
                Safety::Reversible
            }
        }
        ActionKind::Call(rb) => rb.max_safety(),
        _ => Safety::ReadOnly,
    }
}

fn check_retry(cx: &mut Ctx, ptr: &str, r: &RetrySpec) -> Retry {
    let mut out = Retry {
        attempts: r.attempts.max(1),
        ..Retry::default()
    };
    if let Some(d) = &r.delay {
        if let Some(d) = cx.duration(&format!("{ptr}/delay"), d) {
            out.delay = d;
        }
    }
    if let Some(m) = &r.max_delay {
        out.max_delay = cx.duration(&format!("{ptr}/max_delay"), m);
    }
    if let Some(b) = r.backoff {
        if !(1.0..=10.0).contains(&b) {
            cx.err(
                &format!("{ptr}/backoff"),
                format!("backoff {b} is outside 1.0..=10.0"),
                "retry",
            )
            .help = Some("use 1.0 for a fixed delay, 2.0 to double it each time".into());
        }
        out.backoff = b;
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn check_undo(
    cx: &mut Ctx,
    spec: &RunbookSpec,
    scope: &Scope,
    ptr: &str,
    u: &UndoSpec,
    position: usize,
    path: &Path,
    stack: &mut Vec<PathBuf>,
) -> Option<Undo> {
    let fields = undo_fields_of(u);
    if fields.len() != 1 {
        cx.key_err(
            ptr,
            format!(
                "`undo` must have exactly one action (found {})",
                fields.len()
            ),
            "undo",
        )
        .help = Some("e.g. `undo: { kubernetes: { set_image: {...} } }`".into());
        return None;
    }
    let field = fields[0];
    if matches!(
        field,
        "confirm" | "input" | "assert" | "call" | "prometheus" | "analysis"
    ) {
        cx.key_err(
            &format!("{ptr}/{field}"),
            format!("`{field}` cannot be an undo action"),
            "undo",
        )
        .help = Some("undo with shell, http, kubernetes, compose, manual or wait".into());
        return None;
    }
    let body = cx
        .doc
        .value
        .pointer(&format!("{ptr}/{field}"))
        .cloned()
        .unwrap_or(Value::Null);
    let pseudo = StepSpec::default();
    // An undo runs after its step, so it may read the step's own captures.
    let action = check_action(
        cx,
        spec,
        scope,
        &format!("{ptr}/{field}"),
        field,
        &body,
        &pseudo,
        Some(position + 1),
        path,
        stack,
    )?;
    let timeout = u
        .timeout
        .as_ref()
        .and_then(|t| cx.duration(&format!("{ptr}/timeout"), t));
    let retry = u
        .retry
        .as_ref()
        .map(|r| check_retry(cx, &format!("{ptr}/retry"), r))
        .unwrap_or_default();
    let own = own_safety(&action);
    let safety = match u.safety {
        Some(declared)
            if declared < own && !matches!(action.kind, ActionKind::Shell | ActionKind::Http) =>
        {
            cx.err(&format!("{ptr}/safety"),
                format!("`{}` is below the undo action's own class `{}`", declared.as_str(), own.as_str()), "safety")
                .help = Some(format!("an undo may raise its class, never lower it; remove `safety:` or use `{}` or higher", own.as_str()));
            own
        }
        Some(declared) => declared,
        None => own,
    };
    Some(Undo {
        safety,
        title: u
            .title
            .clone()
            .unwrap_or_else(|| format!("undo: {}", action.kind.label())),
        action,
        timeout,
        retry,
    })
}

/// Reports an argument the backends would reject, found in the literal text (an empty
/// `image`, a `set_env` with neither `set` nor `unset`), at the field or the verb. The same
/// validation runs on the rendered arguments before every call, real or simulated. False
/// when there was one.
fn literal_arg_error(
    cx: &mut Ctx,
    ptr: &str,
    verb: &str,
    args: &Value,
    err: Option<crate::backends::calls::ArgError>,
    code: &'static str,
) -> bool {
    let Some(e) = err.filter(|e| !e.shape) else {
        return true;
    };
    let at = args.get(e.field).filter(|_| !e.field.is_empty());
    if at
        .and_then(Value::as_str)
        .is_some_and(template::is_template)
    {
        // Known only once rendered; checked then.
        return true;
    }
    let field_ptr = match at {
        Some(_) => format!("{ptr}/{verb}/{}", e.field),
        None => format!("{ptr}/{verb}"),
    };
    if at.is_some() {
        cx.err(&field_ptr, format!("{code}.{verb}: {}", e.message), code);
    } else {
        cx.key_err(&field_ptr, format!("{code}.{verb}: {}", e.message), code);
    }
    false
}

/// Picks the backend an action uses and checks that it is of the right kind.
fn resolve_backend(
    cx: &mut Ctx,
    spec: &RunbookSpec,
    ptr: &str,
    kind: &str,
    named: Option<&str>,
    required: bool,
) -> Option<String> {
    let of_kind: Vec<&str> = spec
        .backends
        .iter()
        .filter(|(_, b)| backend_kind(b).first() == Some(&kind))
        .map(|(n, _)| n.as_str())
        .collect();
    match named {
        Some(name) => {
            if template::is_template(name) {
                cx.err(
                    &format!("{ptr}/backend"),
                    "a backend name cannot be a template",
                    "backend",
                );
                return None;
            }
            match spec.backends.get(name) {
                None => {
                    let help = did_you_mean(name, spec.backends.keys().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| {
                            format!(
                                "declare it under `backends:` as `{name}: {{ {kind}: {{...}} }}`"
                            )
                        });
                    cx.err(
                        &format!("{ptr}/backend"),
                        format!("undefined backend `{name}`"),
                        "undefined-backend",
                    )
                    .with_len_mut(name.chars().count())
                    .help = Some(help);
                    None
                }
                Some(b) => {
                    let actual = backend_kind(b).first().copied().unwrap_or("none");
                    if actual != kind {
                        let help = if of_kind.is_empty() {
                            format!("declare a `{kind}` backend and name it here")
                        } else {
                            format!(
                                "name a `{kind}` backend: {}",
                                of_kind
                                    .iter()
                                    .map(|k| format!("`{k}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        };
                        cx.err(&format!("{ptr}/backend"), format!("backend `{name}` is {} `{actual}` backend, but this is a `{kind}` action", if actual == "http" { "an" } else { "a" }), "backend-kind")
                            .with_len_mut(name.chars().count())
                            .help = Some(help);
                        None
                    } else {
                        Some(name.to_string())
                    }
                }
            }
        }
        None => {
            match of_kind.len() {
                0 if required => {
                    cx.key_err(
                        ptr,
                        format!(
                            "this `{kind}` action names no backend and the runbook declares none"
                        ),
                        "undefined-backend",
                    )
                    .help = Some("declare one under `backends:` and add `backend: <name>`".into());
                    None
                }
                0 => None,
                1 => Some(of_kind[0].to_string()),
                _ => {
                    cx.key_err(ptr, format!("this `{kind}` action names no backend, and the runbook has several: {}", of_kind.join(", ")), "ambiguous-backend")
                    .help = Some("add `backend: <name>`".into());
                    None
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_action(
    cx: &mut Ctx,
    spec: &RunbookSpec,
    scope: &Scope,
    ptr: &str,
    field: &str,
    body: &Value,
    step: &StepSpec,
    position: Option<usize>,
    path: &Path,
    stack: &mut Vec<PathBuf>,
) -> Option<Action> {
    let _ = step;
    // Template references in every string of the action, except shell scripts (never rendered).
    let mut strings = vec![];
    template::strings_in(body, ptr, &mut strings);
    for (p, s) in &strings {
        if field == "shell" && p == &format!("{ptr}/script") {
            if template::is_template(s) {
                let tag = ["{{", "{%", "{#"]
                    .into_iter()
                    .find(|t| s.contains(t))
                    .unwrap_or("{{");
                let (loc, _) = cx.loc_in_value(p, tag, None);
                cx.diags.push(Diagnostic::error(cx.file, loc, "a `script` is not a template: runbook values are never spliced into shell text").with_code("script-template").with_len(2));
                cx.diags.last_mut().expect("just pushed")
                    .help = Some("pass values as environment variables: `env: { NS: \"{{ inputs.namespace }}\" }` and use \"$NS\" in the script (inputs are also in $RUNBOOK_INPUT_<NAME>)".into());
            }
            continue;
        }
        check_template(cx, scope, p, s, Usage::Plain, position);
    }
    let backend_name = body.get("backend").and_then(Value::as_str);
    let kind = match field {
        "shell" => {
            let argv = body.get("argv");
            let script = body.get("script");
            match (argv, script) {
                (Some(_), Some(_)) | (None, None) => {
                    cx.key_err(
                        ptr,
                        "a shell action needs exactly one of `argv` or `script`",
                        "shell",
                    )
                    .help = Some(
                        "`argv: [git, log, -1]` runs without a shell; `script:` runs `sh -c`"
                            .into(),
                    );
                    return None;
                }
                (Some(a), None) if a.as_array().is_some_and(|a| a.is_empty()) => {
                    cx.err(&format!("{ptr}/argv"), "`argv` is empty", "shell")
                        .help = Some("give the program and its arguments".into());
                    return None;
                }
                _ => {}
            }
            if backend_name.is_some() {
                resolve_backend(cx, spec, ptr, "shell", backend_name, false)?;
            }
            ActionKind::Shell
        }
        "http" => {
            let req = body.get("request").cloned().unwrap_or(Value::Null);
            let has_url = req.get("url").is_some();
            let has_path = req.get("path").is_some();
            if has_url == has_path {
                cx.key_err(
                    &format!("{ptr}/request"),
                    "an HTTP request needs exactly one of `url` or `path`",
                    "http",
                )
                .help = Some(
                    "`url:` is absolute; `path:` is appended to the backend's `base_url`".into(),
                );
                return None;
            }
            if req.get("json").is_some() && req.get("body").is_some() {
                cx.key_err(
                    &format!("{ptr}/request/body"),
                    "`json` and `body` cannot both be set",
                    "http",
                );
                return None;
            }
            let b = resolve_backend(cx, spec, ptr, "http", backend_name, has_path);
            if has_path {
                let name = b.clone()?;
                let base = spec
                    .backends
                    .get(&name)
                    .and_then(|b| b.http.as_ref())
                    .and_then(|h| h.base_url.as_ref());
                if base.is_none() {
                    cx.key_err(
                        &format!("{ptr}/request/path"),
                        format!("backend `{name}` has no `base_url` for this `path`"),
                        "http",
                    )
                    .help = Some("add `base_url:` to the backend, or use `url:`".into());
                    return None;
                }
            }
            ActionKind::Http
        }
        "kubernetes" => {
            let verbs: Vec<&'static str> = spec::KUBE_VERBS
                .iter()
                .copied()
                .filter(|v| body.get(*v).is_some())
                .collect();
            if verbs.len() != 1 {
                cx.key_err(
                    ptr,
                    format!(
                        "a kubernetes action needs exactly one verb (found {})",
                        verbs.len()
                    ),
                    "kubernetes",
                )
                .help = Some(format!("one of: {}", spec::KUBE_VERBS.join(", ")));
                return None;
            }
            resolve_backend(cx, spec, ptr, "kubernetes", backend_name, false);
            let args = crate::backends::KubeCall::from_args(verbs[0], &body[verbs[0]]).err();
            if !literal_arg_error(cx, ptr, verbs[0], &body[verbs[0]], args, "kubernetes") {
                return None;
            }
            ActionKind::Kubernetes {
                verb: crate::backends::KubeVerb::parse(verbs[0])?,
            }
        }
        "compose" => {
            let verbs: Vec<&'static str> = spec::COMPOSE_VERBS
                .iter()
                .copied()
                .filter(|v| body.get(*v).is_some())
                .collect();
            if verbs.len() != 1 {
                cx.key_err(
                    ptr,
                    format!(
                        "a compose action needs exactly one verb (found {})",
                        verbs.len()
                    ),
                    "compose",
                )
                .help = Some(format!("one of: {}", spec::COMPOSE_VERBS.join(", ")));
                return None;
            }
            resolve_backend(cx, spec, ptr, "compose", backend_name, false);
            let args = crate::backends::ComposeCall::from_args(verbs[0], &body[verbs[0]]).err();
            if !literal_arg_error(cx, ptr, verbs[0], &body[verbs[0]], args, "compose") {
                return None;
            }
            ActionKind::Compose {
                verb: crate::backends::ComposeVerb::parse(verbs[0])?,
            }
        }
        "prometheus" => {
            resolve_backend(cx, spec, ptr, "prometheus", backend_name, false);
            if let Some(r) = body.get("range") {
                if let Some(l) = r.get("last").and_then(Value::as_str) {
                    if !template::is_template(l) {
                        cx.duration(&format!("{ptr}/range/last"), l)?;
                    }
                }
                if let Some(st) = r.get("step").and_then(Value::as_str) {
                    if !template::is_template(st) {
                        cx.duration(&format!("{ptr}/range/step"), st)?;
                    }
                }
            }
            ActionKind::Prometheus
        }
        "analysis" => {
            resolve_backend(cx, spec, ptr, "prometheus", backend_name, false);
            let a: spec::AnalysisAction = serde_json::from_value(body.clone()).ok()?;
            let interval = cx.duration(&format!("{ptr}/interval"), &a.interval)?;
            if a.failed_checks == 0 || a.checks == 0 {
                cx.key_err(
                    ptr,
                    "`checks` and `failed_checks` must be at least 1",
                    "analysis",
                );
                return None;
            }
            if a.metrics.is_empty() {
                cx.key_err(ptr, "an analysis needs at least one metric", "analysis")
                    .help =
                    Some("`metrics: [ { name: success-rate, query: \"...\", min: 99 } ]`".into());
                return None;
            }
            let mut names = HashSet::new();
            for (i, m) in a.metrics.iter().enumerate() {
                if m.min.is_none() && m.max.is_none() {
                    cx.key_err(
                        &format!("{ptr}/metrics/{i}"),
                        format!("metric `{}` has neither `min` nor `max`", m.name),
                        "analysis",
                    )
                    .help = Some(
                        "a metric without bounds can never fail a check: add `min:` or `max:`"
                            .into(),
                    );
                }
                if !names.insert(m.name.clone()) {
                    cx.key_err(
                        &format!("{ptr}/metrics/{i}"),
                        format!("two metrics are named `{}`", m.name),
                        "analysis",
                    );
                }
            }
            ActionKind::Analysis { interval }
        }
        "confirm" => ActionKind::Confirm,
        "manual" => ActionKind::Manual,
        "input" => {
            if let Ok(ia) = serde_json::from_value::<spec::InputAction>(body.clone()) {
                let as_input = crate::inputs::input_action_spec(&ia);
                if let Some(d) = &ia.default {
                    if let Err(e) = crate::inputs::validate_value("value", &as_input, d) {
                        cx.err(
                            &format!("{ptr}/default"),
                            format!("default does not fit: {e}"),
                            "input-default",
                        )
                        .help = Some(
                            "change the default, or the `type`, `enum`, bounds or `pattern`".into(),
                        );
                    }
                }
            }
            ActionKind::Input
        }
        "wait" => {
            let s = body.as_str().unwrap_or_default();
            if template::is_template(s) {
                // e.g. `wait: "{{ inputs.settle }}"`: its names were checked above; the value
                // is parsed when the step runs.
                ActionKind::Wait(None)
            } else {
                ActionKind::Wait(Some(cx.duration(ptr, s)?))
            }
        }
        "assert" => {
            if let Some(items) = body.as_array() {
                for (i, c) in items.iter().enumerate() {
                    if let Some(that) = c.get("that").and_then(Value::as_str) {
                        check_expr(
                            cx,
                            scope,
                            &format!("{ptr}/{i}/that"),
                            that,
                            Usage::Plain,
                            position,
                        );
                    }
                }
            }
            ActionKind::Assert
        }
        "call" => {
            let call: spec::CallAction = serde_json::from_value(body.clone()).ok()?;
            let target = path.parent().unwrap_or(Path::new(".")).join(&call.runbook);
            let canon = canonical(&target);
            if stack.len() >= MAX_CALL_DEPTH {
                cx.err(
                    &format!("{ptr}/runbook"),
                    format!(
                        "calls are nested more than {MAX_CALL_DEPTH} runbooks deep here \
                         (through {})",
                        stack
                            .iter()
                            .map(|p| p.file_name().unwrap_or_default().to_string_lossy())
                            .collect::<Vec<_>>()
                            .join(" → ")
                    ),
                    "call-depth",
                )
                .help = Some(format!(
                    "a runbook may call runbooks that call others, at most {MAX_CALL_DEPTH} \
                     levels deep; flatten the chain"
                ));
                return None;
            }
            if stack.contains(&canon) {
                cx.err(
                    &format!("{ptr}/runbook"),
                    format!(
                        "`{}` calls itself (directly or through another runbook)",
                        call.runbook
                    ),
                    "call-cycle",
                );
                return None;
            }
            let bytes = match read_limited(&target) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    let size = std::fs::metadata(&target).ok().map(|m| m.len());
                    cx.diags
                        .push(yaml::too_large(&target.display().to_string(), size));
                    return None;
                }
                Err(e) => {
                    let (msg, help) = if e.kind() == std::io::ErrorKind::NotFound {
                        let dir = target.parent().unwrap_or(Path::new("."));
                        let here: Vec<String> = crate::files::yaml_files(dir)
                            .iter()
                            .filter(|p| p.parent() == Some(dir))
                            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                            .collect();
                        let wanted = Path::new(&call.runbook)
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        let help = match did_you_mean(&wanted, here.iter().map(String::as_str)) {
                            Some(s) => format!("did you mean `{s}`? the path is relative to this runbook's directory"),
                            None => "the path is relative to this runbook's directory".to_string(),
                        };
                        (
                            format!(
                                "the called runbook `{}` does not exist (looked for {})",
                                call.runbook,
                                target.display()
                            ),
                            help,
                        )
                    } else {
                        (
                            format!("cannot read the called runbook {}: {e}", target.display()),
                            "check the file's permissions".to_string(),
                        )
                    };
                    cx.err(&format!("{ptr}/runbook"), msg, "call")
                        .with_len_mut(call.runbook.chars().count())
                        .help = Some(help);
                    return None;
                }
            };
            let child_file = target.display().to_string();
            let child_doc = match yaml::parse(&child_file, &bytes) {
                Ok(d) => d,
                Err(d) => {
                    cx.diags.push(*d);
                    return None;
                }
            };
            cx.diags.extend(control_characters(
                &child_file,
                &String::from_utf8_lossy(&bytes),
                &child_doc,
            ));
            let child_text = String::from_utf8_lossy(&bytes).to_string();
            stack.push(canon);
            let (child, diags) =
                check_runbook_doc(&child_file, &target, &child_text, &bytes, &child_doc, stack);
            stack.pop();
            cx.diags.extend(diags);
            let child = child?;
            for name in call.inputs.keys() {
                if !child.spec.inputs.contains_key(name) {
                    let help = did_you_mean(name, child.spec.inputs.keys().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| {
                            format!(
                                "`{}` takes: {}",
                                call.runbook,
                                child
                                    .spec
                                    .inputs
                                    .keys()
                                    .cloned()
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        });
                    cx.key_err(
                        &format!("{ptr}/inputs/{}", yaml::pointer_segment(name)),
                        format!("`{}` has no input `{name}`", call.runbook),
                        "call-input",
                    )
                    .help = Some(help);
                }
            }
            for (name, input) in &child.spec.inputs {
                if input.default.is_none() && !call.inputs.contains_key(name) {
                    cx.key_err(
                        &format!("{ptr}/inputs"),
                        format!("`{}` requires input `{name}`", call.runbook),
                        "call-input",
                    )
                    .help = Some(format!(
                        "add `{name}: <value>` under `inputs:`; it has no default"
                    ));
                }
            }
            ActionKind::Call(Arc::new(child))
        }
        _ => unreachable!("action fields come from ACTION_KINDS"),
    };
    let backend = match &kind {
        ActionKind::Kubernetes { .. }
        | ActionKind::Compose { .. }
        | ActionKind::Http
        | ActionKind::Prometheus
        | ActionKind::Analysis { .. }
        | ActionKind::Shell => {
            let k = match kind.field() {
                "analysis" => "prometheus",
                other => other,
            };
            backend_name.map(str::to_string).or_else(|| {
                let of_kind: Vec<&String> = spec
                    .backends
                    .iter()
                    .filter(|(_, b)| backend_kind(b).first() == Some(&k))
                    .map(|(n, _)| n)
                    .collect();
                (of_kind.len() == 1 && k != "shell").then(|| of_kind[0].clone())
            })
        }
        _ => None,
    };
    Some(Action {
        kind,
        backend,
        body: body.clone(),
    })
}

/// Names of all inputs, for tests and plan output.
pub fn input_names(rb: &Runbook) -> HashSet<String> {
    rb.spec.inputs.keys().cloned().collect()
}

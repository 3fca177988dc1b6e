//! The engine's shape (issue 13, docs/architecture.md): no source file longer than 800 lines;
//! no module but `main.rs` names `cli` (the command line only parses arguments and prints); no
//! import cycle among `check`, `drill`, `report`, `exec`, `session` and `cli`; errors printed
//! once, by `main`, with their codes from one table. The graph is the one
//! `scripts/module-graph` prints: module A depends on B when a file of A names `crate::B`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a file of engine/src may be.
const MAX_LINES: usize = 800;

/// The layers that may not depend on one another in a circle.
const ACYCLIC: &[&str] = &["check", "drill", "report", "exec", "session", "cli"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("engine/src is readable") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// (path relative to engine/src, text) of every source file.
fn sources() -> Vec<(String, String)> {
    let mut files = vec![];
    rust_files(&src(), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(src())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (
                rel,
                std::fs::read_to_string(&p).expect("a source file is UTF-8"),
            )
        })
        .collect()
}

/// The top-level module a file belongs to: `exec/runner/step.rs` → `exec`, `cli/mod.rs` → `cli`.
fn top_module(rel: &str) -> String {
    let first = rel.split('/').next().unwrap_or(rel);
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

/// The top-level modules a text names as `crate::<name>`.
fn named_modules(text: &str) -> BTreeSet<String> {
    text.match_indices("crate::")
        .map(|(i, m)| {
            text[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// Module → the modules it names (only modules that exist: `crate::schema_text` is a function).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    let modules: BTreeSet<String> = files.iter().map(|(rel, _)| top_module(rel)).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in &files {
        let from = top_module(rel);
        let to = g.entry(from.clone()).or_default();
        for n in named_modules(text) {
            if n != from && modules.contains(&n) {
                to.insert(n);
            }
        }
    }
    g
}

/// A path from `from` to `to` in `g`, if there is one.
fn path(g: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![vec![from.to_string()]];
    while let Some(p) = stack.pop() {
        let last = p.last().unwrap().clone();
        for next in g.get(&last).into_iter().flatten() {
            let mut q = p.clone();
            q.push(next.clone());
            if next == to {
                return Some(q);
            }
            if seen.insert(next.clone()) {
                stack.push(q);
            }
        }
    }
    None
}

#[test]
fn no_source_file_is_longer_than_800_lines() {
    let mut long = vec![];
    for (rel, text) in sources() {
        let lines = text.lines().count();
        if lines > MAX_LINES {
            long.push(format!(
                "engine/src/{rel}: {lines} lines (at most {MAX_LINES})"
            ));
        }
    }
    assert!(
        long.is_empty(),
        "split these files by concern (docs/architecture.md):\n{}",
        long.join("\n")
    );
}

#[test]
fn no_module_imports_the_command_line() {
    let offenders: Vec<String> = sources()
        .into_iter()
        .filter(|(rel, _)| rel != "main.rs" && top_module(rel) != "cli")
        .filter(|(_, text)| named_modules(text).contains("cli"))
        .map(|(rel, _)| format!("engine/src/{rel}"))
        .collect();
    assert!(
        offenders.is_empty(),
        "these files name `crate::cli`; what they use belongs in a library module \
         (session, load, term...):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_layers_form_no_cycle() {
    let g = graph();
    let mut cycles = vec![];
    for (i, a) in ACYCLIC.iter().enumerate() {
        for b in &ACYCLIC[i + 1..] {
            if let (Some(there), Some(back)) = (path(&g, a, b), path(&g, b, a)) {
                cycles.push(format!(
                    "{} and back: {}",
                    there.join(" -> "),
                    back.join(" -> ")
                ));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles (see `scripts/module-graph`):\n{}",
        cycles.join("\n")
    );
}

/// The lines a run that started says as it ends, after its outcome: part of the run's view
/// (README, "Known limits"), not an error that ends a command.
const CLOSING_LINES: &[&str] = &[
    "the run stopped before changing anything else",
    "writing the report",
];

/// The string literals that `eprintln!(` / `eprint!(` start with, in a source text.
fn stderr_literals(text: &str) -> Vec<String> {
    let mut out = vec![];
    for mac in ["eprintln!(", "eprint!("] {
        for (i, m) in text.match_indices(mac) {
            let rest = text[i + m.len()..].trim_start();
            if let Some(lit) = rest.strip_prefix('"') {
                out.push(lit.chars().take_while(|c| *c != '"').collect());
            }
        }
    }
    out
}

/// One error story (issue 13 §3, docs/architecture.md "Invariants"): the library returns
/// typed errors and `main` prints them, once, through `cli::error::report`; no function
/// answers an error with a bare exit code, and the codes of errors (2, 5, 6) are chosen only
/// by the command line's one table.
#[test]
fn errors_are_printed_once_by_main_from_one_table() {
    let mut offenders = vec![];
    for (rel, text) in sources() {
        if rel == "cli/error.rs" {
            continue;
        }
        for lit in stderr_literals(&text) {
            if lit.starts_with("error") && !CLOSING_LINES.iter().any(|c| lit.contains(c)) {
                offenders.push(format!(
                    "engine/src/{rel} prints an error (`{lit}`): return it (a variant of the \
                     layer's error type) for main to print"
                ));
            }
        }
        for (i, _) in text.match_indices("Result<") {
            let mut depth = 0;
            let inner: String = text[i + "Result<".len()..]
                .chars()
                .take_while(|c| {
                    match c {
                        '<' => depth += 1,
                        '>' if depth == 0 => return false,
                        '>' => depth -= 1,
                        _ => {}
                    }
                    true
                })
                .collect();
            if inner.replace(char::is_whitespace, "").ends_with(",i32") {
                offenders.push(format!(
                    "engine/src/{rel}: `Result<{inner}>` answers an error with an exit code: \
                     return a typed error, and give it its code in cli/error.rs"
                ));
            }
        }
        let top = top_module(&rel);
        if top != "cli" && top != "exit" {
            for code in ["exit::INVALID", "exit::JOURNAL", "exit::RUNTIME"] {
                if text.contains(code) {
                    offenders.push(format!(
                        "engine/src/{rel} names {code}: the codes of errors are chosen in \
                         cli/error.rs (Error::exit_code)"
                    ));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

/// The graph the tests above read is the one `scripts/module-graph` prints.
#[test]
fn the_script_prints_the_same_graph() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/module-graph");
    let out = std::process::Command::new("sh")
        .arg(&script)
        .output()
        .expect("sh runs scripts/module-graph");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: BTreeSet<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (from, arrow, to) = (w.next()?, w.next()?, w.next()?);
            (arrow == "->").then(|| (from.to_string(), to.to_string()))
        })
        .collect();
    let computed: BTreeSet<(String, String)> = graph()
        .into_iter()
        .flat_map(|(from, to)| to.into_iter().map(move |t| (from.clone(), t)))
        .collect();
    assert_eq!(printed, computed);
}

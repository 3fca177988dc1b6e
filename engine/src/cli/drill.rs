//! `runbook drill [PATH...]`: finds drills, checks and runs each, prints one line per drill and
//! a summary, writes JUnit and per-drill journals and reports on request. Exit 0 only when
//! every drill passes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde_json::Value;

use crate::drill::expect::{ending, evaluate};
use crate::drill::junit::{self, Case};
use crate::drill::score::Score;
use crate::drill::{Drill, REPORT_NAME};
use crate::exit;
use crate::load::{self, Checked};
use crate::model::fmt_duration;
use crate::session;

#[derive(Args, Debug)]
pub struct DrillArgs {
    /// Drill files or directories (default: runbooks/). Directories are searched for
    /// `kind: Drill` files.
    pub paths: Vec<PathBuf>,
    /// Write a JUnit XML report of the drills to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Keep each drill's journal and PIR report in DIR/<run id>/.
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
}

/// Why `runbook drill` could not run its drills at all (a drill that cannot run is a row of
/// the table instead, `Verdict::Error`).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("{} does not exist", .0.display())]
    NoSuchPath(PathBuf),
    #[error("{} is not a drill (drills have `kind: Drill`; run runbooks with `runbook run`)", .0.display())]
    NotADrill(PathBuf),
    #[error("no drills found in {0} (drills are YAML files with `kind: Drill`)")]
    NoDrills(String),
    /// The drills ran, but their JUnit file cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Junit {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What happened to one drill file.
enum Verdict {
    Pass,
    Fail(Vec<crate::drill::expect::Unmet>),
    /// It could not run: invalid, or the run itself broke.
    Error(String),
}

struct Row {
    label: String,
    file: String,
    runbook: String,
    verdict: Verdict,
    virtual_time: Option<std::time::Duration>,
    score: Option<Score>,
    seconds: f64,
}

/// Is this YAML file a drill? (Unreadable files that say `kind: Drill` count, so their
/// problems are reported rather than skipped.)
fn is_drill(path: &Path) -> bool {
    // Bounded: the path may be `/dev/zero`. A file over the limit counts, so that the
    // checker reports it (file-too-large).
    let bytes = match crate::files::read_limited(path, crate::files::MAX_FILE_BYTES) {
        Ok(Some(b)) => b,
        Ok(None) => return true,
        Err(_) => return false,
    };
    match crate::yaml::parse(&path.display().to_string(), &bytes) {
        Ok(doc) => doc.value.get("kind").and_then(Value::as_str) == Some("Drill"),
        Err(_) => String::from_utf8_lossy(&bytes).contains("kind: Drill"),
    }
}

/// The drill files under the given paths, in order, each once.
fn find(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DrillError> {
    let mut out: Vec<PathBuf> = vec![];
    for p in paths {
        if !p.exists() {
            return Err(DrillError::NoSuchPath(p.clone()));
        }
        if p.is_file() {
            if !is_drill(p) {
                return Err(DrillError::NotADrill(p.clone()));
            }
            out.push(p.clone());
            continue;
        }
        out.extend(
            crate::files::yaml_files(p)
                .into_iter()
                .filter(|f| is_drill(f)),
        );
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
    Ok(out)
}

/// Runs the drills; `Ok` holds the exit code of their outcome (0 all passed, 1 one failed,
/// 2 one could not run).
pub async fn run(a: DrillArgs) -> Result<i32, DrillError> {
    let paths = if a.paths.is_empty() {
        vec![PathBuf::from("runbooks")]
    } else {
        a.paths.clone()
    };
    let files = find(&paths)?;
    if files.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(DrillError::NoDrills(shown.join(", ")));
    }
    let started = Instant::now();
    let color = crate::term::color();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut rows = vec![];
    for f in &files {
        let t0 = Instant::now();
        let report = load::check_path(f);
        let mut row = Row {
            label: f.display().to_string(),
            file: f.display().to_string(),
            runbook: String::new(),
            verdict: Verdict::Pass,
            virtual_time: None,
            score: None,
            seconds: 0.0,
        };
        let has_errors = report.has_errors();
        let drill = match &report.checked {
            Some(Checked::Drill(d)) if !has_errors => Some(d.clone()),
            _ => None,
        };
        let Some(drill) = drill else {
            report.print(color);
            let n = report.diagnostics.iter().filter(|d| d.is_error()).count();
            row.verdict = Verdict::Error(format!(
                "invalid drill: {n} error{} (shown above)",
                if n == 1 { "" } else { "s" }
            ));
            rows.push(row);
            continue;
        };
        row.label = drill.name.clone();
        row.runbook = drill.runbook.name().to_string();
        if let Some(other) = names.insert(drill.name.clone(), row.file.clone()) {
            row.verdict = Verdict::Error(format!(
                "the drill name `{}` is also used by {other}; give each drill its own name",
                drill.name
            ));
            rows.push(row);
            continue;
        }
        run_one(&drill, a.report_dir.as_deref(), &mut row).await;
        row.seconds = t0.elapsed().as_secs_f64();
        rows.push(row);
    }
    let seconds = started.elapsed().as_secs_f64();
    print_rows(&rows, seconds);
    if let Some(path) = &a.junit {
        let cases: Vec<Case> = rows.iter().map(case).collect();
        std::fs::write(path, junit::render(&cases, seconds)).map_err(|source| {
            DrillError::Junit {
                path: path.clone(),
                source,
            }
        })?;
        eprintln!("junit: {}", path.display());
    }
    let failed = rows.iter().any(|r| matches!(r.verdict, Verdict::Fail(_)));
    if failed && a.report_dir.is_none() {
        eprintln!("to see what each run did, rerun with --report-dir DIR: it keeps every drill's journal and report");
    }
    Ok(
        if rows.iter().any(|r| matches!(r.verdict, Verdict::Error(_))) {
            exit::INVALID
        } else if failed {
            exit::FAILED
        } else {
            exit::SUCCESS
        },
    )
}

async fn run_one(drill: &Drill, report_dir: Option<&Path>, row: &mut Row) {
    let run = match session::drill::run(drill, report_dir).await {
        Ok(r) => r,
        Err(e) => {
            row.verdict = Verdict::Error(format!("the drill could not run: {e}"));
            return;
        }
    };
    if let Some(j) = &run.journal {
        let out = j.with_file_name(REPORT_NAME);
        let redactor = crate::exec::redact::Redactor::new(drill.secrets.values().cloned());
        if let Err(e) = crate::report::write_for_journal_with(j, &out, &redactor) {
            eprintln!("warning: {}: no report written: {e}", drill.name);
        }
    }
    row.virtual_time = Some(ending(&run.events).duration);
    row.score = Some(Score::of(&run.events, drill.runbook.mttr_target));
    let unmet = evaluate(&drill.expect, &run);
    row.verdict = if unmet.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail(unmet)
    };
}

fn print_rows(rows: &[Row], seconds: f64) {
    let w = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0);
    let (mut pass, mut fail, mut error) = (0, 0, 0);
    let mut virtual_total = std::time::Duration::ZERO;
    for r in rows {
        let vt = r
            .virtual_time
            .map(fmt_duration)
            .unwrap_or_else(|| "-".into());
        virtual_total += r.virtual_time.unwrap_or_default();
        match &r.verdict {
            Verdict::Pass => {
                pass += 1;
                let score = r.score.as_ref().map(Score::summary).unwrap_or_default();
                println!("PASS   {:<w$}  {vt:>8}  {score}", r.label);
            }
            Verdict::Fail(unmet) => {
                fail += 1;
                println!("FAIL   {:<w$}  {vt:>8}  {}", r.label, unmet[0]);
                for u in &unmet[1..] {
                    println!("       {:<w$}            also {u}", "");
                }
            }
            Verdict::Error(e) => {
                error += 1;
                println!("ERROR  {:<w$}  {vt:>8}  {e}", r.label);
            }
        }
    }
    let mut parts = vec![format!("{pass} passed"), format!("{fail} failed")];
    if error > 0 {
        parts.push(format!("{error} could not run"));
    }
    println!(
        "{} drill{}: {} ({} of virtual time in {seconds:.2}s)",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        parts.join(", "),
        fmt_duration(virtual_total)
    );
}

fn case(r: &Row) -> Case {
    let mut output = String::new();
    if let Some(vt) = r.virtual_time {
        output.push_str(&format!("virtual duration: {}\n", fmt_duration(vt)));
    }
    if let Some(s) = &r.score {
        output.push_str(&format!("score: {}\n", s.summary()));
    }
    let (failure, error) = match &r.verdict {
        Verdict::Pass => (None, None),
        Verdict::Fail(unmet) => {
            let details: Vec<String> = unmet.iter().map(ToString::to_string).collect();
            (Some((unmet[0].to_string(), details.join("\n"))), None)
        }
        Verdict::Error(e) => (None, Some((e.clone(), r.file.clone()))),
    };
    Case {
        name: r.label.clone(),
        classname: if r.runbook.is_empty() {
            "drills".into()
        } else {
            r.runbook.clone()
        },
        file: r.file.clone(),
        seconds: r.seconds,
        failure,
        error,
        output,
    }
}

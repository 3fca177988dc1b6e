//! The command line: `check`, `plan`, `list`, `schema`, `run`, `resume`, `report`, `drill`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::backends::{kubernetes::Overrides, Backends, Progress};
use crate::check::{self, Checked};
use crate::diag::Diagnostic;
use crate::exec::clock::{Clock, SystemClock};
use crate::exec::emitter::Emitter;
use crate::exec::events::{AnswerVia, RunMode, RunOutcome};
use crate::exec::gate::{self, GateKind, Gatekeeper, Prompter};
use crate::exec::journal::{self, Journal};
use crate::exec::lock;
use crate::exec::redact::Redactor;
use crate::exec::resume::ResumeState;
use crate::exec::runner::{declared_env, load_secrets, RunConfig, RunResult, Runner};
use crate::exit;
use crate::inputs::{self, Supplied};
use crate::model::{ActionKind, Runbook};
use crate::spec::Severity;
use crate::view::{Style, TerminalView};

#[derive(Parser, Debug)]
#[command(
    name = "runbook",
    version,
    about = "A declarative runbook engine: guided runs, CI drills and PIR reports"
)]
pub struct Cli {
    /// More logs on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log format for -v logs.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check runbooks and drills: every problem, with file, line and column.
    Check(CheckArgs),
    /// Show what a run would do, rendered with the inputs. No side effects.
    Plan(PlanArgs),
    /// List runbooks: name, title, severity, MTTR target, highest safety class.
    List(ListArgs),
    /// Print the JSON Schema of runbook or drill files.
    Schema {
        #[arg(value_enum, default_value = "runbook")]
        kind: SchemaKind,
    },
    /// Run a runbook (guided at a terminal; fail-closed in CI).
    Run(Box<RunArgs>),
    /// Continue a run that stopped (crash, Ctrl-C, or a gate without an answer).
    Resume(Box<ResumeArgs>),
    /// Write the post-incident review report of a run from its journal.
    Report(crate::report::cli::ReportArgs),
    /// Run tabletop drills against simulated worlds.
    Drill(crate::drill::cli::DrillArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SchemaKind {
    Runbook,
    Drill,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Files or directories (default: runbooks/).
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutFormat,
    /// Fail on warnings too.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct InputArgs {
    /// An input value, NAME=VALUE (repeatable).
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    pub input: Vec<String>,
    /// A YAML or JSON file of input values.
    #[arg(long = "inputs", value_name = "FILE")]
    pub inputs: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    pub runbook: PathBuf,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutFormat,
    /// Read the live cluster to show the exact change (Kubernetes steps).
    #[arg(long)]
    pub live: bool,
    #[arg(long)]
    pub context: Option<String>,
    #[arg(long)]
    pub namespace: Option<String>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Directory (default: runbooks/).
    pub dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutFormat,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    pub runbook: PathBuf,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub common: CommonRunArgs,
    /// Run against a drill's simulated world (training mode): no cluster, Docker or network.
    #[arg(long, value_name = "DRILL")]
    pub world: Option<PathBuf>,
    /// With --world: virtual time (waits take no time).
    #[arg(long)]
    pub fast: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CommonRunArgs {
    /// Who runs it (default: $RUNBOOK_OPERATOR, else the login name).
    #[arg(long)]
    pub operator: Option<String>,
    /// Why: the incident, alert or ticket. Required for P1/P2 runbooks in non-interactive runs.
    #[arg(long)]
    pub reason: Option<String>,
    /// Answer confirmations of steps up to `reversible` with yes.
    #[arg(long)]
    pub yes: bool,
    /// Answer a gate ahead: ID=yes|no|skip|abort, ID=done|skipped|failed[:note], ID=<value>.
    #[arg(long = "answer", value_name = "ID=VALUE")]
    pub answer: Vec<String>,
    /// Never prompt; stop with exit 4 at a gate without an answer.
    #[arg(long)]
    pub non_interactive: bool,
    /// Where journals go.
    #[arg(long, default_value = ".runbook/runs")]
    pub journal_dir: PathBuf,
    /// Write the report here at the end (.md, .json or .html).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Kubernetes context for every kubernetes backend.
    #[arg(long)]
    pub context: Option<String>,
    /// Kubernetes namespace for every kubernetes backend.
    #[arg(long)]
    pub namespace: Option<String>,
}

#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// A run id (under --journal-dir) or a journal path.
    pub run: String,
    #[command(flatten)]
    pub common: CommonRunArgs,
    /// Resume even though the runbook file changed since the run started (journaled).
    #[arg(long)]
    pub force: bool,
    /// A training run: the drill whose simulated world it ran against (rebuilt from the
    /// journal's recorded effects).
    #[arg(long, value_name = "DRILL")]
    pub world: Option<PathBuf>,
}

/// Prints diagnostics for one checked file; returns (errors, warnings).
pub fn print_report(r: &check::Report, color: bool) -> (usize, usize) {
    let mut errors = 0;
    let mut warnings = 0;
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    for d in &r.diagnostics {
        if d.is_error() {
            errors += 1;
        } else {
            warnings += 1;
        }
        let _ = write!(err, "{}", d.render(r.source.as_deref(), color));
    }
    (errors, warnings)
}

/// Colour on stderr: only at a terminal, and never with `NO_COLOR` set (any value).
pub fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub use crate::files::yaml_files;

pub fn cmd_check(a: CheckArgs) -> i32 {
    let paths = if a.paths.is_empty() {
        vec![PathBuf::from("runbooks")]
    } else {
        a.paths
    };
    for p in &paths {
        if !p.exists() {
            eprintln!("error: {} does not exist", p.display());
            return exit::INVALID;
        }
    }
    let files = crate::files::yaml_files_of(&paths);
    let mut all: Vec<Diagnostic> = vec![];
    let (mut errors, mut warnings) = (0, 0);
    let color = color();
    for f in &files {
        let r = check::check_path(f);
        if a.format == OutFormat::Text {
            let (e, w) = print_report(&r, color);
            errors += e;
            warnings += w;
        } else {
            errors += r.diagnostics.iter().filter(|d| d.is_error()).count();
            warnings += r.diagnostics.iter().filter(|d| !d.is_error()).count();
        }
        all.extend(r.diagnostics);
    }
    if a.format == OutFormat::Json {
        let out = json!({
            "files": files.len(),
            "errors": errors,
            "warnings": warnings,
            "diagnostics": all,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        eprintln!(
            "checked {} file{}: {errors} error{}, {warnings} warning{}{}",
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" },
            if a.strict && warnings > 0 {
                " (--strict: warnings fail the check)"
            } else {
                ""
            }
        );
    }
    if errors > 0 || (a.strict && warnings > 0) {
        exit::INVALID
    } else {
        exit::SUCCESS
    }
}

/// Loads a runbook for plan/run, printing diagnostics (errors, and warnings when `show_warnings`).
pub fn load_or_report(path: &Path, show_warnings: bool) -> Result<Runbook, i32> {
    match check::load_runbook(path) {
        Ok((rb, warnings)) => {
            if show_warnings && !warnings.is_empty() {
                let src = std::fs::read_to_string(path).ok();
                // Rendered diagnostics carry miette's colours and sanitise their own text.
                let mut err = std::io::stderr().lock();
                for w in warnings {
                    let _ = write!(err, "{}", w.render(src.as_deref(), color()));
                }
            }
            Ok(rb)
        }
        Err(r) => {
            print_report(&r, color());
            eprintln!("error: {} has errors; nothing was run", path.display());
            Err(exit::INVALID)
        }
    }
}

pub fn resolve_inputs(
    rb: &Runbook,
    a: &InputArgs,
) -> Result<indexmap::IndexMap<String, Value>, i32> {
    let mut sup = Supplied::default();
    if let Some(f) = &a.inputs {
        sup = match sup.with_file(f) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return Err(exit::INVALID);
            }
        };
    }
    let sup = match sup.with_args(&a.input) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(exit::INVALID);
        }
    };
    inputs::resolve(&rb.spec.inputs, &sup).map_err(|errs| {
        for e in errs {
            eprintln!("error: {e}");
        }
        exit::INVALID
    })
}

pub async fn cmd_plan(a: PlanArgs) -> i32 {
    let rb = match load_or_report(&a.runbook, true) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let inputs = match resolve_inputs(&rb, &a.inputs) {
        Ok(i) => i,
        Err(c) => return c,
    };
    let mut p = crate::plan::plan(&rb, &inputs);
    if a.live {
        let backends = Backends::real(Overrides {
            context: a.context.clone(),
            namespace: a.namespace.clone(),
        });
        let ctx = crate::plan::plan_context(&rb, &inputs).display(None);
        for (planned, step) in p.steps.iter_mut().zip(&rb.steps) {
            if let ActionKind::Kubernetes { verb } = &step.action.kind {
                if !planned.runtime_values.is_empty() {
                    continue;
                }
                let mut target = step
                    .action
                    .backend
                    .as_ref()
                    .and_then(|b| rb.spec.backends.get(b))
                    .and_then(|b| crate::exec::actions::render_backend(b, &ctx).ok())
                    .and_then(|b| b.kubernetes)
                    .unwrap_or_default();
                // Relative paths resolve against the runbook's directory, as in a run.
                let mut args = planned.rendered[verb.as_str()].clone();
                let absolute = |p: &str| {
                    let p = crate::backends::expand_home(p);
                    rb.dir().join(p).display().to_string()
                };
                if let Some(k) = target.kubeconfig.as_mut() {
                    *k = absolute(k);
                }
                if let Some(Value::String(f)) = args.get_mut("file") {
                    *f = absolute(f);
                }
                planned.live = crate::backends::preview_kube(
                    &*backends.kubernetes,
                    &target,
                    verb.as_str(),
                    &args,
                )
                .await;
            }
        }
    }
    match a.format {
        OutFormat::Json => println!("{}", serde_json::to_string_pretty(&p).expect("json")),
        OutFormat::Text => print!("{}", crate::plan::render_text(&p)),
    }
    exit::SUCCESS
}

pub fn cmd_list(a: ListArgs) -> i32 {
    let dir = a.dir.unwrap_or_else(|| PathBuf::from("runbooks"));
    if !dir.exists() {
        eprintln!("error: {} does not exist", dir.display());
        return exit::INVALID;
    }
    let mut rows = vec![];
    let mut bad = 0;
    for f in yaml_files(&dir) {
        let r = check::check_path(&f);
        match r.checked {
            Some(Checked::Runbook(rb)) => rows.push(json!({
                "name": rb.name(),
                "title": rb.spec.metadata.title,
                "severity": rb.spec.metadata.severity.map(|s| format!("{s:?}")),
                "mttr_target": rb.spec.metadata.mttr_target,
                "max_safety": rb.max_safety().as_str(),
                "steps": rb.steps.len(),
                "path": f.display().to_string(),
            })),
            Some(Checked::Drill(_)) => {}
            None => {
                if r.source
                    .as_deref()
                    .is_some_and(|s| s.contains("kind: Drill"))
                {
                    continue;
                }
                bad += 1;
                eprintln!(
                    "warning: {} has errors (run `runbook check {}`)",
                    f.display(),
                    f.display()
                );
            }
        }
    }
    rows.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    if a.format == OutFormat::Json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
    } else {
        let w = rows
            .iter()
            .map(|r| r["name"].as_str().unwrap_or("").len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "{:<w$}  {:<8}  {:<6}  {:<11}  title",
            "name", "severity", "mttr", "max safety"
        );
        for r in &rows {
            println!(
                "{:<w$}  {:<8}  {:<6}  {:<11}  {}",
                r["name"].as_str().unwrap_or(""),
                r["severity"].as_str().unwrap_or("-"),
                r["mttr_target"].as_str().unwrap_or("-"),
                r["max_safety"].as_str().unwrap_or(""),
                r["title"].as_str().unwrap_or("")
            );
        }
    }
    if bad > 0 {
        exit::INVALID
    } else {
        exit::SUCCESS
    }
}

/// The login name: $RUNBOOK_OPERATOR, $USER, $LOGNAME, else "unknown".
pub fn default_operator() -> String {
    known_operator().unwrap_or_else(|| "unknown".to_string())
}

/// $RUNBOOK_OPERATOR, $USER or $LOGNAME, when one is set and not blank.
fn known_operator() -> Option<String> {
    ["RUNBOOK_OPERATOR", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .map(|v| v.trim().to_string())
}

/// Why a run of this runbook must say who runs it, if it must: a P1/P2 runbook, or one with
/// a terminal step (its answer is journaled with a name, and sent to APIs as `run.operator`).
pub fn needs_identity(rb: &Runbook) -> Option<String> {
    if let Some(sev @ (Severity::P1 | Severity::P2)) = rb.spec.metadata.severity {
        return Some(format!("`{}` is a {sev:?} runbook", rb.name()));
    }
    (rb.max_safety() == crate::spec::Safety::Terminal)
        .then(|| format!("`{}` has a terminal step", rb.name()))
}

/// Who runs: `--operator`, else $RUNBOOK_OPERATOR / $USER / $LOGNAME. A run that needs an
/// identity (see `needs_identity`) asks for it at a terminal and, without one, refuses in CI
/// naming the flag; any other run is journaled as "unknown".
pub fn operator_for(rb: &Runbook, given: Option<String>, interactive: bool) -> Result<String, i32> {
    if let Some(g) = given
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
    {
        return Ok(g);
    }
    if let Some(k) = known_operator() {
        return Ok(k);
    }
    let Some(why) = needs_identity(rb) else {
        return Ok("unknown".into());
    };
    if interactive {
        let theme = dialoguer::theme::ColorfulTheme::default();
        // The prompt itself stays short (one line); the why is printed above it, wrapped.
        eprintln!(
            "{}",
            crate::view::fit(&format!(
                "{why}: the journal and the report name who runs it (your name, as they should show it)"
            ))
        );
        let name: String = dialoguer::Input::with_theme(&theme)
            .with_prompt("Who is running it?")
            .validate_with(|s: &String| {
                if s.trim().is_empty() {
                    Err("a name is needed")
                } else {
                    Ok(())
                }
            })
            .interact_text()
            .map_err(|_| exit::ABORTED)?;
        return Ok(name.trim().to_string());
    }
    eprintln!(
        "error: {why}: a run needs to know who runs it, and $USER, $LOGNAME and $RUNBOOK_OPERATOR are empty; pass --operator <name> (or set RUNBOOK_OPERATOR)"
    );
    Err(exit::INVALID)
}

/// This process as the holder of a run's lock.
fn lock_holder(command: &str) -> lock::Holder {
    lock::Holder {
        pid: std::process::id(),
        host: hostname(),
        since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        command: command.into(),
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Interactive when stdin and stderr are terminals, `--non-interactive` is absent and CI unset.
pub fn is_interactive(non_interactive: bool) -> bool {
    !non_interactive
        && std::env::var_os("CI").is_none()
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
}

/// A new run id: UTC time, runbook name, and a short random suffix.
pub fn new_run_id(name: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let salt = (nanos ^ (std::process::id().wrapping_mul(2_654_435_761))) & 0xffff;
    format!("{}-{name}-{salt:04x}", now.format("%Y%m%dT%H%M%SZ"))
}

/// Creates the journal of a new run under a fresh id. Runs started in the same second can draw
/// the same id (16 random bits); the loser of that race draws again instead of failing.
pub fn create_journal(
    dir: &Path,
    mut new_id: impl FnMut() -> String,
) -> std::io::Result<(String, Journal)> {
    let mut tries = 0;
    loop {
        let id = new_id();
        match Journal::create(dir, &id) {
            Ok(j) => return Ok((id, j)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 20 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Every gate id of a runbook (including called runbooks' and manual undos), with its kind.
pub fn gate_ids(rb: &Runbook, prefix: &str, out: &mut Vec<(String, GateKind)>) {
    for s in rb.steps.iter().chain(&rb.on_failure) {
        let id = format!("{prefix}{}", s.id);
        let kind = match &s.action.kind {
            ActionKind::Confirm => Some(GateKind::Confirm),
            ActionKind::Manual => Some(GateKind::Manual),
            ActionKind::Input => {
                serde_json::from_value::<crate::spec::InputAction>(s.action.body.clone())
                    .ok()
                    .map(|ia| GateKind::Input(Box::new(inputs::input_action_spec(&ia))))
            }
            ActionKind::Call(child) => {
                gate_ids(child, &format!("{id}/"), out);
                None
            }
            _ => None,
        };
        // Any step may be a terminal or a resume gate.
        out.push((id.clone(), kind.unwrap_or(GateKind::Resume)));
        // A resume asks about a step's process group that outlived an interruption.
        out.push((format!("{id}.process"), GateKind::Process));
        if let Some(u) = &s.undo {
            if matches!(u.action.kind, ActionKind::Manual) {
                out.push((format!("{id}.undo"), GateKind::Manual));
            } else {
                // A terminal undo's gate, or the resume gate of an undo that did not finish.
                out.push((format!("{id}.undo"), GateKind::Resume));
                out.push((format!("{id}.undo.process"), GateKind::Process));
            }
        }
    }
}

/// Parses and checks `--answer ID=VALUE` flags against the runbook's gates.
pub fn parse_answers(rb: &Runbook, raw: &[String]) -> Result<HashMap<String, String>, Vec<String>> {
    let mut ids = vec![];
    gate_ids(rb, "", &mut ids);
    let mut out = HashMap::new();
    let mut errors = vec![];
    for a in raw {
        let Some((id, value)) = a.split_once('=') else {
            errors.push(format!("`--answer {a}` is not of the form ID=VALUE"));
            continue;
        };
        let id = id.trim();
        match ids.iter().find(|(i, _)| i == id) {
            None => {
                let hint = crate::diag::did_you_mean(id, ids.iter().map(|(i, _)| i.as_str()))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                errors.push(format!(
                    "`--answer {a}`: the runbook has no step `{id}`{hint}"
                ));
            }
            Some((_, kind)) => {
                if let Err(e) = gate::parse_answer(kind, value) {
                    errors.push(format!("`--answer {a}`: {e}"));
                } else {
                    out.insert(id.to_string(), value.to_string());
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The cancellation of this process's run, with Ctrl-C, SIGTERM and SIGHUP (a dropped ssh
/// session) handling installed on first use: the first signal cancels the run (it ends as
/// `aborted`, 130, resumable); the second SIGKILLs the running steps' process groups at once
/// (children that ignore SIGTERM too) and lets the run record its end; a third exits at once.
pub fn run_cancel() -> CancellationToken {
    static TOKEN: std::sync::OnceLock<CancellationToken> = std::sync::OnceLock::new();
    TOKEN
        .get_or_init(|| {
            let cancel = CancellationToken::new();
            install_signals(cancel.clone());
            cancel
        })
        .clone()
}

/// Installs the handling described at [`run_cancel`] (use that: it installs it once).
pub fn install_signals(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
                _ = hup.recv() => {},
            }
            count += 1;
            match count {
                1 => {
                    eprintln!("\ninterrupting: stopping the running step (press Ctrl-C again to exit at once)");
                    cancel.cancel();
                }
                2 => {
                    eprintln!("\nexiting now: killing the running step's process group; the journal is intact and the run can be resumed");
                    cancel.cancel();
                    crate::backends::shell::kill_running_groups();
                    // The run records its end as soon as the killed step returns; if something
                    // else holds it up, do not wait for it.
                    std::thread::spawn(|| {
                        std::thread::sleep(std::time::Duration::from_secs(2));
                        std::process::exit(exit::INTERRUPTED);
                    });
                }
                _ => std::process::exit(exit::INTERRUPTED),
            }
        }
    });
}

/// Everything needed to execute a prepared run.
pub struct Prepared {
    pub rb: Arc<Runbook>,
    pub cfg: RunConfig,
    pub journal: Journal,
    pub run_id: String,
    pub backends: Backends,
    pub clock: Arc<dyn Clock>,
    pub answers: HashMap<String, String>,
    pub answers_via: AnswerVia,
    pub yes: bool,
    pub interactive: bool,
    pub style: Style,
    pub report: Option<PathBuf>,
    /// Added to the `runbook resume` command printed at the end (a training run's `--world`).
    pub resume_with: String,
}

/// Executes a prepared run with the terminal view, then prints how to continue.
pub async fn execute(p: Prepared) -> i32 {
    let mut redactor = Redactor::new(p.cfg.secrets.values().cloned());
    for (k, v) in &p.cfg.env {
        if k.to_ascii_uppercase().contains("TOKEN") || k.to_ascii_uppercase().contains("SECRET") {
            redactor.add(v.as_str().unwrap_or_default());
        }
    }
    let view = TerminalView::new(p.style, redactor.clone(), &p.rb);
    if p.cfg.resume.is_some() {
        // The summary and the final line cover the whole run, not only this session.
        if let Ok(read) = journal::read(p.journal.path()) {
            view.replay(&read.events);
        }
    }
    let prompter: Option<Box<dyn Prompter>> = if p.interactive {
        Some(Box::new(crate::prompt::TerminalPrompter::new(view.clone())))
    } else {
        None
    };
    let gate = Gatekeeper::new(p.answers, p.answers_via, p.yes, prompter);
    let journal_path = p.journal.path().to_path_buf();
    let run_dir = p.journal.run_dir().to_path_buf();
    let first_seq = p.cfg.resume.as_ref().map_or(0, |r| r.last_seq);
    let mut emitter = Emitter::new(
        Some(p.journal),
        redactor,
        p.clock.clone(),
        p.run_id.clone(),
        first_seq,
    );
    emitter.add_sink(Box::new(view.clone()));
    let cancel = run_cancel();
    let progress: Arc<dyn Progress> = Arc::new(view.clone());
    let mut runner = Runner::new(
        p.backends, p.clock, gate, emitter, progress, cancel, run_dir,
    );
    let res: RunResult = runner.run(p.rb.clone(), p.cfg).await;
    if let Some(why) = runner.emitter().broken() {
        eprintln!("error: {why}; the run stopped before changing anything else");
    }
    eprintln!("journal: {}", journal_path.display());
    let journal_dir = crate::exec::actions::shell_quote(
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
    if p.report.is_none() {
        say(
            "report",
            format!("runbook report {} --journal-dir {journal_dir}", p.run_id),
        );
    }
    if let Some(path) = &p.report {
        match crate::report::write_for_journal_with(
            &journal_path,
            path,
            runner.emitter().redactor(),
        ) {
            Ok(()) => eprintln!("report: {}", path.display()),
            Err(e) => eprintln!("error: writing the report: {e}"),
        }
    }
    let resume = format!(
        "runbook resume {} --journal-dir {journal_dir}{}",
        p.run_id, p.resume_with
    );
    match res.outcome {
        RunOutcome::Aborted if res.abandoned => say(
            "the run stopped and undid what it had changed; it cannot be resumed. To start again",
            format!(
                "runbook run {}{}",
                crate::exec::actions::shell_quote(&p.rb.file),
                p.resume_with
            ),
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

/// The incident reason: given, asked for at a terminal, or required for P1/P2 in CI.
pub fn reason_for(
    rb: &Runbook,
    given: Option<String>,
    interactive: bool,
    prompter_title: &str,
) -> Result<Option<String>, i32> {
    if given.as_deref().is_some_and(|r| !r.trim().is_empty()) {
        return Ok(given);
    }
    let high = matches!(rb.spec.metadata.severity, Some(Severity::P1 | Severity::P2));
    if interactive {
        let theme = dialoguer::theme::ColorfulTheme::default();
        // A prompt is one line: a title too long for it goes on a line of its own, wrapped.
        let mut prompt =
            format!("Why are you running \"{prompter_title}\"? (incident, alert, ticket)");
        if crate::view::fit(&format!("? {prompt} › ")).contains('\n') {
            eprintln!("{}", crate::view::fit(&format!("\"{prompter_title}\"")));
            prompt = "Why are you running it? (incident, alert, ticket)".into();
        }
        let r: String = dialoguer::Input::with_theme(&theme)
            .with_prompt(prompt)
            .allow_empty(!high)
            .interact_text()
            .map_err(|e| match crate::prompt::to_io(e).kind() {
                // Ctrl-C at the prompt: nothing ran, no journal yet.
                std::io::ErrorKind::Interrupted => exit::INTERRUPTED,
                _ => exit::ABORTED,
            })?;
        return Ok(Some(r).filter(|r| !r.trim().is_empty()));
    }
    if high {
        eprintln!(
            "error: `{}` is a {:?} runbook: a non-interactive run needs --reason \"<incident, alert or ticket>\"",
            rb.name(),
            rb.spec.metadata.severity.expect("high implies some")
        );
        return Err(exit::INVALID);
    }
    Ok(None)
}

pub async fn cmd_run(a: RunArgs) -> i32 {
    if let Some(world) = &a.world {
        return crate::drill::training::run(&a, world).await;
    }
    let rb = match load_or_report(&a.runbook, false) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let inputs = match resolve_inputs(&rb, &a.inputs) {
        Ok(i) => i,
        Err(c) => return c,
    };
    let answers = match parse_answers(&rb, &a.common.answer) {
        Ok(x) => x,
        Err(errs) => {
            for e in errs {
                eprintln!("error: {e}");
            }
            return exit::INVALID;
        }
    };
    let secrets = match load_secrets(&rb) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID;
        }
    };
    let interactive = is_interactive(a.common.non_interactive);
    // Signals are handled from here on (Ctrl-C at the reason prompt exits 130).
    let _ = run_cancel();
    let reason = match reason_for(
        &rb,
        a.common.reason.clone(),
        interactive,
        &rb.spec.metadata.title,
    ) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let operator = match operator_for(&rb, a.common.operator.clone(), interactive) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (run_id, journal) =
        match create_journal(&a.common.journal_dir, || new_run_id(rb.name(), clock.now())) {
            Ok(j) => j,
            Err(e) => {
                eprintln!(
                    "error: cannot create the journal in {}: {e}; nothing was run",
                    a.common.journal_dir.display()
                );
                return exit::FAILED;
            }
        };
    // Held until this process ends: a `resume` of this run meanwhile is refused.
    let _lock = match lock::acquire(journal.run_dir(), &lock_holder("run")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}; nothing was run");
            return exit::FAILED;
        }
    };
    let cfg = RunConfig {
        operator,
        reason,
        mode: if interactive {
            RunMode::Interactive
        } else {
            RunMode::NonInteractive
        },
        inputs,
        secrets,
        env: declared_env(&rb),
        host: hostname(),
        resume: None,
        forced: false,
        isolated: false,
    };
    let p = Prepared {
        rb: Arc::new(rb),
        cfg,
        journal,
        run_id,
        backends: Backends::real(Overrides {
            context: a.common.context.clone(),
            namespace: a.common.namespace.clone(),
        }),
        clock,
        answers,
        answers_via: AnswerVia::AnswerFlag,
        yes: a.common.yes,
        interactive,
        style: if interactive {
            Style::Rich
        } else {
            Style::Plain
        },
        report: a.common.report.clone(),
        resume_with: String::new(),
    };
    execute(p).await
}

pub async fn cmd_resume(a: ResumeArgs) -> i32 {
    let path = match journal::locate(&a.run, &a.common.journal_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID;
        }
    };
    // One process at a time: taken before the journal is read, held until this process ends.
    let run_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let _lock = match lock::acquire(&run_dir, &lock_holder("resume")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot resume {}: {e}: runbook resume {} --journal-dir {}",
                a.run,
                run_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| a.run.clone()),
                run_dir
                    .parent()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            );
            return exit::INVALID;
        }
    };
    let state = match ResumeState::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID;
        }
    };
    let journal_dir = path
        .parent()
        .and_then(Path::parent)
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    if let Err(e) = state.resumable(a.world.is_some()) {
        eprintln!("error: run {}: {e}", state.run_id);
        let (id, dir) = (&state.run_id, &journal_dir);
        match state.mode {
            Some(RunMode::Training) if a.world.is_none() => eprintln!(
                "to continue it against its simulated world: runbook resume {id} --journal-dir {dir} --world <the drill it ran with>"
            ),
            _ => eprintln!("its report: runbook report {id} --journal-dir {dir}"),
        }
        return exit::INVALID;
    }
    if let Some(world) = &a.world {
        return crate::drill::training::resume(&a, world, &path, state).await;
    }
    let rb_path = PathBuf::from(&state.runbook_path);
    let rb = match load_or_report(&rb_path, false) {
        Ok(r) => r,
        Err(c) => return c,
    };
    // Every runbook file the run loaded (the called ones too) must be as it was.
    let changed = state.changed_file(&rb.files(), &rb.sha256);
    if let (Some(what), false) = (&changed, a.force) {
        eprintln!(
            "error: {what}; resuming could run steps that were never planned. To resume anyway (it is journaled): runbook resume {} --journal-dir {journal_dir} --force",
            state.run_id
        );
        return exit::INVALID;
    }
    let answers = match parse_answers(&rb, &a.common.answer) {
        Ok(x) => x,
        Err(errs) => {
            for e in errs {
                eprintln!("error: {e}");
            }
            return exit::INVALID;
        }
    };
    let secrets = match load_secrets(&rb) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID;
        }
    };
    // Inputs come back from the journal (they were validated when the run started).
    let inputs = match inputs::resolve(
        &rb.spec.inputs,
        &Supplied {
            file: state.inputs.clone(),
            args: vec![],
        },
    ) {
        Ok(i) => i,
        Err(errs) => {
            for e in errs {
                eprintln!("error: {e}");
            }
            return exit::INVALID;
        }
    };
    let journal = match Journal::reopen(&path) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: cannot append to {}: {e}", path.display());
            return exit::FAILED;
        }
    };
    let interactive = is_interactive(a.common.non_interactive);
    let operator = match operator_for(&rb, a.common.operator.clone(), interactive) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let cfg = RunConfig {
        operator,
        reason: state.reason.clone(),
        mode: if interactive {
            RunMode::Interactive
        } else {
            RunMode::NonInteractive
        },
        inputs,
        secrets,
        env: declared_env(&rb),
        host: hostname(),
        resume: Some(state.clone()),
        forced: a.force && changed.is_some(),
        isolated: false,
    };
    let p = Prepared {
        rb: Arc::new(rb),
        cfg,
        journal,
        run_id: state.run_id.clone(),
        backends: Backends::real(Overrides {
            context: a.common.context.clone(),
            namespace: a.common.namespace.clone(),
        }),
        clock: Arc::new(SystemClock),
        answers,
        answers_via: AnswerVia::AnswerFlag,
        yes: a.common.yes,
        interactive,
        style: if interactive {
            Style::Rich
        } else {
            Style::Plain
        },
        report: a.common.report.clone(),
        resume_with: String::new(),
    };
    execute(p).await
}

pub fn cmd_schema(kind: SchemaKind) -> i32 {
    let v = match kind {
        SchemaKind::Runbook => crate::spec::runbook_schema(),
        SchemaKind::Drill => crate::drill::spec::drill_schema(),
    };
    println!("{}", crate::schema_text(&v));
    exit::SUCCESS
}

/// Sets up `-v` logging (tracing) on stderr, text or JSON, redacting nothing itself: callers
/// never log secret values.
pub fn init_logging(verbose: u8, format: LogFormat) {
    let level = match verbose {
        0 => return,
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("runbook={level}")));
    // Colours only for a terminal that wants them. Field values are escaped by
    // tracing-subscriber itself (>= 0.3.20 writes control characters in them escaped).
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Text => b.try_init(),
    };
}

/// Runs the CLI; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // Help and version are ours: shown as clap styles them.
        Err(e) if !e.use_stderr() => e.exit(),
        // A usage error quotes the command line, which may hold any byte: shown through the
        // sanitiser (`eprint!` is term.rs's), without clap's colours.
        Err(e) => {
            eprint!("{}", e.render());
            return e.exit_code();
        }
    };
    init_logging(cli.verbose, cli.log_format);
    crate::backends::http::install_crypto_provider();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return exit::FAILED;
        }
    };
    rt.block_on(async move {
        match cli.command {
            Command::Check(a) => cmd_check(a),
            Command::Plan(a) => cmd_plan(a).await,
            Command::List(a) => cmd_list(a),
            Command::Schema { kind } => cmd_schema(kind),
            Command::Run(a) => cmd_run(*a).await,
            Command::Resume(a) => cmd_resume(*a).await,
            Command::Report(a) => crate::report::cli::run(a),
            Command::Drill(a) => crate::drill::cli::run(a).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_already_taken_is_drawn_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("taken")).unwrap();
        let mut ids = ["taken", "taken", "free"].into_iter();
        let (id, j) = create_journal(dir.path(), || ids.next().unwrap().to_string()).unwrap();
        assert_eq!(id, "free");
        assert!(j.path().ends_with("free/journal.jsonl"));
    }
}

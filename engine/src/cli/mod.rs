//! The command line: `check`, `plan`, `list`, `schema`, `run`, `resume`, `report`, `drill`.
//! It parses arguments, calls the library (`load`, `plan`, `session`, `report`, `drill`) and
//! prints; no other module imports from here. A command returns its exit code or an error
//! (`error::Error`), which `main` prints once and maps to its exit code.

mod drill;
mod error;

pub use error::Error;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::diag::Diagnostic;
use crate::exit;
use crate::load::{self, load_runbook, yaml_files, Checked};
use crate::session::{self, GivenInputs, Options};

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
    Drill(drill::DrillArgs),
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

impl From<&InputArgs> for GivenInputs {
    fn from(a: &InputArgs) -> Self {
        GivenInputs {
            file: a.inputs.clone(),
            values: a.input.clone(),
        }
    }
}

impl From<&CommonRunArgs> for Options {
    fn from(a: &CommonRunArgs) -> Self {
        Options {
            operator: a.operator.clone(),
            reason: a.reason.clone(),
            yes: a.yes,
            answers: a.answer.clone(),
            non_interactive: a.non_interactive,
            journal_dir: a.journal_dir.clone(),
            report: a.report.clone(),
            context: a.context.clone(),
            namespace: a.namespace.clone(),
        }
    }
}

pub fn cmd_check(a: CheckArgs) -> Result<i32, Error> {
    let paths = if a.paths.is_empty() {
        vec![PathBuf::from("runbooks")]
    } else {
        a.paths
    };
    if let Some(p) = paths.iter().find(|p| !p.exists()) {
        return Err(Error::NoSuchPath(p.clone()));
    }
    let files = crate::files::yaml_files_of(&paths);
    let mut all: Vec<Diagnostic> = vec![];
    let (mut errors, mut warnings) = (0, 0);
    let color = crate::term::color();
    for f in &files {
        let r = load::check_path(f);
        if a.format == OutFormat::Text {
            let (e, w) = r.print(color);
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
    Ok(if errors > 0 || (a.strict && warnings > 0) {
        exit::INVALID
    } else {
        exit::SUCCESS
    })
}

pub async fn cmd_plan(a: PlanArgs) -> Result<i32, Error> {
    let (rb, warnings) = load_runbook(&a.runbook)?;
    if !warnings.is_empty() {
        let src = std::fs::read_to_string(&a.runbook).ok();
        // Rendered diagnostics carry miette's colours and sanitise their own text.
        let color = crate::term::color();
        let mut err = std::io::stderr().lock();
        for w in warnings {
            let _ = write!(err, "{}", w.render(src.as_deref(), color));
        }
    }
    let inputs = session::resolve_inputs(&rb, &GivenInputs::from(&a.inputs), Default::default())?;
    let mut p = crate::plan::plan(&rb, &inputs);
    if a.live {
        crate::plan::preview_live(&mut p, &rb, &inputs, a.context.clone(), a.namespace.clone())
            .await;
    }
    match a.format {
        OutFormat::Json => println!("{}", serde_json::to_string_pretty(&p).expect("json")),
        OutFormat::Text => print!("{}", crate::plan::render_text(&p)),
    }
    Ok(exit::SUCCESS)
}

pub fn cmd_list(a: ListArgs) -> Result<i32, Error> {
    let dir = a.dir.unwrap_or_else(|| PathBuf::from("runbooks"));
    if !dir.exists() {
        return Err(Error::NoSuchPath(dir));
    }
    let mut rows = vec![];
    let mut bad = 0;
    for f in yaml_files(&dir) {
        let r = load::check_path(&f);
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
    Ok(if bad > 0 {
        exit::INVALID
    } else {
        exit::SUCCESS
    })
}

pub async fn cmd_run(a: RunArgs) -> Result<i32, Error> {
    let (given, opts) = (GivenInputs::from(&a.inputs), Options::from(&a.common));
    Ok(match &a.world {
        Some(world) => session::training::run(&a.runbook, &given, &opts, world, a.fast).await?,
        None => session::run(&a.runbook, &given, &opts).await?,
    })
}

pub async fn cmd_resume(a: ResumeArgs) -> Result<i32, Error> {
    Ok(session::resume(
        &a.run,
        &Options::from(&a.common),
        a.force,
        a.world.as_deref(),
    )
    .await?)
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
        .with_ansi(crate::term::color())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Text => b.try_init(),
    };
}

/// The async runtime of every command: one thread. A run does one thing at a time (a step's
/// process and the pumps of its output, a request, a poll), and with one thread the wake-up
/// of a step's exit reaches the task waiting for it without a hop between threads: about
/// 80 µs of a 1 ms shell step on a 2-core machine (README, Performance). What must go on
/// while this thread is blocked (signals, during a prompt) has a thread of its own
/// (`session::install_signals`). tokio returns most failures to build it (no file
/// descriptor for its I/O driver) but panics on others (its signal pipe): those are caught
/// too, so that each is "cannot start the runtime", never a panic.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    let build = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let built = std::panic::catch_unwind(build);
    std::panic::set_hook(hook);
    let why = match built {
        Ok(Ok(rt)) => return Ok(rt),
        Ok(Err(e)) => e.to_string(),
        Err(panic) => panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "it panicked".into()),
    };
    // EMFILE, returned (`Too many open files (os error 24)`) or in tokio's panic message.
    let fd_limit = why
        .contains("Too many open files")
        .then(open_file_limit)
        .flatten();
    Err(Error::Runtime { why, fd_limit })
}

/// This process's open-file limit (RLIMIT_NOFILE, soft).
fn open_file_limit() -> Option<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, nothing else.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim.rlim_cur)
}

/// Runs the CLI; returns the exit code. Every error ends here: printed once (`error::report`),
/// exiting with its code (`Error::exit_code`).
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
    match runtime().and_then(|rt| rt.block_on(command(cli.command))) {
        Ok(code) => code,
        Err(e) => {
            error::report(&e);
            e.exit_code()
        }
    }
}

/// Runs a command: its exit code, or the error it ended with.
async fn command(c: Command) -> Result<i32, Error> {
    match c {
        Command::Check(a) => cmd_check(a),
        Command::Plan(a) => cmd_plan(a).await,
        Command::List(a) => cmd_list(a),
        Command::Schema { kind } => Ok(cmd_schema(kind)),
        Command::Run(a) => cmd_run(*a).await,
        Command::Resume(a) => cmd_resume(*a).await,
        Command::Report(a) => crate::report::cli::run(&a)
            .map(|()| exit::SUCCESS)
            .map_err(Error::from),
        Command::Drill(a) => Ok(drill::run(a).await?),
    }
}

//! `runbook report`.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A run id (under --journal-dir) or a journal path.
    pub run: String,
    #[arg(long, default_value = ".runbook/runs")]
    pub journal_dir: PathBuf,
}

pub fn run(a: ReportArgs) -> i32 {
    let _ = a;
    eprintln!("error: reports are not implemented yet");
    crate::exit::INVALID
}

//! `runbook drill`.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub struct DrillArgs {
    /// Drill files or directories (default: runbooks/).
    pub paths: Vec<PathBuf>,
}

pub async fn run(a: DrillArgs) -> i32 {
    let _ = a;
    eprintln!("error: drills are not implemented yet");
    crate::exit::INVALID
}

//! Training mode: a guided run against a drill's simulated world.

use std::path::Path;

use crate::cli::RunArgs;

pub async fn run(a: &RunArgs, world: &Path) -> i32 {
    let _ = (a, world);
    eprintln!("error: training mode is not implemented yet");
    crate::exit::INVALID
}

//! Benchmark: how long a drill with 30 minutes of virtual waiting takes in real time
//! (`examples/drills/cache-warmup.drill.yaml`: a 5-minute rollout, a 10-minute wait, 15 minutes
//! of polling). Run with `cargo bench --bench drill`; the bar is under one second.

use std::path::Path;
use std::time::{Duration, Instant};

use runbook::drill::expect::evaluate;
use runbook::load::{check_path, Checked};
use runbook::session::drill as runner;

const RUNS: u32 = 50;

fn main() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/drills/cache-warmup.drill.yaml");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut times = vec![];
    let mut virtual_time = Duration::ZERO;
    for _ in 0..RUNS {
        let t0 = Instant::now();
        // Check included: `runbook drill` checks every drill before running it.
        let report = check_path(&file);
        let Some(Checked::Drill(drill)) = report.checked else {
            panic!(
                "{} does not check: {:?}",
                file.display(),
                report.diagnostics
            );
        };
        let run = rt
            .block_on(runner::run(&drill, None))
            .expect("the drill runs");
        assert!(
            evaluate(&drill.expect, &run).is_empty(),
            "the example drill passes"
        );
        times.push(t0.elapsed());
        virtual_time = (run.end - drill.start).to_std().unwrap_or_default();
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / RUNS;
    println!(
        "drill cache-warmup: {} of virtual time; real time over {RUNS} runs: mean {:.2} ms, median {:.2} ms, max {:.2} ms",
        runbook::model::fmt_duration(virtual_time),
        mean.as_secs_f64() * 1e3,
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );
}

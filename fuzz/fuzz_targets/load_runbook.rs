//! Any bytes through the loader and checker (YAML → located value → runbook model): they
//! are reported as diagnostics, never a panic, a hang or an unbounded allocation. A runbook
//! that checks must also plan.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook::load::{self as check, Checked};

fuzz_target!(|data: &[u8]| {
    let report = check::check_bytes("fuzz.yaml", std::path::Path::new("fuzz.yaml"), data);
    if let Some(Checked::Runbook(rb)) = report.checked {
        if let Ok(inputs) = runbook::inputs::resolve(&rb.spec.inputs, &Default::default()) {
            let _ = runbook::plan::plan(&rb, &inputs);
        }
    }
});

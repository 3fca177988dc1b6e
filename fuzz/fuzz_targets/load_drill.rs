//! Any bytes after a drill's header through the loader and the drill checker.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut doc = b"apiVersion: runbook/v1\nkind: Drill\n".to_vec();
    doc.extend_from_slice(data);
    let _ = runbook::load::check_bytes("fuzz.yaml", std::path::Path::new("fuzz.yaml"), &doc);
});

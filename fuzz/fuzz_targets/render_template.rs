//! Template and expression text, rendered and evaluated against a context whose values are
//! fuzzed too: errors are values, never panics; rendering is bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook::template;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first line is the template, the rest an input value.
    let (src, value) = text.split_once('\n').unwrap_or((&text, ""));
    let ctx = json!({
        "inputs": { "a": value, "n": 3, "list": [1, 2, 3] },
        "steps": { "s": { "out": value, "result": { "status": 200 } } },
        "result": { "status": 503, "json": { "ok": false } },
    });
    let _ = template::template_refs(src);
    let _ = template::expr_refs(src);
    let _ = template::render_str(src, &ctx);
    let _ = template::eval(src, &ctx);
    let _ = template::eval_bool(src, &ctx);
    // A rendered value is data: rendering an input that looks like a template gives it back.
    assert_eq!(
        template::render_str("{{ inputs.a }}", &ctx).ok(),
        Some(serde_json::Value::String(value.to_string()))
    );
});

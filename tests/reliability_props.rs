//! Property tests of the loader, checker and templates:
//! - no input (raw bytes, YAML-ish token soup, mutated valid runbooks) panics the loader or
//!   the checker;
//! - any runbook that validates round-trips through the schema: its spec serializes to JSON that
//!   the JSON Schema accepts, and loading that JSON again gives the same spec;
//! - template rendering never panics, and a rendered value is never rendered again.
//!
//! The fuzz targets under fuzz/ run the same bodies under libFuzzer (see docs/reliability.md).

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::Config;
use runbook::load::{self as check, Checked};
use runbook::spec;
use serde_json::{json, Value};

const VALID: &str = r#"apiVersion: runbook/v1
kind: Runbook
metadata: { name: sample, title: "A sample", severity: P3, mttr_target: 15m }
inputs:
  deployment: { type: string, default: web, pattern: "[a-z-]+" }
  replicas: { type: integer, default: 3, minimum: 1 }
secrets:
  token: { env: SAMPLE_TOKEN, required: false }
backends:
  api: { http: { base_url: "http://127.0.0.1:9", headers: { Authorization: "Bearer {{ secrets.token }}" } } }
preconditions:
  - that: "inputs.replicas > 0"
    message: "need replicas"
steps:
  - id: look
    safety: read-only
    shell: { argv: ["echo", "{{ inputs.deployment }}"] }
    capture: { out: "result.stdout | trim" }
  - id: call
    http: { backend: api, request: { method: POST, path: "/x", json: { n: "{{ inputs.replicas }}" } } }
    verify: [ { that: "result.status == 200" } ]
    until: { timeout: 1s, interval: 100ms }
    retry: { attempts: 2, delay: 10ms, backoff: 2.0 }
    undo: { shell: { script: "echo undo" } }
  - id: ok
    confirm: { prompt: "Go on with {{ steps.look.out }}?" }
  - id: check
    when: "steps.look.out != ''"
    assert: [ { that: "steps.look.out == inputs.deployment" } ]
on_failure:
  - id: tell
    manual: { instructions: "Tell the team" }
"#;

const DRILL_HEAD: &str = "apiVersion: runbook/v1\nkind: Drill\n";

fn check_text(bytes: &[u8]) -> check::Report {
    check::check_bytes("prop.yaml", Path::new("prop.yaml"), bytes)
}

/// Pieces of YAML and of the runbook vocabulary, so that random sequences get past the parser
/// often and reach the checker.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "apiVersion: runbook/v1\n", "kind: Runbook\n", "kind: Drill\n", "metadata:\n",
            "  name: x\n", "  title: t\n", "steps:\n", "  - id: a\n", "  - id: b\n",
            "    shell: { argv: [echo, hi] }\n", "    shell: { script: 'true' }\n",
            "    http: { request: { url: 'http://x' } }\n", "    wait: 1s\n",
            "    confirm: { prompt: p }\n", "    manual: { instructions: i }\n",
            "    assert: [ { that: 'true' } ]\n", "    call: { runbook: other.yaml }\n",
            "    kubernetes: { get: { kind: Pod, name: x } }\n", "    compose: { ps: {} }\n",
            "    timeout: 5s\n", "    retry: { attempts: 3 }\n", "    until: { timeout: 1m }\n",
            "    verify: [ { that: 'result.status == 200' } ]\n", "    capture: { x: result }\n",
            "    when: inputs.x\n", "    safety: terminal\n", "    undo: { wait: 1s }\n",
            "inputs:\n", "  x: { type: integer, default: 1 }\n", "secrets:\n",
            "  t: { env: T }\n", "backends:\n", "  b: { http: { base_url: 'http://y' } }\n",
            "preconditions:\n", "  - that: 'inputs.x > 0'\n", "on_failure:\n",
            "rollback_strategy: always\n", "world:\n", "scenario:\n", "expect:\n",
            "&a ", "*a", "<<: *a\n", "!!str ", "!!binary ", "!custom ", "? ", ": ", "- ", "{",
            "}", "[", "]", ", ", "'", "\"", "\n", "  ", "    ", "\t", "{{ inputs.x }}",
            "{{ steps.a.x }}", "{% if %}", "{{", "}}", "# c\n", "|\n", ">-\n", "---\n",
            "...\n", "%YAML 1.2\n", "~", "null", "1e999", "0x1F", "-.inf", ".nan", "9999999999999999999999",
            "\u{feff}", "é", "\u{202e}", "\\", "\r\n", "yes", "no", "on", "off",
        ]).prop_map(str::to_string),
        1 => "[a-z0-9_.-]{1,10}",
        1 => any::<String>().prop_map(|s| s.chars().take(12).collect()),
    ]
}

fn yamlish() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 0..80).prop_map(|v| v.concat())
}

/// A valid document with bytes inserted, deleted and replaced.
fn mutated(base: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..12).prop_map(
        move |edits| {
            let mut b = base.as_bytes().to_vec();
            for (at, op, byte) in edits {
                if b.is_empty() {
                    b.push(byte);
                    continue;
                }
                let i = at.index(b.len());
                match op {
                    0 => b.insert(i, byte),
                    1 => {
                        b.remove(i);
                    }
                    _ => b[i] = byte,
                }
            }
            b
        },
    )
}

// ---- structured runbooks, for the round trip ----

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "[a-zA-Z0-9 _.,:/-]{0,16}",
        2 => Just("{{ inputs.a }}".to_string()),
        2 => Just("x-{{ inputs.b }}-y".to_string()),
        2 => Just("$(touch pwned) ; rm -rf ~ '\"".to_string()),
        2 => any::<String>().prop_map(|s| s.chars().take(20).collect()),
        1 => Just("{{ secrets.tok }}".to_string()),
        // Invalid: a reference the checker must reject.
        1 => Just("{{ steps.s0.out }}".to_string()),
        1 => Just("{{ inputs.missing }}".to_string()),
    ]
}

fn expr() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec![
            "true",
            "inputs.b > 1",
            "inputs.a != '' and inputs.b == 2",
            "inputs.a | length > 0",
        ]),
        1 => prop::sample::select(vec!["inputs.nope", "result.", "1 +", "steps.s0.out == 'x'"]),
    ]
    .prop_map(str::to_string)
}

fn verify_expr() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec!["result.status == 200", "result.exit_code == 0", "true"])
            .prop_map(str::to_string),
        1 => expr(),
    ]
}

fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec!["1s", "10ms", "5m", "1h", "1m30s"]),
        1 => prop::sample::select(vec!["0s", "abc", "-1s", "1.5s", "99999999h"]),
    ]
    .prop_map(str::to_string)
}

fn action() -> impl Strategy<Value = (String, Value)> {
    prop_oneof![
        prop::collection::vec(text(), 1..4).prop_map(|a| ("shell".into(), json!({ "argv": a }))),
        text().prop_map(|s| ("shell".into(), json!({ "script": s, "env": { "V": "{{ inputs.a }}" } }))),
        (text(), prop::sample::select(vec!["GET", "POST", "PUT", "DELETE"])).prop_map(|(u, m)| (
            "http".into(),
            json!({ "request": { "method": m, "url": format!("http://127.0.0.1:9/{u}"), "json": { "v": u } } })
        )),
        text().prop_map(|p| ("confirm".into(), json!({ "prompt": p }))),
        text().prop_map(|i| ("manual".into(), json!({ "instructions": i }))),
        duration().prop_map(|d| ("wait".into(), json!(d))),
        expr().prop_map(|e| ("assert".into(), json!([{ "that": e }]))),
        text().prop_map(|p| ("input".into(), json!({ "prompt": p, "type": "integer" }))),
    ]
}

fn step(i: usize) -> impl Strategy<Value = Value> {
    (
        action(),
        prop::option::of(prop::sample::select(vec![
            "read-only",
            "idempotent",
            "reversible",
            "terminal",
        ])),
        prop::option::of(duration()),
        prop::option::of(1u32..5),
        prop::option::of(verify_expr()),
        prop::option::of(expr()),
        prop::bool::ANY,
        prop::option::of(text()),
    )
        .prop_map(
            move |((kind, body), safety, timeout, attempts, verify, when, capture, title)| {
                let mut s = json!({ "id": format!("s{i}") });
                s[&kind] = body;
                if let Some(x) = safety {
                    s["safety"] = json!(x);
                }
                if let Some(t) = timeout {
                    s["timeout"] = json!(t);
                }
                if let Some(a) = attempts {
                    s["retry"] = json!({ "attempts": a, "delay": "10ms" });
                }
                if let Some(v) = verify {
                    s["verify"] = json!([{ "that": v }]);
                }
                if let Some(w) = when {
                    s["when"] = json!(w);
                }
                if capture {
                    s["capture"] = json!({ "out": "result" });
                }
                if let Some(t) = title {
                    s["title"] = json!(t);
                }
                s["no_undo"] = json!("generated");
                s
            },
        )
}

fn runbook_doc() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(any::<prop::sample::Index>(), 1..6),
        prop::option::of(expr()),
        prop::sample::select(vec!["on-failure", "always", "never"]),
    )
        .prop_flat_map(|(steps, pre, strategy)| {
            let n = steps.len();
            let steps: Vec<_> = (0..n).map(step).collect();
            (steps, Just(pre), Just(strategy))
        })
        .prop_map(|(steps, pre, strategy)| {
            let mut doc = json!({
                "apiVersion": "runbook/v1",
                "kind": "Runbook",
                "metadata": { "name": "gen", "title": "Generated" },
                "inputs": {
                    "a": { "type": "string", "default": "x" },
                    "b": { "type": "integer", "default": 2 }
                },
                "secrets": { "tok": { "env": "GEN_TOKEN", "required": false } },
                "rollback_strategy": strategy,
                "steps": steps,
            });
            if let Some(p) = pre {
                doc["preconditions"] = json!([{ "that": p }]);
            }
            doc
        })
}

fn validator() -> &'static jsonschema::Validator {
    static V: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    V.get_or_init(|| jsonschema::validator_for(&spec::runbook_schema()).unwrap())
}

/// The round trip: a checked spec → JSON the schema accepts → the same spec.
fn round_trips(report: check::Report) -> Result<bool, TestCaseError> {
    let Some(Checked::Runbook(rb)) = report.checked else {
        return Ok(false);
    };
    if report.diagnostics.iter().any(|d| d.is_error()) {
        return Ok(false);
    }
    let v = serde_json::to_value(&rb.spec).unwrap();
    let errors: Vec<String> = validator().iter_errors(&v).map(|e| e.to_string()).collect();
    prop_assert!(
        errors.is_empty(),
        "schema rejects a checked spec: {errors:?}\n{v:#}"
    );
    let again = check_text(serde_json::to_string_pretty(&v).unwrap().as_bytes());
    let errs: Vec<String> = again
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.clone())
        .collect();
    prop_assert!(
        errs.is_empty(),
        "the spec as JSON does not check: {errs:?}\n{v:#}"
    );
    let Some(Checked::Runbook(rb2)) = again.checked else {
        return Err(TestCaseError::fail("the spec as JSON is not a runbook"));
    };
    prop_assert_eq!(serde_json::to_value(&rb2.spec).unwrap(), v);
    prop_assert_eq!(rb2.steps.len(), rb.steps.len());
    // Planning a checked runbook with its defaults never panics either.
    if let Ok(inputs) = runbook::inputs::resolve(&rb.spec.inputs, &Default::default()) {
        let _ = runbook::plan::plan(&rb, &inputs);
    }
    Ok(true)
}

proptest! {
    #![proptest_config(Config { cases: 512, ..Config::default() })]

    #[test]
    fn raw_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = check_text(&bytes);
    }

    #[test]
    fn yamlish_text_never_panics(s in yamlish()) {
        let r = check_text(s.as_bytes());
        // Every problem is reported with a location inside the file.
        if let Some(src) = &r.source {
            let lines = src.lines().count().max(1) as u32 + 1;
            for d in &r.diagnostics {
                prop_assert!(d.line <= lines, "{d:?} is past the end of\n{s}");
            }
        }
        let _ = check_text(format!("{DRILL_HEAD}{s}").as_bytes());
    }

    #[test]
    fn mutated_runbooks_never_panic_and_round_trip_when_valid(b in mutated(VALID)) {
        let _ = round_trips(check_text(&b))?;
    }

    #[test]
    fn generated_runbooks_round_trip_through_the_schema(doc in runbook_doc()) {
        let text = serde_json::to_string_pretty(&doc).unwrap();
        let _ = round_trips(check_text(text.as_bytes()))?;
    }

    #[test]
    fn templates_never_panic(src in yamlish(), a in any::<String>()) {
        let ctx = json!({ "inputs": { "a": a, "n": 3 }, "steps": { "s": { "out": [1, 2] } } });
        let _ = runbook::template::template_refs(&src);
        let _ = runbook::template::expr_refs(&src);
        let _ = runbook::template::render_str(&src, &ctx);
        let _ = runbook::template::eval(&src, &ctx);
    }

    #[test]
    fn a_rendered_value_is_never_rendered_again(a in any::<String>()) {
        let ctx = json!({ "inputs": { "a": a.clone() } });
        prop_assert_eq!(
            runbook::template::render_str("{{ inputs.a }}", &ctx).unwrap(),
            Value::String(a.clone())
        );
        prop_assert_eq!(
            runbook::template::render_str("<{{ inputs.a }}>", &ctx).unwrap(),
            Value::String(format!("<{a}>"))
        );
    }
}

#[test]
fn the_sample_is_valid_and_round_trips() {
    // Guards the properties above: they only mean something if valid input reaches them.
    let r = check_text(VALID.as_bytes());
    let errs: Vec<_> = r.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errs.is_empty(), "{errs:?}");
    assert!(round_trips(r).unwrap());
}

#[test]
fn generated_runbooks_are_often_valid() {
    // The generator must produce valid runbooks, or the round-trip property tests nothing.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = runbook_doc();
    let mut valid = 0;
    for _ in 0..200 {
        let doc = strategy.new_tree(&mut runner).unwrap().current();
        let text = serde_json::to_string(&doc).unwrap();
        if round_trips(check_text(text.as_bytes())).unwrap() {
            valid += 1;
        }
    }
    assert!(
        valid >= 20,
        "only {valid} of 200 generated runbooks were valid"
    );
}

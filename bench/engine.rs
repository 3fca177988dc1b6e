//! In-process benchmarks of the engine's hot paths (criterion): checking, rendering, redaction
//! and the journal. `cargo bench --bench engine`; bench/run measures whole runs against the
//! floor and the peers.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use runbook::check;
use runbook::exec::events::{Envelope, Event, Phase};
use runbook::exec::journal::{self, Journal};
use runbook::exec::redact::Redactor;
use runbook::template;
use serde_json::json;

const BUILTIN: &str = include_str!("../runbooks/k8s-rollback.yaml");

fn generated(n: usize) -> String {
    let mut s = String::from(
        "apiVersion: runbook/v1\nkind: Runbook\nmetadata: { name: gen, title: Gen }\n\
         inputs:\n  who: { type: string, default: ops }\nsteps:\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "  - id: s{i}\n    safety: read-only\n    shell: {{ argv: [\"echo\", \"{{{{ inputs.who }}}}\"] }}\n    \
             capture: {{ out: \"result.stdout\" }}\n    verify: [ {{ that: \"result.exit_code == 0\" }} ]\n"
        ));
    }
    s
}

fn event(seq: u64) -> Envelope {
    Envelope {
        v: 1,
        seq,
        ts: "2026-01-01T00:00:00.000Z".into(),
        run_id: "bench".into(),
        event: Event::StepFinished {
            step: format!("s{seq}"),
            outcome: runbook::exec::events::StepOutcome::Succeeded,
            phase: Phase::Main,
            duration_ms: 3,
            attempts: 1,
            error: None,
            note: None,
        },
    }
}

fn checking(c: &mut Criterion) {
    c.bench_function("check/builtin k8s-rollback", |b| {
        b.iter(|| check::check_bytes("k.yaml", Path::new("k.yaml"), black_box(BUILTIN.as_bytes())))
    });
    let big = generated(1000);
    c.bench_function("check/generated 1000 steps", |b| {
        b.iter(|| check::check_bytes("g.yaml", Path::new("g.yaml"), black_box(big.as_bytes())))
    });
}

fn rendering(c: &mut Criterion) {
    let ctx = json!({
        "inputs": { "deployment": "web", "namespace": "prod", "replicas": 3 },
        "steps": { "current": { "image": "registry/web:1.2.3" } },
        "result": { "status": 200, "json": { "ready": 3 } },
    });
    c.bench_function("template/render a string", |b| {
        b.iter(|| {
            template::render_str(
                black_box("deploy/{{ inputs.deployment }} in {{ inputs.namespace }}"),
                &ctx,
            )
        })
    });
    c.bench_function("template/eval a verify expression", |b| {
        b.iter(|| {
            template::eval_bool(
                black_box("result.status == 200 and result.json.ready >= inputs.replicas"),
                &ctx,
            )
        })
    });
}

fn redaction(c: &mut Criterion) {
    let r = Redactor::new(["s3cr3t-Tok3n/with+chars=".to_string()]);
    let out = "a line of ordinary process output\n".repeat(30_000);
    c.bench_function("redact/1 MiB of output, one secret", |b| {
        b.iter(|| r.str(black_box(&out)))
    });
}

fn journaling(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::create(dir.path(), "bench").unwrap();
    let mut seq = 0;
    c.bench_function("journal/append one event (write + fsync)", |b| {
        b.iter(|| {
            seq += 1;
            j.append(&event(seq)).unwrap()
        })
    });
    let text: Vec<u8> = (1..=10_000)
        .flat_map(|i| {
            let mut l = serde_json::to_vec(&event(i)).unwrap();
            l.push(b'\n');
            l
        })
        .collect();
    c.bench_function("journal/parse 10,000 events", |b| {
        b.iter_batched(
            || text.clone(),
            |t| journal::parse(&t),
            BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, checking, rendering, redaction, journaling);
criterion_main!(benches);

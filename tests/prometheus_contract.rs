//! Contract: the drill world's Prometheus answers what a real Prometheus answers for the same
//! data. Each case exposes values to the real Prometheus (tests/env) through a loopback
//! exporter, scripts the same values in a drill world, runs the same runbook against both, and
//! compares the step's typed result, its verdicts and its outcome. A divergence is a bug in
//! the simulator (or in the backend).

use crate::backend_env;
use crate::common;

use std::path::Path;

use backend_env::Exporter;
use common::*;
use serde_json::{json, Value};

struct Case {
    name: &'static str,
    /// The exporter's text (the real side).
    exposition: &'static str,
    /// The query, with `SEL` replaced by the exporter's `{test="..."}` selector.
    query: &'static str,
    /// The drill's `values:` for that query (YAML flow).
    drill: &'static str,
    /// Whether the real side is ready: a predicate on Prometheus's `data.result`.
    ready: fn(&Value) -> bool,
}

fn rb(prom_url: &str, query: &str) -> String {
    format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: contract, title: Contract }}
backends:
  metrics: {{ prometheus: {{ url: "{prom_url}" }} }}
steps:
  - id: q
    prometheus: {{ query: '{query}' }}
    verify:
      - that: "result.value < 0.01"
"#
    )
}

fn drill(query: &str, values: &str) -> String {
    format!(
        r#"apiVersion: runbook/v1
kind: Drill
metadata: {{ name: contract, description: contract }}
runbook: rb-drill.yaml
world:
  metrics:
    - match: '{query}'
      values: {values}
"#
    )
}

/// The parts of a journal the two sides must agree on.
fn essence(dir: &Path, runs: &str) -> Value {
    let ev = events(&journal_path(&dir.join(runs)));
    let fin = of_kind(&ev, "attempt_finished");
    let r = &fin[0]["result"];
    let series: Vec<Value> = r["series"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|s| json!({ "labels": s["labels"], "value": s["value"], "text": s["text"] }))
        .collect();
    let verify: Vec<Value> = of_kind(&ev, "verify_evaluated")
        .iter()
        .map(|v| json!({ "verdict": v["verdict"], "reason": v["checks"][0]["reason"] }))
        .collect();
    let fin_step = of_kind(&ev, "step_finished");
    json!({
        "type": r["type"], "empty": r["empty"], "count": r["count"],
        "value": r.get("value"), "text": r.get("text"), "series": series,
        "verify": verify, "outcome": fin_step[0]["outcome"], "error": fin_step[0]["error"],
    })
}

#[test]
fn drill_world_answers_like_a_real_prometheus() {
    let Some(env) = backend_env::prometheus() else {
        return;
    };
    let prom = env.var("RUNBOOK_TEST_PROMETHEUS_URL").to_string();
    let cases = [
        Case {
            name: "one value under the threshold",
            exposition: "rb_c 0.002\n",
            query: "sum(rb_c{SEL})",
            drill: "{ value: 0.002 }",
            ready: |r| r[0]["value"][1] == "0.002",
        },
        Case {
            name: "one value over the threshold",
            exposition: "rb_c 0.043\n",
            query: "sum(rb_c{SEL})",
            drill: "[ { at: 0s, value: 0.043 } ]",
            ready: |r| r[0]["value"][1] == "0.043",
        },
        Case {
            name: "NaN (0/0)",
            exposition: "rb_f 0\nrb_t 0\n",
            query: "sum(rb_f{SEL}) / sum(rb_t{SEL})",
            drill: "{ value: NaN }",
            ready: |r| r[0]["value"][1] == "NaN",
        },
        Case {
            name: "+Inf",
            exposition: "rb_f 1\nrb_t 0\n",
            query: "sum(rb_f{SEL}) / sum(rb_t{SEL})",
            drill: "{ value: +Inf }",
            ready: |r| r[0]["value"][1] == "+Inf",
        },
        Case {
            name: "no data (a misspelt metric)",
            exposition: "rb_c 1\n",
            query: "sum(rb_cc{SEL})",
            drill: "{ no_data: true }",
            ready: |r| r.as_array().is_some_and(|a| a.is_empty()),
        },
        Case {
            name: "several series",
            exposition: "rb_l{pod=\"a\"} 0.001\nrb_l{pod=\"b\"} 0.5\n",
            query: "sum by (pod) (rb_l{SEL})",
            drill: "{ series: [ { labels: { pod: a }, value: 0.001 }, { labels: { pod: b }, value: 0.5 } ] }",
            ready: |r| r.as_array().is_some_and(|a| a.len() == 2),
        },
    ];
    let mut diverged = vec![];
    for c in cases {
        let ex = Exporter::start(&env, "contract");
        ex.set(c.exposition);
        let sel = format!("test=\"{}\"", ex.name);
        let query = c.query.replace("SEL", &sel);
        // The exporter's series exist before the query is asked (a misspelt one never will).
        ex.wait_for(&format!("count({{{sel}}})"), |r| {
            r[0]["value"][1].as_str().is_some_and(|v| v != "0")
        });
        ex.wait_for(&query, c.ready);
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "rb-real.yaml", &rb(&prom, &query));
        write(
            dir.path(),
            "rb-drill.yaml",
            &rb("http://prometheus.drill:9090", &query),
        );
        write(dir.path(), "drill.yaml", &drill(&query, c.drill));
        let base = ["--non-interactive", "--reason", "contract", "--journal-dir"];
        let real = runbook(dir.path())
            .args(["run", "rb-real.yaml"])
            .args(base)
            .arg("real")
            .output()
            .unwrap();
        let sim = runbook(dir.path())
            .args(["run", "rb-drill.yaml", "--world", "drill.yaml", "--fast"])
            .args(base)
            .arg("sim")
            .output()
            .unwrap();
        assert_eq!(
            real.status.code(),
            sim.status.code(),
            "{}: exit codes differ\nreal: {}\nsim: {}",
            c.name,
            text(&real).1,
            text(&sim).1
        );
        let (r, s) = (essence(dir.path(), "real"), essence(dir.path(), "sim"));
        if r != s {
            diverged.push(format!("{}:\n  real: {r}\n  sim:  {s}", c.name));
        }
    }
    assert!(diverged.is_empty(), "divergences:\n{}", diverged.join("\n"));
}

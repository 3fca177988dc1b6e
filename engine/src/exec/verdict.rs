//! Three-valued verification: a condition is **pass**, **fail** or **inconclusive**.
//!
//! Inconclusive: the condition reads a value that is absent (no series, a missing JSON field,
//! an empty list where one item was expected), `null` (how `NaN` and `±Inf` samples reach
//! expressions), or ambiguous (several series where one is expected). minijinja would happily
//! evaluate `none < 0.01` (true) or an `else 0.0` fallback: here such a comparison is never
//! evaluated into a pass or a fail. Inconclusive never passes. Every backend's verifications,
//! and a drill's, go through this one function.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::template;

/// The outcome of one condition (or of a whole verification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    #[default]
    Pass,
    Fail,
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// The verdict of several conditions: any fail fails, else any inconclusive is
    /// inconclusive, else pass. A value that is wrong is reported as wrong even when another
    /// condition had no data.
    pub fn all(vs: impl IntoIterator<Item = Verdict>) -> Verdict {
        let mut out = Verdict::Pass;
        for v in vs {
            match v {
                Verdict::Fail => return Verdict::Fail,
                Verdict::Inconclusive => out = Verdict::Inconclusive,
                Verdict::Pass => {}
            }
        }
        out
    }
}

/// One condition evaluated: its verdict, why it is inconclusive, and an evaluation error.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    pub verdict: Verdict,
    pub reason: Option<String>,
    pub error: Option<String>,
}

/// Does the expression handle absence itself (`is defined`, `is none`, `default`)? Then a
/// missing or null value is what it asks about, and its answer stands.
pub fn tests_presence(src: &str) -> bool {
    let s: String = src.split_whitespace().collect::<Vec<_>>().join(" ");
    [
        "is defined",
        "is undefined",
        "is none",
        "is not none",
        "is not defined",
        "default(",
        "| default",
        "|default",
    ]
    .iter()
    .any(|p| s.contains(p))
}

/// Why reading `name` gives no usable value, if it does not: for a Prometheus result, the
/// backend's own words (no data, NaN, several series), with the query as sent. `own` is the
/// step whose result `result` is: its captures (`steps.<own>.x`) come from that result too.
fn absence(name: &str, value: Option<&Value>, ctx: &Value, own: Option<&str>) -> Option<String> {
    // The Prometheus result this name reads, e.g. `result.value` or the step's own capture.
    let prom = |path: &str| -> Option<String> {
        let from_result = path.starts_with("result.")
            || own.is_some_and(|o| path.starts_with(&format!("steps.{o}.")));
        from_result
            .then(|| ctx.get("result"))
            .flatten()
            .and_then(crate::backends::prometheus::why_no_value)
    };
    match value {
        None => Some(prom(name).unwrap_or_else(|| format!("no data: `{name}` is absent"))),
        Some(Value::Null) => {
            Some(prom(name).unwrap_or_else(|| format!("`{name}` has no value (null or NaN)")))
        }
        _ => None,
    }
}

/// Evaluates one condition against the context; `own` is the id of the step whose `result`
/// the context holds (None for `assert`).
pub fn evaluate(that: &str, ctx: &Value, own: Option<&str>) -> Evaluated {
    if !tests_presence(that) {
        if let Ok(names) = template::expr_refs(that) {
            for name in names {
                let root = name.split('.').next().unwrap_or_default();
                if !template::ROOTS.contains(&root) || name == root {
                    continue;
                }
                let v = template::eval(&name, ctx).ok();
                if let Some(reason) = absence(&name, v.as_ref(), ctx, own) {
                    return Evaluated {
                        verdict: Verdict::Inconclusive,
                        reason: Some(reason),
                        error: None,
                    };
                }
            }
        }
    }
    // A comparison or arithmetic on a value that is not there (also one computed: `x | float`,
    // `a / b` giving NaN), which the name check above does not see.
    if let Some(u) = template::unusable_operand(that, ctx) {
        let reason = if u.value.is_some() {
            absence(&u.operand, Some(&Value::Null), ctx, own)
        } else {
            absence(&u.operand, None, ctx, own)
        };
        return Evaluated {
            verdict: Verdict::Inconclusive,
            reason,
            error: None,
        };
    }
    match template::eval_bool(that, ctx) {
        Ok(true) => Evaluated {
            verdict: Verdict::Pass,
            reason: None,
            error: None,
        },
        Ok(false) => Evaluated {
            verdict: Verdict::Fail,
            reason: None,
            error: None,
        },
        // `result.json.items[0].status` on an empty list: the value the condition needs is not
        // there. (minijinja reports it as an undefined value.)
        Err(e) if e.contains("undefined") && !tests_presence(that) => Evaluated {
            verdict: Verdict::Inconclusive,
            reason: Some(
                ctx.get("result")
                    .and_then(crate::backends::prometheus::why_no_value)
                    .unwrap_or_else(|| format!("no data: a value it reads is absent ({e})")),
            ),
            error: Some(e),
        },
        Err(e) => Evaluated {
            verdict: Verdict::Fail,
            reason: None,
            error: Some(e),
        },
    }
}

/// What a `when:` guard (or a precondition) decides.
#[derive(Debug, Clone, PartialEq)]
pub enum Guard {
    Run,
    Skip,
    /// It compares or computes with a value that is not there: neither run nor skip is
    /// known to be right. Why, naming the value.
    NoData(String),
    /// It cannot be evaluated (a type error, a bad call).
    Error(String),
}

/// Evaluates a guard. A comparison or arithmetic on an absent, null or NaN value is no data,
/// never a silent `true` or `false`; a value it only tests for truth (`when: inputs.pull`)
/// or presence (`is defined`, `is none`, `| default(…)`) is its answer.
pub fn guard(expr: &str, ctx: &Value) -> Guard {
    if let Some(u) = template::unusable_operand(expr, ctx) {
        return Guard::NoData(format!("no data: {}", u.describe()));
    }
    match template::eval_bool(expr, ctx) {
        Ok(true) => Guard::Run,
        Ok(false) => Guard::Skip,
        Err(e) if e.contains("undefined") => {
            Guard::NoData(format!("no data: a value it reads is absent ({e})"))
        }
        Err(e) => Guard::Error(e),
    }
}

/// A check of a number against bounds (an analysis metric): inconclusive without a value.
pub fn within(value: Option<f64>, min: Option<f64>, max: Option<f64>) -> Verdict {
    match value {
        None => Verdict::Inconclusive,
        Some(v) if v.is_nan() => Verdict::Inconclusive,
        Some(v) => {
            if min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m) {
                Verdict::Fail
            } else {
                Verdict::Pass
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn none_is_never_less_than_a_threshold() {
        // minijinja alone says `none < 0.01` is true.
        assert!(template::eval_bool(
            "steps.r.rate < 0.01",
            &json!({"steps": {"r": {"rate": null}}})
        )
        .unwrap());
        let e = evaluate(
            "steps.r.rate < 0.01",
            &json!({"steps": {"r": {"rate": null}}}),
            Some("r"),
        );
        assert_eq!(e.verdict, Verdict::Inconclusive);
        let e = evaluate(
            "steps.r.rate < 0.01",
            &json!({"steps": {"r": {"rate": 0.043}}}),
            Some("r"),
        );
        assert_eq!(e.verdict, Verdict::Fail);
        let e = evaluate(
            "steps.r.rate < 0.01",
            &json!({"steps": {"r": {"rate": 0.001}}}),
            Some("r"),
        );
        assert_eq!(e.verdict, Verdict::Pass);
    }

    #[test]
    fn missing_field_and_empty_list_are_inconclusive() {
        let ctx = json!({"result": {"json": {"items": []}}});
        assert_eq!(
            evaluate("result.json.items[0].status == 'ok'", &ctx, None).verdict,
            Verdict::Inconclusive
        );
        assert_eq!(
            evaluate("result.json.phase == 'done'", &ctx, None).verdict,
            Verdict::Inconclusive
        );
        // Asking about absence is an answer.
        assert_eq!(
            evaluate("result.json.phase is not defined", &ctx, None).verdict,
            Verdict::Pass
        );
    }

    #[test]
    fn prometheus_absence_says_no_data_with_the_query() {
        let ctx = json!({"result": {"query": "sum(up)", "count": 0, "empty": true, "series": []}});
        let e = evaluate("result.value < 0.01", &ctx, None);
        assert_eq!(e.verdict, Verdict::Inconclusive);
        assert!(e.reason.unwrap().contains("no data"));
    }

    #[test]
    fn a_guard_comparing_nothing_is_no_data() {
        let ctx = json!({"steps": {"r": {"rate": null, "n": 3}, "s": {"outcome": "skipped"}},
                         "inputs": {"pull": null, "t": 0.01}});
        let nd = |e: &str| matches!(guard(e, &ctx), Guard::NoData(_));
        assert!(nd("steps.r.rate < inputs.t"));
        assert!(nd("steps.r.rate * 100 > 5"));
        assert!(nd("steps.r.rate == 'x'"));
        assert!(nd("steps.s.rate > 1"), "a skipped step's capture is absent");
        assert!(nd("-steps.r.rate < 0"));
        assert!(nd("steps.r.n > 1 and steps.r.rate < 1"));
        assert!(nd("steps.r.rate is gt(1)"));
        // Asked about explicitly, or never reached: an answer.
        assert_eq!(guard("steps.r.rate is none", &ctx), Guard::Run);
        assert_eq!(guard("steps.r.rate == none", &ctx), Guard::Run);
        assert_eq!(
            guard("steps.r.rate is not none and steps.r.rate < 1", &ctx),
            Guard::Skip
        );
        assert_eq!(
            guard(
                "steps.r.rate < 1 if steps.r.rate is not none else false",
                &ctx
            ),
            Guard::Skip
        );
        assert_eq!(
            guard("steps.r.n < 1 and steps.r.rate < 1", &ctx),
            Guard::Skip
        );
        assert_eq!(guard("(steps.r.rate or 0) < 1", &ctx), Guard::Run);
        assert_eq!(guard("(steps.r.gone | default(0)) < 1", &ctx), Guard::Run);
        // minijinja's `default` replaces an absent value, not a null one.
        assert!(nd("(steps.r.rate | default(0)) < 1"));
        assert_eq!(guard("steps.r.n > 1", &ctx), Guard::Run);
        // Truth of an input: not a comparison.
        assert_eq!(guard("inputs.pull", &ctx), Guard::Skip);
        assert!(matches!(guard("steps.r.n + 'a'", &ctx), Guard::Error(_)));
        match guard("steps.r.rate < inputs.t", &ctx) {
            Guard::NoData(w) => assert!(w.contains("`steps.r.rate` has no value"), "{w}"),
            g => panic!("{g:?}"),
        }
    }

    #[test]
    fn computed_nothing_never_passes() {
        // minijinja refuses 0.0 / 0.0: an error, which fails.
        let ctx = json!({"steps": {"r": {"a": 0.0, "b": 0.0, "c": null}}});
        let e = evaluate("steps.r.a / steps.r.b < 0.01", &ctx, None);
        assert_eq!(e.verdict, Verdict::Fail, "{e:?}");
        // A value computed from null, hidden behind a filter the name check trusts.
        let e = evaluate("(steps.r.c | default(0)) * 2 < 0.01", &ctx, Some("r"));
        assert_eq!(e.verdict, Verdict::Inconclusive, "{e:?}");
    }

    #[test]
    fn all_prefers_fail_then_inconclusive() {
        use Verdict::*;
        assert_eq!(Verdict::all([Pass, Inconclusive, Fail]), Fail);
        assert_eq!(Verdict::all([Pass, Inconclusive]), Inconclusive);
        assert_eq!(Verdict::all([Pass, Pass]), Pass);
        assert_eq!(within(Some(f64::NAN), Some(1.0), None), Inconclusive);
        assert_eq!(within(Some(f64::INFINITY), None, Some(1.0)), Fail);
    }
}

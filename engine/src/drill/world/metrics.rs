//! Scripted Prometheus: the first rule whose `match` (the query as sent, or an analysis
//! metric's name) and `when` hold answers, with the point of its timeline due at the query's
//! time. The answer is written in Prometheus's own JSON API format and read back by the real
//! client's parser (`backends::prometheus::parse_answer`), so a drill and a real run go
//! through the same parsing, the same result shape and the same verdict code.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::pattern::glob;
use super::predicate::holds;
use super::{unscripted, Call, Reply, State};
use crate::backends::prometheus::{value_text, PromQuery};
use crate::drill::spec::WorldStateSpec;

/// What a query gives from a point in time on.
#[derive(Debug, Clone, PartialEq)]
pub enum Point {
    NoData,
    /// Labels and value of each series.
    Series(Vec<(BTreeMap<String, String>, f64)>),
}

#[derive(Debug, Clone)]
pub struct MetricRule {
    pub pattern: String,
    pub when: Option<WorldStateSpec>,
    /// `(since the drill started, point)`, in the order written (sorted by time when built).
    pub points: Vec<(Duration, Point)>,
}

impl MetricRule {
    fn matches(&self, q: &PromQuery) -> bool {
        glob(&self.pattern, &q.query) || q.name.as_deref() == Some(self.pattern.as_str())
    }

    /// The point due `since` after the start: the last one whose time has come. Before the
    /// first point, there is no data.
    fn at(&self, since: Duration) -> &Point {
        self.points
            .iter()
            .rev()
            .find(|(t, _)| *t <= since)
            .map(|(_, p)| p)
            .unwrap_or(&Point::NoData)
    }
}

fn since(start: DateTime<Utc>, t: DateTime<Utc>) -> Duration {
    (t - start).to_std().unwrap_or(Duration::ZERO)
}

fn unix(t: DateTime<Utc>) -> f64 {
    t.timestamp() as f64 + f64::from(t.timestamp_subsec_millis()) / 1000.0
}

/// Answers a query from the script, as Prometheus's HTTP API would (`{"status":"success",...}`).
pub fn query(st: &State, q: &PromQuery, c: &Call) -> Reply {
    let Some(rule) = st
        .metrics
        .iter()
        .find(|r| r.matches(q) && r.when.as_ref().is_none_or(|w| holds(st, w, c.now)))
    else {
        let near = st.metrics.iter().any(|r| r.matches(q));
        let why = if near {
            "a `metrics` rule matches this query, but its `when` does not hold now"
        } else {
            "no `metrics` rule matches this query (match the query with `*`, or the analysis metric's name)"
        };
        return Reply::err(unscripted(c.what, why));
    };
    let data = match &q.range {
        None => {
            let t = unix(c.now);
            let result: Vec<Value> = match rule.at(since(st.start, c.now)) {
                Point::NoData => vec![],
                Point::Series(s) => s
                    .iter()
                    .map(|(labels, v)| json!({ "metric": labels, "value": [t, value_text(*v)] }))
                    .collect(),
            };
            json!({ "resultType": "vector", "result": result })
        }
        Some(r) => {
            // One sample per step from `now - last` to `now`, as query_range evaluates them.
            let step = r.step.max(Duration::from_millis(1));
            let n = (r.last.as_secs_f64() / step.as_secs_f64()).floor() as u64;
            let mut by_labels: BTreeMap<BTreeMap<String, String>, Vec<Value>> = BTreeMap::new();
            for i in 0..=n.min(11_000) {
                let back = step.mul_f64((n - i.min(n)) as f64);
                let t = c.now - chrono::Duration::from_std(back).unwrap_or_default();
                if t < st.start {
                    continue;
                }
                if let Point::Series(s) = rule.at(since(st.start, t)) {
                    for (labels, v) in s {
                        by_labels
                            .entry(labels.clone())
                            .or_default()
                            .push(json!([unix(t), value_text(*v)]));
                    }
                }
            }
            let result: Vec<Value> = by_labels
                .into_iter()
                .map(|(labels, values)| json!({ "metric": labels, "values": values }))
                .collect();
            json!({ "resultType": "matrix", "result": result })
        }
    };
    Reply::ok(json!({ "status": "success", "data": data }))
}

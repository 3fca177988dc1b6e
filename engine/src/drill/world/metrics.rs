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
    /// `(since the drill started, point)`, sorted by time; or, when `counted`, in order with
    /// the number of queries each answers.
    pub points: Vec<(Duration, Point)>,
    /// `times` of each point when the rule answers by count, not by time.
    pub counted: Option<Vec<Option<u32>>>,
    /// Queries answered so far (counted rules).
    pub used: u32,
}

struct Times(Option<u32>);

impl super::pattern::Counted for Times {
    fn times(&self) -> Option<u32> {
        self.0
    }
}

impl MetricRule {
    fn matches(&self, q: &PromQuery) -> bool {
        glob(&self.pattern, &q.query) || q.name.as_deref() == Some(self.pattern.as_str())
    }

    /// The point due `since` after the start: the last one whose time has come. Before the
    /// first point, there is no data. A counted rule gives its next point.
    fn at(&self, since: Duration) -> &Point {
        if let Some(times) = &self.counted {
            let t: Vec<Times> = times.iter().map(|n| Times(*n)).collect();
            let used = self.used.saturating_sub(1);
            let i = super::pattern::pick(&t, used)
                .map(|p| t.iter().position(|x| std::ptr::eq(x, p)).unwrap_or(0))
                .unwrap_or(self.points.len().saturating_sub(1));
            return self.points.get(i).map(|p| &p.1).unwrap_or(&Point::NoData);
        }
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
pub fn query(st: &mut State, q: &PromQuery, c: &Call) -> Reply {
    let found = st.metrics.iter().position(|r| {
        r.matches(q)
            && r.when.as_ref().is_none_or(|w| holds(st, w, c.now))
            && r.counted.as_ref().is_none_or(|t| {
                let t: Vec<Times> = t.iter().map(|n| Times(*n)).collect();
                super::pattern::pick(&t, r.used).is_some()
            })
    });
    if let Some(i) = found {
        st.metrics[i].used += 1;
    }
    let st: &State = st;
    let Some(rule) = found.map(|i| &st.metrics[i]) else {
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

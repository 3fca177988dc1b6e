//! Compares the world with a description of a state (`when` of a scripted rule, and
//! `expect.world`), field by field, reporting each difference with what was found.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::pattern::subset;
use super::State;
use crate::drill::spec::WorldStateSpec;

/// One field of the world that is not as described.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// e.g. `kubernetes deployment prod/flowengine image`.
    pub what: String,
    pub expected: Value,
    pub actual: Value,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, got {}",
            self.what, self.expected, self.actual
        )
    }
}

/// Does the world at `now` match the description?
pub fn holds(st: &State, spec: &WorldStateSpec, now: DateTime<Utc>) -> bool {
    mismatches(st, spec, now).is_empty()
}

/// Every field of the description the world at `now` does not match, in the order written.
pub fn mismatches(st: &State, spec: &WorldStateSpec, now: DateTime<Utc>) -> Vec<Mismatch> {
    let mut out = vec![];
    let mut check = |what: String, expected: Value, actual: Value| {
        if !subset(&expected, &actual) {
            out.push(Mismatch {
                what,
                expected,
                actual,
            });
        }
    };
    if let Some(k) = &spec.kubernetes {
        for (key, want) in &k.deployments {
            let what = format!("kubernetes deployment {key}");
            let Some(d) = st.kube.deployments.get(key) else {
                if want.exists != Some(false) {
                    check(what, json!("present"), json!("absent"));
                }
                continue;
            };
            if want.exists == Some(false) {
                check(what, json!("absent"), json!("present"));
                continue;
            }
            let status = d.status(now);
            let first = d.template.containers.first();
            let image = first.map(|c| c.image.clone());
            let field = |f: &str| format!("{what} {f}");
            if let Some(i) = &want.image {
                check(field("image"), json!(i), json!(image));
            }
            if let Some(r) = want.replicas {
                check(field("replicas"), json!(r), json!(d.replicas));
            }
            if let Some(a) = want.available {
                check(field("available"), json!(a), json!(status.available));
            }
            if let Some(u) = want.updated {
                check(field("updated"), json!(u), json!(status.updated));
            }
            if let Some(r) = want.revision {
                check(field("revision"), json!(r), json!(d.revision()));
            }
            if let Some(p) = want.paused {
                check(field("paused"), json!(p), json!(d.paused));
            }
            for (name, v) in &want.env {
                let actual = first.and_then(|c| c.env.get(name));
                check(field(&format!("env {name}")), json!(v), json!(actual));
            }
        }
        for (key, want) in &k.objects {
            let actual = st.kube.objects.get(key).cloned().unwrap_or(Value::Null);
            check(format!("kubernetes object {key}"), want.clone(), actual);
        }
    }
    if let Some(c) = &spec.compose {
        for (key, want) in &c.services {
            let what = format!("compose service {key}");
            let svc = key
                .split_once('/')
                .and_then(|(p, s)| st.compose.0.get(p).and_then(|p| p.services.get(s)));
            let Some(s) = svc else {
                check(what, json!("present"), json!("absent"));
                continue;
            };
            if let Some(i) = &want.image {
                check(format!("{what} image"), json!(i), json!(s.image));
            }
            if let Some(state) = want.state {
                check(
                    format!("{what} state"),
                    json!(state.as_str()),
                    json!(s.state.as_str()),
                );
            }
        }
    }
    out
}

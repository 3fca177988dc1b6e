//! Evidence texts: what a failure shows (observed values, metric readings, failed checks).

use serde_json::{Map, Value};

use crate::exec::events::Check;
use crate::exec::verdict::Verdict;
use crate::model::ActionKind;

/// The verdict of a set of checks.
pub(super) fn checks_verdict(checks: &[Check]) -> Verdict {
    Verdict::all(checks.iter().map(Check::verdict))
}

pub(super) fn observed_text(obs: &Map<String, Value>) -> String {
    obs.iter()
        .map(|(k, v)| format!("{k} = {}", short_json(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `success-rate = 92 (min 99): fail, p99-ms = no data: inconclusive`
pub(super) fn readings_text(rs: &[crate::exec::events::MetricReading]) -> String {
    rs.iter()
        .map(|r| {
            let v = match (r.value, &r.text) {
                (Some(v), _) => crate::backends::prometheus::value_text(v),
                (None, Some(t)) => t.clone(),
                (None, None) => "no value".into(),
            };
            let mut bounds = vec![];
            if let Some(m) = r.min {
                bounds.push(format!("min {m}"));
            }
            if let Some(m) = r.max {
                bounds.push(format!("max {m}"));
            }
            format!(
                "{} = {v} ({}): {}",
                r.name,
                bounds.join(", "),
                r.verdict.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn first_chars(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n).collect::<String>())
    } else {
        s.to_string()
    }
}

pub(super) fn short_json(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

pub(super) fn failed_checks_message(checks: &[Check]) -> String {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| {
            let label = c.message.clone().unwrap_or_else(|| format!("`{}`", c.that));
            if c.verdict() == Verdict::Inconclusive {
                let why = c.reason.clone().unwrap_or_else(|| "no value".into());
                return format!("verify inconclusive: {label}: {why}");
            }
            let mut s = format!("verify failed: {label}");
            if !c.observed.is_empty() {
                s.push_str(&format!(" (observed {})", observed_text(&c.observed)));
            }
            if let Some(e) = &c.error {
                s.push_str(&format!(" [{e}]"));
            }
            s
        })
        .collect();
    failed.join("; ")
}

/// Why a result may lack what a capture or check reads: an HTTP error status (with the
/// start of the body), or a command that exited non-zero (with its last line of stderr).
/// Control characters are dropped: the text comes from a server or a process.
pub(super) fn result_evidence(kind: &ActionKind, result: &Value) -> Option<String> {
    let clean = |s: &str| -> String {
        let one: String = s
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        if one.chars().count() > 160 {
            format!("{}…", one.chars().take(160).collect::<String>())
        } else {
            one
        }
    };
    match kind {
        ActionKind::Http(_) => {
            let status = result.get("status").and_then(Value::as_u64)?;
            if status < 400 {
                return None;
            }
            let reason = u16::try_from(status)
                .ok()
                .and_then(|s| reqwest::StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .map(|r| format!(" {r}"))
                .unwrap_or_default();
            let body = result
                .get("body")
                .and_then(Value::as_str)
                .map(clean)
                .filter(|b| !b.is_empty())
                .map(|b| format!(": {b}"))
                .unwrap_or_default();
            Some(format!("the server answered HTTP {status}{reason}{body}"))
        }
        ActionKind::Shell(_) => {
            let code = result.get("exit_code").and_then(Value::as_i64)?;
            if code == 0 {
                return None;
            }
            let last = result
                .get("stderr")
                .and_then(Value::as_str)
                .and_then(|e| e.trim().lines().last())
                .map(clean)
                .filter(|l| !l.is_empty())
                .map(|l| format!(": {l}"))
                .unwrap_or_default();
            Some(format!("the command exited with code {code}{last}"))
        }
        _ => None,
    }
}

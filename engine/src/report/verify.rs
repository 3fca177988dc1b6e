//! Verification polls summarised for a reader: each observed value across the polls
//! (`result.status 503 → 503 → 200 after 3 polls, 20s`), how long it took, and whether it
//! held, failed, or was still polling when the journal ends.

use chrono::{DateTime, Utc};

use super::build::Builder;
use super::model::*;
use super::steps::observed_text;
use super::text::{duration, plural};
use crate::exec::events::Check;

/// One verification poll, kept until the step ends and its summary can be written.
pub(super) struct Poll {
    pub(super) at: DateTime<Utc>,
    pub(super) ok: bool,
    pub(super) checks: Vec<Check>,
}

impl Builder {
    /// Writes the verification summary of a step from its polls, and its timeline line.
    /// `ended` is false when the journal stops while the step is still polling.
    pub(super) fn close_verification(&mut self, id: &str, ended: bool) {
        let Some(polls) = self.polls.remove(id) else {
            return;
        };
        let Some(last) = polls.last() else { return };
        let start = self.first_attempt.get(id).copied().unwrap_or(polls[0].at);
        let spent = (last.at - start).num_milliseconds().max(0) as u64;
        let ok = last.ok;
        let n = polls.len() as u32;
        let chain = value_chains(&polls);
        let count = plural(u64::from(n), "poll", "polls");
        let no_data = last
            .checks
            .iter()
            .any(|c| c.verdict() == crate::exec::verdict::Verdict::Inconclusive);
        let summary = if ok {
            format!("{chain} after {count}, {}", duration(spent))
        } else if ended && no_data {
            let why = last
                .checks
                .iter()
                .find_map(|c| c.reason.clone())
                .unwrap_or_else(|| "no value".into());
            format!(
                "{chain} — still no data after {count}, {} ({why})",
                duration(spent)
            )
        } else if ended {
            format!("{chain} — still failing after {count}, {}", duration(spent))
        } else {
            format!(
                "{chain} so far ({count}, {}); the journal ends here",
                duration(spent)
            )
        };
        let checks = last
            .checks
            .iter()
            .map(|c| CheckLine {
                that: c.that.clone(),
                ok: c.ok,
                message: c.message.clone(),
                observed: observed_text(&c.observed),
                error: c.error.clone(),
            })
            .collect();
        let at = last.at;
        self.step_mut(id, "main").verification = Some(Verification {
            ok,
            polls: n,
            duration_ms: spent,
            summary: summary.clone(),
            checks,
        });
        let (verb, status) = match (ok, ended) {
            (true, _) => ("verified", "ok"),
            (false, true) => ("verification failed", "fail"),
            (false, false) => ("verification unfinished", "warn"),
        };
        self.line(
            at,
            "verify",
            status,
            Some(id),
            format!("`{id}` {verb}: {summary}"),
        );
    }
}

/// `result.status 503 → 503 → 200`: each observed value across the polls, in order.
fn value_chains(polls: &[Poll]) -> String {
    let mut keys: Vec<String> = vec![];
    for p in polls {
        for c in &p.checks {
            for k in c.observed.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    // The measured values, not the thresholds they are compared with: inputs and env are
    // left out when anything else was observed.
    if keys
        .iter()
        .any(|k| !k.starts_with("inputs.") && !k.starts_with("env."))
    {
        keys.retain(|k| !k.starts_with("inputs.") && !k.starts_with("env."));
    }
    if keys.is_empty() {
        // Nothing observed (a constant expression, or a capture that read nothing): say which
        // conditions held each time, and which polls had no data (never "false").
        let marks: Vec<&str> = polls
            .iter()
            .map(|p| {
                if p.ok {
                    "held"
                } else if p
                    .checks
                    .iter()
                    .any(|c| c.verdict() == crate::exec::verdict::Verdict::Inconclusive)
                {
                    "no data"
                } else {
                    "false"
                }
            })
            .collect();
        // `capture `rate` = `result.value`` already quotes its parts.
        let thats: Vec<String> = polls
            .last()
            .map(|p| {
                p.checks
                    .iter()
                    .map(|c| {
                        if c.that.contains('`') {
                            c.that.clone()
                        } else {
                            format!("`{}`", c.that)
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        return format!("{} {}", thats.join(", "), chain(&marks));
    }
    keys.iter()
        .map(|k| {
            let vals: Vec<String> = polls
                .iter()
                .filter_map(|p| {
                    p.checks
                        .iter()
                        .find_map(|c| c.observed.get(k))
                        .map(|v| match v {
                            serde_json::Value::Null => "no data".to_string(),
                            v => value_text(v, 40),
                        })
                        .or_else(|| {
                            p.checks
                                .iter()
                                .any(|c| c.verdict() == crate::exec::verdict::Verdict::Inconclusive)
                                .then(|| "no data".to_string())
                        })
                })
                .collect();
            let vals: Vec<&str> = vals.iter().map(String::as_str).collect();
            format!("{k} {}", chain(&vals))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `a → b → c`, with the middle of long chains elided.
fn chain(vals: &[&str]) -> String {
    const EDGE: usize = 3;
    if vals.len() <= 2 * EDGE + 1 {
        return vals.join(" → ");
    }
    format!(
        "{} → … → {}",
        vals[..EDGE].join(" → "),
        vals[vals.len() - EDGE..].join(" → ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_chains_keep_both_ends() {
        let v: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        assert_eq!(chain(&v), "1 → 2 → 3 → … → 8 → 9 → 10");
        assert_eq!(chain(&["503", "200"]), "503 → 200");
    }
}

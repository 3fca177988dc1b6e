//! Small formatting shared by the report's builder and renderers: time zones, durations,
//! one-line summaries of values and actions, and the bounded tail of a step's output.

use chrono::{DateTime, FixedOffset, Local, Offset, Utc};
use serde_json::Value;

use super::model::{OutputTail, Stamp};

/// Lines of output kept per step in the evidence appendix.
pub const TAIL_LINES: usize = 20;
/// Characters of output kept per step (a few very long lines count too).
pub const TAIL_CHARS: usize = 2000;

/// The zone times are shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zone {
    /// The operator's zone (`TZ`, else the system's), with its UTC offset.
    #[default]
    Local,
    Utc,
}

impl Zone {
    pub fn at(self, t: DateTime<Utc>) -> DateTime<FixedOffset> {
        match self {
            Zone::Utc => t.fixed_offset(),
            Zone::Local => t.with_timezone(&Local).fixed_offset(),
        }
    }

    /// `UTC` or `UTC+05:30`, for the moment `t` (offsets change with daylight saving).
    pub fn label(self, t: DateTime<Utc>) -> String {
        let off = self.at(t).offset().fix().local_minus_utc();
        if off == 0 {
            return "UTC".into();
        }
        let sign = if off < 0 { '-' } else { '+' };
        let off = off.abs();
        format!("UTC{sign}{:02}:{:02}", off / 3600, (off % 3600) / 60)
    }

    pub fn stamp(self, t: DateTime<Utc>, run_start: DateTime<Utc>) -> Stamp {
        let local = self.at(t);
        Stamp {
            iso: local.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            clock: local.format("%H:%M:%S").to_string(),
            offset_ms: (t - run_start).num_milliseconds(),
        }
    }
}

pub fn duration(ms: u64) -> String {
    crate::model::fmt_duration(std::time::Duration::from_millis(ms))
}

/// Whitespace collapsed to single spaces, cut to `max` characters with an ellipsis.
pub fn one_line(s: &str, max: usize) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut out: String = flat.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A one-line summary of an action as journaled in `step_started.rendered`.
pub fn action_summary(action: &str, rendered: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let text = match action {
        "shell" => {
            if let Some(argv) = rendered.get("argv").and_then(Value::as_array) {
                argv.iter()
                    .map(|a| quote(&s(a)))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                let script = s(&rendered["script"]);
                let mut lines = script.trim().lines();
                let first = lines.next().unwrap_or_default().to_string();
                if lines.next().is_some() {
                    format!("sh -c '{first} …'")
                } else {
                    format!("sh -c '{first}'")
                }
            }
        }
        "http" => {
            let req = &rendered["request"];
            let method = req.get("method").and_then(Value::as_str).unwrap_or("GET");
            let target = req
                .get("url")
                .or_else(|| req.get("path"))
                .map(s)
                .unwrap_or_default();
            format!("{method} {target}")
        }
        "confirm" | "input" => s(&rendered["prompt"]),
        "manual" => s(&rendered["instructions"]),
        "wait" => format!("wait {}", value_or(rendered)),
        "call" => format!("call {}", s(&rendered["runbook"])),
        "assert" => match rendered.as_array() {
            Some(conds) => conds
                .iter()
                .map(|c| s(&c["that"]))
                .collect::<Vec<_>>()
                .join(" and "),
            None => value_or(rendered),
        },
        other => match other.split_once('.') {
            // kubernetes.<verb> / compose.<verb>: the verb's arguments say what it touches.
            Some((_, verb)) => {
                let args = rendered.get(verb).unwrap_or(rendered);
                let name = args.get("name").map(s).unwrap_or_default();
                let kind = args.get("kind").map(s).unwrap_or_default();
                let obj = [kind, name]
                    .into_iter()
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
                    .join("/");
                format!("{verb} {obj}").trim().to_string()
            }
            None => value_or(rendered),
        },
    };
    one_line(&text, 160)
}

fn value_or(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn quote(a: &str) -> String {
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// The end of an action's last result: stdout and stderr of a command, the status and body of
/// an HTTP response, the JSON of anything else.
pub fn output_tail(result: &Value) -> Option<OutputTail> {
    let text = if let Some(code) = result.get("exit_code") {
        let mut t = String::new();
        let out = result["stdout"].as_str().unwrap_or_default();
        let err = result["stderr"].as_str().unwrap_or_default();
        t.push_str(out.trim_end());
        if !err.trim().is_empty() {
            if !t.is_empty() {
                t.push('\n');
            }
            t.push_str("[stderr]\n");
            t.push_str(err.trim_end());
        }
        if t.is_empty() {
            format!("(no output; exit code {})", value_or(code))
        } else {
            t
        }
    } else if let Some(status) = result.get("status").filter(|s| s.is_u64()) {
        let body = result["body"].as_str().unwrap_or_default();
        format!("HTTP {status}\n{}", body.trim_end())
    } else if result.is_null() {
        return None;
    } else {
        serde_json::to_string_pretty(result).unwrap_or_default()
    };
    Some(tail(&text, TAIL_LINES, TAIL_CHARS))
}

/// The last `lines` lines of `text`, at most `chars` characters of them.
pub fn tail(text: &str, lines: usize, chars: usize) -> OutputTail {
    let all: Vec<&str> = text.lines().collect();
    let mut keep = all.len().min(lines);
    let mut kept = all[all.len() - keep..].join("\n");
    while kept.chars().count() > chars && keep > 1 {
        keep -= 1;
        kept = all[all.len() - keep..].join("\n");
    }
    if kept.chars().count() > chars {
        // One enormous line: keep its end.
        let n = kept.chars().count();
        kept = format!("…{}", kept.chars().skip(n - chars).collect::<String>());
    }
    OutputTail {
        text: kept,
        lines_cut: all.len() - keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tail_keeps_the_end_and_counts_what_it_cut() {
        let text = (1..=50)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let t = tail(&text, 20, 10_000);
        assert_eq!(t.lines_cut, 30);
        assert!(t.text.starts_with("line 31\n"), "{}", t.text);
        assert!(t.text.ends_with("line 50"));
        let t = tail(&"x".repeat(5000), 20, 100);
        assert_eq!(t.text.chars().count(), 101);
        assert!(t.text.starts_with('…'));
    }

    #[test]
    fn summaries_name_what_the_action_touches() {
        let argv = json!({"argv": ["echo", "hello world"]});
        assert_eq!(action_summary("shell", &argv), "echo 'hello world'");
        let http = json!({"request": {"method": "POST", "url": "http://x/y"}});
        assert_eq!(action_summary("http", &http), "POST http://x/y");
        let k = json!({"scale": {"kind": "Deployment", "name": "api", "replicas": 3}});
        assert_eq!(
            action_summary("kubernetes.scale", &k),
            "scale Deployment/api"
        );
    }

    #[test]
    fn utc_zone_label() {
        let t = Utc::now();
        assert_eq!(Zone::Utc.label(t), "UTC");
        assert!(Zone::Utc.stamp(t, t).iso.ends_with('Z'));
    }
}

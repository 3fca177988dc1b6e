//! Text for the terminal: wrapping, shortening, an action's result and its rendered arguments.

/// The width of the terminal on stderr, if it is one.
pub(super) fn terminal_width() -> Option<usize> {
    console::Term::stderr()
        .size_checked()
        .map(|(_, w)| usize::from(w))
        .filter(|w| *w >= 20)
}

/// Wraps a line at word boundaries to `width` columns. Continuation lines are indented to
/// where the text starts (after the line's leading spaces and a leading marker such as
/// `▶ [2/5]`, `│` or `-`, up to a third of the width); words longer than a line (URLs) are
/// kept whole rather than cut.
pub fn wrap(line: &str, width: usize) -> String {
    if console::measure_text_width(line) <= width {
        return line.to_string();
    }
    let lead = line.len() - line.trim_start().len();
    let indent = " ".repeat((lead + 2).min(width / 3));
    let opts = textwrap::Options::new(width)
        .subsequent_indent(&indent)
        .break_words(false)
        .word_separator(textwrap::WordSeparator::AsciiSpace);
    textwrap::wrap(line, opts).join("\n")
}

/// A text written with line breaks of its own (a YAML block's), as lines to wrap anew: the
/// lines of a paragraph are joined, except a list item (`- `, `* `, `1. `) or an indented line,
/// which starts a line; blank lines stay.
pub fn reflow(text: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    let mut open = false;
    for l in text.lines() {
        let t = l.trim_start();
        let item = t.starts_with("- ")
            || t.starts_with("* ")
            || t.split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if t.is_empty() {
            out.push(String::new());
            open = false;
        } else if open && !item && t.len() == l.len() {
            let last = out.last_mut().expect("an open line");
            last.push(' ');
            last.push_str(t);
        } else {
            out.push(l.to_string());
            open = true;
        }
    }
    out
}

/// A line for stderr, wrapped at words to the terminal's width when stderr is a terminal.
pub fn fit(line: &str) -> String {
    match terminal_width() {
        Some(w) => wrap(line, w),
        None => line.to_string(),
    }
}

/// A message that ends with a command to run, `message: command`: on one line when it fits
/// (and always off a terminal, for logs and scripts); else the message wrapped at words and the
/// command on lines of its own, continued with ` \` so that it still pastes into a shell as one
/// command.
pub fn with_command(message: &str, command: &str) -> String {
    let one = format!("{message}: {command}");
    match terminal_width() {
        Some(w) if console::measure_text_width(&one) > w => {
            format!(
                "{}\n{}",
                wrap(&format!("{message}:"), w),
                wrap_command(command, w)
            )
        }
        _ => one,
    }
}

/// A command wrapped at words to `width` columns, indented, each line but the last ending in
/// ` \` (a shell's line continuation).
pub fn wrap_command(command: &str, width: usize) -> String {
    let opts = textwrap::Options::new(width.saturating_sub(2).max(20))
        .initial_indent("  ")
        .subsequent_indent("    ")
        .break_words(false)
        .word_separator(textwrap::WordSeparator::AsciiSpace);
    textwrap::wrap(command, opts).join(" \\\n")
}

/// A JSON value as one line with a space after each `,` and `:` (as Python writes it), so that
/// a long one wraps at those spaces rather than being cut by the terminal mid-word.
pub(super) fn spaced(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Array(a) => format!("[{}]", a.iter().map(spaced).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), spaced(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

pub(super) fn short(s: &str) -> String {
    if s.chars().count() > 100 {
        format!("{}…", s.chars().take(100).collect::<String>())
    } else {
        s.to_string()
    }
}

/// What a read-only step's result says, in a few lines: the revisions of a rollout history,
/// the status and start of an HTTP answer, the image and replicas of a workload, the names in
/// a list. Nothing for results that say nothing more than "done".
pub(super) fn result_lines(result: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    if let Some(revs) = result.get("revisions").and_then(Value::as_array) {
        let current = result.get("current_revision").and_then(Value::as_i64);
        let mut out = vec![format!("{} revisions:", revs.len())];
        for r in revs.iter().rev().take(10) {
            let n = r.get("revision").and_then(Value::as_i64).unwrap_or(0);
            let images: Vec<&str> = r
                .get("images")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let cause = r
                .get("change_cause")
                .and_then(Value::as_str)
                .map(|c| format!(" — {c}"))
                .unwrap_or_default();
            let mark = if Some(n) == current { " (current)" } else { "" };
            out.push(short(&format!("  {n}: {}{cause}{mark}", images.join(", "))));
        }
        return out;
    }
    if let Some(status) = result.get("status").and_then(Value::as_u64) {
        let body = result
            .get("body")
            .and_then(Value::as_str)
            .map(|b| match serde_json::from_str::<Value>(b) {
                Ok(j) => spaced(&j),
                Err(_) => b.split_whitespace().collect::<Vec<_>>().join(" "),
            })
            .unwrap_or_default();
        return vec![short(&format!("HTTP {status}: {body}"))];
    }
    if let Some(items) = result.get("items").and_then(Value::as_array) {
        let names: Vec<&str> = items
            .iter()
            .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
            .collect();
        return vec![short(&format!(
            "{} found: {}",
            items.len(),
            names.join(", ")
        ))];
    }
    if let (Some(kind), Some(name)) = (
        result.get("kind").and_then(Value::as_str),
        result.pointer("/metadata/name").and_then(Value::as_str),
    ) {
        let images: Vec<&str> = result
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.get("image").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let mut l = format!("{kind} {name}");
        if !images.is_empty() {
            l.push_str(&format!(": {}", images.join(", ")));
        }
        if let Some(rev) = result
            .pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
            .and_then(Value::as_str)
        {
            l.push_str(&format!(", revision {rev}"));
        }
        if let Some(want) = result.pointer("/spec/replicas").and_then(Value::as_u64) {
            let avail = result
                .pointer("/status/availableReplicas")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            l.push_str(&format!(", {avail}/{want} available"));
        }
        return vec![short(&l)];
    }
    vec![]
}

/// One line describing a rendered action, for the log.
pub(super) fn describe(rendered: &serde_json::Value) -> String {
    use serde_json::Value;
    if let Some(argv) = rendered.get("argv").and_then(Value::as_array) {
        return format!(
            "$ {}",
            argv.iter()
                .map(|a| crate::exec::actions::shell_quote(a.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if let Some(script) = rendered.get("script").and_then(Value::as_str) {
        return format!(
            "$ sh -c {}",
            short(&crate::exec::actions::shell_quote(script.trim()))
        );
    }
    if let Some(req) = rendered.get("request") {
        let m = req.get("method").and_then(Value::as_str).unwrap_or("GET");
        let u = req
            .get("url")
            .or_else(|| req.get("path"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return format!("{m} {u}");
    }
    String::new()
}

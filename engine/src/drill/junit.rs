//! JUnit XML for CI systems: one `testsuite` of drills, one `testcase` per drill, a `failure`
//! for unmet expectations and an `error` for a drill that could not run.

use std::fmt::Write;

/// One drill's result as JUnit sees it.
#[derive(Debug, Clone, Default)]
pub struct Case {
    /// The drill's name (or its file when it could not be read).
    pub name: String,
    /// The runbook drilled.
    pub classname: String,
    pub file: String,
    /// Real seconds the drill took.
    pub seconds: f64,
    /// (message, details) of a failed drill.
    pub failure: Option<(String, String)>,
    /// (message, details) of a drill that could not run.
    pub error: Option<(String, String)>,
    /// The score and virtual duration, for people reading the report.
    pub output: String,
}

/// Escapes text for XML attributes and content, dropping characters XML 1.0 cannot carry.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The whole report.
pub fn render(cases: &[Case], seconds: f64) -> String {
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let errors = cases.iter().filter(|c| c.error.is_some()).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let head = format!(
        "name=\"runbook drills\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{seconds:.3}\"",
        cases.len()
    );
    let _ = writeln!(x, "<testsuites {head}>");
    let _ = writeln!(x, "  <testsuite {head}>");
    for c in cases {
        let _ = writeln!(
            x,
            "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" time=\"{:.3}\">",
            escape(&c.name),
            escape(&c.classname),
            escape(&c.file),
            c.seconds
        );
        for (tag, v) in [("failure", &c.failure), ("error", &c.error)] {
            if let Some((msg, details)) = v {
                let _ = writeln!(
                    x,
                    "      <{tag} message=\"{}\" type=\"drill\">{}</{tag}>",
                    escape(msg),
                    escape(details)
                );
            }
        }
        if !c.output.is_empty() {
            let _ = writeln!(x, "      <system-out>{}</system-out>", escape(&c.output));
        }
        x.push_str("    </testcase>\n");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("a<b & \"c\"\u{1b}[0m"),
            "a&lt;b &amp; &quot;c&quot;[0m"
        );
    }

    #[test]
    fn counts_failures_and_errors() {
        let cases = vec![
            Case {
                name: "ok".into(),
                ..Default::default()
            },
            Case {
                name: "bad".into(),
                failure: Some(("outcome: expected succeeded, got failed".into(), "d".into())),
                ..Default::default()
            },
            Case {
                name: "broken".into(),
                error: Some(("invalid drill".into(), String::new())),
                ..Default::default()
            },
        ];
        let x = render(&cases, 0.5);
        assert!(x.contains("tests=\"3\" failures=\"1\" errors=\"1\""), "{x}");
        assert!(x.contains("<failure message=\"outcome: expected succeeded, got failed\" type=\"drill\">d</failure>"), "{x}");
        assert_eq!(x.matches("<testcase ").count(), 3);
    }
}

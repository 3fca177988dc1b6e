//! Diagnostics: a located problem in a file, rendered rustc-style (via miette) or as JSON.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};
use serde::Serialize;

/// A 1-based line and column (columns count characters, not bytes). `0:0` means "whole file".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Loc {
    pub line: u32,
    pub col: u32,
}

impl Loc {
    pub fn new(line: u32, col: u32) -> Self {
        Loc { line, col }
    }

    /// The location `chars` characters to the right on the same line.
    pub fn shifted(self, chars: usize) -> Self {
        Loc {
            line: self.line,
            col: self.col + chars as u32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable identifier of the class of problem, e.g. `unknown-field`.
    pub code: &'static str,
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// How many characters the caret underlines (at least 1).
    #[serde(skip)]
    pub len: usize,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(file: &str, loc: Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code: "error",
            file: file.to_string(),
            line: loc.line,
            column: loc.col,
            len: 1,
            message: message.into(),
            label: None,
            help: None,
        }
    }

    pub fn warning(file: &str, loc: Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, loc, message)
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn with_len(mut self, len: usize) -> Self {
        self.len = len.max(1);
        self
    }

    pub fn loc(&self) -> Loc {
        Loc::new(self.line, self.column)
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic with the source line and a caret under the column.
    /// `source` is the file's text when it can be shown (text, not binary).
    ///
    /// The result is meant for a terminal, with miette's own colours: everything taken from
    /// outside (the message, which may quote a value, the help, the file name, the source) is
    /// made visible first (`term::visible`); in the quoted source, each unsafe character
    /// becomes U+FFFD so that columns stay where they were.
    pub fn render(&self, source: Option<&str>, color: bool) -> String {
        use crate::term::{is_unsafe, visible};
        let source: Option<String> = source.map(|s| {
            s.replace("\r\n", "\n")
                .chars()
                .map(|c| if is_unsafe(c) { '\u{fffd}' } else { c })
                .collect()
        });
        let source = source.as_deref();
        let file = visible(&self.file);
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        // The header names the location itself (see `excerpt`), so miette must not compute one.
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_context_lines(1)
            .with_links(false)
            .without_primary_span_start();
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        // Spelled out, so that the class is clear without colour or glyphs.
        let mut diag = MietteDiagnostic::new(visible(&self.message).into_owned())
            .with_severity(match self.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            })
            .with_code(format!("{sev}[{}]", self.code));
        if let Some(help) = &self.help {
            diag = diag.with_help(visible(help).into_owned());
        }
        let mut out = String::new();
        match source
            .filter(|_| self.line > 0)
            .and_then(|s| excerpt(s, self.loc(), self.len))
        {
            Some((text, off, len)) => {
                let label = self
                    .label
                    .as_deref()
                    .map_or_else(|| "here".to_string(), |l| visible(l).into_owned());
                diag = diag.with_label(LabeledSpan::new(Some(label), off, len));
                let name = format!("{file}:{}:{}", self.line, self.column);
                let report = miette::Report::new(diag)
                    .with_source_code(NamedSource::new(name, text).with_language("yaml"));
                let _ = handler.render_report(&mut out, report.as_ref());
            }
            None => {
                // No source to quote: the location leads the message, as in `file:line:col: ...`.
                let at = if self.line > 0 {
                    format!("{file}:{}:{}", self.line, self.column)
                } else {
                    file.to_string()
                };
                let mut plain = diag;
                plain.message = format!("{at}: {}", visible(&self.message));
                let _ = handler.render_report(&mut out, &plain);
            }
        }
        out
    }
}

/// Source lines wider than this are cropped around the column (minified or generated files).
const MAX_LINE: usize = 120;

/// The source to quote for a diagnostic at `loc`: its line and one line either side, long lines
/// cropped, preceded by blank lines so that the quoted lines keep their numbers. Returns the
/// text, the byte offset of the caret in it, and the byte length to underline.
fn excerpt(src: &str, loc: Loc, chars: usize) -> Option<(String, usize, usize)> {
    let lines: Vec<&str> = src.lines().collect();
    let at = loc.line as usize - 1;
    if at >= lines.len() {
        return None;
    }
    let first = at.saturating_sub(1);
    let mut text = "\n".repeat(first);
    let mut caret = (0, 1);
    for (i, line) in lines.iter().enumerate().take(at + 2).skip(first) {
        let line: Vec<char> = line.chars().collect();
        if i != at {
            text.extend(line.iter().take(MAX_LINE));
            if line.len() > MAX_LINE {
                text.push('…');
            }
            text.push('\n');
            continue;
        }
        let col = (loc.col.max(1) as usize - 1).min(line.len());
        let (from, to) = if line.len() <= MAX_LINE {
            (0, line.len())
        } else {
            let from = col.saturating_sub(MAX_LINE / 3);
            (from, (from + MAX_LINE).min(line.len()))
        };
        if from > 0 {
            text.push('…');
        }
        let before: String = line[from..col].iter().collect();
        let off = text.len() + before.len();
        let under: usize = line[col..to]
            .iter()
            .take(chars.max(1))
            .map(|c| c.len_utf8())
            .sum();
        text.extend(&line[from..to]);
        if to < line.len() {
            text.push('…');
        }
        text.push('\n');
        caret = (off, under.max(usize::from(col < to)));
    }
    Some((text, caret.0, caret.1))
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {sev}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(h) = &self.help {
            write!(f, " (help: {h})")?;
        }
        Ok(())
    }
}

/// The closest candidate to `word` by edit distance, when it is close enough to be a typo and
/// no other candidate is as close (`P5` is as near `P1` as `P4`: suggesting one would mislead).
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(f64, &str)> = None;
    let mut tied = false;
    for c in candidates {
        let score = strsim::jaro_winkler(word, c);
        let dist = strsim::damerau_levenshtein(word, c);
        let close = dist <= 2.max(word.len() / 3) || score > 0.85;
        if !close {
            continue;
        }
        match best {
            Some((s, b)) if (score - s).abs() < 1e-9 && b != c => tied = true,
            Some((s, _)) if score <= s => {}
            _ => {
                best = Some((score, c));
                tied = false;
            }
        }
    }
    best.filter(|_| !tied).map(|(_, c)| c.to_string())
}

/// Sorts diagnostics by file, position, then message, for stable output.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.column, &a.message).cmp(&(&b.file, b.line, b.column, &b.message))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_only_when_one_candidate_is_closest() {
        assert_eq!(
            did_you_mean("stpes", ["steps", "inputs", "metadata"]),
            Some("steps".into())
        );
        assert_eq!(did_you_mean("P5", ["P1", "P2", "P3", "P4"]), None);
        assert_eq!(did_you_mean("zzzz", ["steps"]), None);
    }

    #[test]
    fn excerpt_keeps_line_numbers_and_crops_long_lines() {
        let long = format!("key: {}", "x".repeat(500));
        let src = format!("a: 1\nb: 2\n{long}\nc: 3\n");
        let (text, off, len) = excerpt(&src, Loc::new(3, 300), 4).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Blank lines keep the quoted ones at their own numbers.
        assert_eq!(lines[0], "");
        assert_eq!(lines[1], "b: 2");
        assert!(lines[2].starts_with('…') && lines[2].ends_with('…'));
        assert!(lines[2].chars().count() <= MAX_LINE + 2);
        assert_eq!(&text[off..off + len], "xxxx");
    }

    #[test]
    fn rendering_names_the_location_with_or_without_source() {
        let d = Diagnostic::error("f.yaml", Loc::new(2, 1), "bad").with_code("c");
        let with = d.render(Some("a: 1\nb: 2\n"), false);
        assert!(
            with.contains("error[c]") && with.contains("[f.yaml:2:1]"),
            "{with}"
        );
        let without = d.render(None, false);
        assert!(without.contains("f.yaml:2:1: bad"), "{without}");
    }
}

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
    /// `source` is the file's text when it is available (and valid UTF-8).
    pub fn render(&self, source: Option<&str>, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_context_lines(1)
            .with_links(false);
        let mut diag = MietteDiagnostic::new(self.message.clone())
            .with_severity(match self.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            })
            .with_code(self.code);
        if let Some(help) = &self.help {
            diag = diag.with_help(help.clone());
        }
        let mut out = String::new();
        let offset = source.and_then(|s| byte_offset(s, self.loc()));
        match (source, offset) {
            (Some(src), Some(off)) if self.line > 0 => {
                let len = span_len(src, off, self.len);
                let label = self.label.clone().unwrap_or_else(|| "here".to_string());
                diag = diag.with_label(LabeledSpan::new(Some(label), off, len));
                let report = miette::Report::new(diag).with_source_code(
                    NamedSource::new(&self.file, src.to_string()).with_language("yaml"),
                );
                let _ = handler.render_report(&mut out, report.as_ref());
            }
            _ => {
                let header = if self.line > 0 {
                    format!("{}:{}:{}", self.file, self.line, self.column)
                } else {
                    self.file.clone()
                };
                let _ = handler.render_report(&mut out, &diag);
                out = format!("{header}\n{out}");
            }
        }
        out
    }
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

/// Byte offset of a 1-based line/column (in characters) within `src`.
pub fn byte_offset(src: &str, loc: Loc) -> Option<usize> {
    if loc.line == 0 {
        return None;
    }
    let mut line_start = 0usize;
    for (i, line) in src.split_inclusive('\n').enumerate() {
        if i + 1 == loc.line as usize {
            let col = loc.col.max(1) as usize - 1;
            let within = line
                .char_indices()
                .nth(col)
                .map(|(b, _)| b)
                .unwrap_or(line.trim_end_matches('\n').len());
            return Some(line_start + within);
        }
        line_start += line.len();
    }
    Some(src.len())
}

/// Clamps an underline of `chars` characters starting at `off` to the end of its line.
fn span_len(src: &str, off: usize, chars: usize) -> usize {
    let rest = &src[off..];
    let line_end = rest.find('\n').unwrap_or(rest.len());
    let line = &rest[..line_end];
    let bytes: usize = line.chars().take(chars.max(1)).map(char::len_utf8).sum();
    bytes.max(if line.is_empty() { 0 } else { 1 })
}

/// The closest candidate to `word` by edit distance, when it is close enough to be a typo.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(word, c);
        let dist = strsim::damerau_levenshtein(word, c);
        let close = dist <= 2.max(word.len() / 3) || score > 0.85;
        if close && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// Sorts diagnostics by file, position, then message, for stable output.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.column, &a.message).cmp(&(&b.file, b.line, b.column, &b.message))
    });
}

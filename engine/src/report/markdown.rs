//! Markdown through a minijinja template: the built-in PIR template, or a team's own
//! (`--template FILE`) over the same context. The filters keep text from breaking the
//! document in GitHub and GitLab (tables, code spans, fences) without any raw HTML.

use minijinja::{syntax::SyntaxConfig, Environment, UndefinedBehavior};

use super::model::Report;
use super::ReportError;

/// The built-in template, shipped in the binary.
pub const BUILTIN: &str = include_str!("templates/pir.md.j2");
pub const BUILTIN_NAME: &str = "pir.md.j2";

/// Renders the report with a template (`name` is only for error messages).
pub fn render(r: &Report, name: &str, source: &str) -> Result<String, ReportError> {
    let env = environment()?;
    let err = |e: minijinja::Error| ReportError::Template {
        name: name.to_string(),
        message: describe(&e),
    };
    let tmpl = env.template_from_named_str(name, source).map_err(err)?;
    let ctx = minijinja::Value::from(minijinja::value::Serde(r));
    let mut out = tmpl.render(ctx).map_err(err)?;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

fn describe(e: &minijinja::Error) -> String {
    let mut s = match e.line() {
        Some(l) => format!("line {l}: {}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(d) = e.detail() {
        s.push_str(&format!(" ({d})"));
    }
    s
}

fn environment() -> Result<Environment<'static>, ReportError> {
    let mut env = Environment::new();
    // A misspelt field in a team's template is an error, not a silently empty line.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(|e| ReportError::Template {
            name: BUILTIN_NAME.into(),
            message: e.to_string(),
        })?;
    env.set_syntax(syntax);
    env.add_filter("md", |s: String| md(&s));
    env.add_filter("inline", |s: String| inline(&s));
    env.add_filter("code", |s: String| code(&s));
    env.add_filter("cell", |s: String| cell(&s));
    env.add_filter("fence", |s: String, lang: Option<String>| {
        fence(&s, lang.as_deref().unwrap_or(""))
    });
    Ok(env)
}

const SPECIAL: &[char] = &['\\', '`', '*', '_', '[', ']', '<', '>', '#', '~', '|'];

fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Plain text as Markdown: one line, every character that could start markup escaped.
pub fn md(s: &str) -> String {
    escape(&flat(s))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if SPECIAL.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Text with `code` spans (the model's evidence lines): the spans are kept, the rest escaped.
/// Unbalanced backticks make the whole line plain text.
pub fn inline(s: &str) -> String {
    let s = flat(s);
    if s.matches('`').count() % 2 == 1 {
        return md(&s);
    }
    let mut out = String::with_capacity(s.len());
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&code(part));
        } else {
            out.push_str(&escape(part));
        }
    }
    out
}

/// An inline code span that holds any text, backticks included.
pub fn code(s: &str) -> String {
    let s = flat(s);
    let longest = longest_run(&s, '`');
    let ticks = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{s}{pad}{ticks}")
}

/// Makes already-formatted Markdown safe inside a table cell.
pub fn cell(s: &str) -> String {
    let s = flat(s);
    let mut out = String::with_capacity(s.len());
    let mut prev = ' ';
    for c in s.chars() {
        // A pipe ends a cell even inside a code span; GFM needs it escaped there too.
        if c == '|' && prev != '\\' {
            out.push('\\');
        }
        out.push(c);
        prev = c;
    }
    out
}

/// A fenced code block long enough that the text cannot close it.
pub fn fence(s: &str, lang: &str) -> String {
    let ticks = "`".repeat((longest_run(s, '`') + 1).max(3));
    format!("{ticks}{lang}\n{}\n{ticks}", s.trim_end_matches('\n'))
}

fn longest_run(s: &str, c: char) -> usize {
    let (mut best, mut cur) = (0, 0);
    for x in s.chars() {
        if x == c {
            cur += 1;
            best = best.max(cur);
        } else {
            cur = 0;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_markup_out() {
        assert_eq!(md("a *b* <c>\nd"), r"a \*b\* \<c\> d");
        assert_eq!(inline("step `a_b` <x>"), r"step `a_b` \<x\>");
        assert_eq!(inline("odd ` tick"), r"odd \` tick");
        assert_eq!(code("has ` tick"), "``has ` tick``");
        assert_eq!(code("`edge"), "`` `edge ``");
        assert_eq!(cell("`a|b` c"), r"`a\|b` c");
        assert_eq!(fence("x\n```\ny", "text"), "````text\nx\n```\ny\n````");
    }
}

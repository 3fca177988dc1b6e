//! Templates (`"{{ inputs.deployment }}"`) and expressions (`result.status == 200`), both
//! minijinja with strict undefined: a typo is an error, never an empty string.
//!
//! A rendered value is data. It is produced once, and never rendered again, split into shell
//! words or evaluated: rendering walks a JSON tree and replaces each template string by its
//! result, so text that *looks* like a template inside an input value stays literal.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// Top-level names visible to templates and expressions.
pub const ROOTS: &[&str] = &["inputs", "secrets", "steps", "run", "env", "result"];

/// The shared, sandboxed environment: no loader, no includes, bounded work.
pub fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_recursion_limit(64);
        // Output is never HTML; do not escape.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env
    })
}

/// Does any string in a JSON tree hold a template?
pub fn has_templates(v: &Value) -> bool {
    match v {
        Value::String(s) => is_template(s),
        Value::Array(items) => items.iter().any(has_templates),
        Value::Object(m) => m.values().any(has_templates),
        _ => false,
    }
}

/// Is `s` a template at all? Plain strings skip the engine entirely.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// Shell-style placeholders (`${NAME}`, `$NAME`) in the literal text of a template, outside
/// `{{ }}`, `{% %}` and `{# #}`: (character offset, the text as written, NAME). `$$` and `\$`
/// are not placeholders.
pub fn shell_placeholders(src: &str) -> Vec<(usize, String, String)> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_';
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        // Skip template tags: their content is an expression, not literal text.
        if c == '{' && matches!(chars.get(i + 1), Some('{' | '%' | '#')) {
            let close = match chars[i + 1] {
                '{' => '}',
                other => other,
            };
            let mut j = i + 2;
            while j + 1 < chars.len() && !(chars[j] == close && chars[j + 1] == '}') {
                j += 1;
            }
            i = j + 2;
            continue;
        }
        if c == '$' && !(i > 0 && matches!(chars[i - 1], '$' | '\\')) {
            if chars.get(i + 1) == Some(&'{') {
                let start = i + 2;
                let mut j = start;
                while j < chars.len() && ident(chars[j]) {
                    j += 1;
                }
                if j > start && ident_start(chars[start]) && chars.get(j) == Some(&'}') {
                    let name: String = chars[start..j].iter().collect();
                    out.push((i, format!("${{{name}}}"), name));
                    i = j + 1;
                    continue;
                }
            } else if chars.get(i + 1).is_some_and(|c| ident_start(*c)) {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && ident(chars[j]) {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                out.push((i, format!("${name}"), name));
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// A syntax error, with the character offset within the source text where it was found.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub message: String,
    pub offset: Option<usize>,
}

fn syntax_error(e: &minijinja::Error, src: &str) -> SyntaxError {
    let offset = e
        .range()
        .map(|r| src[..r.start.min(src.len())].chars().count());
    SyntaxError {
        message: e.detail().unwrap_or(&e.kind().to_string()).to_string(),
        offset,
    }
}

/// Checks a template's syntax and returns the dotted names it reads (`inputs.x`, `steps.a.b`).
pub fn template_refs(src: &str) -> Result<BTreeSet<String>, SyntaxError> {
    if !is_template(src) {
        return Ok(BTreeSet::new());
    }
    let tmpl = env()
        .template_from_str(src)
        .map_err(|e| syntax_error(&e, src))?;
    Ok(tmpl.undeclared_variables(true).into_iter().collect())
}

/// Checks an expression's syntax and returns the dotted names it reads.
pub fn expr_refs(src: &str) -> Result<BTreeSet<String>, SyntaxError> {
    let expr = env()
        .compile_expression(src)
        .map_err(|e| syntax_error(&e, src))?;
    Ok(expr.undeclared_variables(true).into_iter().collect())
}

/// Renders one template string against `ctx`. A string that is exactly one `{{ expression }}`
/// keeps the expression's type (so `replicas: "{{ inputs.replicas }}"` stays an integer).
pub fn render_str(src: &str, ctx: &Value) -> Result<Value, String> {
    if !is_template(src) {
        return Ok(Value::String(src.to_string()));
    }
    // `{{ steps.r.rate * 100 }}` with no rate: no data, never `none` computed with.
    if let Some(u) = unusable_in_template(src, ctx) {
        return Err(format!("no data: {}, in `{}`", u.describe(), src.trim()));
    }
    if let Some(inner) = single_expression(src) {
        return eval(inner, ctx);
    }
    env()
        .render_str(src, minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map(Value::String)
        .map_err(|e| describe(&e))
}

/// Where a URL template starts: a whole URL (`url:`, `base_url:`) or a path (`path:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlStart {
    Url,
    Path,
}

/// Marks the start and the end of each value a URL template renders.
const VALUE_START: char = '\u{E000}';
const VALUE_END: char = '\u{E001}';

/// The environment for URL templates: every `{{ value }}` comes out between markers, so that
/// `render_url` knows which text is a value and where in the URL it landed.
fn url_env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = env().clone();
        env.set_formatter(|out, state, value| {
            use std::fmt::Write;
            let failed =
                |_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "cannot write a URL");
            out.write_char(VALUE_START).map_err(failed)?;
            minijinja::escape_formatter(out, state, value)?;
            out.write_char(VALUE_END).map_err(failed)?;
            Ok(())
        });
        env
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlPart {
    Scheme,
    Authority,
    Path,
    Query,
    Fragment,
}

/// Characters a value keeps in a path: unreserved, sub-delimiters, `:`, `@` and `/`.
/// Everything else (`?`, `#`, spaces, `\`, controls, non-ASCII) is percent-encoded.
const PATH_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@')
    .remove(b'/')
    .remove(b'%');

/// Characters a value keeps in a query or fragment: not `&`, `;`, `=`, `+` or `#`, which
/// would add a parameter, change a value or cut the URL.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b',')
    .remove(b':')
    .remove(b'@')
    .remove(b'/')
    .remove(b'?')
    .remove(b'%');

/// Percent-encodes `value` with `set`, and a `%` that does not start an escape (`%2F`): a
/// value already encoded (the `urlencode` filter's output) stays as it is.
fn encode_value(value: &str, set: &'static percent_encoding::AsciiSet) -> String {
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    for (start, c) in value.char_indices() {
        if start < i {
            continue;
        }
        let escape = c == '%'
            && bytes.len() > start + 2
            && bytes[start + 1].is_ascii_hexdigit()
            && bytes[start + 2].is_ascii_hexdigit();
        if c == '%' && !escape {
            out.push_str("%25");
        } else {
            let mut buf = [0u8; 4];
            out.extend(percent_encoding::utf8_percent_encode(
                c.encode_utf8(&mut buf),
                set,
            ));
        }
        i = start + c.len_utf8();
    }
    out
}

/// Renders a URL template (`url`, `path`, `base_url`) so that no value changes the URL's
/// shape. A value where the scheme and host go is taken as they are (a server's URL from an
/// input); a value in the path is percent-encoded except `/` and sub-delimiters, and refused
/// when one of its segments is `.` or `..` (in any encoding); a value in the query or the
/// fragment is percent-encoded so that it cannot add a parameter or cut the URL. A `%` that
/// starts an escape is kept, so `| urlencode` is not encoded twice.
pub fn render_url(src: &str, ctx: &Value, start: UrlStart) -> Result<String, String> {
    if !is_template(src) {
        return Ok(src.to_string());
    }
    if let Some(u) = unusable_in_template(src, ctx) {
        return Err(format!("no data: {}, in `{}`", u.describe(), src.trim()));
    }
    let marked = url_env()
        .render_str(src, minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map_err(|e| describe(&e))?;
    let mut part = match start {
        UrlStart::Url => UrlPart::Scheme,
        UrlStart::Path => UrlPart::Path,
    };
    let mut out = String::with_capacity(marked.len());
    let mut rest = marked.as_str();
    let step = |part: UrlPart, c: char, out: &str| -> UrlPart {
        match (part, c) {
            (UrlPart::Scheme, '/') if out.ends_with(":/") => UrlPart::Authority,
            (UrlPart::Scheme, '/') if !out.ends_with(':') => UrlPart::Path,
            (UrlPart::Scheme | UrlPart::Authority | UrlPart::Path, '?') => UrlPart::Query,
            (UrlPart::Scheme | UrlPart::Authority | UrlPart::Path | UrlPart::Query, '#') => {
                UrlPart::Fragment
            }
            (UrlPart::Authority, '/') => UrlPart::Path,
            (p, _) => p,
        }
    };
    while let Some(at) = rest.find(VALUE_START) {
        for c in rest[..at].chars() {
            part = step(part, c, &out);
            out.push(c);
        }
        let after = &rest[at + VALUE_START.len_utf8()..];
        let end = after
            .find(VALUE_END)
            .ok_or_else(|| "a value in a URL holds a private-use character".to_string())?;
        let value = &after[..end];
        if value.contains(VALUE_START) || value.contains(VALUE_END) {
            return Err("a value in a URL holds a private-use character (U+E000/U+E001)".into());
        }
        match part {
            UrlPart::Scheme | UrlPart::Authority => {
                for c in value.chars() {
                    part = step(part, c, &out);
                    out.push(c);
                }
            }
            UrlPart::Path => {
                for seg in value.split('/') {
                    let decoded = percent_encoding::percent_decode_str(seg).decode_utf8_lossy();
                    if decoded == "." || decoded == ".." {
                        return Err(format!(
                            "the value `{value}` in the URL's path has a `{decoded}` segment, which would climb out of the path; pass a name, not a relative path"
                        ));
                    }
                }
                out.push_str(&encode_value(value, PATH_VALUE));
            }
            UrlPart::Query | UrlPart::Fragment => out.push_str(&encode_value(value, QUERY_VALUE)),
        }
        rest = &after[end + VALUE_END.len_utf8()..];
    }
    for c in rest.chars() {
        if c == VALUE_END {
            return Err("a value in a URL holds a private-use character (U+E001)".into());
        }
        out.push(c);
    }
    Ok(out)
}

/// `{{ x }}` with nothing around it, and no other tags inside.
fn single_expression(src: &str) -> Option<&str> {
    let t = src.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner.trim())
}

/// A value an expression compares or computes with that is not there: the operand's source
/// text and what it read (`None`: absent; `Some(null)`: null, which is how `NaN` and `±Inf`
/// samples reach expressions, or a computation that gave NaN).
#[derive(Debug, Clone, PartialEq)]
pub struct Unusable {
    pub operand: String,
    pub value: Option<Value>,
}

impl Unusable {
    /// `` `steps.r.rate` has no value (null or NaN) `` / `` `steps.r.rate` is absent ``.
    pub fn describe(&self) -> String {
        match &self.value {
            None => format!("`{}` is absent", self.operand),
            Some(_) => format!("`{}` has no value (null or NaN)", self.operand),
        }
    }
}

/// The first operand of a comparison (`<`, `==`, `in`, `is gt`...) or of arithmetic (`*`,
/// `-x`, `~`...) that evaluates to nothing: minijinja would silently say `none < 0.01` is
/// true, `none == 'x'` false, render `none ~ '%'`. Operands are visited as minijinja evaluates
/// them: `x is not none and x < 1` and `x < 1 if x is not none else false` never reach the
/// comparison with an absent `x`, and a comparison with the literal `none` is a presence test.
/// An operand that fails to evaluate for another reason is left to the evaluation to report.
pub fn unusable_operand(src: &str, ctx: &Value) -> Option<Unusable> {
    let expr = minijinja::machinery::parse_expr(src).ok()?;
    let root = minijinja::Value::from(minijinja::value::Serde(ctx));
    Operands { src, root: &root }.walk(&expr)
}

/// The same check over a template's `{{ … }}` expressions and `{% if %}` conditions at its top
/// level (control-flow bodies are rendered by minijinja alone).
pub fn unusable_in_template(src: &str, ctx: &Value) -> Option<Unusable> {
    use minijinja::machinery::ast::Stmt;
    if let Some(inner) = single_expression(src) {
        return unusable_operand(inner, ctx);
    }
    let ast = minijinja::machinery::parse(src, "<template>", Default::default()).ok()?;
    let root = minijinja::Value::from(minijinja::value::Serde(ctx));
    let ops = Operands { src, root: &root };
    let Stmt::Template(t) = &ast else { return None };
    for c in &t.children {
        let found = match c {
            Stmt::EmitExpr(e) => ops.walk(&e.expr),
            Stmt::IfCond(i) => ops.walk(&i.expr),
            Stmt::EmitRaw(_) => None,
            // `{% set %}`, `{% for %}`...: names defined from here on are not in `ctx`.
            _ => return None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

struct Operands<'a> {
    src: &'a str,
    root: &'a minijinja::Value,
}

impl Operands<'_> {
    fn text(&self, e: &minijinja::machinery::ast::Expr<'_>) -> Option<&str> {
        self.src
            .get(Self::start(e) as usize..e.span().end_offset as usize)
            .map(str::trim)
    }

    /// Where an expression starts: an attribute's, item's, filter's or test's span starts
    /// after the expression it applies to (`steps.r.rate` is spanned `.r.rate`), so the
    /// leftmost operand decides.
    fn start(e: &minijinja::machinery::ast::Expr<'_>) -> u32 {
        use minijinja::machinery::ast::Expr;
        let own = e.span().start_offset;
        let left = match e {
            Expr::GetAttr(g) => Some(Self::start(&g.expr)),
            Expr::GetItem(g) => Some(Self::start(&g.expr)),
            Expr::Slice(x) => Some(Self::start(&x.expr)),
            Expr::Call(c) => Some(Self::start(&c.expr)),
            Expr::Filter(f) => f.expr.as_ref().map(Self::start),
            Expr::Test(t) => Some(Self::start(&t.expr)),
            Expr::BinOp(b) => Some(Self::start(&b.left)),
            Expr::Compare(c) => Some(Self::start(&c.expr)),
            Expr::IfExpr(i) => Some(Self::start(&i.true_expr)),
            _ => None,
        };
        left.map_or(own, |l| l.min(own))
    }

    /// The operand's value: Ok(None) absent, Ok(Some(v)) a value, Err when it cannot be told.
    fn value(
        &self,
        e: &minijinja::machinery::ast::Expr<'_>,
    ) -> Result<Option<minijinja::Value>, ()> {
        let text = self.text(e).ok_or(())?;
        let compiled = env().compile_expression(text).map_err(|_| ())?;
        match compiled.eval(self.root.clone()) {
            Ok(v) if v.is_undefined() => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(err) if err.kind() == minijinja::ErrorKind::UndefinedError => Ok(None),
            Err(_) => Err(()),
        }
    }

    fn truthy(&self, e: &minijinja::machinery::ast::Expr<'_>) -> Option<bool> {
        self.value(e).ok().flatten().map(|v| v.is_true())
    }

    /// An operand that reads nothing (a literal `none` is not: it asks about presence).
    fn check(&self, e: &minijinja::machinery::ast::Expr<'_>) -> Option<Unusable> {
        use minijinja::machinery::ast::Expr;
        if matches!(e, Expr::Const(_)) {
            return None;
        }
        let nothing = |operand: &str, value: Option<Value>| Unusable {
            operand: operand.to_string(),
            value,
        };
        // Absent: only a name of the run's context (`loop`, a `set` name are minijinja's own).
        let ours = |text: &str| {
            let root: String = text
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            ROOTS.contains(&root.as_str())
        };
        match self.value(e) {
            Ok(None) if ours(self.text(e)?) => Some(nothing(self.text(e)?, None)),
            Ok(None) => None,
            Ok(Some(v)) if v.is_none() => Some(nothing(self.text(e)?, Some(Value::Null))),
            Ok(Some(v)) if f64::try_from(v.clone()).is_ok_and(f64::is_nan) => {
                Some(nothing(self.text(e)?, Some(Value::Null)))
            }
            _ => None,
        }
    }

    fn is_none_literal(e: &minijinja::machinery::ast::Expr<'_>) -> bool {
        matches!(e, minijinja::machinery::ast::Expr::Const(c) if c.value.is_none())
    }

    fn walk(&self, e: &minijinja::machinery::ast::Expr<'_>) -> Option<Unusable> {
        use minijinja::machinery::ast::{BinOpKind, CallArg, Expr, UnaryOpKind};
        let args = |args: &[CallArg<'_>]| {
            args.iter().find_map(|a| match a {
                CallArg::Pos(x)
                | CallArg::Kwarg(_, x)
                | CallArg::PosSplat(x)
                | CallArg::KwargSplat(x) => self.walk(x),
            })
        };
        match e {
            Expr::Var(_) | Expr::Const(_) => None,
            Expr::UnaryOp(u) => self.walk(&u.expr).or_else(|| match u.op {
                UnaryOpKind::Neg => self.check(&u.expr),
                UnaryOpKind::Not => None,
            }),
            Expr::BinOp(b) => match b.op {
                BinOpKind::ScAnd | BinOpKind::ScOr => {
                    if let Some(u) = self.walk(&b.left) {
                        return Some(u);
                    }
                    let left = self.truthy(&b.left)?;
                    let goes_on = if matches!(b.op, BinOpKind::ScAnd) {
                        left
                    } else {
                        !left
                    };
                    if goes_on {
                        self.walk(&b.right)
                    } else {
                        None
                    }
                }
                _ => {
                    if let Some(u) = self.walk(&b.left).or_else(|| self.walk(&b.right)) {
                        return Some(u);
                    }
                    let presence = matches!(b.op, BinOpKind::Eq | BinOpKind::Ne)
                        && (Self::is_none_literal(&b.left) || Self::is_none_literal(&b.right));
                    if presence {
                        return None;
                    }
                    self.check(&b.left).or_else(|| self.check(&b.right))
                }
            },
            Expr::Compare(c) => {
                if let Some(u) = self.walk(&c.expr) {
                    return Some(u);
                }
                let mut left = &c.expr;
                for op in &c.ops {
                    if let Some(u) = self.walk(&op.expr) {
                        return Some(u);
                    }
                    use minijinja::machinery::ast::CompareOpKind as K;
                    let presence = matches!(op.op, K::Eq | K::Ne)
                        && (Self::is_none_literal(left) || Self::is_none_literal(&op.expr));
                    if !presence {
                        if let Some(u) = self.check(left).or_else(|| self.check(&op.expr)) {
                            return Some(u);
                        }
                    }
                    left = &op.expr;
                }
                None
            }
            Expr::IfExpr(i) => {
                if let Some(u) = self.walk(&i.test_expr) {
                    return Some(u);
                }
                if self.truthy(&i.test_expr)? {
                    self.walk(&i.true_expr)
                } else {
                    i.false_expr.as_ref().and_then(|f| self.walk(f))
                }
            }
            Expr::Test(t) => {
                // `x is defined`, `x is none`, `x is number`: about presence or type. The
                // comparison tests (`x is gt(1)`, `x is divisibleby(3)`) compare.
                const COMPARING: &[&str] = &[
                    "eq",
                    "equalto",
                    "==",
                    "ne",
                    "!=",
                    "lt",
                    "lessthan",
                    "<",
                    "le",
                    "<=",
                    "gt",
                    "greaterthan",
                    ">",
                    "ge",
                    ">=",
                    "divisibleby",
                    "even",
                    "odd",
                    "in",
                ];
                if COMPARING.contains(&t.name) {
                    self.walk(&t.expr)
                        .or_else(|| args(&t.args))
                        .or_else(|| self.check(&t.expr))
                } else {
                    args(&t.args)
                }
            }
            Expr::Filter(f) => {
                // `x | default(0)` handles absence itself; its input is not walked.
                if f.name == "default" || f.name == "d" {
                    return args(&f.args);
                }
                f.expr
                    .as_ref()
                    .and_then(|x| self.walk(x))
                    .or_else(|| args(&f.args))
            }
            Expr::GetAttr(g) => self.walk(&g.expr),
            Expr::GetItem(g) => self.walk(&g.expr).or_else(|| self.walk(&g.subscript_expr)),
            Expr::Slice(s) => self.walk(&s.expr),
            Expr::Call(c) => self.walk(&c.expr).or_else(|| args(&c.args)),
            Expr::List(l) => l.items.iter().find_map(|x| self.walk(x)),
            Expr::Tuple(t) => t.items.iter().find_map(|x| self.walk(x)),
            Expr::Map(m) => m
                .keys
                .iter()
                .chain(m.values.iter())
                .find_map(|x| self.walk(x)),
        }
    }
}

/// Evaluates an expression against `ctx` into a JSON value.
pub fn eval(src: &str, ctx: &Value) -> Result<Value, String> {
    let expr = env().compile_expression(src).map_err(|e| describe(&e))?;
    let v = expr
        .eval(minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map_err(|e| describe(&e))?;
    if v.is_undefined() {
        return Err(format!("`{src}` is undefined"));
    }
    serde_json::to_value(&v).map_err(|e| format!("`{src}` gave a value that is not data: {e}"))
}

/// Evaluates a condition: the expression must give a boolean (or a truthy value).
pub fn eval_bool(src: &str, ctx: &Value) -> Result<bool, String> {
    let expr = env().compile_expression(src).map_err(|e| describe(&e))?;
    let v = expr
        .eval(minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map_err(|e| describe(&e))?;
    Ok(v.is_true())
}

/// Renders every string in a JSON tree (object keys are left as they are).
pub fn render_value(v: &Value, ctx: &Value) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => render_str(s, ctx)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_value(i, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                out.insert(k.clone(), render_value(v, ctx)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// `render_value` for a plan: a string that cannot be rendered before the run (it computes
/// with a value only the run will know, such as `steps.x.rate * 100`) stays as its template
/// source, so the plan shows what will be asked or sent instead of nothing.
pub fn render_value_lenient(v: &Value, ctx: &Value) -> Value {
    match v {
        Value::String(s) => render_str(s, ctx).unwrap_or_else(|_| Value::String(s.clone())),
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| render_value_lenient(i, ctx)).collect())
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), render_value_lenient(v, ctx)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A one-line description of a minijinja error, without its debug dump.
pub fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// Collects every template string in a JSON tree with its JSON pointer (relative to `base`).
pub fn strings_in(v: &Value, base: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((base.to_string(), s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                strings_in(item, &format!("{base}/{i}"), out);
            }
        }
        Value::Object(m) => {
            for (k, item) in m {
                strings_in(
                    item,
                    &format!("{base}/{}", crate::yaml::pointer_segment(k)),
                    out,
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shell_placeholders_are_found_in_literal_text_only() {
        let found: Vec<(usize, String)> =
            shell_placeholders("${A}/x/$b_1 {{ '$C' }} $$D \\$E $5 ${ not} é$F")
                .into_iter()
                .map(|(o, w, _)| (o, w))
                .collect();
        assert_eq!(
            found,
            vec![(0, "${A}".into()), (7, "$b_1".into()), (43, "$F".into())]
        );
    }

    #[test]
    fn single_expression_keeps_type() {
        let ctx = json!({"inputs": {"n": 3}});
        assert_eq!(render_str("{{ inputs.n }}", &ctx).unwrap(), json!(3));
        assert_eq!(render_str("n={{ inputs.n }}", &ctx).unwrap(), json!("n=3"));
    }

    #[test]
    fn strict_undefined_is_an_error() {
        let ctx = json!({"inputs": {"n": 3}});
        assert!(render_str("{{ inputs.m }}", &ctx).is_err());
        assert!(render_str("x {{ inputs.m }} y", &ctx).is_err());
    }

    #[test]
    fn rendered_values_are_not_rendered_again() {
        let ctx = json!({"inputs": {"v": "{{ 7*7 }}"}});
        assert_eq!(
            render_str("a {{ inputs.v }} b", &ctx).unwrap(),
            json!("a {{ 7*7 }} b")
        );
        assert_eq!(
            render_str("{{ inputs.v }}", &ctx).unwrap(),
            json!("{{ 7*7 }}")
        );
    }

    #[test]
    fn templates_never_compute_with_nothing() {
        let ctx = json!({"steps": {"r": {"rate": null, "n": 2}}});
        let e = render_str("{{ steps.r.rate * 100 }}", &ctx).unwrap_err();
        assert!(e.contains("no data: `steps.r.rate` has no value"), "{e}");
        let e = render_str("rate {{ steps.r.rate < 0.01 }} now", &ctx).unwrap_err();
        assert!(e.contains("no data"), "{e}");
        let e = render_str("{% if steps.r.rate > 1 %}high{% endif %}", &ctx).unwrap_err();
        assert!(e.contains("no data"), "{e}");
        let e = render_url(
            "http://h/p?limit={{ steps.r.rate * 2 }}",
            &ctx,
            UrlStart::Url,
        )
        .unwrap_err();
        assert!(e.contains("no data"), "{e}");
        // A name the template defines itself is not the run's data.
        assert_eq!(
            render_str("{% set k = 2 %}{{ k * steps.r.n }}", &ctx).unwrap(),
            json!("4")
        );
        // Shown as it is, or asked about: fine.
        assert_eq!(render_str("{{ steps.r.n * 2 }}", &ctx).unwrap(), json!(4));
        assert!(render_str("rate {{ steps.r.rate }}", &ctx).is_ok());
        assert!(render_str(
            "{{ 'none' if steps.r.rate is none else steps.r.rate * 100 }}",
            &ctx
        )
        .is_ok());
    }

    #[test]
    fn refs_are_nested_names() {
        let r = template_refs("{{ steps.current.image }} {{ inputs.ns }}").unwrap();
        assert!(r.contains("steps.current.image"));
        assert!(r.contains("inputs.ns"));
    }

    #[test]
    fn syntax_error_has_offset() {
        let e = template_refs("ok {{ inputs. }}").unwrap_err();
        assert!(e.offset.is_some());
    }
}

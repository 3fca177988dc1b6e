//! No data is never computed with: the operands of a comparison or arithmetic that are absent,
//! null or NaN, found by walking the expression's syntax tree in evaluation order.

use super::{env, ROOTS};
use serde_json::Value;

/// `{{ x }}` with nothing around it, and no other tags inside.
pub(super) fn single_expression(src: &str) -> Option<&str> {
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

pub(super) struct Operands<'a> {
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

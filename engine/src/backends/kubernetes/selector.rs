//! Label selectors (`app=web,tier!=db`, `env in (prod,staging)`, `!canary`), parsed once by
//! the validation both the real backend and the drill world run: a selector the API server
//! would reject never leaves the engine, and the drill world matches the same grammar.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Exists,
    NotExists,
    Equals,
    NotEquals,
    In,
    NotIn,
    GreaterThan,
    LessThan,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

/// Requirements that must all hold; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(pub Vec<Requirement>);

/// Splits on the commas outside parentheses; an unclosed or stray parenthesis is an error.
fn terms(s: &str) -> Result<Vec<&str>, String> {
    let (mut depth, mut start, mut out) = (0i32, 0, vec![]);
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("a `)` closes nothing".into());
                }
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("a `(` is never closed".into());
    }
    out.push(&s[start..]);
    Ok(out)
}

/// A label name: `[prefix/]name`, the name 1-63 characters of `[A-Za-z0-9_.-]` starting and
/// ending alphanumeric, the prefix a DNS subdomain.
fn key(k: &str) -> Result<String, String> {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let subdomain = |p: &str| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    };
    if prefix.is_some_and(|p| !subdomain(p)) || value_ok(name).is_err() || name.is_empty() {
        return Err(format!(
            "`{k}` is not a label name (1-63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit, optionally after a DNS prefix and `/`)"
        ));
    }
    Ok(k.to_string())
}

fn value_ok(v: &str) -> Result<(), String> {
    let edge = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    let ok = v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && edge(v.chars().next())
        && edge(v.chars().last());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a label value (at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit)"
        ))
    }
}

fn value(v: &str) -> Result<String, String> {
    value_ok(v)?;
    Ok(v.to_string())
}

fn requirement(term: &str) -> Result<Requirement, String> {
    let t = term.trim();
    if t.is_empty() {
        return Err("a requirement is empty (two commas in a row, or one at an end)".into());
    }
    if let Some(k) = t.strip_prefix('!') {
        return Ok(Requirement {
            key: key(k.trim())?,
            op: Op::NotExists,
            values: vec![],
        });
    }
    if let Some(open) = t.find('(') {
        let head: Vec<&str> = t[..open].split_whitespace().collect();
        let op = match head.as_slice() {
            [_, "in"] => Op::In,
            [_, "notin"] => Op::NotIn,
            _ => {
                return Err(format!(
                    "`{t}`: a set requirement reads `key in (a,b)` or `key notin (a,b)`"
                ))
            }
        };
        let Some(inner) = t[open + 1..].strip_suffix(')') else {
            return Err(format!("`{t}`: nothing may follow the closing `)`"));
        };
        let values = inner
            .split(',')
            .map(|v| value(v.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Requirement {
            key: key(head[0])?,
            op,
            values,
        });
    }
    for (sym, op) in [
        ("!=", Op::NotEquals),
        ("==", Op::Equals),
        ("=", Op::Equals),
        (">", Op::GreaterThan),
        ("<", Op::LessThan),
    ] {
        if let Some((k, v)) = t.split_once(sym) {
            let v = v.trim();
            if matches!(op, Op::GreaterThan | Op::LessThan) && v.parse::<i64>().is_err() {
                return Err(format!("`{t}`: `{sym}` compares with a whole number"));
            }
            return Ok(Requirement {
                key: key(k.trim())?,
                op,
                values: vec![value(v)?],
            });
        }
    }
    if t.contains(char::is_whitespace) {
        return Err(format!(
            "`{t}`: expected an operator (`=`, `==`, `!=`, `in`, `notin`) after the label name"
        ));
    }
    Ok(Requirement {
        key: key(t)?,
        op: Op::Exists,
        values: vec![],
    })
}

/// Parses a selector; the error says what is wrong with it.
pub fn parse(s: &str) -> Result<Selector, String> {
    if s.trim().is_empty() {
        return Ok(Selector::default());
    }
    let reqs = terms(s)
        .and_then(|ts| ts.into_iter().map(requirement).collect::<Result<_, _>>())
        .map_err(|why| format!("invalid label selector `{s}`: {why}"))?;
    Ok(Selector(reqs))
}

impl Selector {
    /// Does a label set satisfy every requirement (the API server's rules)?
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| {
            let have = labels.get(&r.key);
            let num = |v: &str| v.parse::<i64>().ok();
            match r.op {
                Op::Exists => have.is_some(),
                Op::NotExists => have.is_none(),
                Op::Equals | Op::In => have.is_some_and(|h| r.values.contains(h)),
                Op::NotEquals | Op::NotIn => have.is_none_or(|h| !r.values.contains(h)),
                Op::GreaterThan | Op::LessThan => {
                    match (have.and_then(|h| num(h)), num(&r.values[0])) {
                        (Some(h), Some(v)) if r.op == Op::GreaterThan => h > v,
                        (Some(h), Some(v)) => h < v,
                        _ => false,
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_set_requirements_match_like_the_api_server() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "3")]);
        for (s, want) in [
            ("", true),
            ("app=web", true),
            ("app==web,tier!=db", true),
            ("app in (web, api)", true),
            ("app notin (web)", false),
            ("missing notin (x)", true),
            ("!canary,app", true),
            ("!app", false),
            ("n>2,n<4", true),
            ("app in (api),tier", false),
        ] {
            assert_eq!(parse(s).unwrap().matches(&l), want, "{s}");
        }
    }

    #[test]
    fn malformed_selectors_say_what_is_wrong() {
        for (s, why) in [
            ("app in (web", "a `(` is never closed"),
            ("app=web,,tier", "a requirement is empty"),
            ("app web", "expected an operator"),
            ("app=we b", "is not a label value"),
            ("-app=web", "is not a label name"),
            ("app maybe (x)", "a set requirement reads"),
            ("n>x", "compares with a whole number"),
        ] {
            let e = parse(s).unwrap_err();
            assert!(
                e.starts_with(&format!("invalid label selector `{s}`: ")),
                "{e}"
            );
            assert!(e.contains(why), "{s}: {e}");
        }
    }
}

//! Matching scripted calls: `*` globs, argv patterns, JSON subsets (label selectors are
//! `backends::kubernetes::selector`, shared with the real backend), and
//! answer sequences used `times` times each.

use serde_json::Value;

/// `*` matches any run of characters (none, and newlines too); every other character is literal.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` and the text position it was tried at, for backtracking.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// One pattern per argument; a last pattern `**` matches any remaining arguments.
pub fn argv_matches(patterns: &[String], argv: &[String]) -> bool {
    match patterns.split_last() {
        Some((last, init)) if last == "**" => {
            argv.len() >= init.len() && init.iter().zip(argv).all(|(p, a)| glob(p, a))
        }
        _ => patterns.len() == argv.len() && patterns.iter().zip(argv).all(|(p, a)| glob(p, a)),
    }
}

/// Does `actual` contain `expected`? Objects may have more keys; everything else is equal
/// (numbers by value, so `3` matches `3.0`).
pub fn subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| subset(v, av))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| subset(x, y))
        }
        (Value::Number(e), Value::Number(a)) => e.as_f64() == a.as_f64(),
        _ => expected == actual,
    }
}

/// An answer that may be limited to a number of uses.
pub trait Counted {
    fn times(&self) -> Option<u32>;
}

/// The answer for the next use of a sequence that was used `used` times already: each entry
/// serves `times` uses, one without `times` serves for ever. None when all are used up.
pub fn pick<T: Counted>(answers: &[T], used: u32) -> Option<&T> {
    let mut left = used;
    for a in answers {
        match a.times() {
            None => return Some(a),
            Some(n) if left < n => return Some(a),
            Some(n) => left -= n,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs() {
        assert!(glob("https://orch:8181/*", "https://orch:8181/health"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXbYbZc"));
        assert!(!glob("a*b", "aXc"));
        assert!(glob("git revert *", "git revert abc\nmore"));
        assert!(!glob("health", "healthz"));
    }

    #[test]
    fn argv_patterns() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(argv_matches(
            &p(&["git", "revert", "*"]),
            &p(&["git", "revert", "HEAD"])
        ));
        assert!(!argv_matches(
            &p(&["git", "revert", "*"]),
            &p(&["git", "revert"])
        ));
        assert!(argv_matches(&p(&["git", "**"]), &p(&["git", "push", "-f"])));
        assert!(!argv_matches(
            &p(&["git", "push"]),
            &p(&["git", "push", "-f"])
        ));
    }

    #[test]
    fn subsets() {
        assert!(subset(
            &json!({"a": {"b": 1}}),
            &json!({"a": {"b": 1.0, "c": 2}, "d": 3})
        ));
        assert!(!subset(&json!({"a": 1}), &json!({"b": 1})));
        assert!(!subset(&json!([1]), &json!([1, 2])));
    }

    struct A(Option<u32>);
    impl Counted for A {
        fn times(&self) -> Option<u32> {
            self.0
        }
    }

    #[test]
    fn sequences() {
        let s = [A(Some(2)), A(None)];
        assert_eq!(pick(&s, 0).unwrap().0, Some(2));
        assert_eq!(pick(&s, 1).unwrap().0, Some(2));
        assert_eq!(pick(&s, 2).unwrap().0, None);
        assert_eq!(pick(&s, 99).unwrap().0, None);
        let limited = [A(Some(1))];
        assert!(pick(&limited, 1).is_none());
    }
}

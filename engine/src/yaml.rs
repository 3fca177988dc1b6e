//! Reads YAML text into a JSON value plus a map from JSON pointers to source locations.
//!
//! serde-saphyr does the parsing (safe Rust, budgets against alias bombs and deep nesting,
//! duplicate-key rejection); this module keeps the location of every node so that the checker
//! can point at the exact line and column of any problem it finds later.

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::{Budget, DuplicateKeyPolicy, Options, Spanned};

use crate::diag::{Diagnostic, Loc};

/// Files larger than this are rejected before parsing: no runbook is anywhere near it.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// Nesting deeper than this is rejected by the parser's budget.
pub const MAX_DEPTH: usize = 128;
/// Values (counting every alias expansion) beyond this are rejected. A long runbook has a few
/// thousand; the limit stops an alias bomb before it costs noticeable time or memory.
pub const MAX_NODES: usize = 100_000;

/// A parsed document: its value, and where each node (and each mapping key) came from.
#[derive(Debug, Clone, Default)]
pub struct Located {
    pub value: Value,
    /// JSON pointer of a node -> location of its value.
    pub values: HashMap<String, Loc>,
    /// JSON pointer of a mapping entry -> location of its key.
    pub keys: HashMap<String, Loc>,
}

impl Located {
    /// Location of the node at `pointer`, or of its nearest located ancestor.
    pub fn value_loc(&self, pointer: &str) -> Loc {
        self.find(pointer, &self.values)
    }

    /// Location of the key of the entry at `pointer` (falls back to its value, then ancestors).
    pub fn key_loc(&self, pointer: &str) -> Loc {
        if let Some(loc) = self.keys.get(pointer) {
            return *loc;
        }
        self.value_loc(pointer)
    }

    fn find(&self, pointer: &str, map: &HashMap<String, Loc>) -> Loc {
        let mut p = pointer.to_string();
        loop {
            if let Some(loc) = map.get(&p) {
                return *loc;
            }
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None => return Loc::default(),
            }
        }
    }
}

/// Escapes one JSON-pointer segment (RFC 6901).
pub fn pointer_segment(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['~', '/']) {
        s.replace('~', "~0").replace('/', "~1").into()
    } else {
        s.into()
    }
}

/// Parses `bytes` (the content of `file`) into a located JSON value.
/// Errors are boxed: they are built once per file, and keep the happy path's `Result` small.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Located, Box<Diagnostic>> {
    let text = decode(file, bytes)?;
    parse_str(file, text)
}

/// Bytes that never occur in YAML text (C0 controls other than tab and line breaks, and DEL).
/// Their presence means a binary file, and the source is not quoted in messages.
pub fn is_control(b: u8) -> bool {
    (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7f
}

/// 1-based line and column (in characters) of byte offset `at`, which must follow valid UTF-8.
fn position(bytes: &[u8], at: usize) -> Loc {
    let before = &bytes[..at];
    let line = before.iter().filter(|b| **b == b'\n').count() as u32 + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count() as u32
        + 1;
    Loc::new(line, col)
}

/// The message for a file over the size limit; `size` is its length when known.
pub fn too_large(file: &str, size: Option<u64>) -> Diagnostic {
    let size = size
        .filter(|s| *s > MAX_FILE_BYTES as u64)
        .map_or_else(|| "more than 4 MiB".to_string(), |s| format!("{s} bytes"));
    Diagnostic::error(
        file,
        Loc::default(),
        format!("file is {size}; runbooks are limited to {MAX_FILE_BYTES} bytes (4 MiB)"),
    )
    .with_code("file-too-large")
    .with_help(
        "check that this is the file you meant; a long procedure can be split into runbooks \
         that `call` each other",
    )
}

fn decode<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, Box<Diagnostic>> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Box::new(too_large(file, Some(bytes.len() as u64))));
    }
    if let Some(pos) = bytes.iter().position(|b| is_control(*b)) {
        let at =
            std::str::from_utf8(&bytes[..pos]).map_or(Loc::default(), |_| position(bytes, pos));
        let binary = bytes[pos] == 0 || bytes.iter().filter(|b| is_control(**b)).nth(1).is_some();
        return Err(Box::new(if binary {
            Diagnostic::error(
                file,
                at,
                "file looks binary (it contains NUL or control bytes); expected YAML text",
            )
            .with_code("binary-file")
            .with_help("runbooks are UTF-8 YAML text; check that this is the file you meant")
        } else {
            Diagnostic::error(
                file,
                at,
                format!(
                    "file contains the control character 0x{:02X}, which YAML does not allow",
                    bytes[pos]
                ),
            )
            .with_code("control-character")
            .with_help("delete it: YAML text may hold tabs, line breaks and printable characters")
        }));
    }
    let text =
        match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let at = e.valid_up_to();
                return Err(Box::new(Diagnostic::error(
                file,
                position(bytes, at),
                format!(
                    "file is not valid UTF-8: byte 0x{:02X} cannot start or continue a character",
                    bytes[at]
                ),
            )
            .with_code("encoding")
            .with_help(
                "save the file as UTF-8 (bytes like this come from Latin-1 or Windows-1252 \
                 editors), e.g. `iconv -f latin1 -t utf-8`",
            )));
            }
        };
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_nodes = MAX_NODES;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_NODES;
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    // YAML 1.2 booleans only: with YAML 1.1's, an input or capture named `n` or `y` became
    // `false`/`true`, and `title: no` a boolean.
    options.strict_booleans = true;
    options
}

/// Parses YAML text into a located JSON value.
pub fn parse_str(file: &str, text: &str) -> Result<Located, Box<Diagnostic>> {
    let blank = |l: &str| l.trim().is_empty();
    let comment = |l: &str| l.trim_start().starts_with('#');
    if text.lines().all(|l| blank(l) || comment(l)) {
        let what = if text.lines().any(comment) {
            "file has only comments"
        } else {
            "file is empty"
        };
        return Err(Box::new(
            Diagnostic::error(
                file,
                Loc::new(1, 1),
                format!(
                    "{what}; expected a runbook: a YAML mapping with `apiVersion`, `kind`, \
                     `metadata` and `steps`"
                ),
            )
            .with_code("empty-file")
            .with_help("start from a file in `examples/`; `runbook schema` describes every field"),
        ));
    }
    let node: Spanned<Node> = serde_saphyr::from_str_with_options(text, options())
        .map_err(|e| Box::new(yaml_error(file, text, &e)))?;
    let mut out = Located::default();
    out.value = flatten(node, &mut String::new(), &mut out.values, &mut out.keys);
    Ok(out)
}

fn yaml_error(file: &str, text: &str, e: &serde_saphyr::Error) -> Diagnostic {
    use serde_saphyr::budget::BudgetBreach as B;
    let loc = e
        .location()
        .map(|l| Loc::new(l.line() as u32, l.column() as u32))
        .unwrap_or_default();
    // Errors met while replaying an alias come wrapped; the inner one says what happened.
    let mut inner = e;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = inner
    {
        inner = error;
    }
    let alias_bomb = || {
        Diagnostic::error(
            file,
            loc,
            format!(
                "the document has more than {MAX_NODES} values, counting each alias expansion \
                 (an \"alias bomb\"?)"
            ),
        )
        .with_code("yaml-limit")
        .with_help(
            "runbooks are small; write the values out instead of nesting aliases (`*name`) \
             inside repeated lists",
        )
    };
    match inner {
        serde_saphyr::Error::AliasReplayLimitExceeded { .. }
        | serde_saphyr::Error::AliasExpansionLimitExceeded { .. }
        | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. }
        | serde_saphyr::Error::AliasReplayCounterOverflow { .. } => alias_bomb(),
        serde_saphyr::Error::DuplicateMappingKey { key, .. } => {
            let key = key.clone().unwrap_or_default();
            let first = first_key_line(text, loc, &key)
                .map(|l| format!("the first `{key}` is on line {l}; "))
                .unwrap_or_default();
            Diagnostic::error(file, loc, format!("duplicate key `{key}` in this mapping"))
                .with_code("duplicate-key")
                .with_len(key.chars().count())
                .with_help(format!(
                    "{first}a key may appear once per mapping, so keep one of them"
                ))
        }
        serde_saphyr::Error::Budget { breach, .. } => {
            let (msg, help) = match breach {
                B::Depth { .. } => (
                    format!("the document is nested more than {MAX_DEPTH} levels deep"),
                    "runbooks are a few levels deep; look for runaway brackets or indentation",
                ),
                B::Aliases { .. } | B::Anchors { .. } => (
                    "the document uses more anchors or aliases (`&name`, `*name`) than allowed"
                        .to_string(),
                    "write the values out instead of repeating them through aliases",
                ),
                B::Nodes { .. } | B::Events { .. } => return alias_bomb(),
                B::Documents { .. } => (
                    "the file holds too many YAML documents".to_string(),
                    "a runbook file holds one document; remove the `---` separators",
                ),
                other => (
                    format!("the document is too large to load safely ({other:?})"),
                    "write the runbook out plainly, without aliases or huge values",
                ),
            };
            Diagnostic::error(file, loc, msg)
                .with_code("yaml-limit")
                .with_help(help)
        }
        other => {
            let raw = other.to_string();
            // serde-saphyr ends its messages with its own location; we print ours.
            let msg = raw.split(" at line ").next().unwrap_or(&raw).trim();
            if msg.contains("recursion limit") {
                return Diagnostic::error(
                    file,
                    loc,
                    format!("the document is nested more than {MAX_DEPTH} levels deep"),
                )
                .with_code("yaml-limit")
                .with_help(
                    "runbooks are a few levels deep; look for runaway brackets or indentation",
                );
            }
            if msg.contains("multiple YAML documents") {
                return Diagnostic::error(
                    file,
                    loc,
                    "the file holds more than one YAML document; a runbook is one document",
                )
                .with_code("yaml-syntax")
                .with_help(
                    "remove the `---` separator, or move the second document to its own file",
                );
            }
            Diagnostic::error(file, loc, format!("invalid YAML: {msg}"))
                .with_code("yaml-syntax")
                .with_help(
                    "fix the YAML syntax here: check the indentation, quotes, colons and brackets",
                )
        }
    }
}

/// The line of an earlier `key:` at the same indentation as the duplicate at `dup`, in the same
/// block mapping (searching upwards until the indentation decreases).
fn first_key_line(text: &str, dup: Loc, key: &str) -> Option<u32> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = dup.col.checked_sub(1)? as usize;
    let this = lines.get(dup.line.checked_sub(1)? as usize)?;
    // Only for block mappings, where the key starts its line.
    if this.chars().take(indent).any(|c| c != ' ' && c != '-') {
        return None;
    }
    for i in (0..dup.line as usize - 1).rev() {
        let l = lines[i];
        let trimmed = l.trim_start_matches([' ', '-']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let ind = l.len() - trimmed.len();
        if ind < indent {
            return None;
        }
        if ind == indent {
            let k = trimmed.trim_start_matches(['"', '\'']);
            if k.strip_prefix(key).is_some_and(|rest| {
                rest.trim_start_matches(['"', '\''])
                    .trim_start()
                    .starts_with(':')
            }) {
                return Some(i as u32 + 1);
            }
        }
    }
    None
}

fn loc_of<T>(s: &Spanned<T>) -> Loc {
    Loc::new(s.referenced.line() as u32, s.referenced.column() as u32)
}

/// The node as a JSON value, recording where it and its children came from under their JSON
/// pointers (`ptr` is the node's own; it is extended for each child and restored). The node
/// is consumed: its strings move into the value.
fn flatten(
    node: Spanned<Node>,
    ptr: &mut String,
    values: &mut HashMap<String, Loc>,
    keys: &mut HashMap<String, Loc>,
) -> Value {
    values.insert(ptr.clone(), loc_of(&node));
    match node.value {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(b),
        Node::Int(i) => Value::from(i),
        Node::UInt(u) => Value::from(u),
        Node::Float(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        Node::Str(s) => Value::String(s),
        Node::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, n) in items.into_iter().enumerate() {
                let len = ptr.len();
                let _ = write!(ptr, "/{i}");
                out.push(flatten(n, ptr, values, keys));
                ptr.truncate(len);
            }
            Value::Array(out)
        }
        Node::Map(entries) => {
            let mut map = serde_json::Map::with_capacity(entries.len());
            for (k, v) in entries {
                let len = ptr.len();
                ptr.push('/');
                ptr.push_str(&pointer_segment(&k.value));
                keys.insert(ptr.clone(), loc_of(&k));
                let val = flatten(v, ptr, values, keys);
                ptr.truncate(len);
                map.insert(k.value, val);
            }
            Value::Object(map)
        }
    }
}

/// One YAML node, with the locations of its children.
#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

/// A mapping key: scalars of any type are accepted and kept as their text.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key("null".to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Node, D2::Error> {
                Node::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
                Ok(Node::UInt(v))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
                Ok(Node::Str(v.to_string()))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
                Ok(Node::Str(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
                Ok(Node::Str(v))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Node, E> {
                Ok(Node::Str(String::from_utf8_lossy(v).into_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Node>>()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = map.next_key::<Spanned<Key>>()? {
                    let key = Spanned {
                        value: k.value.0,
                        referenced: k.referenced,
                        defined: k.defined,
                    };
                    let v = map.next_value::<Spanned<Node>>()?;
                    entries.push((key, v));
                }
                Ok(Node::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_key_names_the_first_occurrence() {
        let text = "metadata:\n  name: a\n  title: A\n  title: B\n";
        let d = parse_str("f.yaml", text).unwrap_err();
        assert_eq!(d.code, "duplicate-key");
        assert_eq!((d.line, d.column), (4, 3));
        assert!(d.help.unwrap().contains("the first `title` is on line 3"));
    }

    #[test]
    fn locations_of_keys_and_values() {
        let doc = parse_str("f.yaml", "steps:\n  - id: a\n    wait: 5s\n").unwrap();
        assert_eq!(doc.key_loc("/steps/0/wait"), Loc::new(3, 5));
        assert_eq!(doc.value_loc("/steps/0/wait"), Loc::new(3, 11));
        // Unknown pointers fall back to the nearest located ancestor.
        assert_eq!(doc.value_loc("/steps/0/nope"), doc.value_loc("/steps/0"));
    }

    #[test]
    fn control_characters_and_stray_bytes_are_located() {
        let d = parse("f.yaml", b"a: 1\nb: \x1b[31m\n").unwrap_err();
        assert_eq!((d.code, d.line, d.column), ("control-character", 2, 4));
        let d = parse("f.yaml", b"a: 1\nb: caf\xe9\n").unwrap_err();
        assert_eq!((d.code, d.line, d.column), ("encoding", 2, 7));
        let d = parse("f.yaml", b"\x7fELF\x02\x01\x01\x00").unwrap_err();
        assert_eq!(d.code, "binary-file");
    }
}

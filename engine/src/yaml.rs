//! Reads YAML text into a JSON value plus a map from JSON pointers to source locations.
//!
//! serde-saphyr does the parsing (safe Rust, budgets against alias bombs and deep nesting,
//! duplicate-key rejection); this module keeps the location of every node so that the checker
//! can point at the exact line and column of any problem it finds later.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::{Budget, DuplicateKeyPolicy, Options, Spanned};

use crate::diag::{Diagnostic, Loc};

/// Files larger than this are rejected before parsing: no runbook is anywhere near it.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// Nesting deeper than this is rejected by the parser's budget.
pub const MAX_DEPTH: usize = 128;

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
pub fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Parses `bytes` (the content of `file`) into a located JSON value.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Located, Diagnostic> {
    let text = decode(file, bytes)?;
    parse_str(file, text)
}

fn decode<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, Diagnostic> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Diagnostic::error(
            file,
            Loc::default(),
            format!(
                "file is {} bytes; runbooks are limited to {} bytes",
                bytes.len(),
                MAX_FILE_BYTES
            ),
        )
        .with_help("split the runbook into smaller ones and use `call` steps"));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let upto = &bytes[..e.valid_up_to()];
            let line = upto.iter().filter(|b| **b == b'\n').count() as u32 + 1;
            let col = (upto.len() - upto.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1))
                as u32
                + 1;
            return Err(Diagnostic::error(
                file,
                Loc::new(line, col),
                format!(
                    "file is not valid UTF-8 (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            )
            .with_help("save the file as UTF-8 text; is this a binary file?"));
        }
    };
    if let Some(pos) = text.find('\0') {
        let before = &text[..pos];
        let line = before.matches('\n').count() as u32 + 1;
        let col = (pos - before.rfind('\n').map_or(0, |p| p + 1)) as u32 + 1;
        return Err(Diagnostic::error(
            file,
            Loc::new(line, col),
            "file contains a NUL byte; expected YAML text".to_string(),
        )
        .with_help("is this a binary file? runbooks are UTF-8 YAML"));
    }
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_nodes = 500_000;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    options
}

/// Parses YAML text into a located JSON value.
pub fn parse_str(file: &str, text: &str) -> Result<Located, Diagnostic> {
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(Diagnostic::error(
            file,
            Loc::new(1, 1),
            "file is empty; expected a YAML mapping with `apiVersion`, `kind` and `metadata`"
                .to_string(),
        )
        .with_help("start from an example: `runbook schema` shows every field"));
    }
    let node: Spanned<Node> = serde_saphyr::from_str_with_options(text, options())
        .map_err(|e| yaml_error(file, text, &e))?;
    let mut out = Located::default();
    out.value = flatten(&node, String::new(), &mut out.values, &mut out.keys);
    Ok(out)
}

fn yaml_error(file: &str, _text: &str, e: &serde_saphyr::Error) -> Diagnostic {
    let loc = e
        .location()
        .map(|l| Loc::new(l.line() as u32, l.column() as u32))
        .unwrap_or_default();
    let raw = e.without_snippet().to_string();
    // serde-saphyr prefixes messages with their own location; we print ours.
    let msg = raw
        .split(" at line ")
        .next()
        .unwrap_or(&raw)
        .trim()
        .to_string();
    let lower = msg.to_lowercase();
    let help = if lower.contains("duplicate") {
        "each key may appear once per mapping; remove or rename the repeated one"
    } else if lower.contains("budget") || lower.contains("alias") || lower.contains("depth") {
        "the document is too large or too deeply nested (anchors/aliases are limited to keep \
         loading safe); write it out plainly"
    } else {
        "fix the YAML syntax at this position (check indentation, quotes and colons)"
    };
    Diagnostic::error(file, loc, format!("invalid YAML: {msg}")).with_help(help)
}

fn loc_of<T>(s: &Spanned<T>) -> Loc {
    Loc::new(s.referenced.line() as u32, s.referenced.column() as u32)
}

fn flatten(
    node: &Spanned<Node>,
    ptr: String,
    values: &mut HashMap<String, Loc>,
    keys: &mut HashMap<String, Loc>,
) -> Value {
    values.insert(ptr.clone(), loc_of(node));
    match &node.value {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Int(i) => Value::from(*i),
        Node::UInt(u) => Value::from(*u),
        Node::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        Node::Str(s) => Value::String(s.clone()),
        Node::Seq(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| flatten(n, format!("{ptr}/{i}"), values, keys))
                .collect(),
        ),
        Node::Map(entries) => {
            let mut map = serde_json::Map::new();
            for (k, v) in entries {
                let child = format!("{ptr}/{}", pointer_segment(&k.value));
                keys.insert(child.clone(), loc_of(k));
                let val = flatten(v, child, values, keys);
                map.insert(k.value.clone(), val);
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

//! Walking a JSON Schema: the sub-schema at a pointer, its allowed keys and descriptions,
//! and pruning what it does not allow.

use serde_json::Value;

use super::text::first_sentence;
use crate::yaml::{self};

/// Sets the value at `ptr`, creating the mapping that holds it when it is missing (a key
/// moved into `request:` that the author had not written yet). Keeps a value already there.
pub(super) fn insert_at(doc: &mut Value, ptr: &str, v: Value) {
    let Some((parent, key)) = ptr.rsplit_once('/') else {
        return;
    };
    let key = key.replace("~1", "/").replace("~0", "~");
    if doc.pointer(parent).is_none() {
        insert_at(doc, parent, Value::Object(Default::default()));
    }
    if let Some(m) = doc.pointer_mut(parent).and_then(Value::as_object_mut) {
        m.entry(key).or_insert(v);
    }
}

/// `/steps/2/kubernetes` -> "`steps[2].kubernetes`"; the root is "the document".
pub fn describe_pointer(ptr: &str) -> String {
    if ptr.is_empty() {
        return "the document".to_string();
    }
    let mut s = String::new();
    for seg in ptr.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if seg.chars().all(|c| c.is_ascii_digit()) {
            s.push_str(&format!("[{seg}]"));
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(&seg);
        }
    }
    format!("`{s}`")
}

/// Follows `$ref`s, and through `Option<T>` and untagged unions to their object-shaped branch.
pub(super) fn deref(schema: &Value, s: &Value) -> Value {
    deref_within(schema, s, 4)
}

pub(super) fn deref_within(schema: &Value, s: &Value, depth: u32) -> Value {
    let defs = schema.get("$defs");
    let mut s = s.clone();
    for _ in 0..16 {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or_default();
            match defs.and_then(|d| d.get(name)) {
                Some(t) => s = t.clone(),
                None => break,
            }
        } else if let Some(any) = s
            .get("anyOf")
            .or_else(|| s.get("oneOf"))
            .and_then(Value::as_array)
        {
            let mut candidates = any
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"));
            let object = (depth > 0)
                .then(|| {
                    candidates.clone().find(|b| {
                        deref_within(schema, b, depth - 1)
                            .get("properties")
                            .is_some()
                    })
                })
                .flatten();
            match object.or_else(|| candidates.next()) {
                Some(b) => s = b.clone(),
                None => break,
            }
        } else {
            break;
        }
    }
    s
}

/// The schema of the node at `ptr`, as written at its parent (not dereferenced), so that a
/// property's own `description` is kept.
pub(super) fn schema_at(schema: &Value, ptr: &str) -> Option<Value> {
    let mut cur = schema.clone();
    for seg in ptr.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        let here = deref(schema, &cur);
        cur = if let Some(p) = here.get("properties").and_then(|p| p.get(&seg)) {
            p.clone()
        } else if let Some(items) = here.get("items") {
            items.clone()
        } else if let Some(items) = seg
            .parse::<usize>()
            .ok()
            .and_then(|_| list_items(schema, &cur, 4))
        {
            // One-or-many unions: an index goes into the list-shaped branch.
            items
        } else if let Some(ap) = here.get("additionalProperties").filter(|a| a.is_object()) {
            ap.clone()
        } else {
            return None;
        };
    }
    Some(cur)
}

/// The `items` of the list-shaped branch of a union (through `$ref`s).
pub(super) fn list_items(schema: &Value, s: &Value, depth: u32) -> Option<Value> {
    if let Some(items) = s.get("items") {
        return Some(items.clone());
    }
    if depth == 0 {
        return None;
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        return list_items(schema, schema.get("$defs")?.get(name)?, depth - 1);
    }
    s.get("anyOf")
        .or_else(|| s.get("oneOf"))
        .and_then(Value::as_array)?
        .iter()
        .find_map(|b| list_items(schema, b, depth - 1))
}

/// The property names the schema allows for the object at `ptr`.
pub fn allowed_keys(schema: &Value, ptr: &str) -> Vec<String> {
    schema_at(schema, ptr)
        .map(|s| deref(schema, &s))
        .and_then(|s| s.get("properties").and_then(Value::as_object).cloned())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The `description` the schema gives property `prop` of the object at `ptr`, first sentence.
pub(super) fn property_description(schema: &Value, ptr: &str, prop: &str) -> Option<String> {
    let raw = schema_at(schema, &format!("{ptr}/{}", yaml::pointer_segment(prop)))?;
    let d = match raw.get("description").and_then(Value::as_str) {
        Some(d) => d.to_string(),
        None => deref(schema, &raw)
            .get("description")
            .and_then(Value::as_str)?
            .to_string(),
    };
    Some(first_sentence(&d))
}

/// Removes object keys the schema does not allow (used only to keep checking past typos).
pub fn prune_unknown(v: &mut Value, schema: &Value) {
    fn walk(v: &mut Value, schema: &Value, ptr: String) {
        match v {
            Value::Object(m) => {
                let allowed = allowed_keys(schema, &ptr);
                if !allowed.is_empty() {
                    m.retain(|k, _| allowed.iter().any(|a| a == k));
                }
                let keys: Vec<String> = m.keys().cloned().collect();
                for k in keys {
                    let child = format!("{ptr}/{}", yaml::pointer_segment(&k));
                    if let Some(c) = m.get_mut(&k) {
                        walk(c, schema, child);
                    }
                }
            }
            Value::Array(items) => {
                for (i, it) in items.iter_mut().enumerate() {
                    walk(it, schema, format!("{ptr}/{i}"));
                }
            }
            _ => {}
        }
    }
    walk(v, schema, String::new());
}

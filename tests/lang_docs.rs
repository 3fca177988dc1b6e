//! The format reference documents every field the schema has.

use crate::lang_support;

use std::collections::BTreeSet;

use lang_support::root;
use serde_json::Value;

fn property_names(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = m.get("properties") {
                out.extend(props.keys().cloned());
            }
            for child in m.values() {
                property_names(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| property_names(i, out)),
        _ => {}
    }
}

#[test]
fn every_schema_property_is_documented() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/runbook.schema.json")).unwrap(),
    )
    .unwrap();
    let doc = std::fs::read_to_string(root().join("docs/runbook-format.md")).unwrap();
    let mut names = BTreeSet::new();
    property_names(&schema, &mut names);
    assert!(names.len() > 50, "the schema walk found too few properties");
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !doc.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/runbook-format.md does not mention these schema properties (as `name`): {missing:?}"
    );
}

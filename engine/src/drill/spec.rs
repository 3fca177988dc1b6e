//! The drill file format (`kind: Drill`).

/// A checked drill.
#[derive(Debug, Clone)]
pub struct Drill {
    pub name: String,
}

/// The JSON Schema of drill files.
pub fn drill_schema() -> serde_json::Value {
    serde_json::json!({})
}

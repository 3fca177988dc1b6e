//! The drill file format (`kind: Drill`).

/// A checked drill.
#[derive(Debug, Clone)]
pub struct Drill {
    pub name: String,
}

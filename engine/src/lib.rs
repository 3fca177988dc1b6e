//! runbook: a declarative runbook engine.
//!
//! The stages, each its own module: `yaml` (parse with locations) → `check` (validate into
//! `model`) → `plan` (render what would run) → `exec` (run, journal) → `report`.

pub mod check;
pub mod diag;
pub mod drill;
pub mod inputs;
pub mod model;
pub mod spec;
pub mod template;
pub mod yaml;

//! runbook: a declarative runbook engine.
//!
//! The stages, each its own module: `yaml` (parse with locations) → `check` (validate into
//! `model`) → `plan` (render what would run) → `exec` (run, journal) → `report`.
//! Side effects sit behind traits: `backends` (processes, HTTP, Kubernetes, compose),
//! `exec::clock`, `exec::gate::Prompter`; the drill simulator implements the same traits.

// Diagnostics are returned once per file and runner helpers mirror the step lifecycle's
// parameters; boxing or bundling them would only add noise.
#![allow(clippy::result_large_err, clippy::too_many_arguments)]

// First: its print macros shadow std's in every module below (see term.rs).
#[macro_use]
pub mod term;

pub mod backends;
pub mod check;
pub mod cli;
pub mod diag;
pub mod drill;
pub mod exec;
pub mod exit;
pub mod files;
pub mod inputs;
pub mod load;
pub mod model;
pub mod plan;
pub mod prompt;
pub mod report;
pub mod schema;
pub mod session;
pub mod spec;
pub mod template;
pub mod view;
pub mod yaml;

/// A schema as checked in under `schemas/`: pretty JSON with a trailing newline.
pub fn schema_text(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).expect("schema serializes")
}

//! Tabletop drills: a runbook run through the real runner against a simulated world, with
//! scripted answers and faults on a virtual clock, its expectations checked and its run scored.
//!
//! `spec` (the file) → `check` (into a `Drill`) → one run (`session::drill`, through the same
//! session layer as every run) → `expect` and `score` (read the journal's events) →
//! `cli::drill` (lines, summary) and `junit`. `world` implements the backend traits; training
//! (`session::training`) runs a runbook interactively against a drill's world.

pub mod check;
pub mod expect;
pub mod junit;
pub mod model;
pub mod score;
pub mod spec;
pub mod world;

pub use model::{Drill, DrillRun, REPORT_NAME};

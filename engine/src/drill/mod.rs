//! Tabletop drills: a runbook run through the real runner against a simulated world, with
//! scripted answers and faults on a virtual clock, its expectations checked and its run scored.
//!
//! `spec` (the file) → `check` (into a `Drill`) → `runner` (one run) → `expect` and `score`
//! (read the journal's events) → `cli` (lines, summary) and `junit`. `world` implements the
//! backend traits; `training` runs a runbook interactively against a drill's world.

pub mod check;
pub mod expect;
pub mod junit;
pub mod model;
pub mod runner;
pub mod score;
pub mod spec;
pub mod world;

#[cfg(test)]
mod inprocess_tests;

pub use model::Drill;

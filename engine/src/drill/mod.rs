//! Tabletop drills: a runbook run through the real runner against a simulated world.

pub mod check;
pub mod cli;
pub mod spec;
pub mod training;

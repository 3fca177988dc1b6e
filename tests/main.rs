//! The integration tests, one module per area, built as one test binary so the engine is
//! linked into tests once (`cargo test --test integration <module>::` runs one area).
//!
//! Every module drives the real `runbook` binary (`common::runbook`, with a hang guard) against
//! real components: loopback HTTP servers, child processes, and tests/env's Kubernetes API
//! server, Compose and Prometheus (`backend_env`). `common::Workdir` runs the binary in a
//! directory of its own; `scenario::Scenario` sets up a built-in runbook's scenario against
//! the real backends.

// Shared helpers.
mod backend_env;
mod common;
mod lang_support;
mod report_support;
mod scenario;

mod architecture;
mod builtin_real;
mod builtin_real_flows;
mod builtin_real_providers;
mod check_fixtures;
mod check_fuzz;
mod compose_backend;
mod contract_args;
mod contract_backends;
mod drill_check;
mod drill_host;
mod drill_metrics;
mod drill_run;
mod drill_training;
mod k8s_backend;
mod lang_docs;
mod lang_examples;
mod lang_plan;
mod lang_schema;
mod prometheus_backend;
mod prometheus_contract;
mod reliability_crash;
mod reliability_faults;
mod reliability_full_disk;
mod reliability_hostile;
mod reliability_k8s_faults;
mod reliability_load;
mod reliability_props;
mod reliability_secrets;
mod report_cli;
mod report_html;
mod report_secrets;
mod report_snapshots;
mod report_undo_safety;
mod run_answers;
mod run_exit;
mod run_hostile;
mod run_http;
mod run_nodata;
mod run_pty;
mod run_resume;
mod run_resume_safety;
mod run_secrets;
mod run_shell;
mod run_steps;
mod run_terminal;
mod run_verdicts;
mod secrets_attacks;

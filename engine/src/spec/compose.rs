//! Docker Compose actions: one verb per step, with its arguments, and each verb's safety.

use super::Safety;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A docker compose operation. `backend` plus exactly one verb.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeAction {
    /// A compose backend (optional when the runbook has exactly one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// List containers (read-only); the result has `services`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ps: Option<ComposeServices>,
    /// Pull images (idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<ComposeServices>,
    /// Create and start containers (idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<ComposeUp>,
    /// Stop and remove the project (terminal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<ComposeDown>,
    /// Restart services (idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<ComposeServices>,
    /// Stop services (idempotent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<ComposeServices>,
    /// Read the last lines of logs (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<ComposeLogs>,
    /// Run a service on another image, through an override file (reversible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_image: Option<ComposeSetImage>,
}

/// The services a compose verb acts on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeServices {
    /// Services to act on; default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

/// `docker compose up`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeUp {
    /// Services to start; default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Run in the background (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detach: Option<bool>,
    /// Wait for services to be running/healthy (`--wait`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wait: bool,
}

/// `docker compose down`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeDown {
    /// Also remove named volumes (`-v`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub volumes: bool,
}

/// `docker compose logs --tail N`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeLogs {
    /// Services whose logs to read; default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Lines from the end (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<u32>,
}

/// Run one service on another image.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeSetImage {
    /// The service to change.
    pub service: String,
    /// The image it should run, e.g. `registry.internal/web:1.4.1`.
    pub image: String,
}

/// The verbs of a `compose:` action.
pub const COMPOSE_VERBS: &[&str] = &[
    "ps",
    "pull",
    "up",
    "down",
    "restart",
    "stop",
    "logs",
    "set_image",
];

/// The built-in safety class of a compose verb.
pub fn compose_verb_safety(verb: &str) -> Safety {
    match verb {
        "ps" | "logs" => Safety::ReadOnly,
        "pull" | "up" | "restart" | "stop" => Safety::Idempotent,
        "down" => Safety::Terminal,
        _ => Safety::Reversible,
    }
}

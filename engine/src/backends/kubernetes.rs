//! The Kubernetes backend (kube-rs). Placeholder until the backends land: every call fails
//! with a clear message.

use async_trait::async_trait;
use serde_json::Value;

use super::{ActionError, CallCtx, ErrorKind, KubernetesBackend, Output};
use crate::spec::KubernetesBackendSpec;

/// `--context` / `--namespace` given on the command line win over the runbook's backend.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub context: Option<String>,
    pub namespace: Option<String>,
}

pub struct KubeBackend {
    #[allow(dead_code)]
    overrides: Overrides,
}

impl KubeBackend {
    pub fn new(overrides: Overrides) -> Self {
        KubeBackend { overrides }
    }
}

#[async_trait]
impl KubernetesBackend for KubeBackend {
    async fn call(
        &self,
        _t: &KubernetesBackendSpec,
        verb: &str,
        _a: &Value,
        _c: &CallCtx,
    ) -> Result<Output, ActionError> {
        Err(ActionError::new(
            ErrorKind::Invalid,
            format!("kubernetes.{verb}: the Kubernetes backend is not available in this build"),
        ))
    }
}

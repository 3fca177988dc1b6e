//! The docker compose backend (the Compose CLI). Placeholder until the backends land.

use async_trait::async_trait;
use serde_json::Value;

use super::{ActionError, CallCtx, ComposeBackend, ErrorKind, Output};
use crate::spec::ComposeBackendSpec;

#[derive(Debug, Default, Clone, Copy)]
pub struct ComposeCli;

#[async_trait]
impl ComposeBackend for ComposeCli {
    async fn call(
        &self,
        _t: &ComposeBackendSpec,
        verb: &str,
        _a: &Value,
        _c: &CallCtx,
    ) -> Result<Output, ActionError> {
        Err(ActionError::new(
            ErrorKind::Invalid,
            format!("compose.{verb}: the compose backend is not available in this build"),
        ))
    }
}

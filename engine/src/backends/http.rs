//! Real HTTP with reqwest and rustls. One client per CA bundle, kept for the whole run so
//! connections are reused across steps. Any status is a result; transport errors are
//! failed attempts, never crashes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{ActionError, CallCtx, ErrorKind, HttpBackend, HttpRequest, Output};

/// Keep at most this much of a response body.
pub const MAX_BODY: usize = 1024 * 1024;
/// Default per-request timeout when neither the step nor the backend sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct ReqwestHttp {
    clients: Mutex<HashMap<Option<PathBuf>, reqwest::Client>>,
}

/// Installs the process-wide rustls crypto provider (ring) once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl ReqwestHttp {
    fn client(&self, ca: Option<&PathBuf>) -> Result<reqwest::Client, ActionError> {
        install_crypto_provider();
        let mut clients = self.clients.lock().expect("client cache lock");
        if let Some(c) = clients.get(&ca.cloned()) {
            return Ok(c.clone());
        }
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("runbook/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(Duration::from_secs(10));
        if let Some(path) = ca {
            let pem = std::fs::read(path).map_err(|e| {
                ActionError::new(
                    ErrorKind::Invalid,
                    format!("cannot read CA file {}: {e}", path.display()),
                )
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                ActionError::new(
                    ErrorKind::Invalid,
                    format!("CA file {} is not PEM: {e}", path.display()),
                )
            })?;
            b = b.add_root_certificate(cert);
        }
        let c = b
            .build()
            .map_err(|e| ActionError::new(ErrorKind::Invalid, format!("HTTP client: {e}")))?;
        clients.insert(ca.cloned(), c.clone());
        Ok(c)
    }
}

/// The error and its causes on one line: reqwest's top-level message alone is vague.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[async_trait]
impl HttpBackend for ReqwestHttp {
    async fn send(&self, req: &HttpRequest, ctx: &CallCtx) -> Result<Output, ActionError> {
        let client = self.client(req.ca_file.as_ref())?;
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| {
            ActionError::new(ErrorKind::Invalid, format!("bad method {}", req.method))
        })?;
        let url = reqwest::Url::parse(&req.url).map_err(|e| {
            ActionError::new(ErrorKind::Invalid, format!("bad URL `{}`: {e}", req.url))
        })?;
        let mut rb = client.request(method, url);
        for (k, v) in &req.headers {
            rb = rb.header(k, v);
        }
        if let Some(body) = &req.body {
            rb = rb.body(body.clone());
        }
        let mut timeout = req.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if let Some(rem) = ctx.remaining() {
            timeout = timeout.min(rem);
        }
        rb = rb.timeout(timeout);
        let started = Instant::now();
        let send = rb.send();
        let mut resp = tokio::select! {
            r = send => r.map_err(|e| {
                let kind = if e.is_timeout() { ErrorKind::Timeout } else if e.is_builder() { ErrorKind::Invalid } else { ErrorKind::Transport };
                ActionError::new(kind, format!("{} {}: {}", req.method, req.url, chain(&e)))
            })?,
            _ = ctx.cancel.cancelled() => return Err(ActionError::new(ErrorKind::Cancelled, "request cancelled")),
        };
        let status = resp.status().as_u16();
        let mut headers = serde_json::Map::new();
        for (k, v) in resp.headers() {
            headers.insert(
                k.as_str().to_string(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            );
        }
        let mut body = Vec::new();
        let mut dropped = 0usize;
        loop {
            let chunk = tokio::select! {
                c = resp.chunk() => c,
                _ = ctx.cancel.cancelled() => return Err(ActionError::new(ErrorKind::Cancelled, "request cancelled")),
            };
            match chunk {
                Ok(Some(c)) => {
                    let room = MAX_BODY.saturating_sub(body.len());
                    body.extend_from_slice(&c[..c.len().min(room)]);
                    dropped += c.len().saturating_sub(room);
                    if dropped > 0 {
                        // Enough evidence; do not download the rest of a huge body.
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let kind = if e.is_timeout() {
                        ErrorKind::Timeout
                    } else {
                        ErrorKind::Transport
                    };
                    return Err(ActionError::new(
                        kind,
                        format!(
                            "{} {}: reading the body: {}",
                            req.method,
                            req.url,
                            chain(&e)
                        ),
                    ));
                }
            }
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        let parsed = if dropped == 0 {
            serde_json::from_str::<Value>(&text).ok()
        } else {
            None
        };
        let mut r = json!({
            "status": status,
            "headers": headers,
            "body": if dropped > 0 { format!("{text}\n[… body truncated at {MAX_BODY} bytes …]") } else { text },
            "elapsed_ms": started.elapsed().as_millis() as u64,
        });
        if let Some(j) = parsed {
            r["json"] = j;
        } else {
            r["json"] = Value::Null;
        }
        Ok(r.into())
    }
}

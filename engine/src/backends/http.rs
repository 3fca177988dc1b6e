//! Real HTTP with reqwest and rustls. One client per CA bundle, kept for the whole run so
//! connections are reused across steps. Any status is a result; transport errors are
//! failed attempts, never crashes.
//!
//! Redirects are never followed by reqwest itself: `redirect_hop` decides each one (the
//! backend's `follow_redirects`, same origin by default), so that a header or a body holding a
//! secret never reaches another origin, a method is never changed, and no `Referer` is sent.
//! Every HTTP client of the engine is built with `client_builder` and sends with
//! `send_following`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{ActionError, CallCtx, ErrorKind, HttpBackend, HttpRequest, Output};
pub use crate::spec::FollowRedirects;

/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 10;

/// Header names that always carry a credential.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie"];
/// Parts of header names that suggest a credential (`X-Api-Key`, `X-Auth-Token`).
const CREDENTIAL_WORDS: &[&str] = &[
    "auth",
    "key",
    "token",
    "secret",
    "passw",
    "session",
    "cookie",
    "credential",
    "signature",
];

/// Whether a header must never reach another origin: it is one of `secret_headers` (the
/// caller knows its value holds a secret), or its name says it carries a credential.
pub fn header_is_sensitive(name: &str, secret_headers: &[String]) -> bool {
    let n = name.to_ascii_lowercase();
    secret_headers.iter().any(|s| s.eq_ignore_ascii_case(name))
        || CREDENTIAL_HEADERS.contains(&n.as_str())
        || CREDENTIAL_WORDS.iter().any(|w| n.contains(w))
}

/// The builder every HTTP client of the engine starts from: reqwest follows no redirect
/// (`send_following` does, through `redirect_hop`) and sends no `Referer`.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(concat!("runbook/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
}

/// A redirect that was not followed: the answer's status, where it pointed, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct NotFollowed {
    pub status: u16,
    pub location: String,
    pub reason: String,
}

impl NotFollowed {
    /// As the step's result shows it (`result.redirect`).
    pub fn to_json(&self) -> Value {
        json!({ "status": self.status, "location": self.location, "followed": false, "reason": self.reason })
    }
}

/// The next request of a redirect that is followed.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    pub url: reqwest::Url,
    pub method: String,
    /// The headers to send there (without the sensitive ones when the origin changes).
    pub headers: Vec<(String, String)>,
    /// Whether the body is sent again (307 and 308 keep it).
    pub keep_body: bool,
}

/// The redirect policy, one decision per answer. `None` when the answer is not a redirect
/// (not 301/302/303/307/308, or without `Location`): it is the result. Otherwise the hop to
/// make, or why not. Never followed: a method change (303, or 301/302 after anything but
/// GET/HEAD, which clients turn into a GET), `https` to `http`, a scheme other than http(s),
/// another origin unless `follow` is `Any`, and then a body that holds a secret.
#[allow(clippy::too_many_arguments)]
pub fn redirect_hop(
    follow: FollowRedirects,
    method: &str,
    from: &reqwest::Url,
    status: u16,
    location: Option<&str>,
    headers: &[(String, String)],
    secret_headers: &[String],
    body_holds_secret: bool,
) -> Option<Result<Hop, NotFollowed>> {
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = location?;
    let stop = |reason: String| {
        Some(Err(NotFollowed {
            status,
            location: location.to_string(),
            reason,
        }))
    };
    let to = match from.join(location) {
        Ok(u) => u,
        Err(e) => return stop(format!("`Location` is not a URL: {e}")),
    };
    if follow == FollowRedirects::Never {
        return stop("the backend follows no redirects (`follow_redirects: never`)".into());
    }
    if !matches!(to.scheme(), "http" | "https") {
        return stop(format!("`{}` is not an HTTP URL", to.scheme()));
    }
    if from.scheme() == "https" && to.scheme() == "http" {
        return stop("it goes from https to plain http".into());
    }
    let safe = matches!(method, "GET" | "HEAD");
    let keep_body = matches!(status, 307 | 308);
    if !keep_body && !safe {
        return stop(format!(
            "a {status} would turn the {method} into a GET; only 307 and 308 keep the method"
        ));
    }
    let same_origin = from.origin() == to.origin();
    let mut headers = headers.to_vec();
    if !same_origin {
        if follow != FollowRedirects::Any {
            return stop(format!(
                "it leads to another origin ({}); set `follow_redirects: any` on the backend to follow it",
                to.origin().ascii_serialization()
            ));
        }
        if keep_body && body_holds_secret {
            return stop("the body holds a secret and the redirect leads to another origin".into());
        }
        headers.retain(|(k, _)| !header_is_sensitive(k, secret_headers));
    }
    Some(Ok(Hop {
        url: to,
        method: if keep_body {
            method.to_string()
        } else if method == "HEAD" {
            "HEAD".into()
        } else {
            "GET".into()
        },
        headers,
        keep_body,
    }))
}

/// What `send_following` got: the last answer, the URL it came from, the URLs redirected from
/// (first the request's own), and the redirect not followed, if the answer is one.
pub struct Exchange {
    pub response: reqwest::Response,
    pub url: reqwest::Url,
    pub redirected_from: Vec<reqwest::Url>,
    pub not_followed: Option<NotFollowed>,
}

/// A request that failed in transport, with the URL it was sent to (after redirects).
pub struct SendError {
    pub url: reqwest::Url,
    pub redirected: bool,
    pub error: reqwest::Error,
}

/// One request for `send_following`.
pub struct Outgoing<'a> {
    pub method: &'a str,
    pub url: reqwest::Url,
    pub headers: &'a [(String, String)],
    pub body: Option<&'a [u8]>,
    /// For the whole exchange, redirects included.
    pub timeout: Duration,
    pub follow: FollowRedirects,
    /// Names of the headers whose values hold a secret (besides the credential names).
    pub secret_headers: &'a [String],
    pub body_holds_secret: bool,
}

/// Sends a request with a client from `client_builder`, following redirects as
/// `redirect_hop` allows.
pub async fn send_following(
    client: &reqwest::Client,
    out: Outgoing<'_>,
) -> Result<Exchange, SendError> {
    let started = Instant::now();
    let mut url = out.url.clone();
    let mut method = out.method.to_string();
    let mut headers = out.headers.to_vec();
    let mut body = out.body;
    let mut redirected_from = vec![];
    loop {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut rb = client.request(m, url.clone());
        for (k, v) in &headers {
            rb = rb.header(k, v);
        }
        if let Some(b) = body {
            rb = rb.body(b.to_vec());
        }
        let left = out
            .timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        let response = rb.timeout(left).send().await.map_err(|error| SendError {
            url: url.clone(),
            redirected: !redirected_from.is_empty(),
            error,
        })?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let hop = redirect_hop(
            out.follow,
            &method,
            &url,
            status,
            location.as_deref(),
            &headers,
            out.secret_headers,
            out.body_holds_secret,
        );
        let hop = match hop {
            None => None,
            Some(Err(nf)) => Some(nf),
            Some(Ok(_)) if redirected_from.len() >= MAX_REDIRECTS => Some(NotFollowed {
                status,
                location: location.unwrap_or_default(),
                reason: format!("more than {MAX_REDIRECTS} redirects"),
            }),
            Some(Ok(h)) => {
                redirected_from.push(std::mem::replace(&mut url, h.url));
                method = h.method;
                headers = h.headers;
                if !h.keep_body {
                    body = None;
                    headers.retain(|(k, _)| {
                        !k.eq_ignore_ascii_case("content-type")
                            && !k.eq_ignore_ascii_case("content-length")
                    });
                }
                continue;
            }
        };
        return Ok(Exchange {
            response,
            url,
            redirected_from,
            not_followed: hop,
        });
    }
}

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
        let mut b = client_builder()
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
        if reqwest::Method::from_bytes(req.method.as_bytes()).is_err() {
            return Err(ActionError::new(
                ErrorKind::Invalid,
                format!("bad method {}", req.method),
            ));
        }
        let url = reqwest::Url::parse(&req.url).map_err(|e| {
            ActionError::new(ErrorKind::Invalid, format!("bad URL `{}`: {e}", req.url))
        })?;
        let mut timeout = req.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if let Some(rem) = ctx.remaining() {
            timeout = timeout.min(rem);
        }
        let started = Instant::now();
        let send = send_following(
            &client,
            Outgoing {
                method: &req.method,
                url,
                headers: &req.headers,
                body: req.body.as_deref(),
                timeout,
                follow: req.follow_redirects,
                secret_headers: &req.secret_headers,
                body_holds_secret: req.body_holds_secret,
            },
        );
        let exchange = tokio::select! {
            r = send => r.map_err(|e| {
                let kind = if e.error.is_timeout() { ErrorKind::Timeout } else if e.error.is_builder() { ErrorKind::Invalid } else { ErrorKind::Transport };
                // After a redirect, the URL that failed, not the one the step named.
                let at = if e.redirected { format!("{} (redirected from {})", e.url, req.url) } else { req.url.clone() };
                ActionError::new(kind, format!("{} {at}: {}", req.method, chain(&e.error)))
            })?,
            _ = ctx.cancel.cancelled() => return Err(ActionError::new(ErrorKind::Cancelled, "request cancelled")),
        };
        let Exchange {
            response: mut resp,
            url: final_url,
            redirected_from,
            not_followed,
        } = exchange;
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
                            "{} {final_url}: reading the body: {}",
                            req.method,
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
        if !redirected_from.is_empty() {
            r["url"] = Value::String(final_url.to_string());
            r["redirected_from"] = redirected_from
                .iter()
                .map(|u| Value::String(u.to_string()))
                .collect();
        }
        if let Some(nf) = not_followed {
            r["redirect"] = nf.to_json();
        }
        Ok(r.into())
    }
}

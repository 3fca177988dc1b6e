//! Scripted HTTP: the first rule whose `match` and `when` hold answers, with the next response
//! of its sequence. Injected `http_failing` faults come first; no rule is a loud error.

use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{json, Value};

use super::pattern::{glob, pick, subset, Counted};
use super::predicate::holds;
use super::{unscripted, Call, Reply, State};
use crate::backends::http::{redirect_hop, NotFollowed, DEFAULT_TIMEOUT, MAX_REDIRECTS};
use crate::backends::{ActionError, ErrorKind, HttpRequest};
use crate::drill::spec::{EffectSpec, WorldStateSpec};

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: IndexMap<String, String>,
    pub body: Option<String>,
    pub json: Option<Value>,
    pub times: Option<u32>,
    pub error: Option<String>,
    pub takes: Duration,
}

impl Counted for HttpResponse {
    fn times(&self) -> Option<u32> {
        self.times
    }
}

#[derive(Debug, Clone)]
pub struct HttpRule {
    pub method: Option<String>,
    pub url: String,
    pub headers: IndexMap<String, String>,
    pub body: Option<String>,
    pub json: Option<Value>,
    pub when: Option<WorldStateSpec>,
    pub responses: Vec<HttpResponse>,
    pub effect: Option<EffectSpec>,
    /// Answers given so far.
    pub used: u32,
}

impl HttpRule {
    fn matches(&self, req: &HttpRequest) -> bool {
        let body = req
            .body
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        self.method.as_ref().is_none_or(|m| m == &req.method)
            && glob(&self.url, &req.url)
            && self.headers.iter().all(|(k, v)| {
                req.headers
                    .iter()
                    .any(|(hk, hv)| hk.eq_ignore_ascii_case(k) && glob(v, hv))
            })
            && self.body.as_ref().is_none_or(|p| glob(p, &body))
            && self
                .json
                .as_ref()
                .is_none_or(|j| serde_json::from_str::<Value>(&body).is_ok_and(|b| subset(j, &b)))
    }
}

/// Answers a request from the script, following the redirects the real backend follows
/// (`redirect_hop` decides, as it does for the real one; the backend's `follow_redirects`,
/// same origin by default): the next request is answered from the script too, and the result
/// names the final `url` and the URLs `redirected_from`, or the `redirect` not followed.
pub fn send(st: &mut State, req: &HttpRequest, c: &Call) -> Reply {
    let mut req = req.clone();
    let mut from: Vec<String> = vec![];
    let mut spent = Duration::ZERO;
    loop {
        let what = match from.first() {
            Some(first) => format!("{} {} (redirected from {first})", req.method, req.url),
            None => c.what.to_string(),
        };
        let reply = send_one(st, &req, &Call { what: &what, ..*c }, spent);
        let (mut v, takes) = match reply {
            Reply::Answer(Ok(v), takes) => (v, takes),
            Reply::Answer(Err(e), takes) => return Reply::Answer(Err(e), spent + takes),
            other => return other,
        };
        spent += takes;
        let status = v["status"].as_u64().unwrap_or(0) as u16;
        let location = v["headers"]["location"].as_str().map(str::to_string);
        let hop = reqwest::Url::parse(&req.url).ok().and_then(|url| {
            redirect_hop(
                req.follow_redirects,
                &req.method,
                &url,
                status,
                location.as_deref(),
                &req.headers,
                &req.secret_headers,
                req.body_holds_secret,
            )
            .map(|h| (url, h))
        });
        let not_followed = match hop {
            Some((_, Ok(_))) if from.len() >= MAX_REDIRECTS => Some(NotFollowed {
                status,
                location: location.clone().unwrap_or_default(),
                reason: format!("more than {MAX_REDIRECTS} redirects"),
            }),
            Some((url, Ok(h))) => {
                from.push(url.to_string());
                req.url = h.url.to_string();
                req.method = h.method;
                req.headers = h.headers;
                if !h.keep_body {
                    req.body = None;
                }
                continue;
            }
            Some((_, Err(nf))) => Some(nf),
            None => None,
        };
        if !from.is_empty() {
            v["url"] = json!(req.url);
            v["redirected_from"] = json!(from);
        }
        if let Some(nf) = not_followed {
            v["redirect"] = nf.to_json();
        }
        v["elapsed_ms"] = json!(spent.as_millis() as u64);
        return Reply::Answer(Ok(v), spent);
    }
}

/// One request and its scripted answer; `spent` is the time the exchange took so far.
fn send_one(st: &mut State, req: &HttpRequest, c: &Call, spent: Duration) -> Reply {
    let start = st.start;
    if let Some(r) = st.faults.http_failure(req, c.ctx, c.now, &start) {
        return Reply::Answer(r, Duration::ZERO);
    }
    let mut matched_url = 0;
    let mut chosen = None;
    for (i, rule) in st.http.iter().enumerate() {
        if !rule.matches(req) {
            continue;
        }
        matched_url += 1;
        let applies = rule.when.as_ref().is_none_or(|w| holds(st, w, c.now));
        if applies && pick(&rule.responses, rule.used).is_some() {
            chosen = Some(i);
            break;
        }
    }
    let Some(i) = chosen else {
        let why = if matched_url == 0 {
            "no `world.http` rule matches this request; add one to the drill".to_string()
        } else {
            format!("{matched_url} `world.http` rule(s) match the request, but none applies now (their `when` does not hold, or their responses are used up)")
        };
        return Reply::err(unscripted(c.what, why));
    };
    let rule = &mut st.http[i];
    let resp = pick(&rule.responses, rule.used)
        .expect("chosen above")
        .clone();
    rule.used += 1;
    if let Some(effect) = rule.effect.clone() {
        st.schedule(&effect, c.now);
    }
    // As the real client: the request's own timeout (default 30s), cut to the attempt's.
    let limit = req.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let limit = c.ctx.remaining().map_or(limit, |rem| rem.min(limit));
    let limit = limit.saturating_sub(spent);
    if resp.takes > limit {
        return Reply::Answer(
            Err(ActionError::new(
                ErrorKind::Timeout,
                format!("{}: {}: operation timed out", c.what, sending(req)),
            )),
            limit,
        );
    }
    if let Some(e) = &resp.error {
        return Reply::Answer(
            Err(ActionError::new(
                ErrorKind::Transport,
                format!("{}: {}: {e}", c.what, sending(req)),
            )),
            resp.takes,
        );
    }
    let mut headers: serde_json::Map<String, Value> = resp
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), json!(v)))
        .collect();
    let (body, parsed) = match (&resp.json, &resp.body) {
        (Some(j), _) => {
            headers
                .entry("content-type")
                .or_insert_with(|| json!("application/json"));
            (j.to_string(), j.clone())
        }
        (None, Some(b)) => (b.clone(), serde_json::from_str(b).unwrap_or(Value::Null)),
        (None, None) => (String::new(), Value::Null),
    };
    Reply::Answer(
        Ok(json!({
            "status": resp.status,
            "headers": headers,
            "body": body,
            "json": parsed,
            "elapsed_ms": resp.takes.as_millis() as u64,
        })),
        resp.takes,
    )
}

/// How the real client (reqwest) words a request that did not get an answer.
fn sending(req: &HttpRequest) -> String {
    format!("error sending request for url ({})", req.url)
}

//! Prometheus: the query API (`/api/v1/query`, `/api/v1/query_range`) over the run's reqwest,
//! answered as a typed [`PromAnswer`]. The real client and the drill world both implement
//! [`PrometheusBackend`], and both answers become a step's `result` through the same
//! [`result_json`], so a drill reads exactly the shape a real run reads.
//!
//! A small client of our own rather than `prometheus-http-query`: we need two GET endpoints,
//! the raw sample text (`"NaN"`, `"+Inf"`) kept distinguishable from numbers, our redirect
//! policy (headers carry tokens: never follow a redirect to another origin), the run's
//! timeouts and cancellation, and the same error kinds as the other backends; the crate
//! brings its own client setup and parses values into plain `f64`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::http::{chain, install_crypto_provider, DEFAULT_TIMEOUT, MAX_BODY};
use super::{ActionError, CallCtx, ErrorKind};
use crate::model::fmt_duration;

/// Where the queries go: the rendered backend.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromTarget {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    pub ca_file: Option<PathBuf>,
}

/// One query, its templates resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct PromQuery {
    pub query: String,
    pub range: Option<PromRange>,
    /// The analysis metric's name, when the query is one (drills may match it; never sent).
    pub name: Option<String>,
}

/// The window of a range query, ending now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PromRange {
    pub last: Duration,
    pub step: Duration,
}

/// The type of a query's answer, as Prometheus names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    Vector,
    Matrix,
    Scalar,
    String,
}

impl ResultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultKind::Vector => "vector",
            ResultKind::Matrix => "matrix",
            ResultKind::Scalar => "scalar",
            ResultKind::String => "string",
        }
    }
}

/// One series: its labels and its samples `(unix seconds, value)`, oldest first. An instant
/// query gives one sample per series. Values keep `NaN` and `±Inf`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(f64, f64)>,
}

impl Series {
    /// The latest sample's value.
    pub fn last(&self) -> Option<f64> {
        self.samples.last().map(|s| s.1)
    }
}

/// What Prometheus answered.
#[derive(Debug, Clone, PartialEq)]
pub struct PromAnswer {
    pub kind: ResultKind,
    pub series: Vec<Series>,
    pub warnings: Vec<String>,
}

#[async_trait]
pub trait PrometheusBackend: Send + Sync {
    /// Runs one query. An unreachable server, a timeout or a 5xx is a (retryable) error; a
    /// query Prometheus rejects (`bad_data`) is `Invalid`. An empty answer is an answer.
    async fn query(
        &self,
        target: &PromTarget,
        q: &PromQuery,
        ctx: &CallCtx,
    ) -> Result<PromAnswer, ActionError>;
}

/// A sample value as JSON: a number when finite, `null` for `NaN` and `±Inf` (which JSON
/// cannot hold; the `text` beside it says which).
pub fn value_json(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

/// A sample value as Prometheus writes it: `0.043`, `NaN`, `+Inf`, `-Inf`.
pub fn value_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        let s = format!("{v}");
        s
    }
}

/// Parses a sample value the way Prometheus writes it.
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse::<f64>().ok(),
    }
}

/// The step's `result`: `query` (as sent), `type`, `empty`, `count`, `series` (each with
/// `labels`, `value` — the latest sample —, `text`, and for a range query `values`), and
/// when there is exactly one series its `value` and `text` at the top. `value` is `null`
/// for `NaN` and `±Inf`; `text` tells them apart. With no series, or several, there is no
/// top-level `value`: reading it is inconclusive, never a number.
pub fn result_json(q: &PromQuery, a: &PromAnswer) -> Value {
    let series: Vec<Value> = a
        .series
        .iter()
        .map(|s| {
            let mut o = Map::new();
            o.insert("labels".into(), json!(s.labels));
            let last = s.last();
            o.insert("value".into(), last.map(value_json).unwrap_or(Value::Null));
            o.insert(
                "text".into(),
                last.map(|v| Value::String(value_text(v)))
                    .unwrap_or(Value::Null),
            );
            if q.range.is_some() {
                o.insert(
                    "values".into(),
                    Value::Array(
                        s.samples
                            .iter()
                            .map(|(t, v)| json!([t, value_json(*v)]))
                            .collect(),
                    ),
                );
            }
            Value::Object(o)
        })
        .collect();
    let mut r = json!({
        "query": q.query,
        "type": a.kind.as_str(),
        "empty": a.series.is_empty(),
        "count": a.series.len(),
        "series": series,
    });
    if let Some(rg) = &q.range {
        r["range"] = json!({ "last": fmt_duration(rg.last), "step": fmt_duration(rg.step) });
    }
    if a.series.len() == 1 {
        if let Some(v) = a.series[0].last() {
            r["value"] = value_json(v);
            r["text"] = Value::String(value_text(v));
        }
    }
    if !a.warnings.is_empty() {
        r["warnings"] = json!(a.warnings);
    }
    r
}

/// Why a Prometheus result cannot give the one value an expression reads, if it cannot:
/// `no data`, `NaN`, `N series where one was expected`. `None` when it has one value.
pub fn why_no_value(result: &Value) -> Option<String> {
    let q = result.get("query")?.as_str()?;
    let n = result.get("count")?.as_u64()?;
    if n == 0 {
        return Some(format!(
            "no data: the query returned no series (query: {q})"
        ));
    }
    if n > 1 {
        return Some(format!(
            "{n} series where one was expected (query: {q}); aggregate it (sum, max, topk(1, …))"
        ));
    }
    match result.get("value") {
        Some(Value::Null) | None => {
            let text = result.get("text").and_then(Value::as_str).unwrap_or("NaN");
            Some(format!("the query gave {text}, not a number (query: {q})"))
        }
        _ => None,
    }
}

/// The real client: reqwest, one client per CA file.
#[derive(Default)]
pub struct PromHttp {
    clients: Mutex<HashMap<Option<PathBuf>, reqwest::Client>>,
}

impl PromHttp {
    fn client(&self, ca: Option<&PathBuf>) -> Result<reqwest::Client, ActionError> {
        install_crypto_provider();
        let mut clients = self.clients.lock().expect("client cache lock");
        if let Some(c) = clients.get(&ca.cloned()) {
            return Ok(c.clone());
        }
        // No redirect followed by reqwest and no Referer: `send_following` applies the HTTP
        // backend's redirect policy.
        let mut b = super::http::client_builder().connect_timeout(Duration::from_secs(10));
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

/// The URL of a query, with its parameters (shown in errors; the query itself is journaled
/// in the result).
pub fn query_url(
    target: &PromTarget,
    q: &PromQuery,
    now_unix: f64,
    timeout: Duration,
) -> Result<reqwest::Url, ActionError> {
    let base = target.url.trim_end_matches('/');
    let path = if q.range.is_some() {
        "/api/v1/query_range"
    } else {
        "/api/v1/query"
    };
    let mut url = reqwest::Url::parse(&format!("{base}{path}")).map_err(|e| {
        ActionError::new(
            ErrorKind::Invalid,
            format!("bad Prometheus URL `{}`: {e}", target.url),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ActionError::new(
            ErrorKind::Invalid,
            format!("Prometheus URL `{}` is not http(s)", target.url),
        ));
    }
    {
        let mut p = url.query_pairs_mut();
        p.append_pair("query", &q.query);
        match &q.range {
            None => {
                p.append_pair("time", &format!("{now_unix:.3}"));
            }
            Some(r) => {
                p.append_pair("start", &format!("{:.3}", now_unix - r.last.as_secs_f64()));
                p.append_pair("end", &format!("{now_unix:.3}"));
                p.append_pair("step", &format!("{}", r.step.as_secs_f64().max(0.001)));
            }
        }
        p.append_pair("timeout", &format!("{}ms", timeout.as_millis().max(1)));
    }
    Ok(url)
}

/// Parses the API's JSON answer (`{"status":"success","data":{...}}`).
pub fn parse_answer(status: u16, body: &[u8]) -> Result<PromAnswer, ActionError> {
    let text = String::from_utf8_lossy(body);
    let snippet: String = text.chars().take(300).collect();
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            let kind = if status >= 500 || status == 429 {
                ErrorKind::Failed
            } else {
                ErrorKind::Invalid
            };
            return Err(ActionError::new(
                kind,
                format!(
                    "Prometheus answered HTTP {status} with a body that is not its JSON API: {}",
                    snippet.trim()
                ),
            ));
        }
    };
    if v.get("status").and_then(Value::as_str) != Some("success") {
        let etype = v.get("errorType").and_then(Value::as_str).unwrap_or("?");
        let err = v.get("error").and_then(Value::as_str).unwrap_or("");
        // A query Prometheus cannot parse will not parse next time either.
        let kind = if etype == "bad_data" || (400..500).contains(&status) && status != 429 {
            ErrorKind::Invalid
        } else {
            ErrorKind::Failed
        };
        return Err(ActionError::new(
            kind,
            format!("Prometheus answered HTTP {status}, {etype}: {err}"),
        ));
    }
    let data = &v["data"];
    let kind = match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => ResultKind::Vector,
        Some("matrix") => ResultKind::Matrix,
        Some("scalar") => ResultKind::Scalar,
        Some("string") => ResultKind::String,
        other => {
            return Err(ActionError::new(
                ErrorKind::Failed,
                format!("Prometheus answered an unknown resultType {other:?}"),
            ))
        }
    };
    let bad = |what: &str| {
        ActionError::new(
            ErrorKind::Failed,
            format!("Prometheus answered a malformed {what}: {}", snippet.trim()),
        )
    };
    let sample = |p: &Value| -> Option<(f64, f64)> {
        let a = p.as_array()?;
        let t = a.first()?.as_f64()?;
        let v = parse_value(a.get(1)?.as_str()?)?;
        Some((t, v))
    };
    let labels = |m: &Value| -> BTreeMap<String, String> {
        m.as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut series = vec![];
    match kind {
        ResultKind::Vector | ResultKind::Matrix => {
            for s in data["result"].as_array().ok_or_else(|| bad("result"))? {
                let samples = if kind == ResultKind::Vector {
                    vec![sample(&s["value"]).ok_or_else(|| bad("sample"))?]
                } else {
                    s["values"]
                        .as_array()
                        .ok_or_else(|| bad("series"))?
                        .iter()
                        .map(|p| sample(p).ok_or_else(|| bad("sample")))
                        .collect::<Result<_, _>>()?
                };
                series.push(Series {
                    labels: labels(&s["metric"]),
                    samples,
                });
            }
        }
        ResultKind::Scalar => series.push(Series {
            labels: BTreeMap::new(),
            samples: vec![sample(&data["result"]).ok_or_else(|| bad("scalar"))?],
        }),
        ResultKind::String => {}
    }
    let warnings = v
        .get("warnings")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(PromAnswer {
        kind,
        series,
        warnings,
    })
}

#[async_trait]
impl PrometheusBackend for PromHttp {
    async fn query(
        &self,
        target: &PromTarget,
        q: &PromQuery,
        ctx: &CallCtx,
    ) -> Result<PromAnswer, ActionError> {
        let client = self.client(target.ca_file.as_ref())?;
        let mut timeout = target.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if let Some(rem) = ctx.remaining() {
            timeout = timeout.min(rem);
        }
        let now = ctx.clock.now();
        let now_unix = now.timestamp() as f64 + f64::from(now.timestamp_subsec_millis()) / 1000.0;
        let url = query_url(target, q, now_unix, timeout)?;
        let shown = format!(
            "{}{}",
            target.url.trim_end_matches('/'),
            if q.range.is_some() {
                "/api/v1/query_range"
            } else {
                "/api/v1/query"
            }
        );
        // Same origin only, and every header counts as holding a secret (they carry tokens).
        let secret_headers: Vec<String> = target.headers.iter().map(|(k, _)| k.clone()).collect();
        let send = super::http::send_following(
            &client,
            super::http::Outgoing {
                method: "GET",
                url,
                headers: &target.headers,
                body: None,
                timeout,
                follow: super::http::FollowRedirects::SameOrigin,
                secret_headers: &secret_headers,
                body_holds_secret: false,
            },
        );
        let mut resp = tokio::select! {
            r = send => r.map(|x| x.response).map_err(|e| {
                let kind = if e.error.is_timeout() { ErrorKind::Timeout } else if e.error.is_builder() { ErrorKind::Invalid } else { ErrorKind::Transport };
                ActionError::new(kind, format!("GET {shown}: {}", chain(&e.error)))
            })?,
            _ = ctx.cancel.cancelled() => return Err(ActionError::new(ErrorKind::Cancelled, "query cancelled")),
        };
        let status = resp.status();
        if status.is_redirection() {
            return Err(ActionError::new(
                ErrorKind::Invalid,
                format!(
                    "GET {shown}: HTTP {} redirects to another origin ({}); not followed, so the backend's headers stay with {}",
                    status.as_u16(),
                    resp.headers()
                        .get("location")
                        .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned())
                        .unwrap_or_default(),
                    target.url
                ),
            ));
        }
        let mut body = Vec::new();
        loop {
            let chunk = tokio::select! {
                c = resp.chunk() => c,
                _ = ctx.cancel.cancelled() => return Err(ActionError::new(ErrorKind::Cancelled, "query cancelled")),
            };
            match chunk {
                Ok(Some(c)) => {
                    body.extend_from_slice(&c);
                    if body.len() > 16 * MAX_BODY {
                        return Err(ActionError::new(
                            ErrorKind::Invalid,
                            format!(
                                "GET {shown}: the answer is larger than {} MiB: narrow the query",
                                16 * MAX_BODY / (1024 * 1024)
                            ),
                        ));
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
                        format!("GET {shown}: reading the answer: {}", chain(&e)),
                    ));
                }
            }
        }
        parse_answer(status.as_u16(), &body).map_err(|mut e| {
            e.message = format!("GET {shown}: {} (query: {})", e.message, q.query);
            e
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_nan_and_inf_apart_from_numbers() {
        assert!(parse_value("NaN").unwrap().is_nan());
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_value("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_value("0.043"), Some(0.043));
        assert_eq!(value_json(f64::NAN), Value::Null);
        assert_eq!(value_text(f64::NAN), "NaN");
        assert_eq!(value_text(f64::INFINITY), "+Inf");
    }

    #[test]
    fn one_series_has_a_value_several_do_not() {
        let q = PromQuery {
            query: "up".into(),
            range: None,
            name: None,
        };
        let one = parse_answer(
            200,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"2.5"]}]}}"#,
        )
        .unwrap();
        let r = result_json(&q, &one);
        assert_eq!(r["value"], json!(2.5));
        assert_eq!(why_no_value(&r), None);
        let two = parse_answer(
            200,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"2.5"]},{"metric":{"a":"2"},"value":[1,"3"]}]}}"#,
        )
        .unwrap();
        let r = result_json(&q, &two);
        assert!(r.get("value").is_none());
        assert!(why_no_value(&r).unwrap().contains("2 series"));
        let nan = parse_answer(
            200,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#,
        )
        .unwrap();
        let r = result_json(&q, &nan);
        assert_eq!(r["value"], Value::Null);
        assert_eq!(r["text"], json!("NaN"));
        assert!(why_no_value(&r).unwrap().contains("NaN"));
    }

    #[test]
    fn bad_query_is_invalid_and_overload_is_retryable() {
        let e = parse_answer(
            400,
            br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        let e = parse_answer(503, b"Service Unavailable").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Failed);
    }
}

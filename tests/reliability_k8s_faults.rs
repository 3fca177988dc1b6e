//! A Kubernetes API that fails, then recovers: a fault proxy on loopback sits between
//! `runbook` and the real API server of tests/env. It answers the first writes with 409
//! Conflict and 500 InternalError and forwards everything else. Runs ride through it on their
//! retries; an API that never recovers fails the step with a clear message and a whole journal.

use crate::backend_env;
use crate::common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use base64::Engine;
use common::*;
use kube::config::Kubeconfig;
use serde_json::{json, Value};

/// What the proxy answers to each write, in turn; `None` forwards it. Reads are forwarded.
type Script = Arc<Mutex<VecDeque<Option<u16>>>>;

struct Proxy {
    url: String,
    /// (method, path, status answered)
    seen: Arc<Mutex<Vec<(String, String, u16)>>>,
}

fn status_body(code: u16) -> Value {
    let reason = if code == 409 {
        "Conflict"
    } else {
        "InternalError"
    };
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("injected {code} by the fault proxy"), "reason": reason, "code": code,
    })
}

/// Starts the proxy in front of the API server the test kubeconfig names.
fn start_proxy(kubeconfig: &str, script: Script) -> (Proxy, String) {
    let kc = Kubeconfig::read_from(kubeconfig).expect("test kubeconfig");
    let cluster = kc.clusters[0].cluster.clone().expect("a cluster");
    let upstream = cluster.server.clone().expect("a server");
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster.certificate_authority_data.clone().expect("CA data"))
        .expect("CA base64");
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .expect("a token")
        .trim()
        .trim_matches('"')
        .to_string();
    runbook::backends::http::install_crypto_provider();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let tok = token.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
                let (client, script, seen, upstream, tok) = (
                    client.clone(),
                    script.clone(),
                    seen2.clone(),
                    upstream.clone(),
                    tok.clone(),
                );
                async move {
                    let (parts, body) = req.into_parts();
                    let body = axum::body::to_bytes(body, 64 << 20)
                        .await
                        .unwrap_or_default();
                    let method = parts.method.to_string();
                    let path = parts
                        .uri
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default();
                    let write = !matches!(method.as_str(), "GET" | "HEAD");
                    let injected = if write {
                        script.lock().unwrap().pop_front().flatten()
                    } else {
                        None
                    };
                    if let Some(code) = injected {
                        seen.lock().unwrap().push((method, path, code));
                        return axum::response::Response::builder()
                            .status(code)
                            .header("content-type", "application/json")
                            .body(axum::body::Body::from(status_body(code).to_string()))
                            .unwrap();
                    }
                    let mut rb = client
                        .request(parts.method.clone(), format!("{upstream}{path}"))
                        .bearer_auth(&tok)
                        .body(body.to_vec());
                    for (k, v) in parts.headers.iter() {
                        if k == "content-type" || k == "accept" {
                            rb = rb.header(k, v);
                        }
                    }
                    let resp = rb.send().await.expect("the real API server answers");
                    let status = resp.status().as_u16();
                    let ct = resp.headers().get("content-type").cloned().unwrap_or(
                        reqwest::header::HeaderValue::from_static("application/json"),
                    );
                    let bytes = resp.bytes().await.unwrap_or_default();
                    seen.lock().unwrap().push((method, path, status));
                    axum::response::Response::builder()
                        .status(status)
                        .header("content-type", ct)
                        .body(axum::body::Body::from(bytes))
                        .unwrap()
                }
            });
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    let url = format!("http://{addr}");
    let proxied = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: faulty\nclusters:\n- name: faulty\n  cluster:\n    server: {url}\n\
         contexts:\n- name: faulty\n  context: {{ cluster: faulty, user: admin, namespace: default }}\n\
         users:\n- name: admin\n  user:\n    token: {token}\n"
    );
    (Proxy { url, seen }, proxied)
}

fn runbook_text(kubeconfig: &str, ns: &str, attempts: u32) -> String {
    format!(
        r#"apiVersion: runbook/v1
kind: Runbook
metadata: {{ name: k8s-faults, title: A flaky API server }}
backends:
  cluster: {{ kubernetes: {{ kubeconfig: "{kubeconfig}", namespace: "{ns}" }} }}
steps:
  - id: namespace
    kubernetes:
      apply:
        manifest: {{ apiVersion: v1, kind: Namespace, metadata: {{ name: "{ns}" }} }}
    retry: {{ attempts: {attempts}, delay: 50ms }}
    no_undo: the test deletes the namespace
  - id: config
    kubernetes:
      apply:
        manifest: {{ apiVersion: v1, kind: ConfigMap, metadata: {{ name: settings }}, data: {{ mode: fast }} }}
    retry: {{ attempts: {attempts}, delay: 50ms }}
    no_undo: the test deletes the namespace
  - id: read
    kubernetes:
      get: {{ kind: ConfigMap, name: settings }}
    capture: {{ mode: result.data.mode }}
"#
    )
}

/// Deletes the namespace through the real API server (not the proxy) when dropped.
struct Cleanup(String, String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (kubeconfig, ns) = (self.0.clone(), self.1.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                runbook::backends::http::install_crypto_provider();
                let Ok(kc) = Kubeconfig::read_from(&kubeconfig) else {
                    return;
                };
                let opts = kube::config::KubeConfigOptions::default();
                let Ok(cfg) = kube::Config::from_custom_kubeconfig(kc, &opts).await else {
                    return;
                };
                let Ok(client) = kube::Client::try_from(cfg) else {
                    return;
                };
                let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
                let _ = api.delete(&ns, &Default::default()).await;
            });
        })
        .join();
    }
}

fn run(dir: &std::path::Path) -> (Option<i32>, String, Vec<Value>) {
    let out = runbook(dir)
        .args([
            "run",
            "rb.yaml",
            "--non-interactive",
            "--journal-dir",
            "runs",
        ])
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(!err.contains("panicked"), "{err}");
    let ev = events(&journal_path(&dir.join("runs")));
    (out.status.code(), err, ev)
}

#[test]
fn writes_answered_409_then_500_are_retried_until_the_api_recovers() {
    let Some(env) = backend_env::k8s() else {
        return;
    };
    let real = env.var("RUNBOOK_TEST_KUBECONFIG").to_string();
    let ns = backend_env::unique("rb-faults");
    let _cleanup = Cleanup(real.clone(), ns.clone());
    // The first write gets 409, the second 500; later writes go through.
    let script: Script = Arc::new(Mutex::new(VecDeque::from([Some(409), Some(500)])));
    let (proxy, kubeconfig) = start_proxy(&real, script);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "kubeconfig", &kubeconfig);
    write(
        dir.path(),
        "rb.yaml",
        &runbook_text(&dir.path().join("kubeconfig").display().to_string(), &ns, 3),
    );
    let (code, err, ev) = run(dir.path());
    assert_eq!(code, Some(0), "{err}");
    let seen = proxy.seen.lock().unwrap().clone();
    let injected: Vec<u16> = seen.iter().map(|s| s.2).filter(|c| *c >= 409).collect();
    assert_eq!(injected, [409, 500], "proxy {} saw {seen:?}", proxy.url);
    // The 500 failed an attempt (a 409 may be absorbed by the backend's own re-read and retry);
    // its message names the status, and the next attempt went through.
    let failed: Vec<&Value> = of_kind(&ev, "attempt_finished")
        .into_iter()
        .filter(|e| e["ok"] == false)
        .collect();
    assert!(
        failed
            .iter()
            .any(|e| e["error"].as_str().unwrap_or("").contains("500")),
        "{failed:?}"
    );
    let cap = of_kind(&ev, "capture");
    assert_eq!(cap.last().unwrap()["value"], "fast");
    assert_eq!(of_kind(&ev, "run_finished")[0]["outcome"], "succeeded");
}

#[test]
fn an_api_that_never_recovers_fails_the_step_clearly() {
    let Some(env) = backend_env::k8s() else {
        return;
    };
    let real = env.var("RUNBOOK_TEST_KUBECONFIG").to_string();
    let ns = backend_env::unique("rb-faults");
    let _cleanup = Cleanup(real.clone(), ns.clone());
    let script: Script = Arc::new(Mutex::new(VecDeque::from(vec![Some(500); 50])));
    let (_proxy, kubeconfig) = start_proxy(&real, script);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "kubeconfig", &kubeconfig);
    write(
        dir.path(),
        "rb.yaml",
        &runbook_text(&dir.path().join("kubeconfig").display().to_string(), &ns, 2),
    );
    let (code, err, ev) = run(dir.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("500"), "{err}");
    let fin = of_kind(&ev, "step_finished");
    assert_eq!(fin[0]["step"], "namespace");
    assert_eq!(fin[0]["outcome"], "failed");
    assert_eq!(fin[0]["attempts"], 2);
    assert_eq!(of_kind(&ev, "run_finished")[0]["outcome"], "failed");
}

//! What a real API server shows only by chance — an update that loses a race, a server that
//! is not there — checked against a scripted stand-in.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::objects::{read, update, ObjRef, CONFLICT_ATTEMPTS};
use super::workload;
use crate::backends::ErrorKind;
use crate::spec::WorkloadKind;

const PATH: &str = "/apis/apps/v1/namespaces/shop/deployments/web";

#[derive(Default)]
struct Script {
    gets: AtomicU32,
    puts: AtomicU32,
    /// PUTs answered 409 before one is accepted.
    conflicts: u32,
}

async fn serve(script: Arc<Script>) -> kube::Client {
    async fn get_one(State(s): State<Arc<Script>>) -> Json<Value> {
        let n = s.gets.fetch_add(1, Ordering::SeqCst) + 1;
        Json(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": n.to_string()},
            "spec": {"replicas": 1, "selector": {}, "template": {"spec": {"containers": [{"name": "app", "image": "a:1"}]}}}
        }))
    }
    async fn put_one(
        State(s): State<Arc<Script>>,
        Json(body): Json<Value>,
    ) -> (StatusCode, Json<Value>) {
        let n = s.puts.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= s.conflicts {
            return (
                StatusCode::CONFLICT,
                Json(json!({
                    "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409,
                    "message": "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
                })),
            );
        }
        (StatusCode::OK, Json(body))
    }
    let app = Router::new()
        .route(PATH, get(get_one).put(put_one))
        .with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = kube::Config::new(format!("http://{addr}").parse().expect("url"));
    kube::Client::try_from(config).expect("client")
}

fn web() -> ObjRef {
    ObjRef::new(workload::resource(WorkloadKind::Deployment), "shop", "web")
}

#[tokio::test]
async fn an_update_that_loses_a_race_is_redone_on_a_fresh_read() {
    let script = Arc::new(Script {
        conflicts: 2,
        ..Default::default()
    });
    let client = serve(script.clone()).await;
    let (obj, changes) = update(&client, &web(), |v| {
        workload::scale(v, "Deployment shop/web", WorkloadKind::Deployment, 5)
    })
    .await
    .expect("the third write is accepted");
    assert_eq!(changes, vec!["replicas: 1 → 5"]);
    assert_eq!(obj["spec"]["replicas"], 5);
    // Each write carried the resourceVersion of a fresh read.
    assert_eq!(obj["metadata"]["resourceVersion"], "3");
    assert_eq!(script.gets.load(Ordering::SeqCst), 3);
    assert_eq!(script.puts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_conflict_that_persists_is_a_failure_quoting_the_server() {
    let script = Arc::new(Script {
        conflicts: u32::MAX,
        ..Default::default()
    });
    let client = serve(script.clone()).await;
    let e = update(&client, &web(), |v| {
        workload::set_image(v, "Deployment shop/web", None, "a:2")
    })
    .await
    .expect_err("every write conflicts");
    assert_eq!(e.kind, ErrorKind::Failed);
    assert!(
        e.message.starts_with("Deployment shop/web: 409 Conflict: Operation cannot be fulfilled on deployments.apps \"web\""),
        "{}",
        e.message
    );
    assert_eq!(script.puts.load(Ordering::SeqCst), CONFLICT_ATTEMPTS);
}

#[tokio::test]
async fn an_edit_that_changes_nothing_writes_nothing() {
    let script = Arc::new(Script::default());
    let client = serve(script.clone()).await;
    let (_, changes) = update(&client, &web(), |v| {
        workload::set_image(v, "x", Some("app"), "a:1")
    })
    .await
    .expect("nothing to do");
    assert!(changes.is_empty());
    assert_eq!(script.puts.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().expect("url"));
    let client = kube::Client::try_from(config).expect("client");
    let e = read(&client, &web()).await.expect_err("nothing listens");
    assert_eq!(e.kind, ErrorKind::Transport);
    assert!(
        e.message
            .starts_with("Deployment shop/web: cannot reach the API server: "),
        "{}",
        e.message
    );
}

/// Records status messages.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl crate::backends::Progress for Recorder {
    fn line(&self, _: &str, _: &str) {}
    fn status(&self, message: &str) {
        self.0.lock().expect("lock").push(message.to_string());
    }
}

fn ctx(deadline_ms: Option<i64>, progress: Arc<Recorder>) -> crate::backends::CallCtx {
    crate::backends::CallCtx {
        step: "wait".into(),
        attempt: 1,
        deadline: deadline_ms.map(|ms| chrono::Utc::now() + chrono::Duration::milliseconds(ms)),
        clock: Arc::new(crate::exec::clock::SystemClock),
        cancel: tokio_util::sync::CancellationToken::new(),
        progress,
        run_dir: ".".into(),
        base_dir: ".".into(),
        spawned: None,
    }
}

// The scripted Deployment wants one replica and has none: its rollout never completes.
const STUCK: &str =
    "Waiting for deployment \"web\" rollout to finish: 0 out of 1 new replicas have been updated...";

#[tokio::test]
async fn waiting_for_a_rollout_stops_when_the_run_is_interrupted() {
    let client = serve(Arc::new(Script::default())).await;
    let progress = Arc::new(Recorder::default());
    let c = ctx(None, progress.clone());
    let cancel = c.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        cancel.cancel();
    });
    let e = super::status::wait(&client, &web(), WorkloadKind::Deployment, &c)
        .await
        .expect_err("interrupted");
    assert_eq!(e.kind, ErrorKind::Cancelled);
    // Shown once, not once per poll.
    assert_eq!(*progress.0.lock().expect("lock"), vec![STUCK.to_string()]);
}

#[tokio::test]
async fn waiting_for_a_rollout_ends_at_the_deadline_with_the_last_status() {
    let script = Arc::new(Script::default());
    let client = serve(script.clone()).await;
    let c = ctx(Some(1200), Arc::new(Recorder::default()));
    let started = std::time::Instant::now();
    let e = super::status::wait(&client, &web(), WorkloadKind::Deployment, &c)
        .await
        .expect_err("never completes");
    assert_eq!(e.kind, ErrorKind::Timeout);
    assert!(
        e.message
            .starts_with("Deployment shop/web: the rollout did not finish within 1."),
        "{}",
        e.message
    );
    assert!(e.message.ends_with(STUCK), "{}", e.message);
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert!(script.gets.load(Ordering::SeqCst) >= 2, "it polled");
}

//! The simulated API server's permissions, field managers and selectors, without a cluster
//! (`tests/contract_backends.rs` compares them with tests/env's real one).

use serde_json::{json, Value};

use super::super::tests::{ctx, world};
use crate::backends::{ActionError, ErrorKind, KubeCall, KubernetesBackend, Output};
use crate::spec::KubernetesBackendSpec;

const WORLD: &str = r#"
world:
  kubernetes:
    deployments:
      - { namespace: prod, name: web, replicas: 2, labels: { app: web, tier: front }, revisions: ["web:v1"] }
    users:
      - user: oncall
        context: prod-readonly
        allow: [{ verbs: [get, list], resources: ["*"] }]
"#;

async fn call(
    w: &super::super::World,
    context: Option<&str>,
    verb: &str,
    args: Value,
) -> Result<Output, ActionError> {
    let (_, clock) = world("world: {}");
    let target = KubernetesBackendSpec {
        namespace: Some("prod".into()),
        context: context.map(str::to_string),
        ..Default::default()
    };
    let c = KubeCall::parse(verb, &args)?;
    KubernetesBackend::call(w, &target, &c, &ctx(&clock, "s", 1, None)).await
}

#[tokio::test]
async fn a_user_without_the_permission_gets_the_api_servers_403() {
    let (w, _) = world(WORLD);
    let readonly = Some("prod-readonly");
    let get = json!({"kind": "Deployment", "name": "web"});
    assert!(call(&w, readonly, "get", get.clone()).await.is_ok());
    let e = call(
        &w,
        readonly,
        "set_image",
        json!({"name": "web", "image": "web:v2"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Failed);
    assert_eq!(
        e.message,
        "kubernetes.set_image: Deployment prod/web: 403 Forbidden: deployments.apps \"web\" is forbidden: User \"oncall\" cannot update resource \"deployments\" in API group \"apps\" in the namespace \"prod\" (the account of this kubeconfig context lacks the permission; ask for it or use another context) [context `prod-readonly` of kubeconfig ~/.kube/config]"
    );
    // Nothing changed; another context may do it.
    let d = call(&w, None, "get", get.clone()).await.unwrap().result;
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:v1"
    );
    assert!(call(
        &w,
        None,
        "set_image",
        json!({"name": "web", "image": "web:v2"})
    )
    .await
    .is_ok());
}

#[tokio::test]
async fn server_side_apply_conflicts_between_field_managers() {
    let (w, _) = world(WORLD);
    let cm = |manager: &str, data: Value, force: bool| {
        json!({"manifest": {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "flags"}, "data": data},
            "field_manager": manager, "force": force})
    };
    call(
        &w,
        None,
        "apply",
        cm("gitops", json!({"a": "1", "b": "2"}), false),
    )
    .await
    .unwrap();
    // The same value is no conflict; another value is, until forced.
    call(&w, None, "apply", cm("runbook", json!({"a": "1"}), false))
        .await
        .unwrap();
    let e = call(
        &w,
        None,
        "apply",
        cm("runbook", json!({"a": "9", "b": "8"}), false),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        "kubernetes.apply: ConfigMap prod/flags: 409 Conflict: Apply failed with 2 conflicts: conflicts with \"gitops\":\n- .data.a\n- .data.b (another field manager owns these fields; set `force: true` to take them over)"
    );
    call(&w, None, "apply", cm("runbook", json!({"a": "9"}), true))
        .await
        .unwrap();
    // gitops stops applying `b`, which it alone owned: the field goes.
    let o = call(&w, None, "apply", cm("gitops", json!({"c": "3"}), false))
        .await
        .unwrap()
        .result;
    assert_eq!(o["data"], json!({"a": "9", "c": "3"}));
    assert!(o["metadata"]["uid"].is_string() && o["metadata"]["resourceVersion"].is_string());
}

#[tokio::test]
async fn selectors_are_the_api_servers_and_a_bad_one_is_refused_before_any_call() {
    let (w, _) = world(WORLD);
    let list = |sel: &str| json!({"kind": "Deployment", "selector": sel});
    let n = |o: Output| o.result["items"].as_array().unwrap().len();
    assert_eq!(
        n(call(&w, None, "list", list("tier in (front,back)"))
            .await
            .unwrap()),
        1
    );
    assert_eq!(
        n(call(&w, None, "list", list("app notin (web)"))
            .await
            .unwrap()),
        0
    );
    let e = call(&w, None, "list", list("app in (web"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(
        e.message,
        "kubernetes.list: invalid label selector `app in (web`: a `(` is never closed"
    );
}

//! What the simulated API server says besides the objects themselves: which kinds it serves
//! (and under which apiVersion), who is calling and what they may do (403 Forbidden), and
//! that an object does not exist (404 Not Found), in the real API server's words as the real
//! backend quotes them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::super::State;
use crate::backends::kubernetes::shared::status_error;
use crate::backends::{expand_home, ActionError};
use crate::drill::spec::KubeUserSpec;
use crate::spec::KubernetesBackendSpec;

/// A kind the simulated cluster serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Res {
    pub kind: String,
    pub plural: String,
    pub group: String,
    pub version: String,
    pub namespaced: bool,
}

impl Res {
    /// `deployments.apps`, `configmaps`: how the API server names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `Deployment shop/web`, or `Namespace shop` for a cluster-scoped kind (the real
    /// backend's `ObjRef::what`).
    pub fn what(&self, ns: &str, name: &str) -> String {
        if self.namespaced {
            format!("{} {ns}/{name}", self.kind)
        } else {
            format!("{} {name}", self.kind)
        }
    }

    /// `deployments in namespace shop` (the real backend's `list`).
    pub fn what_list(&self, ns: &str) -> String {
        if self.namespaced {
            format!("{} in namespace {ns}", self.plural)
        } else {
            self.plural.clone()
        }
    }
}

/// The built-in kinds of the Kubernetes version tests/env runs (1.20): kind, plural, group,
/// version, namespaced.
const BUILT_IN: &[(&str, &str, &str, &str, bool)] = &[
    ("Deployment", "deployments", "apps", "v1", true),
    ("StatefulSet", "statefulsets", "apps", "v1", true),
    ("DaemonSet", "daemonsets", "apps", "v1", true),
    ("ReplicaSet", "replicasets", "apps", "v1", true),
    (
        "ControllerRevision",
        "controllerrevisions",
        "apps",
        "v1",
        true,
    ),
    ("Pod", "pods", "", "v1", true),
    ("ConfigMap", "configmaps", "", "v1", true),
    ("Secret", "secrets", "", "v1", true),
    ("Service", "services", "", "v1", true),
    ("ServiceAccount", "serviceaccounts", "", "v1", true),
    ("Endpoints", "endpoints", "", "v1", true),
    ("Event", "events", "", "v1", true),
    (
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "",
        "v1",
        true,
    ),
    ("ResourceQuota", "resourcequotas", "", "v1", true),
    ("LimitRange", "limitranges", "", "v1", true),
    ("Namespace", "namespaces", "", "v1", false),
    ("Node", "nodes", "", "v1", false),
    ("PersistentVolume", "persistentvolumes", "", "v1", false),
    ("Job", "jobs", "batch", "v1", true),
    ("CronJob", "cronjobs", "batch", "v1beta1", true),
    ("Ingress", "ingresses", "networking.k8s.io", "v1", true),
    (
        "NetworkPolicy",
        "networkpolicies",
        "networking.k8s.io",
        "v1",
        true,
    ),
    (
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "autoscaling",
        "v1",
        true,
    ),
    (
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "policy",
        "v1beta1",
        true,
    ),
    ("Role", "roles", "rbac.authorization.k8s.io", "v1", true),
    (
        "RoleBinding",
        "rolebindings",
        "rbac.authorization.k8s.io",
        "v1",
        true,
    ),
    (
        "ClusterRole",
        "clusterroles",
        "rbac.authorization.k8s.io",
        "v1",
        false,
    ),
    (
        "ClusterRoleBinding",
        "clusterrolebindings",
        "rbac.authorization.k8s.io",
        "v1",
        false,
    ),
    ("Lease", "leases", "coordination.k8s.io", "v1", true),
    (
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "apiextensions.k8s.io",
        "v1",
        false,
    ),
];

fn built_in() -> impl Iterator<Item = Res> {
    BUILT_IN.iter().map(|(k, p, g, v, n)| Res {
        kind: k.to_string(),
        plural: p.to_string(),
        group: g.to_string(),
        version: v.to_string(),
        namespaced: *n,
    })
}

/// Every kind served: the built-in ones and the kinds of the world's other objects (custom
/// resources, named by their `apiVersion`).
fn served(st: &State) -> Vec<Res> {
    let mut all: Vec<Res> = built_in().collect();
    for o in st.kube.objects.values() {
        let (Some(kind), Some(av)) = (
            o.get("kind").and_then(Value::as_str),
            o.get("apiVersion").and_then(Value::as_str),
        ) else {
            continue;
        };
        if all.iter().any(|r| r.kind == kind) {
            continue;
        }
        let (group, version) = av.rsplit_once('/').unwrap_or(("", av));
        let lower = kind.to_lowercase();
        let plural = if lower.ends_with('s') {
            format!("{lower}es")
        } else if let Some(stem) = lower.strip_suffix('y') {
            format!("{stem}ies")
        } else {
            format!("{lower}s")
        };
        all.push(Res {
            kind: kind.to_string(),
            plural,
            group: group.to_string(),
            version: version.to_string(),
            namespaced: o.pointer("/metadata/namespace").is_some(),
        });
    }
    all
}

fn names(r: &Res, wanted: &str) -> bool {
    r.kind.eq_ignore_ascii_case(wanted) || r.plural.eq_ignore_ascii_case(wanted)
}

fn suggestion(kind: &str, kinds: &[String]) -> String {
    kinds
        .iter()
        .map(|k| {
            (
                strsim::jaro_winkler(&k.to_lowercase(), &kind.to_lowercase()),
                k,
            )
        })
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

/// Finds a kind as the real backend's discovery does: by kind or plural, any case; in the
/// given apiVersion when there is one. Errors in the real backend's words.
pub fn resource(st: &State, kind: &str, api_version: Option<&str>) -> Result<Res, ActionError> {
    let all = served(st);
    let invalid = |m: String| ActionError::new(crate::backends::ErrorKind::Invalid, m);
    let Some(av) = api_version.filter(|a| !a.is_empty()) else {
        if let Some(r) = all
            .iter()
            .find(|r| r.kind == kind)
            .or_else(|| all.iter().find(|r| names(r, kind)))
        {
            return Ok(r.clone());
        }
        let mut kinds: Vec<String> = all.iter().map(|r| r.kind.clone()).collect();
        kinds.sort();
        return Err(invalid(format!(
            "the cluster serves no kind `{kind}`{} (give `apiVersion` for a custom resource, and check that its CRD is installed)",
            suggestion(kind, &kinds)
        )));
    };
    let group_only = !av.contains('/') && av.contains('.');
    // Discovery lists a group/version's resources by plural.
    let mut in_gv: Vec<&Res> = all
        .iter()
        .filter(|r| {
            if group_only {
                r.group == av
            } else {
                r.api_version() == av
            }
        })
        .collect();
    in_gv.sort_by(|a, b| a.plural.cmp(&b.plural));
    if in_gv.is_empty() {
        // The API server has no such group/version.
        let what = if group_only {
            format!("apiVersion {av} (discovery)")
        } else {
            format!("apiVersion {av}")
        };
        return Err(status_error(
            &what,
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    if let Some(r) = in_gv.iter().find(|r| names(r, kind)) {
        return Ok((*r).clone());
    }
    let kinds: Vec<String> = in_gv.iter().map(|r| r.kind.clone()).collect();
    let place = if group_only {
        format!(
            "{av}/{v}, the version of {av} it prefers",
            v = in_gv[0].version
        )
    } else {
        av.to_string()
    };
    Err(invalid(format!(
        "the cluster serves no kind `{kind}` in {place}{}; kinds there: {}",
        suggestion(kind, &kinds),
        kinds.join(", ")
    )))
}

/// `404 Not Found: deployments.apps "web" not found`, as the real backend reports it.
pub fn not_found(res: &Res, ns: &str, name: &str) -> ActionError {
    status_error(
        &res.what(ns, name),
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", res.qualified()),
    )
}

/// The user a call is made as: a `users:` entry of the world whose kubeconfig (or context)
/// the backend names. None: a user with every permission.
fn caller<'a>(
    users: &'a [KubeUserSpec],
    target: &KubernetesBackendSpec,
) -> Option<&'a KubeUserSpec> {
    let kubeconfig = target.kubeconfig.as_deref().filter(|k| !k.is_empty());
    let context = target.context.as_deref().filter(|c| !c.is_empty());
    users.iter().find(|u| {
        let by_file = u.kubeconfig.is_some() && u.kubeconfig.as_deref() == kubeconfig;
        let by_context = context == Some(u.context.as_str());
        (by_file && context.is_none_or(|c| c == u.context))
            || (u.kubeconfig.is_none() && by_context)
    })
}

/// Does the caller's role allow `verb` (an API verb: get, list, update, patch, delete) on a
/// resource? Else the API server's 403, with the kubeconfig context named as the real backend
/// does.
pub fn authorize(
    st: &State,
    target: &KubernetesBackendSpec,
    verb: &str,
    res: &Res,
    ns: &str,
    name: Option<&str>,
) -> Result<(), ActionError> {
    let Some(u) = caller(&st.kube.users, target) else {
        return Ok(());
    };
    let any = |list: &[String], x: &str| list.iter().any(|l| l == "*" || l == x);
    let allowed = u.allow.iter().any(|rule| {
        any(&rule.verbs, verb)
            && (any(&rule.resources, &res.plural) || any(&rule.resources, &res.qualified()))
    });
    if allowed {
        return Ok(());
    }
    let scope = if res.namespaced {
        format!("in the namespace \"{ns}\"")
    } else {
        "at the cluster scope".to_string()
    };
    let subject = match name {
        Some(n) => format!("{} \"{n}\"", res.qualified()),
        None => res.qualified(),
    };
    let said = format!(
        "{subject} is forbidden: User \"{}\" cannot {verb} resource \"{}\" in API group \"{}\" {scope}",
        u.user, res.plural, res.group
    );
    let what = match name {
        Some(n) => res.what(ns, n),
        None => res.what_list(ns),
    };
    let mut e = status_error(&what, 403, "Forbidden", &said);
    let file = match &u.kubeconfig {
        Some(k) => expand_home(k).display().to_string(),
        None => kubeconfig_path(target),
    };
    e.message = format!(
        "{} [context `{}` of kubeconfig {file}]",
        e.message, u.context
    );
    Err(e)
}

fn kubeconfig_path(target: &KubernetesBackendSpec) -> String {
    target
        .kubeconfig
        .as_deref()
        .map(|k| expand_home(k).display().to_string())
        .unwrap_or_else(|| "~/.kube/config".into())
}

/// Labels of a stored object, for selectors.
pub fn labels_of(o: &Value) -> BTreeMap<String, String> {
    o.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

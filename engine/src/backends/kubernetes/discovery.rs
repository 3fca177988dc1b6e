//! Maps a `kind` (and optional `apiVersion`) from a runbook to an API resource of the live
//! cluster, so that `get`, `list`, `delete`, `annotate`, `label` and `apply` work on any
//! kind, custom resources included. Full discovery runs at most once per connection.

use kube::core::{ApiResource, GroupVersion};
use kube::discovery::{ApiCapabilities, Discovery, Scope};

use super::errors::{api_error, invalid};
use crate::backends::ActionError;

/// A resource of the cluster and whether its objects live in namespaces.
#[derive(Debug, Clone)]
pub struct Resource {
    pub ar: ApiResource,
    pub namespaced: bool,
}

impl Resource {
    fn from(ar: ApiResource, caps: &ApiCapabilities) -> Self {
        Resource {
            namespaced: caps.scope == Scope::Namespaced,
            ar,
        }
    }

    /// The apps/v1 workloads, known without asking the cluster.
    pub fn apps_v1(kind: &str, plural: &str) -> Self {
        Resource {
            ar: ApiResource {
                group: "apps".into(),
                version: "v1".into(),
                api_version: "apps/v1".into(),
                kind: kind.into(),
                plural: plural.into(),
            },
            namespaced: true,
        }
    }
}

/// Groups preferred when a kind is served by several (kubectl's order puts the core group
/// and the long-standing groups before newer duplicates such as `events.k8s.io`).
const PREFERRED_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
];

/// Does `wanted` name this resource? Kinds match case-insensitively, and so do plurals
/// (`deployments`) and the lowercase singular (`deployment`).
fn names(ar: &ApiResource, wanted: &str) -> bool {
    ar.kind.eq_ignore_ascii_case(wanted) || ar.plural.eq_ignore_ascii_case(wanted)
}

/// Is `api_version` a group without its version (`image.toolkit.fluxcd.io`)? A core version
/// (`v1`) has no dot; a group always has one.
pub fn is_group_only(api_version: &str) -> bool {
    !api_version.contains('/') && api_version.contains('.')
}

/// Finds `kind` in the version of `group` the cluster prefers (discovery's
/// `preferredVersion`: for a custom resource, its highest served version), so that a runbook
/// reads an object through the API its controller serves today.
pub async fn preferred(
    client: &kube::Client,
    kind: &str,
    group: &str,
) -> Result<Resource, ActionError> {
    let g = kube::discovery::group(client, group)
        .await
        .map_err(|e| api_error(&format!("apiVersion {group} (discovery)"), e))?;
    let version = g.preferred_version_or_latest().to_string();
    let resources = g.versioned_resources(&version);
    if let Some((ar, caps)) = resources.iter().find(|(ar, _)| names(ar, kind)) {
        return Ok(Resource::from(ar.clone(), caps));
    }
    let kinds: Vec<String> = resources.iter().map(|(ar, _)| ar.kind.clone()).collect();
    Err(invalid(format!(
        "the cluster serves no kind `{kind}` in {group}/{version}, the version of {group} it prefers{}; kinds there: {}",
        suggestion(kind, &kinds),
        kinds.join(", ")
    )))
}

/// Finds `kind` in one group/version.
pub async fn pinned(
    client: &kube::Client,
    kind: &str,
    api_version: &str,
) -> Result<Resource, ActionError> {
    let gv: GroupVersion = api_version.parse().map_err(|_| {
        invalid(format!(
            "`apiVersion: {api_version}` is not a group/version such as `apps/v1` or `v1`"
        ))
    })?;
    let group = kube::discovery::pinned_group(client, &gv)
        .await
        .map_err(|e| api_error(&format!("apiVersion {api_version}"), e))?;
    let resources = group.versioned_resources(&gv.version);
    if let Some((ar, caps)) = resources.iter().find(|(ar, _)| names(ar, kind)) {
        return Ok(Resource::from(ar.clone(), caps));
    }
    let kinds: Vec<String> = resources.iter().map(|(ar, _)| ar.kind.clone()).collect();
    Err(invalid(format!(
        "the cluster serves no kind `{kind}` in {api_version}{}; kinds there: {}",
        suggestion(kind, &kinds),
        kinds.join(", ")
    )))
}

/// Finds `kind` in the cluster's full discovery.
pub fn search(discovery: &Discovery, kind: &str) -> Result<Resource, ActionError> {
    let mut found: Vec<(String, ApiResource, ApiCapabilities)> = vec![];
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if names(&ar, kind) {
                found.push((group.name().to_string(), ar, caps));
            }
        }
    }
    found.sort_by_key(|(g, ar, _)| {
        let rank = PREFERRED_GROUPS
            .iter()
            .position(|p| p == g)
            .unwrap_or(PREFERRED_GROUPS.len());
        // An exact kind beats a plural match of some other resource.
        (ar.kind != kind, rank, g.clone())
    });
    if let Some((_, ar, caps)) = found.into_iter().next() {
        return Ok(Resource::from(ar, &caps));
    }
    let mut kinds: Vec<String> = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .map(|(ar, _)| ar.kind)
        .collect();
    kinds.sort();
    kinds.dedup();
    Err(invalid(format!(
        "the cluster serves no kind `{kind}`{} (give `apiVersion` for a custom resource, and check that its CRD is installed)",
        suggestion(kind, &kinds)
    )))
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

/// Runs full discovery (one request per served group/version).
pub async fn run(client: &kube::Client) -> Result<Discovery, ActionError> {
    Discovery::new(client.clone())
        .run()
        .await
        .map_err(|e| api_error("discovering the cluster's kinds", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ar(group: &str, kind: &str, plural: &str) -> ApiResource {
        ApiResource {
            group: group.into(),
            version: "v1".into(),
            api_version: if group.is_empty() {
                "v1".into()
            } else {
                format!("{group}/v1")
            },
            kind: kind.into(),
            plural: plural.into(),
        }
    }

    #[test]
    fn kinds_match_by_kind_or_plural_ignoring_case() {
        let d = ar("apps", "Deployment", "deployments");
        assert!(names(&d, "Deployment"));
        assert!(names(&d, "deployment"));
        assert!(names(&d, "deployments"));
        assert!(!names(&d, "deploy"));
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let kinds = vec!["Deployment".to_string(), "ConfigMap".to_string()];
        assert_eq!(
            suggestion("Deploymnet", &kinds),
            " (did you mean `Deployment`?)"
        );
        assert_eq!(suggestion("Widget", &kinds), "");
    }
}

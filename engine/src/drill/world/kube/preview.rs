//! `plan --live` in a drill: what a call would change in the simulated cluster, in the real
//! backend's words.

use serde_json::Value;

use super::super::State;
use super::namespace_of as namespace;
use crate::spec::KubernetesBackendSpec;

/// What a call would change, without changing anything: the simulated counterpart of the real
/// backend's `plan --live` preview, in the same words (`Deployment prod/web: pod template of
/// revision 1; image: web:v2 → v1`). `None` for verbs it does not preview.
pub fn preview(
    st: &State,
    target: &KubernetesBackendSpec,
    verb: &str,
    args: &Value,
) -> Option<String> {
    use crate::backends::kubernetes::image_change;
    let ns = namespace(target, args);
    let name = args.get("name").and_then(Value::as_str).unwrap_or("");
    let what = format!("Deployment {ns}/{name}");
    let Some(d) = st.kube.deployments.get(&format!("{ns}/{name}")) else {
        return matches!(verb, "rollout_undo" | "set_image")
            .then(|| format!("{what}: does not exist (the step will fail with 404 Not Found)"));
    };
    let images = |t: &super::super::deployment::Template| -> Vec<(String, String)> {
        t.containers
            .iter()
            .map(|c| (c.name.clone(), c.image.clone()))
            .collect()
    };
    let now = images(&d.template);
    let changes = |target: &[(String, String)]| -> Vec<String> {
        target
            .iter()
            .filter_map(|(n, i)| {
                let old = now.iter().find(|(m, _)| m == n).map(|(_, o)| o.as_str())?;
                (old != i).then(|| {
                    if now.len() == 1 {
                        format!("image: {}", image_change(old, i))
                    } else {
                        format!("image of container {n}: {}", image_change(old, i))
                    }
                })
            })
            .collect()
    };
    match verb {
        "rollout_undo" => {
            if d.paused {
                return Some(format!("{what} is paused; a paused rollout cannot be undone: resume it first (a `resume:` step)"));
            }
            let to = args.get("to_revision").and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            });
            let rev = match to.filter(|n| *n != 0) {
                Some(n) => d.history.iter().find(|r| r.number == n),
                None if d.history.len() >= 2 => d.history.get(d.history.len() - 2),
                None => None,
            };
            let Some(rev) = rev else {
                let numbers: Vec<String> = d.history.iter().map(|r| r.number.to_string()).collect();
                return Some(format!(
                    "{what} has no {} to go back to (revisions: {})",
                    to.map_or("previous revision".to_string(), |n| format!("revision {n}")),
                    numbers.join(", ")
                ));
            };
            let mut c = changes(&images(&rev.template));
            if c.is_empty() && rev.template.containers == d.template.containers {
                return Some(format!("{what}: already as asked; nothing changed"));
            }
            c.insert(0, format!("pod template of revision {}", rev.number));
            Some(format!("{what}: {}", c.join("; ")))
        }
        "set_image" => {
            let image = args.get("image").and_then(Value::as_str)?;
            let container = args
                .get("container")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty());
            let names: Vec<&str> = d
                .template
                .containers
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            let ctr = match container {
                Some(n) => d.template.containers.iter().find(|c| c.name == n),
                None if names.len() == 1 => d.template.containers.first(),
                None => None,
            };
            let Some(ctr) = ctr else {
                return Some(format!(
                    "{what} has no such container; its containers: {}",
                    names.join(", ")
                ));
            };
            if ctr.image == image {
                return Some(format!("{what}: already as asked; nothing changed"));
            }
            let label = match container {
                None => "image".to_string(),
                Some(n) => format!("image of container {n}"),
            };
            Some(format!(
                "{what}: {label}: {}",
                image_change(&ctr.image, image)
            ))
        }
        _ => None,
    }
}

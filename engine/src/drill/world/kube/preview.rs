//! `plan --live` in a drill: what a call would change in the simulated cluster, in the real
//! backend's words.

use super::super::State;
use super::namespace;
use crate::backends::calls::int_of;
use crate::backends::KubeCall;
use crate::spec::KubernetesBackendSpec;

/// What a call would change, without changing anything: the simulated counterpart of the real
/// backend's `plan --live` preview, in the same words (`Deployment prod/web: pod template of
/// revision 1; image: web:v2 → v1`). `None` for verbs it does not preview.
pub fn preview(st: &State, target: &KubernetesBackendSpec, call: &KubeCall) -> Option<String> {
    use crate::backends::kubernetes::image_change;
    let (ns, name) = match call {
        KubeCall::RolloutUndo(a) => (namespace(target, a.namespace.as_deref()), a.name.as_str()),
        KubeCall::SetImage(a) => (namespace(target, a.namespace.as_deref()), a.name.as_str()),
        _ => return None,
    };
    let what = format!("Deployment {ns}/{name}");
    let Some(d) = st.kube.deployments.get(&format!("{ns}/{name}")) else {
        return Some(format!(
            "{what}: does not exist (the step will fail with 404 Not Found)"
        ));
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
    match call {
        KubeCall::RolloutUndo(a) => {
            if d.paused {
                return Some(format!("{what} is paused; a paused rollout cannot be undone: resume it first (a `resume:` step)"));
            }
            let to = a
                .to_revision
                .as_ref()
                .and_then(|t| int_of("to_revision", t).ok());
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
        KubeCall::SetImage(a) => {
            let image = a.image.as_str();
            let container = a.container.as_deref().filter(|c| !c.is_empty());
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

//! Finds the cluster a kubernetes backend talks to, the way kubectl does: the backend's
//! `kubeconfig`, else `KUBECONFIG` (a list of files, merged), else `~/.kube/config`, else the
//! in-cluster service account; the context from `--context`, the backend, or the current one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::errors::invalid;
use crate::backends::{ActionError, ErrorKind};

/// A client for one (kubeconfig, context) pair, with the namespace that context defaults to.
pub struct Loaded {
    pub client: kube::Client,
    pub default_namespace: String,
    /// Where the configuration came from, for messages: `context `x` of kubeconfig /p`.
    pub source: String,
}

/// `~/.kube/config`, if there is a home directory.
fn default_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".kube").join("config"))
}

/// Reads the kubeconfig that applies, or `None` when there is none (then: in-cluster).
fn read_kubeconfig(explicit: Option<&Path>) -> Result<Option<(Kubeconfig, String)>, ActionError> {
    let read = |p: &Path| {
        Kubeconfig::read_from(p).map_err(|e| {
            invalid(format!(
                "cannot read the kubeconfig {}: {}",
                p.display(),
                crate::backends::http::chain(&e)
            ))
        })
    };
    if let Some(p) = explicit {
        return Ok(Some((read(p)?, format!("kubeconfig {}", p.display()))));
    }
    let env = std::env::var("KUBECONFIG").unwrap_or_default();
    if std::env::split_paths(&env).any(|p| !p.as_os_str().is_empty()) {
        let kc = Kubeconfig::from_env()
            .map_err(|e| {
                invalid(format!(
                    "cannot read the kubeconfig from KUBECONFIG={env}: {}",
                    crate::backends::http::chain(&e)
                ))
            })?
            .unwrap_or_default();
        return Ok(Some((kc, format!("KUBECONFIG={env}"))));
    }
    match default_path() {
        Some(p) if p.exists() => Ok(Some((read(&p)?, format!("kubeconfig {}", p.display())))),
        _ => Ok(None),
    }
}

/// Picks the context: the one asked for (it must exist), else the kubeconfig's current one.
fn pick_context(kc: &Kubeconfig, wanted: Option<&str>, from: &str) -> Result<String, ActionError> {
    let names: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
    let name = match wanted {
        Some(w) => w.to_string(),
        None => kc.current_context.clone().filter(|c| !c.is_empty()).ok_or_else(|| {
            invalid(format!(
                "{from} has no current-context; name one with the backend's `context` or --context (contexts: {})",
                list_or_none(&names)
            ))
        })?,
    };
    if names.contains(&name.as_str()) {
        return Ok(name);
    }
    let close = names
        .iter()
        .filter(|n| strsim::jaro_winkler(n, &name) > 0.8)
        .map(|n| format!(" (did you mean `{n}`?)"))
        .next()
        .unwrap_or_default();
    Err(invalid(format!(
        "context `{name}` is not in {from}{close}; its contexts: {}",
        list_or_none(&names)
    )))
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Builds a client. Nothing is sent to the cluster yet.
pub async fn load(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Loaded, ActionError> {
    crate::backends::http::install_crypto_provider();
    let (mut config, source) = match read_kubeconfig(kubeconfig)? {
        Some((kc, from)) => {
            let name = pick_context(&kc, context, &from)?;
            let opts = KubeConfigOptions {
                context: Some(name.clone()),
                ..Default::default()
            };
            let config = kube::Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| {
                    invalid(format!(
                        "context `{name}` of {from}: {}",
                        crate::backends::http::chain(&e)
                    ))
                })?;
            (config, format!("context `{name}` of {from}"))
        }
        None => {
            if let Some(c) = context {
                return Err(invalid(format!(
                    "context `{c}` was asked for, but there is no kubeconfig (KUBECONFIG is unset and ~/.kube/config does not exist)"
                )));
            }
            let config = kube::Config::incluster().map_err(|e| {
                invalid(format!(
                    "no Kubernetes configuration: KUBECONFIG is unset, ~/.kube/config does not exist, and this is not a pod in a cluster ({}); set KUBECONFIG or give the backend a `kubeconfig`",
                    crate::backends::http::chain(&e)
                ))
            })?;
            (config, "the in-cluster service account".to_string())
        }
    };
    // A silent peer must not hang a step forever; the step's own deadline is usually shorter.
    config.read_timeout = Some(Duration::from_secs(60));
    config.reset_reader_on_write = true;
    let default_namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(|e| {
        ActionError::new(
            ErrorKind::Invalid,
            format!(
                "{source}: cannot build a client: {}",
                crate::backends::http::chain(&e)
            ),
        )
    })?;
    Ok(Loaded {
        client,
        default_namespace,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kc(yaml: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(yaml).expect("kubeconfig parses")
    }

    const TWO: &str = "apiVersion: v1\nkind: Config\ncurrent-context: prod\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: prod\n  context: {cluster: c}\n- name: staging\n  context: {cluster: c, namespace: shop}\nusers: []\n";

    #[test]
    fn context_defaults_to_current_and_unknown_ones_are_named() {
        let k = kc(TWO);
        assert_eq!(pick_context(&k, None, "f").unwrap(), "prod");
        assert_eq!(pick_context(&k, Some("staging"), "f").unwrap(), "staging");
        let e = pick_context(&k, Some("stagin"), "kubeconfig x").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(
            e.message.contains("did you mean `staging`"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("its contexts: prod, staging"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_kubeconfig_without_current_context_asks_for_one() {
        let k = kc(&TWO.replace("current-context: prod\n", ""));
        let e = pick_context(&k, None, "kubeconfig x").unwrap_err();
        assert!(
            e.message.contains("has no current-context"),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn the_context_namespace_is_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config");
        std::fs::write(&p, TWO).unwrap();
        let l = load(Some(&p), Some("staging")).await.unwrap();
        assert_eq!(l.default_namespace, "shop");
        assert!(
            l.source.starts_with("context `staging` of kubeconfig "),
            "{}",
            l.source
        );
        let l = load(Some(&p), None).await.unwrap();
        assert_eq!(l.default_namespace, "default");
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_file_is_a_clear_error() {
        let e = load(Some(Path::new("/nonexistent/kubeconfig")), None)
            .await
            .err()
            .expect("fails");
        assert!(
            e.message
                .starts_with("cannot read the kubeconfig /nonexistent/kubeconfig"),
            "{}",
            e.message
        );
    }
}

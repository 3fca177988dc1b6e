//! What a run reads from the machine it runs on (environment variables, secret files), behind
//! a trait the caller passes in: the host for real runs, the drill's values for drills and
//! training. The runner asks it for every runbook it enters (the top one is read by the
//! session before the journal exists; a called one when its `call` step runs).

use std::fmt::Debug;
use std::path::Path;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::model::Runbook;
use crate::spec::SecretSpec;

pub trait HostEnv: Send + Sync + Debug {
    /// The runbook's secrets by name. An error names every required secret that has no value
    /// and every value that cannot be masked safely, and how to fix it.
    fn secrets(&self, rb: &Runbook) -> Result<IndexMap<String, String>, String>;
    /// The environment variables the runbook declares (an absent one is an empty string).
    fn env(&self, rb: &Runbook) -> Map<String, Value>;
}

/// The machine the engine runs on: its environment and its files. The only place a run reads
/// either for a runbook's `secrets` and `env`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealHost;

impl RealHost {
    /// A secret's value from its source as it is now (`None`: unset or unreadable). `dir` is
    /// the runbook's directory, which a `file` is relative to.
    pub fn secret(s: &SecretSpec, dir: &Path) -> Option<String> {
        if let Some(var) = &s.env {
            std::env::var(var).ok()
        } else if let Some(file) = &s.file {
            std::fs::read_to_string(dir.join(file))
                .ok()
                .map(|t| t.trim_end_matches(['\n', '\r']).to_string())
        } else {
            None
        }
    }
}

impl HostEnv for RealHost {
    fn secrets(&self, rb: &Runbook) -> Result<IndexMap<String, String>, String> {
        let mut out = IndexMap::new();
        let mut missing = vec![];
        let dir = rb.dir();
        for (name, s) in &rb.spec.secrets {
            match Self::secret(s, &dir) {
                Some(v) => {
                    // A value that cannot be masked safely would leak, or mask ordinary text.
                    if let Some(why) = crate::exec::redact::weakness(&v) {
                        let from = match (&s.env, &s.file) {
                            (Some(var), _) => format!(" (the environment variable {var})"),
                            (_, Some(f)) => format!(" (the file {f})"),
                            _ => String::new(),
                        };
                        missing.push(format!(
                            "secret `{name}`{from} cannot be masked in output safely: {why}; use a longer, random value"
                        ));
                    }
                    out.insert(name.clone(), v);
                }
                None if !s.required => {
                    out.insert(name.clone(), String::new());
                }
                None => missing.push(match (&s.env, &s.file) {
                    (Some(var), _) => {
                        format!("secret `{name}`: set the environment variable {var}")
                    }
                    (_, Some(f)) => format!("secret `{name}`: cannot read the file {f}"),
                    _ => format!("secret `{name}` has no source"),
                }),
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(missing.join("; "))
        }
    }

    fn env(&self, rb: &Runbook) -> Map<String, Value> {
        rb.spec
            .env
            .iter()
            .map(|k| {
                (
                    k.clone(),
                    Value::String(std::env::var(k).unwrap_or_default()),
                )
            })
            .collect()
    }
}

/// A simulated host (drills, training): secrets and environment variables by name from the
/// values given (a drill's `secrets` and `env`, with their stand-ins), never from the machine.
/// A name it was not given is an empty string.
#[derive(Debug, Default, Clone)]
pub struct IsolatedHost {
    secrets: IndexMap<String, String>,
    env: Map<String, Value>,
}

impl IsolatedHost {
    pub fn new(secrets: IndexMap<String, String>, env: Map<String, Value>) -> Self {
        IsolatedHost { secrets, env }
    }
}

impl HostEnv for IsolatedHost {
    fn secrets(&self, rb: &Runbook) -> Result<IndexMap<String, String>, String> {
        Ok(rb
            .spec
            .secrets
            .keys()
            .map(|k| (k.clone(), self.secrets.get(k).cloned().unwrap_or_default()))
            .collect())
    }

    fn env(&self, rb: &Runbook) -> Map<String, Value> {
        rb.spec
            .env
            .iter()
            .map(|k| {
                let v = self.env.get(k).cloned();
                (k.clone(), v.unwrap_or_else(|| Value::String(String::new())))
            })
            .collect()
    }
}

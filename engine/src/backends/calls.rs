//! Typed backend calls: a `kubernetes:` or `compose:` action's verb and its rendered
//! arguments, deserialized once and validated once. The real backends and the drill world
//! both receive these, so an argument one rejects, the other rejects with the same message;
//! `check` runs the same validation on literal arguments and reports them at their location.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::{ActionError, ErrorKind};
use crate::spec::{
    ComposeDown, ComposeLogs, ComposeServices, ComposeSetImage, ComposeUp, IntOrTemplate,
    KubeApplySpec, KubeListSpec, KubeMetaSpec, KubeObjectRef, KubeScaleSpec, KubeSetEnvSpec,
    KubeSetImageSpec, KubeUndoSpec, KubeWorkloadRef, COMPOSE_VERBS, KUBE_VERBS,
};

/// An argument a verb rejects: which field (for `check`'s location) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError {
    /// The field at fault, e.g. `image`; empty when the arguments as a whole are wrong.
    pub field: &'static str,
    pub message: String,
    /// The arguments do not have the verb's shape (a missing field, a wrong type): the schema
    /// says so before a run, and unrendered templates may cause it, so `check` leaves it.
    pub shape: bool,
}

impl ArgError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        ArgError {
            field,
            message: message.into(),
            shape: false,
        }
    }
}

/// The verbs of a `kubernetes:` action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KubeVerb {
    Get,
    List,
    Scale,
    SetImage,
    SetEnv,
    RolloutRestart,
    RolloutUndo,
    RolloutHistory,
    RolloutStatus,
    Apply,
    Delete,
    Annotate,
    Label,
    Pause,
    Resume,
}

impl KubeVerb {
    pub const ALL: [KubeVerb; 15] = [
        KubeVerb::Get,
        KubeVerb::List,
        KubeVerb::Scale,
        KubeVerb::SetImage,
        KubeVerb::SetEnv,
        KubeVerb::RolloutRestart,
        KubeVerb::RolloutUndo,
        KubeVerb::RolloutHistory,
        KubeVerb::RolloutStatus,
        KubeVerb::Apply,
        KubeVerb::Delete,
        KubeVerb::Annotate,
        KubeVerb::Label,
        KubeVerb::Pause,
        KubeVerb::Resume,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KubeVerb::Get => "get",
            KubeVerb::List => "list",
            KubeVerb::Scale => "scale",
            KubeVerb::SetImage => "set_image",
            KubeVerb::SetEnv => "set_env",
            KubeVerb::RolloutRestart => "rollout_restart",
            KubeVerb::RolloutUndo => "rollout_undo",
            KubeVerb::RolloutHistory => "rollout_history",
            KubeVerb::RolloutStatus => "rollout_status",
            KubeVerb::Apply => "apply",
            KubeVerb::Delete => "delete",
            KubeVerb::Annotate => "annotate",
            KubeVerb::Label => "label",
            KubeVerb::Pause => "pause",
            KubeVerb::Resume => "resume",
        }
    }

    pub fn parse(verb: &str) -> Option<KubeVerb> {
        KubeVerb::ALL.into_iter().find(|v| v.as_str() == verb)
    }
}

impl fmt::Display for KubeVerb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verbs of a `compose:` action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComposeVerb {
    Ps,
    Pull,
    Up,
    Down,
    Restart,
    Stop,
    Logs,
    SetImage,
}

impl ComposeVerb {
    pub const ALL: [ComposeVerb; 8] = [
        ComposeVerb::Ps,
        ComposeVerb::Pull,
        ComposeVerb::Up,
        ComposeVerb::Down,
        ComposeVerb::Restart,
        ComposeVerb::Stop,
        ComposeVerb::Logs,
        ComposeVerb::SetImage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ComposeVerb::Ps => "ps",
            ComposeVerb::Pull => "pull",
            ComposeVerb::Up => "up",
            ComposeVerb::Down => "down",
            ComposeVerb::Restart => "restart",
            ComposeVerb::Stop => "stop",
            ComposeVerb::Logs => "logs",
            ComposeVerb::SetImage => "set_image",
        }
    }

    pub fn parse(verb: &str) -> Option<ComposeVerb> {
        ComposeVerb::ALL.into_iter().find(|v| v.as_str() == verb)
    }
}

impl fmt::Display for ComposeVerb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `kubernetes:` verb with its typed, rendered arguments.
#[derive(Debug, Clone)]
pub enum KubeCall {
    Get(KubeObjectRef),
    List(KubeListSpec),
    Scale(KubeScaleSpec),
    SetImage(KubeSetImageSpec),
    SetEnv(KubeSetEnvSpec),
    RolloutRestart(KubeWorkloadRef),
    RolloutUndo(KubeUndoSpec),
    RolloutHistory(KubeWorkloadRef),
    RolloutStatus(KubeWorkloadRef),
    Apply(KubeApplySpec),
    Delete(KubeObjectRef),
    Annotate(KubeMetaSpec),
    Label(KubeMetaSpec),
    Pause(KubeWorkloadRef),
    Resume(KubeWorkloadRef),
}

/// Templates may render numbers where strings are expected (`set: {PORT: "{{ inputs.port }}"}`
/// renders `8080`), so scalar values of `set` maps and `unset` lists become strings.
fn stringify_maps(args: &Value) -> Value {
    let mut a = if args.is_null() {
        json!({})
    } else {
        args.clone()
    };
    if let Some(set) = a.get_mut("set").and_then(Value::as_object_mut) {
        for v in set.values_mut() {
            if matches!(v, Value::Number(_) | Value::Bool(_)) {
                *v = Value::String(v.to_string());
            }
        }
    }
    if let Some(Value::Array(unset)) = a.get_mut("unset") {
        for v in unset.iter_mut() {
            if !v.is_string() {
                *v = Value::String(v.to_string());
            }
        }
    }
    a
}

fn typed<T: DeserializeOwned>(verb: &str, args: &Value) -> Result<T, ArgError> {
    serde_json::from_value(stringify_maps(args)).map_err(|e| ArgError {
        shape: true,
        ..ArgError::new(
            "",
            format!("the arguments of `{verb}` after rendering: {e}"),
        )
    })
}

/// A whole number from a literal or a rendered template.
pub fn int_of(field: &'static str, v: &IntOrTemplate) -> Result<i64, ArgError> {
    match v {
        IntOrTemplate::Int(n) => Ok(*n),
        IntOrTemplate::Template(s) => s.trim().parse().map_err(|_| ArgError {
            // `replicas: "{{ inputs.n }}"` is only a number once rendered.
            shape: crate::template::is_template(s),
            ..ArgError::new(
                field,
                format!("`{field}` must be a whole number, got `{s}`"),
            )
        }),
    }
}

fn named(name: &str) -> Result<(), ArgError> {
    // An empty name would address the whole collection instead of one object.
    if name.trim().is_empty() {
        return Err(ArgError::new("name", "`name` is empty"));
    }
    Ok(())
}

fn kinded(kind: &str) -> Result<(), ArgError> {
    if kind.trim().is_empty() {
        return Err(ArgError::new("kind", "`kind` is empty"));
    }
    Ok(())
}

impl KubeCall {
    /// Deserializes and validates a verb's arguments (the verb's field of the action).
    /// Errors read `kubernetes.<verb>: <why>`, as every error of the backend does.
    pub fn parse(verb: &str, args: &Value) -> Result<KubeCall, ActionError> {
        KubeCall::from_args(verb, args).map_err(|e| {
            ActionError::new(
                ErrorKind::Invalid,
                format!("kubernetes.{verb}: {}", e.message),
            )
        })
    }

    /// `parse` without the prefix, and naming the field at fault (for `check`).
    pub fn from_args(verb: &str, args: &Value) -> Result<KubeCall, ArgError> {
        let Some(v) = KubeVerb::parse(verb) else {
            return Err(ArgError::new(
                "",
                format!(
                    "unknown verb `{verb}`; the verbs are: {}",
                    KUBE_VERBS.join(", ")
                ),
            ));
        };
        let call = match v {
            KubeVerb::Get => KubeCall::Get(typed(verb, args)?),
            KubeVerb::List => KubeCall::List(typed(verb, args)?),
            KubeVerb::Scale => KubeCall::Scale(typed(verb, args)?),
            KubeVerb::SetImage => KubeCall::SetImage(typed(verb, args)?),
            KubeVerb::SetEnv => KubeCall::SetEnv(typed(verb, args)?),
            KubeVerb::RolloutRestart => KubeCall::RolloutRestart(typed(verb, args)?),
            KubeVerb::RolloutUndo => KubeCall::RolloutUndo(typed(verb, args)?),
            KubeVerb::RolloutHistory => KubeCall::RolloutHistory(typed(verb, args)?),
            KubeVerb::RolloutStatus => KubeCall::RolloutStatus(typed(verb, args)?),
            KubeVerb::Apply => KubeCall::Apply(typed(verb, args)?),
            KubeVerb::Delete => KubeCall::Delete(typed(verb, args)?),
            KubeVerb::Annotate => KubeCall::Annotate(typed(verb, args)?),
            KubeVerb::Label => KubeCall::Label(typed(verb, args)?),
            KubeVerb::Pause => KubeCall::Pause(typed(verb, args)?),
            KubeVerb::Resume => KubeCall::Resume(typed(verb, args)?),
        };
        call.validate()?;
        Ok(call)
    }

    pub fn verb(&self) -> KubeVerb {
        match self {
            KubeCall::Get(_) => KubeVerb::Get,
            KubeCall::List(_) => KubeVerb::List,
            KubeCall::Scale(_) => KubeVerb::Scale,
            KubeCall::SetImage(_) => KubeVerb::SetImage,
            KubeCall::SetEnv(_) => KubeVerb::SetEnv,
            KubeCall::RolloutRestart(_) => KubeVerb::RolloutRestart,
            KubeCall::RolloutUndo(_) => KubeVerb::RolloutUndo,
            KubeCall::RolloutHistory(_) => KubeVerb::RolloutHistory,
            KubeCall::RolloutStatus(_) => KubeVerb::RolloutStatus,
            KubeCall::Apply(_) => KubeVerb::Apply,
            KubeCall::Delete(_) => KubeVerb::Delete,
            KubeCall::Annotate(_) => KubeVerb::Annotate,
            KubeCall::Label(_) => KubeVerb::Label,
            KubeCall::Pause(_) => KubeVerb::Pause,
            KubeCall::Resume(_) => KubeVerb::Resume,
        }
    }

    /// The arguments as JSON (what the journal and the drill world's lookups read).
    pub fn args(&self) -> Value {
        let v = match self {
            KubeCall::Get(a) | KubeCall::Delete(a) => serde_json::to_value(a),
            KubeCall::List(a) => serde_json::to_value(a),
            KubeCall::Scale(a) => serde_json::to_value(a),
            KubeCall::SetImage(a) => serde_json::to_value(a),
            KubeCall::SetEnv(a) => serde_json::to_value(a),
            KubeCall::RolloutRestart(a)
            | KubeCall::RolloutHistory(a)
            | KubeCall::RolloutStatus(a)
            | KubeCall::Pause(a)
            | KubeCall::Resume(a) => serde_json::to_value(a),
            KubeCall::RolloutUndo(a) => serde_json::to_value(a),
            KubeCall::Apply(a) => serde_json::to_value(a),
            KubeCall::Annotate(a) | KubeCall::Label(a) => serde_json::to_value(a),
        };
        v.unwrap_or(Value::Null)
    }

    /// The one validation of each verb's arguments, beyond their types.
    pub fn validate(&self) -> Result<(), ArgError> {
        match self {
            KubeCall::Get(a) | KubeCall::Delete(a) => {
                kinded(&a.kind)?;
                named(&a.name)
            }
            KubeCall::List(a) => {
                kinded(&a.kind)?;
                if let Some(s) = &a.selector {
                    super::kubernetes::selector::parse(s)
                        .map_err(|why| ArgError::new("selector", why))?;
                }
                Ok(())
            }
            KubeCall::Scale(a) => {
                named(&a.name)?;
                let n = int_of("replicas", &a.replicas)?;
                if n < 0 {
                    return Err(ArgError::new(
                        "replicas",
                        format!("replicas must be 0 or more, not {n}"),
                    ));
                }
                Ok(())
            }
            KubeCall::SetImage(a) => {
                named(&a.name)?;
                if a.image.trim().is_empty() {
                    return Err(ArgError::new("image", "`image` is empty"));
                }
                Ok(())
            }
            KubeCall::SetEnv(a) => {
                named(&a.name)?;
                if a.set.is_empty() && a.unset.is_empty() {
                    return Err(ArgError::new("", "set_env needs `set` or `unset`"));
                }
                Ok(())
            }
            KubeCall::RolloutRestart(a)
            | KubeCall::RolloutHistory(a)
            | KubeCall::RolloutStatus(a)
            | KubeCall::Pause(a)
            | KubeCall::Resume(a) => named(&a.name),
            KubeCall::RolloutUndo(a) => {
                named(&a.name)?;
                if let Some(t) = &a.to_revision {
                    let n = int_of("to_revision", t)?;
                    if n < 0 {
                        return Err(ArgError::new(
                            "to_revision",
                            format!("`to_revision` must be 0 or more, not {n}"),
                        ));
                    }
                }
                Ok(())
            }
            KubeCall::Apply(a) => {
                if a.manifest.is_some() == a.file.is_some() {
                    return Err(ArgError::new(
                        "",
                        "`apply` needs exactly one of `manifest` or `file`",
                    ));
                }
                Ok(())
            }
            KubeCall::Annotate(a) | KubeCall::Label(a) => {
                kinded(&a.kind)?;
                named(&a.name)?;
                if a.set.is_empty() && a.unset.is_empty() {
                    return Err(ArgError::new(
                        "",
                        format!("{} needs `set` or `unset`", self.verb()),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// One `compose:` verb with its typed, rendered arguments.
#[derive(Debug, Clone)]
pub enum ComposeCall {
    Ps(ComposeServices),
    Pull(ComposeServices),
    Up(ComposeUp),
    Down(ComposeDown),
    Restart(ComposeServices),
    Stop(ComposeServices),
    Logs(ComposeLogs),
    SetImage(ComposeSetImage),
}

impl ComposeCall {
    /// Deserializes and validates a verb's arguments. Errors read `compose.<verb>: <why>`.
    pub fn parse(verb: &str, args: &Value) -> Result<ComposeCall, ActionError> {
        ComposeCall::from_args(verb, args).map_err(|e| {
            ActionError::new(ErrorKind::Invalid, format!("compose.{verb}: {}", e.message))
        })
    }

    /// `parse` without the prefix, and naming the field at fault (for `check`).
    pub fn from_args(verb: &str, args: &Value) -> Result<ComposeCall, ArgError> {
        let Some(v) = ComposeVerb::parse(verb) else {
            return Err(ArgError::new(
                "",
                format!(
                    "unknown verb `{verb}`; the verbs are: {}",
                    COMPOSE_VERBS.join(", ")
                ),
            ));
        };
        // An action with no arguments (`ps: {}` or `ps:`) renders to an empty object or null.
        let args = if args.is_null() { &json!({}) } else { args };
        let call = match v {
            ComposeVerb::Ps => ComposeCall::Ps(typed(verb, args)?),
            ComposeVerb::Pull => ComposeCall::Pull(typed(verb, args)?),
            ComposeVerb::Up => ComposeCall::Up(typed(verb, args)?),
            ComposeVerb::Down => ComposeCall::Down(typed(verb, args)?),
            ComposeVerb::Restart => ComposeCall::Restart(typed(verb, args)?),
            ComposeVerb::Stop => ComposeCall::Stop(typed(verb, args)?),
            ComposeVerb::Logs => ComposeCall::Logs(typed(verb, args)?),
            ComposeVerb::SetImage => ComposeCall::SetImage(typed(verb, args)?),
        };
        call.validate()?;
        Ok(call)
    }

    pub fn verb(&self) -> ComposeVerb {
        match self {
            ComposeCall::Ps(_) => ComposeVerb::Ps,
            ComposeCall::Pull(_) => ComposeVerb::Pull,
            ComposeCall::Up(_) => ComposeVerb::Up,
            ComposeCall::Down(_) => ComposeVerb::Down,
            ComposeCall::Restart(_) => ComposeVerb::Restart,
            ComposeCall::Stop(_) => ComposeVerb::Stop,
            ComposeCall::Logs(_) => ComposeVerb::Logs,
            ComposeCall::SetImage(_) => ComposeVerb::SetImage,
        }
    }

    /// The arguments as JSON (what the drill world's lookups read).
    pub fn args(&self) -> Value {
        let v = match self {
            ComposeCall::Ps(a)
            | ComposeCall::Pull(a)
            | ComposeCall::Restart(a)
            | ComposeCall::Stop(a) => serde_json::to_value(a),
            ComposeCall::Up(a) => serde_json::to_value(a),
            ComposeCall::Down(a) => serde_json::to_value(a),
            ComposeCall::Logs(a) => serde_json::to_value(a),
            ComposeCall::SetImage(a) => serde_json::to_value(a),
        };
        v.unwrap_or(Value::Null)
    }

    /// The services the verb names (empty: all of them).
    pub fn services(&self) -> Vec<String> {
        match self {
            ComposeCall::Ps(a)
            | ComposeCall::Pull(a)
            | ComposeCall::Restart(a)
            | ComposeCall::Stop(a) => a.services.clone(),
            ComposeCall::Up(a) => a.services.clone(),
            ComposeCall::Logs(a) => a.services.clone(),
            ComposeCall::Down(_) => vec![],
            ComposeCall::SetImage(a) => vec![a.service.clone()],
        }
    }

    /// The one validation of each verb's arguments, beyond their types.
    pub fn validate(&self) -> Result<(), ArgError> {
        match self {
            ComposeCall::SetImage(a) => {
                if a.service.trim().is_empty() {
                    return Err(ArgError::new(
                        "service",
                        "set_image needs a `service` and an `image`",
                    ));
                }
                if a.image.trim().is_empty() {
                    return Err(ArgError::new(
                        "image",
                        "set_image needs a `service` and an `image`",
                    ));
                }
                Ok(())
            }
            _ => {
                if let Some(s) = self.services().iter().find(|s| s.trim().is_empty()) {
                    return Err(ArgError::new(
                        "services",
                        format!("a service name is empty (`{s}`)"),
                    ));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_numbers_become_the_strings_the_spec_expects() {
        let KubeCall::SetEnv(a) = KubeCall::parse(
            "set_env",
            &json!({"name": "web", "set": {"PORT": 8080, "DEBUG": true}, "unset": [1]}),
        )
        .unwrap() else {
            panic!("not set_env")
        };
        assert_eq!(a.set["PORT"], "8080");
        assert_eq!(a.set["DEBUG"], "true");
        assert_eq!(a.unset, vec!["1"]);
        let e = KubeCall::parse("scale", &json!({"name": "web"})).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(
            e.message.starts_with(
                "kubernetes.scale: the arguments of `scale` after rendering: missing field `replicas`"
            ),
            "{}",
            e.message
        );
    }

    #[test]
    fn each_verb_is_validated_once_with_the_field_at_fault() {
        let e =
            KubeCall::from_args("set_image", &json!({"name": "web", "image": " "})).unwrap_err();
        assert_eq!((e.field, e.message.as_str()), ("image", "`image` is empty"));
        let e = KubeCall::parse("set_env", &json!({"name": "web"})).unwrap_err();
        assert_eq!(
            e.message,
            "kubernetes.set_env: set_env needs `set` or `unset`"
        );
        let e =
            KubeCall::from_args("scale", &json!({"name": "web", "replicas": "three"})).unwrap_err();
        assert_eq!(e.message, "`replicas` must be a whole number, got `three`");
        let e = KubeCall::from_args("scale", &json!({"name": "web", "replicas": -1})).unwrap_err();
        assert_eq!(e.message, "replicas must be 0 or more, not -1");
        let e = KubeCall::from_args("get", &json!({"kind": "Pod", "name": ""})).unwrap_err();
        assert_eq!(e.field, "name");
        let e =
            ComposeCall::parse("set_image", &json!({"service": "web", "image": ""})).unwrap_err();
        assert_eq!(
            e.message,
            "compose.set_image: set_image needs a `service` and an `image`"
        );
        assert!(ComposeCall::parse("ps", &Value::Null).is_ok());
        for v in KubeVerb::ALL {
            assert!(KUBE_VERBS.contains(&v.as_str()));
        }
        assert_eq!(KubeVerb::ALL.len(), KUBE_VERBS.len());
        assert_eq!(ComposeVerb::ALL.len(), COMPOSE_VERBS.len());
    }
}

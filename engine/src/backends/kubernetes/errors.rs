//! Turns kube-rs errors into step failures that quote the API server's own message and say
//! what to do about them.

use crate::backends::http::chain;
use crate::backends::{ActionError, ErrorKind};

/// An error from a call about `what` (e.g. `Deployment shop/web`).
pub fn api_error(what: &str, e: kube::Error) -> ActionError {
    match &e {
        kube::Error::Api(s) => status_error(what, s.code, &s.reason, &s.message),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::RustlsTls(_) => {
            ActionError::new(
                ErrorKind::Transport,
                format!("{what}: cannot reach the API server: {}", chain(&e)),
            )
        }
        kube::Error::Auth(_) => ActionError::new(
            ErrorKind::Failed,
            format!(
                "{what}: cannot authenticate to the API server: {} (check the user of this kubeconfig context)",
                chain(&e)
            ),
        ),
        _ => ActionError::new(ErrorKind::Failed, format!("{what}: {}", chain(&e))),
    }
}

/// An API `Status` failure. 409 is `Failed` here; callers that update objects retry it first.
pub fn status_error(what: &str, code: u16, reason: &str, message: &str) -> ActionError {
    let said = if message.is_empty() { reason } else { message };
    let (kind, label, hint) = match code {
        400 => (ErrorKind::Invalid, "400 Bad Request", "fix the request the server rejects"),
        401 => (
            ErrorKind::Failed,
            "401 Unauthorized",
            "the credentials of this kubeconfig context were rejected; log in again or use another context",
        ),
        403 => (
            ErrorKind::Failed,
            "403 Forbidden",
            "the account of this kubeconfig context lacks the permission; ask for it or use another context",
        ),
        404 => (
            ErrorKind::Failed,
            "404 Not Found",
            "check the kind, the name and the namespace",
        ),
        409 => (
            ErrorKind::Failed,
            "409 Conflict",
            "the object is being changed by someone else, or already exists; read it again and retry",
        ),
        422 => (
            ErrorKind::Invalid,
            "422 Invalid",
            "fix the value the server rejects",
        ),
        _ => (ErrorKind::Failed, "", ""),
    };
    let message = if label.is_empty() {
        format!("{what}: the API server answered {code} {reason}: {said}")
    } else {
        format!("{what}: {label}: {said} ({hint})")
    };
    ActionError::new(kind, message)
}

/// Is this a 409 Conflict (an update lost a race) worth retrying after a fresh read?
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

pub fn invalid(message: impl Into<String>) -> ActionError {
    ActionError::new(ErrorKind::Invalid, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_quotes_the_server_and_is_a_failure() {
        let e = status_error(
            "Deployment default/web",
            403,
            "Forbidden",
            "deployments.apps \"web\" is forbidden: User \"nobody\" cannot get resource",
        );
        assert_eq!(e.kind, ErrorKind::Failed);
        assert!(e.message.starts_with(
            "Deployment default/web: 403 Forbidden: deployments.apps \"web\" is forbidden"
        ));
        assert!(e.message.contains("lacks the permission"));
    }

    #[test]
    fn invalid_is_not_retryable_and_unknown_codes_keep_the_reason() {
        let e = status_error(
            "ConfigMap a/b",
            422,
            "Invalid",
            "spec.replicas: must be >= 0",
        );
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(!e.retryable());
        let e = status_error("ConfigMap a/b", 500, "InternalError", "");
        assert_eq!(
            e.message,
            "ConfigMap a/b: the API server answered 500 InternalError: InternalError"
        );
    }
}

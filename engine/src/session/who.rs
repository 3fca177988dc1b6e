//! Who runs and why: the operator's name and the incident reason, given, asked for at a
//! terminal, or required (P1/P2 runbooks and terminal steps) in CI.

use super::SessionError;
use crate::model::Runbook;
use crate::spec::Severity;

/// The login name: $RUNBOOK_OPERATOR, $USER, $LOGNAME, else "unknown".
pub fn default_operator() -> String {
    known_operator().unwrap_or_else(|| "unknown".to_string())
}

/// $RUNBOOK_OPERATOR, $USER or $LOGNAME, when one is set and not blank.
fn known_operator() -> Option<String> {
    ["RUNBOOK_OPERATOR", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .map(|v| v.trim().to_string())
}

/// Why a run of this runbook must say who runs it, if it must: a P1/P2 runbook, or one with
/// a terminal step (its answer is journaled with a name, and sent to APIs as `run.operator`).
pub fn needs_identity(rb: &Runbook) -> Option<String> {
    if let Some(sev @ (Severity::P1 | Severity::P2)) = rb.spec.metadata.severity {
        return Some(format!("`{}` is a {sev:?} runbook", rb.name()));
    }
    (rb.max_safety() == crate::spec::Safety::Terminal)
        .then(|| format!("`{}` has a terminal step", rb.name()))
}

/// Who runs: `--operator`, else $RUNBOOK_OPERATOR / $USER / $LOGNAME. A run that needs an
/// identity (see `needs_identity`) asks for it at a terminal and, without one, refuses in CI
/// naming the flag; any other run is journaled as "unknown".
pub fn operator_for(
    rb: &Runbook,
    given: Option<String>,
    interactive: bool,
) -> Result<String, SessionError> {
    if let Some(g) = given
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
    {
        return Ok(g);
    }
    if let Some(k) = known_operator() {
        return Ok(k);
    }
    let Some(why) = needs_identity(rb) else {
        return Ok("unknown".into());
    };
    if interactive {
        let theme = dialoguer::theme::ColorfulTheme::default();
        // The prompt itself stays short (one line); the why is printed above it, wrapped.
        eprintln!(
            "{}",
            crate::view::fit(&format!(
                "{why}: the journal and the report name who runs it (your name, as they should show it)"
            ))
        );
        let name: String = dialoguer::Input::with_theme(&theme)
            .with_prompt("Who is running it?")
            .validate_with(|s: &String| {
                if s.trim().is_empty() {
                    Err("a name is needed")
                } else {
                    Ok(())
                }
            })
            .interact_text()
            .map_err(|_| SessionError::Declined { interrupted: false })?;
        return Ok(name.trim().to_string());
    }
    Err(SessionError::Identity(format!(
        "{why}: a run needs to know who runs it, and $USER, $LOGNAME and $RUNBOOK_OPERATOR are empty; pass --operator <name> (or set RUNBOOK_OPERATOR)"
    )))
}

/// The incident reason: given, asked for at a terminal, or required for P1/P2 in CI.
pub fn reason_for(
    rb: &Runbook,
    given: Option<String>,
    interactive: bool,
    prompter_title: &str,
) -> Result<Option<String>, SessionError> {
    if given.as_deref().is_some_and(|r| !r.trim().is_empty()) {
        return Ok(given);
    }
    let high = matches!(rb.spec.metadata.severity, Some(Severity::P1 | Severity::P2));
    if interactive {
        let theme = dialoguer::theme::ColorfulTheme::default();
        // A prompt is one line: a title too long for it goes on a line of its own, wrapped.
        let mut prompt =
            format!("Why are you running \"{prompter_title}\"? (incident, alert, ticket)");
        if crate::view::fit(&format!("? {prompt} › ")).contains('\n') {
            eprintln!("{}", crate::view::fit(&format!("\"{prompter_title}\"")));
            prompt = "Why are you running it? (incident, alert, ticket)".into();
        }
        let r: String = dialoguer::Input::with_theme(&theme)
            .with_prompt(prompt)
            .allow_empty(!high)
            .interact_text()
            .map_err(|e| match crate::prompt::to_io(e).kind() {
                // Ctrl-C at the prompt: nothing ran, no journal yet.
                std::io::ErrorKind::Interrupted => SessionError::Declined { interrupted: true },
                _ => SessionError::Declined { interrupted: false },
            })?;
        return Ok(Some(r).filter(|r| !r.trim().is_empty()));
    }
    if high {
        return Err(SessionError::Identity(format!(
            "`{}` is a {:?} runbook: a non-interactive run needs --reason \"<incident, alert or ticket>\"",
            rb.name(),
            rb.spec.metadata.severity.expect("high implies some")
        )));
    }
    Ok(None)
}

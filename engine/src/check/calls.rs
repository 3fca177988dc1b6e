//! `call` actions: the called runbook is read and checked, and its inputs matched.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::did_you_mean;
use crate::model::ActionKind;
use crate::spec::{self};
use crate::yaml::{self};

use super::text::control_characters;
use super::{canonical, check_runbook_doc, read_limited, Ctx, LenMut, Reports, MAX_CALL_DEPTH};

/// A `call` step: the called runbook is read and checked (recursively, within
/// `MAX_CALL_DEPTH`, refusing cycles), and the inputs passed must match the ones it declares.
pub(super) fn check_call(
    cx: &mut Ctx,
    ptr: &str,
    call: &spec::CallAction,
    path: &Path,
    stack: &mut Vec<PathBuf>,
) -> Option<ActionKind> {
    let target = path.parent().unwrap_or(Path::new(".")).join(&call.runbook);
    let canon = canonical(&target);
    if stack.len() >= MAX_CALL_DEPTH {
        cx.err(
            &format!("{ptr}/runbook"),
            format!(
                "calls are nested more than {MAX_CALL_DEPTH} runbooks deep here \
                 (through {})",
                stack
                    .iter()
                    .map(|p| p.file_name().unwrap_or_default().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
            "call-depth",
        )
        .help = Some(format!(
            "a runbook may call runbooks that call others, at most {MAX_CALL_DEPTH} \
             levels deep; flatten the chain"
        ));
        return None;
    }
    if stack.contains(&canon) {
        cx.err(
            &format!("{ptr}/runbook"),
            format!(
                "`{}` calls itself (directly or through another runbook)",
                call.runbook
            ),
            "call-cycle",
        );
        return None;
    }
    let bytes = match read_limited(&target) {
        Ok(Some(b)) => b,
        Ok(None) => {
            let size = std::fs::metadata(&target).ok().map(|m| m.len());
            cx.diags
                .push(yaml::too_large(&target.display().to_string(), size));
            return None;
        }
        Err(e) => {
            let (msg, help) = if e.kind() == std::io::ErrorKind::NotFound {
                let dir = target.parent().unwrap_or(Path::new("."));
                let here: Vec<String> = crate::files::yaml_files(dir)
                    .iter()
                    .filter(|p| p.parent() == Some(dir))
                    .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect();
                let wanted = Path::new(&call.runbook)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let help = match did_you_mean(&wanted, here.iter().map(String::as_str)) {
                    Some(s) => format!(
                        "did you mean `{s}`? the path is relative to this runbook's directory"
                    ),
                    None => "the path is relative to this runbook's directory".to_string(),
                };
                (
                    format!(
                        "the called runbook `{}` does not exist (looked for {})",
                        call.runbook,
                        target.display()
                    ),
                    help,
                )
            } else {
                (
                    format!("cannot read the called runbook {}: {e}", target.display()),
                    "check the file's permissions".to_string(),
                )
            };
            cx.err(&format!("{ptr}/runbook"), msg, "call")
                .with_len_mut(call.runbook.chars().count())
                .help = Some(help);
            return None;
        }
    };
    let child_file = target.display().to_string();
    let child_doc = match yaml::parse(&child_file, &bytes) {
        Ok(d) => d,
        Err(d) => {
            cx.diags.push(*d);
            return None;
        }
    };
    cx.diags.extend(control_characters(
        &child_file,
        &String::from_utf8_lossy(&bytes),
        &child_doc,
    ));
    let child_text = String::from_utf8_lossy(&bytes).to_string();
    stack.push(canon);
    let (child, diags) =
        check_runbook_doc(&child_file, &target, &child_text, &bytes, &child_doc, stack);
    stack.pop();
    cx.diags.extend(diags);
    let child = child?;
    for name in call.inputs.keys() {
        if !child.spec.inputs.contains_key(name) {
            let help = did_you_mean(name, child.spec.inputs.keys().map(String::as_str))
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| {
                    format!(
                        "`{}` takes: {}",
                        call.runbook,
                        child
                            .spec
                            .inputs
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
            cx.key_err(
                &format!("{ptr}/inputs/{}", yaml::pointer_segment(name)),
                format!("`{}` has no input `{name}`", call.runbook),
                "call-input",
            )
            .help = Some(help);
        }
    }
    for (name, input) in &child.spec.inputs {
        if input.default.is_none() && !call.inputs.contains_key(name) {
            cx.key_err(
                &format!("{ptr}/inputs"),
                format!("`{}` requires input `{name}`", call.runbook),
                "call-input",
            )
            .help = Some(format!(
                "add `{name}: <value>` under `inputs:`; it has no default"
            ));
        }
    }
    Some(ActionKind::Call(Arc::new(child)))
}

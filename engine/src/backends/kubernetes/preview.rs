//! `plan --live`: what a call would do, read from the cluster without changing it (edits run
//! on a copy, `apply` is a server-side dry run).

use serde_json::Value;

use super::objects;
use super::rollout;
use super::status;
use super::verbs::{describe, Call};
use super::Session;
use crate::backends::ActionError;

/// Apply diffs longer than this are cut ("… and N more").
const MAX_DIFF_LINES: usize = 12;

pub async fn describe_live(s: &Session, call: Call) -> Result<String, ActionError> {
    let client = s.client();
    Ok(match call {
        Call::Edit { target, edit } => {
            let changes = objects::dry_edit(client, &target, edit).await?;
            describe(&target, &changes)
        }
        Call::Get(r) => match objects::read_opt(client, &r).await? {
            Some(o) => format!(
                "{}: exists (resourceVersion {})",
                r.what(),
                o.pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            ),
            None => missing(&r.what()),
        },
        Call::Delete(r) => match objects::read_opt(client, &r).await? {
            Some(_) => format!("{}: exists; the step deletes it", r.what()),
            None => missing(&r.what()),
        },
        Call::List {
            res,
            namespace,
            selector,
        } => {
            let l = objects::list(client, &res, &namespace, selector.as_deref()).await?;
            let n = l["items"].as_array().map_or(0, Vec::len);
            let sel = selector
                .map(|s| format!(" matching {s}"))
                .unwrap_or_default();
            let place = if res.namespaced {
                format!(" in namespace {namespace}")
            } else {
                String::new()
            };
            format!("{n} {}{sel}{place} now", res.ar.plural)
        }
        Call::Apply {
            docs,
            manager,
            force,
        } => {
            let mut out = vec![];
            for (r, doc) in &docs {
                let before = objects::read_opt(client, r).await?;
                let after = objects::apply_one(client, r, doc, &manager, force, true).await?;
                out.push(match before {
                    None => format!("{}: created", r.what()),
                    Some(b) => {
                        let d = objects::diff(&b, &after, MAX_DIFF_LINES);
                        if d.is_empty() {
                            format!("{}: no change", r.what())
                        } else {
                            format!("{}: {}", r.what(), d.join("; "))
                        }
                    }
                });
            }
            out.join("\n")
        }
        Call::History { target, kind } => {
            let h = rollout::history(client, &target, kind).await?;
            let revs: Vec<String> = h["revisions"]
                .as_array()
                .map(|a| a.iter().map(|r| r["revision"].to_string()).collect())
                .unwrap_or_default();
            format!(
                "{}: revisions {} (current {})",
                target.what(),
                if revs.is_empty() {
                    "none".into()
                } else {
                    revs.join(", ")
                },
                h["current_revision"]
            )
        }
        Call::Status { target, kind } => {
            let obj = objects::read(client, &target).await?;
            let msg = match status::status_of(kind, &obj) {
                Ok((m, _)) => m,
                Err(e) => e.message,
            };
            format!("{}: {msg}", target.what())
        }
    })
}

fn missing(what: &str) -> String {
    format!("{what}: does not exist (the step will fail with 404 Not Found)")
}

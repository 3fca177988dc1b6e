//! The interactive prompter (dialoguer on stderr): confirmations (yes / no / skip / abort),
//! manual steps (done / skipped / failed + note), typed inputs, and the incident reason.

use std::io;

use dialoguer::theme::ColorfulTheme;
use dialoguer::{Input, Select};
use serde_json::Value;

use crate::exec::gate::{Answer, GateKind, GateRequest, ManualReply, Prompter, Reply};
use crate::view::TerminalView;

pub struct TerminalPrompter {
    view: TerminalView,
}

impl TerminalPrompter {
    pub fn new(view: TerminalView) -> Self {
        TerminalPrompter { view }
    }
}

/// Text handed to dialoguer, which writes it to the terminal as it is: made visible first
/// (`term::visible`), like everything else shown (`view.rs` does the lines printed above a
/// prompt).
fn shown(s: &str) -> String {
    crate::term::visible(s).into_owned()
}

fn to_io(e: dialoguer::Error) -> io::Error {
    match e {
        dialoguer::Error::IO(e) => e,
    }
}

impl Prompter for TerminalPrompter {
    fn ask(&mut self, req: &GateRequest) -> io::Result<Answer> {
        let theme = ColorfulTheme::default();
        self.view.println("");
        match &req.kind {
            GateKind::Confirm | GateKind::Terminal | GateKind::Resume => {
                if matches!(req.kind, GateKind::Terminal) {
                    self.view.println(&format!(
                        "  ⚠ `{}` is TERMINAL: it cannot be undone.",
                        req.step
                    ));
                    self.view.println(&format!("    {}", req.action));
                }
                let items = ["yes", "no", "skip", "abort"];
                let prompt = shown(&format!("{} [{}]", req.prompt.trim(), req.safety.as_str()));
                let pick = Select::with_theme(&theme)
                    .with_prompt(prompt)
                    .items(items)
                    .default(1)
                    .interact_opt()
                    .map_err(to_io)?;
                Ok(Answer::Reply(match pick {
                    Some(0) => Reply::Yes,
                    Some(1) => Reply::No,
                    Some(2) => Reply::Skip,
                    _ => Reply::Abort,
                }))
            }
            GateKind::Manual => {
                self.view
                    .println(&format!("  ✋ {} — do this by hand:", req.title));
                for l in req.prompt.trim().lines() {
                    self.view.println(&format!("     {l}"));
                }
                let items = ["done", "skipped", "failed"];
                let pick = Select::with_theme(&theme)
                    .with_prompt("When you are finished, mark the step")
                    .items(items)
                    .default(0)
                    .interact_opt()
                    .map_err(to_io)?;
                let reply = match pick {
                    Some(0) => ManualReply::Done,
                    Some(1) => ManualReply::Skipped,
                    _ => ManualReply::Failed,
                };
                let note: String = Input::with_theme(&theme)
                    .with_prompt("Note for the journal (optional)")
                    .allow_empty(true)
                    .interact_text()
                    .map_err(to_io)?;
                let note = Some(note.trim().to_string()).filter(|n| !n.is_empty());
                Ok(Answer::Manual(reply, note))
            }
            GateKind::Input(spec) => {
                let spec = spec.clone();
                let mut input =
                    Input::<String>::with_theme(&theme).with_prompt(shown(req.prompt.trim()));
                if let Some(d) = &spec.default {
                    // dialoguer shows the default in the prompt and returns it as typed:
                    // a default that would not show as it is is not offered.
                    let d = match d {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    if crate::term::visible_line(&d) == d {
                        input = input.default(d);
                    }
                }
                let s2 = spec.clone();
                let text = input
                    .validate_with(move |s: &String| {
                        crate::inputs::coerce("value", &s2, s).map(|_| ())
                    })
                    .interact_text()
                    .map_err(to_io)?;
                crate::inputs::coerce("value", &spec, &text)
                    .map(Answer::Input)
                    .map_err(io::Error::other)
            }
        }
    }

    fn reason(&mut self, runbook_title: &str) -> io::Result<String> {
        let theme = ColorfulTheme::default();
        Input::<String>::with_theme(&theme)
            .with_prompt(shown(&format!(
                "Why are you running \"{runbook_title}\"? (incident, alert, ticket)"
            )))
            .interact_text()
            .map_err(to_io)
    }
}

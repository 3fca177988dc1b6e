//! The interactive prompter (dialoguer on stderr): confirmations (yes / no / skip / abort),
//! manual steps (done / skipped / failed + note), typed inputs, and the incident reason.

use std::io;

use dialoguer::theme::ColorfulTheme;
use dialoguer::{Input, Select};
use serde_json::Value;

use crate::exec::gate::{
    Answer, GateKind, GateRequest, ManualReply, ProcessReply, Prompter, Reply,
};
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
/// (`term::visible`), like everything else shown (`view` does the lines printed above a
/// prompt).
fn shown(s: &str) -> String {
    crate::term::visible(s).into_owned()
}

/// A prompt's error. Ctrl-C at a prompt (the terminal is in raw mode, so it arrives as a key
/// and comes back as `Interrupted`) leaves the cursor hidden by dialoguer: show it again. The
/// runner then ends the run as interrupted (130), resumable.
pub fn to_io(e: dialoguer::Error) -> io::Error {
    let dialoguer::Error::IO(e) = e;
    if e.kind() == io::ErrorKind::Interrupted {
        restore_cursor();
    }
    e
}

/// Shows the cursor and ends the line the prompt was on.
pub fn restore_cursor() {
    use std::io::Write;
    let mut err = io::stderr();
    let _ = err.write_all(b"\x1b[?25h\n");
    let _ = err.flush();
}

impl Prompter for TerminalPrompter {
    fn ask(&mut self, req: &GateRequest) -> io::Result<Answer> {
        let theme = ColorfulTheme::default();
        self.view.println("");
        match &req.kind {
            GateKind::Confirm | GateKind::Terminal | GateKind::Resume | GateKind::Inconclusive => {
                for line in gate_lines(req) {
                    self.view.println(&line);
                }
                // The answers' meanings are printed above (wrapped to the terminal); the
                // choices stay one short word each so that the menu never wraps.
                let meanings = req.meanings();
                let items: Vec<String> = meanings
                    .iter()
                    .map(|(r, _)| Answer::Reply(*r).text())
                    .collect();
                let prompt = match req.kind {
                    GateKind::Resume | GateKind::Inconclusive => {
                        shown(&format!("{} [{}]", req.prompt.trim(), req.safety.as_str()))
                    }
                    _ => format!("Your answer [{}]", req.guarded_safety().as_str()),
                };
                let pick = Select::with_theme(&theme)
                    .with_prompt(prompt)
                    .items(&items)
                    .default(1)
                    .interact_opt()
                    .map_err(to_io)?;
                Ok(Answer::Reply(match pick {
                    Some(i) if i < meanings.len() => meanings[i].0,
                    _ => Reply::Abort,
                }))
            }
            GateKind::Process => {
                let items = ["wait until it ends", "kill its process group", "abort"];
                let pick = Select::with_theme(&theme)
                    .with_prompt(shown(req.prompt.trim()))
                    .items(items)
                    .default(0)
                    .interact_opt()
                    .map_err(to_io)?;
                Ok(Answer::Process(match pick {
                    Some(0) => ProcessReply::Wait,
                    Some(1) => ProcessReply::Kill,
                    _ => ProcessReply::Abort,
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

/// The text shown above a confirmation's answers: the question, then each change it guards
/// with its safety class, the change as it will be made, and its undo.
pub fn gate_lines(req: &GateRequest) -> Vec<String> {
    let mut out = vec![];
    match req.kind {
        GateKind::Resume | GateKind::Inconclusive => {}
        GateKind::Terminal => out.push(format!(
            "  ⚠ `{}` is TERMINAL: it cannot be undone.",
            req.step
        )),
        _ => {
            out.push(format!(
                "  ? {} [{}]",
                req.title,
                req.guarded_safety().as_str()
            ));
            for l in req.prompt.trim().lines() {
                out.push(format!("    {l}"));
            }
        }
    }
    if req.guarded.is_empty() && matches!(req.kind, GateKind::Confirm) {
        out.push("    This confirmation guards no change.".into());
    }
    if matches!(req.kind, GateKind::Confirm) && !req.guarded.is_empty() {
        out.push(format!(
            "    Only `yes` lets {} run:",
            if req.guarded.len() == 1 {
                "this change".to_string()
            } else {
                format!("these {} changes", req.guarded.len())
            }
        ));
    }
    for g in &req.guarded {
        let id = g.step.rsplit('/').next().unwrap_or(&g.step);
        out.push(if g.title == id {
            format!("    [{}] {}", g.safety.as_str(), g.step)
        } else {
            format!("    [{}] {} — {}", g.safety.as_str(), g.step, g.title)
        });
        for c in &g.change {
            for l in c.lines() {
                out.push(format!("        {l}"));
            }
        }
        out.push(format!("        {}", g.undo));
    }
    out.push("    Answers:".into());
    for (r, m) in req.meanings() {
        out.push(format!("      {:<5}  {m}", Answer::Reply(r).text()));
    }
    out
}

//! Gates: the one policy that decides, for every confirmation, manual step, input and
//! terminal action, where its answer comes from. Fail-closed: without an answer, a
//! non-interactive run stops (exit 4) instead of guessing, and never reads stdin.

use std::collections::HashMap;
use std::io;

use serde_json::Value;

use super::events::AnswerVia;
use crate::model::{ActionKind, Runbook};
use crate::spec::{InputSpec, Safety};

/// What kind of answer a gate needs.
#[derive(Debug, Clone)]
pub enum GateKind {
    /// A `confirm` step.
    Confirm,
    /// A step of safety `terminal`: needs its own explicit yes.
    Terminal,
    /// A `manual` step.
    Manual,
    /// An `input` step.
    Input(Box<InputSpec>),
    /// Resuming a run whose step started but did not finish, and is not safe to repeat.
    Resume,
    /// A verification without data (`on_inconclusive: ask`): may it count as passed?
    Inconclusive,
    /// Resuming a run while a process group a step started before the interruption is still
    /// alive: wait for it to end, or kill it, before anything else runs.
    Process,
}

impl GateKind {
    pub fn name(&self) -> &'static str {
        self.journaled().as_str()
    }

    /// The gate as the journal records it.
    pub fn journaled(&self) -> crate::exec::events::Gate {
        use crate::exec::events::Gate;
        match self {
            GateKind::Confirm => Gate::Confirm,
            GateKind::Terminal => Gate::Terminal,
            GateKind::Manual => Gate::Manual,
            GateKind::Input(_) => Gate::Input,
            GateKind::Resume => Gate::Resume,
            GateKind::Inconclusive => Gate::Inconclusive,
            GateKind::Process => Gate::Process,
        }
    }
}

/// A question for the operator.
#[derive(Debug, Clone)]
pub struct GateRequest {
    pub step: String,
    pub title: String,
    pub kind: GateKind,
    /// The rendered prompt or instructions (secrets masked).
    pub prompt: String,
    pub safety: Safety,
    /// A one-line description of the action the gate protects (secrets masked).
    pub action: String,
    /// The changes a confirmation guards (or, for a terminal step, the step itself), in
    /// order: what `yes` lets run and what `skip` leaves out.
    pub guarded: Vec<Guarded>,
}

/// One change a gate guards, as it will be made.
#[derive(Debug, Clone, PartialEq)]
pub struct Guarded {
    pub step: String,
    pub title: String,
    pub safety: Safety,
    /// The change as it will be made: argv, `METHOD url` and JSON body, the Kubernetes verb
    /// and object, and what the live system says it will change (secrets masked).
    pub change: Vec<String>,
    /// How to undo it: the step's `undo`, or why it cannot be undone.
    pub undo: String,
}

const ABORT: &str =
    "stop the run and undo what it has changed so far (each finished step's undo, newest first)";

impl GateRequest {
    /// The safety class the gate is about: the riskiest change it guards (a confirmation
    /// that guards nothing is read-only).
    pub fn guarded_safety(&self) -> Safety {
        self.guarded
            .iter()
            .map(|g| g.safety)
            .max()
            .unwrap_or(self.safety)
            .max(self.safety)
    }

    /// What each answer does, shown with the question and in the needs-answer message.
    /// One definition for the prompt, the flag hint and the docs (docs/runbook-format.md).
    pub fn meanings(&self) -> Vec<(Reply, String)> {
        let ids: Vec<String> = self
            .guarded
            .iter()
            .map(|g| format!("`{}`", g.step))
            .collect();
        let (yes, skip) = if ids.is_empty() {
            (
                "go on".to_string(),
                "go on (nothing is guarded here: the same as yes)".to_string(),
            )
        } else {
            let what = ids.join(", ");
            (
                format!("make the change: run {what}"),
                format!("do not run {what}; go on with the steps after it"),
            )
        };
        match self.kind {
            GateKind::Inconclusive => vec![
                (
                    Reply::Yes,
                    "count the verification as passed and go on".into(),
                ),
                (
                    Reply::No,
                    "the verification fails (no data is not a pass)".into(),
                ),
                (
                    Reply::Skip,
                    "the verification fails (no data is not a pass)".into(),
                ),
                (
                    Reply::Abort,
                    "the verification fails (no data is not a pass)".into(),
                ),
            ],
            GateKind::Resume => vec![
                (Reply::Yes, "run the step again".into()),
                (
                    Reply::No,
                    "stop the run here; nothing more is changed".into(),
                ),
                (
                    Reply::Skip,
                    "the step completed before the interruption: go on without running it".into(),
                ),
                (Reply::Abort, ABORT.into()),
            ],
            _ => vec![
                (Reply::Yes, yes),
                (
                    Reply::No,
                    "stop the run here and change nothing more; resuming the run asks again".into(),
                ),
                (Reply::Skip, skip),
                (Reply::Abort, ABORT.into()),
            ],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Yes,
    No,
    Skip,
    Abort,
}

/// What to do with a process group that outlived an interruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessReply {
    /// Wait until it ends by itself.
    Wait,
    /// SIGTERM its group, then SIGKILL.
    Kill,
    /// Stop the resume; touch nothing.
    Abort,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManualReply {
    Done,
    Skipped,
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Reply(Reply),
    Manual(ManualReply, Option<String>),
    Input(Value),
    Process(ProcessReply),
}

impl Answer {
    /// The answer as journaled.
    pub fn text(&self) -> String {
        match self {
            Answer::Reply(r) => match r {
                Reply::Yes => "yes",
                Reply::No => "no",
                Reply::Skip => "skip",
                Reply::Abort => "abort",
            }
            .to_string(),
            Answer::Manual(m, _) => match m {
                ManualReply::Done => "done",
                ManualReply::Skipped => "skipped",
                ManualReply::Failed => "failed",
            }
            .to_string(),
            Answer::Process(p) => match p {
                ProcessReply::Wait => "wait",
                ProcessReply::Kill => "kill",
                ProcessReply::Abort => "abort",
            }
            .to_string(),
            Answer::Input(v) => match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        }
    }
}

/// Asks a human. Implemented by the terminal (dialoguer) and by tests.
pub trait Prompter: Send {
    fn ask(&mut self, req: &GateRequest) -> io::Result<Answer>;
    /// Asks for the incident reason at the start of a run.
    fn reason(&mut self, runbook_title: &str) -> io::Result<String>;
}

/// The decision for one gate.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Answered {
        answer: Answer,
        via: AnswerVia,
    },
    /// No answer is available: the run stops here. `hint` names the flag to pass.
    NeedsAnswer {
        hint: String,
    },
    /// A scripted answer does not fit the gate.
    Invalid(String),
}

/// Where answers come from, in order: scripted (`--answer` or a drill), `--yes`, the prompt.
pub struct Gatekeeper {
    scripted: HashMap<String, String>,
    scripted_via: AnswerVia,
    yes: bool,
    prompter: Option<Box<dyn Prompter>>,
}

impl Gatekeeper {
    pub fn new(
        scripted: HashMap<String, String>,
        scripted_via: AnswerVia,
        yes: bool,
        prompter: Option<Box<dyn Prompter>>,
    ) -> Self {
        Gatekeeper {
            scripted,
            scripted_via,
            yes,
            prompter,
        }
    }

    pub fn is_interactive(&self) -> bool {
        self.prompter.is_some()
    }

    pub fn prompter(&mut self) -> Option<&mut Box<dyn Prompter>> {
        self.prompter.as_mut()
    }

    /// Decides one gate.
    pub fn decide(&mut self, req: &GateRequest) -> io::Result<Decision> {
        if let Some(raw) = self.scripted.get(&req.step) {
            return Ok(match parse_answer(&req.kind, raw) {
                Ok(answer) => Decision::Answered {
                    answer,
                    via: self.scripted_via,
                },
                Err(e) => Decision::Invalid(format!("--answer {}={raw}: {e}", req.step)),
            });
        }
        // A confirmation's own class is read-only: `--yes` answers it even when it guards a
        // terminal step, which then still asks for its own explicit answer.
        if self.yes && matches!(req.kind, GateKind::Confirm) && req.safety <= Safety::Reversible {
            return Ok(Decision::Answered {
                answer: Answer::Reply(Reply::Yes),
                via: AnswerVia::YesFlag,
            });
        }
        if let Some(p) = self.prompter.as_mut() {
            let answer = p.ask(req)?;
            return Ok(Decision::Answered {
                answer,
                via: AnswerVia::Prompt,
            });
        }
        Ok(Decision::NeedsAnswer { hint: hint(req) })
    }
}

/// The flag that would answer this gate, for the needs-answer message.
pub fn hint(req: &GateRequest) -> String {
    let id = &req.step;
    match &req.kind {
        GateKind::Confirm if req.safety <= Safety::Reversible => format!(
            "--answer {id}=yes (or --yes for all confirmations up to reversible){}",
            others(req)
        ),
        GateKind::Confirm | GateKind::Terminal => format!(
            "--answer {id}=yes (terminal: --yes is not enough; it needs its own answer){}",
            others(req)
        ),
        GateKind::Manual => format!("--answer {id}=done (or skipped / failed; add a note as done:<note>)"),
        GateKind::Input(spec) => format!(
            "--answer {id}=<{}>",
            format!("{:?}", spec.kind).to_lowercase()
        ),
        GateKind::Resume => format!(
            "--answer {id}=yes to run it again, --answer {id}=skip if it completed, --answer {id}=failed if it ran and failed, --answer {id}=abort to stop"
        ),
        GateKind::Process => format!(
            "--answer {id}=wait to wait until it ends, --answer {id}=kill to kill its process group, --answer {id}=abort to stop"
        ),
        GateKind::Inconclusive => format!(
            "--answer {id}=yes to count it as passed (anything else fails it)"
        ),
    }
}

/// What a confirmation guards and what the other answers do, for the hint (the prompt shows
/// the full meanings, `GateRequest::meanings`).
fn others(req: &GateRequest) -> String {
    let ids: Vec<String> = req
        .guarded
        .iter()
        .map(|g| format!("`{}`", g.step))
        .collect();
    if ids.is_empty() {
        return "; it guards no change".into();
    }
    format!(
        "; it guards {}: =skip goes on without {}, =no stops here, =abort stops and undoes what the run changed",
        ids.join(", "),
        if ids.len() == 1 { "it" } else { "them" }
    )
}

/// Parses a scripted answer for a gate.
pub fn parse_answer(kind: &GateKind, raw: &str) -> Result<Answer, String> {
    let lower = raw.trim().to_ascii_lowercase();
    match kind {
        // On resume: it ran and failed (record it failed, do not run it again).
        GateKind::Resume if matches!(lower.as_str(), "failed" | "fail") => {
            Ok(Answer::Manual(ManualReply::Failed, None))
        }
        GateKind::Confirm | GateKind::Terminal | GateKind::Resume | GateKind::Inconclusive => {
            match lower.as_str() {
                "yes" | "y" | "true" => Ok(Answer::Reply(Reply::Yes)),
                "no" | "n" | "false" => Ok(Answer::Reply(Reply::No)),
                "skip" => Ok(Answer::Reply(Reply::Skip)),
                "abort" => Ok(Answer::Reply(Reply::Abort)),
                _ => Err("expected yes, no, skip or abort".into()),
            }
        }
        GateKind::Manual => {
            let (word, note) = match raw.split_once(':') {
                Some((w, n)) => (
                    w.trim().to_ascii_lowercase(),
                    Some(n.trim().to_string()).filter(|n| !n.is_empty()),
                ),
                None => (lower.clone(), None),
            };
            let reply = match word.as_str() {
                "done" | "yes" | "true" | "y" => ManualReply::Done,
                "skipped" | "skip" => ManualReply::Skipped,
                "failed" | "fail" | "no" | "false" => ManualReply::Failed,
                _ => {
                    return Err(
                        "expected done, skipped or failed (optionally `done:<note>`)".into(),
                    )
                }
            };
            Ok(Answer::Manual(reply, note))
        }
        GateKind::Input(spec) => crate::inputs::coerce("value", spec, raw).map(Answer::Input),
        GateKind::Process => match lower.as_str() {
            "wait" => Ok(Answer::Process(ProcessReply::Wait)),
            "kill" => Ok(Answer::Process(ProcessReply::Kill)),
            "abort" => Ok(Answer::Process(ProcessReply::Abort)),
            _ => Err("expected wait, kill or abort".into()),
        },
    }
}

/// Every gate id of a runbook (including called runbooks' and manual undos), with its kind.
pub fn gate_ids(rb: &Runbook, prefix: &str, out: &mut Vec<(String, GateKind)>) {
    for s in rb.steps.iter().chain(&rb.on_failure) {
        let id = format!("{prefix}{}", s.id);
        let kind = match &s.action.kind {
            ActionKind::Confirm(_) => Some(GateKind::Confirm),
            ActionKind::Manual(_) => Some(GateKind::Manual),
            ActionKind::Input(ia) => Some(GateKind::Input(Box::new(
                crate::inputs::input_action_spec(ia),
            ))),
            ActionKind::Call(child) => {
                gate_ids(child, &format!("{id}/"), out);
                None
            }
            _ => None,
        };
        // Any step may be a terminal or a resume gate.
        out.push((id.clone(), kind.unwrap_or(GateKind::Resume)));
        // A resume asks about a step's process group that outlived an interruption.
        out.push((format!("{id}.process"), GateKind::Process));
        if let Some(u) = &s.undo {
            if matches!(u.action.kind, ActionKind::Manual(_)) {
                out.push((format!("{id}.undo"), GateKind::Manual));
            } else {
                // A terminal undo's gate, or the resume gate of an undo that did not finish.
                out.push((format!("{id}.undo"), GateKind::Resume));
                out.push((format!("{id}.undo.process"), GateKind::Process));
            }
        }
    }
}

/// Parses and checks `--answer ID=VALUE` flags against the runbook's gates.
pub fn parse_answers(rb: &Runbook, raw: &[String]) -> Result<HashMap<String, String>, Vec<String>> {
    let mut ids = vec![];
    gate_ids(rb, "", &mut ids);
    let mut out = HashMap::new();
    let mut errors = vec![];
    for a in raw {
        let Some((id, value)) = a.split_once('=') else {
            errors.push(format!("`--answer {a}` is not of the form ID=VALUE"));
            continue;
        };
        let id = id.trim();
        match ids.iter().find(|(i, _)| i == id) {
            None => {
                let hint = crate::diag::did_you_mean(id, ids.iter().map(|(i, _)| i.as_str()))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                errors.push(format!(
                    "`--answer {a}`: the runbook has no step `{id}`{hint}"
                ));
            }
            Some((_, kind)) => {
                if let Err(e) = parse_answer(kind, value) {
                    errors.push(format!("`--answer {a}`: {e}"));
                } else {
                    out.insert(id.to_string(), value.to_string());
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(kind: GateKind, safety: Safety) -> GateRequest {
        GateRequest {
            step: "s".into(),
            title: "S".into(),
            kind,
            prompt: "ok?".into(),
            safety,
            action: "x".into(),
            guarded: vec![],
        }
    }

    #[test]
    fn yes_flag_does_not_answer_terminal_gates() {
        let mut g = Gatekeeper::new(HashMap::new(), AnswerVia::AnswerFlag, true, None);
        assert!(matches!(
            g.decide(&req(GateKind::Confirm, Safety::Reversible))
                .unwrap(),
            Decision::Answered {
                via: AnswerVia::YesFlag,
                ..
            }
        ));
        assert!(matches!(
            g.decide(&req(GateKind::Terminal, Safety::Terminal))
                .unwrap(),
            Decision::NeedsAnswer { .. }
        ));
        assert!(matches!(
            g.decide(&req(GateKind::Confirm, Safety::Terminal)).unwrap(),
            Decision::NeedsAnswer { .. }
        ));
        assert!(matches!(
            g.decide(&req(GateKind::Manual, Safety::ReadOnly)).unwrap(),
            Decision::NeedsAnswer { .. }
        ));
    }

    #[test]
    fn manual_answers_carry_notes() {
        assert_eq!(
            parse_answer(&GateKind::Manual, "done: told #ops").unwrap(),
            Answer::Manual(ManualReply::Done, Some("told #ops".into()))
        );
        assert!(parse_answer(&GateKind::Confirm, "maybe").is_err());
    }
}

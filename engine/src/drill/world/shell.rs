//! Scripted commands: the first rule whose argv or script pattern and `when` hold gives the
//! exit code and output, shaped like a real process's result. No rule is a loud error.

use std::time::Duration;

use serde_json::{json, Value};

use super::pattern::{argv_matches, glob, pick, Counted};
use super::predicate::holds;
use super::{unscripted, Call, Reply, State};
use crate::backends::{ActionError, ErrorKind, ShellRequest};
use crate::drill::spec::{EffectSpec, WorldStateSpec};
use crate::exec::actions::shell_quote;
use crate::model::fmt_duration;

#[derive(Debug, Clone)]
pub struct ShellResponse {
    pub exit: i32,
    pub stdout: String,
    pub stderr: String,
    pub times: Option<u32>,
    pub takes: Duration,
}

impl Counted for ShellResponse {
    fn times(&self) -> Option<u32> {
        self.times
    }
}

#[derive(Debug, Clone)]
pub struct ShellRule {
    pub argv: Option<Vec<String>>,
    pub script: Option<String>,
    pub when: Option<WorldStateSpec>,
    pub responses: Vec<ShellResponse>,
    pub effect: Option<EffectSpec>,
    pub used: u32,
}

impl ShellRule {
    fn matches(&self, req: &ShellRequest) -> bool {
        if req.is_script {
            let script = req.argv.get(2).map(String::as_str).unwrap_or_default();
            self.script.as_ref().is_some_and(|p| glob(p, script))
        } else {
            self.argv
                .as_ref()
                .is_some_and(|p| argv_matches(p, &req.argv))
        }
    }
}

/// `git revert HEAD`, or `sh -c '<first line> …'` for scripts.
pub fn describe(req: &ShellRequest) -> String {
    if req.is_script {
        let script = req.argv.get(2).map(String::as_str).unwrap_or_default();
        let mut lines = script.trim().lines();
        let first = lines.next().unwrap_or_default();
        let more = if lines.next().is_some() { " …" } else { "" };
        format!("sh -c '{first}{more}'")
    } else {
        req.argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Answers a command from the script.
pub fn run(st: &mut State, req: &ShellRequest, c: &Call) -> Reply {
    let chosen = st.shell.iter().position(|r| {
        r.matches(req)
            && r.when.as_ref().is_none_or(|w| holds(st, w, c.now))
            && pick(&r.responses, r.used).is_some()
    });
    let Some(i) = chosen else {
        let field = if req.is_script { "script" } else { "argv" };
        return Reply::err(unscripted(
            c.what,
            format!("no `world.shell` rule applies to this command; add one with `match: {{ {field}: ... }}` to the drill"),
        ));
    };
    let rule = &mut st.shell[i];
    let resp = pick(&rule.responses, rule.used)
        .expect("chosen above")
        .clone();
    rule.used += 1;
    if let Some(effect) = rule.effect.clone() {
        st.schedule(&effect, c.now);
    }
    let program = req.argv.first().map(String::as_str).unwrap_or_default();
    // Past the attempt's deadline the real backend kills the process group: the same error,
    // with what the process printed so far (nothing: a scripted answer comes whole).
    if let Some(rem) = c.ctx.remaining().filter(|rem| *rem < resp.takes) {
        let result = json!({
            "exit_code": null,
            "stdout": "",
            "stderr": "",
            "duration_ms": rem.as_millis() as u64,
        });
        let msg = format!(
            "`{program}` timed out after {}; its process group was killed",
            fmt_duration(rem)
        );
        return Reply::Answer(
            Err(ActionError::new(ErrorKind::Timeout, msg).with_result(result)),
            rem,
        );
    }
    let mut result = json!({
        "exit_code": resp.exit,
        "stdout": resp.stdout,
        "stderr": resp.stderr,
        "duration_ms": resp.takes.as_millis() as u64,
    });
    if let Ok(j) = serde_json::from_str::<Value>(resp.stdout.trim()) {
        result["json"] = j;
    }
    let allowed = if req.expect_exit.is_empty() {
        &[0][..]
    } else {
        &req.expect_exit[..]
    };
    if allowed.contains(&resp.exit) {
        return Reply::Answer(Ok(result), resp.takes);
    }
    let last = resp.stderr.trim().lines().last().unwrap_or("");
    let msg = if last.is_empty() {
        format!("`{program}` exited with code {}", resp.exit)
    } else {
        format!("`{program}` exited with code {}: {last}", resp.exit)
    };
    Reply::Answer(
        Err(ActionError::new(ErrorKind::Failed, msg).with_result(result)),
        resp.takes,
    )
}

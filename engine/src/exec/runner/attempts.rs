//! Attempts and polling: each attempt executes with its timeout and polls `verify` within
//! the `until` budget; failed attempts are retried with backoff.

use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use crate::backends::{ActionError, CallCtx, ErrorKind, Output};
use crate::exec::actions::{self, Env, RenderedAction};
use crate::exec::clock::{later, millis_between, Clock, Timed};
use crate::exec::context::{bound, observe, steps_read};
use crate::exec::events::{Check, Event};
use crate::exec::verdict::{self, Verdict};
use crate::model::{fmt_duration, Retry, Step};
use crate::spec::OnInconclusive;
use crate::template;

use super::evidence::{checks_verdict, failed_checks_message, first_chars, result_evidence};
use super::{render_text, Frame, Runner};

impl Runner {
    /// Runs the attempts of an action: each attempt executes (and polls `verify` within the
    /// `until` budget); failed attempts are retried with backoff. Returns (ok, attempts,
    /// last result, error).
    pub(super) async fn attempts(
        &mut self,
        step: &Step,
        sid: &str,
        frame: &Frame,
        action: &RenderedAction,
        retry: &Retry,
        timeout: Option<Duration>,
    ) -> (bool, u32, Option<Value>, Option<String>) {
        let rb = frame.rb.clone();
        let mut last: Option<Value> = None;
        let mut error: Option<String> = None;
        let mut attempt = 0;
        // The poll budget and interval of this run (templates over inputs are rendered now).
        let until = match step
            .until
            .as_ref()
            .map(|u| u.resolve(&json!({ "inputs": frame.ctx.inputs, "env": frame.ctx.env })))
        {
            None => None,
            Some(Ok(u)) => Some(u),
            Some(Err(e)) => return (false, 0, None, Some(e)),
        };
        while attempt < retry.attempts {
            attempt += 1;
            self.emit(Event::AttemptStarted {
                step: sid.to_string(),
                attempt,
                of: retry.attempts,
            });
            // The journal may have broken on this step's own events (a full disk): a change to
            // the world that the journal cannot record must not happen.
            if step.is_mutating() {
                if let Some(why) = self.emitter.broken() {
                    return (
                        false,
                        attempt,
                        last,
                        Some(format!("stopped before `{sid}` ran: {why}")),
                    );
                }
            }
            let a0 = self.clock.now();
            let poll_deadline = until.map(|(t, _)| later(a0, t));
            let mut polls = 0;
            let mut fatal = false;
            let mut captured: Vec<(String, Value)> = vec![];
            // The verdict of the last evaluation that did not pass (None: an error).
            let mut last_verdict: Option<Verdict> = None;
            let mut captured_if_passed: Vec<(String, Value)> = vec![];
            // Captures derived from a secret, with the value they show instead.
            let mut tainted: IndexMap<String, Value> = IndexMap::new();
            let (spawned_tx, mut spawned_rx) = tokio::sync::mpsc::unbounded_channel();
            // The attempt was stopped by a signal (not failed on its own).
            let mut interrupted = false;
            let ok = loop {
                polls += 1;
                let p0 = self.clock.now();
                let deadline = timeout.map(|t| later(p0, t));
                // The backends' redactor (a copy: the journal is written while they run).
                let redactor = self.emitter.redactor().clone();
                let cctx = CallCtx {
                    step: sid.to_string(),
                    attempt,
                    deadline,
                    clock: self.clock.clone(),
                    cancel: self.cancel.clone(),
                    progress: self.progress.clone(),
                    run_dir: self.run_dir.clone(),
                    base_dir: rb.dir(),
                    spawned: Some(spawned_tx.clone()),
                };
                let env = Env {
                    rb: &rb,
                    backends_real: &frame.backends_real,
                    backends: &self.backends,
                    input_env: frame.ctx.input_env(),
                    step_timeout: timeout,
                    redactor: &redactor,
                };
                let has_verify = !step.spec.verify.is_empty();
                let res = {
                    let fut = with_timeout(
                        self.clock.as_ref(),
                        timeout,
                        actions::execute(
                            action,
                            step.action.backend.as_deref(),
                            &env,
                            &cctx,
                            has_verify,
                        ),
                    );
                    tokio::pin!(fut);
                    // Every process group the action starts is journaled as it starts, so that
                    // `resume` can tell whether it outlived an interruption.
                    loop {
                        tokio::select! {
                            biased;
                            Some(sp) = spawned_rx.recv() => {
                                let _ = self.emitter.emit(process_started(sid, attempt, sp));
                            }
                            r = &mut fut => break r,
                        }
                    }
                };
                while let Ok(sp) = spawned_rx.try_recv() {
                    let _ = self.emitter.emit(process_started(sid, attempt, sp));
                }
                let poll_ok = match res {
                    Err(e) => {
                        if let Some(diff) = e.world_diff.clone() {
                            self.emit(Event::WorldChanged {
                                step: sid.to_string(),
                                diff,
                            });
                        }
                        last = e.result.clone().or(last.take());
                        error = Some(e.message.clone());
                        last_verdict = None;
                        if e.kind == ErrorKind::Cancelled || self.cancel.is_cancelled() {
                            interrupted = e.kind == ErrorKind::Cancelled;
                            fatal = true;
                            break false;
                        }
                        if !e.retryable() {
                            fatal = true;
                            break false;
                        }
                        // While polling, an unreachable target is "not yet"; otherwise the attempt failed.
                        if poll_deadline.is_none() {
                            break false;
                        }
                        false
                    }
                    Ok(Output { result, world_diff }) => {
                        if let Some(diff) = world_diff {
                            self.emit(Event::WorldChanged {
                                step: sid.to_string(),
                                diff,
                            });
                        }
                        if step.spec.capture.is_empty() && step.spec.verify.is_empty() {
                            // Nothing reads the result here: no context to build.
                            last = Some(result);
                            error = None;
                            break true;
                        }
                        // Only the steps that captures and verifications read (and this one).
                        let mut only = steps_read(
                            step.spec
                                .capture
                                .values()
                                .map(String::as_str)
                                .chain(step.spec.verify.iter().map(|c| c.that.as_str())),
                            step.spec.verify.iter().filter_map(|c| c.message.as_deref()),
                        );
                        if let Some(ids) = only.as_mut() {
                            ids.insert(step.id.clone());
                        }
                        let mut with_caps = frame.ctx.real_reading(Some(&result), only.as_ref());
                        // The same context without secrets (masked, and masked in the result):
                        // a capture whose value differs there is derived from a secret.
                        let without_secrets = (!step.spec.capture.is_empty()).then(|| {
                            self.emitter
                                .redactor()
                                .value(&frame.ctx.display_reading(Some(&result), only.as_ref()))
                        });
                        last = Some(result);
                        // Captures must evaluate; verify reads them as `steps.<self>.<name>` too.
                        let mut cap_err = None;
                        let mut caps = Vec::new();
                        tainted.clear();
                        for (name, expr) in &step.spec.capture {
                            // Computing with a value that is not there: no data, not `none`.
                            if let Some(u) = template::unusable_operand(expr, &with_caps) {
                                cap_err = Some((
                                    format!("capture `{name}` = `{expr}`: {}", u.describe()),
                                    true,
                                ));
                                continue;
                            }
                            match template::eval(expr, &with_caps) {
                                // `rate: result.value` of a Prometheus answer that is NaN or
                                // has no series: no data, never a `null` that a later
                                // comparison would silently accept.
                                Ok(Value::Null)
                                    if expr.contains("result.value")
                                        && !verdict::tests_presence(expr)
                                        && last
                                            .as_ref()
                                            .and_then(crate::backends::prometheus::why_no_value)
                                            .is_some() =>
                                {
                                    cap_err = Some((
                                        format!("capture `{name}` = `{expr}`: no value"),
                                        true,
                                    ))
                                }
                                Ok(v) => {
                                    let shown = without_secrets
                                        .as_ref()
                                        .and_then(|c| template::eval(expr, c).ok());
                                    if shown.as_ref() != Some(&v) {
                                        tainted.insert(
                                            name.clone(),
                                            shown.unwrap_or_else(|| {
                                                json!(crate::exec::redact::MASK)
                                            }),
                                        );
                                    }
                                    caps.push((name, v))
                                }
                                Err(e) => {
                                    let undefined = e.contains("undefined");
                                    cap_err = Some((
                                        format!(
                                            "capture `{name}` = `{expr}`: {e}{}",
                                            last.as_ref()
                                                .and_then(|r| result_evidence(&step.action.kind, r))
                                                .map(|w| format!(" — {w}"))
                                                .unwrap_or_default()
                                        ),
                                        undefined,
                                    ))
                                }
                            }
                        }
                        for (name, v) in caps {
                            with_caps["steps"][&step.id][name] = v;
                        }
                        if let Some((e, undefined)) = cap_err {
                            // A capture that reads a value that is not there (no series, a
                            // missing field) has no data: inconclusive, not a crash.
                            if undefined {
                                let why = last
                                    .as_ref()
                                    .and_then(crate::backends::prometheus::why_no_value);
                                let reason = match why {
                                    Some(w) => format!("{w}, read by {e}"),
                                    None => format!("no data: {e}"),
                                };
                                // Journaled like any evaluation: its verdict and why.
                                self.emit(Event::VerifyEvaluated {
                                    step: sid.to_string(),
                                    attempt,
                                    poll: polls,
                                    ok: false,
                                    verdict: Some(Verdict::Inconclusive),
                                    polling: step.until.is_some(),
                                    checks: vec![Check {
                                        that: e.split(": ").next().unwrap_or(&e).to_string(),
                                        ok: false,
                                        message: None,
                                        observed: Map::new(),
                                        error: None,
                                        verdict: Some(Verdict::Inconclusive),
                                        reason: Some(reason.clone()),
                                    }],
                                });
                                error = Some(format!("verify inconclusive: {reason}"));
                                last_verdict = Some(Verdict::Inconclusive);
                            } else {
                                error = Some(e);
                                last_verdict = None;
                            }
                            if poll_deadline.is_none() {
                                break false;
                            }
                            false
                        } else if step.spec.verify.is_empty() {
                            error = None;
                            captured = captures_of(step, &with_caps);
                            break true;
                        } else {
                            let shown = last.as_ref().map(|r| self.emitter.redactor().value(r));
                            let mut ctx_display =
                                frame.ctx.display_reading(shown.as_ref(), only.as_ref());
                            // The step's own captures are shown as observed values too (the
                            // measured rate, not only the threshold it is compared with).
                            for name in step.spec.capture.keys() {
                                let v = &with_caps["steps"][&step.id][name];
                                ctx_display["steps"][&step.id][name] =
                                    self.emitter.redactor().value(v);
                            }
                            let checks = evaluate(
                                &step.spec.verify,
                                &with_caps,
                                &ctx_display,
                                Some(&step.id),
                            );
                            let all = checks.iter().all(|c| c.ok);
                            let v = checks_verdict(&checks);
                            self.emit(Event::VerifyEvaluated {
                                step: sid.to_string(),
                                attempt,
                                poll: polls,
                                ok: all,
                                verdict: Some(v),
                                polling: step.until.is_some(),
                                checks: checks.clone(),
                            });
                            if all {
                                error = None;
                                captured = captures_of(step, &with_caps);
                                break true;
                            }
                            last_verdict = Some(v);
                            if v == Verdict::Inconclusive {
                                captured_if_passed = captures_of(step, &with_caps);
                            }
                            let mut msg = failed_checks_message(&checks);
                            // A check that could not be evaluated (a value absent from the
                            // result) is explained by what the backend answered.
                            if checks.iter().any(|c| !c.ok && c.error.is_some()) {
                                if let Some(w) = last
                                    .as_ref()
                                    .and_then(|r| result_evidence(&step.action.kind, r))
                                {
                                    msg.push_str(&format!(" — {w}"));
                                }
                            }
                            error = Some(msg);
                            false
                        }
                    }
                };
                if poll_ok {
                    break true;
                }
                // Poll again if the budget allows.
                match (until, poll_deadline) {
                    (Some((u_timeout, u_interval)), Some(pd)) => {
                        let next = later(self.clock.now(), u_interval);
                        if next > pd {
                            let e = error.take().unwrap_or_else(|| "verify did not hold".into());
                            let still = if last_verdict == Some(Verdict::Inconclusive) {
                                "still no data"
                            } else {
                                "still failing"
                            };
                            error = Some(format!(
                                "{e} — {still} after {} of polling ({polls} polls)",
                                fmt_duration(u_timeout)
                            ));
                            break false;
                        }
                        let why = error
                            .as_deref()
                            .map(|e| format!(": {}", first_chars(e, 240)))
                            .unwrap_or_default();
                        self.progress.status(&format!(
                            "poll {polls}: not yet{why}; next in {}",
                            fmt_duration(u_interval)
                        ));
                        if !self.sleep(u_interval).await {
                            interrupted = true;
                            fatal = true;
                            break false;
                        }
                    }
                    _ => break false,
                }
            };
            // No data at the end of the budget: what the author chose it to mean.
            let mut ok = ok;
            if !ok && !fatal && last_verdict == Some(Verdict::Inconclusive) {
                match step.spec.on_inconclusive.unwrap_or_default() {
                    OnInconclusive::Fail => {}
                    OnInconclusive::Pass => {
                        self.progress.status(&format!(
                            "`{sid}`: no data, counted as passed (on_inconclusive: pass)"
                        ));
                        ok = true;
                        error = None;
                        captured = std::mem::take(&mut captured_if_passed);
                    }
                    OnInconclusive::Ask => {
                        let why = error.clone().unwrap_or_default();
                        match self.ask_inconclusive(step, sid, &why) {
                            Some(true) => {
                                ok = true;
                                error = None;
                                captured = std::mem::take(&mut captured_if_passed);
                            }
                            Some(false) => {
                                error = Some(format!("{why} (the operator did not accept it)"));
                                fatal = true;
                            }
                            None => fatal = true,
                        }
                    }
                }
            }
            let duration_ms = millis_between(a0, self.clock.now());
            let shown = last
                .as_ref()
                .map(|r| self.emitter.redactor().value(&bound(r)))
                .unwrap_or(Value::Null);
            // A successful attempt and its captures are one journal write: a journaled success
            // then always comes with its captures, and `resume` can complete the step from the
            // journal alone instead of running it again.
            // A capture derived from a secret is a secret: masked from now on, and journaled as
            // it shows without the secret (its value may be too short to mask).
            for (name, value) in &captured {
                if tainted.contains_key(name) {
                    self.add_secret(value);
                    self.tainted_now.push((step.id.clone(), name.clone()));
                }
            }
            let mut batch: Vec<Event> = captured
                .into_iter()
                .map(|(name, value)| {
                    let value = tainted.get(&name).cloned().unwrap_or(value);
                    Event::Capture {
                        step: sid.to_string(),
                        name,
                        value: bound(&value),
                    }
                })
                .collect();
            batch.push(Event::AttemptFinished {
                step: sid.to_string(),
                attempt,
                ok,
                error: error.clone(),
                duration_ms,
                polls,
                result: shown,
                interrupted: !ok && interrupted,
            });
            let _ = self.emitter.emit_all(batch);
            if ok {
                return (true, attempt, last, None);
            }
            if fatal || attempt >= retry.attempts {
                break;
            }
            let delay = retry.delay_after(attempt);
            self.progress.status(&format!(
                "attempt {attempt} of {} failed; retrying in {}",
                retry.attempts,
                fmt_duration(delay)
            ));
            if !self.sleep(delay).await {
                break;
            }
        }
        (false, attempt, last, error)
    }

    /// Sleeps on the run's clock; false when interrupted.
    pub(super) async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.clock.sleep(d) => true,
            _ = self.cancel.cancelled() => false,
        }
    }
}

/// Runs a future with the attempt's timeout, on the run's clock. Backends enforce the
/// deadline themselves (and kill what they started); the clock's limit is the safety net for
/// one that does not, `KILL_GRACE` (and a second) later. Work that ended late (on a virtual
/// clock, the simulated backends account their own time) succeeded too late: a timeout.
pub(super) async fn with_timeout<F>(
    clock: &dyn Clock,
    timeout: Option<Duration>,
    fut: F,
) -> Result<Output, ActionError>
where
    F: std::future::Future<Output = Result<Output, ActionError>> + Send,
{
    let Some(t) = timeout else { return fut.await };
    let grace = crate::backends::shell::KILL_GRACE + Duration::from_secs(1);
    let timed_out = || {
        ActionError::new(
            ErrorKind::Timeout,
            format!("timed out after {}", fmt_duration(t)),
        )
    };
    match crate::exec::clock::timeout(clock, t, grace, fut).await {
        Timed::InTime(r) | Timed::Late(r @ Err(_)) => r,
        Timed::Late(Ok(_)) | Timed::CutOff => Err(timed_out()),
    }
}

/// The journal event for a process group a step's attempt started.
pub(super) fn process_started(step: &str, attempt: u32, sp: crate::backends::Spawn) -> Event {
    Event::ProcessStarted {
        step: step.to_string(),
        attempt,
        pgid: sp.pgid,
        host: crate::backends::shell::host_name(),
        boot_id: crate::backends::shell::boot_id(),
        start_ticks: sp.start_ticks,
    }
}

/// The captured values of a successful poll, in the order the step declares them.
pub(super) fn captures_of(step: &Step, with_caps: &Value) -> Vec<(String, Value)> {
    step.spec
        .capture
        .keys()
        .map(|name| (name.clone(), with_caps["steps"][&step.id][name].clone()))
        .collect()
}

/// Evaluates conditions; observed values come from the display context (secrets masked).
pub(super) fn evaluate(
    conds: &[crate::spec::ConditionSpec],
    real: &Value,
    display: &Value,
    own: Option<&str>,
) -> Vec<Check> {
    conds
        .iter()
        .map(|c| {
            let ev = verdict::evaluate(&c.that, real, own);
            Check {
                that: c.that.clone(),
                ok: ev.verdict == Verdict::Pass,
                message: c.message.as_ref().map(|m| render_text(m, display)),
                observed: observe(&c.that, display),
                error: ev.error,
                verdict: Some(ev.verdict),
                reason: ev.reason,
            }
        })
        .collect()
}

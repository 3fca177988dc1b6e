//! Canary analysis steps: metric checks at an interval, failing after `failed_checks`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::backends::CallCtx;
use crate::exec::actions::{self, Env};
use crate::exec::clock::millis_between;
use crate::exec::context::bound;
use crate::exec::events::{Event, Phase, StepOutcome};
use crate::exec::verdict::{self, Verdict};
use crate::model::Step;
use crate::spec::OnInconclusive;
use crate::template::namespace::StepField;

use super::evidence::readings_text;
use super::{Frame, Runner, StepEnd};

impl Runner {
    /// A canary analysis: `checks` checks, one every `interval`, each reading every metric
    /// once; the step fails when `failed_checks` checks have failed, and passes after `checks`.
    /// Each check is journaled with every metric's query as sent, value and verdict.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_analysis(
        &mut self,
        step: &Step,
        sid: &str,
        phase: Phase,
        frame: &mut Frame,
        a: &crate::spec::AnalysisAction,
        interval: Duration,
        started: DateTime<Utc>,
    ) -> StepEnd {
        let on_inc = a.on_inconclusive.unwrap_or_default();
        let rb = frame.rb.clone();
        self.emit(Event::AttemptStarted {
            step: sid.to_string(),
            attempt: 1,
            of: 1,
        });
        let mut failed = 0u32;
        let mut history: Vec<Value> = vec![];
        let mut outcome: Result<(), String> = Ok(());
        for check in 1..=a.checks {
            if check > 1 && !self.sleep(interval).await {
                outcome = Err("interrupted".into());
                break;
            }
            let cctx = CallCtx {
                step: sid.to_string(),
                attempt: check,
                deadline: step
                    .timeout
                    .map(|t| self.clock.now() + chrono::Duration::from_std(t).unwrap_or_default()),
                clock: self.clock.clone(),
                cancel: self.cancel.clone(),
                progress: self.progress.clone(),
                run_dir: self.run_dir.clone(),
                base_dir: rb.dir(),
                spawned: None,
            };
            let env = Env {
                rb: &rb,
                backends_real: &frame.backends_real,
                backends: &self.backends,
                input_env: vec![],
                step_timeout: step.timeout,
                redactor: self.emitter.redactor(),
            };
            let target = match actions::prom_target(step.action.backend.as_deref(), &env, &cctx) {
                Ok(t) => t,
                Err(e) => {
                    outcome = Err(e.message);
                    break;
                }
            };
            let mut readings = vec![];
            for m in &a.metrics {
                let q = crate::backends::prometheus::PromQuery {
                    query: m.query.clone(),
                    range: None,
                    name: Some(m.name.clone()),
                };
                let (value, text) = match self.backends.prometheus.query(&target, &q, &cctx).await {
                    Ok(ans) => match ans.series.len() {
                        0 => (None, Some("no data".to_string())),
                        1 => {
                            let v = ans.series[0].last();
                            let t = v
                                .filter(|x| !x.is_finite())
                                .map(crate::backends::prometheus::value_text);
                            (v, t)
                        }
                        n => (None, Some(format!("{n} series where one was expected"))),
                    },
                    Err(e) => (None, Some(format!("query failed: {}", e.message))),
                };
                let verdict = verdict::within(value, m.min, m.max);
                readings.push(crate::exec::events::MetricReading {
                    name: m.name.clone(),
                    query: m.query.clone(),
                    value: value.filter(|v| v.is_finite()),
                    text,
                    min: m.min,
                    max: m.max,
                    verdict,
                });
            }
            let v = Verdict::all(readings.iter().map(|r| r.verdict));
            let counts = match v {
                Verdict::Pass => false,
                Verdict::Fail => true,
                Verdict::Inconclusive => match on_inc {
                    OnInconclusive::Fail => true,
                    OnInconclusive::Pass => false,
                    OnInconclusive::Ask => {
                        let why = format!("check {check}: {}", readings_text(&readings));
                        match self.ask_inconclusive(step, sid, &why) {
                            Some(yes) => !yes,
                            None => {
                                let hint = self.needs_answer.take().unwrap_or_default();
                                self.emit(Event::AnalysisCheck {
                                    step: sid.to_string(),
                                    check,
                                    verdict: v,
                                    metrics: readings,
                                    failed,
                                });
                                self.step_done(
                                    sid,
                                    phase,
                                    started,
                                    1,
                                    StepOutcome::NeedsAnswer,
                                    None,
                                    Some(format!("needs an answer: {hint}")),
                                );
                                return StepEnd::NeedsAnswer(hint);
                            }
                        }
                    }
                },
            };
            if counts {
                failed += 1;
            }
            let text = readings_text(&readings);
            history.push(json!({ "check": check, "verdict": v.as_str(), "metrics": readings }));
            self.emit(Event::AnalysisCheck {
                step: sid.to_string(),
                check,
                verdict: v,
                metrics: readings,
                failed,
            });
            self.progress.status(&format!(
                "check {check} of {}: {} ({text}); {failed} failed of {} allowed",
                a.checks,
                v.as_str(),
                a.failed_checks
            ));
            if failed >= a.failed_checks {
                let no_data = if v == Verdict::Inconclusive {
                    " (no data)"
                } else {
                    ""
                };
                outcome = Err(format!(
                    "analysis failed: {failed} failed checks of {check} (limit {}); last check{no_data}: {text}",
                    a.failed_checks
                ));
                break;
            }
        }
        let result = json!({ "checks": history.len(), "failed": failed, "history": history });
        let ok = outcome.is_ok();
        self.emit(Event::AttemptFinished {
            step: sid.to_string(),
            attempt: 1,
            ok,
            error: outcome.as_ref().err().cloned(),
            duration_ms: millis_between(started, self.clock.now()),
            polls: history.len() as u32,
            result: bound(&result),
            interrupted: !ok && self.cancel.is_cancelled(),
        });
        frame
            .ctx
            .set_step_field(&step.id, StepField::Result, bound(&result));
        frame.ctx.set_step_field(
            &step.id,
            StepField::Outcome,
            json!(if ok { "succeeded" } else { "failed" }),
        );
        if self.cancel.is_cancelled() {
            self.step_done(
                sid,
                phase,
                started,
                1,
                StepOutcome::Aborted,
                None,
                Some("interrupted by a signal (Ctrl-C or SIGTERM)".into()),
            );
            return StepEnd::Interrupted;
        }
        match outcome {
            Ok(()) => {
                self.step_done(sid, phase, started, 1, StepOutcome::Succeeded, None, None);
                StepEnd::Done
            }
            Err(e) => self.step_failed(sid, phase, started, 1, e),
        }
    }
}

//! `call` steps: a called runbook runs in a frame of its own.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use crate::exec::context::RunContext;
use crate::exec::events::{Phase, StepOutcome};
use crate::model::{Runbook, Step};
use crate::template::namespace::StepField;

use super::{render_backends, Frame, Runner, StepEnd};

impl Runner {
    pub(super) async fn run_call(
        &mut self,
        step: &Step,
        sid: &str,
        phase: Phase,
        frame: &mut Frame,
        child: Arc<Runbook>,
        supplied: &IndexMap<String, Value>,
        started: DateTime<Utc>,
    ) -> StepEnd {
        let mut inputs = IndexMap::new();
        for (name, spec) in &child.spec.inputs {
            let v = match supplied.get(name).or(spec.default.as_ref()) {
                Some(v) => v.clone(),
                None => {
                    return self.step_failed(
                        sid,
                        phase,
                        started,
                        0,
                        format!("call: input `{name}` of `{}` has no value", child.name()),
                    )
                }
            };
            let v = match (&v, spec.kind) {
                (Value::String(s), k) if k != crate::spec::InputType::String => {
                    match crate::inputs::coerce(name, spec, s) {
                        Ok(v) => v,
                        Err(e) => {
                            return self.step_failed(sid, phase, started, 0, format!("call: {e}"))
                        }
                    }
                }
                _ => v,
            };
            if let Err(e) = crate::inputs::validate_value(name, spec, &v) {
                return self.step_failed(sid, phase, started, 0, format!("call: {e}"));
            }
            inputs.insert(name.clone(), v);
        }
        let secrets = match self.host_env.secrets(&child) {
            Ok(s) => s,
            Err(e) => return self.step_failed(sid, phase, started, 0, format!("call: {e}")),
        };
        for v in secrets.values() {
            self.add_secret(&Value::String(v.clone()));
        }
        let ctx = RunContext {
            inputs,
            secrets,
            env: self.host_env.env(&child),
            run: frame.ctx.run.clone(),
            steps: Map::new(),
            tainted: Default::default(),
        };
        let backends_real = match render_backends(&child, &ctx) {
            Ok(b) => b,
            Err(e) => return self.step_failed(sid, phase, started, 0, format!("call: {e}")),
        };
        let mut child_frame = Frame {
            rb: child.clone(),
            ctx,
            backends_real,
            prefix: format!("{sid}/"),
        };
        let (end, inner) = Box::pin(self.run_steps(&mut child_frame, phase)).await;
        // The caller sees the child's captures as `steps.<call id>.<child step>.<capture>`.
        for (k, v) in child_frame.ctx.steps {
            frame.ctx.set_step_entry(&step.id, &k, v);
        }
        match end {
            StepEnd::Done => {
                frame
                    .ctx
                    .set_step_field(&step.id, StepField::Outcome, json!("succeeded"));
                self.step_done(sid, phase, started, 1, StepOutcome::Succeeded, None, None);
                StepEnd::Done
            }
            StepEnd::Failed(m) => self.step_failed(
                sid,
                phase,
                started,
                1,
                format!(
                    "`{}` failed at `{}`: {m}",
                    child.name(),
                    inner.unwrap_or_default()
                ),
            ),
            other => {
                let outcome = match &other {
                    StepEnd::NeedsAnswer(_) => StepOutcome::NeedsAnswer,
                    _ => StepOutcome::Aborted,
                };
                self.step_done(sid, phase, started, 1, outcome, None, None);
                other
            }
        }
    }
}

//! Injected faults: when each is active (a step and attempt, or a window of virtual time) and
//! what it breaks (calls fail, rollouts never finish, an endpoint keeps failing).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::pattern::glob;
use crate::backends::{ActionError, CallCtx, ErrorKind, HttpRequest};
use crate::drill::spec::{BackendKind, FaultErrorKind};

/// When a fault applies.
#[derive(Debug, Clone, Default)]
pub struct Trigger {
    pub step: Option<String>,
    pub attempt: Option<u32>,
    /// Offsets from the drill's start.
    pub from: Option<std::time::Duration>,
    pub until: Option<std::time::Duration>,
}

impl Trigger {
    /// Does a call by `ctx` (None: the world itself, e.g. a delayed effect) at `now` trigger it?
    fn active(&self, ctx: Option<&CallCtx>, now: DateTime<Utc>, start: &DateTime<Utc>) -> bool {
        self.active_for(ctx.map(|c| (c.step.as_str(), c.attempt)), now, start)
    }

    /// `active` for a call by a step's attempt (None: the world itself).
    fn active_for(
        &self,
        by: Option<(&str, u32)>,
        now: DateTime<Utc>,
        start: &DateTime<Utc>,
    ) -> bool {
        if let Some(step) = &self.step {
            match by {
                Some((s, _)) if s == step => {}
                _ => return false,
            }
            if let (Some(a), Some((_, attempt))) = (self.attempt, by) {
                if attempt != a {
                    return false;
                }
            }
        }
        let offset = (now - *start).to_std().unwrap_or_default();
        if self.from.is_some_and(|f| offset < f) {
            return false;
        }
        self.until.is_none_or(|u| offset < u)
    }
}

#[derive(Debug, Clone)]
pub enum Effect {
    /// The call fails with this error.
    Error {
        kind: FaultErrorKind,
        message: String,
        backend: Option<BackendKind>,
        /// Calls still to fail (None: all while active).
        left: Option<u32>,
    },
    /// Rollouts of this Deployment (`namespace/name`) started while active never finish.
    RolloutStuck(String),
    /// Matching requests get this status or transport error instead of their script.
    HttpFailing {
        method: Option<String>,
        url: String,
        status: u16,
        error: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub trigger: Trigger,
    pub effect: Effect,
}

#[derive(Debug, Clone, Default)]
pub struct Faults(pub Vec<Fault>);

impl Faults {
    /// The error an `error` fault injects into this call, if one is active (and uses it up).
    pub fn error_for(
        &mut self,
        backend: BackendKind,
        ctx: &CallCtx,
        now: DateTime<Utc>,
        start: &DateTime<Utc>,
    ) -> Option<ActionError> {
        for f in &mut self.0 {
            let Effect::Error {
                kind,
                message,
                backend: only,
                left,
            } = &mut f.effect
            else {
                continue;
            };
            if only.is_some_and(|b| b != backend)
                || left == &Some(0)
                || !f.trigger.active(Some(ctx), now, start)
            {
                continue;
            }
            if let Some(n) = left {
                *n -= 1;
            }
            let kind = match kind {
                FaultErrorKind::Transport => ErrorKind::Transport,
                FaultErrorKind::Timeout => ErrorKind::Timeout,
                FaultErrorKind::Failed => ErrorKind::Failed,
            };
            return Some(ActionError::new(
                kind,
                format!("{message} (injected fault)"),
            ));
        }
        None
    }

    /// Does a rollout of `deployment` started now by `ctx` never finish?
    pub fn rollout_stuck(
        &self,
        deployment: &str,
        ctx: Option<&CallCtx>,
        now: DateTime<Utc>,
        start: &DateTime<Utc>,
    ) -> bool {
        self.0.iter().any(|f| {
            matches!(&f.effect, Effect::RolloutStuck(d) if d == deployment)
                && f.trigger.active(ctx, now, start)
        })
    }

    /// `rollout_stuck` for a rollout a step's call started (a resumed training run rebuilding
    /// its world from the journal: the step is known, its attempt is not, so any counts).
    pub fn rollout_stuck_by(
        &self,
        deployment: &str,
        step: &str,
        now: DateTime<Utc>,
        start: &DateTime<Utc>,
    ) -> bool {
        self.0.iter().any(|f| {
            matches!(&f.effect, Effect::RolloutStuck(d) if d == deployment)
                && f.trigger
                    .active_for(Some((step, f.trigger.attempt.unwrap_or(1))), now, start)
        })
    }

    /// The failure an `http_failing` fault puts in place of this request's script.
    pub fn http_failure(
        &self,
        req: &HttpRequest,
        ctx: &CallCtx,
        now: DateTime<Utc>,
        start: &DateTime<Utc>,
    ) -> Option<Result<Value, ActionError>> {
        self.0.iter().find_map(|f| {
            let Effect::HttpFailing {
                method,
                url,
                status,
                error,
            } = &f.effect
            else {
                return None;
            };
            let hit = method.as_ref().is_none_or(|m| m == &req.method)
                && glob(url, &req.url)
                && f.trigger.active(Some(ctx), now, start);
            if !hit {
                return None;
            }
            Some(match error {
                Some(e) => Err(ActionError::new(
                    ErrorKind::Transport,
                    format!("{} {}: {e} (injected fault)", req.method, req.url),
                )),
                None => Ok(json!({
                    "status": status,
                    "headers": {},
                    "body": "",
                    "json": null,
                    "elapsed_ms": 0,
                })),
            })
        })
    }
}

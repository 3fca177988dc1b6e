//! The simulated world a drill runs against: one shared state behind the four backend traits.
//! Every call goes through `World::call`, which applies faults, lands delayed effects, spends
//! virtual (or, in training, real) time, and reports what the call changed as a world diff.

pub mod build;
pub mod compose;
pub mod deployment;
pub mod faults;
pub mod http;
pub mod kube;
pub mod metrics;
pub mod pattern;
pub mod predicate;
pub mod restore;
pub mod run_values;
pub mod shell;
pub mod state;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::backends::prometheus::{
    parse_answer, PromAnswer, PromQuery, PromTarget, PrometheusBackend,
};
use crate::backends::{
    ActionError, Backends, CallCtx, ComposeBackend, ComposeCall, ErrorKind, HttpBackend,
    HttpRequest, KubeCall, KubernetesBackend, Output, ShellBackend, ShellRequest,
};
use crate::model::fmt_duration;
use crate::spec::{ComposeBackendSpec, KubernetesBackendSpec};

use super::spec::BackendKind;
pub use state::State;

/// What a simulated operation says: an answer after some time, or "look again at `t`".
pub enum Reply {
    Answer(Result<Value, ActionError>, Duration),
    /// Not finished (a rollout in progress): ask again at this time. The text says where it
    /// stands, in the real backend's words; past the attempt's deadline the call fails with
    /// "the rollout did not finish within …" as the real one does, carrying the object as
    /// last read (the third field), as the real one does.
    WaitUntil(DateTime<Utc>, String, Option<Value>),
}

impl Reply {
    pub fn ok(v: Value) -> Reply {
        Reply::Answer(Ok(v), Duration::ZERO)
    }

    pub fn err(e: ActionError) -> Reply {
        Reply::Answer(Err(e), Duration::ZERO)
    }
}

/// A call seen by an operation: when it happens and who makes it.
pub struct Call<'a> {
    pub now: DateTime<Utc>,
    pub ctx: &'a CallCtx,
    /// The call as shown in errors, e.g. `kubernetes set_image Deployment prod/flowengine`.
    pub what: &'a str,
}

/// `t + d`, saturating: durations come from drill files, and no input may overflow the clock.
pub fn later(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    crate::exec::clock::later(t, d)
}

/// A call the world has no script for: loud, and not worth retrying.
pub fn unscripted(what: &str, why: impl std::fmt::Display) -> ActionError {
    ActionError::new(ErrorKind::Invalid, format!("drill world: {what}: {why}"))
}

/// The simulated world, shared by the four backends of a run.
#[derive(Clone)]
pub struct World(Arc<Mutex<State>>);

impl World {
    pub fn new(state: State) -> Self {
        World(Arc::new(Mutex::new(state)))
    }

    /// The backends a run uses to reach this world.
    pub fn backends(&self) -> Backends {
        Backends {
            shell: Arc::new(self.clone()),
            http: Arc::new(self.clone()),
            kubernetes: Arc::new(self.clone()),
            compose: Arc::new(self.clone()),
            prometheus: Arc::new(self.clone()),
        }
    }

    /// Runs `f` on the state as it is at `now` (delayed effects due by then have landed).
    pub fn inspect<T>(&self, now: DateTime<Utc>, f: impl FnOnce(&State) -> T) -> T {
        let mut st = self.lock();
        st.land_effects(now);
        f(&st)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock is a bug elsewhere; the state itself stays usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One backend call: faults first, then the operation (again each time it asks to wait),
    /// then the time it takes, bounded by the attempt's deadline.
    async fn handle<F>(
        &self,
        backend: BackendKind,
        ctx: &CallCtx,
        what: &str,
        mut op: F,
    ) -> Result<Output, ActionError>
    where
        F: FnMut(&mut State, &Call) -> Reply + Send,
    {
        let before = self.lock().snapshot();
        let started = ctx.clock.now();
        let mut first = true;
        loop {
            let now = ctx.clock.now();
            let (reply, next_effect) = {
                let mut st = self.lock();
                st.land_effects(now);
                let start = st.start;
                let fault = if first {
                    first = false;
                    st.faults.error_for(backend, ctx, now, &start)
                } else {
                    None
                };
                // An injected error replaces the call: the operation does not run.
                let reply = match fault {
                    Some(e) => Reply::err(e),
                    None => op(&mut st, &Call { now, ctx, what }),
                };
                (reply, st.next_effect())
            };
            match reply {
                Reply::Answer(result, takes) => {
                    if let Some(rem) = ctx.remaining().filter(|r| *r < takes) {
                        if !pause(ctx, rem).await {
                            return Err(cancelled(what));
                        }
                        let e = ActionError::new(
                            ErrorKind::Timeout,
                            format!(
                                "{what}: no answer within the attempt's time limit (it takes {})",
                                fmt_duration(takes)
                            ),
                        );
                        return Err(self.finish_err(&before, e));
                    }
                    if !pause(ctx, takes).await {
                        return Err(cancelled(what));
                    }
                    return match result {
                        Ok(v) => Ok(Output {
                            result: v,
                            world_diff: self.diff_since(&before),
                        }),
                        Err(e) => Err(self.finish_err(&before, e)),
                    };
                }
                Reply::WaitUntil(at, why, last) => {
                    ctx.progress.status(&why);
                    // Wake for a delayed effect landing first: it may change the answer.
                    let mut until = next_effect.map_or(at, |t| t.min(at));
                    let deadline = ctx.deadline.filter(|d| *d < until);
                    if let Some(d) = deadline {
                        until = d;
                    }
                    let d = (until - now).to_std().unwrap_or(Duration::ZERO);
                    if !pause(ctx, d).await {
                        return Err(cancelled(what));
                    }
                    if deadline.is_some() {
                        let mut e = ActionError::new(
                            ErrorKind::Timeout,
                            // The real backend's words (`backends/kubernetes/status.rs`).
                            format!(
                                "{what}: the rollout did not finish within {}: {why}",
                                fmt_duration((until - started).to_std().unwrap_or_default())
                            ),
                        );
                        if let Some(v) = last {
                            e = e.with_result(v);
                        }
                        return Err(self.finish_err(&before, e));
                    }
                }
            }
        }
    }

    fn diff_since(&self, before: &Snapshot) -> Option<Value> {
        diff(before, &self.lock().snapshot())
    }

    fn finish_err(&self, before: &Snapshot, e: ActionError) -> ActionError {
        match self.diff_since(before) {
            Some(d) => e.with_world_diff(d),
            None => e,
        }
    }
}

/// Every error of the real Kubernetes and compose backends starts with `kubernetes.<verb>: `
/// or `compose.<verb>: `; so do the world's.
fn prefixed(mut e: ActionError, prefix: &str) -> ActionError {
    e.message = format!("{prefix}: {}", e.message);
    e
}

fn cancelled(what: &str) -> ActionError {
    ActionError::new(ErrorKind::Cancelled, format!("{what}: interrupted"))
}

/// Spends time on the run's clock; false when the run was interrupted.
async fn pause(ctx: &CallCtx, d: Duration) -> bool {
    if d.is_zero() {
        return !ctx.cancel.is_cancelled();
    }
    tokio::select! {
        _ = ctx.clock.sleep(d) => true,
        _ = ctx.cancel.cancelled() => false,
    }
}

/// What the world looks like, flattened: entity -> field -> value. Only what a runbook can
/// change is in it (spec, images, states), not what time alone changes (availability).
pub type Snapshot = BTreeMap<String, BTreeMap<String, Value>>;

/// `{ "<entity>": { "<field>": { "from": .., "to": .. } } }`, or None when nothing changed.
pub fn diff(before: &Snapshot, after: &Snapshot) -> Option<Value> {
    let mut out = Map::new();
    let entities: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let empty = BTreeMap::new();
    for e in entities {
        let (b, a) = (
            before.get(e).unwrap_or(&empty),
            after.get(e).unwrap_or(&empty),
        );
        let fields: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
        let mut changes = Map::new();
        for f in fields {
            let (from, to) = (b.get(f), a.get(f));
            if from != to {
                changes.insert(
                    f.clone(),
                    json!({ "from": from.cloned().unwrap_or(Value::Null), "to": to.cloned().unwrap_or(Value::Null) }),
                );
            }
        }
        if !changes.is_empty() {
            out.insert(e.clone(), Value::Object(changes));
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

#[cfg(test)]
mod tests;

#[async_trait]
impl PrometheusBackend for World {
    async fn query(
        &self,
        _target: &PromTarget,
        q: &PromQuery,
        ctx: &CallCtx,
    ) -> Result<PromAnswer, ActionError> {
        let what = match &q.range {
            None => format!("prometheus query `{}`", q.query),
            Some(r) => format!(
                "prometheus range query `{}` over the last {}",
                q.query,
                fmt_duration(r.last)
            ),
        };
        let out = self
            .handle(BackendKind::Prometheus, ctx, &what, |st, c| {
                metrics::query(st, q, c)
            })
            .await?;
        // The script answers in Prometheus's wire format; the real client's parser reads it.
        let body = serde_json::to_vec(&out.result).unwrap_or_default();
        parse_answer(200, &body)
    }
}

#[async_trait]
impl ShellBackend for World {
    async fn run(&self, req: &ShellRequest, ctx: &CallCtx) -> Result<Output, ActionError> {
        let what = shell::describe(req);
        self.handle(BackendKind::Shell, ctx, &what, |st, c| {
            shell::run(st, req, c)
        })
        .await
    }
}

#[async_trait]
impl HttpBackend for World {
    async fn send(&self, req: &HttpRequest, ctx: &CallCtx) -> Result<Output, ActionError> {
        let what = format!("{} {}", req.method, req.url);
        self.handle(BackendKind::Http, ctx, &what, |st, c| {
            http::send(st, req, c)
        })
        .await
    }
}

#[async_trait]
impl KubernetesBackend for World {
    async fn call(
        &self,
        target: &KubernetesBackendSpec,
        call: &KubeCall,
        ctx: &CallCtx,
    ) -> Result<Output, ActionError> {
        let what = kube::describe(target, call);
        self.handle(BackendKind::Kubernetes, ctx, &what, |st, c| {
            kube::call(st, target, call, c)
        })
        .await
        .map_err(|e| prefixed(e, &format!("kubernetes.{}", call.verb())))
    }

    async fn preview(&self, target: &KubernetesBackendSpec, call: &KubeCall) -> Option<String> {
        let st = self.lock();
        kube::preview(&st, target, call)
    }
}

#[async_trait]
impl ComposeBackend for World {
    async fn call(
        &self,
        target: &ComposeBackendSpec,
        call: &ComposeCall,
        ctx: &CallCtx,
    ) -> Result<Output, ActionError> {
        let what = compose::describe(target, call);
        self.handle(BackendKind::Compose, ctx, &what, |st, c| {
            compose::call(st, target, call, c)
        })
        .await
        .map_err(|e| prefixed(e, &format!("compose.{}", call.verb())))
    }
}

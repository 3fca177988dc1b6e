//! Emits events: stamps them (sequence, time, run id), redacts them, writes them to the journal
//! first and then hands them to the other sinks (terminal view, tests, drills).

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex};

use super::clock::{stamp, Clock};
use super::events::{Envelope, Event, Safety, JOURNAL_VERSION};
use super::journal::Journal;
use super::redact::Redactor;

/// Something that consumes events: the terminal view, a drill scorer, a test buffer.
pub trait EventSink: Send {
    fn event(&mut self, e: &Envelope);
}

/// Collects events in memory (tests, drills).
#[derive(Clone, Default)]
pub struct Collect(pub Arc<Mutex<Vec<Envelope>>>);

impl EventSink for Collect {
    fn event(&mut self, e: &Envelope) {
        self.0.lock().expect("collect lock").push(e.clone());
    }
}

pub struct Emitter {
    journal: Option<Journal>,
    sinks: Vec<Box<dyn EventSink>>,
    redactor: Redactor,
    clock: Arc<dyn Clock>,
    run_id: String,
    seq: u64,
    /// Set when a journal write failed: the run must not change anything else.
    broken: Option<String>,
    /// Steps started as `read-only`: their events are written at once but fsync'd with the
    /// next event that is not theirs (see `needs_sync`).
    read_only: HashSet<String>,
}

impl Emitter {
    pub fn new(
        journal: Option<Journal>,
        redactor: Redactor,
        clock: Arc<dyn Clock>,
        run_id: String,
        first_seq: u64,
    ) -> Self {
        Emitter {
            journal,
            sinks: vec![],
            redactor,
            clock,
            run_id,
            seq: first_seq,
            broken: None,
            read_only: HashSet::new(),
        }
    }

    pub fn add_sink(&mut self, s: Box<dyn EventSink>) {
        self.sinks.push(s);
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn redactor_mut(&mut self) -> &mut Redactor {
        &mut self.redactor
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// Why the journal stopped accepting events, if it did.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Stamps, redacts and records one event.
    pub fn emit(&mut self, event: Event) -> io::Result<()> {
        self.emit_all(vec![event])
    }

    /// Stamps, redacts and records events that belong together, in one journal write.
    pub fn emit_all(&mut self, events: Vec<Event>) -> io::Result<()> {
        let mut batch = Vec::with_capacity(events.len());
        for event in events {
            self.seq += 1;
            let env = Envelope {
                v: JOURNAL_VERSION,
                seq: self.seq,
                ts: stamp(self.clock.now()),
                run_id: self.run_id.clone(),
                event,
            };
            let env = self.redact(env);
            tracing::info!(run = %env.run_id, seq = env.seq, "{}", env.event.name());
            if tracing::enabled!(tracing::Level::DEBUG) {
                tracing::debug!(event = %serde_json::to_string(&env).unwrap_or_default(), "journal event");
            }
            batch.push(env);
        }
        let sync = batch.iter().any(|e| self.needs_sync(&e.event));
        let mut result = Ok(());
        if let Some(j) = self.journal.as_mut() {
            if self.broken.is_none() {
                match j.append_all_sync(&batch, sync) {
                    Ok(()) => {
                        if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
                            pause_hook(first.seq..=last.seq, j);
                        }
                    }
                    Err(e) => {
                        self.broken = Some(format!(
                            "cannot write the journal {}: {e}",
                            j.path().display()
                        ));
                        result = Err(e);
                    }
                }
            }
        }
        for env in &batch {
            for s in &mut self.sinks {
                s.event(env);
            }
        }
        result
    }

    /// Whether an event must be durable (fsync'd) before the run goes on: one sync per
    /// change. Every line is written at once (a killed process loses nothing); what a power
    /// cut could lose is only what no sync has covered yet. The sync that matters precedes
    /// each change to the world: a mutating step's `attempt_started` is fsync'd, and with it
    /// every line before it (its `step_started`, the previous step's end). The events after
    /// the change (`attempt_finished`, `verify_evaluated`, captures, `step_finished`) become
    /// durable at the next sync, which always comes before the next change (the next mutating
    /// attempt, a gate, an undo, the end of the run). A power cut in between leaves an
    /// attempt in flight, which `resume` treats as possibly done and asks about. A read-only
    /// step changes nothing, so none of its events syncs: losing them costs only running it
    /// again on resume. Every other event (gates, undo, run start and end) syncs.
    fn needs_sync(&mut self, e: &Event) -> bool {
        match e {
            Event::StepStarted { step, safety, .. } => {
                if *safety == Safety::ReadOnly {
                    self.read_only.insert(step.clone());
                } else {
                    self.read_only.remove(step);
                }
                false
            }
            Event::AttemptStarted { step, .. } => !self.read_only.contains(step),
            Event::AttemptFinished { .. }
            | Event::VerifyEvaluated { .. }
            | Event::AnalysisCheck { .. }
            | Event::Capture { .. }
            | Event::StepFinished { .. } => false,
            // Written at once (a killed runner loses nothing); never synced on its own: a power
            // cut, the only thing a sync protects against, ends the process group too.
            Event::ProcessStarted { .. } => false,
            _ => true,
        }
    }

    fn redact(&self, env: Envelope) -> Envelope {
        if self.redactor.is_empty() {
            return env;
        }
        // The typed tags: a secret that happens to equal `read-only` or `confirm` must not turn
        // them into `***` (they would no longer read back as their enums).
        const TAGS: &[&str] = &[
            "event", "outcome", "phase", "via", "run_id", "ts", "safety", "gate", "mode",
        ];
        let Ok(v) = serde_json::to_value(&env) else {
            return env;
        };
        if let Ok(e) = serde_json::from_value(self.redactor.value_keeping(&v, TAGS, true)) {
            return e;
        }
        // A secret equal to one of the event's own field names (`step`) turned a field into
        // `***`. `run` refuses such secrets, but a called runbook's or a drill's may get here:
        // mask the values and leave the field names, never panic.
        if let Ok(e) = serde_json::from_value(self.redactor.value_keeping(&v, TAGS, false)) {
            return e;
        }
        // Cannot happen (only string contents changed); if it did, every text goes.
        serde_json::from_value(mask_all(&v, TAGS)).unwrap_or(env)
    }
}

/// `v` with every string but the `keep` fields' replaced by the mask.
fn mask_all(v: &serde_json::Value, keep: &[&str]) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(_) => Value::String(super::redact::MASK.into()),
        Value::Array(a) => Value::Array(a.iter().map(|x| mask_all(x, keep)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    if keep.contains(&k.as_str()) {
                        (k.clone(), x.clone())
                    } else {
                        (k.clone(), mask_all(x, keep))
                    }
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The test hook of the crash-consistency and full-disk suites (docs/reliability.md):
/// with `RUNBOOK_TEST_PAUSE_AFTER=<seq>`, once event `<seq>` (and the events written with it)
/// is durable the run creates `<run dir>/paused-<seq>` and waits until that file is removed.
/// A test can then SIGKILL the process at an exact event boundary, or change the world (fill
/// the disk) and let it go on.
///
/// Compiled into debug builds only (the builds `cargo test` runs): a release binary has no
/// such hook, so the variable cannot make a production run block (see docs/reliability.md).
/// It takes the journal, not its directory: working out the directory is not free, and a
/// release build's empty hook must not pay for it at every event.
#[cfg(not(debug_assertions))]
fn pause_hook(_written: std::ops::RangeInclusive<u64>, _journal: &Journal) {}

/// See above: the debug build's hook.
#[cfg(debug_assertions)]
fn pause_hook(written: std::ops::RangeInclusive<u64>, journal: &Journal) {
    static AT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| {
        std::env::var("RUNBOOK_TEST_PAUSE_AFTER")
            .ok()
            .and_then(|v| v.trim().parse().ok())
    });
    let Some(at) = *at else { return };
    if !written.contains(&at) {
        return;
    }
    hold_at(&journal.run_dir().join(format!("paused-{at}")));
}

/// The test hooks' pause (debug builds only): creates `marker` and waits until a test removes
/// it. Nothing happens if the file cannot be made.
#[cfg(debug_assertions)]
pub(crate) fn hold_at(marker: &std::path::Path) {
    if std::fs::write(marker, b"").is_err() {
        return;
    }
    while marker.exists() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::events::Phase;

    fn started(step: &str, safety: Safety) -> Event {
        Event::StepStarted {
            step: step.into(),
            title: String::new(),
            action: "shell".into(),
            safety,
            phase: Phase::Main,
            rendered: serde_json::Value::Null,
        }
    }

    fn attempt(step: &str) -> Event {
        Event::AttemptStarted {
            step: step.into(),
            attempt: 1,
            of: 1,
        }
    }

    #[test]
    fn one_sync_per_change() {
        let clock: Arc<dyn Clock> = Arc::new(super::super::clock::SystemClock);
        let mut e = Emitter::new(None, Redactor::default(), clock, "r".into(), 0);
        let finished = |step: &str| Event::StepFinished {
            step: step.into(),
            outcome: crate::exec::events::StepOutcome::Succeeded,
            phase: Phase::Main,
            duration_ms: 0,
            attempts: 1,
            error: None,
            note: None,
        };
        // A read-only step: nothing of it syncs.
        assert!(!e.needs_sync(&started("check", Safety::ReadOnly)));
        assert!(!e.needs_sync(&attempt("check")));
        assert!(!e.needs_sync(&finished("check")));
        // A mutating step: only the attempt's start, which precedes the change, syncs (and
        // makes the lines before it durable); what follows waits for the next sync.
        for (i, safety) in [Safety::Idempotent, Safety::Reversible, Safety::Terminal]
            .into_iter()
            .enumerate()
        {
            let id = format!("m{i}");
            assert!(!e.needs_sync(&started(&id, safety)));
            assert!(e.needs_sync(&attempt(&id)));
            assert!(!e.needs_sync(&finished(&id)));
        }
        // An id seen read-only before and started again as mutating (a nested runbook's
        // step, a resumed run) syncs before its change.
        assert!(!e.needs_sync(&started("check", Safety::Terminal)));
        assert!(e.needs_sync(&attempt("check")));
        // Gates, undo and the end of a run always do.
        assert!(e.needs_sync(&Event::GateAnswered {
            step: "check".into(),
            gate: crate::exec::events::Gate::Confirm,
            answer: "yes".into(),
            by: "op".into(),
            via: crate::exec::events::AnswerVia::AnswerFlag,
            note: None,
        }));
        assert!(e.needs_sync(&Event::UndoStarted {
            step: "m1".into(),
            title: String::new(),
            action: "shell".into(),
            safety: Some(crate::exec::events::Safety::Reversible),
            rendered: serde_json::Value::Null,
        }));
    }

    #[test]
    fn a_secret_equal_to_a_typed_tag_keeps_the_event_readable() {
        let clock: Arc<dyn Clock> = Arc::new(super::super::clock::SystemClock);
        let mut e = Emitter::new(
            None,
            Redactor::new(["read-only".to_string(), "confirm".to_string()]),
            clock,
            "r".into(),
            0,
        );
        e.emit(started("s", Safety::ReadOnly)).unwrap();
        e.emit(Event::GateAsked {
            step: "s".into(),
            gate: crate::exec::events::Gate::Confirm,
            prompt: "confirm it".into(),
        })
        .unwrap();
    }

    #[test]
    fn a_secret_equal_to_a_field_name_never_panics_and_is_masked_in_values() {
        let clock: Arc<dyn Clock> = Arc::new(super::super::clock::SystemClock);
        let (sink, seen) = {
            let c = Collect::default();
            (c.clone(), c.0)
        };
        let mut e = Emitter::new(
            None,
            Redactor::new(["step".to_string()]),
            clock,
            "r".into(),
            0,
        );
        e.add_sink(Box::new(sink));
        e.emit(started("step", Safety::ReadOnly)).unwrap();
        let got = seen.lock().unwrap();
        match &got[0].event {
            Event::StepStarted { step, .. } => assert_eq!(step, "***"),
            other => panic!("{other:?}"),
        }
    }
}

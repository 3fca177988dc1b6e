//! The world's state: the cluster, the compose projects, the scripts and faults, and effects
//! waiting to land. Plain data, cloned for every run of a drill.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::compose::Projects;
use super::faults::Faults;
use super::http::HttpRule;
use super::kube::Cluster;
use super::run_values::{self, RunValues};
use super::shell::ShellRule;
use super::Snapshot;
use crate::drill::spec::EffectSpec;

#[derive(Debug, Clone)]
pub struct State {
    /// When the drill (and so the world) started: faults' `at` counts from here.
    pub start: DateTime<Utc>,
    pub kube: Cluster,
    pub compose: Projects,
    pub http: Vec<HttpRule>,
    pub shell: Vec<ShellRule>,
    pub metrics: Vec<super::metrics::MetricRule>,
    pub faults: Faults,
    /// Scripted effects waiting for their time, in the order they were scheduled.
    pub pending: Vec<(DateTime<Utc>, EffectSpec)>,
}

impl State {
    /// Schedules a rule's effect (or applies it now when it has no delay).
    pub fn schedule(&mut self, effect: &EffectSpec, now: DateTime<Utc>) {
        let after = effect
            .after
            .as_deref()
            .and_then(|a| crate::model::parse_duration(a).ok())
            .unwrap_or(Duration::ZERO);
        let at = super::later(now, after);
        self.pending.push((at, effect.clone()));
        self.land_effects(now);
    }

    /// Applies every effect due by `now`, each at its own time.
    pub fn land_effects(&mut self, now: DateTime<Utc>) {
        while let Some(i) = self
            .pending
            .iter()
            .enumerate()
            .filter(|(_, (t, _))| *t <= now)
            .min_by_key(|(i, (t, _))| (*t, *i))
            .map(|(i, _)| i)
        {
            let (at, effect) = self.pending.remove(i);
            self.apply(&effect, at);
        }
    }

    /// When the next delayed effect lands.
    pub fn next_effect(&self) -> Option<DateTime<Utc>> {
        self.pending.iter().map(|(t, _)| *t).min()
    }

    fn apply(&mut self, effect: &EffectSpec, at: DateTime<Utc>) {
        if let Some(k) = &effect.kubernetes {
            for (key, change) in &k.deployments {
                let stuck = self.faults.rollout_stuck(key, None, at, &self.start);
                if let Some(d) = self.kube.deployments.get_mut(key) {
                    d.change(change, at, stuck);
                }
            }
            for (key, patch) in &k.objects {
                self.kube.patch_object(key, patch);
            }
        }
        if let Some(c) = &effect.compose {
            for (key, change) in &c.services {
                self.compose.change(key, change);
            }
        }
    }

    /// Moves the world to start at `start` (training starts it at the real time): every time
    /// it holds shifts with it.
    pub fn rebase(&mut self, start: DateTime<Utc>) {
        let delta = start - self.start;
        self.start = start;
        for d in self.kube.deployments.values_mut() {
            d.rollout.started += delta;
        }
        for (t, _) in &mut self.pending {
            *t += delta;
        }
    }

    /// Puts the run's values in place of the `{{ run.* }}` placeholders of the HTTP script
    /// (see `run_values`): once, before the run starts.
    pub fn bind_run(&mut self, run: &RunValues) {
        for rule in &mut self.http {
            if let Some(j) = rule.json.as_mut() {
                run_values::bind(j, run);
            }
            for r in &mut rule.responses {
                if let Some(j) = r.json.as_mut() {
                    run_values::bind(j, run);
                }
                if let Some(b) = r.body.as_mut() {
                    *b = run_values::bind_str(b, run);
                }
            }
        }
    }

    /// Everything a runbook can change, flattened for diffs.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::new();
        self.kube.snapshot(&mut s);
        self.compose.snapshot(&mut s);
        s
    }
}

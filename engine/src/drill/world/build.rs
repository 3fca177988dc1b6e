//! Builds the initial world from a drill's `world:` and `faults:`, reporting every problem
//! with the JSON pointer of the field at fault (the checker turns pointers into locations).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::Value;

use super::compose::{Project, Projects, Service};
use super::deployment::{Container, Deployment, Revision, Rollout, Template};
use super::faults::{Effect, Fault, Faults, Trigger};
use super::http::{HttpResponse, HttpRule};
use super::kube::{object_key, Cluster};
use super::metrics::{MetricRule, Point};
use super::shell::{ShellResponse, ShellRule};
use super::State;
use crate::diag::did_you_mean;
use crate::drill::spec::{
    DeploymentSpec, DrillSpec, EffectSpec, FaultErrorKind, FaultSpec, RevisionSpec, ServiceState,
    WorldStateSpec,
};
use crate::model::parse_duration;
use crate::yaml::pointer_segment;

/// A problem in the drill, at a JSON pointer.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub ptr: String,
    pub message: String,
    pub help: Option<String>,
    /// The problem is with a mapping key (point at the key, not its value).
    pub at_key: bool,
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, ptr: &str, message: impl Into<String>, help: Option<String>) {
        self.0.push(Problem {
            ptr: ptr.to_string(),
            message: message.into(),
            help,
            at_key: false,
        });
    }

    fn key(&mut self, ptr: &str, message: impl Into<String>, help: Option<String>) {
        self.0.push(Problem {
            ptr: ptr.to_string(),
            message: message.into(),
            help,
            at_key: true,
        });
    }

    fn duration(&mut self, ptr: &str, s: Option<&str>, default: Duration) -> Duration {
        match s.map(parse_duration) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.add(ptr, e, None);
                default
            }
        }
    }

    /// An unknown key of `kind` (e.g. `Deployment`), with the closest known one suggested.
    fn unknown<'a>(
        &mut self,
        ptr: &str,
        key: &str,
        kind: &str,
        known: impl Iterator<Item = &'a String> + Clone,
    ) {
        let help = match did_you_mean(key, known.clone().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("the world has: {}", list(known)),
        };
        self.key(
            ptr,
            format!("no {kind} `{key}` in the drill's world"),
            Some(help),
        );
    }
}

fn list<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<String> = keys.map(|k| format!("`{k}`")).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn field(ptr: &str, name: &str) -> String {
    format!("{ptr}/{}", pointer_segment(name))
}

/// The world a drill starts in, and every problem found in building it.
pub fn build(spec: &DrillSpec, start: DateTime<Utc>) -> (State, Vec<Problem>) {
    let mut p = Problems::default();
    let mut st = State {
        start,
        kube: Cluster::default(),
        compose: Projects::default(),
        http: vec![],
        shell: vec![],
        metrics: vec![],
        faults: Faults::default(),
        pending: vec![],
    };
    if let Some(k) = &spec.world.kubernetes {
        st.kube.users = k.users.clone();
        for (i, d) in k.deployments.iter().enumerate() {
            let ptr = format!("/world/kubernetes/deployments/{i}");
            let dep = deployment(d, start, &ptr, &mut p);
            let key = dep.key();
            if st.kube.deployments.contains_key(&key) {
                p.add(
                    &format!("{ptr}/name"),
                    format!("Deployment `{key}` is defined twice"),
                    None,
                );
            }
            st.kube.deployments.insert(key, dep);
        }
        for (i, o) in k.objects.iter().enumerate() {
            let ptr = format!("/world/kubernetes/objects/{i}");
            let kind = o.get("kind").and_then(Value::as_str);
            let name = o.pointer("/metadata/name").and_then(Value::as_str);
            match (kind, name) {
                (Some(kind), Some(name)) if o.get("apiVersion").is_some_and(Value::is_string) => {
                    let ns = o.pointer("/metadata/namespace").and_then(Value::as_str);
                    st.kube.objects.insert(object_key(kind, ns, name), o.clone());
                }
                _ => p.add(
                    &ptr,
                    "an object needs `apiVersion`, `kind` and `metadata.name`",
                    Some("write it as the API returns it, e.g. `{ apiVersion: image.toolkit.fluxcd.io/v1beta2, kind: ImagePolicy, metadata: { name: app, namespace: prod }, status: { ... } }`".into()),
                ),
            }
        }
    }
    if let Some(c) = &spec.world.compose {
        for (name, proj) in &c.projects {
            let ptr = field("/world/compose/projects", name);
            let takes = p.duration(
                &format!("{ptr}/takes"),
                proj.takes.as_deref(),
                Duration::from_secs(5),
            );
            let crashing = proj.crashing_images.clone();
            let services: IndexMap<String, Service> = proj
                .services
                .iter()
                .map(|(n, s)| {
                    let state = match s.state.unwrap_or(ServiceState::Running) {
                        ServiceState::Running if crashing.contains(&s.image) => {
                            ServiceState::Restarting
                        }
                        other => other,
                    };
                    let svc = Service {
                        image: s.image.clone(),
                        configured: s.image.clone(),
                        file_image: s.image.clone(),
                        state,
                        logs: s.logs.clone().unwrap_or_default(),
                    };
                    (n.clone(), svc)
                })
                .collect();
            let pulled: BTreeSet<String> = services.values().map(|s| s.image.clone()).collect();
            st.compose.0.insert(
                name.clone(),
                Project {
                    services,
                    takes,
                    crashing,
                    unpullable: proj.unpullable_images.clone(),
                    pulled,
                },
            );
        }
    }
    // Rules and faults refer to the deployments and services defined above.
    for (i, r) in spec.world.http.iter().enumerate() {
        let ptr = format!("/world/http/{i}");
        let responses: Vec<HttpResponse> = r
            .respond
            .to_vec()
            .iter()
            .enumerate()
            .map(|(j, a)| {
                let rp = respond_ptr(&ptr, &r.respond, j);
                if a.json.is_some() && a.body.is_some() {
                    p.add(&rp, "give either `json` or `body`, not both", None);
                }
                if a.error.is_some() && (a.status.is_some() || a.json.is_some() || a.body.is_some())
                {
                    p.add(
                        &format!("{rp}/error"),
                        "an `error` answer has no status or body",
                        Some("remove `status`, `json` and `body`, or remove `error`".into()),
                    );
                }
                HttpResponse {
                    status: a.status.unwrap_or(200),
                    headers: a.headers.clone(),
                    body: a.body.clone(),
                    json: a.json.clone(),
                    times: a.times,
                    error: a.error.clone(),
                    takes: p.duration(&format!("{rp}/takes"), a.takes.as_deref(), Duration::ZERO),
                }
            })
            .collect();
        run_placeholders(&ptr, r, &mut p);
        if responses.is_empty() {
            p.add(
                &format!("{ptr}/respond"),
                "`respond` needs at least one answer",
                None,
            );
        }
        if let Some(w) = &r.when {
            state_keys(&st, w, &format!("{ptr}/when"), &mut p);
        }
        if let Some(e) = &r.effect {
            effect_keys(&st, e, &format!("{ptr}/effect"), &mut p);
        }
        st.http.push(HttpRule {
            method: r.matches.method.map(|m| m.as_str().to_string()),
            url: r.matches.url.clone(),
            headers: r.matches.headers.clone(),
            body: r.matches.body.clone(),
            json: r.matches.json.clone(),
            when: r.when.clone(),
            responses,
            effect: r.effect.clone(),
            used: 0,
        });
    }
    for (i, r) in spec.world.metrics.iter().enumerate() {
        let ptr = format!("/world/metrics/{i}");
        if let Some(w) = &r.when {
            state_keys(&st, w, &format!("{ptr}/when"), &mut p);
        }
        let mut points = vec![];
        for (j, pt) in r.values.to_vec().iter().enumerate() {
            let pp = match &r.values {
                crate::drill::spec::OneOrMany::One(_) => format!("{ptr}/values"),
                crate::drill::spec::OneOrMany::Many(_) => format!("{ptr}/values/{j}"),
            };
            let at = p.duration(&format!("{pp}/at"), pt.at.as_deref(), Duration::ZERO);
            let given = usize::from(pt.value.is_some())
                + usize::from(pt.series.is_some())
                + usize::from(pt.no_data);
            if given != 1 {
                p.add(
                    &pp,
                    "a metric point needs exactly one of `value`, `series` or `no_data: true`",
                    Some("e.g. `{ at: 3m, value: 99.6 }`, `{ at: 8m, no_data: true }`, `{ value: NaN }`".into()),
                );
                continue;
            }
            let bad_value = |p: &mut Problems, ptr: &str, v: &crate::drill::spec::MetricValue| {
                let f = v.to_f64();
                if f.is_none() {
                    p.add(
                        ptr,
                        "a metric value is a number, `NaN`, `+Inf` or `-Inf`",
                        None,
                    );
                }
                f
            };
            let point = if pt.no_data {
                Point::NoData
            } else if let Some(v) = &pt.value {
                match bad_value(&mut p, &format!("{pp}/value"), v) {
                    Some(f) => Point::Series(vec![(BTreeMap::new(), f)]),
                    None => continue,
                }
            } else {
                let mut out = vec![];
                for (k, s) in pt.series.iter().flatten().enumerate() {
                    if let Some(f) = bad_value(&mut p, &format!("{pp}/series/{k}/value"), &s.value)
                    {
                        out.push((
                            s.labels
                                .iter()
                                .map(|(a, b)| (a.clone(), b.clone()))
                                .collect(),
                            f,
                        ));
                    }
                }
                Point::Series(out)
            };
            points.push((at, point));
        }
        let pts = r.values.to_vec();
        let counted = pts.iter().any(|pt| pt.times.is_some());
        if counted && pts.iter().any(|pt| pt.at.is_some()) {
            p.add(
                &format!("{ptr}/values"),
                "a metric rule answers by time (`at`) or by count (`times`), not both",
                None,
            );
        }
        if !counted {
            points.sort_by_key(|(t, _)| *t);
        }
        st.metrics.push(MetricRule {
            pattern: r.matches.clone(),
            when: r.when.clone(),
            counted: counted.then(|| pts.iter().map(|pt| pt.times).collect()),
            points,
            used: 0,
        });
    }
    for (i, r) in spec.world.shell.iter().enumerate() {
        let ptr = format!("/world/shell/{i}");
        match (&r.matches.argv, &r.matches.script) {
            (Some(a), None) if a.is_empty() => p.add(
                &format!("{ptr}/match/argv"),
                "`argv` needs at least the program",
                None,
            ),
            (Some(_), None) | (None, Some(_)) => {}
            _ => p.add(
                &format!("{ptr}/match"),
                "give exactly one of `argv` or `script`",
                None,
            ),
        }
        let responses: Vec<ShellResponse> = r
            .respond
            .to_vec()
            .iter()
            .enumerate()
            .map(|(j, a)| ShellResponse {
                exit: a.exit.unwrap_or(0),
                stdout: a.stdout.clone().unwrap_or_default(),
                stderr: a.stderr.clone().unwrap_or_default(),
                times: a.times,
                takes: p.duration(
                    &format!("{}/takes", respond_ptr(&ptr, &r.respond, j)),
                    a.takes.as_deref(),
                    Duration::ZERO,
                ),
            })
            .collect();
        if responses.is_empty() {
            p.add(
                &format!("{ptr}/respond"),
                "`respond` needs at least one result",
                None,
            );
        }
        if let Some(w) = &r.when {
            state_keys(&st, w, &format!("{ptr}/when"), &mut p);
        }
        if let Some(e) = &r.effect {
            effect_keys(&st, e, &format!("{ptr}/effect"), &mut p);
        }
        st.shell.push(ShellRule {
            argv: r.matches.argv.clone(),
            script: r.matches.script.clone(),
            when: r.when.clone(),
            responses,
            effect: r.effect.clone(),
            used: 0,
        });
    }
    for (i, f) in spec.faults.iter().enumerate() {
        if let Some(fault) = fault(&st, f, &format!("/faults/{i}"), &mut p) {
            st.faults.0.push(fault);
        }
    }
    (st, p.0)
}

fn respond_ptr<T>(rule: &str, r: &crate::drill::spec::OneOrMany<T>, j: usize) -> String {
    match r {
        crate::drill::spec::OneOrMany::One(_) => format!("{rule}/respond"),
        crate::drill::spec::OneOrMany::Many(_) => format!("{rule}/respond/{j}"),
    }
}

fn deployment(d: &DeploymentSpec, start: DateTime<Utc>, ptr: &str, p: &mut Problems) -> Deployment {
    let container = d.container.clone().unwrap_or_else(|| d.name.clone());
    let replicas = d.replicas.unwrap_or(1);
    let rollout = d.rollout.clone().unwrap_or_default();
    let takes = p.duration(
        &format!("{ptr}/rollout/takes"),
        rollout.takes.as_deref(),
        Duration::from_secs(30),
    );
    let progress_deadline = p.duration(
        &format!("{ptr}/rollout/progress_deadline"),
        rollout.progress_deadline.as_deref(),
        Duration::from_secs(600),
    );
    let mut history: Vec<Revision> = vec![];
    let count = d.revisions.len() as i64;
    for (i, r) in d.revisions.iter().enumerate() {
        let (image, env) = match r {
            RevisionSpec::Image(img) => (img.clone(), IndexMap::new()),
            RevisionSpec::Detailed(x) => (x.image.clone(), x.env.clone()),
        };
        let t = Template {
            containers: vec![Container {
                name: container.clone(),
                image,
                env,
            }],
            annotations: BTreeMap::new(),
        };
        // The controller keeps one ReplicaSet per template: a repeat moves it to the top.
        history.retain(|r| r.template != t);
        // Revisions were made an hour apart, the current one an hour before the drill.
        let hours = chrono::Duration::hours(count - i as i64);
        history.push(Revision {
            number: i as i64 + 1,
            template: t,
            created: start
                .checked_sub_signed(hours)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        });
    }
    let template = history
        .last()
        .map(|r| r.template.clone())
        .unwrap_or(Template {
            containers: vec![Container {
                name: container,
                image: String::new(),
                env: IndexMap::new(),
            }],
            annotations: BTreeMap::new(),
        });
    let crashes = template
        .containers
        .iter()
        .any(|c| d.crashing_images.contains(&c.image));
    let available = d.available.unwrap_or(replicas);
    if available > replicas {
        p.add(
            &format!("{ptr}/available"),
            format!("`available` ({available}) is more than `replicas` ({replicas})"),
            None,
        );
    }
    // A crashing current image is an incident already in progress: its rollout has long
    // passed the progress deadline. Fewer available replicas otherwise means a rollout
    // that finishes `takes` after the start.
    let (started, rollout_takes) = if crashes {
        (
            chrono::Duration::from_std(progress_deadline)
                .ok()
                .and_then(|d| start.checked_sub_signed(d))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            takes,
        )
    } else if available < replicas {
        (start, takes)
    } else {
        (start, Duration::ZERO)
    };
    let mut labels: BTreeMap<String, String> = d
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if labels.is_empty() {
        labels.insert("app".into(), d.name.clone());
    }
    Deployment {
        namespace: d.namespace.clone().unwrap_or_else(|| "default".into()),
        name: d.name.clone(),
        pod_labels: labels.clone(),
        labels,
        annotations: BTreeMap::new(),
        replicas,
        generation: history.len() as i64,
        paused: d.paused,
        template,
        history,
        rollout: Rollout {
            started,
            takes: rollout_takes,
            stuck: crashes,
            from_available: available,
        },
        takes,
        progress_deadline,
        crashing: d.crashing_images.clone(),
    }
}

/// Checks that a state description names deployments and services the world has.
fn state_keys(st: &State, w: &WorldStateSpec, ptr: &str, p: &mut Problems) {
    if let Some(k) = &w.kubernetes {
        for key in k.deployments.keys() {
            if !st.kube.deployments.contains_key(key) {
                p.unknown(
                    &field(&format!("{ptr}/kubernetes/deployments"), key),
                    key,
                    "Deployment",
                    st.kube.deployments.keys(),
                );
            }
        }
    }
    if let Some(c) = &w.compose {
        for key in c.services.keys() {
            service_key(st, key, &field(&format!("{ptr}/compose/services"), key), p);
        }
    }
}

/// Problems of a state description (`expect.world`), for the checker.
pub fn state_problems(st: &State, w: &WorldStateSpec, ptr: &str) -> Vec<Problem> {
    let mut p = Problems::default();
    state_keys(st, w, ptr, &mut p);
    p.0
}

fn service_key(st: &State, key: &str, ptr: &str, p: &mut Problems) {
    let all: Vec<String> = st
        .compose
        .0
        .iter()
        .flat_map(|(pn, proj)| proj.services.keys().map(move |s| format!("{pn}/{s}")))
        .collect();
    if !all.iter().any(|k| k == key) {
        p.unknown(ptr, key, "compose service (`project/service`)", all.iter());
    }
}

fn effect_keys(st: &State, e: &EffectSpec, ptr: &str, p: &mut Problems) {
    p.duration(&format!("{ptr}/after"), e.after.as_deref(), Duration::ZERO);
    if let Some(k) = &e.kubernetes {
        for key in k.deployments.keys() {
            if !st.kube.deployments.contains_key(key) {
                p.unknown(
                    &field(&format!("{ptr}/kubernetes/deployments"), key),
                    key,
                    "Deployment",
                    st.kube.deployments.keys(),
                );
            }
        }
        for key in k.objects.keys() {
            if !(2..=3).contains(&key.split('/').count()) {
                p.key(
                    &field(&format!("{ptr}/kubernetes/objects"), key),
                    format!("`{key}` is not `namespace/Kind/name` (or `Kind/name`)"),
                    None,
                );
            }
        }
    }
    if let Some(c) = &e.compose {
        for key in c.services.keys() {
            service_key(st, key, &field(&format!("{ptr}/compose/services"), key), p);
        }
    }
}

fn fault(st: &State, f: &FaultSpec, ptr: &str, p: &mut Problems) -> Option<Fault> {
    let effects = [
        f.error.is_some(),
        f.rollout_never_available.is_some(),
        f.http_failing.is_some(),
    ];
    if effects.iter().filter(|e| **e).count() != 1 {
        p.add(
            ptr,
            "a fault needs exactly one of `error`, `rollout_never_available` or `http_failing`",
            Some("split it into one fault per effect".into()),
        );
        return None;
    }
    if f.attempt.is_some() && f.step.is_none() {
        p.add(
            &format!("{ptr}/attempt"),
            "`attempt` needs `step`",
            Some("name the step whose attempt fails".into()),
        );
    }
    if f.lasts.is_some() && f.at.is_none() {
        p.add(
            &format!("{ptr}/for"),
            "`for` needs `at`",
            Some("say when the fault starts, e.g. `at: 5m`".into()),
        );
    }
    if f.step.is_some() && f.at.is_some() {
        p.add(
            &format!("{ptr}/at"),
            "give either `step` or `at`, not both",
            None,
        );
    }
    if f.error.is_none() {
        for (name, set) in [
            ("kind", f.kind.is_some()),
            ("backend", f.backend.is_some()),
            ("times", f.times.is_some()),
        ] {
            if set {
                p.add(
                    &format!("{ptr}/{name}"),
                    format!("`{name}` applies to `error` faults only"),
                    None,
                );
            }
        }
    }
    let from =
        f.at.as_deref()
            .map(|a| p.duration(&format!("{ptr}/at"), Some(a), Duration::ZERO));
    let until = match (from, f.lasts.as_deref()) {
        (Some(from), Some(l)) => {
            Some(from + p.duration(&format!("{ptr}/for"), Some(l), Duration::ZERO))
        }
        _ => None,
    };
    let trigger = Trigger {
        step: f.step.clone(),
        attempt: f.attempt,
        from,
        until,
    };
    let effect = if let Some(message) = &f.error {
        Effect::Error {
            kind: f.kind.unwrap_or(FaultErrorKind::Transport),
            message: message.clone(),
            backend: f.backend,
            left: f.times,
        }
    } else if let Some(key) = &f.rollout_never_available {
        if !st.kube.deployments.contains_key(key) {
            p.unknown(
                &format!("{ptr}/rollout_never_available"),
                key,
                "Deployment",
                st.kube.deployments.keys(),
            );
        }
        Effect::RolloutStuck(key.clone())
    } else {
        let h = f.http_failing.as_ref()?;
        if h.status.is_some() && h.error.is_some() {
            p.add(
                &format!("{ptr}/http_failing"),
                "give either `status` or `error`, not both",
                None,
            );
        }
        Effect::HttpFailing {
            method: h.method.map(|m| m.as_str().to_string()),
            url: h.url.clone(),
            status: h.status.unwrap_or(503),
            error: h.error.clone(),
        }
    };
    Some(Fault { trigger, effect })
}

/// `{{ run.* }}` placeholders of an HTTP rule: only `run.operator`, `run.reason` and `run.id`,
/// and only where they are replaced (`match.json`, answers' `json` and `body`).
fn run_placeholders(ptr: &str, r: &crate::drill::spec::HttpRuleSpec, p: &mut Problems) {
    use super::run_values::{problems, strings};
    let mut bound: Vec<(String, &str)> = vec![];
    if let Some(j) = &r.matches.json {
        strings(j, &format!("{ptr}/match/json"), &mut bound);
    }
    let answers = r.respond.to_vec();
    for (j, a) in answers.iter().enumerate() {
        let rp = respond_ptr(ptr, &r.respond, j);
        if let Some(v) = &a.json {
            strings(v, &format!("{rp}/json"), &mut bound);
        }
        if let Some(b) = a.body.as_deref().filter(|b| b.contains("{{")) {
            bound.push((format!("{rp}/body"), b));
        }
    }
    for (at, s) in bound {
        for (_, why) in problems(s) {
            p.add(
                &at,
                why,
                Some("write the value itself, or one of the run's values the runbook sends".into()),
            );
        }
    }
    let mut literal: Vec<(String, &str)> = vec![(format!("{ptr}/match/url"), &r.matches.url)];
    literal.extend(r.matches.headers.iter().map(|(k, v)| {
        (
            format!("{ptr}/match/headers/{}", crate::yaml::pointer_segment(k)),
            v.as_str(),
        )
    }));
    if let Some(b) = &r.matches.body {
        literal.push((format!("{ptr}/match/body"), b));
    }
    for (at, s) in literal {
        if s.contains("{{") {
            p.add(
                &at,
                "`{{ ... }}` is not replaced here: `url`, `headers` and `body` of a `match` are literal text with `*` globs",
                Some("match a run value in the request's JSON body with `match.json`, or use `*` here".into()),
            );
        }
    }
}

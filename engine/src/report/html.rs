//! One self-contained HTML page: the facts, a chart of when each step ran and for how long
//! (inline SVG), the timeline, the PIR sections and the evidence. No script, no external
//! asset: it opens offline, in a mail client, or printed.

use std::fmt::Write;

use chrono::DateTime;

use super::model::{Outcome, Report, Section, StepReport, StepState};
use super::text::duration;

const CSS: &str = include_str!("templates/pir.css");

pub fn render(r: &Report) -> String {
    let mut h = String::with_capacity(32 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>PIR: {}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n",
        esc(&r.title)
    );
    header(&mut h, r);
    timeline(&mut h, r);
    let sections: [(&str, &Section, bool); 6] = [
        ("Impact", &r.impact, false),
        ("Root Cause", &r.root_cause, false),
        ("What Went Well", &r.went_well, false),
        ("What Went Wrong", &r.went_wrong, false),
        ("Action Items", &r.action_items, true),
        ("Lessons Learned", &r.lessons, false),
    ];
    for (title, sec, numbered) in sections {
        section(&mut h, title, sec, numbered);
    }
    evidence(&mut h, r);
    let _ = write!(
        h,
        "<footer>Built by runbook from the journal <code>{}</code> ({} events{}).</footer>\n\
         </body>\n</html>\n",
        esc(&r.journal.path),
        r.journal.events,
        if r.journal.truncated {
            ", truncated"
        } else {
            ""
        }
    );
    h
}

/// Escapes text for HTML content and attribute values alike.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The model's short Markdown (backtick spans only) as HTML.
fn inline(s: &str) -> String {
    if s.matches('`').count() % 2 == 1 {
        return esc(s);
    }
    s.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{}</code>", esc(part))
            } else {
                esc(part)
            }
        })
        .collect()
}

fn outcome_class(o: Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "ok",
        Outcome::NeedsAnswer => "warn",
        _ => "fail",
    }
}

fn header(h: &mut String, r: &Report) {
    let _ = writeln!(
        h,
        "<header>\n<h1>Post-Incident Review: {}</h1>",
        esc(&r.title)
    );
    for n in &r.notes {
        let _ = writeln!(
            h,
            "<p class=\"note\"><strong>Note:</strong> {}</p>",
            inline(n)
        );
    }
    let clock =
        |s: &Option<super::model::Stamp>| s.as_ref().map(|s| s.clock.clone()).unwrap_or_default();
    let fill = "<em>fill in</em>";
    let facts: Vec<(&str, String)> = vec![
        (
            "Date",
            format!("{} ({})", esc(&r.times.date), esc(&r.times.zone)),
        ),
        (
            "Severity",
            r.runbook
                .severity
                .as_deref()
                .map(esc)
                .unwrap_or_else(|| fill.into()),
        ),
        (
            "Duration",
            format!(
                "{} – {} ({})",
                clock(&r.times.start),
                clock(&r.times.end),
                esc(&r.times.duration)
            ),
        ),
        ("Incident Commander", esc(&r.run.operator)),
        (
            "Outcome",
            format!(
                "<span class=\"badge {}\">{}</span> {}",
                outcome_class(r.outcome),
                r.outcome.as_str(),
                inline(&r.outcome_text)
            ),
        ),
        (
            "Reason",
            r.run
                .reason
                .as_deref()
                .map(esc)
                .unwrap_or_else(|| fill.into()),
        ),
        ("Run id", format!("<code>{}</code>", esc(&r.run.id))),
        (
            "Runbook",
            format!(
                "<code>{}</code> — {} (<code>{}</code>, sha256 <code>{}</code>)",
                esc(&r.runbook.name),
                esc(&r.runbook.title),
                esc(&r.runbook.path),
                esc(r.runbook.sha256.get(..12).unwrap_or(&r.runbook.sha256))
            ),
        ),
        (
            "Engine",
            format!(
                "runbook {} on {}, {} run",
                esc(&r.run.engine_version),
                esc(&r.run.host),
                esc(&r.run.mode)
            ),
        ),
    ];
    h.push_str("<dl class=\"facts\">\n");
    for (k, v) in facts {
        let _ = writeln!(h, "<dt>{k}</dt><dd>{v}</dd>");
    }
    h.push_str("</dl>\n</header>\n");
}

fn timeline(h: &mut String, r: &Report) {
    let _ = writeln!(
        h,
        "<section id=\"timeline\">\n<h2>Timeline</h2>\n<p>All times {}.</p>",
        esc(&r.times.zone)
    );
    chart(h, r);
    h.push_str("<ol class=\"timeline\">\n");
    for e in &r.timeline {
        let _ = writeln!(
            h,
            "<li class=\"{}\"><time datetime=\"{}\">{}</time>{}</li>",
            esc(&e.status),
            esc(&e.at.iso),
            esc(&e.at.clock),
            inline(&e.text)
        );
    }
    h.push_str("</ol>\n<table>\n<thead><tr><th>Step</th><th>Phase</th><th>Outcome</th>\
                <th>Started</th><th>Duration</th><th>Attempts</th><th>Verification</th></tr></thead>\n<tbody>\n");
    for s in &r.steps {
        let _ = writeln!(
            h,
            "<tr><td><a href=\"#step-{}\"><code>{}</code></a></td><td>{}</td><td class=\"state-{}\">{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.id),
            esc(&s.id),
            esc(&s.phase),
            s.state.as_str(),
            s.state.as_str(),
            s.started.as_ref().map(|t| esc(&t.clock)).unwrap_or_else(|| "–".into()),
            if s.duration.is_empty() { "–".into() } else { esc(&s.duration) },
            s.attempts.len(),
            s.verification
                .as_ref()
                .map(|v| inline(&v.summary))
                .unwrap_or_else(|| "–".into())
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// When each step ran and for how long, on the run's time axis.
fn chart(h: &mut String, r: &Report) {
    let rows: Vec<&StepReport> = r.steps.iter().filter(|s| s.started.is_some()).collect();
    if rows.is_empty() {
        return;
    }
    let end_of = |s: &StepReport| {
        let start = s.started.as_ref().map_or(0, |t| t.offset_ms.max(0) as u64);
        match (&s.ended, s.duration_ms) {
            (_, Some(d)) => start + d,
            (Some(e), None) => e.offset_ms.max(0) as u64,
            // Still running when the journal ends.
            (None, None) => r.times.duration_ms,
        }
    };
    let total = rows
        .iter()
        .map(|s| end_of(s))
        .chain([r.times.duration_ms])
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let (label_w, chart_w, row_h, top) = (190.0, 620.0, 24.0, 30.0);
    let width = label_w + chart_w + 90.0;
    let height = top + row_h * rows.len() as f64 + 10.0;
    let _ = writeln!(
        h,
        "<svg class=\"chart\" role=\"img\" aria-label=\"Step durations\" viewBox=\"0 0 {width} {height}\">"
    );
    let start = r
        .times
        .start
        .as_ref()
        .and_then(|s| DateTime::parse_from_rfc3339(&s.iso).ok());
    for i in 0..=4 {
        let frac = f64::from(i) / 4.0;
        let x = label_w + frac * chart_w;
        let ms = (frac * total) as i64;
        // The start as a clock time, then offsets: a short run would show one time five times.
        let label = match start {
            Some(t) if i == 0 => t.format("%H:%M:%S").to_string(),
            _ => format!("+{}", duration(ms as u64)),
        };
        let anchor = if i == 4 {
            "end"
        } else if i == 0 {
            "start"
        } else {
            "middle"
        };
        let _ = writeln!(
            h,
            "<line class=\"axis\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>\
             <text class=\"tick\" x=\"{x:.1}\" y=\"16\" text-anchor=\"{anchor}\">{label}</text>",
            top - 6.0,
            height - 6.0
        );
    }
    for (i, s) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let s0 = s.started.as_ref().map_or(0, |t| t.offset_ms.max(0) as u64) as f64;
        let x = label_w + s0 / total * chart_w;
        let w = ((end_of(s) as f64 - s0) / total * chart_w).max(2.0);
        let shown = if s.duration.is_empty() {
            s.state.as_str().to_string()
        } else {
            s.duration.clone()
        };
        let _ = writeln!(
            h,
            "<g><title>{id}: {state}, {shown}</title>\
             <text x=\"{lx:.1}\" y=\"{ty:.1}\" text-anchor=\"end\">{id}</text>\
             <rect class=\"bar {state}\" x=\"{x:.1}\" y=\"{by:.1}\" width=\"{w:.1}\" height=\"{bh:.1}\" rx=\"3\"/>\
             <text x=\"{dx:.1}\" y=\"{ty:.1}\">{shown}</text></g>",
            id = esc(&s.id),
            state = s.state.as_str(),
            shown = esc(&shown),
            lx = label_w - 8.0,
            ty = y + 16.0,
            by = y + 5.0,
            bh = row_h - 8.0,
            dx = x + w + 6.0,
        );
    }
    h.push_str("</svg>\n");
}

fn section(h: &mut String, title: &str, sec: &Section, numbered: bool) {
    let list = if numbered { "ol" } else { "ul" };
    let _ = writeln!(h, "<section>\n<h2>{title}</h2>\n<{list}>");
    for i in &sec.items {
        let _ = writeln!(h, "<li>{}</li>", inline(i));
    }
    let _ = writeln!(
        h,
        "<li class=\"prompt\">{}</li>\n</{list}>\n</section>",
        esc(&sec.prompt)
    );
}

fn evidence(h: &mut String, r: &Report) {
    h.push_str("<section id=\"evidence\">\n<h2>Appendix: Evidence</h2>\n");
    if !r.run.inputs.is_empty() {
        h.push_str("<p><strong>Inputs:</strong> ");
        let list: Vec<String> = r
            .run
            .inputs
            .iter()
            .map(|i| {
                format!(
                    "<code>{}</code> = <code>{}</code>",
                    esc(&i.name),
                    esc(&i.value)
                )
            })
            .collect();
        h.push_str(&list.join(", "));
        h.push_str("</p>\n");
    }
    if !r.preconditions.is_empty() {
        h.push_str("<p><strong>Preconditions:</strong></p>\n<ul>\n");
        for p in &r.preconditions {
            let _ = writeln!(
                h,
                "<li><code>{}</code> {}{}</li>",
                esc(&p.that),
                if p.ok { "held" } else { "was false" },
                if p.observed.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", esc(&p.observed))
                }
            );
        }
        h.push_str("</ul>\n");
    }
    for s in r.steps.iter().filter(|s| s.state != StepState::NotRun) {
        step(h, s);
    }
    h.push_str("</section>\n");
}

fn step(h: &mut String, s: &StepReport) {
    let _ = writeln!(
        h,
        "<article class=\"step\" id=\"step-{}\">\n<h3><code>{}</code> — {}</h3>\n<ul>",
        esc(&s.id),
        esc(&s.id),
        esc(&s.title)
    );
    let mut li = |k: &str, v: String| {
        let _ = writeln!(h, "<li><strong>{k}:</strong> {v}</li>");
    };
    let mut action = esc(&s.action);
    match s.safety.as_str() {
        "" => {}
        // An undo journaled before its class was recorded (report/steps.rs).
        "unknown" => action.push_str(", safety class unknown"),
        c => action.push_str(&format!(", {}", esc(c))),
    }
    if !s.summary.is_empty() {
        action.push_str(&format!(": <code>{}</code>", esc(&s.summary)));
    }
    li("Action", action);
    let mut outcome = s.state.as_str().to_string();
    if !s.duration.is_empty() {
        outcome.push_str(&format!(" in {}", esc(&s.duration)));
    }
    if !s.attempts.is_empty() {
        outcome.push_str(&format!(", {} attempt(s)", s.attempts.len()));
    }
    li("Outcome", outcome);
    if let Some(x) = &s.skip_reason {
        li("Skipped because", esc(x));
    }
    if let Some(e) = &s.error {
        li("Error", format!("<code>{}</code>", esc(e)));
    }
    if s.attempts.len() > 1 {
        for a in s.attempts.iter().filter(|a| a.ok == Some(false)) {
            li(
                &format!("Attempt {} of {} failed", a.n, a.of),
                format!(
                    "<code>{}</code>",
                    esc(a.error.as_deref().unwrap_or("failed"))
                ),
            );
        }
    }
    for g in &s.gates {
        let mut v = format!(
            "{} → {}",
            esc(&g.prompt),
            g.answer
                .as_deref()
                .map(|a| format!("<code>{}</code>", esc(a)))
                .unwrap_or_else(|| "<em>no answer</em>".into())
        );
        if let Some(by) = &g.by {
            v.push_str(&format!(
                " by {} via <code>{}</code>",
                esc(by),
                esc(g.via.as_deref().unwrap_or(""))
            ));
        }
        if let Some(n) = &g.note {
            v.push_str(&format!(" — note: {}", esc(n)));
        }
        li(&format!("Gate ({})", esc(&g.kind)), v);
    }
    if let (Some(n), true) = (&s.note, s.gates.is_empty()) {
        li("Note", esc(n));
    }
    for c in &s.captures {
        li(
            "Captured",
            format!(
                "<code>{}</code> = <code>{}</code>",
                esc(&c.name),
                esc(&c.value)
            ),
        );
    }
    if let Some(v) = &s.verification {
        li("Verification", inline(&v.summary));
    }
    for w in &s.world {
        li("World change", format!("<code>{}</code>", esc(w)));
    }
    h.push_str("</ul>\n");
    if let Some(a) = &s.analysis {
        analysis(h, a);
    }
    if !s.rendered.is_empty() {
        let _ = writeln!(
            h,
            "<p>Rendered action:</p>\n<pre>{}</pre>",
            esc(&s.rendered)
        );
    }
    if let Some(o) = &s.output {
        let cut = if o.lines_cut > 0 {
            format!(" (last lines; {} earlier lines cut)", o.lines_cut)
        } else {
            String::new()
        };
        let _ = writeln!(h, "<p>Output{cut}:</p>\n<pre>{}</pre>", esc(&o.text));
    }
    h.push_str("</article>\n");
}

/// The checks of an analysis: a table, and a small chart of each metric over the checks
/// with its bounds (inline SVG; no script).
fn analysis(h: &mut String, a: &super::model::AnalysisTable) {
    h.push_str(
        "<p>Analysis checks:</p>\n<table class=\"analysis\">\n<tr><th>check</th><th>time</th>",
    );
    for m in &a.metrics {
        let _ = write!(h, "<th>{}</th>", esc(m));
    }
    h.push_str("<th>verdict</th><th>failed so far</th></tr>\n");
    for r in &a.rows {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td>", r.check, esc(&r.at));
        for v in &r.values {
            let _ = write!(h, "<td>{}</td>", esc(v));
        }
        let _ = writeln!(
            h,
            "<td class=\"{}\">{}</td><td>{}</td></tr>",
            esc(&r.verdict),
            esc(&r.verdict),
            r.failed
        );
    }
    h.push_str("</table>\n");
    let (w, ht, pad) = (360.0_f64, 80.0_f64, 6.0_f64);
    let n = a.rows.len();
    for (i, name) in a.metrics.iter().enumerate() {
        let nums: Vec<Option<f64>> = a
            .rows
            .iter()
            .map(|r| {
                r.numbers
                    .get(i)
                    .copied()
                    .flatten()
                    .filter(|v| v.is_finite())
            })
            .collect();
        let (min_b, max_b) = a.bounds.get(i).copied().unwrap_or((None, None));
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for v in nums.iter().flatten().copied().chain(min_b).chain(max_b) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() || !hi.is_finite() {
            continue;
        }
        if hi - lo < 1e-9 {
            hi += 1.0;
            lo -= 1.0;
        }
        let x = |k: usize| pad + (w - 2.0 * pad) * (k as f64) / ((n.max(2) - 1) as f64);
        let y = |v: f64| pad + (ht - 2.0 * pad) * (1.0 - (v - lo) / (hi - lo));
        let _ = write!(
            h,
            "<figure class=\"analysis-chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\" aria-label=\"{}\">",
            esc(name)
        );
        for b in [min_b, max_b].into_iter().flatten() {
            let _ = write!(
                h,
                "<line x1=\"{pad}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#b00\" stroke-dasharray=\"4 3\"/>",
                w - pad,
                y(b),
                y(b)
            );
        }
        let pts: Vec<String> = nums
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| format!("{:.1},{:.1}", x(k), y(v))))
            .collect();
        if pts.len() > 1 {
            let _ = write!(
                h,
                "<polyline fill=\"none\" stroke=\"#036\" stroke-width=\"1.5\" points=\"{}\"/>",
                pts.join(" ")
            );
        }
        for (k, (v, r)) in nums.iter().zip(&a.rows).enumerate() {
            let color = match r.verdict.as_str() {
                "pass" => "#080",
                "fail" => "#b00",
                _ => "#888",
            };
            match v {
                Some(v) => {
                    let _ = write!(
                        h,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"><title>check {}: {}</title></circle>",
                        x(k),
                        y(*v),
                        r.check,
                        esc(r.values.get(i).map(String::as_str).unwrap_or(""))
                    );
                }
                // No data: a hollow mark at the bottom.
                None => {
                    let _ = write!(
                        h,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"none\" stroke=\"{color}\"><title>check {}: {}</title></circle>",
                        x(k),
                        ht - pad,
                        r.check,
                        esc(r.values.get(i).map(String::as_str).unwrap_or(""))
                    );
                }
            }
        }
        let _ = writeln!(h, "</svg><figcaption>{}</figcaption></figure>", esc(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_become_markup() {
        assert_eq!(
            esc("<script>\"x\" & 'y'"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;"
        );
        assert_eq!(inline("step `<b>` ok"), "step <code>&lt;b&gt;</code> ok");
    }
}

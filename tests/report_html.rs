//! The HTML report opened in headless Chromium: it loads with no console message, shows
//! every step id, and renders to a screenshot. Without Chromium the test says so loudly and
//! passes, except in CI (`CI` set), where a missing browser is a failure.

use crate::report_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use report_support::{Service, Workspace};

fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        crate::common::skip_or_fail(
            "chromium is not installed (Debian: apt-get install -y chromium); CI must run the HTML report test",
        );
    }
    found
}

/// Runs headless Chromium on a local file with a fresh profile; returns (stdout, stderr).
fn browse(chrome: &Path, page: &Path, extra: &[String]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("start chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Console messages Chromium logged for the page (errors, warnings, uncaught exceptions).
fn console(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

#[test]
fn the_html_report_loads_cleanly_and_shows_every_step() {
    let Some(chrome) = chromium() else { return };
    let svc = Service::start();
    let ws = Workspace::new(&["restore-checkout.yaml"]);
    let base = format!("base_url={}", svc.url);
    let run = ws.run(
        "restore-checkout.yaml",
        &[
            "--reason",
            "INC-42",
            "-i",
            &base,
            "--answer",
            "approve=yes",
            "--answer",
            "announce=done",
            "--report",
            "pir.html",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let page = ws.path().join("pir.html");
    let html = std::fs::read_to_string(&page).unwrap();

    // Self-contained: nothing to fetch.
    for banned in [
        "<script",
        "<link",
        " src=",
        "url(",
        "@import",
        "href=\"http",
    ] {
        assert!(!html.contains(banned), "the report refers to `{banned}`");
    }
    assert!(html.contains("<svg class=\"chart\""));
    assert!(html.contains("@media print"));

    let (dom, log) = browse(&chrome, &page, &["--dump-dom".to_string()]);
    assert!(
        console(&log).is_empty(),
        "console messages: {:#?}",
        console(&log)
    );
    for id in ["inspect", "approve", "restart", "health", "announce"] {
        assert!(
            dom.contains(&format!("<code>{id}</code>")),
            "step `{id}` missing from the DOM"
        );
        assert!(
            dom.contains(&format!("id=\"step-{id}\"")),
            "no evidence for `{id}`"
        );
    }
    // The chart has one bar per step that ran.
    assert_eq!(dom.matches("class=\"bar ").count(), 5, "{dom}");
    assert!(dom.contains("Post-Incident Review: Restore the checkout service"));

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-html.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &chrome,
        &page,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,1800".to_string(),
        ],
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "a suspiciously small screenshot ({} bytes)",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}

/// The console check is only worth something if it sees errors: a page that throws must trip it.
#[test]
fn the_console_check_catches_a_broken_page() {
    let Some(chrome) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><p>x</p><script>throw new Error('boom')</script></body></html>",
    )
    .unwrap();
    let (_, log) = browse(&chrome, &page, &["--dump-dom".to_string()]);
    let found = console(&log);
    assert!(found.iter().any(|l| l.contains("boom")), "{log}");
}

//! `runbook check` on invalid runbooks: one snapshot of stderr and the exit code per fixture
//! under `tests/fixtures/invalid/`, plus the pathological files generated here (too large to
//! check in), the JSON output and `--strict`.
//!
//! Review a changed snapshot with `cargo insta review`; every message must name
//! `file:line:col`, say what was expected, and say how to fix it.

use crate::lang_support;

use std::path::Path;

use lang_support::{root, runbook, runbook_in};

fn check(fixture: &Path) -> lang_support::Output {
    let rel = fixture
        .strip_prefix(root())
        .expect("fixtures are inside the repository");
    runbook(&["check", rel.to_str().expect("UTF-8 path")])
}

#[test]
fn invalid() {
    insta::glob!("fixtures/invalid/*", |path| {
        let out = check(path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // Warnings alone do not fail `check`; those fixtures are the warning classes.
        let warns_only = [
            "missing-undo.yaml",
            "terminal-unconfirmed.yaml",
            "engine-variable.yaml",
        ];
        let expected = if warns_only.contains(&name.as_str()) {
            0
        } else {
            2
        };
        assert_eq!(out.code, expected, "{name}:\n{}", out.stderr);
        insta::assert_snapshot!(out.exit_and_stderr());
    });
}

/// The acceptance criteria, asserted directly so that a careless snapshot update cannot
/// accept a regression.
#[test]
fn misspelt_top_level_key_names_its_position_and_the_right_key() {
    let out = runbook(&["check", "tests/fixtures/invalid/unknown-top-level-key.yaml"]);
    assert_eq!(out.code, 2);
    assert!(out
        .stderr
        .contains("tests/fixtures/invalid/unknown-top-level-key.yaml:7:1"));
    assert!(out.stderr.contains("unknown field `stpes`"));
    assert!(out.stderr.contains("did you mean `steps`?"));
}

#[test]
fn undefined_step_reference_points_at_the_reference() {
    let out = runbook(&["check", "tests/fixtures/invalid/undefined-step.yaml"]);
    assert_eq!(out.code, 2);
    // Line 14 is `image: "{{ steps.nope.image }}"`; column 54 is where `steps.nope.image` starts.
    let line = std::fs::read_to_string(root().join("tests/fixtures/invalid/undefined-step.yaml"))
        .unwrap()
        .lines()
        .nth(13)
        .unwrap()
        .to_string();
    assert_eq!(line.find("steps.nope.image").map(|c| c + 1), Some(54));
    assert!(out
        .stderr
        .contains("tests/fixtures/invalid/undefined-step.yaml:14:54"));
    assert!(out.stderr.contains("undefined step `nope`"));
}

#[test]
fn three_errors_are_reported_in_one_run() {
    let out = runbook(&["check", "tests/fixtures/invalid/three-errors.yaml"]);
    assert_eq!(out.code, 2);
    for at in [":13:48", ":14:14", ":17:50"] {
        assert!(out.stderr.contains(at), "no error at {at}:\n{}", out.stderr);
    }
    assert!(out.stderr.contains("3 errors"));
}

#[test]
fn warnings_fail_only_with_strict() {
    let fixture = "tests/fixtures/invalid/missing-undo.yaml";
    let lenient = runbook(&["check", fixture]);
    assert_eq!(lenient.code, 0, "{}", lenient.stderr);
    assert!(lenient.stderr.contains("warning[missing-undo]"));
    let strict = runbook(&["check", "--strict", fixture]);
    assert_eq!(strict.code, 2, "{}", strict.stderr);
    insta::assert_snapshot!(strict.exit_and_stderr());
}

#[test]
fn json_diagnostics() {
    let out = runbook(&[
        "check",
        "--format",
        "json",
        "tests/fixtures/invalid/three-errors.yaml",
        "tests/fixtures/invalid/missing-undo.yaml",
    ]);
    assert_eq!(out.code, 2);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["files"], 2);
    assert_eq!(v["errors"], 3);
    assert_eq!(v["warnings"], 1);
    for d in v["diagnostics"].as_array().unwrap() {
        for field in ["severity", "code", "file", "line", "column", "message"] {
            assert!(d.get(field).is_some(), "diagnostic without `{field}`: {d}");
        }
    }
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn a_directory_is_checked_recursively() {
    let out = runbook(&["check", "tests/fixtures/invalid"]);
    assert_eq!(out.code, 2);
    let yaml = std::fs::read_dir(root().join("tests/fixtures/invalid"))
        .unwrap()
        .filter(|e| {
            let p = e.as_ref().unwrap().path();
            matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml"))
        })
        .count();
    assert!(
        out.stderr.contains(&format!("checked {yaml} files")),
        "{}",
        out.stderr.lines().last().unwrap_or_default()
    );
}

/// Writes `content` to `name` in a fresh directory and checks it from there, so that the
/// snapshot shows the bare file name.
fn check_generated(files: &[(&str, Vec<u8>)]) -> lang_support::Output {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let mut args = vec!["check"];
    args.extend(files.iter().map(|(n, _)| *n));
    runbook_in(dir.path(), &args, &[])
}

#[test]
fn a_file_over_the_size_limit_is_refused_unread() {
    // A valid runbook made huge by its description: 50 MB, as in an accidental log paste.
    let mut text = b"apiVersion: runbook/v1\nkind: Runbook\nmetadata:\n  name: big\n  title: Big\n  description: |\n".to_vec();
    while text.len() < 50 * 1024 * 1024 {
        text.extend_from_slice(b"    2026-01-01T00:00:00Z INFO request served in 12ms\n");
    }
    text.extend_from_slice(b"steps: []\n");
    let out = check_generated(&[("too-large.yaml", text)]);
    assert_eq!(out.code, 2);
    insta::assert_snapshot!(out.exit_and_stderr());
}

#[test]
fn ten_thousand_levels_of_nesting() {
    let depth = 10_000;
    let flow_seq = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let flow_map = format!("steps: {}1{}", "{a: ".repeat(depth), "}".repeat(depth));
    let block_seq = format!("steps:\n  {}1\n", "- ".repeat(depth));
    let out = check_generated(&[
        ("deep-flow-sequence.yaml", flow_seq.into_bytes()),
        ("deep-flow-mapping.yaml", flow_map.into_bytes()),
        ("deep-block-sequence.yaml", block_seq.into_bytes()),
    ]);
    assert_eq!(out.code, 2);
    assert_eq!(out.stderr.matches("nested more than").count(), 3);
    insta::assert_snapshot!(out.exit_and_stderr());
}

#[test]
fn endless_input_is_cut_off() {
    // A device that never ends must not be read to the end.
    if Path::new("/dev/zero").exists() {
        let out = runbook(&["check", "/dev/zero"]);
        assert_eq!(out.code, 2);
        assert!(
            out.stderr.contains("runbooks are limited to"),
            "{}",
            out.stderr
        );
    }
}

/// Each error of `runbook check` on `fixture`, as `line:col message` (the first line of each
/// diagnostic), for the direct assertions below.
fn errors_of(fixture: &str) -> Vec<String> {
    let out = runbook(&["check", "--format", "json", fixture]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is JSON");
    v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "error")
        .map(|d| {
            format!(
                "{}:{} {}",
                d["line"],
                d["column"],
                d["message"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn schema_errors_do_not_hide_the_semantic_errors_of_the_same_file() {
    let errors = errors_of("tests/fixtures/invalid/schema-and-semantic.yaml");
    let has = |at: &str, text: &str| {
        assert!(
            errors.iter().any(|e| e.starts_with(at) && e.contains(text)),
            "no `{text}` at {at}:\n{errors:#?}"
        )
    };
    // Schema errors ...
    has("10:20 ", "`int` is not a valid value");
    has("13:14 ", "`confirm` takes a mapping");
    has("15:13 ", "`terminall` is not a valid value");
    has("20:7 ", "unknown field `json`");
    has("27:23 ", "`120` is not a duration");
    has("29:13 ", "`manual` takes a mapping");
    // ... and, in the same run, the semantic ones, including inside the values the schema
    // errors were about (the confirm's prompt, the misplaced `json`, the manual's text).
    has("13:33 ", "undefined input `plan_ID`");
    has("20:53 ", "`run.operater` does not exist");
    has("24:71 ", "undefined input `plan`");
    has("26:34 ", "expression syntax error");
    has("29:40 ", "undefined step `rollbak`");
    // Each once, and no cascade: `type: int` is read as `integer`, so its default `3` fits.
    assert_eq!(errors.len(), 12, "{errors:#?}");
    assert!(!errors.iter().any(|e| e.contains("default does not fit")));
}

#[test]
fn a_number_where_a_duration_goes_says_which_duration_to_write() {
    let errors = errors_of("tests/fixtures/invalid/duration-without-unit.yaml");
    for (at, n) in [
        ("7:16", 15),
        ("10:11", 30),
        ("12:14", 10),
        ("13:34", 2),
        ("17:23", 120),
        ("17:38", 5),
    ] {
        let want = format!("{at} `{n}` is not a duration: write `{n}s`");
        assert!(errors.contains(&want), "no `{want}`:\n{errors:#?}");
    }
    assert_eq!(errors.len(), 6, "{errors:#?}");
    let out = runbook(&["check", "tests/fixtures/invalid/duration-without-unit.yaml"]);
    assert!(!out.stderr.contains("quote"), "{}", out.stderr);
    assert!(!out.stderr.contains("must be"), "{}", out.stderr);
}

#[test]
fn shell_placeholders_name_the_template_to_write() {
    let errors = errors_of("tests/fixtures/invalid/shell-placeholders.yaml");
    let want = [
        "14:35 `$PLAN_ID` is shell syntax, which is not expanded here: write `{{ inputs.plan_id }}`",
        "19:15 `${ORCH_URL}` is shell syntax, which is not expanded here: write `{{ env.ORCH_URL }}`",
        "20:43 `$TOKEN` is shell syntax, which is not expanded here: write `{{ secrets.token }}`",
        "21:22 `${OPERATOR}` is shell syntax, which is not expanded here: write `{{ env.OPERATOR }}`",
    ];
    assert_eq!(errors, want);
    // `$5` is not a placeholder, and a script's `$VARIABLES` are the shell's.
    let out = runbook(&[
        "check",
        "--format",
        "json",
        "tests/fixtures/invalid/shell-placeholders.yaml",
    ]);
    assert!(
        out.stdout
            .contains("add `OPERATOR` to the runbook's `env:` list first"),
        "{}",
        out.stdout
    );
}

#[test]
fn text_where_a_mapping_goes_says_which_key_it_belongs_under() {
    let out = runbook(&["check", "tests/fixtures/invalid/text-for-mapping.yaml"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("text-for-mapping.yaml:9:14"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(
        "put the text under `prompt:`, e.g. `confirm: { prompt: \"Restart the worker?\" }`"
    ));
    assert!(
        out.stderr.contains("text-for-mapping.yaml:14:13"),
        "{}",
        out.stderr
    );
    assert!(out
        .stderr
        .contains("`manual` takes a mapping, not text: write `manual: { instructions: ... }`"));
}

#[test]
fn a_key_one_level_off_says_where_it_goes() {
    let out = runbook(&["check", "tests/fixtures/invalid/key-one-level-off.yaml"]);
    assert_eq!(out.code, 2);
    for (at, help) in [
        (
            "11:7",
            "`json` belongs one level down, in `steps[0].http.request`: move it under `request:`",
        ),
        (
            "15:7",
            "`method` belongs one level down, in `steps[1].http.request`: move it under `request:`",
        ),
        (
            "17:7",
            "`verify` belongs one level up, in `steps[1]`: move it out of `steps[1].http`",
        ),
    ] {
        assert!(
            out.stderr.contains(&format!("key-one-level-off.yaml:{at}")),
            "{at}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(help), "{help}: {}", out.stderr);
    }
    // The `request` the keys belong in is not reported missing as well.
    assert!(
        !out.stderr.contains("missing field `request`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("4 errors"), "{}", out.stderr);
}

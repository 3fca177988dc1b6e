//! The checker never panics, whatever the bytes: random input, and valid runbooks with random
//! edits (the likelier kind of bad input, which gets further into the checker).

use std::path::Path;

use proptest::prelude::*;

fn check(bytes: &[u8]) -> runbook::load::Report {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fuzz.yaml");
    runbook::load::check_bytes("fuzz.yaml", &path, bytes)
}

/// The examples, as seeds for mutation.
fn seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    out.sort();
    out
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Replace(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes that matter to YAML and templates, plus a few arbitrary ones.
    let interesting = prop::sample::select(b"{}[]:,-#&*!|>'\"\n\t %.0{{}}\xff\x00".to_vec());
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, n)| Edit::Delete(at, n)),
        (
            any::<usize>(),
            prop::collection::vec(interesting.clone(), 1..6)
        )
            .prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<usize>(), interesting).prop_map(|(at, b)| Edit::Replace(at, b)),
    ]
}

fn apply(mut text: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = text.len().max(1);
        match e {
            Edit::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(text.len());
                text.drain(at.min(end)..end);
            }
            Edit::Insert(at, b) => {
                let at = at % (text.len() + 1);
                text.splice(at..at, b.iter().copied());
            }
            Edit::Replace(at, b) => {
                if !text.is_empty() {
                    let at = at % text.len();
                    text[at] = *b;
                }
            }
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(300), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let r = check(&bytes);
        // Either a runbook, or at least one error saying why not: never silence.
        prop_assert!(r.has_errors() || r.checked.is_some());
    }

    #[test]
    fn edited_runbooks_never_panic(
        seed in 0usize..16,
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        let seeds = seeds();
        let text = apply(seeds[seed % seeds.len()].clone(), &edits);
        let r = check(&text);
        prop_assert!(r.has_errors() || r.checked.is_some());
        // Every diagnostic renders, and points inside the file (or at the whole file).
        let lines = String::from_utf8_lossy(&text).lines().count() as u32;
        for d in &r.diagnostics {
            prop_assert!(d.line <= lines + 1, "{d} is past the end ({lines} lines)");
            let _ = d.render(r.source.as_deref(), false);
        }
    }
}

//! Replays every kept input (`corpus/<target>/`, found by `cargo fuzz run`, and
//! `regressions/<target>/`, inputs that once failed) through its check, so a fuzzing
//! finding once fixed stays fixed in the ordinary test run.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            let data = std::fs::read(e.path()).expect("readable corpus file");
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(
                r.is_ok(),
                "{target}: {} fails its check",
                e.path().display()
            );
            n += 1;
        }
    }
    assert!(
        n > 0,
        "{target}: no kept inputs under fuzz/corpus or fuzz/regressions"
    );
}

#[test]
fn message() {
    replay("message", rapport_fuzz::message);
}
#[test]
fn jsonl_line() {
    replay("jsonl_line", rapport_fuzz::jsonl_line);
}
#[test]
fn segment() {
    replay("segment", rapport_fuzz::segment);
}
#[test]
fn identifier() {
    replay("identifier", rapport_fuzz::identifier);
}
#[test]
fn import_csv() {
    replay("import_csv", rapport_fuzz::import_csv);
}
#[test]
fn edgelist() {
    replay("edgelist", rapport_fuzz::edgelist);
}
#[test]
fn siwe() {
    replay("siwe", rapport_fuzz::siwe);
}
#[test]
fn email() {
    replay("email", rapport_fuzz::email);
}

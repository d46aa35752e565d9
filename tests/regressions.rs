//! Every input that once crashed a fuzz target or the mutation test, kept in
//! `fuzz/regressions/` and replayed through the same harness
//! (`fuzz/harness.rs`). A file's name starts with its target:
//! `gguf-`, `v1-`, `tokenizer-`, `state-`, `wav-`, `encode-` (see fuzz/README.md).
//! Each must now load or fail with an error: no panic.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::panic::{catch_unwind, AssertUnwindSafe};

#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut n = 0;
    let mut bad = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|e| e != "md"))
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&p).unwrap();
        let target = name.split('-').next().unwrap();
        let run: fn(&[u8]) -> mamba::Result<()> = match target {
            "gguf" => harness::gguf,
            "v1" => harness::v1_split,
            "tokenizer" => harness::tokenizer,
            "state" => harness::state,
            "wav" => harness::wav,
            "encode" => harness::encode_split,
            _ => panic!("{name}: unknown target prefix {target:?}"),
        };
        n += 1;
        match catch_unwind(AssertUnwindSafe(|| run(&data))) {
            Ok(r) => println!(
                "{name}: {}",
                r.map_or_else(|e| format!("{:?}", e.kind), |_| "Ok".into())
            ),
            Err(_) => bad.push(name),
        }
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
    assert!(bad.is_empty(), "these inputs panic: {bad:?}");
}

/// `cargo test` builds with overflow checks (`[profile.dev] overflow-checks = true`,
/// which `[profile.test]` inherits): arithmetic overflow in the library panics
/// in the tests instead of wrapping silently.
#[test]
#[cfg(debug_assertions)]
fn tests_run_with_overflow_checks() {
    let x: u8 = std::hint::black_box(255);
    let r = std::panic::catch_unwind(|| x + std::hint::black_box(1));
    assert!(r.is_err(), "overflow checks are off");
}

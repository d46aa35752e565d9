//! A model file truncated while the model is in use (docs/hardening.md).
//!
//! - Loaded with `LoadOptions { copy: true }` (C: `mamba_load_options.copy_file = 1`)
//!   the model holds its own copy: truncating or rewriting the file changes nothing.
//! - Loaded mapped (the default), the pages past the new end are gone: the next
//!   access raises SIGBUS. The second test shows that in a child process.

use mamba::{LoadOptions, Session};
use std::sync::Arc;

fn fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm/B.gguf")
}

fn scratch_copy(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("libmamba-mapped-{tag}-{}.gguf", std::process::id()));
    std::fs::copy(fixture(), &p).unwrap();
    p
}

/// Cuts the file to 0 bytes, keeping its inode (what a mapping sees).
fn truncate_in_place(p: impl AsRef<std::path::Path>) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .set_len(0)
        .unwrap();
}

fn logits(m: Arc<mamba::Model>) -> Vec<f32> {
    let mut s = Session::new(m);
    s.forward_tokens(&[1, 2, 3]).unwrap().to_vec()
}

#[test]
fn copied_model_survives_truncation_of_its_file() {
    let want = logits(Arc::new(
        mamba::load(fixture().to_str().unwrap(), &LoadOptions::default()).unwrap(),
    ));
    let p = scratch_copy("copy");
    let opts = LoadOptions {
        copy: true,
        ..Default::default()
    };
    let m = Arc::new(mamba::load(p.to_str().unwrap(), &opts).unwrap());
    // Truncate the file to nothing, then overwrite it with garbage.
    truncate_in_place(&p);
    std::fs::write(&p, b"garbage").unwrap();
    assert_eq!(logits(m), want, "the copied model changed with its file");
    std::fs::remove_file(&p).unwrap();
}

/// Child half of the next test: loads mapped, truncates, runs (expect SIGBUS).
#[test]
#[ignore = "run as a child process by mapped_model_truncated_in_use_gets_sigbus"]
fn mapped_child() {
    let Ok(p) = std::env::var("LIBMAMBA_MAPPED_CHILD") else {
        return;
    };
    let m = Arc::new(mamba::load(&p, &LoadOptions::default()).unwrap());
    truncate_in_place(&p);
    let _ = logits(m);
    println!("still alive");
}

#[test]
fn mapped_model_truncated_in_use_gets_sigbus() {
    use std::os::unix::process::ExitStatusExt;
    let p = scratch_copy("mmap");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "mapped_child", "--ignored", "--nocapture"])
        .env("LIBMAMBA_MAPPED_CHILD", &p)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&p);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "expected SIGBUS, got {:?}; stdout: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `LoadOptions::huge_pages` maps the same bytes: the same logits, to the
/// bit, as a default load. The file is padded past 4 MiB (GGUF ignores
/// bytes after its tensor data) so that the option's remapping path runs:
/// a file just written sits in the page cache in small pages, written back
/// first so that dropping them is allowed.
#[test]
fn huge_page_mapping_gives_the_same_model() {
    let p = scratch_copy("huge");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&vec![0u8; 6 << 20]).unwrap();
        f.sync_all().unwrap();
    }
    let path = p.to_str().unwrap();
    let want = logits(Arc::new(
        mamba::load(path, &LoadOptions::default()).unwrap(),
    ));
    let opts = LoadOptions {
        huge_pages: true,
        ..Default::default()
    };
    let m = Arc::new(mamba::load(path, &opts).unwrap());
    #[cfg(target_os = "linux")]
    {
        // Whatever the kernel managed, as far as it tells (kernels before
        // 4.18 have no FilePmdMapped line).
        let at = m.weights.layers[0].mixer.in_proj.bytes().as_ptr();
        if let Some(share) = mamba::format::huge_page_share(at) {
            assert!((0.0..=1.0).contains(&share), "{share}");
            eprintln!(
                "huge_pages: {:.0}% of the mapping in 2 MiB pages",
                100.0 * share
            );
        }
    }
    let got = logits(m);
    assert_eq!(got.len(), want.len());
    assert!(got
        .iter()
        .zip(&want)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    std::fs::remove_file(&p).unwrap();
}

//! Bad input gets an error that names the file and the problem, never a crash.

mod common;
use common::*;
use mamba::{ErrorKind, LoadOptions, Session};
use std::sync::Arc;

fn tmp(name: &str, bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("mamba-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_string_lossy().into_owned()
}

fn load_err(path: &str) -> mamba::Error {
    match mamba::load(path, &LoadOptions::default()) {
        Ok(_) => panic!("{path}: loaded, expected an error"),
        Err(e) => e,
    }
}

fn header(ints: [i32; 8]) -> Vec<u8> {
    let mut h = vec![0u8; 256];
    h[0..4].copy_from_slice(&0x4d616d62u32.to_le_bytes());
    h[4..8].copy_from_slice(&1i32.to_le_bytes());
    for (i, v) in ints.iter().enumerate() {
        h[8 + 4 * i..12 + 4 * i].copy_from_slice(&v.to_le_bytes());
    }
    h
}

#[test]
fn missing_file_names_the_path() {
    let e = load_err("/nonexistent/model.bin");
    assert_eq!(e.kind, ErrorKind::Io);
    assert!(
        e.message.contains("/nonexistent/model.bin"),
        "{}",
        e.message
    );
}

#[test]
fn empty_and_wrong_magic() {
    let p = tmp("empty.bin", b"");
    let e = load_err(&p);
    assert!(
        e.message.contains("empty") && e.message.contains("empty.bin"),
        "{}",
        e.message
    );
    let p = tmp("magic.bin", b"NOPE and more bytes here");
    let e = load_err(&p);
    assert_eq!(e.kind, ErrorKind::Format);
    assert!(
        e.message.contains("unknown file format") && e.message.contains("magic.bin"),
        "{}",
        e.message
    );
}

#[test]
fn truncated_v1_files_are_rejected_at_every_length() {
    let good = std::fs::read(fixture("lm/B.bin")).unwrap();
    // Header cut short, body cut at many points, one byte missing, one extra.
    let mut cuts: Vec<usize> = vec![4, 8, 100, 255, 256, 257, good.len() - 1];
    cuts.extend((256..good.len()).step_by(good.len() / 37));
    for cut in cuts {
        let p = tmp("trunc.bin", &good[..cut]);
        let e = load_err(&p);
        assert_eq!(e.kind, ErrorKind::Format, "cut {cut}: {}", e.message);
        assert!(e.message.contains("trunc.bin"), "cut {cut}: {}", e.message);
    }
    let mut longer = good.clone();
    longer.push(0);
    let e = load_err(&tmp("long.bin", &longer));
    assert!(
        e.message.contains("needs") && e.message.contains("the file has"),
        "{}",
        e.message
    );
}

#[test]
fn wrong_version_and_absurd_dimensions() {
    let mut h = header([2, 10, 8, 16, 1, 4, 4, 1]);
    h[4..8].copy_from_slice(&7i32.to_le_bytes());
    let e = load_err(&tmp("ver.bin", &h));
    assert!(e.message.contains("version 7"), "{}", e.message);

    // Dimensions whose products overflow or exceed the file.
    for (name, ints) in [
        ("neg", [2, 10, -8, 16, 1, 4, 4, 1]),
        ("zero", [0, 10, 8, 16, 1, 4, 4, 1]),
        (
            "huge",
            [
                i32::MAX,
                i32::MAX,
                i32::MAX,
                i32::MAX,
                i32::MAX,
                i32::MAX,
                i32::MAX,
                1,
            ],
        ),
        (
            "big",
            [4000, 1 << 24, 1 << 24, 1 << 24, 1 << 24, 4000, 1000, 0],
        ),
        ("exceeds", [24, 50280, 768, 1536, 48, 16, 4, 1]),
        ("shared", [2, 10, 8, 16, 1, 4, 4, 7]),
    ] {
        let e = load_err(&tmp(&format!("{name}.bin"), &header(ints)));
        assert_eq!(e.kind, ErrorKind::Format, "{name}: {}", e.message);
        assert!(
            e.message.contains(&format!("{name}.bin")),
            "{name}: {}",
            e.message
        );
    }
}

#[test]
fn copy_option_loads_the_same_model() {
    let a = mamba::load(&fixture("lm/B.bin"), &LoadOptions::default()).unwrap();
    let b = mamba::load(
        &fixture("lm/B.bin"),
        &LoadOptions {
            copy: true,
            ..Default::default()
        },
    )
    .unwrap();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut sa = Session::new(a);
    let mut sb = Session::new(b);
    assert_eq!(sa.forward(5).unwrap(), sb.forward(5).unwrap());
}

#[test]
fn token_out_of_range() {
    let m = Arc::new(mamba::load(&fixture("lm/B.bin"), &LoadOptions::default()).unwrap());
    let mut s = Session::new(m.clone());
    let e = s.forward(m.config.padded_vocab as u32).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.contains("out of range"), "{}", e.message);
    assert!(s.forward_tokens(&[1, 2, 100000]).is_err());
    assert!(s.forward_tokens(&[]).is_err());
    assert_eq!(s.position(), 0, "failed calls leave the session unchanged");
}

#[test]
fn state_blob_checks() {
    let a = Arc::new(mamba::load(&fixture("lm/A.bin"), &LoadOptions::default()).unwrap());
    let b = Arc::new(mamba::load(&fixture("lm/B.bin"), &LoadOptions::default()).unwrap());
    let mut sa = Session::new(a.clone());
    sa.forward_tokens(&[1, 2, 3]).unwrap();
    let mut blob = vec![0u8; sa.state_size()];
    sa.state_get(&mut blob).unwrap();
    let mut small = vec![0u8; 10];
    assert!(sa.state_get(&mut small).is_err());

    // Wrong model.
    let mut sb = Session::new(b);
    let e = sb.state_set(&blob).unwrap_err();
    assert_eq!(e.kind, ErrorKind::StateMismatch);
    assert!(e.message.contains("model"), "{}", e.message);
    // Wrong size, wrong magic, corrupted payload, empty.
    let mut sa2 = Session::new(a);
    for bad in [
        blob[..blob.len() - 4].to_vec(),
        [blob.clone(), vec![0; 4]].concat(),
        {
            let mut v = blob.clone();
            v[0] = b'X';
            v
        },
        {
            let mut v = blob.clone();
            let n = v.len();
            v[n - 1] ^= 0x40;
            v
        },
        {
            let mut v = blob.clone();
            v[4] = 9;
            v
        },
        vec![],
    ] {
        let e = sa2.state_set(&bad).unwrap_err();
        assert_eq!(e.kind, ErrorKind::StateMismatch, "{}", e.message);
    }
    assert_eq!(sa2.position(), 0);
    sa2.state_set(&blob).unwrap();
    assert_eq!(sa2.position(), 3);
}

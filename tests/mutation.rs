//! Mutation test: small valid files of every format the library reads, each
//! mutated thousands of times (truncations, bit flips, header edits: dims,
//! counts, offsets, types, string lengths) with a fixed-seed PRNG, then
//! loaded and, where loading succeeds, used (a forward pass, an encode, MFCC
//! features) through the same code as the fuzz targets (`fuzz/harness.rs`).
//!
//! Fails when any input panics (caught with `catch_unwind`: it must never
//! catch anything), or when any single allocation exceeds the budget below.
//! An abort (or a real out-of-bounds read, which ASan/valgrind would see)
//! kills the test binary, which fails the test too.
//!
//! Allocation budget for one input of `n` bytes: `64 * n + 64 MiB` for any
//! single allocation. Why: a loader may legitimately convert quantized
//! weights to f32 (4x for int8/bfloat8/q8, 2x for f16), the session's
//! buffers are sized by dims that the file's tensors back (state and
//! scratch are bounded by a few times the largest tensor), and a tokenizer
//! builds maps whose entries are a few times the size of the bytes that
//! describe them. 64x leaves room for all of that; the 64 MiB constant covers
//! fixed costs (the KWS front end's FFT tables, thread pools, the state
//! model). What it catches is the real bug class: a count or dimension read
//! from a header and trusted for `Vec::with_capacity` or `vec![0; n]`, which
//! asks for gigabytes from a file of kilobytes.
//!
//! Prints the count of inputs tried and the outcome histogram per format.

#[path = "../fuzz/harness.rs"]
mod harness;

mod common;
use common::Rng;
use mamba::{Error, ErrorKind, Result};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Any single allocation above LIMIT is recorded in OVER (the largest one);
/// above HARD_LIMIT the allocator fails it (the process aborts: test fails).
struct Counting;
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
static OVER: AtomicUsize = AtomicUsize::new(0);
const HARD_LIMIT: usize = 4 << 30;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        check(l.size());
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        check(l.size());
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        check(new);
        System.realloc(p, l, new)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
}

#[inline]
fn check(size: usize) {
    if size > LIMIT.load(Relaxed) {
        OVER.fetch_max(size, Relaxed);
        if size > HARD_LIMIT {
            // Fail the allocation rather than exhaust the machine.
            std::process::abort();
        }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Values that break assumptions when written over a header field.
const SPECIAL: [u64; 16] = [
    0,
    1,
    2,
    3,
    7,
    255,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
    1 << 40,
];

/// One mutant of `base`. `header` is the byte range holding the structure
/// (dims, counts, offsets, types, string lengths): most edits land there.
fn mutate(rng: &mut Rng, base: &[u8], header: usize) -> Vec<u8> {
    let mut v = base.to_vec();
    let hdr = header.clamp(1, v.len().max(1));
    let pos = |rng: &mut Rng, len: usize| -> usize {
        if rng.below(4) == 0 {
            rng.below(len)
        } else {
            rng.below(hdr.min(len))
        }
    };
    match rng.below(6) {
        // Truncation (anywhere, often inside the header).
        0 => {
            let n = pos(rng, v.len() + 1);
            v.truncate(n);
        }
        // 1..4 random bit flips.
        1 => {
            for _ in 0..1 + rng.below(4) {
                if v.is_empty() {
                    break;
                }
                let i = pos(rng, v.len());
                v[i] ^= 1 << rng.below(8);
            }
        }
        // A header field overwritten with a special value (u8/u16/u32/u64, any offset).
        2 | 3 => {
            let width = [1, 2, 4, 4, 8, 8][rng.below(6)];
            let val = match rng.below(4) {
                0 => base.len() as u64 + rng.below(3) as u64,
                1 => rng.next(),
                _ => SPECIAL[rng.below(SPECIAL.len())],
            };
            if v.len() >= width {
                let i = pos(rng, v.len() - width + 1);
                v[i..i + width].copy_from_slice(&val.to_le_bytes()[..width]);
            }
        }
        // A field incremented or decremented by a little (off-by-one dims/counts).
        4 => {
            if v.len() >= 4 {
                let i = pos(rng, v.len() - 3);
                let x = u32::from_le_bytes(v[i..i + 4].try_into().unwrap());
                let d = [1u32, 2, 8, 32, 256][rng.below(5)];
                let y = if rng.below(2) == 0 {
                    x.wrapping_add(d)
                } else {
                    x.wrapping_sub(d)
                };
                v[i..i + 4].copy_from_slice(&y.to_le_bytes());
            }
        }
        // Bytes inserted or deleted (shifts every later offset), or appended.
        _ => {
            let i = pos(rng, v.len() + 1);
            match rng.below(3) {
                0 => {
                    let n = (1 + rng.below(8)).min(v.len() - i.min(v.len()));
                    v.drain(i..i + n);
                }
                1 => {
                    for _ in 0..1 + rng.below(8) {
                        v.insert(i, rng.next() as u8);
                    }
                }
                _ => v.extend((0..1 + rng.below(64)).map(|_| rng.next() as u8)),
            }
        }
    }
    v
}

/// Text mutations for tokenizer.json: digits turned into huge or negative
/// numbers, JSON punctuation dropped or doubled, strings cut.
fn mutate_json(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    let i = rng.below(v.len());
    match rng.below(4) {
        0 => {
            // Find a number at or after i and replace it.
            if let Some(s) = (i..v.len()).find(|&k| v[k].is_ascii_digit()) {
                let e = (s..v.len())
                    .find(|&k| !v[k].is_ascii_digit())
                    .unwrap_or(v.len());
                let rep: &[u8] = [
                    &b"4294967295"[..],
                    b"-1",
                    b"99999999999999999999",
                    b"1e308",
                    b"0",
                    b"2147483648",
                    b"1.5",
                    b"null",
                ][rng.below(8)];
                v.splice(s..e, rep.iter().copied());
            }
        }
        1 => {
            if let Some(s) = (i..v.len()).find(|&k| b"{}[]:,\"".contains(&v[k])) {
                if rng.below(2) == 0 {
                    v.remove(s);
                } else {
                    let c = v[s];
                    v.insert(s, c);
                }
            }
        }
        2 => {
            let keys: [&[u8]; 6] = [
                b"\"BPE\"",
                b"\"ByteLevel\"",
                b"\"NFC\"",
                b"\"merges\"",
                b"\"vocab\"",
                b"\"added_tokens\"",
            ];
            let k = keys[rng.below(keys.len())];
            if let Some(s) = v.windows(k.len()).position(|w| w == k) {
                let rep: &[u8] = [&b"\"x\""[..], b"[]", b"{}", b"null", b"7"][rng.below(5)];
                v.splice(s..s + k.len(), rep.iter().copied());
            }
        }
        _ => v = mutate(rng, base, base.len()),
    }
    v
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: &str) -> Vec<u8> {
    std::fs::read(root().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn kind_name(k: ErrorKind) -> &'static str {
    match k {
        ErrorKind::InvalidArgument => "InvalidArgument",
        ErrorKind::Io => "Io",
        ErrorKind::Format => "Format",
        ErrorKind::Unsupported => "Unsupported",
        ErrorKind::OutOfMemory => "OutOfMemory",
        ErrorKind::StateMismatch => "StateMismatch",
        ErrorKind::Internal => "Internal",
    }
}

#[derive(Default)]
struct Tally {
    tried: usize,
    outcomes: BTreeMap<&'static str, usize>,
    failures: Vec<String>,
}

impl Tally {
    /// Runs one input under the allocation limit and catch_unwind.
    fn run(&mut self, fmt: &str, input: &[u8], extra: usize, f: impl FnOnce() -> Result<()>) {
        self.tried += 1;
        let limit = 64 * (input.len() + extra) + (64 << 20);
        OVER.store(0, Relaxed);
        LIMIT.store(limit, Relaxed);
        let r = catch_unwind(AssertUnwindSafe(f));
        LIMIT.store(usize::MAX, Relaxed);
        let over = OVER.load(Relaxed);
        let outcome = match &r {
            Ok(Ok(())) => "Ok",
            Ok(Err(Error { kind, .. })) => kind_name(*kind),
            Err(_) => "PANIC",
        };
        *self.outcomes.entry(outcome).or_default() += 1;
        let problem = if r.is_err() {
            Some("panicked".to_string())
        } else if matches!(
            r,
            Ok(Err(Error {
                kind: ErrorKind::Internal,
                ..
            }))
        ) {
            Some("Internal error".to_string())
        } else if over > 0 {
            Some(format!(
                "allocated {over} bytes at once (limit {limit} for {} bytes of input)",
                input.len() + extra
            ))
        } else {
            None
        };
        if let Some(p) = problem {
            let dir = root().join("target/mutation-failures");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{fmt}-{}", self.failures.len()));
            let _ = std::fs::write(&file, input);
            self.failures
                .push(format!("{fmt}: {p} (input saved to {})", file.display()));
        }
    }
}

/// Restores the state blob checksum after a payload edit, so the edit reaches the floats.
fn fix_state_checksum(b: &mut [u8]) {
    if b.len() < 48 {
        return;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in &b[48..] {
        h ^= x as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    b[40..48].copy_from_slice(&h.to_le_bytes());
}

#[test]
fn mutated_files_never_panic_or_overallocate() {
    // The allocation check works: one allocation over the limit is seen.
    LIMIT.store(1 << 20, Relaxed);
    let v = std::hint::black_box(vec![0u8; 2 << 20]);
    LIMIT.store(usize::MAX, Relaxed);
    drop(v);
    assert_eq!(
        OVER.swap(0, Relaxed),
        2 << 20,
        "the counting allocator saw nothing"
    );

    // Warm the statics (state model, KWS tables, tokenizers) outside the limits.
    let _ = harness::state(&[]);
    let _ = harness::wav(&read("tests/fixtures/audio/sf_pcm16.wav"));
    let _ = harness::encode_split(b"\0x");
    let _ = harness::gguf(&read("tests/fixtures/gguf/mamba_q8_0_tok.gguf"));

    let mut rng = Rng(0x5eed_1e55_c0ff_ee00);
    let mut all: BTreeMap<&'static str, Tally> = BTreeMap::new();
    // Debug builds are slower: scale the counts so the test stays well under a minute.
    let scale = if cfg!(debug_assertions) { 24 } else { 96 };

    // GGUF: edits mostly in the metadata + tensor-info region.
    let ggufs = [
        "tests/fixtures/gguf/mamba_q8_0_tok.gguf",
        "tests/fixtures/gguf/mamba_bf16_v2.gguf",
        "tests/fixtures/gguf/mamba_f16_untied.gguf",
        "tests/fixtures/gguf/mamba_q8row.gguf",
        "tests/fixtures/gguf/kv_types.gguf",
        "tests/fixtures/lm/C.q8_0.gguf",
    ];
    for p in ggufs {
        let base = read(p);
        let hdr = mamba::format::gguf::GgufFile::parse(&base)
            .map(|f| f.data_offset() as usize)
            .unwrap_or(base.len());
        let t = all.entry("gguf").or_default();
        t.run("gguf", &base, 0, || harness::gguf(&base));
        for _ in 0..500 * scale {
            let m = mutate(&mut rng, &base, hdr);
            t.run("gguf", &m, 0, || harness::gguf(&m));
        }
    }

    // v1, float32 (no sidecar), fp16 and int8 (with .scales; also without,
    // and with a mutated sidecar).
    for (name, has_scales) in [
        ("f32", false),
        ("f32_untied", false),
        ("fp16", true),
        ("int8", true),
    ] {
        let base = read(&format!("tests/fixtures/tiny/{name}.bin"));
        let scales = has_scales.then(|| read(&format!("tests/fixtures/tiny/{name}.bin.scales")));
        let t = all.entry("v1").or_default();
        t.run("v1", &base, 0, || harness::v1(&base, scales.as_deref()));
        for i in 0..600 * scale {
            let m = mutate(&mut rng, &base, 256);
            let sc = match (&scales, i % 5) {
                (Some(s), 4) => Some(mutate(&mut rng, s, s.len())),
                (Some(s), 3) => {
                    // The sidecar is missing: only float32 files may load.
                    let _ = s;
                    None
                }
                (s, _) => s.clone(),
            };
            let extra = sc.as_ref().map_or(0, |s| s.len());
            let bytes = harness::v1_join(&m, sc.as_deref());
            t.run("v1", &bytes, extra, || harness::v1(&m, sc.as_deref()));
        }
    }
    // A real v1 int8 file with scales: fewer mutants (bigger file).
    {
        let base = read("tests/fixtures/lm/B.int8.bin");
        let sc = read("tests/fixtures/lm/B.int8.bin.scales");
        let t = all.entry("v1").or_default();
        for _ in 0..60 * scale {
            let m = mutate(&mut rng, &base, 256);
            t.run("v1", &m, sc.len(), || harness::v1(&m, Some(&sc)));
        }
    }

    // tokenizer.bin: every token carries a length, so edits go anywhere.
    {
        let base = read("tests/fixtures/tiny/tokenizer.bin");
        let t = all.entry("tokenizer.bin").or_default();
        for _ in 0..1500 * scale {
            let m = mutate(&mut rng, &base, base.len());
            t.run("tokenizer.bin", &m, 0, || harness::tokenizer(&m));
        }
    }
    // tokenizer.json: text-aware edits.
    {
        let base = read("tests/fixtures/tokenizer/small.json");
        let t = all.entry("tokenizer.json").or_default();
        t.run("tokenizer.json", &base, 0, || harness::tokenizer(&base));
        for _ in 0..1000 * scale {
            let m = mutate_json(&mut rng, &base);
            t.run("tokenizer.json", &m, 0, || harness::tokenizer(&m));
        }
    }

    // State blobs for C.gguf: header edits, and payload edits with the
    // checksum fixed so they are accepted (NaN, inf, huge values).
    {
        let t = all.entry("state").or_default();
        for name in ["zero", "pos17", "big"] {
            let base = read(&format!("fuzz/seeds/state/{name}"));
            t.run("state", &base, 0, || harness::state(&base));
            for i in 0..400 * scale {
                let mut m = mutate(&mut rng, &base, 48);
                if i % 2 == 0 {
                    fix_state_checksum(&mut m);
                }
                t.run("state", &m, 0, || harness::state(&m));
            }
        }
    }

    // WAV: RIFF/fmt/data chunk headers.
    {
        let t = all.entry("wav").or_default();
        for f in [
            "sf_pcm16.wav",
            "sf_u8.wav",
            "sf_ulaw.wav",
            "sf_pcm24.wav",
            "sf_float.wav",
            "sf_double.wav",
            "sf_wavex_pcm16.wav",
            "sf_wavex_float_stereo.wav",
            "sf_stereo_44k.wav",
        ] {
            let base = read(&format!("tests/fixtures/audio/{f}"));
            for _ in 0..150 * scale {
                let m = mutate(&mut rng, &base, 80);
                t.run("wav", &m, 0, || harness::wav(&m));
            }
        }
    }

    // encode: mutated texts through both tokenizers.
    {
        let t = all.entry("encode").or_default();
        let texts: Vec<Vec<u8>> = std::fs::read_dir(root().join("fuzz/seeds/encode"))
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        for _ in 0..1000 * scale {
            let base = &texts[rng.below(texts.len())];
            let m = mutate(&mut rng, base, base.len());
            t.run("encode", &m, 0, || harness::encode_split(&m));
        }
    }

    let mut total = 0;
    let mut failures = Vec::new();
    println!("mutation test: inputs tried and outcomes");
    for (fmt, t) in &all {
        total += t.tried;
        let hist: Vec<String> = t.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  {fmt:15} {:6} inputs: {}", t.tried, hist.join(", "));
        failures.extend(t.failures.iter().cloned());
    }
    println!("  total {total} inputs, {} problems", failures.len());
    assert!(
        failures.is_empty(),
        "{} inputs failed:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}

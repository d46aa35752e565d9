//! What each fuzz target does with its input, shared by the cargo-fuzz
//! targets (`fuzz/fuzz_targets/*.rs`), the regression test
//! (`tests/regressions.rs`) and the mutation test (`tests/mutation.rs`), so
//! all three exercise exactly the same code paths.
//!
//! Every function takes untrusted bytes, loads them and, when loading
//! succeeds, *uses* the result (a forward pass, an encode, features), and
//! returns the library's `Result`. Any panic is a bug.
#![allow(dead_code)]

use mamba::audio::{read_wav, require_mono_16k, KwsFrontend, MfccParams};
use mamba::format::{gguf, v1};
use mamba::model::Backing;
use mamba::tokenizer::Tokenizer;
use mamba::{Model, Result, Session};
use std::sync::{Arc, OnceLock};

/// The input copied into 8-byte aligned heap memory, as `LoadOptions { copy: true }` does.
pub fn heap(bytes: &[u8]) -> Arc<Backing> {
    let mut v = vec![0u64; bytes.len().div_ceil(8)];
    // SAFETY: `v` holds at least `bytes.len()` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr() as *mut u8, bytes.len())
    };
    Arc::new(Backing::HeapExact(v, bytes.len()))
}

/// Uses a model that loaded: one token, a short prompt, a state round trip,
/// and the tokenizer it carries (if any).
pub fn run_model(m: Model) -> Result<()> {
    let m = Arc::new(m);
    let v = m.config.vocab_size.max(1) as u32;
    let mut s = Session::new(m.clone());
    let l = s.forward(0)?;
    assert_eq!(l.len(), m.config.padded_vocab);
    s.forward_tokens(&[1 % v, 2 % v, v - 1])?;
    let mut blob = vec![0u8; s.state_size()];
    s.state_get(&mut blob)?;
    s.state_set(&blob)?;
    if let Some(t) = &m.tokenizer {
        use_tokenizer(t)?;
    }
    Ok(())
}

/// A GGUF file: parse, load, forward.
pub fn gguf(data: &[u8]) -> Result<()> {
    let m = gguf::load("fuzz.gguf", heap(data))?;
    run_model(m)
}

/// A v1 file with (Some) or without (None) its `.scales` sidecar.
pub fn v1(data: &[u8], scales: Option<&[u8]>) -> Result<()> {
    let m = v1::load_bytes("fuzz.bin", heap(data), scales, false)?;
    run_model(m)
}

/// One input for the v1 target: byte 0 picks the variant (bit 0: has a
/// `.scales` sidecar, bit 1: read one-byte weights as bfloat8), bytes 1..3
/// the sidecar's length (u16 LE), then the sidecar, then the model file.
pub fn v1_split(data: &[u8]) -> Result<()> {
    if data.len() < 3 {
        return Ok(());
    }
    let (flags, n) = (data[0], u16::from_le_bytes([data[1], data[2]]) as usize);
    let rest = &data[3..];
    let n = n.min(rest.len());
    let (scales, model) = rest.split_at(n);
    let scales = (flags & 1 != 0).then_some(scales);
    let m = v1::load_bytes("fuzz.bin", heap(model), scales, flags & 2 != 0)?;
    run_model(m)
}

/// Builds a v1 fuzz input (see [`v1_split`]).
pub fn v1_join(model: &[u8], scales: Option<&[u8]>) -> Vec<u8> {
    let s = scales.unwrap_or(&[]);
    let mut out = vec![scales.is_some() as u8];
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s);
    out.extend_from_slice(model);
    out
}

const SAMPLE_TEXT: &[u8] =
    "Hello world, the cat and 123 dogs\u{e9}\u{301} \u{1f600}!\n\n  x".as_bytes();

fn use_tokenizer(t: &Tokenizer) -> Result<()> {
    let ids = t.encode(SAMPLE_TEXT)?;
    let _ = t.decode(&ids, false);
    let n = t.vocab_size() as u32;
    for id in [0, 1, n / 2, n.saturating_sub(1), n, u32::MAX] {
        let _ = t.token_bytes(id);
        if id < n {
            let _ = t.legacy_decode_piece(0, id);
        }
    }
    let _ = t.eos_id();
    let _ = t.bos_id();
    Ok(())
}

/// A tokenizer.bin or tokenizer.json: load, encode, decode.
pub fn tokenizer(data: &[u8]) -> Result<()> {
    let t = Tokenizer::from_bytes(data, "fuzz-tokenizer")?;
    use_tokenizer(&t)
}

/// Encodes `text` with a tokenizer and decodes the ids back.
pub fn encode(t: &Tokenizer, text: &[u8]) -> Result<()> {
    let ids = t.encode(text)?;
    let back = t.decode(&ids, false);
    // Byte-level BPE and the legacy tokenizer cannot grow text without bound.
    assert!(back.len() <= 4 * text.len() + 64, "decode grew the text");
    Ok(())
}

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository root (this file is in `fuzz/`; the fuzz crate's manifest is there too).
pub fn repo_root() -> std::path::PathBuf {
    let r = root();
    if r.join("fuzz").is_dir() {
        r
    } else {
        r.parent().unwrap().to_path_buf()
    }
}

/// The tokenizers `encode` runs with: BPE (a small tokenizer.json) and legacy (tokenizer.bin).
pub fn encode_tokenizers() -> &'static [Tokenizer; 2] {
    static T: OnceLock<[Tokenizer; 2]> = OnceLock::new();
    T.get_or_init(|| {
        let r = repo_root().join("tests/fixtures/tokenizer");
        [
            Tokenizer::from_file(r.join("small.json").to_str().unwrap()).unwrap(),
            Tokenizer::from_file(
                repo_root()
                    .join("tests/fixtures/tiny/tokenizer.bin")
                    .to_str()
                    .unwrap(),
            )
            .unwrap(),
        ]
    })
}

/// One input for the encode target: byte 0 picks the tokenizer (bit 0: legacy), the rest is text.
pub fn encode_split(data: &[u8]) -> Result<()> {
    let Some((&sel, text)) = data.split_first() else {
        return Ok(());
    };
    encode(&encode_tokenizers()[(sel & 1) as usize], text)
}

/// The model state blobs are restored into (tests/fixtures/lm/C.gguf).
pub fn state_model() -> &'static Arc<Model> {
    static M: OnceLock<Arc<Model>> = OnceLock::new();
    M.get_or_init(|| {
        let p = repo_root().join("tests/fixtures/lm/C.gguf");
        Arc::new(mamba::load(p.to_str().unwrap(), &Default::default()).unwrap())
    })
}

/// A state blob: restore it into a fresh session, then run one token.
pub fn state(data: &[u8]) -> Result<()> {
    let mut s = Session::new(state_model().clone());
    s.state_set(data)?;
    s.forward(1)?;
    Ok(())
}

fn kws() -> &'static KwsFrontend {
    static F: OnceLock<KwsFrontend> = OnceLock::new();
    F.get_or_init(|| KwsFrontend::new(MfccParams::kws_default()).unwrap())
}

/// A WAV file: parse, and for mono 16 kHz ones the keyword-spotter features.
pub fn wav(data: &[u8]) -> Result<()> {
    let w = read_wav(data)?;
    let _ = w.duration_s();
    // Features of whatever samples came out (any rate, any channel count),
    // then the check the keyword spotter makes.
    let f = kws().features(&w.samples);
    assert_eq!(f.len(), kws().n_features() * kws().n_frames());
    require_mono_16k(&w)
}

//! The bundled demo model (demo/demo.gguf, trained by py/train_demo.py on the King
//! James Bible): it loads, carries a byte-level tokenizer, writes English-looking
//! text, and predicts held-out text (demo/heldout.txt, never trained on) far better
//! than a uniform or unigram model — at the bits per byte the training script measured.

use mamba::format::gguf;
use mamba::model::Model;
use mamba::sampler::{Sampler, SamplerParams};
use mamba::session::Session;
use std::sync::Arc;

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/demo.gguf");
const HELDOUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/heldout.txt");
const REPORT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/train_report.json");
const EOT: u32 = 256;
const PROMPT: &[u8] = b"And God said";

/// The model's weights and vocabulary, read with the GGUF layer directly so these
/// checks do not depend on the tokenizer implementation.
fn open() -> (Arc<Model>, mamba::tokenizer::GgufVocab) {
    let backing = mamba::format::open_backing(MODEL, false).expect("demo/demo.gguf");
    let f = gguf::GgufFile::parse(backing.bytes()).expect("parse");
    let config = gguf::lm_config(&f).expect("config");
    let weights = gguf::lm_weights(&f, &config, &backing).expect("weights");
    let vocab = gguf::vocab(&f)
        .expect("vocab")
        .expect("demo.gguf carries a tokenizer");
    let model = Model::new_lm(config, weights, MODEL, backing.bytes().len() as u64).expect("model");
    (Arc::new(model), vocab)
}

/// GPT-2's byte-level alphabet: the printable character standing for byte `b`.
fn byte_char(b: u8) -> char {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
    if printable(b) {
        return char::from_u32(b as u32).unwrap();
    }
    let n = (0..b).filter(|&c| !printable(c)).count() as u32;
    char::from_u32(256 + n).unwrap()
}

fn report_number(key: &str) -> f64 {
    let text = std::fs::read_to_string(REPORT).expect("demo/train_report.json");
    let pat = format!("\"{key}\":");
    let at = text
        .find(&pat)
        .unwrap_or_else(|| panic!("{key} not in the report"))
        + pat.len();
    let rest = text[at..].trim_start();
    let end = rest.find([',', '\n', '}']).unwrap();
    rest[..end].trim().parse().unwrap()
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

#[test]
fn demo_model_is_small_and_carries_a_byte_level_vocabulary() {
    let size = std::fs::metadata(MODEL).unwrap().len();
    assert!(size < 2_000_000, "demo.gguf is {size} bytes");
    let (model, vocab) = open();
    assert_eq!(model.config.padded_vocab, 257);
    assert_eq!(vocab.model, "gpt2");
    assert_eq!(vocab.tokens.len(), 257);
    assert!(vocab.merges.is_empty(), "byte-level: no merges");
    for b in 0..=255u8 {
        assert_eq!(
            vocab.tokens[b as usize],
            byte_char(b).to_string(),
            "token {b} is byte {b}"
        );
    }
    assert_eq!(vocab.tokens[b' ' as usize], "Ġ");
    assert_eq!(vocab.tokens[EOT as usize], "<|endoftext|>");
}

#[test]
fn greedy_generation_is_english_looking_text() {
    let (model, _) = open();
    let mut s = Session::new(model);
    let prompt: Vec<u32> = PROMPT.iter().map(|&b| b as u32).collect();
    let mut logits = s.forward_tokens(&prompt).unwrap().to_vec();
    let mut out = Vec::new();
    for _ in 0..100 {
        let t = argmax(&logits);
        assert!(t < EOT, "greedy picked end-of-text right away");
        out.push(t as u8);
        logits = s.forward(t).unwrap().to_vec();
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    eprintln!("greedy: {}{text:?}", String::from_utf8_lossy(PROMPT));
    let printable = out
        .iter()
        .filter(|&&b| b == b'\n' || (0x20..0x7f).contains(&b))
        .count();
    assert!(printable >= 98, "mostly printable ASCII: {text:?}");
    let letters = out.iter().filter(|b| b.is_ascii_alphabetic()).count();
    let spaces = out.iter().filter(|&&b| b == b' ').count();
    assert!(
        letters >= 60 && spaces >= 10,
        "letters {letters}, spaces {spaces}: {text:?}"
    );
    // Words, not a stuck loop on one character.
    let words: std::collections::HashSet<&str> = text.split_whitespace().collect();
    assert!(words.len() >= 5, "{text:?}");
}

/// Bits per byte of the model on demo/heldout.txt (state from zero at its first byte).
fn heldout_bits_per_byte(model: &Arc<Model>, text: &[u8]) -> f64 {
    let ids: Vec<u32> = text.iter().map(|&b| b as u32).collect();
    let v = model.config.padded_vocab;
    let mut s = Session::new(model.clone());
    let mut logits = vec![0f32; ids.len() * v];
    s.forward_all(&ids, &mut logits).unwrap();
    let mut bits = 0f64;
    for (i, &next) in ids[1..].iter().enumerate() {
        let row = &logits[i * v..(i + 1) * v];
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = row.iter().map(|&x| (x as f64 - m).exp()).sum();
        let lp = row[next as usize] as f64 - m - z.ln();
        bits -= lp / std::f64::consts::LN_2;
    }
    bits / (ids.len() - 1) as f64
}

#[test]
fn heldout_text_is_predicted_well() {
    let (model, _) = open();
    let text = std::fs::read(HELDOUT).expect("demo/heldout.txt");
    assert!(text.len() > 3000);
    let bpb = heldout_bits_per_byte(&model, &text);
    // Unigram baseline fitted to the held-out text itself (its empirical byte entropy):
    // a bound no byte-frequency model can beat.
    let mut counts = [0usize; 256];
    for &b in &text[1..] {
        counts[b as usize] += 1;
    }
    let n = (text.len() - 1) as f64;
    let unigram: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| -(c as f64 / n) * (c as f64 / n).log2())
        .sum();
    let expected = report_number("heldout_txt_bpb");
    eprintln!(
        "held-out: {bpb:.3} bits/byte (training script: {expected:.3}; unigram {unigram:.3}; uniform 8)"
    );
    assert!(bpb < 8.0 - 4.0, "{bpb}");
    assert!(bpb < unigram - 1.0, "model {bpb} vs unigram {unigram}");
    // demo.gguf stores the matrices as f16, the script scored f32 weights.
    assert!(
        (bpb - expected).abs() < 0.01,
        "{bpb} vs {expected} from py/train_demo.py"
    );
}

#[test]
fn library_tokenizer_and_generate_use_the_embedded_vocabulary() {
    let model = Arc::new(
        mamba::load(MODEL, &mamba::LoadOptions::default()).unwrap_or_else(|e| panic!("{e}")),
    );
    let tok = model.tokenizer.clone().expect("embedded tokenizer");
    let text = "In the beginning God created the heaven and the earth.\n  Ünïcödé — 42";
    let ids = tok.encode(text.as_bytes()).unwrap();
    let bytes: Vec<u32> = text.bytes().map(|b| b as u32).collect();
    assert_eq!(ids, bytes, "one id per byte, id = byte value");
    assert_eq!(tok.eos_id(), Some(EOT));

    let mut s = Session::new(model.clone());
    let mut sampler = Sampler::new(
        model.config.padded_vocab,
        SamplerParams {
            temperature: 0.0,
            ..Default::default()
        },
    );
    let mut out = Vec::new();
    let opts = mamba::generate::GenerateOptions {
        max_tokens: 100,
        stop_at_eos: true,
    };
    let stats = mamba::generate::generate(
        &mut s,
        &tok,
        &mut sampler,
        PROMPT,
        opts,
        &mut |p: &[u8]| {
            out.extend_from_slice(p);
            true
        },
    )
    .unwrap();
    assert_eq!(stats.prompt_tokens, PROMPT.len());
    // The same greedy text as feeding byte ids by hand.
    let (m2, _) = open();
    let mut s2 = Session::new(m2);
    let p: Vec<u32> = PROMPT.iter().map(|&b| b as u32).collect();
    let mut logits = s2.forward_tokens(&p).unwrap().to_vec();
    let mut want = Vec::new();
    for _ in 0..stats.generated_tokens {
        let t = argmax(&logits);
        want.push(t as u8);
        logits = s2.forward(t).unwrap().to_vec();
    }
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&want)
    );
}

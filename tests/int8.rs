//! 8-bit weights (Q8_0, q8_row) against HF transformers run on the same
//! weights dequantized (py/make_lm_fixtures.py's variants of fixture C),
//! with exact f32 inputs and with the int8 (VNNI) products that round each
//! product's input to 8 bits; and the int8 products' decode, batched and
//! prompt paths against each other.

mod common;
use common::*;
use mamba::{LoadOptions, Session};
use std::sync::Arc;

const VARIANTS: [(&str, &str); 2] = [
    ("C.q8_0.gguf", "logits_q8_0_gguf.f32"),
    ("C.q8row.gguf", "logits_q8row_gguf.f32"),
];

fn load(file: &str, int8: bool) -> Arc<mamba::Model> {
    let mut m = mamba::load(&fixture(&format!("lm/{file}")), &LoadOptions::default()).unwrap();
    m.int8_vnni = int8;
    Arc::new(m)
}

fn prompt() -> Vec<u32> {
    read_i32(&fixture("lm/C/prompt.i32"))
        .into_iter()
        .map(|t| t as u32)
        .collect()
}

fn state_vec(s: &Session) -> Vec<f32> {
    let (c, h) = s.raw_state();
    c.iter().chain(h).copied().collect()
}

/// Step-mode logits over the prompt against transformers: exact inputs
/// within f32 rounding, int8 inputs within the 8-bit budget, and the int8
/// path really used where the CPU has VNNI.
#[test]
fn eight_bit_logits_match_transformers_on_dequantized_weights() {
    let prompt = prompt();
    for (file, reference) in VARIANTS {
        let want = read_f32(&fixture(&format!("lm/C/{reference}")));
        let mut got = [Vec::new(), Vec::new()];
        for (i, int8) in [false, true].into_iter().enumerate() {
            let m = load(file, int8);
            let vocab = m.config.vocab_size;
            let mut s = Session::new(m);
            for &t in &prompt {
                got[i].extend_from_slice(&s.forward(t).unwrap()[..vocab]);
            }
            let e = rel_err(&got[i], &want);
            eprintln!("{file} int8 {int8}: logits rel err {e:.2e} vs transformers");
            assert!(
                e < if int8 { 3e-2 } else { 1e-4 },
                "{file} int8 {int8}: rel err {e}"
            );
        }
        assert_eq!(
            got[0] != got[1],
            mamba::kernels::vnni::has_vnni(),
            "{file}: the int8 products ran iff the CPU has VNNI"
        );
    }
}

/// With int8 products, a prompt (GEMM kernel) and the same tokens fed one at
/// a time (decode kernel) compute the same integer block sums: logits and
/// state agree to f32 rounding.
#[test]
fn int8_prompt_equals_int8_steps() {
    let prompt = prompt();
    for (file, _) in VARIANTS {
        let m = load(file, true);
        let v = m.config.padded_vocab;
        let n = prompt.len();
        let mut step = Session::new(m.clone());
        let mut step_logits = vec![0.0; n * v];
        for (i, &t) in prompt.iter().enumerate() {
            step_logits[i * v..(i + 1) * v].copy_from_slice(step.forward(t).unwrap());
        }
        let mut all = vec![0.0; n * v];
        let mut p = Session::new(m.clone());
        p.forward_all(&prompt, &mut all).unwrap();
        let e = rel_err(&all, &step_logits);
        assert!(e < 1e-5, "{file}: prompt vs step logits rel err {e}");
        let es = rel_err(&state_vec(&p), &state_vec(&step));
        assert!(es < 1e-5, "{file}: prompt vs step state rel err {es}");
        let mut last = Session::new(m);
        let l = last.forward_tokens(&prompt).unwrap().to_vec();
        assert!(
            rel_err(&l, &step_logits[(n - 1) * v..]) < 1e-5,
            "{file}: last logits"
        );
    }
}

/// The 8-bit matrices of a mapped model are converted to the VNNI layout
/// (where the CPU has it); a model loaded with `copy` keeps them as stored
/// (converting would hold them twice), and both stay within the int8
/// tolerance of each other.
#[test]
fn copied_models_keep_their_8bit_matrices_as_stored() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm/C.q8_0.gguf");
    let path = path.to_str().unwrap();
    let mapped = mamba::load(path, &mamba::LoadOptions::default()).unwrap();
    let copy = mamba::load(
        path,
        &mamba::LoadOptions {
            copy: true,
            ..Default::default()
        },
    )
    .unwrap();
    let vnni = mamba::kernels::vnni::has_vnni() && mapped.int8_vnni;
    let converted = |m: &mamba::Model| m.weights.layers[0].mixer.in_proj.panels.is_some();
    assert_eq!(converted(&mapped), vnni);
    assert!(!converted(&copy));
    let logits = |m: mamba::Model| {
        let mut s = mamba::Session::new(std::sync::Arc::new(m));
        s.forward_tokens(&[1, 2, 3]).unwrap().to_vec()
    };
    let (a, b) = (logits(mapped), logits(copy));
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        diff <= 1e-3 * scale,
        "mapped and copied differ by {diff} (scale {scale})"
    );
}

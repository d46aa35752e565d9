//! Batched decode gives exactly what running the sessions one at a time does.

mod common;
use common::*;
use mamba::{LoadOptions, Session};
use std::sync::Arc;

#[test]
fn batched_decode_matches_sequential() {
    // The 8-bit files run with int8 products where the CPU has VNNI (the
    // default): GEMM kernel batched, decode kernel alone.
    // bf16 weights multiply bf16-rounded inputs where the CPU has AVX-512
    // BF16 (the default): the same kernel for one row or three, any n.
    for name in [
        "A.bin",
        "B.gguf",
        "C.gguf",
        "C.q8_0.gguf",
        "C.q8row.gguf",
        "C.bf16.gguf",
    ] {
        let m = Arc::new(
            mamba::load(&fixture(&format!("lm/{name}")), &LoadOptions::default()).unwrap(),
        );
        let vocab = m.config.vocab_size as u32;
        let n = 8;
        // Different prompts of different lengths per session.
        let prompts: Vec<Vec<u32>> = (0..n)
            .map(|i| {
                (0..3 + i)
                    .map(|j| ((i * 31 + j * 17) as u32) % vocab)
                    .collect()
            })
            .collect();
        let mut seq: Vec<Session> = (0..n).map(|_| Session::new(m.clone())).collect();
        let mut bat: Vec<Session> = (0..n).map(|_| Session::new(m.clone())).collect();
        for i in 0..n {
            seq[i].forward_tokens(&prompts[i]).unwrap();
            bat[i].forward_tokens(&prompts[i]).unwrap();
        }
        for step in 0..10 {
            let toks: Vec<u32> = (0..n)
                .map(|i| argmax(&seq[i].logits()[..vocab as usize]) as u32)
                .collect();
            for i in 0..n {
                seq[i].forward(toks[i]).unwrap();
            }
            let mut refs: Vec<&mut Session> = bat.iter_mut().collect();
            Session::forward_batch(&mut refs, &toks).unwrap();
            for i in 0..n {
                let e = rel_err(bat[i].logits(), seq[i].logits());
                assert!(e < 1e-5, "{name} step {step} session {i}: rel err {e}");
                assert_eq!(bat[i].position(), seq[i].position());
            }
        }
    }
}

#[test]
fn batch_rejects_mismatched_input() {
    let a = Arc::new(mamba::load(&fixture("lm/A.bin"), &LoadOptions::default()).unwrap());
    let b = Arc::new(mamba::load(&fixture("lm/B.bin"), &LoadOptions::default()).unwrap());
    let mut sa = Session::new(a.clone());
    let mut sb = Session::new(b);
    assert!(Session::forward_batch(&mut [&mut sa, &mut sb], &[1, 2]).is_err());
    let mut sa2 = Session::new(a);
    assert!(Session::forward_batch(&mut [&mut sa, &mut sa2], &[1]).is_err());
    assert!(Session::forward_batch(&mut [&mut sa, &mut sa2], &[1, 1 << 30]).is_err());
    assert_eq!(sa.position(), 0);
}

/// The decode step splits each layer over however many threads there are;
/// every element is computed by the same kernel call either way, so the
/// logits must be bit-identical for any thread count.
#[test]
fn decode_is_identical_for_any_thread_count() {
    for name in ["A.bin", "B.gguf", "C.gguf", "C.bf16.gguf"] {
        let m = Arc::new(
            mamba::load(&fixture(&format!("lm/{name}")), &LoadOptions::default()).unwrap(),
        );
        let vocab = m.config.vocab_size as u32;
        let run = |threads: usize| {
            mamba::threads::set_num_threads(threads);
            let mut s = Session::new(m.clone());
            let mut out = Vec::new();
            for i in 0..24u32 {
                out.extend_from_slice(s.forward((i * 37 + 5) % vocab).unwrap());
            }
            out
        };
        let one = run(1);
        for t in [2, 3, 4] {
            let other = run(t);
            assert!(
                one.iter()
                    .zip(&other)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name}: {t} threads differ from 1"
            );
        }
        mamba::threads::set_num_threads(0);
    }
}

/// A model file loaded twice, its input-rounding switch off (`exact`) and
/// on (`fast`), one session each decoding the same 32 greedy tokens (the
/// exact model's choices): the worst relative error of fast's logits, how many of the
/// 32 argmaxes agree, whether any logit differs, the tokens fed, and the
/// fast session with all its logits (padded_vocab per position).
struct AgainstExact {
    worst: f32,
    same: usize,
    differs: bool,
    fed: Vec<u32>,
    fast: Session,
    fast_logits: Vec<f32>,
}

fn decode_against_exact(file: &str, switch: impl Fn(&mut mamba::Model, bool)) -> AgainstExact {
    let load = |on: bool| {
        let mut m = mamba::load(&fixture(file), &LoadOptions::default()).unwrap();
        switch(&mut m, on);
        Arc::new(m)
    };
    let exact = load(false);
    let vocab = exact.config.vocab_size;
    let (mut a, mut b) = (Session::new(exact), Session::new(load(true)));
    let (mut worst, mut same, mut differs) = (0.0f32, 0, false);
    let (mut fed, mut fast_logits) = (Vec::new(), Vec::new());
    let mut tok = 1u32;
    for _ in 0..32 {
        fed.push(tok);
        let la = a.forward(tok).unwrap()[..vocab].to_vec();
        let lb = &b.forward(tok).unwrap()[..vocab];
        worst = worst.max(rel_err(lb, &la));
        differs |= la.iter().zip(lb).any(|(x, y)| x != y);
        same += (argmax(&la) == argmax(lb)) as usize;
        fast_logits.extend_from_slice(b.logits());
        tok = argmax(&la) as u32;
    }
    AgainstExact {
        worst,
        same,
        differs,
        fed,
        fast: b,
        fast_logits,
    }
}

/// The VNNI decode for int8 (q8_row) weights rounds each product's
/// input to 8 bits: its logits must stay close to the exact-input decode and
/// pick the same tokens, and (where the CPU has VNNI) differ from it, which
/// shows the path ran.
#[test]
fn int8_vnni_decode_stays_close_to_exact_inputs() {
    let r = decode_against_exact("lm/C.q8row.gguf", |m, on| m.int8_vnni = on);
    let (worst, same) = (r.worst, r.same);
    eprintln!("int8 VNNI decode vs exact inputs: rel err {worst:.2e}, top-1 {same}/32");
    assert!(worst < 3e-2, "VNNI decode rel err {worst}");
    assert!(same >= 31, "top-1 agreement {same}/32");
    assert_eq!(r.differs, mamba::kernels::vnni::has_vnni());
}

/// bf16 weights multiply inputs rounded to bf16 (`kernels::bf16dot`, where
/// the CPU has AVX-512 BF16): the logits stay close to the exact-input
/// decode and pick the same tokens, differ from it where the path ran, and
/// prompts (the f32 GEMM on the same rounded inputs) agree with decode.
#[test]
fn bf16_products_stay_close_to_exact_inputs() {
    let r = decode_against_exact("lm/C.bf16.gguf", |m, on| m.bf16_dot = on);
    let (worst, same) = (r.worst, r.same);
    eprintln!("bf16 products vs exact inputs: rel err {worst:.2e}, top-1 {same}/32");
    assert!(worst < 1e-2, "bf16 decode rel err {worst}");
    assert!(same >= 31, "top-1 agreement {same}/32");
    assert_eq!(r.differs, mamba::kernels::bf16dot::has_bf16());
    // The same tokens as one prompt: every position's logits and the state.
    let mut p = Session::new(r.fast.model().clone());
    let mut all = vec![0.0; r.fast_logits.len()];
    p.forward_all(&r.fed, &mut all).unwrap();
    let e = rel_err(&all, &r.fast_logits);
    assert!(e < 1e-5, "bf16 prompt vs decode: rel err {e}");
    let (pc, ps) = p.raw_state();
    let (bc, bs) = r.fast.raw_state();
    assert!(rel_err(pc, bc) < 1e-5 && rel_err(ps, bs) < 1e-5);
}

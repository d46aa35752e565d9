//! Parity with HF transformers' MambaForCausalLM (CPU, float32) on random
//! models of different shapes. References come from py/make_lm_fixtures.py
//! (committed, regenerated with torch + transformers installed).

mod common;
use common::*;
use mamba::{LoadOptions, Session};
use std::sync::Arc;

struct Fixture {
    name: &'static str,
    vocab: usize,
    prompt: Vec<u32>,
    logits: Vec<f32>,
    greedy: Vec<u32>,
    greedy_logits: Vec<f32>,
    state_prompt: Vec<f32>,
    state_gen16: Vec<f32>,
}

fn fixture_data(name: &'static str) -> Fixture {
    let meta = read_meta(&fixture(&format!("lm/{name}/meta.txt")));
    let u = |v: Vec<i32>| v.into_iter().map(|t| t as u32).collect::<Vec<u32>>();
    Fixture {
        name,
        vocab: meta["vocab_size"].parse().unwrap(),
        prompt: u(read_i32(&fixture(&format!("lm/{name}/prompt.i32")))),
        logits: read_f32(&fixture(&format!("lm/{name}/logits.f32"))),
        greedy: u(read_i32(&fixture(&format!("lm/{name}/greedy.i32")))),
        greedy_logits: read_f32(&fixture(&format!("lm/{name}/greedy_logits.f32"))),
        state_prompt: read_f32(&fixture(&format!("lm/{name}/state_prompt.f32"))),
        state_gen16: read_f32(&fixture(&format!("lm/{name}/state_gen16.f32"))),
    }
}

/// The model files of a fixture that this build loads.
fn model_files(name: &str) -> Vec<String> {
    let mut v = vec![];
    for ext in ["bin", "gguf"] {
        let p = fixture(&format!("lm/{name}.{ext}"));
        if std::path::Path::new(&p).exists() {
            v.push(p);
        }
    }
    v
}

fn load(path: &str) -> Arc<mamba::Model> {
    Arc::new(mamba::load(path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn state_vec(s: &Session) -> Vec<f32> {
    let (c, h) = s.raw_state();
    c.iter().chain(h).copied().collect()
}

fn check_step_logits(f: &Fixture, path: &str) {
    let model = load(path);
    let mut s = Session::new(model.clone());
    let mut got = Vec::new();
    for &t in &f.prompt {
        let l = s.forward(t).unwrap();
        got.extend_from_slice(&l[..f.vocab]);
    }
    let e = rel_err(&got, &f.logits);
    assert!(
        e < 1e-4,
        "{}: step-mode logits vs transformers: rel err {e}",
        f.name
    );
    let es = rel_err(&state_vec(&s), &f.state_prompt);
    assert!(
        es < 1e-4,
        "{}: state after prompt vs transformers: rel err {es}",
        f.name
    );
    eprintln!("{path}: per-position logits rel err {e:.2e}, state rel err {es:.2e}");
}

fn check_prompt_vs_step(f: &Fixture, path: &str) {
    let model = load(path);
    let v = model.config.padded_vocab;
    let n = f.prompt.len();
    let mut step = Session::new(model.clone());
    let mut step_logits = vec![0.0; n * v];
    for (i, &t) in f.prompt.iter().enumerate() {
        step_logits[i * v..(i + 1) * v].copy_from_slice(step.forward(t).unwrap());
    }
    let mut prompt = Session::new(model.clone());
    let mut all = vec![0.0; n * v];
    prompt.forward_all(&f.prompt, &mut all).unwrap();
    let e = rel_err(&all, &step_logits);
    assert!(e < 1e-5, "{}: prompt vs step logits rel err {e}", f.name);
    let es = rel_err(&state_vec(&prompt), &state_vec(&step));
    assert!(es < 1e-5, "{}: prompt vs step state rel err {es}", f.name);
    // The plain prompt path (last logits only) leaves the same state too.
    let mut last = Session::new(model);
    let l = last.forward_tokens(&f.prompt).unwrap().to_vec();
    assert!(rel_err(&l, &step_logits[(n - 1) * v..]) < 1e-5);
    assert!(rel_err(&state_vec(&last), &state_vec(&step)) < 1e-5);
}

fn greedy(s: &mut Session, vocab: usize, n: usize) -> Vec<u32> {
    let mut out = Vec::new();
    for _ in 0..n {
        let t = argmax(&s.logits()[..vocab]) as u32;
        out.push(t);
        s.forward(t).unwrap();
    }
    out
}

fn check_greedy_and_state(f: &Fixture, path: &str) {
    let model = load(path);
    let mut s = Session::new(model.clone());
    s.forward_tokens(&f.prompt).unwrap();
    let ids = greedy(&mut s, f.vocab, f.greedy.len());
    assert_eq!(
        ids, f.greedy,
        "{}: greedy continuation differs from transformers",
        f.name
    );

    // Save after 16 generated tokens, restore in a fresh session, continue.
    let mut a = Session::new(model.clone());
    a.forward_tokens(&f.prompt).unwrap();
    let first = greedy(&mut a, f.vocab, 16);
    assert_eq!(first[..], f.greedy[..16]);
    let es = rel_err(&state_vec(&a), &f.state_gen16);
    assert!(
        es < 1e-4,
        "{}: state after 16 generated tokens: rel err {es}",
        f.name
    );
    let mut blob = vec![0u8; a.state_size()];
    a.state_get(&mut blob).unwrap();
    let logits_a = a.logits().to_vec();
    let rest_a = greedy(&mut a, f.vocab, 16);

    // The blob holds the recurrent state (which already includes the last
    // fed token), not the logits: the caller continues with the token it
    // sampled from the logits it had when saving.
    let mut b = Session::new(model);
    b.state_set(&blob).unwrap();
    assert_eq!(b.position(), (f.prompt.len() + 16) as u64);
    let next = argmax(&logits_a[..f.vocab]) as u32;
    let l = b.forward(next).unwrap();
    let want = &f.greedy_logits[16 * f.vocab..17 * f.vocab];
    assert!(
        rel_err(&l[..f.vocab], want) < 1e-4,
        "{}: logits after restore",
        f.name
    );
    let mut rest_b = vec![next];
    rest_b.extend(greedy(&mut b, f.vocab, 15));
    assert_eq!(
        rest_a, rest_b,
        "{}: restored session continues differently",
        f.name
    );
    assert_eq!(rest_a[..], f.greedy[16..]);
}

macro_rules! parity_tests {
    ($($test:ident: $name:expr, $check:ident;)*) => {$(
        #[test]
        fn $test() {
            let f = fixture_data($name);
            let files = model_files($name);
            assert!(!files.is_empty());
            for p in files {
                $check(&f, &p);
            }
        }
    )*};
}

parity_tests! {
    a_step_logits_match_transformers: "A", check_step_logits;
    b_step_logits_match_transformers: "B", check_step_logits;
    a_prompt_mode_equals_step_mode: "A", check_prompt_vs_step;
    b_prompt_mode_equals_step_mode: "B", check_prompt_vs_step;
    a_greedy_and_state_restore: "A", check_greedy_and_state;
    b_greedy_and_state_restore: "B", check_greedy_and_state;
    c_step_logits_match_transformers: "C", check_step_logits;
    c_prompt_mode_equals_step_mode: "C", check_prompt_vs_step;
    c_greedy_and_state_restore: "C", check_greedy_and_state;
}

/// The same checkpoint exported as v1 f32 and as GGUF f32 gives identical logits.
#[test]
fn v1_and_gguf_f32_give_identical_logits() {
    for name in ["A", "B"] {
        let f = fixture_data(name);
        let a = load(&fixture(&format!("lm/{name}.bin")));
        let b = load(&fixture(&format!("lm/{name}.gguf")));
        let mut sa = Session::new(a);
        let mut sb = Session::new(b);
        // v1 pads the head to a multiple of 8 rows; GGUF keeps the checkpoint's rows.
        for &t in &f.prompt {
            let la = sa.forward(t).unwrap()[..f.vocab].to_vec();
            assert_eq!(la, sb.forward(t).unwrap()[..f.vocab], "{name}");
        }
    }
}

/// Prompts longer than one prompt block (`PROMPT_BLOCK` tokens) run as several blocks,
/// of which only the last computes logits: the logits returned and the
/// state left are still those of feeding the tokens one at a time, for
/// lengths that end on a block boundary, one past it, and in between; and
/// a prompt fed in two calls ends the same.
#[test]
fn prompts_over_several_blocks_equal_step_mode() {
    let f = fixture_data("C");
    let model = load(&fixture("lm/C.gguf"));
    let v = model.config.padded_vocab;
    let bl = mamba::mamba::lm::PROMPT_BLOCK;
    let tokens: Vec<u32> = (0..3 * bl as u32)
        .map(|i| (i * 7919 + 3) % f.vocab as u32)
        .collect();
    for n in [2, bl / 2 + 1, bl, bl + 1, 2 * bl, 2 * bl + bl / 3, 3 * bl] {
        let mut step = Session::new(model.clone());
        for &t in &tokens[..n] {
            step.forward(t).unwrap();
        }
        let mut prompt = Session::new(model.clone());
        let l = prompt.forward_tokens(&tokens[..n]).unwrap().to_vec();
        assert_eq!(l.len(), v);
        let e = rel_err(&l, step.logits());
        assert!(e < 1e-5, "{n} tokens: prompt vs step logits rel err {e}");
        let es = rel_err(&state_vec(&prompt), &state_vec(&step));
        assert!(es < 1e-5, "{n} tokens: prompt vs step state rel err {es}");
        // In two calls, split in the middle.
        let mut two = Session::new(model.clone());
        two.forward_tokens(&tokens[..n / 2]).unwrap();
        let l2 = two.forward_tokens(&tokens[n / 2..n]).unwrap().to_vec();
        let e2 = rel_err(&l2, step.logits());
        assert!(e2 < 1e-5, "{n} tokens in two calls: rel err {e2}");
    }
}

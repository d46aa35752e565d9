//! The C project's v1 file variants (c-project.md §5): float32, int8, fp16 and
//! "bfloat8" with `<model>.scales`, loaded as they are and kept quantized.
//! Numbers are printed (run with --nocapture) and reported in docs/drop-in.md.

mod common;

use common::*;
use mamba::model::{DType, Model};
use mamba::{load, LoadOptions, Session};
use std::sync::Arc;

fn load_v1(name: &str, bfloat8: bool) -> mamba::Result<Model> {
    load(
        &fixture(&format!("lm/{name}")),
        &LoadOptions {
            legacy_bfloat8: bfloat8,
            ..Default::default()
        },
    )
}

fn argmax(x: &[f32]) -> usize {
    let mut b = 0;
    for i in 1..x.len() {
        if x[i] > x[b] {
            b = i;
        }
    }
    b
}

/// Greedy ids after the prompt, `n` of them, with the f32 model.
fn greedy_run(model: &Arc<Model>, prompt: &[u32], n: usize) -> Vec<u32> {
    let v = model.config.vocab_size;
    let mut s = Session::new(model.clone());
    let mut next = argmax(&s.forward_tokens(prompt).unwrap()[..v]) as u32;
    let mut out = vec![];
    for _ in 0..n {
        out.push(next);
        next = argmax(&s.forward(next).unwrap()[..v]) as u32;
    }
    out
}

struct Stats {
    max_abs: f32,
    rel: f32,
    forced_agree: usize,
    free_prefix: usize,
}

/// Logits over the prompt vs the f32 reference; greedy agreement over `n`
/// tokens: with the f32 run's history forced (per-position argmax), and the
/// common prefix of a free-running greedy run.
fn compare(q: &Arc<Model>, f32_ids: &[u32], prompt: &[u32], ref_logits: &[f32]) -> Stats {
    let v = q.config.vocab_size;
    let mut s = Session::new(q.clone());
    let mut max_abs = 0.0f32;
    for (t, &id) in prompt.iter().enumerate() {
        let l = s.forward(id).unwrap();
        for (a, b) in l[..v].iter().zip(&ref_logits[t * v..(t + 1) * v]) {
            max_abs = max_abs.max((a - b).abs());
        }
    }
    let scale = ref_logits.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let mut forced_agree = 0;
    let mut next = argmax(&s.logits()[..v]) as u32;
    for &want in f32_ids {
        forced_agree += (next == want) as usize;
        next = argmax(&s.forward(want).unwrap()[..v]) as u32;
    }
    let free = greedy_run(q, prompt, f32_ids.len());
    let free_prefix = free.iter().zip(f32_ids).take_while(|(a, b)| a == b).count();
    Stats {
        max_abs,
        rel: max_abs / scale,
        forced_agree,
        free_prefix,
    }
}

#[test]
fn quantized_v1_variants_load_quantized_and_track_f32() {
    let prompt: Vec<u32> = read_i32(&fixture("lm/B/prompt.i32"))
        .iter()
        .map(|&x| x as u32)
        .collect();
    let ref_logits = read_f32(&fixture("lm/B/logits.f32"));
    let f = Arc::new(load_v1("B.bin", false).unwrap());
    let f32_ids = greedy_run(&f, &prompt, 64);
    // The f32 file reproduces the transformers greedy ids.
    let greedy: Vec<u32> = read_i32(&fixture("lm/B/greedy.i32"))
        .iter()
        .map(|&x| x as u32)
        .collect();
    assert_eq!(&f32_ids[..32], &greedy[..]);

    let cases = [
        ("B.int8.bin", false, DType::I8, 0.6f32, 56usize),
        ("B.fp16.bin", false, DType::F16, 0.05, 64),
        ("B.bfloat8.bin", true, DType::BF8, 5.0, 16),
    ];
    for (name, bf8, dtype, max_err, min_forced) in cases {
        let q = Arc::new(load_v1(name, bf8).unwrap());
        let l0 = &q.weights.layers[0].mixer;
        // Big matrices stay quantized, with the per-layer scale.
        for t in [&l0.in_proj, &l0.x_proj, &l0.dt_proj, &l0.out_proj] {
            assert_eq!(t.dtype, dtype, "{name}: {t:?}");
            assert!(t.scale != 1.0 && t.scale > 0.0);
        }
        // The small ones are f32 for the block math; A, D, norms untouched.
        assert_eq!(l0.conv_w.dtype, DType::F32);
        assert_eq!(l0.dt_bias.dtype, DType::F32);
        assert_eq!(q.weights.embedding.dtype, DType::F32);
        // Dequantized in_proj against the f32 file's, per element.
        let fw = f.weights.layers[1].mixer.in_proj.to_f32_vec();
        let qw = q.weights.layers[1].mixer.in_proj.to_f32_vec();
        let wmax = fw.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let werr = fw
            .iter()
            .zip(&qw)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        let st = compare(&q, &f32_ids, &prompt, &ref_logits);
        println!(
            "{name}: weights max err {:.4} of max |w|; logits max |diff| vs f32 {:.4} ({:.4} relative); \
             greedy agreement over 64 tokens: {}/64 with f32 history forced, free-running identical for the first {}",
            werr / wmax,
            st.max_abs,
            st.rel,
            st.forced_agree,
            st.free_prefix
        );
        let werr_bound = match dtype {
            DType::I8 => 0.5 / 127.0 + 1e-6,
            DType::F16 => 1e-3,
            _ => 0.13,
        };
        assert!(werr / wmax <= werr_bound, "{name}: weight error {werr}");
        assert!(st.max_abs < max_err, "{name}: logits error {}", st.max_abs);
        assert!(st.forced_agree >= min_forced, "{name}: {}", st.forced_agree);
    }
}

#[test]
fn int8_matches_reference_on_its_own_weights() {
    let q = Arc::new(load_v1("B.int8.bin", false).unwrap());
    let prompt: Vec<u32> = read_i32(&fixture("lm/B/prompt.i32"))
        .iter()
        .map(|&x| x as u32)
        .collect();
    let r = read_f32(&fixture("lm/B/logits_int8_bin.f32"));
    let v = q.config.vocab_size;
    let mut s = Session::new(q.clone());
    let mut m = 0.0f32;
    for (t, &id) in prompt.iter().enumerate() {
        let l = s.forward(id).unwrap();
        for (a, b) in l[..v].iter().zip(&r[t * v..(t + 1) * v]) {
            m = m.max((a - b).abs());
        }
    }
    assert!(m < 1e-3, "int8 logits vs numpy on dequantized weights: {m}");
}

#[test]
fn one_byte_files_are_int8_unless_bfloat8_is_asked() {
    let a = load_v1("B.bfloat8.bin", false).unwrap();
    assert_eq!(a.weights.layers[0].mixer.in_proj.dtype, DType::I8);
    let b = load_v1("B.bfloat8.bin", true).unwrap();
    assert_eq!(b.weights.layers[0].mixer.in_proj.dtype, DType::BF8);
    // The option does not change float32 or fp16 files.
    let c = load_v1("B.fp16.bin", true).unwrap();
    assert_eq!(c.weights.layers[0].mixer.in_proj.dtype, DType::F16);
    let d = load_v1("B.bin", true).unwrap();
    assert_eq!(d.weights.layers[0].mixer.in_proj.dtype, DType::F32);
}

#[test]
fn missing_or_short_scales_name_the_file() {
    let dir = std::env::temp_dir().join(format!("mamba-legacy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("m.bin");
    std::fs::copy(fixture("lm/B.int8.bin"), &model).unwrap();
    let p = model.to_str().unwrap();
    let e = load(p, &LoadOptions::default()).err().expect("no scales");
    assert!(e.message.contains("m.bin.scales"), "{}", e.message);
    let scales = std::fs::read(fixture("lm/B.int8.bin.scales")).unwrap();
    std::fs::write(dir.join("m.bin.scales"), &scales[..scales.len() - 4]).unwrap();
    let e = load(p, &LoadOptions::default())
        .err()
        .expect("short scales");
    assert!(e.message.contains("m.bin.scales"), "{}", e.message);
    assert!(e.message.contains("expected 56"), "{}", e.message);
    // A truncated model body names the sizes it expected.
    let body = std::fs::read(fixture("lm/B.int8.bin")).unwrap();
    std::fs::write(&model, &body[..body.len() - 10]).unwrap();
    let e = load(p, &LoadOptions::default()).err().expect("truncated");
    assert!(e.message.contains("int8/bfloat8"), "{}", e.message);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn modern_api_option_picks_bfloat8() {
    use mamba::ffi::api::*;
    use std::ffi::CString;
    let path = CString::new(fixture("lm/B.bfloat8.bin")).unwrap();
    let mut o = mamba_load_options_default();
    o.legacy_bfloat8 = 1;
    let mut m = std::ptr::null_mut();
    unsafe {
        assert_eq!(
            mamba_model_load(path.as_ptr(), &o, &mut m),
            mamba::ffi::mamba_status::MAMBA_OK
        );
        mamba_model_free(m);
    }
}

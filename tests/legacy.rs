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

/// A tiny v1 file written here: 1 layer, dim 4, d_inner 6, d_conv 3, so the
/// one-byte tensors leave A, D and the norms at offsets that are not
/// multiples of 4. Returns (int8 file bytes, scales, the same model as float32).
fn tiny_v1(dir: &std::path::Path) -> (String, String) {
    let (l, v, d, di, r, s, k) = (1usize, 8usize, 4usize, 6usize, 1usize, 2usize, 3usize);
    let mut seed = 12345u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed >> 11) as f64 / (1u64 << 53) as f64) as f32 * 2.0 - 1.0
    };
    let mut header = vec![0u8; 256];
    let ints = [
        0x4d61_6d62u32 as i32,
        1,
        l as i32,
        v as i32,
        d as i32,
        di as i32,
        r as i32,
        s as i32,
        k as i32,
        1,
    ];
    for (i, x) in ints.iter().enumerate() {
        header[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
    let f32s = |n: usize, rnd: &mut dyn FnMut() -> f32| (0..n).map(|_| rnd()).collect::<Vec<f32>>();
    let i8s = |n: usize| {
        (0..n)
            .map(|i| ((i * 37 + 11) % 255) as u8 as i8)
            .collect::<Vec<i8>>()
    };
    let quant_sizes = [2 * di * d, di * k, di, (r + 2 * s) * di, di * r, di, d * di];
    let scales: Vec<f32> = (0..7).map(|i| 0.01 + 0.002 * i as f32).collect();
    let emb = f32s(v * d, &mut rnd);
    let a: Vec<f32> = f32s(di * s, &mut rnd)
        .iter()
        .map(|x| -x.abs() - 0.1)
        .collect();
    let dd = f32s(di, &mut rnd);
    let norm = f32s(d, &mut rnd);
    let norm_f = f32s(d, &mut rnd);
    let q: Vec<Vec<i8>> = quant_sizes.iter().map(|&n| i8s(n)).collect();
    let (mut qfile, mut ffile) = (header.clone(), header);
    let put_f = |out: &mut Vec<u8>, xs: &[f32]| {
        xs.iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes()))
    };
    put_f(&mut qfile, &emb);
    put_f(&mut ffile, &emb);
    for (i, t) in q.iter().enumerate() {
        if i == 6 {
            // A and D come between dt_proj bias and out_proj.
            put_f(&mut qfile, &a);
            put_f(&mut qfile, &dd);
            put_f(&mut ffile, &a);
            put_f(&mut ffile, &dd);
        }
        qfile.extend(t.iter().map(|&x| x as u8));
        let deq: Vec<f32> = t.iter().map(|&x| x as f32 * scales[i]).collect();
        put_f(&mut ffile, &deq);
    }
    for out in [&mut qfile, &mut ffile] {
        put_f(out, &norm);
        put_f(out, &norm_f);
    }
    let qp = dir.join("tiny.int8.bin");
    let fp = dir.join("tiny.f32.bin");
    std::fs::write(&qp, &qfile).unwrap();
    std::fs::write(&fp, &ffile).unwrap();
    let mut sc = vec![];
    put_f(&mut sc, &scales);
    std::fs::write(dir.join("tiny.int8.bin.scales"), &sc).unwrap();
    (qp.to_str().unwrap().into(), fp.to_str().unwrap().into())
}

#[test]
fn unaligned_f32_tensors_after_one_byte_tensors() {
    let dir = std::env::temp_dir().join(format!("mamba-legacy-tiny-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (qp, fp) = tiny_v1(&dir);
    let f = Arc::new(load(&fp, &LoadOptions::default()).unwrap());
    for copy in [false, true] {
        let q = Arc::new(
            load(
                &qp,
                &LoadOptions {
                    copy,
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        let (fl, ql) = (&f.weights.layers[0], &q.weights.layers[0]);
        assert_eq!(ql.mixer.in_proj.dtype, DType::I8);
        assert_eq!(fl.mixer.a.to_f32_vec(), ql.mixer.a.to_f32_vec());
        assert_eq!(fl.mixer.d.to_f32_vec(), ql.mixer.d.to_f32_vec());
        assert_eq!(fl.norm.to_f32_vec(), ql.norm.to_f32_vec());
        assert_eq!(f.weights.norm_f.to_f32_vec(), q.weights.norm_f.to_f32_vec());
        let (mut sf, mut sq) = (Session::new(f.clone()), Session::new(q.clone()));
        for t in [1u32, 5, 7, 0, 3] {
            let a = sf.forward(t).unwrap().to_vec();
            let b = sq.forward(t).unwrap();
            let m = a
                .iter()
                .zip(b)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(m < 1e-5, "int8 vs its dequantized f32 twin: {m}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

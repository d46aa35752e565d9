//! Accuracy of quantized exports against the f32 export of the same model:
//! `cargo run --release --example dtype_report REF_F32 OTHER...`
//!
//! The f32 model generates 64 greedy tokens after a fixed 16-token prompt;
//! every other file is fed the same tokens (teacher forcing) and compared at
//! each of the 64 positions: max |Δlogit| / max |logit| and top-1 agreement.
use mamba::{LoadOptions, Session};
use std::sync::Arc;

fn argmax(x: &[f32]) -> usize {
    let mut b = 0;
    for i in 1..x.len() {
        if x[i] > x[b] {
            b = i;
        }
    }
    b
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let load = |p: &str| {
        Arc::new(mamba::load(p, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}")))
    };
    let reference = load(&args[0]);
    let vocab = reference.config.vocab_size;
    let prompt: Vec<u32> = (0..16).map(|i| ((i * 7919 + 13) % vocab) as u32).collect();
    let mut s = Session::new(reference.clone());
    s.forward_tokens(&prompt).unwrap();
    let mut ref_logits = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..64 {
        let l = s.logits()[..vocab].to_vec();
        let t = argmax(&l) as u32;
        ref_logits.push(l);
        tokens.push(t);
        s.forward(t).unwrap();
    }
    println!("| file | dtype | size (MB) | max rel logit err | top-1 agreement (64 pos) |");
    println!("|---|---|---:|---:|---:|");
    for p in &args[1..] {
        let m = load(p);
        let dtype = m.weights.layers[0].mixer.in_proj.dtype.name();
        let mut s = Session::new(m.clone());
        s.forward_tokens(&prompt).unwrap();
        let (mut worst, mut agree) = (0.0f32, 0);
        for (i, &t) in tokens.iter().enumerate() {
            let l = &s.logits()[..vocab];
            let r = &ref_logits[i];
            let scale = r.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            let diff = l
                .iter()
                .zip(r)
                .fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
            worst = worst.max(diff / scale);
            agree += (argmax(l) == argmax(r)) as usize;
            s.forward(t).unwrap();
        }
        println!(
            "| {} | {dtype} | {:.1} | {worst:.2e} | {:.1}% |",
            std::path::Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy(),
            m.file_bytes as f64 / 1e6,
            agree as f64 / 64.0 * 100.0
        );
    }
}

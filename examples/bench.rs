//! `make bench`: one table of decode, prompt and batched-decode speed per
//! weight type and thread count, against the machine's measured read
//! bandwidth. Usage: bench MODEL_FILE... (random models of one shape,
//! written by py/make_random_checkpoint.py + py/export.py; see Makefile).
use mamba::{LoadOptions, Model, Session};
use std::sync::Arc;
use std::time::Instant;

/// Bytes a decode step reads: every weight once (the embedding row aside).
fn weight_bytes(m: &Model) -> u64 {
    let w = &m.weights;
    let mut b = w.head().bytes().len() as u64 + w.norm_f.bytes().len() as u64;
    for l in &w.layers {
        let x = &l.mixer;
        for t in [
            &l.norm,
            &x.in_proj,
            &x.conv_w,
            &x.x_proj,
            &x.dt_proj,
            &x.dt_bias,
            &x.a,
            &x.d,
            &x.out_proj,
        ] {
            b += t.bytes().len() as u64;
        }
    }
    b
}

/// Read bandwidth with `threads` threads summing a 512 MiB buffer.
fn read_bandwidth(threads: usize) -> f64 {
    let n = 512 << 20;
    let buf: Vec<u64> = (0..n / 8).map(|i| i as u64).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut best = 0.0f64;
    for _ in 0..3 {
        let t = Instant::now();
        let s: u64 = pool.install(|| {
            use rayon::prelude::*;
            buf.par_chunks(1 << 16)
                .map(|c| c.iter().fold(0u64, |a, &v| a.wrapping_add(v)))
                .reduce(|| 0, |a, b| a.wrapping_add(b))
        });
        std::hint::black_box(s);
        best = best.max(n as f64 / t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: bench MODEL...");
        std::process::exit(2);
    }
    let bw: Vec<f64> = [1, 2].iter().map(|&t| read_bandwidth(t)).collect();
    println!(
        "machine read bandwidth: {:.1} GB/s (1 thread), {:.1} GB/s (2 threads)\n",
        bw[0] / 1e9,
        bw[1] / 1e9
    );
    println!("| model | dtype | threads | weight MB/token | decode tok/s | GB/s | % of bound | prompt-128 tok/s | batch-8 tok/s | batch/single |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in &files {
        let m = Arc::new(mamba::load(f, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}")));
        let wb = weight_bytes(&m);
        let dtype = m.weights.layers[0].mixer.in_proj.dtype.name();
        let vocab = m.config.vocab_size;
        for threads in [1usize, 2] {
            mamba::threads::set_num_threads(threads);
            let prompt: Vec<u32> = (0..128).map(|i| ((i * 7919 + 1) % vocab) as u32).collect();
            // Prompt.
            let mut s = Session::new(m.clone());
            s.forward_tokens(&prompt[..16]).unwrap();
            let mut best_p = 0.0f64;
            for _ in 0..2 {
                s.reset();
                let t = Instant::now();
                s.forward_tokens(&prompt).unwrap();
                best_p = best_p.max(128.0 / t.elapsed().as_secs_f64());
            }
            // Decode.
            let steps = 48;
            let t = Instant::now();
            for i in 0..steps {
                s.forward(prompt[i % 128]).unwrap();
            }
            let dec = steps as f64 / t.elapsed().as_secs_f64();
            // Batched decode, 8 sessions.
            let mut ss: Vec<Session> = (0..8).map(|_| Session::new(m.clone())).collect();
            let toks: Vec<u32> = (0..8).map(|i| prompt[i] as u32).collect();
            {
                let mut refs: Vec<&mut Session> = ss.iter_mut().collect();
                Session::forward_batch(&mut refs, &toks).unwrap();
            }
            let bsteps = 12;
            let t = Instant::now();
            for _ in 0..bsteps {
                let mut refs: Vec<&mut Session> = ss.iter_mut().collect();
                Session::forward_batch(&mut refs, &toks).unwrap();
            }
            let batch = (8 * bsteps) as f64 / t.elapsed().as_secs_f64();
            let gbs = wb as f64 * dec / 1e9;
            let bound = bw[threads - 1] / wb as f64;
            println!(
                "| {} | {dtype} | {threads} | {:.1} | {dec:.1} | {gbs:.1} | {:.0}% | {best_p:.0} | {batch:.0} | {:.1}x |",
                std::path::Path::new(f).file_name().unwrap().to_string_lossy(),
                wb as f64 / 1e6,
                100.0 * dec / bound,
                batch / dec
            );
        }
    }
}

//! Quick decode/prompt timing on a model file: `cargo run --release --example quickbench MODEL [threads]`.
use mamba::{LoadOptions, Session};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = &args[1];
    if let Some(t) = args.get(2) {
        mamba::threads::set_num_threads(t.parse().unwrap());
    }
    let m = Arc::new(mamba::load(path, &LoadOptions::default()).unwrap());
    let mut s = Session::new(m.clone());
    let prompt: Vec<u32> = (0..128).map(|i| (i * 97 % 50000) as u32).collect();
    s.forward_tokens(&prompt[..8]).unwrap();
    s.reset();
    let t0 = Instant::now();
    s.forward_tokens(&prompt).unwrap();
    let pt = t0.elapsed().as_secs_f64();
    let n = 64;
    let t1 = Instant::now();
    for i in 0..n {
        s.forward((i * 13 % 1000) as u32).unwrap();
    }
    let dt = t1.elapsed().as_secs_f64();
    println!(
        "threads {} prompt {:.1} tok/s decode {:.1} tok/s ({:.1} GB/s of weights)",
        mamba::threads::num_threads(),
        128.0 / pt,
        n as f64 / dt,
        m.file_bytes as f64 * n as f64 / dt / 1e9
    );
}

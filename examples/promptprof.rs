//! Profiling helper: repeated 128-token prompts. `promptprof MODEL`
use mamba::{LoadOptions, Session};
use std::sync::Arc;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let m = Arc::new(mamba::load(&a[1], &LoadOptions::default()).unwrap());
    let mut s = Session::new(m);
    let p: Vec<u32> = (0..128).map(|i| i * 97 % 50000).collect();
    let t = std::time::Instant::now();
    for _ in 0..6 {
        s.reset();
        s.forward_tokens(&p).unwrap();
    }
    println!("{:.1} tok/s", 768.0 / t.elapsed().as_secs_f64());
}

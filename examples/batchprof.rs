use mamba::{LoadOptions, Session};
use std::sync::Arc;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let m = Arc::new(mamba::load(&a[1], &LoadOptions::default()).unwrap());
    let mut ss: Vec<Session> = (0..8).map(|_| Session::new(m.clone())).collect();
    let toks: Vec<u32> = (0..8).map(|i| i * 100 + 5).collect();
    let t = std::time::Instant::now();
    for _ in 0..20 {
        let mut refs: Vec<&mut Session> = ss.iter_mut().collect();
        Session::forward_batch(&mut refs, &toks).unwrap();
    }
    println!("{:.1} tok/s", 160.0 / t.elapsed().as_secs_f64());
}

//! The decode hot path allocates nothing: after warm-up, feeding tokens one
//! at a time (one thread or several) and batched decode of up to 8 sessions
//! make no heap allocation at all, on any thread.

mod common;
use common::*;
use mamba::{LoadOptions, Session};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One test function, so no other test allocates while we count.
#[test]
fn decode_allocates_nothing_per_token() {
    for name in ["A.bin", "C.gguf", "C.q8_0.gguf", "C.q8row.gguf"] {
        for vnni in [false, true] {
            let mut m =
                mamba::load(&fixture(&format!("lm/{name}")), &LoadOptions::default()).unwrap();
            m.int8_vnni = vnni;
            let m = Arc::new(m);
            let vocab = m.config.vocab_size as u32;
            for threads in [1, 2, 3] {
                mamba::threads::set_num_threads(threads);
                let mut s = Session::new(m.clone());
                let mut batch: Vec<Session> = (0..8).map(|_| Session::new(m.clone())).collect();
                let toks: Vec<u32> = (0..8).map(|i| (i * 13 + 1) % vocab).collect();
                let mut refs: Vec<&mut Session> = batch.iter_mut().collect();
                // Warm-up: first-use buffers (logits of the batch, the pool).
                for t in 0..4 {
                    s.forward(t).unwrap();
                    Session::forward_batch(&mut refs, &toks).unwrap();
                }
                // The pool replaced by set_num_threads shuts its threads down
                // in the background (their exit allocates): let them finish.
                std::thread::sleep(std::time::Duration::from_millis(200));
                let before = ALLOCS.load(Ordering::Relaxed);
                for t in 0..32 {
                    s.forward((t * 7 + 3) % vocab).unwrap();
                }
                let single = ALLOCS.load(Ordering::Relaxed) - before;
                assert_eq!(single, 0, "{name} vnni {vnni}: {single} allocations in 32 decode steps, {threads} threads");
                let before = ALLOCS.load(Ordering::Relaxed);
                for _ in 0..8 {
                    Session::forward_batch(&mut refs, &toks).unwrap();
                }
                let batched = ALLOCS.load(Ordering::Relaxed) - before;
                assert_eq!(batched, 0, "{name} vnni {vnni}: {batched} allocations in 8 batched steps, {threads} threads");
            }
        }
    }
    mamba::threads::set_num_threads(0);
}

//! The worker threads kernels split large products over.
//!
//! One process-wide rayon pool, sized by `MAMBA_NUM_THREADS` (default: the
//! number of cores) or by [`set_num_threads`]; the size can change at any
//! time, and forwards that already started finish on the pool they began on.

use std::sync::{Arc, OnceLock, RwLock};

static POOL: OnceLock<RwLock<Arc<rayon::ThreadPool>>> = OnceLock::new();

fn build(n: usize) -> Arc<rayon::ThreadPool> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("mamba-{i}"))
        .build()
        .or_else(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build())
        .expect("cannot start even one worker thread");
    Arc::new(pool)
}

fn default_threads() -> usize {
    std::env::var("MAMBA_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .min(256)
}

/// The current pool.
pub fn pool() -> Arc<rayon::ThreadPool> {
    let lock = POOL.get_or_init(|| RwLock::new(build(default_threads())));
    lock.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Sets the number of threads (0 = default: MAMBA_NUM_THREADS or all cores).
pub fn set_num_threads(n: usize) {
    let n = if n == 0 {
        default_threads()
    } else {
        n.min(256)
    };
    let lock = POOL.get_or_init(|| RwLock::new(build(n)));
    let mut g = lock.write().unwrap_or_else(|e| e.into_inner());
    if g.current_num_threads() != n {
        *g = build(n);
    }
}

pub fn num_threads() -> usize {
    pool().current_num_threads()
}

/// Runs `f` on the pool (kernels inside use its threads).
pub fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

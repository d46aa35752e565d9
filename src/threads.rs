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

/// The cores this process may use (detected once).
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// How many threads [`phased`] uses from inside the current pool: its size,
/// but never more than there are cores. The helpers spin, so with more pool
/// threads than cores (MAMBA_NUM_THREADS=8 on 2 cores) they would take turns
/// with the caller instead of helping it.
pub fn team_size() -> usize {
    rayon::current_num_threads().min(cores()).max(1)
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

/// Runs a fixed sequence of phases on the calling thread and whichever pool
/// workers join in, with spinning hand-offs instead of one rayon region per
/// product.
///
/// Phase `p` consists of `chunks(p)` independent pieces of work, `work(p, i)`.
/// Before phase `p` starts, `between(p)` runs on the calling thread alone,
/// after every chunk of phase `p - 1` has finished (its writes are visible).
/// Chunks are claimed one at a time from a shared counter, so the calling
/// thread finishes the whole plan by itself if no worker ever shows up; it
/// never waits for a worker that has not claimed a chunk, so concurrent
/// callers sharing the pool cannot deadlock each other. Workers spin between
/// phases and leave when the plan is done.
///
/// A decode step is ~100 phases of 5–300 µs each: rayon's wake-up per region
/// costs more than the shorter phases, while a spinning hand-off costs one
/// cache-line transfer.
pub fn phased<C, W, B>(n_phases: usize, chunks: C, work: W, mut between: B)
where
    C: Fn(usize) -> usize + Sync,
    W: Fn(usize, usize) + Sync,
    B: FnMut(usize) + Send,
{
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let helpers = team_size().saturating_sub(1);
    if helpers == 0 || rayon::current_thread_index().is_none() {
        for p in 0..n_phases {
            between(p);
            for i in 0..chunks(p) {
                work(p, i);
            }
        }
        return;
    }
    // `word` packs (phase << 32 | next unclaimed chunk); `done` counts the
    // finished chunks of the current phase.
    const IDLE: u64 = (u32::MAX as u64 - 1) << 32;
    const DONE: u64 = (u32::MAX as u64) << 32;
    struct Plan {
        word: AtomicU64,
        done: AtomicUsize,
    }
    let plan = Plan {
        word: AtomicU64::new(IDLE),
        done: AtomicUsize::new(0),
    };
    // Counts a chunk as finished even when its work panics, so nobody spins
    // forever; the panic itself reaches the caller through `rayon::join`.
    struct Finished<'a>(&'a AtomicUsize);
    impl Drop for Finished<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Release);
        }
    }
    // Ends the plan for the workers however the caller leaves it (a panic too).
    struct EndPlan<'a>(&'a AtomicU64);
    impl Drop for EndPlan<'_> {
        fn drop(&mut self) {
            self.0.store(DONE, Ordering::Release);
        }
    }
    let claim = |p: usize| -> Option<usize> {
        let n = chunks(p) as u64;
        let mut w = plan.word.load(Ordering::Acquire);
        loop {
            if w >> 32 != p as u64 || w & 0xffff_ffff >= n {
                return None;
            }
            match plan
                .word
                .compare_exchange_weak(w, w + 1, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => return Some((w & 0xffff_ffff) as usize),
                Err(now) => w = now,
            }
        }
    };
    let run_claimed = |p: usize| {
        while let Some(i) = claim(p) {
            let _f = Finished(&plan.done);
            work(p, i);
        }
    };
    let helper = || {
        let mut idle = 0u32;
        loop {
            let w = plan.word.load(Ordering::Acquire);
            if w == DONE {
                return;
            }
            let p = (w >> 32) as usize;
            if p < n_phases && (w & 0xffff_ffff) < chunks(p) as u64 {
                run_claimed(p);
                idle = 0;
            } else if idle < 1 << 16 {
                idle += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    };
    let caller = || {
        let _end = EndPlan(&plan.word);
        for p in 0..n_phases {
            between(p);
            plan.done.store(0, Ordering::Relaxed);
            plan.word.store((p as u64) << 32, Ordering::Release);
            run_claimed(p);
            let n = chunks(p);
            while plan.done.load(Ordering::Acquire) < n {
                std::hint::spin_loop();
            }
        }
    };
    with_helpers(helpers, &helper, caller);
}

/// Runs `caller` on this thread while `k` copies of `helper` wait in rayon's
/// queue for idle workers (nested `join`s: stack jobs, no heap allocation,
/// so a decode step allocates nothing). A helper nobody took before
/// `caller` returned runs here afterwards, finds the plan done and returns.
fn with_helpers(k: usize, helper: &(impl Fn() + Sync), caller: impl FnOnce() + Send) {
    if k == 0 {
        caller()
    } else {
        rayon::join(|| with_helpers(k - 1, helper, caller), helper);
    }
}

#[cfg(test)]
mod tests {
    use super::phased;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn chunks(p: usize) -> usize {
        p % 7 + 1
    }

    /// Runs 60 phases and checks that `between(p)` sees every chunk of every
    /// earlier phase finished, exactly once.
    fn run_plan() {
        let counts: Vec<AtomicUsize> = (0..60).map(|_| AtomicUsize::new(0)).collect();
        let sum = AtomicUsize::new(0);
        phased(
            60,
            chunks,
            |p, i| {
                assert!(i < chunks(p));
                counts[p].fetch_add(1, Ordering::Relaxed);
                sum.fetch_add(i + 1, Ordering::Relaxed);
            },
            |p| {
                for (q, c) in counts.iter().enumerate() {
                    let want = if q < p { chunks(q) } else { 0 };
                    assert_eq!(c.load(Ordering::Relaxed), want, "phase {q} before {p}");
                }
            },
        );
        let total: usize = (0..60).map(|p| chunks(p) * (chunks(p) + 1) / 2).sum();
        assert_eq!(sum.load(Ordering::Relaxed), total);
    }

    #[test]
    fn phases_run_in_order_on_any_pool() {
        for n in [1, 2, 3, 5] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap();
            for _ in 0..20 {
                pool.install(run_plan);
            }
        }
        run_plan(); // outside any pool: the calling thread alone
    }

    /// More callers than workers, all at once on one pool: every plan ends
    /// (a caller never waits for a worker that has not claimed a chunk).
    #[test]
    fn concurrent_callers_share_a_pool() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        pool.install(run_plan);
                    }
                });
            }
        });
    }

    #[test]
    fn a_panicking_chunk_reaches_the_caller() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| phased(10, |_| 8, |p, i| assert!(!(p == 4 && i == 5)), |_| {}))
        }));
        assert!(r.is_err());
        pool.install(run_plan); // the pool still works
    }
}

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

/// One parallel loop posted to a [`team`]: `count` chunks, `f(i)` each.
struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    count: usize,
}

/// What a team's helpers watch: `word` packs (job number << 32 | next
/// unclaimed chunk), or IDLE / DONE; `job` points at the posted job while
/// its number is in `word`; `active` counts helpers that may be reading it.
struct TeamPlan {
    word: std::sync::atomic::AtomicU64,
    job: std::sync::atomic::AtomicPtr<Job<'static>>,
    done: std::sync::atomic::AtomicUsize,
    active: std::sync::atomic::AtomicUsize,
}

const TEAM_IDLE: u64 = (u32::MAX as u64 - 1) << 32;
const TEAM_DONE: u64 = (u32::MAX as u64) << 32;

thread_local! {
    /// The team whose caller this thread is (null outside one, and while
    /// the caller runs one of its own loops: a loop inside a loop's chunk
    /// runs on rayon instead).
    static TEAM: std::cell::Cell<*const TeamPlan> = const { std::cell::Cell::new(std::ptr::null()) };
}

/// Runs `f` on the calling thread with the pool's other workers (up to
/// [`team_size`]) spinning beside it: every [`par_for`] inside `f` on this
/// thread hands its chunks to them with one atomic store, instead of a rayon
/// region whose sleeping workers take tens of microseconds to wake. A prompt
/// runs ~300 such loops; on a rayon region each, one of two threads sat idle
/// for a quarter of the time. The helpers leave when `f` returns; like
/// [`phased`], the caller never waits for a helper that has not claimed a
/// chunk, so concurrent callers on one pool cannot deadlock. Inside a team
/// already (or outside any pool, or with one thread) `f` just runs.
pub fn team<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
    let helpers = team_size().saturating_sub(1);
    if helpers == 0 || rayon::current_thread_index().is_none() || !TEAM.with(|t| t.get().is_null())
    {
        return f();
    }
    let plan = TeamPlan {
        word: AtomicU64::new(TEAM_IDLE),
        job: AtomicPtr::new(std::ptr::null_mut()),
        done: AtomicUsize::new(0),
        active: AtomicUsize::new(0),
    };
    let owner = rayon::current_thread_index();
    let helper = || {
        // A helper job still queued on the caller's own thread runs there
        // if `f` waits inside a rayon call (rayon runs local jobs while it
        // waits): spinning there until `f` ends would never end.
        if rayon::current_thread_index() == owner {
            return;
        }
        let mut idle = 0u32;
        // The last job this helper has seen fully claimed.
        let mut drained = u64::MAX;
        loop {
            let w = plan.word.load(Ordering::Acquire);
            if w == TEAM_DONE {
                return;
            }
            if w == TEAM_IDLE || w >> 32 == drained {
                if idle < 1 << 16 {
                    idle += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
                continue;
            }
            idle = 0;
            // Announce, then look again: a job whose number is still in
            // `word` now stays alive until this helper leaves it.
            let _a = Active::enter(&plan.active);
            let w = plan.word.load(Ordering::SeqCst);
            if w == TEAM_IDLE || w == TEAM_DONE {
                continue;
            }
            // SAFETY: `job` was stored before `word` took this job's number
            // (Release/Acquire), and the caller frees the job only after
            // moving `word` on and seeing `active` at zero.
            let job = unsafe { &*plan.job.load(Ordering::Acquire) };
            claim_and_run(&plan, w, job);
            drained = w >> 32;
        }
    };
    let caller = || {
        struct End<'a>(&'a AtomicU64);
        impl Drop for End<'_> {
            fn drop(&mut self) {
                self.0.store(TEAM_DONE, Ordering::Release);
                TEAM.with(|t| t.set(std::ptr::null()));
            }
        }
        TEAM.with(|t| t.set(&plan));
        let _end = End(&plan.word);
        f()
    };
    let mut out = None;
    with_helpers(helpers, &helper, || out = Some(caller()));
    out.expect("the team's caller ran")
}

/// Counts a helper in `active` for as long as it lives.
struct Active<'a>(&'a std::sync::atomic::AtomicUsize);
impl<'a> Active<'a> {
    fn enter(a: &'a std::sync::atomic::AtomicUsize) -> Active<'a> {
        a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Active(a)
    }
}
impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Claims chunks of the job numbered in `w` (one at a time, by CAS on the
/// plan's word) and runs them, counting each in `done` even if it panics.
fn claim_and_run(plan: &TeamPlan, mut w: u64, job: &Job<'_>) {
    use std::sync::atomic::Ordering;
    struct Finished<'a>(&'a std::sync::atomic::AtomicUsize);
    impl Drop for Finished<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Release);
        }
    }
    let seq = w >> 32;
    loop {
        let i = w & 0xffff_ffff;
        if w >> 32 != seq || i >= job.count as u64 {
            return;
        }
        match plan
            .word
            .compare_exchange_weak(w, w + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                let _f = Finished(&plan.done);
                (job.f)(i as usize);
                w = plan.word.load(Ordering::Acquire);
            }
            Err(now) => w = now,
        }
    }
}

/// Runs `f(i)` for every i < count, in parallel: on the current [`team`]'s
/// spinning helpers when this thread leads one, else as a rayon loop.
pub fn par_for(count: usize, f: impl Fn(usize) + Sync + Send) {
    use rayon::prelude::*;
    use std::sync::atomic::Ordering;
    let plan = TEAM.with(|t| t.replace(std::ptr::null()));
    if plan.is_null() {
        (0..count).into_par_iter().for_each(f);
        return;
    }
    // SAFETY: the plan lives on the stack of `team`, which is running
    // (it clears TEAM before it returns).
    let plan = unsafe { &*plan };
    // Moves `word` on so that no helper claims more, waits until none is
    // inside the job, and gives the team back to this thread, however the
    // loop ends (a panic in one of its chunks too).
    struct Close<'a>(&'a TeamPlan);
    impl Drop for Close<'_> {
        fn drop(&mut self) {
            self.0.word.store(TEAM_IDLE, Ordering::SeqCst);
            while self.0.active.load(Ordering::SeqCst) != 0 {
                std::hint::spin_loop();
            }
            TEAM.with(|t| t.set(self.0));
        }
    }
    let f: &(dyn Fn(usize) + Sync) = &f;
    let job = Job { f, count };
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    // Job numbers only tell jobs apart; below IDLE's.
    let seq = (SEQ.fetch_add(1, Ordering::Relaxed) % (u32::MAX - 1)) as u64;
    plan.done.store(0, Ordering::Relaxed);
    plan.job.store(
        &job as *const Job<'_> as *mut Job<'static>,
        Ordering::Release,
    );
    plan.word.store(seq << 32, Ordering::SeqCst);
    let close = Close(plan);
    claim_and_run(plan, seq << 32, &job);
    while plan.done.load(Ordering::Acquire) < count {
        std::hint::spin_loop();
    }
    drop(close);
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
    use super::{par_for, phased, team};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn pool(n: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    }

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
            let pool = pool(n);
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
        all_at_once(8, 50, run_plan);
    }

    /// `callers` threads at once, each running `f` `rounds` times on one
    /// 2-thread pool.
    fn all_at_once(callers: usize, rounds: usize, f: fn()) {
        let pool = pool(2);
        std::thread::scope(|s| {
            for _ in 0..callers {
                s.spawn(|| {
                    for _ in 0..rounds {
                        pool.install(f);
                    }
                });
            }
        });
    }

    #[test]
    fn a_panicking_chunk_reaches_the_caller() {
        let pool = pool(3);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| phased(10, |_| 8, |p, i| assert!(!(p == 4 && i == 5)), |_| {}))
        }));
        assert!(r.is_err());
        pool.install(run_plan); // the pool still works
    }

    /// 200 loops of varying size inside one team, one of them with a loop
    /// inside its chunks: every index runs exactly once per loop, and each
    /// loop's writes are all visible when par_for returns.
    fn team_loops() {
        let hits: Vec<AtomicUsize> = (0..64).map(|_| AtomicUsize::new(0)).collect();
        team(|| {
            for l in 0..200 {
                let count = l % 64;
                par_for(count, |i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                    if l == 7 {
                        let inner = AtomicUsize::new(0);
                        par_for(5, |_| {
                            inner.fetch_add(1, Ordering::Relaxed);
                        });
                        assert_eq!(inner.load(Ordering::Relaxed), 5);
                    }
                });
                for (i, h) in hits.iter().enumerate() {
                    assert_eq!(
                        h.swap(0, Ordering::Relaxed),
                        usize::from(i < count),
                        "loop {l}"
                    );
                }
            }
        });
    }

    #[test]
    fn team_loops_run_every_chunk_once_on_any_pool() {
        for n in [1, 2, 3, 5] {
            let pool = pool(n);
            for _ in 0..10 {
                pool.install(team_loops);
            }
        }
        team_loops(); // outside any pool: par_for falls back to rayon's global pool
    }

    #[test]
    fn concurrent_teams_share_a_pool() {
        all_at_once(6, 10, team_loops);
    }

    #[test]
    fn a_panicking_team_chunk_reaches_the_caller() {
        let pool = pool(3);
        for bad in [0, 5] {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.install(|| {
                    team(|| {
                        for l in 0..10 {
                            par_for(8, |i| assert!(!(l == 4 && i == bad)));
                        }
                    })
                })
            }));
            assert!(r.is_err());
        }
        pool.install(team_loops); // the pool still works
    }
}

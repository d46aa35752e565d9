//! `make bench`: one table of decode, prompt and batched-decode speed per
//! model file and thread count, against the machine's read bandwidth as
//! measured here, then keyword-spotting latency and MNIST throughput.
//!
//! Usage: bench [--kws KWS.gguf --audio CLIP.f32] [--mnist MNIST.gguf] MODEL...
//! (LM files: random models written by py/make_random_checkpoint.py +
//! py/export.py; see the Makefile).
//!
//! The VM this project runs on is noisy (±15% between runs), so every number
//! is the best of several runs, bandwidth included; decode and batched
//! decode alternate run for run, so that their ratio compares like with like.
use mamba::{LoadOptions, Model, Session};
use std::ffi::CString;
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

/// Sums a slice. `fast`: four independent vector accumulators and software
/// prefetches 8 KiB ahead into L1 (into L2 where the kernels' prefetches go
/// there: `simd::prefetch_l2`) and 24 KiB ahead into L2 (what the decode
/// kernels do): the best a streaming
/// read achieves. Otherwise a plain loop the compiler vectorizes: the "plain
/// read" the speed issue states its bounds against.
fn sum_read(c: &[f32], fast: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if fast && std::is_x86_feature_detected!("avx512f") {
            // SAFETY: avx512f present.
            return unsafe { sum_avx512(c) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = fast;
    let mut acc = [0.0f32; 64];
    for ch in c.chunks_exact(64) {
        for (a, v) in acc.iter_mut().zip(ch) {
            *a += v;
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sum_avx512(c: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let p = c.as_ptr();
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    let l2 = mamba::kernels::simd::prefetch_l2();
    while i + 64 <= c.len() {
        for (j, a) in acc.iter_mut().enumerate() {
            mamba::kernels::simd::prefetch_near(p.wrapping_add(i + 2048 + 16 * j) as *const i8, l2);
            _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(i + 6144 + 16 * j) as *const i8);
            *a = _mm512_add_ps(*a, _mm512_loadu_ps(p.add(i + 16 * j)));
        }
        i += 64;
    }
    let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(s) + c[i..].iter().sum::<f32>()
}

/// Read bandwidth with `threads` threads, each streaming its own contiguous
/// part of a 512 MiB buffer: the best of 5 runs. The threads are started and
/// spinning before the clock starts, so a slow wake-up is not counted.
fn read_bandwidth(buf: &[f32], threads: usize, fast: bool) -> f64 {
    read_bandwidth_best_of(buf, threads, fast, 5)
}

/// [`read_bandwidth`], best of `reps` reads.
fn read_bandwidth_best_of(buf: &[f32], threads: usize, fast: bool, reps: usize) -> f64 {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let mut best = 0.0f64;
    for _ in 0..reps {
        let (ready, go) = (AtomicUsize::new(0), AtomicBool::new(false));
        let secs = std::thread::scope(|s| {
            let parts: Vec<_> = buf
                .chunks(buf.len().div_ceil(threads))
                .map(|part| {
                    let (ready, go) = (&ready, &go);
                    s.spawn(move || {
                        ready.fetch_add(1, Ordering::AcqRel);
                        while !go.load(Ordering::Acquire) {
                            std::hint::spin_loop();
                        }
                        std::hint::black_box(sum_read(part, fast));
                    })
                })
                .collect();
            while ready.load(Ordering::Acquire) < parts.len() {
                std::hint::spin_loop();
            }
            let t = Instant::now();
            go.store(true, Ordering::Release);
            for p in parts {
                p.join().unwrap();
            }
            t.elapsed().as_secs_f64()
        });
        best = best.max(std::mem::size_of_val(buf) as f64 / secs);
    }
    best
}

/// CPU time this process has used (user + system), seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes the struct it is given, nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// The whole machine's CPU time stolen by the hypervisor, and all CPU time,
/// in clock ticks (/proc/stat's first line; zeros where it cannot be read).
fn steal_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    (v.get(7).copied().unwrap_or(0), v.iter().sum())
}

/// Best rate (items/s) of `runs` timed calls of `f`, each doing `items` items.
fn best_rate(runs: usize, items: usize, mut f: impl FnMut()) -> f64 {
    let mut best = 0.0f64;
    for _ in 0..runs {
        let t = Instant::now();
        f();
        best = best.max(items as f64 / t.elapsed().as_secs_f64());
    }
    best
}

struct Row {
    name: String,
    dtype: &'static str,
    threads: usize,
    weight_bytes: u64,
    decode: f64,
    prompt: f64,
    /// The prompts' CPU seconds per wall second, and % of CPU time stolen.
    prompt_cpu: [f64; 2],
    batch: f64,
    /// Median over the decode/batch pairs of one pair's batch ÷ decode.
    paired: f64,
    /// Median over the decode runs of the run's GB/s ÷ the plain-read
    /// bandwidth measured just before and just after it (the better); and
    /// the lowest and highest such fraction.
    paired_bound: [f64; 3],
    /// Plain-read and best-read bandwidth measured around this row's decode.
    bound: [f64; 2],
}

fn lm_rows(files: &[String], bw: &mut [[f64; 2]; 2], buf: &[f32]) -> Vec<Row> {
    let mut rows = Vec::new();
    for f in files {
        let m = Arc::new(mamba::load(f, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}")));
        let vocab = m.config.vocab_size;
        // How the kernel mapped the weights (MAMBA_HUGE_PAGES=1 asks for
        // 2 MiB pages; `make bench` sets it).
        #[cfg(target_os = "linux")]
        {
            let w = &m.weights.layers[0].mixer.in_proj;
            if w.panels.is_some() {
                println!("== {f}: 8-bit matrices converted to panels at load (own memory, 2 MiB pages asked)");
            } else if let Some(share) = mamba::format::huge_page_share(w.bytes().as_ptr()) {
                println!(
                    "== {f}: {:.0}% of the file mapping in 2 MiB pages",
                    100.0 * share
                );
            }
        }
        let name = format!(
            "{} ({}×{})",
            std::path::Path::new(f)
                .file_name()
                .unwrap()
                .to_string_lossy(),
            m.config.n_layers,
            m.config.d_model
        );
        for threads in [1usize, 2] {
            mamba::threads::set_num_threads(threads);
            let prompt: Vec<u32> = (0..128).map(|i| ((i * 7919 + 1) % vocab) as u32).collect();
            let mut s = Session::new(m.clone());
            s.forward_tokens(&prompt[..16]).unwrap();
            // Decode, between two measurements of the bounds: the machine's
            // bandwidth drifts by tens of percent over minutes, so each row
            // is judged against what the memory gave at that moment (the
            // better of just before and just after).
            let measure = |bound: &mut [f64; 2]| {
                for (b, fast) in bound.iter_mut().zip([false, true]) {
                    *b = b.max(read_bandwidth(buf, threads, fast));
                }
            };
            // Batched decode alternates with decode, run for run (7 pairs):
            // their ratio is the batch column's point, and runs minutes (or
            // seconds) apart would see different memory bandwidth. Two
            // ratios: best batch ÷ best decode, and the median of each
            // pair's own ratio, which a one-run burst of bandwidth (that
            // speeds a decode far more than a batch) does not move.
            let mut ss: Vec<Session> = (0..8).map(|_| Session::new(m.clone())).collect();
            let toks: Vec<u32> = prompt[..8].to_vec();
            let mut bound = [0.0; 2];
            measure(&mut bound);
            let (steps, bsteps) = (24, 6);
            let mut i = 0;
            let (mut dec, mut batch) = (0.0f64, 0.0f64);
            let mut ratios = Vec::new();
            // Each decode run also against the plain read measured right
            // before and right after it (best of 3 each): the bandwidth
            // moves by tens of percent within seconds here, so a run's
            // fraction of the bound is steadier than the best run's
            // against the row's best read.
            let mut fractions = Vec::new();
            let wb = weight_bytes(&m) as f64;
            for _ in 0..7 {
                let before = read_bandwidth_best_of(buf, threads, false, 3);
                let d = best_rate(1, steps, || {
                    for _ in 0..steps {
                        s.forward(prompt[i % 128]).unwrap();
                        i += 1;
                    }
                });
                let after = read_bandwidth_best_of(buf, threads, false, 3);
                fractions.push(d * wb / before.max(after));
                let b = best_rate(1, 8 * bsteps, || {
                    for _ in 0..bsteps {
                        let mut refs: Vec<&mut Session> = ss.iter_mut().collect();
                        Session::forward_batch(&mut refs, &toks).unwrap();
                    }
                });
                (dec, batch) = (dec.max(d), batch.max(b));
                ratios.push(b / d);
            }
            ratios.sort_by(f64::total_cmp);
            fractions.sort_by(f64::total_cmp);
            measure(&mut bound);
            for (g, b) in bw.iter_mut().zip(bound) {
                g[threads - 1] = g[threads - 1].max(b);
            }
            // The prompts' CPU use (process CPU seconds per wall second:
            // ~threads when every thread works; less when one was
            // descheduled) and the machine's stolen time meanwhile: a
            // compute-bound row is only as fast as the CPUs the VM got.
            let (cpu0, wall0, st0) = (cpu_seconds(), Instant::now(), steal_ticks());
            let best_p = best_rate(7, 128, || {
                s.reset();
                s.forward_tokens(&prompt).unwrap();
            });
            let (st1, wall) = (steal_ticks(), wall0.elapsed().as_secs_f64());
            let prompt_cpu = [
                (cpu_seconds() - cpu0) / wall,
                100.0 * (st1.0 - st0.0) as f64 / (st1.1 - st0.1).max(1) as f64,
            ];
            rows.push(Row {
                name: name.clone(),
                dtype: m.weights.layers[0].mixer.in_proj.dtype.name(),
                threads,
                weight_bytes: weight_bytes(&m),
                decode: dec,
                prompt: best_p,
                prompt_cpu,
                batch,
                paired: ratios[ratios.len() / 2],
                paired_bound: [
                    fractions[fractions.len() / 2],
                    fractions[0],
                    fractions[fractions.len() - 1],
                ],
                bound,
            });
        }
    }
    rows
}

/// `bw[0]`: plain read, `bw[1]`: best read; [1 thread, 2 threads] each.
fn print_lm(rows: &[Row], bw: &[[f64; 2]; 2]) {
    println!("| model (layers×d_model) | dtype | threads | weight MB/token | decode tok/s | GB/s | % of plain-read bound | % of plain read, paired (range) | % of best-read bound | prompt-128 tok/s | prompt CPU use, steal | batch-8 tok/s | batch/single | batch/single, paired |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let wb = r.weight_bytes as f64;
        let gbs = wb * r.decode / 1e9;
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0}% | {:.0}% ({:.0}–{:.0}) | {:.0}% | {:.0} | {:.2}, {:.0}% | {:.0} | {:.1}x | {:.1}x |",
            r.name,
            r.dtype,
            r.threads,
            wb / 1e6,
            r.decode,
            gbs,
            100.0 * gbs * 1e9 / r.bound[0],
            100.0 * r.paired_bound[0],
            100.0 * r.paired_bound[1],
            100.0 * r.paired_bound[2],
            100.0 * gbs * 1e9 / r.bound[1],
            r.prompt,
            r.prompt_cpu[0],
            r.prompt_cpu[1],
            r.batch,
            r.batch / r.decode,
            r.paired
        );
    }
    println!(
        "\nRead bandwidth: each thread streams its own part of a 512 MiB buffer, best of 5, \
         measured just before and just after each row's decode (the better of the two is that \
         row's bound):\n\
         - plain read (a vectorized sum, as the speed issue measures it): up to {:.1} GB/s with 1 thread, {:.1} GB/s with 2 in this run;\n\
         - best read (4 accumulators + prefetch 8 KiB ahead into {} and 24 KiB into L2, as the decode kernels read): up to {:.1} GB/s with 1 thread, {:.1} GB/s with 2.\n\
         % of bound = decode GB/s (tok/s × weight bytes per token) ÷ the row's bound; \
         \"paired\": each of the 7 decode runs ÷ the plain read (best of 3) measured right \
         before and right after that run (the better), the median of the 7 (and their range).\n\
         prompt CPU use: this process's CPU seconds per wall second over the 7 prompts (near \
         the thread count when every thread worked); steal: the share of the machine's CPU \
         time the hypervisor took meanwhile.\n\
         decode and batch-8 alternate, 7 runs each: the tok/s columns are each one's best run; \
         batch/single is best ÷ best, and \"paired\" the median over the 7 adjacent pairs of \
         the pair's batch ÷ decode.",
        bw[0][0] / 1e9,
        bw[0][1] / 1e9,
        if mamba::kernels::simd::prefetch_l2() { "L2" } else { "L1" },
        bw[1][0] / 1e9,
        bw[1][1] / 1e9
    );
}

/// Decode speed of every weight type relative to f32, for each model shape
/// that has an f32 file: the files' decodes alternate run for run (same
/// threads, same minute), so the ratio is not a comparison of two different
/// bandwidths, as rows measured minutes apart are. Prints one table.
fn decode_ratios(files: &[String]) {
    let models: Vec<Arc<Model>> = files
        .iter()
        .map(|f| {
            Arc::new(mamba::load(f, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}")))
        })
        .collect();
    let shape = |m: &Model| (m.config.n_layers, m.config.d_model);
    let dtype = |m: &Model| m.weights.layers[0].mixer.in_proj.dtype.name();
    let mut printed = false;
    for base in models.iter().filter(|m| dtype(m) == "f32") {
        let group: Vec<&Arc<Model>> = models
            .iter()
            .filter(|m| shape(m) == shape(base) && dtype(m) != "f32")
            .collect();
        if group.is_empty() {
            continue;
        }
        if !printed {
            println!(
                "\nDecode against f32, interleaved: the same shape's files decode in turn, 24 \
                 tokens each, 7 rounds; best per file.\n\n\
                 | model (layers×d_model) | dtype | threads | decode tok/s | f32 decode tok/s | ÷ f32 | f32 bytes ÷ bytes |\n\
                 |---|---|---:|---:|---:|---:|---:|"
            );
            printed = true;
        }
        let all: Vec<&Arc<Model>> = std::iter::once(base).chain(group.iter().copied()).collect();
        let vocab = base.config.vocab_size;
        let toks: Vec<u32> = (0..128).map(|i| ((i * 7919 + 1) % vocab) as u32).collect();
        for threads in [1usize, 2] {
            mamba::threads::set_num_threads(threads);
            let mut ss: Vec<Session> = all.iter().map(|m| Session::new((*m).clone())).collect();
            for s in &mut ss {
                s.forward_tokens(&toks[..16]).unwrap();
            }
            let mut best = vec![0.0f64; ss.len()];
            let mut i = 0;
            for _ in 0..7 {
                for (s, b) in ss.iter_mut().zip(&mut best) {
                    *b = b.max(best_rate(1, 24, || {
                        for _ in 0..24 {
                            s.forward(toks[i % 128]).unwrap();
                            i += 1;
                        }
                    }));
                }
            }
            for (k, m) in all.iter().enumerate().skip(1) {
                println!(
                    "| {}×{} | {} | {} | {:.1} | {:.1} | {:.2}x | {:.2}x |",
                    m.config.n_layers,
                    m.config.d_model,
                    dtype(m),
                    threads,
                    best[k],
                    best[0],
                    best[k] / best[0],
                    weight_bytes(base) as f64 / weight_bytes(m) as f64
                );
            }
        }
    }
}

fn load_classifier(path: &str) -> *mut mamba::ffi::api::mamba_model {
    let p = CString::new(path).unwrap();
    let mut m = std::ptr::null_mut();
    // SAFETY: valid C string, out-pointer to a local.
    let st = unsafe { mamba::ffi::api::mamba_model_load(p.as_ptr(), std::ptr::null(), &mut m) };
    assert_eq!(st as i32, 0, "cannot load {path}");
    m
}

fn classifier_rows(kws: Option<(&str, &str)>, mnist: Option<&str>) {
    use mamba::ffi::api::mamba_model_free;
    use mamba::ffi::classifier::{mamba_classify_audio_f32, mamba_classify_images};
    if kws.is_none() && mnist.is_none() {
        return;
    }
    println!("\n| classifier | threads | result |");
    println!("|---|---:|---|");
    if let Some((model, clip)) = kws {
        let bytes = std::fs::read(clip).unwrap_or_else(|e| panic!("{clip}: {e}"));
        let samples: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let m = load_classifier(model);
        for threads in [1, 2] {
            mamba::threads::set_num_threads(threads);
            let mut class = -1i32;
            let clips = 50;
            let rate = best_rate(5, clips, || {
                for _ in 0..clips {
                    // SAFETY: live handle, samples.len() floats, writable class.
                    let st = unsafe {
                        mamba_classify_audio_f32(
                            m,
                            samples.as_ptr(),
                            samples.len(),
                            16000,
                            &mut class,
                            std::ptr::null_mut(),
                        )
                    };
                    assert_eq!(st as i32, 0);
                }
            });
            println!(
                "| keyword spotting, one {:.2} s clip (MFCC + model) | {threads} | {:.3} ms per clip |",
                samples.len() as f64 / 16000.0,
                1e3 / rate
            );
        }
        // SAFETY: live handle, freed once.
        unsafe { mamba_model_free(m) };
    }
    if let Some(model) = mnist {
        let m = load_classifier(model);
        let n = 10_000;
        // Random pixels: throughput does not depend on the image content.
        let mut x = 0x2545_f491u32;
        let pixels: Vec<u8> = (0..n * 784)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        let mut classes = vec![0i32; n];
        for threads in [1, 2] {
            mamba::threads::set_num_threads(threads);
            let rate = best_rate(3, n, || {
                // SAFETY: live handle, n·784 pixels, n writable classes.
                let st = unsafe {
                    mamba_classify_images(
                        m,
                        pixels.as_ptr(),
                        n,
                        classes.as_mut_ptr(),
                        std::ptr::null_mut(),
                    )
                };
                assert_eq!(st as i32, 0);
            });
            println!("| MNIST, batches of {n} images | {threads} | {rate:.0} images/s |");
        }
        // SAFETY: live handle, freed once.
        unsafe { mamba_model_free(m) };
    }
}

fn main() {
    let mut files = Vec::new();
    let (mut kws, mut clip, mut mnist) = (None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--kws" => kws = args.next(),
            "--audio" => clip = args.next(),
            "--mnist" => mnist = args.next(),
            _ => files.push(a),
        }
    }
    if files.is_empty() && mnist.is_none() && kws.is_none() {
        eprintln!("usage: bench [--kws KWS.gguf --audio CLIP.f32] [--mnist MNIST.gguf] MODEL...");
        std::process::exit(2);
    }
    let buf: Vec<f32> = (0..(512usize << 20) / 4).map(|i| i as f32).collect();
    let mut bw = [[0.0; 2]; 2];
    let rows = lm_rows(&files, &mut bw, &buf);
    if !rows.is_empty() {
        print_lm(&rows, &bw);
        decode_ratios(&files);
    }
    classifier_rows(kws.as_deref().zip(clip.as_deref()), mnist.as_deref());
}

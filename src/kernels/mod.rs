//! Numeric kernels: matrix-vector and matrix-matrix products for every weight
//! type, plus the small vector helpers the block math needs.
//!
//! All products compute `y = scale · W x` with W stored row-major (out, in),
//! as PyTorch stores Linear weights. Compute is f32; quantized rows are
//! converted on the fly. `simd` holds the runtime-detected fast paths; the
//! portable code here is the reference they must agree with.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
pub mod bf16dot;
pub mod convert;
pub mod panels;
pub mod scan;
pub mod simd;
pub mod transposed;
pub mod vnni;

use crate::model::{DType, Tensor};
use rayon::prelude::*;

pub use convert::dequant_row;
pub use simd::{exp_slice, scan_channel, scan_channels, silu_slice, softplus_slice};

/// Where a product over several input vectors writes: vector t's row r
/// goes to [`Dest::at`]`(t, r)`. Either one buffer with rows `ld` apart, or
/// one buffer per vector (a batched decode step writes each session's
/// logits in place, instead of into one block copied out after the step:
/// that copy was 2.7% of a batch-8 int8 step on host 2).
#[derive(Clone, Copy)]
pub enum Dest {
    /// y[t·ld + r].
    Strided { y: *mut f32, ld: usize },
    /// ys[t][r], for at most [`simd::MULTI_MAX`] vectors.
    Each([*mut f32; simd::MULTI_MAX]),
}

impl Dest {
    /// Where vector t's row r goes.
    ///
    /// # Safety
    /// The address must be inside the buffer (the products' contracts).
    #[inline(always)]
    pub unsafe fn at(&self, t: usize, r: usize) -> *mut f32 {
        match self {
            Dest::Strided { y, ld } => y.add(t * ld + r),
            Dest::Each(ys) => ys[t].add(r),
        }
    }

    /// The same places for vectors t0.. (t0 ≤ [`simd::MULTI_MAX`] for `Each`).
    ///
    /// # Safety
    /// As [`Dest::at`] for vector t0.
    #[inline]
    pub unsafe fn from(&self, t0: usize) -> Dest {
        match *self {
            Dest::Strided { y, ld } => Dest::Strided {
                y: y.add(t0 * ld),
                ld,
            },
            Dest::Each(ys) => Dest::Each(std::array::from_fn(|t| {
                ys.get(t0 + t).copied().unwrap_or(std::ptr::null_mut())
            })),
        }
    }
}

/// Below this many weight bytes a product runs on the calling thread:
/// splitting small matrices over threads costs more than it saves.
const PAR_MIN_BYTES: usize = 1 << 18;

/// Dot product of one stored row with x (no tensor scale).
#[inline]
pub fn dot_row(dtype: DType, row: &[u8], x: &[f32]) -> f32 {
    simd::dot_row(dtype, row, x)
}

/// y = scale · W x.  x has W.cols elements, y has W.rows.
pub fn matvec(w: &Tensor, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), w.cols);
    assert_eq!(y.len(), w.rows);
    let rb = w.row_bytes();
    let bytes = w.bytes();
    let dtype = w.dtype;
    let scale = w.scale;
    let body = |r0: usize, ys: &mut [f32]| {
        for (i, yv) in ys.iter_mut().enumerate() {
            let r = r0 + i;
            *yv = scale * dot_row(dtype, &bytes[r * rb..(r + 1) * rb], x);
        }
    };
    if bytes.len() >= PAR_MIN_BYTES && rayon::current_num_threads() > 1 {
        let chunk = (w.rows / (rayon::current_num_threads() * 8)).max(16);
        let (yp, rows) = (SyncPtr(y.as_mut_ptr()), w.rows);
        crate::threads::par_for(rows.div_ceil(chunk), |ci| {
            let r0 = ci * chunk;
            // SAFETY: chunk ci alone writes rows r0..r0 + len of y.
            let ys =
                unsafe { std::slice::from_raw_parts_mut(yp.get().add(r0), chunk.min(rows - r0)) };
            body(r0, ys)
        });
    } else {
        body(0, y);
    }
}

/// Shares a raw pointer among workers that touch disjoint elements (their
/// own rows, channels or chunks); here and in the block math.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr(pub(crate) *mut f32);
// SAFETY: every user has each worker read and write only its own elements.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    /// The pointer (a method, so closures capture the Send + Sync wrapper).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Below this many elements a row-wise pass runs on the calling thread.
const PAR_ROWS_MIN: usize = 1 << 15;

/// Calls `f(first_row, rows)` on consecutive runs of whole `width`-wide rows
/// of `v`, split over the pool's threads when `v` is large: a prompt's
/// element-wise passes (conv, SiLU, softplus, gate, residual add, RMSNorm),
/// which ran on the calling thread alone while the others waited. Each row
/// is computed exactly as in one pass.
pub(crate) fn par_rows(v: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let n = v.len() / width;
    let threads = rayon::current_num_threads();
    if v.len() < PAR_ROWS_MIN || threads < 2 || n < 2 {
        return f(0, v);
    }
    let per = n.div_ceil(threads * 2);
    let vp = SyncPtr(v.as_mut_ptr());
    crate::threads::par_for(n.div_ceil(per), |c| {
        let t0 = c * per;
        let len = per.min(n - t0) * width;
        // SAFETY: run c alone covers rows t0..t0 + len / width of v.
        f(t0, unsafe {
            std::slice::from_raw_parts_mut(vp.get().add(t0 * width), len)
        })
    });
}

/// Below this many input elements matmul transposes its inputs on the
/// calling thread.
const PAR_TRANSPOSE_MIN: usize = 1 << 16;

/// Weight rows one task of a matrix-matrix product handles: about a quarter
/// of each thread's share, a multiple of 12 (both micro-kernels' heights
/// divide it), 48 to 192. Runs longer than the old fixed 48 keep the next
/// panel's prefetch going across what were task boundaries (+3-5% on a
/// 130m f32 prompt, paired runs); four per thread still balance the threads.
fn gemm_rows(rows: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    (rows.div_ceil(4 * threads).div_ceil(12) * 12).clamp(48, 192)
}

/// Y = X Wᵀ for n input rows: X is n × W.cols, Y is n × W.rows (row-major).
///
/// Weight rows are taken in blocks of [`gemm_rows`] (in parallel when the
/// product is large); each block is read once — converted to f32
/// first when quantized — and multiplied with every input row, so the
/// weights are read once per call instead of once per token. With AVX-512
/// the inputs are transposed once per call so a register holds 16 of them.
pub fn matmul(w: &Tensor, x: &[f32], n: usize, y: &mut [f32]) {
    matmul_with(w, x, n, y, false)
}

/// [`matmul`]; with `bf16` (bf16 weights, [`bf16dot::has_bf16`], more than
/// [`simd::MULTI_MAX`] inputs) the inputs are rounded to bf16 and
/// transposed in pairs of columns, and [`bf16dot::gemm_t`] multiplies them
/// with the stored rows.
fn matmul_with(w: &Tensor, x: &[f32], n: usize, y: &mut [f32], bf16: bool) {
    let (rows, cols) = (w.rows, w.cols);
    assert_eq!(x.len(), n * cols);
    assert_eq!(y.len(), n * rows);
    assert!(!bf16 || (n > simd::MULTI_MAX && bf16dot::rounds(true, w)));
    if n == 1 {
        return matvec(w, x, y);
    }
    let rb = w.row_bytes();
    let bytes = w.bytes();
    let scale = w.scale;
    // f32 weights: the transposed-input GEMM below is faster even for few inputs.
    if n <= simd::MULTI_MAX && w.dtype != DType::F32 && matmul_few(w, x, n, y) {
        return;
    }
    let transposed = bf16 || simd::has_gemm_t();
    // The transposed inputs' rows: columns, or pairs of them (bf16).
    let kx = if bf16 { cols.div_ceil(2) } else { cols };
    if !transposed {
        // Without AVX-512 there is no register-tiled GEMM: groups of up to
        // MULTI_MAX inputs through the multi-input kernels (each weight row
        // converted once per group) beat dot products per (input, row).
        let (xc, yc) = (cols * simd::MULTI_MAX, rows * simd::MULTI_MAX);
        let mut ok = true;
        for (xs, ys) in x.chunks(xc).zip(y.chunks_mut(yc)) {
            let m = xs.len() / cols;
            ok &= if m == 1 {
                matvec(w, xs, ys);
                true
            } else {
                matmul_few(w, xs, m, ys)
            };
        }
        if ok {
            return;
        }
    }
    let npad = n.div_ceil(16) * 16;
    // The inputs transposed in groups of (up to) xg: group g holds inputs
    // xg·g.. as kx × width, one contiguous run that the kernel walks in
    // order (10-25% faster than one cols × npad array, whose rows it read
    // npad apart). Each group goes through the kernel on its own.
    let xg = simd::gemm_t_group();
    let group = |g: usize| (g * xg, (npad - g * xg).min(xg));
    let n_groups = npad.div_ceil(xg);
    let (xt, mut yt) = if transposed {
        let (mut xt, mut yt) = GEMM_BUFS.with(|b| std::mem::take(&mut *b.borrow_mut()));
        fit(&mut xt, kx * npad);
        fit(&mut yt, rows * npad);
        // Group g is xt[xg·g·kx..], kx × width; inputs past n (padding)
        // are zero, since they are multiplied in too. Tasks fill columns
        // c0..c1 (rows of the group) of one group: a prompt block is a
        // single group, so its columns are split over the threads.
        let threads = rayon::current_num_threads();
        let parallel = x.len() >= PAR_TRANSPOSE_MIN && threads > 1;
        let col_parts = if parallel {
            (threads * 4).div_ceil(n_groups)
        } else {
            1
        };
        let col_chunk = kx.div_ceil(col_parts).next_multiple_of(16);
        let col_parts = kx.div_ceil(col_chunk);
        let xp = SyncPtr(xt.as_mut_ptr());
        let fill = |task: usize| {
            let (g, part) = (task / col_parts, task % col_parts);
            let (t0, wg) = group(g);
            let (c0, c1) = (part * col_chunk, ((part + 1) * col_chunk).min(kx));
            let valid = n.saturating_sub(t0).min(wg);
            // SAFETY: inputs t0..t0 + valid are rows of x; this task alone
            // writes rows c0..c1 (each wg wide) of group g, inside xt's
            // kx × npad.
            unsafe {
                let dst = xp.get().add(t0 * kx + c0 * wg);
                let src = x[t0 * cols..].as_ptr();
                if bf16 {
                    bf16dot::transpose_pairs(src, cols, valid, cols, c0..c1, dst, wg);
                } else {
                    simd::transpose(src.add(c0), cols, valid, c1 - c0, dst, wg);
                }
                if valid < wg {
                    for c in 0..c1 - c0 {
                        std::slice::from_raw_parts_mut(dst.add(c * wg + valid), wg - valid)
                            .fill(0.0);
                    }
                }
            }
        };
        let tasks = n_groups * col_parts;
        if parallel && tasks > 1 {
            crate::threads::par_for(tasks, fill);
        } else {
            (0..tasks).for_each(fill);
        }
        (xt, yt)
    } else {
        (Vec::new(), Vec::new())
    };
    let yp = SyncPtr(if transposed {
        yt.as_mut_ptr()
    } else {
        y.as_mut_ptr()
    });
    let yout = SyncPtr(y.as_mut_ptr());
    let block_rows = gemm_rows(rows);
    let block = |b: usize, wbuf: &mut Vec<f32>| {
        let (yp, yout) = (yp, yout);
        let r0 = b * block_rows;
        let r1 = (r0 + block_rows).min(rows);
        // The block's rows as f32 for the f32 GEMM (bf16 products read the
        // stored rows in place).
        let wf: &[f32] = if bf16 {
            &[]
        } else if w.dtype == DType::F32 {
            &w.as_slice::<f32>()[r0 * cols..r1 * cols]
        } else {
            wbuf.resize((r1 - r0) * cols, 0.0);
            for r in r0..r1 {
                simd::convert_row(
                    w.dtype,
                    &bytes[r * rb..(r + 1) * rb],
                    &mut wbuf[(r - r0) * cols..(r - r0 + 1) * cols],
                );
            }
            wbuf
        };
        // SAFETY: this block alone writes weight rows r0..r1 of the output
        // (rows r0..r1 of yt, and columns r0..r1 of y); indices stay in bounds.
        unsafe {
            if transposed {
                // This block's slab of yt, one (r1 - r0) × width part per group.
                let slab = yp.0.add(r0 * npad);
                for g in 0..n_groups {
                    let (t0, wg) = group(g);
                    let part = slab.add(t0 * (r1 - r0));
                    let xg = &xt[t0 * kx..(t0 + wg) * kx];
                    if bf16 {
                        bf16dot::gemm_t(bytes, rb, r0..r1, cols, xg, wg, part, scale);
                    } else {
                        simd::gemm_t(wf, r1 - r0, xg, wg, cols, part, scale);
                    }
                    // Transpose the part (hot in cache) into y's columns r0..r1.
                    let valid = n.saturating_sub(t0).min(wg);
                    simd::transpose(part, wg, r1 - r0, valid, yout.0.add(t0 * rows + r0), rows);
                }
            } else {
                simd::gemm_dots(wf, r1 - r0, x, n, cols, yp.0.add(r0), rows, scale);
            }
        }
    };
    let n_blocks = rows.div_ceil(block_rows);
    // Each thread converts into its own kept buffer (taken out while in use,
    // so a nested call would find it empty and allocate instead).
    let with_wbuf = |b: usize| {
        let mut wbuf = WEIGHT_BUF.with(|c| std::mem::take(&mut *c.borrow_mut()));
        block(b, &mut wbuf);
        WEIGHT_BUF.with(|c| *c.borrow_mut() = wbuf);
    };
    if bytes.len() * n >= PAR_MIN_BYTES && rayon::current_num_threads() > 1 && n_blocks > 1 {
        crate::threads::par_for(n_blocks, with_wbuf);
    } else {
        (0..n_blocks).for_each(with_wbuf);
    }
    if transposed {
        // Kept for the next call, unless large (an all-positions head's
        // outputs: tens of MiB that a prompt's products never need).
        let keep = |v: Vec<f32>| {
            if v.capacity() <= KEEP_MAX {
                v
            } else {
                Vec::new()
            }
        };
        GEMM_BUFS.with(|b| *b.borrow_mut() = (keep(xt), keep(yt)));
    }
}

/// The largest matmul buffer (in floats, 4 MiB) a thread keeps between calls.
const KEEP_MAX: usize = 1 << 20;

thread_local! {
    /// matmul's transposed inputs and outputs, kept per calling thread so
    /// that a prompt's products do not allocate (and page-fault) every call.
    static GEMM_BUFS: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = Default::default();
    /// One block of weight rows converted to f32 (non-f32 weights), per thread.
    static WEIGHT_BUF: std::cell::RefCell<Vec<f32>> = Default::default();
    /// A few inputs rounded to bf16 (`matmul_bf16`), per calling thread.
    static BF16_BUF: std::cell::RefCell<Vec<u16>> = Default::default();
}

/// Makes `v` hold at least `n` elements; callers use the first n. Never
/// shrinks: a buffer that a small product shortened and a big one grew
/// back would be zero-filled on every call (1% of a prompt's time).
fn fit(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// [`matmul`], except that with `int8` set, 8-bit weights (q8_row, Q8_0) on
/// a CPU with AVX-512 VNNI go through [`vnni`]: the inputs are quantized to
/// int8 once per call, and the products are integer (see `kernels::vnni`
/// for what that changes). Weight rows are split over threads in blocks.
/// With `bf16` set (`Model::bf16_dot`), bf16 weights on a CPU with AVX-512
/// BF16 multiply the inputs rounded to bf16 ([`bf16dot`]): up to
/// [`simd::MULTI_MAX`] inputs with decode's kernel, more with
/// [`bf16dot::gemm_t`].
pub fn matmul_q(w: &Tensor, x: &[f32], n: usize, y: &mut [f32], int8: bool, bf16: bool) {
    if bf16 && bf16dot::rounds(true, w) {
        return matmul_bf16(w, x, n, y);
    }
    if !(int8 && vnni::gemm_dtype(w.dtype) && vnni::has_vnni()) {
        return matmul(w, x, n, y);
    }
    let rows = w.rows;
    assert_eq!(x.len(), n * w.cols);
    assert_eq!(y.len(), n * rows);
    let mut qx = vnni::QuantX::default();
    qx.quantize_rows(x, n);
    let yp = SyncPtr(y.as_mut_ptr());
    // One input: the decode kernel (no repacking); several: the GEMM.
    let body = |r0: usize, r1: usize| {
        let yp = yp;
        if let Some(p) = &w.panels {
            // SAFETY: rows r0..r1 (r0 a multiple of 64) belong to this task,
            // every t·rows + r with t < n lies inside y.
            unsafe { panels::gemm(p, w.scale, r0..r1, &qx, Dest::Strided { y: yp.0, ld: rows }) };
        } else if n == 1 {
            for r in r0..r1 {
                // SAFETY: r < rows: inside y; rows r0..r1 belong to this task.
                unsafe { *yp.0.add(r) = vnni::dot_row(w, r, &qx, 0) };
            }
        } else {
            // SAFETY: as above, for every t·rows + r with t < n.
            unsafe { vnni::gemm(w, r0..r1, &qx, Dest::Strided { y: yp.0, ld: rows }) };
        }
    };
    // Rows per task: whole 16-row panel groups and whole 32-row repack blocks.
    let chunk = 64;
    if w.bytes().len() * n >= PAR_MIN_BYTES && rayon::current_num_threads() > 1 && rows > chunk {
        crate::threads::par_for(rows.div_ceil(chunk), |c| {
            body(c * chunk, ((c + 1) * chunk).min(rows))
        });
    } else {
        body(0, rows);
    }
}

/// [`matmul_q`] for bf16 weights with bf16 products.
fn matmul_bf16(w: &Tensor, x: &[f32], n: usize, y: &mut [f32]) {
    let (rows, k) = (w.rows, w.cols);
    assert_eq!(x.len(), n * k);
    assert_eq!(y.len(), n * rows);
    if n > simd::MULTI_MAX {
        return matmul_with(w, x, n, y, true);
    }
    // A few inputs (a prompt's last position for the head, a short block):
    // rounded once into this thread's buffer, then decode's kernel
    // (`bf16dot::rows_dot`) on runs of rows, in parallel when large.
    let mut xb = BF16_BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
    xb.resize(n * k, 0);
    bf16dot::round_slice(x, &mut xb);
    let yp = SyncPtr(y.as_mut_ptr());
    let (bytes, rb, scale) = (w.bytes(), w.row_bytes(), w.scale);
    let body = |r: std::ops::Range<usize>| {
        let dest = Dest::Strided {
            y: yp.get(),
            ld: rows,
        };
        // SAFETY: has_bf16 (rounds); rows r belong to this task, and every
        // t·rows + r with t < n lies inside y.
        unsafe { bf16dot::rows_dot(bytes, rb, k, scale, r, &xb, n, dest) };
    };
    if bytes.len() >= PAR_MIN_BYTES && rayon::current_num_threads() > 1 {
        let chunk = (rows / (rayon::current_num_threads() * 8)).max(16);
        crate::threads::par_for(rows.div_ceil(chunk), |c| {
            body(c * chunk..((c + 1) * chunk).min(rows))
        });
    } else {
        body(0..rows);
    }
    BF16_BUF.with(|b| *b.borrow_mut() = xb);
}

/// Y = X Wᵀ for a few inputs (batched decode): each stored row is read and
/// converted once and used for all n inputs. False when `dot_rows_multi`
/// declines (n outside 2..=MULTI_MAX).
fn matmul_few(w: &Tensor, x: &[f32], n: usize, y: &mut [f32]) -> bool {
    let rows = w.rows;
    let rb = w.row_bytes();
    let bytes = w.bytes();
    let mut probe = [0.0f32; simd::MULTI_MAX];
    if !simd::dot_rows_multi(w.dtype, &bytes[..rb], x, n, w.cols, &mut probe) {
        return false;
    }
    let yp = SyncPtr(y.as_mut_ptr());
    let body = |r0: usize, r1: usize| {
        let yp = yp;
        let mut out = [0.0f32; simd::MULTI_MAX];
        for r in r0..r1 {
            simd::dot_rows_multi(
                w.dtype,
                &bytes[r * rb..(r + 1) * rb],
                x,
                n,
                w.cols,
                &mut out,
            );
            for (t, v) in out[..n].iter().enumerate() {
                // SAFETY: t < n, r < rows: inside y; rows r0..r1 belong to this task.
                unsafe { *yp.0.add(t * rows + r) = w.scale * v };
            }
        }
    };
    if bytes.len() >= PAR_MIN_BYTES && rayon::current_num_threads() > 1 {
        let chunk = (rows / (rayon::current_num_threads() * 8)).max(16);
        (0..rows.div_ceil(chunk))
            .into_par_iter()
            .for_each(|c| body(c * chunk, ((c + 1) * chunk).min(rows)));
    } else {
        body(0, rows);
    }
    true
}

/// out = x / sqrt(mean(x²) + eps) * w  (HF MambaRMSNorm, in f32).
pub fn rmsnorm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    norm_scale(out, x, w, sum_squares(x) / x.len() as f32, eps);
}

/// Σ x², in the same order on every CPU: 16 partial sums (sum j adds
/// x[j], x[j + 16], … in turn), then added pairwise (sums j and j + 8, then
/// j + 4, j + 2, j + 1). The compiler keeps the 16 sums in vector
/// registers: a row of 768 is 48 dependent vector adds instead of 768
/// scalar ones. Decode runs each norm on one thread between two phases
/// while the others wait; against the in-order scalar sum (8 rows
/// interleaved), a one-sequence int8 decode step of the 130m shape got
/// 1.0-1.7% faster (host 2, paired runs), a batch-8 step not measurably.
/// Error: the usual bound of a sum of positive terms, ≤ (d/16 + 5)·2⁻²⁴
/// relative (each square rounded once, d/16 adds per partial sum, 4
/// levels of pairwise adds; tested).
#[inline]
pub fn sum_squares(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    for (a, v) in acc.iter_mut().zip(chunks.remainder()) {
        *a += v * v;
    }
    let mut w = 16;
    while w > 1 {
        w /= 2;
        for j in 0..w {
            acc[j] += acc[j + w];
        }
    }
    acc[0]
}

fn norm_scale(out: &mut [f32], x: &[f32], w: &[f32], ss: f32, eps: f32) {
    let inv = 1.0 / (ss + eps).sqrt();
    for ((o, &xv), &wv) in out.iter_mut().zip(x).zip(w) {
        *o = wv * (xv * inv);
    }
}

/// [`rmsnorm`] of every `w.len()`-wide row of `x` into `out`.
pub fn rmsnorm_rows(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let d = w.len();
    assert!(d > 0 && x.len().is_multiple_of(d) && out.len() >= x.len());
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        norm_scale(or, xr, w, sum_squares(xr) / d as f32, eps);
    }
}

/// Every exp in the model math (scalar and vector, all tiers) returns 0
/// below this, where e^x (< 1.22e-38) would be at or near the subnormal
/// range: products with subnormal operands take microcode assists on Intel
/// CPUs (~100+ cycles each), and the scan's decay exp(dt·A) reaches them
/// in trained models. The change to any result is below 1.3e-38.
pub const EXP_FLUSH_BELOW: f32 = -87.3;

/// exp(x), or 0 below [`EXP_FLUSH_BELOW`].
#[inline]
pub fn exp_ftz(x: f32) -> f32 {
    if x < EXP_FLUSH_BELOW {
        0.0
    } else {
        x.exp()
    }
}

#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp_ftz(-x))
}

/// PyTorch's softplus with beta 1, threshold 20: x itself above 20.
#[inline]
pub fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        exp_ftz(x).ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::{bf16dot, matmul_q, rmsnorm, rmsnorm_rows, sum_squares};
    use crate::model::{DType, Tensor};

    /// bf16 weights with `bf16` products asked for: every result is the
    /// f64 sum of the products of the bf16 weights and the inputs rounded
    /// to bf16 (exact inputs where the CPU lacks AVX-512 BF16), within f32
    /// accumulation error, for 1 to 130 inputs (decode's kernel up to 8,
    /// the pair GEMM above, with partial tiles and groups), odd and short
    /// rows, row counts off the 6-row tile, large products split over
    /// threads.
    #[test]
    fn bf16_products_match_exact_sums_of_rounded_values() {
        let rounds = bf16dot::has_bf16();
        let mut s = 0x9e37_79b9u32;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        let bf = |v: f32| f32::from_bits((bf16dot::to_bf16(v) as u32) << 16);
        for (rows, k) in [(5, 1), (13, 2), (7, 33), (130, 64), (13, 101), (200, 768)] {
            let wf: Vec<f32> = (0..rows * k).map(|_| bf(rnd())).collect();
            let bytes: Vec<u8> = wf
                .iter()
                .flat_map(|&v| bf16dot::to_bf16(v).to_le_bytes())
                .collect();
            let w = Tensor::from_bytes(&bytes, DType::BF16, rows, k, "w")
                .unwrap()
                .with_scale(0.5);
            for n in [1usize, 3, 8, 9, 16, 17, 64, 65, 130] {
                let x: Vec<f32> = (0..n * k).map(|_| rnd()).collect();
                let mut y = vec![f32::NAN; n * rows];
                matmul_q(&w, &x, n, &mut y, false, true);
                for t in 0..n {
                    for r in 0..rows {
                        let (mut want, mut mag) = (0f64, 0f64);
                        for c in 0..k {
                            let xv = if rounds {
                                bf(x[t * k + c])
                            } else {
                                x[t * k + c]
                            };
                            let p = wf[r * k + c] as f64 * xv as f64;
                            want += p;
                            mag += p.abs();
                        }
                        let got = y[t * rows + r] as f64;
                        assert!(
                            (got - 0.5 * want).abs() <= 1e-6 * (1.0 + mag),
                            "rows {rows} k {k} n {n} at ({t}, {r}): {got} vs {}",
                            0.5 * want
                        );
                    }
                }
            }
        }
    }

    /// The vector-order sum of squares against f64, within its stated
    /// bound, for lengths around the 16 partial sums.
    #[test]
    fn sum_squares_is_within_its_bound() {
        let mut seed = 0x1234_5677u32;
        for d in [1usize, 5, 16, 17, 100, 768, 1537, 5120] {
            let x: Vec<f32> = (0..d)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    (seed as f32 / u32::MAX as f32 - 0.5) * (1 << (seed % 9)) as f32
                })
                .collect();
            let want: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
            let got = sum_squares(&x) as f64;
            let bound = (d as f64 / 16.0 + 5.0) * f64::powi(2.0, -24);
            assert!(
                (got - want).abs() <= bound * want,
                "d {d}: {got} vs {want}, rel {:e} > {bound:e}",
                (got - want).abs() / want
            );
        }
    }

    /// Rows normalized together are the same bits as rows one by one, for
    /// several row counts and odd widths.
    #[test]
    fn rmsnorm_rows_matches_one_row_at_a_time_bit_for_bit() {
        let mut seed = 0x2545_f491u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            // Values over many binades, so that the order of adds matters.
            (seed as f32 / u32::MAX as f32 - 0.5) * (1 << (seed % 13)) as f32
        };
        for d in [1usize, 7, 768] {
            let w: Vec<f32> = (0..d).map(|_| next()).collect();
            for n in [1usize, 3, 8, 9, 17] {
                let x: Vec<f32> = (0..n * d).map(|_| next()).collect();
                let mut together = vec![0.0f32; n * d];
                rmsnorm_rows(&mut together, &x, &w, 1e-5);
                for t in 0..n {
                    let mut one = vec![0.0f32; d];
                    rmsnorm(&mut one, &x[t * d..(t + 1) * d], &w, 1e-5);
                    let (a, b) = (&together[t * d..(t + 1) * d], &one[..]);
                    assert!(
                        a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits()),
                        "d {d}, n {n}, row {t}"
                    );
                }
            }
        }
    }
}

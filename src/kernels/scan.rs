//! The selective scan of one sequence over a block of tokens (prompt mode).
//!
//! Decode updates each channel's state once per token
//! ([`super::scan_channels`]): the states stream through the cache once and
//! each channel's 16 products are summed across lanes. A prompt runs a block
//! of tokens through the same channels, so here a group of 16 channels keeps
//! its 16×16 state in registers for the whole block, transposed: lane c is
//! channel c, register j is state element j. Then
//!
//! - `h[j] ← exp(dt·A[j])·h[j] + (dt·u)·B[j]` is one vector per j, and
//!   `y = Σ_j h[j]·C[j] + D·u` is a chain of vector FMAs, with no horizontal
//!   reduction and no state loads or stores per token;
//! - exp(dt·A) is computed as 2^(dt·A') with A' = A·log2(e) scaled once per
//!   group: the argument splits as n + r with |r| ≤ ½ (exact), 2^r is the
//!   degree-6 Taylor polynomial of e^(r·ln2), and the result is 2^n·p(r).
//!   Below 2^[`EXP2_FLUSH_BELOW`] (= e^[`super::EXP_FLUSH_BELOW`]) it is 0,
//!   as everywhere in the model math. Relative error against f64 ≤ 2e-7 +
//!   1e-7·|dt·A|, the second term from rounding the argument: the absolute
//!   error of a decay, e^x·(2e-7 + 1e-7·|x|), stays below 2.4e-7 (tested
//!   below). Decode's AVX-512 scan ([`super::scan_channels`]) uses the same
//!   2^x, on the argument (dt·log2 e)·A.
//!
//! Each channel's arithmetic is the same whatever lane it sits in, so any
//! split of the channels over threads gives the same bits. The order of the
//! sums differs from decode's, within f32 rounding (the prompt-vs-step parity
//! tests hold it to 1e-5).

use super::simd::scan_channels;
#[cfg(target_arch = "x86_64")]
use super::simd::{isa, Isa};

/// exp(x) is flushed to 0 below x = [`super::EXP_FLUSH_BELOW`]; in base 2
/// that is 2^x' for x' below this (x' = x·log2 e).
pub const EXP2_FLUSH_BELOW: f32 = super::EXP_FLUSH_BELOW * std::f32::consts::LOG2_E;

/// 2^r = e^(r·ln2) for |r| ≤ ½: the degree-6 Taylor coefficients of e^s at
/// s = r·ln2, highest first (Horner), (ln 2)^k / k!.
#[cfg(target_arch = "x86_64")]
const EXP2_POLY: [f32; 7] = [
    1.540_353_1e-4,
    1.333_355_8e-3,
    9.618_129e-3,
    5.550_411e-2,
    2.402_265e-1,
    std::f32::consts::LN_2,
    1.0,
];

/// A block of n tokens' rows, as the scan reads and writes them for a
/// range of channels (each slice or pointer starts at the range's first
/// channel of row 0). Token t reads B at `bc[t·bc_stride..][..ds]` and C
/// right after it, and channel c's dt and u at `dt[t·stride + c]`,
/// `u[t·stride + c]`; it writes y at `y + t·stride + c`.
pub struct TokenRows<'a> {
    pub n: usize,
    pub bc: &'a [f32],
    pub bc_stride: usize,
    pub dt: &'a [f32],
    pub u: &'a [f32],
    pub y: *mut f32,
    pub stride: usize,
}

/// The selective scan of one sequence for channels c < d.len() over the
/// tokens of `rows`. Channel c's state is `h[c·ds..(c+1)·ds]` and its A
/// row `a[c·ds..]` (ds = h.len() / d.len()); token t sets
/// `y[t, c] = Σ_j h[c, j]·C[t, j] + d[c]·u[t, c]` after updating h.
///
/// # Safety
/// `rows.y.add(t·stride + c)` is valid for writes for t < n, c < d.len(),
/// and nothing else reads or writes those elements during the call.
pub unsafe fn scan_tokens(h: &mut [f32], a: &[f32], d: &[f32], rows: &TokenRows<'_>) {
    let (nc, n, stride) = (d.len(), rows.n, rows.stride);
    if n == 0 || nc == 0 {
        return;
    }
    let ds = h.len() / nc;
    let last = (n - 1) * stride + nc;
    assert!(h.len() == nc * ds && a.len() == nc * ds);
    assert!(rows.bc.len() >= (n - 1) * rows.bc_stride + 2 * ds);
    assert!(rows.dt.len() >= last && rows.u.len() >= last);
    #[cfg(target_arch = "x86_64")]
    {
        if ds == 16 && isa() == Isa::Avx512 {
            // SAFETY: avx512f present (checked in `isa`); lengths checked
            // above, y's rows by the caller.
            return x86::scan_tokens16(h, a, d, rows);
        }
    }
    for t in 0..n {
        let (bt, xt) = (t * rows.bc_stride, t * stride);
        // SAFETY: the caller gives us y[t·stride..][..nc].
        let yt = std::slice::from_raw_parts_mut(rows.y.add(xt), nc);
        let (b, c) = (&rows.bc[bt..bt + ds], &rows.bc[bt + ds..bt + 2 * ds]);
        let (dt, u) = (&rows.dt[xt..xt + nc], &rows.u[xt..xt + nc]);
        scan_channels(h, a, b, c, dt, u, d, yt);
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::exp2_ps;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{TokenRows, EXP2_FLUSH_BELOW, EXP2_POLY};
    use std::arch::x86_64::*;

    /// 2^x for a vector, 0 where x < [`EXP2_FLUSH_BELOW`] (never a subnormal:
    /// at n = -126 the kept r is above 0.05, so p(r) > 1).
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn exp2_ps(x: __m512) -> __m512 {
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x);
        let r = _mm512_sub_ps(x, n);
        let mut p = _mm512_set1_ps(EXP2_POLY[0]);
        for c in &EXP2_POLY[1..] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(*c));
        }
        let keep = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_set1_ps(EXP2_FLUSH_BELOW));
        _mm512_maskz_scalef_ps(keep, p, n)
    }

    /// [`super::scan_tokens`] for d_state 16, 16 channels per group.
    ///
    /// # Safety
    /// avx512f, and [`super::scan_tokens`]'s checks and contract.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scan_tokens16(h: &mut [f32], a: &[f32], d: &[f32], rows: &TokenRows<'_>) {
        let TokenRows {
            n,
            bc,
            bc_stride,
            dt,
            u,
            y,
            stride,
        } = *rows;
        let nc = d.len();
        for g in (0..nc).step_by(16) {
            let w = (nc - g).min(16);
            let m: __mmask16 = ((1u32 << w) - 1) as u16;
            // The group's state and A' = A·log2 e, transposed: row j holds
            // element j of each channel (lanes past w stay 0: with dt = u =
            // 0 there, their state stays 0 and nothing is stored).
            let mut hs = [0f32; 256];
            let mut at = [0f32; 256];
            for c in 0..w {
                for j in 0..16 {
                    hs[16 * j + c] = h[16 * (g + c) + j];
                    at[16 * j + c] = a[16 * (g + c) + j] * std::f32::consts::LOG2_E;
                }
            }
            let mut hr: [__m512; 16] =
                std::array::from_fn(|j| _mm512_loadu_ps(hs.as_ptr().add(16 * j)));
            let dv = _mm512_maskz_loadu_ps(m, d.as_ptr().add(g));
            // Row t's dt, u and y for this group sit a row's stride apart,
            // one cache line each. (Prefetching the next group's lines was
            // no faster: alternating prompt runs, 4 pairs.)
            for t in 0..n {
                let xt = t * stride + g;
                let dtv = _mm512_maskz_loadu_ps(m, dt.as_ptr().add(xt));
                let uv = _mm512_maskz_loadu_ps(m, u.as_ptr().add(xt));
                let dtu = _mm512_mul_ps(dtv, uv);
                let bp = bc.as_ptr().add(t * bc_stride);
                let mut acc = [_mm512_setzero_ps(); 2];
                // Unrolled by hand so that hr and acc, indexed by constants
                // only, live in registers (a loop kept them on the stack).
                macro_rules! update {
                    ($($j:literal)*) => {$({
                        let x = _mm512_mul_ps(dtv, _mm512_loadu_ps(at.as_ptr().add(16 * $j)));
                        let bu = _mm512_mul_ps(dtu, _mm512_set1_ps(*bp.add($j)));
                        hr[$j] = _mm512_fmadd_ps(exp2_ps(x), hr[$j], bu);
                        let cj = _mm512_set1_ps(*bp.add(16 + $j));
                        acc[$j & 1] = _mm512_fmadd_ps(hr[$j], cj, acc[$j & 1]);
                    })*};
                }
                update!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
                let yv = _mm512_fmadd_ps(dv, uv, _mm512_add_ps(acc[0], acc[1]));
                _mm512_mask_storeu_ps(y.add(xt), m, yv);
            }
            for (j, hj) in hr.iter().enumerate() {
                _mm512_storeu_ps(hs.as_mut_ptr().add(16 * j), *hj);
            }
            for c in 0..w {
                for j in 0..16 {
                    h[16 * (g + c) + j] = hs[16 * j + c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::tests::data;

    /// One case: nc channels, n tokens, B/C rows and dt/u/y rows with
    /// strides wider than they need (as in the block, where they are rows
    /// of bigger matrices).
    struct Case {
        nc: usize,
        ds: usize,
        n: usize,
        h: Vec<f32>,
        a: Vec<f32>,
        d: Vec<f32>,
        bc: Vec<f32>,
        dt: Vec<f32>,
        u: Vec<f32>,
    }

    const BC_STRIDE_PAD: usize = 3;
    const X_STRIDE_PAD: usize = 5;

    impl Case {
        fn new(nc: usize, ds: usize, n: usize, dt_scale: f32) -> Case {
            let xs = nc + X_STRIDE_PAD;
            Case {
                nc,
                ds,
                n,
                h: data(nc * ds, 1),
                // A = -exp(A_log) < 0, spread over a few decades.
                a: data(nc * ds, 2)
                    .iter()
                    .map(|v| -(8.0 * v.abs() + 0.05))
                    .collect(),
                d: data(nc, 3),
                bc: data(n * (2 * ds + BC_STRIDE_PAD), 4),
                dt: data(n * xs, 5).iter().map(|v| dt_scale * v.abs()).collect(),
                u: data(n * xs, 6),
            }
        }

        /// Runs channels c0..c1 of the scan; returns (y, h) for them.
        fn run(&self, c0: usize, c1: usize, y: &mut [f32], h: &mut [f32], fast: bool) {
            let (ds, xs) = (self.ds, self.nc + X_STRIDE_PAD);
            let hs = &mut h[c0 * ds..c1 * ds];
            let a = &self.a[c0 * ds..c1 * ds];
            let bcs = 2 * ds + BC_STRIDE_PAD;
            if fast {
                let rows = TokenRows {
                    n: self.n,
                    bc: &self.bc,
                    bc_stride: bcs,
                    dt: &self.dt[c0..],
                    u: &self.u[c0..],
                    // SAFETY: c0 < nc ≤ y.len().
                    y: unsafe { y.as_mut_ptr().add(c0) },
                    stride: xs,
                };
                // SAFETY: y holds n rows of xs; only these channels are written.
                unsafe { scan_tokens(hs, a, &self.d[c0..c1], &rows) }
            } else {
                for t in 0..self.n {
                    let (b, c) = (
                        &self.bc[t * bcs..t * bcs + ds],
                        &self.bc[t * bcs + ds..t * bcs + 2 * ds],
                    );
                    let r = t * xs + c0..t * xs + c1;
                    scan_channels(
                        hs,
                        a,
                        b,
                        c,
                        &self.dt[r.clone()],
                        &self.u[r.clone()],
                        &self.d[c0..c1],
                        &mut y[r],
                    );
                }
            }
        }
    }

    fn rel(a: &[f32], b: &[f32]) -> f32 {
        let num: f32 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
        let den: f32 = b.iter().map(|y| y * y).sum();
        (num / den.max(1e-30)).sqrt()
    }

    /// Against decode's per-token scan: outputs and final states agree to
    /// f32 rounding, for group tails and wide/narrow dt (decays near 1 and
    /// flushed to 0), and with d_state other than 16 (the fallback).
    #[test]
    fn scan_tokens_matches_the_per_token_scan() {
        for (nc, ds, n) in [
            (16, 16, 1),
            (16, 16, 64),
            (5, 16, 9),
            (40, 16, 33),
            (33, 5, 7),
        ] {
            for dt_scale in [0.01, 1.0, 40.0] {
                let k = Case::new(nc, ds, n, dt_scale);
                let rows = n * (nc + X_STRIDE_PAD);
                let (mut y1, mut y2) = (vec![7.0; rows], vec![7.0; rows]);
                let (mut h1, mut h2) = (k.h.clone(), k.h.clone());
                k.run(0, nc, &mut y1, &mut h1, true);
                k.run(0, nc, &mut y2, &mut h2, false);
                let what = format!("nc {nc} ds {ds} n {n} dt×{dt_scale}");
                assert!(rel(&y1, &y2) < 2e-6, "{what}: y rel err {}", rel(&y1, &y2));
                assert!(rel(&h1, &h2) < 2e-6, "{what}: h rel err {}", rel(&h1, &h2));
                // The padding between rows is untouched.
                for t in 0..n {
                    let pad = &y1[t * (nc + X_STRIDE_PAD) + nc..(t + 1) * (nc + X_STRIDE_PAD)];
                    assert!(pad.iter().all(|&v| v == 7.0), "{what}: wrote past row {t}");
                }
                // Any split of the channels gives the same bits.
                let (mut y3, mut h3) = (vec![7.0; rows], k.h.clone());
                let cut = nc / 3;
                k.run(0, cut, &mut y3, &mut h3, true);
                k.run(cut, nc, &mut y3, &mut h3, true);
                assert_eq!(y3, y1, "{what}: split at {cut}");
                assert_eq!(h3, h1, "{what}: split at {cut}");
            }
        }
    }

    /// The decay exp(dt·A) inside the scan, seen through a one-token scan
    /// with h = 1, B = 0, C = e_j, D = 0, dt = 1: y = exp(A[j]) as the
    /// kernel computes it. Relative error against f64 within 2e-7 +
    /// 1e-7·|x| (the rounding of the argument included; decode's exp(dt·A)
    /// rounds dt·A too); 0 below the flush point, never a subnormal.
    #[test]
    fn scan_decay_is_accurate_and_flushes() {
        let ds = 16;
        let mut worst = 0f64;
        for step in 0..4000 {
            let x = -130.0 + step as f32 * 0.0327; // dt·A from -130 to ~0.8
            for j in 0..ds {
                let a: Vec<f32> = (0..ds).map(|i| if i == j { x } else { -1.0 }).collect();
                let mut h = vec![1.0f32; ds];
                let mut bc = vec![0.0f32; 2 * ds];
                bc[ds + j] = 1.0;
                let mut y = [f32::NAN];
                let rows = TokenRows {
                    n: 1,
                    bc: &bc,
                    bc_stride: 0,
                    dt: &[1.0],
                    u: &[1.0],
                    y: y.as_mut_ptr(),
                    stride: 1,
                };
                // SAFETY: one row of one channel.
                unsafe { scan_tokens(&mut h, &a, &[0.0], &rows) };
                let want = (x as f64).exp();
                let got = y[0];
                assert!(got == 0.0 || got.is_normal(), "x {x}: {got} is subnormal");
                if x < super::super::EXP_FLUSH_BELOW - 0.01 {
                    assert_eq!(got, 0.0, "x {x}");
                } else if x > super::super::EXP_FLUSH_BELOW + 0.01 {
                    // The polynomial's error plus the rounding of the
                    // argument dt·A·log2 e (half an ulp of |x'| ≤ 126).
                    let e = ((got as f64 - want) / want).abs();
                    worst = worst.max(e / (2e-7 + 1e-7 * x.abs() as f64));
                }
            }
        }
        assert!(worst <= 1.0, "relative error {worst} × its bound");
    }
}

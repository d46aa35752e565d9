//! The Mamba mixer over a whole sequence from a zero state, laid out for
//! classifiers: the same math as [`super::block::prompt`] (HF `MambaMixer`),
//! but vectorized across channels instead of along the state. The scan keeps
//! its state as d_state × d_inner (one contiguous row of channels per state),
//! the causal conv runs directly over the sequence, and every exp (SiLU, the
//! scan's exp(dt·A)) goes through the vectorized [`exp_slice`]. The final
//! state is not kept (a classifier never continues a sequence).

use super::seq_gemm::{self, Packed};
use super::Dims;
#[cfg(target_arch = "x86_64")]
use crate::kernels;
use crate::kernels::exp_slice;
use crate::model::MixerWeights;

/// Work buffers, grown to the longest sequence seen.
#[derive(Default)]
pub struct SeqScratch {
    xz: Vec<f32>,
    u: Vec<f32>,
    dbl: Vec<f32>,
    dt_low: Vec<f32>,
    dt: Vec<f32>,
    y: Vec<f32>,
    h: Vec<f32>,
    at: Vec<f32>,
    da: Vec<f32>,
    cwt: Vec<f32>,
    tmp: Vec<f32>,
}

fn grow(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// In place: x = x · sigmoid(x), vectorized (`tmp` as large as `x`).
#[inline(always)]
fn silu_slice(x: &mut [f32], tmp: &mut [f32]) {
    for (t, v) in tmp.iter_mut().zip(x.iter()) {
        *t = -*v;
    }
    exp_slice(tmp);
    for (v, e) in x.iter_mut().zip(tmp.iter()) {
        *v /= 1.0 + *e;
    }
}

/// ln(x) for x >= 1 (finite), in plain f32 operations that vectorize:
/// x = m·2^e with m in [√½, √2), ln m = 2·atanh((m−1)/(m+1)) by its series
/// (relative error below 1e-7 on that range).
#[inline(always)]
fn ln_ge1(x: f32) -> f32 {
    let bits = x.to_bits();
    // exponent relative to a mantissa in [√½, √2)
    let adj = bits.wrapping_sub(0x3f35_04f3); // bits of √½
    let e = ((adj as i32) >> 23) as f32;
    let m = f32::from_bits(bits.wrapping_sub(adj & 0xff80_0000));
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let p = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0)))));
    e * std::f32::consts::LN_2 + 2.0 * s * p
}

/// In place: PyTorch's softplus (beta 1, threshold 20), vectorized:
/// log1p(exp(x)) as ln(1 + e)·e / ((1 + e) − 1), exact where 1 + e rounds.
#[inline(always)]
fn softplus_slice(x: &mut [f32], tmp: &mut [f32]) {
    for (t, &v) in tmp.iter_mut().zip(x.iter()) {
        *t = v.min(20.0);
    }
    exp_slice(tmp);
    for (v, &e) in x.iter_mut().zip(tmp.iter()) {
        let u = 1.0 + e;
        let d = u - 1.0;
        let l = if d == 0.0 { e } else { ln_ge1(u) * (e / d) };
        *v = if *v > 20.0 { *v } else { l };
    }
}

/// Runs `n` steps (rows of `x`, d_model wide) through the mixer from a zero
/// state; writes n × d_model to `out`.
#[allow(clippy::too_many_arguments)]
pub fn mixer_seq(
    w: &MixerWeights,
    packed: &[Option<Packed>; 4],
    d: &Dims,
    x: &[f32],
    n: usize,
    s: &mut SeqScratch,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if kernels::simd::isa() == kernels::simd::Isa::Avx512 {
            // SAFETY: the CPU has AVX-512F (and with it AVX2/FMA), checked by `isa`.
            return unsafe { mixer_seq_avx512(w, packed, d, x, n, s, out) };
        }
    }
    mixer_seq_body(w, packed, d, x, n, s, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn mixer_seq_avx512(
    w: &MixerWeights,
    packed: &[Option<Packed>; 4],
    d: &Dims,
    x: &[f32],
    n: usize,
    s: &mut SeqScratch,
    out: &mut [f32],
) {
    mixer_seq_body(w, packed, d, x, n, s, out)
}

#[inline(always)]
fn mixer_seq_body(
    w: &MixerWeights,
    packed: &[Option<Packed>; 4],
    d: &Dims,
    x: &[f32],
    n: usize,
    s: &mut SeqScratch,
    out: &mut [f32],
) {
    let (dm, di, ds, k, r) = (d.d_model, d.d_inner, d.d_state, d.d_conv, d.dt_rank);
    let nd = d.dbl();

    // 1. in_proj: [xs | z] per step.
    let xz = grow(&mut s.xz, n * 2 * di);
    seq_gemm::matmul(&w.in_proj, packed[0].as_ref(), x, n, xz);
    if let Some(b) = &w.in_proj_bias {
        let b = b.as_f32();
        for row in xz.chunks_exact_mut(2 * di) {
            for (v, bv) in row.iter_mut().zip(b) {
                *v += bv;
            }
        }
    }

    // 2. causal depthwise conv over the sequence (zero history), then SiLU.
    let cw = w.conv_w.as_f32();
    let cwt = grow(&mut s.cwt, k * di);
    for ch in 0..di {
        for j in 0..k {
            cwt[j * di + ch] = cw[ch * k + j];
        }
    }
    let u = grow(&mut s.u, n * di);
    for t in 0..n {
        let ut = &mut u[t * di..(t + 1) * di];
        match &w.conv_b {
            Some(b) => ut.copy_from_slice(b.as_f32()),
            None => ut.fill(0.0),
        }
        // tap j sees the input at step t - (k - 1) + j
        for j in (k - 1).saturating_sub(t)..k {
            let src = &xz[(t + j + 1 - k) * 2 * di..(t + j + 1 - k) * 2 * di + di];
            let wj = &cwt[j * di..(j + 1) * di];
            for ((o, &xv), &wv) in ut.iter_mut().zip(src).zip(wj) {
                *o += xv * wv;
            }
        }
    }
    let tmp = grow(&mut s.tmp, (n * di).max(ds * di));
    silu_slice(u, &mut tmp[..n * di]);

    // 3. x_proj → [dt_low | B | C]; 4. dt = softplus(dt_proj(dt_low) + bias).
    let dbl = grow(&mut s.dbl, n * nd);
    seq_gemm::matmul(&w.x_proj, packed[1].as_ref(), u, n, dbl);
    let dt_low = grow(&mut s.dt_low, n * r);
    for t in 0..n {
        dt_low[t * r..(t + 1) * r].copy_from_slice(&dbl[t * nd..t * nd + r]);
    }
    let dt = grow(&mut s.dt, n * di);
    seq_gemm::matmul(&w.dt_proj, packed[3].as_ref(), dt_low, n, dt);
    let dtb = w.dt_bias.as_f32();
    for row in dt.chunks_exact_mut(di) {
        for (v, b) in row.iter_mut().zip(dtb) {
            *v += b;
        }
    }
    softplus_slice(dt, &mut tmp[..n * di]);

    // 5. selective scan, state as d_state rows of d_inner channels.
    let a = w.a.as_f32();
    let at = grow(&mut s.at, ds * di);
    for ch in 0..di {
        for st in 0..ds {
            at[st * di + ch] = a[ch * ds + st];
        }
    }
    let h = grow(&mut s.h, ds * di);
    h.fill(0.0);
    let da = grow(&mut s.da, di);
    let y = grow(&mut s.y, n * di);
    let dvec = w.d.as_f32();
    for t in 0..n {
        #[cfg(target_arch = "x86_64")]
        {
            if kernels::simd::isa() == kernels::simd::Isa::Avx512 {
                // SAFETY: AVX-512F present; all slices are d_inner (× d_state) long.
                unsafe {
                    x86::scan_step(
                        h,
                        at,
                        &dt[t * di..(t + 1) * di],
                        &u[t * di..(t + 1) * di],
                        &dbl[t * nd + r..t * nd + r + ds],
                        &dbl[t * nd + r + ds..t * nd + r + 2 * ds],
                        dvec,
                        &mut y[t * di..(t + 1) * di],
                    )
                };
                continue;
            }
        }
        let dtt = &dt[t * di..(t + 1) * di];
        let ut = &u[t * di..(t + 1) * di];
        let bvec = &dbl[t * nd + r..t * nd + r + ds];
        let cvec = &dbl[t * nd + r + ds..t * nd + r + 2 * ds];
        let yt = &mut y[t * di..(t + 1) * di];
        yt.fill(0.0);
        for st in 0..ds {
            // exp(dt·A) for this state's row of channels (stays in L1)
            let (dr, ar) = (&mut da[..di], &at[st * di..(st + 1) * di]);
            for ((o, &dv), &av) in dr.iter_mut().zip(dtt).zip(ar) {
                *o = dv * av;
            }
            exp_slice(dr);
            let (b, c) = (bvec[st], cvec[st]);
            let hr = &mut h[st * di..(st + 1) * di];
            let dr = &da[..di];
            for ((((hv, &e), &dv), &uv), yv) in
                hr.iter_mut().zip(dr).zip(dtt).zip(ut).zip(yt.iter_mut())
            {
                *hv = e * *hv + (dv * b) * uv;
                *yv += *hv * c;
            }
        }
        for ((yv, &uv), &dd) in yt.iter_mut().zip(ut).zip(dvec) {
            *yv += uv * dd;
        }
    }
    // y ⊙ SiLU(z)
    let g = &mut tmp[..n * di];
    for t in 0..n {
        g[t * di..(t + 1) * di].copy_from_slice(&xz[t * 2 * di + di..(t + 1) * 2 * di]);
    }
    let mut e = std::mem::take(&mut s.u); // u is no longer needed: reuse it for the exps
    silu_slice(g, &mut e[..n * di]);
    s.u = e;
    for (yv, gv) in y.iter_mut().zip(g.iter()) {
        *yv *= gv;
    }

    // 6. out_proj.
    let o = &mut out[..n * dm];
    seq_gemm::matmul(&w.out_proj, packed[2].as_ref(), y, n, o);
    if let Some(b) = &w.out_proj_bias {
        let b = b.as_f32();
        for row in o.chunks_exact_mut(dm) {
            for (v, bv) in row.iter_mut().zip(b) {
                *v += bv;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::kernels::simd::x86::exp_ps;

    /// One step of the scan for all channels, 16 at a time, with the channel
    /// block's y kept in a register over the states:
    /// h[s] = exp(dt·A[s])·h[s] + (dt·B[s])·u ;  y = Σ_s h[s]·C[s] + D·u.
    /// `h` and `at` are d_state rows of d_inner channels.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn scan_step(
        h: &mut [f32],
        at: &[f32],
        dt: &[f32],
        u: &[f32],
        b: &[f32],
        c: &[f32],
        d: &[f32],
        y: &mut [f32],
    ) {
        let di = dt.len();
        let ds = b.len();
        assert!(u.len() == di && d.len() >= di && y.len() == di && c.len() == ds);
        assert!(h.len() >= ds * di && at.len() >= ds * di);
        let (hp, ap) = (h.as_mut_ptr(), at.as_ptr());
        let mut ch = 0;
        while ch < di {
            let m: __mmask16 = if di - ch >= 16 {
                0xffff
            } else {
                ((1u32 << (di - ch)) - 1) as u16
            };
            let dtv = _mm512_maskz_loadu_ps(m, dt.as_ptr().add(ch));
            let uv = _mm512_maskz_loadu_ps(m, u.as_ptr().add(ch));
            let mut acc = _mm512_setzero_ps();
            for s in 0..ds {
                let off = s * di + ch;
                let e = exp_ps(_mm512_mul_ps(dtv, _mm512_maskz_loadu_ps(m, ap.add(off))));
                let hv = _mm512_maskz_loadu_ps(m, hp.add(off));
                let bu = _mm512_mul_ps(_mm512_mul_ps(dtv, _mm512_set1_ps(*b.get_unchecked(s))), uv);
                let hv = _mm512_fmadd_ps(e, hv, bu);
                _mm512_mask_storeu_ps(hp.add(off), m, hv);
                acc = _mm512_fmadd_ps(hv, _mm512_set1_ps(*c.get_unchecked(s)), acc);
            }
            let dv = _mm512_maskz_loadu_ps(m, d.as_ptr().add(ch));
            acc = _mm512_fmadd_ps(uv, dv, acc);
            _mm512_mask_storeu_ps(y.as_mut_ptr().add(ch), m, acc);
            ch += 16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softplus_slice_matches_scalar() {
        let xs: Vec<f32> = (-4000..4000)
            .map(|i| i as f32 * 0.0071)
            .chain([-100.0, -30.0, 19.99, 20.0, 20.01, 50.0, 0.0])
            .collect();
        let mut v = xs.clone();
        let mut tmp = vec![0.0; v.len()];
        softplus_slice(&mut v, &mut tmp);
        for (&x, &got) in xs.iter().zip(&v) {
            let want = crate::kernels::softplus(x);
            let tol = 4.0 * f32::EPSILON * want.abs().max(f32::MIN_POSITIVE);
            assert!(
                (got - want).abs() <= tol,
                "softplus({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn ln_ge1_is_accurate() {
        for i in 0..100000 {
            let x = 1.0 + i as f32 * 0.37;
            let (got, want) = (ln_ge1(x), (x as f64).ln());
            assert!(
                ((got as f64) - want).abs() <= 2e-7 * want.max(1e-30),
                "ln({x}) = {got}, want {want}"
            );
        }
    }
}

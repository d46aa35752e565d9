//! bf16 × bf16 products for bf16 weights (AVX-512 BF16, `vdpbf16ps`): the
//! input vector is rounded to bf16 once per product, then each instruction
//! multiplies 32 weight/input pairs and adds them into 16 f32 lanes, twice
//! the multiply-adds per instruction of f32 FMAs, and with no conversion of
//! the weights. Batched decode of bf16 weights is bound by arithmetic on a
//! 2-core machine, so this is where it pays on AMD's Zen 4 (host 3, batch-8
//! step of the 130m shape: +32-45%), whose FMA unit does one 512-bit FMA
//! per cycle and `vdpbf16ps` one too. On the Intel host measured before
//! (host 2) `vdpbf16ps` ran one per ~2 cycles against two FMAs per cycle:
//! half the f32 path's multiply-adds. So it is the default on AMD CPUs
//! only ([`default_on`]).
//!
//! What it changes: each input is rounded to bf16 (round to nearest even,
//! relative error at most 2^-9, the same as the weights' own rounding),
//! products of bf16 values are exact in f32, and the sums stay f32. As with
//! int8 inputs for 8-bit weights ([`super::vnni`]), it is a model's switch
//! (`Model::bf16_dot`, from [`default_on`]) that applies where the CPU has
//! AVX-512 BF16, to in_proj, out_proj and the head, in decode,
//! batched decode and prompts alike; x_proj and dt_proj keep exact inputs,
//! as they feed the scan. llama.cpp's bf16 products round their inputs to
//! bf16 the same way.
//!
//! Prompts (more than 8 inputs) have their own kernel, [`gemm_t`]: the
//! inputs rounded and transposed in pairs of columns ([`transpose_pairs`]),
//! so that one register holds 16 inputs' pairs and each row's two weights
//! are one 32-bit broadcast. It sums in another order than decode's
//! kernel, within f32 rounding (prompt vs decode stays within 1e-5, as for
//! every weight type); 130m bf16 prompts ran 1.72x as fast as with the f32
//! GEMM on the same rounded inputs (host 3, 2 threads).

use super::Dest;
use std::sync::OnceLock;

/// Whether this CPU runs the bf16 kernels (AVX-512 F, BW and BF16; off under
/// `MAMBA_ISA` caps other than `vnni`).
pub fn has_bf16() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            super::simd::avx512_extension(|| {
                is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512bf16")
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// `Model::bf16_dot` at load: `MAMBA_BF16_DOT=1` on, `=0` off, otherwise
/// on for AMD CPUs (see the module's notes).
pub fn default_on() -> bool {
    choice(
        std::env::var("MAMBA_BF16_DOT").ok().as_deref(),
        super::simd::cpu_vendor_is_amd(),
    )
}

/// [`default_on`]'s rule: the environment (`0`, `1`; anything else is
/// ignored) wins over the vendor default.
fn choice(env: Option<&str>, amd: bool) -> bool {
    match env.map(str::trim) {
        Some("0") => false,
        Some("1") => true,
        _ => amd,
    }
}

/// Whether products with `w` round their inputs to bf16: `enabled`
/// (`Model::bf16_dot`), bf16 weights and a CPU with [`has_bf16`].
pub fn rounds(enabled: bool, w: &crate::model::Tensor) -> bool {
    enabled && w.dtype == crate::model::DType::BF16 && has_bf16()
}

/// `x` rounded to bf16 as `vcvtneps2bf16` does: to nearest even, subnormals
/// to a zero of their sign, NaNs kept quiet.
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if b & 0x7f80_0000 == 0 {
        ((b >> 16) & 0x8000) as u16
    } else if x.is_nan() {
        ((b >> 16) | 0x40) as u16
    } else {
        // Infinities pass unchanged (their low half is zero); the largest
        // finite values round up to infinity, as in hardware.
        ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
    }
}

/// out[i] = [`to_bf16`]`(x[i])` over the common length.
pub fn round_slice(x: &[f32], out: &mut [u16]) {
    let n = x.len().min(out.len());
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if has_bf16() {
        // SAFETY: AVX-512 BF16 present; 16 at a time within n.
        done = unsafe { x86::round16(&x[..n], &mut out[..n]) };
    }
    for (o, &v) in out[done..n].iter_mut().zip(&x[done..n]) {
        *o = to_bf16(v);
    }
}

/// y.at(t, r) = scale · W[r] · xb[t] for r in `rows`, t < n (1 to 8): W's
/// rows are bf16, `rb` bytes apart in `w`, k values each; xb holds n rows
/// of k bf16 inputs ([`round_slice`]). Each (row, input) sum runs the same
/// instructions whichever rows share a pass, so a row's result does not
/// depend on how the rows are split.
///
/// # Safety
/// [`has_bf16`]; `y` valid for writes at `y.at(t, r)` that no other thread
/// touches.
#[allow(clippy::too_many_arguments)]
pub unsafe fn rows_dot(
    w: &[u8],
    rb: usize,
    k: usize,
    scale: f32,
    rows: std::ops::Range<usize>,
    xb: &[u16],
    n: usize,
    y: Dest,
) {
    assert!((1..=8).contains(&n) && xb.len() >= n * k);
    assert!(rb >= 2 * k && rows.start <= rows.end);
    assert!(rows.is_empty() || (rows.end - 1) * rb + 2 * k <= w.len());
    #[cfg(target_arch = "x86_64")]
    {
        assert!(has_bf16());
        x86::rows_dot(w, rb, k, scale, rows, xb, n, y)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (w, rb, k, scale, rows, xb, n, y);
        unreachable!("has_bf16 is false here")
    }
}

/// For prompts' matrix products ([`gemm_t`]): the inputs rounded to bf16
/// and transposed in pairs of columns. For t < nr and pairs p in `pairs`,
/// `dst[(p - pairs.start)·dst_stride + t]` holds the bit pattern (as an
/// f32 slot) of `[to_bf16(x[t][2p]), to_bf16(x[t][2p + 1])]`, the even
/// column in the low half; past an odd k the missing column is 0. Row t
/// of x starts at `x.add(t·x_stride)`.
///
/// # Safety
/// [`has_bf16`]; x's rows hold k values each; `dst` valid for writes at
/// every `(p - pairs.start)·dst_stride + t`, which no other thread touches.
#[allow(clippy::too_many_arguments)]
pub unsafe fn transpose_pairs(
    x: *const f32,
    x_stride: usize,
    nr: usize,
    k: usize,
    pairs: std::ops::Range<usize>,
    dst: *mut f32,
    dst_stride: usize,
) {
    assert!(pairs.end <= k.div_ceil(2));
    #[cfg(target_arch = "x86_64")]
    {
        assert!(has_bf16());
        if x_stride.saturating_mul(16) <= i32::MAX as usize / 4 {
            return x86::transpose_pairs(x, x_stride, nr, k, pairs, dst, dst_stride);
        }
    }
    for p in pairs.clone() {
        for t in 0..nr {
            let row = x.add(t * x_stride);
            let lo = to_bf16(*row.add(2 * p)) as u32;
            let hi = if 2 * p + 1 < k {
                to_bf16(*row.add(2 * p + 1)) as u32
            } else {
                0
            };
            *dst.add((p - pairs.start) * dst_stride + t) = f32::from_bits(lo | hi << 16);
        }
    }
}

/// The prompts' bf16 matrix product: `yt[(r - rows.start)·npad + t] =
/// scale · Σ_c W[r][c]·x[t][c]` for r in `rows`, t < npad, with x given as
/// [`transpose_pairs`] writes it (`xp[p·npad + t]`, p < ⌈k/2⌉, npad a
/// multiple of 16). Micro-kernel: 6 rows × 64 inputs in 24 accumulators;
/// per pair of columns, one 32-bit broadcast of each row's two weights and
/// a `vdpbf16ps` against 16 inputs' pairs: twice the multiply-adds per
/// instruction of the f32 GEMM, and no conversion of the weights. Lane t
/// of an accumulator is input t's sum over the pairs in order, so each
/// result is the same bits whatever rows or inputs share its tile.
///
/// # Safety
/// [`has_bf16`]; `yt` valid for rows.len() × npad writes that no other
/// thread touches.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_t(
    w: &[u8],
    rb: usize,
    rows: std::ops::Range<usize>,
    k: usize,
    xp: &[f32],
    npad: usize,
    yt: *mut f32,
    scale: f32,
) {
    assert!(npad.is_multiple_of(16) && xp.len() >= k.div_ceil(2) * npad);
    assert!(rb >= 2 * k && rows.start <= rows.end);
    assert!(rows.is_empty() || (rows.end - 1) * rb + 2 * k <= w.len());
    #[cfg(target_arch = "x86_64")]
    {
        assert!(has_bf16());
        x86::gemm_t(w, rb, rows, k, xp, npad, yt, scale)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (w, rb, rows, k, xp, npad, yt, scale);
        unreachable!("has_bf16 is false here")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Dest;
    use crate::kernels::simd::{prefetch_l2, prefetch_near, PF_DIST, PF_FAR};
    use std::arch::x86_64::*;

    /// [`super::round_slice`] for the whole 16s; returns how many it did.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn round16(x: &[f32], out: &mut [u16]) -> usize {
        let n = x.len().min(out.len()) / 16 * 16;
        for i in (0..n).step_by(16) {
            let h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x.as_ptr().add(i)));
            let h = std::mem::transmute::<__m256bh, __m256i>(h);
            _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, h);
        }
        n
    }

    /// 32 bf16 values from `p`: all (FULL) or the first of mask `m`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[inline]
    unsafe fn load32<const FULL: bool>(p: *const u16, m: __mmask32) -> __m512bh {
        let v = if FULL {
            _mm512_loadu_si512(p as *const _)
        } else {
            _mm512_maskz_loadu_epi16(m, p as *const i16)
        };
        std::mem::transmute::<__m512i, __m512bh>(v)
    }

    /// Columns i..i + 32 (those of mask `m` unless FULL) into `a`; `l2`:
    /// [`prefetch_l2`], read once by the caller.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn cols32<const N: usize, const R: usize, const FULL: bool>(
        a: &mut [[__m512; N]; R],
        w: *const u8,
        rb: usize,
        xb: *const u16,
        k: usize,
        i: usize,
        m: __mmask32,
        l2: bool,
    ) {
        let v: [__m512bh; R] = std::array::from_fn(|j| {
            let wj = w.add(j * rb + 2 * i);
            if FULL {
                // As the other decode kernels: 8 KiB ahead into L1 (L2
                // where `prefetch_l2`), 24 KiB ahead into L2.
                prefetch_near(wj.wrapping_add(PF_DIST) as *const i8, l2);
                _mm_prefetch::<_MM_HINT_T1>(wj.wrapping_add(PF_FAR) as *const i8);
            }
            load32::<FULL>(wj as *const u16, m)
        });
        for t in 0..N {
            let xt = load32::<FULL>(xb.add(t * k + i), m);
            for (aj, vj) in a.iter_mut().zip(&v) {
                aj[t] = _mm512_dpbf16_ps(aj[t], *vj, xt);
            }
        }
    }

    /// Sums of R rows × N inputs: per (row, input) one accumulator, whose
    /// lane l takes columns 2l and 2l + 1 of every 32 (a masked load past
    /// the last full 32), summed across lanes at the end.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn pass<const N: usize, const R: usize>(
        w: *const u8,
        rb: usize,
        xb: *const u16,
        k: usize,
        out: &mut [[f32; 8]; R],
    ) {
        let mut a = [[_mm512_setzero_ps(); N]; R];
        let l2 = prefetch_l2();
        let mut i = 0;
        while i + 32 <= k {
            cols32::<N, R, true>(&mut a, w, rb, xb, k, i, !0, l2);
            i += 32;
        }
        if i < k {
            cols32::<N, R, false>(&mut a, w, rb, xb, k, i, (1 << (k - i)) - 1, l2);
        }
        for (aj, oj) in a.iter().zip(out.iter_mut()) {
            for (t, o) in oj[..N].iter_mut().enumerate() {
                *o = _mm512_reduce_add_ps(aj[t]);
            }
        }
    }

    /// One row against one input: four accumulators over each 128
    /// columns (a single chain of `vdpbf16ps` left decode short of the
    /// memory's speed), then 32 at a time and a masked tail into the first.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn row1(w: *const u8, xb: *const u16, k: usize) -> f32 {
        let mut a = [_mm512_setzero_ps(); 4];
        let l2 = prefetch_l2();
        let mut i = 0;
        while i + 128 <= k {
            for (j, aj) in a.iter_mut().enumerate() {
                let wj = w.add(2 * (i + 32 * j));
                prefetch_near(wj.wrapping_add(PF_DIST) as *const i8, l2);
                _mm_prefetch::<_MM_HINT_T1>(wj.wrapping_add(PF_FAR) as *const i8);
                let (wv, xv) = (
                    load32::<true>(wj as *const u16, !0),
                    load32::<true>(xb.add(i + 32 * j), !0),
                );
                *aj = _mm512_dpbf16_ps(*aj, wv, xv);
            }
            i += 128;
        }
        let mut a0 = [[a[0]]];
        while i + 32 <= k {
            cols32::<1, 1, true>(&mut a0, w, 0, xb, k, i, !0, l2);
            i += 32;
        }
        if i < k {
            cols32::<1, 1, false>(&mut a0, w, 0, xb, k, i, (1 << (k - i)) - 1, l2);
        }
        let s = _mm512_add_ps(_mm512_add_ps(a0[0][0], a[1]), _mm512_add_ps(a[2], a[3]));
        _mm512_reduce_add_ps(s)
    }

    /// Rows three at a time (3 × 8 accumulators stay in registers), then
    /// the last one or two.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn by_rows<const N: usize>(
        w: &[u8],
        rb: usize,
        k: usize,
        scale: f32,
        rows: std::ops::Range<usize>,
        xb: &[u16],
        y: Dest,
    ) {
        let base = w.as_ptr();
        if N == 1 {
            for r in rows {
                *y.at(0, r) = scale * row1(base.add(r * rb), xb.as_ptr(), k);
            }
            return;
        }
        let mut r = rows.start;
        while r < rows.end {
            let p = base.add(r * rb);
            macro_rules! go {
                ($rr:literal) => {{
                    let mut o = [[0.0f32; 8]; $rr];
                    pass::<N, $rr>(p, rb, xb.as_ptr(), k, &mut o);
                    for (j, oj) in o.iter().enumerate() {
                        for (t, v) in oj[..N].iter().enumerate() {
                            *y.at(t, r + j) = scale * v;
                        }
                    }
                    r += $rr;
                }};
            }
            match rows.end - r {
                1 => go!(1),
                2 => go!(2),
                _ => go!(3),
            }
        }
    }

    /// [`super::transpose_pairs`], 16 inputs at a time: two gathers (the
    /// even and the odd column of a pair) rounded by `vcvtneps2bf16` and
    /// interleaved. The caller checked that 16 row strides fit the gather's
    /// 32-bit indices.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn transpose_pairs(
        x: *const f32,
        x_stride: usize,
        nr: usize,
        k: usize,
        pairs: std::ops::Range<usize>,
        dst: *mut f32,
        dst_stride: usize,
    ) {
        let lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        let vindex = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(x_stride as i32));
        let round = |v: __m512| {
            let h = std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(v));
            _mm512_cvtepu16_epi32(h)
        };
        let mut t = 0;
        while t < nr {
            let m: __mmask16 = if nr - t >= 16 {
                0xffff
            } else {
                ((1u32 << (nr - t)) - 1) as u16
            };
            let s = x.add(t * x_stride);
            for p in pairs.clone() {
                let z = _mm512_setzero_ps();
                let lo = _mm512_mask_i32gather_ps::<4>(z, m, vindex, s.add(2 * p));
                let hi = if 2 * p + 1 < k {
                    _mm512_mask_i32gather_ps::<4>(z, m, vindex, s.add(2 * p + 1))
                } else {
                    z
                };
                let v = _mm512_or_si512(round(lo), _mm512_slli_epi32::<16>(round(hi)));
                let at = dst.add((p - pairs.start) * dst_stride + t);
                _mm512_mask_storeu_ps(at, m, _mm512_castsi512_ps(v));
            }
            t += 16;
        }
    }

    /// Rows per GEMM tile.
    const GEMM_R: usize = 6;

    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_t(
        w: &[u8],
        rb: usize,
        rows: std::ops::Range<usize>,
        k: usize,
        xp: &[f32],
        npad: usize,
        yt: *mut f32,
        scale: f32,
    ) {
        let kp = k.div_ceil(2);
        let mut r0 = rows.start;
        while r0 < rows.end {
            let mr = (rows.end - r0).min(GEMM_R);
            // The next panel's rows (one contiguous run when rows are
            // packed), fetched into L2 over the first tile's pairs, as the
            // f32 GEMM does.
            let next = (rows.end - r0 - mr).min(GEMM_R);
            let pf = (
                w.as_ptr().wrapping_add((r0 + mr) * rb) as *const i8,
                (next * rb).div_ceil(kp.max(1)),
            );
            let mut t0 = 0;
            while t0 < npad {
                let first = t0 == 0 && next > 0;
                let args = Tile {
                    w: w.as_ptr(),
                    rb,
                    r0,
                    mr,
                    k,
                    xp: xp.as_ptr(),
                    npad,
                    t0,
                    yt: yt.add((r0 - rows.start) * npad),
                    scale,
                    pf,
                };
                t0 += match (npad - t0, first) {
                    (64.., true) => tile::<4, true>(args),
                    (64.., false) => tile::<4, false>(args),
                    (32.., true) => tile::<2, true>(args),
                    (32.., false) => tile::<2, false>(args),
                    (_, true) => tile::<1, true>(args),
                    (_, false) => tile::<1, false>(args),
                };
            }
            r0 += mr;
        }
    }

    /// One tile: rows r0..r0 + mr against inputs t0.. (yt's row 0 is row
    /// r0), and the next panel's prefetch (start, bytes per pair).
    #[derive(Clone, Copy)]
    struct Tile {
        w: *const u8,
        rb: usize,
        r0: usize,
        mr: usize,
        k: usize,
        xp: *const f32,
        npad: usize,
        t0: usize,
        yt: *mut f32,
        scale: f32,
        pf: (*const i8, usize),
    }

    /// 6 rows (the last repeated where mr < 6) × NT·16 inputs; returns NT·16.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[inline]
    unsafe fn tile<const NT: usize, const PF: bool>(a: Tile) -> usize {
        let wp: [*const u8; GEMM_R] =
            std::array::from_fn(|i| a.w.add((a.r0 + i.min(a.mr - 1)) * a.rb));
        let xp = a.xp.add(a.t0);
        let mut acc = [[_mm512_setzero_ps(); NT]; GEMM_R];
        let full = a.k / 2;
        macro_rules! step {
            ($p:expr, $wv:expr) => {{
                let p = $p;
                let xv: [__m512bh; NT] = std::array::from_fn(|j| {
                    std::mem::transmute::<__m512, __m512bh>(_mm512_loadu_ps(
                        xp.add(p * a.npad + 16 * j),
                    ))
                });
                for i in 0..GEMM_R {
                    let wb = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32($wv(i)));
                    for j in 0..NT {
                        acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wb, xv[j]);
                    }
                }
            }};
        }
        for p in 0..full {
            if PF {
                _mm_prefetch::<_MM_HINT_T1>(a.pf.0.wrapping_add(p * a.pf.1));
            }
            step!(p, |i: usize| (wp[i].add(4 * p) as *const i32)
                .read_unaligned());
        }
        if a.k % 2 == 1 {
            // The last column alone: its weight in the pair's low half.
            step!(
                full,
                |i: usize| (wp[i].add(4 * full) as *const u16).read_unaligned() as i32
            );
        }
        let sv = _mm512_set1_ps(a.scale);
        for (i, ai) in acc.iter().enumerate().take(a.mr) {
            for (j, v) in ai.iter().enumerate() {
                _mm512_storeu_ps(a.yt.add(i * a.npad + a.t0 + 16 * j), _mm512_mul_ps(*v, sv));
            }
        }
        NT * 16
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn rows_dot(
        w: &[u8],
        rb: usize,
        k: usize,
        scale: f32,
        rows: std::ops::Range<usize>,
        xb: &[u16],
        n: usize,
        y: Dest,
    ) {
        match n {
            1 => by_rows::<1>(w, rb, k, scale, rows, xb, y),
            2 => by_rows::<2>(w, rb, k, scale, rows, xb, y),
            3 => by_rows::<3>(w, rb, k, scale, rows, xb, y),
            4 => by_rows::<4>(w, rb, k, scale, rows, xb, y),
            5 => by_rows::<5>(w, rb, k, scale, rows, xb, y),
            6 => by_rows::<6>(w, rb, k, scale, rows, xb, y),
            7 => by_rows::<7>(w, rb, k, scale, rows, xb, y),
            _ => by_rows::<8>(w, rb, k, scale, rows, xb, y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins_over_the_vendor() {
        assert!(choice(None, true));
        assert!(!choice(None, false));
        assert!(!choice(Some("0"), true));
        assert!(choice(Some(" 1"), false));
        assert!(choice(Some("yes"), true));
        assert!(!choice(Some(""), false));
    }

    #[test]
    fn rounding_matches_the_instruction() {
        // Ties to even, carries into the exponent, overflow to infinity,
        // subnormals to signed zero, NaN stays NaN.
        let cases: [(u32, u16); 10] = [
            (0x3f80_0000, 0x3f80),
            (0x3f80_8000, 0x3f80), // tie, even stays
            (0x3f81_8000, 0x3f82), // tie, odd rounds up
            (0x3f80_8001, 0x3f81),
            (0x3fff_ffff, 0x4000),
            (0x7f7f_ffff, 0x7f80),
            (0x0000_0001, 0x0000),
            (0x8070_0000, 0x8000),
            (0xff80_0000, 0xff80),
            (0x7f80_0001, 0x7fc0),
        ];
        for (bits, want) in cases {
            assert_eq!(to_bf16(f32::from_bits(bits)), want, "{bits:#x}");
        }
        // The SIMD path (where present) against the scalar one, on values
        // of every exponent.
        let x = every_exponent(4099, 0x1234_5678);
        let mut out = vec![0u16; x.len()];
        round_slice(&x, &mut out);
        for (i, &v) in x.iter().enumerate() {
            same_rounding(out[i], v, &format!("{i}"));
        }
    }

    /// Values of every exponent, signed zeros and subnormals among them
    /// (every 97th), NaNs and infinities (those with the top exponent).
    fn every_exponent(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                if i % 97 == 0 {
                    f32::from_bits(s & 0x807f_ffff)
                } else {
                    f32::from_bits(s)
                }
            })
            .collect()
    }

    /// `got` is [`to_bf16`]`(v)`, or a NaN where v is one.
    fn same_rounding(got: u16, v: f32, what: &str) {
        if v.is_nan() {
            assert!(f32::from_bits((got as u32) << 16).is_nan(), "{what}");
        } else {
            assert_eq!(got, to_bf16(v), "{what}: {:#x}", v.to_bits());
        }
    }

    /// The prompts' input transposition: every pair rounded as
    /// [`to_bf16`] rounds (values of every exponent) and in place, the odd
    /// column past k zero, for token counts off the 16-wide blocks and a
    /// range of pairs that does not start at 0; nothing else written.
    #[test]
    fn pairs_are_rounded_and_transposed() {
        if !has_bf16() {
            return;
        }
        for (nr, k) in [(1usize, 1usize), (5, 7), (16, 32), (37, 45)] {
            let stride = k + 3;
            let x = every_exponent(nr * stride, 0x2545_f491 + k as u32);
            let kp = k.div_ceil(2);
            for pairs in [0..kp, kp / 2..kp] {
                let ds = nr + 2;
                let mut dst = vec![f32::from_bits(0xdead_beef); pairs.len() * ds];
                // SAFETY: has_bf16; dst holds pairs.len() rows of ds ≥ nr.
                unsafe {
                    transpose_pairs(
                        x.as_ptr(),
                        stride,
                        nr,
                        k,
                        pairs.clone(),
                        dst.as_mut_ptr(),
                        ds,
                    )
                };
                for (i, p) in pairs.clone().enumerate() {
                    for t in 0..ds {
                        let got = dst[i * ds + t].to_bits();
                        let what = format!("nr {nr} k {k} pair {p} t {t}");
                        if t >= nr {
                            assert_eq!(got, 0xdead_beef, "{what}");
                            continue;
                        }
                        let row = &x[t * stride..];
                        same_rounding(got as u16, row[2 * p], &what);
                        if 2 * p + 1 < k {
                            same_rounding((got >> 16) as u16, row[2 * p + 1], &what);
                        } else {
                            assert_eq!(got >> 16, 0, "{what}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn products_match_exact_sums_of_rounded_values() {
        if !has_bf16() {
            return;
        }
        // Rows of odd and short lengths (tails), 1 to 8 inputs, split at
        // every point: each result is the f64 sum of the bf16 products
        // within f32 accumulation error, and the same bits however the
        // rows are grouped.
        for k in [1usize, 31, 32, 33, 100, 300, 768] {
            let rows = 7;
            let rb = 2 * k + 6; // padded rows
            let mut s = 99u32;
            let mut rnd = || {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1 << 24) as f32 - 0.5
            };
            let wf: Vec<f32> = (0..rows * k).map(|_| rnd()).collect();
            let mut w = vec![0u8; rows * rb];
            for r in 0..rows {
                for c in 0..k {
                    let b = to_bf16(wf[r * k + c]).to_le_bytes();
                    w[r * rb + 2 * c..r * rb + 2 * c + 2].copy_from_slice(&b);
                }
            }
            for n in 1..=8 {
                let x: Vec<f32> = (0..n * k).map(|_| rnd()).collect();
                let mut xb = vec![0u16; n * k];
                round_slice(&x, &mut xb);
                let mut whole = vec![0.0f32; n * rows];
                let y = Dest::Strided {
                    y: whole.as_mut_ptr(),
                    ld: rows,
                };
                // SAFETY: has_bf16; y holds n × rows.
                unsafe { rows_dot(&w, rb, k, 0.5, 0..rows, &xb, n, y) };
                for cut in 1..rows {
                    let mut parts = vec![0.0f32; n * rows];
                    let y = Dest::Strided {
                        y: parts.as_mut_ptr(),
                        ld: rows,
                    };
                    // SAFETY: as above, two disjoint row ranges.
                    unsafe {
                        rows_dot(&w, rb, k, 0.5, 0..cut, &xb, n, y);
                        rows_dot(&w, rb, k, 0.5, cut..rows, &xb, n, y);
                    }
                    assert_eq!(parts, whole, "k {k} n {n} cut {cut}");
                }
                for t in 0..n {
                    for r in 0..rows {
                        let want: f64 = (0..k)
                            .map(|c| {
                                let wv = f32::from_bits((to_bf16(wf[r * k + c]) as u32) << 16);
                                wv as f64 * f32::from_bits((xb[t * k + c] as u32) << 16) as f64
                            })
                            .sum::<f64>()
                            * 0.5;
                        let got = whole[t * rows + r] as f64;
                        assert!(
                            (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                            "k {k} n {n}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}

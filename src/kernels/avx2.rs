//! AVX2 + FMA + F16C kernels for stored (non-f32) rows: the tier for x86 CPUs
//! without AVX-512 (most client CPUs, AMD before Zen 4). Without them, f16
//! and 8-bit rows went through a scalar conversion and decoded ~10x slower
//! than f32 per byte.
//!
//! Same shape as the AVX-512 kernels in `simd`: convert 8 weights per
//! instruction group, multiply-add with 4 independent accumulators, prefetch
//! the row 8 KiB ahead. Tails shorter than 8 go through the portable
//! conversion. Also here: the transposed-input GEMM for prompts, and exp,
//! SiLU, softplus and the scan in 8 lanes (the portable ones call libm's
//! expf per element, which made the scan the bulk of an AVX2 prompt).

use super::convert::{dequant_bytes, q8row_scale};
use super::simd::{
    prefetch_l2, prefetch_near, EXP_LN2, EXP_POLY, LOG_LN2, LOG_POLY, PF_DIST, PF_FAR,
};
use crate::model::DType;
use std::arch::x86_64::*;
use std::sync::OnceLock;

/// AVX2, FMA and F16C all present (checked once): what `simd::isa()` needs
/// for its Avx2 tier, so every kernel here may run when it says Avx2.
pub fn available() -> bool {
    static A: OnceLock<bool> = OnceLock::new();
    *A.get_or_init(|| {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    })
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load_f16(p: *const u8) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load_bf16(p: *const u8) -> __m256 {
    let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load_i8(p: *const u8) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn hsum(v: __m256) -> f32 {
    let q = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)))
}

/// Σ a[i]·b[i] (equal lengths): 4 accumulators, prefetch 8 KiB ahead.
///
/// # Safety
/// AVX2, FMA and F16C present ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    let l2 = prefetch_l2();
    while i + 32 <= n {
        // PF_DIST ahead into L1 (or L2), PF_FAR ahead into L2.
        prefetch_near(pa.wrapping_add(i + PF_DIST / 4) as *const i8, l2);
        prefetch_near(pa.wrapping_add(i + PF_DIST / 4 + 16) as *const i8, l2);
        _mm_prefetch::<_MM_HINT_T1>(pa.wrapping_add(i + PF_FAR / 4) as *const i8);
        _mm_prefetch::<_MM_HINT_T1>(pa.wrapping_add(i + PF_FAR / 4 + 16) as *const i8);
        for (j, aj) in acc.iter_mut().enumerate() {
            *aj = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 8 * j)),
                _mm256_loadu_ps(pb.add(i + 8 * j)),
                *aj,
            );
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i)),
            _mm256_loadu_ps(pb.add(i)),
            acc[0],
        );
        i += 8;
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut r = hsum(s);
    while i < n {
        r += a[i] * b[i];
        i += 1;
    }
    r
}

/// Σ over the last `x.len() - i` elements through the portable conversion.
fn tail(dtype: DType, row: &[u8], esize: usize, x: &[f32], i: usize) -> f32 {
    let mut buf = [0.0f32; 8];
    let n = x.len() - i;
    dequant_bytes(dtype, &row[i * esize..(i + n) * esize], &mut buf[..n]);
    buf[..n].iter().zip(&x[i..]).map(|(a, b)| a * b).sum()
}

macro_rules! dot_conv {
    ($name:ident, $load:ident, $esize:expr, $dtype:expr) => {
        /// Σ row[i]·x[i] for one stored row of x.len() elements.
        ///
        /// # Safety
        /// AVX2, FMA and F16C present ([`available`]).
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $name(row: &[u8], x: &[f32]) -> f32 {
            let n = x.len();
            assert!(row.len() >= n * $esize);
            let (pw, px) = (row.as_ptr(), x.as_ptr());
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut i = 0;
            let l2 = prefetch_l2();
            while i + 32 <= n {
                for j in 0..$esize {
                    prefetch_near(
                        pw.wrapping_add(i * $esize + PF_DIST + 32 * j) as *const i8,
                        l2,
                    );
                }
                // And PF_FAR ahead into L2, once per 32 elements (one
                // beside each T0 above, twice per f16 line, gained
                // nothing for f16).
                _mm_prefetch::<_MM_HINT_T1>(pw.wrapping_add(i * $esize + PF_FAR) as *const i8);
                for j in 0..4 {
                    let w = $load(pw.add((i + 8 * j) * $esize));
                    acc[j] = _mm256_fmadd_ps(w, _mm256_loadu_ps(px.add(i + 8 * j)), acc[j]);
                }
                i += 32;
            }
            while i + 8 <= n {
                acc[0] = _mm256_fmadd_ps(
                    $load(pw.add(i * $esize)),
                    _mm256_loadu_ps(px.add(i)),
                    acc[0],
                );
                i += 8;
            }
            let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            hsum(s)
                + if i < n {
                    tail($dtype, row, $esize, x, i)
                } else {
                    0.0
                }
        }
    };
}
dot_conv!(dot_f16, load_f16, 2, DType::F16);
dot_conv!(dot_bf16, load_bf16, 2, DType::BF16);
dot_conv!(dot_i8, load_i8, 1, DType::I8);

/// Q8_0 row (34-byte blocks: f16 scale, 32 int8) against x (a multiple of 32).
///
/// # Safety
/// AVX2, FMA and F16C present ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
    let nb = x.len() / 32;
    assert!(row.len() >= nb * 34);
    let (pw, px) = (row.as_ptr(), x.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 2];
    let l2 = prefetch_l2();
    for b in 0..nb {
        let blk = pw.add(b * 34);
        prefetch_near(blk.wrapping_add(PF_DIST) as *const i8, l2);
        let d = _mm256_cvtph_ps(_mm_set1_epi16(std::ptr::read_unaligned(blk as *const i16)));
        let xb = px.add(b * 32);
        let mut s = _mm256_mul_ps(load_i8(blk.add(2)), _mm256_loadu_ps(xb));
        for j in 1..4 {
            s = _mm256_fmadd_ps(
                load_i8(blk.add(2 + 8 * j)),
                _mm256_loadu_ps(xb.add(8 * j)),
                s,
            );
        }
        if b % 2 == 0 {
            acc[0] = _mm256_fmadd_ps(d, s, acc[0]);
        } else {
            acc[1] = _mm256_fmadd_ps(d, s, acc[1]);
        }
    }
    hsum(_mm256_add_ps(acc[0], acc[1]))
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load_f32(p: *const u8) -> __m256 {
    _mm256_loadu_ps(p as *const f32)
}

macro_rules! multi {
    ($name:ident, $load:ident, $esize:expr, $dtype:expr) => {
        /// One stored row against N inputs (x is N × k): each 8 weights are
        /// converted once and used N times.
        ///
        /// # Safety
        /// AVX2, FMA and F16C present ([`available`]). Lengths are checked.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $name<const N: usize>(row: &[u8], x: &[f32], k: usize, out: &mut [f32]) {
            assert!(row.len() >= k * $esize && x.len() >= N * k && out.len() >= N);
            let mut acc = [_mm256_setzero_ps(); N];
            let (pw, px) = (row.as_ptr(), x.as_ptr());
            let mut i = 0;
            let l2 = prefetch_l2();
            while i + 8 <= k {
                if i % 32 == 0 {
                    prefetch_near(pw.wrapping_add(i * $esize + PF_DIST) as *const i8, l2);
                }
                let w = $load(pw.add(i * $esize));
                for t in 0..N {
                    acc[t] = _mm256_fmadd_ps(w, _mm256_loadu_ps(px.add(t * k + i)), acc[t]);
                }
                i += 8;
            }
            for t in 0..N {
                out[t] = hsum(acc[t]);
            }
            if i < k {
                let mut buf = [0.0f32; 8];
                dequant_bytes($dtype, &row[i * $esize..k * $esize], &mut buf[..k - i]);
                for t in 0..N {
                    out[t] += buf[..k - i]
                        .iter()
                        .zip(&x[t * k + i..(t + 1) * k])
                        .map(|(a, b)| a * b)
                        .sum::<f32>();
                }
            }
        }
    };
}
multi!(multi_f32, load_f32, 4, DType::F32);
multi!(multi_f16, load_f16, 2, DType::F16);
multi!(multi_bf16, load_bf16, 2, DType::BF16);
multi!(multi_i8, load_i8, 1, DType::I8);

/// Q8_0 row against N inputs (k a multiple of 32).
///
/// # Safety
/// As for the other multi kernels.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn multi_q8_0<const N: usize>(row: &[u8], x: &[f32], k: usize, out: &mut [f32]) {
    assert!(row.len() >= k / 32 * 34 && x.len() >= N * k && out.len() >= N);
    let mut acc = [_mm256_setzero_ps(); N];
    let (pw, px) = (row.as_ptr(), x.as_ptr());
    let l2 = prefetch_l2();
    for b in 0..k / 32 {
        let blk = pw.add(b * 34);
        prefetch_near(blk.wrapping_add(PF_DIST) as *const i8, l2);
        let d = _mm256_cvtph_ps(_mm_set1_epi16(std::ptr::read_unaligned(blk as *const i16)));
        for j in 0..4 {
            let w = _mm256_mul_ps(d, load_i8(blk.add(2 + 8 * j)));
            for t in 0..N {
                acc[t] =
                    _mm256_fmadd_ps(w, _mm256_loadu_ps(px.add(t * k + b * 32 + 8 * j)), acc[t]);
            }
        }
    }
    for t in 0..N {
        out[t] = hsum(acc[t]);
    }
}

/// The AVX2 form of `simd::gemm_t` (see there): 6 rows × 16 inputs (two
/// registers) in 12 accumulators, one broadcast weight per row and k.
///
/// # Safety
/// AVX2, FMA and F16C present ([`available`]); `yt` valid for rows × npad
/// writes that no other thread touches; npad a multiple of 16, w holds
/// rows × k and xt k × npad floats (asserted by the caller).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn gemm_t(
    w: &[f32],
    rows: usize,
    xt: &[f32],
    npad: usize,
    k: usize,
    yt: *mut f32,
    scale: f32,
) {
    let sv = _mm256_set1_ps(scale);
    let mut r0 = 0;
    while r0 < rows {
        let mr = (rows - r0).min(6);
        // Rows past the end repeat the last one (computed, not stored).
        let wp: [*const f32; 6] = std::array::from_fn(|i| w.as_ptr().add((r0 + i.min(mr - 1)) * k));
        let mut t0 = 0;
        while t0 < npad {
            let xp = xt.as_ptr().add(t0);
            let mut acc = [[_mm256_setzero_ps(); 2]; 6];
            for kk in 0..k {
                let x0 = _mm256_loadu_ps(xp.add(kk * npad));
                let x1 = _mm256_loadu_ps(xp.add(kk * npad + 8));
                for i in 0..6 {
                    let wb = _mm256_set1_ps(*wp[i].add(kk));
                    acc[i][0] = _mm256_fmadd_ps(wb, x0, acc[i][0]);
                    acc[i][1] = _mm256_fmadd_ps(wb, x1, acc[i][1]);
                }
            }
            for (i, a) in acc.iter().enumerate().take(mr) {
                let out = yt.add((r0 + i) * npad + t0);
                _mm256_storeu_ps(out, _mm256_mul_ps(a[0], sv));
                _mm256_storeu_ps(out.add(8), _mm256_mul_ps(a[1], sv));
            }
            t0 += 16;
        }
        r0 += 6;
    }
}

/// exp(x) in 8 lanes: x = n·ln2 + r, exp(r) by the same degree-6 polynomial
/// as the AVX-512 version, times 2^n. 2^n is applied as two normal factors
/// 2^⌊n/2⌋·2^(n-⌊n/2⌋); inputs are clamped to [-104, 88.7] and the result
/// is 0 below [`super::EXP_FLUSH_BELOW`], as in the AVX-512 version.
///
/// # Safety
/// AVX2, FMA and F16C present ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub unsafe fn exp_ps(x: __m256) -> __m256 {
    let x = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(-104.0)),
        _mm256_set1_ps(88.7),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2.0), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2.1), r);
    let mut p = _mm256_set1_ps(EXP_POLY[0]);
    for c in &EXP_POLY[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(*c));
    }
    let ni = _mm256_cvtps_epi32(n);
    let na = _mm256_srai_epi32::<1>(ni);
    let nb = _mm256_sub_epi32(ni, na);
    let bias = _mm256_set1_epi32(127);
    let pa = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(na, bias)));
    let pb = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(nb, bias)));
    let keep = _mm256_cmp_ps::<_CMP_GE_OQ>(x, _mm256_set1_ps(super::EXP_FLUSH_BELOW));
    _mm256_and_ps(_mm256_mul_ps(_mm256_mul_ps(p, pa), pb), keep)
}

/// ln(x) for normal x > 0: Cephes' logf, as the AVX-512 version, with the
/// exponent and mantissa taken from the bits.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn log_ps(x: __m256) -> __m256 {
    let one = _mm256_set1_ps(1.0);
    let bits = _mm256_castps_si256(x);
    let mut e = _mm256_cvtepi32_ps(_mm256_sub_epi32(
        _mm256_srli_epi32::<23>(bits),
        _mm256_set1_epi32(127),
    ));
    let mut m = _mm256_castsi256_ps(_mm256_or_si256(
        _mm256_and_si256(bits, _mm256_set1_epi32(0x007f_ffff)),
        _mm256_set1_epi32(0x3f80_0000),
    ));
    let big = _mm256_cmp_ps::<_CMP_GT_OQ>(m, _mm256_set1_ps(std::f32::consts::SQRT_2));
    m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5)), big);
    e = _mm256_blendv_ps(e, _mm256_add_ps(e, one), big);
    let f = _mm256_sub_ps(m, one);
    let z = _mm256_mul_ps(f, f);
    let mut p = _mm256_set1_ps(LOG_POLY[0]);
    for c in &LOG_POLY[1..] {
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(*c));
    }
    let mut y = _mm256_mul_ps(_mm256_mul_ps(p, f), z);
    y = _mm256_fmadd_ps(e, _mm256_set1_ps(LOG_LN2.0), y);
    y = _mm256_fnmadd_ps(_mm256_set1_ps(0.5), z, y);
    _mm256_fmadd_ps(e, _mm256_set1_ps(LOG_LN2.1), _mm256_add_ps(f, y))
}

/// Applies `f` to `x` 8 lanes at a time; the tail goes through a zero-padded
/// register (every lane is independent).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn map8(x: &mut [f32], f: impl Fn(__m256) -> __m256) {
    let mut chunks = x.chunks_exact_mut(8);
    for c in chunks.by_ref() {
        _mm256_storeu_ps(c.as_mut_ptr(), f(_mm256_loadu_ps(c.as_ptr())));
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut buf = [0.0f32; 8];
        buf[..rest.len()].copy_from_slice(rest);
        _mm256_storeu_ps(buf.as_mut_ptr(), f(_mm256_loadu_ps(buf.as_ptr())));
        rest.copy_from_slice(&buf[..rest.len()]);
    }
}

/// x ← exp(x).
///
/// # Safety
/// AVX2, FMA and F16C present ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn exp_slice(x: &mut [f32]) {
    map8(x, |v| exp_ps(v))
}

/// x ← x·sigmoid(x).
///
/// # Safety
/// AVX2, FMA and F16C present ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn silu_slice(x: &mut [f32]) {
    let one = _mm256_set1_ps(1.0);
    map8(x, |v| {
        let e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), v));
        _mm256_div_ps(v, _mm256_add_ps(one, e))
    })
}

/// x ← softplus(x) (x itself above 20), log1p as in the AVX-512 version.
///
/// # Safety
/// AVX2, FMA and F16C present ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn softplus_slice(x: &mut [f32]) {
    let one = _mm256_set1_ps(1.0);
    map8(x, |v| {
        let t = exp_ps(v);
        let u = _mm256_add_ps(one, t);
        let corr = _mm256_div_ps(_mm256_sub_ps(t, _mm256_sub_ps(u, one)), u);
        let sp = _mm256_add_ps(log_ps(u), corr);
        let keep = _mm256_cmp_ps::<_CMP_GT_OQ>(v, _mm256_set1_ps(20.0));
        _mm256_blendv_ps(sp, v, keep)
    })
}

/// One channel of the selective scan (see `simd::scan_channel`), 8 state
/// lanes at a time.
///
/// # Safety
/// AVX2, FMA and F16C present ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn scan_channel(h: &mut [f32], a: &[f32], b: &[f32], c: &[f32], dt: f32, u: f32) -> f32 {
    let n = h.len();
    assert!(a.len() >= n && b.len() >= n && c.len() >= n);
    let (dtv, uv) = (_mm256_set1_ps(dt), _mm256_set1_ps(u));
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        let da = exp_ps(_mm256_mul_ps(dtv, _mm256_loadu_ps(a.as_ptr().add(i))));
        let db = _mm256_mul_ps(_mm256_mul_ps(dtv, _mm256_loadu_ps(b.as_ptr().add(i))), uv);
        let hn = _mm256_fmadd_ps(da, _mm256_loadu_ps(h.as_ptr().add(i)), db);
        _mm256_storeu_ps(h.as_mut_ptr().add(i), hn);
        acc = _mm256_fmadd_ps(hn, _mm256_loadu_ps(c.as_ptr().add(i)), acc);
        i += 8;
    }
    let mut s = hsum(acc);
    for j in i..n {
        h[j] = super::exp_ftz(dt * a[j]) * h[j] + (dt * b[j]) * u;
        s += h[j] * c[j];
    }
    s
}

/// Converts a stored row to f32 (`out.len()` elements, times `scale` for
/// the 8-bit types). False for types without a kernel here.
///
/// # Safety
/// AVX2, FMA and F16C present ([`available`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn convert_row(dtype: DType, row: &[u8], out: &mut [f32]) -> bool {
    let n = out.len();
    let po = out.as_mut_ptr();
    macro_rules! each8 {
        ($load:ident, $esize:expr, $data:expr, $scale:expr) => {{
            let data: &[u8] = $data;
            assert!(data.len() >= n * $esize);
            let sc = _mm256_set1_ps($scale);
            let mut i = 0;
            while i + 8 <= n {
                _mm256_storeu_ps(
                    po.add(i),
                    _mm256_mul_ps(sc, $load(data.as_ptr().add(i * $esize))),
                );
                i += 8;
            }
            if i < n {
                let dt = if $esize == 2 { dtype } else { DType::I8 };
                dequant_bytes(dt, &data[i * $esize..n * $esize], &mut out[i..]);
                for o in &mut out[i..] {
                    *o *= $scale;
                }
            }
        }};
    }
    match dtype {
        DType::F16 => each8!(load_f16, 2, row, 1.0),
        DType::BF16 => each8!(load_bf16, 2, row, 1.0),
        DType::I8 => each8!(load_i8, 1, row, 1.0),
        DType::Q8Row => {
            let d = q8row_scale(row);
            each8!(load_i8, 1, &row[4..], d)
        }
        DType::Q8_0 => {
            for (blk, o) in row.chunks_exact(34).zip(out.chunks_exact_mut(32)) {
                let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                let sc = _mm256_set1_ps(d);
                for j in 0..4 {
                    let v = _mm256_mul_ps(sc, load_i8(blk.as_ptr().add(2 + 8 * j)));
                    _mm256_storeu_ps(o.as_mut_ptr().add(8 * j), v);
                }
            }
        }
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Every kernel against the portable conversion + an f64 dot, over
    /// lengths with and without tails.
    #[test]
    fn kernels_match_portable_conversion() {
        if !available() {
            return; // no AVX2 tier on this CPU: nothing here can run
        }
        for k in [8, 32, 40, 64, 100, 768, 801] {
            let w = data(k, 3);
            let x = data(k, 4);
            let mut rows: Vec<(DType, Vec<u8>)> = vec![
                (
                    DType::F16,
                    w.iter()
                        .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                        .collect(),
                ),
                (
                    DType::BF16,
                    w.iter()
                        .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                        .collect(),
                ),
                (
                    DType::I8,
                    w.iter().map(|v| ((v * 127.0) as i8) as u8).collect(),
                ),
            ];
            let mut q8row = 0.5f32.to_le_bytes().to_vec();
            q8row.extend(w.iter().map(|v| ((v * 127.0) as i8) as u8));
            rows.push((DType::Q8Row, q8row));
            if k % 32 == 0 {
                let mut q = vec![];
                for blk in w.chunks(32) {
                    q.extend(f16::from_f32(0.03).to_le_bytes());
                    q.extend(blk.iter().map(|v| ((v * 120.0) as i8) as u8));
                }
                rows.push((DType::Q8_0, q));
            }
            for (dt, row) in &rows {
                let mut want_w = vec![0.0f32; k];
                dequant_bytes(*dt, row, &mut want_w);
                let want: f64 = want_w
                    .iter()
                    .zip(&x)
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum();
                // SAFETY: available() checked above.
                let got = unsafe {
                    match dt {
                        DType::F16 => dot_f16(row, &x),
                        DType::BF16 => dot_bf16(row, &x),
                        DType::I8 => dot_i8(row, &x),
                        DType::Q8Row => 0.5 * dot_i8(&row[4..], &x),
                        _ => dot_q8_0(row, &x),
                    }
                };
                assert!(
                    (got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "{dt:?} k {k}"
                );
                let mut conv = vec![0.0f32; k];
                // SAFETY: available() checked above.
                assert!(unsafe { convert_row(*dt, row, &mut conv) });
                assert_eq!(conv, want_w, "{dt:?} k {k} conversion");
            }
        }
    }

    /// exp, SiLU and softplus against f64 over the ranges the model sees,
    /// with the AVX-512 versions' bounds; the scan against the portable one.
    #[test]
    fn vector_math_is_accurate() {
        if !available() {
            return; // no AVX2 tier on this CPU: nothing here can run
        }
        let mut xs: Vec<f32> = (0..20001).map(|i| -100.0 + i as f32 * 0.0094).collect();
        xs.extend([0.0, -0.0, 1e-8, -1e-8, 20.0, 88.0, -87.0, -103.0]);
        let mut e = xs.clone();
        let mut si = xs.clone();
        let mut sp = xs.clone();
        // SAFETY: available() checked above.
        unsafe {
            exp_slice(&mut e);
            silu_slice(&mut si);
            softplus_slice(&mut sp);
        }
        let (mut we, mut ws, mut wp) = (0.0f64, 0.0f64, 0.0f64);
        for (i, &x) in xs.iter().enumerate() {
            let xd = x as f64;
            let want = xd.exp();
            assert!(!e[i].is_subnormal(), "exp({x}) = {:e}", e[i]);
            if x < super::super::EXP_FLUSH_BELOW {
                assert_eq!(e[i], 0.0, "exp({x})");
            }
            if want > 1e-37 {
                we = we.max((e[i] as f64 - want).abs() / want);
            } else {
                assert!(e[i] >= 0.0 && (e[i] as f64) < 1e-36, "exp({x}) = {}", e[i]);
            }
            let silu = xd / (1.0 + (-xd).exp());
            ws = ws.max((si[i] as f64 - silu).abs() / silu.abs().max(1e-30));
            let soft = if x > 20.0 { xd } else { xd.exp().ln_1p() };
            wp = wp.max((sp[i] as f64 - soft).abs() / soft.abs().max(1e-30));
        }
        assert!(we < 5e-7, "exp max rel err {we}");
        assert!(ws < 2e-6, "silu max rel err {ws}");
        assert!(wp < 2e-6, "softplus max rel err {wp}");
        for n in [1, 8, 16, 23] {
            let a: Vec<f32> = data(n, 5).iter().map(|v| -(v.abs() * 8.0 + 0.1)).collect();
            let (b, c) = (data(n, 6), data(n, 7));
            let mut h1 = data(n, 8);
            let mut h2 = h1.clone();
            // SAFETY: available() checked above.
            let y1 = unsafe { scan_channel(&mut h1, &a, &b, &c, 0.37, 1.3) };
            let y2 = crate::kernels::simd::scan_channel_portable(&mut h2, &a, &b, &c, 0.37, 1.3);
            assert!((y1 - y2).abs() < 1e-5, "scan n {n}: {y1} vs {y2}");
        }
    }
}

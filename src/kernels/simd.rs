//! SIMD kernels with runtime CPU detection and a portable fallback.
//!
//! - [`dot_f32`]: one dot product (matrix-vector products, decode);
//! - [`gemm_f32`]: a block of weight rows times a block of input rows
//!   (matrix-matrix products, prompts), as 4×4 register tiles of dot
//!   products along the shared dimension.
//!
//! AVX-512F and AVX2+FMA paths are chosen once at run time; the portable
//! code is written with independent accumulators so it vectorizes too.
//! All paths sum in a different order than a naive loop: the results agree
//! to float rounding (relative error ~1e-6 for the sizes used here).

use super::convert::{dequant_bytes, q8row_scale};
use crate::model::DType;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Portable,
    Avx2,
    Avx512,
}

/// The best instruction set this CPU supports (detected once).
/// `MAMBA_ISA=portable|avx2|avx512` caps it, for testing the fallbacks.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let cap = std::env::var("MAMBA_ISA").unwrap_or_default();
        #[cfg(target_arch = "x86_64")]
        {
            let avx512 = is_x86_feature_detected!("avx512f");
            // The AVX2 tier also uses F16C (every AVX2 CPU has it).
            let avx2 = super::avx2::available();
            match cap.as_str() {
                "portable" => return Isa::Portable,
                "avx2" if avx2 => return Isa::Avx2,
                _ => {}
            }
            if avx512 && cap != "avx2" {
                return Isa::Avx512;
            }
            if avx2 {
                return Isa::Avx2;
            }
        }
        let _ = cap;
        Isa::Portable
    })
}

/// Whether the kernels of an AVX-512 extension may run: the AVX-512 tier
/// is on ([`isa`]), `MAMBA_ISA` is unset or `vnni` (lower caps turn every
/// extension off), and `present` (the extension's feature checks) holds.
/// Callers keep the answer in their own `OnceLock`.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512_extension(present: impl FnOnce() -> bool) -> bool {
    let cap = std::env::var("MAMBA_ISA").unwrap_or_default();
    isa() == Isa::Avx512 && (cap.is_empty() || cap == "vnni") && present()
}

/// Σ a[i]·b[i] over the common length.
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    #[cfg(target_arch = "x86_64")]
    {
        match isa() {
            // SAFETY: the CPU supports the feature (checked in `isa`).
            Isa::Avx512 => return unsafe { x86::dot_avx512(a, b) },
            Isa::Avx2 => return unsafe { super::avx2::dot_f32(a, b) },
            Isa::Portable => {}
        }
    }
    dot_portable(a, b)
}

pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut acc = [0.0f32; 16];
    let chunks = n / 16;
    for i in 0..chunks {
        let pa = &a[i * 16..i * 16 + 16];
        let pb = &b[i * 16..i * 16 + 16];
        for j in 0..16 {
            acc[j] += pa[j] * pb[j];
        }
    }
    let mut tail = 0.0;
    for i in chunks * 16..n {
        tail += a[i] * b[i];
    }
    acc.iter().sum::<f32>() + tail
}

/// Inputs per transposed group that [`gemm_t`] takes best: the AVX-512
/// micro-kernel's width (64), or two AVX2 tiles' (32).
pub fn gemm_t_group() -> usize {
    if isa() == Isa::Avx512 {
        64
    } else {
        32
    }
}

/// Whether [`gemm_t`] (the transposed-input kernel) is available.
pub fn has_gemm_t() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        matches!(isa(), Isa::Avx512 | Isa::Avx2)
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// yt[r·npad + t] = scale · Σ_k w[r·k_len + k] · xt[k·npad + t] for r < rows,
/// t < npad: the products of `rows` weight rows with all inputs at once,
/// with the inputs transposed (k-major, `npad` = input count rounded up to
/// 16) so that 16 inputs sit in one register. Micro-kernel: 6 rows × 64
/// inputs in 24 accumulators, one broadcast weight per row and k, no
/// horizontal sums; the weights are read in place, row by row, and the next
/// 6 rows are prefetched into L2 meanwhile. (AVX2: 6 rows × 16 inputs in 12
/// accumulators.)
///
/// # Safety
/// Requires [`has_gemm_t`]; `yt` valid for rows × npad writes that no other
/// thread touches meanwhile.
pub unsafe fn gemm_t(
    w: &[f32],
    rows: usize,
    xt: &[f32],
    npad: usize,
    k_len: usize,
    yt: *mut f32,
    scale: f32,
) {
    assert!(npad % 16 == 0 && w.len() >= rows * k_len && xt.len() >= k_len * npad);
    #[cfg(target_arch = "x86_64")]
    {
        if isa() == Isa::Avx512 {
            x86::gemm_t_avx512(w, rows, xt, npad, k_len, yt, scale)
        } else {
            super::avx2::gemm_t(w, rows, xt, npad, k_len, yt, scale)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (w, rows, xt, npad, k_len, yt, scale);
        unreachable!("gemm_t needs AVX-512 or AVX2")
    }
}

/// exp(x) = 2^n · exp(r), x = n·ln2 + r: ln2 split in two for an exact
/// reduction, and exp(r)'s degree-6 Taylor coefficients, highest first
/// (Horner). Shared by the AVX-512 and AVX2 versions.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const EXP_LN2: (f32, f32) = (0.693_145_75, 1.428_606_8e-6);
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const EXP_POLY: [f32; 7] = [
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];
/// Cephes' logf: the polynomial in f = m - 1 (highest first) and the two
/// parts of ln2 it adds back per exponent. Shared as above.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const LOG_POLY: [f32; 9] = [
    7.037_683_6e-2,
    -1.151_461e-1,
    1.167_699_9e-1,
    -1.242_014_1e-1,
    1.424_932_3e-1,
    -1.666_805_8e-1,
    2.000_071_5e-1,
    -2.499_999_4e-1,
    3.333_333_1e-1,
];
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const LOG_LN2: (f32, f32) = (-2.121_944_4e-4, 0.693_359_4);

/// How far ahead (bytes) the decode dot kernels prefetch a weight row. Rows
/// are read one after another, so this reaches into the next rows: 8 KiB
/// keeps enough misses in flight for one core to approach the memory's read
/// bandwidth (1 KiB left f16 and int8 decode 15-25% slower on this machine).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const PF_DIST: usize = 8192;

/// How far ahead (bytes) the AVX-512 decode kernels also prefetch into L2
/// (T1), beyond their L1 prefetch ([`PF_DIST`]): one process alternating
/// with and without it on host 2 (130m, 2 threads), one-sequence decode
/// 10-12% faster for int8 (panel tile), 10% f16, 14% f32, 16% bf16; a
/// batch-8 int8 step 4.5-5% (its tile). For int8, 8, 16 and 24 KiB ahead
/// measured alike; 24 taken. The AVX2 tier's f32, f16, bf16 and i8 row
/// kernels too (measured on host 2 with `MAMBA_ISA=avx2`: f32 +15-20%,
/// f16 +4-5%, bf16 +7%). Not in the batched float kernels (`multir_*`: no
/// change for a batch-8 f16 step).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const PF_FAR: usize = 24576;

/// Whether the kernels' streaming prefetches (weight rows [`PF_DIST`] ahead,
/// the SSM and conv states) fill L2 (`prefetcht1`) rather than L1
/// (`prefetcht0`); [`PF_FAR`]'s always fill L2. Chosen once: L2 on AMD (and
/// Hygon) CPUs, L1 elsewhere; `MAMBA_PREFETCH=l1` or `l2` overrides it.
///
/// The kernels were tuned on Intel hosts with T0 (host 2: a Xeon of the
/// Sapphire Rapids class). On host 3 (AMD EPYC, Zen 4) T0 cost far more than
/// it gave: one process alternating the two (130m, 2 threads) measured with
/// T1 one-sequence decode +8% f32, +15% f16, +10% int8, +15% q8_0, and a
/// batch-8 step +42% f32, +21% f16 (the batched float kernels); the states'
/// prefetch as T1 too, batch steps another +5-6%. Not measured on an Intel
/// CPU with T1, so Intel keeps what was measured there.
pub fn prefetch_l2() -> bool {
    static L2: OnceLock<bool> = OnceLock::new();
    *L2.get_or_init(|| {
        prefetch_choice(
            std::env::var("MAMBA_PREFETCH").ok().as_deref(),
            cpu_vendor_is_amd(),
        )
    })
}

/// [`prefetch_l2`]'s rule: `MAMBA_PREFETCH` (`l1`, `l2`; anything else is
/// ignored) wins over the vendor default.
fn prefetch_choice(env: Option<&str>, amd: bool) -> bool {
    match env {
        Some("l1") => false,
        Some("l2") => true,
        _ => amd,
    }
}

/// The CPU's vendor string (CPUID leaf 0) names AMD or Hygon (Zen cores).
pub(crate) fn cpu_vendor_is_amd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: CPUID leaf 0 exists on every x86-64 CPU (a safe function
        // on newer compilers, hence the allow).
        #[allow(unused_unsafe)]
        let r = unsafe { std::arch::x86_64::__cpuid(0) };
        let mut v = [0u8; 12];
        v[..4].copy_from_slice(&r.ebx.to_le_bytes());
        v[4..8].copy_from_slice(&r.edx.to_le_bytes());
        v[8..].copy_from_slice(&r.ecx.to_le_bytes());
        &v == b"AuthenticAMD" || &v == b"HygonGenuine"
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Prefetches the line at `p` into L2 if `l2` ([`prefetch_l2`]), else L1
/// (public for the bench's best read, which reads as the kernels do).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn prefetch_near(p: *const i8, l2: bool) {
    use std::arch::x86_64::*;
    // SAFETY: a prefetch never faults, whatever the address.
    #[allow(unused_unsafe)]
    unsafe {
        if l2 {
            _mm_prefetch::<_MM_HINT_T1>(p)
        } else {
            _mm_prefetch::<_MM_HINT_T0>(p)
        }
    }
}

/// Calls `$f::<N>(args)` for the input count `$n` (2 to [`MULTI_MAX`]): the
/// multi-input kernels are generic over N so their accumulators stay in
/// registers.
#[cfg(target_arch = "x86_64")]
macro_rules! by_n {
    ($n:expr, $($f:ident)::+, $($arg:expr),*) => {
        match $n {
            2 => $($f)::+::<2>($($arg),*),
            3 => $($f)::+::<3>($($arg),*),
            4 => $($f)::+::<4>($($arg),*),
            5 => $($f)::+::<5>($($arg),*),
            6 => $($f)::+::<6>($($arg),*),
            7 => $($f)::+::<7>($($arg),*),
            _ => $($f)::+::<8>($($arg),*),
        }
    };
}

/// Most inputs [`dot_rows_multi`] takes at once.
pub const MULTI_MAX: usize = 8;

/// out[t] = Σ_k row[k] · x[t·k_len + k] for t < n (2 ≤ n ≤ [`MULTI_MAX`]):
/// one stored row (any dtype but bfloat8, no tensor scale) against a few
/// inputs, converting each 16 weights once and using them n times. This is
/// the small-batch product (batched decode): no conversion buffer, no
/// transposes. With AVX2 the same in 8 lanes; otherwise the row is
/// converted in chunks on the stack, once for all inputs. Returns false only
/// for n outside 2..=MULTI_MAX or short buffers.
pub fn dot_rows_multi(
    dtype: DType,
    row: &[u8],
    x: &[f32],
    n: usize,
    k_len: usize,
    out: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if isa() == Isa::Avx512
            && (2..=MULTI_MAX).contains(&n)
            && x.len() >= n * k_len
            && out.len() >= n
        {
            macro_rules! go {
                ($f:ident, $w:expr) => {
                    // SAFETY: avx512 present; the row holds k_len elements of
                    // its dtype (checked at view time), x holds n·k_len floats.
                    unsafe { by_n!(n, x86::$f, $w, x, k_len, out) }
                };
            }
            match dtype {
                DType::F32 => go!(multi_f32, row.as_ptr()),
                DType::F16 => go!(multi_f16, row.as_ptr()),
                DType::BF16 => go!(multi_bf16, row.as_ptr()),
                DType::I8 => go!(multi_i8, row.as_ptr()),
                DType::Q8Row => {
                    go!(multi_i8, row[4..].as_ptr());
                    let d = q8row_scale(row);
                    for o in &mut out[..n] {
                        *o *= d;
                    }
                }
                DType::Q8_0 => go!(multi_q8_0, row.as_ptr()),
                DType::BF8 => multi_chunked(dtype, row, x, n, k_len, out),
            }
            return true;
        }
    }
    if !(2..=MULTI_MAX).contains(&n) || x.len() < n * k_len || out.len() < n {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if isa() == Isa::Avx2 {
            use super::avx2;
            // SAFETY: AVX2, FMA and F16C present; the row holds k_len
            // elements of its dtype (checked at view time), x n·k_len floats.
            unsafe {
                match dtype {
                    DType::F32 => by_n!(n, avx2::multi_f32, row, x, k_len, out),
                    DType::F16 => by_n!(n, avx2::multi_f16, row, x, k_len, out),
                    DType::BF16 => by_n!(n, avx2::multi_bf16, row, x, k_len, out),
                    DType::I8 => by_n!(n, avx2::multi_i8, row, x, k_len, out),
                    DType::Q8Row => {
                        by_n!(n, avx2::multi_i8, &row[4..], x, k_len, out);
                        let d = q8row_scale(row);
                        for o in &mut out[..n] {
                            *o *= d;
                        }
                    }
                    DType::Q8_0 => by_n!(n, avx2::multi_q8_0, row, x, k_len, out),
                    DType::BF8 => multi_chunked(dtype, row, x, n, k_len, out),
                }
            }
            return true;
        }
    }
    multi_chunked(dtype, row, x, n, k_len, out);
    true
}

/// The fallback of [`dot_rows_multi`] (portable CPUs; bfloat8 rows): the row is
/// converted 256 elements at a time into a stack buffer, once for all n
/// inputs, then dotted with each (f32 rows are used in place).
fn multi_chunked(dtype: DType, row: &[u8], x: &[f32], n: usize, k_len: usize, out: &mut [f32]) {
    const CHUNK: usize = 256; // a multiple of Q8_0's 32-element blocks
    out[..n].fill(0.0);
    let (data, scale, el) = match dtype {
        DType::Q8Row => (&row[4..], q8row_scale(row), DType::I8),
        other => (row, 1.0, other),
    };
    // Bytes of elements c0..c1 of `el` (Q8_0: whole 34-byte blocks).
    let bytes = |c0: usize, c1: usize| match el {
        DType::F32 => (4 * c0, 4 * c1),
        DType::F16 | DType::BF16 => (2 * c0, 2 * c1),
        DType::Q8_0 => (c0 / 32 * 34, c1.div_ceil(32) * 34),
        _ => (c0, c1),
    };
    let mut buf = [0.0f32; CHUNK];
    let mut c0 = 0;
    while c0 < k_len {
        let c1 = (c0 + CHUNK).min(k_len);
        let (b0, b1) = bytes(c0, c1);
        let w: &[f32] = if el == DType::F32 {
            // SAFETY: rows of f32 tensors are 4-byte aligned (checked at view time).
            unsafe { std::slice::from_raw_parts(data[b0..b1].as_ptr() as *const f32, c1 - c0) }
        } else {
            convert_row(el, &data[b0..b1], &mut buf[..c1 - c0]);
            &buf[..c1 - c0]
        };
        for (t, o) in out[..n].iter_mut().enumerate() {
            *o += dot_f32(w, &x[t * k_len + c0..t * k_len + c1]);
        }
        c0 = c1;
    }
    for o in &mut out[..n] {
        *o *= scale;
    }
}

/// Like [`dot_rows_multi`] for R consecutive stored rows (`rows` holds
/// them, `stride` bytes apart): `out[j][t]` for row j. Bit-identical to R
/// `dot_rows_multi` calls. Each input vector is loaded once for the R rows:
/// 3 rows × 8 inputs keep 24 accumulators in registers (measured +18% over
/// 2 rows with the weights in L2; 4 rows spill). False when no R-row kernel
/// exists (R outside 2..=3, Q8_0 with 3 rows, BF8, no AVX-512).
pub fn dot_rows_multi_r<const R: usize>(
    dtype: DType,
    rows: &[u8],
    stride: usize,
    x: &[f32],
    n: usize,
    k_len: usize,
    out: &mut [[f32; 8]; R],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if isa() == Isa::Avx512
            && (2..=3).contains(&R)
            && (2..=MULTI_MAX).contains(&n)
            && x.len() >= n * k_len
            && dtype.row_bytes(k_len).is_some_and(|rb| {
                rb <= stride
                    && (R - 1)
                        .checked_mul(stride)
                        .and_then(|s| s.checked_add(rb))
                        .is_some_and(|e| e <= rows.len())
            })
        {
            macro_rules! go {
                ($f:ident, $w:expr) => {{
                    // SAFETY: avx512 present; the R rows hold k_len elements
                    // of their dtype within `rows` (checked above), x holds
                    // n·k_len floats.
                    let w = $w;
                    unsafe {
                        match n {
                            2 => x86::$f::<2, R>(w, stride, x, k_len, out),
                            3 => x86::$f::<3, R>(w, stride, x, k_len, out),
                            4 => x86::$f::<4, R>(w, stride, x, k_len, out),
                            5 => x86::$f::<5, R>(w, stride, x, k_len, out),
                            6 => x86::$f::<6, R>(w, stride, x, k_len, out),
                            7 => x86::$f::<7, R>(w, stride, x, k_len, out),
                            _ => x86::$f::<8, R>(w, stride, x, k_len, out),
                        }
                    }
                }};
            }
            match dtype {
                DType::F32 => go!(multir_f32, rows.as_ptr()),
                DType::F16 => go!(multir_f16, rows.as_ptr()),
                DType::BF16 => go!(multir_bf16, rows.as_ptr()),
                DType::I8 => go!(multir_i8, rows.as_ptr()),
                DType::Q8Row => {
                    go!(multir_i8, rows[4..].as_ptr());
                    for (j, o) in out.iter_mut().enumerate() {
                        let d = q8row_scale(&rows[j * stride..]);
                        for v in &mut o[..n] {
                            *v *= d;
                        }
                    }
                }
                // 3 rows: 24 accumulators + 6 weight registers spill.
                DType::Q8_0 if R == 2 => go!(multir_q8_0, rows.as_ptr()),
                DType::Q8_0 | DType::BF8 => return false,
            }
            return true;
        }
    }
    let _ = (dtype, rows, stride, x, n, k_len, out);
    false
}

/// Most columns [`short_rows_multi`] takes (its converted group of rows is
/// 16 × this many floats on the stack).
pub const SHORT_K: usize = 256;

/// y.at(t, r) = scale · W[r] · x[t] for r in `rows` and t < n (1 to
/// [`MULTI_MAX`]), for a matrix of few columns (k_len ≤ [`SHORT_K`]; in
/// Mamba, dt_proj: k = dt_rank, 48 to 160). `w` holds the stored rows,
/// `rb` bytes each. With rows that short, a per-row kernel
/// ([`dot_rows_multi_r`]) spends most of its time summing each
/// (row, input) pair's lanes; here 16 rows are converted to f32 once, and
/// each input's 16 row sums are reduced together ([`x86::sum16`]): in a
/// batch-8 step of the 130m shape (int8), dt_proj's thread time went from
/// 1.27–1.40 to 1.06 ms.
/// Returns false (nothing written) where it does not apply: no AVX-512,
/// k_len above SHORT_K, n outside 1..=MULTI_MAX, or Q8_0 and BF8 weights.
///
/// # Safety
/// `y` valid for writes at `y.at(t, r)` (t < n, r in `rows`) that no other
/// thread touches.
#[allow(clippy::too_many_arguments)]
pub unsafe fn short_rows_multi(
    dtype: DType,
    w: &[u8],
    rb: usize,
    rows: std::ops::Range<usize>,
    x: &[f32],
    n: usize,
    k_len: usize,
    scale: f32,
    y: super::Dest,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if isa() == Isa::Avx512
            && (1..=SHORT_K).contains(&k_len)
            && (1..=MULTI_MAX).contains(&n)
            && x.len() >= n * k_len
            && !matches!(dtype, DType::BF8 | DType::Q8_0)
            && dtype.row_bytes(k_len).is_some_and(|b| b <= rb)
            && rows.end.checked_mul(rb).is_some_and(|e| e <= w.len())
        {
            x86::short_rows16(dtype, w, rb, rows, x, n, k_len, scale, y);
            return true;
        }
    }
    let _ = (dtype, w, rb, rows, x, n, k_len, scale, y);
    false
}

/// y[t·ld + r] = scale · Σ_k w[r·k_len + k] · x[t·k_len + k]: the portable
/// matrix-matrix block (dot products).
///
/// # Safety
/// `y` valid for writes at t·ld + r (t < n, r < rows) that no other thread touches.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_dots(
    w: &[f32],
    rows: usize,
    x: &[f32],
    n: usize,
    k_len: usize,
    y: *mut f32,
    ld: usize,
    scale: f32,
) {
    for t in 0..n {
        let xt = &x[t * k_len..(t + 1) * k_len];
        for r in 0..rows {
            *y.add(t * ld + r) = scale * dot_f32(&w[r * k_len..(r + 1) * k_len], xt);
        }
    }
}

/// One channel of the selective scan for one token:
/// `h[j] = exp(dt·a[j])·h[j] + (dt·b[j])·u`, returns Σ_j h[j]·c[j].
/// The AVX-512 path uses [`exp_avx512`]-style range reduction (max relative
/// error about 2e-7 against `f32::exp`, measured in the tests below).
#[inline]
pub fn scan_channel(h: &mut [f32], a: &[f32], b: &[f32], c: &[f32], dt: f32, u: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if isa() == Isa::Avx512 {
            // SAFETY: avx512f present (checked in `isa`).
            return unsafe { x86::scan_channel_avx512(h, a, b, c, dt, u) };
        }
        if isa() == Isa::Avx2 {
            // SAFETY: AVX2, FMA and F16C present.
            return unsafe { super::avx2::scan_channel(h, a, b, c, dt, u) };
        }
    }
    scan_channel_portable(h, a, b, c, dt, u)
}

/// The selective scan for channels j < dt.len() of one token: channel j's
/// state is `h[j·ds..(j+1)·ds]` and its A row `a[j·ds..]` (ds = b.len());
/// `y[j] = scan_channel(h_j, a_j, b, c, dt[j], u[j]) + d[j]·u[j]`.
/// On AVX-512 with d_state 16 (every Mamba checkpoint), 16 channels run
/// together and their sums are reduced in one transpose, instead of one
/// horizontal sum and one call per channel. Each channel's arithmetic is the
/// same wherever it sits in the range, so any split of the channels gives
/// the same bits.
#[allow(clippy::too_many_arguments)]
pub fn scan_channels(
    h: &mut [f32],
    a: &[f32],
    b: &[f32],
    c: &[f32],
    dt: &[f32],
    u: &[f32],
    d: &[f32],
    y: &mut [f32],
) {
    let (n, ds) = (dt.len(), b.len());
    assert!(h.len() == n * ds && a.len() == n * ds && c.len() == ds);
    assert!(u.len() == n && d.len() == n && y.len() == n);
    #[cfg(target_arch = "x86_64")]
    {
        if ds == 16 && isa() == Isa::Avx512 {
            // SAFETY: avx512f present (checked in `isa`); lengths checked above.
            return unsafe { x86::scan_channels16(h, a, b, c, dt, u, d, y) };
        }
    }
    for j in 0..n {
        let s = j * ds..(j + 1) * ds;
        y[j] = scan_channel(&mut h[s.clone()], &a[s], b, c, dt[j], u[j]) + d[j] * u[j];
    }
}

/// One decode step of the depthwise causal conv for d_conv 4 (every Mamba
/// checkpoint), channels j < x.len(): channel j's window `state[4j..4j+4]`
/// shifts by one and takes x[j] last, then
/// `u[j] = ((s0·w0 + s1·w1) + s2·w2) + s3·w3` over the new window. Every
/// path rounds each product and adds in that order, so the result is the
/// same bits on all of them (tested). On AVX-512, 16 channels per step.
pub fn conv4_step(state: &mut [f32], w: &[f32], x: &[f32], u: &mut [f32]) {
    let n = x.len();
    assert!(state.len() == 4 * n && w.len() == 4 * n && u.len() == n);
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if isa() == Isa::Avx512 {
            // SAFETY: avx512f present (checked in `isa`); lengths checked above.
            done = unsafe { x86::conv4_step16(state, w, x, u) };
        }
    }
    conv4_step_portable(
        &mut state[4 * done..],
        &w[4 * done..],
        &x[done..],
        &mut u[done..],
    );
}

fn conv4_step_portable(state: &mut [f32], w: &[f32], x: &[f32], u: &mut [f32]) {
    let it = state.chunks_exact_mut(4).zip(w.chunks_exact(4));
    for ((s, wk), (xv, uv)) in it.zip(x.iter().zip(u.iter_mut())) {
        let s: &mut [f32; 4] = s.try_into().unwrap();
        *s = [s[1], s[2], s[3], *xv];
        *uv = s[0] * wk[0] + s[1] * wk[1] + s[2] * wk[2] + s[3] * wk[3];
    }
}

/// Asks for the first `bytes` of `v` to be brought into cache (x86; a no-op
/// elsewhere): the start of a range a kernel will stream next.
#[inline]
pub fn prefetch_start(v: &[f32], bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    let l2 = prefetch_l2();
    #[cfg(target_arch = "x86_64")]
    for off in (0..bytes.min(v.len() * 4)).step_by(64) {
        prefetch_near((v.as_ptr() as *const i8).wrapping_add(off), l2)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (v, bytes);
}

pub fn scan_channel_portable(
    h: &mut [f32],
    a: &[f32],
    b: &[f32],
    c: &[f32],
    dt: f32,
    u: f32,
) -> f32 {
    let mut acc = 0.0f32;
    for j in 0..h.len() {
        h[j] = super::exp_ftz(dt * a[j]) * h[j] + (dt * b[j]) * u;
        acc += h[j] * c[j];
    }
    acc
}

/// Applies the detected tier's vector kernel to a slice, or `$scalar` to
/// each element on portable CPUs.
macro_rules! map_slice {
    ($x:expr, $avx512:ident, $avx2:ident, $scalar:expr) => {{
        let x: &mut [f32] = $x;
        #[cfg(target_arch = "x86_64")]
        {
            match isa() {
                // SAFETY: the detected tier's features are present.
                Isa::Avx512 => return unsafe { x86::$avx512(x) },
                Isa::Avx2 => return unsafe { super::avx2::$avx2(x) },
                Isa::Portable => {}
            }
        }
        let f: fn(f32) -> f32 = $scalar;
        for v in x {
            *v = f(*v);
        }
    }};
}

/// x ← x·sigmoid(x) (SiLU) for each element.
pub fn silu_slice(x: &mut [f32]) {
    map_slice!(x, silu_slice_avx512, silu_slice, super::silu)
}

/// x ← softplus(x) as PyTorch computes it: log1p(exp(x)), or x above 20.
pub fn softplus_slice(x: &mut [f32]) {
    map_slice!(x, softplus_slice_avx512, softplus_slice, super::softplus)
}

/// exp(x) for each element, vectorized where the CPU allows.
pub fn exp_slice(x: &mut [f32]) {
    map_slice!(x, exp_slice_avx512, exp_slice, super::exp_ftz)
}

/// Dot of a stored row (any dtype, no tensor scale) with x.
pub fn dot_row(dtype: DType, row: &[u8], x: &[f32]) -> f32 {
    let cols = x.len();
    if dtype == DType::F32 {
        // SAFETY: rows of f32 tensors are 4-byte aligned (checked at view time).
        let w = unsafe { std::slice::from_raw_parts(row.as_ptr() as *const f32, row.len() / 4) };
        return dot_f32(w, x);
    }
    #[cfg(target_arch = "x86_64")]
    {
        use super::avx2;
        // The same dispatch for each tier: q8_row is its scale times an int8 dot.
        macro_rules! tier {
            ($f16:path, $bf16:path, $i8:path, $q8_0:path) => {
                match dtype {
                    DType::F16 => return unsafe { $f16(row, x) },
                    DType::BF16 => return unsafe { $bf16(row, x) },
                    DType::I8 => return unsafe { $i8(row, x) },
                    DType::Q8Row => return q8row_scale(row) * unsafe { $i8(&row[4..4 + cols], x) },
                    DType::Q8_0 => return unsafe { $q8_0(row, x) },
                    _ => {}
                }
            };
        }
        match isa() {
            // SAFETY: avx512f (+ the F16C-class conversions it includes) present.
            Isa::Avx512 => tier!(
                x86::dot_f16_avx512,
                x86::dot_bf16_avx512,
                x86::dot_i8_avx512,
                x86::dot_q8_0_avx512
            ),
            // SAFETY: AVX2, FMA and F16C present (the Avx2 tier checks them).
            Isa::Avx2 => tier!(avx2::dot_f16, avx2::dot_bf16, avx2::dot_i8, avx2::dot_q8_0),
            Isa::Portable => {}
        }
    }
    // Portable: convert in chunks on the stack, then an f32 dot.
    let mut buf = [0.0f32; 256];
    let mut s = 0.0;
    match dtype {
        DType::Q8Row => {
            let d = q8row_scale(row);
            for (c, chunk) in row[4..4 + cols].chunks(256).enumerate() {
                dequant_bytes(DType::I8, chunk, &mut buf[..chunk.len()]);
                s += dot_f32(&buf[..chunk.len()], &x[c * 256..c * 256 + chunk.len()]);
            }
            d * s
        }
        DType::Q8_0 => {
            for (bi, blk) in row.chunks_exact(34).enumerate() {
                let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                dequant_bytes(DType::I8, &blk[2..34], &mut buf[..32]);
                s += d * dot_f32(&buf[..32], &x[bi * 32..bi * 32 + 32]);
            }
            s
        }
        _ => {
            let esize = if matches!(dtype, DType::F16 | DType::BF16) {
                2
            } else {
                1
            };
            let mut c0 = 0;
            while c0 < cols {
                let c1 = (c0 + 256).min(cols);
                dequant_bytes(dtype, &row[c0 * esize..c1 * esize], &mut buf[..c1 - c0]);
                s += dot_f32(&buf[..c1 - c0], &x[c0..c1]);
                c0 = c1;
            }
            s
        }
    }
}

/// dst[c·dst_stride + r] = src[r·src_stride + c] for r < nr, c < nc: a
/// block transpose (matmul's inputs into the GEMM's k-major groups, and its
/// outputs back), 16 elements per gather with AVX-512.
///
/// # Safety
/// `src` valid for those reads, `dst` for those writes (not overlapping),
/// and no other thread writes either meanwhile.
pub unsafe fn transpose(
    src: *const f32,
    src_stride: usize,
    nr: usize,
    nc: usize,
    dst: *mut f32,
    dst_stride: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if isa() == Isa::Avx512 && src_stride.saturating_mul(16) <= i32::MAX as usize / 4 {
            return x86::transpose_avx512(src, src_stride, nr, nc, dst, dst_stride);
        }
    }
    for r in 0..nr {
        for c in 0..nc {
            *dst.add(c * dst_stride + r) = *src.add(r * src_stride + c);
        }
    }
}

/// Converts a stored row to f32 (no tensor scale), vectorized where possible.
pub fn convert_row(dtype: DType, row: &[u8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if isa() == Isa::Avx512 {
            let cols = out.len();
            // SAFETY: avx512f present; lengths follow the row layout.
            unsafe {
                match dtype {
                    DType::F16 => return x86::cvt_f16_avx512(row, out),
                    DType::BF16 => return x86::cvt_bf16_avx512(row, out),
                    DType::I8 => return x86::cvt_i8_avx512(row, out, 1.0),
                    DType::Q8Row => {
                        let d = q8row_scale(row);
                        return x86::cvt_i8_avx512(&row[4..4 + cols], out, d);
                    }
                    DType::Q8_0 => {
                        for (blk, o) in row.chunks_exact(34).zip(out.chunks_mut(32)) {
                            let d = x86::f16_to_f32(u16::from_le_bytes([blk[0], blk[1]]));
                            x86::cvt_i8_avx512(&blk[2..34], o, d);
                        }
                        return;
                    }
                    _ => {}
                }
            }
        }
        // SAFETY: AVX2, FMA and F16C present (the Avx2 tier checks them).
        if isa() == Isa::Avx2 && unsafe { super::avx2::convert_row(dtype, row, out) } {
            return;
        }
    }
    dequant_bytes(dtype, row, out)
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        let l2 = super::prefetch_l2();
        while i + 64 <= n {
            // PF_DIST ahead into L1 (or L2), PF_FAR ahead into L2.
            for j in 0..4 {
                let near = pa.wrapping_add(i + PF_DIST / 4 + 16 * j);
                super::prefetch_near(near as *const i8, l2);
                _mm_prefetch::<_MM_HINT_T1>(near.wrapping_add((PF_FAR - PF_DIST) / 4) as *const i8);
            }
            for j in 0..4 {
                acc[j] = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 16 * j)),
                    _mm512_loadu_ps(pb.add(i + 16 * j)),
                    acc[j],
                );
            }
            i += 64;
        }
        while i + 16 <= n {
            acc[0] = _mm512_fmadd_ps(
                _mm512_loadu_ps(pa.add(i)),
                _mm512_loadu_ps(pb.add(i)),
                acc[0],
            );
            i += 16;
        }
        if i < n {
            let m: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            acc[1] = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(m, pa.add(i)),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
                acc[1],
            );
        }
        let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(s)
    }

    /// exp(x): x = n·ln2 + r with |r| <= ln2/2, exp(r) by a degree-6
    /// polynomial, times 2^n with scalef; 0 below [`crate::kernels::EXP_FLUSH_BELOW`]
    /// (no subnormal results).
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn exp_ps(x: __m512) -> __m512 {
        let x = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(-104.0)),
            _mm512_set1_ps(88.7),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(super::EXP_LN2.0), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(super::EXP_LN2.1), r);
        let mut p = _mm512_set1_ps(super::EXP_POLY[0]);
        for c in &super::EXP_POLY[1..] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(*c));
        }
        let keep =
            _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_set1_ps(crate::kernels::EXP_FLUSH_BELOW));
        _mm512_maskz_scalef_ps(keep, p, n)
    }

    /// ln(x) for x > 0 (Cephes' logf: mantissa in [√½, √2), degree-8 polynomial).
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn log_ps(x: __m512) -> __m512 {
        let one = _mm512_set1_ps(1.0);
        let mut e = _mm512_getexp_ps(x);
        let mut m = _mm512_getmant_ps::<_MM_MANT_NORM_1_2, _MM_MANT_SIGN_SRC>(x);
        let big = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(m, _mm512_set1_ps(std::f32::consts::SQRT_2));
        m = _mm512_mask_mul_ps(m, big, m, _mm512_set1_ps(0.5));
        e = _mm512_mask_add_ps(e, big, e, one);
        let f = _mm512_sub_ps(m, one);
        let z = _mm512_mul_ps(f, f);
        let mut p = _mm512_set1_ps(super::LOG_POLY[0]);
        for c in &super::LOG_POLY[1..] {
            p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(*c));
        }
        let mut y = _mm512_mul_ps(_mm512_mul_ps(p, f), z);
        y = _mm512_fmadd_ps(e, _mm512_set1_ps(super::LOG_LN2.0), y);
        y = _mm512_fnmadd_ps(_mm512_set1_ps(0.5), z, y);
        let r = _mm512_add_ps(f, y);
        _mm512_fmadd_ps(e, _mm512_set1_ps(super::LOG_LN2.1), r)
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn silu_slice_avx512(x: &mut [f32]) {
        let n = x.len();
        let p = x.as_mut_ptr();
        let one = _mm512_set1_ps(1.0);
        let mut i = 0;
        while i < n {
            let m = tail_mask(n - i);
            let v = _mm512_maskz_loadu_ps(m, p.add(i));
            let e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), v));
            _mm512_mask_storeu_ps(p.add(i), m, _mm512_div_ps(v, _mm512_add_ps(one, e)));
            i += 16;
        }
    }

    /// softplus(x) = log1p(exp(x)) (x above 20), with log1p(t) computed as
    /// log(u) + (t - (u - 1)) / u for u = 1 + t, exact for tiny t.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn softplus_slice_avx512(x: &mut [f32]) {
        let n = x.len();
        let p = x.as_mut_ptr();
        let one = _mm512_set1_ps(1.0);
        let mut i = 0;
        while i < n {
            let m = tail_mask(n - i);
            let v = _mm512_maskz_loadu_ps(m, p.add(i));
            let t = exp_ps(v);
            let u = _mm512_add_ps(one, t);
            let corr = _mm512_div_ps(_mm512_sub_ps(t, _mm512_sub_ps(u, one)), u);
            let sp = _mm512_add_ps(log_ps(u), corr);
            let keep = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, _mm512_set1_ps(20.0));
            _mm512_mask_storeu_ps(p.add(i), m, _mm512_mask_blend_ps(keep, sp, v));
            i += 16;
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp_slice_avx512(x: &mut [f32]) {
        let n = x.len();
        let p = x.as_mut_ptr();
        let mut i = 0;
        while i < n {
            let m: __mmask16 = if n - i >= 16 {
                0xffff
            } else {
                ((1u32 << (n - i)) - 1) as u16
            };
            let v = _mm512_maskz_loadu_ps(m, p.add(i));
            _mm512_mask_storeu_ps(p.add(i), m, exp_ps(v));
            i += 16;
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn scan_channel_avx512(
        h: &mut [f32],
        a: &[f32],
        b: &[f32],
        c: &[f32],
        dt: f32,
        u: f32,
    ) -> f32 {
        let n = h.len();
        assert!(a.len() >= n && b.len() >= n && c.len() >= n);
        let dtv = _mm512_set1_ps(dt);
        let uv = _mm512_set1_ps(u);
        let mut acc = _mm512_setzero_ps();
        let mut i = 0;
        while i < n {
            let m: __mmask16 = if n - i >= 16 {
                0xffff
            } else {
                ((1u32 << (n - i)) - 1) as u16
            };
            let av = _mm512_maskz_loadu_ps(m, a.as_ptr().add(i));
            let bv = _mm512_maskz_loadu_ps(m, b.as_ptr().add(i));
            let cv = _mm512_maskz_loadu_ps(m, c.as_ptr().add(i));
            let hv = _mm512_maskz_loadu_ps(m, h.as_ptr().add(i));
            let da = exp_ps(_mm512_mul_ps(dtv, av));
            let hn = _mm512_fmadd_ps(da, hv, _mm512_mul_ps(_mm512_mul_ps(dtv, bv), uv));
            _mm512_mask_storeu_ps(h.as_mut_ptr().add(i), m, hn);
            acc = _mm512_fmadd_ps(hn, cv, acc);
            i += 16;
        }
        _mm512_reduce_add_ps(acc)
    }

    /// Channels ahead that [`scan_channels16`] prefetches the state of (4 KiB).
    pub const SCAN_PF_CH: usize = 64;

    /// `conv4_step` for the first 16·⌊n/16⌋ channels; returns how many.
    /// Four registers hold 16 channels' windows (4 taps each): a two-source
    /// permute shifts each window and brings in x, and two levels of
    /// permutes transpose the 64 products into one register per tap.
    ///
    /// # Safety
    /// avx512f; `state` and `w` hold 4·x.len() values, `u` x.len().
    #[target_feature(enable = "avx512f")]
    pub unsafe fn conv4_step16(state: &mut [f32], w: &[f32], x: &[f32], u: &mut [f32]) -> usize {
        let n = x.len() / 16 * 16;
        let idx = |f: &dyn Fn(i32) -> i32| {
            let v: [i32; 16] = std::array::from_fn(|i| f(i as i32));
            _mm512_loadu_si512(v.as_ptr() as *const _)
        };
        // Register z holds channels 4z..4z+4; lane 4c+q is tap q of channel
        // 4z+c. New lane 4c+q: old lane 4c+q+1, or x[4z+c] for q = 3.
        let shift: [__m512i; 4] = std::array::from_fn(|z| {
            idx(&|i| {
                if i % 4 < 3 {
                    i + 1
                } else {
                    16 + 4 * z as i32 + i / 4
                }
            })
        });
        // From registers (2m, 2m+1): lanes i < 8 take tap q of their
        // channel i, lanes 8 + i tap q + 1.
        let pair = |q: i32| {
            idx(&|i| {
                let (ch, tap) = (i % 8, q + i / 8);
                if ch < 4 {
                    4 * ch + tap
                } else {
                    16 + 4 * (ch - 4) + tap
                }
            })
        };
        let (taps01, taps23) = (pair(0), pair(2));
        // Then lanes 0..8 from the first half of one, 8..16 from the other.
        let first = idx(&|i| if i < 8 { i } else { 16 + i - 8 });
        let second = idx(&|i| if i < 8 { 8 + i } else { 24 + i - 8 });
        let (sp, wp) = (state.as_mut_ptr(), w.as_ptr());
        for b in (0..n).step_by(16) {
            let xv = _mm512_loadu_ps(x.as_ptr().add(b));
            let mut p = [_mm512_setzero_ps(); 4];
            for (z, pz) in p.iter_mut().enumerate() {
                let at = 4 * b + 16 * z;
                let win = _mm512_permutex2var_ps(_mm512_loadu_ps(sp.add(at)), shift[z], xv);
                _mm512_storeu_ps(sp.add(at), win);
                *pz = _mm512_mul_ps(win, _mm512_loadu_ps(wp.add(at)));
            }
            let ab01 = _mm512_permutex2var_ps(p[0], taps01, p[1]);
            let ab23 = _mm512_permutex2var_ps(p[0], taps23, p[1]);
            let cd01 = _mm512_permutex2var_ps(p[2], taps01, p[3]);
            let cd23 = _mm512_permutex2var_ps(p[2], taps23, p[3]);
            let t0 = _mm512_permutex2var_ps(ab01, first, cd01);
            let t1 = _mm512_permutex2var_ps(ab01, second, cd01);
            let t2 = _mm512_permutex2var_ps(ab23, first, cd23);
            let t3 = _mm512_permutex2var_ps(ab23, second, cd23);
            let sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(t0, t1), t2), t3);
            _mm512_storeu_ps(u.as_mut_ptr().add(b), sum);
        }
        n
    }

    /// `scan_channels` for d_state 16: one vector per channel, 16 channels'
    /// sums reduced together by [`sum16`]. The decay is the prompt scan's
    /// 2^x ([`crate::kernels::scan`], which states its error) on
    /// x = (dt·log2 e)·A, and the input term (dt·u)·B as there: 4 fewer
    /// vector operations per channel than exp(dt·A) with its clamps and
    /// (dt·B)·u (7.4–8.9 → 7.3–7.8 ns per channel on one core).
    ///
    /// # Safety
    /// avx512f; `h`, `a` hold 16·dt.len() values, `b`, `c` 16, and `u`, `d`,
    /// `y` dt.len().
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn scan_channels16(
        h: &mut [f32],
        a: &[f32],
        b: &[f32],
        c: &[f32],
        dt: &[f32],
        u: &[f32],
        d: &[f32],
        y: &mut [f32],
    ) {
        let n = dt.len();
        let bv = _mm512_loadu_ps(b.as_ptr());
        let cv = _mm512_loadu_ps(c.as_ptr());
        let (hp, ap) = (h.as_mut_ptr(), a.as_ptr());
        let l2 = super::prefetch_l2();
        let mut g = 0;
        while g < n {
            let m = tail_mask(n - g);
            // Per channel of the group, computed 16 at a time and read back
            // one by one: dt·log2 e (the decay is 2^(dt·log2 e·A), as in the
            // prompt scan) and dt·u (the input term is (dt·u)·B, as there).
            let dtv = _mm512_maskz_loadu_ps(m, dt.as_ptr().add(g));
            let uv = _mm512_maskz_loadu_ps(m, u.as_ptr().add(g));
            let mut dt2 = [0.0f32; 16];
            let mut dtu = [0.0f32; 16];
            _mm512_storeu_ps(
                dt2.as_mut_ptr(),
                _mm512_mul_ps(dtv, _mm512_set1_ps(std::f32::consts::LOG2_E)),
            );
            _mm512_storeu_ps(dtu.as_mut_ptr(), _mm512_mul_ps(dtv, uv));
            let mut acc = [_mm512_setzero_ps(); 16];
            for (j, s) in acc.iter_mut().enumerate().take(n - g) {
                let ch = g + j;
                let hq = hp.add(ch * 16);
                // The states stream from memory (8 sequences' states do
                // not stay cached under the weights): 4 KiB ahead, inside
                // this range (the caller prefetches the next range's start).
                if ch + SCAN_PF_CH < n {
                    super::prefetch_near(hq.add(SCAN_PF_CH * 16) as *const i8, l2);
                }
                let x = _mm512_mul_ps(_mm512_set1_ps(dt2[j]), _mm512_loadu_ps(ap.add(ch * 16)));
                let da = crate::kernels::scan::exp2_ps(x);
                let hn = _mm512_fmadd_ps(
                    da,
                    _mm512_loadu_ps(hq),
                    _mm512_mul_ps(_mm512_set1_ps(dtu[j]), bv),
                );
                _mm512_storeu_ps(hq, hn);
                *s = _mm512_mul_ps(hn, cv);
            }
            let dv = _mm512_maskz_loadu_ps(m, d.as_ptr().add(g));
            let yv = _mm512_fmadd_ps(dv, uv, sum16(&acc));
            _mm512_mask_storeu_ps(y.as_mut_ptr().add(g), m, yv);
            g += 16;
        }
    }

    /// Converts the k values of a stored row to f32 at `out`, 16 at a time
    /// inline (a call per row to `convert_row` cost more than the products).
    /// A partial last chunk goes through `convert_row`.
    ///
    /// # Safety
    /// avx512f; `row` holds a row of k values of `dtype` (not BF8, Q8_0);
    /// `out` valid for k writes.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn convert16(dtype: crate::model::DType, row: &[u8], k: usize, out: *mut f32) {
        use crate::model::DType;
        let full = k / 16;
        let p = row.as_ptr();
        match dtype {
            DType::F32 => {
                for c in 0..full {
                    _mm512_storeu_ps(
                        out.add(16 * c),
                        _mm512_loadu_ps((p as *const f32).add(16 * c)),
                    );
                }
            }
            DType::F16 => {
                for c in 0..full {
                    let h = _mm256_loadu_si256(p.add(32 * c) as *const _);
                    _mm512_storeu_ps(out.add(16 * c), _mm512_cvtph_ps(h));
                }
            }
            DType::BF16 => {
                for c in 0..full {
                    let h = _mm256_loadu_si256(p.add(32 * c) as *const _);
                    let v = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h));
                    _mm512_storeu_ps(out.add(16 * c), _mm512_castsi512_ps(v));
                }
            }
            DType::I8 | DType::Q8Row => {
                let (p, d) = if dtype == DType::Q8Row {
                    (p.add(4), super::q8row_scale(row))
                } else {
                    (p, 1.0)
                };
                let dv = _mm512_set1_ps(d);
                for c in 0..full {
                    let b = _mm_loadu_si128(p.add(16 * c) as *const _);
                    let v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
                    _mm512_storeu_ps(out.add(16 * c), _mm512_mul_ps(v, dv));
                }
            }
            DType::Q8_0 | DType::BF8 => unreachable!("not a short_rows_multi type"),
        }
        if full * 16 < k {
            let mut tmp = [0.0f32; super::SHORT_K];
            super::convert_row(dtype, row, &mut tmp[..k]);
            std::ptr::copy_nonoverlapping(
                tmp.as_ptr().add(16 * full),
                out.add(16 * full),
                k - 16 * full,
            );
        }
    }

    /// [`super::short_rows_multi`]: per group of 16 rows, the rows are
    /// converted into a zero-padded 16 × SHORT_K block, then each input's
    /// 16 products run lane-wise over the column chunks (in order) and
    /// [`sum16`] reduces the 16 rows together.
    ///
    /// # Safety
    /// avx512f; `short_rows_multi`'s checks and contract.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn short_rows16(
        dtype: crate::model::DType,
        w: &[u8],
        rb: usize,
        rows: std::ops::Range<usize>,
        x: &[f32],
        n: usize,
        k: usize,
        scale: f32,
        y: crate::kernels::Dest,
    ) {
        let kc = k.div_ceil(16);
        let last = tail_mask(k - 16 * (kc - 1));
        // Columns past k stay 0 (written once here, never by convert_row).
        let mut buf = [0.0f32; 16 * super::SHORT_K];
        // A constant row stride: the 16 rows' loads are one base register
        // plus constant offsets (with kc·16 the compiler kept 16 pointers,
        // spilled).
        let row_at = |r: usize| r * super::SHORT_K;
        let sv = _mm512_set1_ps(scale);
        let mut g = rows.start;
        while g < rows.end {
            let gr = (rows.end - g).min(16);
            for r in 0..gr {
                let row = &w[(g + r) * rb..(g + r + 1) * rb];
                convert16(dtype, row, k, buf.as_mut_ptr().add(row_at(r)));
            }
            let bp = buf.as_ptr();
            for t in 0..n {
                let xt = x.as_ptr().add(t * k);
                let mut acc = [_mm512_setzero_ps(); 16];
                for c in 0..kc {
                    let m = if c + 1 == kc { last } else { 0xffff };
                    let xv = _mm512_maskz_loadu_ps(m, xt.add(16 * c));
                    for (r, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(_mm512_loadu_ps(bp.add(row_at(r) + 16 * c)), xv, *a);
                    }
                }
                let out = _mm512_mul_ps(sum16(&acc), sv);
                _mm512_mask_storeu_ps(y.at(t, g), tail_mask(gr), out);
            }
            g += 16;
        }
    }

    /// Lane j of the result = the sum of v[j]'s 16 lanes, for all j at once:
    /// pairs of vectors are interleaved and added (within 128-bit blocks),
    /// then the 128-bit blocks are folded. The adds each sum goes through do
    /// not depend on j's neighbours.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn sum16(v: &[__m512; 16]) -> __m512 {
        // Per 128-bit block k of q[i]: lanes = partial sums of v[4i..4i+4]
        // over that block.
        let mut q = [_mm512_setzero_ps(); 4];
        for (i, qi) in q.iter_mut().enumerate() {
            let [a, b, c, d] = [v[4 * i], v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]];
            let ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
            let cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
            let (ab, cd) = (_mm512_castps_pd(ab), _mm512_castps_pd(cd));
            *qi = _mm512_add_ps(
                _mm512_castpd_ps(_mm512_unpacklo_pd(ab, cd)),
                _mm512_castpd_ps(_mm512_unpackhi_pd(ab, cd)),
            );
        }
        // Fold the four blocks: block i of the result sums q[i]'s blocks.
        let s = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(q[0], q[1]),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(q[0], q[1]),
        );
        let t = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(q[2], q[3]),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(q[2], q[3]),
        );
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(s, t),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(s, t),
        )
    }

    /// The 8 sums of v[0..8]'s lanes, in lane order, each added in the
    /// order of `_mm512_reduce_add_ps` (halves: lane i + lane i+8, then
    /// i + i+4, i + i+2, i + i+1), so each equals that reduction bit for
    /// bit (tested), at a third of its cost: the vectors are reduced
    /// together, two per shuffle, instead of one at a time.
    ///
    /// # Safety
    /// avx512f.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn reduce8(v: &[__m512; 8]) -> __m256 {
        // x[i] + x[i+8]: pairs (a, b) -> [a.s8 | b.s8] (128-bit blocks
        // 0+2 and 1+3).
        let half = |a: __m512, b: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
            )
        };
        let p = [
            half(v[0], v[1]),
            half(v[2], v[3]),
            half(v[4], v[5]),
            half(v[6], v[7]),
        ];
        // s8[i] + s8[i+4]: block j of the result is vector j's 4 sums.
        let quarter = |a: __m512, b: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
            )
        };
        let (qa, qb) = (quarter(p[0], p[1]), quarter(p[2], p[3]));
        // s4[i] + s4[i+2] within blocks: block j = [a_j.0, a_j.1, b_j.0, b_j.1].
        let r = _mm512_add_ps(
            _mm512_shuffle_ps::<0b01_00_01_00>(qa, qb),
            _mm512_shuffle_ps::<0b11_10_11_10>(qa, qb),
        );
        // s2[0] + s2[1]: lane 4j = vector j, lane 4j+1 = vector 4+j.
        let s = _mm512_add_ps(
            _mm512_shuffle_ps::<0b10_00_10_00>(r, r),
            _mm512_shuffle_ps::<0b11_01_11_01>(r, r),
        );
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
        _mm512_castps512_ps256(_mm512_permutexvar_ps(order, s))
    }

    /// out[j][t] = the lane sum of a[j][t] (as `_mm512_reduce_add_ps`), a
    /// row's N sums at once through [`reduce8`] (lanes past N: 0).
    ///
    /// # Safety
    /// avx512f.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn reduce_rows<const N: usize, const R: usize>(
        a: [[__m512; N]; R],
        out: &mut [[f32; 8]; R],
    ) {
        const { assert!(N <= 8) };
        for (aj, oj) in a.iter().zip(out.iter_mut()) {
            let v: [__m512; 8] =
                std::array::from_fn(|t| if t < N { aj[t] } else { _mm512_setzero_ps() });
            _mm256_storeu_ps(oj.as_mut_ptr(), reduce8(&v));
        }
    }

    #[inline]
    fn tail_mask(left: usize) -> __mmask16 {
        if left >= 16 {
            0xffff
        } else {
            ((1u32 << left) - 1) as u16
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load_f16(p: *const u8, m: __mmask16) -> __m512 {
        _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m as u16, p as *const i16))
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    unsafe fn load_bf16(p: *const u8, m: __mmask16) -> __m512 {
        let h = _mm256_maskz_loadu_epi16(m as u16, p as *const i16);
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    unsafe fn load_i8(p: *const u8, m: __mmask16) -> __m512 {
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(
            m,
            p as *const i8,
        )))
    }

    use super::{PF_DIST, PF_FAR};
    macro_rules! dot_conv {
        ($name:ident, $load:ident, $esize:expr) => {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
            pub unsafe fn $name(row: &[u8], x: &[f32]) -> f32 {
                let n = x.len();
                assert!(row.len() >= n * $esize);
                let (pw, px) = (row.as_ptr(), x.as_ptr());
                let mut acc = [_mm512_setzero_ps(); 4];
                let mut i = 0;
                let l2 = super::prefetch_l2();
                while i + 64 <= n {
                    // PF_DIST ahead into L1 (or L2), PF_FAR ahead into L2.
                    for j in 0..$esize {
                        let near = pw.wrapping_add(i * $esize + PF_DIST + 64 * j);
                        super::prefetch_near(near as *const i8, l2);
                        _mm_prefetch::<_MM_HINT_T1>(
                            near.wrapping_add(PF_FAR - PF_DIST) as *const i8
                        );
                    }
                    for j in 0..4 {
                        let w = $load(pw.add((i + 16 * j) * $esize), 0xffff);
                        acc[j] = _mm512_fmadd_ps(w, _mm512_loadu_ps(px.add(i + 16 * j)), acc[j]);
                    }
                    i += 64;
                }
                while i < n {
                    let m = tail_mask(n - i);
                    let w = $load(pw.add(i * $esize), m);
                    acc[0] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m, px.add(i)), acc[0]);
                    i += 16;
                }
                let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
                _mm512_reduce_add_ps(s)
            }
        };
    }
    dot_conv!(dot_f16_avx512, load_f16, 2);
    dot_conv!(dot_bf16_avx512, load_bf16, 2);
    dot_conv!(dot_i8_avx512, load_i8, 1);

    /// One f16 to f32 with the hardware conversion (F16C, implied by AVX-512F).
    #[target_feature(enable = "avx512f,f16c")]
    #[inline]
    pub unsafe fn f16_to_f32(h: u16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
    }

    /// Q8_0 row: per 32-block, scale × Σ q·x; even blocks accumulate in one
    /// register, odd blocks in another.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    pub unsafe fn dot_q8_0_avx512(row: &[u8], x: &[f32]) -> f32 {
        let nb = x.len() / 32;
        assert!(row.len() >= nb * 34);
        let (pw, px) = (row.as_ptr(), x.as_ptr());
        // One block: d (f16, broadcast) × (q[0..16]·x[0..16] + q[16..32]·x[16..32]).
        let block = |b: usize, acc: __m512| {
            let blk = pw.add(b * 34);
            let d = _mm512_cvtph_ps(_mm256_set1_epi16(std::ptr::read_unaligned(
                blk as *const i16,
            )));
            let w0 = load_i8(blk.add(2), 0xffff);
            let w1 = load_i8(blk.add(18), 0xffff);
            let s = _mm512_fmadd_ps(
                w1,
                _mm512_loadu_ps(px.add(b * 32 + 16)),
                _mm512_mul_ps(w0, _mm512_loadu_ps(px.add(b * 32))),
            );
            _mm512_fmadd_ps(d, s, acc)
        };
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut b = 0;
        let l2 = super::prefetch_l2();
        while b + 2 <= nb {
            let ahead = pw.wrapping_add(b * 34 + PF_DIST);
            super::prefetch_near(ahead as *const i8, l2);
            super::prefetch_near(ahead.wrapping_add(64) as *const i8, l2);
            acc0 = block(b, acc0);
            acc1 = block(b + 1, acc1);
            b += 2;
        }
        if b < nb {
            acc0 = block(b, acc0);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load_f32(p: *const u8, m: __mmask16) -> __m512 {
        _mm512_maskz_loadu_ps(m, p as *const f32)
    }

    macro_rules! multi {
        ($name:ident, $load:ident, $esize:expr) => {
            /// One row against N inputs (see `dot_rows_multi`).
            #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
            pub unsafe fn $name<const N: usize>(
                w: *const u8,
                x: &[f32],
                k: usize,
                out: &mut [f32],
            ) {
                let mut acc = [_mm512_setzero_ps(); N];
                let xp = x.as_ptr();
                let mut i = 0;
                let l2 = super::prefetch_l2();
                while i + 16 <= k {
                    super::prefetch_near(w.wrapping_add(i * $esize + PF_DIST) as *const i8, l2);
                    let wv = $load(w.add(i * $esize), 0xffff);
                    for t in 0..N {
                        acc[t] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xp.add(t * k + i)), acc[t]);
                    }
                    i += 16;
                }
                if i < k {
                    let m = tail_mask(k - i);
                    let wv = $load(w.add(i * $esize), m);
                    for t in 0..N {
                        acc[t] = _mm512_fmadd_ps(
                            wv,
                            _mm512_maskz_loadu_ps(m, xp.add(t * k + i)),
                            acc[t],
                        );
                    }
                }
                for t in 0..N {
                    out[t] = _mm512_reduce_add_ps(acc[t]);
                }
            }
        };
    }
    multi!(multi_f32, load_f32, 4);
    multi!(multi_f16, load_f16, 2);
    multi!(multi_bf16, load_bf16, 2);
    multi!(multi_i8, load_i8, 1);

    macro_rules! multir {
        ($name:ident, $load:ident, $esize:expr) => {
            /// R consecutive rows (`stride` bytes apart) against N inputs:
            /// each input vector is loaded once for all R rows. Per row, the
            /// same accumulation as the one-row kernel (bit-identical).
            #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
            pub unsafe fn $name<const N: usize, const R: usize>(
                w: *const u8,
                stride: usize,
                x: &[f32],
                k: usize,
                out: &mut [[f32; 8]; R],
            ) {
                let mut a = [[_mm512_setzero_ps(); N]; R];
                let xp = x.as_ptr();
                let mut i = 0;
                let l2 = super::prefetch_l2();
                while i + 16 <= k {
                    let mut v = [_mm512_setzero_ps(); R];
                    for j in 0..R {
                        let wj = w.add(j * stride + i * $esize);
                        super::prefetch_near(wj.wrapping_add(PF_DIST) as *const i8, l2);
                        v[j] = $load(wj, 0xffff);
                    }
                    for t in 0..N {
                        let xv = _mm512_loadu_ps(xp.add(t * k + i));
                        for j in 0..R {
                            a[j][t] = _mm512_fmadd_ps(v[j], xv, a[j][t]);
                        }
                    }
                    i += 16;
                }
                if i < k {
                    let m = tail_mask(k - i);
                    let mut v = [_mm512_setzero_ps(); R];
                    for j in 0..R {
                        v[j] = $load(w.add(j * stride + i * $esize), m);
                    }
                    for t in 0..N {
                        let xv = _mm512_maskz_loadu_ps(m, xp.add(t * k + i));
                        for j in 0..R {
                            a[j][t] = _mm512_fmadd_ps(v[j], xv, a[j][t]);
                        }
                    }
                }
                reduce_rows(a, out);
            }
        };
    }
    multir!(multir_f32, load_f32, 4);
    multir!(multir_f16, load_f16, 2);
    multir!(multir_bf16, load_bf16, 2);
    multir!(multir_i8, load_i8, 1);

    /// R Q8_0 rows against N inputs; per row the order of `multi_q8_0`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    pub unsafe fn multir_q8_0<const N: usize, const R: usize>(
        w: *const u8,
        stride: usize,
        x: &[f32],
        k: usize,
        out: &mut [[f32; 8]; R],
    ) {
        let mut acc = [[_mm512_setzero_ps(); N]; R];
        let xp = x.as_ptr();
        let l2 = super::prefetch_l2();
        for b in 0..k / 32 {
            let mut wv = [[_mm512_setzero_ps(); 2]; R];
            for (j, v) in wv.iter_mut().enumerate() {
                let blk = w.add(j * stride + b * 34);
                super::prefetch_near(blk.wrapping_add(PF_DIST) as *const i8, l2);
                let d = _mm512_cvtph_ps(_mm256_set1_epi16(std::ptr::read_unaligned(
                    blk as *const i16,
                )));
                v[0] = _mm512_mul_ps(d, load_i8(blk.add(2), 0xffff));
                v[1] = _mm512_mul_ps(d, load_i8(blk.add(18), 0xffff));
            }
            for t in 0..N {
                let xt = xp.add(t * k + b * 32);
                let (x0, x1) = (_mm512_loadu_ps(xt), _mm512_loadu_ps(xt.add(16)));
                for j in 0..R {
                    acc[j][t] = _mm512_fmadd_ps(wv[j][0], x0, acc[j][t]);
                    acc[j][t] = _mm512_fmadd_ps(wv[j][1], x1, acc[j][t]);
                }
            }
        }
        reduce_rows(acc, out);
    }

    /// Q8_0 row (34-byte blocks: f16 scale + 32 int8) against N inputs.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    pub unsafe fn multi_q8_0<const N: usize>(w: *const u8, x: &[f32], k: usize, out: &mut [f32]) {
        let mut acc = [_mm512_setzero_ps(); N];
        let xp = x.as_ptr();
        let l2 = super::prefetch_l2();
        for b in 0..k / 32 {
            let blk = w.add(b * 34);
            super::prefetch_near(blk.wrapping_add(PF_DIST) as *const i8, l2);
            let d = _mm512_cvtph_ps(_mm256_set1_epi16(std::ptr::read_unaligned(
                blk as *const i16,
            )));
            let w0 = _mm512_mul_ps(d, load_i8(blk.add(2), 0xffff));
            let w1 = _mm512_mul_ps(d, load_i8(blk.add(18), 0xffff));
            for t in 0..N {
                let xt = xp.add(t * k + b * 32);
                acc[t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xt), acc[t]);
                acc[t] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xt.add(16)), acc[t]);
            }
        }
        for t in 0..N {
            out[t] = _mm512_reduce_add_ps(acc[t]);
        }
    }

    macro_rules! cvt_conv {
        ($name:ident, $load:ident, $esize:expr) => {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
            pub unsafe fn $name(row: &[u8], out: &mut [f32]) {
                let n = out.len();
                assert!(row.len() >= n * $esize);
                let mut i = 0;
                while i < n {
                    let m = tail_mask(n - i);
                    _mm512_mask_storeu_ps(
                        out.as_mut_ptr().add(i),
                        m,
                        $load(row.as_ptr().add(i * $esize), m),
                    );
                    i += 16;
                }
            }
        };
    }
    cvt_conv!(cvt_f16_avx512, load_f16, 2);
    cvt_conv!(cvt_bf16_avx512, load_bf16, 2);

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn cvt_i8_avx512(row: &[u8], out: &mut [f32], scale: f32) {
        let n = out.len();
        assert!(row.len() >= n);
        let sv = _mm512_set1_ps(scale);
        let mut i = 0;
        while i < n {
            let m = tail_mask(n - i);
            let v = _mm512_mul_ps(load_i8(row.as_ptr().add(i), m), sv);
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), m, v);
            i += 16;
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn transpose_avx512(
        src: *const f32,
        src_stride: usize,
        nr: usize,
        nc: usize,
        dst: *mut f32,
        dst_stride: usize,
    ) {
        let lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        let vindex = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(src_stride as i32));
        let mut r = 0;
        while r < nr {
            let m = tail_mask(nr - r);
            let s = src.add(r * src_stride);
            for c in 0..nc {
                let v = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), m, vindex, s.add(c));
                _mm512_mask_storeu_ps(dst.add(c * dst_stride + r), m, v);
            }
            r += 16;
        }
    }

    /// Rows per micro-kernel tile.
    const GEMM_R: usize = 6;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn gemm_t_avx512(
        w: &[f32],
        rows: usize,
        xt: &[f32],
        npad: usize,
        k: usize,
        yt: *mut f32,
        scale: f32,
    ) {
        let mut r0 = 0;
        while r0 < rows {
            let mr = (rows - r0).min(GEMM_R);
            // The next 6 rows (one contiguous run), fetched into L2 while
            // this panel's first tile runs, so that its own first tile does
            // not wait on memory: step kk prefetches byte kk·(4·next rows),
            // and the run is k times that. (A tile of 6 rows and the next
            // panel prefetched: +14-16% over 12 × 32 tiles, whose 12 row
            // pointers LLVM kept in 12 separately incremented registers.)
            let step = (rows - r0 - mr).min(GEMM_R) * 4;
            let pf = (w.as_ptr().add((r0 + mr) * k) as *const i8, step);
            let mut t0 = 0;
            while t0 < npad {
                let first = t0 == 0 && step > 0;
                let args = Tile {
                    w,
                    r0,
                    mr,
                    xt,
                    npad,
                    k,
                    t0,
                    yt,
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
            r0 += GEMM_R;
        }
    }

    /// One tile's work: rows r0..r0+mr of w (k wide) against the inputs
    /// t0.. of xt (k × npad) into yt, and the next panel's prefetch (its
    /// start and bytes per k step).
    struct Tile<'a> {
        w: &'a [f32],
        r0: usize,
        mr: usize,
        xt: &'a [f32],
        npad: usize,
        k: usize,
        t0: usize,
        yt: *mut f32,
        scale: f32,
        pf: (*const i8, usize),
    }

    /// 6 rows (clamped to `mr`) × NT·16 inputs; with PF, prefetches the
    /// next panel. Returns the inputs done (NT·16).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const NT: usize, const PF: bool>(args: Tile<'_>) -> usize {
        let Tile {
            w,
            r0,
            mr,
            xt,
            npad,
            k,
            t0,
            yt,
            scale,
            pf,
        } = args;
        let wp: [*const f32; GEMM_R] =
            std::array::from_fn(|i| w.as_ptr().add((r0 + i.min(mr - 1)) * k));
        let xp = xt.as_ptr().add(t0);
        let mut acc = [[_mm512_setzero_ps(); NT]; GEMM_R];
        for kk in 0..k {
            if PF {
                _mm_prefetch::<_MM_HINT_T1>(pf.0.wrapping_add(kk * pf.1));
            }
            let xv: [__m512; NT] =
                std::array::from_fn(|j| _mm512_loadu_ps(xp.add(kk * npad + 16 * j)));
            for i in 0..GEMM_R {
                let wb = _mm512_set1_ps(*wp[i].add(kk));
                for j in 0..NT {
                    acc[i][j] = _mm512_fmadd_ps(wb, xv[j], acc[i][j]);
                }
            }
        }
        let sv = _mm512_set1_ps(scale);
        for i in 0..mr {
            for j in 0..NT {
                _mm512_storeu_ps(
                    yt.add((r0 + i) * npad + t0 + 16 * j),
                    _mm512_mul_ps(acc[i][j], sv),
                );
            }
        }
        NT * 16
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn prefetch_level_follows_the_vendor_unless_overridden() {
        assert!(prefetch_choice(None, true));
        assert!(!prefetch_choice(None, false));
        assert!(!prefetch_choice(Some("l1"), true));
        assert!(prefetch_choice(Some("l2"), false));
        assert!(
            prefetch_choice(Some("L2?"), true),
            "unknown values are ignored"
        );
        assert!(!prefetch_choice(Some(""), false));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn cpu_vendor_is_read_from_cpuid() {
        let amd = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("vendor_id"))
                .map(str::to_owned)
        });
        if let Some(line) = amd {
            let want = line.contains("AuthenticAMD") || line.contains("HygonGenuine");
            assert_eq!(cpu_vendor_is_amd(), want, "{line}");
        }
    }

    /// n values in [-0.5, 0.5) from a linear congruential generator.
    pub(crate) fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / (1 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// The batched kernels' lane sums, eight vectors at once, against
    /// `_mm512_reduce_add_ps` one vector at a time: the same bits, for
    /// values spread over many binades (where the order of the adds shows).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn reduce8_adds_in_the_order_of_reduce_add() {
        use std::arch::x86_64::*;
        if isa() != Isa::Avx512 {
            return;
        }
        let mut seed = 0x9e37_79b9u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for _ in 0..20_000 {
            let vals: Vec<f32> = (0..128)
                .map(|_| {
                    let r = next();
                    let m = (r >> 8) as f32 / (1 << 24) as f32 - 0.5;
                    m * 2f32.powi((r % 41) as i32 - 20)
                })
                .collect();
            // SAFETY: avx512f present (checked above); 128 values = 8 vectors.
            unsafe {
                let v: [__m512; 8] =
                    std::array::from_fn(|i| _mm512_loadu_ps(vals.as_ptr().add(16 * i)));
                let mut got = [0f32; 8];
                _mm256_storeu_ps(got.as_mut_ptr(), x86::reduce8(&v));
                for (i, g) in got.iter().enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        _mm512_reduce_add_ps(v[i]).to_bits(),
                        "{:?}",
                        &vals[16 * i..16 * i + 16]
                    );
                }
            }
        }
    }

    #[test]
    fn conv4_step_matches_the_scalar_window_bit_for_bit() {
        for n in [0, 1, 15, 16, 17, 33, 48, 100, 768] {
            let (x, w) = (data(n, 3), data(4 * n, 4));
            let mut st = data(4 * n, 5);
            let mut st_ref = st.clone();
            let (mut u, mut u_ref) = (vec![0.0; n], vec![0.0; n]);
            for step in 0..3 {
                let xs: Vec<f32> = x.iter().map(|v| v + step as f32).collect();
                conv4_step(&mut st, &w, &xs, &mut u);
                for j in 0..n {
                    let s = &mut st_ref[4 * j..4 * j + 4];
                    s.copy_within(1.., 0);
                    s[3] = xs[j];
                    let wk = &w[4 * j..4 * j + 4];
                    u_ref[j] = s[0] * wk[0] + s[1] * wk[1] + s[2] * wk[2] + s[3] * wk[3];
                }
                assert_eq!(st, st_ref, "n {n} step {step}: windows");
                assert_eq!(u, u_ref, "n {n} step {step}: outputs");
            }
        }
    }

    #[test]
    fn dot_paths_agree_with_f64_reference() {
        for n in [0, 1, 7, 15, 16, 17, 63, 64, 65, 100, 768, 1001] {
            let a = data(n, 1);
            let b = data(n, 2);
            let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            for got in [dot_f32(&a, &b), dot_portable(&a, &b)] {
                assert!(
                    (got as f64 - exact).abs() < 1e-5 * (n as f64).max(1.0),
                    "n {n}: {got} vs {exact}"
                );
            }
        }
    }

    /// The block transpose against its definition, for odd shapes and
    /// strides (partial 16-row gathers), writing nothing outside the block.
    #[test]
    fn transpose_moves_every_element_and_nothing_else() {
        for (nr, nc, ss, ds) in [
            (1, 1, 1, 1),
            (5, 3, 7, 6),
            (16, 9, 9, 20),
            (37, 21, 40, 50),
            (48, 32, 32, 3072),
        ] {
            let src = data(nr * ss, 5);
            let mut dst = vec![f32::NAN; nc * ds + nr];
            // SAFETY: src holds nr rows of ss ≥ nc; dst nc rows of ds ≥ nr.
            unsafe { transpose(src.as_ptr(), ss, nr, nc, dst.as_mut_ptr(), ds) };
            for (i, &v) in dst.iter().enumerate() {
                let (c, r) = (i / ds, i % ds);
                if c < nc && r < nr {
                    assert_eq!(
                        v.to_bits(),
                        src[r * ss + c].to_bits(),
                        "{nr}x{nc} at {r},{c}"
                    );
                } else {
                    assert!(v.is_nan(), "{nr}x{nc}: wrote outside the block at {i}");
                }
            }
        }
    }

    #[test]
    fn gemm_kernels_match_dots() {
        for (rows, n, k) in [
            (1, 1, 5),
            (5, 3, 17),
            (8, 9, 64),
            (13, 6, 100),
            (48, 7, 48),
            (25, 40, 33),
            // 64-wide AVX-512 tiles, with 16- and 32-wide tails, row tails
            // of every length, and the next-panel prefetch.
            (19, 64, 37),
            (14, 80, 20),
            (37, 112, 9),
            (6, 128, 70),
        ] {
            let w = data(rows * k, 3);
            let x = data(n * k, 4);
            let want = |t: usize, r: usize| {
                0.5 * dot_portable(&w[r * k..(r + 1) * k], &x[t * k..(t + 1) * k])
            };
            let ld = rows + 3;
            let mut got = vec![f32::NAN; n * ld];
            // SAFETY: got has n × ld elements.
            unsafe { gemm_dots(&w, rows, &x, n, k, got.as_mut_ptr(), ld, 0.5) };
            for t in 0..n {
                for r in 0..rows {
                    assert!(
                        (got[t * ld + r] - want(t, r)).abs() < 1e-5,
                        "{rows}x{n}x{k} at {t},{r}"
                    );
                }
            }
            if has_gemm_t() {
                let npad = n.div_ceil(16) * 16;
                let mut xt = vec![0.0; k * npad];
                for t in 0..n {
                    for kk in 0..k {
                        xt[kk * npad + t] = x[t * k + kk];
                    }
                }
                let mut yt = vec![f32::NAN; rows * npad + 5];
                // SAFETY: yt has rows × npad elements (+ a guard tail).
                unsafe { gemm_t(&w, rows, &xt, npad, k, yt.as_mut_ptr(), 0.5) };
                for t in 0..n {
                    for r in 0..rows {
                        assert!(
                            (yt[r * npad + t] - want(t, r)).abs() < 1e-5,
                            "gemm_t {rows}x{n}x{k} at {t},{r}"
                        );
                    }
                }
                assert!(
                    yt[rows * npad..].iter().all(|v| v.is_nan()),
                    "wrote past the block"
                );
            }
        }
    }

    #[test]
    fn vector_exp_is_accurate() {
        let mut xs: Vec<f32> = (0..20001).map(|i| -100.0 + i as f32 * 0.0094).collect();
        xs.extend([0.0, -0.0, 1e-8, -1e-8, 20.0, -87.0, -103.0]);
        let mut got = xs.clone();
        exp_slice(&mut got);
        let mut worst = 0.0f64;
        for (x, g) in xs.iter().zip(&got) {
            let want = (*x as f64).exp();
            if want > 1e-37 {
                worst = worst.max(((*g as f64) - want).abs() / want);
            } else {
                assert!(*g >= 0.0 && (*g as f64) < 1e-36);
            }
        }
        assert!(worst < 5e-7, "max relative error {worst}");
    }

    /// No exp result is subnormal on any tier: 0 below the flush point,
    /// the true value (within 5e-7) above it.
    #[test]
    fn exp_never_returns_subnormals() {
        let lo = crate::kernels::EXP_FLUSH_BELOW;
        let xs: Vec<f32> = (0..40001).map(|i| -104.0 + i as f32 * 0.0005).collect();
        let mut got = xs.clone();
        exp_slice(&mut got);
        for (&x, &g) in xs.iter().zip(&got) {
            let s = crate::kernels::exp_ftz(x);
            for v in [g, s] {
                assert!(!v.is_subnormal(), "exp({x}) = {v:e}");
                if x < lo {
                    assert_eq!(v, 0.0, "exp({x})");
                } else {
                    let want = (x as f64).exp();
                    assert!(((v as f64) - want).abs() <= 5e-7 * want, "exp({x}) = {v:e}");
                }
            }
        }
        // The scan's decay: a state multiplied by exp(dt·A) far below the
        // flush point becomes exactly its input term, not a subnormal.
        let a = vec![-100.0f32; 16];
        let (b, c) = (vec![0.0f32; 16], vec![1.0f32; 16]);
        let mut h = vec![1e-30f32; 16];
        scan_channel(&mut h, &a, &b, &c, 2.0, 1.0);
        assert!(h.iter().all(|&v| v == 0.0), "{h:?}");
    }

    #[test]
    fn scan_paths_agree() {
        for n in [1, 8, 16, 23, 51] {
            let a: Vec<f32> = data(n, 5).iter().map(|v| -(v.abs() * 8.0 + 0.1)).collect();
            let b = data(n, 6);
            let c = data(n, 7);
            let mut h1 = data(n, 8);
            let mut h2 = h1.clone();
            let y1 = scan_channel(&mut h1, &a, &b, &c, 0.37, 1.3);
            let y2 = scan_channel_portable(&mut h2, &a, &b, &c, 0.37, 1.3);
            assert!((y1 - y2).abs() < 1e-5, "n {n}: {y1} vs {y2}");
            for (p, q) in h1.iter().zip(&h2) {
                assert!((p - q).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn scan_channels_match_one_channel_at_a_time() {
        for ds in [16, 5] {
            let b = data(ds, 6);
            let c = data(ds, 7);
            for n in [1, 7, 16, 17, 40] {
                let a: Vec<f32> = data(n * ds, 5)
                    .iter()
                    .map(|v| -(v.abs() * 8.0 + 0.1))
                    .collect();
                let dt: Vec<f32> = data(n, 11).iter().map(|v| v.abs() * 0.5).collect();
                let (u, d) = (data(n, 12), data(n, 13));
                let mut h1 = data(n * ds, 8);
                let mut h2 = h1.clone();
                let mut y = vec![f32::NAN; n];
                scan_channels(&mut h1, &a, &b, &c, &dt, &u, &d, &mut y);
                for j in 0..n {
                    let s = j * ds..(j + 1) * ds;
                    let hj = &mut h2[s.clone()];
                    let want =
                        scan_channel_portable(hj, &a[s.clone()], &b, &c, dt[j], u[j]) + d[j] * u[j];
                    assert!(
                        (y[j] - want).abs() < 1e-5,
                        "ds {ds} n {n} ch {j}: {} vs {want}",
                        y[j]
                    );
                    for (p, q) in h1[s].iter().zip(hj.iter()) {
                        assert!((p - q).abs() < 1e-5);
                    }
                }
                // Any split of the channels gives the same bits.
                if n > 3 {
                    let mut h3 = data(n * ds, 8);
                    let mut y3 = vec![0.0; n];
                    let cut = 3 * ds;
                    let (ha, hb) = h3.split_at_mut(cut);
                    let (ya, yb) = y3.split_at_mut(3);
                    scan_channels(ha, &a[..cut], &b, &c, &dt[..3], &u[..3], &d[..3], ya);
                    scan_channels(hb, &a[cut..], &b, &c, &dt[3..], &u[3..], &d[3..], yb);
                    assert_eq!(y3, y, "split at channel 3");
                    assert_eq!(h3, h1);
                }
            }
        }
    }

    #[test]
    fn typed_dots_and_conversions_match_portable() {
        use half::{bf16, f16};
        for n in [1, 5, 16, 31, 32, 64, 100, 768] {
            let w = data(n, 9);
            let x = data(n, 10);
            let f16b: Vec<u8> = w
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect();
            let bf16b: Vec<u8> = w
                .iter()
                .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                .collect();
            let i8b: Vec<u8> = w.iter().map(|v| ((v * 254.0) as i8) as u8).collect();
            let mut q8row = 0.5f32.to_le_bytes().to_vec();
            q8row.extend(&i8b);
            q8row.resize(4 + n.div_ceil(4) * 4, 0);
            let mut cases = vec![
                (DType::F16, f16b),
                (DType::BF16, bf16b),
                (DType::I8, i8b),
                (DType::Q8Row, q8row),
            ];
            if n % 32 == 0 {
                let mut q = vec![];
                for blk in w.chunks(32) {
                    q.extend(f16::from_f32(0.01).to_le_bytes());
                    q.extend(blk.iter().map(|v| ((v * 200.0) as i8) as u8));
                }
                cases.push((DType::Q8_0, q));
            }
            for (dt, row) in cases {
                let mut want = vec![0.0; n];
                dequant_bytes(dt, &row, &mut want);
                let mut got = vec![0.0; n];
                convert_row(dt, &row, &mut got);
                assert_eq!(got, want, "{dt:?} n {n}");
                let d = dot_row(dt, &row, &x);
                let e = dot_portable(&want, &x);
                assert!(
                    (d - e).abs() < 1e-4 * (1.0 + e.abs()),
                    "{dt:?} n {n}: {d} vs {e}"
                );
            }
        }
    }

    #[test]
    fn vector_silu_and_softplus_are_accurate() {
        let xs: Vec<f32> = (0..40001)
            .map(|i| -60.0 + i as f32 * 0.003)
            .chain([0.0, 20.0, 20.0001, 19.999, 85.0, -100.0])
            .collect();
        let mut s1 = xs.clone();
        silu_slice(&mut s1);
        let mut s2 = xs.clone();
        softplus_slice(&mut s2);
        let (mut es, mut ep) = (0.0f64, 0.0f64);
        for (i, &x) in xs.iter().enumerate() {
            let xd = x as f64;
            let silu = xd / (1.0 + (-xd).exp());
            let sp = if x > 20.0 { xd } else { xd.exp().ln_1p() };
            es = es.max((s1[i] as f64 - silu).abs() / silu.abs().max(1e-30));
            ep = ep.max((s2[i] as f64 - sp).abs() / sp.abs().max(1e-30));
        }
        assert!(es < 2e-6, "silu max rel err {es}");
        assert!(ep < 2e-6, "softplus max rel err {ep}");
    }

    /// The short-row batch kernel against one dot per (row, input): every
    /// type it takes, k with and without a partial last chunk, row ranges
    /// starting and ending inside a group of 16, and the rows it must not
    /// touch left alone.
    #[test]
    fn short_rows_match_single_dots() {
        use half::{bf16, f16};
        if isa() != Isa::Avx512 {
            // Nothing to compare: it declines without AVX-512 (checked).
            let mut y = [0.0f32; 16];
            // SAFETY: y holds 2 × 8 outputs.
            let took = unsafe {
                short_rows_multi(
                    DType::F32,
                    &[0; 256],
                    32,
                    0..8,
                    &[0.0; 16],
                    2,
                    8,
                    1.0,
                    crate::kernels::Dest::Strided {
                        y: y.as_mut_ptr(),
                        ld: 8,
                    },
                )
            };
            assert!(!took);
            return;
        }
        for k in [5, 16, 48, 100, 160, SHORT_K] {
            let rows = 37;
            let w = data(rows * k, 21 + k as u32);
            let enc = |dt: DType, r: &[f32]| -> Vec<u8> {
                match dt {
                    DType::F32 => r.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    DType::F16 => r
                        .iter()
                        .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                        .collect(),
                    DType::BF16 => r
                        .iter()
                        .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                        .collect(),
                    DType::I8 => r.iter().map(|v| ((v * 254.0) as i8) as u8).collect(),
                    _ => {
                        let mut b = 0.25f32.to_le_bytes().to_vec();
                        b.extend(r.iter().map(|v| ((v * 254.0) as i8) as u8));
                        b
                    }
                }
            };
            for dt in [DType::F32, DType::F16, DType::BF16, DType::I8, DType::Q8Row] {
                // Rows `rb` bytes apart, a few bytes of padding after each.
                let rb = dt.row_bytes(k).unwrap() + 4;
                let mut bytes = vec![0u8; rows * rb];
                for r in 0..rows {
                    let e = enc(dt, &w[r * k..(r + 1) * k]);
                    bytes[r * rb..r * rb + e.len()].copy_from_slice(&e);
                }
                for n in [1, 2, 5, 8] {
                    let x = data(n * k, 40 + n as u32);
                    let (ld, range) = (rows + 2, 3..rows - 1);
                    let mut y = vec![f32::NAN; n * ld];
                    // Odd n (1, 5) write through one pointer per vector.
                    let dest = crate::kernels::vnni::tests::dest_for(&mut y, n, ld);
                    // SAFETY: t·ld + r < n·ld for t < n, r < rows.
                    let took = unsafe {
                        short_rows_multi(dt, &bytes, rb, range.clone(), &x, n, k, 0.5, dest)
                    };
                    assert!(took, "{dt:?} k {k}");
                    for t in 0..n {
                        for r in 0..ld {
                            let got = y[t * ld + r];
                            if !range.contains(&r) {
                                assert!(got.is_nan(), "{dt:?} k {k} wrote row {r}");
                                continue;
                            }
                            // Against f64 sums of the stored values: within
                            // f32 rounding of the terms' magnitudes.
                            let mut wr = vec![0.0f32; k];
                            convert_row(dt, &bytes[r * rb..(r + 1) * rb], &mut wr);
                            let xt = &x[t * k..(t + 1) * k];
                            let want: f64 = 0.5
                                * wr.iter()
                                    .zip(xt)
                                    .map(|(a, b)| *a as f64 * *b as f64)
                                    .sum::<f64>();
                            let mag: f64 = wr
                                .iter()
                                .zip(xt)
                                .map(|(a, b)| (*a as f64 * *b as f64).abs())
                                .sum();
                            assert!(
                                (got as f64 - want).abs() <= 1e-6 * mag + 1e-30,
                                "{dt:?} k {k} n {n} t {t} row {r}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
        // Out of its range: declines, writes nothing.
        let mut y = [f32::NAN; 16];
        for (k, n, dt) in [
            (SHORT_K + 1, 2, DType::F32),
            (8, 0, DType::F32),
            (8, MULTI_MAX + 1, DType::F32),
            (32, 2, DType::Q8_0),
        ] {
            let bytes = vec![0u8; 8 * dt.row_bytes(k).unwrap()];
            let x = vec![0.0; n * k];
            // SAFETY: nothing is written when it declines.
            let took = unsafe {
                short_rows_multi(
                    dt,
                    &bytes,
                    dt.row_bytes(k).unwrap(),
                    0..1,
                    &x,
                    n,
                    k,
                    1.0,
                    crate::kernels::Dest::Strided {
                        y: y.as_mut_ptr(),
                        ld: 1,
                    },
                )
            };
            assert!(!took && y.iter().all(|v| v.is_nan()));
        }
    }

    #[test]
    fn multi_row_dots_match_single_dots() {
        use half::{bf16, f16};
        for k in [32, 48, 100, 768, 800] {
            let w = data(k, 11);
            let f16b: Vec<u8> = w
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect();
            let bf16b: Vec<u8> = w
                .iter()
                .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                .collect();
            let f32b: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            let i8b: Vec<u8> = w.iter().map(|v| ((v * 254.0) as i8) as u8).collect();
            let mut q8row = 0.25f32.to_le_bytes().to_vec();
            q8row.extend(&i8b);
            let mut cases = vec![
                (DType::F32, f32b),
                (DType::F16, f16b),
                (DType::BF16, bf16b),
                (DType::I8, i8b),
                (DType::Q8Row, q8row),
            ];
            if k % 32 == 0 {
                let mut q = vec![];
                for blk in w.chunks(32) {
                    q.extend(f16::from_f32(0.02).to_le_bytes());
                    q.extend(blk.iter().map(|v| ((v * 200.0) as i8) as u8));
                }
                cases.push((DType::Q8_0, q));
            }
            for n in 2..=MULTI_MAX {
                let x = data(n * k, 12 + n as u32);
                for (dt, row) in &cases {
                    // The chunked fallback (AVX2 and portable CPUs) first.
                    let mut chunked = vec![0.0; n];
                    multi_chunked(*dt, row, &x, n, k, &mut chunked);
                    for t in 0..n {
                        let want = dot_row(*dt, row, &x[t * k..(t + 1) * k]);
                        assert!(
                            (chunked[t] - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "chunked {dt:?} k {k} n {n} t {t}"
                        );
                    }
                    let mut out = vec![0.0; n];
                    assert!(dot_rows_multi(*dt, row, &x, n, k, &mut out));
                    for t in 0..n {
                        let want = dot_row(*dt, row, &x[t * k..(t + 1) * k]);
                        assert!(
                            (out[t] - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "{dt:?} k {k} n {n} t {t}"
                        );
                    }
                    // Two and three rows at once (each a different row,
                    // `stride` bytes apart): each bit-identical to its
                    // one-row result.
                    let stride = row.len() + 6;
                    let mut block = Vec::new();
                    let mut want = Vec::new();
                    let mut next = row.clone();
                    for _ in 0..3 {
                        let mut one = vec![0.0; n];
                        assert!(dot_rows_multi(*dt, &next, &x, n, k, &mut one));
                        want.push(one);
                        block.extend(&next);
                        block.resize(block.len() + stride - row.len(), 0);
                        // The next row: the same elements rotated by one.
                        match dt {
                            DType::F32 => next.rotate_left(4),
                            DType::F16 | DType::BF16 => next.rotate_left(2),
                            DType::Q8_0 => next.rotate_left(34),
                            DType::Q8Row => next[4..].rotate_left(1),
                            _ => next.rotate_left(1),
                        }
                    }
                    assert_eq!(want[0], out);
                    let mut two = [[0.0f32; 8]; 2];
                    let mut three = [[0.0f32; 8]; 3];
                    let has_two = dot_rows_multi_r(*dt, &block, stride, &x, n, k, &mut two);
                    let has_three = dot_rows_multi_r(*dt, &block, stride, &x, n, k, &mut three);
                    // The multi-row kernels are AVX-512 only; Q8_0 has no
                    // three-row one.
                    assert_eq!(has_two, isa() == Isa::Avx512, "{dt:?}");
                    assert_eq!(has_three, has_two && *dt != DType::Q8_0, "{dt:?}");
                    for t in 0..n {
                        for j in 0..3 {
                            let w = want[j][t].to_bits();
                            if has_two && j < 2 {
                                assert_eq!(two[j][t].to_bits(), w, "{dt:?} k {k} n {n} row {j}/2");
                            }
                            if has_three {
                                assert_eq!(
                                    three[j][t].to_bits(),
                                    w,
                                    "{dt:?} k {k} n {n} row {j}/3"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

//! 8-bit × 8-bit products with AVX-512 VNNI, for 8-bit weights (q8_row and
//! Q8_0).
//!
//! The f32 path converts every 8-bit weight to f32 before its multiply, so
//! 8-bit weights cost as much arithmetic as f32 ones. Here each product's
//! input is quantized once to int8 in blocks of 32 (a scale per block, round
//! to nearest even, like llama.cpp's Q8 activations), and `vpdpbusd`
//! multiplies 64 weight/input byte pairs in one instruction with exact
//! integer sums; each block's sum is then scaled in f32.
//!
//! Two kernels share the quantized input ([`QuantX`]):
//! - [`dot_i8`], one q8_row row against one input (decode): 64 weights per
//!   `vpdpbusd`, the register's two halves being two blocks.
//! - [`gemm`], rows × inputs (prompts, batched decode): 32 rows are first
//!   repacked so that a register holds 4 consecutive weights of 16 rows, and
//!   each `vpdpbusd` adds 4 products to 16 outputs of one input; a block of
//!   32 inputs is 8 of them into integer accumulators, then one f32 scale.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, so the weights are offset
//! by 128 (`w ^ 0x80` = w + 128 as u8, exact for every int8) and the
//! products of that offset, 128·Σq, are subtracted in the integer domain:
//! the block sums are exact. Both kernels compute the same block sums, so
//! they agree to f32 rounding of the scaled sums.
//!
//! This changes the numerics beyond reordering sums: the input is rounded to
//! 8 bits (error ≤ 1/254 of each block's largest value). The model-level
//! switch is `Model::int8_vnni` (on by default, `MAMBA_INT8_VNNI=0` turns
//! it off); `MAMBA_ISA=avx512` (or lower) disables these kernels.

#[cfg(any(target_arch = "x86_64", test))]
use super::convert::q8row_scale;
use super::Dest;
use crate::model::{DType, Tensor};
use std::sync::OnceLock;

/// Inputs per quantization block (one Q8_0 block).
pub const QBLOCK: usize = 32;

/// True when the VNNI kernel can run: AVX-512 with VNNI and BW, and not
/// capped by `MAMBA_ISA` (any cap turns it off).
pub fn has_vnni() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            super::simd::avx512_extension(|| {
                is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512bw")
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// Whether [`gemm`] takes weights of this type.
pub fn gemm_dtype(d: DType) -> bool {
    matches!(d, DType::Q8Row | DType::Q8_0)
}

/// Whether a [`QuantX`] of n vectors also keeps the interleaved copy
/// (`qi`) that the panel kernel's batch tile reads: 5 to 8 vectors.
pub(super) fn interleaves(n: usize) -> bool {
    (5..=8).contains(&n)
}

/// n input vectors quantized to int8 in blocks of [`QBLOCK`].
#[derive(Default, Clone)]
pub struct QuantX {
    /// Vectors.
    pub n: usize,
    /// Inputs per vector (before padding).
    pub k: usize,
    /// k rounded up to 64 (one register of int8): the stride of `q`.
    pub(super) kp: usize,
    /// n × kp (buffers may be longer: see [`QuantX::prepare`]): round(x / d),
    /// zero beyond k.
    pub(super) q: Vec<i8>,
    /// n × kp/32: each block's scale d = max|x| / 127.
    pub(super) d: Vec<f32>,
    /// n × kp/32: 128 · Σ q over each block (the weight offset's share).
    pub(super) corr_b: Vec<i32>,
    /// n × kp/4: the scale of each 4-byte lane (its block's d).
    dl: Vec<f32>,
    /// n × kp/4: 128 · Σ q over each 4-byte lane.
    corr_l: Vec<i32>,
    /// For 5 ≤ n ≤ 8 (batches; the panel kernel's one-pass tile): the same
    /// values interleaved by block, 10·n u32 per block b of 32 inputs: the n
    /// vectors' 32 bytes of q, then their -corr_b, then their d (f32 bits).
    pub(super) qi: Vec<u32>,
}

impl QuantX {
    /// Quantizes one vector `x` (reusing this value's buffers).
    pub fn quantize(&mut self, x: &[f32]) {
        self.quantize_rows(x, 1)
    }

    /// Quantizes `n` vectors, x being n × k row-major. Requires [`has_vnni`].
    /// Allocates only when the buffers must grow.
    pub fn quantize_rows(&mut self, x: &[f32], n: usize) {
        assert!(n >= 1 && x.len().is_multiple_of(n));
        let k = x.len() / n;
        let parts = self.prepare(n, k);
        for t in 0..n {
            // SAFETY: x holds n rows of k; this thread alone writes.
            unsafe { parts.quantize(t, 0, &x[t * k..(t + 1) * k]) };
        }
    }

    /// Sizes this value for `n` vectors of `k` inputs (allocating only when
    /// the buffers must grow) and returns the raw views through which
    /// threads fill it, each its own vectors and column ranges
    /// ([`QuantParts::quantize`]). Requires [`has_vnni`].
    ///
    /// The buffers only grow: a decode step alternates between d_model and
    /// d_inner inputs, and shrinking then regrowing them zero-filled ~40 KB
    /// per layer of a batch-8 step (3 µs of the caller's time while the
    /// other threads waited). Quantizing writes every element in n × kp.
    pub fn prepare(&mut self, n: usize, k: usize) -> QuantParts {
        fn grow<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
            if v.len() < len {
                v.resize(len, T::default());
            }
        }
        assert!(has_vnni(), "QuantX needs AVX-512 VNNI");
        assert!(n >= 1);
        let kp = k.div_ceil(64) * 64;
        self.n = n;
        self.k = k;
        self.kp = kp;
        grow(&mut self.q, n * kp);
        grow(&mut self.d, n * kp / 32);
        grow(&mut self.corr_b, n * kp / 32);
        grow(&mut self.dl, n * kp / 4);
        grow(&mut self.corr_l, n * kp / 4);
        let interleave = interleaves(n);
        if interleave {
            grow(&mut self.qi, 10 * n * kp / 32);
        }
        QuantParts {
            n,
            k,
            kp,
            q: self.q.as_mut_ptr(),
            d: self.d.as_mut_ptr(),
            corr_b: self.corr_b.as_mut_ptr(),
            dl: self.dl.as_mut_ptr(),
            corr_l: self.corr_l.as_mut_ptr(),
            qi: if interleave {
                self.qi.as_mut_ptr()
            } else {
                std::ptr::null_mut()
            },
        }
    }
}

/// Raw views of a [`QuantX`]'s buffers, from [`QuantX::prepare`]: valid
/// until that QuantX is next prepared, quantized or dropped. Each call of
/// [`QuantParts::quantize`] writes only what belongs to its vector and its
/// 64-column chunks, so threads can fill disjoint parts at once (decode
/// quantizes each chunk of the scan's output on the thread that made it).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Clone, Copy)]
pub struct QuantParts {
    n: usize,
    k: usize,
    kp: usize,
    q: *mut i8,
    d: *mut f32,
    corr_b: *mut i32,
    dl: *mut f32,
    corr_l: *mut i32,
    /// Null unless 5 ≤ n ≤ 8 (no interleaved copy otherwise).
    qi: *mut u32,
}
// SAFETY: plain pointers into buffers that outlive their use (the contract
// of `prepare`); concurrent writers touch disjoint elements.
unsafe impl Send for QuantParts {}
unsafe impl Sync for QuantParts {}

impl QuantParts {
    /// Quantizes columns start..start + x.len() of vector t, whose
    /// inputs there are `x`: the same values [`QuantX::quantize_rows`]
    /// gives them.
    ///
    /// # Safety
    /// The QuantX these views came from is alive and not prepared,
    /// quantized or read since; no other thread writes vector t's chunks
    /// in that range at the same time. Panics unless t < n and the range
    /// starts on a multiple of 64 and ends on one or at k.
    pub unsafe fn quantize(&self, t: usize, start: usize, x: &[f32]) {
        let cols = start..start + x.len();
        assert!(t < self.n && cols.end <= self.k);
        assert!(
            cols.start.is_multiple_of(64) && (cols.end.is_multiple_of(64) || cols.end == self.k)
        );
        let (n, k, kp) = (self.n, self.k, self.kp);
        let nb = kp / 32;
        #[cfg(target_arch = "x86_64")]
        for c in cols.start / 64..cols.end.div_ceil(64) {
            let len = k.saturating_sub(c * 64).min(64);
            // SAFETY: has_vnni (checked by prepare); the pointers address
            // chunk c of vector t in buffers sized by prepare; len inputs
            // remain in x from column 64c (the range's chunks).
            x86::quantize64(
                x.as_ptr().add(c * 64 - start),
                len,
                self.q.add(t * kp + c * 64),
                self.d.add(t * nb + 2 * c),
                self.corr_b.add(t * nb + 2 * c),
                self.dl.add(t * kp / 4 + 16 * c),
                self.corr_l.add(t * kp / 4 + 16 * c),
            );
            if !self.qi.is_null() {
                // Blocks 2c, 2c + 1 of vector t in the interleaved copy:
                // 32 bytes at u32 [10·n·b + 8t], -corr_b at [.. + 8n + t],
                // d at [.. + 9n + t].
                for b in 2 * c..2 * c + 2 {
                    let at = self.qi.add(10 * n * b);
                    std::ptr::copy_nonoverlapping(
                        self.q.add(t * kp + 32 * b),
                        at.add(8 * t) as *mut i8,
                        32,
                    );
                    *at.add(8 * n + t) = (-*self.corr_b.add(t * nb + b)) as u32;
                    *at.add(9 * n + t) = (*self.d.add(t * nb + b)).to_bits();
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (n, k, kp, nb, t, x, cols);
    }
}

/// W.scale · W[r] · x_t for one row of a q8_row or Q8_0 tensor
/// ([`gemm_dtype`]) with `x.k` columns: the decode kernel. Requires
/// [`has_vnni`].
pub fn dot_row(w: &Tensor, r: usize, x: &QuantX, t: usize) -> f32 {
    assert!(has_vnni() && gemm_dtype(w.dtype) && x.k == w.cols && t < x.n);
    let row = w.row(r);
    #[cfg(target_arch = "x86_64")]
    {
        if w.dtype == DType::Q8_0 {
            // SAFETY: a Q8_0 row holds k/32 blocks; t < x.n (asserted).
            return w.scale * unsafe { x86::dot_vnni::<true>(row.as_ptr(), x, t) };
        }
        let d = q8row_scale(row);
        // SAFETY: a q8_row row holds its scale then k int8 weights.
        w.scale * d * unsafe { x86::dot_vnni::<false>(row[4..].as_ptr(), x, t) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = row;
        unreachable!("VNNI is x86-only")
    }
}

/// y.at(t, r) = W.scale · W[r] · x_t for r in `rows` and every vector t of
/// `x`, W being q8_row or Q8_0 ([`gemm_dtype`]) with `x.k` columns.
/// Requires [`has_vnni`].
///
/// # Safety
/// `y` valid for writes at every `y.at(t, r)`, which no other thread touches.
pub unsafe fn gemm(w: &Tensor, rows: std::ops::Range<usize>, x: &QuantX, y: Dest) {
    assert!(has_vnni() && gemm_dtype(w.dtype) && x.k == w.cols && rows.end <= w.rows);
    #[cfg(target_arch = "x86_64")]
    {
        x86::gemm(w, rows, x, y)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (w, rows, x, y);
        unreachable!("VNNI is x86-only")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{q8row_scale, Dest, QuantX};
    use crate::kernels::simd::{prefetch_l2, prefetch_near, PF_DIST};
    use crate::model::{DType, Tensor};
    use std::arch::x86_64::*;

    /// Quantizes `len` (0..=64) inputs at x as two blocks of 32: writes 64
    /// bytes of q (zeros past len), 2 block scales and corrections, and 16
    /// lane scales and corrections.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn quantize64(
        x: *const f32,
        len: usize,
        q: *mut i8,
        d: *mut f32,
        corr_b: *mut i32,
        dl: *mut f32,
        corr_l: *mut i32,
    ) {
        let mut ds = [0.0f32; 2];
        let mut bytes = [_mm_setzero_si128(); 4];
        for (h, dh) in ds.iter_mut().enumerate() {
            let m = |o: usize| -> __mmask16 {
                let n = len.saturating_sub(32 * h + o).min(16);
                ((1u32 << n) - 1) as __mmask16
            };
            let a0 = _mm512_maskz_loadu_ps(m(0), x.wrapping_add(32 * h));
            let a1 = _mm512_maskz_loadu_ps(m(16), x.wrapping_add(32 * h + 16));
            let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a0), _mm512_abs_ps(a1)));
            let (dv, id) = if amax > 0.0 && amax.is_finite() {
                (amax / 127.0, 127.0 / amax)
            } else {
                (0.0, 0.0)
            };
            *dh = dv;
            *d.add(h) = dv;
            // Round to nearest even (the default MXCSR mode), saturate to i8.
            let i0 = _mm512_cvtps_epi32(_mm512_mul_ps(a0, _mm512_set1_ps(id)));
            let i1 = _mm512_cvtps_epi32(_mm512_mul_ps(a1, _mm512_set1_ps(id)));
            bytes[2 * h] = _mm512_cvtsepi32_epi8(i0);
            bytes[2 * h + 1] = _mm512_cvtsepi32_epi8(i1);
        }
        // The 64 bytes joined in a register (reading back four 16-byte
        // stores as one 64-byte load would stall on store forwarding).
        let qv = _mm512_inserti32x4::<3>(
            _mm512_inserti32x4::<2>(
                _mm512_inserti32x4::<1>(_mm512_castsi128_si512(bytes[0]), bytes[1]),
                bytes[2],
            ),
            bytes[3],
        );
        _mm512_storeu_si512(q as *mut _, qv);
        // 128 · Σ q per 4-byte lane: vpdpbusd against bytes of 128.
        let lanes = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(-128), qv);
        _mm512_storeu_si512(corr_l as *mut _, lanes);
        *corr_b = _mm512_mask_reduce_add_epi32(0x00ff, lanes);
        *corr_b.add(1) = _mm512_mask_reduce_add_epi32(0xff00, lanes);
        let dv = _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(ds[0]), _mm512_set1_ps(ds[1]));
        _mm512_storeu_ps(dl, dv);
    }

    /// 64 inputs (chunk c of vector t): exact Σ w·q per 4-byte lane, scaled.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn chunk(w: *const u8, x: &QuantX, t: usize, c: usize, acc: __m512) -> __m512 {
        let left = x.k - c * 64;
        let wv = if left >= 64 {
            _mm512_loadu_si512(w.add(c * 64) as *const _)
        } else {
            // Masked-off weights read as 0; their inputs are padding zeros.
            _mm512_maskz_loadu_epi8((1u64 << left) - 1, w.add(c * 64) as *const i8)
        };
        let (s, at) = lane_sums(wv, x, t, c);
        _mm512_fmadd_ps(
            _mm512_cvtepi32_ps(s),
            _mm512_loadu_ps(x.dl.as_ptr().add(at / 4)),
            acc,
        )
    }

    /// Exact Σ w·q per 4-byte lane of 64 int8 weights `wv` against chunk c
    /// of vector t; and the chunk's offset in `x.q`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn lane_sums(wv: __m512i, x: &QuantX, t: usize, c: usize) -> (__m512i, usize) {
        let wu = _mm512_xor_si512(wv, _mm512_set1_epi8(-128));
        let at = t * x.kp + c * 64;
        let q = _mm512_loadu_si512(x.q.as_ptr().add(at) as *const _);
        let s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wu, q);
        let corr = _mm512_loadu_si512(x.corr_l.as_ptr().add(at / 4) as *const _);
        (_mm512_sub_epi32(s, corr), at)
    }

    /// Chunk c (blocks 2c and 2c+1) of a Q8_0 row against vector t.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
    #[inline]
    unsafe fn chunk_q8_0(row: *const u8, x: &QuantX, t: usize, c: usize, acc: __m512) -> __m512 {
        let b0 = row.add(2 * c * 34);
        let lo = _mm256_loadu_si256(b0.add(2) as *const _);
        let s0 = u16::from_le_bytes([*b0, *b0.add(1)]) as i32;
        // The second block is absent when k is an odd number of blocks:
        // weight 0, scale 0 (its inputs are padding zeros anyway).
        let (hi, s1) = if (2 * c + 1) * 32 < x.k {
            let b1 = b0.add(34);
            (
                _mm256_loadu_si256(b1.add(2) as *const _),
                u16::from_le_bytes([*b1, *b1.add(1)]) as i32,
            )
        } else {
            (_mm256_setzero_si256(), 0)
        };
        let wv = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        let (s, at) = lane_sums(wv, x, t, c);
        // Lanes 0-7 take block 2c's scale, 8-15 block 2c+1's.
        let sc = _mm_cvtph_ps(_mm_cvtsi32_si128(s0 | (s1 << 16)));
        let idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        let ws = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(sc));
        let dl = _mm512_loadu_ps(x.dl.as_ptr().add(at / 4));
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(ws, dl), acc)
    }

    /// One row against vector t, in two accumulators: a q8_row row's int8
    /// weights (after its scale) at `w`, or with `Q80` a Q8_0 row (34 bytes
    /// per 32 weights).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
    pub unsafe fn dot_vnni<const Q80: bool>(w: *const u8, x: &QuantX, t: usize) -> f32 {
        let nc = x.k.div_ceil(64);
        let step: usize = if Q80 { 68 } else { 64 };
        // (A macro, not a closure: the kernels must inline into this loop.)
        macro_rules! one {
            ($c:expr, $acc:expr) => {
                if Q80 {
                    chunk_q8_0(w, x, t, $c, $acc)
                } else {
                    chunk(w, x, t, $c, $acc)
                }
            };
        }
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut c = 0;
        let l2 = prefetch_l2();
        while c + 2 <= nc {
            for l in 0..step.div_ceil(32) {
                prefetch_near(w.wrapping_add(c * step + PF_DIST + 64 * l) as *const i8, l2);
            }
            acc0 = one!(c, acc0);
            acc1 = one!(c + 1, acc1);
            c += 2;
        }
        if c < nc {
            acc0 = one!(c, acc0);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }

    /// Inputs per repacked panel: 32 rows × 512 bytes = 16 KiB, L1-resident
    /// while every input vector passes over it.
    const PIECE: usize = 512;

    #[repr(align(64))]
    struct Panel([u8; 32 * PIECE]);

    /// Transposes 16 rows of 16 dwords: out[c] holds dword c of every row.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn transpose16(r: &[__m512i; 16]) -> [__m512i; 16] {
        // In each 128-bit lane: pairs of rows interleaved by dword, then
        // quads by qword; then lanes regrouped across registers.
        let a: [__m512i; 16] = std::array::from_fn(|i| {
            let (x, y) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_epi32(x, y)
            } else {
                _mm512_unpackhi_epi32(x, y)
            }
        });
        // b[4i + c]: in lane L, rows 4i..4i+3 of column 4L + c.
        let b: [__m512i; 16] = std::array::from_fn(|j| {
            let (i, c) = (j / 4, j % 4);
            let (x, y) = (a[4 * i + c / 2], a[4 * i + 2 + c / 2]);
            if c % 2 == 0 {
                _mm512_unpacklo_epi64(x, y)
            } else {
                _mm512_unpackhi_epi64(x, y)
            }
        });
        let mut out = [_mm512_setzero_si512(); 16];
        for c in 0..4 {
            let (b0, b1, b2, b3) = (b[c], b[4 + c], b[8 + c], b[12 + c]);
            let lo01 = _mm512_shuffle_i32x4::<0x44>(b0, b1);
            let hi01 = _mm512_shuffle_i32x4::<0xee>(b0, b1);
            let lo23 = _mm512_shuffle_i32x4::<0x44>(b2, b3);
            let hi23 = _mm512_shuffle_i32x4::<0xee>(b2, b3);
            out[c] = _mm512_shuffle_i32x4::<0x88>(lo01, lo23);
            out[4 + c] = _mm512_shuffle_i32x4::<0xdd>(lo01, lo23);
            out[8 + c] = _mm512_shuffle_i32x4::<0x88>(hi01, hi23);
            out[12 + c] = _mm512_shuffle_i32x4::<0xdd>(hi01, hi23);
        }
        out
    }

    /// Copies rows r0..r0+nr (nr ≤ `fill` ≤ 32), inputs k0..k0+kl, into `p`
    /// as p[(k4·32 + i)·4 + j] = W[r0+i][k0 + 4·k4 + j] + 128 (as u8), rows
    /// past nr and inputs past the row as weight 0; for Q8_0, the block
    /// scales into wsc[b·32 + i]. 64 bytes of 16 rows at a time, transposed
    /// in registers.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,f16c")]
    #[inline]
    unsafe fn repack(
        w: &Tensor,
        r0: usize,
        nr: usize,
        k0: usize,
        kl: usize,
        p: &mut Panel,
        wsc: &mut [f32; PIECE],
        fill: usize,
        pf_state: &mut usize,
    ) {
        let bytes = w.bytes().as_ptr();
        let rb = w.row_bytes();
        let k = w.cols;
        let q80 = w.dtype == DType::Q8_0;
        let off = _mm512_set1_epi8(-128);
        // Bytes of weights per row: q8_row rows are padded to 4 bytes
        // (padding weights meet zero inputs); Q8_0 rows hold k.
        let kb_row = if q80 { k } else { k.div_ceil(4) * 4 };
        // Prefetching the next group (one contiguous run of memory, never
        // past the tensor), spread evenly over the repack steps of all the
        // group's pieces: `pf_at` carries on from piece to piece.
        let next = (r0 + 32).min(w.rows);
        let pf = bytes.add(next * rb);
        let pf_lines = ((w.rows - next).min(32) * rb).div_ceil(64);
        let steps = (fill / 16) * (k.div_ceil(64));
        let pf_per_step = pf_lines.div_ceil(steps.max(1));
        let mut pf_at = *pf_state;
        let l2 = prefetch_l2();
        for g in 0..fill / 16 {
            for j in 0..kl / 64 {
                let kk = k0 + 64 * j;
                let mut rows = [_mm512_setzero_si512(); 16];
                // Q8_0: the f16 scales of the two blocks, per row (0 past
                // nr rows or past the row).
                let mut sc = [[0u16; 16]; 2];
                for (ii, rv) in rows.iter_mut().enumerate() {
                    let i = 16 * g + ii;
                    let v = if i >= nr || kk >= kb_row {
                        _mm512_setzero_si512()
                    } else if q80 {
                        let blk = bytes.add((r0 + i) * rb + kk / 32 * 34);
                        sc[0][ii] = (blk as *const u16).read_unaligned();
                        let lo = _mm256_loadu_si256(blk.add(2) as *const _);
                        let hi = if kk + 32 < k {
                            sc[1][ii] = (blk.add(34) as *const u16).read_unaligned();
                            _mm256_loadu_si256(blk.add(36) as *const _)
                        } else {
                            _mm256_setzero_si256()
                        };
                        _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)
                    } else {
                        let src = bytes.add((r0 + i) * rb + 4 + kk);
                        let left = kb_row - kk;
                        if left >= 64 {
                            _mm512_loadu_si512(src as *const _)
                        } else {
                            _mm512_maskz_loadu_epi8((1u64 << left) - 1, src as *const i8)
                        }
                    };
                    *rv = _mm512_xor_si512(v, off);
                }
                for _ in 0..pf_per_step {
                    if pf_at < pf_lines {
                        prefetch_near(pf.add(pf_at * 64) as *const i8, l2);
                        pf_at += 1;
                    }
                }
                if q80 {
                    // Blocks 2j and 2j+1 of the piece.
                    for (h, v) in sc.iter().enumerate() {
                        let f = _mm512_cvtph_ps(_mm256_loadu_si256(v.as_ptr() as *const _));
                        _mm512_storeu_ps(wsc.as_mut_ptr().add((2 * j + h) * 32 + 16 * g), f);
                    }
                }
                let cols = transpose16(&rows);
                for (c, v) in cols.iter().enumerate() {
                    let k4 = 16 * j + c;
                    _mm512_store_si512(p.0.as_mut_ptr().add((k4 * 32 + 16 * g) * 4) as *mut _, *v);
                }
            }
        }
        *pf_state = pf_at;
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn gemm(w: &Tensor, rows: std::ops::Range<usize>, x: &QuantX, y: Dest) {
        let panel = &mut Panel([0; 32 * PIECE]);
        let mut wsc = [0.0f32; PIECE];
        let mut rsc = [0.0f32; 32];
        let q80 = w.dtype == DType::Q8_0;
        let (bytes, rb) = (w.bytes(), w.row_bytes());
        let mut r0 = rows.start;
        while r0 < rows.end {
            let nr = (rows.end - r0).min(32);
            let fill = if nr > 16 { 32 } else { 16 };
            for (i, s) in rsc.iter_mut().enumerate() {
                *s = if i >= nr {
                    0.0
                } else if q80 {
                    w.scale
                } else {
                    let row = &bytes[(r0 + i) * rb..];
                    w.scale * q8row_scale(row)
                };
            }
            let mut k0 = 0;
            let mut pf_at = 0;
            while k0 < x.kp {
                let kl = (x.kp - k0).min(PIECE);
                repack(w, r0, nr, k0, kl, panel, &mut wsc, fill, &mut pf_at);
                let (first, last) = (k0 == 0, k0 + kl == x.kp);
                let a = Args {
                    p: panel,
                    wsc: &wsc,
                    rsc: &rsc,
                    x,
                    k0,
                    kl,
                    first,
                    last,
                    y,
                    r0,
                    nr,
                };
                let mut t0 = 0;
                while t0 < x.n {
                    let nt = (x.n - t0).min(4);
                    macro_rules! go {
                        ($q:expr) => {
                            match (nt, fill) {
                                (4, 32) => tile::<4, 2, $q>(&a, t0),
                                (3, 32) => tile::<3, 2, $q>(&a, t0),
                                (2, 32) => tile::<2, 2, $q>(&a, t0),
                                (1, 32) => tile::<1, 2, $q>(&a, t0),
                                (4, _) => tile::<4, 1, $q>(&a, t0),
                                (3, _) => tile::<3, 1, $q>(&a, t0),
                                (2, _) => tile::<2, 1, $q>(&a, t0),
                                _ => tile::<1, 1, $q>(&a, t0),
                            }
                        };
                    }
                    if q80 {
                        go!(true)
                    } else {
                        go!(false)
                    }
                    t0 += nt;
                }
                k0 += kl;
            }
            r0 += nr;
        }
    }

    struct Args<'a> {
        p: &'a Panel,
        wsc: &'a [f32; PIECE],
        rsc: &'a [f32; 32],
        x: &'a QuantX,
        k0: usize,
        kl: usize,
        first: bool,
        last: bool,
        y: Dest,
        r0: usize,
        nr: usize,
    }

    /// Outputs of inputs t0..t0+NT for the panel's 16·RG rows, over the
    /// panel's inputs: 8 `vpdpbusd` per block into integer accumulators,
    /// then one scale (the input block's, times the weight block's for Q8_0).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn tile<const NT: usize, const RG: usize, const Q80: bool>(a: &Args, t0: usize) {
        let x = a.x;
        let xnb = x.kp / 32;
        let masks: [__mmask16; RG] = std::array::from_fn(|g| {
            let n = a.nr.saturating_sub(16 * g).min(16);
            ((1u32 << n) - 1) as __mmask16
        });
        let out = |t: usize, g: usize| a.y.at(t0 + t, a.r0 + 16 * g);
        let mut facc = [[_mm512_setzero_ps(); RG]; NT];
        if !a.first {
            for (t, f) in facc.iter_mut().enumerate() {
                for g in 0..RG {
                    f[g] = _mm512_maskz_loadu_ps(masks[g], out(t, g));
                }
            }
        }
        let pp = a.p.0.as_ptr();
        for b in 0..a.kl / 32 {
            let blk = a.k0 / 32 + b;
            let mut iacc: [[__m512i; RG]; NT] = std::array::from_fn(|t| {
                [_mm512_set1_epi32(-*x.corr_b.get_unchecked((t0 + t) * xnb + blk)); RG]
            });
            for s in 0..8 {
                let k4 = b * 8 + s;
                let wv: [__m512i; RG] = std::array::from_fn(|g| {
                    _mm512_load_si512(pp.add((k4 * 32 + 16 * g) * 4) as *const _)
                });
                for (t, ia) in iacc.iter_mut().enumerate() {
                    let xq = x.q.as_ptr().add((t0 + t) * x.kp + a.k0 + 4 * k4) as *const i32;
                    let xb = _mm512_set1_epi32(xq.read_unaligned());
                    for g in 0..RG {
                        ia[g] = _mm512_dpbusd_epi32(ia[g], wv[g], xb);
                    }
                }
            }
            for (t, f) in facc.iter_mut().enumerate() {
                let dx = _mm512_set1_ps(*x.d.get_unchecked((t0 + t) * xnb + blk));
                for g in 0..RG {
                    let sc = if Q80 {
                        _mm512_mul_ps(_mm512_loadu_ps(a.wsc.as_ptr().add(b * 32 + 16 * g)), dx)
                    } else {
                        dx
                    };
                    f[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc[t][g]), sc, f[g]);
                }
            }
        }
        for (t, f) in facc.iter().enumerate() {
            for g in 0..RG {
                let v = if a.last {
                    _mm512_mul_ps(f[g], _mm512_loadu_ps(a.rsc.as_ptr().add(16 * g)))
                } else {
                    f[g]
                };
                _mm512_mask_storeu_ps(out(t, g), masks[g], v);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn rng(seed: u32) -> impl FnMut() -> u32 {
        let mut s = seed;
        move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        }
    }

    /// A q8_row or Q8_0 tensor of random weights over the whole int8 range.
    pub(crate) fn tensor(
        dtype: DType,
        rows: usize,
        cols: usize,
        rnd: &mut impl FnMut() -> u32,
    ) -> Tensor {
        let rb = dtype.row_bytes(cols).unwrap();
        let mut b = vec![0u8; rows * rb];
        for r in 0..rows {
            let row = &mut b[r * rb..(r + 1) * rb];
            match dtype {
                DType::Q8Row => {
                    let s = 0.5 + (rnd() % 100) as f32 / 100.0;
                    row[..4].copy_from_slice(&s.to_le_bytes());
                    for v in &mut row[4..4 + cols] {
                        *v = rnd() as u8;
                    }
                }
                _ => {
                    for blk in row.chunks_mut(34) {
                        let s = half::f16::from_f32(0.01 + (rnd() % 100) as f32 / 1000.0);
                        blk[..2].copy_from_slice(&s.to_bits().to_le_bytes());
                        for v in &mut blk[2..] {
                            *v = rnd() as u8;
                        }
                    }
                }
            }
        }
        Tensor::from_bytes(&b, dtype, rows, cols, "test").unwrap()
    }

    /// The exact result for the quantized inputs, in f64: Σ_blocks
    /// d_x · (weight scale) · Σ w·q; and the sum of the terms' magnitudes,
    /// which bounds the f32 rounding of the kernels' block sums.
    pub(crate) fn reference(w: &Tensor, r: usize, qx: &QuantX, t: usize) -> (f64, f64) {
        let row = w.row(r);
        let (mut acc, mut mag) = (0.0f64, 0.0f64);
        for b in 0..w.cols.div_ceil(QBLOCK) {
            let (mut s, mut ws) = (0i64, 1.0f64);
            for i in b * QBLOCK..((b + 1) * QBLOCK).min(w.cols) {
                let wv = match w.dtype {
                    DType::Q8Row => row[4 + i] as i8,
                    _ => {
                        let blk = &row[(i / 32) * 34..];
                        ws = half::f16::from_bits(u16::from_le_bytes([blk[0], blk[1]])).to_f64();
                        blk[2 + i % 32] as i8
                    }
                };
                s += wv as i64 * qx.q[t * qx.kp + i] as i64;
            }
            let term = s as f64 * ws * qx.d[t * qx.kp / 32 + b] as f64;
            acc += term;
            mag += term.abs();
        }
        let mut scale = w.scale as f64;
        if w.dtype == DType::Q8Row {
            scale *= q8row_scale(row) as f64;
        }
        (acc * scale, mag * scale.abs())
    }

    /// |got - want| within f32 rounding of block sums totalling `mag`.
    pub(crate) fn close(got: f64, (want, mag): (f64, f64)) -> bool {
        (got - want).abs() <= 1e-6 * (mag + 1.0)
    }

    /// Where a test's n output vectors of `ld` floats in `y` go: one
    /// strided buffer or, for odd n up to 8, one pointer per vector into
    /// it (the same places either way, so both [`Dest`] forms get tested).
    pub(crate) fn dest_for(y: &mut [f32], n: usize, ld: usize) -> Dest {
        assert!(y.len() >= n * ld);
        let yp = y.as_mut_ptr();
        if n % 2 == 1 && n <= crate::kernels::simd::MULTI_MAX {
            // SAFETY: t·ld < n·ld ≤ y.len().
            Dest::Each(std::array::from_fn(|t| unsafe {
                yp.add(t.min(n - 1) * ld)
            }))
        } else {
            Dest::Strided { y: yp, ld }
        }
    }

    pub(crate) fn inputs(n: usize, k: usize, rnd: &mut impl FnMut() -> u32) -> Vec<f32> {
        (0..n * k)
            .map(|i| {
                // Blocks of very different magnitudes, and an all-zero block.
                let mag = [1.0f32, 0.01, 30.0, 0.0][(i % k) / 32 % 4];
                mag * ((rnd() % 2001) as f32 / 1000.0 - 1.0)
            })
            .collect()
    }

    /// Filling a QuantX by parts (vectors and 64-column ranges in any
    /// order, as decode's scan chunks do) leaves every buffer as
    /// quantize_rows does, the interleaved copy included.
    #[test]
    fn quantizing_by_parts_matches_quantize_rows() {
        if !has_vnni() {
            return; // QuantX needs VNNI
        }
        let mut rnd = rng(9);
        for (n, k) in [(1, 100), (3, 1536), (5, 144), (8, 768), (8, 1000)] {
            let x = inputs(n, k, &mut rnd);
            let mut whole = QuantX::default();
            whole.quantize_rows(&x, n);
            // A stale value, reused: smaller, or larger (its buffers keep
            // their length and old contents past what this use needs, and
            // every element this use needs is written again).
            let mut parts = QuantX::default();
            let (sn, sk) = if k == 768 { (8, 1600) } else { (2, 64) };
            parts.quantize_rows(&inputs(sn, sk, &mut rnd), sn);
            let views = parts.prepare(n, k);
            let cuts = [0, 64.min(k), (k / 2).div_ceil(64) * 64, k];
            for t in (0..n).rev() {
                for w in cuts.windows(2).rev() {
                    let (a, b) = (w[0].min(k), w[1].min(k));
                    // SAFETY: one thread; parts alive and not used meanwhile.
                    unsafe { views.quantize(t, a, &x[t * k + a..t * k + b]) };
                }
            }
            assert_eq!((parts.n, parts.k, parts.kp), (whole.n, whole.k, whole.kp));
            let kp = whole.kp;
            assert_eq!(whole.q.len(), n * kp);
            assert_eq!(parts.q[..n * kp], whole.q, "n {n} k {k}");
            assert_eq!(parts.d[..n * kp / 32], whole.d);
            assert_eq!(parts.corr_b[..n * kp / 32], whole.corr_b);
            assert_eq!(parts.dl[..n * kp / 4], whole.dl);
            assert_eq!(parts.corr_l[..n * kp / 4], whole.corr_l);
            if interleaves(n) {
                assert_eq!(parts.qi[..10 * n * kp / 32], whole.qi);
            }
        }
    }

    #[test]
    fn quantization_is_within_half_a_step() {
        if !has_vnni() {
            return; // the f32 path is used on this CPU: nothing to check
        }
        let mut rnd = rng(3);
        for k in [1, 31, 32, 33, 64, 100, 768] {
            let x = inputs(3, k, &mut rnd);
            let mut qx = QuantX::default();
            qx.quantize_rows(&x, 3);
            for t in 0..3 {
                for i in 0..qx.kp {
                    let b = t * qx.kp / 32 + i / 32;
                    let q = qx.q[t * qx.kp + i];
                    if i >= k {
                        assert_eq!(q, 0);
                        continue;
                    }
                    let (xv, d) = (x[t * k + i], qx.d[b]);
                    assert!(
                        (q as f32 * d - xv).abs() <= 0.5001 * d + 1e-30,
                        "{xv} {q} {d}"
                    );
                    assert_eq!(qx.dl[t * qx.kp / 4 + i / 4], d);
                }
                for b in 0..qx.kp / 32 {
                    let s: i32 = qx.q[t * qx.kp + b * 32..t * qx.kp + (b + 1) * 32]
                        .iter()
                        .map(|&v| v as i32)
                        .sum();
                    assert_eq!(qx.corr_b[t * qx.kp / 32 + b], 128 * s);
                }
            }
        }
    }

    #[test]
    fn dot_sums_are_exact() {
        if !has_vnni() {
            return;
        }
        let mut rnd = rng(7);
        for dtype in [DType::Q8Row, DType::Q8_0] {
            for k in [1, 32, 48, 63, 64, 65, 96, 100, 768, 1536, 1000, 1056] {
                if dtype.row_bytes(k).is_none() {
                    continue;
                }
                let w = tensor(dtype, 2, k, &mut rnd).with_scale(1.5);
                let x = inputs(2, k, &mut rnd);
                let mut qx = QuantX::default();
                qx.quantize_rows(&x, 2);
                for t in 0..2 {
                    let got = dot_row(&w, 1, &qx, t) as f64;
                    let want = reference(&w, 1, &qx, t);
                    assert!(close(got, want), "{dtype:?} k {k}: {got} vs {want:?}");
                }
            }
        }
    }

    #[test]
    fn gemm_sums_are_exact() {
        if !has_vnni() {
            return;
        }
        let mut rnd = rng(11);
        for dtype in [DType::Q8Row, DType::Q8_0] {
            for (rows, k, n) in [
                (1, 32, 1),
                (16, 64, 4),
                (17, 96, 3),
                (33, 768, 5),
                (40, 1056, 9),
                (7, 1600, 2),
                (48, 32, 8),
            ] {
                let w = tensor(dtype, rows, k, &mut rnd).with_scale(0.75);
                let x = inputs(n, k, &mut rnd);
                let mut qx = QuantX::default();
                qx.quantize_rows(&x, n);
                // Rows 1.. into a wider output (ld > rows), the rest untouched.
                let ld = rows + 3;
                let mut y = vec![f32::NAN; n * ld];
                let dest = dest_for(&mut y, n, ld);
                // SAFETY: every t·ld + r (r < rows) is inside y.
                unsafe { gemm(&w, 1..rows, &qx, dest) };
                for t in 0..n {
                    assert!(
                        y[t * ld].is_nan()
                            && y[t * ld + rows..(t + 1) * ld].iter().all(|v| v.is_nan())
                    );
                    for r in 1..rows {
                        let (got, want) = (y[t * ld + r] as f64, reference(&w, r, &qx, t));
                        assert!(
                            close(got, want),
                            "{dtype:?} {rows}x{k} n {n}: row {r} input {t}: {got} vs {want:?}"
                        );
                    }
                }
            }
        }
    }
}

//! 8-bit × 8-bit dot products with AVX-512 VNNI, for decoding with int8
//! (q8_row) weights.
//!
//! The f32 path converts every int8 weight to f32 before its multiply: four
//! instructions per 16 weights, which makes int8 decode compute-bound on a
//! core. Here the input vector is quantized once per product to int8 in
//! blocks of 64 (a scale per block, round to nearest, like llama.cpp's Q8
//! activations), and `vpdpbusd` multiplies 64 weight/input pairs in one
//! instruction with exact integer sums; each block's sum is then scaled in
//! f32. Six instructions per 64 weights.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, so the weights are offset
//! by 128 (`w ^ 0x80` = w + 128 as u8, exact for every int8) and the
//! products of that offset, 128·Σq over each 4-byte lane, are subtracted in
//! the integer domain: the block sums are exact.
//!
//! This changes the numerics beyond reordering sums: the input is rounded to
//! 8 bits (error ≤ 1/254 of each block's largest value). On the 130m shape
//! it moves the int8 logits from 1.5e-2 to 2.2e-2 of f32 (dtype_report),
//! and it speeds one-thread decode by ~17% but not two-thread decode on this
//! machine (memory-bound there), so it is opt-in: `Model::int8_vnni`, set
//! from `MAMBA_INT8_VNNI=1`. `MAMBA_ISA=avx512` (or lower) disables it.

use super::simd::{isa, Isa};
use std::sync::OnceLock;

/// Inputs per quantization block (one 512-bit register of int8).
pub const QBLOCK: usize = 64;

/// True when the VNNI kernel can run: AVX-512 with VNNI and BW, and not
/// capped by `MAMBA_ISA` (any cap turns it off).
pub fn has_vnni() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let cap = std::env::var("MAMBA_ISA").unwrap_or_default();
            isa() == Isa::Avx512
                && (cap.is_empty() || cap == "vnni")
                && is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("avx512bw")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// An input vector quantized to int8 in blocks of [`QBLOCK`].
#[derive(Default, Clone)]
pub struct QuantX {
    /// Inputs (before padding).
    pub k: usize,
    /// round(x / d) per block, zero-padded to whole blocks.
    q: Vec<i8>,
    /// Per block: its scale d = max|x| / 127.
    d: Vec<f32>,
    /// Per block, per 4-byte lane (16 lanes): 128 · Σ q over the lane, the
    /// part of the offset-weight product to subtract.
    corr: Vec<i32>,
}

impl QuantX {
    /// Quantizes `x` (reusing this value's buffers).
    pub fn quantize(&mut self, x: &[f32]) {
        let k = x.len();
        let nb = k.div_ceil(QBLOCK);
        self.k = k;
        self.q.clear();
        self.q.resize(nb * QBLOCK, 0);
        self.d.resize(nb, 0.0);
        self.corr.resize(nb * 16, 0);
        for (b, xb) in x.chunks(QBLOCK).enumerate() {
            let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let (d, id) = if amax > 0.0 && amax.is_finite() {
                (amax / 127.0, 127.0 / amax)
            } else {
                (0.0, 0.0)
            };
            self.d[b] = d;
            let q = &mut self.q[b * QBLOCK..(b + 1) * QBLOCK];
            for (qv, &xv) in q.iter_mut().zip(xb) {
                *qv = (xv * id).round().clamp(-127.0, 127.0) as i8;
            }
            for (lane, c) in self.corr[b * 16..(b + 1) * 16].iter_mut().enumerate() {
                *c = 128
                    * q[4 * lane..4 * lane + 4]
                        .iter()
                        .map(|&v| v as i32)
                        .sum::<i32>();
            }
        }
    }

    pub fn blocks(&self) -> usize {
        self.d.len()
    }
}

/// Σ_i w[i] · x[i] for one row of `x.k` int8 weights (no scale) against the
/// quantized input `x`. Requires [`has_vnni`].
///
/// # Safety
/// `w` valid for reads of `x.k` bytes.
#[inline]
pub unsafe fn dot_i8(w: *const u8, x: &QuantX) -> f32 {
    debug_assert!(has_vnni());
    #[cfg(target_arch = "x86_64")]
    {
        x86::dot_i8_vnni(w, x)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (w, x);
        unreachable!("VNNI is x86-only")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{QuantX, QBLOCK};
    use crate::kernels::simd::PF_DIST;
    use std::arch::x86_64::*;

    /// One block: exact Σ w·q over 64 pairs, as 16 i32 lanes, then scaled.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn block(w: *const u8, x: &QuantX, b: usize, acc: __m512) -> __m512 {
        let left = x.k - b * QBLOCK;
        let wv = if left >= QBLOCK {
            _mm512_loadu_si512(w.add(b * QBLOCK) as *const _)
        } else {
            // Masked-off weights read as 0; their inputs are padding zeros.
            _mm512_maskz_loadu_epi8((1u64 << left) - 1, w.add(b * QBLOCK) as *const i8)
        };
        let wu = _mm512_xor_si512(wv, _mm512_set1_epi8(-128));
        let q = _mm512_loadu_si512(x.q.as_ptr().add(b * QBLOCK) as *const _);
        let s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wu, q);
        let s = _mm512_sub_epi32(
            s,
            _mm512_loadu_si512(x.corr.as_ptr().add(b * 16) as *const _),
        );
        _mm512_fmadd_ps(
            _mm512_cvtepi32_ps(s),
            _mm512_set1_ps(*x.d.get_unchecked(b)),
            acc,
        )
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn dot_i8_vnni(w: *const u8, x: &QuantX) -> f32 {
        let nb = x.blocks();
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut b = 0;
        while b + 2 <= nb {
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(b * QBLOCK + PF_DIST) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(b * QBLOCK + PF_DIST + 64) as *const i8);
            acc0 = block(w, x, b, acc0);
            acc1 = block(w, x, b + 1, acc1);
            b += 2;
        }
        if b < nb {
            acc0 = block(w, x, b, acc0);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_sums_are_exact() {
        if !has_vnni() {
            return; // nothing to compare on this CPU: the f32 path is used
        }
        let mut seed = 7u32;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for k in [1, 48, 63, 64, 65, 100, 768, 1536, 1000] {
            // Weights over the whole int8 range, -128 included.
            let w: Vec<u8> = (0..k).map(|_| rnd() as u8).collect();
            let x: Vec<f32> = (0..k)
                .map(|_| (rnd() % 2001) as f32 / 1000.0 - 1.0)
                .collect();
            let mut qx = QuantX::default();
            qx.quantize(&x);
            // Reference: the same quantized inputs, summed in f64.
            let mut want = 0.0f64;
            for b in 0..qx.blocks() {
                let mut s = 0i64;
                for i in b * QBLOCK..((b + 1) * QBLOCK).min(k) {
                    s += (w[i] as i8 as i64) * (qx.q[i] as i64);
                }
                want += s as f64 * qx.d[b] as f64;
            }
            // SAFETY: w holds k bytes.
            let got = unsafe { dot_i8(w.as_ptr(), &qx) } as f64;
            assert!(
                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "k {k}: {got} vs {want}"
            );
            // And the quantization itself is within half a step of x.
            for (i, &xv) in x.iter().enumerate() {
                let d = qx.d[i / QBLOCK];
                assert!((qx.q[i] as f32 * d - xv).abs() <= 0.5001 * d + 1e-7);
            }
        }
    }
}

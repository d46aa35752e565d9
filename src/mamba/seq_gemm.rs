//! Y = X Wᵀ for the classifiers' f32 matrices, with the weights packed once
//! at load time as Wᵀ (cols × rows, rows padded to 16). The AVX-512 kernel
//! keeps a 4-step × 64-output tile in 16 registers and, for each input
//! column, broadcasts 4 inputs against 4 weight vectors: no horizontal sums.
//! Other CPUs and non-f32 weights use [`crate::kernels::matmul`].

use crate::model::{DType, Tensor};

/// A weight matrix packed as Wᵀ.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Debug, Clone)]
pub struct Packed {
    pub rows: usize,
    pub cols: usize,
    /// rows rounded up to a multiple of 16.
    stride: usize,
    wt: Vec<f32>,
}

impl Packed {
    /// Packs an f32 matrix when the fast kernel can run here; `None` otherwise.
    pub fn new(t: &Tensor) -> Option<Packed> {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernels::simd::{isa, Isa};
            if isa() != Isa::Avx512 || t.dtype != DType::F32 || t.scale != 1.0 {
                return None;
            }
            let (rows, cols) = (t.rows, t.cols);
            let stride = rows.div_ceil(16) * 16;
            let w = t.as_f32();
            let mut wt = vec![0f32; cols * stride];
            for r in 0..rows {
                for c in 0..cols {
                    wt[c * stride + r] = w[r * cols + c];
                }
            }
            Some(Packed {
                rows,
                cols,
                stride,
                wt,
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (t, DType::F32);
            None
        }
    }
}

/// y (n × rows) = x (n × cols) · Wᵀ, with the packed weights when present.
pub fn matmul(w: &Tensor, packed: Option<&Packed>, x: &[f32], n: usize, y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = packed {
        assert_eq!(x.len(), n * p.cols);
        assert_eq!(y.len(), n * p.rows);
        // SAFETY: `Packed` exists only when the CPU has AVX-512F.
        unsafe { x86::gemm(p, x, n, y) };
        return;
    }
    let _ = packed;
    crate::kernels::matmul(w, x, n, y)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Packed;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn gemm(p: &Packed, x: &[f32], n: usize, y: &mut [f32]) {
        let mut t0 = 0;
        while t0 < n {
            let nt = (n - t0).min(4);
            let mut j0 = 0;
            while j0 < p.stride {
                let nv = ((p.stride - j0) / 16).min(4);
                match (nt, nv) {
                    (4, 4) => tile::<4, 4>(p, x, t0, j0, y),
                    (4, 3) => tile::<4, 3>(p, x, t0, j0, y),
                    (4, 2) => tile::<4, 2>(p, x, t0, j0, y),
                    (4, 1) => tile::<4, 1>(p, x, t0, j0, y),
                    (_, 4) => {
                        for t in t0..t0 + nt {
                            tile::<1, 4>(p, x, t, j0, y)
                        }
                    }
                    (_, 3) => {
                        for t in t0..t0 + nt {
                            tile::<1, 3>(p, x, t, j0, y)
                        }
                    }
                    (_, 2) => {
                        for t in t0..t0 + nt {
                            tile::<1, 2>(p, x, t, j0, y)
                        }
                    }
                    _ => {
                        for t in t0..t0 + nt {
                            tile::<1, 1>(p, x, t, j0, y)
                        }
                    }
                }
                j0 += 16 * nv;
            }
            t0 += nt;
        }
    }

    /// Outputs j0..j0+16·NV of steps t0..t0+NT.
    #[inline(always)]
    unsafe fn tile<const NT: usize, const NV: usize>(
        p: &Packed,
        x: &[f32],
        t0: usize,
        j0: usize,
        y: &mut [f32],
    ) {
        let (cols, stride, rows) = (p.cols, p.stride, p.rows);
        let mut acc = [[_mm512_setzero_ps(); NV]; NT];
        let wp = p.wt.as_ptr().add(j0);
        let xp = x.as_ptr().add(t0 * cols);
        for k in 0..cols {
            let w: [__m512; NV] =
                std::array::from_fn(|v| _mm512_loadu_ps(wp.add(k * stride + 16 * v)));
            for (i, a) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*xp.add(i * cols + k));
                for v in 0..NV {
                    a[v] = _mm512_fmadd_ps(w[v], xv, a[v]);
                }
            }
        }
        let yp = y.as_mut_ptr();
        for (i, a) in acc.iter().enumerate() {
            for (v, &av) in a.iter().enumerate() {
                let j = j0 + 16 * v;
                let out = yp.add((t0 + i) * rows + j);
                if j + 16 <= rows {
                    _mm512_storeu_ps(out, av);
                } else if j < rows {
                    let m: __mmask16 = ((1u32 << (rows - j)) - 1) as u16;
                    _mm512_mask_storeu_ps(out, m, av);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_gemm_matches_matmul() {
        for (rows, cols, n) in [
            (544, 136, 136),
            (111, 272, 7),
            (10, 136, 1),
            (17, 3, 5),
            (136, 69, 135),
        ] {
            let w: Vec<f32> = (0..rows * cols)
                .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 997.0)
                .collect();
            let x: Vec<f32> = (0..n * cols)
                .map(|i| ((i * 104729 % 1000) as f32 - 500.0) / 613.0)
                .collect();
            let t = Tensor::from_f32(&w, rows, cols);
            let mut want = vec![0f32; n * rows];
            crate::kernels::matmul(&t, &x, n, &mut want);
            let mut got = vec![f32::NAN; n * rows];
            matmul(&t, Packed::new(&t).as_ref(), &x, n, &mut got);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{rows}x{cols} n={n}: {g} vs {w}"
                );
            }
        }
    }
}

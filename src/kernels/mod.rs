//! Numeric kernels: matrix-vector and matrix-matrix products for every weight
//! type, plus the small vector helpers the block math needs.
//!
//! All products compute `y = scale · W x` with W stored row-major (out, in),
//! as PyTorch stores Linear weights. Compute is f32; quantized rows are
//! converted on the fly. `simd` holds the runtime-detected fast paths; the
//! portable code here is the reference they must agree with.

pub mod convert;
pub mod simd;

use crate::model::{DType, Tensor};
use rayon::prelude::*;

pub use convert::dequant_row;
pub use simd::{exp_slice, scan_channel, silu_slice, softplus_slice};

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
        y.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(ci, ys)| body(ci * chunk, ys));
    } else {
        body(0, y);
    }
}

/// Shares an output pointer among workers that write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every worker writes a disjoint set of elements (its own rows).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Weight rows handled by one task of a matrix-matrix product.
const GEMM_ROWS: usize = 32;

/// Y = X Wᵀ for n input rows: X is n × W.cols, Y is n × W.rows (row-major).
/// Weight rows are taken in blocks; each block is read (and, when quantized,
/// converted to f32) once and multiplied with every input row, so the
/// weights are read once per call instead of once per token.
pub fn matmul(w: &Tensor, x: &[f32], n: usize, y: &mut [f32]) {
    let (rows, cols) = (w.rows, w.cols);
    assert_eq!(x.len(), n * cols);
    assert_eq!(y.len(), n * rows);
    if n == 1 {
        return matvec(w, x, y);
    }
    let rb = w.row_bytes();
    let bytes = w.bytes();
    let scale = w.scale;
    let yp = OutPtr(y.as_mut_ptr());
    let block = |b: usize, wbuf: &mut Vec<f32>| {
        let yp = yp;
        let r0 = b * GEMM_ROWS;
        let r1 = (r0 + GEMM_ROWS).min(rows);
        let wf: &[f32] = if w.dtype == DType::F32 {
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
        simd::gemm_f32(wf, r1 - r0, x, n, cols, &mut |t, r, v| {
            // SAFETY: t < n and r0 + r < rows, so the index is inside y;
            // rows r0..r1 belong to this block alone.
            unsafe { *yp.0.add(t * rows + r0 + r) = scale * v };
        });
    };
    let n_blocks = rows.div_ceil(GEMM_ROWS);
    if bytes.len() * n >= PAR_MIN_BYTES && rayon::current_num_threads() > 1 && n_blocks > 1 {
        (0..n_blocks)
            .into_par_iter()
            .for_each_init(Vec::new, |wbuf, b| block(b, wbuf));
    } else {
        let mut wbuf = Vec::new();
        for b in 0..n_blocks {
            block(b, &mut wbuf);
        }
    }
}

/// out = x / sqrt(mean(x²) + eps) * w  (HF MambaRMSNorm, in f32).
pub fn rmsnorm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let ss: f32 = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let inv = 1.0 / (ss + eps).sqrt();
    for ((o, &xv), &wv) in out.iter_mut().zip(x).zip(w) {
        *o = wv * (xv * inv);
    }
}

#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// PyTorch's softplus with beta 1, threshold 20: x itself above 20.
#[inline]
pub fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

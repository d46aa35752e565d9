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

/// Y = X Wᵀ for n input rows: X is n × W.cols, Y is n × W.rows (row-major).
/// Each weight row is converted once and reused for all n inputs, so the
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
    // Work on blocks of output rows; within a block, convert each weight row
    // to f32 once, then dot it with every input row.
    const RB: usize = 16;
    let n_blocks = rows.div_ceil(RB);
    let compute_block = |b: usize, out: &mut Vec<(usize, usize, f32)>, wbuf: &mut Vec<f32>| {
        let r0 = b * RB;
        let r1 = (r0 + RB).min(rows);
        wbuf.resize((r1 - r0) * cols, 0.0);
        for r in r0..r1 {
            convert::dequant_bytes(
                w.dtype,
                &bytes[r * rb..(r + 1) * rb],
                &mut wbuf[(r - r0) * cols..(r - r0 + 1) * cols],
            );
        }
        for t in 0..n {
            let xt = &x[t * cols..(t + 1) * cols];
            for r in r0..r1 {
                let wr = &wbuf[(r - r0) * cols..(r - r0 + 1) * cols];
                out.push((t, r, scale * simd::dot_f32(wr, xt)));
            }
        }
    };
    let parallel = bytes.len() * n >= PAR_MIN_BYTES && rayon::current_num_threads() > 1;
    if parallel {
        let results: Vec<Vec<(usize, usize, f32)>> = (0..n_blocks)
            .into_par_iter()
            .map_init(Vec::new, |wbuf, b| {
                let mut out = Vec::with_capacity(RB * n);
                compute_block(b, &mut out, wbuf);
                out
            })
            .collect();
        for block in results {
            for (t, r, v) in block {
                y[t * rows + r] = v;
            }
        }
    } else {
        let mut wbuf = Vec::new();
        let mut out = Vec::with_capacity(RB * n);
        for b in 0..n_blocks {
            out.clear();
            compute_block(b, &mut out, &mut wbuf);
            for &(t, r, v) in &out {
                y[t * rows + r] = v;
            }
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

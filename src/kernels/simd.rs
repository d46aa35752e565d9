//! Dot-product kernels. Portable code written so the compiler vectorizes it
//! (several independent accumulators); explicit AVX-512/AVX2 paths are chosen
//! at run time where they pay.

use super::convert::dequant_bytes;
use crate::model::DType;

/// Σ a[i]·b[i] with 16 independent partial sums (vectorizes to 2×8 or 1×16 lanes).
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
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
    let mut s = 0.0;
    for v in acc {
        s += v;
    }
    s + tail
}

/// Dot of a stored row (any dtype, no tensor scale) with x.
pub fn dot_row(dtype: DType, row: &[u8], x: &[f32]) -> f32 {
    match dtype {
        DType::F32 => {
            // SAFETY: rows of f32 tensors are 4-byte aligned (checked at view time).
            let w =
                unsafe { std::slice::from_raw_parts(row.as_ptr() as *const f32, row.len() / 4) };
            dot_f32(w, x)
        }
        _ => {
            // Generic path: convert in small chunks on the stack.
            let mut buf = [0.0f32; 256];
            let cols = x.len();
            let mut s = 0.0;
            match dtype {
                DType::Q8Row => {
                    let d = f32::from_le_bytes([row[0], row[1], row[2], row[3]]);
                    let q = &row[4..4 + cols];
                    let mut fs = 0.0f32;
                    for (c, chunk) in q.chunks(256).enumerate() {
                        for (b, &v) in buf.iter_mut().zip(chunk) {
                            *b = (v as i8) as f32;
                        }
                        fs += dot_f32(&buf[..chunk.len()], &x[c * 256..c * 256 + chunk.len()]);
                    }
                    return d * fs;
                }
                DType::Q8_0 => {
                    for (bi, blk) in row.chunks_exact(34).enumerate() {
                        let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                        for (b, &v) in buf[..32].iter_mut().zip(&blk[2..]) {
                            *b = (v as i8) as f32;
                        }
                        s += d * dot_f32(&buf[..32], &x[bi * 32..bi * 32 + 32]);
                    }
                    return s;
                }
                _ => {}
            }
            let esize = match dtype {
                DType::F16 | DType::BF16 => 2,
                _ => 1,
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

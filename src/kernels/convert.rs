//! Conversions from stored weight encodings to f32.

use crate::model::{DType, Tensor};
use half::{bf16, f16};

/// The C project's "bfloat8": 1 sign, 5 exponent bits (bias 15), 2 mantissa bits.
pub fn bf8_to_f32(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let e = ((b >> 2) & 0x1f) as i32;
    let m = (b & 3) as f32;
    let mag = if e == 0 {
        m / 4.0 * (2.0f32).powi(-14)
    } else if e == 31 {
        f32::INFINITY
    } else {
        (2.0f32).powi(e - 15) * (1.0 + m / 4.0)
    };
    sign * mag
}

/// The scale a q8_row row starts with (its first 4 bytes, f32 LE).
#[inline]
pub fn q8row_scale(row: &[u8]) -> f32 {
    f32::from_le_bytes([row[0], row[1], row[2], row[3]])
}

/// Converts one stored row (no tensor scale) into `out` (cols floats).
pub fn dequant_bytes(dtype: DType, row: &[u8], out: &mut [f32]) {
    let cols = out.len();
    match dtype {
        DType::F32 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        DType::F16 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        DType::BF16 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        DType::Q8_0 => {
            for (blk, o) in row.chunks_exact(34).zip(out.chunks_mut(32)) {
                let d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                for (oi, &q) in o.iter_mut().zip(&blk[2..]) {
                    *oi = d * (q as i8) as f32;
                }
            }
        }
        DType::Q8Row => {
            let d = q8row_scale(row);
            for (o, &q) in out.iter_mut().zip(&row[4..4 + cols]) {
                *o = d * (q as i8) as f32;
            }
        }
        DType::I8 => {
            for (o, &q) in out.iter_mut().zip(row) {
                *o = (q as i8) as f32;
            }
        }
        DType::BF8 => {
            for (o, &q) in out.iter_mut().zip(row) {
                *o = bf8_to_f32(q);
            }
        }
    }
}

/// Row `r` of `t` as f32, tensor scale applied.
pub fn dequant_row(t: &Tensor, r: usize, out: &mut [f32]) {
    match &t.panels {
        // The converted copy: the file's pages of this tensor were released.
        Some(p) => p.dequant_row(r, out),
        None => super::simd::convert_row(t.dtype, t.row(r), out),
    }
    if t.scale != 1.0 {
        for o in out.iter_mut() {
            *o *= t.scale;
        }
    }
}

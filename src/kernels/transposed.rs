//! A small matrix kept column by column, so that its products run with rows
//! in vector lanes: x_proj ((dt_rank + 2·d_state) × d_inner, 80 rows in the
//! 130m shape) and dt_proj (d_inner × dt_rank, rows of 48 to 160 columns),
//! in decode steps and prompts alike (made at load on AVX-512 by
//! [`crate::model::LmWeights::transpose_small_projections`]).
//!
//! Stored row by row, each of dt_proj's short rows is a dot product whose
//! 16 lanes must be summed at its end, and that summing cost more than the
//! multiply-adds ([`super::simd::short_rows_multi`] sums 16 rows together
//! to cut it). Stored by column instead (element (r, k) at `k·ld + r`), 16
//! consecutive rows are one vector per column, and
//! `y[r] = Σ_k W[r, k]·x[k]` is one chain of vector FMAs over k with x[k]
//! broadcast: no horizontal sums at all, and each weight vector is loaded
//! once for all the inputs of a batch. In the 130m shape (one core, in
//! cache): dt_proj, 8 inputs 9 µs against 27 for the row-wise kernel, one
//! input 3–5 µs against 11–17; x_proj, 8 inputs 14–21 µs against 22–30.
//! A range of columns gives a partial product ([`Transposed::part_dot`]):
//! a decode step computes x_proj per block of channels as it makes them.
//!
//! The copy keeps the stored element type where the kernel can widen it on
//! the fly (f32, f16, bf16, int8 with its per-row scales, Q8_0 with its
//! per-block scales), so it takes the bytes of the stored rows, whose file
//! pages are handed back; other types are widened to f32 at load.
//!
//! Each output is `scale[r] · (…((W[r,0]·x[0] + W[r,1]·x[1]) + …))`, one
//! fused multiply-add per column in column order (Q8_0: per block of 32
//! columns, each block's sum times its scale added in block order),
//! whatever the number of inputs, the row range or the lane a row sits in:
//! a batch and a single sequence get the same bits (tested). For f32 and
//! f16 that is also the order of the prompt GEMM's sums.

use super::Dest;
use crate::model::{DType, Tensor};

/// Most input vectors one call takes.
pub const MAX_INPUTS: usize = super::simd::MULTI_MAX;

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Debug)]
enum Data {
    F32(Vec<f32>),
    F16(Vec<u16>),
    BF16(Vec<u16>),
    /// With per-row scales (`Transposed::scales`).
    I8(Vec<i8>),
    /// Q8_0: int8 with one scale per row and block of 32 columns, at
    /// `(k / 32)·ld + r` in the second vector.
    Q8_0(Vec<i8>, Vec<f32>),
}

/// A rows × cols matrix stored by column, `ld` elements per column
/// (rows rounded up to 16), plus 16 elements of zeros after the last
/// column so that a vector load at any row below `rows` stays inside.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Debug)]
pub struct Transposed {
    pub rows: usize,
    pub cols: usize,
    ld: usize,
    data: Data,
    /// Per row: what the column sums are multiplied by (the row's int8
    /// scale times the tensor's, the tensor's, or 1 for f32), then 16 more.
    scales: Vec<f32>,
}

/// A zeroed vector of n elements, or None if the memory cannot be had.
fn zeros<T: Copy + Default>(n: usize) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, T::default());
    Some(v)
}

impl Transposed {
    /// The column-major copy of `t`, or None where the kernel does not
    /// apply (no AVX-512) or the memory cannot be had.
    pub fn of(t: &Tensor) -> Option<Transposed> {
        if super::simd::isa() != super::simd::Isa::Avx512 {
            return None;
        }
        let (rows, cols) = (t.rows, t.cols);
        let ld = rows.checked_next_multiple_of(16)?;
        let len = ld.checked_mul(cols)?.checked_add(16)?;
        let mut scales = zeros::<f32>(ld + 16)?;
        let at = |r: usize, k: usize| k * ld + r;
        let data = match t.dtype {
            DType::F16 | DType::BF16 => {
                let mut d = zeros::<u16>(len)?;
                for r in 0..rows {
                    for (k, b) in t.row(r).chunks_exact(2).take(cols).enumerate() {
                        d[at(r, k)] = u16::from_le_bytes([b[0], b[1]]);
                    }
                    scales[r] = t.scale;
                }
                if t.dtype == DType::F16 {
                    Data::F16(d)
                } else {
                    Data::BF16(d)
                }
            }
            DType::I8 | DType::Q8Row => {
                let mut d = zeros::<i8>(len)?;
                for r in 0..rows {
                    let row = t.row(r);
                    let (q, s) = if t.dtype == DType::Q8Row {
                        let s = f32::from_le_bytes([row[0], row[1], row[2], row[3]]);
                        (&row[4..], s * t.scale)
                    } else {
                        (row, t.scale)
                    };
                    for (k, &v) in q.iter().take(cols).enumerate() {
                        d[at(r, k)] = v as i8;
                    }
                    scales[r] = s;
                }
                Data::I8(d)
            }
            DType::Q8_0 if t.panels.is_none() => {
                let mut d = zeros::<i8>(len)?;
                let mut ks = zeros::<f32>(ld.checked_mul(cols.div_ceil(32))?.checked_add(16)?)?;
                for r in 0..rows {
                    for (b, blk) in t.row(r).chunks_exact(34).enumerate() {
                        let h = half::f16::from_le_bytes([blk[0], blk[1]]);
                        ks[b * ld + r] = h.to_f32();
                        for (j, &v) in blk[2..].iter().enumerate() {
                            d[at(r, 32 * b + j)] = v as i8;
                        }
                    }
                    scales[r] = t.scale;
                }
                Data::Q8_0(d, ks)
            }
            _ => {
                let mut d = zeros::<f32>(len)?;
                let mut row = vec![0.0f32; cols];
                for r in 0..rows {
                    super::dequant_row(t, r, &mut row);
                    for (k, &v) in row.iter().enumerate() {
                        d[at(r, k)] = v;
                    }
                    scales[r] = 1.0;
                }
                Data::F32(d)
            }
        };
        Some(Transposed {
            rows,
            cols,
            ld,
            data,
            scales,
        })
    }

    /// y.at(t, r) = W[r]·x[t] for r in `rows`, t < n (1 to [`MAX_INPUTS`];
    /// x is n × cols).
    ///
    /// # Safety
    /// `y` valid for writes at `y.at(t, r)` (t < n, r in `rows`) that no
    /// other thread touches.
    pub unsafe fn rows_dot(&self, rows: std::ops::Range<usize>, x: &[f32], n: usize, y: Dest) {
        assert!((1..=MAX_INPUTS).contains(&n) && x.len() >= n * self.cols);
        self.part_dot(rows, 0..self.cols, x.as_ptr(), self.cols, n, y)
    }

    /// y.at(t, r) = Σ_{k in cols} W[r, k]·x[t·x_ld + k] for r in `rows`,
    /// t < n (1 to [`MAX_INPUTS`]): the product over a range of columns
    /// only (a partial sum, whose inputs are the matching entries of each
    /// input row; the rest of those rows may belong to other threads).
    /// Q8_0 matrices take column ranges on their blocks of 32 (or ending
    /// at `cols`).
    ///
    /// # Safety
    /// `x.add(t·x_ld + k)` readable for t < n, k in `cols`, and not written
    /// during the call; `y` valid for writes at `y.at(t, r)` (t < n, r in
    /// `rows`) that no other thread touches.
    pub unsafe fn part_dot(
        &self,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
        x: *const f32,
        x_ld: usize,
        n: usize,
        y: Dest,
    ) {
        assert!(rows.start <= rows.end && rows.end <= self.rows);
        assert!(cols.start < cols.end && cols.end <= self.cols);
        assert!((1..=MAX_INPUTS).contains(&n));
        if let Data::Q8_0(..) = self.data {
            assert!(
                cols.start.is_multiple_of(32)
                    && (cols.end.is_multiple_of(32) || cols.end == self.cols)
            );
        }
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `of` made this copy only with AVX-512 present;
            // the bounds are checked above, y's places by the caller.
            x86::part_dot(self, rows, cols, x, x_ld, n, y)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (rows, cols, x, x_ld, n, y);
            unreachable!("made only on x86-64 with AVX-512")
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Data, Dest, Transposed};
    use crate::kernels::simd::{prefetch_l2, prefetch_near};
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// 16 elements from `p + i` as f32: K = 0 f32, 1 f16, 2 bf16, 3 and 4
    /// int8.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load<const K: u8>(p: *const u8, i: usize) -> __m512 {
        match K {
            0 => _mm512_loadu_ps((p as *const f32).add(i)),
            1 => _mm512_cvtph_ps(_mm256_loadu_si256(
                (p as *const u16).add(i) as *const __m256i
            )),
            2 => _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(
                _mm256_loadu_si256((p as *const u16).add(i) as *const __m256i),
            ))),
            _ => _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                (p as *const i8).add(i) as *const __m128i,
            ))),
        }
    }

    /// acc[q][t] += Σ_{k in ks} W[c + 16q.., k]·x[t·x_ld + k], one FMA per
    /// column in column order.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn chain<const N: usize, const G: usize, const K: u8>(
        acc: &mut [[__m512; N]; G],
        p: *const u8,
        ld: usize,
        c: usize,
        ks: Range<usize>,
        x: *const f32,
        x_ld: usize,
    ) {
        let mut w = [_mm512_setzero_ps(); G];
        for kk in ks {
            for (q, wq) in w.iter_mut().enumerate() {
                *wq = load::<K>(p, kk * ld + c + 16 * q);
            }
            for t in 0..N {
                let xv = _mm512_set1_ps(*x.add(t * x_ld + kk));
                for q in 0..G {
                    acc[q][t] = _mm512_fmadd_ps(w[q], xv, acc[q][t]);
                }
            }
        }
    }

    /// Rows c..c + 16·G for N inputs (the last group's stores masked by
    /// `last`): N·G accumulators. Q8_0 (K = 4) sums each block of 32
    /// columns apart, then adds it times the block's scales.
    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn pass<const N: usize, const G: usize, const K: u8>(
        m: &Transposed,
        p: *const u8,
        c: usize,
        ks: Range<usize>,
        x: *const f32,
        x_ld: usize,
        y: Dest,
        last: __mmask16,
    ) {
        let ld = m.ld;
        let mut acc = [[_mm512_setzero_ps(); N]; G];
        if let (4, Data::Q8_0(_, bs)) = (K, &m.data) {
            let mut kb = ks.start;
            while kb < ks.end {
                let ke = ((kb / 32 + 1) * 32).min(ks.end);
                let mut sub = [[_mm512_setzero_ps(); N]; G];
                chain::<N, G, K>(&mut sub, p, ld, c, kb..ke, x, x_ld);
                for q in 0..G {
                    let s = _mm512_loadu_ps(bs.as_ptr().add(kb / 32 * ld + c + 16 * q));
                    for t in 0..N {
                        acc[q][t] = _mm512_fmadd_ps(sub[q][t], s, acc[q][t]);
                    }
                }
                kb = ke;
            }
        } else {
            chain::<N, G, K>(&mut acc, p, ld, c, ks, x, x_ld);
        }
        for (q, aq) in acc.iter().enumerate() {
            let s = _mm512_loadu_ps(m.scales.as_ptr().add(c + 16 * q));
            let mask = if q + 1 == G { last } else { 0xffff };
            for (t, a) in aq.iter().enumerate() {
                _mm512_mask_storeu_ps(y.at(t, c + 16 * q), mask, _mm512_mul_ps(*a, s));
            }
        }
    }

    /// The rows in passes of 16·G, then 16 at a time (the last one masked).
    #[target_feature(enable = "avx512f")]
    unsafe fn run<const N: usize, const G: usize, const K: u8>(
        m: &Transposed,
        p: *const u8,
        rows: Range<usize>,
        ks: Range<usize>,
        x: *const f32,
        x_ld: usize,
        y: Dest,
    ) {
        let mut c = rows.start;
        while rows.end - c >= 16 * G {
            pass::<N, G, K>(m, p, c, ks.clone(), x, x_ld, y, 0xffff);
            c += 16 * G;
        }
        while c < rows.end {
            let left = rows.end - c;
            let mask = if left >= 16 {
                0xffff
            } else {
                ((1u32 << left) - 1) as u16
            };
            pass::<N, 1, K>(m, p, c, ks.clone(), x, x_ld, y, mask);
            c += 16;
        }
    }

    /// Asks for the weights of `rows` × `cols` (each column's run of rows)
    /// before the passes read them: their loads, one column after another
    /// in each of up to three passes over the same columns, had no
    /// prefetch and stalled on memory (56% of part_dot's samples on the
    /// f16 widening of the loaded weights, batch-8 f16 step). Measured
    /// (host 3, 130m, 2 threads, one process alternating): decode +2-3%
    /// (bf16 -0.6%), batch-8 +2-5% (q8_0 +10%).
    #[target_feature(enable = "avx512f")]
    unsafe fn prefetch(m: &Transposed, rows: &Range<usize>, cols: &Range<usize>) {
        let (base, esize) = match &m.data {
            Data::F32(d) => (d.as_ptr() as *const u8, 4),
            Data::F16(d) | Data::BF16(d) => (d.as_ptr() as *const u8, 2),
            Data::I8(d) | Data::Q8_0(d, _) => (d.as_ptr() as *const u8, 1),
        };
        let l2 = prefetch_l2();
        for k in cols.clone() {
            let (from, to) = (
                (k * m.ld + rows.start) * esize,
                (k * m.ld + rows.end) * esize,
            );
            for line in (from & !63..to).step_by(64) {
                prefetch_near(base.wrapping_add(line) as *const i8, l2);
            }
        }
    }

    /// [`Transposed::part_dot`]: four groups of 16 rows per pass for up to
    /// four inputs, two for more (at most 16 accumulators, so that they and
    /// the weight vectors stay in registers; Q8_0's block sums take as
    /// many again, so it takes half the groups).
    ///
    /// # Safety
    /// AVX-512F; `Transposed::part_dot`'s checks and contract.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn part_dot(
        m: &Transposed,
        rows: Range<usize>,
        ks: Range<usize>,
        x: *const f32,
        x_ld: usize,
        n: usize,
        y: Dest,
    ) {
        macro_rules! go {
            ($d:expr, $k:literal, $g4:literal, $g8:literal) => {{
                let p = $d.as_ptr() as *const u8;
                match n {
                    1 => run::<1, $g4, $k>(m, p, rows, ks, x, x_ld, y),
                    2 => run::<2, $g4, $k>(m, p, rows, ks, x, x_ld, y),
                    3 => run::<3, $g4, $k>(m, p, rows, ks, x, x_ld, y),
                    4 => run::<4, $g4, $k>(m, p, rows, ks, x, x_ld, y),
                    5 => run::<5, $g8, $k>(m, p, rows, ks, x, x_ld, y),
                    6 => run::<6, $g8, $k>(m, p, rows, ks, x, x_ld, y),
                    7 => run::<7, $g8, $k>(m, p, rows, ks, x, x_ld, y),
                    _ => run::<8, $g8, $k>(m, p, rows, ks, x, x_ld, y),
                }
            }};
        }
        prefetch(m, &rows, &ks);
        match &m.data {
            Data::F32(d) => go!(d, 0, 4, 2),
            Data::F16(d) => go!(d, 1, 4, 2),
            Data::BF16(d) => go!(d, 2, 4, 2),
            Data::I8(d) => go!(d, 3, 4, 2),
            Data::Q8_0(d, _) => go!(d, 4, 2, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::tests::data;

    /// A rows × cols tensor of `dt` holding `w` (rounded to the type), on the heap.
    fn tensor(dt: DType, w: &[f32], rows: usize, cols: usize, scale: f32) -> Tensor {
        use half::{bf16, f16};
        let rb = dt.row_bytes(cols).unwrap();
        let mut bytes = vec![0u8; rows * rb];
        for r in 0..rows {
            let src = &w[r * cols..(r + 1) * cols];
            let out = &mut bytes[r * rb..(r + 1) * rb];
            match dt {
                DType::F32 => out
                    .copy_from_slice(&src.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>()),
                DType::F16 => out.copy_from_slice(
                    &src.iter()
                        .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                        .collect::<Vec<_>>(),
                ),
                DType::BF16 => out.copy_from_slice(
                    &src.iter()
                        .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                        .collect::<Vec<_>>(),
                ),
                DType::I8 => out.copy_from_slice(
                    &src.iter()
                        .map(|v| ((v * 254.0) as i8) as u8)
                        .collect::<Vec<_>>(),
                ),
                DType::Q8Row => {
                    out[..4].copy_from_slice(&(0.01 + r as f32 * 0.003).to_le_bytes());
                    for (o, v) in out[4..4 + cols].iter_mut().zip(src) {
                        *o = ((v * 254.0) as i8) as u8;
                    }
                }
                DType::Q8_0 => {
                    for (b, blk) in src.chunks(32).enumerate() {
                        let o = &mut out[34 * b..34 * (b + 1)];
                        o[..2].copy_from_slice(&half::f16::from_f32(0.004).to_le_bytes());
                        for (q, v) in o[2..].iter_mut().zip(blk) {
                            *q = ((v * 254.0) as i8) as u8;
                        }
                    }
                }
                _ => unreachable!(),
            }
        }
        Tensor::from_bytes(&bytes, dt, rows, cols, "test")
            .unwrap()
            .with_scale(scale)
    }

    /// Against f64 sums of the stored values (converted as every other
    /// kernel converts them), for each type, n = 1..8, row ranges that
    /// start and end inside a group of 16; the rows outside the range are
    /// not written; and each input's results are the same bits whatever
    /// the batch and the range.
    #[test]
    fn transposed_products_match_f64_and_do_not_depend_on_the_batch() {
        if crate::kernels::simd::isa() != crate::kernels::simd::Isa::Avx512 {
            let t = tensor(DType::F32, &data(16 * 48, 1), 16, 48, 1.0);
            assert!(Transposed::of(&t).is_none(), "made without AVX-512");
            return;
        }
        let rows = 133;
        for cols in [5, 32, 48, 160] {
            let w = data(rows * cols, 7 + cols as u32);
            for dt in TYPES {
                if dt.row_bytes(cols).is_none() {
                    continue;
                }
                let scale = if matches!(dt, DType::I8 | DType::F16) {
                    0.5
                } else {
                    1.0
                };
                let t = tensor(dt, &w, rows, cols, scale);
                let m = Transposed::of(&t).unwrap();
                let x = data(MAX_INPUTS * cols, 3 + cols as u32);
                let mut single = vec![f32::NAN; rows];
                for n in 1..=MAX_INPUTS {
                    let range = 3..rows - 2;
                    let mut y = vec![f32::NAN; n * rows];
                    let dest = Dest::Strided {
                        y: y.as_mut_ptr(),
                        ld: rows,
                    };
                    // SAFETY: t·rows + r < n·rows for t < n, r < rows.
                    unsafe { m.rows_dot(range.clone(), &x, n, dest) };
                    for tt in 0..n {
                        for r in 0..rows {
                            let got = y[tt * rows + r];
                            if !range.contains(&r) {
                                assert!(got.is_nan(), "{dt:?} wrote row {r}");
                                continue;
                            }
                            let (want, mag) = reference(&t, r, 0..cols, &x[tt * cols..]);
                            assert!(
                                (got as f64 - want).abs() <= 1e-6 * mag + 1e-30,
                                "{dt:?} cols {cols} n {n} t {tt} row {r}: {got} vs {want}"
                            );
                        }
                    }
                    if n == MAX_INPUTS {
                        // Each input alone, over other ranges: the same bits.
                        for tt in 0..n {
                            for cut in [3, 20, 64, 100] {
                                let dest = Dest::Strided {
                                    y: single.as_mut_ptr(),
                                    ld: rows,
                                };
                                let xt = &x[tt * cols..(tt + 1) * cols];
                                // SAFETY: rows outputs.
                                unsafe {
                                    m.rows_dot(3..cut, xt, 1, dest);
                                    m.rows_dot(cut..rows - 2, xt, 1, dest);
                                }
                                let bits =
                                    |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                                assert_eq!(
                                    bits(&single[3..rows - 2]),
                                    bits(&y[tt * rows + 3..tt * rows + rows - 2]),
                                    "{dt:?} cols {cols} input {tt} split at {cut}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Partial products over column blocks (x_proj's per-block sums in a
    /// decode step): inputs `x_ld` apart, each block against f64, and the
    /// same bits for one input as inside a batch.
    #[test]
    fn partial_products_over_column_blocks() {
        if crate::kernels::simd::isa() != crate::kernels::simd::Isa::Avx512 {
            return;
        }
        let (rows, cols, x_ld) = (80, 416, 427);
        let w = data(rows * cols, 17);
        let x = data(MAX_INPUTS * x_ld, 19);
        for dt in TYPES {
            let t = tensor(dt, &w, rows, cols, 1.0);
            let m = Transposed::of(&t).unwrap();
            for blk in [0..128, 128..256, 256..384, 384..416, 0..416] {
                let mut y = vec![f32::NAN; MAX_INPUTS * rows];
                let dest = Dest::Strided {
                    y: y.as_mut_ptr(),
                    ld: rows,
                };
                // SAFETY: x holds MAX_INPUTS rows of x_ld; MAX_INPUTS × rows outputs.
                unsafe { m.part_dot(0..rows, blk.clone(), x.as_ptr(), x_ld, MAX_INPUTS, dest) };
                for tt in 0..MAX_INPUTS {
                    let mut one = vec![f32::NAN; rows];
                    let dest = Dest::Strided {
                        y: one.as_mut_ptr(),
                        ld: rows,
                    };
                    // SAFETY: input tt's row inside x; rows outputs.
                    unsafe {
                        m.part_dot(0..rows, blk.clone(), x[tt * x_ld..].as_ptr(), x_ld, 1, dest)
                    };
                    for r in 0..rows {
                        let got = y[tt * rows + r];
                        assert_eq!(
                            got.to_bits(),
                            one[r].to_bits(),
                            "{dt:?} {blk:?} t {tt} r {r}"
                        );
                        let (want, mag) = reference(&t, r, blk.clone(), &x[tt * x_ld..]);
                        assert!(
                            (got as f64 - want).abs() <= 1e-6 * mag + 1e-30,
                            "{dt:?} {blk:?} t {tt} row {r}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    const TYPES: [DType; 6] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::I8,
        DType::Q8Row,
        DType::Q8_0,
    ];

    /// Σ_{k in ks} W[r, k]·x[k] in f64 over the stored values as every
    /// kernel converts them, and the sum of the terms' magnitudes.
    fn reference(t: &Tensor, r: usize, ks: std::ops::Range<usize>, x: &[f32]) -> (f64, f64) {
        let mut wr = vec![0.0f32; t.cols];
        crate::kernels::dequant_row(t, r, &mut wr);
        let terms = || ks.clone().map(|k| wr[k] as f64 * x[k] as f64);
        (terms().sum(), terms().map(f64::abs).sum())
    }
}

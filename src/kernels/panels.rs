//! 8-bit weights (q8_row, Q8_0) stored once, at load, in the layout the
//! VNNI kernel reads, so that no product repacks them.
//!
//! [`super::vnni::gemm`] works on the file's layout: every call transposes
//! 32 rows into a panel before its `vpdpbusd`s. With 8 sequences that
//! repack costs more than the products themselves. [`Panels`] holds the same
//! weights already transposed, and one kernel ([`gemm`]) serves one sequence
//! (decode), a batch of sequences and prompts alike. The model keeps this
//! one copy: the loader converts a tensor group by group and hands the file
//! pages it has converted back to the kernel ([`Tensor::release_rows`]), so
//! memory holds the weights once, during the load as well.
//!
//! Layout: rows in groups of [`GROUP`] (the last padded with zero rows),
//! each group one contiguous run of 64-byte lines:
//! ```text
//!   scales   Q8_0: the f16 scale of block b of row i at u16 [b·16 + i]
//!            q8_row: the f32 scale of row i at f32 [i]      (padded to 64 B)
//!   weights  line b·8 + s, byte 4·i + j:  W[16g + i][32b + 4s + j] + 128
//! ```
//! One line is what one `vpdpbusd` multiplies: 4 consecutive weights of 16
//! rows against 4 input bytes broadcast, adding to 16 row sums. Weights are
//! stored offset by 128 (as u8; see [`super::vnni`]); columns past the row
//! end hold weight 0 and meet zero inputs.
//!
//! The sums are the same exact block sums as the other VNNI kernels', each
//! scaled by its block's scales in f32 in block order, so a row's result
//! does not depend on how many sequences are computed with it or on how the
//! rows are split over threads.

use super::vnni::QuantX;
use super::Dest;
use crate::model::{DType, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// Rows per group.
pub const GROUP: usize = 16;

/// Input blocks (32 inputs each) per pass when more than 4 sequences take
/// turns over a group pair: 2 groups × 16 blocks × 544 B ≈ 17 KiB, L1-resident.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const PIECE_BLOCKS: usize = 16;

/// An 8-bit weight matrix in VNNI panel layout (see the module comment).
pub struct Panels {
    pub rows: usize,
    pub cols: usize,
    q80: bool,
    /// Blocks of 32 inputs per row: ceil(cols / 32).
    nb: usize,
    /// 64-byte lines of scales at the start of each group.
    sc_lines: usize,
    /// Lines per group: sc_lines + 8·nb.
    group_lines: usize,
    /// The memory all of a model's panels share ([`convert`]).
    arena: Arc<memmap2::MmapMut>,
    /// Where this matrix starts in `arena` (page-aligned).
    at: usize,
}

impl std::fmt::Debug for Panels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Panels({}x{})", self.rows, self.cols)
    }
}

/// The layout of one matrix's panels (no memory yet).
#[derive(Clone, Copy)]
struct Shape {
    rows: usize,
    cols: usize,
    q80: bool,
    nb: usize,
    sc_lines: usize,
    group_lines: usize,
}

impl Shape {
    fn of(w: &Tensor) -> Option<Shape> {
        if !matches!(w.dtype, DType::Q8_0 | DType::Q8Row) || w.rows == 0 || w.cols == 0 {
            return None;
        }
        let q80 = w.dtype == DType::Q8_0;
        let nb = w.cols.div_ceil(32);
        let sc_lines = if q80 { (nb * 32).div_ceil(64) } else { 1 };
        Some(Shape {
            rows: w.rows,
            cols: w.cols,
            q80,
            nb,
            sc_lines,
            group_lines: sc_lines + 8 * nb,
        })
    }

    fn bytes(&self) -> usize {
        self.rows.div_ceil(GROUP) * self.group_lines * 64
    }
}

const PAGE: usize = 4096;
const HUGE_PAGE: usize = 2 << 20;

/// Converts every q8_row or Q8_0 tensor of `tensors` to panels (others are
/// left alone), all in one block of anonymous memory: 2 MiB-aligned and
/// asked for huge pages, since decode streams all of it (4 KiB pages would
/// cost a TLB miss every 4 KiB, where the file's mapping has 2 MiB ones),
/// and one block wastes at most one page per matrix. With `release`, each
/// tensor's file pages are handed back as its rows are converted
/// ([`Tensor::release_rows`]), so the load's peak memory stays at about the
/// file plus one chunk of rows. False, converting nothing, when the memory
/// cannot be had.
pub fn convert(tensors: &mut [&mut Tensor], release: bool) -> bool {
    let shapes: Vec<Option<Shape>> = tensors.iter().map(|t| Shape::of(t)).collect();
    let mut total = 0usize;
    let mut starts = Vec::with_capacity(tensors.len());
    for sh in &shapes {
        starts.push(total);
        if let Some(sh) = sh {
            total += sh.bytes().next_multiple_of(PAGE);
        }
    }
    if total == 0 {
        return true;
    }
    // Zeroed by the kernel; only the pages written count as memory.
    let Ok(mut map) = memmap2::MmapMut::map_anon(total + HUGE_PAGE) else {
        return false;
    };
    let base = (map.as_ptr() as usize).next_multiple_of(HUGE_PAGE) - map.as_ptr() as usize;
    #[cfg(target_os = "linux")]
    let _ = map.advise_range(memmap2::Advice::HugePage, base, total);
    for ((t, sh), &start) in tensors.iter().zip(&shapes).zip(&starts) {
        let Some(sh) = sh else { continue };
        let out = &mut map[base + start..base + start + sh.bytes()];
        // Chunks of groups: converted in parallel, then their file pages
        // released before the next chunk.
        const CHUNK_GROUPS: usize = 64;
        let group_bytes = sh.group_lines * 64;
        for (c, chunk) in out.chunks_mut(CHUNK_GROUPS * group_bytes).enumerate() {
            chunk
                .par_chunks_mut(group_bytes)
                .enumerate()
                .for_each(|(gi, out)| fill_group(t, c * CHUNK_GROUPS + gi, sh.sc_lines, out));
            if release {
                t.release_rows(0..((c + 1) * CHUNK_GROUPS * GROUP).min(sh.rows));
            }
        }
    }
    let arena = Arc::new(map);
    for ((t, sh), &start) in tensors.iter_mut().zip(&shapes).zip(&starts) {
        let Some(sh) = *sh else { continue };
        t.panels = Some(Arc::new(Panels {
            rows: sh.rows,
            cols: sh.cols,
            q80: sh.q80,
            nb: sh.nb,
            sc_lines: sh.sc_lines,
            group_lines: sh.group_lines,
            arena: arena.clone(),
            at: base + start,
        }));
    }
    true
}

impl Panels {
    fn group(&self, g: usize) -> &[u8] {
        let gb = self.group_lines * 64;
        &self.arena[self.at + g * gb..self.at + (g + 1) * gb]
    }

    /// Row r as f32 (no tensor scale): the same values as converting the
    /// stored row (scale × weight, one f32 multiply each).
    pub fn dequant_row(&self, r: usize, out: &mut [f32]) {
        assert!(r < self.rows && out.len() == self.cols);
        let (g, i) = (r / GROUP, r % GROUP);
        let gb = self.group(g);
        let wts = &gb[self.sc_lines * 64..];
        let rd = |b: usize| -> f32 {
            if self.q80 {
                let at = 2 * (b * GROUP + i);
                half::f16::from_le_bytes([gb[at], gb[at + 1]]).to_f32()
            } else {
                f32::from_le_bytes(gb[4 * i..4 * i + 4].try_into().unwrap())
            }
        };
        for (b, o) in out.chunks_mut(32).enumerate() {
            let d = rd(b);
            for (c, v) in o.iter_mut().enumerate() {
                let byte = wts[(b * 8 + c / 4) * 64 + 4 * i + c % 4];
                *v = d * ((byte ^ 0x80) as i8) as f32;
            }
        }
    }
}

/// Writes group g of `w` into `out` (zeroed; one group long).
fn fill_group(w: &Tensor, g: usize, sc_lines: usize, out: &mut [u8]) {
    let (sc, wts) = out.split_at_mut(sc_lines * 64);
    // Every weight byte starts as 0 + 128 (padding rows and columns).
    wts.fill(0x80);
    for i in 0..GROUP {
        let r = g * GROUP + i;
        if r >= w.rows {
            break;
        }
        let row = w.row(r);
        let mut put =
            |c: usize, q: u8| wts[(c / 32 * 8 + c % 32 / 4) * 64 + 4 * i + c % 4] = q ^ 0x80;
        if w.dtype == DType::Q8_0 {
            for (b, blk) in row.chunks_exact(34).enumerate() {
                sc[2 * (b * GROUP + i)..2 * (b * GROUP + i) + 2].copy_from_slice(&blk[..2]);
                for (c, &q) in blk[2..].iter().enumerate() {
                    put(32 * b + c, q);
                }
            }
        } else {
            sc[4 * i..4 * i + 4].copy_from_slice(&row[..4]);
            for (c, &q) in row[4..4 + w.cols].iter().enumerate() {
                put(c, q);
            }
        }
    }
}

/// y.at(t, r) = scale · W[r] · x_t for r in `rows` and every vector t of
/// `x` (x.k == p.cols). Requires [`super::vnni::has_vnni`]. A range that
/// starts inside a group computes the whole group and writes its rows only.
///
/// # Safety
/// `y` valid for writes at every `y.at(t, r)`, which no other thread touches.
pub unsafe fn gemm(p: &Panels, scale: f32, rows: std::ops::Range<usize>, x: &QuantX, y: Dest) {
    assert!(super::vnni::has_vnni() && x.k == p.cols && rows.end <= p.rows);
    // The batch tile reads the interleaved copy.
    assert!(!super::vnni::interleaves(x.n) || x.qi.len() >= 10 * x.n * p.nb);
    #[cfg(target_arch = "x86_64")]
    {
        x86::gemm(p, scale, rows, x, y)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (p, scale, rows, x, y);
        unreachable!("VNNI is x86-only")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Panels, GROUP, PIECE_BLOCKS};
    use crate::kernels::simd::{prefetch_l2, prefetch_near, PF_DIST, PF_FAR};
    use crate::kernels::vnni::QuantX;
    use crate::kernels::Dest;
    use std::arch::x86_64::*;

    struct Args<'a> {
        p: &'a Panels,
        x: &'a QuantX,
        /// First group of the tile (RG groups from there).
        g0: usize,
        /// Blocks b0..b0+bl of the inputs.
        b0: usize,
        bl: usize,
        first: bool,
        last: bool,
        /// Whether this tile prefetches (the first of the sequences' turns).
        pf: bool,
        rows: std::ops::Range<usize>,
        scale: f32,
        y: Dest,
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
    pub unsafe fn gemm(p: &Panels, scale: f32, rows: std::ops::Range<usize>, x: &QuantX, y: Dest) {
        let g_end = rows.end.div_ceil(GROUP);
        let mut g0 = rows.start / GROUP;
        // Up to 8 sequences: one pass over all blocks, every weight line
        // loaded once. More (prompts): 4 at a time take turns over
        // L1-sized pieces of a group pair.
        let one_pass = x.n <= 8;
        let piece = if one_pass { p.nb } else { PIECE_BLOCKS };
        while g0 < g_end {
            // One sequence: one group at a time, one sequential stream;
            // 5 to 8 (the batch tile): one group (the accumulators of
            // two would not fit).
            let rg = if x.n == 1 || crate::kernels::vnni::interleaves(x.n) {
                1
            } else {
                (g_end - g0).min(2)
            };
            let mut b0 = 0;
            while b0 < p.nb {
                let bl = (p.nb - b0).min(piece);
                let mut t0 = 0;
                while t0 < x.n {
                    let nt = if one_pass { x.n } else { (x.n - t0).min(4) };
                    let a = Args {
                        p,
                        x,
                        g0,
                        b0,
                        bl,
                        first: b0 == 0,
                        last: b0 + bl == p.nb,
                        pf: t0 == 0,
                        rows: rows.clone(),
                        scale,
                        y: y.from(t0),
                    };
                    macro_rules! go {
                        ($q:expr) => {
                            // KS chains per sum: enough independent
                            // vpdpbusd chains to cover their latency.
                            match (nt, rg) {
                                (8, _) => batch_tile::<8, $q>(&a),
                                (7, _) => batch_tile::<7, $q>(&a),
                                (6, _) => batch_tile::<6, $q>(&a),
                                (5, _) => batch_tile::<5, $q>(&a),
                                (4, 2) => tile::<4, 2, 1, $q>(&a, t0),
                                (3, 2) => tile::<3, 2, 1, $q>(&a, t0),
                                (2, 2) => tile::<2, 2, 2, $q>(&a, t0),
                                (1, 2) => tile::<1, 2, 4, $q>(&a, t0),
                                (4, _) => tile::<4, 1, 2, $q>(&a, t0),
                                (3, _) => tile::<3, 1, 2, $q>(&a, t0),
                                (2, _) => tile::<2, 1, 4, $q>(&a, t0),
                                _ => tile::<1, 1, 4, $q>(&a, t0),
                            }
                        };
                    }
                    if p.q80 {
                        go!(true)
                    } else {
                        go!(false)
                    }
                    t0 += nt;
                }
                b0 += bl;
            }
            g0 += rg;
        }
    }

    /// Group g's rows (16 from g·GROUP) that lie inside `rows`, as a lane mask.
    #[inline]
    fn group_mask(g: usize, rows: &std::ops::Range<usize>) -> __mmask16 {
        let first = g * GROUP;
        let lo = rows.start.saturating_sub(first).min(GROUP);
        let hi = rows.end.saturating_sub(first).min(GROUP);
        (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as __mmask16
    }

    /// The factor of a group's finished sums: the matrix scale, times each
    /// row's scale for q8_row (the f32s at the group's head).
    ///
    /// # Safety
    /// `head` is the start of a q8_row group (64-byte aligned) unless Q80.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn row_scales<const Q80: bool>(head: *const u8, scale: f32) -> __m512 {
        if Q80 {
            _mm512_set1_ps(scale)
        } else {
            _mm512_mul_ps(_mm512_load_ps(head as *const f32), _mm512_set1_ps(scale))
        }
    }

    /// 5 to 8 sequences (NT), one group, every input block in one pass:
    /// per block, NT `vpdpbusd` chains of 8 (one per sequence) into integer
    /// sums, then one f32 scale each, as [`tile`] computes them (the same
    /// exact block sums, scaled in the same order: the same bits). The
    /// inputs come interleaved ([`QuantX`]'s `qi`: a block's bytes, scales
    /// and corrections of every sequence in one run), so one pointer with
    /// constant offsets addresses them all: with a pointer per sequence,
    /// the 64 broadcasts per block used indexed addresses and the kernel
    /// ran at half this speed with its weights in L2.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
    #[inline]
    unsafe fn batch_tile<const NT: usize, const Q80: bool>(a: &Args) {
        let (p, x) = (a.p, a.x);
        debug_assert!(x.n == NT && a.first && a.last && a.b0 == 0 && a.bl == p.nb);
        debug_assert!(x.qi.len() >= 10 * NT * p.nb);
        let base = p.arena.as_ptr().add(p.at + a.g0 * p.group_lines * 64);
        let first = a.g0 * GROUP;
        let mask = group_mask(a.g0, &a.rows);
        let mut facc = [_mm512_setzero_ps(); NT];
        // As in `tile`: 8 KiB ahead into L1 (L2 where `prefetch_l2`), 24
        // KiB ahead into L2.
        let mut pf = base.wrapping_add(PF_DIST + p.sc_lines * 64);
        let mut w = base.add(p.sc_lines * 64);
        // Block b: q of sequence t at u32 [8t..8t+8], -corr_b at [8·NT + t],
        // d at [9·NT + t].
        let mut xb = x.qi.as_ptr();
        let l2 = prefetch_l2();
        for b in 0..p.nb {
            let mut iacc: [__m512i; NT] =
                std::array::from_fn(|t| _mm512_set1_epi32(*xb.add(8 * NT + t) as i32));
            for s in 0..8 {
                prefetch_near(pf.wrapping_add(64 * s) as *const i8, l2);
                _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add(PF_FAR - PF_DIST + 64 * s) as *const i8);
                let wv = _mm512_load_si512(w.add(64 * s) as *const _);
                for (t, ia) in iacc.iter_mut().enumerate() {
                    let xv = _mm512_set1_epi32(*xb.add(8 * t + s) as i32);
                    *ia = _mm512_dpbusd_epi32(*ia, wv, xv);
                }
            }
            let wsc = if Q80 {
                _mm512_cvtph_ps(_mm256_loadu_si256(base.add(b * 32) as *const _))
            } else {
                _mm512_setzero_ps()
            };
            for (t, f) in facc.iter_mut().enumerate() {
                let dx = _mm512_set1_ps(f32::from_bits(*xb.add(9 * NT + t)));
                let sc = if Q80 { _mm512_mul_ps(wsc, dx) } else { dx };
                *f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc[t]), sc, *f);
            }
            xb = xb.add(10 * NT);
            w = w.add(512);
            pf = pf.wrapping_add(512);
        }
        let rs = row_scales::<Q80>(base, a.scale);
        for (t, f) in facc.iter().enumerate() {
            _mm512_mask_storeu_ps(a.y.at(t, first), mask, _mm512_mul_ps(*f, rs));
        }
    }

    /// Sequences t0..t0+NT, rows of groups g0..g0+RG, input blocks
    /// b0..b0+bl: per block, 8 `vpdpbusd` per (sequence, group) into
    /// integer accumulators (in KS chains, added at the block's end: the
    /// sum is exact whatever KS), then one f32 scale (the input block's,
    /// times the weight block's for Q8_0). Partial sums carry over in y
    /// between pieces; the last piece applies the row scales.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
    #[inline]
    unsafe fn tile<const NT: usize, const RG: usize, const KS: usize, const Q80: bool>(
        a: &Args,
        t0: usize,
    ) {
        let (p, x) = (a.p, a.x);
        let xnb = x.kp / 32;
        let base: [*const u8; RG] =
            std::array::from_fn(|g| p.arena.as_ptr().add(p.at + (a.g0 + g) * p.group_lines * 64));
        let wts: [*const u8; RG] = std::array::from_fn(|g| base[g].add(p.sc_lines * 64));
        // The group's rows inside the range.
        let masks: [__mmask16; RG] = std::array::from_fn(|g| group_mask(a.g0 + g, &a.rows));
        let out = |t: usize, g: usize| a.y.at(t, (a.g0 + g) * GROUP);
        let mut facc = [[_mm512_setzero_ps(); RG]; NT];
        if !a.first {
            for (t, f) in facc.iter_mut().enumerate() {
                for g in 0..RG {
                    f[g] = _mm512_maskz_loadu_ps(masks[g], out(t, g));
                }
            }
        }
        // Prefetch: the RG groups are one run of memory, read at RG lines
        // per step; the prefetch walks it `dist` ahead at that pace. Best
        // of 2 to 32 KiB measured on this machine: 4 KiB for one sequence,
        // 8 KiB for 8. Into L1 (T0; L2 where `prefetch_l2` chose it), as
        // the other kernels: NTA kept no state cached on one VM of this
        // machine kind, and on an Intel one (where NTA lines skip L2) it
        // halved decode: 74 against 155-185 tok/s for 130m q8_0 at 2
        // threads. Decode (up to 8 sequences) also prefetches [`PF_FAR`]
        // ahead into L2 (T1).
        let dist = if x.n == 1 { PF_DIST / 2 } else { PF_DIST };
        let pf0 = base[0].wrapping_add(dist + RG * p.sc_lines * 64);
        let far = if x.n <= 8 { PF_FAR - dist } else { 0 };
        let l2 = prefetch_l2();
        for b in a.b0..a.b0 + a.bl {
            let mut iacc: [[[__m512i; RG]; NT]; KS] = std::array::from_fn(|c| {
                std::array::from_fn(|t| {
                    let corr = if c == 0 {
                        -*x.corr_b.get_unchecked((t0 + t) * xnb + b)
                    } else {
                        0
                    };
                    [_mm512_set1_epi32(corr); RG]
                })
            });
            for s in 0..8 {
                let at = (b * 8 + s) * 64;
                if a.pf {
                    for g in 0..RG {
                        let line = pf0.wrapping_add(RG * at + 64 * g);
                        prefetch_near(line as *const i8, l2);
                        if far > 0 {
                            _mm_prefetch::<_MM_HINT_T1>(line.wrapping_add(far) as *const i8);
                        }
                    }
                }
                let wv: [__m512i; RG] =
                    std::array::from_fn(|g| _mm512_load_si512(wts[g].add(at) as *const _));
                for (t, ia) in iacc[s % KS].iter_mut().enumerate() {
                    let xq = x.q.as_ptr().add((t0 + t) * x.kp + 32 * b + 4 * s) as *const i32;
                    let xb = _mm512_set1_epi32(xq.read_unaligned());
                    for g in 0..RG {
                        ia[g] = _mm512_dpbusd_epi32(ia[g], wv[g], xb);
                    }
                }
            }
            let wsc: [__m512; RG] = std::array::from_fn(|g| {
                if Q80 {
                    _mm512_cvtph_ps(_mm256_loadu_si256(base[g].add(b * 32) as *const _))
                } else {
                    _mm512_setzero_ps()
                }
            });
            for (t, f) in facc.iter_mut().enumerate() {
                let dx = _mm512_set1_ps(*x.d.get_unchecked((t0 + t) * xnb + b));
                for g in 0..RG {
                    let mut sum = iacc[0][t][g];
                    for c in iacc.iter().skip(1) {
                        sum = _mm512_add_epi32(sum, c[t][g]);
                    }
                    let sc = if Q80 { _mm512_mul_ps(wsc[g], dx) } else { dx };
                    f[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), sc, f[g]);
                }
            }
        }
        let rs: [__m512; RG] = std::array::from_fn(|g| row_scales::<Q80>(base[g], a.scale));
        for (t, f) in facc.iter().enumerate() {
            for g in 0..RG {
                let v = if a.last {
                    _mm512_mul_ps(f[g], rs[g])
                } else {
                    f[g]
                };
                _mm512_mask_storeu_ps(out(t, g), masks[g], v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::vnni::has_vnni;
    use crate::kernels::vnni::tests::{close, dest_for, inputs, reference, rng, tensor};
    use crate::model::tensor::Backing;

    fn converted(w: &Tensor) -> Tensor {
        let mut c = w.clone();
        assert!(convert(&mut [&mut c], false));
        c
    }

    #[test]
    fn panel_sums_are_exact_and_independent_of_batch_and_split() {
        if !has_vnni() {
            return; // the f32 path is used on this CPU: nothing to check
        }
        let mut rnd = rng(5);
        for dtype in [DType::Q8Row, DType::Q8_0] {
            for (rows, k) in [
                (1, 32),
                (16, 64),
                (17, 96),
                (40, 768),
                (33, 1056),
                (70, 1600),
                (9, 100),
            ] {
                if dtype.row_bytes(k).is_none() || (dtype == DType::Q8_0 && k % 32 != 0) {
                    continue;
                }
                let w = converted(&tensor(dtype, rows, k, &mut rnd).with_scale(0.75));
                let p = w.panels.as_ref().unwrap();
                for n in 1..=8 {
                    let x = inputs(n, k, &mut rnd);
                    let mut qx = QuantX::default();
                    qx.quantize_rows(&x, n);
                    // Rows start.. (inside a group when 5) into a wider output.
                    let ld = rows + 3;
                    let mut y = vec![f32::NAN; n * ld];
                    let start = [0, 5, 16][(rows + n) % 3].min(rows - 1);
                    let dest = dest_for(&mut y, n, ld);
                    // SAFETY: every t·ld + r (r < rows) is inside y.
                    unsafe { gemm(p, w.scale, start..rows, &qx, dest) };
                    for t in 0..n {
                        let row = &y[t * ld..(t + 1) * ld];
                        assert!(row[..start].iter().chain(&row[rows..]).all(|v| v.is_nan()));
                        for r in start..rows {
                            let want = reference(&w, r, &qx, t);
                            assert!(
                                close(row[r] as f64, want),
                                "{dtype:?} {rows}x{k} n {n}: row {r} input {t}: {} vs {want:?}",
                                row[r]
                            );
                        }
                        // The same bits for this sequence alone, all rows.
                        let mut q1 = QuantX::default();
                        q1.quantize(&x[t * k..(t + 1) * k]);
                        let mut y1 = vec![0.0f32; rows];
                        // SAFETY: rows outputs.
                        unsafe {
                            gemm(
                                p,
                                w.scale,
                                0..rows,
                                &q1,
                                Dest::Strided {
                                    y: y1.as_mut_ptr(),
                                    ld: rows,
                                },
                            )
                        };
                        for r in start..rows {
                            assert_eq!(
                                y1[r].to_bits(),
                                row[r].to_bits(),
                                "{dtype:?} n {n} row {r}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn panel_rows_convert_back_to_the_stored_values() {
        let mut rnd = rng(9);
        for dtype in [DType::Q8Row, DType::Q8_0] {
            for (rows, k) in [(1, 32), (17, 96), (33, 100), (20, 1056)] {
                if dtype.row_bytes(k).is_none() || (dtype == DType::Q8_0 && k % 32 != 0) {
                    continue;
                }
                let w = tensor(dtype, rows, k, &mut rnd).with_scale(1.25);
                let c = converted(&w);
                let (mut a, mut b) = (vec![0.0; k], vec![0.0; k]);
                for r in 0..rows {
                    let mut plain = w.clone();
                    plain.panels = None;
                    crate::kernels::dequant_row(&plain, r, &mut a);
                    crate::kernels::dequant_row(&c, r, &mut b);
                    assert_eq!(
                        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{dtype:?} {rows}x{k} row {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn empty_and_other_matrices_are_left_as_stored() {
        let mut rnd = rng(17);
        let mut empty = tensor(DType::Q8_0, 5, 0, &mut rnd);
        let mut f32s = Tensor::from_f32(&[1.0; 64], 2, 32);
        let mut q = tensor(DType::Q8Row, 3, 40, &mut rnd);
        assert!(convert(&mut [&mut empty, &mut f32s, &mut q], false));
        assert!(empty.panels.is_none() && f32s.panels.is_none() && q.panels.is_some());
    }

    #[test]
    fn released_file_pages_read_back_unchanged() {
        // A Q8_0 matrix in a mapped file, converted with its pages released:
        // the stored rows still read the same (the f32 kernels use them).
        let mut rnd = rng(13);
        let w = tensor(DType::Q8_0, 300, 1024, &mut rnd);
        let path = std::env::temp_dir().join(format!("panels-{}.bin", std::process::id()));
        std::fs::write(&path, w.bytes()).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: a private file of this test, not changed while mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        let backing = Arc::new(Backing::Mmap(map));
        let mut m = Tensor::view(&backing, 0, DType::Q8_0, 300, 1024, "t").unwrap();
        assert!(convert(&mut [&mut m], true));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(m.bytes(), w.bytes());
        let (mut a, mut b) = (vec![0.0; 1024], vec![0.0; 1024]);
        for r in [0, 150, 299] {
            crate::kernels::dequant_row(&w, r, &mut a);
            crate::kernels::dequant_row(&m, r, &mut b);
            assert_eq!(a, b);
        }
    }
}

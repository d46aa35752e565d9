//! Decoding: one token for each of 1 to [`MAX_SEQS`] sequences, the hot path
//! of generation (one sequence) and of batched decode (several, every weight
//! row read once for all of them).
//!
//! The math is [`super::block`]'s, reordered so that threads split the work
//! per channel instead of per product: three phases per layer, each cut
//! into chunks that run on whichever threads are free
//! ([`crate::threads::phased`]).
//!
//! ```text
//!   (caller)  xn = rmsnorm(x)
//!   phase A   per channel ch:  xs, z = in_proj rows ch and d_inner+ch
//!                              u[ch] = SiLU(conv(state[ch], xs));  z = SiLU(z)
//!                              per block b of 128 channels:  part[b] = x_proj[:, b] · u[b]
//!   (caller)  dbl = Σ_b part[b]                                 (dt_low | B | C)
//!   phase C   per channel ch:  dt = softplus(dt_proj[ch] · dt_low + dt_bias[ch])
//!                              h[ch] = exp(dt·A)⊙h + dt·B·u ;  y = (h·C + D·u)·z
//!   phase D   per row r of out_proj:  x[r] += out_proj[r] · y
//!   ... 24 layers ...
//!   (caller)  xn = rmsnorm(x);   phase H: logits[v] = head[v] · xn
//! ```
//!
//! x_proj and dt_proj are kept by column ([`kernels::transposed`], made at
//! load on AVX-512): their rows are short (dt_proj) or few (x_proj), and by
//! column their products need no sums across lanes, and x_proj splits by
//! channel like phase A. Without that copy x_proj gets a phase of its own
//! between A and C (phase B: per row j, dbl[j] = x_proj[j] · u).
//!
//! With one sequence every element is computed by the same kernel call
//! whatever the split, so the logits are bit-identical for any thread count
//! (tested). [`super::block::forward`] (prompts) orders the scan's sums
//! differently (its states stay in registers over a block of tokens): the
//! two agree within f32 rounding (the prompt-vs-step parity tests). With
//! several sequences, each weight row is converted once and used for every
//! sequence ([`simd::dot_rows_multi_r`], the column-major kernels, or the
//! int8 panel kernel). 8-bit weights multiply int8-quantized inputs
//! (`Model::int8_vnni`), bf16 weights bf16-rounded ones (`Model::bf16_dot`,
//! [`kernels::bf16dot`]), for one sequence and a batch alike.

use super::lm::LmState;
use crate::kernels::{self, bf16dot, simd, vnni::QuantParts, vnni::QuantX, Dest};
use crate::model::{Model, Tensor};

/// Most sequences one step advances together.
pub const MAX_SEQS: usize = simd::MULTI_MAX;

/// Channels per partial sum of x_proj, when it is kept by column.
const XBLOCK: usize = 128;

/// Work buffers of one decode step, for up to [`MAX_SEQS`] sequences; row t
/// of each belongs to sequence t.
pub struct StepBufs {
    x: Vec<f32>,      // n × d_model: the residual stream
    xn: Vec<f32>,     // n × d_model: normalized input of the current layer
    xz: Vec<f32>,     // n × 2·d_inner: [xs | SiLU(z)]
    u: Vec<f32>,      // n × d_inner: SiLU(conv(xs))
    dbl: Vec<f32>,    // n × (dt_rank + 2·d_state): [dt_low | B | C]
    xpart: Vec<f32>,  // blocks × n × (dt_rank + 2·d_state): x_proj per channel block
    dt_low: Vec<f32>, // n × dt_rank (dbl's first columns, contiguous)
    dt: Vec<f32>,     // n × d_inner
    y: Vec<f32>,      // n × d_inner: scan output, gated
    out: Vec<f32>,    // n × d_model: out_proj before the residual add
    qx: QuantX,       // the phase's input quantized (int8 weights, VNNI)
    xb: Vec<u16>,     // n × max(d_model, d_inner): the phase's input in bf16 (bf16 weights)
}

impl StepBufs {
    pub fn new(c: &crate::model::LmConfig) -> StepBufs {
        let n = MAX_SEQS;
        StepBufs {
            x: vec![0.0; n * c.d_model],
            xn: vec![0.0; n * c.d_model],
            xz: vec![0.0; n * 2 * c.d_inner],
            u: vec![0.0; n * c.d_inner],
            dbl: vec![0.0; n * (c.dt_rank + 2 * c.d_state)],
            xpart: vec![0.0; c.d_inner.div_ceil(XBLOCK) * n * (c.dt_rank + 2 * c.d_state)],
            dt_low: vec![0.0; n * c.dt_rank],
            dt: vec![0.0; n * c.d_inner],
            y: vec![0.0; n * c.d_inner],
            out: vec![0.0; n * c.d_model],
            qx: QuantX::default(),
            xb: vec![0; n * c.d_model.max(c.d_inner)],
        }
    }
}

/// Raw views of the buffers, shared by the threads of one step.
#[derive(Clone, Copy)]
struct Ptrs {
    x: *mut f32,
    xn: *mut f32,
    xz: *mut f32,
    u: *mut f32,
    dbl: *mut f32,
    xpart: *mut f32,
    dt_low: *mut f32,
    dt: *mut f32,
    y: *mut f32,
    out: *mut f32,
    qx: *mut QuantX,
    xb: *mut u16,
    /// qx's views while the scan phase fills it for out_proj.
    qparts: *mut Option<QuantParts>,
    conv: [*mut f32; MAX_SEQS],
    ssm: [*mut f32; MAX_SEQS],
    /// Each sequence's padded_vocab logits.
    logits: [*mut f32; MAX_SEQS],
}
// SAFETY: within a phase, every chunk writes a disjoint set of elements and
// reads only what earlier phases (or the caller, between phases) wrote;
// `threads::phased` orders the phases with release/acquire hand-offs.
unsafe impl Send for Ptrs {}
unsafe impl Sync for Ptrs {}

/// What phase `p` of the step is.
#[derive(Clone, Copy)]
enum Phase {
    /// in_proj + conv + SiLU, by channel.
    InConv(usize),
    /// x_proj, by row (where x_proj is not kept by column: see `fold`).
    XProj(usize),
    /// dt_proj + softplus + scan + D skip + gate, by channel.
    Scan(usize),
    /// out_proj + residual, by row.
    Out(usize),
    /// lm_head, by row.
    Head,
}

/// Most chunks a [`Split`] cuts (however many threads there are).
const MAX_CHUNKS: usize = 512;

/// Chunk boundaries: `n` items in pieces that start on multiples of `unit`
/// (at least 16, so vector kernels see the same lanes as on a whole row).
#[derive(Clone, Copy)]
struct Split {
    n: usize,
    /// Chunk i is `ends[i - 1]..ends[i]` (`0..ends[0]` first).
    ends: [u32; MAX_CHUNKS],
    count: usize,
}

impl Split {
    /// `pieces` chunks of equal size (the last one shorter), at most
    /// MAX_CHUNKS.
    fn new(n: usize, pieces: usize) -> Split {
        Split::aligned(n, pieces, 16)
    }
    fn aligned(n: usize, pieces: usize, unit: usize) -> Split {
        let pieces = pieces.clamp(1, MAX_CHUNKS);
        let size = n.div_ceil(pieces).div_ceil(unit).max(1) * unit;
        Split::cut(n, |_| size)
    }
    /// Guided: each chunk takes 1/`threads` of what is left (rounded up to
    /// whole units), so the chunks shrink towards one unit at the end: the
    /// first ones are long contiguous runs of weights, and the threads
    /// finish within one short chunk of each other. No chunk is shorter
    /// than n / (MAX_CHUNKS / 2) (rounded up to a unit; one unit for every
    /// split of a 130m-shaped layer, 208 of the head's 50280 rows), so
    /// many threads cannot run out of chunks.
    fn guided(n: usize, threads: usize, unit: usize) -> Split {
        let least = n.div_ceil(MAX_CHUNKS / 2).div_ceil(unit).max(1) * unit;
        Split::cut(n, |left| {
            (left.div_ceil(unit).div_ceil(threads.max(1)) * unit).max(least)
        })
    }
    /// Chunks of `size(items left)` items. Both constructors stay within
    /// MAX_CHUNKS; should a size rule not, the last chunk takes the rest.
    fn cut(n: usize, size: impl Fn(usize) -> usize) -> Split {
        assert!(n <= u32::MAX as usize);
        let (mut ends, mut count, mut at) = ([0u32; MAX_CHUNKS], 0, 0);
        while at < n {
            at = if count + 1 == MAX_CHUNKS {
                n
            } else {
                (at + size(n - at).max(1)).min(n)
            };
            ends[count] = at as u32;
            count += 1;
        }
        Split { n, ends, count }
    }
    fn count(&self) -> usize {
        self.count
    }
    fn range(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        start..(self.ends[i] as usize).min(self.n)
    }
}

/// y.at(t, r) = scale · W[r] · x[t] for r in `rows`, t < n (x is n × W.cols).
/// Rows are read one after another: a chunk's rows are one contiguous stream,
/// which the hardware prefetcher follows (for one sequence, interleaving four
/// rows per pass measured slower on this machine). Batches take 3 adjacent
/// rows per pass ([`multi_rows`]), int8 inputs the VNNI kernels.
///
/// # Safety
/// `y` valid for writes at every `y.at(t, r)`, which no other thread touches.
#[inline]
unsafe fn rows_dot(
    w: &Tensor,
    rows: std::ops::Range<usize>,
    x: &[f32],
    n: usize,
    y: Dest,
    qx: Option<&QuantX>,
    xb: Option<&[u16]>,
) {
    let (rb, k) = (w.row_bytes(), w.cols);
    let bytes = w.bytes();
    if let Some(xb) = xb {
        // bf16 rows, AVX-512 BF16: x was rounded to bf16 once for all rows.
        debug_assert!(w.dtype == crate::model::DType::BF16);
        bf16dot::rows_dot(bytes, rb, k, w.scale, rows, xb, n, y);
        return;
    }
    let mut out = [0.0f32; MAX_SEQS];
    let mut rows = rows;
    if qx.is_none() && w.panels.is_none() {
        // Short rows (at most SHORT_K columns: dt_proj): 16 rows converted
        // once, their sums reduced together (one sequence too: a call per
        // 48-column row cost more than its products; +3.7% per int8 token,
        // +0.5% f16 and bf16).
        if simd::short_rows_multi(w.dtype, bytes, rb, rows.clone(), x, n, k, w.scale, y) {
            return;
        }
    }
    if n > 1 && qx.is_none() {
        // Three rows per pass, then two, where a kernel exists: each input
        // vector is loaded once for all of them.
        rows.start = multi_rows::<3>(w, rows.clone(), x, n, y);
        rows.start = multi_rows::<2>(w, rows.clone(), x, n, y);
    }
    if let Some(qx) = qx {
        // 8-bit rows, VNNI: x was quantized once for all rows (n vectors).
        debug_assert!(qx.n == n && qx.k == k);
        if let Some(p) = &w.panels {
            // Converted at load: one kernel for any n, no repacking.
            kernels::panels::gemm(p, w.scale, rows, qx, y);
        } else if n == 1 {
            for r in rows {
                *y.at(0, r) = kernels::vnni::dot_row(w, r, qx, 0);
            }
        } else {
            kernels::vnni::gemm(w, rows, qx, y);
        }
        return;
    }
    for r in rows {
        let row = &bytes[r * rb..(r + 1) * rb];
        if n == 1 {
            out[0] = kernels::dot_row(w.dtype, row, x);
        } else if !simd::dot_rows_multi(w.dtype, row, x, n, k, &mut out) {
            for (t, o) in out[..n].iter_mut().enumerate() {
                *o = kernels::dot_row(w.dtype, row, &x[t * k..(t + 1) * k]);
            }
        }
        for (t, o) in out[..n].iter().enumerate() {
            *y.at(t, r) = w.scale * o;
        }
    }
}

/// Rows of `rows` R at a time through [`simd::dot_rows_multi_r`], while
/// at least R are left and the kernel exists; returns the first row not done.
///
/// # Safety
/// As [`rows_dot`].
#[inline]
unsafe fn multi_rows<const R: usize>(
    w: &Tensor,
    rows: std::ops::Range<usize>,
    x: &[f32],
    n: usize,
    y: Dest,
) -> usize {
    let (rb, k, bytes) = (w.row_bytes(), w.cols, w.bytes());
    let mut out = [[0.0f32; MAX_SEQS]; R];
    let mut r = rows.start;
    while rows.end - r >= R {
        let block = &bytes[r * rb..(r + R) * rb];
        if !simd::dot_rows_multi_r(w.dtype, block, rb, x, n, k, &mut out) {
            break;
        }
        for (j, o) in out.iter().enumerate() {
            for (t, v) in o[..n].iter().enumerate() {
                *y.at(t, r + j) = w.scale * v;
            }
        }
        r += R;
    }
    r
}

/// Whether batches split their phases in guided chunks (AMD CPUs; see
/// `step`), detected once.
fn batch_guided() -> bool {
    static G: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *G.get_or_init(simd::cpu_vendor_is_amd)
}

/// Feeds `tokens[t]` (< padded_vocab) to the t-th sequence of `seqs`, for
/// 1 to [`MAX_SEQS`] sequences, each given as its state and the buffer for
/// its padded_vocab next-token logits (written in place: a batch needs no
/// copy of its logits afterwards).
pub fn step<'a>(
    model: &Model,
    seqs: impl IntoIterator<Item = (&'a mut LmState, &'a mut [f32])>,
    b: &mut StepBufs,
    tokens: &[u32],
) {
    let c = &model.config;
    let w = &model.weights;
    let n = tokens.len();
    let (dm, di, ds, k, r) = (c.d_model, c.d_inner, c.d_state, c.d_conv, c.dt_rank);
    let (nd, pv) = (r + 2 * ds, c.padded_vocab);
    assert!((1..=MAX_SEQS).contains(&n));
    let mut conv = [std::ptr::null_mut(); MAX_SEQS];
    let mut ssm = [std::ptr::null_mut(); MAX_SEQS];
    let mut logits = [std::ptr::null_mut(); MAX_SEQS];
    let mut count = 0;
    for (t, (st, lg)) in seqs.into_iter().enumerate() {
        assert!(t < n, "more states than tokens");
        assert_eq!(st.conv.len(), c.n_layers * di * k);
        assert_eq!(st.ssm.len(), c.n_layers * di * ds);
        assert_eq!(lg.len(), pv);
        conv[t] = st.conv.as_mut_ptr();
        ssm[t] = st.ssm.as_mut_ptr();
        logits[t] = lg.as_mut_ptr();
        count += 1;
    }
    assert_eq!(count, n, "one state per token");

    let threads = crate::threads::team_size();
    // Enough pieces per phase to balance threads, few enough that a piece
    // streams a long contiguous run of weights: guided chunks, each
    // 1/threads of what is left (halving, with 2 threads) down to one unit.
    // Two equal pieces per thread left a thread waiting for up to a quarter
    // of a phase (one sequence, host 3: 1.4-6.8% more tokens/s by dtype).
    // Batches: guided chunks on AMD CPUs, measured 1.00-1.08 by dtype over
    // three runs on host 3 (since the bf16 products and the prefetched
    // column kernels; mixed before); one piece per thread elsewhere, as host
    // 2 (Intel) measured guided batches 1-3% slower and one long run per
    // thread 2-12% faster than 2 or 4 pieces.
    let guided = n == 1 || batch_guided();
    let split = |n_items: usize, unit: usize| {
        if guided {
            Split::guided(n_items, threads, unit)
        } else {
            Split::aligned(n_items, threads, unit)
        }
    };
    // x_proj kept by column (`kernels::transposed`, AVX-512): each channel
    // chunk adds its own channels' share of x_proj right after making u,
    // one partial sum per block of XBLOCK channels, and the caller adds the
    // blocks' sums in block order before the scan. That spares x_proj a
    // phase of its own (and a wait for the slower thread) in every layer,
    // and its results do not depend on the split.
    let fold = w.layers.iter().all(|l| l.mixer.x_proj_t.is_some());
    let per_layer = if fold { 3 } else { 4 };
    // Channel chunks start on multiples of 64 (each quantizes its part of
    // the scan's output for out_proj in whole 64-input chunks) and, when
    // x_proj is folded, of XBLOCK.
    let ch = split(di, if fold { XBLOCK } else { 64 });
    let xp = Split::new(nd, 2 * threads);
    let outs = split(dm, 16);
    let head = if n > 1 {
        Split::new(pv, 4 * threads)
    } else {
        Split::guided(pv, threads, 16)
    };
    let n_layers = c.n_layers;
    let phase = |p: usize| -> Phase {
        let (l, i) = (p / per_layer, p % per_layer);
        match (l < n_layers, fold, i) {
            (false, ..) => Phase::Head,
            (true, _, 0) => Phase::InConv(l),
            (true, false, 1) => Phase::XProj(l),
            (true, true, 1) | (true, false, 2) => Phase::Scan(l),
            _ => Phase::Out(l),
        }
    };
    let chunks = |p: usize| match phase(p) {
        Phase::InConv(_) | Phase::Scan(_) => ch.count(),
        Phase::XProj(_) => xp.count(),
        Phase::Out(_) => outs.count(),
        Phase::Head => head.count(),
    };
    // The weight matrix of each phase, and whether its input is quantized
    // for the VNNI int8 kernel (one sequence, q8_row weights).
    let weight = |p: usize| -> &Tensor {
        match phase(p) {
            Phase::InConv(l) => &w.layers[l].mixer.in_proj,
            Phase::XProj(l) => &w.layers[l].mixer.x_proj,
            Phase::Scan(l) => &w.layers[l].mixer.dt_proj,
            Phase::Out(l) => &w.layers[l].mixer.out_proj,
            Phase::Head => w.head(),
        }
    };
    let vnni = model.int8_vnni && kernels::vnni::has_vnni();
    // x_proj and dt_proj (dt, B, C: the scan's sensitive inputs, ~3% of the
    // multiply-adds) keep exact inputs.
    let use_q = |p: usize| {
        vnni && !matches!(phase(p), Phase::XProj(_) | Phase::Scan(_))
            && kernels::vnni::gemm_dtype(weight(p).dtype)
    };
    // bf16 weights of the same phases, AVX-512 BF16: their input rounded
    // to bf16 (`kernels::bf16dot`), made between the phases (in_proj, the
    // head) or by the scan's chunks (out_proj's input, as for int8).
    let use_b = |p: usize| {
        matches!(phase(p), Phase::InConv(_) | Phase::Out(_) | Phase::Head)
            && bf16dot::rounds(model.bf16_dot, weight(p))
    };
    let mut qparts: Option<QuantParts> = None;
    let ptr = Ptrs {
        x: b.x.as_mut_ptr(),
        xn: b.xn.as_mut_ptr(),
        xz: b.xz.as_mut_ptr(),
        u: b.u.as_mut_ptr(),
        dbl: b.dbl.as_mut_ptr(),
        xpart: b.xpart.as_mut_ptr(),
        dt_low: b.dt_low.as_mut_ptr(),
        dt: b.dt.as_mut_ptr(),
        y: b.y.as_mut_ptr(),
        out: b.out.as_mut_ptr(),
        qx: &mut b.qx,
        xb: b.xb.as_mut_ptr(),
        qparts: &mut qparts,
        conv,
        ssm,
        logits,
    };
    // SAFETY (all `slice` calls below): each view lies inside its buffer,
    // whose length is fixed by StepBufs::new for MAX_SEQS sequences or
    // checked above; the phase comments say which chunk writes what, and
    // views written in a phase do not overlap views read in it.
    let slice = |p: *mut f32, at: usize, len: usize| unsafe {
        std::slice::from_raw_parts_mut(p.add(at), len)
    };

    let work = |p: usize, i: usize| {
        // Capture `ptr` whole (it is Sync; its raw-pointer fields are not).
        #[allow(clippy::redundant_locals)]
        let ptr = ptr;
        // SAFETY: qx is written only between phases (by `between`).
        let qx = use_q(p).then(|| unsafe { &*ptr.qx });
        // SAFETY: xb is written between phases and, for out_proj's input,
        // by the scan phase's chunks (each its own channels); read here
        // only in the phase after.
        let xb = use_b(p).then(|| unsafe {
            let k = weight(p).cols;
            &*std::ptr::slice_from_raw_parts(ptr.xb, n * k)
        });
        match phase(p) {
            Phase::InConv(l) => {
                // Writes, per sequence t: xz[t][ch], xz[t][di + ch], u[t][ch]
                // and the conv state of ch.
                let m = &w.layers[l].mixer;
                let rg = ch.range(i);
                let xn = &*slice(ptr.xn, 0, n * dm);
                // The chunk's conv states (k floats per channel and sequence) come
                // from memory: ask for them now, so that they arrive while
                // the products run (a batch-8 step's conv section took
                // ~20% less thread time).
                for t in 0..n {
                    let state = &*slice(ptr.conv[t], (l * di + rg.start) * k, rg.len() * k);
                    simd::prefetch_start(state, usize::MAX);
                }
                // SAFETY: rows of this chunk's channels, t < n, inside xz.
                unsafe {
                    let xz = Dest::Strided {
                        y: ptr.xz,
                        ld: 2 * di,
                    };
                    rows_dot(&m.in_proj, rg.clone(), xn, n, xz, qx, xb);
                    rows_dot(&m.in_proj, di + rg.start..di + rg.end, xn, n, xz, qx, xb);
                }
                let cw = m.conv_w.as_f32();
                let cb = m.conv_b.as_ref().map(|b| b.as_f32());
                for t in 0..n {
                    let xs = slice(ptr.xz, t * 2 * di + rg.start, rg.len());
                    let z = slice(ptr.xz, t * 2 * di + di + rg.start, rg.len());
                    if let Some(bias) = &m.in_proj_bias {
                        let bias = bias.as_f32();
                        for (v, bv) in xs.iter_mut().zip(&bias[rg.clone()]) {
                            *v += bv;
                        }
                        for (v, bv) in z.iter_mut().zip(&bias[di + rg.start..di + rg.end]) {
                            *v += bv;
                        }
                    }
                    kernels::silu_slice(z);
                    let state = slice(ptr.conv[t], (l * di + rg.start) * k, rg.len() * k);
                    let u = slice(ptr.u, t * di + rg.start, rg.len());
                    let cw = &cw[rg.start * k..rg.end * k];
                    if k == 4 {
                        // Every Mamba checkpoint: 16 channels per step on
                        // AVX-512 (`conv4_step` gives its order of sums).
                        simd::conv4_step(state, cw, xs, u);
                    } else {
                        for (j, (s, wk)) in state
                            .chunks_exact_mut(k)
                            .zip(cw.chunks_exact(k))
                            .enumerate()
                        {
                            s.copy_within(1.., 0);
                            s[k - 1] = xs[j];
                            let mut acc = 0.0f32;
                            for q in 0..k {
                                acc += s[q] * wk[q];
                            }
                            u[j] = acc;
                        }
                    }
                    if let Some(cb) = cb {
                        for (v, b) in u.iter_mut().zip(&cb[rg.clone()]) {
                            *v += b;
                        }
                    }
                    kernels::silu_slice(u);
                }
                if let (true, Some(xt)) = (fold, &m.x_proj_t) {
                    // Writes xpart[b][t][..] for the chunk's blocks b (rg
                    // starts on a block), reading u[t][b's channels], which
                    // this chunk wrote above.
                    for b in rg.start / XBLOCK..rg.end.div_ceil(XBLOCK) {
                        let cols = b * XBLOCK..((b + 1) * XBLOCK).min(di);
                        let y = ptr.xpart.wrapping_add(b * n * nd);
                        // SAFETY: u[t·di + k] for t < n, k in cols lies in
                        // u and is this chunk's; block b's n × nd sums lie
                        // in xpart and are this chunk's alone.
                        unsafe {
                            xt.part_dot(0..nd, cols, ptr.u, di, n, Dest::Strided { y, ld: nd })
                        };
                    }
                }
            }
            Phase::XProj(l) => {
                // Writes dbl[t][rows].
                let u = &*slice(ptr.u, 0, n * di);
                // SAFETY: this chunk's rows, t < n, inside dbl.
                unsafe {
                    rows_dot(
                        &w.layers[l].mixer.x_proj,
                        xp.range(i),
                        u,
                        n,
                        Dest::Strided { y: ptr.dbl, ld: nd },
                        qx,
                        None,
                    )
                };
            }
            Phase::Scan(l) => {
                // Writes, per sequence t: dt[t][ch], the SSM state of ch, y[t][ch].
                let m = &w.layers[l].mixer;
                let rg = ch.range(i);
                let dt_low = &*slice(ptr.dt_low, 0, n * r);
                let dt_dest = Dest::Strided { y: ptr.dt, ld: di };
                // SAFETY: this chunk's channels, t < n, inside dt.
                unsafe {
                    match &m.dt_proj_t {
                        // By column: no lane sums (`kernels::transposed`).
                        Some(tp) => tp.rows_dot(rg.clone(), dt_low, n, dt_dest),
                        None => rows_dot(&m.dt_proj, rg.clone(), dt_low, n, dt_dest, qx, None),
                    }
                };
                let (a, dvec) = (m.a.as_f32(), m.d.as_f32());
                for t in 0..n {
                    let dt = slice(ptr.dt, t * di + rg.start, rg.len());
                    for (v, bv) in dt.iter_mut().zip(&m.dt_bias.as_f32()[rg.clone()]) {
                        *v += bv;
                    }
                    kernels::softplus_slice(dt);
                    let dbl = &*slice(ptr.dbl, t * nd, nd);
                    let (bvec, cvec) = (&dbl[r..r + ds], &dbl[r + ds..nd]);
                    let h = slice(ptr.ssm[t], (l * di + rg.start) * ds, rg.len() * ds);
                    if t + 1 < n {
                        // The next sequence's states (from memory): their
                        // first 4 KiB while this one's scan runs.
                        let next = &*slice(ptr.ssm[t + 1], (l * di + rg.start) * ds, rg.len() * ds);
                        simd::prefetch_start(next, 4096);
                    }
                    let u = &*slice(ptr.u, t * di + rg.start, rg.len());
                    let z = &*slice(ptr.xz, t * 2 * di + di + rg.start, rg.len());
                    let y = slice(ptr.y, t * di + rg.start, rg.len());
                    let ar = &a[rg.start * ds..rg.end * ds];
                    kernels::scan_channels(h, ar, bvec, cvec, dt, u, &dvec[rg.clone()], y);
                    for (yv, zv) in y.iter_mut().zip(z) {
                        *yv *= zv;
                    }
                    // out_proj's int8 input, quantized here while y is in
                    // this core's cache, instead of by the caller alone
                    // between the phases.
                    // SAFETY: set by `between` before this phase; only this
                    // chunk writes sequence t's chunks of these channels.
                    if let Some(parts) = unsafe { *ptr.qparts } {
                        unsafe { parts.quantize(t, rg.start, y) };
                    }
                    if use_b(p + 1) {
                        // SAFETY: sequence t's entries of this chunk's
                        // channels in xb (n × d_inner for out_proj): ours.
                        let xb = unsafe {
                            std::slice::from_raw_parts_mut(ptr.xb.add(t * di + rg.start), rg.len())
                        };
                        bf16dot::round_slice(y, xb);
                    }
                }
            }
            Phase::Out(l) => {
                // Writes out[t][rows] and x[t][rows].
                let m = &w.layers[l].mixer;
                let rg = outs.range(i);
                let y = &*slice(ptr.y, 0, n * di);
                // SAFETY: this chunk's rows, t < n, inside out.
                unsafe {
                    rows_dot(
                        &m.out_proj,
                        rg.clone(),
                        y,
                        n,
                        Dest::Strided { y: ptr.out, ld: dm },
                        qx,
                        xb,
                    )
                };
                for t in 0..n {
                    let o = slice(ptr.out, t * dm + rg.start, rg.len());
                    if let Some(bias) = &m.out_proj_bias {
                        for (v, bv) in o.iter_mut().zip(&bias.as_f32()[rg.clone()]) {
                            *v += bv;
                        }
                    }
                    for (xv, ov) in slice(ptr.x, t * dm + rg.start, rg.len())
                        .iter_mut()
                        .zip(o.iter())
                    {
                        *xv += ov;
                    }
                }
            }
            Phase::Head => {
                let xn = &*slice(ptr.xn, 0, n * dm);
                // SAFETY: this chunk's rows of each sequence's logits (pv each).
                unsafe {
                    rows_dot(
                        w.head(),
                        head.range(i),
                        xn,
                        n,
                        Dest::Each(ptr.logits),
                        qx,
                        xb,
                    )
                };
            }
        }
    };

    let between = |p: usize| {
        // Capture `ptr` whole (it is Send; its raw-pointer fields are not).
        #[allow(clippy::redundant_locals)]
        let ptr = ptr;
        if p == 0 {
            for (t, &tok) in tokens.iter().enumerate() {
                kernels::dequant_row(&w.embedding, tok as usize, slice(ptr.x, t * dm, dm));
            }
        }
        let norm = match phase(p) {
            Phase::InConv(l) => Some(w.layers[l].norm.as_f32()),
            Phase::Head => Some(w.norm_f.as_f32()),
            Phase::Scan(_) => {
                if fold {
                    // dbl = the blocks' x_proj sums, added in block order.
                    let dbl = slice(ptr.dbl, 0, n * nd);
                    for b in 0..di.div_ceil(XBLOCK) {
                        let part = &*slice(ptr.xpart, b * n * nd, n * nd);
                        if b == 0 {
                            dbl.copy_from_slice(part);
                        } else {
                            for (d, v) in dbl.iter_mut().zip(part) {
                                *d += v;
                            }
                        }
                    }
                }
                for t in 0..n {
                    let src = &*slice(ptr.dbl, t * nd, r);
                    slice(ptr.dt_low, t * r, r).copy_from_slice(src);
                }
                None
            }
            _ => None,
        };
        if let Some(norm) = norm {
            let x = &*slice(ptr.x, 0, n * dm);
            kernels::rmsnorm_rows(slice(ptr.xn, 0, n * dm), x, norm, c.norm_eps);
        }
        // The scan phase quantizes out_proj's input as it makes it.
        // SAFETY: no chunk runs between phases; qx and qparts are ours here.
        unsafe {
            *ptr.qparts = match phase(p) {
                Phase::Scan(_) if use_q(p + 1) => Some((*ptr.qx).prepare(n, di)),
                _ => None,
            };
        }
        if use_b(p) && matches!(phase(p), Phase::InConv(_) | Phase::Head) {
            let input = &*slice(ptr.xn, 0, n * dm);
            // SAFETY: no chunk runs between phases; xb is ours alone here.
            let xb = unsafe { std::slice::from_raw_parts_mut(ptr.xb, n * dm) };
            bf16dot::round_slice(input, xb);
        }
        // x_proj and dt_proj take exact inputs (use_q is false for them).
        if use_q(p) && matches!(phase(p), Phase::InConv(_) | Phase::Head) {
            let input = &*slice(ptr.xn, 0, n * dm);
            // SAFETY: no chunk runs between phases; qx is ours alone here.
            unsafe { (*ptr.qx).quantize_rows(input, n) };
        }
    };

    crate::threads::phased(per_layer * n_layers + 1, chunks, work, between);
}

#[cfg(test)]
mod tests {
    use super::{Split, MAX_CHUNKS};

    /// The chunks of `s` cover 0..n in order, each non-empty and starting
    /// on a multiple of `unit`; returns their lengths.
    fn lengths(s: &Split, n: usize, unit: usize) -> Vec<usize> {
        assert!(s.count() >= 1 && s.count() <= MAX_CHUNKS);
        let mut at = 0;
        let mut lens = Vec::new();
        for i in 0..s.count() {
            let r = s.range(i);
            assert_eq!(r.start, at, "chunk {i} of {n}");
            assert!(r.end > r.start || n == 0, "chunk {i} of {n} is empty");
            assert_eq!(r.start % unit, 0, "chunk {i} of {n} starts off a unit");
            lens.push(r.len());
            at = r.end;
        }
        assert_eq!(at, n);
        lens
    }

    #[test]
    fn equal_splits_cover_every_item_once() {
        for n in [1, 15, 16, 17, 768, 1536, 50280, 50288, 1 << 20] {
            for pieces in [1, 2, 3, 4, 8, 16, 64, 256, 1000] {
                for unit in [16, 64, 128] {
                    let lens = lengths(&Split::aligned(n, pieces, unit), n, unit);
                    assert!(
                        lens.len() <= pieces.clamp(1, MAX_CHUNKS),
                        "{n} in {pieces}: {lens:?}"
                    );
                    assert!(lens[..lens.len() - 1].windows(2).all(|w| w[0] == w[1]));
                }
            }
        }
    }

    #[test]
    fn guided_splits_shrink_to_one_unit() {
        // 1536 channels in 128s, 2 threads: 6, 3, 2, 1 blocks.
        let s = Split::guided(1536, 2, 128);
        assert_eq!(lengths(&s, 1536, 128), [768, 384, 256, 128]);
        for n in [1, 16, 100, 768, 1536, 2048, 50280, 50288, 1 << 20] {
            for threads in [1, 2, 3, 4, 8, 64, 256, 1000] {
                for unit in [16, 64, 128] {
                    let lens = lengths(&Split::guided(n, threads, unit), n, unit);
                    if threads == 1 {
                        assert_eq!(lens, [n]);
                    }
                    // Non-increasing, but for the last of MAX_CHUNKS, which
                    // takes whatever is left.
                    let body = &lens[..lens.len().min(MAX_CHUNKS - 1)];
                    assert!(
                        body.windows(2).all(|w| w[0] >= w[1]),
                        "{n}/{threads}: {lens:?}"
                    );
                    // Down to one unit, or to the floor of n / (MAX_CHUNKS / 2).
                    let least = n.div_ceil(MAX_CHUNKS / 2).div_ceil(unit) * unit;
                    if threads > 1 && n > unit {
                        assert!(
                            *lens.last().unwrap() <= least.max(unit),
                            "{n}/{threads}: {lens:?}"
                        );
                    }
                    assert!(
                        lens.len() <= MAX_CHUNKS / 2 + 1,
                        "{n}/{threads}: {} chunks",
                        lens.len()
                    );
                }
            }
        }
    }
}

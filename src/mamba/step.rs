//! Decoding one token of one sequence, the hot path of generation.
//!
//! The math is [`super::block`]'s, reordered so that threads split the work
//! per channel instead of per product: four phases per layer, each cut into
//! chunks that run on whichever threads are free ([`crate::threads::phased`]).
//!
//! ```text
//!   (caller)  xn = rmsnorm(x)
//!   phase A   per channel ch:  xs, z = in_proj rows ch and d_inner+ch
//!                              u[ch] = SiLU(conv(state[ch], xs));  z = SiLU(z)
//!   phase B   per row j of x_proj:  dbl[j] = x_proj[j] · u       (dt_low | B | C)
//!   phase C   per channel ch:  dt = softplus(dt_proj[ch] · dt_low + dt_bias[ch])
//!                              h[ch] = exp(dt·A)⊙h + dt·B·u ;  y = (h·C + D·u)·z
//!   phase D   per row r of out_proj:  x[r] += out_proj[r] · y
//!   ... 24 layers ...
//!   (caller)  xn = rmsnorm(x);   phase H: logits[v] = head[v] · xn
//! ```
//!
//! Every element is computed by the same kernel call as the one-product-at-a-
//! time path, so the results are bit-identical to [`super::block::forward`]
//! with one token.

use super::lm::LmState;
use crate::kernels;
use crate::model::{Model, Tensor};

/// Work buffers of one decode step.
pub struct StepBufs {
    x: Vec<f32>,   // d_model: the residual stream
    xn: Vec<f32>,  // d_model: normalized input of the current layer
    xz: Vec<f32>,  // 2·d_inner: [SiLU(conv(xs)) is in u; SiLU(z) here]
    u: Vec<f32>,   // d_inner
    dbl: Vec<f32>, // dt_rank + 2·d_state
    dt: Vec<f32>,  // d_inner
}

impl StepBufs {
    pub fn new(c: &crate::model::LmConfig) -> StepBufs {
        StepBufs {
            x: vec![0.0; c.d_model],
            xn: vec![0.0; c.d_model],
            xz: vec![0.0; 2 * c.d_inner],
            u: vec![0.0; c.d_inner],
            dbl: vec![0.0; c.dt_rank + 2 * c.d_state],
            dt: vec![0.0; c.d_inner],
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
    dt: *mut f32,
    conv: *mut f32,
    ssm: *mut f32,
    logits: *mut f32,
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
    /// x_proj, by row.
    XProj(usize),
    /// dt_proj + softplus + scan + D skip + gate, by channel.
    Scan(usize),
    /// out_proj + residual, by row.
    Out(usize),
    /// lm_head, by row.
    Head,
}

/// Chunk boundaries: `n` items in pieces of `size` (a multiple of 16, so
/// vector kernels see the same lanes as on a whole row).
#[derive(Clone, Copy)]
struct Split {
    n: usize,
    size: usize,
}

impl Split {
    fn new(n: usize, pieces: usize) -> Split {
        let size = n.div_ceil(pieces.max(1)).div_ceil(16).max(1) * 16;
        Split { n, size }
    }
    fn count(self) -> usize {
        self.n.div_ceil(self.size)
    }
    fn range(self, i: usize) -> std::ops::Range<usize> {
        i * self.size..((i + 1) * self.size).min(self.n)
    }
}

/// y[i] = scale · W[rows.start + i] · x, one row after another: the rows
/// of a chunk are one contiguous stream, which the hardware prefetcher
/// follows (interleaving four rows measured slower on this machine).
#[inline]
fn rows_dot(w: &Tensor, rows: std::ops::Range<usize>, x: &[f32], y: &mut [f32]) {
    let rb = w.row_bytes();
    let bytes = w.bytes();
    for (yv, r) in y.iter_mut().zip(rows) {
        *yv = w.scale * kernels::dot_row(w.dtype, &bytes[r * rb..(r + 1) * rb], x);
    }
}

/// Feeds `token` (< padded_vocab) to one sequence; writes the next-token
/// logits (padded_vocab) to `logits`.
pub fn step(model: &Model, st: &mut LmState, b: &mut StepBufs, token: u32, logits: &mut [f32]) {
    let c = &model.config;
    let w = &model.weights;
    let (dm, di, ds, k, r) = (c.d_model, c.d_inner, c.d_state, c.d_conv, c.dt_rank);
    let nd = r + 2 * ds;
    assert_eq!(logits.len(), c.padded_vocab);
    assert_eq!(st.conv.len(), c.n_layers * di * k);
    assert_eq!(st.ssm.len(), c.n_layers * di * ds);

    let t = rayon::current_num_threads();
    // Enough pieces per phase to balance threads, few enough that a piece
    // streams a long contiguous run of weights (2 per thread measured best
    // of 1, 2, 4 on this machine).
    let ch = Split::new(di, 2 * t);
    let xp = Split::new(nd, 2 * t);
    let out = Split::new(dm, 2 * t);
    let head = Split::new(c.padded_vocab, 4 * t);
    let n_layers = c.n_layers;
    let phase = |p: usize| -> Phase {
        let l = p / 4;
        match (l < n_layers, p % 4) {
            (false, _) => Phase::Head,
            (true, 0) => Phase::InConv(l),
            (true, 1) => Phase::XProj(l),
            (true, 2) => Phase::Scan(l),
            _ => Phase::Out(l),
        }
    };
    let chunks = |p: usize| match phase(p) {
        Phase::InConv(_) | Phase::Scan(_) => ch.count(),
        Phase::XProj(_) => xp.count(),
        Phase::Out(_) => out.count(),
        Phase::Head => head.count(),
    };
    let ptr = Ptrs {
        x: b.x.as_mut_ptr(),
        xn: b.xn.as_mut_ptr(),
        xz: b.xz.as_mut_ptr(),
        u: b.u.as_mut_ptr(),
        dbl: b.dbl.as_mut_ptr(),
        dt: b.dt.as_mut_ptr(),
        conv: st.conv.as_mut_ptr(),
        ssm: st.ssm.as_mut_ptr(),
        logits: logits.as_mut_ptr(),
    };
    // SAFETY (all `slice` calls below): each view lies inside its buffer, whose
    // length is checked above or fixed by StepBufs::new; the phase comments
    // say which chunk writes what.
    let slice = |p: *mut f32, at: usize, len: usize| unsafe {
        std::slice::from_raw_parts_mut(p.add(at), len)
    };

    let work = |p: usize, i: usize| {
        // Capture `ptr` whole (it is Sync; its raw-pointer fields are not).
        #[allow(clippy::redundant_locals)]
        let ptr = ptr;
        match phase(p) {
            Phase::InConv(l) => {
                // Writes xz[ch], xz[di + ch], u[ch] and the conv state of ch.
                let m = &w.layers[l].mixer;
                let rg = ch.range(i);
                let xn = &*slice(ptr.xn, 0, dm);
                let xs = slice(ptr.xz, rg.start, rg.len());
                rows_dot(&m.in_proj, rg.clone(), xn, xs);
                let z = slice(ptr.xz, di + rg.start, rg.len());
                rows_dot(&m.in_proj, di + rg.start..di + rg.end, xn, z);
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
                let cw = m.conv_w.as_f32();
                let cb = m.conv_b.as_ref().map(|b| b.as_f32());
                let state = slice(ptr.conv, (l * di + rg.start) * k, rg.len() * k);
                let u = slice(ptr.u, rg.start, rg.len());
                for (j, chn) in rg.clone().enumerate() {
                    let s = &mut state[j * k..(j + 1) * k];
                    let wk = &cw[chn * k..(chn + 1) * k];
                    s.copy_within(1.., 0);
                    s[k - 1] = xs[j];
                    let mut acc = 0.0f32;
                    for q in 0..k {
                        acc += s[q] * wk[q];
                    }
                    if let Some(cb) = cb {
                        acc += cb[chn];
                    }
                    u[j] = acc;
                }
                kernels::silu_slice(u);
            }
            Phase::XProj(l) => {
                // Writes dbl[rows].
                let rg = xp.range(i);
                let u = &*slice(ptr.u, 0, di);
                rows_dot(
                    &w.layers[l].mixer.x_proj,
                    rg.clone(),
                    u,
                    slice(ptr.dbl, rg.start, rg.len()),
                );
            }
            Phase::Scan(l) => {
                // Writes dt[ch], the SSM state of ch, and y[ch] (into xz[ch]).
                let m = &w.layers[l].mixer;
                let rg = ch.range(i);
                let dbl = &*slice(ptr.dbl, 0, nd);
                let dt = slice(ptr.dt, rg.start, rg.len());
                rows_dot(&m.dt_proj, rg.clone(), &dbl[..r], dt);
                for (v, bv) in dt.iter_mut().zip(&m.dt_bias.as_f32()[rg.clone()]) {
                    *v += bv;
                }
                kernels::softplus_slice(dt);
                let (bvec, cvec) = (&dbl[r..r + ds], &dbl[r + ds..nd]);
                let (a, dvec) = (m.a.as_f32(), m.d.as_f32());
                let h = slice(ptr.ssm, (l * di + rg.start) * ds, rg.len() * ds);
                let u = &*slice(ptr.u, rg.start, rg.len());
                let z = &*slice(ptr.xz, di + rg.start, rg.len());
                let y = slice(ptr.xz, rg.start, rg.len());
                for (j, chn) in rg.enumerate() {
                    let acc = kernels::scan_channel(
                        &mut h[j * ds..(j + 1) * ds],
                        &a[chn * ds..(chn + 1) * ds],
                        bvec,
                        cvec,
                        dt[j],
                        u[j],
                    );
                    y[j] = (acc + u[j] * dvec[chn]) * z[j];
                }
            }
            Phase::Out(l) => {
                // Writes x[rows].
                let m = &w.layers[l].mixer;
                let rg = out.range(i);
                let y = &*slice(ptr.xz, 0, di);
                let mut o = [0.0f32; 16];
                for r0 in rg.clone().step_by(16) {
                    let r1 = (r0 + 16).min(rg.end);
                    let o = &mut o[..r1 - r0];
                    rows_dot(&m.out_proj, r0..r1, y, o);
                    if let Some(bias) = &m.out_proj_bias {
                        for (v, bv) in o.iter_mut().zip(&bias.as_f32()[r0..r1]) {
                            *v += bv;
                        }
                    }
                    for (xv, ov) in slice(ptr.x, r0, r1 - r0).iter_mut().zip(o.iter()) {
                        *xv += ov;
                    }
                }
            }
            Phase::Head => {
                let rg = head.range(i);
                let xn = &*slice(ptr.xn, 0, dm);
                rows_dot(
                    w.head(),
                    rg.clone(),
                    xn,
                    slice(ptr.logits, rg.start, rg.len()),
                );
            }
        }
    };

    let between = |p: usize| {
        let x = slice(ptr.x, 0, dm);
        if p == 0 {
            kernels::dequant_row(&w.embedding, token as usize, x);
        }
        let norm = match phase(p) {
            Phase::InConv(l) => w.layers[l].norm.as_f32(),
            Phase::Head => w.norm_f.as_f32(),
            _ => return,
        };
        kernels::rmsnorm(slice(ptr.xn, 0, dm), x, norm, c.norm_eps);
    };

    crate::threads::phased(4 * n_layers + 1, chunks, work, between);
}

//! The Mamba-1 mixer, computed exactly as HF transformers' `MambaMixer`
//! slow path (CPU, float32). Follow one token from top to bottom:
//!
//! ```text
//!   x ──in_proj──► [xs | z]
//!   xs ──causal depthwise conv1d (width d_conv) + bias──► SiLU ──► u
//!   u ──x_proj──► [dt_low | B | C]
//!   dt = softplus(dt_proj(dt_low) + dt_bias)
//!   h  = exp(dt·A) ⊙ h + (dt·B)·u            (per channel, per state)
//!   y  = (h·C + D·u) ⊙ SiLU(z)
//!   out = out_proj(y)
//! ```
//!
//! Two entry points compute the same thing: [`step`] for one token and
//! [`prompt`] for a block of tokens, where every projection becomes a
//! matrix-matrix product over the tokens and only the scan runs in time order.

use crate::kernels::{self, par_rows, SyncPtr};
use crate::model::MixerWeights;

/// The mixer's dimensions (copied from the model config).
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub d_model: usize,
    pub d_inner: usize,
    pub d_state: usize,
    pub d_conv: usize,
    pub dt_rank: usize,
    /// Run 8-bit weights' products in int8 (`Model::int8_vnni`).
    pub int8: bool,
    /// Round bf16 weights' inputs to bf16 (`Model::bf16_dot`).
    pub bf16: bool,
}

impl Dims {
    pub fn dbl(&self) -> usize {
        self.dt_rank + 2 * self.d_state
    }
}

/// Work buffers for a block of up to `cap` tokens (cap = 1 for step mode).
/// Allocated once per session; nothing is allocated per token.
pub struct Scratch {
    pub cap: usize,
    xz: Vec<f32>,     // cap × 2·d_inner
    u: Vec<f32>,      // cap × d_inner   (conv output after SiLU)
    dbl: Vec<f32>,    // cap × (dt_rank + 2·d_state)
    dt_low: Vec<f32>, // cap × dt_rank
    dt: Vec<f32>,     // cap × d_inner
    y: Vec<f32>,      // cap × d_inner
    hist: Vec<f32>,   // (d_conv - 1) × d_inner (the conv window's history, row-major)
    cwt: Vec<f32>,    // d_conv × d_inner (conv weights, tap-major)
}

impl Scratch {
    pub fn new(d: &Dims, cap: usize) -> Scratch {
        Scratch {
            cap,
            xz: vec![0.0; cap * 2 * d.d_inner],
            u: vec![0.0; cap * d.d_inner],
            dbl: vec![0.0; cap * d.dbl()],
            dt_low: vec![0.0; cap * d.dt_rank],
            dt: vec![0.0; cap * d.d_inner],
            y: vec![0.0; cap * d.d_inner],
            hist: vec![0.0; (d.d_conv.max(1) - 1) * d.d_inner],
            cwt: vec![0.0; d.d_conv * d.d_inner],
        }
    }
}

/// One token through the causal conv: each channel's window `st` (oldest
/// first, channel-major) shifts in its input from `x`, and `u` gets the
/// window's dot with the channel's taps, plus the bias.
fn conv_token(st: &mut [f32], cw: &[f32], cb: Option<&[f32]>, x: &[f32], k: usize, u: &mut [f32]) {
    for (ch, (uc, &xc)) in u.iter_mut().zip(x).enumerate() {
        let (w, wk) = (&mut st[ch * k..(ch + 1) * k], &cw[ch * k..(ch + 1) * k]);
        w.copy_within(1.., 0);
        w[k - 1] = xc;
        let mut acc = 0.0f32;
        for j in 0..k {
            acc += w[j] * wk[j];
        }
        if let Some(cb) = cb {
            acc += cb[ch];
        }
        *uc = acc;
    }
}

/// The causal conv of one sequence's `n` tokens (the x half of `xz`) into
/// `u`, channels innermost so that it vectorizes: the same products added in
/// the same order as [`conv_token`] token by token (bit-identical), with
/// the window's history taken from and left in `st` (channel-major, oldest
/// first).
#[allow(clippy::too_many_arguments)]
fn conv_seq(
    st: &mut [f32],
    cw: &[f32],
    cb: Option<&[f32]>,
    xz: &[f32],
    n: usize,
    di: usize,
    k: usize,
    hist: &mut [f32],
    cwt: &mut [f32],
    u: &mut [f32],
) {
    let h = k - 1;
    let hist = &mut hist[..h * di];
    for ch in 0..di {
        for j in 0..k {
            cwt[j * di + ch] = cw[ch * k + j];
        }
        for j in 0..h {
            hist[j * di + ch] = st[ch * k + 1 + j];
        }
    }
    let (hist, cwt) = (&*hist, &*cwt);
    // Row i of the conv's input sequence: the h history rows, then the
    // tokens' x halves (read in place from xz).
    let row = |i: usize| {
        if i < h {
            &hist[i * di..(i + 1) * di]
        } else {
            &xz[(i - h) * 2 * di..(i - h) * 2 * di + di]
        }
    };
    par_rows(&mut u[..n * di], di, |t0, rows| {
        for (i, ut) in rows.chunks_exact_mut(di).enumerate() {
            let t = t0 + i;
            ut.fill(0.0);
            for j in 0..k {
                let (p, w) = (row(t + j), &cwt[j * di..(j + 1) * di]);
                for ((o, &pv), &wv) in ut.iter_mut().zip(p).zip(w) {
                    *o += pv * wv;
                }
            }
            if let Some(cb) = cb {
                for (o, &b) in ut.iter_mut().zip(cb) {
                    *o += b;
                }
            }
        }
    });
    // The window after the last token: the last k rows.
    for j in 0..k {
        for (ch, &v) in row(n - 1 + j).iter().enumerate() {
            st[ch * k + j] = v;
        }
    }
}

/// y (n × rows) = x (n × cols) · Wᵀ for x_proj and dt_proj: through their
/// column-major copy where the model has one (decode steps use it too, so
/// the stored rows are not read again after load), four tokens per call,
/// the calls spread over the threads; else [`kernels::matmul`].
fn small_matmul(
    w: &crate::model::Tensor,
    t: Option<&kernels::transposed::Transposed>,
    x: &[f32],
    n: usize,
    y: &mut [f32],
) {
    let Some(t) = t else {
        return kernels::matmul(w, x, n, y);
    };
    let (rows, cols) = (t.rows, t.cols);
    assert!(x.len() >= n * cols && y.len() >= n * rows);
    const PER: usize = 4;
    let yp = SyncPtr(y.as_mut_ptr());
    crate::threads::par_for(n.div_ceil(PER), |c| {
        let (t0, m) = (c * PER, PER.min(n - c * PER));
        let dest = kernels::Dest::Strided {
            y: yp.get().wrapping_add(t0 * rows),
            ld: rows,
        };
        // SAFETY: task c alone writes rows t0..t0 + m of y (inside it).
        unsafe { t.rows_dot(0..rows, &x[t0 * cols..(t0 + m) * cols], m, dest) };
    });
}

fn add_bias(rows: &mut [f32], width: usize, bias: Option<&crate::model::Tensor>) {
    if let Some(b) = bias {
        let b = b.as_f32();
        for row in rows.chunks_exact_mut(width) {
            for (v, bv) in row.iter_mut().zip(b) {
                *v += bv;
            }
        }
    }
}

/// One sequence's recurrent state for one layer: the conv state
/// (d_inner × d_conv, newest input last) and the SSM state (d_inner × d_state).
pub type LayerState<'a> = (&'a mut [f32], &'a mut [f32]);

/// Runs `n` rows of `x` (each d_model wide, already normalized) through the
/// mixer and writes n × d_model to `out`.
///
/// With one state, the rows are consecutive tokens of one sequence (prompt
/// mode: the conv and scan run in time order). With `n` states, row t is the
/// next token of sequence t (batched decode: every weight matrix is read once
/// for all sequences).
pub fn forward(
    w: &MixerWeights,
    d: &Dims,
    states: &mut [LayerState<'_>],
    x: &[f32],
    n: usize,
    s: &mut Scratch,
    out: &mut [f32],
) {
    assert!(n >= 1 && n <= s.cap);
    assert!(states.len() == 1 || states.len() == n);
    let per_row = states.len() > 1;
    let (di, k, r) = (d.d_inner, d.d_conv, d.dt_rank);
    let nd = d.dbl();

    // 1. in_proj: [xs | z] for every token.
    let xz = &mut s.xz[..n * 2 * di];
    kernels::matmul_q(&w.in_proj, x, n, xz, d.int8, d.bf16);
    add_bias(xz, 2 * di, w.in_proj_bias.as_ref());

    // 2. causal depthwise conv1d over time, then SiLU. The conv state holds
    //    the last d_conv inputs of each channel, oldest first.
    let cw = w.conv_w.as_f32();
    let cb = w.conv_b.as_ref().map(|b| b.as_f32());
    let u = &mut s.u[..n * di];
    if per_row {
        for (t, ut) in u.chunks_exact_mut(di).enumerate() {
            let x = &xz[t * 2 * di..t * 2 * di + di];
            conv_token(&mut *states[t].0, cw, cb, x, k, ut);
        }
    } else {
        let st = &mut *states[0].0;
        conv_seq(st, cw, cb, xz, n, di, k, &mut s.hist, &mut s.cwt, u);
    }
    par_rows(u, di, |_, rows| kernels::silu_slice(rows));

    // 3. x_proj to [dt_low | B | C]; 4. dt = softplus(dt_proj(dt_low) + bias).
    //    (Exact inputs even with d.int8: these feed the scan's dt, B and C.)
    let dbl = &mut s.dbl[..n * nd];
    small_matmul(&w.x_proj, w.x_proj_t.as_deref(), u, n, dbl);
    let dt_low = &mut s.dt_low[..n * r];
    for t in 0..n {
        dt_low[t * r..(t + 1) * r].copy_from_slice(&dbl[t * nd..t * nd + r]);
    }
    let dt = &mut s.dt[..n * di];
    small_matmul(&w.dt_proj, w.dt_proj_t.as_deref(), dt_low, n, dt);
    let dtb = w.dt_bias.as_f32();
    par_rows(dt, di, |_, rows| {
        for row in rows.chunks_exact_mut(di) {
            for (v, b) in row.iter_mut().zip(dtb) {
                *v += b;
            }
            kernels::softplus_slice(row);
        }
    });

    // 5. selective scan in time order, per channel, plus the D skip:
    //    h = exp(dt·A) ⊙ h + (dt·B)·u ;  y = h·C + D·u
    let y = &mut s.y[..n * di];
    scan(w, d, states, dbl, dt, u, n, y);
    //    then the gate: y ⊙ SiLU(z).
    let xzp = SyncPtr(xz.as_mut_ptr());
    par_rows(y, di, |t0, rows| {
        for (i, yt) in rows.chunks_exact_mut(di).enumerate() {
            let t = t0 + i;
            // SAFETY: row t's z half lies inside xz (n rows of 2·di); the
            // runs of rows are disjoint, so only this call touches it.
            let z = unsafe { std::slice::from_raw_parts_mut(xzp.get().add(t * 2 * di + di), di) };
            kernels::silu_slice(z);
            for (yv, zv) in yt.iter_mut().zip(z.iter()) {
                *yv *= zv;
            }
        }
    });

    // 6. out_proj (bf16 weights: of y rounded to bf16 inside, as decode does).
    kernels::matmul_q(&w.out_proj, y, n, &mut out[..n * d.d_model], d.int8, d.bf16);
    add_bias(
        &mut out[..n * d.d_model],
        d.d_model,
        w.out_proj_bias.as_ref(),
    );
}

/// Below this many state updates the scan runs on the calling thread.
const PAR_SCAN_MIN: usize = 1 << 16;

/// The selective scan for n rows: y[t, ch] = Σ_j h[ch, j]·C[t, j] + D[ch]·u[t, ch]
/// after h[ch, :] is updated with row t. Channels are independent, so a long
/// prompt is split over threads by channel; a batch is split by sequence.
#[allow(clippy::too_many_arguments)]
fn scan(
    w: &MixerWeights,
    d: &Dims,
    states: &mut [LayerState<'_>],
    dbl: &[f32],
    dt: &[f32],
    u: &[f32],
    n: usize,
    y: &mut [f32],
) {
    let (di, ds, r, nd) = (d.d_inner, d.d_state, d.dt_rank, d.dbl());
    let a = w.a.as_f32();
    let dvec = w.d.as_f32();
    let per_row = states.len() > 1;
    // Rows t0..t1, channels ch0..ch1; `ssm(t)` is row t's SSM state.
    let run = |t0: usize,
               t1: usize,
               ch0: usize,
               ch1: usize,
               ssm: &dyn Fn(usize) -> SyncPtr,
               yp: SyncPtr| {
        for t in t0..t1 {
            let h_all = ssm(t).0;
            let bvec = &dbl[t * nd + r..t * nd + r + ds];
            let cvec = &dbl[t * nd + r + ds..t * nd + r + 2 * ds];
            let (cs, rs) = (ch0 * ds..ch1 * ds, t * di + ch0..t * di + ch1);
            // SAFETY: channels ch0..ch1 of this row's state, and y[t, ch0..ch1]
            // (inside n·di), belong to this worker alone.
            let (h, yt) = unsafe {
                (
                    std::slice::from_raw_parts_mut(h_all.add(cs.start), cs.len()),
                    std::slice::from_raw_parts_mut(yp.0.add(rs.start), rs.len()),
                )
            };
            let (dtr, ur) = (&dt[rs.clone()], &u[rs]);
            kernels::scan_channels(h, &a[cs], bvec, cvec, dtr, ur, &dvec[ch0..ch1], yt);
        }
    };
    let yp = SyncPtr(y.as_mut_ptr());
    let parallel = n * di * ds >= PAR_SCAN_MIN && rayon::current_num_threads() > 1;
    if per_row {
        let hp: Vec<SyncPtr> = states
            .iter_mut()
            .map(|s| SyncPtr(s.1.as_mut_ptr()))
            .collect();
        let state_of = |t: usize| hp[t];
        if parallel {
            crate::threads::par_for(n, |t| run(t, t + 1, 0, di, &state_of, yp));
        } else {
            run(0, n, 0, di, &state_of, yp);
        }
    } else {
        // One sequence: each range of channels runs the whole block of rows
        // (kernels::scan::scan_tokens keeps 16 channels' state in registers).
        let h = SyncPtr(states[0].1.as_mut_ptr());
        let channels = |ch0: usize, ch1: usize| {
            let cs = ch0 * ds..ch1 * ds;
            // SAFETY: channels ch0..ch1 of the state and of y's n rows belong
            // to this call alone; the state holds di·ds values.
            unsafe {
                let hs = std::slice::from_raw_parts_mut(h.get().add(cs.start), cs.len());
                let rows = kernels::scan::TokenRows {
                    n,
                    bc: &dbl[r..],
                    bc_stride: nd,
                    dt: &dt[ch0..],
                    u: &u[ch0..],
                    y: yp.get().add(ch0),
                    stride: di,
                };
                kernels::scan::scan_tokens(hs, &a[cs], &dvec[ch0..ch1], &rows);
            }
        };
        if parallel {
            let chunk = di.div_ceil(rayon::current_num_threads() * 4).max(16);
            crate::threads::par_for(di.div_ceil(chunk), |c| {
                channels(c * chunk, ((c + 1) * chunk).min(di))
            });
        } else {
            channels(0, di);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{conv_seq, conv_token};

    /// conv_seq against conv_token run token by token (as `forward` runs a
    /// batch's rows): same outputs and final state, bit for bit.
    #[test]
    fn conv_seq_matches_the_token_loop_bit_for_bit() {
        let val = |i: usize| ((i * 7919 % 1009) as f32 - 504.0) / 97.0;
        for (k, n, di, bias) in [
            (4, 1, 5, true),
            (4, 7, 37, false),
            (1, 3, 16, true),
            (2, 2, 8, true),
        ] {
            let cw: Vec<f32> = (0..di * k).map(|i| val(i + 3)).collect();
            let cb: Vec<f32> = (0..di).map(|i| val(i + 11)).collect();
            let xz: Vec<f32> = (0..n * 2 * di).map(|i| val(i + 29)).collect();
            let st0: Vec<f32> = (0..di * k).map(|i| val(i + 57)).collect();
            let cb = bias.then_some(&cb[..]);

            let mut st_ref = st0.clone();
            let mut u_ref = vec![0.0f32; n * di];
            for (t, ut) in u_ref.chunks_exact_mut(di).enumerate() {
                conv_token(
                    &mut st_ref,
                    &cw,
                    cb,
                    &xz[t * 2 * di..t * 2 * di + di],
                    k,
                    ut,
                );
            }

            let mut st = st0.clone();
            let mut u = vec![0.0f32; n * di];
            let (mut hist, mut cwt) = (vec![0.0; (k - 1) * di], vec![0.0; k * di]);
            conv_seq(&mut st, &cw, cb, &xz, n, di, k, &mut hist, &mut cwt, &mut u);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&u), bits(&u_ref), "k {k} n {n} di {di}");
            assert_eq!(bits(&st), bits(&st_ref), "state, k {k} n {n} di {di}");
        }
    }
}

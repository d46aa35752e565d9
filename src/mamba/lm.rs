//! The Mamba language model: embedding, n × (x + mixer(rmsnorm(x))), final
//! RMSNorm, lm_head. Works on a [`LmState`] (the recurrent state of one
//! sequence) and an [`LmScratch`] (its work buffers).

use super::block::{self, Dims, LayerState, Scratch};
use super::step::{self, StepBufs};
use crate::kernels;
use crate::model::{LmConfig, Model};

/// Most sequences [`forward_few`] advances at once.
pub const MAX_FEW: usize = step::MAX_SEQS;

/// Prompt tokens processed together as one matrix-matrix block. Each
/// block streams every weight once: 128 against 64 runs a 128-token f32
/// prompt 7-10% faster on host 2 (alternating runs), for ~2.5 MB more
/// scratch in a session that runs prompts (untouched pages otherwise).
pub const PROMPT_BLOCK: usize = 128;

/// The recurrent state of one sequence, all layers.
#[derive(Clone)]
pub struct LmState {
    /// n_layers × d_inner × d_conv, the newest input last.
    pub conv: Vec<f32>,
    /// n_layers × d_inner × d_state.
    pub ssm: Vec<f32>,
}

impl LmState {
    pub fn new(c: &LmConfig) -> LmState {
        LmState {
            conv: vec![0.0; c.conv_state_len()],
            ssm: vec![0.0; c.ssm_state_len()],
        }
    }
    pub fn reset(&mut self) {
        self.conv.fill(0.0);
        self.ssm.fill(0.0);
    }
}

/// Work buffers sized for one block of up to [`PROMPT_BLOCK`] tokens.
pub struct LmScratch {
    mixer: Scratch,
    step: StepBufs,
    x: Vec<f32>,   // block × d_model: the residual stream
    xn: Vec<f32>,  // block × d_model: normalized input of the current layer
    out: Vec<f32>, // block × d_model: mixer output
    pub logits: Vec<f32>,
    /// n × padded_vocab logits of a batch of more than [`MAX_FEW`] sessions
    /// (grown on first use; fewer write each session's logits in place).
    pub batch_logits: Vec<f32>,
}

pub fn dims(c: &LmConfig) -> Dims {
    Dims {
        d_model: c.d_model,
        d_inner: c.d_inner,
        d_state: c.d_state,
        d_conv: c.d_conv,
        dt_rank: c.dt_rank,
        int8: false,
        bf16: false,
    }
}

impl LmScratch {
    pub fn new(c: &LmConfig) -> LmScratch {
        let cap = PROMPT_BLOCK;
        LmScratch {
            mixer: Scratch::new(&dims(c), cap),
            step: StepBufs::new(c),
            x: vec![0.0; cap * c.d_model],
            xn: vec![0.0; cap * c.d_model],
            out: vec![0.0; cap * c.d_model],
            logits: vec![0.0; c.padded_vocab],
            batch_logits: Vec::new(),
        }
    }
}

/// Which logits a block of tokens computes.
pub enum Logits<'a> {
    /// None: a prompt block followed by more of the prompt (the lm_head
    /// reads the whole embedding matrix, as much as a decode step's layers).
    Skip,
    /// The last position's, into the scratch's `logits`.
    Last,
    /// Every position's (tokens × padded_vocab), the last also into `logits`.
    All(&'a mut [f32]),
}

/// Runs `tokens` (at most PROMPT_BLOCK, all < padded_vocab) through the
/// model and computes the `logits` asked for. (A single token always leaves
/// its logits in `s.logits`.)
pub fn forward_block(
    model: &Model,
    st: &mut LmState,
    s: &mut LmScratch,
    tokens: &[u32],
    logits: Logits<'_>,
) {
    if let [tok] = tokens {
        step::step(model, [(st, &mut s.logits[..])], &mut s.step, &[*tok]);
        if let Logits::All(all) = logits {
            all[..s.logits.len()].copy_from_slice(&s.logits);
        }
        return;
    }
    crate::threads::team(|| run_layers(model, &mut [st], s, tokens, logits))
}

/// Advances `states.len()` sequences by one token each (`tokens[i]` for
/// sequence i), reading each weight matrix once for all of them. Writes
/// n × padded_vocab logits to `logits`.
pub fn forward_batch(
    model: &Model,
    states: &mut [&mut LmState],
    s: &mut LmScratch,
    tokens: &[u32],
    logits: &mut [f32],
) {
    assert_eq!(states.len(), tokens.len());
    if tokens.len() <= MAX_FEW {
        let pv = model.config.padded_vocab;
        assert_eq!(logits.len(), tokens.len() * pv);
        let seqs = states
            .iter_mut()
            .map(|s| &mut **s)
            .zip(logits.chunks_mut(pv));
        return step::step(model, seqs, &mut s.step, tokens);
    }
    crate::threads::team(|| run_layers(model, states, s, tokens, Logits::All(logits)))
}

/// [`forward_batch`] for at most [`step::MAX_SEQS`] sequences, given as an
/// iterator (no collection needed: batched decode allocates nothing): the
/// first sequence's state and scratch (its `logits` receive its logits),
/// then each other sequence's state and logits buffer (padded_vocab each).
pub fn forward_few<'a>(
    model: &Model,
    first: &'a mut LmState,
    s: &'a mut LmScratch,
    others: impl IntoIterator<Item = (&'a mut LmState, &'a mut [f32])>,
    tokens: &[u32],
) {
    let LmScratch { step, logits, .. } = s;
    let seqs = std::iter::once((first, &mut logits[..])).chain(others);
    step::step(model, seqs, step, tokens)
}

/// The body of both: with one state the tokens are a sequence, with one
/// state per token they are a batch of sequences.
fn run_layers(
    model: &Model,
    states: &mut [&mut LmState],
    s: &mut LmScratch,
    tokens: &[u32],
    logits: Logits<'_>,
) {
    let c = &model.config;
    let w = &model.weights;
    let n = tokens.len();
    assert!(n >= 1 && n <= PROMPT_BLOCK);
    let (dm, di) = (c.d_model, c.d_inner);
    let d = Dims {
        int8: model.int8_vnni,
        bf16: model.bf16_dot,
        ..dims(c)
    };

    // Embedding lookup.
    for (t, &tok) in tokens.iter().enumerate() {
        kernels::dequant_row(&w.embedding, tok as usize, &mut s.x[t * dm..(t + 1) * dm]);
    }
    // Residual blocks: x = x + mixer(rmsnorm(x)).
    for (l, layer) in w.layers.iter().enumerate() {
        norm_rows(
            &mut s.xn[..n * dm],
            &s.x[..n * dm],
            layer.norm.as_f32(),
            c.norm_eps,
        );
        let (ck, cs) = (di * c.d_conv, di * c.d_state);
        let xn = &s.xn[..n * dm];
        if let [st] = states {
            let mut one = [(
                &mut st.conv[l * ck..(l + 1) * ck],
                &mut st.ssm[l * cs..(l + 1) * cs],
            )];
            block::forward(&layer.mixer, &d, &mut one, xn, n, &mut s.mixer, &mut s.out);
        } else {
            let mut per: Vec<LayerState> = states
                .iter_mut()
                .map(|st| {
                    (
                        &mut st.conv[l * ck..(l + 1) * ck],
                        &mut st.ssm[l * cs..(l + 1) * cs],
                    )
                })
                .collect();
            block::forward(&layer.mixer, &d, &mut per, xn, n, &mut s.mixer, &mut s.out);
        }
        let out = &s.out[..n * dm];
        kernels::par_rows(&mut s.x[..n * dm], dm, |t0, x| {
            for (xv, ov) in x.iter_mut().zip(&out[t0 * dm..]) {
                *xv += ov;
            }
        });
    }
    // Final norm and lm_head: for every position when asked, else the last.
    let norm_f = w.norm_f.as_f32();
    let head = w.head();
    let v = c.padded_vocab;
    match logits {
        Logits::Skip => {}
        Logits::All(all) => {
            norm_rows(&mut s.xn[..n * dm], &s.x[..n * dm], norm_f, c.norm_eps);
            kernels::matmul_q(head, &s.xn[..n * dm], n, &mut all[..n * v], d.int8, d.bf16);
            s.logits.copy_from_slice(&all[(n - 1) * v..n * v]);
        }
        Logits::Last => {
            let last = (n - 1) * dm;
            kernels::rmsnorm(&mut s.xn[..dm], &s.x[last..last + dm], norm_f, c.norm_eps);
            kernels::matmul_q(head, &s.xn[..dm], 1, &mut s.logits, d.int8, d.bf16);
        }
    }
}

/// RMSNorm of each row of `x` (rows as wide as `w`) into `out`, runs of
/// rows in parallel (each row's result does not depend on the split).
fn norm_rows(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let d = w.len();
    kernels::par_rows(out, d, |t0, rows| {
        kernels::rmsnorm_rows(rows, &x[t0 * d..t0 * d + rows.len()], w, eps)
    });
}

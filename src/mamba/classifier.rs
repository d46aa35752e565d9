//! The classifier forward pass: front end → Mamba blocks → pooling → head.
//!
//! ```text
//!   frames (T × W) ──Linear──► T × P ──[norm][SiLU]──► [+ cls row] ──[transpose]──► steps × d_model
//!   steps ──blocks (pre-norm residual | post-norm)──► [final norm] ──pool──► head ──► logits
//! ```
//!
//! Each sequence starts from a zero state and runs through
//! [`super::seq_mixer::mixer_seq`] (the math of [`super::block::prompt`],
//! vectorized across channels; matrix-matrix products over all steps). With `lengths`, only the valid
//! frames are run: the model is causal, so this equals running the padded
//! sequence and pooling over the valid steps (a cls token goes after the
//! valid frames).

use super::seq_mixer::{mixer_seq, SeqScratch};
use crate::error::{Error, Result};
use crate::kernels::silu;
use crate::model::classifier::{BlockStyle, ClassifierModel, ClsPos, HeadKind, InputKind, Pooling};

/// Reusable buffers for one sequence at a time (one per thread).
pub struct Workspace {
    scratch: SeqScratch,
    proj: Vec<f32>,
    x: Vec<f32>,
    tmp: Vec<f32>,
    mix: Vec<f32>,
    pooled: Vec<f32>,
    hidden: Vec<f32>,
}

impl Workspace {
    pub fn new(m: &ClassifierModel) -> Workspace {
        let c = &m.config;
        Workspace {
            scratch: SeqScratch::default(),
            proj: Vec::new(),
            x: Vec::new(),
            tmp: Vec::new(),
            mix: Vec::new(),
            pooled: vec![0.0; c.pooled_width()],
            hidden: vec![0.0; c.head_hidden],
        }
    }

    fn reserve(&mut self, m: &ClassifierModel, steps: usize, rows: usize) {
        let c = &m.config;
        let n = steps * c.d_model;
        for v in [&mut self.x, &mut self.tmp, &mut self.mix] {
            if v.len() < n {
                v.resize(n, 0.0);
            }
        }
        if self.proj.len() < rows * c.proj_width {
            self.proj.resize(rows * c.proj_width, 0.0);
        }
    }
}

/// Logits of one sequence of `n_frames` frames (`features` is n_frames ×
/// input_width, row-major) into `logits` (n_classes).
pub fn forward(
    m: &ClassifierModel,
    ws: &mut Workspace,
    features: &[f32],
    n_frames: usize,
    logits: &mut [f32],
) -> Result<()> {
    let c = &m.config;
    let w = &m.weights;
    if features.len() != n_frames * c.input_width {
        return Err(Error::invalid(format!(
            "{} feature values for {n_frames} frames of {}",
            features.len(),
            c.input_width
        )));
    }
    if n_frames == 0 {
        return Err(Error::invalid("a sequence needs at least one frame"));
    }
    if c.input_frames != 0
        && n_frames != c.input_frames
        && (c.transpose || c.pooling == Pooling::LastFeature)
    {
        return Err(Error::invalid(format!(
            "the model takes exactly {} frames, got {n_frames}",
            c.input_frames
        )));
    }
    if logits.len() != c.n_classes {
        return Err(Error::invalid(format!(
            "logits buffer holds {}, the model has {} classes",
            logits.len(),
            c.n_classes
        )));
    }
    let p = c.proj_width;
    let dm = c.d_model;
    let has_cls = c.cls != ClsPos::None;
    let rows = n_frames + usize::from(has_cls);
    let steps = if c.transpose { p } else { rows };
    ws.reserve(m, steps, rows);

    // 1. front end: rows of the projected frames, with the cls row in place.
    let first = usize::from(c.cls == ClsPos::Prepend);
    {
        let proj = &mut ws.proj[..rows * p];
        let body = &mut proj[first * p..(first + n_frames) * p];
        super::seq_gemm::matmul(
            &w.frontend.weight,
            m.packed.frontend.as_ref(),
            features,
            n_frames,
            body,
        );
        if let Some(b) = &w.frontend.bias {
            for row in body.chunks_exact_mut(p) {
                for (v, bv) in row.iter_mut().zip(b.as_f32()) {
                    *v += bv;
                }
            }
        }
        if let Some(norm) = &w.frontend_norm {
            let tmp = &mut ws.tmp[..n_frames * p];
            tmp.copy_from_slice(body);
            norm.apply(tmp, body);
        }
        if c.frontend_silu {
            body.iter_mut().for_each(|v| *v = silu(*v));
        }
        if let Some(cls) = &w.cls_token {
            let at = if c.cls == ClsPos::Prepend {
                0
            } else {
                n_frames
            };
            proj[at * p..(at + 1) * p].copy_from_slice(cls.as_f32());
        }
    }

    // 2. the sequence the blocks see: steps × d_model.
    let x = &mut ws.x[..steps * dm];
    if c.transpose {
        // rows × p  →  p × rows (rows == d_model, checked by validate)
        for r in 0..rows {
            for j in 0..p {
                x[j * dm + r] = ws.proj[r * p + j];
            }
        }
    } else {
        x.copy_from_slice(&ws.proj[..rows * p]);
    }

    // 3. blocks.
    let dims = c.dims();
    for (layer, packed) in w.layers.iter().zip(&m.packed.layers) {
        let tmp = &mut ws.tmp[..steps * dm];
        let mix = &mut ws.mix[..steps * dm];
        match c.block_style {
            BlockStyle::PreNormResidual => {
                layer.norm.apply(x, tmp);
                mixer_seq(
                    &layer.mixer,
                    packed,
                    &dims,
                    tmp,
                    steps,
                    &mut ws.scratch,
                    mix,
                );
                for (xv, mv) in x.iter_mut().zip(mix.iter()) {
                    *xv += mv;
                }
            }
            BlockStyle::PostNorm => {
                mixer_seq(&layer.mixer, packed, &dims, x, steps, &mut ws.scratch, mix);
                layer.norm.apply(mix, x);
            }
        }
    }

    // 4. final norm.
    if let Some(norm) = &w.final_norm {
        let tmp = &mut ws.tmp[..steps * dm];
        tmp.copy_from_slice(x);
        norm.apply(tmp, x);
    }

    // 5. pooling.
    let pooled = &mut ws.pooled;
    match c.pooling {
        Pooling::Last => pooled.copy_from_slice(&x[(steps - 1) * dm..]),
        Pooling::Mean => {
            pooled.fill(0.0);
            for row in x.chunks_exact(dm) {
                for (o, v) in pooled.iter_mut().zip(row) {
                    *o += v;
                }
            }
            let inv = 1.0 / steps as f32;
            pooled.iter_mut().for_each(|v| *v *= inv);
        }
        Pooling::Max => {
            pooled.copy_from_slice(&x[..dm]);
            for row in x.chunks_exact(dm).skip(1) {
                for (o, &v) in pooled.iter_mut().zip(row) {
                    if v > *o {
                        *o = v;
                    }
                }
            }
        }
        Pooling::LastFeature => {
            for (t, o) in pooled.iter_mut().enumerate() {
                *o = x[t * dm + dm - 1];
            }
        }
    }

    // 6. head.
    match (c.head, &w.head_hidden) {
        (HeadKind::Mlp, Some(h)) => {
            h.apply(pooled, 1, &mut ws.hidden);
            ws.hidden.iter_mut().for_each(|v| *v = silu(*v));
            w.head.apply(&ws.hidden, 1, logits);
        }
        _ => w.head.apply(pooled, 1, logits),
    }
    Ok(())
}

/// Softmax of `logits` into `probs` (same length).
pub fn softmax(logits: &[f32], probs: &mut [f32]) {
    let mx = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for (p, &l) in probs.iter_mut().zip(logits) {
        *p = (l - mx).exp();
        sum += *p;
    }
    probs.iter_mut().for_each(|p| *p /= sum);
}

/// The index of the largest value (the first one on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Model input of raw audio samples in [-1, 1] at `sample_rate`: frames ×
/// features, row-major (the MFCC front end transposed).
pub fn audio_features(m: &ClassifierModel, samples: &[f32], sample_rate: u32) -> Result<Vec<f32>> {
    let fe = m.frontend.as_ref().ok_or_else(|| {
        Error::invalid("the model does not take audio (its input is not MFCC features)")
    })?;
    if let InputKind::Audio { mfcc, .. } = &m.config.input {
        if sample_rate != mfcc.sample_rate {
            return Err(Error::unsupported(format!(
                "audio at {sample_rate} Hz, the model needs {} Hz (no resampling)",
                mfcc.sample_rate
            )));
        }
    }
    let f = fe.features(samples);
    Ok(crate::audio::transpose(&f, fe.n_features(), fe.n_frames()))
}

/// Model input of one image of bytes (0..=255), normalized as the model says.
pub fn image_features(m: &ClassifierModel, pixels: &[u8], out: &mut [f32]) -> Result<()> {
    match &m.config.input {
        InputKind::Image { mean, std, .. } => {
            if pixels.len() != m.config.input_width || out.len() != pixels.len() {
                return Err(Error::invalid(format!(
                    "{} pixels, the model takes {}",
                    pixels.len(),
                    m.config.input_width
                )));
            }
            for (o, &p) in out.iter_mut().zip(pixels) {
                *o = (p as f32 / 255.0 - mean) / std;
            }
            Ok(())
        }
        _ => Err(Error::invalid("the model does not take images")),
    }
}

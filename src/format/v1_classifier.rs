//! The C project's v1 keyword-spotting and MNIST files (c-project.md §5),
//! float32. The header does not say which family a file holds: its eight
//! ints are read as a language model, a keyword spotter and an MNIST model,
//! and the one reading whose body size matches the file exactly decides.
//!
//! - keyword spotting: n_layers, n_classes, dim, input_dim, d_inner, dt_rank,
//!   d_state, d_conv. Body: cls_token, proj weight, proj bias, then each Mamba
//!   tensor kind for all layers (in_proj, conv1d w, conv1d b, x_proj, dt_proj
//!   w, dt_proj b, A, D, out_proj), the layer norms, fc weight, fc bias.
//! - MNIST: n_layers, input_size, dim, d_inner, dt_rank, d_state, d_conv,
//!   num_classes. Body: input_proj weight, then per layer in_proj, conv1d w,
//!   conv1d b, x_proj, dt_proj w, dt_proj b, A, D, out_proj, norm; final norm,
//!   classifier weight. The C project's exporter drops the biases of
//!   input_proj, in_proj, out_proj and the classifier, so the model read
//!   from such a file has none.
//!
//! The norms, eps and input description follow the real models
//! (shared/data/README.md): the keyword spotter is post-norm RMSNorm with
//! eps = f32 epsilon, cls appended, transposed, last-feature pooling, and
//! takes 16 kHz audio when its input is 69 = 3 × 23 MFCC features over 135
//! frames; the MNIST model is pre-norm RMSNorm eps 1e-6 with a final norm.

use super::v1::{read_header, HEADER_BYTES};
use crate::audio::MfccParams;
use crate::error::{Error, Result};
use crate::model::classifier::*;
use crate::model::{Backing, DType, MixerWeights, Tensor, MAX_DIM};
use std::sync::Arc;

const KWS_LABELS: [&str; 10] = [
    "down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes",
];

fn dims(h: &[i32; 8]) -> Option<[usize; 8]> {
    let mut d = [0usize; 8];
    for (o, &v) in d.iter_mut().zip(h) {
        if v <= 0 || v as usize > MAX_DIM {
            return None;
        }
        *o = v as usize;
    }
    Some(d)
}

/// f32 elements of the per-layer Mamba tensors (in_proj … out_proj) of one layer.
fn mixer_elems(dm: usize, di: usize, dr: usize, ds: usize, dc: usize) -> Option<usize> {
    let parts = [
        (2 * di).checked_mul(dm)?,
        di.checked_mul(dc)?,
        di,
        (dr + 2 * ds).checked_mul(di)?,
        di.checked_mul(dr)?,
        di,
        di.checked_mul(ds)?,
        di,
        dm.checked_mul(di)?,
    ];
    parts.iter().try_fold(0usize, |a, &b| a.checked_add(b))
}

fn lm_bytes(d: &[usize; 8], shared: i32) -> Option<usize> {
    let [nl, vocab, dim, di, dr, ds, dc, _] = *d;
    let rv = vocab.div_ceil(8) * 8;
    let per = mixer_elems(dim, di, dr, ds, dc)?.checked_add(dim)?;
    let head = if shared == 0 { rv.checked_mul(dim)? } else { 0 };
    let n = rv
        .checked_mul(dim)?
        .checked_add(per.checked_mul(nl)?)?
        .checked_add(dim)?
        .checked_add(head)?;
    n.checked_mul(4)?.checked_add(HEADER_BYTES)
}

fn kws_bytes(d: &[usize; 8]) -> Option<usize> {
    let [nl, nc, dim, inp, di, dr, ds, dc] = *d;
    let n = dim
        .checked_add(dim.checked_mul(inp)?)?
        .checked_add(dim)?
        .checked_add(mixer_elems(dim, di, dr, ds, dc)?.checked_mul(nl)?)?
        .checked_add(nl.checked_mul(dim)?)?
        .checked_add(nc.checked_mul(dim)?)?
        .checked_add(nc)?;
    n.checked_mul(4)?.checked_add(HEADER_BYTES)
}

fn mnist_bytes(d: &[usize; 8]) -> Option<usize> {
    let [nl, inp, dim, di, dr, ds, dc, nc] = *d;
    let per = mixer_elems(dim, di, dr, ds, dc)?.checked_add(dim)?;
    let n = dim
        .checked_mul(inp)?
        .checked_add(per.checked_mul(nl)?)?
        .checked_add(dim)?
        .checked_add(nc.checked_mul(dim)?)?;
    n.checked_mul(4)?.checked_add(HEADER_BYTES)
}

struct Cursor<'a> {
    backing: &'a Arc<Backing>,
    offset: usize,
    path: &'a str,
}

impl Cursor<'_> {
    fn take(&mut self, rows: usize, cols: usize, name: &str) -> Result<Tensor> {
        let t = Tensor::view(self.backing, self.offset, DType::F32, rows, cols, name)
            .map_err(|e| e.context(self.path))?;
        self.offset += rows * cols * 4;
        Ok(t)
    }
}

struct MixerDims {
    dm: usize,
    di: usize,
    dr: usize,
    ds: usize,
    dc: usize,
}

/// The nine mixer tensors of one layer, in file order, via `take(kind, rows, cols)`.
fn mixer(
    d: &MixerDims,
    mut take: impl FnMut(usize, usize, usize) -> Result<Tensor>,
) -> Result<MixerWeights> {
    let (dm, di, dr, ds, dc) = (d.dm, d.di, d.dr, d.ds, d.dc);
    Ok(MixerWeights {
        in_proj: take(0, 2 * di, dm)?,
        in_proj_bias: None,
        conv_w: take(1, di, dc)?,
        conv_b: Some(take(2, 1, di)?),
        x_proj: take(3, dr + 2 * ds, di)?,
        dt_proj: take(4, di, dr)?,
        dt_proj_t: None,
        x_proj_t: None,
        dt_bias: take(5, 1, di)?,
        a: take(6, di, ds)?,
        d: take(7, 1, di)?,
        out_proj: take(8, dm, di)?,
        out_proj_bias: None,
    })
}

fn rms(weight: Tensor, eps: f32) -> Norm {
    Norm {
        kind: NormKind::Rms,
        eps,
        weight,
        bias: None,
    }
}

fn base_config(n_layers: usize, md: &MixerDims, n_classes: usize) -> ClassifierConfig {
    ClassifierConfig {
        input: InputKind::Features,
        input_width: 0,
        input_frames: 0,
        proj_width: md.dm,
        frontend_norm: None,
        frontend_norm_eps: 1e-5,
        frontend_silu: false,
        cls: ClsPos::None,
        transpose: false,
        n_layers,
        d_model: md.dm,
        d_inner: md.di,
        d_state: md.ds,
        d_conv: md.dc,
        dt_rank: md.dr,
        block_style: BlockStyle::PreNormResidual,
        norm: NormKind::Rms,
        norm_eps: 1e-5,
        final_norm: None,
        final_norm_eps: 1e-5,
        pooling: Pooling::Last,
        head: HeadKind::Linear,
        head_hidden: 0,
        n_classes,
        labels: Vec::new(),
    }
}

fn load_kws(path: &str, backing: &Arc<Backing>, d: [usize; 8]) -> Result<ClassifierModel> {
    let [nl, nc, dim, inp, di, dr, ds, dc] = d;
    let md = MixerDims {
        dm: dim,
        di,
        dr,
        ds,
        dc,
    };
    let mut cur = Cursor {
        backing,
        offset: HEADER_BYTES,
        path,
    };
    let cls = cur.take(1, dim, "cls_token")?;
    let proj_w = cur.take(dim, inp, "proj weight")?;
    let proj_b = cur.take(1, dim, "proj bias")?;
    // each tensor kind for all layers: kinds[k][layer]
    let shapes = [
        (2 * di, dim),
        (di, dc),
        (1, di),
        (dr + 2 * ds, di),
        (di, dr),
        (1, di),
        (di, ds),
        (1, di),
        (dim, di),
    ];
    let mut kinds: Vec<Vec<Option<Tensor>>> = Vec::new();
    for (k, &(r, c)) in shapes.iter().enumerate() {
        let mut v = Vec::with_capacity(nl);
        for l in 0..nl {
            v.push(Some(cur.take(r, c, &format!("layer {l} tensor {k}"))?));
        }
        kinds.push(v);
    }
    let mut layers = Vec::with_capacity(nl);
    let mut norms = Vec::with_capacity(nl);
    for l in 0..nl {
        norms.push(cur.take(1, dim, &format!("layer {l} norm"))?);
    }
    for (l, norm) in norms.into_iter().enumerate() {
        let m = mixer(&md, |k, _, _| {
            kinds[k][l]
                .take()
                .ok_or_else(|| Error::format("tensor taken twice"))
        })?;
        layers.push(ClassifierLayer {
            norm: rms(norm, f32::EPSILON),
            mixer: m,
        });
    }
    let fc_w = cur.take(nc, dim, "fc weight")?;
    let fc_b = cur.take(1, nc, "fc bias")?;
    let mut c = base_config(nl, &md, nc);
    c.input_width = inp;
    c.input_frames = dim - 1;
    c.cls = ClsPos::Append;
    c.transpose = true;
    c.block_style = BlockStyle::PostNorm;
    c.norm_eps = f32::EPSILON;
    c.pooling = Pooling::LastFeature;
    if inp % 3 == 0 {
        let p = MfccParams::new(16000, inp / 3, 475, 119, 61);
        if p.n_frames(16000) == dim - 1 {
            c.input = InputKind::Audio {
                mfcc: p,
                clip_samples: 16000,
            };
        }
    }
    if nc == KWS_LABELS.len() {
        c.labels = KWS_LABELS.iter().map(|s| s.to_string()).collect();
    }
    let w = ClassifierWeights {
        frontend: Linear {
            weight: proj_w,
            bias: Some(proj_b),
        },
        frontend_norm: None,
        cls_token: Some(cls),
        layers,
        final_norm: None,
        head_hidden: None,
        head: Linear {
            weight: fc_w,
            bias: Some(fc_b),
        },
    };
    ClassifierModel::new(c, w, path, backing.bytes().len() as u64)
}

fn load_mnist(path: &str, backing: &Arc<Backing>, d: [usize; 8]) -> Result<ClassifierModel> {
    let [nl, inp, dim, di, dr, ds, dc, nc] = d;
    let md = MixerDims {
        dm: dim,
        di,
        dr,
        ds,
        dc,
    };
    let mut cur = Cursor {
        backing,
        offset: HEADER_BYTES,
        path,
    };
    let proj_w = cur.take(dim, inp, "input_proj weight")?;
    let mut layers = Vec::with_capacity(nl);
    for l in 0..nl {
        let m = mixer(&md, |k, r, c| {
            cur.take(r, c, &format!("layer {l} tensor {k}"))
        })?;
        let norm = cur.take(1, dim, &format!("layer {l} norm"))?;
        layers.push(ClassifierLayer {
            norm: rms(norm, 1e-6),
            mixer: m,
        });
    }
    let norm_f = cur.take(1, dim, "final norm")?;
    let head = cur.take(nc, dim, "classifier weight")?;
    let mut c = base_config(nl, &md, nc);
    c.input_width = inp;
    c.input_frames = 1;
    c.norm_eps = 1e-6;
    c.final_norm = Some(NormKind::Rms);
    c.final_norm_eps = 1e-6;
    if inp == 784 {
        c.input = InputKind::Image {
            height: 28,
            width: 28,
            mean: 0.1307,
            std: 0.3081,
        };
    }
    c.labels = (0..nc).map(|i| i.to_string()).collect();
    let w = ClassifierWeights {
        frontend: Linear {
            weight: proj_w,
            bias: None,
        },
        frontend_norm: None,
        cls_token: None,
        layers,
        final_norm: Some(rms(norm_f, 1e-6)),
        head_hidden: None,
        head: Linear {
            weight: head,
            bias: None,
        },
    };
    ClassifierModel::new(c, w, path, backing.bytes().len() as u64)
}

/// `Some` when the v1 file is a keyword-spotting or MNIST file (its size
/// matches that reading exactly, and not the language-model reading);
/// `None` when it should be read as a language model.
pub fn try_load(path: &str, backing: &Arc<Backing>) -> Result<Option<ClassifierModel>> {
    let bytes = backing.bytes();
    let h = read_header(path, bytes)?;
    let Some(d) = dims(&h) else {
        // a language model's shared_classifier may be 0: not a classifier reading
        return Ok(None);
    };
    let len = bytes.len();
    let lm = lm_bytes(&d, h[7]) == Some(len);
    let kws = kws_bytes(&d) == Some(len);
    let mnist = mnist_bytes(&d) == Some(len);
    match (lm, kws, mnist) {
        (false, true, false) => load_kws(path, backing, d).map(Some),
        (false, false, true) => load_mnist(path, backing, d).map(Some),
        (false, false, false) | (true, false, false) => Ok(None),
        _ => Err(Error::format(format!(
            "{path}: the v1 header fits more than one model family (language model {lm}, keyword spotting {kws}, MNIST {mnist})"
        ))),
    }
}

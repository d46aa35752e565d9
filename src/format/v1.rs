//! The C project's v1 model files ("Mamb"), read as they are.
//!
//! A 256-byte header (magic, version 1, eight int32) is followed by the
//! tensors, each stored for all layers (layer 0 first) before the next kind.
//! See `shared/docs/c-project.md` §5. The header does not say which model
//! family the file holds; only one reading makes the file size come out
//! exact, so the loader checks the size.

use crate::error::{Error, Result};
use crate::model::{Backing, DType, LmConfig, LmLayer, LmWeights, MixerWeights, Model, Tensor};
use std::sync::Arc;

pub const MAGIC: u32 = 0x4d61_6d62;
pub const HEADER_BYTES: usize = 256;
/// RMSNorm epsilon the C project hard-codes.
pub const NORM_EPS: f32 = 1e-5;

/// The eight header ints, as raw values.
pub fn read_header(path: &str, bytes: &[u8]) -> Result<[i32; 8]> {
    if bytes.len() < HEADER_BYTES {
        return Err(Error::format(format!(
            "{path}: truncated header ({} bytes, expected at least {HEADER_BYTES})",
            bytes.len()
        )));
    }
    let rd = |i: usize| i32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if rd(0) as u32 != MAGIC {
        return Err(Error::format(format!(
            "{path}: wrong magic {:#010x}, expected {MAGIC:#010x}",
            rd(0) as u32
        )));
    }
    let version = rd(4);
    if version != 1 {
        return Err(Error::format(format!(
            "{path}: unsupported version {version}, expected 1"
        )));
    }
    let mut h = [0i32; 8];
    for (i, v) in h.iter_mut().enumerate() {
        *v = rd(8 + 4 * i);
    }
    Ok(h)
}

/// Hands out consecutive tensors from the body, with checked arithmetic.
struct Cursor<'a> {
    backing: &'a Arc<Backing>,
    offset: usize,
    path: &'a str,
}

impl Cursor<'_> {
    fn take(&mut self, dtype: DType, rows: usize, cols: usize, name: &str) -> Result<Tensor> {
        let t = Tensor::view(self.backing, self.offset, dtype, rows, cols, name)
            .map_err(|e| e.context(self.path))?;
        self.offset += t.bytes().len();
        Ok(t)
    }
    /// One tensor kind for all layers: `n` stacked (rows × cols) tensors.
    fn take_layers(
        &mut self,
        n: usize,
        rows: usize,
        cols: usize,
        name: &str,
    ) -> Result<Vec<Tensor>> {
        (0..n)
            .map(|l| self.take(DType::F32, rows, cols, &format!("layer {l} {name}")))
            .collect()
    }
}

fn dim(path: &str, name: &str, v: i32) -> Result<usize> {
    if v <= 0 || v as usize > crate::model::MAX_DIM {
        return Err(Error::format(format!(
            "{path}: header field {name} = {v} is out of range"
        )));
    }
    Ok(v as usize)
}

/// Bytes the float32 language-model body needs for this header, if it fits in u64.
pub fn lm_f32_body_bytes(c: &LmConfig) -> Option<u64> {
    let (l, d, di, r, s, k, v) = (
        c.n_layers as u64,
        c.d_model as u64,
        c.d_inner as u64,
        c.dt_rank as u64,
        c.d_state as u64,
        c.d_conv as u64,
        c.padded_vocab as u64,
    );
    let per_layer =
        2 * di * d + di * k + di + (r + 2 * s) * di + di * r + di + di * s + di + d * di + d;
    let floats = v * d + l * per_layer + d + if c.tied { 0 } else { v * d };
    floats.checked_mul(4)
}

/// The language-model reading of the header.
pub fn lm_config(path: &str, h: &[i32; 8]) -> Result<LmConfig> {
    let vocab_size = dim(path, "vocab_size", h[1])?;
    let c = LmConfig {
        n_layers: dim(path, "n_layers", h[0])?,
        vocab_size,
        padded_vocab: vocab_size.div_ceil(8) * 8,
        d_model: dim(path, "dim", h[2])?,
        d_inner: dim(path, "d_inner", h[3])?,
        dt_rank: dim(path, "dt_rank", h[4])?,
        d_state: dim(path, "d_state", h[5])?,
        d_conv: dim(path, "d_conv", h[6])?,
        tied: match h[7] {
            0 => false,
            1 => true,
            v => {
                return Err(Error::format(format!(
                    "{path}: shared_classifier = {v}, expected 0 or 1"
                )))
            }
        },
        norm_eps: NORM_EPS,
    };
    c.validate().map_err(|e| e.context(path))?;
    Ok(c)
}

/// Loads a v1 language-model file.
pub fn load(path: &str, backing: Arc<Backing>) -> Result<Model> {
    let bytes = backing.bytes();
    let h = read_header(path, bytes)?;
    let c = lm_config(path, &h)?;
    let body = (bytes.len() - HEADER_BYTES) as u64;
    let need = lm_f32_body_bytes(&c)
        .ok_or_else(|| Error::format(format!("{path}: header dimensions overflow")))?;
    if need != body {
        return Err(Error::format(format!(
            "{path}: a float32 language model with this header ({} layers, dim {}, d_inner {}, vocab {}) \
             needs {need} bytes after the header, the file has {body}{}",
            c.n_layers,
            c.d_model,
            c.d_inner,
            c.vocab_size,
            if body < need { " (truncated?)" } else { "" }
        )));
    }
    let (l, d, di, r, s, k, v) = (
        c.n_layers,
        c.d_model,
        c.d_inner,
        c.dt_rank,
        c.d_state,
        c.d_conv,
        c.padded_vocab,
    );
    let mut cur = Cursor {
        backing: &backing,
        offset: HEADER_BYTES,
        path,
    };
    let embedding = cur.take(DType::F32, v, d, "embedding")?;
    let in_proj = cur.take_layers(l, 2 * di, d, "in_proj")?;
    let conv_w = cur.take_layers(l, di, k, "conv1d weight")?;
    let conv_b = cur.take_layers(l, 1, di, "conv1d bias")?;
    let x_proj = cur.take_layers(l, r + 2 * s, di, "x_proj")?;
    let dt_proj = cur.take_layers(l, di, r, "dt_proj weight")?;
    let dt_bias = cur.take_layers(l, 1, di, "dt_proj bias")?;
    let a = cur.take_layers(l, di, s, "A")?;
    let dd = cur.take_layers(l, 1, di, "D")?;
    let out_proj = cur.take_layers(l, d, di, "out_proj")?;
    let norms = cur.take_layers(l, 1, d, "norm")?;
    let norm_f = cur.take(DType::F32, 1, d, "final norm")?;
    let lm_head = if c.tied {
        None
    } else {
        Some(cur.take(DType::F32, v, d, "lm_head")?)
    };
    let mut layers = Vec::with_capacity(l);
    for i in 0..l {
        layers.push(LmLayer {
            norm: norms[i].clone(),
            mixer: MixerWeights {
                in_proj: in_proj[i].clone(),
                in_proj_bias: None,
                conv_w: conv_w[i].clone(),
                conv_b: Some(conv_b[i].clone()),
                x_proj: x_proj[i].clone(),
                dt_proj: dt_proj[i].clone(),
                dt_bias: dt_bias[i].clone(),
                a: a[i].clone(),
                d: dd[i].clone(),
                out_proj: out_proj[i].clone(),
                out_proj_bias: None,
            },
        });
    }
    let weights = LmWeights {
        embedding,
        layers,
        norm_f,
        lm_head,
    };
    Model::new_lm(c, weights, path, bytes.len() as u64)
}

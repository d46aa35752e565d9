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
        let t = match Tensor::view(self.backing, self.offset, dtype, rows, cols, name) {
            Ok(t) => t,
            // After one-byte tensors an f32 or f16 tensor may start at an odd
            // offset: copy it (these are the small per-layer vectors and A).
            Err(_) if dtype.row_bytes(cols).is_some() => {
                let n = dtype.row_bytes(cols).unwrap_or(0).saturating_mul(rows);
                let bytes = self.backing.bytes();
                let raw = self
                    .offset
                    .checked_add(n)
                    .and_then(|e| bytes.get(self.offset..e))
                    .ok_or_else(|| {
                        Error::format(format!(
                            "{}: tensor {name} at offset {} needs {n} bytes but the file has {}",
                            self.path,
                            self.offset,
                            bytes.len()
                        ))
                    })?;
                let mut v = vec![0.0f32; rows * cols];
                let rb = n / rows.max(1);
                for r in 0..rows {
                    crate::kernels::convert::dequant_bytes(
                        dtype,
                        &raw[r * rb..(r + 1) * rb],
                        &mut v[r * cols..(r + 1) * cols],
                    );
                }
                let t = Tensor::from_f32(&v, rows, cols);
                self.offset += n;
                return Ok(t);
            }
            Err(e) => return Err(e.context(self.path)),
        };
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
        self.take_layers_as(DType::F32, n, rows, cols, name)
    }
    fn take_layers_as(
        &mut self,
        dtype: DType,
        n: usize,
        rows: usize,
        cols: usize,
        name: &str,
    ) -> Result<Vec<Tensor>> {
        (0..n)
            .map(|l| self.take(dtype, rows, cols, &format!("layer {l} {name}")))
            .collect()
    }
}

/// How the seven quantizable tensors of a v1 file are stored (c-project.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V1Kind {
    F32,
    /// One byte per element, int8 (what the C program assumes).
    Int8,
    /// One byte per element, the C project's "bfloat8" (chosen by a load option).
    BFloat8,
    /// Two bytes per element, IEEE half.
    Fp16,
}

impl V1Kind {
    fn dtype(self) -> DType {
        match self {
            V1Kind::F32 => DType::F32,
            V1Kind::Int8 => DType::I8,
            V1Kind::BFloat8 => DType::BF8,
            V1Kind::Fp16 => DType::F16,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            V1Kind::F32 => "float32",
            V1Kind::Int8 => "int8",
            V1Kind::BFloat8 => "bfloat8",
            V1Kind::Fp16 => "fp16",
        }
    }
}

/// The number of quantized tensor kinds (in_proj, conv1d weight, conv1d bias,
/// x_proj, dt_proj weight, dt_proj bias, out_proj), each with one scale per layer.
pub const N_QUANTIZED: usize = 7;

/// Bytes of a language-model body whose seven quantizable tensors take
/// `qbytes` bytes per element (4 = float32), if it fits in u64.
pub fn lm_body_bytes(c: &LmConfig, qbytes: u64) -> Option<u64> {
    let (l, d, di, r, s, k, v) = (
        c.n_layers as u64,
        c.d_model as u64,
        c.d_inner as u64,
        c.dt_rank as u64,
        c.d_state as u64,
        c.d_conv as u64,
        c.padded_vocab as u64,
    );
    let quant = 2 * di * d + di * k + di + (r + 2 * s) * di + di * r + di + d * di;
    let plain = di * s + di + d;
    let per_layer = quant
        .checked_mul(qbytes)?
        .checked_add(plain.checked_mul(4)?)?;
    let f = v * d + d + if c.tied { 0 } else { v * d };
    f.checked_mul(4)?.checked_add(l.checked_mul(per_layer)?)
}

/// Reads `<model>.scales`: 7 × n_layers float32.
fn read_scales(model_path: &str, n_layers: usize) -> Result<Vec<f32>> {
    let sp = format!("{model_path}.scales");
    let b = std::fs::read(&sp).map_err(|e| {
        Error::new(
            crate::error::ErrorKind::Io,
            format!("{model_path} holds quantized weights, which need the scales file {sp}: {e}"),
        )
    })?;
    parse_scales(&sp, &b, n_layers)
}

fn parse_scales(sp: &str, b: &[u8], n_layers: usize) -> Result<Vec<f32>> {
    let need = N_QUANTIZED * n_layers * 4;
    if b.len() != need {
        return Err(Error::format(format!(
            "{sp}: {} bytes, expected {need} (7 tensors x {n_layers} layers x float32){}",
            b.len(),
            if b.len() < need { " (truncated?)" } else { "" }
        )));
    }
    let s: Vec<f32> = b
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = s.iter().position(|v| !v.is_finite()) {
        return Err(Error::format(format!(
            "{sp}: scale {i} is {} (not finite)",
            s[i]
        )));
    }
    Ok(s)
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
    lm_body_bytes(c, 4)
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

/// Which variant a body of `body` bytes holds, if any.
pub fn detect_kind(c: &LmConfig, body: u64, bfloat8: bool) -> Option<V1Kind> {
    if lm_body_bytes(c, 4) == Some(body) {
        Some(V1Kind::F32)
    } else if lm_body_bytes(c, 2) == Some(body) {
        Some(V1Kind::Fp16)
    } else if lm_body_bytes(c, 1) == Some(body) {
        Some(if bfloat8 {
            V1Kind::BFloat8
        } else {
            V1Kind::Int8
        })
    } else {
        None
    }
}

/// Loads a v1 language-model file (float32, or int8 / fp16 / "bfloat8" with
/// the `<path>.scales` sidecar). One-byte files are read as int8 unless
/// `bfloat8` is set: the file cannot tell the two apart.
pub fn load(path: &str, backing: Arc<Backing>, bfloat8: bool) -> Result<Model> {
    load_impl(path, backing, None, bfloat8)
}

/// Like [`load`], with the `.scales` sidecar given as bytes instead of read
/// from `<path>.scales` (fuzzing, tests, callers that hold both in memory).
/// `scales: None` means there is no sidecar: quantized files then fail.
pub fn load_bytes(
    path: &str,
    backing: Arc<Backing>,
    scales: Option<&[u8]>,
    bfloat8: bool,
) -> Result<Model> {
    load_impl(path, backing, Some(scales), bfloat8)
}

/// `scales`: None = read `<path>.scales`; Some(x) = the sidecar's bytes (or none).
fn load_impl(
    path: &str,
    backing: Arc<Backing>,
    scales: Option<Option<&[u8]>>,
    bfloat8: bool,
) -> Result<Model> {
    let bytes = backing.bytes();
    let h = read_header(path, bytes)?;
    let c = lm_config(path, &h)?;
    let body = (bytes.len() - HEADER_BYTES) as u64;
    let need = lm_f32_body_bytes(&c)
        .ok_or_else(|| Error::format(format!("{path}: header dimensions overflow")))?;
    let kind = detect_kind(&c, body, bfloat8).ok_or_else(|| {
        Error::format(format!(
            "{path}: a language model with this header ({} layers, dim {}, d_inner {}, vocab {}) \
             needs {need} bytes after the header as float32 ({} as fp16, {} as int8/bfloat8), \
             the file has {body}{}",
            c.n_layers,
            c.d_model,
            c.d_inner,
            c.vocab_size,
            lm_body_bytes(&c, 2).unwrap_or(0),
            lm_body_bytes(&c, 1).unwrap_or(0),
            if body < need { " (truncated?)" } else { "" }
        ))
    })?;
    let scales = if kind == V1Kind::F32 {
        None
    } else {
        let sp = format!("{path}.scales");
        Some(match scales {
            None => read_scales(path, c.n_layers)?,
            Some(Some(b)) => parse_scales(&sp, b, c.n_layers)?,
            Some(None) => {
                return Err(Error::new(
                    crate::error::ErrorKind::Io,
                    format!("{path} holds quantized weights, which need a scales file {sp}"),
                ))
            }
        })
    };
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
    let q = kind.dtype();
    // Tensor kind `i` (0..7 in file order) of layer `l` gets scale i*L + l.
    let scaled = |ts: Vec<Tensor>, i: usize| -> Vec<Tensor> {
        match &scales {
            None => ts,
            Some(sc) => ts
                .into_iter()
                .enumerate()
                .map(|(li, t)| t.with_scale(sc[i * l + li]))
                .collect(),
        }
    };
    // The block math wants the small tensors as plain f32: convert those.
    let small = |ts: Vec<Tensor>| -> Vec<Tensor> { ts.into_iter().map(Tensor::into_f32).collect() };
    let embedding = cur.take(DType::F32, v, d, "embedding")?;
    let in_proj = scaled(cur.take_layers_as(q, l, 2 * di, d, "in_proj")?, 0);
    let conv_w = small(scaled(cur.take_layers_as(q, l, di, k, "conv1d weight")?, 1));
    let conv_b = small(scaled(cur.take_layers_as(q, l, 1, di, "conv1d bias")?, 2));
    let x_proj = scaled(cur.take_layers_as(q, l, r + 2 * s, di, "x_proj")?, 3);
    let dt_proj = scaled(cur.take_layers_as(q, l, di, r, "dt_proj weight")?, 4);
    let dt_bias = small(scaled(cur.take_layers_as(q, l, 1, di, "dt_proj bias")?, 5));
    let a = cur.take_layers(l, di, s, "A")?;
    let dd = cur.take_layers(l, 1, di, "D")?;
    let out_proj = scaled(cur.take_layers_as(q, l, d, di, "out_proj")?, 6);
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
                dt_proj_t: None,
                x_proj_t: None,
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
    let scales_bytes = if scales.is_some() {
        (N_QUANTIZED * l * 4) as u64
    } else {
        0
    };
    Model::new_lm(c, weights, path, bytes.len() as u64 + scales_bytes)
}

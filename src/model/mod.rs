//! The immutable model: hyperparameters plus typed weight views.
//!
//! Loaders in [`crate::format`] build a [`Model`]; nothing here knows about
//! file formats. A model is `Send + Sync` and is shared (behind an `Arc`) by
//! any number of sessions.

pub mod classifier;
pub mod tensor;

use crate::error::{Error, Result};
pub use tensor::{Backing, DType, Tensor};

/// Hyperparameters of a Mamba-1 language model.
#[derive(Debug, Clone, PartialEq)]
pub struct LmConfig {
    pub n_layers: usize,
    pub d_model: usize,
    pub d_inner: usize,
    pub d_state: usize,
    pub d_conv: usize,
    pub dt_rank: usize,
    /// Tokens the tokenizer knows (50277 for GPT-NeoX). Sampling uses `padded_vocab`.
    pub vocab_size: usize,
    /// Rows of the embedding and the lm_head (vocab rounded up, 50280).
    pub padded_vocab: usize,
    pub norm_eps: f32,
    /// lm_head shares the embedding matrix.
    pub tied: bool,
}

/// Upper bound on any single dimension, to refuse absurd headers early.
pub const MAX_DIM: usize = 1 << 24;

/// Every dimension positive and at most [`MAX_DIM`]; layers, conv width and
/// state size within what any real model uses. `what` prefixes the messages.
pub(crate) fn check_dims(
    what: &str,
    dims: &[(&str, usize)],
    n_layers: usize,
    d_conv: usize,
    d_state: usize,
) -> Result<()> {
    for &(name, v) in dims {
        if v == 0 || v > MAX_DIM {
            return Err(Error::format(format!(
                "{what}{name} = {v} is out of range (1..={MAX_DIM})"
            )));
        }
    }
    if n_layers > 4096 || d_conv > 1024 || d_state > 4096 {
        return Err(Error::format(format!(
            "{what}n_layers {n_layers} / d_conv {d_conv} / d_state {d_state} out of range"
        )));
    }
    Ok(())
}

impl LmConfig {
    /// Checks that the dimensions are sane (positive, not absurd).
    pub fn validate(&self) -> Result<()> {
        let dims = [
            ("n_layers", self.n_layers),
            ("d_model", self.d_model),
            ("d_inner", self.d_inner),
            ("d_state", self.d_state),
            ("d_conv", self.d_conv),
            ("dt_rank", self.dt_rank),
            ("vocab_size", self.vocab_size),
            ("padded_vocab", self.padded_vocab),
        ];
        check_dims("", &dims, self.n_layers, self.d_conv, self.d_state)?;
        if self.vocab_size > self.padded_vocab {
            return Err(Error::format(format!(
                "vocab_size {} exceeds the embedding rows {}",
                self.vocab_size, self.padded_vocab
            )));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            return Err(Error::format(format!(
                "norm eps {} is not a valid epsilon",
                self.norm_eps
            )));
        }
        Ok(())
    }

    /// Floats in one session's recurrent state (conv + ssm) over all layers.
    pub fn conv_state_len(&self) -> usize {
        self.n_layers * self.d_inner * self.d_conv
    }
    pub fn ssm_state_len(&self) -> usize {
        self.n_layers * self.d_inner * self.d_state
    }
}

/// The weights of one Mamba mixer (HF `MambaMixer`), PyTorch (out, in) order.
#[derive(Debug, Clone)]
pub struct MixerWeights {
    /// (2·d_inner, d_model): first half x, second half the gate z.
    pub in_proj: Tensor,
    pub in_proj_bias: Option<Tensor>,
    /// (d_inner, d_conv), f32.
    pub conv_w: Tensor,
    pub conv_b: Option<Tensor>,
    /// (dt_rank + 2·d_state, d_inner).
    pub x_proj: Tensor,
    /// x_proj kept by column, like `dt_proj_t`.
    pub x_proj_t: Option<std::sync::Arc<crate::kernels::transposed::Transposed>>,
    /// (d_inner, dt_rank).
    pub dt_proj: Tensor,
    /// dt_proj kept by column (`kernels::transposed`), set by
    /// [`Model::new_lm`] where the kernel applies (AVX-512); decode steps and
    /// prompts multiply through it instead of `dt_proj`, whose file pages
    /// are handed back.
    pub dt_proj_t: Option<std::sync::Arc<crate::kernels::transposed::Transposed>>,
    /// (d_inner), f32.
    pub dt_bias: Tensor,
    /// (d_inner, d_state), f32, already -exp(A_log).
    pub a: Tensor,
    /// (d_inner), f32.
    pub d: Tensor,
    /// (d_model, d_inner).
    pub out_proj: Tensor,
    pub out_proj_bias: Option<Tensor>,
}

impl MixerWeights {
    /// [`Tensor::flush_subnormals`] on the per-channel tensors (conv, dt
    /// bias, A, D, biases) and, with `matrices`, on the four projections too.
    pub fn flush_subnormals(&mut self, matrices: bool) {
        for t in [
            &mut self.conv_w,
            &mut self.dt_bias,
            &mut self.a,
            &mut self.d,
        ] {
            t.flush_subnormals();
        }
        for t in [
            &mut self.in_proj_bias,
            &mut self.conv_b,
            &mut self.out_proj_bias,
        ]
        .into_iter()
        .flatten()
        {
            t.flush_subnormals();
        }
        if matrices {
            for t in [
                &mut self.in_proj,
                &mut self.x_proj,
                &mut self.dt_proj,
                &mut self.out_proj,
            ] {
                t.flush_subnormals();
            }
        }
    }
}

/// One residual block of the language model: `x + mixer(rmsnorm(x))`.
#[derive(Debug, Clone)]
pub struct LmLayer {
    pub norm: Tensor,
    pub mixer: MixerWeights,
}

#[derive(Debug, Clone)]
pub struct LmWeights {
    /// (padded_vocab, d_model).
    pub embedding: Tensor,
    pub layers: Vec<LmLayer>,
    pub norm_f: Tensor,
    /// (padded_vocab, d_model); `None` when tied to the embedding.
    pub lm_head: Option<Tensor>,
}

impl LmWeights {
    pub fn head(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embedding)
    }

    /// Gives the 8-bit matrices that the int8 VNNI kernels multiply (in_proj,
    /// out_proj and the head, tied embedding included) their converted copy
    /// in panel layout (`kernels::panels`), handing the converted file
    /// pages back as it goes. x_proj and dt_proj keep exact inputs and
    /// stay as stored. Heap-held tensors (a model loaded with `copy`) stay
    /// as stored too: their bytes cannot be handed back, and a second copy
    /// would double their memory. Those, and any tensor when the memory for
    /// the copy cannot be had, go through the kernel that repacks stored
    /// rows at every product.
    pub fn convert_for_vnni(&mut self) {
        let mut ts: Vec<&mut Tensor> = Vec::new();
        for l in &mut self.layers {
            ts.push(&mut l.mixer.in_proj);
            ts.push(&mut l.mixer.out_proj);
        }
        ts.push(match &mut self.lm_head {
            Some(h) => h,
            None => &mut self.embedding,
        });
        ts.retain(|t| t.panels.is_none() && t.is_mapped());
        crate::kernels::panels::convert(&mut ts, true);
    }

    /// Gives each layer's x_proj and dt_proj their column-major copies
    /// (`kernels::transposed`: the same element type, so the same bytes),
    /// handing back the file pages they were read from: decode steps and
    /// prompts multiply through the copies. A matrix whose copy cannot be
    /// made keeps the row-wise kernels.
    pub fn transpose_small_projections(&mut self) {
        use crate::kernels::transposed::Transposed;
        use rayon::prelude::*;
        self.layers.par_iter_mut().for_each(|l| {
            let m = &mut l.mixer;
            for (t, copy) in [(&m.x_proj, &mut m.x_proj_t), (&m.dt_proj, &mut m.dt_proj_t)] {
                if copy.is_none() {
                    *copy = Transposed::of(t).map(std::sync::Arc::new);
                    if copy.is_some() {
                        t.release_rows(0..t.rows);
                    }
                }
            }
        });
    }

    /// Checks every tensor's shape against the config; names the tensor on error.
    pub fn validate(&self, c: &LmConfig) -> Result<()> {
        fn check(t: &Tensor, rows: usize, cols: usize, name: &str) -> Result<()> {
            if t.rows != rows || t.cols != cols {
                return Err(Error::format(format!(
                    "tensor {name} has shape {}x{}, expected {rows}x{cols}",
                    t.rows, t.cols
                )));
            }
            Ok(())
        }
        fn check_f32(t: &Tensor, n: usize, name: &str) -> Result<()> {
            check(t, 1, n, name)?;
            if t.dtype != DType::F32 || t.scale != 1.0 {
                return Err(Error::format(format!("tensor {name} must be f32")));
            }
            Ok(())
        }
        check(&self.embedding, c.padded_vocab, c.d_model, "embedding")?;
        if self.layers.len() != c.n_layers {
            return Err(Error::format(format!(
                "{} layers present, config says {}",
                self.layers.len(),
                c.n_layers
            )));
        }
        for (i, l) in self.layers.iter().enumerate() {
            let m = &l.mixer;
            let n = |s: &str| format!("layer {i} {s}");
            check_f32(&l.norm, c.d_model, &n("norm"))?;
            check(&m.in_proj, 2 * c.d_inner, c.d_model, &n("in_proj"))?;
            if let Some(b) = &m.in_proj_bias {
                check_f32(b, 2 * c.d_inner, &n("in_proj bias"))?;
            }
            check(&m.conv_w, c.d_inner, c.d_conv, &n("conv1d weight"))?;
            if m.conv_w.dtype != DType::F32 || m.conv_w.scale != 1.0 {
                return Err(Error::format(n("conv1d weight must be f32")));
            }
            if let Some(b) = &m.conv_b {
                check_f32(b, c.d_inner, &n("conv1d bias"))?;
            }
            check(
                &m.x_proj,
                c.dt_rank + 2 * c.d_state,
                c.d_inner,
                &n("x_proj"),
            )?;
            check(&m.dt_proj, c.d_inner, c.dt_rank, &n("dt_proj"))?;
            check_f32(&m.dt_bias, c.d_inner, &n("dt_proj bias"))?;
            check(&m.a, c.d_inner, c.d_state, &n("A"))?;
            if m.a.dtype != DType::F32 || m.a.scale != 1.0 {
                return Err(Error::format(n("A must be f32")));
            }
            check_f32(&m.d, c.d_inner, &n("D"))?;
            check(&m.out_proj, c.d_model, c.d_inner, &n("out_proj"))?;
            if let Some(b) = &m.out_proj_bias {
                check_f32(b, c.d_model, &n("out_proj bias"))?;
            }
        }
        check_f32(&self.norm_f, c.d_model, "final norm")?;
        if let Some(h) = &self.lm_head {
            check(h, c.padded_vocab, c.d_model, "lm_head")?;
        }
        Ok(())
    }
}

/// What a model computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    LanguageModel,
    Classifier,
}

/// An immutable, shareable model.
pub struct Model {
    pub config: LmConfig,
    pub weights: LmWeights,
    /// The tokenizer the file carries, if any (GGUF).
    pub tokenizer: Option<std::sync::Arc<crate::tokenizer::Tokenizer>>,
    /// Where the model came from (for messages).
    pub source: String,
    /// Total bytes of the file(s) the model was read from.
    pub file_bytes: u64,
    /// Multiply 8-bit weights (q8_row, Q8_0) of in_proj, out_proj and the
    /// head in int8 with the VNNI kernels where the CPU has AVX-512 VNNI:
    /// each product's input is rounded to 8 bits per block of 32 (see
    /// `kernels::vnni`), in decode, batched decode and prompts alike. On unless the environment sets
    /// `MAMBA_INT8_VNNI=0` at load; settable before the model is shared.
    /// No effect on other weight types or CPUs. When on at load, those
    /// matrices are converted to the VNNI kernel's layout
    /// ([`LmWeights::convert_for_vnni`]); turned on later, the kernel
    /// repacks the stored rows at every product instead.
    pub int8_vnni: bool,
    /// Multiply bf16 weights of in_proj, out_proj and the head by inputs
    /// rounded to bf16, with `vdpbf16ps`, where the CPU has AVX-512 BF16
    /// (`kernels::bf16dot`), in decode, batched decode and prompts alike.
    /// At load: on for AMD CPUs (Zen 4: twice the f32 FMA's multiply-adds;
    /// on the Intel host measured, half), `MAMBA_BF16_DOT=0|1` overrides
    /// (`kernels::bf16dot::default_on`); settable before the model is
    /// shared. No effect on other weight types or CPUs without AVX-512 BF16.
    pub bf16_dot: bool,
}

impl Model {
    pub fn kind(&self) -> ModelKind {
        ModelKind::LanguageModel
    }

    /// Builds a model after validating config and tensor shapes.
    pub fn new_lm(
        config: LmConfig,
        weights: LmWeights,
        source: &str,
        file_bytes: u64,
    ) -> Result<Model> {
        config.validate().map_err(|e| e.context(source))?;
        weights.validate(&config).map_err(|e| e.context(source))?;
        let mut weights = weights;
        // Subnormal weights make every product they enter take a microcode
        // assist on Intel CPUs. The vectors are flushed to zero here (a
        // few KiB per layer); the large matrices are used as stored, since
        // checking them would read the whole file at load.
        for l in &mut weights.layers {
            l.norm.flush_subnormals();
            l.mixer.flush_subnormals(false);
        }
        weights.norm_f.flush_subnormals();
        weights.transpose_small_projections();
        let int8_vnni = std::env::var("MAMBA_INT8_VNNI").map_or(true, |v| v.trim() != "0");
        if int8_vnni && crate::kernels::vnni::has_vnni() {
            weights.convert_for_vnni();
        }
        Ok(Model {
            config,
            weights,
            tokenizer: None,
            source: source.to_string(),
            file_bytes,
            int8_vnni,
            bf16_dot: crate::kernels::bf16dot::default_on(),
        })
    }
}

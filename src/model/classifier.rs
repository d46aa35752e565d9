//! Sequence classifiers: a front-end projection, Mamba blocks, pooling and a
//! head. One description covers the three lineages libmamba runs (the C
//! project's keyword spotter, its MNIST model, and the Mamba-KWS MFCC model);
//! `docs/classifier-gguf.md` gives the GGUF keys that fill it.

use super::{MixerWeights, Tensor, MAX_DIM};
use crate::audio::MfccParams;
use crate::error::{Error, Result};
use crate::mamba::seq_gemm::Packed;

/// What the model expects as raw input.
#[derive(Debug, Clone, PartialEq)]
pub enum InputKind {
    /// Frames of `width` features, given directly.
    Features,
    /// One image, flattened row-major to `width` pixels; pixels in [0, 255]
    /// become `(p / 255 - mean) / std`.
    Image {
        height: usize,
        width: usize,
        mean: f32,
        std: f32,
    },
    /// Audio: peak-normalized, padded/cut to `clip_samples`, then MFCC + delta +
    /// delta-delta (librosa), one frame per row.
    Audio {
        mfcc: MfccParams,
        clip_samples: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// `x / sqrt(mean(x²) + eps) * w`
    Rms,
    /// `(x - mean) / sqrt(var + eps) * w + b`
    Layer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClsPos {
    None,
    Append,
    Prepend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockStyle {
    /// `x = x + mixer(norm(x))`
    PreNormResidual,
    /// `x = norm(mixer(x))`
    PostNorm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The last step's vector.
    Last,
    /// Mean over the (valid) steps.
    Mean,
    /// Element-wise max over the steps.
    Max,
    /// The last feature of every step (one value per step): the real keyword
    /// spotter's `x[:, :, -1]` after its transpose.
    LastFeature,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    Linear,
    /// Linear → SiLU → Linear.
    Mlp,
}

/// Hyperparameters of a classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierConfig {
    pub input: InputKind,
    /// Features per input frame (W).
    pub input_width: usize,
    /// Frames the model needs (0 = any number). Fixed when `transpose` is set.
    pub input_frames: usize,
    /// Output width of the front-end projection.
    pub proj_width: usize,
    pub frontend_norm: Option<NormKind>,
    pub frontend_norm_eps: f32,
    pub frontend_silu: bool,
    pub cls: ClsPos,
    /// Swap steps and features after the front end (the real keyword spotter).
    pub transpose: bool,
    pub n_layers: usize,
    /// Width of each step the Mamba blocks see.
    pub d_model: usize,
    pub d_inner: usize,
    pub d_state: usize,
    pub d_conv: usize,
    pub dt_rank: usize,
    pub block_style: BlockStyle,
    pub norm: NormKind,
    pub norm_eps: f32,
    pub final_norm: Option<NormKind>,
    pub final_norm_eps: f32,
    pub pooling: Pooling,
    pub head: HeadKind,
    /// Hidden width of an MLP head.
    pub head_hidden: usize,
    pub n_classes: usize,
    pub labels: Vec<String>,
}

impl ClassifierConfig {
    pub fn dims(&self) -> crate::mamba::Dims {
        crate::mamba::Dims {
            d_model: self.d_model,
            d_inner: self.d_inner,
            d_state: self.d_state,
            d_conv: self.d_conv,
            dt_rank: self.dt_rank,
            int8: false,
            bf16: false,
        }
    }

    /// Width of the vector the pooling gives (the head's input).
    pub fn pooled_width(&self) -> usize {
        match self.pooling {
            Pooling::LastFeature => {
                if self.transpose {
                    self.proj_width
                } else {
                    // one value per step: only defined for a fixed step count
                    self.input_frames + usize::from(self.cls != ClsPos::None)
                }
            }
            _ => self.d_model,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let dims = [
            ("input width", self.input_width),
            ("projection width", self.proj_width),
            ("n_layers", self.n_layers),
            ("d_model", self.d_model),
            ("d_inner", self.d_inner),
            ("d_state", self.d_state),
            ("d_conv", self.d_conv),
            ("dt_rank", self.dt_rank),
            ("n_classes", self.n_classes),
        ];
        super::check_dims(
            "classifier ",
            &dims,
            self.n_layers,
            self.d_conv,
            self.d_state,
        )?;
        let extra = usize::from(self.cls != ClsPos::None);
        if self.transpose {
            if self.input_frames == 0 || self.input_frames + extra != self.d_model {
                return Err(Error::format(format!(
                    "a transposing classifier needs a fixed frame count with frames{} = d_model ({} + {extra} vs {})",
                    if extra == 1 { " + cls" } else { "" },
                    self.input_frames,
                    self.d_model
                )));
            }
        } else if self.proj_width != self.d_model {
            return Err(Error::format(format!(
                "projection width {} differs from d_model {}",
                self.proj_width, self.d_model
            )));
        }
        if self.pooling == Pooling::LastFeature && !self.transpose && self.input_frames == 0 {
            return Err(Error::format(
                "last-feature pooling needs a fixed frame count",
            ));
        }
        if self.head == HeadKind::Mlp && (self.head_hidden == 0 || self.head_hidden > MAX_DIM) {
            return Err(Error::format("an MLP head needs a hidden width"));
        }
        if !self.labels.is_empty() && self.labels.len() != self.n_classes {
            return Err(Error::format(format!(
                "{} labels for {} classes",
                self.labels.len(),
                self.n_classes
            )));
        }
        for e in [self.norm_eps, self.frontend_norm_eps, self.final_norm_eps] {
            if !(e.is_finite() && e >= 0.0) {
                return Err(Error::format(format!("norm eps {e} is not valid")));
            }
        }
        match &self.input {
            InputKind::Image {
                height, width, std, ..
            } => {
                if height * width != self.input_width || self.input_frames > 1 || *std == 0.0 {
                    return Err(Error::format(format!(
                        "image input {height}x{width} does not match input width {}",
                        self.input_width
                    )));
                }
            }
            InputKind::Audio { mfcc, clip_samples } => {
                if 3 * mfcc.n_mfcc != self.input_width {
                    return Err(Error::format(format!(
                        "audio input: 3 x {} MFCC features, but the model takes {}",
                        mfcc.n_mfcc, self.input_width
                    )));
                }
                let frames = mfcc.n_frames(*clip_samples);
                if self.input_frames != 0 && frames != self.input_frames {
                    return Err(Error::format(format!(
                        "audio input gives {frames} frames per clip, the model takes {}",
                        self.input_frames
                    )));
                }
            }
            InputKind::Features => {}
        }
        Ok(())
    }

    /// The label of class `i` (its number when the file names none).
    pub fn label(&self, i: usize) -> String {
        self.labels.get(i).cloned().unwrap_or_else(|| i.to_string())
    }
}

/// A norm's weight and optional bias (f32).
#[derive(Debug, Clone)]
pub struct Norm {
    pub kind: NormKind,
    pub eps: f32,
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Norm {
    /// Normalizes each `width`-wide row of `x` into `out`.
    pub fn apply(&self, x: &[f32], out: &mut [f32]) {
        let w = self.weight.as_f32();
        let b = self.bias.as_ref().map(|b| b.as_f32());
        let width = w.len();
        if matches!(self.kind, NormKind::Rms) {
            // Rows' sums of squares interleaved (same bits as row by row).
            let whole = x.len().min(out.len()) / width * width;
            crate::kernels::rmsnorm_rows(&mut out[..whole], &x[..whole], w, self.eps);
        }
        for (xr, or) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            match self.kind {
                NormKind::Rms => {}
                NormKind::Layer => {
                    let n = width as f32;
                    let mean = xr.iter().sum::<f32>() / n;
                    let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
                    let inv = 1.0 / (var + self.eps).sqrt();
                    for (o, (&xv, &wv)) in or.iter_mut().zip(xr.iter().zip(w)) {
                        *o = (xv - mean) * inv * wv;
                    }
                }
            }
            if let Some(b) = b {
                for (o, bv) in or.iter_mut().zip(b) {
                    *o += bv;
                }
            }
        }
    }
}

/// A linear layer: weight (out × in) and optional bias (out).
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// y (n × out) = x (n × in) Wᵀ + b.
    pub fn apply(&self, x: &[f32], n: usize, y: &mut [f32]) {
        crate::kernels::matmul(&self.weight, x, n, y);
        if let Some(b) = &self.bias {
            let b = b.as_f32();
            for row in y.chunks_exact_mut(self.weight.rows) {
                for (v, bv) in row.iter_mut().zip(b) {
                    *v += bv;
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClassifierLayer {
    pub norm: Norm,
    pub mixer: MixerWeights,
}

#[derive(Debug, Clone)]
pub struct ClassifierWeights {
    pub frontend: Linear,
    pub frontend_norm: Option<Norm>,
    /// (proj_width), when the config has a cls token.
    pub cls_token: Option<Tensor>,
    pub layers: Vec<ClassifierLayer>,
    pub final_norm: Option<Norm>,
    /// Only for an MLP head: Linear(pooled → hidden), then SiLU.
    pub head_hidden: Option<Linear>,
    pub head: Linear,
}

/// [`Tensor::flush_subnormals`] on a weight and its bias, if any.
fn flush_pair(weight: &mut Tensor, bias: &mut Option<Tensor>) {
    weight.flush_subnormals();
    if let Some(b) = bias {
        b.flush_subnormals();
    }
}

impl Norm {
    fn flush_subnormals(&mut self) {
        flush_pair(&mut self.weight, &mut self.bias)
    }
}

impl Linear {
    fn flush_subnormals(&mut self) {
        flush_pair(&mut self.weight, &mut self.bias)
    }
}

impl ClassifierWeights {
    /// [`Tensor::flush_subnormals`] on every tensor.
    pub fn flush_subnormals(&mut self) {
        self.frontend.flush_subnormals();
        for n in [&mut self.frontend_norm, &mut self.final_norm]
            .into_iter()
            .flatten()
        {
            n.flush_subnormals();
        }
        if let Some(t) = &mut self.cls_token {
            t.flush_subnormals();
        }
        for l in &mut self.layers {
            l.norm.flush_subnormals();
            l.mixer.flush_subnormals(true);
        }
        if let Some(h) = &mut self.head_hidden {
            h.flush_subnormals();
        }
        self.head.flush_subnormals();
    }
}

fn check(t: &Tensor, rows: usize, cols: usize, name: &str) -> Result<()> {
    if t.rows != rows || t.cols != cols {
        return Err(Error::format(format!(
            "tensor {name} has shape {}x{}, expected {rows}x{cols}",
            t.rows, t.cols
        )));
    }
    Ok(())
}

fn check_linear(l: &Linear, out: usize, inp: usize, name: &str) -> Result<()> {
    check(&l.weight, out, inp, name)?;
    if let Some(b) = &l.bias {
        check(b, 1, out, &format!("{name} bias"))?;
    }
    Ok(())
}

fn check_norm(n: &Norm, width: usize, name: &str) -> Result<()> {
    check(&n.weight, 1, width, name)?;
    if let Some(b) = &n.bias {
        check(b, 1, width, &format!("{name} bias"))?;
    }
    Ok(())
}

impl ClassifierWeights {
    pub fn validate(&self, c: &ClassifierConfig) -> Result<()> {
        check_linear(&self.frontend, c.proj_width, c.input_width, "front-end")?;
        if let Some(n) = &self.frontend_norm {
            check_norm(n, c.proj_width, "front-end norm")?;
        }
        if c.frontend_norm.is_some() != self.frontend_norm.is_some() {
            return Err(Error::format("front-end norm: config and tensors disagree"));
        }
        match (&self.cls_token, c.cls) {
            (Some(t), ClsPos::Append | ClsPos::Prepend) => check(t, 1, c.proj_width, "cls token")?,
            (None, ClsPos::None) => {}
            _ => return Err(Error::format("cls token: config and tensors disagree")),
        }
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
            check_norm(&l.norm, c.d_model, &n("norm"))?;
            check(&m.in_proj, 2 * c.d_inner, c.d_model, &n("in_proj"))?;
            if let Some(b) = &m.in_proj_bias {
                check(b, 1, 2 * c.d_inner, &n("in_proj bias"))?;
            }
            check(&m.conv_w, c.d_inner, c.d_conv, &n("conv1d weight"))?;
            if let Some(b) = &m.conv_b {
                check(b, 1, c.d_inner, &n("conv1d bias"))?;
            }
            check(
                &m.x_proj,
                c.dt_rank + 2 * c.d_state,
                c.d_inner,
                &n("x_proj"),
            )?;
            check(&m.dt_proj, c.d_inner, c.dt_rank, &n("dt_proj"))?;
            check(&m.dt_bias, 1, c.d_inner, &n("dt_proj bias"))?;
            check(&m.a, c.d_inner, c.d_state, &n("A"))?;
            check(&m.d, 1, c.d_inner, &n("D"))?;
            check(&m.out_proj, c.d_model, c.d_inner, &n("out_proj"))?;
            if let Some(b) = &m.out_proj_bias {
                check(b, 1, c.d_model, &n("out_proj bias"))?;
            }
        }
        if let Some(n) = &self.final_norm {
            check_norm(n, c.d_model, "final norm")?;
        }
        let pooled = c.pooled_width();
        match (&self.head_hidden, c.head) {
            (Some(h), HeadKind::Mlp) => {
                check_linear(h, c.head_hidden, pooled, "head hidden")?;
                check_linear(&self.head, c.n_classes, c.head_hidden, "head")?;
            }
            (None, HeadKind::Linear) => check_linear(&self.head, c.n_classes, pooled, "head")?,
            _ => return Err(Error::format("head: config and tensors disagree")),
        }
        Ok(())
    }
}

/// An immutable, shareable classifier.
pub struct ClassifierModel {
    pub config: ClassifierConfig,
    pub weights: ClassifierWeights,
    pub source: String,
    pub file_bytes: u64,
    /// The audio front end, prepared once (audio models only).
    pub frontend: Option<crate::audio::KwsFrontend>,
    /// The large f32 matrices packed for the fast sequence GEMM (when the CPU has it).
    pub packed: PackedWeights,
}

/// Packed copies (Wᵀ) of the matrices the forward multiplies by whole sequences.
#[derive(Debug, Clone, Default)]
pub struct PackedWeights {
    pub frontend: Option<Packed>,
    /// Per layer: in_proj, x_proj, out_proj, dt_proj.
    pub layers: Vec<[Option<Packed>; 4]>,
}

impl PackedWeights {
    pub fn new(w: &ClassifierWeights) -> PackedWeights {
        PackedWeights {
            frontend: Packed::new(&w.frontend.weight),
            layers: w
                .layers
                .iter()
                .map(|l| {
                    let m = &l.mixer;
                    [
                        Packed::new(&m.in_proj),
                        Packed::new(&m.x_proj),
                        Packed::new(&m.out_proj),
                        Packed::new(&m.dt_proj),
                    ]
                })
                .collect(),
        }
    }
}

impl ClassifierModel {
    pub fn new(
        config: ClassifierConfig,
        weights: ClassifierWeights,
        source: &str,
        file_bytes: u64,
    ) -> Result<ClassifierModel> {
        config.validate().map_err(|e| e.context(source))?;
        weights.validate(&config).map_err(|e| e.context(source))?;
        let frontend = match &config.input {
            InputKind::Audio { mfcc, clip_samples } => {
                let mut p = mfcc.clone();
                // KwsFrontend takes one second at the sample rate as the clip.
                if *clip_samples != p.sample_rate as usize {
                    return Err(Error::unsupported(format!(
                        "{source}: audio clips of {clip_samples} samples at {} Hz (only one-second clips are supported)",
                        p.sample_rate
                    )));
                }
                p.sample_rate = mfcc.sample_rate;
                Some(crate::audio::KwsFrontend::new(p).map_err(|e| e.context(source))?)
            }
            _ => None,
        };
        // Trained classifiers can hold many subnormal weights (the keyword
        // spotter in ../shared/data: 4% of its projections, nearly all of
        // one norm), each a microcode assist per product on Intel CPUs:
        // ~10x the model's time. All of a classifier's f32 tensors are
        // flushed to zero (it is small); the change is below 1.2e-38 per weight.
        let mut weights = weights;
        weights.flush_subnormals();
        let packed = PackedWeights::new(&weights);
        Ok(ClassifierModel {
            packed,
            config,
            weights,
            source: source.to_string(),
            file_bytes,
            frontend,
        })
    }
}

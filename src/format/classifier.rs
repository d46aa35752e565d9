//! GGUF sequence classifiers (arch `mamba-classifier`, keys in
//! docs/classifier-gguf.md) → [`ClassifierModel`].

use super::gguf::{mixer_weights, GgufFile, Views};
use crate::audio::MfccParams;
use crate::error::{Error, Result};
use crate::model::classifier::*;
use crate::model::Backing;
use std::sync::Arc;

/// `general.architecture` of classifier files.
pub const ARCH: &str = "mamba-classifier";

fn key(k: &str) -> String {
    format!("{ARCH}.{k}")
}

fn norm_kind(s: &str, what: &str) -> Result<Option<NormKind>> {
    match s {
        "none" => Ok(None),
        "rms" => Ok(Some(NormKind::Rms)),
        "layer" => Ok(Some(NormKind::Layer)),
        _ => Err(Error::format(format!(
            "GGUF: {what} = \"{s}\" (expected none, rms or layer)"
        ))),
    }
}

/// Reads the classifier configuration from the metadata.
pub fn config(f: &GgufFile) -> Result<ClassifierConfig> {
    let u = |k: &str| -> Result<usize> { Ok(f.get_u32(&key(k))? as usize) };
    let uo = |k: &str, d: usize| -> Result<usize> {
        Ok(f.get_u32_opt(&key(k))?.map_or(d, |v| v as usize))
    };
    let s = |k: &str, d: &'static str| -> Result<String> {
        Ok(f.get_str_opt(&key(k))?.unwrap_or(d).to_string())
    };
    let fo = |k: &str, d: f32| -> Result<f32> { Ok(f.get_f32_opt(&key(k))?.unwrap_or(d)) };
    let input_width = u("input.width")?;
    let input_frames = uo("input.frames", 0)?;
    let input = match s("input.kind", "features")?.as_str() {
        "features" => InputKind::Features,
        "image" => InputKind::Image {
            height: u("input.image.height")?,
            width: u("input.image.width")?,
            mean: fo("input.image.mean", 0.0)?,
            std: fo("input.image.std", 1.0)?,
        },
        "audio" => {
            let mut p = MfccParams::new(
                u("input.audio.sample_rate")? as u32,
                u("input.audio.n_mfcc")?,
                u("input.audio.n_fft")?,
                u("input.audio.hop_length")?,
                u("input.audio.n_mels")?,
            );
            if let Some(v) = f.get_f32_opt(&key("input.audio.fmin"))? {
                p.fmin = v as f64;
            }
            if let Some(v) = f.get_f32_opt(&key("input.audio.fmax"))? {
                p.fmax = v as f64;
            }
            let clip_samples = uo("input.audio.clip_samples", p.sample_rate as usize)?;
            InputKind::Audio {
                mfcc: p,
                clip_samples,
            }
        }
        k => {
            return Err(Error::format(format!(
                "GGUF: {} = \"{k}\" (expected features, image or audio)",
                key("input.kind")
            )))
        }
    };
    let cls = match s("frontend.cls", "none")?.as_str() {
        "none" => ClsPos::None,
        "append" => ClsPos::Append,
        "prepend" => ClsPos::Prepend,
        k => return Err(Error::format(format!("GGUF: frontend.cls = \"{k}\""))),
    };
    let act = s("frontend.activation", "none")?;
    if act != "none" && act != "silu" {
        return Err(Error::format(format!(
            "GGUF: frontend.activation = \"{act}\" (expected none or silu)"
        )));
    }
    let block_style = match s("block.style", "pre_norm_residual")?.as_str() {
        "pre_norm_residual" => BlockStyle::PreNormResidual,
        "post_norm" => BlockStyle::PostNorm,
        k => return Err(Error::format(format!("GGUF: block.style = \"{k}\""))),
    };
    let pooling = match s("pooling", "last")?.as_str() {
        "last" => Pooling::Last,
        "mean" => Pooling::Mean,
        "max" => Pooling::Max,
        "last_feature" => Pooling::LastFeature,
        k => return Err(Error::format(format!("GGUF: pooling = \"{k}\""))),
    };
    let head = match s("head", "linear")?.as_str() {
        "linear" => HeadKind::Linear,
        "mlp" => HeadKind::Mlp,
        k => return Err(Error::format(format!("GGUF: head = \"{k}\""))),
    };
    let labels = if f.contains_key(&key("labels")) {
        f.get_str_array(&key("labels"))?.to_vec()
    } else {
        Vec::new()
    };
    let c = ClassifierConfig {
        input,
        input_width,
        input_frames,
        proj_width: u("frontend.width")?,
        frontend_norm: norm_kind(&s("frontend.norm", "none")?, "frontend.norm")?,
        frontend_norm_eps: fo("frontend.norm_epsilon", 1e-5)?,
        frontend_silu: act == "silu",
        cls,
        transpose: f.get_bool_opt(&key("frontend.transpose"))?.unwrap_or(false),
        n_layers: u("block_count")?,
        d_model: u("embedding_length")?,
        d_inner: u("ssm.inner_size")?,
        d_state: u("ssm.state_size")?,
        d_conv: u("ssm.conv_kernel")?,
        dt_rank: u("ssm.time_step_rank")?,
        block_style,
        norm: norm_kind(&s("norm", "rms")?, "norm")?
            .ok_or_else(|| Error::format("GGUF: the blocks need a norm (rms or layer)"))?,
        norm_eps: fo("norm_epsilon", 1e-5)?,
        final_norm: norm_kind(&s("final_norm", "none")?, "final_norm")?,
        final_norm_eps: fo("final_norm_epsilon", 1e-5)?,
        pooling,
        head,
        head_hidden: uo("head.hidden", 0)?,
        n_classes: u("class_count")?,
        labels,
    };
    c.validate().map_err(|e| e.context("GGUF"))?;
    Ok(c)
}

fn norm(v: &Views, kind: NormKind, eps: f32, name: &str, width: usize) -> Result<Norm> {
    Ok(Norm {
        kind,
        eps,
        weight: v.f32(&format!("{name}.weight"), 1, width, None)?,
        bias: v.f32_opt(&format!("{name}.bias"), width)?,
    })
}

fn linear(v: &Views, name: &str, out: usize, inp: usize) -> Result<Linear> {
    Ok(Linear {
        weight: v.get(&format!("{name}.weight"), out, inp, None)?,
        bias: v.f32_opt(&format!("{name}.bias"), out)?,
    })
}

/// Reads the weights named in docs/classifier-gguf.md.
pub fn weights(
    f: &GgufFile,
    c: &ClassifierConfig,
    backing: &Arc<Backing>,
) -> Result<ClassifierWeights> {
    let v = Views { f, backing };
    let (dm, di, ds, dc, dr) = (c.d_model, c.d_inner, c.d_state, c.d_conv, c.dt_rank);
    let mut layers = Vec::with_capacity(c.n_layers);
    for i in 0..c.n_layers {
        let n = |s: &str| format!("blk.{i}.{s}");
        let mixer = mixer_weights(&v, i, dm, di, ds, dc, dr)?;
        let norm = norm(&v, c.norm, c.norm_eps, &n("norm"), dm)?;
        layers.push(ClassifierLayer { norm, mixer });
    }
    if f.tensor(&format!("blk.{}.ssm_in.weight", c.n_layers))
        .is_some()
    {
        return Err(Error::format(format!(
            "GGUF: the file has more blocks than block_count = {}",
            c.n_layers
        )));
    }
    let pooled = c.pooled_width();
    let (head_hidden, head) = match c.head {
        HeadKind::Linear => (None, linear(&v, "head", c.n_classes, pooled)?),
        HeadKind::Mlp => (
            Some(linear(&v, "head_hidden", c.head_hidden, pooled)?),
            linear(&v, "head", c.n_classes, c.head_hidden)?,
        ),
    };
    Ok(ClassifierWeights {
        frontend: linear(&v, "frontend", c.proj_width, c.input_width)?,
        frontend_norm: match c.frontend_norm {
            Some(k) => Some(norm(
                &v,
                k,
                c.frontend_norm_eps,
                "frontend_norm",
                c.proj_width,
            )?),
            None => None,
        },
        cls_token: match c.cls {
            ClsPos::None => None,
            _ => Some(v.f32("cls_token", 1, c.proj_width, None)?),
        },
        layers,
        final_norm: match c.final_norm {
            Some(k) => Some(norm(&v, k, c.final_norm_eps, "output_norm", dm)?),
            None => None,
        },
        head_hidden,
        head,
    })
}

/// Builds a classifier from a parsed GGUF file.
pub fn load(path: &str, f: &GgufFile, backing: Arc<Backing>) -> Result<ClassifierModel> {
    let ctx = |e: Error| e.context(path);
    let c = config(f).map_err(ctx)?;
    let w = weights(f, &c, &backing).map_err(ctx)?;
    ClassifierModel::new(c, w, path, backing.bytes().len() as u64)
}

//! The classifier part of the C API: classify frames of features, images,
//! audio samples or a WAV file; read MNIST-style IDX files (optionally gzip).

use super::api::{mamba_input_kind, mamba_model, mamba_model_info, mamba_model_kind};
use super::*;
use crate::mamba::classifier::{self as cf, Workspace};
use crate::model::classifier::{ClassifierModel, InputKind};
use rayon::prelude::*;
use std::sync::Arc;

/// What a `mamba_model` holds for a classifier: the model and its labels as C strings.
pub(crate) struct ClassifierHandle {
    pub(crate) model: Arc<ClassifierModel>,
    labels: Vec<CString>,
}

impl ClassifierHandle {
    pub(crate) fn new(m: ClassifierModel) -> ClassifierHandle {
        let labels = (0..m.config.n_classes)
            .map(|i| CString::new(m.config.label(i).replace('\0', " ")).unwrap_or_default())
            .collect();
        ClassifierHandle {
            model: Arc::new(m),
            labels,
        }
    }

    pub(crate) fn info(&self) -> mamba_model_info {
        let m = &self.model;
        let c = &m.config;
        let (input_kind, sample_rate) = match &c.input {
            InputKind::Features => (mamba_input_kind::MAMBA_INPUT_FEATURES, 0),
            InputKind::Image { .. } => (mamba_input_kind::MAMBA_INPUT_IMAGE, 0),
            InputKind::Audio { mfcc, .. } => {
                (mamba_input_kind::MAMBA_INPUT_AUDIO, mfcc.sample_rate)
            }
        };
        mamba_model_info {
            kind: mamba_model_kind::MAMBA_MODEL_CLASSIFIER,
            n_layers: c.n_layers as u32,
            d_model: c.d_model as u32,
            d_inner: c.d_inner as u32,
            d_state: c.d_state as u32,
            d_conv: c.d_conv as u32,
            dt_rank: c.dt_rank as u32,
            vocab_size: 0,
            n_logits: c.n_classes as u32,
            has_tokenizer: 0,
            file_bytes: m.file_bytes,
            n_classes: c.n_classes as u32,
            input_kind,
            input_width: c.input_width as u32,
            input_frames: c.input_frames as u32,
            sample_rate,
        }
    }
}

type R<T> = std::result::Result<T, StatusError>;

unsafe fn classifier<'a>(model: *const mamba_model) -> R<&'a ClassifierHandle> {
    let h = handle(model, Kind::Model, "model")?;
    h.classifier
        .as_ref()
        .ok_or_else(|| Error::invalid("this is a language model, not a classifier").into())
}

/// Runs `n_items` sequences (item i: `frames(i)` frames starting at
/// `features[i * stride..]`), writing classes/probs/logits for each.
fn run_items(
    m: &ClassifierModel,
    n_items: usize,
    item: &(dyn Fn(usize, &mut Vec<f32>) -> Result<usize> + Sync),
    classes: Option<&mut [i32]>,
    probs: Option<&mut [f32]>,
    logits_out: Option<&mut [f32]>,
) -> R<()> {
    let nc = m.config.n_classes;
    let mut logits = vec![0f32; n_items * nc];
    let one = |ws: &mut (Workspace, Vec<f32>), (i, out): (usize, &mut [f32])| -> Result<()> {
        let (ws, buf) = ws;
        let frames = item(i, buf)?;
        cf::forward(m, ws, buf, frames, out).map_err(|e| e.context(format!("item {i}")))
    };
    let res: Result<()> = if n_items > 1 && crate::threads::num_threads() > 1 {
        crate::threads::run(|| {
            logits
                .par_chunks_mut(nc)
                .enumerate()
                .try_for_each_init(|| (Workspace::new(m), Vec::new()), one)
        })
    } else {
        let mut ws = (Workspace::new(m), Vec::new());
        logits
            .chunks_mut(nc)
            .enumerate()
            .try_for_each(|x| one(&mut ws, x))
    };
    res?;
    if let Some(c) = classes {
        for (i, c) in c.iter_mut().enumerate() {
            *c = cf::argmax(&logits[i * nc..(i + 1) * nc]) as i32;
        }
    }
    if let Some(p) = probs {
        for (l, p) in logits.chunks(nc).zip(p.chunks_mut(nc)) {
            cf::softmax(l, p);
        }
    }
    if let Some(o) = logits_out {
        o.copy_from_slice(&logits);
    }
    Ok(())
}

unsafe fn opt_out<'a, T>(p: *mut T, n: usize, what: &str) -> R<Option<&'a mut [T]>> {
    if p.is_null() {
        Ok(None)
    } else {
        Ok(Some(out_slice(p, n, what)?))
    }
}

/// Classifies `n_items` sequences of frames of features. `features` holds
/// `n_items × n_frames × input_width` floats (item-major, then frame-major:
/// frames × features row-major per item; `input_width` from
/// `mamba_model_get_info`). `lengths` (NULL = all `n_frames`) gives each
/// item's valid frames (1..=n_frames); the padding after them is ignored.
/// Writes, when not NULL: `classes` (n_items), `probs` (softmax) and
/// `logits` (n_items × n_classes each). For an audio model the features are
/// MFCC + delta + delta-delta per frame (see `mamba_audio_features`); for an
/// image model the normalized pixels, one frame.
///
/// # Safety
/// `model` a live handle; the buffers as large as stated above.
#[no_mangle]
pub unsafe extern "C" fn mamba_classify_features(
    model: *const mamba_model,
    features: *const f32,
    n_items: usize,
    n_frames: usize,
    lengths: *const i32,
    classes: *mut i32,
    probs: *mut f32,
    logits: *mut f32,
) -> mamba_status {
    guard("mamba_classify_features", || {
        let h = classifier(model)?;
        let m = &h.model;
        let c = &m.config;
        if n_items == 0 || n_frames == 0 {
            return Err(Error::invalid("n_items and n_frames must be at least 1").into());
        }
        let stride = n_frames
            .checked_mul(c.input_width)
            .filter(|s| s.checked_mul(n_items).is_some())
            .ok_or_else(|| Error::invalid("n_items × n_frames × width overflows"))?;
        let feats = in_slice(features, stride * n_items, "features")?;
        let lens = if lengths.is_null() {
            None
        } else {
            Some(in_slice(lengths, n_items, "lengths")?)
        };
        if let Some(l) = lens {
            for (i, &v) in l.iter().enumerate() {
                if v < 1 || v as usize > n_frames {
                    return Err(Error::invalid(format!(
                        "lengths[{i}] = {v} is outside 1..={n_frames}"
                    ))
                    .into());
                }
            }
        }
        let nc = c.n_classes;
        let classes = opt_out(classes, n_items, "classes")?;
        let probs = opt_out(probs, n_items * nc, "probs")?;
        let logits = opt_out(logits, n_items * nc, "logits")?;
        let w = c.input_width;
        let item = |i: usize, buf: &mut Vec<f32>| -> Result<usize> {
            let f = lens.map_or(n_frames, |l| l[i] as usize);
            buf.clear();
            buf.extend_from_slice(&feats[i * stride..i * stride + f * w]);
            Ok(f)
        };
        run_items(m, n_items, &item, classes, probs, logits)
    })
}

/// Classifies `n_images` images of `input_width` bytes each (0..255, row-major;
/// 784 for MNIST), normalized as the model file says. `classes` (n_images) and
/// `probs` (n_images × n_classes) may each be NULL.
///
/// # Safety
/// `model` a live handle; the buffers as large as stated above.
#[no_mangle]
pub unsafe extern "C" fn mamba_classify_images(
    model: *const mamba_model,
    pixels: *const u8,
    n_images: usize,
    classes: *mut i32,
    probs: *mut f32,
) -> mamba_status {
    guard("mamba_classify_images", || {
        let h = classifier(model)?;
        let m = &h.model;
        let c = &m.config;
        if !matches!(c.input, InputKind::Image { .. }) {
            return Err(Error::invalid("the model does not take images").into());
        }
        if n_images == 0 {
            return Err(Error::invalid("n_images must be at least 1").into());
        }
        let w = c.input_width;
        let n = n_images
            .checked_mul(w)
            .ok_or_else(|| Error::invalid("n_images is too large"))?;
        let px = in_slice(pixels, n, "pixels")?;
        let classes = opt_out(classes, n_images, "classes")?;
        let probs = opt_out(probs, n_images * c.n_classes, "probs")?;
        let item = |i: usize, buf: &mut Vec<f32>| -> Result<usize> {
            buf.resize(w, 0.0);
            cf::image_features(m, &px[i * w..(i + 1) * w], buf)?;
            Ok(1)
        };
        run_items(m, n_images, &item, classes, probs, None)
    })
}

fn classify_samples(h: &ClassifierHandle, samples: &[f32], rate: i32) -> R<Vec<f32>> {
    let m = &h.model;
    if rate <= 0 {
        return Err(Error::invalid(format!("sample rate {rate} must be positive")).into());
    }
    let feats = cf::audio_features(m, samples, rate as u32)?;
    let frames = feats.len() / m.config.input_width;
    let mut ws = Workspace::new(m);
    let mut logits = vec![0f32; m.config.n_classes];
    cf::forward(m, &mut ws, &feats, frames, &mut logits)?;
    Ok(logits)
}

unsafe fn write_result(logits: &[f32], class_index: *mut i32, probs: *mut f32) -> R<()> {
    let nc = logits.len();
    if let Some(p) = opt_out(probs, nc, "probs")? {
        cf::softmax(logits, p);
    }
    if !class_index.is_null() {
        *class_index = cf::argmax(logits) as i32;
    }
    Ok(())
}

/// Classifies one clip of mono float samples in [-1, 1] at `sample_rate` Hz
/// (an audio model: the clip is peak-normalized and padded or cut to the
/// model's clip length, then MFCC features are computed). Writes the class
/// to `*class_index` and the n_classes probabilities to `probs`; either may be NULL.
///
/// # Safety
/// `model` a live handle; `samples` `n_samples` floats; `probs` NULL or n_classes floats.
#[no_mangle]
pub unsafe extern "C" fn mamba_classify_audio_f32(
    model: *const mamba_model,
    samples: *const f32,
    n_samples: usize,
    sample_rate: i32,
    class_index: *mut i32,
    probs: *mut f32,
) -> mamba_status {
    guard("mamba_classify_audio_f32", || {
        let h = classifier(model)?;
        let s = in_slice(samples, n_samples, "samples")?;
        let logits = classify_samples(h, s, sample_rate)?;
        write_result(&logits, class_index, probs)
    })
}

/// Like `mamba_classify_audio_f32` for 16-bit PCM samples (s / 32768).
///
/// # Safety
/// As `mamba_classify_audio_f32`.
#[no_mangle]
pub unsafe extern "C" fn mamba_classify_audio_i16(
    model: *const mamba_model,
    samples: *const i16,
    n_samples: usize,
    sample_rate: i32,
    class_index: *mut i32,
    probs: *mut f32,
) -> mamba_status {
    guard("mamba_classify_audio_i16", || {
        let h = classifier(model)?;
        let s = in_slice(samples, n_samples, "samples")?;
        let f: Vec<f32> = s.iter().map(|&v| v as f32 / 32768.0).collect();
        let logits = classify_samples(h, &f, sample_rate)?;
        write_result(&logits, class_index, probs)
    })
}

/// Classifies a WAV file (PCM 16-bit or float, mono, at the model's sample
/// rate; anything else is an error naming the file).
///
/// # Safety
/// `path` NUL-terminated; otherwise as `mamba_classify_audio_f32`.
#[no_mangle]
pub unsafe extern "C" fn mamba_classify_wav(
    model: *const mamba_model,
    path: *const c_char,
    class_index: *mut i32,
    probs: *mut f32,
) -> mamba_status {
    guard("mamba_classify_wav", || {
        let h = classifier(model)?;
        let path = cstr_path(path, "path")?;
        if h.model.frontend.is_none() {
            return Err(Error::invalid(
                "the model does not take audio (its input is not MFCC features)",
            )
            .into());
        }
        let wav = crate::audio::read_wav_file(path)?;
        if wav.channels != 1 {
            crate::audio::require_mono_16k(&wav).map_err(|e| e.context(path))?;
        }
        let logits = classify_samples(h, &wav.samples, wav.sample_rate as i32)
            .map_err(|e| StatusError(e.0, format!("{path}: {}", e.1)))?;
        write_result(&logits, class_index, probs)
    })
}

/// The model input of one audio clip: `input_frames × input_width` floats
/// (frames × (MFCC, delta, delta-delta), row-major), as
/// `mamba_classify_features` takes them. `out_len` must be at least that.
///
/// # Safety
/// `model` a live handle; `samples` `n_samples` floats; `out` `out_len` floats.
#[no_mangle]
pub unsafe extern "C" fn mamba_audio_features(
    model: *const mamba_model,
    samples: *const f32,
    n_samples: usize,
    sample_rate: i32,
    out: *mut f32,
    out_len: usize,
) -> mamba_status {
    guard("mamba_audio_features", || {
        let h = classifier(model)?;
        let s = in_slice(samples, n_samples, "samples")?;
        if sample_rate <= 0 {
            return Err(
                Error::invalid(format!("sample rate {sample_rate} must be positive")).into(),
            );
        }
        let f = cf::audio_features(&h.model, s, sample_rate as u32)?;
        if out_len < f.len() {
            return Err(StatusError(
                mamba_status::MAMBA_ERR_BUFFER_TOO_SMALL,
                format!("out holds {out_len} floats, {} needed", f.len()),
            ));
        }
        out_slice(out, f.len(), "out")?.copy_from_slice(&f);
        Ok(())
    })
}

/// The label of class `index` ("down", "7", ...), or NULL (with an error
/// message) for a bad model or index. Valid while the model lives.
///
/// # Safety
/// `model` a live handle.
#[no_mangle]
pub unsafe extern "C" fn mamba_model_class_label(
    model: *const mamba_model,
    index: i32,
) -> *const c_char {
    let mut out: *const c_char = std::ptr::null();
    guard("mamba_model_class_label", || {
        let h = classifier(model)?;
        let l = usize::try_from(index)
            .ok()
            .and_then(|i| h.labels.get(i))
            .ok_or_else(|| {
                Error::invalid(format!("class {index} is outside 0..{}", h.labels.len()))
            })?;
        out = l.as_ptr();
        Ok(())
    });
    out
}

/// Reads an IDX file of unsigned bytes (MNIST images or labels), plain or
/// gzip-compressed. Writes the dimensions to `dims` (up to `dims_len`) and
/// their count to `*n_dims`. With `data` NULL only the dimensions are
/// reported; otherwise `data_len` must hold the product of the dimensions
/// (else MAMBA_ERR_BUFFER_TOO_SMALL) and the bytes are copied there.
///
/// # Safety
/// `path` NUL-terminated; `dims` `dims_len` u32; `n_dims` writable; `data` NULL or `data_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mamba_read_idx(
    path: *const c_char,
    dims: *mut u32,
    dims_len: usize,
    n_dims: *mut u32,
    data: *mut u8,
    data_len: usize,
) -> mamba_status {
    guard("mamba_read_idx", || {
        let path = cstr_path(path, "path")?;
        out_ptr(n_dims, "n_dims")?;
        let (d, bytes) = read_idx(path)?;
        let dims_out = out_slice(dims, dims_len, "dims")?;
        if dims_len < d.len() {
            return Err(StatusError(
                mamba_status::MAMBA_ERR_BUFFER_TOO_SMALL,
                format!("{path}: {} dimensions, dims holds {dims_len}", d.len()),
            ));
        }
        if !data.is_null() {
            if data_len < bytes.len() {
                return Err(StatusError(
                    mamba_status::MAMBA_ERR_BUFFER_TOO_SMALL,
                    format!(
                        "{path}: {} bytes of data, data holds {data_len}",
                        bytes.len()
                    ),
                ));
            }
            out_slice(data, bytes.len(), "data")?.copy_from_slice(&bytes);
        }
        dims_out[..d.len()].copy_from_slice(&d);
        *n_dims = d.len() as u32;
        Ok(())
    })
}

/// Parses an IDX file of unsigned bytes (gzip-compressed when it starts with 1f 8b).
pub fn read_idx(path: &str) -> Result<(Vec<u32>, Vec<u8>)> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, &e))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::format(format!("{path}: gzip: {e}")))?;
        out
    } else {
        raw
    };
    let bad = |m: String| Error::format(format!("{path}: {m}"));
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("not an IDX file (bad magic)".into()));
    }
    if bytes[2] != 0x08 {
        return Err(Error::unsupported(format!(
            "{path}: IDX element type 0x{:02x}; only unsigned bytes (0x08) are supported",
            bytes[2]
        )));
    }
    let nd = bytes[3] as usize;
    if nd == 0 || bytes.len() < 4 + 4 * nd {
        return Err(bad(format!("IDX header with {nd} dimensions is truncated")));
    }
    let dims: Vec<u32> = (0..nd)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()))
        .collect();
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d as usize))
        .ok_or_else(|| bad("IDX dimensions overflow".into()))?;
    let body = &bytes[4 + 4 * nd..];
    if body.len() != n {
        return Err(bad(format!(
            "IDX dimensions {dims:?} need {n} bytes, the file has {}",
            body.len()
        )));
    }
    Ok((dims, body.to_vec()))
}

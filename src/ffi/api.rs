//! The modern C API (`mamba_*`): opaque handles, status codes, thread-local
#![allow(non_camel_case_types)]
//! error messages. See `include/mamba.h` for the documentation C users read.

use super::*;
use crate::format::{self, LoadOptions};
use crate::generate::{self, GenerateOptions};
use crate::model::Model;
use crate::sampler::{Sampler, SamplerParams};
use crate::session::Session;
use crate::tokenizer::Tokenizer;
use std::ffi::c_void;
use std::sync::Arc;

pub const MAMBA_VERSION_MAJOR: i32 = 0;
pub const MAMBA_VERSION_MINOR: i32 = 1;
pub const MAMBA_VERSION_PATCH: i32 = 0;

/// An immutable model, shareable by any number of sessions on any threads.
pub struct mamba_model {
    /// The language model (`None` for a classifier).
    model: Option<Arc<Model>>,
    /// The classifier (`None` for a language model).
    pub(crate) classifier: Option<super::classifier::ClassifierHandle>,
}

impl mamba_model {
    /// The language model, or an error for a classifier.
    fn lm(&self) -> std::result::Result<&Arc<Model>, StatusError> {
        self.model.as_ref().ok_or_else(|| {
            Error::invalid(
                "this is a classifier model (use mamba_classify_*; it has no sessions or tokenizer)",
            )
            .into()
        })
    }
}

/// One sequence's state over a model. Use a session from one thread at a time.
pub struct mamba_session {
    session: Session,
}

/// A tokenizer (from tokenizer.bin, tokenizer.json, or a model file).
pub struct mamba_tokenizer {
    tok: Arc<Tokenizer>,
}

/// A token sampler with its own random state.
pub struct mamba_sampler {
    sampler: Sampler,
}

/// Options for `mamba_model_load`. Start from `mamba_load_options_default()`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mamba_load_options {
    /// Non-zero: read the file into memory instead of mapping it (safe
    /// against the file being truncated or rewritten while in use).
    pub copy_file: i32,
    /// Non-zero: read one-byte legacy v1 weights as "bfloat8" instead of int8.
    pub legacy_bfloat8: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum mamba_model_kind {
    MAMBA_MODEL_LANGUAGE = 0,
    MAMBA_MODEL_CLASSIFIER = 1,
}

/// What `mamba_model_get_info` reports.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mamba_model_info {
    pub kind: mamba_model_kind,
    pub n_layers: u32,
    pub d_model: u32,
    pub d_inner: u32,
    pub d_state: u32,
    pub d_conv: u32,
    pub dt_rank: u32,
    /// Tokens the tokenizer knows.
    pub vocab_size: u32,
    /// Logits per position (the embedding rows; >= vocab_size).
    pub n_logits: u32,
    /// Non-zero when the model file carries a tokenizer.
    pub has_tokenizer: i32,
    /// Size of the model file in bytes.
    pub file_bytes: u64,
    /// Classifiers: the number of classes (0 for a language model).
    pub n_classes: u32,
    /// Classifiers: what raw input the model takes.
    pub input_kind: mamba_input_kind,
    /// Classifiers: features per frame (784 pixels for an image).
    pub input_width: u32,
    /// Classifiers: frames per item the model needs (0 = any number).
    pub input_frames: u32,
    /// Audio classifiers: the sample rate they need (Hz).
    pub sample_rate: u32,
}

/// The raw input a classifier takes (`mamba_model_info.input_kind`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum mamba_input_kind {
    /// Not a classifier.
    MAMBA_INPUT_NONE = 0,
    /// Frames of features (`mamba_classify_features`).
    MAMBA_INPUT_FEATURES = 1,
    /// An image (`mamba_classify_images`, or normalized floats as features).
    MAMBA_INPUT_IMAGE = 2,
    /// Mono audio (`mamba_classify_wav`, `mamba_classify_audio_*`, or MFCC features).
    MAMBA_INPUT_AUDIO = 3,
}

/// Sampling parameters. Start from `mamba_sampler_params_default()`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mamba_sampler_params {
    /// 0 = greedy.
    pub temperature: f32,
    /// Nucleus sampling threshold; <= 0 or >= 1 samples from all tokens.
    pub top_p: f32,
    /// Keep only the k most likely tokens; 0 = off.
    pub top_k: i32,
    /// Repetition penalty; 1 = off.
    pub repeat_penalty: f32,
    /// Recent tokens the penalty considers.
    pub repeat_last_n: i32,
    pub seed: u64,
}

/// Parameters of `mamba_generate`. Start from `mamba_generate_params_default()`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mamba_generate_params {
    /// Most tokens to generate.
    pub max_tokens: i32,
    /// Non-zero: stop at the end-of-text token.
    pub stop_at_eos: i32,
    pub sampler: mamba_sampler_params,
}

/// Timing and counts of one `mamba_generate` call.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct mamba_generate_stats {
    pub prompt_tokens: i32,
    pub generated_tokens: i32,
    pub prompt_ms: f64,
    pub generate_ms: f64,
    pub prompt_tok_per_s: f64,
    pub generate_tok_per_s: f64,
}

/// Receives each generated piece of text (`len` bytes, NUL-terminated, whole
/// UTF-8 characters). Return 0 to continue, non-zero to stop.
pub type mamba_piece_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, piece: *const c_char, len: usize) -> i32>;

fn to_params(p: &mamba_sampler_params) -> std::result::Result<SamplerParams, StatusError> {
    if !p.temperature.is_finite() || p.temperature < 0.0 {
        return Err(Error::invalid(format!("temperature {} must be >= 0", p.temperature)).into());
    }
    if p.top_k < 0 || p.repeat_last_n < 0 {
        return Err(Error::invalid("top_k and repeat_last_n must be >= 0").into());
    }
    if !(p.repeat_penalty.is_finite() && p.repeat_penalty > 0.0) {
        return Err(
            Error::invalid(format!("repeat_penalty {} must be > 0", p.repeat_penalty)).into(),
        );
    }
    Ok(SamplerParams {
        temperature: p.temperature,
        top_p: if p.top_p.is_nan() { 1.0 } else { p.top_p },
        top_k: p.top_k as usize,
        repeat_penalty: p.repeat_penalty,
        repeat_last_n: (p.repeat_last_n as usize).min(1 << 20),
        seed: p.seed,
    })
}

fn token_id(t: i32, what: &str) -> std::result::Result<u32, StatusError> {
    u32::try_from(t).map_err(|_| Error::invalid(format!("{what} {t} is negative")).into())
}

/// The library version, "MAJOR.MINOR.PATCH".
#[no_mangle]
pub extern "C" fn mamba_version() -> *const c_char {
    static V: &[u8] = concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes();
    V.as_ptr() as *const c_char
}

/// The message of the last failed call on this thread ("" if none). Valid
/// until the next failing call on the same thread.
#[no_mangle]
pub extern "C" fn mamba_last_error() -> *const c_char {
    last_error_ptr()
}

/// A static description of a status code.
#[no_mangle]
/// Takes an int so that any value a C caller passes is safe.
pub extern "C" fn mamba_status_string(status: i32) -> *const c_char {
    let s: &'static [u8] = match status {
        0 => b"ok\0",
        1 => b"invalid argument\0",
        2 => b"I/O error\0",
        3 => b"invalid file format\0",
        4 => b"unsupported\0",
        5 => b"out of memory\0",
        6 => b"state does not match the model\0",
        7 => b"buffer too small\0",
        8 => b"internal error\0",
        _ => b"unknown status\0",
    };
    s.as_ptr() as *const c_char
}

/// Sets the number of worker threads (0 = MAMBA_NUM_THREADS or all cores).
#[no_mangle]
pub extern "C" fn mamba_set_num_threads(n: i32) -> mamba_status {
    guard("mamba_set_num_threads", || {
        if n < 0 {
            return Err(Error::invalid(format!("thread count {n} is negative")).into());
        }
        crate::threads::set_num_threads(n as usize);
        Ok(())
    })
}

/// The number of worker threads in use.
#[no_mangle]
pub extern "C" fn mamba_get_num_threads() -> i32 {
    let mut n = 1;
    guard("mamba_get_num_threads", || {
        n = crate::threads::num_threads() as i32;
        Ok(())
    });
    n
}

#[no_mangle]
pub extern "C" fn mamba_load_options_default() -> mamba_load_options {
    mamba_load_options {
        copy_file: 0,
        legacy_bfloat8: 0,
    }
}

/// Loads a model file (GGUF or the C project's v1). `options` may be NULL.
/// On success writes a new handle to `*out` (free with `mamba_model_free`).
///
/// # Safety
/// `path` must be a NUL-terminated string; `options` NULL or valid; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn mamba_model_load(
    path: *const c_char,
    options: *const mamba_load_options,
    out: *mut *mut mamba_model,
) -> mamba_status {
    guard("mamba_model_load", || {
        let path = cstr_path(path, "path")?;
        out_ptr(out, "out")?;
        let o = if options.is_null() {
            mamba_load_options_default()
        } else {
            *options
        };
        let opts = LoadOptions {
            copy: o.copy_file != 0,
            legacy_bfloat8: o.legacy_bfloat8 != 0,
            // C: MAMBA_HUGE_PAGES=1 (read by the loader).
            ..Default::default()
        };
        let handle = match format::load_any(path, &opts)? {
            format::AnyModel::Lm(m) => mamba_model {
                model: Some(Arc::new(m)),
                classifier: None,
            },
            format::AnyModel::Classifier(c) => mamba_model {
                model: None,
                classifier: Some(super::classifier::ClassifierHandle::new(c)),
            },
        };
        *out = register(handle, Kind::Model);
        Ok(())
    })
}

/// Frees a model. NULL is a no-op. Sessions made from it stay valid.
///
/// # Safety
/// `model` must be NULL or a handle from `mamba_model_load`.
#[no_mangle]
pub unsafe extern "C" fn mamba_model_free(model: *mut mamba_model) {
    free_handle(model, Kind::Model, "mamba_model_free")
}

/// Describes a model.
///
/// # Safety
/// `model` a live model handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn mamba_model_get_info(
    model: *const mamba_model,
    out: *mut mamba_model_info,
) -> mamba_status {
    guard("mamba_model_get_info", || {
        let h = handle(model, Kind::Model, "model")?;
        out_ptr(out, "out")?;
        if let Some(c) = &h.classifier {
            *out = c.info();
            return Ok(());
        }
        let m = h.lm()?;
        let c = &m.config;
        *out = mamba_model_info {
            kind: mamba_model_kind::MAMBA_MODEL_LANGUAGE,
            n_layers: c.n_layers as u32,
            d_model: c.d_model as u32,
            d_inner: c.d_inner as u32,
            d_state: c.d_state as u32,
            d_conv: c.d_conv as u32,
            dt_rank: c.dt_rank as u32,
            vocab_size: c.vocab_size as u32,
            n_logits: c.padded_vocab as u32,
            has_tokenizer: m.tokenizer.is_some() as i32,
            file_bytes: m.file_bytes,
            n_classes: 0,
            input_kind: mamba_input_kind::MAMBA_INPUT_NONE,
            input_width: 0,
            input_frames: 0,
            sample_rate: 0,
        };
        Ok(())
    })
}

/// A new handle to the tokenizer the model file carries (free it with
/// `mamba_tokenizer_free`). Fails when the file has none.
///
/// # Safety
/// `model` a live model handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn mamba_model_get_tokenizer(
    model: *const mamba_model,
    out: *mut *mut mamba_tokenizer,
) -> mamba_status {
    guard("mamba_model_get_tokenizer", || {
        let m = handle(model, Kind::Model, "model")?.lm()?;
        out_ptr(out, "out")?;
        let tok = m
            .tokenizer
            .clone()
            .ok_or_else(|| Error::invalid(format!("{} carries no tokenizer", m.source)))?;
        *out = register(mamba_tokenizer { tok }, Kind::Tokenizer);
        Ok(())
    })
}

/// A new session (empty state) over `model`.
///
/// # Safety
/// `model` a live model handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn mamba_session_new(
    model: *const mamba_model,
    out: *mut *mut mamba_session,
) -> mamba_status {
    guard("mamba_session_new", || {
        let m = handle(model, Kind::Model, "model")?.lm()?;
        out_ptr(out, "out")?;
        *out = register(
            mamba_session {
                session: Session::new(m.clone()),
            },
            Kind::Session,
        );
        Ok(())
    })
}

/// Frees a session. NULL is a no-op.
///
/// # Safety
/// `session` NULL or a handle from `mamba_session_new`.
#[no_mangle]
pub unsafe extern "C" fn mamba_session_free(session: *mut mamba_session) {
    free_handle(session, Kind::Session, "mamba_session_free")
}

/// Clears the session's state, as if new.
///
/// # Safety
/// `session` a live session handle.
#[no_mangle]
pub unsafe extern "C" fn mamba_session_reset(session: *mut mamba_session) -> mamba_status {
    guard("mamba_session_reset", || {
        handle_mut(session, Kind::Session, "session")?
            .session
            .reset();
        Ok(())
    })
}

/// Tokens the session has consumed since it was made or reset.
///
/// # Safety
/// `session` a live session handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn mamba_session_position(
    session: *const mamba_session,
    out: *mut u64,
) -> mamba_status {
    guard("mamba_session_position", || {
        let s = handle(session, Kind::Session, "session")?;
        out_ptr(out, "out")?;
        *out = s.session.position();
        Ok(())
    })
}

fn copy_logits(src: &[f32], dst: *mut f32, len: usize) -> FfiResult {
    if dst.is_null() {
        return Ok(());
    }
    if len < src.len() {
        return Err(StatusError(
            mamba_status::MAMBA_ERR_BUFFER_TOO_SMALL,
            format!("logits buffer holds {len} floats, need {}", src.len()),
        ));
    }
    // SAFETY: caller promises `len` writable floats at dst.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
    Ok(())
}

/// Feeds one token. When `logits` is not NULL, copies the next-token logits
/// there (`logits_len` must be at least `n_logits` of the model info).
///
/// # Safety
/// `session` live; `logits` NULL or `logits_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn mamba_forward(
    session: *mut mamba_session,
    token: i32,
    logits: *mut f32,
    logits_len: usize,
) -> mamba_status {
    guard("mamba_forward", || {
        let s = &mut handle_mut(session, Kind::Session, "session")?.session;
        let t = token_id(token, "token")?;
        let l = s.forward(t)?;
        copy_logits(l, logits, logits_len)
    })
}

/// Feeds `n` tokens in prompt mode (fast, batched). When `logits` is not
/// NULL, copies the logits after the last token there.
///
/// # Safety
/// `session` live; `tokens` `n` readable ints; `logits` NULL or `logits_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn mamba_forward_tokens(
    session: *mut mamba_session,
    tokens: *const i32,
    n: usize,
    logits: *mut f32,
    logits_len: usize,
) -> mamba_status {
    guard("mamba_forward_tokens", || {
        let s = &mut handle_mut(session, Kind::Session, "session")?.session;
        let toks = in_slice(tokens, n, "tokens")?;
        let ids = toks
            .iter()
            .map(|&t| token_id(t, "token"))
            .collect::<std::result::Result<Vec<u32>, _>>()?;
        let l = s.forward_tokens(&ids)?;
        copy_logits(l, logits, logits_len)
    })
}

/// Advances `n` sessions of the same model by one token each
/// (`tokens[i]` for `sessions[i]`), reading the weights once for all of
/// them: much faster than `n` separate `mamba_forward` calls. Each
/// session's logits are then available with `mamba_session_logits`. The
/// sessions must be distinct and share one model.
///
/// # Safety
/// `sessions` `n` live session handles; `tokens` `n` readable ints.
#[no_mangle]
pub unsafe extern "C" fn mamba_forward_batch(
    sessions: *const *mut mamba_session,
    tokens: *const i32,
    n: usize,
) -> mamba_status {
    guard("mamba_forward_batch", || {
        let handles = in_slice(sessions, n, "sessions")?;
        let toks = in_slice(tokens, n, "tokens")?;
        let mut seen = std::collections::HashSet::with_capacity(n);
        for &h in handles {
            if !seen.insert(h as usize) {
                return Err(Error::invalid("the same session appears twice in the batch").into());
            }
        }
        let ids = toks
            .iter()
            .map(|&t| token_id(t, "token"))
            .collect::<std::result::Result<Vec<u32>, _>>()?;
        let mut refs: Vec<&mut Session> = Vec::with_capacity(n);
        for (i, &h) in handles.iter().enumerate() {
            // SAFETY: distinct live handles (checked above and by `handle_mut`).
            refs.push(&mut handle_mut(h, Kind::Session, &format!("sessions[{i}]"))?.session);
        }
        Session::forward_batch(&mut refs, &ids)?;
        Ok(())
    })
}

/// A pointer to the session's last logits (`*n` floats), valid until the
/// session's next forward, reset or free.
///
/// # Safety
/// `session` live; `out`, `n` writable.
#[no_mangle]
pub unsafe extern "C" fn mamba_session_logits(
    session: *const mamba_session,
    out: *mut *const f32,
    n: *mut usize,
) -> mamba_status {
    guard("mamba_session_logits", || {
        let s = &handle(session, Kind::Session, "session")?.session;
        out_ptr(out, "out")?;
        out_ptr(n, "n")?;
        let l = s.logits();
        *out = l.as_ptr();
        *n = l.len();
        Ok(())
    })
}

/// Bytes a state blob of this session takes.
///
/// # Safety
/// `session` live; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn mamba_state_size(
    session: *const mamba_session,
    out: *mut usize,
) -> mamba_status {
    guard("mamba_state_size", || {
        let s = &handle(session, Kind::Session, "session")?.session;
        out_ptr(out, "out")?;
        *out = s.state_size();
        Ok(())
    })
}

/// Writes the session's state (a self-describing blob: magic, version,
/// dimensions, position, checksum, floats) into `buf`.
///
/// # Safety
/// `session` live; `buf` `len` writable bytes; `written` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mamba_state_get(
    session: *const mamba_session,
    buf: *mut u8,
    len: usize,
    written: *mut usize,
) -> mamba_status {
    guard("mamba_state_get", || {
        let s = &handle(session, Kind::Session, "session")?.session;
        let need = s.state_size();
        if len < need {
            return Err(StatusError(
                mamba_status::MAMBA_ERR_BUFFER_TOO_SMALL,
                format!("state buffer holds {len} bytes, need {need}"),
            ));
        }
        let out = out_slice(buf, len, "buf")?;
        let n = s.state_get(out)?;
        if !written.is_null() {
            *written = n;
        }
        Ok(())
    })
}

/// Restores a state written by `mamba_state_get` for a model of the same
/// shape. On error the session is unchanged.
///
/// # Safety
/// `session` live; `buf` `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mamba_state_set(
    session: *mut mamba_session,
    buf: *const u8,
    len: usize,
) -> mamba_status {
    guard("mamba_state_set", || {
        let s = &mut handle_mut(session, Kind::Session, "session")?.session;
        let blob = in_slice(buf, len, "buf")?;
        s.state_set(blob)?;
        Ok(())
    })
}

/// Loads a tokenizer: the C project's tokenizer.bin or an HF tokenizer.json.
///
/// # Safety
/// `path` NUL-terminated; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn mamba_tokenizer_load(
    path: *const c_char,
    out: *mut *mut mamba_tokenizer,
) -> mamba_status {
    guard("mamba_tokenizer_load", || {
        let path = cstr_path(path, "path")?;
        out_ptr(out, "out")?;
        let tok = Tokenizer::from_file(path)?;
        *out = register(mamba_tokenizer { tok: Arc::new(tok) }, Kind::Tokenizer);
        Ok(())
    })
}

/// Frees a tokenizer. NULL is a no-op.
///
/// # Safety
/// `tok` NULL or a tokenizer handle.
#[no_mangle]
pub unsafe extern "C" fn mamba_tokenizer_free(tok: *mut mamba_tokenizer) {
    free_handle(tok, Kind::Tokenizer, "mamba_tokenizer_free")
}

/// Number of tokens the tokenizer knows.
///
/// # Safety
/// `tok` live; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn mamba_tokenizer_vocab_size(
    tok: *const mamba_tokenizer,
    out: *mut u32,
) -> mamba_status {
    guard("mamba_tokenizer_vocab_size", || {
        let t = &handle(tok, Kind::Tokenizer, "tokenizer")?.tok;
        out_ptr(out, "out")?;
        *out = t.vocab_size() as u32;
        Ok(())
    })
}

/// Encodes `text_len` bytes of text (no BOS/EOS). Writes up to `cap` ids to
/// `tokens` and the count to `*n_tokens`. When `cap` is too small, returns
/// MAMBA_ERR_BUFFER_TOO_SMALL with the needed count in `*n_tokens`.
///
/// # Safety
/// `tok` live; `text` `text_len` readable bytes; `tokens` `cap` writable ints; `n_tokens` writable.
#[no_mangle]
pub unsafe extern "C" fn mamba_tokenize(
    tok: *const mamba_tokenizer,
    text: *const c_char,
    text_len: usize,
    tokens: *mut i32,
    cap: usize,
    n_tokens: *mut usize,
) -> mamba_status {
    guard("mamba_tokenize", || {
        let t = &handle(tok, Kind::Tokenizer, "tokenizer")?.tok;
        let text = in_slice(text as *const u8, text_len, "text")?;
        out_ptr(n_tokens, "n_tokens")?;
        let ids = t.encode(text)?;
        *n_tokens = ids.len();
        if ids.len() > cap {
            return Err(StatusError(
                mamba_status::MAMBA_ERR_BUFFER_TOO_SMALL,
                format!("token buffer holds {cap} ids, need {}", ids.len()),
            ));
        }
        let out = out_slice(tokens, cap, "tokens")?;
        for (o, &i) in out.iter_mut().zip(&ids) {
            *o = i as i32;
        }
        Ok(())
    })
}

/// The bytes of one token (not NUL-terminated) into `buf`; `*len` gets the
/// length. MAMBA_ERR_BUFFER_TOO_SMALL (with `*len` set) when `cap` is short.
///
/// # Safety
/// `tok` live; `buf` `cap` writable bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn mamba_token_to_piece(
    tok: *const mamba_tokenizer,
    token: i32,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> mamba_status {
    guard("mamba_token_to_piece", || {
        let t = &handle(tok, Kind::Tokenizer, "tokenizer")?.tok;
        out_ptr(len, "len")?;
        let id = token_id(token, "token")?;
        let piece = t.token_bytes(id).ok_or_else(|| {
            Error::invalid(format!(
                "token {id} is out of range (vocabulary {})",
                t.vocab_size()
            ))
        })?;
        *len = piece.len();
        if piece.len() > cap {
            return Err(StatusError(
                mamba_status::MAMBA_ERR_BUFFER_TOO_SMALL,
                format!("buffer holds {cap} bytes, the piece needs {}", piece.len()),
            ));
        }
        out_slice(buf as *mut u8, cap, "buf")?[..piece.len()].copy_from_slice(piece);
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn mamba_sampler_params_default() -> mamba_sampler_params {
    let d = SamplerParams::default();
    mamba_sampler_params {
        temperature: d.temperature,
        top_p: d.top_p,
        top_k: d.top_k as i32,
        repeat_penalty: d.repeat_penalty,
        repeat_last_n: d.repeat_last_n as i32,
        seed: d.seed,
    }
}

/// A sampler over `n_logits` logits. `params` may be NULL (defaults).
///
/// # Safety
/// `params` NULL or valid; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn mamba_sampler_new(
    params: *const mamba_sampler_params,
    n_logits: usize,
    out: *mut *mut mamba_sampler,
) -> mamba_status {
    guard("mamba_sampler_new", || {
        out_ptr(out, "out")?;
        if n_logits == 0 || n_logits > crate::model::MAX_DIM {
            return Err(Error::invalid(format!("n_logits {n_logits} is out of range")).into());
        }
        let p = if params.is_null() {
            mamba_sampler_params_default()
        } else {
            *params
        };
        let sampler = Sampler::new(n_logits, to_params(&p)?);
        *out = register(mamba_sampler { sampler }, Kind::Sampler);
        Ok(())
    })
}

/// Frees a sampler. NULL is a no-op.
///
/// # Safety
/// `sampler` NULL or a sampler handle.
#[no_mangle]
pub unsafe extern "C" fn mamba_sampler_free(sampler: *mut mamba_sampler) {
    free_handle(sampler, Kind::Sampler, "mamba_sampler_free")
}

/// Picks a token from `n` logits (not modified) into `*token`, and records
/// it for the repetition penalty.
///
/// # Safety
/// `sampler` live; `logits` `n` readable floats; `token` writable.
#[no_mangle]
pub unsafe extern "C" fn mamba_sampler_sample(
    sampler: *mut mamba_sampler,
    logits: *const f32,
    n: usize,
    token: *mut i32,
) -> mamba_status {
    guard("mamba_sampler_sample", || {
        let s = &mut handle_mut(sampler, Kind::Sampler, "sampler")?.sampler;
        let l = in_slice(logits, n, "logits")?;
        out_ptr(token, "token")?;
        if l.is_empty() {
            return Err(Error::invalid("no logits given").into());
        }
        let t = s.sample(l);
        s.accept(t);
        *token = t as i32;
        Ok(())
    })
}

/// Records a token (e.g. of the prompt) for the repetition penalty.
///
/// # Safety
/// `sampler` live.
#[no_mangle]
pub unsafe extern "C" fn mamba_sampler_accept(
    sampler: *mut mamba_sampler,
    token: i32,
) -> mamba_status {
    guard("mamba_sampler_accept", || {
        let s = &mut handle_mut(sampler, Kind::Sampler, "sampler")?.sampler;
        s.accept(token_id(token, "token")?);
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn mamba_generate_params_default() -> mamba_generate_params {
    mamba_generate_params {
        max_tokens: 256,
        stop_at_eos: 1,
        sampler: mamba_sampler_params_default(),
    }
}

/// Generates text: encodes `prompt`, feeds it in prompt mode, samples up to
/// `max_tokens` tokens, calling `callback` with each piece. `tokenizer` may
/// be NULL to use the model's own; `params` NULL for defaults; `stats` NULL
/// or filled with counts and speeds. The session keeps the state (prompt and
/// generated text), so a later call continues from there.
///
/// # Safety
/// Handles live; `prompt` NUL-terminated; `stats` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mamba_generate(
    session: *mut mamba_session,
    tokenizer: *const mamba_tokenizer,
    prompt: *const c_char,
    params: *const mamba_generate_params,
    callback: mamba_piece_callback,
    user_data: *mut c_void,
    stats: *mut mamba_generate_stats,
) -> mamba_status {
    guard("mamba_generate", || {
        let s = &mut handle_mut(session, Kind::Session, "session")?.session;
        let prompt = cstr_bytes(prompt, "prompt")?;
        let tok: Arc<Tokenizer> = if tokenizer.is_null() {
            s.model().tokenizer.clone().ok_or_else(|| {
                Error::invalid("no tokenizer given and the model file carries none")
            })?
        } else {
            handle(tokenizer, Kind::Tokenizer, "tokenizer")?.tok.clone()
        };
        let p = if params.is_null() {
            mamba_generate_params_default()
        } else {
            *params
        };
        if p.max_tokens < 0 {
            return Err(Error::invalid(format!("max_tokens {} is negative", p.max_tokens)).into());
        }
        let mut sampler = Sampler::new(s.model().config.padded_vocab, to_params(&p.sampler)?);
        let mut buf: Vec<u8> = Vec::with_capacity(64);
        let mut on_piece = |piece: &[u8]| -> bool {
            match callback {
                None => true,
                Some(cb) => {
                    buf.clear();
                    buf.extend_from_slice(piece);
                    buf.push(0);
                    cb(user_data, buf.as_ptr() as *const c_char, piece.len()) == 0
                }
            }
        };
        let opts = GenerateOptions {
            max_tokens: p.max_tokens as usize,
            stop_at_eos: p.stop_at_eos != 0,
        };
        let st = generate::generate(s, &tok, &mut sampler, prompt, opts, &mut on_piece)?;
        if !stats.is_null() {
            *stats = mamba_generate_stats {
                prompt_tokens: st.prompt_tokens as i32,
                generated_tokens: st.generated_tokens as i32,
                prompt_ms: st.prompt_seconds * 1e3,
                generate_ms: st.generate_seconds * 1e3,
                prompt_tok_per_s: st.prompt_tok_per_s(),
                generate_tok_per_s: st.generate_tok_per_s(),
            };
        }
        Ok(())
    })
}

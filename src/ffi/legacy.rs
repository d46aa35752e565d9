//! The C project's API (c-project.md §1), for mains written against it.
//!
//! `Config` is laid out exactly as the C project has it (mains read
//! `mamba.config.<field>`); `Mamba`, `Tokenizer` and `Sampler` are structs a
//! main declares on the stack, holding what the main may read plus an opaque
//! pointer to libmamba's state. Behaviour follows the C program: errors print
//! a message on stderr and exit(1); `forward` returns logits owned by the
//! `Mamba`; `sample` changes the logits in place (temperature and softmax),
//! as the C sampler does; printing goes through C's stdio so that it
//! interleaves with the main's own `printf`s.
//!
//! Defining `MAMBA_NO_LEGACY` before including `mamba.h` hides these names.
//!
//! `generate` and `chat` are exported too. `make` weakens those two symbols
//! in `build/libmamba.a` (objcopy), so a main that defines its own links
//! statically without a clash and its versions run; with `libmamba.so` the
//! executable's definitions take precedence anyway.

#![cfg(feature = "legacy")]

use super::*;
use crate::format::{self, LoadOptions};
use crate::model::Model;
use crate::session::Session;
use crate::tokenizer::Tokenizer as Tok;
use std::ffi::{c_int, c_long, c_void};
use std::sync::Arc;

/// The model's hyperparameters, in the C project's field order.
#[cfg(feature = "legacy")]
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Config {
    pub n_layers: c_int,
    pub vocab_size: c_int,
    pub dim: c_int,
    pub d_inner: c_int,
    pub dt_rank: c_int,
    pub d_state: c_int,
    pub d_conv: c_int,
    pub shared_classifier: c_int,
    /// vocab_size rounded up to a multiple of 8: the number of logits.
    pub rounded_vocab_size: c_int,
}

/// A loaded model with its single run state (as in the C project). Declare it
/// on the stack, fill it with `load_model`, release it with `free_model`.
#[cfg(feature = "legacy")]
#[repr(C)]
pub struct Mamba {
    pub config: Config,
    /// libmamba's state (opaque).
    pub state: *mut c_void,
}

/// A tokenizer.bin vocabulary. Fill with `build_tokenizer`.
#[cfg(feature = "legacy")]
#[repr(C)]
pub struct Tokenizer {
    pub vocab_size: c_int,
    pub max_token_length: u32,
    /// libmamba's tokenizer (opaque).
    pub state: *mut c_void,
}

/// The C project's sampler. Fill with `build_sampler`.
#[cfg(feature = "legacy")]
#[repr(C)]
pub struct Sampler {
    pub vocab_size: c_int,
    pub temperature: f32,
    pub topp: f32,
    pub rng_state: std::ffi::c_ulonglong,
    /// Scratch for top-p sampling (opaque).
    pub probindex: *mut c_void,
}

/// What `Mamba.state` points to.
struct LegacyModel {
    session: Session,
    /// Handed out by `forward`; `sample` may change it in place.
    logits: Vec<f32>,
}

/// What `Tokenizer.state` points to.
struct LegacyTokenizer {
    tok: Tok,
    /// Every token's bytes, NUL-terminated, back to back (`decode` returns pointers in here).
    arena: Vec<u8>,
    /// Start of each token in `arena`.
    offsets: Vec<usize>,
    /// "\0" after each byte value, for `<0xHH>` pieces.
    byte_pieces: [u8; 512],
}

/// What `Sampler.probindex` points to.
struct LegacySamplerScratch {
    index: Vec<(f32, u32)>,
}

// ---------------------------------------------------------------------------
// C stdio (the main's printf and ours must share one buffer).

extern "C" {
    static mut stdin: *mut libc::FILE;
    static mut stdout: *mut libc::FILE;
}

fn c_stdout() -> *mut libc::FILE {
    // SAFETY: glibc/musl export `stdout`; reading the pointer is fine.
    unsafe { stdout }
}

fn c_print(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // SAFETY: writes `bytes.len()` bytes from a valid slice to C's stdout.
    unsafe {
        libc::fwrite(bytes.as_ptr() as *const c_void, 1, bytes.len(), c_stdout());
    }
}

fn c_flush() {
    // SAFETY: fflush on C's stdout.
    unsafe {
        libc::fflush(c_stdout());
    }
}

/// Prints `name: message` on stderr and exits with status 1 (the C project's way).
fn die(name: &str, msg: &str) -> ! {
    c_flush();
    eprintln!("{name}: {msg}");
    std::process::exit(1)
}

/// Runs `f`; an error or a panic prints a message and exits(1).
fn or_exit<T>(name: &str, f: impl FnOnce() -> Result<T>) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => die(name, &e.message),
        Err(p) => die(
            name,
            &format!("internal error (caught panic: {})", panic_message(&*p)),
        ),
    }
}

unsafe fn model_mut<'a>(m: *mut Mamba, what: &str) -> Result<&'a mut LegacyModel> {
    if m.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    let p = (*m).state as *mut LegacyModel;
    handle_mut(p, Kind::LegacyModel, "Mamba (not loaded, or already freed)")
}

unsafe fn tok_ref<'a>(t: *mut Tokenizer) -> Result<&'a LegacyTokenizer> {
    if t.is_null() {
        return Err(Error::invalid("Tokenizer is NULL"));
    }
    let p = (*t).state as *const LegacyTokenizer;
    handle(
        p,
        Kind::LegacyTokenizer,
        "Tokenizer (not built, or already freed)",
    )
}

fn config_of(m: &Model) -> Config {
    let c = &m.config;
    Config {
        n_layers: c.n_layers as c_int,
        vocab_size: c.vocab_size as c_int,
        dim: c.d_model as c_int,
        d_inner: c.d_inner as c_int,
        dt_rank: c.dt_rank as c_int,
        d_state: c.d_state as c_int,
        d_conv: c.d_conv as c_int,
        shared_classifier: c.tied as c_int,
        rounded_vocab_size: c.padded_vocab as c_int,
    }
}

unsafe fn load_into(m: *mut Mamba, path: &str, opts: &LoadOptions) -> Result<()> {
    if m.is_null() {
        return Err(Error::invalid("Mamba is NULL"));
    }
    let model = format::load(path, opts)?;
    let n = model.config.padded_vocab;
    let config = config_of(&model);
    let state = register(
        LegacyModel {
            session: Session::new(Arc::new(model)),
            logits: vec![0.0; n],
        },
        Kind::LegacyModel,
    );
    (*m).config = config;
    (*m).state = state as *mut c_void;
    Ok(())
}

/// Loads a model file (the C project's v1 files, float32 or int8/fp16 with
/// `<path>.scales`; or GGUF) into `m`. On error: a message on stderr and exit(1).
/// One-byte v1 files are read as int8; set the environment variable
/// `MAMBA_BFLOAT8=1` (or use `mamba_legacy_load_model`) to read them as "bfloat8".
///
/// # Safety
/// `m` writable; `model_path` NUL-terminated.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn load_model(m: *mut Mamba, model_path: *mut c_char) {
    or_exit("load_model", || {
        let path = cstr_path(model_path, "model_path")?;
        let bf8 = std::env::var("MAMBA_BFLOAT8").is_ok_and(|v| !v.is_empty() && v != "0");
        load_into(
            m,
            path,
            &LoadOptions {
                legacy_bfloat8: bf8,
                ..Default::default()
            },
        )
    })
}

/// `load_model` with options and a status instead of exit(1) (the message is
/// in `mamba_last_error()`). `options` may be NULL.
///
/// # Safety
/// `m` writable; `model_path` NUL-terminated; `options` NULL or valid.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn mamba_legacy_load_model(
    m: *mut Mamba,
    model_path: *const c_char,
    options: *const super::api::mamba_load_options,
) -> mamba_status {
    guard("mamba_legacy_load_model", || {
        let path = cstr_path(model_path, "model_path")?;
        let o = if options.is_null() {
            super::api::mamba_load_options_default()
        } else {
            *options
        };
        load_into(
            m,
            path,
            &LoadOptions {
                copy: o.copy_file != 0,
                legacy_bfloat8: o.legacy_bfloat8 != 0,
                // C: MAMBA_HUGE_PAGES=1 (read by the loader).
                ..Default::default()
            },
        )?;
        Ok(())
    })
}

/// Frees the handle a legacy struct keeps in `slot` (of `kind`) and clears
/// the slot, so a second free is a no-op; a NULL slot is a no-op too.
///
/// # Safety
/// `slot` NULL or a handle registered as `kind`.
#[cfg(feature = "legacy")]
unsafe fn free_slot<T>(slot: &mut *mut c_void, kind: Kind, name: &str) {
    if !slot.is_null() {
        free_handle(*slot as *mut T, kind, name);
        *slot = std::ptr::null_mut();
    }
}

/// Releases what `load_model` allocated. Safe to call twice.
///
/// # Safety
/// `m` NULL or a `Mamba` that `load_model` filled (or zeroed).
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn free_model(m: *mut Mamba) {
    if !m.is_null() {
        free_slot::<LegacyModel>(&mut (*m).state, Kind::LegacyModel, "free_model");
    }
}

/// Feeds one token; returns the logits for the next one (`rounded_vocab_size`
/// floats, owned by `m`, valid until the next `forward`).
///
/// # Safety
/// `m` loaded.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn forward(m: *mut Mamba, token: c_int) -> *mut f32 {
    or_exit("forward", || {
        let lm = model_mut(m, "Mamba")?;
        let t = u32::try_from(token)
            .map_err(|_| Error::invalid(format!("token {token} is negative")))?;
        let l = lm.session.forward(t)?;
        lm.logits.copy_from_slice(l);
        Ok(lm.logits.as_mut_ptr())
    })
}

/// Zeroes the conv and ssm states.
///
/// # Safety
/// `m` loaded.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn reset_internal_state(m: *mut Mamba) {
    or_exit("reset_internal_state", || {
        model_mut(m, "Mamba")?.session.reset();
        Ok(())
    })
}

/// A malloc'd copy of the state: the conv state (n_layers × d_inner × d_conv
/// float32) followed by the ssm state (n_layers × d_inner × d_state float32).
/// `*state_size` gets its size in bytes; the caller frees it with free().
/// NULL if the allocation fails.
///
/// # Safety
/// `m` loaded; `state_size` writable.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn get_internal_state(m: *mut Mamba, state_size: *mut c_int) -> *mut c_char {
    or_exit("get_internal_state", || {
        let lm = model_mut(m, "Mamba")?;
        out_ptr(state_size, "state_size")?;
        let (conv, ssm) = lm.session.raw_state();
        let n = 4 * (conv.len() + ssm.len());
        let size = c_int::try_from(n)
            .map_err(|_| Error::invalid(format!("state of {n} bytes does not fit an int")))?;
        let p = libc::malloc(n.max(1)) as *mut f32;
        if p.is_null() {
            return Ok(std::ptr::null_mut());
        }
        std::ptr::copy_nonoverlapping(conv.as_ptr(), p, conv.len());
        std::ptr::copy_nonoverlapping(ssm.as_ptr(), p.add(conv.len()), ssm.len());
        *state_size = size;
        Ok(p as *mut c_char)
    })
}

/// Restores a state from `get_internal_state`. Ignored when `state_size`
/// is not the size of this model's state.
///
/// # Safety
/// `m` loaded; `state` `state_size` readable bytes.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn set_internal_state(m: *mut Mamba, state: *mut c_char, state_size: c_int) {
    or_exit("set_internal_state", || {
        let lm = model_mut(m, "Mamba")?;
        let (conv, ssm) = lm.session.raw_state_mut();
        let n = 4 * (conv.len() + ssm.len());
        if state_size < 0 || state_size as usize != n || state.is_null() {
            return Ok(());
        }
        let src = state as *const u8;
        // The blob may be unaligned: copy bytes.
        std::ptr::copy_nonoverlapping(src, conv.as_mut_ptr() as *mut u8, 4 * conv.len());
        std::ptr::copy_nonoverlapping(
            src.add(4 * conv.len()),
            ssm.as_mut_ptr() as *mut u8,
            4 * ssm.len(),
        );
        Ok(())
    })
}

fn build_legacy_tokenizer(tok: Tok) -> LegacyTokenizer {
    let n = tok.vocab_size();
    let mut arena = Vec::new();
    let mut offsets = Vec::with_capacity(n);
    for id in 0..n as u32 {
        offsets.push(arena.len());
        let b = tok.token_bytes(id).unwrap_or(b"");
        // A C string ends at its first NUL.
        let b = match b.iter().position(|&x| x == 0) {
            Some(z) => &b[..z],
            None => b,
        };
        arena.extend_from_slice(b);
        arena.push(0);
    }
    let mut byte_pieces = [0u8; 512];
    for i in 0..256 {
        byte_pieces[2 * i] = i as u8;
    }
    LegacyTokenizer {
        tok,
        arena,
        offsets,
        byte_pieces,
    }
}

impl LegacyTokenizer {
    /// The piece for `token` after `prev`, as the C project's `decode`: the
    /// leading space dropped after token 0, `<0xHH>` as the raw byte.
    /// Returns an offset into `arena` or (for bytes) into `byte_pieces`.
    fn decode_ptr(&self, prev: i32, token: i32) -> Option<*const u8> {
        let off = *self.offsets.get(usize::try_from(token).ok()?)?;
        let mut p = &self.arena[off..];
        if prev == 0 && p.first() == Some(&b' ') {
            p = &p[1..];
        }
        // sscanf(piece, "<0x%02hhX>", &b) == 1: "<0x" and one or two hex digits.
        if p.starts_with(b"<0x") {
            let hex = |c: u8| (c as char).to_digit(16);
            if let Some(h1) = p.get(3).and_then(|&c| hex(c)) {
                let v = match p.get(4).and_then(|&c| hex(c)) {
                    Some(h2) => h1 * 16 + h2,
                    None => h1,
                };
                return Some(self.byte_pieces[2 * v as usize..].as_ptr());
            }
        }
        Some(p.as_ptr())
    }
}

/// Reads a tokenizer (the C project's tokenizer.bin, or tokenizer.json).
/// `vocab_size` is ignored, as in the C project. On error: message, exit(1).
///
/// # Safety
/// `t` writable; `tokenizer_path` NUL-terminated.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn build_tokenizer(
    t: *mut Tokenizer,
    tokenizer_path: *mut c_char,
    vocab_size: c_int,
) {
    let _ = vocab_size;
    or_exit("build_tokenizer", || {
        if t.is_null() {
            return Err(Error::invalid("Tokenizer is NULL"));
        }
        let path = cstr_path(tokenizer_path, "tokenizer_path")?;
        let tok = Tok::from_file(path)?;
        let lt = build_legacy_tokenizer(tok);
        let max_len = (0..lt.offsets.len())
            .map(|i| {
                let end = lt.offsets.get(i + 1).copied().unwrap_or(lt.arena.len());
                end - lt.offsets[i] - 1
            })
            .max()
            .unwrap_or(0);
        (*t).vocab_size = lt.offsets.len() as c_int;
        (*t).max_token_length = max_len as u32;
        (*t).state = register(lt, Kind::LegacyTokenizer) as *mut c_void;
        Ok(())
    })
}

/// Releases what `build_tokenizer` allocated. Safe to call twice.
///
/// # Safety
/// `t` NULL or a built `Tokenizer`.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn free_tokenizer(t: *mut Tokenizer) {
    if !t.is_null() {
        free_slot::<LegacyTokenizer>(&mut (*t).state, Kind::LegacyTokenizer, "free_tokenizer");
    }
}

/// Encodes `text` with the tokenizer's own algorithm (tokenizer.bin: the C
/// project's greedy merge). `add_bos`/`add_eos` add token 0 at the start/end
/// (BOS and EOS are both 0 for GPT-NeoX). `tokens` must hold strlen(text)+3 ids.
///
/// # Safety
/// `t` built; `text` NUL-terminated; `tokens` large enough; `n_tokens` writable.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn encode(
    t: *mut Tokenizer,
    text: *mut c_char,
    add_bos: i8,
    add_eos: i8,
    tokens: *mut c_int,
    n_tokens: *mut c_int,
) {
    or_exit("encode", || {
        let lt = tok_ref(t)?;
        if text.is_null() {
            return Err(Error::invalid("cannot encode NULL text"));
        }
        let text = cstr_bytes(text, "text")?;
        out_ptr(tokens, "tokens")?;
        out_ptr(n_tokens, "n_tokens")?;
        let mut ids: Vec<i32> = Vec::with_capacity(text.len() + 2);
        if add_bos != 0 {
            ids.push(0);
        }
        ids.extend(lt.tok.encode(text)?.iter().map(|&i| i as i32));
        if add_eos != 0 {
            ids.push(0);
        }
        std::ptr::copy_nonoverlapping(ids.as_ptr(), tokens, ids.len());
        *n_tokens = ids.len() as c_int;
        Ok(())
    })
}

/// The text of `token` following `prev_token`, as a C string owned by the
/// tokenizer: without its leading space after token 0, `<0xHH>` pieces as
/// the raw byte. An out-of-range token gives "".
///
/// # Safety
/// `t` built.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn decode(t: *mut Tokenizer, prev_token: c_int, token: c_int) -> *mut c_char {
    or_exit("decode", || {
        let lt = tok_ref(t)?;
        static EMPTY: u8 = 0;
        Ok(lt
            .decode_ptr(prev_token, token)
            .unwrap_or(&EMPTY as *const u8) as *mut c_char)
    })
}

/// Whether the C project prints `piece`: not NULL, not empty, and a single
/// byte only when printable or whitespace.
fn printable(piece: &[u8]) -> bool {
    match piece {
        [] => false,
        [b] => {
            // isprint || isspace in the "C" locale.
            (0x20..0x7f).contains(b) || matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
        }
        _ => true,
    }
}

/// printf("%s", piece), except NULL, "" and single non-printable, non-space bytes.
///
/// # Safety
/// `piece` NULL or NUL-terminated.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn safe_printf(piece: *mut c_char) {
    if piece.is_null() {
        return;
    }
    let b = std::ffi::CStr::from_ptr(piece).to_bytes();
    if printable(b) {
        c_print(b);
    }
}

/// A sampler over `vocab_size` logits (the C project passes `config.vocab_size`).
///
/// # Safety
/// `s` writable.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn build_sampler(
    s: *mut Sampler,
    vocab_size: c_int,
    temperature: f32,
    topp: f32,
    rng_seed: std::ffi::c_ulonglong,
) {
    or_exit("build_sampler", || {
        if s.is_null() {
            return Err(Error::invalid("Sampler is NULL"));
        }
        if vocab_size <= 0 {
            return Err(Error::invalid(format!(
                "vocab_size {vocab_size} must be positive"
            )));
        }
        (*s).vocab_size = vocab_size;
        (*s).temperature = temperature;
        (*s).topp = topp;
        (*s).rng_state = rng_seed;
        (*s).probindex = register(
            LegacySamplerScratch {
                index: Vec::with_capacity(vocab_size as usize),
            },
            Kind::LegacySampler,
        ) as *mut c_void;
        Ok(())
    })
}

/// Releases what `build_sampler` allocated. Safe to call twice.
///
/// # Safety
/// `s` NULL or a built `Sampler`.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn free_sampler(s: *mut Sampler) {
    if !s.is_null() {
        free_slot::<LegacySamplerScratch>(&mut (*s).probindex, Kind::LegacySampler, "free_sampler");
    }
}

/// The C project's sampling of one token from `logits[0..vocab_size]`
/// (c-project.md §3). Like the C code, it divides the logits by the
/// temperature and softmaxes them in place (temperature 0: untouched, argmax).
fn sample_c(
    vocab: usize,
    temperature: f32,
    topp: f32,
    rng: &mut u64,
    index: &mut Vec<(f32, u32)>,
    logits: &mut [f32],
) -> usize {
    crate::sampler::sample_in_place(&mut logits[..vocab], temperature, topp, rng, index) as usize
}

/// Samples a token from `logits` (`vocab_size` of them). As in the C project,
/// with temperature > 0 the logits are overwritten by the probabilities.
///
/// # Safety
/// `s` built; `logits` at least `vocab_size` floats.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn sample(s: *mut Sampler, logits: *mut f32) -> c_int {
    or_exit("sample", || {
        if s.is_null() {
            return Err(Error::invalid("Sampler is NULL"));
        }
        let sm = &mut *s;
        let scratch = handle_mut(
            sm.probindex as *mut LegacySamplerScratch,
            Kind::LegacySampler,
            "Sampler (not built, or already freed)",
        )?;
        let n = usize::try_from(sm.vocab_size).unwrap_or(0);
        let l = out_slice(logits, n, "logits")?;
        Ok(sample_c(
            n,
            sm.temperature,
            sm.topp,
            &mut sm.rng_state,
            &mut scratch.index,
            l,
        ) as c_int)
    })
}

/// Wall-clock time in milliseconds.
#[cfg(feature = "legacy")]
#[no_mangle]
pub extern "C" fn time_in_ms() -> c_long {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into a local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec as c_long) * 1000 + (ts.tv_nsec as c_long) / 1_000_000
}

/// Prints `guide`, reads a line from stdin into `buffer` without its newline.
///
/// # Safety
/// `guide` NUL-terminated; `buffer` `bufsize` writable bytes.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn read_stdin(
    guide: *const c_char,
    buffer: *mut c_char,
    bufsize: libc::size_t,
) {
    if !guide.is_null() {
        c_print(std::ffi::CStr::from_ptr(guide).to_bytes());
    }
    if buffer.is_null() || bufsize == 0 {
        return;
    }
    let n = bufsize.min(c_int::MAX as usize) as c_int;
    if !libc::fgets(buffer, n, stdin).is_null() {
        let len = libc::strlen(buffer);
        if len > 0 && *buffer.add(len - 1) == b'\n' as c_char {
            *buffer.add(len - 1) = 0;
        }
    }
}

/// Prints the C project's usage text on stderr and exits(1).
#[cfg(feature = "legacy")]
#[no_mangle]
pub extern "C" fn error_usage() {
    c_flush();
    eprint!(
        "Usage:   run <checkpoint> [options]\n\
         Example: run model.bin -n 256 -i \"Once upon a time\"\n\
         Options:\n  \
         -t <float>  temperature in [0,inf], default 1.0\n  \
         -p <float>  p value in top-p (nucleus) sampling in [0,1] default 0.9\n  \
         -s <int>    random seed, default time(NULL)\n  \
         -n <int>    number of steps to run for, default 256\n  \
         -i <string> input prompt\n  \
         -z <string> optional path to custom tokenizer\n  \
         -m <string> mode: generate|chat, default: generate\n  \
         -y <string> (optional) system prompt in chat mode\n"
    );
    std::process::exit(1);
}

/// Encodes a prompt (no BOS/EOS) into a Vec.
unsafe fn encode_vec(t: *mut Tokenizer, text: &[u8]) -> Vec<c_int> {
    let mut c = text.to_vec();
    c.retain(|&b| b != 0);
    c.push(0);
    let mut ids = vec![0 as c_int; c.len() + 3];
    let mut n: c_int = 0;
    encode(
        t,
        c.as_mut_ptr() as *mut c_char,
        0,
        0,
        ids.as_mut_ptr(),
        &mut n,
    );
    ids.truncate(n.max(0) as usize);
    ids
}

/// The C project's generation loop (c-project.md §2): the prompt (no BOS) is
/// forced token by token, then the sampler picks; positions 0..steps-1; token
/// 0 stops; "achieved tok/s" on stderr, timed from the second position.
///
/// # Safety
/// Structs built; `prompt` NULL or NUL-terminated.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn mamba_legacy_generate(
    m: *mut Mamba,
    t: *mut Tokenizer,
    s: *mut Sampler,
    prompt: *mut c_char,
    steps: c_int,
) {
    // A panic in the loop's own code becomes a message and exit(1), as
    // errors do: it never unwinds into C.
    or_exit("generate", || {
        generate_loop(m, t, s, prompt, steps);
        Ok(())
    })
}

#[cfg(feature = "legacy")]
unsafe fn generate_loop(
    m: *mut Mamba,
    t: *mut Tokenizer,
    s: *mut Sampler,
    prompt: *mut c_char,
    steps: c_int,
) {
    let prompt = if prompt.is_null() {
        &[][..]
    } else {
        std::ffi::CStr::from_ptr(prompt).to_bytes()
    };
    let toks = encode_vec(t, prompt);
    if toks.is_empty() {
        die(
            "generate",
            "something is wrong, expected at least 1 prompt token",
        );
    }
    if toks.len() > 1 {
        safe_printf(decode(t, 0, toks[0]));
        c_flush();
    }
    let mut start: c_long = 0;
    let mut token = toks[0];
    let mut pos: c_int = 0;
    while pos < steps {
        let logits = forward(m, token);
        let next = if (pos as usize) < toks.len() - 1 {
            toks[pos as usize + 1]
        } else {
            sample(s, logits)
        };
        pos += 1;
        if next == 0 {
            break;
        }
        safe_printf(decode(t, token, next));
        c_flush();
        token = next;
        if start == 0 {
            start = time_in_ms();
        }
    }
    c_print(b"\n");
    c_flush();
    if pos > 1 {
        let end = time_in_ms();
        eprintln!(
            "achieved tok/s: {:.6}",
            (pos - 1) as f64 / (end - start) as f64 * 1000.0
        );
    }
}

/// C's `%s` in sprintf, bounded to what fits in `cap` bytes with the NUL.
fn bounded(v: &[u8], cap: usize) -> &[u8] {
    &v[..v.len().min(cap.saturating_sub(1))]
}

/// The C project's chat loop (Llama-2 [INST] template, forced prompt tokens,
/// the assistant's reply printed until token 0, then the user's turn again).
///
/// # Safety
/// Structs built; prompts NULL or NUL-terminated.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn mamba_legacy_chat(
    m: *mut Mamba,
    t: *mut Tokenizer,
    s: *mut Sampler,
    cli_user_prompt: *mut c_char,
    cli_system_prompt: *mut c_char,
    steps: c_int,
) {
    // As in mamba_legacy_generate: a panic becomes a message and exit(1).
    or_exit("chat", || {
        chat_loop(m, t, s, cli_user_prompt, cli_system_prompt, steps);
        Ok(())
    })
}

#[cfg(feature = "legacy")]
unsafe fn chat_loop(
    m: *mut Mamba,
    t: *mut Tokenizer,
    s: *mut Sampler,
    cli_user_prompt: *mut c_char,
    cli_system_prompt: *mut c_char,
    steps: c_int,
) {
    let cstr = |p: *mut c_char| -> Option<Vec<u8>> {
        (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_bytes().to_vec())
    };
    let cli_user = cstr(cli_user_prompt);
    let cli_system = cstr(cli_system_prompt);
    let mut system_prompt: Vec<u8> = Vec::new();
    let mut prompt_tokens: Vec<c_int> = Vec::new();
    let mut user_idx = 0usize;
    let mut user_turn = true;
    let mut next: c_int = 0;
    let mut pos: c_int = 0;
    // Two buffers, as in the C code: at end of input read_stdin leaves a
    // buffer unchanged, so the previous line is used again.
    let mut sys_buf = [0 as c_char; 512];
    let mut user_buf = [0 as c_char; 512];
    let read_line = |guide: &[u8], buf: &mut [c_char; 512]| -> Vec<u8> {
        let g: Vec<u8> = guide.iter().copied().chain([0]).collect();
        read_stdin(g.as_ptr() as *const c_char, buf.as_mut_ptr(), buf.len());
        std::ffi::CStr::from_ptr(buf.as_ptr()).to_bytes().to_vec()
    };
    while pos < steps {
        if user_turn {
            if pos == 0 {
                system_prompt = match &cli_system {
                    None => read_line(b"Enter system prompt (optional): ", &mut sys_buf),
                    Some(p) => bounded(p, 512).to_vec(),
                };
            }
            let user_prompt = match (&cli_user, pos) {
                (Some(p), 0) => bounded(p, 512).to_vec(),
                _ => read_line(b"User: ", &mut user_buf),
            };
            let mut rendered: Vec<u8> = Vec::new();
            if pos == 0 && !system_prompt.is_empty() {
                rendered.extend_from_slice(b"[INST] <<SYS>>\n");
                rendered.extend_from_slice(&system_prompt);
                rendered.extend_from_slice(b"\n<</SYS>>\n\n");
                rendered.extend_from_slice(&user_prompt);
                rendered.extend_from_slice(b" [/INST]");
            } else {
                rendered.extend_from_slice(b"[INST] ");
                rendered.extend_from_slice(&user_prompt);
                rendered.extend_from_slice(b" [/INST]");
            }
            rendered.truncate(1151);
            prompt_tokens = encode_vec(t, &rendered);
            user_idx = 0;
            user_turn = false;
            c_print(b"Assistant: ");
        }
        let token = if user_idx < prompt_tokens.len() {
            user_idx += 1;
            prompt_tokens[user_idx - 1]
        } else {
            next
        };
        if token == 0 {
            user_turn = true;
        }
        let logits = forward(m, token);
        next = sample(s, logits);
        pos += 1;
        if user_idx >= prompt_tokens.len() && next != 0 {
            safe_printf(decode(t, token, next));
            c_flush();
        }
        if next == 0 {
            c_print(b"\n");
        }
    }
    c_print(b"\n");
    c_flush();
}

/// The C project's `generate` (see `mamba_legacy_generate`). Weak in
/// build/libmamba.a: a main may define its own.
///
/// # Safety
/// As `mamba_legacy_generate`.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn generate(
    m: *mut Mamba,
    t: *mut Tokenizer,
    s: *mut Sampler,
    prompt: *mut c_char,
    steps: c_int,
) {
    mamba_legacy_generate(m, t, s, prompt, steps)
}

/// The C project's `chat` (see `mamba_legacy_chat`). Weak in
/// build/libmamba.a: a main may define its own.
///
/// # Safety
/// As `mamba_legacy_chat`.
#[cfg(feature = "legacy")]
#[no_mangle]
pub unsafe extern "C" fn chat(
    m: *mut Mamba,
    t: *mut Tokenizer,
    s: *mut Sampler,
    cli_user_prompt: *mut c_char,
    cli_system_prompt: *mut c_char,
    steps: c_int,
) {
    mamba_legacy_chat(m, t, s, cli_user_prompt, cli_system_prompt, steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_printf_rule() {
        assert!(!printable(b""));
        assert!(!printable(b"\x01"));
        assert!(!printable(b"\xe2"));
        assert!(printable(b"\n"));
        assert!(printable(b"a"));
        assert!(printable(b"\xe2\x82"));
    }

    #[test]
    fn c_sampler_greedy_and_in_place() {
        let mut idx = Vec::new();
        let mut rng = 7u64;
        let mut l = [1.0f32, 3.0, 3.0, -1.0];
        assert_eq!(sample_c(4, 0.0, 0.9, &mut rng, &mut idx, &mut l), 1);
        assert_eq!(l, [1.0, 3.0, 3.0, -1.0]);
        let mut l = [1.0f32, 3.0, 2.0, -1.0];
        let _ = sample_c(4, 1.0, 0.9, &mut rng, &mut idx, &mut l);
        assert!(
            (l.iter().sum::<f32>() - 1.0).abs() < 1e-5,
            "softmaxed in place"
        );
    }

    #[test]
    fn c_sampler_matches_library_sampler() {
        use crate::sampler::{Sampler as S, SamplerParams};
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        for &topp in &[0.9f32, 1.0] {
            let p = SamplerParams {
                temperature: 0.8,
                top_p: topp,
                seed: 1234,
                ..Default::default()
            };
            let mut a = S::new(50, p);
            let mut rng = 1234u64;
            let mut idx = Vec::new();
            for _ in 0..40 {
                let mut l = logits.clone();
                let c = sample_c(50, 0.8, topp, &mut rng, &mut idx, &mut l);
                assert_eq!(c as u32, a.sample(&logits));
            }
        }
    }
}

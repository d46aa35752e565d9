//! The C boundary. Converts pointers, lengths and errors; every decision
//! lives in the safe core.
//!
//! Rules every export follows:
//! - runs inside [`guard`]: a panic never crosses into C, it becomes
//!   `MAMBA_ERR_INTERNAL`;
//! - checks every pointer (NULL) and handle (live and of the right kind, via
//!   the handle registry, so double frees and mixed-up handles are detected);
//! - writes out-parameters only on success;
//! - on failure records a message for `mamba_last_error()` (per thread).

pub mod api;
pub mod classifier;
/// The C project's API; compiled with the default feature `legacy`.
pub mod legacy;

use crate::error::{Error, ErrorKind, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

/// Status codes returned by every fallible function.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum mamba_status {
    MAMBA_OK = 0,
    MAMBA_ERR_INVALID_ARGUMENT = 1,
    MAMBA_ERR_IO = 2,
    MAMBA_ERR_FORMAT = 3,
    MAMBA_ERR_UNSUPPORTED = 4,
    MAMBA_ERR_OUT_OF_MEMORY = 5,
    MAMBA_ERR_STATE_MISMATCH = 6,
    MAMBA_ERR_BUFFER_TOO_SMALL = 7,
    MAMBA_ERR_INTERNAL = 8,
}

impl From<ErrorKind> for mamba_status {
    fn from(k: ErrorKind) -> Self {
        use mamba_status::*;
        match k {
            ErrorKind::InvalidArgument => MAMBA_ERR_INVALID_ARGUMENT,
            ErrorKind::Io => MAMBA_ERR_IO,
            ErrorKind::Format => MAMBA_ERR_FORMAT,
            ErrorKind::Unsupported => MAMBA_ERR_UNSUPPORTED,
            ErrorKind::OutOfMemory => MAMBA_ERR_OUT_OF_MEMORY,
            ErrorKind::StateMismatch => MAMBA_ERR_STATE_MISMATCH,
            ErrorKind::Internal => MAMBA_ERR_INTERNAL,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// An error that is reported with its own status (e.g. BUFFER_TOO_SMALL).
pub(crate) struct StatusError(pub mamba_status, pub String);

impl From<Error> for StatusError {
    fn from(e: Error) -> Self {
        StatusError(e.kind.into(), e.message)
    }
}

pub(crate) type FfiResult = std::result::Result<(), StatusError>;

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Runs an export body: catches panics, records errors, returns a status.
pub(crate) fn guard(name: &str, f: impl FnOnce() -> FfiResult) -> mamba_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => mamba_status::MAMBA_OK,
        Ok(Err(StatusError(status, msg))) => {
            set_last_error(&format!("{name}: {msg}"));
            status
        }
        Err(p) => {
            set_last_error(&format!(
                "{name}: internal error (caught panic: {})",
                panic_message(&*p)
            ));
            mamba_status::MAMBA_ERR_INTERNAL
        }
    }
}

/// Like [`guard`] for functions that return a pointer (NULL on failure).
#[allow(dead_code)]
pub(crate) fn guard_ptr<T>(
    name: &str,
    f: impl FnOnce() -> std::result::Result<*mut T, StatusError>,
) -> *mut T {
    let mut out = std::ptr::null_mut();
    guard(name, || {
        out = f()?;
        Ok(())
    });
    out
}

/// Handle kinds, for the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Model,
    Session,
    Tokenizer,
    Sampler,
    /// The C project's API (`Mamba.state`, `Tokenizer.state`, `Sampler.probindex`).
    #[cfg_attr(not(feature = "legacy"), allow(dead_code))]
    LegacyModel,
    #[cfg_attr(not(feature = "legacy"), allow(dead_code))]
    LegacyTokenizer,
    #[cfg_attr(not(feature = "legacy"), allow(dead_code))]
    LegacySampler,
}

fn registry() -> std::sync::MutexGuard<'static, HashMap<usize, Kind>> {
    static LIVE: std::sync::OnceLock<Mutex<HashMap<usize, Kind>>> = std::sync::OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Boxes a value, records it as a live handle of `kind`, returns the pointer.
pub(crate) fn register<T>(value: T, kind: Kind) -> *mut T {
    let p = Box::into_raw(Box::new(value));
    registry().insert(p as usize, kind);
    p
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Model => "mamba_model",
        Kind::Session => "mamba_session",
        Kind::Tokenizer => "mamba_tokenizer",
        Kind::Sampler => "mamba_sampler",
        Kind::LegacyModel => "Mamba",
        Kind::LegacyTokenizer => "Tokenizer",
        Kind::LegacySampler => "Sampler",
    }
}

fn check_live(p: usize, kind: Kind, what: &str) -> Result<()> {
    if p == 0 {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    match registry().get(&p) {
        Some(&k) if k == kind => Ok(()),
        Some(&k) => Err(Error::invalid(format!(
            "{what} is a {}, expected a {}",
            kind_name(k),
            kind_name(kind)
        ))),
        None => Err(Error::invalid(format!(
            "{what} is not a live {} (already freed, or not from libmamba)",
            kind_name(kind)
        ))),
    }
}

/// Borrows a live handle.
///
/// # Safety
/// `p` must be NULL or a pointer this library returned (checked via the registry).
pub(crate) unsafe fn handle<'a, T>(p: *const T, kind: Kind, what: &str) -> Result<&'a T> {
    check_live(p as usize, kind, what)?;
    Ok(&*p)
}

/// # Safety
/// As [`handle`]; the caller must not use the handle from two threads at once.
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, kind: Kind, what: &str) -> Result<&'a mut T> {
    check_live(p as usize, kind, what)?;
    Ok(&mut *p)
}

/// Unregisters and drops a handle. NULL is a no-op; a pointer that is not a
/// live handle of this kind is reported and left alone.
///
/// # Safety
/// `p` must be NULL or a pointer this library returned.
pub(crate) unsafe fn free_handle<T>(p: *mut T, kind: Kind, name: &str) {
    if p.is_null() {
        return;
    }
    guard(name, || {
        {
            let mut reg = registry();
            match reg.get(&(p as usize)) {
                Some(&k) if k == kind => {
                    reg.remove(&(p as usize));
                }
                _ => {
                    drop(reg);
                    check_live(p as usize, kind, "handle")?;
                }
            }
        }
        drop(Box::from_raw(p));
        Ok(())
    });
}

/// A NUL-terminated C string argument as bytes.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string.
pub(crate) unsafe fn cstr_bytes<'a>(p: *const c_char, what: &str) -> Result<&'a [u8]> {
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    Ok(CStr::from_ptr(p).to_bytes())
}

/// A NUL-terminated path argument as UTF-8.
///
/// # Safety
/// As [`cstr_bytes`].
pub(crate) unsafe fn cstr_path<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    let b = cstr_bytes(p, what)?;
    std::str::from_utf8(b).map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

/// A (pointer, length) input buffer; NULL is allowed only with length 0.
///
/// # Safety
/// `p` must point to `len` readable elements when not NULL.
pub(crate) unsafe fn in_slice<'a, T>(p: *const T, len: usize, what: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::invalid(format!(
            "{what} is NULL but its length is {len}"
        )));
    }
    if len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(Error::invalid(format!("{what}: length {len} is too large")));
    }
    Ok(std::slice::from_raw_parts(p, len))
}

/// A (pointer, length) output buffer.
///
/// # Safety
/// `p` must point to `len` writable elements when not NULL.
pub(crate) unsafe fn out_slice<'a, T>(p: *mut T, len: usize, what: &str) -> Result<&'a mut [T]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(Error::invalid(format!(
            "{what} is NULL but its length is {len}"
        )));
    }
    if len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(Error::invalid(format!("{what}: length {len} is too large")));
    }
    Ok(std::slice::from_raw_parts_mut(p, len))
}

/// Checks an out-pointer is not NULL.
pub(crate) fn out_ptr<T>(p: *mut T, what: &str) -> Result<()> {
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    Ok(())
}

//! File loaders: bytes in, a [`crate::model::Model`] out.
//!
//! - [`v1`]: the C project's "Mamb" files (float32, int8/fp16/bfloat8 + .scales);
//! - [`gguf`]: GGUF, the native format (arch `mamba`).
//!
//! [`load`] maps the file and picks the loader by its magic. Adding a format
//! means adding one module and one arm here; the model knows no formats.

pub mod gguf;
pub mod v1;

use crate::error::{Error, ErrorKind, Result};
use crate::model::{Backing, Model};
use std::sync::Arc;

/// How to load a model file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Read the whole file into memory instead of mapping it. Protects against
    /// the file being truncated or rewritten while the model is in use.
    pub copy: bool,
    /// Read one-byte v1 weights as the C project's "bfloat8" instead of int8
    /// (the file cannot tell them apart; int8 is what the C program assumes).
    pub legacy_bfloat8: bool,
}

/// Maps (or reads) a file into a [`Backing`].
pub fn open_backing(path: &str, copy: bool) -> Result<Arc<Backing>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, &e))?;
    let len = file.metadata().map_err(|e| Error::io(path, &e))?.len();
    if len == 0 {
        return Err(Error::format(format!("{path}: the file is empty")));
    }
    if copy {
        let mut v = vec![0u64; (len as usize).div_ceil(8)];
        // SAFETY: viewing the u64 buffer as bytes for reading into it.
        let buf =
            unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, len as usize) };
        use std::io::Read;
        let mut f = file;
        f.read_exact(buf).map_err(|e| Error::io(path, &e))?;
        // Trim to the exact length by keeping the padded tail zeroed; views check `len`.
        return Ok(Arc::new(Backing::HeapExact(v, len as usize)));
    }
    // SAFETY: the map is read-only. If another process truncates the file
    // while it is mapped, reads past the new end raise SIGBUS: use `copy` for
    // files that may change (documented in the README).
    // Populate the page tables now: the first forward would otherwise take
    // one page fault per 4 KiB of weights.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
        .map_err(|e| Error::io(path, &e))?;
    Ok(Arc::new(Backing::Mmap(map)))
}

/// Loads a model file, detecting its format from the first bytes.
pub fn load(path: &str, opts: &LoadOptions) -> Result<Model> {
    let backing = open_backing(path, opts.copy)?;
    let bytes = backing.bytes();
    if bytes.len() < 4 {
        return Err(Error::format(format!(
            "{path}: file too short ({} bytes)",
            bytes.len()
        )));
    }
    let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let result = if &bytes[..4] == b"GGUF" {
        gguf::load(path, backing.clone())
    } else if magic == v1::MAGIC {
        v1::load(path, backing.clone(), opts.legacy_bfloat8)
    } else {
        Err(Error::new(
            ErrorKind::Format,
            format!(
                "{path}: unknown file format (magic {:02x?}; expected GGUF or 'Mamb' v1)",
                &bytes[..4]
            ),
        ))
    };
    result
}

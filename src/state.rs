//! Serialized session state: a self-describing blob.
//!
//! Layout (little-endian):
//! ```text
//!  0  magic  "MBST"
//!  4  u32    version (1)
//!  8  u32    n_layers, d_model, d_inner, d_state, d_conv   (5 × u32)
//! 28  u32    reserved (0)
//! 32  u64    position (tokens consumed so far)
//! 40  u64    FNV-1a 64 checksum of the payload bytes
//! 48  f32[]  conv state (n_layers × d_inner × d_conv), then ssm state (n_layers × d_inner × d_state)
//! ```

use crate::error::{Error, ErrorKind, Result};
use crate::mamba::lm::LmState;
use crate::model::LmConfig;

pub const MAGIC: &[u8; 4] = b"MBST";
pub const VERSION: u32 = 1;
pub const HEADER: usize = 48;

pub fn blob_size(c: &LmConfig) -> usize {
    HEADER + 4 * (c.conv_state_len() + c.ssm_state_len())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn dims(c: &LmConfig) -> [u32; 5] {
    [c.n_layers, c.d_model, c.d_inner, c.d_state, c.d_conv].map(|v| v as u32)
}

/// Writes the blob into `out` (exactly `blob_size` bytes).
pub fn write(c: &LmConfig, st: &LmState, position: u64, out: &mut [u8]) -> Result<()> {
    let need = blob_size(c);
    if out.len() < need {
        return Err(Error::invalid(format!(
            "state buffer too small: {} bytes, need {need}",
            out.len()
        )));
    }
    let out = &mut out[..need];
    let mut p = HEADER;
    for v in st.conv.iter().chain(st.ssm.iter()) {
        out[p..p + 4].copy_from_slice(&v.to_le_bytes());
        p += 4;
    }
    let sum = fnv1a(&out[HEADER..]);
    out[0..4].copy_from_slice(MAGIC);
    out[4..8].copy_from_slice(&VERSION.to_le_bytes());
    for (i, d) in dims(c).iter().enumerate() {
        out[8 + 4 * i..12 + 4 * i].copy_from_slice(&d.to_le_bytes());
    }
    out[28..32].copy_from_slice(&0u32.to_le_bytes());
    out[32..40].copy_from_slice(&position.to_le_bytes());
    out[40..48].copy_from_slice(&sum.to_le_bytes());
    Ok(())
}

/// Checks a blob against the model and loads it; returns the position.
/// On any error `st` is left unchanged.
pub fn read(c: &LmConfig, st: &mut LmState, blob: &[u8]) -> Result<u64> {
    let mismatch = |m: String| Error::new(ErrorKind::StateMismatch, m);
    if blob.len() < HEADER || &blob[0..4] != MAGIC {
        return Err(mismatch(
            "not a libmamba state blob (bad magic or too short)".into(),
        ));
    }
    let u32_at = |o: usize| u32::from_le_bytes([blob[o], blob[o + 1], blob[o + 2], blob[o + 3]]);
    let u64_at = |o: usize| u64::from_le_bytes(blob[o..o + 8].try_into().unwrap());
    let version = u32_at(4);
    if version != VERSION {
        return Err(mismatch(format!(
            "state blob version {version}, this library reads {VERSION}"
        )));
    }
    let got: Vec<u32> = (0..5).map(|i| u32_at(8 + 4 * i)).collect();
    let want = dims(c);
    if got[..] != want[..] {
        return Err(mismatch(format!(
            "state blob is for a model with (layers, d_model, d_inner, d_state, d_conv) = {got:?}, this model has {want:?}"
        )));
    }
    if blob.len() != blob_size(c) {
        return Err(mismatch(format!(
            "state blob has {} bytes, expected {}",
            blob.len(),
            blob_size(c)
        )));
    }
    if fnv1a(&blob[HEADER..]) != u64_at(40) {
        return Err(mismatch(
            "state blob checksum mismatch (corrupted data)".into(),
        ));
    }
    let mut floats = blob[HEADER..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    for v in st.conv.iter_mut().chain(st.ssm.iter_mut()) {
        *v = floats.next().unwrap_or(0.0);
    }
    Ok(u64_at(32))
}

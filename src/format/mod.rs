//! File loaders: bytes in, a [`crate::model::Model`] out.
//! `v1`: the C project's "Mamb" files; `gguf`: GGUF (arch `mamba`).

pub mod gguf;
pub mod v1;

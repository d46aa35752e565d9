//! libmamba: Mamba (selective state-space) model inference with a C ABI.
//!
//! Layers, each knowing only the ones below it:
//! - [`ffi`]: the C boundary (handles, status codes, panic boundary, legacy API);
//! - [`session`]: per-sequence state and scratch; runs a model token by token or over a prompt;
//! - [`mamba`]: the math of the Mamba-1 block and the language-model forward;
//! - [`format`]: file loaders (the C project's v1 files, GGUF) — bytes in, a [`model::Model`] out;
//! - [`model`]: the immutable model (config + typed weight views);
//! - leaves: [`kernels`], [`tokenizer`], [`sampler`].

pub mod audio;
pub mod error;
pub mod ffi;
pub mod format;
pub mod kernels;
pub mod model;
pub mod tokenizer;

pub use error::{Error, ErrorKind, Result};
pub mod generate;
pub mod mamba;
pub mod sampler;
pub mod session;
pub mod state;
pub mod threads;

pub use format::{load, LoadOptions};
pub use model::Model;
pub use session::Session;

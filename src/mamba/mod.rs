//! The math: the Mamba-1 block ([`block`]) and the language-model forward ([`lm`]).

pub mod block;
pub mod classifier;
pub mod lm;
pub mod seq_gemm;
pub mod seq_mixer;

pub use block::Dims;

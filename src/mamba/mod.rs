//! The math: the Mamba-1 block ([`block`]), the language-model forward
//! ([`lm`]) and its one-token decode step split over threads ([`step`]).

pub mod block;
pub mod classifier;
pub mod lm;
pub mod seq_gemm;
pub mod seq_mixer;
pub mod step;

pub use block::Dims;

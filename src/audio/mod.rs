//! Audio front end: WAV reading and librosa-identical MFCC features.
//!
//! A leaf module: it knows nothing about models. The keyword spotter's path is
//! [`read_mono_16k_file`] (or [`read_wav`] + [`require_mono_16k`]) then
//! [`KwsFrontend::features`], which gives 69 x 135 features (rows: 23 MFCCs, 23
//! deltas, 23 delta-deltas; columns: frames), row-major; [`transpose`] turns them
//! into 135 x 69 frames x features.

pub mod mfcc;
pub mod wav;

pub use mfcc::{
    delta, kws_features, kws_normalize, transpose, DeltaFilter, KwsFrontend, Mfcc, MfccParams,
};
pub use wav::{read_mono_16k_file, read_wav, read_wav_file, require_mono_16k, Wav};

//! Audio front-end: WAV reading and librosa-identical MFCC features. PLACEHOLDER.

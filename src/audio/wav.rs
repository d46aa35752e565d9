//! A small, strict RIFF/WAVE reader.
//!
//! Supported: PCM 16-bit (format tag 1), IEEE float 32-bit (format tag 3), and
//! `WAVE_FORMAT_EXTENSIBLE` (0xFFFE) whose sub-format is one of those two. Any
//! channel count and sample rate are read; [`require_mono_16k`] is the separate
//! check that the keyword spotter needs.
//!
//! The reader walks the chunk list, skipping unknown chunks (`LIST`, `fact`,
//! `cue `, ...) and the pad byte after odd-sized chunks. Malformed, truncated or
//! unsupported input gives an [`Error`] that says what is wrong; it never panics
//! and never allocates more than the sample data actually present in the input
//! justifies (sizes claimed by headers are checked against the bytes first).

use crate::bail;
use crate::error::{Error, ErrorKind, Result};

/// Decoded audio: interleaved samples as `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav {
    pub sample_rate: u32,
    pub channels: u16,
    /// Interleaved samples (frame-major: `samples[frame * channels + channel]`).
    /// 16-bit PCM `s` becomes `s as f32 / 32768.0` (what `librosa.load` and
    /// `soundfile.read(dtype="float32")` give); float data is taken as is.
    pub samples: Vec<f32>,
}

impl Wav {
    /// Number of sample frames (samples per channel).
    pub fn frames(&self) -> usize {
        if self.channels == 0 {
            0
        } else {
            self.samples.len() / self.channels as usize
        }
    }

    /// Duration in seconds.
    pub fn duration_s(&self) -> f64 {
        if self.sample_rate == 0 {
            0.0
        } else {
            self.frames() as f64 / self.sample_rate as f64
        }
    }
}

const WAVE_FORMAT_PCM: u16 = 1;
const WAVE_FORMAT_IEEE_FLOAT: u16 = 3;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// The 14 bytes that follow the 2-byte format tag in a KSDATAFORMAT_SUBTYPE GUID
/// (`xxxx0000-0000-0010-8000-00aa00389b71`).
const KSDATAFORMAT_SUFFIX: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];
/// Data chunk size written by streaming encoders that could not seek back.
const STREAMING_SIZE: u32 = 0xFFFF_FFFF;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SampleFormat {
    I16,
    F32,
}

#[derive(Debug, Clone, Copy)]
struct Fmt {
    format: SampleFormat,
    channels: u16,
    sample_rate: u32,
    block_align: usize,
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn tag_name(tag: u16) -> String {
    match tag {
        0x0002 => "MS ADPCM".into(),
        0x0006 => "A-law".into(),
        0x0007 => "mu-law".into(),
        0x0011 => "IMA ADPCM".into(),
        0x0055 => "MPEG layer 3".into(),
        _ => format!("format tag 0x{tag:04X}"),
    }
}

fn fourcc(id: &[u8]) -> String {
    id.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

fn parse_fmt(body: &[u8]) -> Result<Fmt> {
    if body.len() < 16 {
        bail!(
            Format,
            "fmt chunk is {} bytes, expected at least 16",
            body.len()
        );
    }
    let mut tag = le_u16(body, 0);
    let channels = le_u16(body, 2);
    let sample_rate = le_u32(body, 4);
    let block_align = le_u16(body, 12) as usize;
    let bits = le_u16(body, 14);
    if tag == WAVE_FORMAT_EXTENSIBLE {
        if body.len() < 40 || le_u16(body, 16) < 22 {
            bail!(
                Format,
                "WAVE_FORMAT_EXTENSIBLE fmt chunk is {} bytes, expected 40",
                body.len()
            );
        }
        if body[26..40] != KSDATAFORMAT_SUFFIX {
            bail!(
                Unsupported,
                "WAVE_FORMAT_EXTENSIBLE with an unknown sub-format GUID"
            );
        }
        let valid_bits = le_u16(body, 18);
        if valid_bits != 0 && valid_bits != bits {
            bail!(
                Unsupported,
                "{valid_bits} valid bits in {bits}-bit containers (only full-width samples are supported)"
            );
        }
        tag = le_u16(body, 24);
    }
    let format = match (tag, bits) {
        (WAVE_FORMAT_PCM, 16) => SampleFormat::I16,
        (WAVE_FORMAT_IEEE_FLOAT, 32) => SampleFormat::F32,
        (WAVE_FORMAT_PCM, b) => {
            bail!(
                Unsupported,
                "{b}-bit PCM is not supported (only 16-bit PCM and 32-bit float)"
            )
        }
        (WAVE_FORMAT_IEEE_FLOAT, b) => {
            bail!(
                Unsupported,
                "{b}-bit float is not supported (only 16-bit PCM and 32-bit float)"
            )
        }
        (t, _) => bail!(
            Unsupported,
            "compressed or unknown encoding ({}); only 16-bit PCM and 32-bit float are supported",
            tag_name(t)
        ),
    };
    if channels == 0 {
        bail!(Format, "fmt chunk says 0 channels");
    }
    if sample_rate == 0 {
        bail!(Format, "fmt chunk says 0 Hz");
    }
    let expected_align = channels as usize * (bits as usize / 8);
    if block_align != expected_align {
        bail!(
            Format,
            "block align {block_align} does not match {channels} channel(s) of {bits}-bit samples ({expected_align})"
        );
    }
    Ok(Fmt {
        format,
        channels,
        sample_rate,
        block_align,
    })
}

/// Parses a complete RIFF/WAVE file held in memory.
pub fn read_wav(bytes: &[u8]) -> Result<Wav> {
    if bytes.len() < 12 {
        bail!(
            Format,
            "{} bytes is too short for a WAV file (need a 12-byte RIFF header)",
            bytes.len()
        );
    }
    match &bytes[0..4] {
        b"RIFF" => {}
        b"RIFX" => bail!(Unsupported, "big-endian WAV (RIFX) is not supported"),
        b"RF64" => bail!(Unsupported, "RF64 (64-bit WAV) is not supported"),
        _ => bail!(Format, "not a WAV file (no RIFF header)"),
    }
    if &bytes[8..12] != b"WAVE" {
        bail!(
            Format,
            "RIFF file of type '{}', expected 'WAVE'",
            fourcc(&bytes[8..12])
        );
    }
    // The RIFF size is often wrong (streaming writers); chunks are walked to the
    // end of the bytes instead, and each chunk's size is checked against them.
    let mut pos = 12usize;
    let mut fmt: Option<Fmt> = None;
    let mut data: Option<&[u8]> = None;
    while bytes.len() - pos >= 8 {
        let id = &bytes[pos..pos + 4];
        let size = le_u32(bytes, pos + 4);
        let body_start = pos + 8;
        let remaining = bytes.len() - body_start;
        if id == b"data" {
            if data.is_some() {
                bail!(Format, "more than one data chunk");
            }
            let len = if size == STREAMING_SIZE {
                remaining
            } else if size as usize > remaining {
                bail!(
                    Format,
                    "data chunk claims {size} bytes but only {remaining} follow (truncated file?)"
                );
            } else {
                size as usize
            };
            data = Some(&bytes[body_start..body_start + len]);
            if fmt.is_some() {
                break; // nothing after the samples is needed
            }
        } else {
            if size as usize > remaining {
                if data.is_some() && fmt.is_some() {
                    break; // a damaged trailing chunk after everything we need
                }
                bail!(
                    Format,
                    "'{}' chunk claims {size} bytes but only {remaining} follow (truncated file?)",
                    fourcc(id)
                );
            }
            if id == b"fmt " {
                if fmt.is_some() {
                    bail!(Format, "more than one fmt chunk");
                }
                fmt = Some(parse_fmt(&bytes[body_start..body_start + size as usize])?);
            }
        }
        // Chunks are padded to an even size; a missing final pad byte is tolerated.
        let padded = size as usize + (size as usize & 1);
        pos = body_start.saturating_add(padded).min(bytes.len());
        if data.is_some() && fmt.is_some() {
            break;
        }
    }
    let fmt = fmt.ok_or_else(|| Error::format("no fmt chunk (truncated or not a WAV file)"))?;
    let data = data.ok_or_else(|| Error::format("no data chunk (truncated file?)"))?;
    if data.len() % fmt.block_align != 0 {
        bail!(
            Format,
            "data chunk of {} bytes is not a whole number of {}-byte frames (truncated file?)",
            data.len(),
            fmt.block_align
        );
    }
    let samples: Vec<f32> = match fmt.format {
        SampleFormat::I16 => data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0)
            .collect(),
        SampleFormat::F32 => {
            let v: Vec<f32> = data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                bail!(Format, "sample {i} is not a finite number");
            }
            v
        }
    };
    Ok(Wav {
        sample_rate: fmt.sample_rate,
        channels: fmt.channels,
        samples,
    })
}

/// Reads and parses a WAV file; error messages start with the path.
pub fn read_wav_file(path: &str) -> Result<Wav> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e))?;
    read_wav(&bytes).map_err(|e| e.context(path))
}

/// The keyword spotter's input requirement: one channel at 16,000 Hz.
///
/// Errors say e.g. "44100 Hz, expected 16000 Hz" or "stereo (2 channels),
/// expected mono"; add the file name with [`Error::context`].
pub fn require_mono_16k(wav: &Wav) -> Result<()> {
    let rate_ok = wav.sample_rate == 16000;
    let mono = wav.channels == 1;
    let chan = match wav.channels {
        2 => "stereo (2 channels)".to_string(),
        n => format!("{n} channels"),
    };
    match (rate_ok, mono) {
        (true, true) => Ok(()),
        (false, true) => Err(Error::new(
            ErrorKind::Unsupported,
            format!("{} Hz, expected 16000 Hz", wav.sample_rate),
        )),
        (true, false) => Err(Error::new(
            ErrorKind::Unsupported,
            format!("{chan}, expected mono"),
        )),
        (false, false) => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "{chan} at {} Hz, expected mono at 16000 Hz",
                wav.sample_rate
            ),
        )),
    }
}

/// Reads a WAV file and checks that it is mono 16 kHz; returns its samples.
/// Errors start with the path, e.g. "x.wav: 44100 Hz, expected 16000 Hz".
pub fn read_mono_16k_file(path: &str) -> Result<Vec<f32>> {
    let wav = read_wav_file(path)?;
    require_mono_16k(&wav).map_err(|e| e.context(path))?;
    Ok(wav.samples)
}

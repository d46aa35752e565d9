//! Tests of `mamba::audio`: WAV parsing (valid and hostile inputs built here in
//! code), and MFCC / delta features against librosa.
//!
//! Reference data: `../shared/reference/kws_best_model_95.npz` (100 clips'
//! librosa features, read here with a small stored-zip + .npy reader) and the
//! fixtures in `tests/fixtures/audio/`, made by `py/gen_audio_fixtures.py`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mamba::audio::{
    delta, kws_features, read_mono_16k_file, read_wav, read_wav_file, require_mono_16k, transpose,
    KwsFrontend, Mfcc, MfccParams, Wav,
};
use mamba::ErrorKind;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared() -> PathBuf {
    let p = root().join("../shared");
    assert!(
        p.join("reference").is_dir(),
        "{} is missing: the tests need ../shared beside the project",
        p.display()
    );
    p
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/audio").join(name)
}

fn read_f32(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(b.len() % 4, 0, "{}", path.display());
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

// ---------------------------------------------------------------- npz reader

/// An array from a .npy file: its dtype string, shape and raw little-endian data.
struct Npy {
    descr: String,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl Npy {
    fn f32s(&self) -> Vec<f32> {
        assert_eq!(self.descr, "<f4");
        self.data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// A '<U<n>' array (fixed-width UTF-32LE, NUL-padded) as strings.
    fn strings(&self) -> Vec<String> {
        let width: usize = self
            .descr
            .strip_prefix("<U")
            .expect("unicode array")
            .parse()
            .unwrap();
        self.data
            .chunks_exact(4 * width)
            .map(|item| {
                item.chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .take_while(|&u| u != 0)
                    .map(|u| char::from_u32(u).unwrap())
                    .collect()
            })
            .collect()
    }
}

fn header_value<'a>(header: &'a str, key: &str) -> &'a str {
    let at = header
        .find(&format!("'{key}':"))
        .unwrap_or_else(|| panic!("npy header without {key}: {header}"));
    header[at + key.len() + 3..].trim_start()
}

fn parse_npy(b: &[u8]) -> Npy {
    assert_eq!(&b[..6], b"\x93NUMPY", "not a .npy");
    let (hlen, hstart) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        _ => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
    };
    let header = std::str::from_utf8(&b[hstart..hstart + hlen]).unwrap();
    let descr = header_value(header, "descr");
    let descr = descr[1..].split('\'').next().unwrap().to_string();
    assert!(header_value(header, "fortran_order").starts_with("False"));
    let shape_s = header_value(header, "shape");
    let shape: Vec<usize> = shape_s[1..shape_s.find(')').unwrap()]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let item: usize = descr[2..].parse().unwrap();
    let item = if descr.starts_with("<U") {
        4 * item
    } else {
        item
    };
    let n = shape.iter().product::<usize>() * item;
    let start = hstart + hlen;
    Npy {
        descr,
        shape,
        data: b[start..start + n].to_vec(),
    }
}

/// Reads every member of an .npz written by `np.savez` (stored, not deflated),
/// walking the zip's central directory.
fn read_npz(path: &Path) -> HashMap<String, Npy> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as usize;
    let eocd = (0..=b.len() - 22)
        .rev()
        .find(|&o| u32_at(o) == 0x0605_4b50)
        .expect("zip end record");
    let count = u16_at(eocd + 10);
    let mut at = u32_at(eocd + 16);
    let mut out = HashMap::new();
    for _ in 0..count {
        assert_eq!(u32_at(at), 0x0201_4b50, "central directory entry");
        let method = u16_at(at + 10);
        let (nlen, xlen, clen) = (u16_at(at + 28), u16_at(at + 30), u16_at(at + 32));
        let local = u32_at(at + 42);
        let name = String::from_utf8(b[at + 46..at + 46 + nlen].to_vec()).unwrap();
        assert_eq!(
            method, 0,
            "{name} is compressed; this reader handles stored members only"
        );
        assert_eq!(u32_at(local), 0x0403_4b50, "local header");
        let data = local + 30 + u16_at(local + 26) + u16_at(local + 28);
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        out.insert(key, parse_npy(&b[data..]));
        at += 46 + nlen + xlen + clen;
    }
    out
}

// ---------------------------------------------------------------- comparisons

/// Largest |got - want| / (max - min of want's row) over `rows` rows of
/// `cols`, with the range floored at `min_range`.
fn max_row_rel_err(got: &[f32], want: &[f32], rows: usize, cols: usize, min_range: f32) -> f32 {
    assert_eq!(got.len(), rows * cols);
    assert_eq!(want.len(), rows * cols);
    let mut worst = 0f32;
    for r in 0..rows {
        let w = &want[r * cols..(r + 1) * cols];
        let g = &got[r * cols..(r + 1) * cols];
        let lo = w.iter().cloned().fold(f32::INFINITY, f32::min);
        let hi = w.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let range = (hi - lo).max(min_range);
        for (a, b) in g.iter().zip(w) {
            assert!(a.is_finite(), "non-finite feature");
            worst = worst.max((a - b).abs() / range);
        }
    }
    worst
}

// ---------------------------------------------------------------- librosa parity

#[test]
fn kws_features_match_librosa_on_all_reference_clips() {
    let npz = read_npz(&shared().join("reference/kws_best_model_95.npz"));
    let files = npz["files"].strings();
    let feats = &npz["features"];
    assert_eq!(feats.shape, vec![100, 69, 135]);
    assert_eq!(files.len(), 100);
    let want_all = feats.f32s();
    let fe = KwsFrontend::new(MfccParams::kws_default()).unwrap();
    assert_eq!((fe.n_features(), fe.n_frames()), (69, 135));
    let wav_root = shared().join("data/kws/wav");
    let block = 23 * 135;
    let mut worst = [0f32; 3];
    for (i, f) in files.iter().enumerate() {
        let path = wav_root.join(f);
        let samples = read_mono_16k_file(path.to_str().unwrap()).unwrap();
        let got = fe.features(&samples);
        let want = &want_all[i * 69 * 135..(i + 1) * 69 * 135];
        for k in 0..3 {
            let e = max_row_rel_err(
                &got[k * block..(k + 1) * block],
                &want[k * block..(k + 1) * block],
                23,
                135,
                1e-6,
            );
            worst[k] = worst[k].max(e);
            assert!(
                e < 1e-3,
                "{f}: block {k} (0 mfcc, 1 delta, 2 delta2) relative error {e}"
            );
        }
    }
    // The WAV-level helpers give the same features.
    let first = wav_root.join(&files[0]);
    let bytes = std::fs::read(&first).unwrap();
    assert_eq!(
        fe.wav_features(&bytes).unwrap(),
        fe.file_features(first.to_str().unwrap()).unwrap()
    );
    assert_eq!(
        fe.wav_features(&bytes).unwrap(),
        fe.features(&read_wav(&bytes).unwrap().samples)
    );
    fn send_sync<T: Send + Sync>() {}
    send_sync::<KwsFrontend>();
    send_sync::<Mfcc>();
    eprintln!(
        "max error / row range vs librosa: mfcc {:.2e}, delta {:.2e}, delta2 {:.2e}",
        worst[0], worst[1], worst[2]
    );
}

#[test]
fn kws_features_match_librosa_on_extra_clips() {
    // Silence, noise and two more words, through the same reference pipeline.
    let fe = KwsFrontend::new(MfccParams::kws_default()).unwrap();
    for name in ["no_1000ms", "noise_1000ms", "silence_1000ms", "yes_1000ms"] {
        let path = shared().join(format!("data/kws/wav/extra/{name}.wav"));
        let samples = read_mono_16k_file(path.to_str().unwrap()).unwrap();
        let got = fe.features(&samples);
        let want = read_f32(&fixture(&format!("extra_{name}.f32")));
        let e = max_row_rel_err(&got, &want, 69, 135, 1e-3);
        eprintln!("{name}: max error / row range {e:.2e}");
        assert!(e < 1e-3, "{name}: relative error {e}");
    }
}

#[test]
fn mfcc_matches_librosa_with_other_parameters() {
    // Inputs and librosa outputs from py/gen_audio_fixtures.py.
    let y = read_f32(&fixture("signal.f32"));
    // (fixture, params): an even FFT with fmin/fmax, and the KWS sizes on a short,
    // unnormalized signal (3001 samples, so the last frames run into the padding).
    let mut even = MfccParams::new(16000, 13, 512, 160, 40);
    even.fmin = 20.0;
    even.fmax = 7600.0;
    let cases = [
        ("mfcc_even.f32", even, &y[..]),
        ("mfcc_kws_short.f32", MfccParams::kws_default(), &y[..3001]),
        (
            "mfcc_8k.f32",
            MfccParams::new(8000, 20, 256, 80, 32),
            &y[..],
        ),
    ];
    for (name, params, input) in cases {
        let m = Mfcc::new(params.clone()).unwrap();
        let (got, frames) = m.compute(input);
        assert_eq!(frames, params.n_frames(input.len()));
        let want = read_f32(&fixture(name));
        assert_eq!(want.len(), params.n_mfcc * frames, "{name}: frame count");
        let e = max_row_rel_err(&got, &want, params.n_mfcc, frames, 1e-6);
        eprintln!("{name}: max error / row range {e:.2e}");
        assert!(e < 1e-3, "{name}: relative error {e}");
    }
}

#[test]
fn delta_matches_librosa_for_several_widths_and_orders() {
    let x = read_f32(&fixture("delta_input.f32"));
    let (rows, cols) = (7, 40);
    assert_eq!(x.len(), rows * cols);
    for (width, order) in [
        (3, 1),
        (5, 1),
        (5, 2),
        (9, 1),
        (9, 2),
        (9, 3),
        (11, 4),
        (39, 2),
    ] {
        let want = read_f32(&fixture(&format!("delta_w{width}_o{order}.f32")));
        let got = delta(&x, rows, cols, order, width).unwrap();
        // Rows of a wide second derivative are nearly constant: floor the range
        // at the output's magnitude.
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let e = max_row_rel_err(&got, &want, rows, cols, scale);
        assert!(e < 1e-5, "width {width} order {order}: relative error {e}");
    }
    // librosa's argument checks.
    assert!(delta(&x, rows, cols, 1, 4).is_err(), "even width");
    assert!(delta(&x, rows, cols, 1, 1).is_err(), "width < 3");
    assert!(delta(&x, rows, cols, 0, 9).is_err(), "order 0");
    assert!(delta(&x, rows, cols, 9, 9).is_err(), "order >= width");
    assert!(delta(&x, rows, cols, 1, 41).is_err(), "width > frames");
    assert!(delta(&x, rows, cols + 1, 1, 9).is_err(), "shape mismatch");
}

#[test]
fn kws_features_layout_and_helpers() {
    let p = MfccParams::kws_default();
    assert_eq!(
        (p.sample_rate, p.n_mfcc, p.n_fft, p.hop_length, p.n_mels),
        (16000, 23, 475, 119, 61)
    );
    assert_eq!(p.n_frames(16000), 135);
    assert_eq!(p.n_frames(0), 0);
    // A 440 Hz tone at low amplitude: normalization makes the scale irrelevant,
    // and a 1.5 s clip is cut to 1 s.
    let tone: Vec<f32> = (0..24000)
        .map(|i| 0.01 * (i as f32 * 440.0 * std::f32::consts::TAU / 16000.0).sin())
        .collect();
    let loud: Vec<f32> = tone.iter().map(|s| s * 50.0).collect();
    let a = kws_features(&tone, &p).unwrap();
    let b = kws_features(&loud, &p).unwrap();
    assert_eq!(a.len(), 69 * 135);
    let e = max_row_rel_err(&a, &b, 69, 135, 1.0);
    // Not exact: mel bands far from the tone hold only rounding noise, whose
    // log differs between the two scales (8.6e-5 on x86-64, 1.0e-4 on
    // aarch64 with its own libm); without the normalization whole rows
    // would shift by the log of the scale.
    assert!(e < 2e-4, "scale invariance {e}");
    let t = transpose(&a, 69, 135);
    assert_eq!(t[5 * 69 + 30], a[30 * 135 + 5]);
    // All-zero input stays finite (no division by zero).
    let z = kws_features(&[0.0; 100], &p).unwrap();
    assert!(z.iter().all(|v| v.is_finite()));
    // Bad parameters are errors, not panics.
    for bad in [
        MfccParams {
            n_fft: 0,
            ..p.clone()
        },
        MfccParams {
            hop_length: 0,
            ..p.clone()
        },
        MfccParams {
            n_mfcc: 62,
            ..p.clone()
        },
        MfccParams {
            fmax: 9000.0,
            ..p.clone()
        },
        MfccParams {
            sample_rate: 0,
            ..p.clone()
        },
    ] {
        assert!(Mfcc::new(bad).is_err());
    }
    // Too short a clip for width-9 deltas.
    assert!(KwsFrontend::new(MfccParams::new(1000, 13, 475, 200, 20)).is_err());
    // Any signal length, odd and even FFT sizes, hops longer than the window:
    // the frame count is librosa's and every value is finite.
    for params in [
        MfccParams::new(16000, 5, 475, 119, 10),
        MfccParams::new(8000, 4, 64, 100, 8),
        MfccParams::new(8000, 3, 7, 3, 3),
    ] {
        let m = Mfcc::new(params.clone()).unwrap();
        for len in (1..700)
            .step_by(7)
            .chain([1, 2, 3, 63, 64, 65, 474, 475, 476])
        {
            let y: Vec<f32> = (0..len)
                .map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5)
                .collect();
            let (v, frames) = m.compute(&y);
            assert_eq!(
                frames,
                1 + (len + 2 * (params.n_fft / 2) - params.n_fft) / params.hop_length
            );
            assert_eq!(v.len(), params.n_mfcc * frames);
            assert!(v.iter().all(|x| x.is_finite()), "len {len} {params:?}");
        }
    }
    assert_eq!(
        delta(&[0.0; 600], 1, 600, 13, 31).unwrap_err().kind,
        ErrorKind::Unsupported
    );
    // Empty input: no frames.
    let m = Mfcc::new(p).unwrap();
    assert_eq!(m.compute(&[]).1, 0);
    assert_eq!(m.compute(&[0.5]).1, 1);
}

// ---------------------------------------------------------------- WAV files

/// A WAV file: RIFF header, `fmt ` chunk with `fmt_body`, extra chunks, data.
fn wav_bytes(fmt_body: &[u8], extra_chunks: &[(&[u8; 4], Vec<u8>)], data: &[u8]) -> Vec<u8> {
    let mut chunks = Vec::new();
    let mut push = |id: &[u8; 4], body: &[u8]| {
        chunks.extend_from_slice(id);
        chunks.extend_from_slice(&(body.len() as u32).to_le_bytes());
        chunks.extend_from_slice(body);
        if body.len() % 2 == 1 {
            chunks.push(0);
        }
    };
    push(b"fmt ", fmt_body);
    for (id, body) in extra_chunks {
        push(id, body);
    }
    push(b"data", data);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(4 + chunks.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(&chunks);
    out
}

fn fmt_body(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
    let align = channels * bits / 8;
    let mut b = Vec::new();
    b.extend_from_slice(&tag.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * align as u32).to_le_bytes());
    b.extend_from_slice(&align.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b
}

fn fmt_extensible(sub_tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
    let mut b = fmt_body(0xFFFE, channels, rate, bits);
    b.extend_from_slice(&22u16.to_le_bytes()); // cbSize
    b.extend_from_slice(&bits.to_le_bytes()); // valid bits
    b.extend_from_slice(&4u32.to_le_bytes()); // channel mask
    b.extend_from_slice(&sub_tag.to_le_bytes());
    b.extend_from_slice(&[0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
    b
}

fn pcm16(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn err_of(bytes: &[u8]) -> (ErrorKind, String) {
    let e = read_wav(bytes).expect_err("expected an error");
    (e.kind, e.message)
}

#[test]
fn wav_pcm16_float_and_extensible() {
    let s = [0i16, 1, -1, 32767, -32768, 16384];
    let w = read_wav(&wav_bytes(&fmt_body(1, 1, 16000, 16), &[], &pcm16(&s))).unwrap();
    assert_eq!((w.sample_rate, w.channels), (16000, 1));
    let want: Vec<f32> = s.iter().map(|&v| v as f32 / 32768.0).collect();
    assert_eq!(w.samples, want);
    assert_eq!(w.samples[4], -1.0);
    require_mono_16k(&w).unwrap();

    let f = [0.25f32, -0.5, 1.0];
    let fb: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
    let w = read_wav(&wav_bytes(&fmt_body(3, 1, 16000, 32), &[], &fb)).unwrap();
    assert_eq!(w.samples, f.to_vec());

    let w = read_wav(&wav_bytes(
        &fmt_extensible(1, 1, 16000, 16),
        &[],
        &pcm16(&s),
    ))
    .unwrap();
    assert_eq!(w.samples, want);
    let w = read_wav(&wav_bytes(&fmt_extensible(3, 1, 16000, 32), &[], &fb)).unwrap();
    assert_eq!(w.samples, f.to_vec());
    // Extensible with an unknown sub-format GUID.
    let mut bad = fmt_extensible(1, 1, 16000, 16);
    bad[30] = 0x11;
    assert_eq!(
        err_of(&wav_bytes(&bad, &[], &pcm16(&s))).0,
        ErrorKind::Unsupported
    );
    // Extensible 24-in-32 (valid bits != container).
    let mut v = fmt_extensible(1, 1, 16000, 32);
    v[18] = 24;
    assert_eq!(
        err_of(&wav_bytes(&v, &[], &[0; 8])).0,
        ErrorKind::Unsupported
    );
}

#[test]
fn wav_skips_unknown_chunks_and_odd_padding() {
    let s = [100i16, -200, 300];
    let list = (b"LIST", b"INFOISFT\x05\x00\x00\x00Lavf\x00".to_vec()); // 17 bytes: odd, padded
    let junk = (b"junk", vec![7u8; 3]);
    let bytes = wav_bytes(&fmt_body(1, 1, 16000, 16), &[list, junk], &pcm16(&s));
    let w = read_wav(&bytes).unwrap();
    assert_eq!(w.samples.len(), 3);
    assert_eq!(w.samples[1], -200.0 / 32768.0);
    // A chunk before fmt, and trailing chunks after data.
    let mut b = b"RIFF\0\0\0\0WAVE".to_vec();
    b.extend_from_slice(b"bext\x03\0\0\0abc\0");
    b.extend_from_slice(b"fmt \x10\0\0\0");
    b.extend_from_slice(&fmt_body(1, 1, 16000, 16));
    b.extend_from_slice(b"data\x06\0\0\0");
    b.extend_from_slice(&pcm16(&s));
    b.extend_from_slice(b"LIST\x04\0\0\0abcd");
    let w = read_wav(&b).unwrap();
    assert_eq!(w.samples.len(), 3);
    // An odd-sized data chunk of 8-bit-aligned... no: 16-bit data must be whole frames.
    let mut odd = wav_bytes(&fmt_body(1, 1, 16000, 16), &[], &[1, 2, 3]);
    let (k, m) = err_of(&odd);
    assert_eq!(k, ErrorKind::Format, "{m}");
    assert!(m.contains("whole number"), "{m}");
    // Streaming writers' data size 0xFFFFFFFF means "to the end of the file".
    odd = wav_bytes(&fmt_body(1, 1, 16000, 16), &[], &pcm16(&s));
    let at = odd.len() - 6 - 4;
    odd[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(read_wav(&odd).unwrap().samples.len(), 3);
}

#[test]
fn wav_stereo_and_rate_checks() {
    let s = [1i16, 2, 3, 4];
    let st = read_wav(&wav_bytes(&fmt_body(1, 2, 16000, 16), &[], &pcm16(&s))).unwrap();
    assert_eq!((st.channels, st.frames()), (2, 2));
    let e = require_mono_16k(&st).unwrap_err();
    assert!(
        e.message.contains("stereo") && e.message.contains("expected mono"),
        "{}",
        e.message
    );
    let hi = read_wav(&wav_bytes(&fmt_body(1, 1, 44100, 16), &[], &pcm16(&s))).unwrap();
    let e = require_mono_16k(&hi).unwrap_err();
    assert_eq!(e.message, "44100 Hz, expected 16000 Hz");
    let both = Wav {
        sample_rate: 8000,
        channels: 3,
        samples: vec![],
    };
    assert!(require_mono_16k(&both)
        .unwrap_err()
        .message
        .contains("3 channels"));

    // Through a file: the message starts with the path.
    let dir = std::env::temp_dir().join(format!("mamba_audio_test_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.wav");
    std::fs::write(
        &path,
        wav_bytes(&fmt_body(1, 1, 44100, 16), &[], &pcm16(&s)),
    )
    .unwrap();
    let p = path.to_str().unwrap();
    assert_eq!(read_wav_file(p).unwrap().sample_rate, 44100);
    let e = read_mono_16k_file(p).unwrap_err();
    assert_eq!(e.message, format!("{p}: 44100 Hz, expected 16000 Hz"));
    std::fs::write(&path, b"RIFF").unwrap();
    assert!(read_wav_file(p).unwrap_err().message.starts_with(p));
    let missing = dir.join("missing.wav");
    assert_eq!(
        read_wav_file(missing.to_str().unwrap()).unwrap_err().kind,
        ErrorKind::Io
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn wav_unsupported_encodings() {
    let cases: [(Vec<u8>, &str); 6] = [
        (fmt_body(1, 1, 16000, 8), "8-bit"),
        (fmt_body(1, 1, 16000, 24), "24-bit"),
        (fmt_body(1, 1, 16000, 32), "32-bit PCM"),
        (fmt_body(3, 1, 16000, 64), "64-bit float"),
        (fmt_body(2, 1, 16000, 4), "ADPCM"),
        (fmt_body(0x55, 1, 16000, 0), "MPEG"),
    ];
    for (fmt, what) in cases {
        let (k, m) = err_of(&wav_bytes(&fmt, &[], &[0; 24]));
        assert_eq!(k, ErrorKind::Unsupported, "{what}: {m}");
        assert!(m.contains(what), "{what}: {m}");
    }
    let mut rifx = wav_bytes(&fmt_body(1, 1, 16000, 16), &[], &[0; 4]);
    rifx[3] = b'X';
    assert_eq!(err_of(&rifx).0, ErrorKind::Unsupported);
}

#[test]
fn wav_malformed_and_hostile_inputs() {
    let good = wav_bytes(&fmt_body(1, 1, 16000, 16), &[], &pcm16(&[1, 2, 3, 4, 5]));
    // Every truncation is an error (the data chunk claims more than is there),
    // never a panic.
    for n in 0..good.len() {
        assert!(
            read_wav(&good[..n]).is_err(),
            "truncated to {n} bytes parsed"
        );
    }
    let (k, m) = err_of(&good[..good.len() - 2]);
    assert_eq!(k, ErrorKind::Format);
    assert!(m.contains("truncated"), "{m}");
    assert!(err_of(b"").1.contains("too short"));
    assert!(err_of(b"RIFF\x04\0\0\0WAVX").1.contains("WAVE"));
    assert!(err_of(b"OggS\0\0\0\0\0\0\0\0\0\0").1.contains("not a WAV"));
    // Hostile sizes: a chunk claiming 4 GiB, a data chunk claiming 2 GiB.
    let mut huge = b"RIFF\xff\xff\xff\xffWAVE".to_vec();
    huge.extend_from_slice(b"LIST\xfe\xff\xff\xff");
    huge.extend_from_slice(&[0; 16]);
    assert!(err_of(&huge).1.contains("claims"));
    let mut big_data = good.clone();
    let at = big_data.len() - 10 - 4;
    assert_eq!(&big_data[at - 4..at], b"data");
    big_data[at..at + 4].copy_from_slice(&0x8000_0000u32.to_le_bytes());
    assert!(err_of(&big_data).1.contains("claims 2147483648 bytes"));
    // A fmt chunk that is too short, a zero-channel and a 0 Hz fmt, a wrong block align.
    assert!(
        err_of(&wav_bytes(&fmt_body(1, 1, 16000, 16)[..14], &[], &[0; 4]))
            .1
            .contains("fmt chunk")
    );
    assert!(err_of(&wav_bytes(&fmt_body(1, 0, 16000, 16), &[], &[0; 4]))
        .1
        .contains("0 channels"));
    assert!(err_of(&wav_bytes(&fmt_body(1, 1, 0, 16), &[], &[0; 4]))
        .1
        .contains("0 Hz"));
    let mut align = fmt_body(1, 1, 16000, 16);
    align[12] = 4;
    assert!(err_of(&wav_bytes(&align, &[], &[0; 4]))
        .1
        .contains("block align"));
    // Missing chunks; duplicated chunks.
    assert!(err_of(b"RIFF\x04\0\0\0WAVE").1.contains("no fmt"));
    let mut no_data = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".to_vec();
    no_data.extend_from_slice(&fmt_body(1, 1, 16000, 16));
    assert!(err_of(&no_data).1.contains("no data"));
    let two_fmt = wav_bytes(
        &fmt_body(1, 1, 16000, 16),
        &[(b"fmt ", fmt_body(1, 1, 16000, 16))],
        &[0; 4],
    );
    assert!(err_of(&two_fmt).1.contains("more than one fmt"));
    // Non-finite float samples.
    let nan: Vec<u8> = [0.0f32, f32::NAN]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert!(err_of(&wav_bytes(&fmt_body(3, 1, 16000, 32), &[], &nan))
        .1
        .contains("finite"));
    // Random garbage after a valid header never panics.
    let mut x = 0x1234_5678u32;
    for len in [12usize, 20, 44, 100, 1000] {
        for _ in 0..200 {
            let mut b = b"RIFF\0\0\0\0WAVE".to_vec();
            while b.len() < len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                b.push((x >> 24) as u8);
            }
            let _ = read_wav(&b);
        }
    }
}

#[test]
fn wav_files_written_by_libsndfile() {
    // (name, rate, channels): files soundfile wrote, with its fact/PEAK chunks and
    // extensible headers; the samples must equal what soundfile reads back.
    for (name, rate, channels) in [
        ("pcm16", 16000, 1),
        ("float", 16000, 1),
        ("wavex_pcm16", 16000, 1),
        ("wavex_float_stereo", 44100, 2),
        ("stereo_44k", 44100, 2),
    ] {
        let path = fixture(&format!("sf_{name}.wav"));
        let w = read_wav_file(path.to_str().unwrap()).unwrap();
        assert_eq!((w.sample_rate, w.channels), (rate, channels), "{name}");
        assert_eq!(
            w.samples,
            read_f32(&fixture(&format!("sf_{name}.f32"))),
            "{name}"
        );
        assert_eq!(
            require_mono_16k(&w).is_ok(),
            rate == 16000 && channels == 1,
            "{name}"
        );
    }
    for (name, what) in [
        ("pcm24", "24-bit"),
        ("u8", "8-bit"),
        ("double", "64-bit float"),
        ("ulaw", "mu-law"),
    ] {
        let path = fixture(&format!("sf_{name}.wav"));
        let e = read_wav_file(path.to_str().unwrap()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported, "{name}: {}", e.message);
        assert!(
            e.message.contains(what) && e.message.contains(&format!("sf_{name}.wav")),
            "{name}: {}",
            e.message
        );
    }
}

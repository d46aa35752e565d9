//! Sequence classifiers: the real keyword spotter and MNIST model (committed
//! GGUF exports, checked against the PyTorch reference outputs in
//! ../shared/reference), and lineage (c) against fixtures made by
//! py/make_classifier_fixtures.py.

use mamba::format::{load_any, AnyModel, LoadOptions};
use mamba::mamba::classifier::{self as cf, Workspace};
use mamba::model::classifier::ClassifierModel;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared(p: &str) -> Option<PathBuf> {
    let p = root().join("../shared").join(p);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipping: {} not found", p.display());
        None
    }
}

fn classifier(p: &Path) -> ClassifierModel {
    match load_any(p.to_str().unwrap(), &LoadOptions::default()).unwrap() {
        AnyModel::Classifier(m) => m,
        AnyModel::Lm(_) => panic!("{} loaded as a language model", p.display()),
    }
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/classifier").join(name)
}

/// A minimal reader for numpy .npz files written by np.savez (stored, not
/// deflated): finds each `NAME.npy` entry and parses its header.
pub mod npz {
    pub struct Array {
        pub shape: Vec<usize>,
        pub descr: String,
        pub data: Vec<u8>,
    }

    impl Array {
        pub fn f32(&self) -> Vec<f32> {
            assert_eq!(self.descr, "<f4");
            self.data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        }
        pub fn i64(&self) -> Vec<i64> {
            assert_eq!(self.descr, "<i8");
            self.data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect()
        }
        /// Fixed-width unicode strings (`<Un`).
        pub fn strings(&self) -> Vec<String> {
            let n: usize = self.descr[2..].parse().unwrap();
            self.data
                .chunks_exact(4 * n)
                .map(|c| {
                    c.chunks_exact(4)
                        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
                        .filter(|&u| u != 0)
                        .map(|u| char::from_u32(u).unwrap())
                        .collect()
                })
                .collect()
        }
    }

    pub fn read(path: &std::path::Path, name: &str) -> Array {
        let bytes = std::fs::read(path).unwrap();
        let mut pos = 0;
        loop {
            let i = bytes[pos..]
                .windows(4)
                .position(|w| w == b"PK\x03\x04")
                .unwrap_or_else(|| panic!("{name} not in {}", path.display()))
                + pos;
            let method = u16::from_le_bytes([bytes[i + 8], bytes[i + 9]]);
            let nlen = u16::from_le_bytes([bytes[i + 26], bytes[i + 27]]) as usize;
            let xlen = u16::from_le_bytes([bytes[i + 28], bytes[i + 29]]) as usize;
            let fname = std::str::from_utf8(&bytes[i + 30..i + 30 + nlen]).unwrap();
            let start = i + 30 + nlen + xlen;
            if fname == format!("{name}.npy") {
                assert_eq!(method, 0, "npz entry is compressed");
                let d = &bytes[start..];
                assert_eq!(&d[..6], b"\x93NUMPY");
                let (hlen, hstart) = if d[6] == 1 {
                    (u16::from_le_bytes([d[8], d[9]]) as usize, 10)
                } else {
                    (
                        u32::from_le_bytes(d[8..12].try_into().unwrap()) as usize,
                        12,
                    )
                };
                let header = std::str::from_utf8(&d[hstart..hstart + hlen]).unwrap();
                let descr = header
                    .split("'descr': '")
                    .nth(1)
                    .unwrap()
                    .split('\'')
                    .next()
                    .unwrap();
                assert!(header.contains("'fortran_order': False"));
                let shape_s = header
                    .split("'shape': (")
                    .nth(1)
                    .unwrap()
                    .split(')')
                    .next()
                    .unwrap();
                let shape: Vec<usize> = shape_s
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().parse().unwrap())
                    .collect();
                let item: usize = if descr.starts_with("<U") {
                    4 * descr[2..].parse::<usize>().unwrap()
                } else {
                    descr[2..].parse().unwrap()
                };
                let n = shape.iter().product::<usize>() * item;
                let body = &d[hstart + hlen..hstart + hlen + n];
                return Array {
                    shape,
                    descr: descr.to_string(),
                    data: body.to_vec(),
                };
            }
            pos = start;
        }
    }
}

fn logits_of(m: &ClassifierModel, feats: &[f32], frames: usize) -> Vec<f32> {
    let mut ws = Workspace::new(m);
    let mut out = vec![0f32; m.config.n_classes];
    cf::forward(m, &mut ws, feats, frames, &mut out).unwrap();
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// KWS features (69 × 135 feature-major in the npz) → logits of the model.
fn kws_check(model: &str, tol: f32, min_agree: usize) {
    let Some(npz) = shared("reference/kws_best_model_95.npz") else {
        return;
    };
    let m = classifier(&fixture(model));
    let feats = npz::read(&npz, "features");
    let want = npz::read(&npz, "logits").f32();
    let labels = npz::read(&npz, "labels").i64();
    assert_eq!(feats.shape, vec![100, 69, 135]);
    let f = feats.f32();
    let (mut worst, mut agree, mut correct) = (0f32, 0, 0);
    for i in 0..100 {
        let fm = &f[i * 69 * 135..(i + 1) * 69 * 135];
        let x = mamba::audio::transpose(fm, 69, 135);
        let got = logits_of(&m, &x, 135);
        let w = &want[i * 10..(i + 1) * 10];
        worst = worst.max(max_abs_diff(&got, w));
        agree += usize::from(cf::argmax(&got) == cf::argmax(w));
        correct += usize::from(cf::argmax(&got) as i64 == labels[i]);
    }
    eprintln!("{model}: max |Δlogit| {worst:.3e}, agree {agree}/100, correct {correct}/100");
    assert!(worst <= tol, "{model}: logits differ by {worst}");
    assert!(agree >= min_agree);
}

#[test]
fn kws_from_reference_features() {
    kws_check("kws.gguf", 1e-4, 100);
}

#[test]
fn kws_int8_from_reference_features() {
    // 8-bit weights: not bit-faithful, but the predictions must hold.
    kws_check("kws_int8.gguf", 1.0, 97);
}

#[test]
fn kws_config_from_gguf() {
    let m = classifier(&fixture("kws.gguf"));
    let c = &m.config;
    assert_eq!(
        (c.n_layers, c.d_model, c.d_inner, c.d_state, c.d_conv, c.dt_rank),
        (2, 136, 272, 51, 10, 9)
    );
    assert_eq!(c.label(0), "down");
    assert_eq!(c.label(9), "yes");
    assert!(m.frontend.is_some());
}

fn kws_wav_check(model: &str, min_agree: usize, min_correct: usize) {
    let Some(npz) = shared("reference/kws_best_model_95.npz") else {
        return;
    };
    let Some(wavs) = shared("data/kws/wav") else {
        return;
    };
    let m = classifier(&fixture(model));
    let files = npz::read(&npz, "files").strings();
    let want = npz::read(&npz, "logits").f32();
    let labels = npz::read(&npz, "labels").i64();
    let (mut agree, mut correct) = (0, 0);
    for (i, f) in files.iter().enumerate() {
        let samples = mamba::audio::read_mono_16k_file(wavs.join(f).to_str().unwrap()).unwrap();
        let x = cf::audio_features(&m, &samples, 16000).unwrap();
        let got = logits_of(&m, &x, 135);
        let p = cf::argmax(&got);
        agree += usize::from(p == cf::argmax(&want[i * 10..(i + 1) * 10]));
        correct += usize::from(p as i64 == labels[i]);
    }
    eprintln!("{model} from WAV: agree with reference {agree}/100, correct {correct}/100");
    assert!(agree >= min_agree, "{model}: {agree}/100 agree");
    assert!(correct >= min_correct, "{model}: {correct}/100 correct");
}

#[test]
fn kws_from_wav_files() {
    kws_wav_check("kws.gguf", 99, 97);
}

#[test]
fn kws_int8_from_wav_files() {
    kws_wav_check("kws_int8.gguf", 97, 96);
}

#[test]
fn mnist_all_test_images() {
    let Some(npz) = shared("reference/mnist_mamba.npz") else {
        return;
    };
    let Some(imgs) = shared("data/mnist/t10k-images-idx3-ubyte.gz") else {
        return;
    };
    let m = classifier(&fixture("mnist.gguf"));
    let (dims, px) = mamba::ffi::classifier::read_idx(imgs.to_str().unwrap()).unwrap();
    assert_eq!(dims, vec![10000, 28, 28]);
    let want = npz::read(&npz, "logits").f32();
    let labels = npz::read(&npz, "labels").i64();
    let mut ws = Workspace::new(&m);
    let (mut agree, mut correct, mut worst) = (0, 0, 0f32);
    let mut x = vec![0f32; 784];
    let mut out = vec![0f32; 10];
    for i in 0..10000 {
        cf::image_features(&m, &px[i * 784..(i + 1) * 784], &mut x).unwrap();
        cf::forward(&m, &mut ws, &x, 1, &mut out).unwrap();
        let w = &want[i * 10..(i + 1) * 10];
        worst = worst.max(max_abs_diff(&out, w));
        agree += usize::from(cf::argmax(&out) == cf::argmax(w));
        correct += usize::from(cf::argmax(&out) as i64 == labels[i]);
    }
    eprintln!("mnist: max |Δlogit| {worst:.3e}, agree {agree}/10000, correct {correct}/10000");
    assert!(agree >= 9990);
    assert_eq!(correct, 9726);
    assert!(worst < 1e-3);
}

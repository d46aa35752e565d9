//! Classifier speed on one thread:
//!  - keyword spotting, one 1-second clip, WAV bytes → label, split into the
//!    front end (WAV decode + MFCC/deltas) and the model (projection, Mamba
//!    blocks, head);
//!  - MNIST images per second (pixels → digit).
//!
//!     cargo run --release --example classifier_bench [KWS.gguf MNIST.gguf CLIP.wav]
//!
//! Defaults: tests/fixtures/classifier/{kws,mnist}.gguf and the first clip in
//! ../shared/data/kws/wav/yes/.

use mamba::format::{load_any, AnyModel, LoadOptions};
use mamba::mamba::classifier::{self as cf, Workspace};
use mamba::model::classifier::ClassifierModel;
use std::time::Instant;

fn load(p: &str) -> ClassifierModel {
    match load_any(p, &LoadOptions::default()).expect("load") {
        AnyModel::Classifier(m) => m,
        _ => panic!("{p} is not a classifier"),
    }
}

/// CPU time of this thread, ms (what one core spends, whatever else runs on the machine).
fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 * 1e-6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let root = env!("CARGO_MANIFEST_DIR");
    let a: Vec<String> = std::env::args().collect();
    let kws = a
        .get(1)
        .cloned()
        .unwrap_or(format!("{root}/tests/fixtures/classifier/kws.gguf"));
    let mnist = a
        .get(2)
        .cloned()
        .unwrap_or(format!("{root}/tests/fixtures/classifier/mnist.gguf"));
    let wav = a.get(3).cloned().unwrap_or_else(|| {
        let dir = format!("{root}/../shared/data/kws/wav/yes");
        let mut v: Vec<_> = std::fs::read_dir(&dir)
            .expect("no clip given and ../shared/data/kws/wav/yes is missing")
            .filter_map(|e| e.ok().map(|e| e.path().to_string_lossy().into_owned()))
            .collect();
        v.sort();
        v[0].clone()
    });
    mamba::threads::set_num_threads(1);
    mamba::threads::run(|| {
        let m = load(&kws);
        let bytes = std::fs::read(&wav).expect("read wav");
        let mut ws = Workspace::new(&m);
        let mut logits = vec![0f32; m.config.n_classes];
        let (mut fe, mut model, mut total) = (vec![], vec![], vec![]);
        let (mut cfe, mut cmodel) = (vec![], vec![]);
        let mut label = String::new();
        for i in 0..300 {
            let (c0, t0) = (cpu_ms(), Instant::now());
            let w = mamba::audio::read_wav(&bytes).unwrap();
            let x = cf::audio_features(&m, &w.samples, w.sample_rate).unwrap();
            let (c1, t1) = (cpu_ms(), Instant::now());
            cf::forward(&m, &mut ws, &x, m.config.input_frames, &mut logits).unwrap();
            let (c2, t2) = (cpu_ms(), Instant::now());
            if i >= 20 {
                cfe.push(c1 - c0);
                cmodel.push(c2 - c1);
                fe.push((t1 - t0).as_secs_f64() * 1e3);
                model.push((t2 - t1).as_secs_f64() * 1e3);
                total.push((t2 - t0).as_secs_f64() * 1e3);
            }
            label = m.config.label(cf::argmax(&logits));
        }
        let (cfe, cmodel) = (median(cfe), median(cmodel));
        println!("keyword spotting, one 1-second clip ({wav} -> {label}), 1 thread, median of 280");
        println!("(wall clock; in brackets this thread's CPU time, which other load on the machine does not inflate):");
        println!(
            "  front end (WAV decode + MFCC + deltas): {:.3} ms [{cfe:.3} ms]",
            median(fe)
        );
        println!(
            "  model (projection, 2 Mamba blocks, head): {:.3} ms [{cmodel:.3} ms]",
            median(model)
        );
        println!(
            "  total WAV -> label: {:.3} ms [{:.3} ms]",
            median(total),
            cfe + cmodel
        );

        let m = load(&mnist);
        let px: Vec<u8> = (0..784 * 1000).map(|i| ((i * 7919) % 256) as u8).collect();
        let mut ws = Workspace::new(&m);
        let mut x = vec![0f32; 784];
        let mut logits = vec![0f32; 10];
        let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            let (c0, t0) = (cpu_ms(), Instant::now());
            for i in 0..1000 {
                cf::image_features(&m, &px[i * 784..(i + 1) * 784], &mut x).unwrap();
                cf::forward(&m, &mut ws, &x, 1, &mut logits).unwrap();
            }
            best = best.min(t0.elapsed().as_secs_f64());
            best_cpu = best_cpu.min((cpu_ms() - c0) * 1e-3);
        }
        println!(
            "MNIST: {:.0} images/s on 1 thread ({:.1} us per image) [CPU time: {:.0} images/s]",
            1000.0 / best,
            best * 1e6 / 1000.0,
            1000.0 / best_cpu
        );
    });
}

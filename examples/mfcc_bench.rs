//! Front-end speed: WAV bytes of one 1-second clip -> 69 x 135 KWS features, on
//! one thread. Run in release:
//!
//!     cargo run --release --example mfcc_bench [CLIP.wav] [ITERATIONS]
//!
//! Without a path it uses ../shared/data/kws/wav/yes/ (first clip), or a
//! synthetic 16 kHz clip when that is missing.

use std::time::Instant;

use mamba::audio::{read_wav, require_mono_16k, KwsFrontend, MfccParams};

fn synthetic_wav() -> Vec<u8> {
    let samples: Vec<i16> = (0..16000u32)
        .map(|i| {
            let t = i as f32 / 16000.0;
            let x = 0.5 * (t * 2.0 * std::f32::consts::PI * (300.0 + 900.0 * t)).sin();
            (x * 32767.0) as i16
        })
        .collect();
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut b = b"RIFF".to_vec();
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt \x10\0\0\0\x01\0\x01\0");
    b.extend_from_slice(&16000u32.to_le_bytes());
    b.extend_from_slice(&32000u32.to_le_bytes());
    b.extend_from_slice(b"\x02\0\x10\0data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    b
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let iters: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let (name, bytes) = match args.get(1) {
        Some(p) => (p.clone(), std::fs::read(p)?),
        None => {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/kws/wav/yes");
            let first = std::fs::read_dir(dir).ok().and_then(|rd| {
                let mut v: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
                v.sort();
                v.into_iter()
                    .find(|p| p.extension().is_some_and(|e| e == "wav"))
            });
            match first {
                Some(p) => (p.display().to_string(), std::fs::read(&p)?),
                None => ("synthetic chirp".to_string(), synthetic_wav()),
            }
        }
    };

    let t0 = Instant::now();
    let fe = KwsFrontend::new(MfccParams::kws_default())?;
    let setup = t0.elapsed();

    let run = || -> mamba::Result<Vec<f32>> {
        let wav = read_wav(&bytes)?;
        require_mono_16k(&wav)?;
        Ok(fe.features(&wav.samples))
    };
    let feats = run()?; // warm-up
    let mut times = Vec::with_capacity(iters);
    let mut sink = 0f32;
    for _ in 0..iters {
        let t = Instant::now();
        let f = run()?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
        sink += f[0];
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let pct = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!("clip: {name} ({} bytes)", bytes.len());
    println!(
        "features: {} x {} (feature-major)",
        fe.n_features(),
        fe.n_frames()
    );
    assert_eq!(feats.len(), fe.n_features() * fe.n_frames());
    println!(
        "setup (KwsFrontend::new): {:.1} us",
        setup.as_secs_f64() * 1e6
    );
    println!(
        "WAV bytes -> features, one thread, {iters} runs: min {:.1} us, median {:.1} us, p90 {:.1} us",
        pct(0.0),
        pct(0.5),
        pct(0.9)
    );
    std::hint::black_box(sink);
    Ok(())
}

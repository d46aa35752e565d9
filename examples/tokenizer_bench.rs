//! Encoder throughput on tinyshakespeare, one thread.
//!
//!     cargo run --release --example tokenizer_bench [tokenizer.json] [text]
//!
//! Defaults: ../shared/data/tokenizer/gpt-neox-20b.json and
//! ../shared/data/text/tinyshakespeare.txt (relative to the project root).

use mamba::tokenizer::Tokenizer;
use std::time::Instant;

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn bench(name: &str, t: &Tokenizer, text: &[u8], lines: &[&[u8]]) {
    // whole text: the first call (cold word cache), then best of 5 (warm)
    let t0 = Instant::now();
    let n = t.encode(text).expect("encode").len();
    let cold = t0.elapsed().as_secs_f64();
    println!(
        "{name}: whole file, cold cache {:>8.1} MB/s  ({n} ids, {:.1} ms)",
        mbps(text.len(), cold),
        cold * 1e3
    );
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        std::hint::black_box(t.encode(text).expect("encode").len());
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!(
        "{name}: whole file, warm cache {:>8.1} MB/s  ({:.1} ms)",
        mbps(text.len(), best),
        best * 1e3
    );
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t0 = Instant::now();
        let mut k = 0;
        for l in lines {
            k += t.encode(l).expect("encode").len();
        }
        std::hint::black_box(k);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!(
        "{name}: line by line, warm {:>8.1} MB/s  ({} lines, {:.1} ms)",
        mbps(text.len(), best),
        lines.len(),
        best * 1e3
    );
}

fn main() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = root
        .parent()
        .map(|p| p.join("shared/data"))
        .unwrap_or_default();
    let args: Vec<String> = std::env::args().collect();
    let json = args.get(1).cloned().unwrap_or_else(|| {
        shared
            .join("tokenizer/gpt-neox-20b.json")
            .to_string_lossy()
            .into_owned()
    });
    let text_path = args.get(2).cloned().unwrap_or_else(|| {
        shared
            .join("text/tinyshakespeare.txt")
            .to_string_lossy()
            .into_owned()
    });
    let text = match std::fs::read(&text_path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{text_path}: {e}");
            std::process::exit(1);
        }
    };
    let t0 = Instant::now();
    let bpe = match Tokenizer::from_file(&json) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!(
        "loaded {json} in {:.1} ms ({} tokens); text {} bytes",
        t0.elapsed().as_secs_f64() * 1e3,
        bpe.vocab_size(),
        text.len()
    );
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    bench("bpe   ", &bpe, &text, &lines);

    // The C project's tokenizer.bin (50277 tokens), built in memory.
    let mut bin = Vec::new();
    let n = 50277u32.min(bpe.vocab_size() as u32);
    let toks: Vec<&[u8]> = (0..n).map(|i| bpe.token_bytes(i).unwrap_or(b"")).collect();
    bin.extend_from_slice(&0x4d62546bu32.to_le_bytes());
    bin.extend_from_slice(&1i32.to_le_bytes());
    bin.extend_from_slice(&(n as i32).to_le_bytes());
    bin.extend_from_slice(&(toks.iter().map(|t| t.len()).max().unwrap_or(0) as i32).to_le_bytes());
    for t in &toks {
        bin.extend_from_slice(&(t.len() as i32).to_le_bytes());
        bin.extend_from_slice(t);
    }
    let legacy = Tokenizer::from_bytes(&bin, "tokenizer.bin").expect("tokenizer.bin");
    bench("legacy", &legacy, &text, &lines);

    let ids = bpe.encode(&text).expect("encode");
    let t0 = Instant::now();
    let out = bpe.decode(&ids, false);
    let dt = t0.elapsed().as_secs_f64();
    println!("bpe   : decode      {:>8.1} MB/s", mbps(out.len(), dt));
}

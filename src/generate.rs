//! Text generation: prompt in (prompt mode), tokens sampled one at a time,
//! pieces handed to a callback as soon as they are complete UTF-8.

use crate::error::{Error, Result};
use crate::sampler::Sampler;
use crate::session::Session;
use crate::tokenizer::{StreamDecoder, Tokenizer};
use std::time::Instant;

#[derive(Debug, Clone, Copy, Default)]
pub struct GenerateStats {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prompt_seconds: f64,
    pub generate_seconds: f64,
}

impl GenerateStats {
    pub fn prompt_tok_per_s(&self) -> f64 {
        rate(self.prompt_tokens, self.prompt_seconds)
    }
    pub fn generate_tok_per_s(&self) -> f64 {
        rate(self.generated_tokens, self.generate_seconds)
    }
}

fn rate(n: usize, s: f64) -> f64 {
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

/// Options for [`generate`].
#[derive(Debug, Clone, Copy)]
pub struct GenerateOptions {
    /// Most tokens to sample.
    pub max_tokens: usize,
    /// Stop when the tokenizer's end-of-text token is sampled.
    pub stop_at_eos: bool,
}

/// Encodes `prompt`, runs it in prompt mode, then samples up to
/// `max_tokens` tokens. `on_piece` gets each decoded piece and returns false
/// to stop. An empty prompt starts from the end-of-text token, as the
/// models were trained with documents separated by it.
pub fn generate(
    session: &mut Session,
    tok: &Tokenizer,
    sampler: &mut Sampler,
    prompt: &[u8],
    opts: GenerateOptions,
    on_piece: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<GenerateStats> {
    let mut ids = tok.encode(prompt)?;
    if ids.is_empty() {
        ids.push(tok.eos_id().unwrap_or(0));
    }
    let vocab = session.model().config.padded_vocab;
    if let Some(&bad) = ids.iter().find(|&&t| t as usize >= vocab) {
        return Err(Error::invalid(format!(
            "the tokenizer produced token {bad}, beyond the model's {vocab} embedding rows (wrong tokenizer?)"
        )));
    }
    let mut stats = GenerateStats {
        prompt_tokens: ids.len(),
        ..Default::default()
    };
    for &t in &ids {
        sampler.accept(t);
    }
    let t0 = Instant::now();
    session.forward_tokens(&ids)?;
    stats.prompt_seconds = t0.elapsed().as_secs_f64();

    // Sample only among tokens both the model and the tokenizer know (the
    // embedding may have padding rows; a small tokenizer may cover fewer).
    let n_logits = session
        .model()
        .config
        .vocab_size
        .min(tok.vocab_size())
        .max(1);
    let eos = tok.eos_id();
    let mut decoder = StreamDecoder::new();
    let mut piece = Vec::with_capacity(64);
    let t1 = Instant::now();
    for _ in 0..opts.max_tokens {
        let next = sampler.sample(&session.logits()[..n_logits]);
        if opts.stop_at_eos && Some(next) == eos {
            break;
        }
        sampler.accept(next);
        stats.generated_tokens += 1;
        piece.clear();
        decoder.push(tok, next, &mut piece);
        if !piece.is_empty() && !on_piece(&piece) {
            break;
        }
        // Feed the token so the session's state covers all of the text;
        // the last one is fed too, so generation can be continued.
        session.forward(next)?;
    }
    piece.clear();
    decoder.flush(&mut piece);
    if !piece.is_empty() {
        on_piece(&piece);
    }
    stats.generate_seconds = t1.elapsed().as_secs_f64();
    Ok(stats)
}

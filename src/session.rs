//! A session: one sequence's recurrent state and work buffers over a shared,
//! immutable model. Sessions are independent; many can run on one model from
//! many threads at once.

use crate::error::{Error, Result};
use crate::mamba::lm::{self, LmScratch, LmState, PROMPT_BLOCK};
use crate::model::Model;
use crate::state;
use std::sync::Arc;

pub struct Session {
    model: Arc<Model>,
    state: LmState,
    scratch: LmScratch,
    /// Tokens consumed since the last reset.
    position: u64,
}

impl Session {
    pub fn new(model: Arc<Model>) -> Session {
        let state = LmState::new(&model.config);
        let scratch = LmScratch::new(&model.config);
        Session {
            model,
            state,
            scratch,
            position: 0,
        }
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    /// Back to the empty state (as after `new`).
    pub fn reset(&mut self) {
        self.state.reset();
        self.position = 0;
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        let v = self.model.config.padded_vocab;
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= v) {
            return Err(Error::invalid(format!(
                "token id {t} is out of range (vocabulary has {v} rows)"
            )));
        }
        Ok(())
    }

    /// Feeds one token; returns the logits for the next position.
    pub fn forward(&mut self, token: u32) -> Result<&[f32]> {
        self.forward_tokens(&[token])
    }

    /// Feeds `tokens` in prompt mode (blocks of matrix-matrix products);
    /// returns the logits after the last token. Leaves the same state that
    /// feeding them one at a time does.
    pub fn forward_tokens(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        if tokens.is_empty() {
            return Err(Error::invalid("no tokens given"));
        }
        self.check_tokens(tokens)?;
        let Session {
            model,
            state,
            scratch,
            ..
        } = self;
        crate::threads::run(|| {
            let blocks = tokens.len().div_ceil(PROMPT_BLOCK);
            for (i, chunk) in tokens.chunks(PROMPT_BLOCK).enumerate() {
                // Only the last block's logits are returned.
                let logits = if i + 1 == blocks {
                    lm::Logits::Last
                } else {
                    lm::Logits::Skip
                };
                lm::forward_block(model, state, scratch, chunk, logits);
            }
        });
        self.position = self.position.saturating_add(tokens.len() as u64);
        Ok(&self.scratch.logits)
    }

    /// Like `forward_tokens` but writes the logits of every position to
    /// `out` (tokens.len() × padded_vocab).
    pub fn forward_all(&mut self, tokens: &[u32], out: &mut [f32]) -> Result<()> {
        let v = self.model.config.padded_vocab;
        if out.len() < tokens.len() * v {
            return Err(Error::invalid("logits buffer too small"));
        }
        if tokens.is_empty() {
            return Err(Error::invalid("no tokens given"));
        }
        self.check_tokens(tokens)?;
        let Session {
            model,
            state,
            scratch,
            ..
        } = self;
        crate::threads::run(|| {
            for (i, chunk) in tokens.chunks(PROMPT_BLOCK).enumerate() {
                let o = &mut out[i * PROMPT_BLOCK * v..(i * PROMPT_BLOCK + chunk.len()) * v];
                lm::forward_block(model, state, scratch, chunk, lm::Logits::All(o));
            }
        });
        self.position = self.position.saturating_add(tokens.len() as u64);
        Ok(())
    }

    /// Advances several sessions of the same model by one token each
    /// (`tokens[i]` for `sessions[i]`), reading the weights once for all of
    /// them. Each session's `logits()` then holds its next-token logits.
    pub fn forward_batch(sessions: &mut [&mut Session], tokens: &[u32]) -> Result<()> {
        if sessions.len() != tokens.len() {
            return Err(Error::invalid(format!(
                "{} sessions but {} tokens",
                sessions.len(),
                tokens.len()
            )));
        }
        let Some(first) = sessions.first() else {
            return Ok(());
        };
        let model = first.model.clone();
        if sessions.iter().any(|s| !Arc::ptr_eq(&s.model, &model)) {
            return Err(Error::invalid("batched sessions must share one model"));
        }
        for s in sessions.iter() {
            s.check_tokens(tokens)?;
        }
        let v = model.config.padded_vocab;
        for (chunk, toks) in sessions
            .chunks_mut(PROMPT_BLOCK)
            .zip(tokens.chunks(PROMPT_BLOCK))
        {
            let n = chunk.len();
            // The first session's scratch serves the whole chunk.
            let (head, rest) = chunk.split_at_mut(1);
            let Session { state, scratch, .. } = &mut *head[0];
            if n <= lm::MAX_FEW {
                // Each session's logits are written in place.
                let others = rest
                    .iter_mut()
                    .map(|s| (&mut s.state, &mut s.scratch.logits[..]));
                crate::threads::run(|| lm::forward_few(&model, state, scratch, others, toks));
            } else {
                let mut out = std::mem::take(&mut scratch.batch_logits);
                out.resize(out.len().max(n * v), 0.0);
                let others = rest.iter_mut().map(|s| &mut s.state);
                let mut states: Vec<&mut LmState> = std::iter::once(state).chain(others).collect();
                crate::threads::run(|| {
                    lm::forward_batch(&model, &mut states, scratch, toks, &mut out[..n * v])
                });
                scratch.logits.copy_from_slice(&out[..v]);
                for (i, s) in rest.iter_mut().enumerate() {
                    s.scratch
                        .logits
                        .copy_from_slice(&out[(i + 1) * v..(i + 2) * v]);
                }
                scratch.batch_logits = out;
            }
            for s in chunk.iter_mut() {
                s.position = s.position.saturating_add(1);
            }
        }
        Ok(())
    }

    /// The logits of the last forward.
    pub fn logits(&self) -> &[f32] {
        &self.scratch.logits
    }

    pub fn state_size(&self) -> usize {
        state::blob_size(&self.model.config)
    }

    /// Writes the state blob into `out` (at least `state_size()` bytes).
    pub fn state_get(&self, out: &mut [u8]) -> Result<usize> {
        state::write(&self.model.config, &self.state, self.position, out)?;
        Ok(self.state_size())
    }

    /// Restores a blob written by `state_get` for a model of the same shape.
    pub fn state_set(&mut self, blob: &[u8]) -> Result<()> {
        self.position = state::read(&self.model.config, &mut self.state, blob)?;
        Ok(())
    }

    /// The raw recurrent state (conv then ssm), as the C project's
    /// `get_internal_state` lays it out.
    pub fn raw_state(&self) -> (&[f32], &[f32]) {
        (&self.state.conv, &self.state.ssm)
    }

    pub fn raw_state_mut(&mut self) -> (&mut [f32], &mut [f32]) {
        (&mut self.state.conv, &mut self.state.ssm)
    }
}

//! Tokenizers: the C project's greedy `tokenizer.bin` and (later) exact BPE.
//! PLACEHOLDER interface — being implemented in src/tokenizer/.

use crate::error::Result;

pub struct Tokenizer {
    pieces: Vec<Vec<u8>>,
}

impl Tokenizer {
    pub fn from_file(_path: &str) -> Result<Tokenizer> {
        Err(crate::error::Error::unsupported(
            "tokenizer not implemented yet",
        ))
    }
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }
    pub fn encode(&self, _text: &[u8]) -> Result<Vec<u32>> {
        Ok(vec![])
    }
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.pieces.get(id as usize).map(|v| v.as_slice())
    }
}

/// The tokenizer a GGUF file carries (`tokenizer.ggml.*`, model "gpt2").
/// `tokens` are in byte-level form ("Ġ" for a space), as llama.cpp writes them.
pub struct GgufVocab {
    pub model: String,
    pub tokens: Vec<String>,
    pub token_types: Vec<i32>,
    pub merges: Vec<String>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
}

impl Tokenizer {
    pub fn from_gguf(_vocab: GgufVocab) -> Result<Tokenizer> {
        Err(crate::error::Error::unsupported(
            "tokenizer not implemented yet",
        ))
    }
}

impl Tokenizer {
    pub fn eos_id(&self) -> Option<u32> {
        Some(0)
    }
    pub fn is_legacy(&self) -> bool {
        true
    }
}

/// Streaming decoder placeholder.
#[derive(Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, tok: &Tokenizer, id: u32, out: &mut Vec<u8>) {
        if let Some(b) = tok.token_bytes(id) {
            self.pending.extend_from_slice(b);
        }
        out.append(&mut self.pending);
    }
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
    }
}

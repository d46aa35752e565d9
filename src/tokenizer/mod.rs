//! Tokenizers: the C project's greedy `tokenizer.bin` and exact GPT-NeoX byte-level BPE.
//!
//! - [`Tokenizer::from_file`] reads either a `tokenizer.bin` (magic `0x4d62546b`, the C
//!   project's format and greedy encoder, see [`legacy`]) or an HF `tokenizer.json`
//!   (byte-level BPE giving the same ids as HF `tokenizers`, see [`bpe`]).
//! - [`Tokenizer::from_gguf`] builds the same BPE from a GGUF file's vocabulary.
//!
//! Choices worth knowing:
//! - [`Tokenizer::encode`] takes bytes. For BPE, invalid UTF-8 is first replaced by U+FFFD,
//!   one per maximal invalid subsequence (Rust's `String::from_utf8_lossy`; HF's Python API
//!   cannot even receive such text). The legacy encoder works on raw bytes like the C code
//!   (and, like it, stops at the first NUL byte).
//! - Legacy byte fallback is the C code's `byte + 3` (see [`legacy`]).
//! - [`Tokenizer::decode`] equals HF's `decode` (valid UTF-8, U+FFFD for invalid
//!   sequences); [`Tokenizer::decode_raw`] gives the bytes without repair.
//! - Ids come out exactly as HF gives them, including the chat tokens some copies of the
//!   GPT-NeoX `tokenizer.json` carry (`<|im_start|>` 50277 ... `RWKV` 50280, so `assistant`
//!   in text becomes 50279): callers must check ids against the model's embedding rows.
//! - Encoding keeps a bounded cache of merged words (BPE) or merged pairs (legacy) shared
//!   by calls; a call that finds it busy (another thread) uses a private one.
//!
//! No call panics on any input (file bytes, text bytes or ids).

pub mod bpe;
mod bytelevel;
pub mod legacy;
mod nfc;
mod nfc_gaps;
pub mod pretok;

use crate::error::{Error, Result};
use legacy::Legacy;

enum Kind {
    Legacy(Legacy),
    Bpe(Box<bpe::Bpe>),
}

/// A loaded tokenizer (legacy greedy or exact BPE). Immutable, `Send + Sync`.
pub struct Tokenizer {
    kind: Kind,
}

impl Tokenizer {
    /// Loads `tokenizer.bin` (detected by its magic) or `tokenizer.json`.
    pub fn from_file(path: &str) -> Result<Tokenizer> {
        let data = std::fs::read(path).map_err(|e| Error::io(path, &e))?;
        Self::from_bytes(&data, path)
    }

    /// Same as [`Tokenizer::from_file`] for bytes already in memory; `src` names them in
    /// error messages.
    pub fn from_bytes(data: &[u8], src: &str) -> Result<Tokenizer> {
        if data.len() >= 4
            && u32::from_le_bytes([data[0], data[1], data[2], data[3]]) == legacy::MAGIC
        {
            return Ok(Tokenizer {
                kind: Kind::Legacy(Legacy::parse(data, src)?),
            });
        }
        let first = data.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(Error::format(format!(
                "{src}: neither a tokenizer.bin (magic 0x4d62546b) nor a tokenizer.json (JSON object)"
            )));
        }
        Ok(Tokenizer {
            kind: Kind::Bpe(Box::new(bpe::Bpe::from_json(data, src)?)),
        })
    }

    /// Builds the BPE tokenizer a GGUF file carries.
    pub fn from_gguf(vocab: GgufVocab) -> Result<Tokenizer> {
        Ok(Tokenizer {
            kind: Kind::Bpe(Box::new(bpe::Bpe::from_gguf(vocab)?)),
        })
    }

    /// Whether this is the C project's greedy `tokenizer.bin` encoder.
    pub fn is_legacy(&self) -> bool {
        matches!(self.kind, Kind::Legacy(_))
    }

    /// Number of ids (one more than the largest id; BPE ids without a token are holes).
    pub fn vocab_size(&self) -> usize {
        match &self.kind {
            Kind::Legacy(l) => l.vocab_size(),
            Kind::Bpe(b) => b.vocab_size(),
        }
    }

    /// End-of-text id: `<|endoftext|>` for `tokenizer.json`, the file's value for GGUF,
    /// 0 for `tokenizer.bin` (the C project's EOS).
    pub fn eos_id(&self) -> Option<u32> {
        match &self.kind {
            Kind::Legacy(l) => (l.vocab_size() > 0).then_some(0),
            Kind::Bpe(b) => b.eos_id(),
        }
    }

    /// Beginning-of-text id: as [`Tokenizer::eos_id`] (GPT-NeoX uses `<|endoftext|>` for
    /// both; the C project defines BOS = EOS = 0), or the GGUF file's value.
    pub fn bos_id(&self) -> Option<u32> {
        match &self.kind {
            Kind::Legacy(l) => (l.vocab_size() > 0).then_some(0),
            Kind::Bpe(b) => b.bos_id(),
        }
    }

    /// Whether `id` is a special token (skipped by `decode(.., true)`): added tokens marked
    /// `special` (BPE), token 0 (legacy).
    pub fn is_special(&self, id: u32) -> bool {
        match &self.kind {
            Kind::Legacy(_) => id == 0,
            Kind::Bpe(b) => b.is_special(id),
        }
    }

    /// Encodes text into ids, without BOS/EOS. See the module docs for invalid UTF-8.
    pub fn encode(&self, text: &[u8]) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        match &self.kind {
            Kind::Legacy(l) => l.encode(text, &mut out),
            Kind::Bpe(b) => {
                let s = String::from_utf8_lossy(text);
                b.encode(&s, &mut out);
            }
        }
        Ok(out)
    }

    /// The bytes a token stands for (byte-level decoded for BPE: possibly part of a UTF-8
    /// character). `None` for an id with no token.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        match &self.kind {
            Kind::Legacy(l) => l.token_bytes(id),
            Kind::Bpe(b) => b.token_bytes(id),
        }
    }

    /// Decodes ids to text as HF `tokenizers` does: the tokens' bytes concatenated (ids
    /// with no token are left out, special ones too when `skip_special`), then made valid
    /// UTF-8 with one U+FFFD per maximal invalid subsequence. The result is always valid
    /// UTF-8 and equals HF's `decode(ids, skip_special_tokens=skip_special)`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Vec<u8> {
        let raw = self.decode_raw(ids, skip_special);
        match String::from_utf8_lossy(&raw) {
            std::borrow::Cow::Borrowed(_) => raw,
            std::borrow::Cow::Owned(s) => s.into_bytes(),
        }
    }

    /// The tokens' bytes concatenated, without any UTF-8 repair.
    pub fn decode_raw(&self, ids: &[u32], skip_special: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for &id in ids {
            if skip_special && self.is_special(id) {
                continue;
            }
            if let Some(b) = self.token_bytes(id) {
                out.extend_from_slice(b);
            }
        }
        out
    }

    /// The C project's `decode(prev_token, token)`: the token's text as a C string, minus
    /// its leading space when `prev` is token 0, `<0xHH>` pieces as the raw byte. For a BPE
    /// tokenizer, the same rule applied to [`Tokenizer::token_bytes`]. Out-of-range ids
    /// give an empty piece.
    pub fn legacy_decode_piece(&self, prev: u32, id: u32) -> &[u8] {
        match &self.kind {
            Kind::Legacy(l) => l.decode_piece(prev, id),
            Kind::Bpe(b) => {
                let p = b.token_bytes(id).unwrap_or(b"");
                let p = match p.iter().position(|&x| x == 0) {
                    Some(z) => &p[..z],
                    None => p,
                };
                if prev == 0 && p.first() == Some(&b' ') {
                    &p[1..]
                } else {
                    p
                }
            }
        }
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field(
                "kind",
                &if self.is_legacy() {
                    "legacy tokenizer.bin"
                } else {
                    "byte-level BPE"
                },
            )
            .field("vocab_size", &self.vocab_size())
            .field("eos_id", &self.eos_id())
            .finish()
    }
}

/// Incremental decoding for streaming output: [`StreamDecoder::push`] appends only
/// complete UTF-8 characters and holds back an incomplete trailing sequence until later
/// tokens complete it. Bytes that can never become valid UTF-8 are emitted as U+FFFD as
/// soon as that is certain (one per maximal invalid subsequence), and
/// [`StreamDecoder::flush`] turns a still-incomplete tail into one U+FFFD. The
/// concatenated output therefore equals `Tokenizer::decode(ids, skip_special)` for the
/// same ids (special tokens are skipped when `skip_special` is set, as in `decode`).
#[derive(Default, Clone, Debug)]
pub struct StreamDecoder {
    pending: Vec<u8>,
    skip_special: bool,
}

impl StreamDecoder {
    /// A decoder that skips special tokens (what text output wants).
    pub fn new() -> Self {
        StreamDecoder {
            pending: Vec::new(),
            skip_special: true,
        }
    }

    /// A decoder that keeps (`false`) or skips (`true`) special tokens.
    pub fn with_skip_special(skip_special: bool) -> Self {
        StreamDecoder {
            pending: Vec::new(),
            skip_special,
        }
    }

    /// Adds one token; appends to `out` every character it completes.
    pub fn push(&mut self, tok: &Tokenizer, id: u32, out: &mut Vec<u8>) {
        if self.skip_special && tok.is_special(id) {
            return;
        }
        if let Some(b) = tok.token_bytes(id) {
            self.pending.extend_from_slice(b);
        }
        self.drain(out, false);
    }

    /// Emits whatever is held back (an incomplete sequence becomes U+FFFD) and resets.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        self.drain(out, true);
        self.pending.clear();
    }

    /// Bytes held back, waiting for the rest of a character.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    fn drain(&mut self, out: &mut Vec<u8>, at_end: bool) {
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.extend_from_slice(s.as_bytes());
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    out.extend_from_slice(&self.pending[start..start + good]);
                    start += good;
                    match e.error_len() {
                        Some(n) => {
                            out.extend_from_slice("\u{fffd}".as_bytes());
                            start += n;
                        }
                        None => {
                            if at_end {
                                out.extend_from_slice("\u{fffd}".as_bytes());
                                start = self.pending.len();
                            }
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
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

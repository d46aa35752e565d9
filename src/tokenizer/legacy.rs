//! The C project's `tokenizer.bin` ("MbTk") and its greedy encoder, reproduced exactly.
//!
//! File: uint32 magic 0x4d62546b, int32 version 1, int32 vocab_size, int32
//! max_token_length, then per token int32 length and that many bytes (little-endian).
//!
//! Encoder (C `encode`), including its C-string behaviour:
//! - the text ends at its first NUL byte (the C code reads a C string);
//! - the text is cut into "code points": a byte plus the continuation bytes (`10xxxxxx`)
//!   that follow it, at most 4 bytes in all (a 5th continuation byte starts a new one);
//! - each code point is looked up as a vocabulary string; if absent, each of its bytes
//!   becomes token `byte + 3` — the C project's byte fallback, inherited from llama2.c
//!   where ids 3..258 are `<0x00>`..`<0xFF>`. In the GPT-NeoX vocabulary those ids are
//!   unrelated tokens, but they are what the C program produces, and reproducing the C
//!   program is the point of this tokenizer. A byte whose `byte + 3` is not a valid id
//!   (vocabularies under 259 tokens) is skipped;
//! - then the first adjacent pair (from the left) whose concatenated text is a
//!   vocabulary string is replaced by that token, until no pair is. This is done with a
//!   stack in linear time; it gives the same result as rescanning from the left;
//! - vocabulary strings are compared as C strings (up to their first NUL byte), and when
//!   several tokens have the same string, the id is the one glibc's `bsearch` finds in the
//!   vocabulary sorted by `qsort` with `strcmp` (stable merge sort in glibc, which is what
//!   the C program runs on Linux).

use super::bytelevel::FxHashMap;
use crate::error::{Error, Result};
use std::sync::Mutex;

pub const MAGIC: u32 = 0x4d62546b;

pub struct Legacy {
    pieces: Vec<Vec<u8>>,
    max_token_length: u32,
    /// C string -> the id `str_lookup` returns for it.
    lookup: FxHashMap<Vec<u8>, u32>,
    /// (a << 32 | b) -> merged id or `u32::MAX`, shared by calls (bounded).
    pairs: Mutex<FxHashMap<u64, u32>>,
}

const MAX_CACHED_PAIRS: usize = 1 << 20;

/// The bytes of a C string: up to the first NUL.
#[inline]
fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&x| x == 0) {
        Some(p) => &b[..p],
        None => b,
    }
}

static BYTE_PIECES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as u8;
        i += 1;
    }
    t
};

fn rd_i32(d: &[u8], off: usize) -> Option<i32> {
    d.get(off..off + 4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl Legacy {
    pub fn parse(data: &[u8], src: &str) -> Result<Legacy> {
        let err = |m: String| Error::format(format!("{src}: {m}"));
        if data.len() < 16 {
            return Err(err(format!(
                "{} bytes, too short for a tokenizer.bin header (16 bytes)",
                data.len()
            )));
        }
        let magic = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        if magic != MAGIC {
            return Err(err(format!("bad magic {magic:#x}, expected {MAGIC:#x}")));
        }
        let version = rd_i32(data, 4).unwrap_or(0);
        if version != 1 {
            return Err(err(format!(
                "unsupported tokenizer.bin version {version} (only 1)"
            )));
        }
        let vocab_size = rd_i32(data, 8).unwrap_or(-1);
        let max_token_length = rd_i32(data, 12).unwrap_or(-1);
        if vocab_size < 0 {
            return Err(err(format!("negative vocab_size {vocab_size}")));
        }
        if max_token_length < 0 {
            return Err(err(format!("negative max_token_length {max_token_length}")));
        }
        let n = vocab_size as usize;
        // Each token needs at least its 4-byte length: bound the allocation by the file.
        if n > (data.len() - 16) / 4 {
            return Err(err(format!(
                "vocab_size {n} does not fit in a file of {} bytes",
                data.len()
            )));
        }
        let mut pieces = Vec::with_capacity(n);
        let mut off = 16usize;
        for i in 0..n {
            let len = rd_i32(data, off)
                .ok_or_else(|| err(format!("truncated at token {i} of {n} (offset {off})")))?;
            off += 4;
            if len < 0 {
                return Err(err(format!("token {i} has negative length {len}")));
            }
            let len = len as usize;
            let bytes = data.get(off..off.saturating_add(len)).ok_or_else(|| {
                err(format!("token {i} of {n}: length {len} runs past the end of the file (offset {off}, file {} bytes)", data.len()))
            })?;
            pieces.push(bytes.to_vec());
            off += len;
        }
        // Emulate qsort(strcmp) (stable) + glibc bsearch for every distinct C string.
        let mut sorted: Vec<(&[u8], u32)> = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| (cstr(p), i as u32))
            .collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut lookup: FxHashMap<Vec<u8>, u32> = FxHashMap::default();
        lookup.reserve(sorted.len());
        let mut k = 0;
        while k < sorted.len() {
            let key = sorted[k].0;
            let (mut l, mut u) = (0usize, sorted.len());
            let mut found = sorted[k].1;
            while l < u {
                let idx = (l + u) / 2;
                match key.cmp(sorted[idx].0) {
                    std::cmp::Ordering::Less => u = idx,
                    std::cmp::Ordering::Greater => l = idx + 1,
                    std::cmp::Ordering::Equal => {
                        found = sorted[idx].1;
                        break;
                    }
                }
            }
            lookup.insert(key.to_vec(), found);
            while k < sorted.len() && sorted[k].0 == key {
                k += 1;
            }
        }
        Ok(Legacy {
            pieces,
            max_token_length: max_token_length as u32,
            lookup,
            pairs: Mutex::new(FxHashMap::default()),
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }
    pub fn max_token_length(&self) -> u32 {
        self.max_token_length
    }
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.pieces.get(id as usize).map(|v| v.as_slice())
    }

    /// The C project's `encode` (without BOS/EOS).
    pub fn encode(&self, text: &[u8], out: &mut Vec<u32>) {
        let text = cstr(text);
        let n = text.len();
        let vocab = self.pieces.len();
        let mut stack: Vec<u32> = Vec::with_capacity(n);
        let mut local;
        let mut guard = self.pairs.try_lock().ok();
        let pair_cache: &mut FxHashMap<u64, u32> = match guard.as_deref_mut() {
            Some(c) => c,
            None => {
                local = FxHashMap::default();
                &mut local
            }
        };
        if pair_cache.len() > MAX_CACHED_PAIRS {
            pair_cache.clear();
        }
        let mut buf: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < n {
            let mut len = 1;
            while i + len < n && (text[i + len] & 0xC0) == 0x80 && len < 4 {
                len += 1;
            }
            let chunk = &text[i..i + len];
            i += len;
            if let Some(&id) = self.lookup.get(chunk) {
                self.push_merge(&mut stack, id, pair_cache, &mut buf);
            } else {
                for &b in chunk {
                    let id = b as usize + 3;
                    if id < vocab {
                        self.push_merge(&mut stack, id as u32, pair_cache, &mut buf);
                    }
                }
            }
        }
        out.extend_from_slice(&stack);
    }

    /// Pushes a token and merges leftwards while the top two tokens form a vocabulary string.
    #[inline]
    fn push_merge(
        &self,
        stack: &mut Vec<u32>,
        id: u32,
        cache: &mut FxHashMap<u64, u32>,
        buf: &mut Vec<u8>,
    ) {
        stack.push(id);
        while stack.len() >= 2 {
            let a = stack[stack.len() - 2];
            let b = stack[stack.len() - 1];
            let key = ((a as u64) << 32) | b as u64;
            let m = match cache.get(&key) {
                Some(&m) => m,
                None => {
                    buf.clear();
                    buf.extend_from_slice(cstr(&self.pieces[a as usize]));
                    buf.extend_from_slice(cstr(&self.pieces[b as usize]));
                    let m = self.lookup.get(buf.as_slice()).copied().unwrap_or(u32::MAX);
                    cache.insert(key, m);
                    m
                }
            };
            if m == u32::MAX {
                break;
            }
            stack.pop();
            if let Some(t) = stack.last_mut() {
                *t = m;
            }
        }
    }

    /// The C project's `decode(prev_token, token)`: the token's C string, without its
    /// leading space right after token 0, and `<0xHH>` pieces turned into that byte.
    /// (The C code parses with `sscanf("<0x%02hhX>")`: here "<0x" followed by one or two
    /// hex digits.) An out-of-range id gives an empty piece.
    pub fn decode_piece(&self, prev: u32, id: u32) -> &[u8] {
        let Some(p) = self.pieces.get(id as usize) else {
            return b"";
        };
        let mut piece = cstr(p);
        if prev == 0 && piece.first() == Some(&b' ') {
            piece = &piece[1..];
        }
        if piece.len() >= 4 && piece.starts_with(b"<0x") {
            let hex = |c: u8| (c as char).to_digit(16);
            if let Some(h) = hex(piece[3]) {
                let v = match piece.get(4).and_then(|&c| hex(c)) {
                    Some(l) => h * 16 + l,
                    None => h,
                };
                let v = v as usize;
                return &BYTE_PIECES[v..v + 1];
            }
        }
        piece
    }
}

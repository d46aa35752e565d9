//! GPT-2's byte <-> "printable char" mapping (`bytes_to_unicode`) and a small fast hasher.

use std::hash::{BuildHasherDefault, Hasher};

/// `BYTE_CHAR[b]` is the char that stands for byte `b` in byte-level token strings.
pub fn byte_to_char_table() -> [char; 256] {
    let mut t = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
        t[b as usize] = if printable {
            char::from_u32(b).unwrap_or('\0')
        } else {
            let c = char::from_u32(256 + n).unwrap_or('\0');
            n += 1;
            c
        };
    }
    t
}

/// A table from chars below U+0144 to bytes (255 entries of the inverse, `None` elsewhere).
pub fn inverse_table(table: &[char; 256]) -> Vec<Option<u8>> {
    let mut inv = vec![None; 0x144];
    for (b, &c) in table.iter().enumerate() {
        inv[c as usize] = Some(b as u8);
    }
    inv
}

/// Decodes one token string the way HF's ByteLevel decoder does: if every char is a
/// byte-level char, the bytes they stand for; otherwise the string's own UTF-8 bytes
/// (added tokens such as runs of real spaces).
pub fn decode_token_string(s: &str, inv: &[Option<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match inv.get(c as usize).copied().flatten() {
            Some(b) => out.push(b),
            None => return s.as_bytes().to_vec(),
        }
    }
    out
}

/// FxHash (rustc's hasher): fast, not DoS-resistant; fine for vocab tables built from a
/// file and for per-call caches.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = (self.hash.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            self.add(u64::from_le_bytes(a));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut a = [0u8; 8];
            a[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(a) ^ ((rest.len() as u64) << 56));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // The multiply only carries low input bits upwards; hashbrown indexes buckets with
        // the low bits, so fold the high half in (else (a << 32 | b) keys collide on b).
        self.hash ^ (self.hash >> 29)
    }
}

pub type FxBuild = BuildHasherDefault<FxHasher>;
pub type FxHashMap<K, V> = std::collections::HashMap<K, V, FxBuild>;

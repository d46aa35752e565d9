//! Helper for py/gen_tokenizer_fixtures.py: lists every code point that the
//! `unicode-normalization` crate gives a non-zero canonical combining class or a canonical
//! decomposition, as `hex_cp ccc hex-decomposition` lines. The generator checks each
//! against HF `tokenizers` (whose normalization tables are older) and writes
//! src/tokenizer/nfc_gaps.rs.

use unicode_normalization::char::{canonical_combining_class, decompose_canonical};

fn main() {
    for cp in 0..0x110000u32 {
        let Some(c) = char::from_u32(cp) else {
            continue;
        };
        let mut d = Vec::new();
        decompose_canonical(c, |x| d.push(x));
        let ccc = canonical_combining_class(c);
        if ccc != 0 || d != [c] {
            let dec: Vec<String> = d.iter().map(|x| format!("{:x}", *x as u32)).collect();
            println!("{:x} {} {}", cp, ccc, dec.join("-"));
        }
    }
}

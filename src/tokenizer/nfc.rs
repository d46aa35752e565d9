//! NFC as HF `tokenizers` computes it.
//!
//! HF normalizes with the `unicode-normalization-alignments` crate, whose Unicode tables
//! are older (about Unicode 9) than those of the `unicode-normalization` crate used here.
//! By Unicode's normalization stability policy the two differ only on code points added
//! in between: HF treats those as unassigned (combining class 0, no decomposition, never
//! composed). [`nfc`] is the standard algorithm (canonical decomposition, canonical
//! ordering, canonical composition) with exactly that treatment for the code points in
//! [`HF_NFC_GAPS`](super::nfc_gaps::HF_NFC_GAPS), which the fixture generator finds by
//! probing HF.

use super::nfc_gaps::HF_NFC_GAPS;
use unicode_normalization::char::{canonical_combining_class, compose, decompose_canonical};
use unicode_normalization::{is_nfc_quick, IsNormalized};

/// Whether HF's tables lack normalization data for `c`.
#[inline]
fn inert(c: char) -> bool {
    let u = c as u32;
    if u < HF_NFC_GAPS[0].0 {
        return false;
    }
    HF_NFC_GAPS
        .binary_search_by(|&(a, b)| {
            if b < u {
                std::cmp::Ordering::Less
            } else if a > u {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Whether `s` is certainly left unchanged by [`nfc`] (ASCII, or NFC by the quick check:
/// HF's older tables can only do less than the current ones).
#[inline]
pub fn is_quick_nfc(s: &str) -> bool {
    s.is_ascii() || is_nfc_quick(s.chars()) == IsNormalized::Yes
}

/// NFC of `s` as HF computes it.
pub fn nfc(s: &str) -> String {
    // 1. canonical decomposition
    let mut buf: Vec<(char, u8)> = Vec::with_capacity(s.len());
    for c in s.chars() {
        if inert(c) {
            buf.push((c, 0));
        } else {
            decompose_canonical(c, |d| {
                let cc = if inert(d) {
                    0
                } else {
                    canonical_combining_class(d)
                };
                buf.push((d, cc));
            });
        }
    }
    // 2. canonical ordering: stable sort of each run of non-starters by class
    let mut i = 0;
    while i < buf.len() {
        if buf[i].1 == 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i < buf.len() && buf[i].1 != 0 {
            i += 1;
        }
        buf[start..i].sort_by_key(|x| x.1);
    }
    // 3. canonical composition
    let mut out: Vec<char> = Vec::with_capacity(buf.len());
    let mut starter: Option<usize> = None;
    let mut last_cc: Option<u8> = None; // class of the last char kept after the starter
    for (c, cc) in buf {
        if let Some(si) = starter {
            let unblocked = match last_cc {
                None => true,
                Some(l) => l < cc,
            };
            if unblocked && !inert(c) && !inert(out[si]) {
                if let Some(r) = compose(out[si], c) {
                    if !inert(r) {
                        out[si] = r;
                        continue;
                    }
                }
            }
        }
        if cc == 0 {
            starter = Some(out.len());
            last_cc = None;
        } else if starter.is_some() {
            last_cc = Some(cc);
        }
        out.push(c);
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_normalization::UnicodeNormalization;

    #[test]
    fn matches_crate_outside_gaps() {
        for s in [
            "e\u{301}",
            "A\u{30a}\u{301}",
            "\u{1100}\u{1161}\u{11a8}",
            "a\u{316}\u{301}\u{302}",
            "\u{212b}",
            "\u{1e0a}\u{323}",
        ] {
            assert_eq!(nfc(s), s.nfc().collect::<String>(), "{s:?}");
        }
        // U+08D2 (Unicode 14) is a plain starter for HF: no reordering across it
        assert_eq!(nfc("a\u{8d2}\u{311}"), "a\u{8d2}\u{311}");
    }
}

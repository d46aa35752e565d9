//! The GPT-2 / GPT-NeoX pre-tokenizer split, written by hand (no regex engine).
//!
//! It reproduces the HF `ByteLevel` pre-tokenizer's regex
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//! with the leftmost-alternative semantics of a backtracking engine (Oniguruma in HF):
//! at each position the first alternative that matches wins, quantifiers are greedy.
//! `\s` is the Unicode `White_Space` property, `\p{L}` / `\p{N}` the letter / number
//! general categories.

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// Character class as the split regex sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Class {
    Letter,
    Number,
    Space,
    Other,
}

/// Unicode `White_Space` (what `\s` matches in Oniguruma's Unicode mode).
#[inline]
pub fn is_white_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{d}'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

const fn ascii_table() -> [Class; 128] {
    let mut t = [Class::Other; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        t[i] = if b.is_ascii_alphabetic() {
            Class::Letter
        } else if b.is_ascii_digit() {
            Class::Number
        } else if (b >= 9 && b <= 13) || b == b' ' {
            Class::Space
        } else {
            Class::Other
        };
        i += 1;
    }
    t
}
static ASCII: [Class; 128] = ascii_table();

/// The class of one character.
#[inline]
pub fn class_of(c: char) -> Class {
    if (c as u32) < 128 {
        return ASCII[c as usize];
    }
    if is_white_space(c) {
        return Class::Space;
    }
    match get_general_category(c) {
        G::UppercaseLetter
        | G::LowercaseLetter
        | G::TitlecaseLetter
        | G::ModifierLetter
        | G::OtherLetter => Class::Letter,
        G::DecimalNumber | G::LetterNumber | G::OtherNumber => Class::Number,
        _ => Class::Other,
    }
}

/// Decodes the char starting at byte `i` of `s` (which must be a char boundary).
#[inline]
fn char_at(s: &str, i: usize) -> (char, usize) {
    let b = s.as_bytes()[i];
    if b < 128 {
        return (b as char, 1);
    }
    // SAFETY-free: slicing at a char boundary, s is valid UTF-8.
    let c = s[i..].chars().next().unwrap_or('\u{fffd}');
    (c, c.len_utf8())
}

/// Splits `s` into pieces exactly as the GPT-2 regex does; calls `f(start, end)` for each
/// piece (byte offsets), in order. The pieces cover `s`.
pub fn split(s: &str, mut f: impl FnMut(usize, usize)) {
    let bytes = s.as_bytes();
    let n = bytes.len();
    let mut i = 0;
    // Class and length of the char at `i`, computed lazily.
    while i < n {
        let (c, clen) = char_at(s, i);
        // 1. contractions
        if c == '\'' && i + 1 < n {
            let b1 = bytes[i + 1];
            let take = match b1 {
                b's' | b't' | b'm' | b'd' => 2,
                b'r' | b'v' if i + 2 < n && bytes[i + 2] == b'e' => 3,
                b'l' if i + 2 < n && bytes[i + 2] == b'l' => 3,
                _ => 0,
            };
            if take > 0 {
                f(i, i + take);
                i += take;
                continue;
            }
        }
        let cls = class_of(c);
        // 2-4: ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
        let (run_class, run_start) = if c == ' ' && i + 1 < n {
            let (c2, _) = char_at(s, i + 1);
            let cls2 = class_of(c2);
            if cls2 != Class::Space {
                (cls2, i + 1)
            } else {
                (Class::Space, i)
            }
        } else {
            (cls, i)
        };
        if run_class != Class::Space {
            let mut j = run_start;
            while j < n {
                let (cj, lj) = char_at(s, j);
                if class_of(cj) != run_class {
                    break;
                }
                j += lj;
            }
            f(i, j);
            i = j;
            continue;
        }
        // 5-6: `\s+(?!\S)` then `\s+`. Here the char at i is white space.
        let mut j = i;
        let mut last_len = clen;
        while j < n {
            let (cj, lj) = char_at(s, j);
            if class_of(cj) != Class::Space {
                break;
            }
            last_len = lj;
            j += lj;
        }
        let end = if j == n || j - i == last_len {
            j
        } else {
            j - last_len
        };
        f(i, end);
        i = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(s: &str) -> Vec<&str> {
        let mut v = vec![];
        split(s, |a, b| v.push(&s[a..b]));
        v
    }

    #[test]
    fn basic_split() {
        assert_eq!(pieces("Hello world"), ["Hello", " world"]);
        assert_eq!(pieces("a  b"), ["a", " ", " b"]);
        assert_eq!(pieces("a \tb"), ["a", " ", "\t", "b"]);
        assert_eq!(pieces("I'm ok  "), ["I", "'m", " ok", "  "]);
        assert_eq!(pieces("x''s"), ["x", "''", "s"]);
        assert_eq!(pieces("12ab!!"), ["12", "ab", "!!"]);
        assert_eq!(pieces(" "), [" "]);
        assert_eq!(pieces("a\n\nb"), ["a", "\n", "\n", "b"]);
    }
}

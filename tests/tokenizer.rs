//! Tokenizer parity tests against committed HF `tokenizers` references
//! (tests/fixtures/tokenizer, written by py/gen_tokenizer_fixtures.py) and the shared data
//! in ../shared/data.

mod common;
use common::Rng;
use mamba::tokenizer::{pretok, GgufVocab, StreamDecoder, Tokenizer};
use std::path::PathBuf;
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
fn data(p: &str) -> PathBuf {
    root().parent().unwrap().join("shared/data").join(p)
}
fn fixture(p: &str) -> Vec<u8> {
    let path = root().join("tests/fixtures/tokenizer").join(p);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
fn json_path() -> String {
    data("tokenizer/gpt-neox-20b.json")
        .to_string_lossy()
        .into_owned()
}

fn bpe() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::from_file(&json_path()).expect("load tokenizer.json"))
}

/// The tokenizer.bin that py/tokenizer.py writes (50277 tokens), built from the BPE
/// tokenizer's token bytes.
fn legacy_bin_bytes() -> Vec<u8> {
    let t = bpe();
    let n = 50277u32;
    let toks: Vec<&[u8]> = (0..n).map(|i| t.token_bytes(i).unwrap_or(b"")).collect();
    let max = toks.iter().map(|t| t.len()).max().unwrap_or(0);
    let mut out = Vec::new();
    out.extend_from_slice(&0x4d62546bu32.to_le_bytes());
    out.extend_from_slice(&1i32.to_le_bytes());
    out.extend_from_slice(&(n as i32).to_le_bytes());
    out.extend_from_slice(&(max as i32).to_le_bytes());
    for t in toks {
        out.extend_from_slice(&(t.len() as i32).to_le_bytes());
        out.extend_from_slice(t);
    }
    out
}

fn legacy() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        Tokenizer::from_bytes(&legacy_bin_bytes(), "tokenizer.bin").expect("load tokenizer.bin")
    })
}

struct Reader<'a> {
    d: &'a [u8],
    off: usize,
}
impl<'a> Reader<'a> {
    fn new(d: &'a [u8]) -> Self {
        Reader { d, off: 0 }
    }
    fn done(&self) -> bool {
        self.off >= self.d.len()
    }
    fn u32(&mut self) -> u32 {
        let v = u32::from_le_bytes(self.d[self.off..self.off + 4].try_into().unwrap());
        self.off += 4;
        v
    }
    fn bytes(&mut self) -> &'a [u8] {
        let n = self.u32() as usize;
        let b = &self.d[self.off..self.off + n];
        self.off += n;
        b
    }
    fn ids(&mut self) -> Vec<u32> {
        let n = self.u32() as usize;
        (0..n).map(|_| self.u32()).collect()
    }
}

fn fnv32(ids: &[u32]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for id in ids {
        for b in id.to_le_bytes() {
            h = (h ^ b as u32).wrapping_mul(0x01000193);
        }
    }
    h
}

fn shakespeare() -> Vec<u8> {
    std::fs::read(data("text/tinyshakespeare.txt")).expect("tinyshakespeare.txt")
}

#[test]
fn bpe_basics() {
    let t = bpe();
    assert!(!t.is_legacy());
    assert_eq!(t.vocab_size(), 50281);
    assert_eq!(t.eos_id(), Some(0));
    assert_eq!(t.bos_id(), Some(0));
    assert!(t.is_special(0) && t.is_special(1) && !t.is_special(50254) && !t.is_special(100));
    assert_eq!(t.token_bytes(0), Some(&b"<|endoftext|>"[..]));
    assert_eq!(t.token_bytes(50276), Some(&b"  "[..]));
    assert_eq!(t.encode(b"Hello world").unwrap(), vec![12092, 1533]);
    assert_eq!(t.encode(b"").unwrap(), Vec::<u32>::new());
}

#[test]
fn bpe_shakespeare_whole_file() {
    let want: Vec<u32> = fixture("shakespeare_ids.u16")
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
        .collect();
    let got = bpe().encode(&shakespeare()).unwrap();
    if got != want {
        let i = got
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "first difference at id {i}: got {:?} want {:?}",
            &got[i..(i + 10).min(got.len())],
            &want[i..(i + 10).min(want.len())]
        );
    }
}

#[test]
fn bpe_shakespeare_lines() {
    let text = shakespeare();
    let fx = fixture("shakespeare_lines.bin");
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    assert_eq!(lines.len() * 6, fx.len());
    for (i, line) in lines.iter().enumerate() {
        let rec = &fx[i * 6..i * 6 + 6];
        let n = u16::from_le_bytes([rec[0], rec[1]]) as usize;
        let h = u32::from_le_bytes([rec[2], rec[3], rec[4], rec[5]]);
        let got = bpe().encode(line).unwrap();
        assert!(
            got.len() == n && fnv32(&got) == h,
            "line {}: {:?} -> {:?}",
            i + 1,
            String::from_utf8_lossy(line),
            got
        );
    }
}

#[test]
fn bpe_stress_corpus() {
    let fx = fixture("stress.bin");
    let mut r = Reader::new(&fx);
    let mut n = 0;
    let mut bad = Vec::new();
    while !r.done() {
        let text = r.bytes();
        let want = r.ids();
        let got = bpe().encode(text).unwrap();
        if got != want {
            bad.push(format!(
                "{:?}\n  got  {:?}\n  want {:?}",
                String::from_utf8_lossy(text),
                got,
                want
            ));
        }
        n += 1;
    }
    assert!(n > 1000);
    assert!(
        bad.is_empty(),
        "{} of {n} differ:\n{}",
        bad.len(),
        bad.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn bpe_decode_matches_hf() {
    let fx = fixture("decode.bin");
    let mut r = Reader::new(&fx);
    let mut n = 0;
    while !r.done() {
        let ids = r.ids();
        let keep = r.bytes();
        let skip = r.bytes();
        let t = bpe();
        assert_eq!(t.decode(&ids, false), keep, "decode {ids:?}");
        assert_eq!(t.decode(&ids, true), skip, "decode skip {ids:?}");
        // streaming equals full decode
        for skip_special in [false, true] {
            let mut sd = StreamDecoder::with_skip_special(skip_special);
            let mut out = Vec::new();
            for &id in &ids {
                let before = out.len();
                sd.push(t, id, &mut out);
                assert!(
                    std::str::from_utf8(&out[before..]).is_ok(),
                    "stream emitted invalid UTF-8"
                );
            }
            sd.flush(&mut out);
            assert_eq!(out, t.decode(&ids, skip_special), "stream {ids:?}");
        }
        n += 1;
    }
    assert!(n > 500);
}

#[test]
fn stream_decoder_holds_back_partial_chars() {
    let t = bpe();
    let ids = t.encode("日本語 😀".as_bytes()).unwrap();
    let mut sd = StreamDecoder::new();
    let mut out = Vec::new();
    for &id in &ids {
        sd.push(t, id, &mut out);
        assert!(std::str::from_utf8(&out).is_ok());
    }
    sd.flush(&mut out);
    assert_eq!(out, "日本語 😀".as_bytes());
    // an incomplete tail becomes one U+FFFD at flush
    let mut sd = StreamDecoder::new();
    let mut out = Vec::new();
    let e4 = (0..t.vocab_size() as u32)
        .find(|&i| t.token_bytes(i) == Some(&[0xe4][..]))
        .unwrap();
    sd.push(t, e4, &mut out);
    assert!(out.is_empty() && sd.pending() == [0xe4]);
    sd.flush(&mut out);
    assert_eq!(out, "\u{fffd}".as_bytes());
}

#[test]
fn bpe_invalid_utf8_is_replaced() {
    let t = bpe();
    let bad = b"ab\xffcd\xe4\xb8 x\x80";
    let lossy = String::from_utf8_lossy(bad).into_owned();
    assert_eq!(t.encode(bad).unwrap(), t.encode(lossy.as_bytes()).unwrap());
}

#[test]
fn unicode_classes_match_hf() {
    let fx = fixture("unicode_classes.txt");
    let text = std::str::from_utf8(&fx).unwrap();
    let mut bad = Vec::new();
    for line in text.lines() {
        let mut it = line.split(' ');
        let a = u32::from_str_radix(it.next().unwrap(), 16).unwrap();
        let b = u32::from_str_radix(it.next().unwrap(), 16).unwrap();
        let want = match it.next().unwrap() {
            "L" => pretok::Class::Letter,
            "N" => pretok::Class::Number,
            "S" => pretok::Class::Space,
            _ => pretok::Class::Other,
        };
        for cp in a..=b {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            if pretok::class_of(c) != want {
                bad.push(format!(
                    "U+{cp:04X} {:?} want {want:?}",
                    pretok::class_of(c)
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} code points differ: {:?}",
        bad.len(),
        &bad[..bad.len().min(20)]
    );
}

#[test]
fn from_gguf_matches_json() {
    // Rebuild the GGUF arrays as llama.cpp's converter writes them.
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(json_path()).unwrap()).unwrap();
    let vocab = j["model"]["vocab"].as_object().unwrap();
    let n = 50280usize;
    let mut tokens: Vec<String> = (0..n).map(|i| format!("[PAD{i}]")).collect();
    let mut types = vec![5i32; n];
    for (s, id) in vocab {
        tokens[id.as_u64().unwrap() as usize] = s.clone();
        types[id.as_u64().unwrap() as usize] = 1;
    }
    for t in j["added_tokens"].as_array().unwrap() {
        let id = t["id"].as_u64().unwrap() as usize;
        if id < n {
            tokens[id] = t["content"].as_str().unwrap().to_string();
            types[id] = if t["special"].as_bool().unwrap() {
                3
            } else {
                4
            };
        }
    }
    let merges = j["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let g = Tokenizer::from_gguf(GgufVocab {
        model: "gpt2".into(),
        tokens,
        token_types: types,
        merges,
        bos_id: Some(0),
        eos_id: Some(0),
    })
    .unwrap();
    assert_eq!(g.vocab_size(), n);
    let fx = fixture("stress.bin");
    let mut r = Reader::new(&fx);
    while !r.done() {
        let text = r.bytes();
        let want = r.ids();
        // 50280 ("RWKV") is not in this GGUF vocabulary: skip texts whose ids use it.
        if want.contains(&50280) {
            continue;
        }
        assert_eq!(
            g.encode(text).unwrap(),
            want,
            "{:?}",
            String::from_utf8_lossy(text)
        );
    }
    for id in 0..n as u32 {
        assert_eq!(g.token_bytes(id), bpe().token_bytes(id), "token {id}");
    }
    let text = shakespeare();
    assert_eq!(
        g.encode(&text[..100_000]).unwrap(),
        bpe().encode(&text[..100_000]).unwrap()
    );
}

#[test]
fn legacy_file_matches_python_exporter() {
    // FNV-1a-64 and size of the tokenizer.bin py/tokenizer.py writes.
    let fx = String::from_utf8(fixture("legacy_bin.fnv")).unwrap();
    let mut it = fx.split_whitespace();
    let want_hash = u64::from_str_radix(it.next().unwrap(), 16).unwrap();
    let want_len: usize = it.next().unwrap().parse().unwrap();
    let b = legacy_bin_bytes();
    let mut h: u64 = 0xcbf29ce484222325;
    for &x in &b {
        h = (h ^ x as u64).wrapping_mul(0x100000001b3);
    }
    assert_eq!((h, b.len()), (want_hash, want_len));
}

#[test]
fn legacy_matches_c_algorithm() {
    let t = legacy();
    assert!(t.is_legacy());
    assert_eq!(t.vocab_size(), 50277);
    let fx = fixture("legacy.bin");
    let mut r = Reader::new(&fx);
    let mut n = 0;
    while !r.done() {
        let text = r.bytes();
        let want = r.ids();
        assert_eq!(
            t.encode(text).unwrap(),
            want,
            "{:?}",
            String::from_utf8_lossy(text)
        );
        n += 1;
    }
    assert!(n > 800);
}

#[test]
fn legacy_whole_shakespeare_is_linear_and_roundtrips() {
    let t = legacy();
    let text = shakespeare();
    let ids = t.encode(&text).unwrap();
    assert!(ids.len() < text.len() / 2);
    assert_eq!(t.decode_raw(&ids, false), text);
}

#[test]
fn legacy_decode_piece() {
    let t = legacy();
    let ids = t.encode(b"Customer Support should").unwrap();
    let sp = *ids
        .iter()
        .find(|&&i| t.token_bytes(i).unwrap().starts_with(b" "))
        .unwrap();
    let piece = t.token_bytes(sp).unwrap();
    assert_eq!(t.legacy_decode_piece(5, sp), piece);
    assert_eq!(t.legacy_decode_piece(0, sp), &piece[1..]);
    assert_eq!(t.decode_raw(&ids, false), b"Customer Support should");
    assert_eq!(t.legacy_decode_piece(0, 999_999), b"");
    // `<0xHH>` pieces become the byte (a llama2.c-style vocabulary)
    let mut f = Vec::new();
    f.extend_from_slice(&0x4d62546bu32.to_le_bytes());
    f.extend_from_slice(&1i32.to_le_bytes());
    f.extend_from_slice(&2i32.to_le_bytes());
    f.extend_from_slice(&6i32.to_le_bytes());
    for p in [&b"<unk>"[..], b"<0x41>"] {
        f.extend_from_slice(&(p.len() as i32).to_le_bytes());
        f.extend_from_slice(p);
    }
    let small = Tokenizer::from_bytes(&f, "small.bin").unwrap();
    assert_eq!(small.legacy_decode_piece(1, 1), b"A");
    // byte fallback beyond the vocabulary is skipped, never panics
    assert_eq!(
        small.encode("\u{1234}x".as_bytes()).unwrap(),
        Vec::<u32>::new()
    );
    assert_eq!(small.bos_id(), Some(0));
    assert!(small.is_special(0));
}

#[test]
fn legacy_hostile_files_are_errors() {
    let good = legacy_bin_bytes();
    // every truncation inside the token table, and the header
    for cut in [
        0usize,
        3,
        4,
        15,
        16,
        17,
        19,
        20,
        21,
        100,
        good.len() / 2,
        good.len() - 1,
    ] {
        let r = Tokenizer::from_bytes(&good[..cut], "t.bin");
        assert!(r.is_err(), "truncated at {cut} accepted");
        let msg = r.err().unwrap().message;
        assert!(msg.contains("t.bin"), "{msg}");
    }
    let header = |v: i32, n: i32, m: i32| {
        let mut f = Vec::new();
        f.extend_from_slice(&0x4d62546bu32.to_le_bytes());
        f.extend_from_slice(&v.to_le_bytes());
        f.extend_from_slice(&n.to_le_bytes());
        f.extend_from_slice(&m.to_le_bytes());
        f
    };
    assert!(Tokenizer::from_bytes(&header(2, 1, 1), "x").is_err());
    assert!(Tokenizer::from_bytes(&header(1, i32::MAX, 1), "x").is_err());
    assert!(Tokenizer::from_bytes(&header(1, -1, 1), "x").is_err());
    assert!(Tokenizer::from_bytes(&header(1, 0, -5), "x").is_err());
    let mut f = header(1, 1, 1);
    f.extend_from_slice(&i32::MAX.to_le_bytes());
    assert!(Tokenizer::from_bytes(&f, "x").is_err());
    let mut f = header(1, 1, 1);
    f.extend_from_slice(&(-3i32).to_le_bytes());
    assert!(Tokenizer::from_bytes(&f, "x").is_err());
    // empty vocabulary: valid, encodes to nothing
    let e = Tokenizer::from_bytes(&header(1, 0, 0), "x").unwrap();
    assert_eq!(e.encode(b"hello").unwrap(), Vec::<u32>::new());
    assert_eq!(e.eos_id(), None);
    // garbage and broken JSON
    assert!(Tokenizer::from_bytes(b"\x00\x01\x02\x03garbage", "g").is_err());
    assert!(Tokenizer::from_bytes(b"{\"model\": 3}", "g").is_err());
    assert!(Tokenizer::from_bytes(b"{", "g").is_err());
    assert!(Tokenizer::from_file("/nonexistent/tokenizer.bin").is_err());
}

#[test]
fn bpe_hostile_json_is_error() {
    let cases: [&[u8]; 6] = [
        br#"{"model":{"type":"BPE","vocab":{"a":4294967295},"merges":[]},"pre_tokenizer":{"type":"ByteLevel"}}"#,
        br#"{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]},"pre_tokenizer":{"type":"ByteLevel"}}"#,
        br#"{"model":{"type":"BPE","vocab":{"a":0},"merges":["a"]},"pre_tokenizer":{"type":"ByteLevel"}}"#,
        br#"{"model":{"type":"WordPiece","vocab":{}}}"#,
        br#"{"model":{"type":"BPE","vocab":{"a":10000000},"merges":[]},"pre_tokenizer":{"type":"ByteLevel"}}"#,
        br#"{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"added_tokens":[{"id":99999999,"content":"x"}],"pre_tokenizer":{"type":"ByteLevel"}}"#,
    ];
    for c in cases {
        assert!(
            Tokenizer::from_bytes(c, "h.json").is_err(),
            "{}",
            String::from_utf8_lossy(c)
        );
    }
    // A tiny valid vocabulary without byte symbols: unknown bytes are dropped, no panic.
    let t = Tokenizer::from_bytes(br#"{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false}}"#, "t").unwrap();
    assert_eq!(t.encode(b"ab xab\xff").unwrap(), vec![2, 2]);
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let alphabet: [&[u8]; 12] = [
        b" ",
        b"  ",
        b"\n",
        b"'s",
        b"a",
        b"\xe4\xb8\xad",
        b"\xf0\x9f\x98\x80",
        b"\x80",
        b"\xff",
        b"\xcc\x81",
        b"<|endoftext|>",
        b"\x00",
    ];
    for round in 0..400 {
        let len = rng.below(200);
        let mut s = Vec::new();
        for _ in 0..len {
            if round % 2 == 0 {
                s.push(rng.next() as u8);
            } else {
                s.extend_from_slice(alphabet[rng.below(alphabet.len())]);
            }
        }
        for t in [bpe(), legacy()] {
            let ids = t.encode(&s).unwrap();
            let full = t.decode(&ids, false);
            assert!(std::str::from_utf8(&full).is_ok());
            let mut sd = StreamDecoder::with_skip_special(false);
            let mut out = Vec::new();
            for &id in &ids {
                sd.push(t, id, &mut out);
            }
            sd.flush(&mut out);
            assert_eq!(out, full);
        }
        // BPE round-trips valid UTF-8 exactly
        if let Ok(text) = std::str::from_utf8(&s) {
            let ids = bpe().encode(&s).unwrap();
            let nfc: String = unicode_nfc(text);
            assert_eq!(bpe().decode(&ids, false), nfc.as_bytes());
        }
    }
    // random ids, including out of range, decode without panicking
    for _ in 0..200 {
        let ids: Vec<u32> = (0..rng.below(50))
            .map(|_| rng.below(60000) as u32)
            .collect();
        for t in [bpe(), legacy()] {
            let _ = t.decode(&ids, true);
            for w in ids.windows(2) {
                let _ = t.legacy_decode_piece(w[0], w[1]);
            }
        }
    }
}

fn unicode_nfc(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfc().collect()
}

#[test]
fn mutated_tokenizer_bin_never_panics() {
    // a small valid file: the first 300 tokens
    let mut good = Vec::new();
    good.extend_from_slice(&0x4d62546bu32.to_le_bytes());
    good.extend_from_slice(&1i32.to_le_bytes());
    good.extend_from_slice(&300i32.to_le_bytes());
    good.extend_from_slice(&16i32.to_le_bytes());
    for i in 0..300 {
        let t = bpe().token_bytes(i).unwrap();
        good.extend_from_slice(&(t.len() as i32).to_le_bytes());
        good.extend_from_slice(t);
    }
    assert!(Tokenizer::from_bytes(&good, "m.bin").is_ok());
    let mut rng = Rng(12345);
    let mut accepted = 0;
    for _ in 0..500 {
        let mut f = good.clone();
        for _ in 0..1 + rng.below(4) {
            let i = if rng.below(2) == 0 {
                rng.below(64)
            } else {
                rng.below(f.len())
            };
            f[i] = rng.next() as u8;
        }
        if rng.below(4) == 0 {
            f.truncate(rng.below(f.len()));
        }
        if let Ok(t) = Tokenizer::from_bytes(&f, "m.bin") {
            accepted += 1;
            let ids = t.encode(b"hello world \xe4\xb8\xad the").unwrap();
            assert!(ids.iter().all(|&i| (i as usize) < t.vocab_size()));
            let _ = t.decode(&ids, false);
        }
    }
    assert!(accepted > 10 && accepted < 500, "{accepted}");
}

#[test]
fn gguf_hostile_vocab_is_error() {
    let v = |model: &str, tokens: Vec<&str>, types: Vec<i32>, merges: Vec<&str>| GgufVocab {
        model: model.into(),
        tokens: tokens.into_iter().map(String::from).collect(),
        token_types: types,
        merges: merges.into_iter().map(String::from).collect(),
        bos_id: None,
        eos_id: None,
    };
    assert!(Tokenizer::from_gguf(v("llama", vec!["a"], vec![1], vec![])).is_err());
    assert!(Tokenizer::from_gguf(v("gpt2", vec!["a", "b"], vec![1], vec![])).is_err());
    assert!(Tokenizer::from_gguf(v("gpt2", vec!["a", "b"], vec![1, 1], vec!["a b"])).is_err());
    assert!(Tokenizer::from_gguf(v("gpt2", vec!["a", "b"], vec![1, 1], vec!["ab"])).is_err());
    let t = Tokenizer::from_gguf(v(
        "gpt2",
        vec!["a", "b", "ab", "<s>", "[PAD4]"],
        vec![1, 1, 1, 3, 5],
        vec!["a b"],
    ))
    .unwrap();
    assert_eq!(t.encode(b"ab<s>ba").unwrap(), vec![2, 3, 1, 0]);
    assert!(t.is_special(3) && !t.is_special(4));
    assert_eq!(t.decode(&[2, 3, 4], true), b"ab[PAD4]");
    assert_eq!(t.eos_id(), None);
}

#[test]
fn tokenizer_is_send_sync_and_threads_agree() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
    let text = shakespeare();
    let want = bpe().encode(&text[..200_000]).unwrap();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| bpe().encode(&text[..200_000]).unwrap()))
            .collect();
        for h in hs {
            assert_eq!(h.join().unwrap(), want);
        }
    });
}

/// HF's added-token flags (lstrip, rstrip, single_word, normalized), which the GPT-NeoX
/// file does not use: the same entries as FLAG_TOKENS in py/gen_tokenizer_fixtures.py.
#[test]
fn added_token_flags_match_hf() {
    let mut j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(json_path()).unwrap()).unwrap();
    let flags = serde_json::json!([
        {"id": 50281, "content": "<mask>", "single_word": false, "lstrip": true, "rstrip": false, "normalized": false, "special": true},
        {"id": 50282, "content": "[SEP]", "single_word": false, "lstrip": false, "rstrip": true, "normalized": false, "special": true},
        {"id": 50283, "content": "word", "single_word": true, "lstrip": false, "rstrip": false, "normalized": true, "special": false},
        {"id": 50284, "content": "\u{c5}ngstr\u{f6}m", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false},
        {"id": 50285, "content": "caf\u{e9}", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false},
        {"id": 50286, "content": "<both>", "single_word": true, "lstrip": true, "rstrip": true, "normalized": false, "special": true},
        {"id": 50287, "content": "  ", "single_word": false, "lstrip": false, "rstrip": true, "normalized": false, "special": false}
    ]);
    j["added_tokens"]
        .as_array_mut()
        .unwrap()
        .extend(flags.as_array().unwrap().iter().cloned());
    let t =
        Tokenizer::from_bytes(serde_json::to_string(&j).unwrap().as_bytes(), "flags.json").unwrap();
    let fx = fixture("flags.bin");
    let mut r = Reader::new(&fx);
    let mut bad = Vec::new();
    let mut n = 0;
    while !r.done() {
        let text = r.bytes();
        let want = r.ids();
        let got = t.encode(text).unwrap();
        if got != want {
            bad.push(format!(
                "{:?}\n  got  {got:?}\n  want {want:?}",
                String::from_utf8_lossy(text)
            ));
        }
        n += 1;
    }
    assert!(n > 400);
    assert!(
        bad.is_empty(),
        "{} of {n} differ:\n{}",
        bad.len(),
        bad.iter().take(6).cloned().collect::<Vec<_>>().join("\n")
    );
}

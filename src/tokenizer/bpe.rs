//! Exact byte-level BPE as HF `tokenizers` runs it for GPT-NeoX (`tokenizer.json`), and the
//! same tokenizer rebuilt from a GGUF file's `tokenizer.ggml.*` arrays.
//!
//! Pipeline of one `encode` call (HF `Tokenizer::encode` without post-processing):
//! 1. added tokens with `normalized: false` are split off the raw text (leftmost-longest
//!    match, then the `single_word` / `lstrip` / `rstrip` rules of HF's `AddedVocabulary`);
//! 2. each remaining piece is NFC-normalized (when the file asks for it), then added tokens
//!    with `normalized: true` (their content normalized too) are split off it;
//! 3. each remaining piece is split by the GPT-2 regex ([`super::pretok`]), mapped to
//!    byte-level symbols and merged by rank exactly as HF's `Word::merge_all` does.

use super::bytelevel::{byte_to_char_table, decode_token_string, inverse_table, FxHashMap};
use super::{nfc, pretok};
use crate::error::{Error, ErrorKind, Result};
use serde_json::Value;
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use unicode_general_category::{get_general_category, GeneralCategory as G};

/// Ids above this are refused (a hostile file must not make us allocate gigabytes).
const MAX_ID: u64 = 1 << 24;
/// The per-call word cache is cleared when it holds this many words.
const CACHE_WORDS: usize = 1 << 16;
const NONE: u32 = u32::MAX;

/// A token added on top of the BPE vocabulary (HF `AddedToken`).
#[derive(Clone, Debug)]
pub struct AddedToken {
    pub id: u32,
    pub content: String,
    pub single_word: bool,
    pub lstrip: bool,
    pub rstrip: bool,
    pub normalized: bool,
    pub special: bool,
}

/// A byte trie answering "longest pattern starting here".
struct Trie {
    nodes: Vec<(Vec<(u8, u32)>, u32)>, // (children sorted by byte, pattern index or NONE)
    first: [bool; 256],
}

impl Trie {
    fn new() -> Self {
        Trie {
            nodes: vec![(Vec::new(), NONE)],
            first: [false; 256],
        }
    }
    fn is_empty(&self) -> bool {
        self.nodes.len() == 1
    }
    fn insert(&mut self, pat: &[u8], idx: u32) {
        if pat.is_empty() {
            return;
        }
        self.first[pat[0] as usize] = true;
        let mut n = 0usize;
        for &b in pat {
            let pos = self.nodes[n].0.binary_search_by_key(&b, |e| e.0);
            n = match pos {
                Ok(p) => self.nodes[n].0[p].1 as usize,
                Err(p) => {
                    let new = self.nodes.len() as u32;
                    self.nodes.push((Vec::new(), NONE));
                    self.nodes[n].0.insert(p, (b, new));
                    new as usize
                }
            };
        }
        if self.nodes[n].1 == NONE {
            self.nodes[n].1 = idx; // first pattern wins on duplicates
        }
    }
    /// Longest pattern that starts at `s[i..]`: (length, pattern index).
    #[inline]
    fn longest_at(&self, s: &[u8], i: usize) -> Option<(usize, u32)> {
        if !self.first[s[i] as usize] {
            return None;
        }
        let mut n = 0usize;
        let mut best = None;
        for (k, &b) in s[i..].iter().enumerate() {
            match self.nodes[n].0.binary_search_by_key(&b, |e| e.0) {
                Ok(p) => n = self.nodes[n].0[p].1 as usize,
                Err(_) => break,
            }
            if self.nodes[n].1 != NONE {
                best = Some((k + 1, self.nodes[n].1));
            }
        }
        best
    }
}

/// `\w` of the `regex` crate (Alphabetic, M, Nd, Pc, Join_Control), approximated by
/// general category: letters, marks, Nd, Nl, Pc, ZWNJ/ZWJ. Used only for `single_word`.
fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    if c == '\u{200c}' || c == '\u{200d}' {
        return true;
    }
    matches!(
        get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
            | G::NonspacingMark
            | G::SpacingMark
            | G::EnclosingMark
            | G::DecimalNumber
            | G::LetterNumber
            | G::ConnectorPunctuation
    )
}

pub struct Bpe {
    /// Decoded bytes of each id (`None`: no token has this id).
    id_bytes: Vec<Option<Vec<u8>>>,
    special: Vec<bool>,
    /// Id of the byte-level symbol of each byte (`NONE` if the vocabulary lacks it).
    byte_ids: [u32; 256],
    /// (left id << 32 | right id) -> (rank, merged id)
    merges: FxHashMap<u64, (u32, u32)>,
    /// Trie patterns (index = pattern number).
    added: Vec<AddedToken>,
    /// Flags that apply to a matched id.
    added_by_id: FxHashMap<u32, AddedToken>,
    trie_raw: Trie,
    trie_norm: Trie,
    nfc: bool,
    add_prefix_space: bool,
    use_regex: bool,
    bos: Option<u32>,
    eos: Option<u32>,
    /// Words already merged, shared by calls (a call that finds it busy uses its own).
    cache: Mutex<WordCache>,
}

/// What the encoder produces for a segment of text.
enum Seg {
    Added(u32),
    Text(usize, usize),
}

fn fmt_err(src: &str, msg: impl std::fmt::Display) -> Error {
    Error::format(format!("{src}: {msg}"))
}
fn unsup(src: &str, msg: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unsupported, format!("{src}: {msg}"))
}

pub struct BpeParts {
    pub vocab: Vec<(String, u32)>,
    pub merges: Vec<(String, String)>,
    pub added: Vec<AddedToken>,
    pub nfc: bool,
    pub add_prefix_space: bool,
    pub use_regex: bool,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Assign added tokens' ids as HF does when it loads a tokenizer.json (ignoring the
    /// file's `id`s), and take `<|endoftext|>` as BOS/EOS; otherwise keep the given ids.
    pub hf_ids: bool,
}

/// The added tokens as HF's `AddedVocabulary` holds them.
struct AddedVocab {
    /// Match patterns: special tokens, then the others (each with its resolved id).
    patterns: Vec<AddedToken>,
    /// id -> the token whose flags apply to matches of that id (the last one added).
    by_id: FxHashMap<u32, AddedToken>,
    /// Contents of special tokens (HF decides "special" by content).
    special: std::collections::HashSet<String>,
}

type TokenKey = (String, [bool; 5]);
fn key_of(t: &AddedToken) -> TokenKey {
    (
        t.content.clone(),
        [t.single_word, t.lstrip, t.rstrip, t.normalized, t.special],
    )
}

/// HF `AddedVocabulary::add_tokens` over the file's list, as `Tokenizer` deserialization
/// runs it: a token whose content is already known (added before, or in the model
/// vocabulary) takes that id; a new one takes max(added ids) + 1, or the model
/// vocabulary's size when no added id reaches it. A token identical to a current one is
/// ignored; a token with the same content but other flags replaces the flags.
fn hf_added_vocab(
    tokens: Vec<AddedToken>,
    vocab: &FxHashMap<&str, u32>,
    model_len: usize,
) -> AddedVocab {
    let mut special_tokens = Vec::new();
    let mut special = std::collections::HashSet::new();
    for t in &tokens {
        if t.special && !t.content.is_empty() && !special.contains(&t.content) {
            special.insert(t.content.clone());
            special_tokens.push(t.clone());
        }
    }
    let mut map: FxHashMap<String, u32> = FxHashMap::default();
    let mut by_id: FxHashMap<u32, AddedToken> = FxHashMap::default();
    let mut current: std::collections::HashMap<TokenKey, usize> = std::collections::HashMap::new();
    let mut max_id: Option<u32> = None;
    let mut classic = Vec::new();
    for mut t in tokens {
        if t.content.is_empty() || current.contains_key(&key_of(&t)) {
            continue;
        }
        let id = match map
            .get(&t.content)
            .or_else(|| vocab.get(t.content.as_str()))
        {
            Some(&id) => id,
            None => match max_id {
                None => model_len as u32,
                Some(m) if m as usize >= model_len || model_len == 0 => m.saturating_add(1),
                Some(_) => model_len as u32,
            },
        };
        t.id = id;
        map.insert(t.content.clone(), id);
        max_id = Some(max_id.map_or(id, |m| m.max(id)));
        if let Some(old) = by_id.insert(id, t.clone()) {
            let k = key_of(&old);
            if let Some(c) = current.get_mut(&k) {
                *c -= 1;
                if *c == 0 {
                    current.remove(&k);
                }
            }
        }
        *current.entry(key_of(&t)).or_insert(0) += 1;
        if !special.contains(&t.content) {
            classic.push(t);
        }
    }
    let mut patterns = special_tokens;
    patterns.extend(classic);
    for t in &mut patterns {
        if let Some(&id) = map.get(&t.content) {
            t.id = id;
        }
    }
    AddedVocab {
        patterns,
        by_id,
        special,
    }
}

/// Added tokens with the ids given (GGUF): specials first, then the others.
fn given_added_vocab(tokens: Vec<AddedToken>) -> AddedVocab {
    let mut patterns: Vec<AddedToken> = tokens.iter().filter(|t| t.special).cloned().collect();
    patterns.extend(tokens.iter().filter(|t| !t.special).cloned());
    let special = tokens
        .iter()
        .filter(|t| t.special)
        .map(|t| t.content.clone())
        .collect();
    let by_id = tokens.into_iter().map(|t| (t.id, t)).collect();
    AddedVocab {
        patterns,
        by_id,
        special,
    }
}

impl Bpe {
    pub fn build(p: BpeParts, src: &str) -> Result<Bpe> {
        let mut size: u64 = 0;
        let mut vocab: FxHashMap<&str, u32> = FxHashMap::default();
        vocab.reserve(p.vocab.len());
        for (s, id) in &p.vocab {
            if *id as u64 >= MAX_ID {
                return Err(fmt_err(src, format!("token {s:?} has id {id}, too large")));
            }
            size = size.max(*id as u64 + 1);
            vocab.insert(s.as_str(), *id);
        }
        let n_added = p.added.len();
        let av = if p.hf_ids {
            hf_added_vocab(p.added, &vocab, vocab.len())
        } else {
            given_added_vocab(p.added)
        };
        for t in av.by_id.values() {
            if t.id as u64 >= MAX_ID {
                return Err(fmt_err(
                    src,
                    format!("added token {:?} has id {}, too large", t.content, t.id),
                ));
            }
            size = size.max(t.id as u64 + 1);
        }
        if size > 4 * (p.vocab.len() + n_added) as u64 + 1024 {
            return Err(fmt_err(
                src,
                format!(
                    "token ids go up to {size} for only {} tokens",
                    p.vocab.len() + n_added
                ),
            ));
        }
        let size = size as usize;
        let table = byte_to_char_table();
        let inv = inverse_table(&table);
        let mut strings: Vec<Option<&str>> = vec![None; size];
        for (s, id) in &p.vocab {
            strings[*id as usize] = Some(s.as_str());
        }
        let mut special = vec![false; size];
        for (id, t) in &av.by_id {
            strings[*id as usize] = Some(t.content.as_str());
            special[*id as usize] = av.special.contains(&t.content);
        }
        let (bos, eos) = if p.hf_ids {
            let e = av
                .by_id
                .values()
                .find(|t| t.content == "<|endoftext|>")
                .map(|t| t.id)
                .or_else(|| vocab.get("<|endoftext|>").copied());
            (e, e)
        } else {
            (p.bos, p.eos)
        };
        let id_bytes: Vec<Option<Vec<u8>>> = strings
            .iter()
            .map(|s| s.map(|s| decode_token_string(s, &inv)))
            .collect();
        let mut byte_ids = [NONE; 256];
        let mut buf = [0u8; 4];
        for b in 0..256 {
            let c: &str = table[b].encode_utf8(&mut buf);
            if let Some(&id) = vocab.get(c) {
                byte_ids[b] = id;
            }
        }
        let mut merges: FxHashMap<u64, (u32, u32)> = FxHashMap::default();
        merges.reserve(p.merges.len());
        let mut cat = String::new();
        for (rank, (a, b)) in p.merges.iter().enumerate() {
            let ia = *vocab.get(a.as_str()).ok_or_else(|| {
                fmt_err(src, format!("merge {rank}: {a:?} is not in the vocabulary"))
            })?;
            let ib = *vocab.get(b.as_str()).ok_or_else(|| {
                fmt_err(src, format!("merge {rank}: {b:?} is not in the vocabulary"))
            })?;
            cat.clear();
            cat.push_str(a);
            cat.push_str(b);
            let new = *vocab.get(cat.as_str()).ok_or_else(|| {
                fmt_err(
                    src,
                    format!("merge {rank}: {cat:?} is not in the vocabulary"),
                )
            })?;
            merges.insert(((ia as u64) << 32) | ib as u64, (rank as u32, new));
        }
        let mut trie_raw = Trie::new();
        let mut trie_norm = Trie::new();
        for (i, t) in av.patterns.iter().enumerate() {
            if t.normalized {
                let content: Cow<str> = if p.nfc {
                    Cow::Owned(nfc::nfc(&t.content))
                } else {
                    Cow::Borrowed(&t.content)
                };
                trie_norm.insert(content.as_bytes(), i as u32);
            } else {
                trie_raw.insert(t.content.as_bytes(), i as u32);
            }
        }
        Ok(Bpe {
            id_bytes,
            special,
            byte_ids,
            merges,
            added: av.patterns,
            added_by_id: av.by_id,
            trie_raw,
            trie_norm,
            nfc: p.nfc,
            add_prefix_space: p.add_prefix_space,
            use_regex: p.use_regex,
            bos,
            eos,
            cache: Mutex::new(WordCache::default()),
        })
    }

    /// Parses an HF `tokenizer.json`.
    pub fn from_json(data: &[u8], src: &str) -> Result<Bpe> {
        let v: Value = serde_json::from_slice(data)
            .map_err(|e| fmt_err(src, format!("not a tokenizer.json: {e}")))?;
        let model = v
            .get("model")
            .ok_or_else(|| fmt_err(src, "no \"model\" object"))?;
        match model.get("type").and_then(|t| t.as_str()) {
            Some("BPE") | None => {}
            Some(t) => return Err(unsup(src, format!("model type {t:?} (only BPE)"))),
        }
        for key in [
            "continuing_subword_prefix",
            "end_of_word_suffix",
            "unk_token",
        ] {
            if model.get(key).is_some_and(|x| !x.is_null()) {
                return Err(unsup(src, format!("BPE option {key:?} is set")));
            }
        }
        if model.get("dropout").is_some_and(|x| !x.is_null()) {
            return Err(unsup(src, "BPE dropout"));
        }
        for key in ["byte_fallback", "ignore_merges"] {
            if model.get(key).and_then(|x| x.as_bool()).unwrap_or(false) {
                return Err(unsup(src, format!("BPE option {key:?} is true")));
            }
        }
        let vocab_obj = model
            .get("vocab")
            .and_then(|x| x.as_object())
            .ok_or_else(|| fmt_err(src, "model.vocab is not an object"))?;
        let mut vocab = Vec::with_capacity(vocab_obj.len());
        for (s, id) in vocab_obj {
            let id = id
                .as_u64()
                .filter(|&i| i < MAX_ID)
                .ok_or_else(|| fmt_err(src, format!("vocab entry {s:?}: bad id {id}")))?;
            vocab.push((s.clone(), id as u32));
        }
        let merges_arr = model
            .get("merges")
            .and_then(|x| x.as_array())
            .ok_or_else(|| fmt_err(src, "model.merges is not an array"))?;
        let mut merges = Vec::with_capacity(merges_arr.len());
        for (i, m) in merges_arr.iter().enumerate() {
            let pair = match m {
                Value::String(s) => {
                    let mut it = s.split(' ');
                    match (it.next(), it.next(), it.next()) {
                        (Some(a), Some(b), None) => (a.to_string(), b.to_string()),
                        _ => {
                            return Err(fmt_err(src, format!("merge {i}: {s:?} is not two tokens")))
                        }
                    }
                }
                Value::Array(a) if a.len() == 2 => match (a[0].as_str(), a[1].as_str()) {
                    (Some(x), Some(y)) => (x.to_string(), y.to_string()),
                    _ => return Err(fmt_err(src, format!("merge {i} is not two strings"))),
                },
                _ => {
                    return Err(fmt_err(
                        src,
                        format!("merge {i} is neither \"a b\" nor [a, b]"),
                    ))
                }
            };
            merges.push(pair);
        }
        let mut added = Vec::new();
        if let Some(arr) = v.get("added_tokens").and_then(|x| x.as_array()) {
            for (i, t) in arr.iter().enumerate() {
                let id = t
                    .get("id")
                    .and_then(|x| x.as_u64())
                    .filter(|&i| i < MAX_ID)
                    .ok_or_else(|| fmt_err(src, format!("added token {i}: bad id")))?;
                let content = t
                    .get("content")
                    .and_then(|x| x.as_str())
                    .ok_or_else(|| fmt_err(src, format!("added token {i}: no content")))?;
                let flag = |k: &str, d: bool| t.get(k).and_then(|x| x.as_bool()).unwrap_or(d);
                let special = flag("special", false);
                if content.is_empty() {
                    continue; // HF ignores empty added tokens
                }
                added.push(AddedToken {
                    id: id as u32,
                    content: content.to_string(),
                    single_word: flag("single_word", false),
                    lstrip: flag("lstrip", false),
                    rstrip: flag("rstrip", false),
                    normalized: flag("normalized", !special),
                    special,
                });
            }
        }
        let nfc = parse_normalizer(v.get("normalizer"), src)?;
        let (add_prefix_space, use_regex) = parse_pretokenizer(v.get("pre_tokenizer"), src)?;
        match v.get("decoder") {
            None | Some(Value::Null) => {}
            Some(d) if d.get("type").and_then(|t| t.as_str()) == Some("ByteLevel") => {}
            Some(d) => {
                return Err(unsup(
                    src,
                    format!(
                        "decoder {} (only ByteLevel)",
                        d.get("type").unwrap_or(&Value::Null)
                    ),
                ))
            }
        }
        let parts = BpeParts {
            vocab,
            merges,
            added,
            nfc,
            add_prefix_space,
            use_regex,
            bos: None,
            eos: None,
            hf_ids: true,
        };
        Bpe::build(parts, src)
    }

    pub fn vocab_size(&self) -> usize {
        self.id_bytes.len()
    }
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.id_bytes.get(id as usize).and_then(|b| b.as_deref())
    }
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// HF `AddedVocabulary::find_matches`.
    fn find_added(&self, s: &str, trie: &Trie, out: &mut Vec<Seg>) {
        let b = s.as_bytes();
        if trie.is_empty() {
            out.push(Seg::Text(0, b.len()));
            return;
        }
        let mut start_offset = 0usize;
        let mut i = 0usize;
        while i < b.len() {
            let Some((len, pat)) = trie.longest_at(b, i) else {
                i += 1;
                continue;
            };
            let pt = &self.added[pat as usize];
            let tok = self.added_by_id.get(&pt.id).unwrap_or(pt);
            let (mut start, mut stop) = (i, i + len);
            i = stop;
            if tok.single_word {
                let start_space =
                    start == 0 || !s[..start].chars().next_back().is_some_and(is_word_char);
                let stop_space =
                    stop == b.len() || !s[stop..].chars().next().is_some_and(is_word_char);
                if !start_space || !stop_space {
                    continue;
                }
            }
            if tok.lstrip {
                let trimmed = s[..start].trim_end_matches(pretok::is_white_space).len();
                start = trimmed.max(start_offset);
            }
            if tok.rstrip {
                stop +=
                    s[stop..].len() - s[stop..].trim_start_matches(pretok::is_white_space).len();
            }
            if start_offset < start {
                out.push(Seg::Text(start_offset, start));
            }
            out.push(Seg::Added(tok.id));
            start_offset = stop;
        }
        if start_offset < b.len() {
            out.push(Seg::Text(start_offset, b.len()));
        }
    }

    /// Encodes valid UTF-8 text, appending ids to `out`.
    pub fn encode(&self, text: &str, out: &mut Vec<u32>) {
        let mut local;
        let mut guard = self.cache.try_lock().ok();
        let cache: &mut WordCache = match guard.as_deref_mut() {
            Some(c) => c,
            None => {
                local = WordCache::default();
                &mut local
            }
        };
        let mut segs = Vec::new();
        self.find_added(text, &self.trie_raw, &mut segs);
        let mut segs2 = Vec::new();
        for seg in segs {
            let (a, z) = match seg {
                Seg::Added(id) => {
                    out.push(id);
                    continue;
                }
                Seg::Text(a, z) => (a, z),
            };
            let piece = &text[a..z];
            let norm: Cow<str> = if self.nfc && !nfc::is_quick_nfc(piece) {
                Cow::Owned(nfc::nfc(piece))
            } else {
                Cow::Borrowed(piece)
            };
            segs2.clear();
            self.find_added(&norm, &self.trie_norm, &mut segs2);
            for s2 in &segs2 {
                match *s2 {
                    Seg::Added(id) => out.push(id),
                    Seg::Text(a2, z2) => self.encode_pretokenized(&norm[a2..z2], cache, out),
                }
            }
        }
    }

    fn encode_pretokenized(&self, s: &str, cache: &mut WordCache, out: &mut Vec<u32>) {
        let prefixed;
        let s = if self.add_prefix_space && !s.starts_with(' ') {
            prefixed = format!(" {s}");
            prefixed.as_str()
        } else {
            s
        };
        if self.use_regex {
            pretok::split(s, |a, z| self.encode_word(&s.as_bytes()[a..z], cache, out));
        } else if !s.is_empty() {
            self.encode_word(s.as_bytes(), cache, out);
        }
    }

    fn encode_word(&self, w: &[u8], cache: &mut WordCache, out: &mut Vec<u32>) {
        if w.len() == 1 {
            let id = self.byte_ids[w[0] as usize];
            if id != NONE {
                out.push(id);
            }
            return;
        }
        if let Some(&(a, n)) = cache.map.get(w) {
            out.extend_from_slice(&cache.arena[a as usize..(a + n) as usize]);
            return;
        }
        if cache.map.len() >= CACHE_WORDS {
            cache.map.clear();
            cache.arena.clear();
        }
        let start = cache.arena.len();
        self.merge_word(w, &mut cache.syms, &mut cache.heap, &mut cache.arena);
        let n = cache.arena.len() - start;
        out.extend_from_slice(&cache.arena[start..]);
        cache.map.insert(w.to_vec(), (start as u32, n as u32));
    }

    /// HF `Word::merge_all` (no dropout).
    fn merge_word(
        &self,
        w: &[u8],
        syms: &mut Vec<Sym>,
        heap: &mut BinaryHeap<Reverse<(u32, u32, u32)>>,
        out: &mut Vec<u32>,
    ) {
        syms.clear();
        heap.clear();
        for &b in w {
            let id = self.byte_ids[b as usize];
            if id == NONE {
                continue;
            }
            let i = syms.len() as i32;
            syms.push(Sym {
                c: id,
                prev: i - 1,
                next: i + 1,
                alive: true,
            });
        }
        let n = syms.len();
        if n == 0 {
            return;
        }
        syms[n - 1].next = -1;
        for i in 0..n - 1 {
            if let Some(&(rank, new)) = self.merges.get(&pair(syms[i].c, syms[i + 1].c)) {
                heap.push(Reverse((rank, i as u32, new)));
            }
        }
        while let Some(Reverse((_rank, pos, new_id))) = heap.pop() {
            let pos = pos as usize;
            if !syms[pos].alive || syms[pos].next == -1 {
                continue;
            }
            let next_pos = syms[pos].next as usize;
            let right = syms[next_pos];
            match self.merges.get(&pair(syms[pos].c, right.c)) {
                Some(&(_, id)) if id == new_id => {}
                _ => continue,
            }
            syms[pos].c = new_id;
            syms[pos].next = right.next;
            syms[next_pos].alive = false;
            if right.next > -1 && (right.next as usize) < n {
                syms[right.next as usize].prev = pos as i32;
            }
            let cur = syms[pos];
            if cur.prev >= 0 {
                let prev = cur.prev as usize;
                if let Some(&(rank, new)) = self.merges.get(&pair(syms[prev].c, cur.c)) {
                    heap.push(Reverse((rank, prev as u32, new)));
                }
            }
            if cur.next >= 0 && (cur.next as usize) < n {
                if let Some(&(rank, new)) = self.merges.get(&pair(cur.c, syms[cur.next as usize].c))
                {
                    heap.push(Reverse((rank, pos as u32, new)));
                }
            }
        }
        out.extend(syms.iter().filter(|s| s.alive).map(|s| s.c));
    }
}

#[inline]
fn pair(a: u32, b: u32) -> u64 {
    ((a as u64) << 32) | b as u64
}

#[derive(Clone, Copy)]
struct Sym {
    c: u32,
    prev: i32,
    next: i32,
    alive: bool,
}

#[derive(Default)]
struct WordCache {
    map: FxHashMap<Vec<u8>, (u32, u32)>,
    arena: Vec<u32>,
    syms: Vec<Sym>,
    heap: BinaryHeap<Reverse<(u32, u32, u32)>>,
}

fn parse_normalizer(n: Option<&Value>, src: &str) -> Result<bool> {
    let Some(n) = n else { return Ok(false) };
    if n.is_null() {
        return Ok(false);
    }
    match n.get("type").and_then(|t| t.as_str()) {
        Some("NFC") => Ok(true),
        Some("Sequence") => {
            let mut nfc = false;
            for x in n
                .get("normalizers")
                .and_then(|x| x.as_array())
                .map(|a| a.as_slice())
                .unwrap_or(&[])
            {
                nfc |= parse_normalizer(Some(x), src)?;
            }
            Ok(nfc)
        }
        t => Err(unsup(src, format!("normalizer {t:?} (only NFC)"))),
    }
}

fn parse_pretokenizer(p: Option<&Value>, src: &str) -> Result<(bool, bool)> {
    let Some(p) = p.filter(|p| !p.is_null()) else {
        return Err(unsup(src, "no pre_tokenizer (only ByteLevel)"));
    };
    match p.get("type").and_then(|t| t.as_str()) {
        Some("ByteLevel") => Ok((
            p.get("add_prefix_space")
                .and_then(|x| x.as_bool())
                .unwrap_or(true),
            p.get("use_regex").and_then(|x| x.as_bool()).unwrap_or(true),
        )),
        Some("Sequence") => match p.get("pretokenizers").and_then(|x| x.as_array()) {
            Some(a) if a.len() == 1 => parse_pretokenizer(a.first(), src),
            _ => Err(unsup(src, "pre_tokenizer Sequence other than [ByteLevel]")),
        },
        t => Err(unsup(src, format!("pre_tokenizer {t:?} (only ByteLevel)"))),
    }
}

impl Bpe {
    /// Builds the tokenizer from a GGUF file's `tokenizer.ggml.*` arrays.
    pub fn from_gguf(v: super::GgufVocab) -> Result<Bpe> {
        let src = "GGUF tokenizer";
        if v.model != "gpt2" {
            return Err(unsup(
                src,
                format!("tokenizer.ggml.model {:?} (only \"gpt2\")", v.model),
            ));
        }
        if !v.token_types.is_empty() && v.token_types.len() != v.tokens.len() {
            return Err(fmt_err(
                src,
                format!(
                    "{} token types for {} tokens",
                    v.token_types.len(),
                    v.tokens.len()
                ),
            ));
        }
        if v.tokens.len() as u64 >= MAX_ID {
            return Err(fmt_err(src, format!("{} tokens, too many", v.tokens.len())));
        }
        let mut vocab = Vec::with_capacity(v.tokens.len());
        let mut added = Vec::new();
        for (i, t) in v.tokens.into_iter().enumerate() {
            let ty = v.token_types.get(i).copied().unwrap_or(1);
            match ty {
                3 | 4 => {
                    let special = ty == 3;
                    // llama.cpp's converter writes added tokens' content as is; the model
                    // vocabulary also keeps them (HF does the same for ids 0 and 1).
                    vocab.push((t.clone(), i as u32));
                    if !t.is_empty() {
                        added.push(AddedToken {
                            id: i as u32,
                            content: t,
                            single_word: false,
                            lstrip: false,
                            rstrip: false,
                            normalized: !special,
                            special,
                        });
                    }
                }
                _ => vocab.push((t, i as u32)),
            }
        }
        let mut merges = Vec::with_capacity(v.merges.len());
        for (i, m) in v.merges.iter().enumerate() {
            let mut it = m.split(' ');
            match (it.next(), it.next(), it.next()) {
                (Some(a), Some(b), None) => merges.push((a.to_string(), b.to_string())),
                _ => return Err(fmt_err(src, format!("merge {i}: {m:?} is not two tokens"))),
            }
        }
        let parts = BpeParts {
            vocab,
            merges,
            added,
            nfc: true,
            add_prefix_space: false,
            use_regex: true,
            bos: v.bos_id,
            eos: v.eos_id,
            hf_ids: false,
        };
        Bpe::build(parts, src)
    }
}

#!/usr/bin/env python3
"""Generate the tokenizer test fixtures in tests/fixtures/tokenizer/ (run from anywhere).

    python3 py/gen_tokenizer_fixtures.py [--nfc-gaps] [--no-unicode]

--nfc-gaps also regenerates src/tokenizer/nfc_gaps.rs (needs cargo); --no-unicode skips
the slow unicode_classes.txt. Output is deterministic (fixed seeds).

Needs HF `tokenizers` (the reference implementation). The Rust tests only read the files
written here, plus ../shared/data (tokenizer.json and tinyshakespeare.txt).

Files (all integers little-endian):
- shakespeare_ids.u16: HF ids of the whole of tinyshakespeare.txt, u16 each.
- shakespeare_lines.bin: per line of tinyshakespeare.txt (split on "\\n", without it):
  u16 number of ids, u32 FNV-1a-32 of the ids (each id as 4 LE bytes).
- stress.bin: records of u32 text length, the UTF-8 text, u32 n, n x u32 HF ids.
- decode.bin: records of u32 n, n x u32 ids, then u32 len + HF decode(ids,
  skip_special_tokens=False) as UTF-8, then u32 len + decode(ids, skip_special_tokens=True).
- legacy.bin: records of u32 text length, text bytes, u32 n, n x u32 ids of the C project's
  greedy encoder (Python re-implementation below) with the tokenizer.bin that
  py/tokenizer.py writes.
- legacy_bin.fnv: FNV-1a-64 (hex) and size of that tokenizer.bin.
- src/tokenizer/nfc_gaps.rs (with --nfc-gaps): the code points HF's NFC does not know
  (its normalization tables are older than the unicode-normalization crate's): listed by
  `cargo run --release --example normalization_props`, then probed with HF.
- flags.bin: like stress.bin, for the GPT-NeoX tokenizer.json with FLAG_TOKENS below appended
  to its added_tokens (lstrip / rstrip / single_word / normalized semantics, which the
  GPT-NeoX file itself does not exercise). tests/tokenizer.rs appends the same entries.
- unicode_classes.txt: "start end class" lines (hex code points, class L, N, S or O): how
  HF's ByteLevel pre-tokenizer classifies every code point (\\p{L}, \\p{N}, \\s, other).
"""
import os
import random
import struct
import sys
import tempfile
import unicodedata

from tokenizers import Tokenizer, pre_tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
sys.path.insert(0, HERE)
import tokenizer as tokbin  # noqa: E402  (py/tokenizer.py)


def fnv32(ids):
    h = 0x811C9DC5
    for b in struct.pack(f"<{len(ids)}I", *ids):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def fnv64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def u32s(ids):
    return struct.pack(f"<I{len(ids)}I", len(ids), *ids)


def blob(b):
    return struct.pack("<I", len(b)) + b


# ---------------------------------------------------------------- stress corpus

def stress_corpus(rng):
    scripts = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "àéîõüçñßøåæœÀÉÎÕÜÇÑ",
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГД",
        "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔ",
        "אבגדהוזחטיכלמנסעפצקרשת",
        "ابتثجحخدذرزسشصضطظعغفقكلمنهوي٠١٢٣٤٥٦٧٨٩",
        "अआइईउऊएऐओऔकखगघङचछजझञ०१२३४५६७८९्ािीु",
        "的一是不了人我在有他这为之大来以个中上们日本語中文字",
        "ひらがなカタカナアイウエオ한국어조선말",
        "ไทยภาษา๐๑๒๓",
        "①②③½¾²³ⅠⅡⅢ〇",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢𝟘𝟙𝟚𐍈𐌰",
        "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~«»¿¡—–…‘’“”•€£¥©®™°±×÷",
        "😀😃😄😁🙂🤔👍🏽👩‍💻👨‍👩‍👧‍👦🏳️‍🌈❤️🇫🇷🇯🇵",
    ]
    spaces = [" ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u2029",
              "\u2003", "\u200b", "\u180e", "\u0085", "\x0b", "\x0c", " \t ", "\n\n\n", "     ",
              " " * 30, "\u202f", "\ufeff", "\x1c", "\x1f"]
    contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "''", "'", "'x"]
    added = ["<|endoftext|>", "<|padding|>", "<|im_start|>", "<|im_end|>", "assistant", "RWKV",
             "<|endoftext", "<|", "|>", "Assistant", "rwkv"]
    combining = ["e\u0301", "a\u0308", "o\u0302\u0323", "\u1100\u1161\u11a8", "A\u030a", "n\u0303",
                 "\u0915\u093c", "\u212b", "\u2126", "e\u0301\u0301", "\u0301x", "i\u0307"]
    controls = ["\x00", "\x01", "\x07", "\x1b[31m", "\x7f", "\x80", "\u200d", "\ufffd", "\U0010ffff",
                "\U000e0001", "\ue000"]
    out = []
    # fixed cases
    fixed = [
        "", " ", "  ", "Hello world", "Hello  world", "Hello   world", " leading", "trailing ",
        "I'm can't we'll they're I've he'd she's", "x''s don't", "a\tb", "a \tb", "a\t b",
        "a  \n  b", "line1\nline2\n", "\n", "\r\n\r\n", "tab\t\tend\t", "<|endoftext|>",
        "<|endoftext|><|endoftext|>", "hi<|endoftext|>there", " <|endoftext|> ",
        "x  <|endoftext|>  y", "the assistant said", "RWKVassistant", "assistant's",
        "e\u0301", "caf\u00e9 vs cafe\u0301", "\u3000\u3000x", "a\u00a0b", "a\u2028b",
        "123 4567 89012", "3.14159", "ⅫⅪ", "x" * 500, "ab" * 300, " " * 100 + "x",
        "😀" * 50, "👩‍💻👩‍💻", "\U0001F1EB\U0001F1F7", "2023-01-01T00:00:00Z",
        "https://example.com/path?q=1&r=2#frag", "def f(x):\n    return x  # comment\n",
        "    indented\n        more", "$ echo 'hi' && ls -la", "Ġ Ċ", "ĠĠ",
    ]
    out += fixed
    pools = [scripts, spaces, contractions, added, combining, controls]
    weights = [10, 5, 2, 1, 2, 1]
    for _ in range(1200):
        n = rng.randint(1, 25)
        parts = []
        for _ in range(n):
            pool = rng.choices(pools, weights)[0]
            item = rng.choice(pool)
            if pool is scripts:
                item = "".join(rng.choice(item) for _ in range(rng.randint(1, 12)))
            parts.append(item)
        out.append("".join(parts))
    # long words and long whitespace mixes
    for _ in range(8):
        s = rng.choice(scripts)
        out.append("".join(rng.choice(s) for _ in range(rng.randint(100, 800))))
        out.append("".join(rng.choice(spaces) for _ in range(rng.randint(20, 100))))
    # random code points of every plane, dense in combining marks and Hangul jamo (NFC
    # reordering and composition, including marks HF's older Unicode tables do not know)
    def rcp():
        r = rng.random()
        if r < 0.3:
            return chr(rng.randint(0x300, 0x36F))
        if r < 0.4:
            return chr(rng.choice([0x1100 + rng.randint(0, 18), 0x1161 + rng.randint(0, 20),
                                   0x11A8 + rng.randint(0, 26), 0xAC00 + rng.randint(0, 11171)]))
        if r < 0.5:
            return chr(rng.choice([0x8D2, 0x8D3, 0x11A99, 0x1AC0, 0x1DFA, 0x10D24, 0x1E4EC, 0x11935, 0x11930,
                                   0x1133E, 0x11347, 0x0CC6, 0x0CD5, 0x0B47, 0x0B3E, 0x1B05, 0x1B35]))
        if r < 0.6:
            return rng.choice([" ", "  ", "\t", "\n", "\u3000", "\xa0", "'", "'s", "<|endoftext|>", "a", "1"])
        hi = 0x2FFFF if r < 0.85 else 0x10FFFF
        while True:
            c = rng.randint(0, hi)
            if not 0xD800 <= c <= 0xDFFF:
                return chr(c)
    for _ in range(600):
        out.append("".join(rcp() for _ in range(rng.randint(1, 30))))
    return out


# ---------------------------------------------------------------- legacy reference

def legacy_encode(vocab, text):
    """The C project's encode(), transcribed: C strings, bsearch over the qsort-ed vocab."""
    # C strings: text stops at NUL; vocab strings are compared up to their first NUL.
    text = text.split(b"\x00", 1)[0]
    cvocab = [v.split(b"\x00", 1)[0] for v in vocab]
    order = sorted(range(len(cvocab)), key=lambda i: cvocab[i])  # stable, like glibc msort

    def str_lookup(s):  # glibc bsearch
        lo, hi = 0, len(order)
        while lo < hi:
            mid = (lo + hi) // 2
            k = cvocab[order[mid]]
            if s < k:
                hi = mid
            elif s > k:
                lo = mid + 1
            else:
                return order[mid]
        return -1

    tokens = []
    i = 0
    n = len(text)
    while i < n:
        ln = 1
        while i + ln < n and (text[i + ln] & 0xC0) == 0x80 and ln < 4:
            ln += 1
        chunk = text[i:i + ln]
        i += ln
        tid = str_lookup(chunk)
        if tid != -1:
            tokens.append(tid)
        else:
            for b in chunk:
                if b + 3 < len(vocab):
                    tokens.append(b + 3)
    while True:
        best = -1
        for k in range(len(tokens) - 1):
            tid = str_lookup(cvocab[tokens[k]] + cvocab[tokens[k + 1]])
            if tid != -1:
                best = k
                break
        if best == -1:
            break
        tokens[best:best + 2] = [tid]
    return tokens


def read_bin(path):
    with open(path, "rb") as f:
        d = f.read()
    magic, ver, n, _ = struct.unpack_from("<Iiii", d, 0)
    assert magic == tokbin.MAGIC and ver == 1
    off = 16
    vocab = []
    for _ in range(n):
        (ln,) = struct.unpack_from("<i", d, off)
        off += 4
        vocab.append(d[off:off + ln])
        off += ln
    return vocab, d


# ---------------------------------------------------------------- unicode classes

def unicode_classes():
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    runs = []

    def cls(c):
        if len(bl.pre_tokenize_str("a" + c)) == 1:
            return "L"
        if len(bl.pre_tokenize_str("1" + c)) == 1:
            return "N"
        if len(bl.pre_tokenize_str("\t" + c)) == 1:
            return "S"
        return "O"

    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = cls(chr(cp))
        if runs and runs[-1][2] == c and runs[-1][1] + 1 == cp:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp, c])
    return "".join(f"{a:x} {b:x} {c}\n" for a, b, c in runs)


def nfc_gaps():
    """Code points the unicode-normalization crate normalizes but HF's NFC leaves alone."""
    import subprocess
    from tokenizers import normalizers
    props = subprocess.run(["cargo", "run", "-q", "--release", "--example", "normalization_props"],
                           cwd=ROOT, check=True, capture_output=True, text=True).stdout
    nfd = normalizers.NFD()
    unknown = []
    for line in props.splitlines():
        cp, ccc, dec = line.split()
        cp, ccc = int(cp, 16), int(ccc)
        dec = [int(x, 16) for x in dec.split("-")]
        c = chr(cp)
        if dec != [cp]:
            known = nfd.normalize_str(c) == "".join(map(chr, dec))
        elif ccc < 230:  # reordered before U+0301 (ccc 230)?
            known = nfd.normalize_str("\u0301" + c) == c + "\u0301"
        else:  # U+0334 (ccc 1) reordered before it?
            known = nfd.normalize_str(c + "\u0334") == "\u0334" + c
        if not known:
            unknown.append(cp)
    runs = []
    for cp in unknown:
        if runs and runs[-1][1] + 1 == cp:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp])
    body = "".join(f"    (0x{a:04X}, 0x{b:04X}),\n" for a, b in runs)
    src = ("//! GENERATED by py/gen_tokenizer_fixtures.py --nfc-gaps: do not edit.\n"
           "//! Code points (inclusive ranges) that the unicode-normalization crate gives a\n"
           "//! combining class or decomposition but HF tokenizers' NFC does not know (its tables\n"
           "//! are older): HF treats them as plain starters that never compose.\n\n"
           f"pub static HF_NFC_GAPS: [(u32, u32); {len(runs)}] = [\n{body}];\n")
    with open(os.path.join(ROOT, "src", "tokenizer", "nfc_gaps.rs"), "w") as f:
        f.write(src)
    print(f"nfc gaps: {len(unknown)} code points in {len(runs)} ranges")


FLAG_TOKENS = [
    {"id": 50281, "content": "<mask>", "single_word": False, "lstrip": True, "rstrip": False, "normalized": False, "special": True},
    {"id": 50282, "content": "[SEP]", "single_word": False, "lstrip": False, "rstrip": True, "normalized": False, "special": True},
    {"id": 50283, "content": "word", "single_word": True, "lstrip": False, "rstrip": False, "normalized": True, "special": False},
    {"id": 50284, "content": "\u00c5ngstr\u00f6m", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": False},
    {"id": 50285, "content": "caf\u00e9", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": False},
    {"id": 50286, "content": "<both>", "single_word": True, "lstrip": True, "rstrip": True, "normalized": False, "special": True},
    {"id": 50287, "content": "  ", "single_word": False, "lstrip": False, "rstrip": True, "normalized": False, "special": False},
]


def flags_corpus(rng):
    pieces = ["<mask>", "[SEP]", "word", "words", "sword", "word.", "_word", "word1", "\u00c5ngstr\u00f6m",
              "A\u030angstro\u0308m", "\u212bngstr\u00f6m", "caf\u00e9", "cafe\u0301", "<both>", "x<both>y",
              " ", "  ", "   ", "\t", "\n", "\u3000", "\u00a0", "a", "b c", "\u00e9", "\u0301", "<|endoftext|>", "'s",
              "w\u00f6rd", "\u00e9word", "word\u0301", "\u0663word"]
    out = ["a  <mask> b", "x[SEP]   y", "word words sword word.", "the \u00c5ngstr\u00f6m unit",
           "A\u030angstro\u0308m", "caf\u00e9 cafe\u0301", "<both>", " <both> ", "a<both>b", "a <both> b",
           "  <mask>  [SEP]  ", "[SEP][SEP]<mask><mask>", "word", " word ", "\tword\t"]
    for _ in range(400):
        out.append("".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))))
    return out


def main():
    if "--nfc-gaps" in sys.argv:
        nfc_gaps()
    tok = Tokenizer.from_file(os.path.join(DATA, "tokenizer", "gpt-neox-20b.json"))
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(1234)

    text = open(os.path.join(DATA, "text", "tinyshakespeare.txt"), encoding="utf-8").read()
    ids = tok.encode(text).ids
    assert max(ids) < 65536
    with open(os.path.join(OUT, "shakespeare_ids.u16"), "wb") as f:
        f.write(struct.pack(f"<{len(ids)}H", *ids))
    lines = text.split("\n")
    encs = tok.encode_batch(lines)
    with open(os.path.join(OUT, "shakespeare_lines.bin"), "wb") as f:
        for e in encs:
            f.write(struct.pack("<HI", len(e.ids), fnv32(e.ids)))
    print(f"shakespeare: {len(ids)} ids, {len(lines)} lines")

    corpus = stress_corpus(rng)
    with open(os.path.join(OUT, "stress.bin"), "wb") as f:
        for s in corpus:
            f.write(blob(s.encode("utf-8")))
            f.write(u32s(tok.encode(s).ids))
    print(f"stress: {len(corpus)} strings")

    import json
    j = json.load(open(os.path.join(DATA, "tokenizer", "gpt-neox-20b.json"), encoding="utf-8"))
    j["added_tokens"] += FLAG_TOKENS
    ftok = Tokenizer.from_str(json.dumps(j))
    fcorpus = flags_corpus(random.Random(99))
    with open(os.path.join(OUT, "flags.bin"), "wb") as f:
        for s in fcorpus:
            f.write(blob(s.encode("utf-8")))
            f.write(u32s(ftok.encode(s).ids))
    print(f"flags: {len(fcorpus)} strings")

    vs = tok.get_vocab_size(with_added_tokens=True)
    with open(os.path.join(OUT, "decode.bin"), "wb") as f:
        seqs = []
        for _ in range(600):
            n = rng.randint(0, 40)
            seq = []
            for _ in range(n):
                r = rng.random()
                if r < 0.1:
                    seq.append(rng.choice([0, 1, 50254, 50276, 50277, 50278, 50279, 50280]))
                elif r < 0.4:
                    seq.append(rng.randint(0, 300))  # byte-level single bytes, partial UTF-8
                else:
                    seq.append(rng.randint(0, vs - 1))
            seqs.append(seq)
        seqs += [tok.encode(s).ids for s in corpus[:150]]
        for seq in seqs:
            f.write(u32s(seq))
            f.write(blob(tok.decode(seq, skip_special_tokens=False).encode("utf-8")))
            f.write(blob(tok.decode(seq, skip_special_tokens=True).encode("utf-8")))
    print(f"decode: {len(seqs)} sequences")

    with tempfile.TemporaryDirectory() as td:
        bin_path = os.path.join(td, "tokenizer.bin")
        tokens = tokbin.build_tokens(tokbin.json.load(open(os.path.join(DATA, "tokenizer", "gpt-neox-20b.json"),
                                                           encoding="utf-8")), 50277)
        tokbin.write_bin(tokens, bin_path)
        vocab, raw = read_bin(bin_path)
    with open(os.path.join(OUT, "legacy_bin.fnv"), "w") as f:
        f.write(f"{fnv64(raw):016x} {len(raw)}\n")
    legacy_texts = [s.encode("utf-8") for s in corpus[:400]]
    legacy_texts += [l.encode("utf-8") for l in lines[:400]]
    legacy_texts += ["\n".join(lines[i:i + 30]).encode("utf-8") for i in range(400, 2000, 200)]
    legacy_texts += [b"\xff\xfe bad utf8 \x80\x80\x80\x80\x80\x80 x", b"\xe4\xb8", b"a\x00b", b"\xf0\x9f\x98",
                     b"\xc3\xa9\xcc\x81", b"Customer Support should", "日本語の文章".encode(), b" " * 40]
    with open(os.path.join(OUT, "legacy.bin"), "wb") as f:
        for t in legacy_texts:
            f.write(blob(t))
            f.write(u32s(legacy_encode(vocab, t)))
    print(f"legacy: {len(legacy_texts)} texts")

    if "--no-unicode" not in sys.argv:
        with open(os.path.join(OUT, "unicode_classes.txt"), "w") as f:
            f.write(unicode_classes())
        print("unicode classes written")


if __name__ == "__main__":
    main()

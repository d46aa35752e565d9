#!/usr/bin/env python3
"""Write the C project's tokenizer.bin ("MbTk") from an HF tokenizer.json.

    python3 py/tokenizer.py [tokenizer.json] [-o tokenizer.bin] [--vocab-size N]

tokenizer.bin: uint32 magic 0x4d62546b, int32 version 1, int32 vocab_size, int32
max_token_length, then per token int32 length and that many bytes (little-endian).

Each token's bytes are its byte-level decoded text: the vocabulary string mapped back
through GPT-2's bytes_to_unicode table (added tokens whose content is not byte-level, such
as runs of spaces, are written as their UTF-8). A token that is only part of a UTF-8
character is written as its raw bytes (the original exporter wrote U+FFFD for those,
which loses them). Ids without a token are written as empty strings.

Needs only the Python standard library. Without a path it uses, in order:
../shared/data/tokenizer/gpt-neox-20b.json (relative to the project root), then
EleutherAI/gpt-neox-20b's tokenizer.json in the local Hugging Face cache.

--vocab-size N writes ids 0..N-1 (default 50277, GPT-NeoX-20B's tokenizer, which Mamba
language models' embeddings cover; some copies of tokenizer.json carry extra chat tokens
from 50277 on). 0 writes every id the file defines.
"""
import argparse
import glob
import json
import os
import struct
import sys

MAGIC = 0x4D62546B


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


CHAR_BYTE = bytes_to_unicode()


def token_bytes(s):
    """HF ByteLevel decoder rule for one token string."""
    out = bytearray()
    for ch in s:
        b = CHAR_BYTE.get(ch)
        if b is None:
            return s.encode("utf-8")
        out.append(b)
    return bytes(out)


def find_default():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cands = [os.path.normpath(os.path.join(root, "..", "shared", "data", "tokenizer", "gpt-neox-20b.json"))]
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface")), "hub")
    cands += sorted(glob.glob(os.path.join(hub, "models--EleutherAI--gpt-neox-20b", "snapshots", "*", "tokenizer.json")))
    for c in cands:
        if os.path.isfile(c):
            return c
    return None


def build_tokens(j, vocab_size):
    strings = {}
    for s, i in j["model"]["vocab"].items():
        strings[i] = s
    for t in j.get("added_tokens", []):
        strings[t["id"]] = t["content"]
    n = max(strings) + 1 if strings else 0
    if vocab_size:
        n = vocab_size
    return [token_bytes(strings[i]) if i in strings else b"" for i in range(n)]


def write_bin(tokens, path):
    max_len = max((len(t) for t in tokens), default=0)
    with open(path, "wb") as f:
        f.write(struct.pack("<Iiii", MAGIC, 1, len(tokens), max_len))
        for t in tokens:
            f.write(struct.pack("<i", len(t)))
            f.write(t)
    return max_len


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", nargs="?", help="tokenizer.json (default: see --help)")
    ap.add_argument("-o", "--output", default="tokenizer.bin")
    ap.add_argument("--vocab-size", type=int, default=50277)
    a = ap.parse_args()
    path = a.json or find_default()
    if path is None:
        sys.exit("tokenizer.json not found: pass its path (looked in ../shared/data/tokenizer/"
                 "gpt-neox-20b.json and the Hugging Face cache for EleutherAI/gpt-neox-20b)")
    if not os.path.isfile(path):
        sys.exit(f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    tokens = build_tokens(j, a.vocab_size)
    max_len = write_bin(tokens, a.output)
    print(f"{path} -> {a.output}: {len(tokens)} tokens, max_token_length {max_len}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/seeds/<target>/ (deterministic).

Seeds are small valid inputs: fixtures from tests/fixtures, tiny v1 models
written here (float32, fp16 and int8 with scales), state blobs, WAVs, texts.
Run from the repository root: python3 fuzz/make_seeds.py
"""
import os, random, shutil, struct

R = "tests/fixtures"
S = "fuzz/seeds"


def put(target, name, data):
    os.makedirs(f"{S}/{target}", exist_ok=True)
    with open(f"{S}/{target}/{name}", "wb") as f:
        f.write(data)


def tiny_v1(qbytes, L=1, d=4, di=8, r=1, s=2, k=2, vocab=8, tied=1, seed=1):
    rnd = random.Random(seed)
    v = (vocab + 7) // 8 * 8
    hdr = struct.pack("<Ii8i", 0x4D616D62, 1, L, vocab, d, di, r, s, k, tied).ljust(256, b"\0")

    def f32(n, lo=-0.5, hi=0.5):
        return struct.pack(f"<{n}f", *[rnd.uniform(lo, hi) for _ in range(n)])

    def q(n):
        if qbytes == 4:
            return f32(n)
        if qbytes == 2:
            return struct.pack(f"<{n}e", *[rnd.uniform(-0.5, 0.5) for _ in range(n)])
        return bytes(rnd.randrange(256) for _ in range(n))

    body = f32(v * d)
    body += q(L * 2 * di * d) + q(L * di * k) + q(L * di) + q(L * (r + 2 * s) * di)
    body += q(L * di * r) + q(L * di)
    body += f32(L * di * s, -2.0, -0.1) + f32(L * di) + q(L * d * di)
    body += f32(L * d, 0.5, 1.5) + f32(d, 0.5, 1.5)
    if not tied:
        body += f32(v * d)
    scales = struct.pack(f"<{7 * L}f", *[0.01] * (7 * L)) if qbytes != 4 else None
    return hdr + body, scales


def v1_join(model, scales):
    s = scales or b""
    return bytes([scales is not None]) + struct.pack("<H", len(s)) + s + model


def main():
    shutil.rmtree(S, ignore_errors=True)
    for f in ["kv_types.gguf", "mamba_q8_0_tok.gguf", "mamba_bf16_v2.gguf", "mamba_q8row.gguf",
              "mamba_f16_untied.gguf"]:
        put("gguf", f, open(f"{R}/gguf/{f}", "rb").read())
    put("gguf", "C.q8_0.gguf", open(f"{R}/lm/C.q8_0.gguf", "rb").read())
    for name, qb, kw in [("f32", 4, {}), ("f32_untied", 4, {"tied": 0, "L": 2}), ("fp16", 2, {}),
                         ("int8", 1, {"L": 2})]:
        m, sc = tiny_v1(qb, **kw)
        put("v1", f"tiny_{name}", v1_join(m, sc))
        os.makedirs("tests/fixtures/tiny", exist_ok=True)
        open(f"tests/fixtures/tiny/{name}.bin", "wb").write(m)
        if sc:
            open(f"tests/fixtures/tiny/{name}.bin.scales", "wb").write(sc)
    put("v1", "B_int8", v1_join(open(f"{R}/lm/B.int8.bin", "rb").read(),
                                open(f"{R}/lm/B.int8.bin.scales", "rb").read()))
    put("tokenizer", "small.json", open(f"{R}/tokenizer/small.json", "rb").read())
    # A tiny tokenizer.bin: end of text, the ASCII bytes, a few merges.
    extra = [b"th", b"he", b"the", b" the", b"in", b"ing"]
    toks = [b"<|endoftext|>"] + [bytes([b]) for b in range(1, 128)] + extra
    tb = struct.pack("<Iiii", 0x4D62546B, 1, len(toks), max(map(len, toks)))
    for t in toks:
        tb += struct.pack("<i", len(t)) + t
    put("tokenizer", "tiny.bin", tb)
    open("tests/fixtures/tiny/tokenizer.bin", "wb").write(tb)
    for f in ["sf_pcm16.wav", "sf_u8.wav", "sf_ulaw.wav", "sf_pcm24.wav", "sf_float.wav",
              "sf_wavex_pcm16.wav", "sf_stereo_44k.wav"]:
        data = open(f"{R}/audio/{f}", "rb").read()
        put("wav", f, data)
    texts = ["Hello world, the cat and the dog.", "  leading spaces\n\nand\ttabs",
             "caf\u00e9 \u00e9\u0301 na\u00efve \u4e2d\u6587 \U0001f600",
             "<|endoftext|>the<|endoftext|>", "1234567 3.14 don't we'll I'M"]
    for i, t in enumerate(texts):
        put("encode", f"bpe_{i}", b"\0" + t.encode())
        put("encode", f"legacy_{i}", b"\1" + t.encode())
    # State blobs for tests/fixtures/lm/C.gguf (2 layers, d_model 32, d_inner 64, d_state 4, d_conv 2).
    rnd = random.Random(7)
    for name, pos, scale in [("zero", 0, 0.0), ("pos17", 17, 1.0), ("big", 1 << 40, 1e30)]:
        payload = struct.pack("<768f", *[rnd.uniform(-scale, scale) for _ in range(768)])
        h = 0xCBF29CE484222325
        for b in payload:
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        blob = b"MBST" + struct.pack("<7IQQ", 1, 2, 32, 64, 4, 2, 0, pos, h) + payload
        put("state", name, blob)
    put("encode", "invalid_utf8", b"\0ab\xff\xfe\xc3(\xe2\x82")


if __name__ == "__main__":
    main()

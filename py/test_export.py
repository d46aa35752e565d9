#!/usr/bin/env python3
"""Self-checks for py/export.py on the committed fixtures (numpy + gguf; torch optional).

  python3 py/test_export.py          # prints one line per check, exit 1 on failure

Checks: re-export reproduces the committed files byte for byte; the state-spaces
layout (safetensors, and pytorch_model.bin when torch is present) gives the same
v1 file; hub names resolve through a local HF cache and fail cleanly when absent;
v1 refuses use_bias checkpoints; v1 int8/fp16/bfloat8 round trips within their
error bounds; GGUF f16/bf16/q8_0/int8 tensors decode within bounds and the
numpy Mamba on them stays close to the float32 reference; tokenizer embedding.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIX = os.path.join(ROOT, "tests", "fixtures", "lm")
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no py/__pycache__ in the work tree
import export  # noqa: E402
import make_lm_fixtures as mk  # noqa: E402  (imports torch lazily only)

failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + (f"  ({detail})" if detail and (not cond or not detail.startswith("wrote")) else ""))
    if not cond:
        failures.append(name)


def run(*args, env=None):
    return subprocess.run([sys.executable, os.path.join(HERE, "export.py"), *args],
                          capture_output=True, text=True, env=env)


def same_bytes(a, b):
    with open(a, "rb") as f, open(b, "rb") as g:
        return f.read() == g.read()


def read_u32s(path):
    return np.fromfile(path, "<f4")


def to_state_spaces(hfdir, dest, as_bin=False):
    """Rewrite a transformers checkpoint folder in the original state-spaces layout."""
    from safetensors.numpy import load_file, save_file
    with open(os.path.join(hfdir, "config.json")) as f:
        c = json.load(f)
    w = load_file(os.path.join(hfdir, "model.safetensors"))
    emb = w.pop("backbone.embeddings.weight")
    rows = -(-emb.shape[0] // 8) * 8
    w["backbone.embedding.weight"] = export.rows_to(emb, rows)
    if "lm_head.weight" in w:
        w["lm_head.weight"] = export.rows_to(w["lm_head.weight"], rows)
    else:
        w["lm_head.weight"] = w["backbone.embedding.weight"].copy()  # stored tied copy
    cfg = {"d_model": c["hidden_size"], "n_layer": c["num_hidden_layers"], "vocab_size": c["vocab_size"],
           "ssm_cfg": {"d_state": c["state_size"], "d_conv": c["conv_kernel"], "expand": c["expand"],
                       "dt_rank": c["time_step_rank"]},
           "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True,
           "pad_vocab_size_multiple": 8, "tie_embeddings": c["tie_word_embeddings"]}
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(dest, "config.json"), "w") as f:
        json.dump(cfg, f)
    if as_bin:
        import torch
        torch.save({k: torch.from_numpy(np.array(v)) for k, v in w.items()},
                   os.path.join(dest, "pytorch_model.bin"))
    else:
        save_file(w, os.path.join(dest, "model.safetensors"))


def meta(name):
    out = {}
    with open(os.path.join(FIX, name, "meta.txt")) as f:
        for line in f:
            k, _, v = line.partition(" = ")
            out[k.strip()] = v.strip()
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="export_test_")
    try:
        # 1. byte-identical re-export
        for name in ["A", "B", "C"]:
            hf = os.path.join(FIX, name, "hf")
            out = os.path.join(tmp, f"{name}.gguf")
            r = run(hf, out)
            check(f"{name}: GGUF re-export identical", r.returncode == 0 and same_bytes(out, os.path.join(FIX, f"{name}.gguf")), r.stderr.strip()[-200:])
            if os.path.exists(os.path.join(FIX, f"{name}.bin")):
                out = os.path.join(tmp, f"{name}.bin")
                r = run(hf, out, "--legacy")
                check(f"{name}: v1 re-export identical", r.returncode == 0 and same_bytes(out, os.path.join(FIX, f"{name}.bin")))

        # 2. state-spaces layout
        try:
            import torch  # noqa: F401
            have_torch = True
        except ImportError:
            have_torch = False
        for name in ["A", "B"]:
            for as_bin in ([False, True] if have_torch else [False]):
                d = os.path.join(tmp, f"ss_{name}_{int(as_bin)}")
                to_state_spaces(os.path.join(FIX, name, "hf"), d, as_bin)
                out = os.path.join(tmp, f"ss_{name}.bin")
                r = run(d, out, "--legacy")
                kind = "pytorch_model.bin" if as_bin else "safetensors"
                check(f"{name}: state-spaces layout ({kind}) -> same v1 file",
                      r.returncode == 0 and same_bytes(out, os.path.join(FIX, f"{name}.bin")), r.stderr.strip()[-300:])
                out = os.path.join(tmp, f"ss_{name}.gguf")
                r = run(d, out)
                kv, T = mk.read_gguf(out)
                kv0, T0 = mk.read_gguf(os.path.join(FIX, f"{name}.gguf"))
                same = set(T) == set(T0) and all(
                    np.array_equal(T[k][:T0[k].shape[0]], T0[k]) for k in T0)
                check(f"{name}: state-spaces layout ({kind}) -> same GGUF tensors (embedding padded to 8)",
                      r.returncode == 0 and same and T["token_embd.weight"].shape[0] % 8 == 0)

        # 3. hub names
        cache = os.path.join(tmp, "hub")
        snap = os.path.join(cache, "models--test--B", "snapshots", "0123abc")
        os.makedirs(snap)
        for fn in os.listdir(os.path.join(FIX, "B", "hf")):
            os.symlink(os.path.join(FIX, "B", "hf", fn), os.path.join(snap, fn))
        os.makedirs(os.path.join(cache, "models--test--B", "refs"))
        with open(os.path.join(cache, "models--test--B", "refs", "main"), "w") as f:
            f.write("0123abc")
        env = dict(os.environ, HF_HUB_CACHE=cache)
        out = os.path.join(tmp, "hub.gguf")
        r = run("test/B", out, env=env)
        check("hub name found in HF_HUB_CACHE", r.returncode == 0 and same_bytes(out, os.path.join(FIX, "B.gguf")))
        r = run("test/absent", out, env=env)
        check("absent hub name: exit 1 with a plain message",
              r.returncode == 1 and "never downloads" in r.stderr, r.stderr.strip()[:120])

        # 4. v1 refuses biases
        r = run(os.path.join(FIX, "C", "hf"), os.path.join(tmp, "C.bin"), "--legacy")
        check("v1 refuses in/out_proj bias", r.returncode == 1 and "bias" in r.stderr)

        # 5. bfloat8 codec: every finite code round-trips; ties go to the even code
        codes = np.arange(256, dtype=np.uint8)
        finite = ((codes >> 2) & 31) != 31
        vals = export.bfloat8_decode(codes[finite])
        back = export.bfloat8_encode(vals)
        expect = codes[finite].copy()
        expect[expect == 0x80] = 0  # -0 encodes as +0
        check("bfloat8 decode->encode round trip", np.array_equal(back, expect))
        tab = export.bfloat8_table()
        mids = (tab[:-1] + tab[1:]) / 2
        enc = export.bfloat8_encode(mids.astype(np.float32))
        ok = all(int(e) % 2 == 0 for e, mid in zip(enc, mids) if float(np.float32(mid)) == mid)
        check("bfloat8 ties to even", ok)

        # 6. v1 quantized variants
        m = export.load_model(os.path.join(FIX, "B", "hf"))
        for q, tol_fn in [("int8", lambda s: s * 0.5 + 1e-7),
                          ("fp16", lambda s: s * 16.5 + 1e-7),
                          ("bfloat8", None)]:
            out = os.path.join(tmp, f"B.{q}.bin")
            r = run(os.path.join(FIX, "B", "hf"), out, f"--{q}")
            W, scales = read_v1_quant(out, q)
            nbytes = {"int8": 1, "fp16": 2, "bfloat8": 1}[q]
            ok = r.returncode == 0 and scales.size == 7 * m.n_layers
            worst = 0.0
            for li, L in enumerate(m.layers):
                for ki, key in enumerate(export.V1_QUANTIZED):
                    ref = L[key] if L[key] is not None else np.zeros(m.d_inner, np.float32)
                    got = W["layers"][li][key]
                    s = scales[ki * m.n_layers + li]
                    err = np.max(np.abs(got - ref))
                    if q == "bfloat8":
                        # half a step of a 2-bit mantissa: relative 1/8, plus subnormal floor
                        bound = np.max(np.abs(ref) / 8 + s * 2.0 ** -17)
                        err = np.max(np.abs(got - ref) - (np.abs(ref) / 8 + s * 2.0 ** -17))
                        ok &= err <= 1e-6
                    else:
                        ok &= err <= tol_fn(s) * (1 + 1e-5)
                    worst = max(worst, float(err))
            check(f"v1 --{q}: {nbytes}-byte weights within bounds, .scales has 7*n_layers floats", ok, f"worst |err| {worst:.3g}" if q != "bfloat8" else "within half a mantissa step")

        # 7. GGUF dtypes
        import gguf
        for name, dt in [("A", "f16"), ("A", "bf16"), ("A", "q8_0"), ("C", "q8_0"), ("B", "int8"), ("C", "int8")]:
            out = os.path.join(tmp, f"{name}.{dt}.gguf")
            r = run(os.path.join(FIX, name, "hf"), out, "--dtype", dt)
            if r.returncode != 0:
                check(f"{name} GGUF {dt}", False, r.stderr[-300:])
                continue
            kv, T = mk.read_gguf(out)
            kv0, T0 = mk.read_gguf(os.path.join(FIX, f"{name}.gguf"))
            types = gguf_types(out)
            ok = True
            for k, ref in T0.items():
                t = types[k]
                if k.endswith(("norm.weight", ".bias", "ssm_a", "ssm_d", "ssm_conv1d.weight")):
                    ok &= t == 0 and np.array_equal(T[k], ref)
                elif dt == "q8_0":
                    ok &= t == (8 if ref.shape[1] % 32 == 0 else 0)
                    ok &= np.max(np.abs(T[k] - ref)) <= np.max(np.abs(ref)) / 127 * 0.51 + 1e-6
                elif dt == "int8":
                    ok &= t == 1024
                    rowtol = np.max(np.abs(ref), axis=1) / 127 * 0.5 * (1 + 1e-5) + 1e-9
                    ok &= bool(np.all(np.abs(T[k] - ref) <= rowtol[:, None]))
                else:
                    ok &= t == {"f16": 1, "bf16": 30}[dt]
                    ok &= np.max(np.abs(T[k] - ref)) <= np.max(np.abs(ref)) * (2 ** -11 if dt == "f16" else 2 ** -8)
            if dt == "int8":
                ok &= kv.get("libmamba.int8_scheme") == "q8_row"
            else:
                rd = gguf.GGUFReader(out)  # the reference reader must accept llama.cpp-style files
                ok &= len(rd.tensors) == len(T0)
            # the numpy Mamba on the quantized file stays near the f32 reference
            md = meta(name)
            prompt = [int(x) for x in md["prompt"].split()]
            ref_logits = np.fromfile(os.path.join(FIX, name, "logits.f32"), "<f4").reshape(len(prompt), -1)
            nm = mk.NumpyMamba(mk.gguf_to_weights(kv, T))
            lg = np.stack([nm.step(t) for t in prompt])[:, :ref_logits.shape[1]]
            rel = float(np.max(np.abs(lg - ref_logits)) / np.max(np.abs(ref_logits)))
            n_q = sum(1 for k in T0 if types[k] not in (0,))
            # (a smoke bound: these random models amplify 8-bit noise; the decode bounds are the real test)
            check(f"{name} GGUF {dt}: tensor types, decode bounds, logits rel err", ok and rel < 0.2,
                  f"{n_q} quantized tensors, logits max rel err {rel:.2g}")

        # 8. tokenizer embedding (synthetic tokenizer.json for model A: 1003 rows)
        tj = {"model": {"type": "BPE", "vocab": {f"t{i}": i for i in range(2, 1000)} | {"Ġ": 1000, "<|endoftext|>": 0},
                        "merges": ["Ġ t", ["t", "1"]]},
              "added_tokens": [{"id": 0, "content": "<|endoftext|>", "special": True},
                               {"id": 1, "content": "<|padding|>", "special": True},
                               {"id": 1001, "content": "  ", "special": False}]}
        tpath = os.path.join(tmp, "tokenizer.json")
        with open(tpath, "w") as f:
            json.dump(tj, f)
        out = os.path.join(tmp, "A.tok.gguf")
        r = run(os.path.join(FIX, "A", "hf"), out, "--tokenizer", tpath)
        rd = gguf.GGUFReader(out)
        f = rd.fields
        toks = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode() for i in f["tokenizer.ggml.tokens"].data]
        types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
        merges = [bytes(f["tokenizer.ggml.merges"].parts[i]).decode() for i in f["tokenizer.ggml.merges"].data]
        model_s = bytes(f["tokenizer.ggml.model"].parts[-1]).decode()
        pre_s = bytes(f["tokenizer.ggml.pre"].parts[-1]).decode()
        ok = (r.returncode == 0 and len(toks) == 1003 and toks[1000] == "Ġ" and toks[1001] == "  "
              and toks[1002] == "[PAD1002]" and types[0] == 3 and types[1] == 3 and types[5] == 1
              and types[1001] == 4 and types[1002] == 5 and merges == ["Ġ t", "t 1"]
              and model_s == "gpt2" and pre_s == "mpt"
              and int(f["tokenizer.ggml.bos_token_id"].parts[-1][0]) == 0)
        check("tokenizer embedded (gpt2/mpt, PAD rows, token types, merges)", ok)
        neox = os.path.join(ROOT, "..", "shared", "data", "tokenizer", "gpt-neox-20b.json")
        if os.path.isfile(neox):
            id_to_tok, special, mg = export.load_tokenizer_json(neox)
            check("gpt-neox-20b.json parses: 50009 merges, 0/1 special, 50254..50276 user-defined",
                  len(id_to_tok) >= 50277 and len(mg) == 50009 and special.get(0) and special.get(1)
                  and all(special.get(i) is False for i in range(50254, 50277)),
                  f"{len(id_to_tok)} token ids, {len(mg)} merges")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("all export checks passed" if not failures else f"{len(failures)} FAILED: {failures}")
    return 1 if failures else 0


def gguf_types(path):
    """name -> ggml type id, parsed independently (GGUFReader rejects type 1024)."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 24
    n_t, n_kv = struct.unpack_from("<QQ", data, 8)

    def rstr(p):
        n = struct.unpack_from("<Q", data, p)[0]
        return data[p + 8:p + 8 + n].decode(), p + 8 + n

    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip(p, t):
        if t in sizes:
            return p + sizes[t]
        if t == 8:
            return rstr(p)[1]
        et, n = struct.unpack_from("<IQ", data, p)
        p += 12
        for _ in range(n):
            p = skip(p, et)
        return p

    for _ in range(n_kv):
        _, pos = rstr(pos)
        t = struct.unpack_from("<I", data, pos)[0]
        pos = skip(pos + 4, t)
    out = {}
    for _ in range(n_t):
        name, pos = rstr(pos)
        nd = struct.unpack_from("<I", data, pos)[0]
        pos += 4 + 8 * nd
        out[name] = struct.unpack_from("<I", data, pos)[0]
        pos += 12
    return out


def read_v1_quant(path, q):
    """Dequantize a quantized v1 file with its .scales sidecar (independent of export.py's writer)."""
    with open(path, "rb") as f:
        data = f.read()
    n_layers, vocab, dim, di, r, ds, dc, shared = struct.unpack_from("<8i", data, 8)
    scales = np.fromfile(path + ".scales", "<f4")
    rv = -(-vocab // 8) * 8
    pos = 256 + rv * dim * 4
    shapes = {"in_w": (2 * di, dim), "conv_w": (di, dc), "conv_b": (di,), "x_w": (r + 2 * ds, di),
              "dt_w": (di, r), "dt_b": (di,), "A": (di, ds), "D": (di,), "out_w": (dim, di), "norm": (dim,)}
    layers = [{} for _ in range(n_layers)]
    for key, shp in shapes.items():
        n = int(np.prod(shp))
        for li in range(n_layers):
            if key in export.V1_QUANTIZED:
                s = scales[export.V1_QUANTIZED.index(key) * n_layers + li]
                if q == "int8":
                    v = np.frombuffer(data, np.int8, n, pos).astype(np.float32)
                    pos += n
                elif q == "fp16":
                    v = np.frombuffer(data, "<f2", n, pos).astype(np.float32)
                    pos += 2 * n
                else:
                    v = export.bfloat8_decode(np.frombuffer(data, np.uint8, n, pos))
                    pos += n
                layers[li][key] = (v * s).reshape(shp)
            else:
                layers[li][key] = np.frombuffer(data, "<f4", n, pos).reshape(shp)
                pos += 4 * n
    pos += dim * 4
    if not shared:
        pos += rv * dim * 4
    assert pos == len(data), (pos, len(data))
    return {"layers": layers}, scales


if __name__ == "__main__":
    sys.exit(main())

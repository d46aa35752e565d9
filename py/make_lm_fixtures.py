#!/usr/bin/env python3
"""Build the small random Mamba LM fixtures under tests/fixtures/lm/.

Needs torch + transformers (CPU; the slow pure-PyTorch path, no mamba_ssm /
causal_conv1d kernels) to regenerate; the Rust tests only read the committed
files.  For each model NAME:

  tests/fixtures/lm/NAME/hf/{config.json,model.safetensors}   transformers checkpoint
  tests/fixtures/lm/NAME.bin    v1 "Mamb" float32 (only for use_bias=False models)
  tests/fixtures/lm/NAME.gguf   GGUF f32 written by py/export.py
  tests/fixtures/lm/NAME/meta.txt and raw little-endian reference arrays (see meta.txt)

It also checks the exported files with an independent numpy implementation of
the Mamba-1 block in step mode (float64), reading the v1 and GGUF files with
its own parsers, and prints / records the max differences against transformers.

Usage: python3 py/make_lm_fixtures.py [--out tests/fixtures/lm]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROMPT_LEN = 32
GEN_LEN = 32
STATE_AFTER_GEN = 16

# quantized variants written next to NAME.bin / NAME.gguf: (file, export.py flags, reader)
VARIANTS = {
    "B": [("B.int8.bin", ["--int8"], ("v1", "int8")),
          ("B.q8row.gguf", ["--dtype", "int8"], ("gguf", None))],
    "C": [("C.q8_0.gguf", ["--dtype", "q8_0"], ("gguf", None)),
          ("C.q8row.gguf", ["--dtype", "int8"], ("gguf", None)),
          ("C.f16.gguf", ["--dtype", "f16"], ("gguf", None)),
          ("C.bf16.gguf", ["--dtype", "bf16"], ("gguf", None))],
}

MODELS = {
    # name: (config kwargs, seed, write v1)
    "A": (dict(vocab_size=1003, hidden_size=72, num_hidden_layers=3, state_size=16, conv_kernel=4,
               expand=2, time_step_rank="auto", tie_word_embeddings=True, use_bias=False,
               use_conv_bias=True, layer_norm_epsilon=1e-5), 42, True),
    "B": (dict(vocab_size=517, hidden_size=40, num_hidden_layers=2, state_size=8, conv_kernel=3,
               expand=2, time_step_rank=5, tie_word_embeddings=False, use_bias=False,
               use_conv_bias=True, layer_norm_epsilon=1e-5), 2, True),
    # GGUF only: in/out_proj biases, no conv bias, eps 1e-6
    "C": (dict(vocab_size=301, hidden_size=32, num_hidden_layers=2, state_size=4, conv_kernel=2,
               expand=2, time_step_rank=3, tie_word_embeddings=True, use_bias=True,
               use_conv_bias=False, layer_norm_epsilon=1e-6), 91011, False),
}


# ---------------------------------------------------------------------------
# model construction with transformers
# ---------------------------------------------------------------------------

def build_model(cfg_kwargs, seed):
    import torch
    from transformers import MambaConfig, MambaForCausalLM

    torch.manual_seed(seed)
    cfg = MambaConfig(residual_in_fp32=True, **cfg_kwargs)
    model = MambaForCausalLM(cfg).float().eval()
    g = torch.Generator().manual_seed(seed + 1)

    def rn(*shape, std=1.0):
        return torch.randn(*shape, generator=g) * std

    with torch.no_grad():
        sd = dict(model.named_parameters())
        dim = cfg.hidden_size
        di = cfg.intermediate_size
        r = int(cfg.time_step_rank)
        sd["backbone.embeddings.weight"].copy_(rn(cfg.vocab_size, dim, std=0.35))
        if not cfg.tie_word_embeddings:
            sd["lm_head.weight"].copy_(rn(cfg.vocab_size, dim, std=0.35))
        sd["backbone.norm_f.weight"].copy_(1 + rn(dim, std=0.2))
        for i in range(cfg.num_hidden_layers):
            p = f"backbone.layers.{i}."
            sd[p + "norm.weight"].copy_(1 + rn(dim, std=0.2))
            sd[p + "mixer.in_proj.weight"].copy_(rn(2 * di, dim, std=dim ** -0.5))
            sd[p + "mixer.conv1d.weight"].copy_(rn(di, 1, cfg.conv_kernel, std=0.5))
            if cfg.use_conv_bias:
                sd[p + "mixer.conv1d.bias"].copy_(rn(di, std=0.2))
            sd[p + "mixer.x_proj.weight"].copy_(rn(r + 2 * cfg.state_size, di, std=di ** -0.5))
            sd[p + "mixer.dt_proj.weight"].copy_(rn(di, r, std=0.5 * r ** -0.5))
            dt_b = sd[p + "mixer.dt_proj.bias"] + rn(di, std=0.5)
            if i == 0:
                # a few channels far in the softplus(x > 20) = x branch
                dt_b[:3] = torch.tensor([21.0, 25.0, 30.0])
            sd[p + "mixer.dt_proj.bias"].copy_(dt_b)
            A = torch.arange(1, cfg.state_size + 1, dtype=torch.float32)[None, :].expand(di, -1)
            sd[p + "mixer.A_log"].copy_(torch.log(A) + rn(di, cfg.state_size, std=0.3))
            sd[p + "mixer.D"].copy_(1 + rn(di, std=0.5))
            sd[p + "mixer.out_proj.weight"].copy_(rn(dim, di, std=di ** -0.5))
            if cfg.use_bias:
                sd[p + "mixer.in_proj.bias"].copy_(rn(2 * di, std=0.2))
                sd[p + "mixer.out_proj.bias"].copy_(rn(dim, std=0.2))
    return model, cfg


def hf_reference(model, cfg, prompt):
    """Per-position logits, greedy continuation (step mode with the cache) and states."""
    import torch

    def states(cache):
        conv = np.stack([cache.get_conv_state(i, state_idx=0)[0].float().numpy()
                         for i in range(cfg.num_hidden_layers)])
        ssm = np.stack([cache.get_recurrent_state(i, state_idx=0)[0].float().numpy()
                        for i in range(cfg.num_hidden_layers)])
        return conv, ssm

    with torch.no_grad():
        ids = torch.tensor([prompt], dtype=torch.long)
        out = model(ids, use_cache=True)
        logits = out.logits[0].float().numpy().copy()
        cache = out.cache_params
        st_prompt = states(cache)
        nxt = int(np.argmax(logits[-1]))
        gen, step_logits, margins = [], [], []
        st_gen = None
        for t in range(GEN_LEN):
            gen.append(nxt)
            o = model(torch.tensor([[nxt]]), cache_params=cache, use_cache=True)
            cache = o.cache_params
            lg = o.logits[0, -1].float().numpy().copy()
            step_logits.append(lg)
            if t + 1 == STATE_AFTER_GEN:
                st_gen = states(cache)
            srt = np.sort(lg)
            margins.append(float(srt[-1] - srt[-2]))
            nxt = int(np.argmax(lg))
        # margin of the first generated token too
        srt = np.sort(logits[-1])
        margins.insert(0, float(srt[-1] - srt[-2]))
        step_logits = np.stack(step_logits)
        # full recompute over prompt + generated tokens must match the step-mode logits
        full = model(torch.tensor([prompt + gen], dtype=torch.long)).logits[0].float().numpy()
        diff_full_step = float(np.max(np.abs(full[PROMPT_LEN:PROMPT_LEN + GEN_LEN] - step_logits)))
        greedy_full = [int(np.argmax(full[PROMPT_LEN - 1 + t])) for t in range(GEN_LEN)]
        assert greedy_full == gen, "greedy tokens differ between step mode and full recompute"
    return dict(logits=logits, gen=gen, step_logits=step_logits, st_prompt=st_prompt, st_gen=st_gen,
                margins=margins[:GEN_LEN], diff_full_step=diff_full_step)


# ---------------------------------------------------------------------------
# independent readers + numpy Mamba (step mode)
# ---------------------------------------------------------------------------

V1_QUANT = ["in_w", "conv_w", "conv_b", "x_w", "dt_w", "dt_b", "out_w"]


def bf8_decode(codes):
    e = ((codes >> 2) & 31).astype(np.float64)
    m = (codes & 3).astype(np.float64)
    v = np.where(e == 0, m / 4 * 2.0 ** -14, 2.0 ** (e - 15) * (1 + m / 4))
    v = np.where(e == 31, np.inf, v)
    return np.where(codes & 0x80, -v, v)


def read_v1(path, quant=None):
    """v1 reader; quant = None (float32), 'int8', 'fp16' or 'bfloat8' (then reads PATH.scales)."""
    with open(path, "rb") as f:
        data = f.read()
    magic, version = struct.unpack_from("<Ii", data, 0)
    assert magic == 0x4D616D62 and version == 1
    n_layers, vocab, dim, di, r, ds, dc, shared = struct.unpack_from("<8i", data, 8)
    rv = -(-vocab // 8) * 8
    scales = np.fromfile(path + ".scales", "<f4") if quant else None
    pos = 256

    def take(*shape, key=None, layer=0):
        nonlocal pos
        n = int(np.prod(shape))
        if quant and key in V1_QUANT:
            s = float(scales[V1_QUANT.index(key) * n_layers + layer])
            if quant == "int8":
                a = np.frombuffer(data, np.int8, n, pos).astype(np.float64)
            elif quant == "fp16":
                a = np.frombuffer(data, "<f2", n, pos).astype(np.float64)
            else:
                a = bf8_decode(np.frombuffer(data, np.uint8, n, pos))
            pos += n * (2 if quant == "fp16" else 1)
            # dequantized value = stored value x scale, computed in float32 like a C/Rust loader
            return (a.astype(np.float32) * np.float32(s)).astype(np.float64).reshape(shape)
        a = np.frombuffer(data, "<f4", n, pos).reshape(shape).astype(np.float64)
        pos += 4 * n
        return a

    W = {"emb": take(rv, dim)}
    per = {}
    for key, shape in [("in_w", (2 * di, dim)), ("conv_w", (di, dc)), ("conv_b", (di,)),
                       ("x_w", (r + 2 * ds, di)), ("dt_w", (di, r)), ("dt_b", (di,)),
                       ("A", (di, ds)), ("D", (di,)), ("out_w", (dim, di)), ("norm", (dim,))]:
        per[key] = [take(*shape, key=key, layer=i) for i in range(n_layers)]
    W["layers"] = [{k: per[k][i] for k in per} for i in range(n_layers)]
    for L in W["layers"]:
        L["in_b"] = None
        L["out_b"] = None
    W["norm_f"] = take(dim)
    W["head"] = W["emb"] if shared else take(rv, dim)
    assert pos == len(data), "v1 file size does not match its header"
    W.update(n_layers=n_layers, vocab=vocab, dim=dim, d_inner=di, dt_rank=r, d_state=ds, d_conv=dc,
             eps=1e-5)
    return W


def read_gguf(path):
    """Tiny independent GGUF reader: returns (kv dict, tensors dict name -> float64 numpy)."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def rd(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def rstr():
        nonlocal pos
        n = rd("Q")
        s = data[pos:pos + n].decode("utf-8")
        pos += n
        return s

    scal = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def rval(t):
        if t in scal:
            return rd(scal[t])
        if t == 8:
            return rstr()
        if t == 9:
            et = rd("I")
            n = rd("Q")
            return [rval(et) for _ in range(n)]
        raise ValueError(f"gguf value type {t}")

    assert data[:4] == b"GGUF"
    pos = 4
    version = rd("I")
    assert version == 3
    n_t = rd("Q")
    n_kv = rd("Q")
    kv = {}
    for _ in range(n_kv):
        k = rstr()
        kv[k] = rval(rd("I"))
    infos = []
    for _ in range(n_t):
        name = rstr()
        nd = rd("I")
        dims = [rd("Q") for _ in range(nd)]
        typ = rd("I")
        off = rd("Q")
        infos.append((name, dims, typ, off))
    align = kv.get("general.alignment", 32)
    base = -(-pos // align) * align
    tensors = {}
    for name, dims, typ, off in infos:
        shape = tuple(reversed(dims))  # numpy (row-major) order
        n = int(np.prod(dims))
        start = base + off
        if typ == 0:
            a = np.frombuffer(data, "<f4", n, start)
        elif typ == 1:
            a = np.frombuffer(data, "<f2", n, start).astype(np.float32)
        elif typ == 30:
            a = (np.frombuffer(data, "<u2", n, start).astype(np.uint32) << 16).view(np.float32)
        elif typ == 8:  # Q8_0
            nb = n // 32
            blk = np.frombuffer(data, np.uint8, nb * 34, start).reshape(nb, 34)
            d = blk[:, :2].copy().view("<f2").astype(np.float32)
            q = blk[:, 2:].view(np.int8).astype(np.float32)
            a = (q * d).ravel()
        elif typ == 1024:  # libmamba q8_row
            rows, cols = (shape[0], shape[1])
            rb = 4 + -(-cols // 4) * 4
            raw = np.frombuffer(data, np.uint8, rows * rb, start).reshape(rows, rb)
            sc = raw[:, :4].copy().view("<f4").reshape(rows)
            a = raw[:, 4:4 + cols].view(np.int8).astype(np.float32) * sc[:, None]
        else:
            raise ValueError(f"{name}: ggml type {typ}")
        tensors[name] = np.asarray(a, np.float64).reshape(shape)
    return kv, tensors


def gguf_to_weights(kv, T):
    nl = kv["mamba.block_count"]
    W = {"emb": T["token_embd.weight"], "norm_f": T["output_norm.weight"]}
    W["head"] = T.get("output.weight", W["emb"])
    W["layers"] = []
    for i in range(nl):
        p = f"blk.{i}."
        W["layers"].append({
            "norm": T[p + "attn_norm.weight"], "in_w": T[p + "ssm_in.weight"],
            "in_b": T.get(p + "ssm_in.bias"), "conv_w": T[p + "ssm_conv1d.weight"],
            "conv_b": T[p + "ssm_conv1d.bias"], "x_w": T[p + "ssm_x.weight"],
            "dt_w": T[p + "ssm_dt.weight"], "dt_b": T[p + "ssm_dt.bias"], "A": T[p + "ssm_a"],
            "D": T[p + "ssm_d"], "out_w": T[p + "ssm_out.weight"], "out_b": T.get(p + "ssm_out.bias"),
        })
    W.update(n_layers=nl, dim=kv["mamba.embedding_length"], d_inner=kv["mamba.ssm.inner_size"],
             d_state=kv["mamba.ssm.state_size"], d_conv=kv["mamba.ssm.conv_kernel"],
             dt_rank=kv["mamba.ssm.time_step_rank"], eps=kv["mamba.attention.layer_norm_rms_epsilon"])
    return W


class NumpyMamba:
    """Mamba-1 LM, one token at a time, float64."""

    def __init__(self, W):
        self.W = W
        nl, di = W["n_layers"], W["d_inner"]
        self.conv = np.zeros((nl, di, W["d_conv"]))
        self.ssm = np.zeros((nl, di, W["d_state"]))

    @staticmethod
    def rmsnorm(x, w, eps):
        return x / np.sqrt(np.mean(x * x) + eps) * w

    def step(self, tok):
        W = self.W
        r, ds = W["dt_rank"], W["d_state"]
        x = W["emb"][tok].copy()
        for i, L in enumerate(W["layers"]):
            h = self.rmsnorm(x, L["norm"], W["eps"])
            xz = L["in_w"] @ h
            if L["in_b"] is not None:
                xz = xz + L["in_b"]
            xi, z = xz[:W["d_inner"]], xz[W["d_inner"]:]
            cs = self.conv[i]
            cs[:, :-1] = cs[:, 1:]
            cs[:, -1] = xi
            u = np.sum(cs * L["conv_w"], axis=1) + L["conv_b"]
            u = u / (1 + np.exp(-u))                      # silu
            dbc = L["x_w"] @ u
            dt = L["dt_w"] @ dbc[:r] + L["dt_b"]
            dt = np.where(dt > 20, dt, np.log1p(np.exp(np.minimum(dt, 20))))  # softplus
            B, C = dbc[r:r + ds], dbc[r + ds:]
            s = self.ssm[i]
            s[:] = np.exp(dt[:, None] * L["A"]) * s + (dt * u)[:, None] * B[None, :]
            y = s @ C + L["D"] * u
            y = y * (z / (1 + np.exp(-z)))
            o = L["out_w"] @ y
            if L["out_b"] is not None:
                o = o + L["out_b"]
            x = x + o
        x = self.rmsnorm(x, W["norm_f"], W["eps"])
        return W["head"] @ x


def hf_to_weights(model, cfg):
    """The transformers parameters, mapped by hand (the yardstick for the exporter layout)."""
    sd = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    emb = sd["backbone.embeddings.weight"]
    W = {"emb": emb, "norm_f": sd["backbone.norm_f.weight"],
         "head": emb if cfg.tie_word_embeddings else sd["lm_head.weight"], "layers": []}
    for i in range(cfg.num_hidden_layers):
        p = f"backbone.layers.{i}."
        g = lambda n: sd.get(p + "mixer." + n)
        W["layers"].append({
            "norm": sd[p + "norm.weight"], "in_w": g("in_proj.weight"), "in_b": g("in_proj.bias"),
            "conv_w": g("conv1d.weight")[:, 0, :],
            "conv_b": g("conv1d.bias") if g("conv1d.bias") is not None else np.zeros(cfg.intermediate_size),
            "x_w": g("x_proj.weight"), "dt_w": g("dt_proj.weight"), "dt_b": g("dt_proj.bias"),
            "A": -np.exp(sd[p + "mixer.A_log"].astype(np.float32)).astype(np.float64),
            "D": g("D"), "out_w": g("out_proj.weight"), "out_b": g("out_proj.bias")})
    W.update(n_layers=cfg.num_hidden_layers, dim=cfg.hidden_size, d_inner=cfg.intermediate_size,
             d_state=cfg.state_size, d_conv=cfg.conv_kernel, dt_rank=int(cfg.time_step_rank),
             eps=cfg.layer_norm_epsilon)
    return W


def numpy_run(W, prompt, gen):
    nm = NumpyMamba(W)
    lp = np.stack([nm.step(t) for t in prompt])
    lg = np.stack([nm.step(t) for t in gen])
    return np.concatenate([lp, lg])


def numpy_check(W, prompt, gen, ref):
    """Run prompt + generated tokens in step mode; return max |diff| vs transformers."""
    nm = NumpyMamba(W)
    vocab = ref["logits"].shape[1]
    lp = np.stack([nm.step(t) for t in prompt])
    st_prompt = (nm.conv.copy(), nm.ssm.copy())
    lg = []
    st_gen = None
    for t, tok in enumerate(gen):
        lg.append(nm.step(tok))
        if t + 1 == STATE_AFTER_GEN:
            st_gen = (nm.conv.copy(), nm.ssm.copy())
    lg = np.stack(lg)
    extra_rows = lp[:, vocab:]
    both = np.concatenate([lp[:, :vocab], lg[:, :vocab]])
    scale = float(np.max(np.abs(ref["logits"])))
    return {
        "vs_numpy_on_hf_weights": float(np.max(np.abs(both - ref["np_hf"][:, :vocab]))),
        "prompt_logits_rel": float(np.max(np.abs(lp[:, :vocab] - ref["logits"]))) / scale,
        "prompt_logits": float(np.max(np.abs(lp[:, :vocab] - ref["logits"]))),
        "step_logits": float(np.max(np.abs(lg[:, :vocab] - ref["step_logits"]))),
        # states: max |diff| relative to the largest |value| of that state
        "conv_state_rel": max(float(np.max(np.abs(st_prompt[0] - ref["st_prompt"][0]) / np.max(np.abs(ref["st_prompt"][0])))),
                              float(np.max(np.abs(st_gen[0] - ref["st_gen"][0]) / np.max(np.abs(ref["st_gen"][0]))))),
        "ssm_state_rel": max(float(np.max(np.abs(st_prompt[1] - ref["st_prompt"][1]) / np.max(np.abs(ref["st_prompt"][1])))),
                             float(np.max(np.abs(st_gen[1] - ref["st_gen"][1]) / np.max(np.abs(ref["st_gen"][1]))))),
        "padded_rows_max_abs": float(np.max(np.abs(extra_rows))) if extra_rows.size else 0.0,
        "greedy_same": [int(np.argmax(lp[-1, :vocab]))] + [int(np.argmax(l[:vocab])) for l in lg[:-1]] == gen,
    }


# ---------------------------------------------------------------------------

def save_raw(path, arr, dtype):
    np.ascontiguousarray(arr, dtype=dtype).tofile(path)


def export(src, dest, *flags):
    cmd = [sys.executable, os.path.join(HERE, "export.py"), src, dest, *flags]
    subprocess.run(cmd, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "lm"))
    ap.add_argument("--only", nargs="*", help="model names to build (default all)")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    os.makedirs(args.out, exist_ok=True)
    tol = 1e-5
    ok = True
    for name, (kw, seed, write_v1) in MODELS.items():
        if args.only and name not in args.only:
            continue
        model, cfg = build_model(kw, seed)
        mdir = os.path.join(args.out, name)
        hfdir = os.path.join(mdir, "hf")
        if os.path.isdir(mdir):
            shutil.rmtree(mdir)
        os.makedirs(hfdir)
        model.save_pretrained(hfdir, safe_serialization=True)
        for extra in os.listdir(hfdir):
            if extra not in ("config.json", "model.safetensors"):
                os.remove(os.path.join(hfdir, extra))

        rng = np.random.default_rng(seed + 2)
        prompt = [int(t) for t in rng.integers(0, cfg.vocab_size, PROMPT_LEN)]
        ref = hf_reference(model, cfg, prompt)

        gguf_path = os.path.join(args.out, f"{name}.gguf")
        export(hfdir, gguf_path)
        files = {"gguf": gguf_path}
        if write_v1:
            bin_path = os.path.join(args.out, f"{name}.bin")
            export(hfdir, bin_path, "--legacy")
            files["v1"] = bin_path

        ref["np_hf"] = numpy_run(hf_to_weights(model, cfg), prompt, ref["gen"])
        checks = {}
        if "v1" in files:
            checks["v1"] = numpy_check(read_v1(files["v1"]), prompt, ref["gen"], ref)
        kv, T = read_gguf(gguf_path)
        checks["gguf"] = numpy_check(gguf_to_weights(kv, T), prompt, ref["gen"], ref)

        nl, di = cfg.num_hidden_layers, cfg.intermediate_size
        save_raw(os.path.join(mdir, "prompt.i32"), prompt, "<i4")
        save_raw(os.path.join(mdir, "logits.f32"), ref["logits"], "<f4")
        save_raw(os.path.join(mdir, "greedy.i32"), ref["gen"], "<i4")
        save_raw(os.path.join(mdir, "greedy_logits.f32"), ref["step_logits"], "<f4")
        save_raw(os.path.join(mdir, "state_prompt.f32"),
                 np.concatenate([ref["st_prompt"][0].ravel(), ref["st_prompt"][1].ravel()]), "<f4")
        save_raw(os.path.join(mdir, "state_gen16.f32"),
                 np.concatenate([ref["st_gen"][0].ravel(), ref["st_gen"][1].ravel()]), "<f4")

        meta = [
            ("name", name), ("seed", seed),
            ("generator", "py/make_lm_fixtures.py, transformers MambaForCausalLM CPU float32 slow path"),
            ("n_layers", nl), ("vocab_size", cfg.vocab_size),
            ("rounded_vocab", -(-cfg.vocab_size // 8) * 8), ("dim", cfg.hidden_size),
            ("d_inner", di), ("dt_rank", int(cfg.time_step_rank)), ("d_state", cfg.state_size),
            ("d_conv", cfg.conv_kernel), ("eps", repr(cfg.layer_norm_epsilon)),
            ("tied", int(cfg.tie_word_embeddings)), ("use_bias", int(cfg.use_bias)),
            ("use_conv_bias", int(cfg.use_conv_bias)),
            ("v1_file", f"{name}.bin" if write_v1 else "none"), ("gguf_file", f"{name}.gguf"),
            ("prompt_len", PROMPT_LEN), ("prompt", " ".join(map(str, prompt))),
            ("gen_len", GEN_LEN), ("greedy", " ".join(map(str, ref["gen"]))),
            ("state_after_gen", STATE_AFTER_GEN),
            ("prompt.i32", f"int32 LE [{PROMPT_LEN}]"),
            ("logits.f32", f"float32 LE [{PROMPT_LEN}][{cfg.vocab_size}] logits after each prompt token"),
            ("greedy.i32", f"int32 LE [{GEN_LEN}] greedy continuation; greedy[0] = argmax(logits[{PROMPT_LEN - 1}])"),
            ("greedy_logits.f32", f"float32 LE [{GEN_LEN}][{cfg.vocab_size}] logits after feeding greedy[t]; "
                                  f"greedy[t+1] = argmax(greedy_logits[t])"),
            ("state_prompt.f32", f"float32 LE conv [{nl}][{di}][{cfg.conv_kernel}] then ssm [{nl}][{di}][{cfg.state_size}] "
                                 f"after the {PROMPT_LEN} prompt tokens"),
            ("state_gen16.f32", f"same layout, after the prompt and greedy[0..{STATE_AFTER_GEN - 1}]"),
            ("conv_state_order", "oldest input first; last slot = the newest token's in_proj x part"),
            ("min_greedy_margin", f"{min(ref['margins']):.6g}"),
            ("hf_full_vs_step_max_abs", f"{ref['diff_full_step']:.3g}"),
        ]
        for kind, c in checks.items():
            for k, v in c.items():
                meta.append((f"check_numpy_{kind}_{k}", int(v) if isinstance(v, bool) else f"{v:.3g}"))
        with open(os.path.join(mdir, "meta.txt"), "w") as f:
            for k, v in meta:
                f.write(f"{k} = {v}\n")

        # quantized variants: files + numpy (float64 math on the dequantized weights) prompt logits
        for fname, flags, loader in VARIANTS.get(name, []):
            vpath = os.path.join(args.out, fname)
            export(hfdir, vpath, *flags)
            if loader[0] == "v1":
                W = read_v1(vpath, loader[1])
            else:
                kvq, Tq = read_gguf(vpath)
                W = gguf_to_weights(kvq, Tq)
            nm = NumpyMamba(W)
            lq = np.stack([nm.step(t) for t in prompt])[:, :cfg.vocab_size]
            lname = "logits_" + fname[len(name) + 1:].replace(".", "_") + ".f32"
            save_raw(os.path.join(mdir, lname), lq, "<f4")
            rel = float(np.max(np.abs(lq - ref["logits"])) / np.max(np.abs(ref["logits"])))
            meta.append((f"variant.{fname}.export_flags", " ".join(flags)))
            meta.append((f"variant.{fname}.logits", lname))
            meta.append((f"variant.{fname}.max_rel_diff_vs_f32", f"{rel:.2g}"))
            print(f"  variant {fname}: rel diff of its logits vs f32 reference {rel:.2g}")
        with open(os.path.join(mdir, "meta.txt"), "w") as f:
            for k, v in meta:
                f.write(f"{k} = {v}\n")

        print(f"model {name}: min greedy margin {min(ref['margins']):.4g}, "
              f"HF full-vs-step {ref['diff_full_step']:.3g}")
        for kind, c in checks.items():
            print(f"  numpy step mode on {kind}: {c}")
            bad = [k for k in ("vs_numpy_on_hf_weights", "prompt_logits_rel", "conv_state_rel", "ssm_state_rel")
                   if c[k] > (1e-9 if k == "vs_numpy_on_hf_weights" else tol)]
            if bad or not c["greedy_same"]:
                ok = False
                print(f"  FAIL: {bad} above {tol}")
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Export a Mamba-1 language model checkpoint to libmamba model files.

Input: a Hugging Face checkpoint folder (config.json + model.safetensors, sharded
safetensors, or pytorch_model.bin), either the original state-spaces layout
(`backbone.embedding.weight`, d_model/n_layer/ssm_cfg ...) or the transformers
`-hf` layout (`backbone.embeddings.weight`, hidden_size/num_hidden_layers/...),
or a hub name such as `state-spaces/mamba-130m` that is already in the local HF
cache.  Nothing is ever downloaded.

Output:
  * default: GGUF, architecture `mamba`, with the keys and tensor names that
    llama.cpp's converter writes (see ../shared/docs/checkpoints.md), plus the
    tokenizer when a tokenizer.json is found.
  * --legacy / --int8 / --bfloat8 / --fp16: the C project's v1 "Mamb" file
    (see ../shared/docs/c-project.md section 5), quantized variants with the
    `<dest>.scales` sidecar.

Reading safetensors needs numpy only; pytorch_model.bin needs torch.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import struct
import sys

import numpy as np

V1_MAGIC = 0x4D616D62
V1_HEADER_BYTES = 256
GGML_TYPE_Q8_ROW = 1024  # libmamba's own row-wise int8 scheme (not a ggml type)
FILE_TYPE_Q8_ROW = 1024  # general.file_type written for --dtype int8


class ExportError(Exception):
    pass


# ---------------------------------------------------------------------------
# locating and reading the checkpoint
# ---------------------------------------------------------------------------

def hf_cache_roots():
    roots = []
    if os.environ.get("HF_HUB_CACHE"):
        roots.append(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        roots.append(os.environ["HUGGINGFACE_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        roots.append(os.path.join(os.environ["HF_HOME"], "hub"))
    roots.append(os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub"))
    return roots


def resolve_source(source: str) -> str:
    """Return a checkpoint folder for a path or a cached hub name."""
    if os.path.isdir(source):
        return source
    if os.path.isfile(source):
        # a weights file given directly: use its folder
        return os.path.dirname(os.path.abspath(source))
    parts = source.split("/")
    if len(parts) == 2 and all(parts):
        repo_dir_name = "models--" + "--".join(parts)
        tried = []
        for root in hf_cache_roots():
            repo_dir = os.path.join(root, repo_dir_name)
            tried.append(repo_dir)
            snaps = []
            ref = os.path.join(repo_dir, "refs", "main")
            if os.path.isfile(ref):
                with open(ref) as f:
                    snaps.append(os.path.join(repo_dir, "snapshots", f.read().strip()))
            snaps += sorted(glob.glob(os.path.join(repo_dir, "snapshots", "*")))
            for snap in snaps:
                if os.path.isfile(os.path.join(snap, "config.json")):
                    return snap
        raise ExportError(
            f"'{source}' is not a folder and is not in the local Hugging Face cache "
            f"(looked in: {', '.join(tried)}). This tool never downloads; fetch it first, "
            f"e.g. `huggingface-cli download {source}`, or pass a local folder.")
    raise ExportError(f"'{source}' is neither a checkpoint folder nor a hub name (owner/name)")


_ST_DTYPES = {
    "F32": np.float32, "F16": np.float16, "F64": np.float64,
    "I8": np.int8, "U8": np.uint8, "I16": np.int16, "I32": np.int32, "I64": np.int64,
    "BF16": "bf16",
}


def read_safetensors(path: str) -> dict:
    """Minimal safetensors reader (numpy only). Returns name -> float32/int array."""
    out = {}
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
        base = 8 + hlen
        data = np.memmap(path, dtype=np.uint8, mode="r")
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[base + start: base + end]
        dt = _ST_DTYPES.get(info["dtype"])
        if dt is None:
            raise ExportError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        if dt == "bf16":
            arr = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = raw.view(np.dtype(dt).newbyteorder("<"))
        out[name] = np.array(arr.reshape(info["shape"]))
    return out


def read_torch_bin(path: str) -> dict:
    try:
        import torch
    except ImportError:
        raise ExportError(f"{path} is a PyTorch pickle: reading it needs torch (pip install torch)")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    return {k: v.detach().float().numpy() for k, v in sd.items()}


def read_weights(folder: str) -> dict:
    st = os.path.join(folder, "model.safetensors")
    st_index = os.path.join(folder, "model.safetensors.index.json")
    pt = os.path.join(folder, "pytorch_model.bin")
    pt_index = os.path.join(folder, "pytorch_model.bin.index.json")
    if os.path.isfile(st):
        return read_safetensors(st)
    if os.path.isfile(st_index):
        with open(st_index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        out = {}
        for fn in files:
            out.update(read_safetensors(os.path.join(folder, fn)))
        return out
    if os.path.isfile(pt):
        return read_torch_bin(pt)
    if os.path.isfile(pt_index):
        with open(pt_index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        out = {}
        for fn in files:
            out.update(read_torch_bin(os.path.join(folder, fn)))
        return out
    raise ExportError(f"{folder}: no model.safetensors or pytorch_model.bin found")


# ---------------------------------------------------------------------------
# normalised model description
# ---------------------------------------------------------------------------

class Model:
    """Config + weights in a layout-neutral form (PyTorch row-major shapes, float32)."""

    def __init__(self):
        self.n_layers = 0
        self.vocab_size = 0          # config vocab_size (may be < embedding rows)
        self.dim = 0
        self.d_inner = 0
        self.dt_rank = 0
        self.d_state = 0
        self.d_conv = 0
        self.eps = 1e-5
        self.tied = True
        self.pad_multiple = 8
        self.use_bias = False
        self.embedding = None        # (rows, dim)
        self.lm_head = None          # (rows, dim) or None when tied
        self.norm_f = None
        self.layers = []             # list of dicts


def _cfg_get(cfg, *keys, default=None):
    for k in keys:
        if k in cfg and cfg[k] is not None:
            return cfg[k]
    return default


def _f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def load_model(folder: str) -> Model:
    cfg_path = os.path.join(folder, "config.json")
    if not os.path.isfile(cfg_path):
        raise ExportError(f"{folder}: no config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    w = read_weights(folder)

    # strip common prefixes that some savers add
    if any(k.startswith("model.backbone.") for k in w):
        w = {k[len("model."):] if k.startswith("model.") else k: v for k, v in w.items()}

    if "backbone.embeddings.weight" in w:
        emb_name = "backbone.embeddings.weight"
    elif "backbone.embedding.weight" in w:
        emb_name = "backbone.embedding.weight"
    else:
        raise ExportError("no backbone.embedding(s).weight in the checkpoint: not a Mamba LM")

    ssm_cfg = cfg.get("ssm_cfg") or {}
    if ssm_cfg.get("layer", "Mamba1") not in ("Mamba1", None):
        raise ExportError(f"ssm_cfg.layer = {ssm_cfg.get('layer')}: only Mamba-1 is supported")

    m = Model()
    m.dim = int(_cfg_get(cfg, "hidden_size", "d_model"))
    m.n_layers = int(_cfg_get(cfg, "num_hidden_layers", "n_layer", "n_layers"))
    m.vocab_size = int(_cfg_get(cfg, "vocab_size"))
    m.d_state = int(_cfg_get(cfg, "state_size", default=ssm_cfg.get("d_state", 16)))
    m.d_conv = int(_cfg_get(cfg, "conv_kernel", default=ssm_cfg.get("d_conv", 4)))
    expand = int(_cfg_get(cfg, "expand", default=ssm_cfg.get("expand", 2)))
    m.d_inner = int(_cfg_get(cfg, "intermediate_size", default=expand * m.dim))
    dt_rank = _cfg_get(cfg, "time_step_rank", default=ssm_cfg.get("dt_rank", "auto"))
    m.dt_rank = math.ceil(m.dim / 16) if dt_rank == "auto" else int(dt_rank)
    m.eps = float(_cfg_get(cfg, "layer_norm_epsilon", "norm_epsilon", default=1e-5))
    m.tied = bool(_cfg_get(cfg, "tie_word_embeddings", "tie_embeddings", default=True))
    m.pad_multiple = int(_cfg_get(cfg, "pad_vocab_size_multiple", default=8))
    if cfg.get("rms_norm") is False:
        raise ExportError("rms_norm = false (LayerNorm) models are not supported")

    m.embedding = _f32(w.pop(emb_name))
    if m.embedding.shape[1] != m.dim:
        raise ExportError(f"embedding is {m.embedding.shape}, expected (*, {m.dim})")

    lm = w.pop("lm_head.weight", None)
    if lm is not None:
        lm = _f32(lm)
        if lm.shape == m.embedding.shape and np.array_equal(lm, m.embedding):
            m.tied = True          # a stored copy of the tied embedding
            lm = None
        else:
            m.tied = False
    elif not m.tied:
        raise ExportError("config says the head is not tied but lm_head.weight is missing")
    m.lm_head = lm

    m.norm_f = _f32(w.pop("backbone.norm_f.weight"))
    for i in range(m.n_layers):
        p = f"backbone.layers.{i}."

        def take(name, required=True):
            v = w.pop(p + name, None)
            if v is None and required:
                raise ExportError(f"missing tensor {p + name}")
            return None if v is None else _f32(v)

        L = {
            "norm": take("norm.weight"),
            "in_w": take("mixer.in_proj.weight"),
            "in_b": take("mixer.in_proj.bias", False),
            "conv_w": take("mixer.conv1d.weight"),
            "conv_b": take("mixer.conv1d.bias", False),
            "x_w": take("mixer.x_proj.weight"),
            "x_b": take("mixer.x_proj.bias", False),
            "dt_w": take("mixer.dt_proj.weight"),
            "dt_b": take("mixer.dt_proj.bias"),
            "A_log": take("mixer.A_log"),
            "D": take("mixer.D"),
            "out_w": take("mixer.out_proj.weight"),
            "out_b": take("mixer.out_proj.bias", False),
        }
        if L["x_b"] is not None:
            raise ExportError(f"{p}mixer.x_proj.bias present: not a standard Mamba-1 block")
        L["conv_w"] = L["conv_w"].reshape(L["conv_w"].shape[0], -1)  # (d_inner, 1, d_conv) -> (d_inner, d_conv)
        if L["in_b"] is not None or L["out_b"] is not None:
            m.use_bias = True
            if L["in_b"] is None:
                L["in_b"] = np.zeros(2 * m.d_inner, np.float32)
            if L["out_b"] is None:
                L["out_b"] = np.zeros(m.dim, np.float32)
        expect = {
            "norm": (m.dim,), "in_w": (2 * m.d_inner, m.dim), "conv_w": (m.d_inner, m.d_conv),
            "x_w": (m.dt_rank + 2 * m.d_state, m.d_inner), "dt_w": (m.d_inner, m.dt_rank),
            "dt_b": (m.d_inner,), "A_log": (m.d_inner, m.d_state), "D": (m.d_inner,),
            "out_w": (m.dim, m.d_inner),
        }
        for k, shp in expect.items():
            if tuple(L[k].shape) != shp:
                raise ExportError(f"{p}{k}: shape {tuple(L[k].shape)}, config implies {shp}")
        if L["conv_b"] is not None and L["conv_b"].shape != (m.d_inner,):
            raise ExportError(f"{p}conv1d.bias: shape {L['conv_b'].shape}")
        m.layers.append(L)
    if m.lm_head is not None and m.lm_head.shape[1] != m.dim:
        raise ExportError(f"lm_head is {m.lm_head.shape}")
    leftovers = [k for k in w if not k.endswith("rotary_emb.inv_freq")]
    if leftovers:
        print(f"warning: ignoring {len(leftovers)} unknown tensors, e.g. {leftovers[:3]}", file=sys.stderr)
    return m


def rows_to(a: np.ndarray, rows: int) -> np.ndarray:
    """Pad with zero rows or cut to `rows` rows."""
    if a.shape[0] >= rows:
        return a[:rows]
    pad = np.zeros((rows - a.shape[0],) + a.shape[1:], a.dtype)
    return np.concatenate([a, pad], axis=0)


# ---------------------------------------------------------------------------
# v1 "Mamb" file (the C project's format)
# ---------------------------------------------------------------------------

def quant_int8(w: np.ndarray):
    scale = float(np.max(np.abs(w))) / 127.0 if w.size else 0.0
    if scale == 0.0:
        return np.zeros(w.shape, np.int8), np.float32(0.0)
    scale = np.float32(scale)
    q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
    return q, scale


def quant_fp16(w: np.ndarray):
    scale = float(np.max(np.abs(w))) / 32767.0 if w.size else 0.0
    if scale == 0.0:
        return np.zeros(w.shape, np.float16), np.float32(0.0)
    scale = np.float32(scale)
    return (w / scale).astype(np.float16), scale


def bfloat8_table() -> np.ndarray:
    """Values of the non-negative finite 1-5-2 codes 0x00..0x7b, increasing."""
    vals = []
    for code in range(0x7C):
        e, mant = code >> 2, code & 3
        vals.append(mant / 4 * 2.0 ** -14 if e == 0 else 2.0 ** (e - 15) * (1 + mant / 4))
    return np.array(vals, np.float64)


def bfloat8_decode(codes: np.ndarray) -> np.ndarray:
    codes = codes.astype(np.uint8)
    e = (codes >> 2) & 31
    mant = (codes & 3).astype(np.float64)
    v = np.where(e == 0, mant / 4 * 2.0 ** -14, 2.0 ** (e.astype(np.float64) - 15) * (1 + mant / 4))
    v = np.where(e == 31, np.inf, v)
    return np.where(codes & 0x80, -v, v).astype(np.float32)


def bfloat8_encode(x: np.ndarray) -> np.ndarray:
    """Round-to-nearest (ties to even code) into 1-5-2 bias-15; saturates at the largest finite."""
    table = bfloat8_table()
    a = np.abs(x.astype(np.float64)).ravel()
    hi = np.clip(np.searchsorted(table, a), 1, len(table) - 1)
    lo = hi - 1
    dlo = a - table[lo]
    dhi = table[hi] - a
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (hi % 2 == 0))
    code = np.where(pick_hi, hi, lo)
    code = np.where(a >= table[-1], len(table) - 1, code)
    code = np.where(a <= 0, 0, code).astype(np.uint8)
    code |= np.where(x.ravel() < 0, 0x80, 0).astype(np.uint8)
    return code.reshape(x.shape)


def quant_bfloat8(w: np.ndarray):
    scale = float(np.max(np.abs(w))) / 2.0 if w.size else 0.0
    if scale == 0.0:
        return np.zeros(w.shape, np.uint8), np.float32(0.0)
    scale = np.float32(scale)
    return bfloat8_encode(w / scale), scale


V1_QUANTIZED = ["in_w", "conv_w", "conv_b", "x_w", "dt_w", "dt_b", "out_w"]


def write_v1(m: Model, dest: str, quant: str | None = None) -> None:
    """quant: None (float32), 'int8', 'fp16' or 'bfloat8'."""
    if m.use_bias:
        raise ExportError("the v1 format has no in_proj/out_proj bias but this checkpoint has them "
                          "(use_bias); export to GGUF instead (drop --legacy)")
    if abs(m.eps - 1e-5) > 1e-12:
        print(f"warning: v1 files assume RMSNorm eps 1e-5; this model uses {m.eps}", file=sys.stderr)
    rounded = -(-m.vocab_size // 8) * 8
    layers = []
    for L in m.layers:
        L = dict(L)
        if L["conv_b"] is None:
            L["conv_b"] = np.zeros(m.d_inner, np.float32)
        L["A"] = -np.exp(L["A_log"].astype(np.float32))
        layers.append(L)

    qfn = {"int8": quant_int8, "fp16": quant_fp16, "bfloat8": quant_bfloat8}.get(quant)
    scales = {k: [] for k in V1_QUANTIZED}

    header = struct.pack("<Ii8i", V1_MAGIC, 1, m.n_layers, m.vocab_size, m.dim, m.d_inner,
                         m.dt_rank, m.d_state, m.d_conv, 1 if m.tied else 0)
    header += b"\0" * (V1_HEADER_BYTES - len(header))
    with open(dest, "wb") as f:
        f.write(header)
        f.write(rows_to(m.embedding, rounded).astype("<f4").tobytes())
        for key in ["in_w", "conv_w", "conv_b", "x_w", "dt_w", "dt_b", "A", "D", "out_w", "norm"]:
            for L in layers:
                t = L[key]
                if qfn is not None and key in V1_QUANTIZED:
                    q, s = qfn(t)
                    scales[key].append(s)
                    if quant == "fp16":
                        f.write(q.astype("<f2").tobytes())
                    else:
                        f.write(q.tobytes())
                else:
                    f.write(t.astype("<f4").tobytes())
        f.write(m.norm_f.astype("<f4").tobytes())
        if not m.tied:
            f.write(rows_to(m.lm_head, rounded).astype("<f4").tobytes())
    if qfn is not None:
        with open(dest + ".scales", "wb") as f:
            for key in V1_QUANTIZED:
                f.write(np.array(scales[key], "<f4").tobytes())


# ---------------------------------------------------------------------------
# GGUF
# ---------------------------------------------------------------------------

def q8_row_bytes(w: np.ndarray) -> np.ndarray:
    """libmamba q8_row: per row f32 LE scale (max|row|/127), cols int8, zero pad to 4 bytes."""
    rows, cols = w.shape
    row_bytes = 4 + -(-cols // 4) * 4
    amax = np.max(np.abs(w), axis=1).astype(np.float32)
    scale = (amax / np.float32(127.0)).astype(np.float32)
    safe = np.where(scale == 0, np.float32(1.0), scale)
    q = np.clip(np.round(w / safe[:, None]), -127, 127).astype(np.int8)
    q[scale == 0] = 0
    out = np.zeros((rows, row_bytes), np.uint8)
    out[:, :4] = scale.astype("<f4").view(np.uint8).reshape(rows, 4)
    out[:, 4:4 + cols] = q.view(np.uint8)
    return out


def q8_row_decode(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    row_bytes = 4 + -(-cols // 4) * 4
    raw = raw.reshape(rows, row_bytes)
    scale = raw[:, :4].copy().view("<f4").reshape(rows)
    q = raw[:, 4:4 + cols].view(np.int8).astype(np.float32)
    return q * scale[:, None]


def load_tokenizer_json(path: str):
    with open(path, encoding="utf-8") as f:
        tj = json.load(f)
    model = tj.get("model", {})
    if model.get("type") != "BPE":
        raise ExportError(f"{path}: tokenizer model type {model.get('type')}, expected BPE")
    id_to_tok = {int(i): t for t, i in model["vocab"].items()}
    special = {}
    for at in tj.get("added_tokens", []):
        id_to_tok[int(at["id"])] = at["content"]
        special[int(at["id"])] = bool(at.get("special", False))
    merges = []
    for mg in model.get("merges", []):
        merges.append(mg if isinstance(mg, str) else " ".join(mg))
    return id_to_tok, special, merges


def write_gguf(m: Model, dest: str, dtype: str = "f32", tokenizer: str | None = None,
               name: str | None = None) -> None:
    try:
        import gguf
    except ImportError:
        raise ExportError("GGUF output needs the gguf package (pip install gguf)")
    T = gguf.GGMLQuantizationType
    file_type = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32, "int8": FILE_TYPE_Q8_ROW}[dtype]

    wr = gguf.GGUFWriter(dest, "mamba")
    if name:
        wr.add_name(name)
    wr.add_custom_alignment(32)
    wr.add_context_length(2 ** 20)
    wr.add_embedding_length(m.dim)
    wr.add_feed_forward_length(0)
    wr.add_head_count(0)
    wr.add_block_count(m.n_layers)
    wr.add_ssm_conv_kernel(m.d_conv)
    wr.add_ssm_inner_size(m.d_inner)
    wr.add_ssm_state_size(m.d_state)
    wr.add_ssm_time_step_rank(m.dt_rank)
    wr.add_layer_norm_rms_eps(m.eps)
    wr.add_ssm_dt_b_c_rms(False)
    wr.add_file_type(file_type)
    wr.add_quantization_version(gguf.GGML_QUANT_VERSION)
    if dtype == "int8":
        wr.add_string("libmamba.int8_scheme", "q8_row")

    n_rows = m.embedding.shape[0]
    if tokenizer:
        id_to_tok, special, merges = load_tokenizer_json(tokenizer)
        dropped = sorted(i for i in id_to_tok if i >= n_rows)
        if dropped:
            # llama.cpp needs exactly one token per embedding row: ids without a row are unusable
            print(f"warning: tokenizer ids {dropped[:8]}{'...' if len(dropped) > 8 else ''} "
                  f"have no embedding row (the model has {n_rows}); left out of the GGUF",
                  file=sys.stderr)
        tokens, types = [], []
        for i in range(n_rows):
            if i in id_to_tok:
                tokens.append(id_to_tok[i])
                if i in special:
                    types.append(int(gguf.TokenType.CONTROL) if special[i] else int(gguf.TokenType.USER_DEFINED))
                else:
                    types.append(int(gguf.TokenType.NORMAL))
            else:
                tokens.append(f"[PAD{i}]")
                types.append(int(gguf.TokenType.UNUSED))
        wr.add_tokenizer_model("gpt2")
        wr.add_tokenizer_pre("mpt")
        wr.add_token_list(tokens)
        wr.add_token_types(types)
        wr.add_token_merges(merges)
        # bos/eos/unk: the id of an added `<|endoftext|>` token (0 for GPT-NeoX), else 0
        eot = next((i for i, t in id_to_tok.items() if t == "<|endoftext|>" and i in special), 0)
        eot = eot if eot < n_rows else 0
        wr.add_bos_token_id(eot)
        wr.add_eos_token_id(eot)
        wr.add_unk_token_id(eot)

    def add(name: str, t: np.ndarray, quantizable: bool):
        t = _f32(t)
        if not quantizable or t.ndim != 2 or dtype == "f32":
            wr.add_tensor(name, t)
        elif dtype == "f16":
            wr.add_tensor(name, t.astype(np.float16))
        elif dtype == "bf16":
            wr.add_tensor(name, gguf.quants.quantize(t, T.BF16), raw_dtype=T.BF16)
        elif dtype == "q8_0":
            if t.shape[1] % 32 == 0:
                wr.add_tensor(name, gguf.quants.quantize(t, T.Q8_0), raw_dtype=T.Q8_0)
            else:  # row length not a multiple of 32: keep F32 (documented)
                wr.add_tensor(name, t)
        elif dtype == "int8":
            raw = q8_row_bytes(t)
            wr.add_tensor(name, raw.view(np.int8), raw_shape=t.shape, raw_dtype=GGML_TYPE_Q8_ROW)
        else:
            raise ExportError(f"unknown dtype {dtype}")

    add("token_embd.weight", m.embedding, True)
    for i, L in enumerate(m.layers):
        p = f"blk.{i}."
        add(p + "attn_norm.weight", L["norm"], False)
        add(p + "ssm_in.weight", L["in_w"], True)
        if L["in_b"] is not None:
            add(p + "ssm_in.bias", L["in_b"], False)
        add(p + "ssm_conv1d.weight", L["conv_w"], False)
        conv_b = L["conv_b"] if L["conv_b"] is not None else np.zeros(m.d_inner, np.float32)
        add(p + "ssm_conv1d.bias", conv_b, False)
        add(p + "ssm_x.weight", L["x_w"], True)
        add(p + "ssm_dt.weight", L["dt_w"], True)
        add(p + "ssm_dt.bias", L["dt_b"], False)
        add(p + "ssm_a", -np.exp(L["A_log"]), False)
        add(p + "ssm_d", L["D"], False)
        add(p + "ssm_out.weight", L["out_w"], True)
        if L["out_b"] is not None:
            add(p + "ssm_out.bias", L["out_b"], False)
    add("output_norm.weight", m.norm_f, False)
    if not m.tied:
        add("output.weight", m.lm_head, True)

    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------

HELP_EPILOG = """\
examples:
  %(prog)s state-spaces/mamba-130m model.gguf                GGUF f32 (from the local HF cache)
  %(prog)s ./mamba-130m-hf model.gguf --dtype q8_0
  %(prog)s ./mamba-130m model.bin --legacy                    C project v1 file, float32
  %(prog)s ./mamba-130m model.bin --int8                      v1 int8 + model.bin.scales
  %(prog)s best_model_95.pth kws.gguf [--dtype int8]           a classifier checkpoint (.pth)

A checkpoint FILE (not a folder) is a sequence classifier: the keyword spotter,
the MNIST model or the Mamba-KWS MFCC model, recognized by its tensor names
(py/classifier_export.py, docs/classifier-gguf.md); GGUF f32 or int8 only.

Without --legacy/--int8/--fp16/--bfloat8 the output is GGUF whatever the file
name says (libmamba tells the formats apart by their magic). The source is
resolved as: an existing folder; else owner/name looked up in $HF_HUB_CACHE,
$HF_HOME/hub or ~/.cache/huggingface/hub (models--owner--name/snapshots/*);
else the tool stops with exit status 1. It never downloads.

GGUF details:
  * keys and tensor names as llama.cpp's converter writes them (arch "mamba");
    token_embd/output keep the checkpoint's row count.
  * --dtype applies to the 2-D matrices (token_embd, ssm_in, ssm_x, ssm_dt,
    ssm_out, output); norms, biases, ssm_conv1d.weight, ssm_a, ssm_d stay F32.
  * q8_0: a matrix whose row length is not a multiple of 32 stays F32.
  * int8: libmamba's row-wise scheme, ggml type id 1024 ("q8_row"): each row is
    a little-endian f32 scale (max|row|/127) then `cols` int8 (round to nearest),
    zero padded to a multiple of 4 bytes; key libmamba.int8_scheme = "q8_row";
    general.file_type = 1024. llama.cpp cannot read such files.
  * in_proj/out_proj biases (use_bias) are kept as blk.N.ssm_in.bias/ssm_out.bias.
  * the tokenizer is embedded when tokenizer.json sits beside the checkpoint or
    is given with --tokenizer (gpt2/mpt, byte-level token strings, rows padded
    with [PADn] of type UNUSED; added special tokens CONTROL, other added
    tokens USER_DEFINED; bos/eos/unk = the id of an added <|endoftext|>
    token, else 0).

v1 details (--legacy, --int8, --fp16, --bfloat8):
  256-byte header (magic 0x4d616d62, version 1, n_layers, vocab_size, dim,
  d_inner, dt_rank, d_state, d_conv, shared_classifier), float32 body; embedding
  and lm_head padded to a multiple of 8 rows; A stored as -exp(A_log). The
  quantized kinds store in_proj, conv1d w/b, x_proj, dt_proj w/b, out_proj in 1
  or 2 bytes with per-tensor scales in <dest>.scales. v1 cannot hold
  in_proj/out_proj biases (error) and assumes RMSNorm eps 1e-5; a missing conv
  bias is written as zeros.
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="Export a Mamba-1 LM checkpoint (state-spaces or transformers layout) "
                    "to GGUF (default) or the C project's v1 .bin format. Never downloads.",
        epilog=HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="checkpoint folder (config.json + model.safetensors or "
                    "pytorch_model.bin) or a hub name like state-spaces/mamba-130m found in the "
                    "local HF cache")
    ap.add_argument("dest", help="output file")
    kind = ap.add_mutually_exclusive_group()
    kind.add_argument("--legacy", action="store_true", help="write the C project's v1 file, float32")
    kind.add_argument("--int8", action="store_true", help="v1 file, int8 weights + <dest>.scales")
    kind.add_argument("--fp16", action="store_true", help="v1 file, fp16 weights + <dest>.scales")
    kind.add_argument("--bfloat8", action="store_true",
                      help="v1 file, 1-5-2 'bfloat8' weights + <dest>.scales")
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16", "q8_0", "int8"], default="f32",
                    help="GGUF storage type for the 2-D matrices (default f32)")
    ap.add_argument("--tokenizer", metavar="PATH",
                    help="tokenizer.json to embed in the GGUF (default: the one beside the checkpoint)")
    ap.add_argument("--no-tokenizer", action="store_true", help="do not embed a tokenizer")
    ap.add_argument("--name", help="general.name for the GGUF")
    args = ap.parse_args(argv)

    try:
        if os.path.isfile(args.source):
            # a single PyTorch checkpoint file: one of the sequence classifiers
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import classifier_export as ce
            if args.legacy or args.int8 or args.fp16 or args.bfloat8 or args.tokenizer:
                raise ExportError("classifier checkpoints export to GGUF only (--dtype f32 or int8)")
            try:
                what = ce.export(args.source, args.dest, args.dtype, args.name)
            except ce.ClassifierExportError as e:
                raise ExportError(str(e))
            if what is None:
                raise ExportError(f"{args.source}: not a checkpoint this exporter knows (a language "
                                  "model is given as a folder; classifiers: see classifier_export.py)")
            print(f"wrote {args.dest}: {what}", file=sys.stderr)
            return 0
        folder = resolve_source(args.source)
        m = load_model(folder)
        legacy = args.legacy or args.int8 or args.fp16 or args.bfloat8
        if legacy:
            if args.dtype != "f32":
                raise ExportError("--dtype applies to GGUF output only; v1 uses --int8/--fp16/--bfloat8")
            quant = "int8" if args.int8 else "fp16" if args.fp16 else "bfloat8" if args.bfloat8 else None
            write_v1(m, args.dest, quant)
            what = f"v1 {quant or 'float32'}"
        else:
            tok = None
            if not args.no_tokenizer:
                tok = args.tokenizer
                if tok is None and os.path.isfile(os.path.join(folder, "tokenizer.json")):
                    tok = os.path.join(folder, "tokenizer.json")
                if tok is not None and not os.path.isfile(tok):
                    raise ExportError(f"tokenizer {tok} not found")
            write_gguf(m, args.dest, args.dtype, tok, args.name)
            what = f"GGUF {args.dtype}" + (" with tokenizer" if tok else "")
    except ExportError as e:
        print(f"export.py: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.dest} ({what}): {m.n_layers} layers, dim {m.dim}, d_inner {m.d_inner}, "
          f"d_state {m.d_state}, d_conv {m.d_conv}, dt_rank {m.dt_rank}, vocab {m.vocab_size}"
          f"{', tied' if m.tied else ''}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

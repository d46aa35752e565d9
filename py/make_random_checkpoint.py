#!/usr/bin/env python3
"""Write a random Mamba-1 checkpoint folder (config.json + model.safetensors,
transformers `-hf` names) of a given shape, for benchmarks and tests.

Needs numpy only (safetensors is written by hand). Export it afterwards with
py/export.py, e.g.:

    python3 py/make_random_checkpoint.py --preset 130m /tmp/m130
    python3 py/export.py /tmp/m130 /tmp/m130.bin --legacy
    python3 py/export.py /tmp/m130 /tmp/m130.gguf --dtype bf16
"""
import argparse
import json
import math
import os
import struct

import numpy as np

PRESETS = {
    # name: (n_layers, d_model, vocab)
    "130m": (24, 768, 50280),
    "370m": (48, 1024, 50280),
    "tiny": (2, 64, 1000),
}


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
        blobs.append(arr)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for a in blobs:
            a.tofile(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output folder")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="130m")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--d-model", type=int)
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--d-conv", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    n_layers, d_model, vocab = PRESETS[a.preset]
    n_layers = a.layers or n_layers
    d_model = a.d_model or d_model
    vocab = a.vocab or vocab
    d_inner = 2 * d_model
    dt_rank = math.ceil(d_model / 16)
    rng = np.random.default_rng(a.seed)

    def randn(*shape, std):
        return (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)

    t = {"backbone.embeddings.weight": randn(vocab, d_model, std=0.1)}
    for i in range(n_layers):
        p = f"backbone.layers.{i}."
        t[p + "norm.weight"] = 1 + randn(d_model, std=0.1)
        t[p + "mixer.in_proj.weight"] = randn(2 * d_inner, d_model, std=d_model ** -0.5)
        t[p + "mixer.conv1d.weight"] = randn(d_inner, 1, a.d_conv, std=0.3)
        t[p + "mixer.conv1d.bias"] = randn(d_inner, std=0.1)
        t[p + "mixer.x_proj.weight"] = randn(dt_rank + 2 * a.d_state, d_inner, std=d_inner ** -0.5)
        t[p + "mixer.dt_proj.weight"] = randn(d_inner, dt_rank, std=dt_rank ** -0.5)
        t[p + "mixer.dt_proj.bias"] = np.log(np.expm1(rng.uniform(0.001, 0.1, d_inner))).astype(np.float32)
        a_log = np.log(np.tile(np.arange(1, a.d_state + 1, dtype=np.float32), (d_inner, 1)))
        t[p + "mixer.A_log"] = a_log + randn(d_inner, a.d_state, std=0.05)
        t[p + "mixer.D"] = 1 + randn(d_inner, std=0.1)
        t[p + "mixer.out_proj.weight"] = randn(d_model, d_inner, std=d_inner ** -0.5 / math.sqrt(n_layers))
    t["backbone.norm_f.weight"] = 1 + randn(d_model, std=0.1)
    os.makedirs(a.out, exist_ok=True)
    write_safetensors(os.path.join(a.out, "model.safetensors"), t)
    cfg = {
        "architectures": ["MambaForCausalLM"], "model_type": "mamba",
        "hidden_size": d_model, "num_hidden_layers": n_layers, "vocab_size": vocab,
        "state_size": a.d_state, "conv_kernel": a.d_conv, "expand": 2, "time_step_rank": dt_rank,
        "use_bias": False, "use_conv_bias": True, "layer_norm_epsilon": 1e-5,
        "tie_word_embeddings": True, "residual_in_fp32": True,
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    print(f"{a.out}: {n_layers} layers, d_model {d_model}, vocab {vocab}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Fixtures for the classifier tests (tests/classifier.rs, tests/c/test_classifier.c).

1. Lineage (c), the Mamba-KWS MFCC keyword spotter: Linear(40 -> d) + LayerNorm +
   SiLU, pre-norm LayerNorm residual Mamba blocks (d_state 16, expand 2, d_conv 4,
   dt_rank ceil(d/16), no in/out bias, conv bias), final LayerNorm, mean pooling
   over the valid frames, head Linear(d -> d/2) + SiLU + Linear(d/2 -> 12).
   Variants small (64, 8 layers), medium (128, 10), large (192, 12).
   No trained weights exist, so every parameter comes from a deterministic
   generator that tests/classifier.rs reimplements bit for bit (`gen` below:
   splitmix64 of the FNV-1a hash of the tensor name and the element index,
   then plain float32 arithmetic). The PyTorch reference (HF transformers'
   MambaMixer as the block) runs padded batches with masks; its logits and the
   inputs go to tests/fixtures/classifier/mfcc_reference.npz. The small variant is
   also written as a checkpoint and exported with py/export.py (mfcc_small.gguf).
2. Reference predictions of the real models, for the C test (no npz reader in C):
   mnist_ref_pred.u8 (argmax of ../shared/reference/mnist_mamba.npz) and
   kws_ref_pred.txt (file, argmax of kws_best_model_95.npz).
3. The real models' GGUF exports: kws.gguf, kws_int8.gguf, mnist.gguf.

Usage: python3 py/make_classifier_fixtures.py   (needs torch, transformers, gguf)
"""
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import MambaConfig
from transformers.models.mamba.modeling_mamba import MambaMixer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "fixtures", "classifier")
SHARED = os.path.join(ROOT, "..", "shared")

VARIANTS = {"small": (64, 8), "medium": (128, 10), "large": (192, 12)}
N_IN, N_CLASSES = 40, 12
LABELS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "silence", "unknown"]
M64 = (1 << 64) - 1


def fnv1a64(s: str) -> int:
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def uniform(name: str, n: int) -> np.ndarray:
    """n float32 values in [-0.5, 0.5): splitmix64(fnv1a64(name) + i * golden)."""
    with np.errstate(over="ignore"):
        i = np.arange(n, dtype=np.uint64)
        x = np.uint64(fnv1a64(name)) + (i + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    k = (z >> np.uint64(40)).astype(np.float32)  # 24 bits, exact in f32
    return k * np.float32(1.0 / (1 << 24)) - np.float32(0.5)


def gen(name: str, shape) -> np.ndarray:
    """The value of every parameter of the MambaKWS model, by its state_dict name."""
    n = int(np.prod(shape))
    u = uniform(name, n)
    f = np.float32
    leaf = name.split(".")[-1]
    fan_in = shape[-1] if len(shape) >= 2 else None
    if name.endswith("conv1d.weight"):
        v = u * f(2.0) * f(0.5)
    elif leaf == "A_log":
        v = f(1.4) + u * f(2.8)
    elif leaf == "D":
        v = f(1.0) + u
    elif name.endswith("dt_proj.bias"):
        v = f(-4.6) + u * f(4.0)
    elif name.startswith("input_proj.1.") or ".norm." in name or name.startswith("norm_f."):
        v = (f(1.0) + u * f(0.5)) if leaf == "weight" else u * f(0.5)
    elif leaf == "weight":
        v = u * f(2.0) / np.sqrt(f(fan_in))
    elif leaf == "bias":
        v = u * f(0.2)
    else:
        raise ValueError(name)
    return v.astype(np.float32).reshape(shape)


class Block(torch.nn.Module):
    def __init__(self, d, i):
        super().__init__()
        cfg = MambaConfig(hidden_size=d, state_size=16, conv_kernel=4, expand=2,
                          time_step_rank=math.ceil(d / 16), use_bias=False, use_conv_bias=True)
        self.norm = torch.nn.LayerNorm(d)
        self.mixer = MambaMixer(cfg, layer_idx=i)


class MambaKWS(torch.nn.Module):
    """The Mamba-KWS MFCC model (state_dict names as py/classifier_export.py expects)."""

    def __init__(self, d, n_layers, n_in=N_IN, n_classes=N_CLASSES):
        super().__init__()
        self.input_proj = torch.nn.Sequential(torch.nn.Linear(n_in, d), torch.nn.LayerNorm(d), torch.nn.SiLU())
        self.layers = torch.nn.ModuleList([Block(d, i) for i in range(n_layers)])
        self.norm_f = torch.nn.LayerNorm(d)
        self.classifier = torch.nn.Sequential(torch.nn.Linear(d, d // 2), torch.nn.SiLU(),
                                              torch.nn.Linear(d // 2, n_classes))

    def forward(self, x, mask=None):  # x [B, T, 40], mask [B, T] (1 = valid)
        h = self.input_proj(x)
        for blk in self.layers:
            h = h + blk.mixer(blk.norm(h), attention_mask=mask)
        h = self.norm_f(h)
        if mask is None:
            pooled = h.mean(dim=1)
        else:
            m = mask.to(h.dtype).unsqueeze(-1)
            pooled = (h * m).sum(dim=1) / m.sum(dim=1)
        return self.classifier(pooled)


def build(variant):
    d, n = VARIANTS[variant]
    model = MambaKWS(d, n).eval()
    sd = {k: torch.from_numpy(gen(k, tuple(v.shape))) for k, v in model.state_dict().items()}
    model.load_state_dict(sd)
    return model


# (case name, batch lengths, padded length or None for no mask)
CASES = [("full", [20, 20], None), ("masked", [50, 37, 9, 1], 50), ("one", [3], None)]


def lineage_c(out):
    arrays = {}
    for variant in VARIANTS:
        model = build(variant)
        for case, lengths, padded in CASES:
            T = padded or lengths[0]
            x = uniform(f"input.{variant}.{case}", len(lengths) * T * N_IN).reshape(len(lengths), T, N_IN) * np.float32(8.0)
            mask = None
            if padded:
                mk = np.zeros((len(lengths), T), np.int64)
                for b, L in enumerate(lengths):
                    mk[b, :L] = 1
                    x[b, L:] = 0.0  # padding
                mask = torch.from_numpy(mk)
            with torch.no_grad():
                logits = model(torch.from_numpy(x), mask).numpy()
            arrays[f"{variant}_{case}_x"] = x
            arrays[f"{variant}_{case}_lengths"] = np.array(lengths, np.int64)
            arrays[f"{variant}_{case}_logits"] = logits.astype(np.float32)
            print(f"{variant} {case}: logits {logits.shape}, |max| {np.abs(logits).max():.3f}")
    np.savez(os.path.join(out, "mfcc_reference.npz"), **arrays)
    # the small variant as a checkpoint, exported through the exporter
    with tempfile.TemporaryDirectory() as tmp:
        ck = os.path.join(tmp, "mfcc_small.pth")
        torch.save({"model_state_dict": build("small").state_dict(), "labels": LABELS}, ck)
        subprocess.run([sys.executable, os.path.join(HERE, "export.py"), ck,
                        os.path.join(out, "mfcc_small.gguf")], check=True)


def real_models(out):
    ref = os.path.join(SHARED, "reference")
    d = np.load(os.path.join(ref, "mnist_mamba.npz"))
    d["logits"].argmax(1).astype(np.uint8).tofile(os.path.join(out, "mnist_ref_pred.u8"))
    k = np.load(os.path.join(ref, "kws_best_model_95.npz"))
    with open(os.path.join(out, "kws_ref_pred.txt"), "w") as f:
        for fn, lg in zip(k["files"], k["logits"]):
            f.write(f"{fn} {int(lg.argmax())}\n")
    exp = os.path.join(HERE, "export.py")
    kws = os.path.join(SHARED, "data", "kws", "checkpoints", "best_model_95.pth")
    mnist = os.path.join(SHARED, "data", "mnist", "mnist_mamba_best_model.pth")
    subprocess.run([sys.executable, exp, kws, os.path.join(out, "kws.gguf")], check=True)
    subprocess.run([sys.executable, exp, kws, os.path.join(out, "kws_int8.gguf"), "--dtype", "int8"], check=True)
    subprocess.run([sys.executable, exp, mnist, os.path.join(out, "mnist.gguf")], check=True)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    lineage_c(OUT)
    real_models(OUT)

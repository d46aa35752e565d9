"""Sequence classifier checkpoints -> GGUF (arch `mamba-classifier`).

Used by export.py when its source is a PyTorch checkpoint file. Which model the
checkpoint holds is recognized from its tensor names (no flags):

  * (a) the C project's keyword spotter (data/kws/checkpoints/best_model_95.pth):
        proj.weight, cls_token, mamba_layers.N.*, layer_norms.N.weight, fc.*
  * (b) the C project's MNIST model (data/mnist/mnist_mamba_best_model.pth):
        input_proj.weight, layers.N.norm.weight, layers.N.mamba.*, norm_f.weight, output_head.*
  * (c) the Mamba-KWS MFCC model (py/make_classifier_fixtures.py, class MambaKWS):
        input_proj.0.* (Linear), input_proj.1.* (LayerNorm), layers.N.norm.*,
        layers.N.mixer.*, norm_f.*, classifier.0.*, classifier.2.*

Keys and tensor names: docs/classifier-gguf.md.
"""

from __future__ import annotations

import sys
import types

import numpy as np

ARCH = "mamba-classifier"
GGML_TYPE_Q8_ROW = 1024
KWS_LABELS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes"]


class ClassifierExportError(Exception):
    pass


def _install_standins():
    """The MNIST pickle refers to models.mamba_model.MambaConfig: stand in for it."""
    if "models.mamba_model" in sys.modules:
        return

    class MambaConfig:  # attribute bag, filled by unpickling
        pass

    mod = types.ModuleType("models.mamba_model")
    mod.MambaConfig = MambaConfig
    pkg = sys.modules.get("models") or types.ModuleType("models")
    pkg.mamba_model = mod
    sys.modules["models"] = pkg
    sys.modules["models.mamba_model"] = mod


def load_checkpoint(path: str):
    """(state_dict as numpy float32 arrays, extra info dict)."""
    try:
        import torch
    except ImportError:
        raise ClassifierExportError("reading a PyTorch checkpoint needs torch (pip install torch)")
    _install_standins()
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # not a pickle / zip checkpoint
        raise ClassifierExportError(f"{path}: not a PyTorch checkpoint ({e.__class__.__name__}: {e})")
    info = {}
    sd = ck
    if isinstance(ck, dict):
        for k in ("model_state_dict", "state_dict", "model"):
            if k in ck and isinstance(ck[k], dict):
                sd = ck[k]
                info = {kk: vv for kk, vv in ck.items() if kk != k}
                break
    if not isinstance(sd, dict):
        raise ClassifierExportError(f"{path}: not a state_dict checkpoint")
    out = {}
    for k, v in sd.items():
        if hasattr(v, "detach"):
            out[k] = v.detach().float().cpu().numpy()
    return out, info


def detect(sd: dict) -> str | None:
    """'kws', 'mnist', 'mfcc' or None (not a classifier this exporter knows)."""
    if "proj.weight" in sd and "mamba_layers.0.A_log" in sd and "fc.weight" in sd:
        return "kws"
    if "input_proj.weight" in sd and "layers.0.mamba.A_log" in sd and "output_head.weight" in sd:
        return "mnist"
    if "input_proj.0.weight" in sd and "layers.0.mixer.A_log" in sd and "classifier.0.weight" in sd:
        return "mfcc"
    return None


def _n_layers(sd, fmt):
    n = 0
    while fmt.format(n) in sd:
        n += 1
    return n


def _mixer(sd, p):
    """The Mamba mixer tensors under prefix p (mamba_ssm / HF names)."""
    conv = sd[p + "conv1d.weight"]
    d_inner = conv.shape[0]
    return {
        "in_w": sd[p + "in_proj.weight"],
        "in_b": sd.get(p + "in_proj.bias"),
        "conv_w": conv.reshape(d_inner, -1),
        "conv_b": sd.get(p + "conv1d.bias"),
        "x_w": sd[p + "x_proj.weight"],
        "dt_w": sd[p + "dt_proj.weight"],
        "dt_b": sd[p + "dt_proj.bias"],
        "A": -np.exp(sd[p + "A_log"].astype(np.float32)),
        "D": sd[p + "D"],
        "out_w": sd[p + "out_proj.weight"],
        "out_b": sd.get(p + "out_proj.bias"),
    }


def describe(kind: str, sd: dict, info: dict):
    """(metadata dict without the arch prefix, ordered list of (name, array, quantizable))."""
    meta, tensors = {}, []

    def t(name, a, q=False):
        tensors.append((name, np.ascontiguousarray(a, dtype=np.float32), q))

    if kind == "kws":
        n_layers = _n_layers(sd, "mamba_layers.{}.A_log")
        p_w = sd["proj.weight"]
        proj_width, in_w = p_w.shape
        frames = 135
        d_model = frames + (1 if "cls_token" in sd else 0)
        meta.update({
            "input.kind": "audio", "input.width": in_w, "input.frames": frames,
            "input.audio.sample_rate": 16000, "input.audio.n_mfcc": in_w // 3,
            "input.audio.n_fft": 475, "input.audio.hop_length": 119, "input.audio.n_mels": 61,
            "input.audio.clip_samples": 16000,
            "frontend.width": proj_width, "frontend.norm": "none", "frontend.activation": "none",
            "frontend.cls": "append" if "cls_token" in sd else "none", "frontend.transpose": True,
            "block.style": "post_norm", "norm": "rms",
            "norm_epsilon": float(np.finfo(np.float32).eps),
            "final_norm": "none",
            "pooling": "last_feature" if "cls_token" in sd else "max",
            "head": "linear",
            "labels": KWS_LABELS if sd["fc.weight"].shape[0] == 10 else None,
        })
        if "cls_token" not in sd:
            raise ClassifierExportError("keyword spotter without cls_token (max pooling over "
                                        "features) is not supported")
        t("frontend.weight", p_w, True)
        t("frontend.bias", sd["proj.bias"])
        t("cls_token", sd["cls_token"].reshape(-1))
        mixers = [_mixer(sd, f"mamba_layers.{i}.") for i in range(n_layers)]
        norms = [(sd[f"layer_norms.{i}.weight"], None) for i in range(n_layers)]
        final = None
        head = [("head", sd["fc.weight"], sd["fc.bias"])]
    elif kind == "mnist":
        c = info.get("config")
        n_layers = _n_layers(sd, "layers.{}.mamba.A_log")
        dim, in_w = sd["input_proj.weight"].shape
        meta.update({
            "input.kind": "image", "input.width": in_w, "input.frames": 1,
            "input.image.height": 28, "input.image.width": 28,
            "input.image.mean": 0.1307, "input.image.std": 0.3081,
            "frontend.width": dim, "frontend.norm": "none", "frontend.activation": "none",
            "frontend.cls": "none", "frontend.transpose": False,
            "block.style": "pre_norm_residual", "norm": "rms", "norm_epsilon": 1e-6,
            "final_norm": "rms", "final_norm_epsilon": 1e-6,
            "pooling": "last", "head": "linear",
            "labels": [str(i) for i in range(sd["output_head.weight"].shape[0])],
        })
        if in_w != 784:
            raise ClassifierExportError(f"MNIST model with input width {in_w}, expected 784")
        if c is not None and getattr(c, "d_state", None) is not None:
            assert c.d_state == sd["layers.0.mamba.A_log"].shape[1]
        t("frontend.weight", sd["input_proj.weight"], True)
        t("frontend.bias", sd["input_proj.bias"])
        mixers = [_mixer(sd, f"layers.{i}.mamba.") for i in range(n_layers)]
        norms = [(sd[f"layers.{i}.norm.weight"], None) for i in range(n_layers)]
        final = (sd["norm_f.weight"], None)
        head = [("head", sd["output_head.weight"], sd["output_head.bias"])]
    elif kind == "mfcc":
        n_layers = _n_layers(sd, "layers.{}.mixer.A_log")
        d, in_w = sd["input_proj.0.weight"].shape
        n_classes = sd["classifier.2.weight"].shape[0]
        labels = info.get("labels")
        meta.update({
            "input.kind": "features", "input.width": in_w, "input.frames": 0,
            "frontend.width": d, "frontend.norm": "layer", "frontend.norm_epsilon": 1e-5,
            "frontend.activation": "silu", "frontend.cls": "none", "frontend.transpose": False,
            "block.style": "pre_norm_residual", "norm": "layer", "norm_epsilon": 1e-5,
            "final_norm": "layer", "final_norm_epsilon": 1e-5,
            "pooling": "mean", "head": "mlp", "head.hidden": sd["classifier.0.weight"].shape[0],
            "labels": list(labels) if labels is not None and len(labels) == n_classes else None,
        })
        t("frontend.weight", sd["input_proj.0.weight"], True)
        t("frontend.bias", sd["input_proj.0.bias"])
        t("frontend_norm.weight", sd["input_proj.1.weight"])
        t("frontend_norm.bias", sd["input_proj.1.bias"])
        mixers = [_mixer(sd, f"layers.{i}.mixer.") for i in range(n_layers)]
        norms = [(sd[f"layers.{i}.norm.weight"], sd[f"layers.{i}.norm.bias"]) for i in range(n_layers)]
        final = (sd["norm_f.weight"], sd["norm_f.bias"])
        head = [("head_hidden", sd["classifier.0.weight"], sd["classifier.0.bias"]),
                ("head", sd["classifier.2.weight"], sd["classifier.2.bias"])]
    else:
        raise ClassifierExportError(f"unknown classifier kind {kind}")

    m0 = mixers[0]
    d_inner, d_state = m0["A"].shape
    meta.update({
        "block_count": n_layers, "embedding_length": m0["in_w"].shape[1],
        "ssm.inner_size": d_inner, "ssm.state_size": d_state,
        "ssm.conv_kernel": m0["conv_w"].shape[1], "ssm.time_step_rank": m0["dt_w"].shape[1],
        "class_count": head[-1][1].shape[0],
    })
    for i, (m, (nw, nb)) in enumerate(zip(mixers, norms)):
        p = f"blk.{i}."
        t(p + "norm.weight", nw)
        if nb is not None:
            t(p + "norm.bias", nb)
        t(p + "ssm_in.weight", m["in_w"], True)
        if m["in_b"] is not None:
            t(p + "ssm_in.bias", m["in_b"])
        t(p + "ssm_conv1d.weight", m["conv_w"])
        if m["conv_b"] is not None:
            t(p + "ssm_conv1d.bias", m["conv_b"])
        t(p + "ssm_x.weight", m["x_w"], True)
        t(p + "ssm_dt.weight", m["dt_w"], True)
        t(p + "ssm_dt.bias", m["dt_b"])
        t(p + "ssm_a", m["A"])
        t(p + "ssm_d", m["D"])
        t(p + "ssm_out.weight", m["out_w"], True)
        if m["out_b"] is not None:
            t(p + "ssm_out.bias", m["out_b"])
    if final is not None:
        t("output_norm.weight", final[0])
        if final[1] is not None:
            t("output_norm.bias", final[1])
    for name, w, b in head:
        t(name + ".weight", w, True)
        if b is not None:
            t(name + ".bias", b)
    return meta, tensors


def write_gguf(meta: dict, tensors, dest: str, dtype: str = "f32", name: str | None = None):
    try:
        import gguf
    except ImportError:
        raise ClassifierExportError("GGUF output needs the gguf package (pip install gguf)")
    if dtype not in ("f32", "int8"):
        raise ClassifierExportError(f"classifiers export as f32 or int8, not {dtype}")
    from export import q8_row_bytes  # the LM exporter's row-wise int8 scheme
    wr = gguf.GGUFWriter(dest, ARCH)
    if name:
        wr.add_name(name)
    wr.add_custom_alignment(32)
    wr.add_file_type(0 if dtype == "f32" else 1024)
    if dtype == "int8":
        wr.add_string("libmamba.int8_scheme", "q8_row")
    for k, v in meta.items():
        key = f"{ARCH}.{k}"
        if v is None:
            continue
        if isinstance(v, bool):
            wr.add_bool(key, v)
        elif isinstance(v, (int, np.integer)):
            wr.add_uint32(key, int(v))
        elif isinstance(v, float):
            wr.add_float32(key, v)
        elif isinstance(v, str):
            wr.add_string(key, v)
        elif isinstance(v, list):
            wr.add_array(key, [str(x) for x in v])
        else:
            raise ClassifierExportError(f"metadata {k}: unsupported value {v!r}")
    for tname, a, quantizable in tensors:
        if dtype == "int8" and quantizable and a.ndim == 2:
            raw = q8_row_bytes(a)
            wr.add_tensor(tname, raw.view(np.int8), raw_shape=a.shape, raw_dtype=GGML_TYPE_Q8_ROW)
        else:
            wr.add_tensor(tname, a)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


def export(src: str, dest: str, dtype: str = "f32", name: str | None = None) -> str | None:
    """Exports a classifier checkpoint; returns a description, or None when the
    file holds no classifier this exporter knows."""
    sd, info = load_checkpoint(src)
    kind = detect(sd)
    if kind is None:
        return None
    meta, tensors = describe(kind, sd, info)
    write_gguf(meta, tensors, dest, dtype, name)
    return (f"{ {'kws': 'keyword spotter (C project)', 'mnist': 'MNIST classifier (C project)', 'mfcc': 'MFCC keyword spotter (Mamba-KWS)'}[kind] }: "
            f"{meta['block_count']} layers, d_model {meta['embedding_length']}, d_inner {meta['ssm.inner_size']}, "
            f"d_state {meta['ssm.state_size']}, {meta['class_count']} classes, GGUF {dtype}")

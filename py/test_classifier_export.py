#!/usr/bin/env python3
"""Self-checks for the classifier side of py/export.py (needs torch + gguf).

  python3 py/test_classifier_export.py    # one line per check, exit 1 on failure

Re-exporting the real checkpoints (../shared/data) reproduces the committed
GGUF fixtures byte for byte, with no flags (the model is recognized from its
tensor names); a file that is not a checkpoint fails with exit status 1.
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIX = os.path.join(ROOT, "tests", "fixtures", "classifier")
DATA = os.path.join(ROOT, "..", "shared", "data")
failures = 0


def check(name, ok, detail=""):
    global failures
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}")
    failures += not ok


def export(*args):
    return subprocess.run([sys.executable, os.path.join(HERE, "export.py"), *args],
                          capture_output=True, text=True)


with tempfile.TemporaryDirectory() as tmp:
    cases = [("kws", os.path.join(DATA, "kws", "checkpoints", "best_model_95.pth"), "kws.gguf", []),
             ("kws int8", os.path.join(DATA, "kws", "checkpoints", "best_model_95.pth"), "kws_int8.gguf",
              ["--dtype", "int8"]),
             ("mnist", os.path.join(DATA, "mnist", "mnist_mamba_best_model.pth"), "mnist.gguf", [])]
    for name, src, fixture, extra in cases:
        if not os.path.exists(src):
            print(f"skip {name}: {src} not found")
            continue
        out = os.path.join(tmp, fixture)
        r = export(src, out, *extra)
        check(f"{name}: export succeeds", r.returncode == 0, r.stderr)
        if r.returncode == 0:
            same = open(out, "rb").read() == open(os.path.join(FIX, fixture), "rb").read()
            check(f"{name}: identical to tests/fixtures/classifier/{fixture}", same)
    r = export(os.path.join(ROOT, "Cargo.toml"), os.path.join(tmp, "x.gguf"))
    check("a non-checkpoint file fails cleanly", r.returncode == 1 and "not a PyTorch checkpoint" in r.stderr,
          r.stderr)
    r = export(os.path.join(DATA, "mnist", "mnist_mamba_best_model.pth"), os.path.join(tmp, "x.bin"), "--legacy")
    check("--legacy is refused for classifiers", r.returncode == 1 and "GGUF only" in r.stderr, r.stderr)

sys.exit(1 if failures else 0)

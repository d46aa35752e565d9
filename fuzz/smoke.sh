#!/usr/bin/env bash
# A short run of every fuzz target (CI): FUZZ_SECONDS each (default 20),
# starting from the committed seeds plus fuzz/corpus/<target> when present.
# Installs cargo-fuzz when missing. Stable Rust: cargo-fuzz passes -Z flags,
# which RUSTC_BOOTSTRAP=1 allows. Fails on any crash, leak or timeout.
#
#   bash fuzz/smoke.sh [target...]     # default: all targets
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER=${FUZZ_SECONDS:-20}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(gguf v1 tokenizer state wav encode)
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
# cargo-fuzz's default: AddressSanitizer (its runtime ships with stable
# rustup), coverage instrumentation, debug assertions (overflow checks).
# FUZZ_SANITIZER=none builds without ASan (faster).
SAN=${FUZZ_SANITIZER:-address}
# Outside the clone, so that later CI runs on the same machine reuse the
# compiled dependencies (CI clones afresh each time).
TDIR=${FUZZ_TARGET_DIR:-$HOME/.cache/libmamba/fuzz-target}
mkdir -p "$TDIR"
echo "== building fuzz targets (sanitizer: $SAN, target dir: $TDIR)"
cargo fuzz build -O -s "$SAN" --target-dir "$TDIR"
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t"
  echo "== fuzz $t for ${SECONDS_PER}s"
  # Output: libFuzzer's final stats lines (execs, coverage).
  cargo fuzz run -O -s "$SAN" --target-dir "$TDIR" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$SECONDS_PER" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -print_final_stats=1 2> "corpus/$t.log" || { tail -50 "corpus/$t.log"; echo "fuzz $t: FAILED (artifact in fuzz/artifacts/$t)"; exit 1; }
  grep -E '^#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|cov:' "corpus/$t.log" | tail -2
done
echo "fuzz-smoke: ${#TARGETS[@]} targets, no crash"

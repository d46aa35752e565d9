#!/bin/sh
# Installs libmamba into a temporary prefix (`make install PREFIX=...`) and
# uses it the way a user would:
#   1. a C program built with `cc prog.c $(pkg-config --cflags --libs mamba)`
#      (shared library), and one linked statically against libmamba.a with
#      `pkg-config --static --libs mamba`; both run on tests/fixtures/lm/B.bin;
#   2. the Python package pip-installed (--target) from py/, running the
#      Python tests against the installed library (MAMBA_LIBRARY).
# Run from the repository root: `make test-install` (or sh tests/install/run.sh).
set -eu

CC=${CC:-cc}
PYTHON=${PYTHON:-python3}
MAKE=${MAKE:-make}
ROOT=$(pwd)
test -f "$ROOT/mamba.pc.in" || { echo "run from the repository root" >&2; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mamba-install.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PREFIX="$WORK/prefix"
FIX="$ROOT/tests/fixtures/lm"

echo "== make install PREFIX=$PREFIX"
$MAKE --no-print-directory install PREFIX="$PREFIX" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; exit 1; }
for f in lib/libmamba.a lib/libmamba.so include/mamba.h lib/pkgconfig/mamba.pc; do
    test -f "$PREFIX/$f" || { echo "not installed: $f" >&2; exit 1; }
done

export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
command -v pkg-config >/dev/null || { echo "pkg-config is needed (apt-get install pkg-config)" >&2; exit 1; }
echo "   pkg-config mamba: version $(pkg-config --modversion mamba); $(pkg-config --cflags --libs mamba)"
test "$(pkg-config --variable=prefix mamba)" = "$PREFIX"

echo "== dynamic: cc prog.c \$(pkg-config --cflags --libs mamba)"
# shellcheck disable=SC2046
$CC -O1 -Wall -Wextra -Werror tests/install/prog.c $(pkg-config --cflags --libs mamba) \
    -Wl,-rpath,"$(pkg-config --variable=libdir mamba)" -o "$WORK/prog_dynamic"
readelf -d "$WORK/prog_dynamic" | grep -q 'NEEDED.*libmamba' || { echo "prog_dynamic does not use libmamba.so" >&2; exit 1; }
"$WORK/prog_dynamic" "$FIX/B.bin" "$FIX/B/prompt.i32" "$FIX/B/greedy.i32"

echo "== static: cc prog.c \$(pkg-config --cflags mamba) libmamba.a \$(pkg-config --static --libs mamba)"
# -lmamba from pkg-config would pick the shared library; link the archive by path.
STATIC_LIBS=$(pkg-config --static --libs mamba | sed 's/\(^\| \)-lmamba\( \|$\)/ /')
# shellcheck disable=SC2046,SC2086
$CC -O1 -Wall -Wextra -Werror tests/install/prog.c $(pkg-config --cflags mamba) \
    "$(pkg-config --variable=libdir mamba)/libmamba.a" $STATIC_LIBS -o "$WORK/prog_static"
if readelf -d "$WORK/prog_static" | grep -q 'NEEDED.*libmamba'; then
    echo "prog_static still needs libmamba.so" >&2; exit 1
fi
"$WORK/prog_static" "$FIX/B.bin" "$FIX/B/prompt.i32" "$FIX/B/greedy.i32"

echo "== Python: pip install --target ./py, tests against $PREFIX/lib/libmamba.so"
# Without network access the build backend must come from this Python: use
# it when it can build a wheel (setuptools >= 61, plus the `wheel` package
# before setuptools 70.1 took bdist_wheel in); otherwise pip fetches
# setuptools from the package index into an isolated build environment.
NOISO=""
if $PYTHON -c '
import setuptools
v = tuple(int(p) for p in setuptools.__version__.split(".")[:2])
if v < (61, 0):
    raise SystemExit(1)
if v < (70, 1):
    import wheel
' 2>/dev/null; then NOISO="--no-build-isolation"; fi
# Build from a copy so that no build/ or egg-info lands in the checkout.
mkdir -p "$WORK/src"
cp -R py/pyproject.toml py/mamba "$WORK/src/"
rm -f "$WORK/src/mamba/libmamba.so"
$PYTHON -m pip install --quiet --disable-pip-version-check --no-deps $NOISO \
    --target "$WORK/site" "$WORK/src" >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log"; exit 1; }
PYTHONPATH="$WORK/site" MAMBA_LIBRARY="$PREFIX/lib/libmamba.so" $PYTHON -c '
import os, sys, mamba
site, lib = sys.argv[1], sys.argv[2]
assert os.path.abspath(mamba.__file__).startswith(site), mamba.__file__
assert mamba.library_path() == lib, mamba.library_path()
print("   mamba %s from %s, library %s" % (mamba.version(), os.path.dirname(mamba.__file__), lib))
' "$WORK/site" "$PREFIX/lib/libmamba.so"
PYTHONPATH="$WORK/site" MAMBA_LIBRARY="$PREFIX/lib/libmamba.so" \
    $PYTHON -m unittest discover -s py/tests

echo "== install test passed"

# libmamba: `make` builds the Rust library (release), the header and the C
# examples; `make test` runs the Rust tests and the C tests.
# `make install PREFIX=...` installs the libraries, headers and mamba.pc;
# `make python` puts the shared library into the Python package (py/mamba).

CARGO    ?= cargo
CC       ?= cc
OBJCOPY  ?= objcopy
CFLAGS   ?= -O2 -Wall -Wextra -Werror
RELEASE  := target/release
BUILD    := build
# What `cargo rustc -- --print native-static-libs` reports for libmamba.a.
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
EXAMPLES := mamba kws mnist tokenize
PYTHON   ?= python3

# Installation (DESTDIR for staged installs, as usual).
PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL    ?= install
VERSION    := $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)

.PHONY: all lib examples test test-rust test-c check-header bench clean \
	install uninstall python test-python test-install demo \
	test-asan-cli test-valgrind fuzz-smoke

DEMO_MODEL  := demo/demo.gguf
DEMO_PROMPT := And God said

all: lib examples

lib:
	$(CARGO) build --release --lib
	@mkdir -p $(BUILD)
	cp $(RELEASE)/libmamba.a $(RELEASE)/libmamba.so $(BUILD)/
	@# The C project's generate/chat are weak in the archive, so a main that
	@# defines its own links without a duplicate-symbol error (docs/drop-in.md).
	$(OBJCOPY) --weaken-symbol=generate --weaken-symbol=chat $(BUILD)/libmamba.a

examples: lib $(addprefix $(BUILD)/,$(EXAMPLES))
	cp $(BUILD)/mamba ./mamba

$(BUILD)/%: c-examples/%.c include/mamba.h $(BUILD)/libmamba.a
	$(CC) $(CFLAGS) -Iinclude $< $(BUILD)/libmamba.a $(STATIC_LIBS) -o $@

# Builds everything, then writes text with the bundled demo model (a 1 MB
# byte-level Mamba trained by py/train_demo.py on the King James Bible).
demo:
	@echo "==> [1/2] building libmamba and the mamba CLI (cargo release build; a few minutes the first time)"
	@$(MAKE) --no-print-directory all
	@echo "==> [2/2] generating 200 bytes with $(DEMO_MODEL) (see docs/demo.md)"
	./mamba $(DEMO_MODEL) -n 200 -i "$(DEMO_PROMPT)" -t 0.8 -s 42

test: test-rust test-c test-python test-install

# The kernels and the LM parity tests once more on each lower SIMD tier
# (AVX2+FMA+F16C, portable), which CPUs without AVX-512 run.
test-rust:
	$(CARGO) test
	MAMBA_ISA=avx2 $(CARGO) test --lib --test parity --test batch
	MAMBA_ISA=portable $(CARGO) test --lib --test parity --test batch

test-c: examples
	$(MAKE) -C tests/c CC=$(CC)

# Hardening (docs/hardening.md). The CLI built with ASan+UBSan on fixture
# models and tokenizers; the C tests (non-ASan builds) and ./mamba under
# valgrind memcheck; a short run of every fuzz target (installs cargo-fuzz).
test-asan-cli: examples
	$(MAKE) -C tests/c CC=$(CC) asan-cli

test-valgrind: examples
	$(MAKE) -C tests/c CC=$(CC) valgrind

FUZZ_SECONDS ?= 20
fuzz-smoke:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/smoke.sh

# Fails when the committed header differs from what the sources generate.
check-header:
	$(CARGO) build --lib
	git diff --exit-code include/mamba.h

# mamba.pc with this install's paths (relative to ${prefix} where they can be).
PC_LIBDIR     = $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))

# Installs what `make` built; builds only if the libraries are missing, so
# that `make && sudo make install` does not run cargo as root.
# (`lib` makes both; one rule, so that make -j runs cargo once.)
$(BUILD)/libmamba.a:
	$(MAKE) --no-print-directory lib
$(BUILD)/libmamba.so: | $(BUILD)/libmamba.a

install: $(BUILD)/libmamba.a $(BUILD)/libmamba.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(PC_LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@LIBS_PRIVATE@|$(STATIC_LIBS)|g' mamba.pc.in > $(BUILD)/mamba.pc
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	$(INSTALL) -m 644 $(BUILD)/libmamba.a $(DESTDIR)$(LIBDIR)/libmamba.a
	$(INSTALL) -m 755 $(BUILD)/libmamba.so $(DESTDIR)$(LIBDIR)/libmamba.so
	$(INSTALL) -m 644 include/*.h $(DESTDIR)$(INCLUDEDIR)/
	$(INSTALL) -m 644 $(BUILD)/mamba.pc $(DESTDIR)$(PKGCONFIGDIR)/mamba.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libmamba.a $(DESTDIR)$(LIBDIR)/libmamba.so \
	      $(DESTDIR)$(PKGCONFIGDIR)/mamba.pc
	for h in include/*.h; do rm -f $(DESTDIR)$(INCLUDEDIR)/$$(basename $$h); done

# The shared library inside the Python package, so `pip install ./py` ships it.
python: lib
	cp $(BUILD)/libmamba.so py/mamba/libmamba.so

# Python binding tests from the checkout (standard library only; NumPy is
# used when importable), on build/libmamba.so unless MAMBA_LIBRARY says
# otherwise (not a stale copy that `make python` left in py/mamba/).
test-python: lib
	MAMBA_LIBRARY=$${MAMBA_LIBRARY:-$(abspath $(BUILD))/libmamba.so} $(PYTHON) -m unittest discover -s py/tests -v

# Installs into a temporary prefix and builds C programs against it through
# pkg-config (dynamic and static), then pip-installs the Python package.
test-install: lib
	PYTHON=$(PYTHON) CC=$(CC) sh tests/install/run.sh

# Speed table (decode, prompt, batched decode) on random models of
# mamba-130m's shape in every weight type, plus mamba-370m's shape in
# BENCH_370M_DTYPES (empty to skip), then keyword-spotting latency and MNIST
# throughput on the test fixtures. Generating the models needs numpy and gguf
# (pip install -r py/requirements-export.txt); they are made once, in BENCH_DIR.
BENCH_DIR   := $(BUILD)/bench
BENCH_DTYPES := f32 f16 bf16 q8_0 int8
BENCH_370M_DTYPES := f32 bf16 q8_0
# 1: map the models in 2 MiB pages where the kernel can (LoadOptions::huge_pages;
# the first load may read a file from disk again). 0: as loaded by default.
BENCH_HUGE_PAGES := 1
BENCH_MODELS := $(foreach d,$(BENCH_DTYPES),$(BENCH_DIR)/m130.$(d).gguf) \
                $(foreach d,$(BENCH_370M_DTYPES),$(BENCH_DIR)/m370.$(d).gguf)
bench:
	@mkdir -p $(BENCH_DIR)
	@for s in 130 370; do \
	  dts="$(BENCH_DTYPES)"; test $$s = 370 && dts="$(BENCH_370M_DTYPES)"; \
	  test -n "$$dts" || continue; \
	  test -f $(BENCH_DIR)/m$$s/model.safetensors || { echo "== writing a random $${s}m-shaped checkpoint"; python3 py/make_random_checkpoint.py --preset $${s}m $(BENCH_DIR)/m$$s || exit 1; }; \
	  for d in $$dts; do f=$(BENCH_DIR)/m$$s.$$d.gguf; test -f $$f || { echo "== exporting $${s}m $$d"; \
	    python3 py/export.py $(BENCH_DIR)/m$$s $$f.tmp --dtype $$d --no-tokenizer >/dev/null && mv $$f.tmp $$f || \
	    { rm -f $$f.tmp; echo "make bench: exporting needs numpy and gguf: pip install -r py/requirements-export.txt" >&2; exit 1; }; }; done; \
	done
	$(CARGO) build --release --example bench --example dtype_report
	@echo "== speed"
	MAMBA_HUGE_PAGES=$(BENCH_HUGE_PAGES) $(RELEASE)/examples/bench $(BENCH_MODELS) \
	  --kws tests/fixtures/classifier/kws.gguf --audio tests/fixtures/audio/extra_no_1000ms.f32 \
	  --mnist tests/fixtures/classifier/mnist.gguf
	@echo "== accuracy against f32"
	$(RELEASE)/examples/dtype_report $(BENCH_DIR)/m130.f32.gguf $(foreach d,$(filter-out f32,$(BENCH_DTYPES)),$(BENCH_DIR)/m130.$(d).gguf)

clean:
	$(CARGO) clean
	rm -rf $(BUILD) ./mamba py/mamba/libmamba.so

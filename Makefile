# libmamba: `make` builds the Rust library (release), the header and the C
# examples; `make test` runs the Rust tests and the C tests.

CARGO    ?= cargo
CC       ?= cc
OBJCOPY  ?= objcopy
CFLAGS   ?= -O2 -Wall -Wextra -Werror
RELEASE  := target/release
BUILD    := build
# What `cargo rustc -- --print native-static-libs` reports for libmamba.a.
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
EXAMPLES := mamba

.PHONY: all lib examples test test-rust test-c check-header bench clean test-asan-cli test-valgrind fuzz-smoke

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

test: test-rust test-c

test-rust:
	$(CARGO) test

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

# Speed table (decode, prompt, batched decode) on random models of
# mamba-130m's shape in every weight type. Needs numpy (model generation).
BENCH_DIR   := $(BUILD)/bench
BENCH_DTYPES := f32 f16 bf16 q8_0 int8
bench:
	@mkdir -p $(BENCH_DIR)
	@test -f $(BENCH_DIR)/m130/model.safetensors || { echo "== writing a random 130m-shaped checkpoint"; python3 py/make_random_checkpoint.py --preset 130m $(BENCH_DIR)/m130; }
	@for d in $(BENCH_DTYPES); do test -f $(BENCH_DIR)/m130.$$d.gguf || { echo "== exporting $$d"; python3 py/export.py $(BENCH_DIR)/m130 $(BENCH_DIR)/m130.$$d.gguf --dtype $$d --no-tokenizer >/dev/null; }; done
	$(CARGO) build --release --example bench --example dtype_report
	@echo "== speed"
	$(RELEASE)/examples/bench $(foreach d,$(BENCH_DTYPES),$(BENCH_DIR)/m130.$(d).gguf)
	@echo "== accuracy against f32"
	$(RELEASE)/examples/dtype_report $(BENCH_DIR)/m130.f32.gguf $(foreach d,$(filter-out f32,$(BENCH_DTYPES)),$(BENCH_DIR)/m130.$(d).gguf)

clean:
	$(CARGO) clean
	rm -rf $(BUILD) ./mamba

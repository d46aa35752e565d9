# libmamba: `make` builds the Rust library (release), the header and the C
# examples; `make test` runs the Rust tests and the C tests.

CARGO    ?= cargo
CC       ?= cc
CFLAGS   ?= -O2 -Wall -Wextra -Werror
RELEASE  := target/release
BUILD    := build
# What `cargo rustc -- --print native-static-libs` reports for libmamba.a.
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
EXAMPLES := mamba

DEMO_MODEL  := demo/demo.gguf
DEMO_PROMPT := And God said

.PHONY: all lib examples test test-rust test-c check-header clean demo

all: lib examples

lib:
	$(CARGO) build --release --lib
	@mkdir -p $(BUILD)
	cp $(RELEASE)/libmamba.a $(RELEASE)/libmamba.so $(BUILD)/

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

test: test-rust test-c

test-rust:
	$(CARGO) test

test-c: lib
	$(MAKE) -C tests/c CC=$(CC)

# Fails when the committed header differs from what the sources generate.
check-header:
	$(CARGO) build --lib
	git diff --exit-code include/mamba.h

clean:
	$(CARGO) clean
	rm -rf $(BUILD) ./mamba

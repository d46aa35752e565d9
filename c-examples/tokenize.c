/*
 * tokenize: reads text on stdin, prints one token id per line.
 *
 *   ./build/tokenize TOKENIZER < text.txt
 *
 * TOKENIZER is an HF tokenizer.json, the C project's tokenizer.bin, or a
 * GGUF model that carries its tokenizer. Uses only the public header.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mamba.h"

static int fail(const char *what) {
    fprintf(stderr, "tokenize: %s: %s\n", what, mamba_last_error());
    return EXIT_FAILURE;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s TOKENIZER(.json|.bin|.gguf) < text\n", argv[0]);
        return EXIT_FAILURE;
    }
    const char *path = argv[1];
    size_t len = strlen(path);
    mamba_tokenizer *tok = NULL;
    if (len > 5 && strcmp(path + len - 5, ".gguf") == 0) {
        mamba_model *model = NULL;
        if (mamba_model_load(path, NULL, &model) != MAMBA_OK) return fail("load");
        mamba_status st = mamba_model_get_tokenizer(model, &tok);
        mamba_model_free(model); /* the tokenizer handle keeps what it needs */
        if (st != MAMBA_OK) return fail("tokenizer");
    } else if (mamba_tokenizer_load(path, &tok) != MAMBA_OK) {
        return fail("tokenizer");
    }

    /* Read all of stdin. */
    size_t cap = 1 << 16, n = 0;
    char *text = malloc(cap);
    for (size_t got; text && (got = fread(text + n, 1, cap - n, stdin)) > 0;) {
        n += got;
        if (n == cap) text = realloc(text, cap *= 2);
    }
    if (!text) return EXIT_FAILURE;

    size_t n_ids = 0;
    mamba_status st = mamba_tokenize(tok, text, n, NULL, 0, &n_ids);
    if (st != MAMBA_OK && st != MAMBA_ERR_BUFFER_TOO_SMALL) return fail("encode");
    int32_t *ids = malloc((n_ids ? n_ids : 1) * sizeof *ids);
    if (!ids || mamba_tokenize(tok, text, n, ids, n_ids, &n_ids) != MAMBA_OK) return fail("encode");
    for (size_t i = 0; i < n_ids; i++) printf("%d\n", ids[i]);
    free(ids);
    free(text);
    mamba_tokenizer_free(tok);
    return EXIT_SUCCESS;
}

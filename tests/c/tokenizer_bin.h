/* A tiny tokenizer.bin in the C project's format, for the C tests: token 0 is
 * <|endoftext|>, tokens 1..127 the single ASCII bytes, then `extra` merged
 * pieces. Exits 2 when the file cannot be written. */
#ifndef TOKENIZER_BIN_H
#define TOKENIZER_BIN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_piece(FILE *f, const char *s, int len) {
    fwrite(&len, 4, 1, f);
    fwrite(s, 1, (size_t)len, f);
}

static void write_tokenizer_bin(const char *path, const char *const *extra, int n_extra, int maxlen) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    unsigned magic = 0x4d62546b;
    int version = 1, vocab = 1 + 127 + n_extra;
    fwrite(&magic, 4, 1, f);
    fwrite(&version, 4, 1, f);
    fwrite(&vocab, 4, 1, f);
    fwrite(&maxlen, 4, 1, f);
    write_piece(f, "<|endoftext|>", (int)strlen("<|endoftext|>"));
    for (int b = 1; b < 128; b++) {
        char c = (char)b;
        write_piece(f, &c, 1);
    }
    for (int i = 0; i < n_extra; i++) write_piece(f, extra[i], (int)strlen(extra[i]));
    fclose(f);
}

#endif

/* Helpers shared by the legacy_*.c tests (the C project's API). */
#ifndef LEGACY_COMMON_H
#define LEGACY_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                                   \
            failures++;                                                                                                \
        }                                                                                                              \
    } while (0)

/* Reads a whole little-endian file of 4-byte values; *n gets the count. */
static inline void *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)len + 4);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *n = (size_t)len / 4;
    return buf;
}

/* The UTF-8 text of test token `id`: token 0 is "<|endoftext|>"; every
 * other id is the single code point U+4E00+id (3 bytes), so any text made of
 * them encodes back to the same ids under the C project's greedy tokenizer
 * (one code point = one token, and no concatenation is a vocabulary entry).
 * Two exceptions exercise decode(): `vocab-1` is " " + its code point (a
 * leading space) and `vocab-2` is "<0x41>" (a raw-byte piece, decodes to "A"). */
static inline int test_piece(int id, int vocab, char *out) {
    if (id == 0) {
        strcpy(out, "<|endoftext|>");
        return (int)strlen(out);
    }
    if (id == vocab - 2) {
        strcpy(out, "<0x41>");
        return 6;
    }
    int k = 0;
    if (id == vocab - 1) out[k++] = ' ';
    unsigned cp = 0x4E00u + (unsigned)id;
    out[k++] = (char)(0xE0 | (cp >> 12));
    out[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[k++] = (char)(0x80 | (cp & 0x3F));
    out[k] = 0;
    return k;
}

/* Writes a tokenizer.bin ("MbTk", version 1) with test_piece() for 0..vocab-1. */
static inline void write_test_tokenizer(const char *path, int vocab) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    uint32_t magic = 0x4d62546b;
    int32_t version = 1, vs = vocab, maxlen = 13;
    fwrite(&magic, 4, 1, f);
    fwrite(&version, 4, 1, f);
    fwrite(&vs, 4, 1, f);
    fwrite(&maxlen, 4, 1, f);
    char piece[32];
    for (int i = 0; i < vocab; i++) {
        int32_t len = test_piece(i, vocab, piece);
        fwrite(&len, 4, 1, f);
        fwrite(piece, 1, (size_t)len, f);
    }
    fclose(f);
}

static inline float max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (d > m) m = d;
    }
    return m;
}

static inline int argmax_n(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

#endif

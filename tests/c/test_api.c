/*
 * test_api.c: exercises the whole mamba_* API from C, as a user would.
 * Built with -Wall -Wextra -Werror, run under AddressSanitizer, linked both
 * statically and dynamically. Every exported function is called at least
 * once (the symbol check in the Makefile verifies none is missing).
 *
 * usage: test_api MODEL_V1 OTHER_MODEL_V1 TMPDIR
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mamba.h"
#include "tokenizer_bin.h"

static int failures = 0, checks = 0;
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        checks++;                                                          \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, " (last error: %s)\n", mamba_last_error());    \
        }                                                                  \
    } while (0)
#define OK(call) CHECK((call) == MAMBA_OK, "%s", #call)

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* tokenizer.bin with a few merged pieces (longest 4 bytes). */
static void write_tokenizer(const char *path) {
    static const char *const extra[] = {"th", "he", "the", " the", "in", "ing", " a", "an", "and"};
    write_tokenizer_bin(path, extra, (int)(sizeof extra / sizeof extra[0]), 4);
}

typedef struct {
    char text[4096];
    size_t len;
    int calls;
} collected;

static int collect(void *user, const char *piece, size_t len) {
    collected *c = (collected *)user;
    CHECK(strlen(piece) == len, "piece is NUL-terminated at len");
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, piece, len);
        c->len += len;
        c->text[c->len] = 0;
    }
    c->calls++;
    return 0;
}

static int stop_after_two(void *user, const char *piece, size_t len) {
    (void)piece;
    (void)len;
    int *n = (int *)user;
    return ++*n >= 2;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL OTHER_MODEL TMPDIR\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1], *other_path = argv[2], *tmpdir = argv[3];
    char tok_path[1024], bad_path[1024];
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.bin", tmpdir);
    snprintf(bad_path, sizeof bad_path, "%s/bad.bin", tmpdir);
    write_tokenizer(tok_path);

    /* Version and status strings. */
    CHECK(strlen(mamba_version()) > 0, "version");
    char want_version[32];
    snprintf(want_version, sizeof want_version, "%d.%d.%d", MAMBA_VERSION_MAJOR, MAMBA_VERSION_MINOR,
             MAMBA_VERSION_PATCH);
    CHECK(strcmp(mamba_version(), want_version) == 0, "version %s vs macros %s", mamba_version(), want_version);
    CHECK(strcmp(mamba_status_string(MAMBA_OK), "ok") == 0, "status string");
    CHECK(strcmp(mamba_status_string(12345), "unknown status") == 0, "unknown status");

    /* Threads. */
    OK(mamba_set_num_threads(1));
    CHECK(mamba_get_num_threads() == 1, "threads = %d", mamba_get_num_threads());
    CHECK(mamba_set_num_threads(-1) == MAMBA_ERR_INVALID_ARGUMENT, "negative threads");
    OK(mamba_set_num_threads(2));

    /* Loading: errors first. */
    mamba_model *model = NULL, *other = NULL;
    CHECK(mamba_model_load(NULL, NULL, &model) == MAMBA_ERR_INVALID_ARGUMENT && model == NULL, "NULL path");
    CHECK(mamba_model_load(model_path, NULL, NULL) == MAMBA_ERR_INVALID_ARGUMENT, "NULL out");
    CHECK(mamba_model_load("/no/such/file.bin", NULL, &model) == MAMBA_ERR_IO && model == NULL, "missing");
    CHECK(contains(mamba_last_error(), "/no/such/file.bin"), "message names the file: %s", mamba_last_error());
    FILE *f = fopen(bad_path, "wb");
    fwrite("Mamb", 1, 4, f);
    fclose(f);
    CHECK(mamba_model_load(bad_path, NULL, &model) == MAMBA_ERR_FORMAT && model == NULL, "bad file");
    CHECK(contains(mamba_last_error(), "bad.bin"), "names the file: %s", mamba_last_error());

    mamba_load_options lo = mamba_load_options_default();
    lo.copy_file = 1;
    OK(mamba_model_load(model_path, &lo, &model));
    mamba_model_free(model);
    model = NULL;
    OK(mamba_model_load(model_path, NULL, &model));
    OK(mamba_model_load(other_path, NULL, &other));

    mamba_model_info info;
    memset(&info, 0, sizeof info);
    OK(mamba_model_get_info(model, &info));
    CHECK(info.kind == MAMBA_MODEL_LANGUAGE, "kind");
    CHECK(info.n_layers > 0 && info.d_model > 0 && info.n_logits >= info.vocab_size, "dims");
    CHECK(info.file_bytes > 256, "file bytes");
    CHECK(mamba_model_get_info(NULL, &info) == MAMBA_ERR_INVALID_ARGUMENT, "NULL model");
    CHECK(mamba_model_get_info(model, NULL) == MAMBA_ERR_INVALID_ARGUMENT, "NULL info");
    mamba_tokenizer *none = NULL;
    CHECK(mamba_model_get_tokenizer(model, &none) == MAMBA_ERR_INVALID_ARGUMENT && none == NULL, "v1 has no tokenizer");

    /* Sessions and forward. */
    mamba_session *s = NULL, *s2 = NULL;
    OK(mamba_session_new(model, &s));
    OK(mamba_session_new(model, &s2));
    size_t nl = info.n_logits;
    float *logits = malloc(nl * sizeof(float));
    float *logits2 = malloc(nl * sizeof(float));
    int prompt[8] = {5, 17, 3, 99, 42, 7, 1, 64};
    for (int i = 0; i < 8; i++) OK(mamba_forward(s, prompt[i], logits, nl));
    OK(mamba_forward_tokens(s2, prompt, 8, logits2, nl));
    float maxdiff = 0, maxabs = 0;
    for (size_t i = 0; i < nl; i++) {
        float d = fabsf(logits[i] - logits2[i]);
        if (d > maxdiff) maxdiff = d;
        if (fabsf(logits[i]) > maxabs) maxabs = fabsf(logits[i]);
    }
    CHECK(maxdiff <= 1e-5f * maxabs, "step vs prompt: %g of %g", maxdiff, maxabs);
    const float *lp = NULL;
    size_t ln = 0;
    OK(mamba_session_logits(s, &lp, &ln));
    CHECK(ln == nl && lp[0] == logits[0], "session logits");
    uint64_t pos = 0;
    OK(mamba_session_position(s, &pos));
    CHECK(pos == 8, "position %llu", (unsigned long long)pos);

    /* Batched decode: two sessions advanced together match separate steps. */
    {
        mamba_session *b1 = NULL, *b2 = NULL, *r1 = NULL;
        OK(mamba_session_new(model, &b1));
        OK(mamba_session_new(model, &b2));
        OK(mamba_session_new(model, &r1));
        OK(mamba_forward_tokens(b1, prompt, 8, NULL, 0));
        OK(mamba_forward_tokens(r1, prompt, 8, NULL, 0));
        mamba_session *batch[2] = {b1, b2};
        int btoks[2] = {9, 4};
        OK(mamba_forward_batch(batch, btoks, 2));
        OK(mamba_forward(r1, 9, logits2, nl));
        const float *bl = NULL;
        size_t bn = 0;
        OK(mamba_session_logits(b1, &bl, &bn));
        float md = 0;
        for (size_t i = 0; i < nl; i++)
            if (fabsf(bl[i] - logits2[i]) > md) md = fabsf(bl[i] - logits2[i]);
        CHECK(md < 1e-4f, "batched vs single: %g", md);
        mamba_session *dup[2] = {b1, b1};
        CHECK(mamba_forward_batch(dup, btoks, 2) == MAMBA_ERR_INVALID_ARGUMENT, "duplicate session");
        mamba_session *mixed[2] = {b1, (mamba_session *)(void *)model};
        CHECK(mamba_forward_batch(mixed, btoks, 2) == MAMBA_ERR_INVALID_ARGUMENT, "model in batch");
        CHECK(mamba_forward_batch(NULL, btoks, 2) == MAMBA_ERR_INVALID_ARGUMENT, "NULL batch");
        mamba_session_free(b1);
        mamba_session_free(b2);
        mamba_session_free(r1);
    }

    /* Forward errors: out-of-range and negative tokens, small buffers, NULLs. */
    CHECK(mamba_forward(s, (int)info.n_logits, logits, nl) == MAMBA_ERR_INVALID_ARGUMENT, "token too big");
    CHECK(contains(mamba_last_error(), "out of range"), "%s", mamba_last_error());
    CHECK(mamba_forward(s, -1, logits, nl) == MAMBA_ERR_INVALID_ARGUMENT, "negative token");
    CHECK(mamba_forward(s, 1, logits, 3) == MAMBA_ERR_BUFFER_TOO_SMALL, "small logits buffer");
    CHECK(mamba_forward(NULL, 1, logits, nl) == MAMBA_ERR_INVALID_ARGUMENT, "NULL session");
    CHECK(mamba_forward_tokens(s, NULL, 4, logits, nl) == MAMBA_ERR_INVALID_ARGUMENT, "NULL tokens");
    CHECK(mamba_forward_tokens(s, prompt, 0, logits, nl) == MAMBA_ERR_INVALID_ARGUMENT, "no tokens");
    CHECK(mamba_forward(s, 1, NULL, 0) == MAMBA_OK, "logits optional");
    /* Wrong handle kinds and freed handles are detected. */
    CHECK(mamba_forward((mamba_session *)(void *)model, 1, NULL, 0) == MAMBA_ERR_INVALID_ARGUMENT, "model as session");
    CHECK(contains(mamba_last_error(), "mamba_model"), "%s", mamba_last_error());
    int dummy = 0;
    CHECK(mamba_session_reset((mamba_session *)(void *)&dummy) == MAMBA_ERR_INVALID_ARGUMENT, "stray pointer");

    /* State: save, diverge, restore, compare. */
    OK(mamba_session_reset(s));
    OK(mamba_forward_tokens(s, prompt, 8, NULL, 0));
    size_t ssize = 0;
    OK(mamba_state_size(s, &ssize));
    unsigned char *blob = malloc(ssize);
    size_t written = 0;
    CHECK(mamba_state_get(s, blob, ssize - 1, &written) == MAMBA_ERR_BUFFER_TOO_SMALL && written == 0, "small");
    OK(mamba_state_get(s, blob, ssize, &written));
    CHECK(written == ssize, "written %zu of %zu", written, ssize);
    OK(mamba_forward(s, 11, logits, nl));
    OK(mamba_session_reset(s2));
    OK(mamba_state_set(s2, blob, ssize));
    OK(mamba_forward(s2, 11, logits2, nl));
    CHECK(memcmp(logits, logits2, nl * sizeof(float)) == 0, "restored session continues identically");
    CHECK(mamba_state_set(s2, blob, ssize - 1) == MAMBA_ERR_STATE_MISMATCH, "short blob");
    blob[ssize - 1] ^= 1;
    CHECK(mamba_state_set(s2, blob, ssize) == MAMBA_ERR_STATE_MISMATCH, "corrupt blob");
    CHECK(contains(mamba_last_error(), "checksum"), "%s", mamba_last_error());
    blob[ssize - 1] ^= 1;
    mamba_session *so = NULL;
    OK(mamba_session_new(other, &so));
    CHECK(mamba_state_set(so, blob, ssize) == MAMBA_ERR_STATE_MISMATCH, "other model");
    CHECK(mamba_state_set(s2, NULL, 10) == MAMBA_ERR_INVALID_ARGUMENT, "NULL blob");

    /* Tokenizer. */
    mamba_tokenizer *tok = NULL;
    CHECK(mamba_tokenizer_load("/no/such/tokenizer.bin", &tok) != MAMBA_OK && tok == NULL, "missing tokenizer");
    OK(mamba_tokenizer_load(tok_path, &tok));
    uint32_t tv = 0;
    OK(mamba_tokenizer_vocab_size(tok, &tv));
    CHECK(tv == 137, "tokenizer vocab %u", tv);
    const char *text = "the thing and a cat";
    int ids[64];
    size_t n_ids = 0;
    CHECK(mamba_tokenize(tok, text, strlen(text), ids, 2, &n_ids) == MAMBA_ERR_BUFFER_TOO_SMALL && n_ids > 2,
          "needed count reported");
    OK(mamba_tokenize(tok, text, strlen(text), ids, 64, &n_ids));
    char rebuilt[256] = {0};
    size_t off = 0;
    for (size_t i = 0; i < n_ids; i++) {
        size_t pl = 0;
        OK(mamba_token_to_piece(tok, ids[i], rebuilt + off, sizeof rebuilt - off, &pl));
        off += pl;
    }
    CHECK(strcmp(rebuilt, text) == 0, "pieces rebuild the text: '%s'", rebuilt);
    CHECK(n_ids < strlen(text), "merges happened: %zu tokens", n_ids);
    char small[1];
    size_t pl = 0;
    CHECK(mamba_token_to_piece(tok, 0, small, 1, &pl) == MAMBA_ERR_BUFFER_TOO_SMALL && pl == 13, "small piece buf");
    CHECK(mamba_token_to_piece(tok, 100000, small, 1, &pl) == MAMBA_ERR_INVALID_ARGUMENT, "bad token");
    const char invalid_utf8[] = {'a', (char)0xff, (char)0xc3, 'b'};
    mamba_status ts = mamba_tokenize(tok, invalid_utf8, sizeof invalid_utf8, ids, 64, &n_ids);
    CHECK(ts == MAMBA_OK || ts == MAMBA_ERR_INVALID_ARGUMENT, "invalid UTF-8 handled: %d", ts);

    /* Sampler. */
    mamba_sampler_params sp = mamba_sampler_params_default();
    sp.temperature = 0.0f;
    mamba_sampler *sampler = NULL;
    OK(mamba_sampler_new(&sp, nl, &sampler));
    int next = -1;
    OK(mamba_sampler_sample(sampler, logits, nl, &next));
    int best = 0;
    for (size_t i = 1; i < nl; i++)
        if (logits[i] > logits[best]) best = (int)i;
    CHECK(next == best, "greedy sample %d vs argmax %d", next, best);
    OK(mamba_sampler_accept(sampler, 3));
    CHECK(mamba_sampler_sample(sampler, NULL, nl, &next) == MAMBA_ERR_INVALID_ARGUMENT, "NULL logits");
    sp.temperature = -1.0f;
    mamba_sampler *bad_sampler = NULL;
    CHECK(mamba_sampler_new(&sp, nl, &bad_sampler) == MAMBA_ERR_INVALID_ARGUMENT && !bad_sampler, "bad temp");
    mamba_sampler_free(sampler);

    /* Generate: greedy, twice from the same state gives the same text. */
    mamba_generate_params gp = mamba_generate_params_default();
    gp.max_tokens = 12;
    gp.stop_at_eos = 0;
    gp.sampler.temperature = 0.0f;
    collected c1, c2;
    memset(&c1, 0, sizeof c1);
    memset(&c2, 0, sizeof c2);
    mamba_generate_stats st;
    memset(&st, 0, sizeof st);
    OK(mamba_session_reset(s));
    OK(mamba_generate(s, tok, "the", &gp, collect, &c1, &st));
    CHECK(st.generated_tokens == 12 && st.prompt_tokens >= 1, "stats %d %d", st.generated_tokens, st.prompt_tokens);
    CHECK(st.generate_tok_per_s > 0, "tok/s");
    OK(mamba_session_reset(s));
    OK(mamba_generate(s, tok, "the", &gp, collect, &c2, NULL));
    CHECK(c1.len == c2.len && memcmp(c1.text, c2.text, c1.len) == 0, "deterministic greedy");
    int stops = 0;
    OK(mamba_generate(s, tok, "and", &gp, stop_after_two, &stops, NULL));
    CHECK(stops == 2, "callback stop after %d", stops);
    CHECK(mamba_generate(s, NULL, "x", &gp, collect, &c1, NULL) == MAMBA_ERR_INVALID_ARGUMENT, "no tokenizer");
    CHECK(mamba_generate(s, tok, NULL, &gp, collect, &c1, NULL) == MAMBA_ERR_INVALID_ARGUMENT, "NULL prompt");
    gp.max_tokens = -1;
    CHECK(mamba_generate(s, tok, "x", &gp, collect, &c1, NULL) == MAMBA_ERR_INVALID_ARGUMENT, "negative max");

    /* Frees: NULL is a no-op; double frees are detected, not crashes. */
    mamba_model_free(NULL);
    mamba_session_free(NULL);
    mamba_tokenizer_free(NULL);
    mamba_sampler_free(NULL);
    mamba_session_free(s);
    mamba_session_free(s); /* detected: reported, nothing freed twice */
    CHECK(contains(mamba_last_error(), "not a live"), "double free reported: %s", mamba_last_error());
    mamba_session_free(s2);
    mamba_session_free(so);
    mamba_tokenizer_free(tok);
    /* Model freed while a session is alive: the session keeps it. */
    mamba_session *late = NULL;
    OK(mamba_session_new(model, &late));
    mamba_model_free(model);
    mamba_model_free(other);
    OK(mamba_forward(late, 1, logits, nl));
    mamba_session_free(late);

    free(logits);
    free(logits2);
    free(blob);
    printf("test_api: %d checks, %d failures\n", checks, failures);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}

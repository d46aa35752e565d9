/*
 * test_boundary.c: every exported mamba_* function called with hostile
 * arguments: NULL pointers, zero and huge (SIZE_MAX) sizes, buffers that are
 * too small, handles freed twice and handles of the wrong kind. Each must
 * return a status (not MAMBA_OK) with a message in mamba_last_error() that
 * names the function, never crash, exit or print to stdout (the Makefile
 * runs this with stdout captured and fails when anything was printed).
 *
 * The legacy C-project functions are called where their signature leaves
 * room for an error without exit(1): NULL and unbuilt structs for the free
 * functions, mamba_legacy_load_model's status, ignored bad sizes.
 *
 * Adding an export: add a section here. The Makefile's `boundary-symbols`
 * check fails for any exported mamba_* function this file does not name.
 *
 * usage: test_boundary MODEL_V1 OTHER_MODEL_V1 TMPDIR
 */
#define _POSIX_C_SOURCE 200809L
#define MAMBA_LEGACY_API 1
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mamba.h"
#include "tokenizer_bin.h"

static int failures = 0, checks = 0;

#define FAIL(...)                                                \
    do {                                                         \
        failures++;                                              \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);     \
        fprintf(stderr, __VA_ARGS__);                            \
        fprintf(stderr, " (last error: %s)\n", mamba_last_error()); \
    } while (0)

#define CHECK(cond, ...)            \
    do {                            \
        checks++;                   \
        if (!(cond)) FAIL(__VA_ARGS__); \
    } while (0)

/* Sets the thread's last error to a known message so that a check can tell
 * the message came from the call under test. */
static void mark(void) { (void)mamba_set_num_threads(-1); }

/* "mamba_forward(s, ...)" -> "mamba_forward" */
static void fname_of(const char *call, char *out, size_t cap) {
    size_t n = 0;
    while (call[n] && call[n] != '(' && n + 1 < cap) {
        out[n] = call[n];
        n++;
    }
    out[n] = 0;
}

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* The call fails with `want` (or any error when want < 0), and the message
 * is non-empty and comes from this function. */
#define EXPECT_ERR(want, call)                                                      \
    do {                                                                            \
        char fn_[128];                                                              \
        fname_of(#call, fn_, sizeof fn_);                                           \
        mark();                                                                     \
        mamba_status st_ = (call);                                                  \
        checks++;                                                                   \
        if (st_ == MAMBA_OK)                                                        \
            FAIL("%s succeeded, expected an error", #call);                         \
        else if ((int)(want) >= 0 && st_ != (mamba_status)(want))                   \
            FAIL("%s gave %s, expected %s", #call, mamba_status_string((int)st_),   \
                 mamba_status_string((int)(want)));                                 \
        else if (!starts_with(mamba_last_error(), fn_))                             \
            FAIL("%s: the message does not name %s", #call, fn_);                   \
    } while (0)

#define ANY (-1)
#define INVALID MAMBA_ERR_INVALID_ARGUMENT
#define OK(call) CHECK((call) == MAMBA_OK, "%s", #call)

/* A void free function given something that is not a live handle of its
 * kind: it must leave it alone and report it in mamba_last_error(). */
#define EXPECT_FREE_REPORTS(call)                                               \
    do {                                                                        \
        char fn_[128];                                                          \
        fname_of(#call, fn_, sizeof fn_);                                       \
        mark();                                                                 \
        call;                                                                   \
        CHECK(starts_with(mamba_last_error(), fn_), "%s was not reported", #call); \
    } while (0)

/* NULL is a no-op for the free functions: no error recorded. */
#define EXPECT_FREE_NOOP(call)                                                       \
    do {                                                                             \
        mark();                                                                      \
        call;                                                                        \
        CHECK(starts_with(mamba_last_error(), "mamba_set_num_threads"), "%s", #call); \
    } while (0)

/* tokenizer.bin of the single bytes only (longest piece: <|endoftext|>, 13 bytes). */
static void write_tokenizer(const char *path) { write_tokenizer_bin(path, NULL, 0, 13); }

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fwrite(p, 1, n, f);
    fclose(f);
}

static int stop_cb(void *u, const char *piece, size_t len) {
    (void)u;
    (void)piece;
    (void)len;
    return 1;
}

/* The legacy loops report errors the C project's way: a message on stderr
 * and exit(1), documented in mamba.h. Each case runs in a child process (this
 * program re-executed with --exit-case N, without leak checking: exit(1)
 * leaves the library's state allocated, as the C project does): it must exit
 * with 1 (not crash, not abort), having printed nothing on stdout. */
static const char *self_path;
static int run_exit_case(int n, const char *model_path) {
    Mamba lm;
    Tokenizer nt0;
    Sampler ns0;
    memset(&lm, 0, sizeof lm);
    memset(&nt0, 0, sizeof nt0);
    memset(&ns0, 0, sizeof ns0);
    if (n >= 2 && mamba_legacy_load_model(&lm, model_path, NULL) != MAMBA_OK) return 3;
    switch (n) {
    case 0: mamba_legacy_generate(NULL, NULL, NULL, "hi", 4); break;
    case 1: mamba_legacy_chat(NULL, NULL, NULL, "hi", "be brief", 4); break;
    case 2: mamba_legacy_generate(&lm, &nt0, &ns0, "hi", 4); break;
    case 3: mamba_legacy_chat(&lm, &nt0, &ns0, "hi", "be brief", 4); break;
    case 4: forward(&lm, -1); break;
    case 5: forward(&lm, 1 << 30); break;
    default: return 4;
    }
    return 0; /* returned: the test fails (exit 1 expected) */
}
#define N_EXIT_CASES 6

static void test_exit_cases(const char *model_path) {
    for (int n = 0; n < N_EXIT_CASES; n++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            char num[16];
            snprintf(num, sizeof num, "%d", n);
            setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
            execl(self_path, self_path, "--exit-case", num, model_path, (char *)NULL);
            _exit(5);
        }
        int ws = 0;
        waitpid(pid, &ws, 0);
        CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 1, "legacy exit case %d: expected exit(1), got status %#x",
              n, ws);
    }
}

static void test_statics(void) {
    /* Infallible: any int is a valid argument. */
    CHECK(strlen(mamba_version()) > 0, "version");
    CHECK(strcmp(mamba_status_string(-1), "unknown status") == 0, "status_string(-1)");
    CHECK(strcmp(mamba_status_string(INT32_MAX), "unknown status") == 0, "status_string(max)");
    CHECK(mamba_get_num_threads() >= 1, "get_num_threads");
    EXPECT_ERR(INVALID, mamba_set_num_threads(-1));
    EXPECT_ERR(INVALID, mamba_set_num_threads(INT32_MIN));
    OK(mamba_set_num_threads(0));
    mamba_load_options lo = mamba_load_options_default();
    CHECK(lo.copy_file == 0, "load options default");
    mamba_sampler_params sp = mamba_sampler_params_default();
    CHECK(sp.temperature >= 0, "sampler params default");
    mamba_generate_params gp = mamba_generate_params_default();
    CHECK(gp.max_tokens > 0, "generate params default");
    mark();
    CHECK(strlen(mamba_last_error()) > 0, "last_error after a failure is non-empty");
}

static void test_load(const char *model_path, const char *dir) {
    mamba_model *m = (mamba_model *)0x1;
    char p[4096];
    EXPECT_ERR(INVALID, mamba_model_load(NULL, NULL, &m));
    CHECK(m == (mamba_model *)0x1, "out untouched on failure");
    EXPECT_ERR(INVALID, mamba_model_load(model_path, NULL, NULL));
    EXPECT_ERR(MAMBA_ERR_IO, mamba_model_load("/nonexistent/model.bin", NULL, &m));
    EXPECT_ERR(MAMBA_ERR_IO, mamba_model_load(dir, NULL, &m)); /* a directory */
    EXPECT_ERR(INVALID, mamba_model_load("\xff\xfe", NULL, &m)); /* not UTF-8 */
    snprintf(p, sizeof p, "%s/empty.bin", dir);
    write_bytes(p, "", 0);
    EXPECT_ERR(MAMBA_ERR_FORMAT, mamba_model_load(p, NULL, &m));
    snprintf(p, sizeof p, "%s/junk.bin", dir);
    write_bytes(p, "junkjunkjunkjunk", 16);
    EXPECT_ERR(MAMBA_ERR_FORMAT, mamba_model_load(p, NULL, &m));
    mamba_load_options o = {.copy_file = 1, .legacy_bfloat8 = 1};
    EXPECT_ERR(MAMBA_ERR_FORMAT, mamba_model_load(p, &o, &m));

    mamba_tokenizer *t = (mamba_tokenizer *)0x1;
    EXPECT_ERR(INVALID, mamba_tokenizer_load(NULL, &t));
    EXPECT_ERR(INVALID, mamba_tokenizer_load(p, NULL));
    EXPECT_ERR(MAMBA_ERR_IO, mamba_tokenizer_load("/nonexistent/tokenizer.bin", &t));
    EXPECT_ERR(MAMBA_ERR_FORMAT, mamba_tokenizer_load(p, &t));
    CHECK(t == (mamba_tokenizer *)0x1, "out untouched on failure");

    Mamba lm;
    memset(&lm, 0, sizeof lm);
    EXPECT_ERR(INVALID, mamba_legacy_load_model(NULL, model_path, NULL));
    EXPECT_ERR(INVALID, mamba_legacy_load_model(&lm, NULL, NULL));
    EXPECT_ERR(MAMBA_ERR_IO, mamba_legacy_load_model(&lm, "/nonexistent", NULL));
    EXPECT_ERR(MAMBA_ERR_FORMAT, mamba_legacy_load_model(&lm, p, NULL));
    CHECK(lm.state == NULL, "Mamba untouched on failure");
}

/* The classifier exports: NULL pointers, huge counts, the wrong model
 * family, bad sample rates, missing files, short buffers, freed handles. */
static void test_classifiers(const char *model_path, const char *dir) {
    char kws_path[4096], mnist_path[4096], wav_path[4096], idx_path[4096];
    const char *slash = strrchr(model_path, '/');
    int plen = slash ? (int)(slash - model_path) : 1;
    snprintf(kws_path, sizeof kws_path, "%.*s/../classifier/kws.gguf", plen, slash ? model_path : ".");
    snprintf(mnist_path, sizeof mnist_path, "%.*s/../classifier/mnist.gguf", plen, slash ? model_path : ".");
    snprintf(wav_path, sizeof wav_path, "%s/not-a-wav.wav", dir);
    snprintf(idx_path, sizeof idx_path, "%s/bad.idx", dir);
    write_bytes(wav_path, "RIFF\x04\0\0\0WAVE", 12);
    write_bytes(idx_path, "\0\0\x08\x03\0\0\0\x02", 8);

    mamba_model *kws = NULL, *mnist = NULL, *lm = NULL;
    OK(mamba_model_load(kws_path, NULL, &kws));
    OK(mamba_model_load(mnist_path, NULL, &mnist));
    OK(mamba_model_load(model_path, NULL, &lm));
    mamba_model_info info;
    OK(mamba_model_get_info(kws, &info));
    size_t w = info.input_width, frames = info.input_frames ? info.input_frames : 1;
    float *feat = calloc(w * frames, sizeof(float)), probs[64], logits[64], samples[1600] = {0};
    int16_t samples16[1600] = {0};
    uint8_t pixels[784] = {0};
    int32_t cls = -1;

    EXPECT_ERR(INVALID, mamba_classify_features(NULL, feat, 1, frames, NULL, &cls, probs, logits));
    EXPECT_ERR(INVALID, mamba_classify_features(kws, NULL, 1, frames, NULL, &cls, probs, logits));
    EXPECT_ERR(ANY, mamba_classify_features(kws, feat, SIZE_MAX, frames, NULL, &cls, probs, logits));
    EXPECT_ERR(ANY, mamba_classify_features(kws, feat, 1, SIZE_MAX, NULL, &cls, probs, logits));
    EXPECT_ERR(ANY, mamba_classify_features(kws, feat, 0, frames, NULL, &cls, probs, logits));
    EXPECT_ERR(ANY, mamba_classify_features(lm, feat, 1, frames, NULL, &cls, probs, logits));
    EXPECT_ERR(INVALID, mamba_classify_images(NULL, pixels, 1, &cls, probs));
    EXPECT_ERR(INVALID, mamba_classify_images(mnist, NULL, 1, &cls, probs));
    EXPECT_ERR(ANY, mamba_classify_images(mnist, pixels, SIZE_MAX, &cls, probs));
    EXPECT_ERR(ANY, mamba_classify_images(lm, pixels, 1, &cls, probs));
    EXPECT_ERR(ANY, mamba_classify_images(kws, pixels, 1, &cls, probs));
    EXPECT_ERR(INVALID, mamba_classify_audio_f32(NULL, samples, 1600, 16000, &cls, probs));
    EXPECT_ERR(INVALID, mamba_classify_audio_f32(kws, NULL, 1600, 16000, &cls, probs));
    EXPECT_ERR(ANY, mamba_classify_audio_f32(kws, samples, SIZE_MAX, 16000, &cls, probs));
    EXPECT_ERR(ANY, mamba_classify_audio_f32(kws, samples, 1600, 8000, &cls, probs));
    EXPECT_ERR(ANY, mamba_classify_audio_f32(kws, samples, 1600, -1, &cls, probs));
    EXPECT_ERR(ANY, mamba_classify_audio_f32(mnist, samples, 1600, 16000, &cls, probs));
    EXPECT_ERR(INVALID, mamba_classify_audio_i16(NULL, samples16, 1600, 16000, &cls, probs));
    EXPECT_ERR(INVALID, mamba_classify_audio_i16(kws, NULL, 1600, 16000, &cls, probs));
    EXPECT_ERR(ANY, mamba_classify_audio_i16(kws, samples16, SIZE_MAX, 16000, &cls, probs));
    EXPECT_ERR(ANY, mamba_classify_audio_i16(kws, samples16, 1600, 44100, &cls, probs));
    EXPECT_ERR(INVALID, mamba_classify_wav(NULL, wav_path, &cls, probs));
    EXPECT_ERR(INVALID, mamba_classify_wav(kws, NULL, &cls, probs));
    EXPECT_ERR(ANY, mamba_classify_wav(kws, "/no/such/clip.wav", &cls, probs));
    EXPECT_ERR(ANY, mamba_classify_wav(kws, wav_path, &cls, probs));
    EXPECT_ERR(ANY, mamba_classify_wav(lm, wav_path, &cls, probs));
    EXPECT_ERR(INVALID, mamba_audio_features(NULL, samples, 1600, 16000, feat, w * frames));
    EXPECT_ERR(INVALID, mamba_audio_features(kws, NULL, 1600, 16000, feat, w * frames));
    EXPECT_ERR(ANY, mamba_audio_features(kws, samples, 1600, 16000, feat, 3));
    EXPECT_ERR(ANY, mamba_audio_features(kws, samples, 1600, 16000, NULL, w * frames));
    EXPECT_ERR(ANY, mamba_audio_features(kws, samples, SIZE_MAX, 16000, feat, w * frames));
    EXPECT_ERR(ANY, mamba_audio_features(lm, samples, 1600, 16000, feat, w * frames));
    CHECK(cls == -1, "failed calls leave the out-parameter alone");
    CHECK(mamba_model_class_label(NULL, 0) == NULL, "class label of NULL");
    CHECK(mamba_model_class_label(kws, -1) == NULL, "class label -1");
    CHECK(mamba_model_class_label(kws, 1 << 30) == NULL, "class label out of range");
    CHECK(mamba_model_class_label(lm, 0) == NULL, "class label of a language model");
    CHECK(mamba_model_class_label(kws, 0) != NULL, "a real label");
    uint32_t dims[4], nd = 0;
    uint8_t data[16];
    EXPECT_ERR(INVALID, mamba_read_idx(NULL, dims, 4, &nd, data, sizeof data));
    EXPECT_ERR(ANY, mamba_read_idx("/no/such/file.idx", dims, 4, &nd, data, sizeof data));
    EXPECT_ERR(ANY, mamba_read_idx(idx_path, dims, 4, &nd, data, sizeof data));
    EXPECT_ERR(ANY, mamba_read_idx(wav_path, dims, 4, &nd, data, sizeof data));
    EXPECT_ERR(ANY, mamba_read_idx(idx_path, NULL, SIZE_MAX, &nd, data, sizeof data));
    mamba_model_free(kws);
    EXPECT_ERR(INVALID, mamba_classify_features(kws, feat, 1, frames, NULL, &cls, probs, logits));
    EXPECT_ERR(INVALID, mamba_classify_wav(kws, wav_path, &cls, probs));
    mamba_model_free(mnist);
    mamba_model_free(lm);
    free(feat);
}

int main(int argc, char **argv) {
    self_path = argv[0];
    if (argc == 4 && strcmp(argv[1], "--exit-case") == 0) return run_exit_case(atoi(argv[2]), argv[3]);
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL_V1 OTHER_MODEL_V1 TMPDIR\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1], *dir = argv[3];
    char tok_path[4096];
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.bin", dir);
    write_tokenizer(tok_path);

    test_statics();
    test_load(model_path, dir);
    test_classifiers(model_path, dir);

    /* Live handles of every kind. */
    mamba_model *m = NULL, *m2 = NULL;
    mamba_session *s = NULL, *s2 = NULL;
    mamba_tokenizer *t = NULL;
    mamba_sampler *sm = NULL;
    OK(mamba_model_load(model_path, NULL, &m));
    OK(mamba_session_new(m, &s));
    OK(mamba_session_new(m, &s2));
    OK(mamba_tokenizer_load(tok_path, &t));
    OK(mamba_sampler_new(NULL, 16, &sm));
    if (!m || !s || !s2 || !t || !sm) {
        fprintf(stderr, "setup failed: %s\n", mamba_last_error());
        return 1;
    }
    mamba_model_info info;
    OK(mamba_model_get_info(m, &info));
    size_t nl = info.n_logits;
    float *logits = calloc(nl, sizeof(float));
    /* Handles of the wrong kind, cast as C code with a mix-up would. */
    mamba_model *wm = (mamba_model *)s;
    mamba_session *ws = (mamba_session *)m;
    mamba_tokenizer *wt = (mamba_tokenizer *)sm;
    mamba_sampler *wsm = (mamba_sampler *)t;
    /* A pointer that was never a handle. */
    int not_a_handle = 0;
    mamba_session *bogus = (mamba_session *)&not_a_handle;

    /* mamba_model_get_info */
    EXPECT_ERR(INVALID, mamba_model_get_info(NULL, &info));
    EXPECT_ERR(INVALID, mamba_model_get_info(m, NULL));
    EXPECT_ERR(INVALID, mamba_model_get_info(wm, &info));
    EXPECT_ERR(INVALID, mamba_model_get_info((mamba_model *)bogus, &info));

    /* mamba_model_get_tokenizer: a v1 file carries none */
    mamba_tokenizer *mt = NULL;
    EXPECT_ERR(INVALID, mamba_model_get_tokenizer(NULL, &mt));
    EXPECT_ERR(INVALID, mamba_model_get_tokenizer(m, NULL));
    EXPECT_ERR(INVALID, mamba_model_get_tokenizer(wm, &mt));
    EXPECT_ERR(INVALID, mamba_model_get_tokenizer(m, &mt));
    CHECK(mt == NULL, "no tokenizer handed out");

    /* mamba_session_new */
    mamba_session *sx = NULL;
    EXPECT_ERR(INVALID, mamba_session_new(NULL, &sx));
    EXPECT_ERR(INVALID, mamba_session_new(m, NULL));
    EXPECT_ERR(INVALID, mamba_session_new(wm, &sx));

    /* mamba_session_reset, mamba_session_position */
    uint64_t pos = 0;
    EXPECT_ERR(INVALID, mamba_session_reset(NULL));
    EXPECT_ERR(INVALID, mamba_session_reset(ws));
    EXPECT_ERR(INVALID, mamba_session_reset(bogus));
    EXPECT_ERR(INVALID, mamba_session_position(NULL, &pos));
    EXPECT_ERR(INVALID, mamba_session_position(s, NULL));
    EXPECT_ERR(INVALID, mamba_session_position(ws, &pos));

    /* mamba_forward */
    EXPECT_ERR(INVALID, mamba_forward(NULL, 1, logits, nl));
    EXPECT_ERR(INVALID, mamba_forward(ws, 1, logits, nl));
    EXPECT_ERR(INVALID, mamba_forward(s, -1, logits, nl));
    EXPECT_ERR(INVALID, mamba_forward(s, INT32_MAX, logits, nl));
    EXPECT_ERR(INVALID, mamba_forward(s, (int32_t)info.n_logits, logits, nl));
    EXPECT_ERR(MAMBA_ERR_BUFFER_TOO_SMALL, mamba_forward(s, 1, logits, nl - 1));
    EXPECT_ERR(MAMBA_ERR_BUFFER_TOO_SMALL, mamba_forward(s, 1, logits, 0));
    OK(mamba_session_reset(s));
    OK(mamba_forward(s, 1, NULL, 0)); /* NULL logits: not wanted */

    /* mamba_forward_tokens */
    int32_t toks[4] = {1, 2, 3, 4};
    int32_t bad_toks[3] = {1, -5, 2};
    EXPECT_ERR(INVALID, mamba_forward_tokens(NULL, toks, 4, NULL, 0));
    EXPECT_ERR(INVALID, mamba_forward_tokens(ws, toks, 4, NULL, 0));
    EXPECT_ERR(INVALID, mamba_forward_tokens(s, NULL, 4, NULL, 0));
    EXPECT_ERR(INVALID, mamba_forward_tokens(s, toks, SIZE_MAX, NULL, 0));
    EXPECT_ERR(INVALID, mamba_forward_tokens(s, toks, SIZE_MAX / 4, NULL, 0));
    EXPECT_ERR(INVALID, mamba_forward_tokens(s, toks, 0, NULL, 0));
    EXPECT_ERR(INVALID, mamba_forward_tokens(s, bad_toks, 3, NULL, 0));
    EXPECT_ERR(MAMBA_ERR_BUFFER_TOO_SMALL, mamba_forward_tokens(s, toks, 4, logits, 3));

    /* mamba_forward_batch */
    mamba_session *batch[2] = {s, s2}, *dup[2] = {s, s}, *mixed[2] = {s, ws};
    mamba_session *nulls[2] = {s, NULL};
    EXPECT_ERR(INVALID, mamba_forward_batch(NULL, toks, 2));
    EXPECT_ERR(INVALID, mamba_forward_batch(batch, NULL, 2));
    EXPECT_ERR(INVALID, mamba_forward_batch(batch, toks, SIZE_MAX));
    EXPECT_ERR(INVALID, mamba_forward_batch(dup, toks, 2));
    EXPECT_ERR(INVALID, mamba_forward_batch(mixed, toks, 2));
    EXPECT_ERR(INVALID, mamba_forward_batch(nulls, toks, 2));
    EXPECT_ERR(INVALID, mamba_forward_batch(batch, bad_toks + 1, 2));

    /* mamba_session_logits */
    const float *lp = NULL;
    size_t ln = 0;
    EXPECT_ERR(INVALID, mamba_session_logits(NULL, &lp, &ln));
    EXPECT_ERR(INVALID, mamba_session_logits(s, NULL, &ln));
    EXPECT_ERR(INVALID, mamba_session_logits(s, &lp, NULL));
    EXPECT_ERR(INVALID, mamba_session_logits(ws, &lp, &ln));

    /* mamba_state_size, mamba_state_get, mamba_state_set */
    size_t ss = 0, written = 0;
    EXPECT_ERR(INVALID, mamba_state_size(NULL, &ss));
    EXPECT_ERR(INVALID, mamba_state_size(s, NULL));
    EXPECT_ERR(INVALID, mamba_state_size(ws, &ss));
    OK(mamba_state_size(s, &ss));
    unsigned char *blob = calloc(ss, 1);
    EXPECT_ERR(INVALID, mamba_state_get(NULL, blob, ss, &written));
    EXPECT_ERR(INVALID, mamba_state_get(ws, blob, ss, &written));
    EXPECT_ERR(MAMBA_ERR_BUFFER_TOO_SMALL, mamba_state_get(s, blob, ss - 1, &written));
    EXPECT_ERR(MAMBA_ERR_BUFFER_TOO_SMALL, mamba_state_get(s, blob, 0, &written));
    EXPECT_ERR(MAMBA_ERR_BUFFER_TOO_SMALL, mamba_state_get(s, NULL, 0, &written));
    EXPECT_ERR(INVALID, mamba_state_get(s, NULL, ss, &written));
    EXPECT_ERR(INVALID, mamba_state_get(s, blob, SIZE_MAX, &written));
    OK(mamba_state_get(s, blob, ss, NULL)); /* written may be NULL */
    EXPECT_ERR(INVALID, mamba_state_set(NULL, blob, ss));
    EXPECT_ERR(INVALID, mamba_state_set(ws, blob, ss));
    EXPECT_ERR(INVALID, mamba_state_set(s, NULL, ss));
    EXPECT_ERR(INVALID, mamba_state_set(s, blob, SIZE_MAX));
    EXPECT_ERR(MAMBA_ERR_STATE_MISMATCH, mamba_state_set(s, blob, 0));
    EXPECT_ERR(MAMBA_ERR_STATE_MISMATCH, mamba_state_set(s, blob, ss - 1));
    EXPECT_ERR(MAMBA_ERR_STATE_MISMATCH, mamba_state_set(s, blob, 7));
    blob[ss - 1] ^= 0x40; /* checksum no longer matches */
    EXPECT_ERR(MAMBA_ERR_STATE_MISMATCH, mamba_state_set(s, blob, ss));
    blob[ss - 1] ^= 0x40;
    OK(mamba_state_set(s, blob, ss));
    free(blob);

    /* mamba_tokenizer_vocab_size, mamba_tokenize, mamba_token_to_piece */
    uint32_t vs = 0;
    EXPECT_ERR(INVALID, mamba_tokenizer_vocab_size(NULL, &vs));
    EXPECT_ERR(INVALID, mamba_tokenizer_vocab_size(t, NULL));
    EXPECT_ERR(INVALID, mamba_tokenizer_vocab_size(wt, &vs));
    int32_t ids[64];
    size_t nt = 0;
    EXPECT_ERR(INVALID, mamba_tokenize(NULL, "hi", 2, ids, 64, &nt));
    EXPECT_ERR(INVALID, mamba_tokenize(wt, "hi", 2, ids, 64, &nt));
    EXPECT_ERR(INVALID, mamba_tokenize(t, NULL, 2, ids, 64, &nt));
    EXPECT_ERR(INVALID, mamba_tokenize(t, "hi", SIZE_MAX, ids, 64, &nt));
    EXPECT_ERR(INVALID, mamba_tokenize(t, "hi", 2, ids, 64, NULL));
    EXPECT_ERR(INVALID, mamba_tokenize(t, "hi", 2, NULL, 64, &nt));
    EXPECT_ERR(INVALID, mamba_tokenize(t, "hi", 2, ids, SIZE_MAX, &nt));
    nt = 0;
    EXPECT_ERR(MAMBA_ERR_BUFFER_TOO_SMALL, mamba_tokenize(t, "hello", 5, ids, 2, &nt));
    CHECK(nt == 5, "needed count reported (%zu)", nt);
    EXPECT_ERR(MAMBA_ERR_BUFFER_TOO_SMALL, mamba_tokenize(t, "hello", 5, NULL, 0, &nt));
    OK(mamba_tokenize(t, NULL, 0, NULL, 0, &nt)); /* empty text */
    CHECK(nt == 0, "empty text, no tokens");
    char piece[8];
    size_t plen = 0;
    EXPECT_ERR(INVALID, mamba_token_to_piece(NULL, 65, piece, 8, &plen));
    EXPECT_ERR(INVALID, mamba_token_to_piece(wt, 65, piece, 8, &plen));
    EXPECT_ERR(INVALID, mamba_token_to_piece(t, 65, piece, 8, NULL));
    EXPECT_ERR(INVALID, mamba_token_to_piece(t, -1, piece, 8, &plen));
    EXPECT_ERR(INVALID, mamba_token_to_piece(t, 128, piece, 8, &plen));
    EXPECT_ERR(INVALID, mamba_token_to_piece(t, INT32_MAX, piece, 8, &plen));
    EXPECT_ERR(INVALID, mamba_token_to_piece(t, 65, NULL, 8, &plen));
    EXPECT_ERR(INVALID, mamba_token_to_piece(t, 65, piece, SIZE_MAX, &plen));
    EXPECT_ERR(MAMBA_ERR_BUFFER_TOO_SMALL, mamba_token_to_piece(t, 0, piece, 4, &plen));
    CHECK(plen == 13, "needed length reported (%zu)", plen);
    EXPECT_ERR(MAMBA_ERR_BUFFER_TOO_SMALL, mamba_token_to_piece(t, 65, NULL, 0, &plen));

    /* mamba_sampler_new, mamba_sampler_sample, mamba_sampler_accept */
    mamba_sampler *sx2 = NULL;
    mamba_sampler_params bad = mamba_sampler_params_default();
    bad.temperature = -1;
    EXPECT_ERR(INVALID, mamba_sampler_new(NULL, 16, NULL));
    EXPECT_ERR(INVALID, mamba_sampler_new(NULL, 0, &sx2));
    EXPECT_ERR(INVALID, mamba_sampler_new(NULL, SIZE_MAX, &sx2));
    EXPECT_ERR(INVALID, mamba_sampler_new(&bad, 16, &sx2));
    bad = mamba_sampler_params_default();
    bad.temperature = 0.0f / 0.0f;
    EXPECT_ERR(INVALID, mamba_sampler_new(&bad, 16, &sx2));
    bad = mamba_sampler_params_default();
    bad.top_k = -1;
    EXPECT_ERR(INVALID, mamba_sampler_new(&bad, 16, &sx2));
    bad = mamba_sampler_params_default();
    bad.repeat_penalty = 0;
    EXPECT_ERR(INVALID, mamba_sampler_new(&bad, 16, &sx2));
    CHECK(sx2 == NULL, "no sampler handed out");
    int32_t tok = -7;
    EXPECT_ERR(INVALID, mamba_sampler_sample(NULL, logits, 16, &tok));
    EXPECT_ERR(INVALID, mamba_sampler_sample(wsm, logits, 16, &tok));
    EXPECT_ERR(INVALID, mamba_sampler_sample(sm, NULL, 16, &tok));
    EXPECT_ERR(INVALID, mamba_sampler_sample(sm, logits, 0, &tok));
    EXPECT_ERR(INVALID, mamba_sampler_sample(sm, logits, SIZE_MAX, &tok));
    EXPECT_ERR(INVALID, mamba_sampler_sample(sm, logits, 16, NULL));
    CHECK(tok == -7, "token untouched on failure");
    EXPECT_ERR(INVALID, mamba_sampler_accept(NULL, 1));
    EXPECT_ERR(INVALID, mamba_sampler_accept(wsm, 1));
    EXPECT_ERR(INVALID, mamba_sampler_accept(sm, -1));

    /* mamba_generate */
    mamba_generate_params gp = mamba_generate_params_default();
    gp.max_tokens = 2;
    mamba_generate_stats stats;
    EXPECT_ERR(INVALID, mamba_generate(NULL, t, "hi", &gp, stop_cb, NULL, &stats));
    EXPECT_ERR(INVALID, mamba_generate(ws, t, "hi", &gp, stop_cb, NULL, &stats));
    EXPECT_ERR(INVALID, mamba_generate(s, wt, "hi", &gp, stop_cb, NULL, &stats));
    EXPECT_ERR(INVALID, mamba_generate(s, t, NULL, &gp, stop_cb, NULL, &stats));
    EXPECT_ERR(INVALID, mamba_generate(s, NULL, "hi", &gp, stop_cb, NULL, &stats)); /* model has none */
    gp.max_tokens = -1;
    EXPECT_ERR(INVALID, mamba_generate(s, t, "hi", &gp, stop_cb, NULL, &stats));
    gp = mamba_generate_params_default();
    gp.sampler.repeat_penalty = -2;
    EXPECT_ERR(INVALID, mamba_generate(s, t, "hi", &gp, stop_cb, NULL, &stats));
    gp = mamba_generate_params_default();
    gp.max_tokens = 2;
    OK(mamba_generate(s, t, "hi", &gp, NULL, NULL, NULL)); /* no callback, no stats */

    /* Double frees and wrong kinds for every free function. */
    OK(mamba_model_load(model_path, NULL, &m2));
    EXPECT_FREE_REPORTS(mamba_model_free(wm));
    EXPECT_FREE_REPORTS(mamba_session_free(ws));
    EXPECT_FREE_REPORTS(mamba_tokenizer_free(wt));
    EXPECT_FREE_REPORTS(mamba_sampler_free(wsm));
    EXPECT_FREE_REPORTS(mamba_session_free(bogus));
    EXPECT_FREE_NOOP(mamba_model_free(NULL));
    EXPECT_FREE_NOOP(mamba_session_free(NULL));
    EXPECT_FREE_NOOP(mamba_tokenizer_free(NULL));
    EXPECT_FREE_NOOP(mamba_sampler_free(NULL));
    /* Everything still works after the refused frees. */
    OK(mamba_forward(s, 1, logits, nl));
    OK(mamba_tokenizer_vocab_size(t, &vs));

    mamba_session_free(s2);
    EXPECT_FREE_REPORTS(mamba_session_free(s2));
    EXPECT_ERR(INVALID, mamba_forward(s2, 1, logits, nl)); /* use after free: detected */
    EXPECT_ERR(INVALID, mamba_session_reset(s2));
    mamba_sampler_free(sm);
    EXPECT_FREE_REPORTS(mamba_sampler_free(sm));
    EXPECT_ERR(INVALID, mamba_sampler_accept(sm, 1));
    mamba_tokenizer_free(t);
    EXPECT_FREE_REPORTS(mamba_tokenizer_free(t));
    EXPECT_ERR(INVALID, mamba_tokenize(t, "hi", 2, ids, 64, &nt));
    mamba_model_free(m2);
    EXPECT_FREE_REPORTS(mamba_model_free(m2));
    EXPECT_ERR(INVALID, mamba_session_new(m2, &sx));
    /* The session keeps its model alive after the model handle is freed. */
    mamba_model_free(m);
    EXPECT_FREE_REPORTS(mamba_model_free(m));
    OK(mamba_forward(s, 2, logits, nl));
    mamba_session_free(s);

    /* Legacy: the free functions with NULL, unbuilt structs and twice;
     * calls whose signature allows ignoring a bad argument. */
    Mamba lm;
    Tokenizer lt;
    Sampler ls;
    memset(&lm, 0, sizeof lm);
    memset(&lt, 0, sizeof lt);
    memset(&ls, 0, sizeof ls);
    free_model(NULL);
    free_model(&lm);
    free_tokenizer(NULL);
    free_tokenizer(&lt);
    free_sampler(NULL);
    free_sampler(&ls);
    safe_printf(NULL);
    CHECK(time_in_ms() > 0, "time_in_ms");
    OK(mamba_legacy_load_model(&lm, model_path, NULL));
    /* A Mamba whose state points at a session: wrong kind, refused. */
    Mamba fake = lm;
    fake.state = (void *)ws;
    EXPECT_FREE_REPORTS(free_model(&fake));
    int st_size = 0;
    char *raw = get_internal_state(&lm, &st_size);
    CHECK(raw != NULL && st_size > 0, "get_internal_state");
    set_internal_state(&lm, raw, st_size - 1); /* wrong size: ignored */
    set_internal_state(&lm, raw, -1);
    set_internal_state(&lm, NULL, st_size);
    set_internal_state(&lm, raw, st_size);
    free(raw);
    build_tokenizer(&lt, tok_path, 0);
    CHECK(*decode(&lt, 1, 100000) == 0, "decode: out-of-range token gives \"\"");
    CHECK(*decode(&lt, 1, -1) == 0, "decode: negative token gives \"\"");
    free_tokenizer(&lt);
    free_tokenizer(&lt); /* state was set to NULL: a no-op */
    CHECK(lt.state == NULL, "free_tokenizer clears the struct");
    /* The loops (and forward) with bad arguments: exit(1), no crash. */
    test_exit_cases(model_path);
    free_model(&lm);
    free_model(&lm);
    CHECK(lm.state == NULL, "free_model clears the struct");

    free(logits);
    fprintf(stderr, "test_boundary: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}

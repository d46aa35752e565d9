/*
 * The C project's API (c-project.md §1), called as its mains call it, with the
 * headers those mains include. Needs no tokenizer (see legacy_tok.c for
 * build_tokenizer/encode/decode/generate/chat).
 *
 *   legacy_api <fixtures/lm dir> <tmp dir>
 *
 * Model B (v1 float32): config fields, forward vs the transformers logits,
 * get/set/reset_internal_state (blob = conv then ssm, float32, against
 * state_prompt.f32), sample (greedy ids, in-place softmax, seeded
 * reproducibility), time_in_ms, read_stdin, error_usage and load_model's
 * exit(1), the quantized v1 variants, mamba_legacy_load_model.
 */
#define _POSIX_C_SOURCE 200809L
#include <sys/wait.h>
#include <unistd.h>

#include "mamba.h"
#include "sampler.h"
#include "tokenizer.h"
#include "utils.h"
#include "config.h"

#include "legacy_common.h"

static char path_buf[4096];
static const char *fx(const char *dir, const char *rel) {
    snprintf(path_buf, sizeof path_buf, "%s/%s", dir, rel);
    return path_buf;
}

/* Runs fn in a child; returns its exit status (or -1 if it did not exit). */
static int exit_status_of(void (*fn)(const char *), const char *arg) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void child_load(const char *path) {
    Mamba m;
    load_model(&m, (char *)path);
}
static void child_usage(const char *unused) {
    (void)unused;
    error_usage();
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s <fixtures/lm dir> <tmp dir>\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1], *tmp = argv[2];
    size_t n_prompt, n_logits, n_state, n_greedy, n_glogits;
    int *prompt = read_all(fx(dir, "B/prompt.i32"), &n_prompt);
    float *ref_logits = read_all(fx(dir, "B/logits.f32"), &n_logits);
    float *ref_state = read_all(fx(dir, "B/state_prompt.f32"), &n_state);
    int *greedy = read_all(fx(dir, "B/greedy.i32"), &n_greedy);
    float *greedy_logits = read_all(fx(dir, "B/greedy_logits.f32"), &n_glogits);

    /* error_usage and load_model's failure path exit(1). Run first, before
     * worker threads exist (a forked child has none, which LeakSanitizer
     * would report). */
    CHECK(exit_status_of(child_usage, NULL) == 1);
    CHECK(exit_status_of(child_load, "/nonexistent/model.bin") == 1);
    CHECK(exit_status_of(child_load, fx(dir, "B/prompt.i32")) == 1);

    /* load_model: config as the C project reads it from the header. */
    Mamba mamba;
    load_model(&mamba, (char *)fx(dir, "B.bin"));
    Config c = mamba.config;
    CHECK(c.n_layers == 2 && c.vocab_size == 517 && c.dim == 40 && c.d_inner == 80);
    CHECK(c.dt_rank == 5 && c.d_state == 8 && c.d_conv == 3);
    CHECK(c.shared_classifier == 0 && c.rounded_vocab_size == 520);
    int V = c.vocab_size;
    CHECK(n_logits == n_prompt * (size_t)V);

    /* forward, token by token: logits vs transformers (rounded_vocab floats, padding 0). */
    float worst = 0;
    for (size_t t = 0; t < n_prompt; t++) {
        float *l = forward(&mamba, prompt[t]);
        float d = max_abs_diff(l, ref_logits + t * (size_t)V, (size_t)V);
        if (d > worst) worst = d;
        if (t == n_prompt - 1) {
            for (int i = V; i < c.rounded_vocab_size; i++) CHECK(l[i] == 0.0f);
            CHECK(argmax_n(l, V) == greedy[0]);
        }
    }
    printf("forward: max |logit - ref| over %zu positions = %.3g\n", n_prompt, worst);
    CHECK(worst < 1e-4f);

    /* get_internal_state: malloc'd, conv then ssm, float32. */
    int size = 0;
    char *state = get_internal_state(&mamba, &size);
    CHECK(state != NULL);
    int conv_n = c.n_layers * c.d_inner * c.d_conv, ssm_n = c.n_layers * c.d_inner * c.d_state;
    CHECK(size == (conv_n + ssm_n) * (int)sizeof(float));
    CHECK((size_t)size == n_state * 4);
    float ref_max = 0;
    for (size_t i = 0; i < n_state; i++)
        if (fabsf(ref_state[i]) > ref_max) ref_max = fabsf(ref_state[i]);
    float *sf = malloc((size_t)size);
    memcpy(sf, state, (size_t)size);
    float sd_conv = max_abs_diff(sf, ref_state, (size_t)conv_n);
    float sd_ssm = max_abs_diff(sf + conv_n, ref_state + conv_n, (size_t)ssm_n);
    printf("state blob vs state_prompt.f32: conv max diff %.3g, ssm max diff %.3g (max |ref| %.3g)\n", sd_conv,
           sd_ssm, ref_max);
    CHECK(sd_conv <= 1e-4f * ref_max && sd_ssm <= 1e-4f * ref_max);

    /* reset, then set: the continuation matches the uninterrupted one. */
    reset_internal_state(&mamba);
    int size2 = 0;
    char *zero = get_internal_state(&mamba, &size2);
    CHECK(size2 == size);
    int all_zero = 1;
    for (int i = 0; i < size2; i++) all_zero &= zero[i] == 0;
    CHECK(all_zero);
    free(zero);
    set_internal_state(&mamba, state, size - 4); /* wrong size: ignored */
    zero = get_internal_state(&mamba, &size2);
    all_zero = 1;
    for (int i = 0; i < size2; i++) all_zero &= zero[i] == 0;
    CHECK(all_zero);
    free(zero);
    set_internal_state(&mamba, state, size);
    float *l = forward(&mamba, greedy[0]);
    float gd = max_abs_diff(l, greedy_logits, (size_t)V);
    printf("after set_internal_state: next logits max diff %.3g\n", gd);
    CHECK(gd < 1e-4f);
    CHECK(argmax_n(l, V) == greedy[1]);
    free(state);
    free(sf);

    /* Sampler: greedy over vocab_size; temperature > 0 softmaxes in place. */
    Sampler greedy_s, s1, s2;
    build_sampler(&greedy_s, V, 0.0f, 0.9f, 1234ULL);
    set_internal_state(&mamba, (char *)ref_state, size);
    int gen_ok = 1;
    int tok = greedy[0];
    for (size_t t = 0; t + 1 < n_greedy; t++) {
        float *lg = forward(&mamba, tok);
        int next = sample(&greedy_s, lg);
        gen_ok &= next == greedy[t + 1];
        tok = next;
    }
    CHECK(gen_ok);
    printf("greedy from the reference state: %s over %zu tokens\n", gen_ok ? "all match" : "MISMATCH", n_greedy - 1);
    build_sampler(&s1, V, 0.8f, 0.9f, 42ULL);
    build_sampler(&s2, V, 0.8f, 0.9f, 42ULL);
    float *copy = malloc(sizeof(float) * (size_t)c.rounded_vocab_size);
    float *lg = forward(&mamba, 1);
    memcpy(copy, lg, sizeof(float) * (size_t)c.rounded_vocab_size);
    int a = sample(&s1, lg);
    double sum = 0;
    for (int i = 0; i < V; i++) sum += lg[i];
    CHECK(fabs(sum - 1.0) < 1e-4); /* the C sampler leaves probabilities in logits */
    int b = sample(&s2, copy);
    CHECK(a == b && a >= 0 && a < V);
    CHECK(s1.rng_state == s2.rng_state && s1.rng_state != 42ULL);
    free(copy);
    free_sampler(&greedy_s);
    free_sampler(&s1);
    free_sampler(&s2);
    free_sampler(&s2); /* twice: a no-op */

    /* time_in_ms */
    long t0 = time_in_ms();
    CHECK(t0 > 1600000000000L);
    CHECK(time_in_ms() >= t0);

    /* read_stdin: strips the newline. */
    char in_path[4096];
    snprintf(in_path, sizeof in_path, "%s/stdin.txt", tmp);
    FILE *f = fopen(in_path, "w");
    fputs("hello there\nsecond\n", f);
    fclose(f);
    CHECK(freopen(in_path, "r", stdin) != NULL);
    char line[64];
    read_stdin("> ", line, sizeof line);
    CHECK(strcmp(line, "hello there") == 0);
    read_stdin("", line, 4);
    CHECK(strcmp(line, "sec") == 0);
    printf("\n");

    /* Quantized v1 files with <path>.scales: int8 by default, bfloat8 by option. */
    /* Thresholds: int8 against the numpy reference on its own dequantized
     * weights (exact math); fp16 and bfloat8 against float32 (their error). */
    size_t n_i8;
    float *ref_i8 = read_all(fx(dir, "B/logits_int8_bin.f32"), &n_i8);
    CHECK(n_i8 == n_logits);
    float ref_scale = 0;
    for (size_t i = 0; i < n_logits; i++)
        if (fabsf(ref_logits[i]) > ref_scale) ref_scale = fabsf(ref_logits[i]);
    const char *variants[] = {"B.int8.bin", "B.fp16.bin", "B.bfloat8.bin"};
    const float max_err[] = {0.6f, 0.05f, 5.0f};
    for (int v = 0; v < 3; v++) {
        Mamba q;
        mamba_load_options o = mamba_load_options_default();
        o.legacy_bfloat8 = v == 2;
        CHECK(mamba_legacy_load_model(&q, fx(dir, variants[v]), &o) == MAMBA_OK);
        CHECK(q.config.n_layers == 2 && q.config.rounded_vocab_size == 520);
        float w = 0, w_own = 0;
        int same = 0;
        for (size_t t = 0; t < n_prompt; t++) {
            float *ql = forward(&q, prompt[t]);
            float d = max_abs_diff(ql, ref_logits + t * (size_t)V, (size_t)V);
            if (d > w) w = d;
            if (v == 0) {
                d = max_abs_diff(ql, ref_i8 + t * (size_t)V, (size_t)V);
                if (d > w_own) w_own = d;
            }
            same += argmax_n(ql, V) == argmax_n(ref_logits + t * (size_t)V, V);
        }
        printf("%s: max |logit - f32 ref| %.3g (%.2g relative), prompt argmax agreement %d/%zu\n", variants[v], w,
               w / ref_scale, same, n_prompt);
        CHECK(w < max_err[v]);
        if (v == 0) {
            printf("%s: max |logit - ref on its dequantized weights| %.3g\n", variants[v], w_own);
            CHECK(w_own < 1e-3f);
        }
        free_model(&q);
    }
    free(ref_i8);
    {
        Mamba q;
        CHECK(mamba_legacy_load_model(&q, "/nonexistent.bin", NULL) == MAMBA_ERR_IO);
        CHECK(strstr(mamba_last_error(), "nonexistent") != NULL);
    }

    free_model(&mamba);
    free_model(&mamba); /* twice: a no-op */
    free(prompt);
    free(ref_logits);
    free(ref_state);
    free(greedy);
    free(greedy_logits);
    if (failures) {
        fprintf(stderr, "legacy_api: %d check(s) failed\n", failures);
        return 1;
    }
    printf("legacy_api: all checks passed\n");
    return 0;
}

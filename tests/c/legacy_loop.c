/*
 * The C project's generation loop (c-project.md §2), written out token by
 * token with load_model / build_tokenizer / encode / forward / sample /
 * decode / safe_printf, then the library's own generate() and chat().
 * Needs the tokenizer (build_tokenizer on a tokenizer.bin).
 *
 *   legacy_loop <fixtures/lm dir> <tmp dir>
 *
 * Writes <tmp>/tokenizer.bin (one code point per token, see legacy_common.h)
 * and <tmp>/prompt.txt (model B's prompt ids as text). stdout gets four lines:
 * this loop's text, then generate()'s and mamba_legacy_generate()'s, then the
 * loop again with temperature 0.9, top-p 0.9, seed 42; the Makefile compares both with
 * `./mamba B.bin -z <tmp>/tokenizer.bin -n 63 -t 0 -i "$(cat prompt.txt)"`.
 * The ids are checked against B/prompt.i32 and B/greedy.i32.
 */
#include "mamba.h"
#include "tokenizer.h"
#include "sampler.h"
#include "utils.h"

#include "legacy_common.h"

#define STEPS 63

/* c-project.md §2, written out: returns the ids it printed after the first. */
static int c_project_loop(Mamba *mamba, Tokenizer *tokenizer, Sampler *sampler, char *prompt, int steps, int *ids) {
    int *tokens = malloc((strlen(prompt) + 3) * sizeof(int));
    int n_tokens = 0, n_ids = 0;
    encode(tokenizer, prompt, 0, 0, tokens, &n_tokens);
    if (n_tokens > 1) {
        safe_printf(decode(tokenizer, 0, tokens[0]));
        fflush(stdout);
    }
    int token = tokens[0], next, pos = 0;
    while (pos < steps) {
        float *logits = forward(mamba, token);
        if (pos < n_tokens - 1)
            next = tokens[pos + 1];
        else
            next = sample(sampler, logits);
        pos++;
        if (next == 0) break;
        ids[n_ids++] = next;
        safe_printf(decode(tokenizer, token, next));
        fflush(stdout);
        token = next;
    }
    printf("\n");
    free(tokens);
    return n_ids;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s <fixtures/lm dir> <tmp dir>\n", argv[0]);
        return 2;
    }
    char path[4096], tok_path[4096], prompt_path[4096];
    size_t n_prompt, n_greedy;
    snprintf(path, sizeof path, "%s/B/prompt.i32", argv[1]);
    int *prompt_ids = read_all(path, &n_prompt);
    snprintf(path, sizeof path, "%s/B/greedy.i32", argv[1]);
    int *greedy = read_all(path, &n_greedy);
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.bin", argv[2]);
    snprintf(prompt_path, sizeof prompt_path, "%s/prompt.txt", argv[2]);

    Mamba mamba;
    snprintf(path, sizeof path, "%s/B.bin", argv[1]);
    load_model(&mamba, path);
    int V = mamba.config.vocab_size;
    write_test_tokenizer(tok_path, V);

    /* The prompt as text. */
    char *prompt = malloc(n_prompt * 16 + 1), piece_buf[32];
    prompt[0] = 0;
    for (size_t i = 0; i < n_prompt; i++) {
        test_piece(prompt_ids[i], V, piece_buf);
        strcat(prompt, piece_buf);
    }
    FILE *pf = fopen(prompt_path, "w");
    fputs(prompt, pf);
    fclose(pf);

    Tokenizer tokenizer;
    build_tokenizer(&tokenizer, tok_path, V);
    Sampler sampler;
    build_sampler(&sampler, V, 0.0f, 0.9f, 1ULL);

    /* encode: the greedy tokenizer gives the ids back; BOS/EOS are token 0. */
    int *tokens = malloc((strlen(prompt) + 3) * sizeof(int));
    int n_tokens = 0;
    encode(&tokenizer, prompt, 0, 0, tokens, &n_tokens);
    CHECK(n_tokens == (int)n_prompt);
    for (int i = 0; i < n_tokens && i < (int)n_prompt; i++) CHECK(tokens[i] == prompt_ids[i]);
    encode(&tokenizer, prompt, 1, 1, tokens, &n_tokens);
    CHECK(n_tokens == (int)n_prompt + 2 && tokens[0] == 0 && tokens[n_tokens - 1] == 0);

    /* decode: leading space dropped after token 0 only; <0xHH> is the byte. */
    char expect[32];
    test_piece(V - 1, V, expect);
    CHECK(strcmp(decode(&tokenizer, 0, V - 1), expect + 1) == 0);
    CHECK(strcmp(decode(&tokenizer, 5, V - 1), expect) == 0);
    CHECK(strcmp(decode(&tokenizer, 5, V - 2), "A") == 0);
    test_piece(7, V, expect);
    CHECK(strcmp(decode(&tokenizer, 0, 7), expect) == 0);

    /* The §2 loop, exactly as the C project's generate() runs it. */
    int ids[STEPS];
    int n_ids = c_project_loop(&mamba, &tokenizer, &sampler, prompt, STEPS, ids);
    /* Forced prompt[1..], then the greedy continuation. */
    CHECK(n_ids == STEPS);
    int ok = 1;
    for (int i = 0; i < n_ids; i++) {
        int want = i < (int)n_prompt - 1 ? prompt_ids[i + 1] : greedy[i - ((int)n_prompt - 1)];
        ok &= ids[i] == want;
    }
    CHECK(ok);
    fprintf(stderr, "legacy_loop: %d ids, %s prompt.i32[1..] + greedy.i32\n", n_ids, ok ? "equal to" : "DIFFERENT from");

    /* The library's generate(): the same text on the next line. */
    reset_internal_state(&mamba);
    generate(&mamba, &tokenizer, &sampler, prompt, STEPS);
    fflush(stdout);
    /* mamba_legacy_generate: the same function under a name no main overrides. */
    reset_internal_state(&mamba);
    mamba_legacy_generate(&mamba, &tokenizer, &sampler, prompt, STEPS);
    fflush(stdout);

    /* Sampling (temperature 0.9, top-p 0.9, seed 42): line 4, compared with
     * ./mamba -t 0.9 -p 0.9 -s 42 by the Makefile. */
    reset_internal_state(&mamba);
    Sampler hot;
    build_sampler(&hot, V, 0.9f, 0.9f, 42ULL);
    c_project_loop(&mamba, &tokenizer, &hot, prompt, STEPS, ids);
    free_sampler(&hot);
    fflush(stdout);

    /* The library's chat(): one turn from the command line, stdin empty. */
    reset_internal_state(&mamba);
    Sampler chat_s;
    build_sampler(&chat_s, V, 0.0f, 0.9f, 1ULL);
    snprintf(path, sizeof path, "%s/chat_stdin.txt", argv[2]);
    FILE *cf = fopen(path, "w");
    fclose(cf);
    CHECK(freopen(path, "r", stdin) != NULL);
    snprintf(path, sizeof path, "%s/chat_out.txt", argv[2]);
    CHECK(freopen(path, "w", stdout) != NULL);
    chat(&mamba, &tokenizer, &chat_s, prompt, "sys", 40);
    fflush(stdout);
    reset_internal_state(&mamba);
    mamba_legacy_chat(&mamba, &tokenizer, &chat_s, prompt, NULL, 20); /* system prompt from (empty) stdin */
    fflush(stdout);
    size_t n_out;
    char *out = read_all(path, &n_out);
    CHECK(strncmp(out, "Assistant: ", 11) == 0);
    free(out);

    free_sampler(&chat_s);
    free_sampler(&sampler);
    free_tokenizer(&tokenizer);
    free_tokenizer(&tokenizer);
    free_model(&mamba);
    free(tokens);
    free(prompt);
    free(prompt_ids);
    free(greedy);
    if (failures) {
        fprintf(stderr, "legacy_loop: %d check(s) failed\n", failures);
        return 1;
    }
    return 0;
}

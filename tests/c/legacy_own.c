/*
 * A main that defines its own generate() and chat(), as one of the C
 * project's mains does. It must link against libmamba statically and
 * dynamically without duplicate symbols, and its own versions must run.
 *
 *   legacy_own <fixtures/lm dir> <tmp dir>
 */
#include "mamba.h"
#include "tokenizer.h"
#include "sampler.h"
#include "utils.h"

#include "legacy_common.h"

static int own_generate_ran = 0, own_chat_ran = 0;

/* This main's generate: greedy ids only, no tokenizer. */
void generate(Mamba *mamba, Tokenizer *tokenizer, Sampler *sampler, char *prompt, int steps) {
    (void)tokenizer;
    (void)prompt;
    own_generate_ran = 1;
    int token = 1;
    printf("own generate:");
    for (int pos = 0; pos < steps; pos++) {
        float *logits = forward(mamba, token);
        token = sample(sampler, logits);
        printf(" %d", token);
    }
    printf("\n");
}

void chat(Mamba *mamba, Tokenizer *tokenizer, Sampler *sampler, char *cli_user_prompt, char *cli_system_prompt,
          int steps) {
    (void)mamba;
    (void)tokenizer;
    (void)sampler;
    (void)cli_user_prompt;
    (void)cli_system_prompt;
    (void)steps;
    own_chat_ran = 1;
    printf("own chat\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s <fixtures/lm dir> [tmp dir]\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/B.bin", argv[1]);
    Mamba mamba;
    load_model(&mamba, path);
    Sampler sampler;
    build_sampler(&sampler, mamba.config.vocab_size, 0.0f, 0.9f, 7ULL);
    Tokenizer tokenizer; /* unused by this main's generate/chat */
    memset(&tokenizer, 0, sizeof tokenizer);
    generate(&mamba, &tokenizer, &sampler, "ignored", 5);
    chat(&mamba, &tokenizer, &sampler, NULL, NULL, 5);
    CHECK(own_generate_ran && own_chat_ran);
    free_sampler(&sampler);
    free_tokenizer(&tokenizer); /* never built: a no-op */
    free_model(&mamba);
    if (failures) return 1;
    printf("legacy_own: this main's generate and chat ran\n");
    return 0;
}

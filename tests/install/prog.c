/* A user's program built against an installed libmamba through pkg-config
 * (tests/install/run.sh). Feeds a fixture model its prompt and checks the
 * greedy continuation against the reference ids.
 * Usage: prog MODEL PROMPT.i32 GREEDY.i32 */
#include <mamba.h>
#include <stdio.h>
#include <stdlib.h>

static int read_i32(const char *path, int32_t *out, int cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int n = (int)fread(out, sizeof(int32_t), (size_t)cap, f);
    fclose(f);
    return n;
}

#define TRY(call)                                                              \
    do {                                                                       \
        mamba_status st_ = (call);                                             \
        if (st_ != MAMBA_OK) {                                                 \
            fprintf(stderr, "%s: %s (%s)\n", #call, mamba_last_error(),        \
                    mamba_status_string(st_));                                 \
            return 1;                                                          \
        }                                                                      \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL PROMPT.i32 GREEDY.i32\n", argv[0]);
        return 2;
    }
    int32_t prompt[64], greedy[64];
    int np = read_i32(argv[2], prompt, 64), ng = read_i32(argv[3], greedy, 64);
    if (np <= 0 || ng < 16) {
        fprintf(stderr, "cannot read %s / %s\n", argv[2], argv[3]);
        return 1;
    }
    mamba_model *model = NULL;
    mamba_session *s = NULL;
    mamba_model_info info;
    TRY(mamba_model_load(argv[1], NULL, &model));
    TRY(mamba_model_get_info(model, &info));
    TRY(mamba_session_new(model, &s));
    float *logits = malloc(info.n_logits * sizeof(float));
    if (!logits) return 1;
    TRY(mamba_forward_tokens(s, prompt, (size_t)np, logits, info.n_logits));
    for (int i = 0; i < 16; i++) {
        int best = 0;
        for (uint32_t j = 1; j < info.vocab_size; j++)
            if (logits[j] > logits[best]) best = (int)j;
        if (best != greedy[i]) {
            fprintf(stderr, "greedy token %d: %d, reference %d\n", i, best, greedy[i]);
            return 1;
        }
        TRY(mamba_forward(s, best, logits, info.n_logits));
    }
    printf("libmamba %s: %u layers, d_model %u; 16 greedy tokens match the reference\n", mamba_version(),
           info.n_layers, info.d_model);
    free(logits);
    mamba_session_free(s);
    mamba_model_free(model);
    return 0;
}

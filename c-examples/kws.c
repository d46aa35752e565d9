/*
 * kws: keyword spotting from WAV files with a libmamba classifier model.
 *
 *   kws MODEL WAV...
 *
 * Prints one line per file: the path, the keyword and its confidence
 * (softmax probability). WAV files must be mono at the model's sample rate
 * (16 kHz for the keyword spotter), PCM 16-bit or float.
 */
#include <stdio.h>
#include <stdlib.h>

#include "mamba.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "Usage: kws MODEL WAV...\n");
        return 2;
    }
    mamba_model *model = NULL;
    if (mamba_model_load(argv[1], NULL, &model) != MAMBA_OK) {
        fprintf(stderr, "kws: %s\n", mamba_last_error());
        return 1;
    }
    mamba_model_info info;
    if (mamba_model_get_info(model, &info) != MAMBA_OK || info.kind != MAMBA_MODEL_CLASSIFIER ||
        info.input_kind != MAMBA_INPUT_AUDIO) {
        fprintf(stderr, "kws: %s is not an audio classifier\n", argv[1]);
        mamba_model_free(model);
        return 1;
    }
    float *probs = malloc(sizeof(float) * info.n_classes);
    if (!probs) return 1;
    int failures = 0;
    for (int i = 2; i < argc; i++) {
        int32_t cls = -1;
        if (mamba_classify_wav(model, argv[i], &cls, probs) != MAMBA_OK) {
            fprintf(stderr, "kws: %s\n", mamba_last_error());
            failures++;
            continue;
        }
        printf("%s %s %.4f\n", argv[i], mamba_model_class_label(model, cls), probs[cls]);
    }
    free(probs);
    mamba_model_free(model);
    return failures ? 1 : 0;
}

/*
 * test_classifier.c: the classifier part of the C API, from C.
 *
 *  - MNIST: all 10,000 test images through mamba_classify_images; accuracy
 *    must be 97.26% and the predictions must match the PyTorch reference's
 *    argmax (tests/fixtures/classifier/mnist_ref_pred.u8) on >= 99.9%.
 *  - keyword spotting: every WAV in ../shared/data/kws/wav through
 *    mamba_classify_wav; >= 99% agree with the reference, >= 97 correct.
 *  - the other entry points (features with lengths, audio samples, labels,
 *    IDX reading) and their error paths.
 *
 * Data under ../shared is optional (skipped with a note when absent).
 * usage: test_classifier [ignored args...]   (paths from LIBMAMBA_ROOT)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mamba.h"

#ifndef LIBMAMBA_ROOT
#define LIBMAMBA_ROOT "../.."
#endif

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

static const char *path(const char *rel) {
    static char buf[8][1024];
    static int k = 0;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", LIBMAMBA_ROOT, rel);
    return buf[k];
}

static int exists(const char *p) {
    FILE *f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static uint8_t *idx(const char *p, uint32_t *dims, uint32_t *nd, size_t *total) {
    if (mamba_read_idx(p, dims, 4, nd, NULL, 0) != MAMBA_OK) return NULL;
    *total = 1;
    for (uint32_t i = 0; i < *nd; i++) *total *= dims[i];
    uint8_t *d = malloc(*total);
    if (d && mamba_read_idx(p, dims, 4, nd, d, *total) != MAMBA_OK) {
        free(d);
        return NULL;
    }
    return d;
}

static void test_mnist(void) {
    mamba_model *m = NULL;
    OK(mamba_model_load(path("tests/fixtures/classifier/mnist.gguf"), NULL, &m));
    if (!m) return;
    mamba_model_info info;
    OK(mamba_model_get_info(m, &info));
    CHECK(info.kind == MAMBA_MODEL_CLASSIFIER, "kind %d", info.kind);
    CHECK(info.n_classes == 10 && info.n_logits == 10, "classes %u", info.n_classes);
    CHECK(info.input_kind == MAMBA_INPUT_IMAGE && info.input_width == 784, "input %d %u",
          info.input_kind, info.input_width);
    CHECK(info.d_model == 16 && info.d_inner == 32 && info.d_state == 8 && info.d_conv == 5, "dims");
    CHECK(strcmp(mamba_model_class_label(m, 7), "7") == 0, "label 7");
    CHECK(mamba_model_class_label(m, 10) == NULL, "label 10 must fail");
    CHECK(mamba_model_class_label(m, -1) == NULL, "label -1 must fail");

    /* a classifier has no sessions or tokenizer */
    mamba_session *s = NULL;
    CHECK(mamba_session_new(m, &s) == MAMBA_ERR_INVALID_ARGUMENT && s == NULL, "session on classifier");
    CHECK(strstr(mamba_last_error(), "classifier") != NULL, "message: %s", mamba_last_error());

    /* features path: normalized floats, one frame per image */
    uint8_t px[2 * 784];
    for (int i = 0; i < 2 * 784; i++) px[i] = (uint8_t)((i * 37) % 256);
    float x[2 * 784], logits[20], probs[20];
    for (int i = 0; i < 2 * 784; i++) x[i] = ((float)px[i] / 255.0f - 0.1307f) / 0.3081f;
    int32_t ci[2] = {-1, -1}, cf[2] = {-1, -1};
    OK(mamba_classify_images(m, px, 2, ci, NULL));
    OK(mamba_classify_features(m, x, 2, 1, NULL, cf, probs, logits));
    CHECK(ci[0] == cf[0] && ci[1] == cf[1], "images %d %d vs features %d %d", ci[0], ci[1], cf[0], cf[1]);
    float sum = 0;
    for (int i = 0; i < 10; i++) sum += probs[i];
    CHECK(fabsf(sum - 1.0f) < 1e-5f, "probs sum %f", sum);
    int32_t one = 1, zero = 0;
    OK(mamba_classify_features(m, x, 1, 1, &one, NULL, NULL, NULL));
    CHECK(mamba_classify_features(m, x, 1, 1, &zero, cf, NULL, NULL) == MAMBA_ERR_INVALID_ARGUMENT, "length 0");
    CHECK(mamba_classify_features(m, NULL, 1, 1, NULL, cf, NULL, NULL) == MAMBA_ERR_INVALID_ARGUMENT, "NULL");
    CHECK(mamba_classify_features(NULL, x, 1, 1, NULL, cf, NULL, NULL) == MAMBA_ERR_INVALID_ARGUMENT, "NULL model");
    CHECK(mamba_classify_wav(m, "x.wav", cf, NULL) == MAMBA_ERR_INVALID_ARGUMENT, "image model, wav");
    CHECK(mamba_classify_images(m, px, 0, cf, NULL) == MAMBA_ERR_INVALID_ARGUMENT, "0 images");

    const char *imgs = path("../shared/data/mnist/t10k-images-idx3-ubyte.gz");
    const char *labs = path("../shared/data/mnist/t10k-labels-idx1-ubyte.gz");
    if (!exists(imgs) || !exists(labs)) {
        printf("  (skipping MNIST test set: %s not found)\n", imgs);
        mamba_model_free(m);
        return;
    }
    uint32_t dims[4], nd = 0, small[1];
    size_t ni = 0, nl = 0;
    CHECK(mamba_read_idx(imgs, small, 1, &nd, NULL, 0) == MAMBA_ERR_BUFFER_TOO_SMALL, "dims_len 1");
    uint8_t tiny[4];
    CHECK(mamba_read_idx(imgs, dims, 4, &nd, tiny, 4) == MAMBA_ERR_BUFFER_TOO_SMALL, "data_len 4");
    CHECK(mamba_read_idx(path("tests/fixtures/classifier/mnist.gguf"), dims, 4, &nd, NULL, 0) == MAMBA_ERR_FORMAT,
          "not IDX");
    uint8_t *images = idx(imgs, dims, &nd, &ni);
    CHECK(images && nd == 3 && dims[0] == 10000 && dims[1] == 28 && dims[2] == 28, "image dims");
    uint8_t *labels = idx(labs, dims, &nd, &nl);
    CHECK(labels && nd == 1 && dims[0] == 10000, "label dims");
    FILE *f = fopen(path("tests/fixtures/classifier/mnist_ref_pred.u8"), "rb");
    uint8_t ref[10000];
    CHECK(f && fread(ref, 1, 10000, f) == 10000, "reference predictions");
    if (f) fclose(f);
    if (images && labels) {
        int32_t *pred = malloc(sizeof(int32_t) * 10000);
        OK(mamba_classify_images(m, images, 10000, pred, NULL));
        int correct = 0, agree = 0;
        for (int i = 0; i < 10000; i++) {
            correct += pred[i] == labels[i];
            agree += pred[i] == ref[i];
        }
        printf("  MNIST through the C API: %.2f%% correct, %d/10000 agree with PyTorch\n", correct / 100.0, agree);
        CHECK(correct == 9726, "correct %d", correct);
        CHECK(agree >= 9990, "agree %d", agree);
        free(pred);
    }
    free(images);
    free(labels);
    mamba_model_free(m);
}

static void test_kws(const char *model_rel, int min_agree, int min_correct) {
    mamba_model *m = NULL;
    OK(mamba_model_load(path(model_rel), NULL, &m));
    if (!m) return;
    mamba_model_info info;
    OK(mamba_model_get_info(m, &info));
    CHECK(info.kind == MAMBA_MODEL_CLASSIFIER && info.input_kind == MAMBA_INPUT_AUDIO, "kind");
    CHECK(info.sample_rate == 16000 && info.input_width == 69 && info.input_frames == 135, "audio info");
    CHECK(strcmp(mamba_model_class_label(m, 0), "down") == 0, "label 0");

    /* synthetic audio: a 440 Hz tone; i16 and f32 paths and the features path agree */
    static int16_t s16[16000];
    static float s32[16000], feats[135 * 69];
    for (int i = 0; i < 16000; i++) {
        s16[i] = (int16_t)(8000.0 * sin(2.0 * 3.14159265358979 * 440.0 * i / 16000.0));
        s32[i] = (float)s16[i] / 32768.0f;
    }
    int32_t a = -1, b = -1, c = -1;
    float pa[10], pb[10], lc[10];
    OK(mamba_classify_audio_i16(m, s16, 16000, 16000, &a, pa));
    OK(mamba_classify_audio_f32(m, s32, 16000, 16000, &b, pb));
    OK(mamba_audio_features(m, s32, 16000, 16000, feats, 135 * 69));
    OK(mamba_classify_features(m, feats, 1, 135, NULL, &c, NULL, lc));
    CHECK(a == b && b == c, "%d %d %d", a, b, c);
    CHECK(fabsf(pa[a] - pb[b]) < 1e-6f, "probs differ");
    CHECK(mamba_audio_features(m, s32, 16000, 16000, feats, 100) == MAMBA_ERR_BUFFER_TOO_SMALL, "small out");
    CHECK(mamba_classify_audio_f32(m, s32, 16000, 44100, &b, NULL) == MAMBA_ERR_UNSUPPORTED, "44.1 kHz");
    CHECK(mamba_classify_audio_f32(m, s32, 16000, 0, &b, NULL) == MAMBA_ERR_INVALID_ARGUMENT, "rate 0");
    CHECK(mamba_classify_features(m, feats, 1, 100, NULL, &c, NULL, NULL) == MAMBA_ERR_INVALID_ARGUMENT,
          "100 frames to a 135-frame model");
    CHECK(mamba_classify_wav(m, "/nonexistent.wav", &a, NULL) == MAMBA_ERR_IO, "missing wav");
    CHECK(strstr(mamba_last_error(), "/nonexistent.wav") != NULL, "message names the file");
    CHECK(mamba_classify_images(m, (const uint8_t *)feats, 1, &a, NULL) == MAMBA_ERR_INVALID_ARGUMENT,
          "audio model, images");

    FILE *f = fopen(path("tests/fixtures/classifier/kws_ref_pred.txt"), "r");
    const char *root = path("../shared/data/kws/wav");
    char wavroot[1024];
    snprintf(wavroot, sizeof wavroot, "%s", root);
    if (!f || !exists(path("../shared/data/kws/wav/yes/439c84f4_nohash_1.wav"))) {
        printf("  (skipping KWS WAV files: not found)\n");
        if (f) fclose(f);
        mamba_model_free(m);
        return;
    }
    char rel[512], full[1600];
    int refc, n = 0, agree = 0, correct = 0;
    while (fscanf(f, "%511s %d", rel, &refc) == 2) {
        snprintf(full, sizeof full, "%s/%s", wavroot, rel);
        int32_t cls = -1;
        float p[10];
        OK(mamba_classify_wav(m, full, &cls, p));
        const char *label = mamba_model_class_label(m, cls);
        n++;
        agree += cls == refc;
        correct += label && strncmp(rel, label, strlen(label)) == 0 && rel[strlen(label)] == '/';
    }
    fclose(f);
    printf("  %s from WAV through the C API: %d/%d agree with PyTorch+librosa, %d correct\n", model_rel, agree,
           n, correct);
    CHECK(n == 100 && agree >= min_agree && correct >= min_correct, "agree %d correct %d", agree, correct);
    mamba_model_free(m);
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    test_mnist();
    test_kws("tests/fixtures/classifier/kws.gguf", 99, 97);
    test_kws("tests/fixtures/classifier/kws_int8.gguf", 97, 96);
    printf("test_classifier: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}

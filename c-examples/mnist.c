/*
 * mnist: digit classification with a libmamba image classifier.
 *
 *   mnist MODEL IMAGES.idx[.gz] [LABELS.idx[.gz]] [--index N]
 *
 * IMAGES is an IDX file of 28x28 bytes (gzip or not), or a raw file of
 * float32 model inputs, 784 per image (already normalized, as the C
 * project's `input.bin`). Prints one predicted digit per line (only image N
 * with --index N); with LABELS, also `accuracy: NN.NN%`. Throughput goes to
 * stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mamba.h"

static void fail(const char *what) {
    fprintf(stderr, "mnist: %s: %s\n", what, mamba_last_error());
    exit(1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* An IDX file's bytes; *count = first dimension, *per = product of the rest. */
static uint8_t *read_idx(const char *path, size_t *count, size_t *per) {
    uint32_t dims[8], nd = 0;
    if (mamba_read_idx(path, dims, 8, &nd, NULL, 0) != MAMBA_OK) return NULL;
    size_t total = 1;
    for (uint32_t i = 0; i < nd; i++) total *= dims[i];
    uint8_t *data = malloc(total ? total : 1);
    if (!data) return NULL;
    if (mamba_read_idx(path, dims, 8, &nd, data, total) != MAMBA_OK) fail(path);
    *count = dims[0];
    *per = dims[0] ? total / dims[0] : 0;
    return data;
}

/* A raw float32 file (n × width floats). */
static float *read_raw(const char *path, size_t width, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (size <= 0 || (size_t)size % (width * sizeof(float)) != 0) {
        fclose(f);
        return NULL;
    }
    *n = (size_t)size / (width * sizeof(float));
    float *x = malloc((size_t)size);
    if (!x || fread(x, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        free(x);
        return NULL;
    }
    fclose(f);
    return x;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *images = NULL, *labels_path = NULL;
    long index = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--index") == 0 && i + 1 < argc) {
            index = atol(argv[++i]);
        } else if (!model_path) {
            model_path = argv[i];
        } else if (!images) {
            images = argv[i];
        } else if (!labels_path) {
            labels_path = argv[i];
        } else {
            images = NULL;
            break;
        }
    }
    if (!model_path || !images) {
        fprintf(stderr, "Usage: mnist MODEL IMAGES.idx[.gz] [LABELS.idx[.gz]] [--index N]\n");
        return 2;
    }
    mamba_model *model = NULL;
    if (mamba_model_load(model_path, NULL, &model) != MAMBA_OK) fail("load");
    mamba_model_info info;
    if (mamba_model_get_info(model, &info) != MAMBA_OK) fail("info");
    if (info.kind != MAMBA_MODEL_CLASSIFIER) {
        fprintf(stderr, "mnist: %s is not a classifier\n", model_path);
        return 1;
    }
    size_t width = info.input_width, n = 0, per = 0;
    uint8_t *pixels = read_idx(images, &n, &per);
    float *raw = NULL;
    if (pixels) {
        if (per != width) {
            fprintf(stderr, "mnist: %s has %zu values per image, the model takes %zu\n", images, per, width);
            return 1;
        }
    } else {
        raw = read_raw(images, width, &n);
        if (!raw) {
            fprintf(stderr, "mnist: %s is neither an IDX file (%s) nor raw float32 x %zu\n", images,
                    mamba_last_error(), width);
            return 1;
        }
    }
    size_t first = 0, count = n;
    if (index >= 0) {
        if ((size_t)index >= n) {
            fprintf(stderr, "mnist: --index %ld, but there are %zu images\n", index, n);
            return 1;
        }
        first = (size_t)index;
        count = 1;
    }
    int32_t *pred = malloc(sizeof(int32_t) * count);
    if (!pred) return 1;
    double t0 = now();
    mamba_status st = pixels ? mamba_classify_images(model, pixels + first * width, count, pred, NULL)
                             : mamba_classify_features(model, raw + first * width, count, 1, NULL, pred, NULL, NULL);
    double dt = now() - t0;
    if (st != MAMBA_OK) fail("classify");
    for (size_t i = 0; i < count; i++) printf("%s\n", mamba_model_class_label(model, pred[i]));
    fprintf(stderr, "mnist: %zu images in %.3f s (%.0f images/s, %d threads)\n", count, dt,
            (double)count / (dt > 0 ? dt : 1e-9), mamba_get_num_threads());
    int rc = 0;
    if (labels_path) {
        size_t nl = 0, one = 0;
        uint8_t *labels = read_idx(labels_path, &nl, &one);
        if (!labels) fail(labels_path);
        if (nl != n || one != 1) {
            fprintf(stderr, "mnist: %zu labels for %zu images\n", nl, n);
            rc = 1;
        } else {
            size_t correct = 0;
            for (size_t i = 0; i < count; i++) correct += pred[i] == labels[first + i];
            printf("accuracy: %.2f%%\n", 100.0 * (double)correct / (double)count);
        }
        free(labels);
    }
    free(pred);
    free(pixels);
    free(raw);
    mamba_model_free(model);
    return rc;
}

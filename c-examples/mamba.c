/*
 * mamba: the command-line program, with the C project's command line.
 * Uses only the public header, as any user would.
 *
 *   ./mamba model.{gguf,bin} [options]
 *     -t <float> temperature (0 = greedy), default 1.0
 *     -p <float> top-p, default 0.9
 *     -s <int>   random seed, default time(NULL)
 *     -n <int>   steps: positions, prompt included, default 256
 *     -i <string> prompt
 *     -z <string> tokenizer (tokenizer.bin or tokenizer.json); default: the
 *                 model's own (GGUF), else tokenizer.bin
 *     -m generate|chat   mode, default generate
 *     -y <string> system prompt (chat)
 *     -k <int>   top-k (0 = off)      -r <float> repetition penalty (1 = off)
 *     -T <int>   threads (default: MAMBA_NUM_THREADS or all cores)
 *     --bfloat8  read a one-byte v1 file as "bfloat8" (default: int8)
 *
 * With a v1 model file (the C project's "Mamb" files) the program behaves
 * as the C project's: tokenizer.bin by default, its greedy tokenizer, the
 * C sampler over vocab_size logits, and the library's generate()/chat()
 * (prompt forced token by token, same printing, "achieved tok/s" on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mamba.h"

static void usage(void) {
    fprintf(stderr,
            "Usage:   mamba <model> [options]\n"
            "Example: mamba model.gguf -n 20 -i \"Customer Support should\" -t 0.0\n"
            "Options:\n"
            "  -t <float>  temperature in [0,inf], default 1.0\n"
            "  -p <float>  p value in top-p (nucleus) sampling in [0,1], default 0.9\n"
            "  -s <int>    random seed, default time(NULL)\n"
            "  -n <int>    number of steps to run for, default 256. 0 = max_seq_len\n"
            "  -i <string> input prompt\n"
            "  -z <string> optional path to custom tokenizer\n"
            "  -m <string> mode: generate|chat, default: generate\n"
            "  -y <string> (optional) system prompt in chat mode\n"
            "  -k <int>    top-k, default 0 (off)\n"
            "  -r <float>  repetition penalty, default 1.0 (off)\n"
            "  -T <int>    threads, default all cores\n"
            "  --bfloat8   v1 files with one-byte weights hold bfloat8 (default int8)\n");
    exit(EXIT_FAILURE);
}

static void die(const char *what) {
    fprintf(stderr, "mamba: %s: %s\n", what, mamba_last_error());
    exit(EXIT_FAILURE);
}

static int print_piece(void *user, const char *piece, size_t len) {
    (void)user;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

/* The C project's "Mamb" magic. */
static int is_v1_file(const char *path) {
    unsigned char m[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(m, 1, 4, f);
    fclose(f);
    return n == 4 && m[0] == 0x62 && m[1] == 0x6d && m[2] == 0x61 && m[3] == 0x4d;
}

/* The C project's program, on the C project's API. */
static void run_legacy(const char *model_path, const char *tokenizer_path, const char *prompt, const char *mode,
                       const char *system_prompt, float temperature, float topp, int steps,
                       unsigned long long seed, int bfloat8, int extras) {
    Mamba mamba;
    mamba_load_options lo = mamba_load_options_default();
    lo.legacy_bfloat8 = bfloat8;
    if (mamba_legacy_load_model(&mamba, model_path, &lo) != MAMBA_OK) die("load");
    Config *c = &mamba.config;
    fprintf(stderr,
            "config: vocab_size=%d (%d), n_layers=%d, dim=%d, d_inner=%d, dt_rank=%d, d_state=%d, d_conv=%d\n",
            c->vocab_size, c->rounded_vocab_size, c->n_layers, c->dim, c->d_inner, c->dt_rank, c->d_state,
            c->d_conv);
    if (extras) fprintf(stderr, "mamba: -k and -r are not used with v1 model files (the C project's sampler)\n");
    if (steps == 0) steps = 256;
    Tokenizer tokenizer;
    build_tokenizer(&tokenizer, (char *)(tokenizer_path ? tokenizer_path : "tokenizer.bin"), c->vocab_size);
    Sampler sampler;
    build_sampler(&sampler, c->vocab_size, temperature, topp, seed);
    if (strcmp(mode, "chat") == 0)
        chat(&mamba, &tokenizer, &sampler, (char *)prompt, (char *)system_prompt, steps);
    else
        generate(&mamba, &tokenizer, &sampler, (char *)prompt, steps);
    free_sampler(&sampler);
    free_tokenizer(&tokenizer);
    free_model(&mamba);
}

/*
 * Classifier models (the C project's keyword spotting and MNIST command lines):
 *   ./mamba kws.bin -i input.raw     raw float32 features, 69 x 135 feature-major
 *                                    (np.vstack([mfcc, delta, delta2]).tofile), or a .wav
 *   ./mamba mnist.bin input.bin      784 raw float32 model inputs (normalized pixels)
 * Prints the label and its probability.
 */
static int classify(mamba_model *model, const mamba_model_info *info, const char *input) {
    if (!input) {
        fprintf(stderr, "mamba: a classifier needs an input file (-i FILE or a second argument)\n");
        return EXIT_FAILURE;
    }
    size_t len = strlen(input), w = info->input_width, frames = info->input_frames ? info->input_frames : 1;
    float *probs = malloc(sizeof(float) * info->n_classes), *x = NULL, *t = NULL;
    int32_t cls = -1;
    if (!probs) return EXIT_FAILURE;
    if (len > 4 && strcmp(input + len - 4, ".wav") == 0) {
        if (mamba_classify_wav(model, input, &cls, probs) != MAMBA_OK) die("classify");
    } else {
        FILE *f = fopen(input, "rb");
        if (!f) {
            fprintf(stderr, "mamba: cannot open %s\n", input);
            return EXIT_FAILURE;
        }
        x = malloc(sizeof(float) * w * frames);
        t = malloc(sizeof(float) * w * frames);
        if (!x || !t || fread(x, sizeof(float), w * frames, f) != w * frames) {
            fprintf(stderr, "mamba: %s must hold %zu float32 values\n", input, w * frames);
            return EXIT_FAILURE;
        }
        fclose(f);
        /* feature-major (width x frames) -> frames x width */
        for (size_t r = 0; r < w; r++)
            for (size_t c = 0; c < frames; c++) t[c * w + r] = x[r * frames + c];
        if (mamba_classify_features(model, t, 1, frames, NULL, &cls, probs, NULL) != MAMBA_OK) die("classify");
    }
    printf("%s %.4f\n", mamba_model_class_label(model, cls), probs[cls]);
    free(probs);
    free(x);
    free(t);
    mamba_model_free(model);
    return EXIT_SUCCESS;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *tokenizer_path = NULL, *prompt = NULL;
    const char *mode = "generate", *system_prompt = NULL;
    float temperature = 1.0f, topp = 0.9f, penalty = 1.0f;
    int steps = 256, top_k = 0, threads = 0;
    unsigned long long seed = 0;
    const char *seed_arg = NULL;

    int bfloat8 = 0;
    /* --bfloat8 takes no value: take it out before the -x value pairs. */
    for (int i = 1, j = 1; i <= argc; i++) {
        if (i < argc && strcmp(argv[i], "--bfloat8") == 0) {
            bfloat8 = 1;
            continue;
        }
        argv[j++] = i < argc ? argv[i] : NULL;
        if (i == argc) argc = j - 1;
    }
    if (argc < 2) usage();
    model_path = argv[1];
    /* classifiers: `./mamba mnist.bin input.bin` takes the input as argument 2 */
    const char *input_file = NULL;
    int first_opt = 2;
    if (argc > 2 && argv[2][0] != '-') input_file = argv[2], first_opt = 3;
    for (int i = first_opt; i < argc; i += 2) {
        if (i + 1 >= argc || argv[i][0] != '-' || strlen(argv[i]) != 2) usage();
        const char *v = argv[i + 1];
        switch (argv[i][1]) {
        case 't': temperature = (float)atof(v); break;
        case 'p': topp = (float)atof(v); break;
        case 's': seed = strtoull(v, NULL, 10); seed_arg = v; break;
        case 'n': steps = atoi(v); break;
        case 'i': prompt = v; break;
        case 'z': tokenizer_path = v; break;
        case 'm': mode = v; break;
        case 'y': system_prompt = v; break;
        case 'k': top_k = atoi(v); break;
        case 'r': penalty = (float)atof(v); break;
        case 'T': threads = atoi(v); break;
        default: usage();
        }
    }
    if (seed == 0) seed = (unsigned long long)time(NULL);
    if (temperature < 0) temperature = 0;
    if (topp < 0 || topp > 1) topp = 0.9f;
    if (steps < 0) steps = 0;
    if (threads > 0 && mamba_set_num_threads(threads) != MAMBA_OK) die("threads");
    if (strcmp(mode, "chat") != 0 && strcmp(mode, "generate") != 0) usage();

    mamba_model *model = NULL;
    mamba_model_info info;
    mamba_load_options lo = mamba_load_options_default();
    lo.legacy_bfloat8 = bfloat8;
    if (mamba_model_load(model_path, &lo, &model) != MAMBA_OK) die("load");
    if (mamba_model_get_info(model, &info) != MAMBA_OK) die("info");
    if (info.kind == MAMBA_MODEL_CLASSIFIER) return classify(model, &info, input_file ? input_file : prompt);

    if (is_v1_file(model_path)) {
        mamba_model_free(model);
        /* The C project reads the seed with atoi(): an int, sign-extended. */
        if (seed_arg) seed = (unsigned long long)(long long)(int)strtol(seed_arg, NULL, 10);
        if (seed == 0) seed = (unsigned long long)(unsigned int)time(NULL);
        run_legacy(model_path, tokenizer_path, prompt, mode, system_prompt, temperature, topp, steps, seed, bfloat8,
                   top_k != 0 || penalty != 1.0f);
        return 0;
    }

    if (steps == 0) steps = 256;

    mamba_tokenizer *tok = NULL;
    if (tokenizer_path) {
        if (mamba_tokenizer_load(tokenizer_path, &tok) != MAMBA_OK) die("tokenizer");
    } else if (info.has_tokenizer) {
        if (mamba_model_get_tokenizer(model, &tok) != MAMBA_OK) die("tokenizer");
    } else if (mamba_tokenizer_load("tokenizer.bin", &tok) != MAMBA_OK) {
        die("tokenizer (the model carries none; give one with -z)");
    }

    mamba_session *session = NULL;
    if (mamba_session_new(model, &session) != MAMBA_OK) die("session");

    mamba_generate_params gp = mamba_generate_params_default();
    gp.sampler.temperature = temperature;
    gp.sampler.top_p = topp;
    gp.sampler.top_k = top_k;
    gp.sampler.repeat_penalty = penalty;
    gp.sampler.seed = seed;

    int is_chat = strcmp(mode, "chat") == 0;
    if (!is_chat && strcmp(mode, "generate") != 0) usage();

    char line[4096];
    const char *text = prompt ? prompt : "";
    for (int turn = 0;; turn++) {
        if (is_chat) {
            /* Simple chat: each user line is appended to the conversation. */
            if (turn == 0 && system_prompt) {
                if (mamba_generate(session, tok, system_prompt, &(mamba_generate_params){0, 1, gp.sampler},
                                   NULL, NULL, NULL) != MAMBA_OK)
                    die("system prompt");
            }
            if (turn > 0 || !prompt) {
                printf("\nUser: ");
                fflush(stdout);
                if (!fgets(line, sizeof line, stdin)) break;
                text = line;
            }
            printf("Assistant: ");
        }
        /* steps counts positions, prompt included, as in the C project. */
        size_t n_prompt = 0;
        mamba_status st = mamba_tokenize(tok, text, strlen(text), NULL, 0, &n_prompt);
        if (st != MAMBA_OK && st != MAMBA_ERR_BUFFER_TOO_SMALL) die("tokenize");
        if (n_prompt == 0) n_prompt = 1;
        gp.max_tokens = steps > (int)n_prompt ? steps - (int)n_prompt + 1 : 0;
        if (!is_chat) {
            fputs(text, stdout);
            fflush(stdout);
        }
        mamba_generate_stats stats;
        if (mamba_generate(session, tok, text, &gp, print_piece, NULL, &stats) != MAMBA_OK) die("generate");
        printf("\n");
        fflush(stdout); /* the text, then the statistics on stderr */
        fprintf(stderr,
                "prompt: %d tokens, %.1f tok/s; generation: %d tokens, %.1f tok/s; threads %d\n",
                stats.prompt_tokens, stats.prompt_tok_per_s, stats.generated_tokens, stats.generate_tok_per_s,
                mamba_get_num_threads());
        if (!is_chat) break;
    }

    mamba_session_free(session);
    mamba_tokenizer_free(tok);
    mamba_model_free(model);
    return 0;
}

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
            "  -T <int>    threads, default all cores\n");
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

int main(int argc, char **argv) {
    const char *model_path = NULL, *tokenizer_path = NULL, *prompt = NULL;
    const char *mode = "generate", *system_prompt = NULL;
    float temperature = 1.0f, topp = 0.9f, penalty = 1.0f;
    int steps = 256, top_k = 0, threads = 0;
    unsigned long long seed = 0;

    if (argc < 2) usage();
    model_path = argv[1];
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc || argv[i][0] != '-' || strlen(argv[i]) != 2) usage();
        const char *v = argv[i + 1];
        switch (argv[i][1]) {
        case 't': temperature = (float)atof(v); break;
        case 'p': topp = (float)atof(v); break;
        case 's': seed = strtoull(v, NULL, 10); break;
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

    mamba_model *model = NULL;
    if (mamba_model_load(model_path, NULL, &model) != MAMBA_OK) die("load");
    mamba_model_info info;
    if (mamba_model_get_info(model, &info) != MAMBA_OK) die("info");
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

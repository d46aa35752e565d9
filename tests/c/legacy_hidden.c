/*
 * MAMBA_NO_LEGACY hides the C project's names: this program defines its own
 * Config, Mamba, forward and generate (with other meanings) and still
 * compiles with -Wall -Wextra -Werror against mamba.h, using only mamba_*.
 */
#define MAMBA_NO_LEGACY
#include "mamba.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
} Config;
typedef double Mamba;
static int forward(int x) { return x + 1; }
static const char *generate(Config *c) { return c->name; }

#ifdef MAMBA_LEGACY_API
#error "MAMBA_NO_LEGACY must leave MAMBA_LEGACY_API undefined"
#endif

int main(void) {
    Config c = {"mine"};
    Mamba m = 1.5;
    if (forward(1) != 2 || strcmp(generate(&c), "mine") != 0 || m != 1.5) return 1;
    printf("legacy_hidden: MAMBA_NO_LEGACY hides the C project's names (libmamba %s)\n", mamba_version());
    return 0;
}

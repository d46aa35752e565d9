/*
 * tokenizer.h - provided by libmamba for mains written against the C project, which
 * include "tokenizer.h". Everything it declared is in mamba.h (the C project's API
 * is visible unless MAMBA_NO_LEGACY is defined before the include).
 */
#ifndef MAMBA_TOKENIZER_H
#define MAMBA_TOKENIZER_H
#include "mamba.h"
#endif

/*
 * utils.h - provided by libmamba for mains written against the C project, which
 * include "utils.h". Everything it declared is in mamba.h (the C project's API
 * is visible unless MAMBA_NO_LEGACY is defined before the include).
 */
#ifndef MAMBA_UTILS_H
#define MAMBA_UTILS_H
#include "mamba.h"
#endif

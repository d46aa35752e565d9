/*
 * config.h - provided by libmamba for mains written against the C project, which
 * include "config.h". Everything it declared is in mamba.h (the C project's API
 * is visible unless MAMBA_NO_LEGACY is defined before the include).
 */
#ifndef MAMBA_CONFIG_H
#define MAMBA_CONFIG_H
#include "mamba.h"
#endif

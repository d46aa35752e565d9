"""Finding and loading libmamba.so, and the ctypes prototypes of its C API.

The library is looked for, in order:

1. the path in the environment variable ``MAMBA_LIBRARY``;
2. ``libmamba.so`` next to this package (``make python`` or an installed
   wheel puts it there);
3. when the package is used from a checkout: ``build/libmamba.so``, then
   ``target/release/libmamba.so`` of the repository;
4. the system's search path (``ctypes.util.find_library("mamba")``), e.g.
   after ``make install``.

Everything here mirrors ``include/mamba.h``; keep the two in step.
"""

import ctypes
import ctypes.util
import os
import sys

c_float_p = ctypes.POINTER(ctypes.c_float)
c_int32_p = ctypes.POINTER(ctypes.c_int32)
c_size_t_p = ctypes.POINTER(ctypes.c_size_t)

# mamba_status
OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_IO = 2
ERR_FORMAT = 3
ERR_UNSUPPORTED = 4
ERR_OUT_OF_MEMORY = 5
ERR_STATE_MISMATCH = 6
ERR_BUFFER_TOO_SMALL = 7
ERR_INTERNAL = 8

# mamba_model_kind
MODEL_LANGUAGE = 0
MODEL_CLASSIFIER = 1


class LoadOptions(ctypes.Structure):
    _fields_ = [("copy_file", ctypes.c_int32), ("legacy_bfloat8", ctypes.c_int32)]


class ModelInfo(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_int),
        ("n_layers", ctypes.c_uint32),
        ("d_model", ctypes.c_uint32),
        ("d_inner", ctypes.c_uint32),
        ("d_state", ctypes.c_uint32),
        ("d_conv", ctypes.c_uint32),
        ("dt_rank", ctypes.c_uint32),
        ("vocab_size", ctypes.c_uint32),
        ("n_logits", ctypes.c_uint32),
        ("has_tokenizer", ctypes.c_int32),
        ("file_bytes", ctypes.c_uint64),
        # Added with the classifier API; a library without it leaves them 0
        # (the "not a classifier" values).
        ("n_classes", ctypes.c_uint32),
        ("input_kind", ctypes.c_int),
        ("input_width", ctypes.c_uint32),
        ("input_frames", ctypes.c_uint32),
        ("sample_rate", ctypes.c_uint32),
        # Room for fields a newer library may append, so that it never
        # writes past this struct.
        ("_reserved", ctypes.c_uint8 * 256),
    ]


# mamba_input_kind
INPUT_NONE = 0
INPUT_FEATURES = 1
INPUT_IMAGE = 2
INPUT_AUDIO = 3


class SamplerParams(ctypes.Structure):
    _fields_ = [
        ("temperature", ctypes.c_float),
        ("top_p", ctypes.c_float),
        ("top_k", ctypes.c_int32),
        ("repeat_penalty", ctypes.c_float),
        ("repeat_last_n", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
    ]


class GenerateParams(ctypes.Structure):
    _fields_ = [
        ("max_tokens", ctypes.c_int32),
        ("stop_at_eos", ctypes.c_int32),
        ("sampler", SamplerParams),
    ]


class GenerateStats(ctypes.Structure):
    _fields_ = [
        ("prompt_tokens", ctypes.c_int32),
        ("generated_tokens", ctypes.c_int32),
        ("prompt_ms", ctypes.c_double),
        ("generate_ms", ctypes.c_double),
        ("prompt_tok_per_s", ctypes.c_double),
        ("generate_tok_per_s", ctypes.c_double),
    ]


# int32_t (*mamba_piece_callback)(void *user_data, const char *piece, uintptr_t len)
# The piece is declared as c_void_p so that ctypes hands over the pointer
# itself (c_char_p would stop at the first NUL byte).
PIECE_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)

P = ctypes.c_void_p  # opaque handles
PP = ctypes.POINTER(ctypes.c_void_p)
S = ctypes.c_int  # mamba_status (a C enum)

# name: (restype, argtypes). Every function of the current header.
PROTOTYPES = {
    "mamba_version": (ctypes.c_char_p, []),
    "mamba_last_error": (ctypes.c_char_p, []),
    "mamba_status_string": (ctypes.c_char_p, [ctypes.c_int32]),
    "mamba_set_num_threads": (S, [ctypes.c_int32]),
    "mamba_get_num_threads": (ctypes.c_int32, []),
    "mamba_load_options_default": (LoadOptions, []),
    "mamba_model_load": (S, [ctypes.c_char_p, ctypes.POINTER(LoadOptions), PP]),
    "mamba_model_free": (None, [P]),
    "mamba_model_get_info": (S, [P, ctypes.POINTER(ModelInfo)]),
    "mamba_model_get_tokenizer": (S, [P, PP]),
    "mamba_session_new": (S, [P, PP]),
    "mamba_session_free": (None, [P]),
    "mamba_session_reset": (S, [P]),
    "mamba_session_position": (S, [P, ctypes.POINTER(ctypes.c_uint64)]),
    "mamba_forward": (S, [P, ctypes.c_int32, c_float_p, ctypes.c_size_t]),
    "mamba_forward_tokens": (S, [P, c_int32_p, ctypes.c_size_t, c_float_p, ctypes.c_size_t]),
    "mamba_session_logits": (S, [P, ctypes.POINTER(c_float_p), c_size_t_p]),
    "mamba_state_size": (S, [P, c_size_t_p]),
    "mamba_state_get": (S, [P, ctypes.c_void_p, ctypes.c_size_t, c_size_t_p]),
    "mamba_state_set": (S, [P, ctypes.c_char_p, ctypes.c_size_t]),
    "mamba_tokenizer_load": (S, [ctypes.c_char_p, PP]),
    "mamba_tokenizer_free": (None, [P]),
    "mamba_tokenizer_vocab_size": (S, [P, ctypes.POINTER(ctypes.c_uint32)]),
    "mamba_tokenize": (S, [P, ctypes.c_char_p, ctypes.c_size_t, c_int32_p, ctypes.c_size_t, c_size_t_p]),
    "mamba_token_to_piece": (S, [P, ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t, c_size_t_p]),
    "mamba_sampler_params_default": (SamplerParams, []),
    "mamba_sampler_new": (S, [ctypes.POINTER(SamplerParams), ctypes.c_size_t, PP]),
    "mamba_sampler_free": (None, [P]),
    "mamba_sampler_sample": (S, [P, c_float_p, ctypes.c_size_t, c_int32_p]),
    "mamba_sampler_accept": (S, [P, ctypes.c_int32]),
    "mamba_generate_params_default": (GenerateParams, []),
    "mamba_generate": (
        S,
        [P, P, ctypes.c_char_p, ctypes.POINTER(GenerateParams), PIECE_CALLBACK, ctypes.c_void_p,
         ctypes.POINTER(GenerateStats)],
    ),
}

# Functions newer than the rest of the API (the classifier family, batched
# forward): set up only when the loaded library exports them (see optional()).
c_uint8_p = ctypes.POINTER(ctypes.c_uint8)
c_int16_p = ctypes.POINTER(ctypes.c_int16)
c_uint32_p = ctypes.POINTER(ctypes.c_uint32)
OPTIONAL_PROTOTYPES = {
    # (sessions, tokens, n): newer than the rest of the session API
    "mamba_forward_batch": (S, [PP, c_int32_p, ctypes.c_size_t]),
    # (model, features, n_items, n_frames, lengths, classes, probs, logits)
    "mamba_classify_features": (
        S, [P, c_float_p, ctypes.c_size_t, ctypes.c_size_t, c_int32_p, c_int32_p, c_float_p, c_float_p]),
    # (model, pixels, n_images, classes, probs)
    "mamba_classify_images": (S, [P, c_uint8_p, ctypes.c_size_t, c_int32_p, c_float_p]),
    # (model, samples, n_samples, sample_rate, class_index, probs)
    "mamba_classify_audio_f32": (S, [P, c_float_p, ctypes.c_size_t, ctypes.c_int32, c_int32_p, c_float_p]),
    "mamba_classify_audio_i16": (S, [P, c_int16_p, ctypes.c_size_t, ctypes.c_int32, c_int32_p, c_float_p]),
    # (model, path, class_index, probs)
    "mamba_classify_wav": (S, [P, ctypes.c_char_p, c_int32_p, c_float_p]),
    # (model, samples, n_samples, sample_rate, out, out_len)
    "mamba_audio_features": (
        S, [P, c_float_p, ctypes.c_size_t, ctypes.c_int32, c_float_p, ctypes.c_size_t]),
    # (model, index) -> label or NULL
    "mamba_model_class_label": (ctypes.c_char_p, [P, ctypes.c_int32]),
    # (path, dims, dims_len, n_dims, data, data_len)
    "mamba_read_idx": (
        S, [ctypes.c_char_p, c_uint32_p, ctypes.c_size_t, c_uint32_p, ctypes.c_void_p, ctypes.c_size_t]),
}

_LIB_NAME = "libmamba.so" if sys.platform.startswith("linux") else (
    "libmamba.dylib" if sys.platform == "darwin" else "mamba.dll")


def candidate_paths():
    """Where the library is looked for, in order (see the module docs)."""
    out = []
    env = os.environ.get("MAMBA_LIBRARY")
    if env:
        out.append(env)
    here = os.path.dirname(os.path.abspath(__file__))
    out.append(os.path.join(here, _LIB_NAME))
    repo = os.path.dirname(os.path.dirname(here))  # <repo>/py/mamba -> <repo>
    out.append(os.path.join(repo, "build", _LIB_NAME))
    out.append(os.path.join(repo, "target", "release", _LIB_NAME))
    return out


def _setup(lib):
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise OSError("%s is not a libmamba these bindings can use: it lacks %s"
                          % (lib._name, name)) from None
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def load(path=None):
    """Loads libmamba (from `path`, or as the module docs say) and sets up
    the prototypes. Raises OSError naming the places looked at."""
    if path is not None:
        return _setup(ctypes.CDLL(path))
    tried = []
    env = os.environ.get("MAMBA_LIBRARY")
    for p in candidate_paths():
        if env and p == env:
            # An explicit choice: do not fall back silently when it is wrong.
            return _setup(ctypes.CDLL(p))
        if os.path.exists(p):
            return _setup(ctypes.CDLL(p))
        tried.append(p)
    found = ctypes.util.find_library("mamba")
    if found:
        return _setup(ctypes.CDLL(found))
    tried.append("the system library path (ctypes.util.find_library('mamba'))")
    raise OSError(
        "libmamba not found; build it with `make` (or `make python` to copy it into the package), "
        "or set MAMBA_LIBRARY to its path. Looked at: " + ", ".join(tried))


_lib = None
_optional = {}


def lib():
    """The process-wide library handle, loaded on first use."""
    global _lib
    if _lib is None:
        _lib = load()
    return _lib


def optional(name):
    """The C function `name` from OPTIONAL_PROTOTYPES with its prototype set,
    or None when the loaded library does not export it."""
    if name not in _optional:
        fn = getattr(lib(), name, None)  # AttributeError -> None
        if fn is not None:
            restype, argtypes = OPTIONAL_PROTOTYPES[name]
            fn.restype = restype
            fn.argtypes = argtypes
        _optional[name] = fn
    return _optional[name]

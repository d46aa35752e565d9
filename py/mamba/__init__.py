"""libmamba for Python: Mamba model inference through the C library (ctypes).

    import mamba
    with mamba.Model("model.gguf") as model:
        s = model.session()
        for piece in s.generate("Once upon a time", max_tokens=50, temperature=0.8):
            print(piece, end="", flush=True)

Logits come back as NumPy float32 arrays when NumPy can be imported, as lists
of floats otherwise (``use_numpy(False)`` or ``MAMBA_NO_NUMPY=1`` before the
import forces lists). Failures raise ``MambaError`` with libmamba's message.
How the shared library is found: see ``mamba._lib``.
"""

import codecs
import contextlib
import ctypes
import dataclasses
import os
import queue
import threading

from . import _lib as L

__all__ = [
    "MambaError", "Model", "ModelInfo", "Session", "Tokenizer", "Sampler", "Generation",
    "GenerateStats", "Classification", "version", "set_num_threads", "get_num_threads",
    "use_numpy", "has_classify", "library_path", "read_idx", "forward_batch",
]
__version__ = "0.1.0"

MODEL_LANGUAGE = L.MODEL_LANGUAGE
MODEL_CLASSIFIER = L.MODEL_CLASSIFIER
INPUT_NONE = L.INPUT_NONE
INPUT_FEATURES = L.INPUT_FEATURES
INPUT_IMAGE = L.INPUT_IMAGE
INPUT_AUDIO = L.INPUT_AUDIO

if os.environ.get("MAMBA_NO_NUMPY", "") not in ("", "0"):
    _np = None
else:
    try:
        import numpy as _np
    except ImportError:  # lists instead
        _np = None
_np_available = _np


def use_numpy(enabled=True):
    """Chooses whether arrays come back as NumPy arrays (when NumPy is
    importable) or lists. Returns whether NumPy is now used."""
    global _np
    if enabled:
        if _np_available is None:
            try:
                import numpy
            except ImportError:
                return False
            globals()["_np_available"] = numpy
        _np = _np_available
    else:
        _np = None
    return _np is not None


# --------------------------------------------------------------------------
# Errors and library-wide functions

_STATUS_NAMES = {
    L.OK: "MAMBA_OK",
    L.ERR_INVALID_ARGUMENT: "MAMBA_ERR_INVALID_ARGUMENT",
    L.ERR_IO: "MAMBA_ERR_IO",
    L.ERR_FORMAT: "MAMBA_ERR_FORMAT",
    L.ERR_UNSUPPORTED: "MAMBA_ERR_UNSUPPORTED",
    L.ERR_OUT_OF_MEMORY: "MAMBA_ERR_OUT_OF_MEMORY",
    L.ERR_STATE_MISMATCH: "MAMBA_ERR_STATE_MISMATCH",
    L.ERR_BUFFER_TOO_SMALL: "MAMBA_ERR_BUFFER_TOO_SMALL",
    L.ERR_INTERNAL: "MAMBA_ERR_INTERNAL",
}


class MambaError(RuntimeError):
    """A libmamba call failed. `status` is the mamba_status code (an int,
    see the ERR_* names on this class), `message` libmamba's explanation."""

    OK = L.OK
    ERR_INVALID_ARGUMENT = L.ERR_INVALID_ARGUMENT
    ERR_IO = L.ERR_IO
    ERR_FORMAT = L.ERR_FORMAT
    ERR_UNSUPPORTED = L.ERR_UNSUPPORTED
    ERR_OUT_OF_MEMORY = L.ERR_OUT_OF_MEMORY
    ERR_STATE_MISMATCH = L.ERR_STATE_MISMATCH
    ERR_BUFFER_TOO_SMALL = L.ERR_BUFFER_TOO_SMALL
    ERR_INTERNAL = L.ERR_INTERNAL

    def __init__(self, status, message):
        self.status = int(status)
        self.message = message
        super().__init__(status, message)

    @property
    def status_name(self):
        return _STATUS_NAMES.get(self.status, "status %d" % self.status)

    def __str__(self):
        return "%s (%s)" % (self.message, self.status_name)


def _last_error():
    msg = L.lib().mamba_last_error()
    return msg.decode("utf-8", "replace") if msg else ""


def _check(status, what=None):
    """Raises MambaError for a failed status; the message is libmamba's
    (read on this thread, right after the call)."""
    if status != L.OK:
        msg = _last_error()
        if not msg:
            s = L.lib().mamba_status_string(status)
            msg = s.decode() if s else "failed"
        if what:
            msg = "%s: %s" % (what, msg)
        raise MambaError(status, msg)


def version():
    """The library's version, "MAJOR.MINOR.PATCH"."""
    return L.lib().mamba_version().decode()


def library_path():
    """The file the C library was loaded from."""
    return L.lib()._name


def set_num_threads(n):
    """Worker threads for the library (0: MAMBA_NUM_THREADS or all cores)."""
    _check(L.lib().mamba_set_num_threads(int(n)))


def get_num_threads():
    return int(L.lib().mamba_get_num_threads())


_CLASSIFY_FUNCTIONS = ("mamba_classify_features", "mamba_classify_images", "mamba_classify_audio_f32",
                       "mamba_classify_audio_i16", "mamba_classify_wav", "mamba_model_class_label")


def has_classify():
    """Whether the loaded library has the classifier functions."""
    return all(L.optional(n) is not None for n in _CLASSIFY_FUNCTIONS)


def _optional_fn(name):
    fn = L.optional(name)
    if fn is None:
        raise MambaError(
            L.ERR_UNSUPPORTED,
            "the loaded libmamba (%s, version %s) has no %s (it is older than these bindings)"
            % (library_path(), version(), name))
    return fn


def read_idx(path):
    """Reads an IDX file of unsigned bytes (MNIST images or labels, plain
    or gzip). Returns (shape, data): a tuple of dimensions and the bytes."""
    fn = _optional_fn("mamba_read_idx")
    p = _fspath(path)
    dims = (ctypes.c_uint32 * 8)()
    nd = ctypes.c_uint32()
    _check(fn(p, dims, 8, ctypes.byref(nd), None, 0))
    shape = tuple(int(d) for d in dims[:nd.value])
    total = 1
    for d in shape:
        total *= d
    buf = ctypes.create_string_buffer(max(total, 1))
    _check(fn(p, dims, 8, ctypes.byref(nd), buf, total))
    return shape, buf.raw[:total]


def _fspath(path):
    return os.fsencode(os.fspath(path))


def _float_array(n):
    """A writable float buffer of n floats and a pointer to it."""
    if _np is not None:
        a = _np.empty(n, dtype=_np.float32)
        return a, a.ctypes.data_as(L.c_float_p)
    a = (ctypes.c_float * n)()
    return a, ctypes.cast(a, L.c_float_p)


def _out_floats(buf):
    return buf if _np is not None else list(buf)


def _as_floats(values):
    """(keepalive, pointer, count) for a 1-D float32 view of `values`
    (a NumPy array, a buffer or a sequence of numbers)."""
    if _np_available is not None and isinstance(values, _np_available.ndarray):
        a = _np_available.ascontiguousarray(values, dtype=_np_available.float32).reshape(-1)
        return a, a.ctypes.data_as(L.c_float_p), a.size
    values = list(values)
    a = (ctypes.c_float * len(values))(*values)
    return a, ctypes.cast(a, L.c_float_p), len(values)


def _as_tokens(tokens):
    if _np_available is not None and isinstance(tokens, _np_available.ndarray):
        a = _np_available.ascontiguousarray(tokens, dtype=_np_available.int32).reshape(-1)
        return a, a.ctypes.data_as(L.c_int32_p), a.size
    tokens = [int(t) for t in tokens]
    a = (ctypes.c_int32 * len(tokens))(*tokens)
    return a, ctypes.cast(a, L.c_int32_p), len(tokens)


class _Closing:
    """close() on leaving a `with` block and on garbage collection."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may be gone
            pass


class _Handle(_Closing):
    """Owns one C handle; close() frees it once (also from __del__)."""

    _free_name = None
    _what = "object"

    def __init__(self):
        self._h = None

    def _handle(self):
        h = self._h
        if h is None:
            raise MambaError(L.ERR_INVALID_ARGUMENT, "this %s is closed" % self._what)
        return h

    @property
    def closed(self):
        return self._h is None

    def close(self):
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            getattr(L.lib(), self._free_name)(h)


# --------------------------------------------------------------------------
# Model


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    kind: int  # MODEL_LANGUAGE or MODEL_CLASSIFIER
    n_layers: int
    d_model: int
    d_inner: int
    d_state: int
    d_conv: int
    dt_rank: int
    vocab_size: int  # tokens the tokenizer knows
    n_logits: int  # logits per position (>= vocab_size)
    has_tokenizer: bool
    file_bytes: int
    # Classifiers (0 for a language model, or a library without classifiers):
    n_classes: int = 0
    input_kind: int = 0  # INPUT_NONE, INPUT_FEATURES, INPUT_IMAGE or INPUT_AUDIO
    input_width: int = 0  # features per frame (pixels per image)
    input_frames: int = 0  # frames per item the model needs (0 = any)
    sample_rate: int = 0  # audio classifiers: Hz

    @property
    def kind_name(self):
        return {L.MODEL_LANGUAGE: "language", L.MODEL_CLASSIFIER: "classifier"}.get(self.kind, str(self.kind))


@dataclasses.dataclass(frozen=True)
class Classification:
    index: int  # the most likely class
    label: str  # its label ("yes", "7", ...)
    probs: object  # probability per class (NumPy array or list)
    logits: object = None  # per class, where the C function reports them (features)


class Model(_Handle):
    """A model file (GGUF or the C project's v1 .bin). Immutable; any number
    of sessions, on any threads, may share it.

    copy=True reads the file into memory instead of mapping it;
    legacy_bfloat8=True reads one-byte v1 weights as "bfloat8"."""

    _free_name = "mamba_model_free"
    _what = "model"

    def __init__(self, path, copy=False, legacy_bfloat8=False):
        super().__init__()
        self._tokenizer = None
        lib = L.lib()
        opts = lib.mamba_load_options_default()
        opts.copy_file = 1 if copy else 0
        opts.legacy_bfloat8 = 1 if legacy_bfloat8 else 0
        out = ctypes.c_void_p()
        _check(lib.mamba_model_load(_fspath(path), ctypes.byref(opts), ctypes.byref(out)))
        self._h = out.value
        self.path = os.fspath(path)
        i = L.ModelInfo()
        _check(lib.mamba_model_get_info(self._h, ctypes.byref(i)))
        self.info = ModelInfo(
            kind=int(i.kind), n_layers=i.n_layers, d_model=i.d_model, d_inner=i.d_inner,
            d_state=i.d_state, d_conv=i.d_conv, dt_rank=i.dt_rank, vocab_size=i.vocab_size,
            n_logits=i.n_logits, has_tokenizer=bool(i.has_tokenizer), file_bytes=i.file_bytes,
            n_classes=i.n_classes, input_kind=int(i.input_kind), input_width=i.input_width,
            input_frames=i.input_frames, sample_rate=i.sample_rate)

    def __repr__(self):
        return "<mamba.Model %r %s>" % (self.path, "closed" if self.closed else self.info.kind_name)

    def close(self):
        # The tokenizer handle is independent of the model's: one taken from
        # .tokenizer stays usable (and is freed when it is collected).
        self._tokenizer = None
        super().close()

    @property
    def tokenizer(self):
        """The tokenizer the model file carries, or None."""
        if self._tokenizer is None and self.info.has_tokenizer:
            out = ctypes.c_void_p()
            _check(L.lib().mamba_model_get_tokenizer(self._handle(), ctypes.byref(out)))
            self._tokenizer = Tokenizer._from_handle(out.value)
        return self._tokenizer

    def session(self):
        """A new session (empty state) over this model."""
        return Session(self)

    # -- classifiers. The C functions are newer than the rest of the API;
    # they are looked up when first used (see _lib.OPTIONAL_PROTOTYPES), and
    # a library without them raises MambaError(ERR_UNSUPPORTED).

    @property
    def num_classes(self):
        return self.info.n_classes

    def class_label(self, index):
        """The label of class `index` ("down", "7", ...)."""
        fn = _optional_fn("mamba_model_class_label")
        label = fn(self._handle(), int(index))
        if label is None:
            _check(L.ERR_INVALID_ARGUMENT)
        return label.decode("utf-8", "replace")

    @property
    def labels(self):
        """Every class's label, by index."""
        return [self.class_label(i) for i in range(self.num_classes)]

    def _result(self, index, probs, logits=None):
        return Classification(int(index), self.class_label(index), _out_floats(probs),
                              None if logits is None else _out_floats(logits))

    def _classify_one(self, name, *args):
        fn = _optional_fn(name)
        h = self._handle()
        nc = self.num_classes
        probs, probs_p = _float_array(nc)
        cls = ctypes.c_int32(-1)
        _check(fn(h, *(args + (ctypes.byref(cls), probs_p))))
        return self._result(cls.value, probs)

    def classify_features(self, features, lengths=None):
        """Classifies frames of features (input_width each): a 2-D
        frames x features array or list of rows gives one Classification; a
        3-D items x frames x features one gives a list (with `lengths`, the
        valid frames of each item; the rest is padding). For an audio model
        the features are those of audio_features()."""
        fn = _optional_fn("mamba_classify_features")
        width = self.info.input_width
        batch, n_items, n_frames, flat = _frames(features, width)
        keep, ptr, count = _as_floats(flat)
        if lengths is not None:
            if len(lengths) != n_items:
                raise ValueError("%d lengths for %d items" % (len(lengths), n_items))
            lkeep, lptr, _ = _as_tokens(lengths)
        else:
            lptr = None
        nc = self.num_classes
        classes = (ctypes.c_int32 * n_items)()
        probs, probs_p = _float_array(n_items * nc)
        logits, logits_p = _float_array(n_items * nc)
        _check(fn(self._handle(), ptr, n_items, n_frames, lptr, classes, probs_p, logits_p))
        out = [self._result(classes[i], probs[i * nc:(i + 1) * nc], logits[i * nc:(i + 1) * nc])
               for i in range(n_items)]
        return out if batch else out[0]

    def classify_images(self, pixels):
        """Classifies images of input_width bytes (0..255) each: one image
        (bytes, or a flat sequence) gives a Classification; several (a 2-D
        array or a list of images) a list."""
        fn = _optional_fn("mamba_classify_images")
        width = self.info.input_width
        if _np_available is not None and isinstance(pixels, _np_available.ndarray):
            batch = pixels.ndim > 1 and not (pixels.ndim == 2 and pixels.size == width)
            data = _np_available.ascontiguousarray(pixels, dtype=_np_available.uint8).tobytes()
        elif isinstance(pixels, (bytes, bytearray, memoryview)):
            batch, data = False, bytes(pixels)
        else:
            pixels = list(pixels)
            batch = bool(pixels) and not isinstance(pixels[0], int)
            data = b"".join(bytes(bytearray(row)) for row in pixels) if batch else bytes(bytearray(pixels))
        if width == 0 or not data or len(data) % width:
            raise ValueError("%d bytes are not whole images of %d pixels" % (len(data), width))
        n = len(data) // width
        batch = batch or n > 1
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        nc = self.num_classes
        classes = (ctypes.c_int32 * n)()
        probs, probs_p = _float_array(n * nc)
        _check(fn(self._handle(), buf, n, classes, probs_p))
        out = [self._result(classes[i], probs[i * nc:(i + 1) * nc]) for i in range(n)]
        return out if batch else out[0]

    def classify_audio(self, samples, sample_rate=None):
        """Classifies one mono clip: floats in [-1, 1], or a NumPy int16
        array / array.array("h") of 16-bit samples. sample_rate defaults to
        the model's."""
        rate = int(sample_rate if sample_rate is not None else (self.info.sample_rate or 16000))
        i16 = None
        if _np_available is not None and isinstance(samples, _np_available.ndarray) \
                and samples.dtype == _np_available.int16:
            i16 = _np_available.ascontiguousarray(samples).reshape(-1)
            return self._classify_one("mamba_classify_audio_i16", i16.ctypes.data_as(L.c_int16_p),
                                      i16.size, rate)
        if getattr(samples, "typecode", None) == "h":
            i16 = (ctypes.c_int16 * len(samples))(*samples)
            return self._classify_one("mamba_classify_audio_i16", i16, len(samples), rate)
        keep, ptr, n = _as_floats(samples)
        return self._classify_one("mamba_classify_audio_f32", ptr, n, rate)

    def classify_wav(self, path):
        """Classifies a WAV file (mono PCM 16-bit or float at the model's rate)."""
        return self._classify_one("mamba_classify_wav", _fspath(path))

    def audio_features(self, samples, sample_rate=None):
        """The model input for one clip (what classify_audio computes):
        input_frames x input_width floats, as a 2-D NumPy array or a list of
        rows. Pass it to classify_features."""
        fn = _optional_fn("mamba_audio_features")
        info = self.info
        rate = int(sample_rate if sample_rate is not None else (info.sample_rate or 16000))
        if info.input_frames == 0 or info.input_width == 0:
            raise MambaError(L.ERR_UNSUPPORTED, "the model has no fixed audio clip length")
        keep, ptr, n = _as_floats(samples)
        total = info.input_frames * info.input_width
        out, out_p = _float_array(total)
        _check(fn(self._handle(), ptr, n, rate, out_p, total))
        if _np is not None:
            return out.reshape(info.input_frames, info.input_width)
        w = info.input_width
        return [list(out[i * w:(i + 1) * w]) for i in range(info.input_frames)]


def _frames(features, width):
    """(batch?, n_items, n_frames, flat floats) of a 2-D or 3-D input."""
    if _np_available is not None and isinstance(features, _np_available.ndarray):
        a = features
        if a.ndim == 2:
            a = a[None]
            batch = False
        elif a.ndim == 3:
            batch = True
        else:
            raise ValueError("features must be 2-D (frames x features) or 3-D (items x frames x features)")
        if a.shape[2] != width:
            raise ValueError("%d features per frame; the model takes %d" % (a.shape[2], width))
        return batch, a.shape[0], a.shape[1], a
    rows = list(features)
    batch = bool(rows) and bool(len(rows[0])) and not isinstance(rows[0][0], (int, float))
    items = [list(r) for r in rows] if batch else [rows]
    n_frames = len(items[0]) if items else 0
    flat = []
    for item in items:
        if len(item) != n_frames:
            raise ValueError("every item needs the same number of frames (pad and pass lengths)")
        for frame in item:
            frame = list(frame)
            if len(frame) != width:
                raise ValueError("%d features per frame; the model takes %d" % (len(frame), width))
            flat.extend(frame)
    return batch, len(items), n_frames, flat


def _read_bytes(call, cap=64):
    """Calls call(buf, cap, &len) growing buf on MAMBA_ERR_BUFFER_TOO_SMALL."""
    n = ctypes.c_size_t()
    while True:
        buf = ctypes.create_string_buffer(cap)
        status = call(buf, cap, ctypes.byref(n))
        if status == L.ERR_BUFFER_TOO_SMALL and n.value > cap:
            cap = n.value
            continue
        _check(status)
        return buf.raw[:n.value]


# --------------------------------------------------------------------------
# Tokenizer and sampler


class Tokenizer(_Handle):
    """A tokenizer: the C project's tokenizer.bin or an HF tokenizer.json
    (or, through Model.tokenizer, the one a model file carries)."""

    _free_name = "mamba_tokenizer_free"
    _what = "tokenizer"

    def __init__(self, path):
        super().__init__()
        out = ctypes.c_void_p()
        _check(L.lib().mamba_tokenizer_load(_fspath(path), ctypes.byref(out)))
        self._h = out.value

    @classmethod
    def _from_handle(cls, h):
        t = cls.__new__(cls)
        _Handle.__init__(t)
        t._h = h
        return t

    @property
    def vocab_size(self):
        n = ctypes.c_uint32()
        _check(L.lib().mamba_tokenizer_vocab_size(self._handle(), ctypes.byref(n)))
        return int(n.value)

    def __len__(self):
        return self.vocab_size

    def encode(self, text):
        """Token ids of `text` (str, encoded as UTF-8, or bytes); no BOS/EOS."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        h = self._handle()
        cap = len(data) + 16
        n = ctypes.c_size_t()
        while True:
            ids = (ctypes.c_int32 * cap)()
            status = L.lib().mamba_tokenize(h, data, len(data), ids, cap, ctypes.byref(n))
            if status == L.ERR_BUFFER_TOO_SMALL and n.value > cap:
                cap = n.value
                continue
            _check(status)
            return list(ids[:n.value])

    def token_to_piece(self, token):
        """The bytes of one token."""
        h = self._handle()
        return _read_bytes(lambda buf, cap, n: L.lib().mamba_token_to_piece(h, int(token), buf, cap, n), 32)

    def decode_bytes(self, tokens):
        return b"".join(self.token_to_piece(t) for t in tokens)

    def decode(self, tokens):
        """The text of `tokens` (invalid UTF-8 becomes U+FFFD)."""
        return self.decode_bytes(tokens).decode("utf-8", "replace")


class Sampler(_Handle):
    """Picks tokens from logits: temperature (0 = greedy), top_p, top_k,
    repeat_penalty over the last repeat_last_n tokens, seed. None means the
    library's default. `n_logits` is an int or a Model."""

    _free_name = "mamba_sampler_free"
    _what = "sampler"

    def __init__(self, n_logits, temperature=None, top_p=None, top_k=None, repeat_penalty=None,
                 repeat_last_n=None, seed=None):
        super().__init__()
        if isinstance(n_logits, Model):
            n_logits = n_logits.info.n_logits
        p = _sampler_params(L.lib().mamba_sampler_params_default(), temperature, top_p, top_k,
                            repeat_penalty, repeat_last_n, seed)
        out = ctypes.c_void_p()
        _check(L.lib().mamba_sampler_new(ctypes.byref(p), int(n_logits), ctypes.byref(out)))
        self._h = out.value

    def sample(self, logits):
        """A token id from `logits` (recorded for the repetition penalty)."""
        keep, ptr, n = _as_floats(logits)
        tok = ctypes.c_int32()
        _check(L.lib().mamba_sampler_sample(self._handle(), ptr, n, ctypes.byref(tok)))
        return int(tok.value)

    def accept(self, token):
        """Records a token (e.g. of the prompt) for the repetition penalty."""
        _check(L.lib().mamba_sampler_accept(self._handle(), int(token)))


def _sampler_params(p, temperature, top_p, top_k, repeat_penalty, repeat_last_n, seed):
    if temperature is not None:
        p.temperature = float(temperature)
    if top_p is not None:
        p.top_p = float(top_p)
    if top_k is not None:
        p.top_k = int(top_k)
    if repeat_penalty is not None:
        p.repeat_penalty = float(repeat_penalty)
    if repeat_last_n is not None:
        p.repeat_last_n = int(repeat_last_n)
    if seed is not None:
        p.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return p


# --------------------------------------------------------------------------
# Session and generation


class Session(_Handle):
    """One sequence's state over a model. Use a session from one thread at a
    time (calls are serialised by a lock)."""

    _free_name = "mamba_session_free"
    _what = "session"

    def __init__(self, model):
        super().__init__()
        self._lock = threading.Lock()
        self._active = None  # the running Generation's _Channel
        out = ctypes.c_void_p()
        _check(L.lib().mamba_session_new(model._handle(), ctypes.byref(out)))
        self._h = out.value
        self.model = model
        self.n_logits = model.info.n_logits

    def _idle(self):
        if self._active is not None:
            raise MambaError(L.ERR_INVALID_ARGUMENT,
                             "the session is generating: exhaust or close() the generator first")
        return self._handle()

    @contextlib.contextmanager
    def _use(self):
        """The handle, with the session's lock held. Refuses (rather than
        waits) while a generation is open: its thread holds the lock."""
        self._idle()
        with self._lock:
            yield self._idle()

    def close(self):
        ch = getattr(self, "_active", None)
        if ch is not None:  # stop a running generation first
            ch.cancel()
            self._active = None
        lock = getattr(self, "_lock", None)
        if lock is None:
            return super().close()
        with lock:
            super().close()

    @property
    def position(self):
        """Tokens consumed since the session was made or reset."""
        n = ctypes.c_uint64()
        with self._use() as h:
            _check(L.lib().mamba_session_position(h, ctypes.byref(n)))
        return int(n.value)

    def reset(self):
        with self._use() as h:
            _check(L.lib().mamba_session_reset(h))

    def forward(self, token, logits=True):
        """Feeds one token; returns the next-token logits (n_logits floats),
        or None with logits=False."""
        buf, ptr = _float_array(self.n_logits) if logits else (None, None)
        with self._use() as h:
            _check(L.lib().mamba_forward(h, int(token), ptr, self.n_logits if logits else 0))
        return _out_floats(buf) if logits else None

    def forward_tokens(self, tokens, logits=True):
        """Feeds tokens in prompt mode (batched); returns the logits after
        the last one, or None with logits=False."""
        keep, tp, n = _as_tokens(tokens)
        buf, ptr = _float_array(self.n_logits) if logits else (None, None)
        with self._use() as h:
            _check(L.lib().mamba_forward_tokens(h, tp, n, ptr, self.n_logits if logits else 0))
        return _out_floats(buf) if logits else None

    @property
    def logits(self):
        """A copy of the session's last logits."""
        ptr = L.c_float_p()
        n = ctypes.c_size_t()
        with self._use() as h:
            _check(L.lib().mamba_session_logits(h, ctypes.byref(ptr), ctypes.byref(n)))
            if _np is not None:
                return _np.ctypeslib.as_array(ptr, shape=(n.value,)).copy()
            return ptr[:n.value]

    def get_state(self):
        """The session's state as a self-describing blob (bytes)."""
        size = ctypes.c_size_t()
        written = ctypes.c_size_t()
        with self._use() as h:
            _check(L.lib().mamba_state_size(h, ctypes.byref(size)))
            buf = ctypes.create_string_buffer(max(size.value, 1))
            _check(L.lib().mamba_state_get(h, buf, size.value, ctypes.byref(written)))
        return buf.raw[:written.value]

    def set_state(self, state):
        """Restores a blob from get_state() (same model shape); on error the
        session is unchanged."""
        data = bytes(state)
        with self._use() as h:
            _check(L.lib().mamba_state_set(h, data, len(data)))

    def generate(self, prompt, max_tokens=None, temperature=None, top_p=None, top_k=None,
                 repeat_penalty=None, repeat_last_n=None, seed=None, tokenizer=None,
                 stop_at_eos=True):
        """Generates text after `prompt` (str or bytes), continuing from the
        session's state. Returns an iterator of text pieces (str); its
        `stats` are set once it is exhausted. `tokenizer` None uses the
        model's own. Other arguments None take the library's defaults
        (max_tokens 256). Generation runs lazily; breaking out of the loop
        (or close()) stops it. The session keeps the state of the text
        generated so far."""
        p = L.lib().mamba_generate_params_default()
        if max_tokens is not None:
            p.max_tokens = int(max_tokens)
        p.stop_at_eos = 1 if stop_at_eos else 0
        _sampler_params(p.sampler, temperature, top_p, top_k, repeat_penalty, repeat_last_n, seed)
        if isinstance(prompt, str):
            prompt = prompt.encode("utf-8")
        if b"\0" in prompt:
            raise MambaError(L.ERR_INVALID_ARGUMENT, "the prompt contains a NUL byte")
        if tokenizer is not None and not isinstance(tokenizer, Tokenizer):
            raise TypeError("tokenizer must be a mamba.Tokenizer or None")
        return Generation(self, bytes(prompt), p, tokenizer)


def forward_batch(sessions, tokens, logits=True):
    """Advances several sessions of one model by one token each
    (tokens[i] for sessions[i]), reading the weights once for all: much
    faster than separate forward() calls. Returns each session's logits
    (a list), or None with logits=False."""
    sessions = list(sessions)
    if len(sessions) != len(tokens):
        raise ValueError("%d sessions but %d tokens" % (len(sessions), len(tokens)))
    if len({id(s) for s in sessions}) != len(sessions):
        raise MambaError(L.ERR_INVALID_ARGUMENT, "forward_batch: the sessions must be distinct")
    keep, tp, n = _as_tokens(tokens)
    with contextlib.ExitStack() as stack:
        # One lock order for all callers, so that two batches cannot deadlock.
        handles = {id(s): stack.enter_context(s._use()) for s in sorted(sessions, key=id)}
        arr = (ctypes.c_void_p * max(n, 1))(*[handles[id(s)] for s in sessions])
        _check(_optional_fn("mamba_forward_batch")(arr, tp, n))
    return [s.logits for s in sessions] if logits else None


@dataclasses.dataclass(frozen=True)
class GenerateStats:
    prompt_tokens: int
    generated_tokens: int
    prompt_ms: float
    generate_ms: float
    prompt_tok_per_s: float
    generate_tok_per_s: float


class _Channel:
    """What the generating thread and the iterator share. Holds no
    reference to the Generation, so an abandoned one is collected (and its
    __del__ stops the thread)."""

    def __init__(self):
        self.q = queue.Queue(maxsize=1)  # lazy: at most a piece or two ahead
        self.stop = threading.Event()
        self.thread = None

    def cancel(self):
        self.stop.set()
        t = self.thread
        if t is None or t is threading.current_thread():
            return
        while t.is_alive():
            try:
                self.q.get(timeout=0.05)  # unblocks a put in the worker
            except queue.Empty:
                pass
        t.join()


def _generate_worker(session, handle, tok_handle, prompt, params, ch, keep):
    lib = L.lib()

    def on_piece(_user, ptr, n):
        if ch.stop.is_set():
            return 1
        ch.q.put(("piece", ctypes.string_at(ptr, n)))
        return 1 if ch.stop.is_set() else 0

    cb = L.PIECE_CALLBACK(on_piece)
    stats = L.GenerateStats()
    try:
        try:
            status = lib.mamba_generate(handle, tok_handle, prompt, ctypes.byref(params), cb, None,
                                        ctypes.byref(stats))
            if status != L.OK:
                item = ("error", MambaError(status, _last_error()))
            else:
                item = ("end", GenerateStats(stats.prompt_tokens, stats.generated_tokens, stats.prompt_ms,
                                             stats.generate_ms, stats.prompt_tok_per_s,
                                             stats.generate_tok_per_s))
        finally:
            session._lock.release()
    except BaseException as e:  # pragma: no cover - defensive
        item = ("error", MambaError(L.ERR_INTERNAL, "generation thread failed: %r" % (e,)))
    ch.q.put(item)


class Generation(_Closing):
    """The iterator Session.generate returns. Yields str pieces; `stats`
    (GenerateStats) is set when it is exhausted."""

    def __init__(self, session, prompt, params, tokenizer):
        self._session = session
        self._prompt = prompt
        self._params = params
        self._tokenizer = tokenizer
        self._ch = _Channel()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._done = False
        self.stats = None

    def __iter__(self):
        return self

    def _start(self):
        s = self._session
        h = s._idle()
        tok = self._tokenizer._handle() if self._tokenizer is not None else None
        if not s._lock.acquire(blocking=False):
            raise MambaError(L.ERR_INVALID_ARGUMENT, "the session is busy on another thread")
        s._active = self._ch
        t = threading.Thread(target=_generate_worker, name="mamba-generate", daemon=True,
                             args=(s, h, tok, self._prompt, self._params, self._ch, self._tokenizer))
        self._ch.thread = t
        try:
            t.start()
        except BaseException:
            s._active = None
            s._lock.release()
            raise

    def _finish(self):
        self._done = True
        if self._session._active is self._ch:
            self._session._active = None
        if self._ch.thread is not None:
            self._ch.thread.join()

    def __next__(self):
        if self._done:
            raise StopIteration
        if self._ch.thread is None:
            self._start()
        while True:
            kind, value = self._ch.q.get()
            if kind == "piece":
                text = self._decoder.decode(value)
                if text:
                    return text
                continue
            self._finish()
            if kind == "error":
                raise value
            self.stats = value
            tail = self._decoder.decode(b"", final=True)
            if tail:
                return tail
            raise StopIteration

    def close(self):
        """Stops the generation (the session keeps the state so far)."""
        if self._done:
            return
        self._done = True
        if self._ch.thread is not None:
            self._ch.cancel()
        if self._session._active is self._ch:
            self._session._active = None


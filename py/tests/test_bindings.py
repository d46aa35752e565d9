"""Tests of the Python bindings (py/mamba) on the random fixture models.

Runs with the standard library only (NumPy is used when present, and the
list code path is tested either way):

    python3 -m unittest discover -s py/tests -v       # from the repository root
    make test-python

`mamba` is imported from sys.path when it is there (an installed copy, as
tests/install/run.sh does), else from this checkout's py/. The C library is
found as mamba._lib explains (MAMBA_LIBRARY, next to the package, build/).
"""

import array
import gc
import os
import struct
import subprocess
import sys
import tempfile
import unittest

try:
    import mamba
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import mamba

try:
    import numpy
except ImportError:
    numpy = None

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LM = os.path.join(ROOT, "tests", "fixtures", "lm")


def fixture(*parts):
    return os.path.join(LM, *parts)


def read_i32(path):
    a = array.array("i")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    if sys.byteorder != "little":
        a.byteswap()
    return list(a)


def read_f32_rows(path, row):
    a = array.array("f")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    if sys.byteorder != "little":
        a.byteswap()
    return [a[i:i + row] for i in range(0, len(a), row)]


def meta(name):
    out = {}
    with open(fixture(name, "meta.txt")) as f:
        for line in f:
            if "=" in line:
                k, v = line.split("=", 1)
                out[k.strip()] = v.strip()
    return out


def write_tokenizer(path, non_ascii=False):
    """The tokenizer.bin of tests/c/test_api.c: end-of-text, the 127 ASCII
    bytes, and a few merges (137 tokens, fewer than any fixture's vocab).
    non_ascii: a few multi-byte characters as tokens too."""
    extra = [b"th", b"he", b"the", b" the", b"in", b"ing", b" a", b"an", b"and"]
    tokens = [b"<|endoftext|>"] + [bytes([b]) for b in range(1, 128)] + extra
    if non_ascii:
        tokens += [c.encode() for c in "éü€日本語"]
    with open(path, "wb") as f:
        f.write(struct.pack("<IiiI", 0x4D62546B, 1, len(tokens), 4))
        for t in tokens:
            f.write(struct.pack("<i", len(t)))
            f.write(t)


def max_abs_diff(a, b):
    return max(abs(float(x) - float(y)) for x, y in zip(a, b))


def argmax(xs):
    best = 0
    for i, x in enumerate(xs):
        if x > xs[best]:
            best = i
    return best


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.tok_path = os.path.join(cls.tmp.name, "tokenizer.bin")
        write_tokenizer(cls.tok_path)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        mamba.use_numpy(True)

    def tokenizer(self):
        """The test tokenizer (a small tokenizer.bin written in setUpClass)."""
        return mamba.Tokenizer(self.tok_path)

    def tearDown(self):
        mamba.use_numpy(True)


class TestLibrary(Base):
    def test_version_and_threads(self):
        v = mamba.version()
        self.assertRegex(v, r"^\d+\.\d+\.\d+$")
        self.assertTrue(os.path.exists(mamba.library_path()), mamba.library_path())
        old = mamba.get_num_threads()
        mamba.set_num_threads(1)
        self.assertEqual(mamba.get_num_threads(), 1)
        mamba.set_num_threads(old)
        with self.assertRaises(mamba.MambaError) as cm:
            mamba.set_num_threads(-1)
        self.assertEqual(cm.exception.status, mamba.MambaError.ERR_INVALID_ARGUMENT)


class TestModel(Base):
    def check_info(self, path, name, v1):
        m = meta(name)
        with mamba.Model(path) as model:
            info = model.info
            self.assertEqual(info.kind, mamba.MODEL_LANGUAGE)
            self.assertEqual(info.kind_name, "language")
            self.assertEqual(info.n_layers, int(m["n_layers"]))
            self.assertEqual(info.d_model, int(m["dim"]))
            self.assertEqual(info.d_inner, int(m["d_inner"]))
            self.assertEqual(info.d_state, int(m["d_state"]))
            self.assertEqual(info.d_conv, int(m["d_conv"]))
            self.assertEqual(info.dt_rank, int(m["dt_rank"]))
            self.assertEqual(info.vocab_size, int(m["vocab_size"]))
            self.assertEqual(info.n_logits, int(m["rounded_vocab"] if v1 else m["vocab_size"]))
            self.assertFalse(info.has_tokenizer)
            self.assertIsNone(model.tokenizer)
            self.assertEqual(info.file_bytes, os.path.getsize(path))
            self.assertIn("language", repr(model))
        self.assertTrue(model.closed)

    def test_info_v1_and_gguf(self):
        self.check_info(fixture("A.bin"), "A", True)
        self.check_info(fixture("B.bin"), "B", True)
        self.check_info(fixture("A.gguf"), "A", False)
        self.check_info(fixture("B.gguf"), "B", False)

    def test_copy_option(self):
        with mamba.Model(fixture("B.gguf"), copy=True) as a, mamba.Model(fixture("B.gguf")) as b:
            p = read_i32(fixture("B", "prompt.i32"))
            self.assertEqual(max_abs_diff(a.session().forward_tokens(p), b.session().forward_tokens(p)), 0.0)

    def test_logits_match_reference(self):
        for f, name in (("A.bin", "A"), ("A.gguf", "A"), ("B.gguf", "B")):
            with mamba.Model(fixture(f)) as model:
                vocab = model.info.vocab_size
                prompt = read_i32(fixture(name, "prompt.i32"))
                ref = read_f32_rows(fixture(name, "logits.f32"), vocab)
                s = model.session()
                got = s.forward_tokens(prompt)
                self.assertEqual(len(got), model.info.n_logits)
                self.assertLess(max_abs_diff(got[:vocab], ref[-1]), 1e-4, f)
                self.assertEqual(s.position, len(prompt))

    def test_forward_equals_forward_tokens(self):
        for f, name in (("A.bin", "A"), ("B.gguf", "B")):
            with mamba.Model(fixture(f)) as model:
                prompt = read_i32(fixture(name, "prompt.i32"))
                batched = model.session().forward_tokens(prompt)
                s = model.session()
                for i, t in enumerate(prompt):
                    step = s.forward(t)
                    self.assertEqual(s.position, i + 1)
                self.assertLess(max_abs_diff(batched, step), 1e-5, f)
                self.assertLess(max_abs_diff(s.logits, step), 1e-7)
                # numpy arrays as token lists too
                if numpy is not None:
                    again = model.session().forward_tokens(numpy.array(prompt, dtype=numpy.int64))
                    self.assertLess(max_abs_diff(again, batched), 1e-7)
                no_logits = model.session()
                self.assertIsNone(no_logits.forward_tokens(prompt, logits=False))
                self.assertIsNone(no_logits.forward(prompt[0], logits=False))
                self.assertEqual(no_logits.position, len(prompt) + 1)

    def test_forward_batch(self):
        with mamba.Model(fixture("B.gguf")) as model:
            prompt = read_i32(fixture("B", "prompt.i32"))
            batch = [model.session() for _ in range(3)]
            single = [model.session() for _ in range(3)]
            for i in range(3):
                batch[i].forward_tokens(prompt[:10 + i])
                single[i].forward_tokens(prompt[:10 + i])
            for step in range(4):
                toks = [prompt[20 + step], prompt[25], step + 1]
                got = mamba.forward_batch(batch, toks)
                for i in range(3):
                    want = single[i].forward(toks[i])
                    self.assertLess(max_abs_diff(got[i], want), 1e-4)
            self.assertIsNone(mamba.forward_batch(batch, [1, 2, 3], logits=False))
            self.assertEqual([s.position for s in batch], [10 + i + 5 for i in range(3)])
            with self.assertRaises(mamba.MambaError):
                mamba.forward_batch([batch[0], batch[0]], [1, 2])
            with self.assertRaises(mamba.MambaError):
                mamba.forward_batch(batch, [1, 2, 100000])
            with mamba.Model(fixture("A.bin")) as other:
                with self.assertRaises(mamba.MambaError) as cm:
                    mamba.forward_batch([batch[0], other.session()], [1, 2])
                self.assertTrue(cm.exception.message)

    def test_greedy_and_state_round_trip(self):
        with mamba.Model(fixture("B.bin")) as model:
            vocab = model.info.vocab_size
            prompt = read_i32(fixture("B", "prompt.i32"))
            greedy = read_i32(fixture("B", "greedy.i32"))
            s = model.session()
            logits = first = s.forward_tokens(prompt)
            state = s.get_state()
            self.assertIsInstance(state, bytes)
            self.assertGreater(len(state), 0)
            got = []
            for _ in range(16):
                t = argmax(list(logits[:vocab]))
                got.append(t)
                logits = s.forward(t)
            self.assertEqual(got, greedy[:16])
            after = list(s.logits)

            # Restore into a fresh session and continue: the same text and
            # logits. (The blob holds the recurrent state, not the last
            # logits: the first pick comes from the saved ones.)
            s2 = model.session()
            s2.set_state(state)
            self.assertEqual(s2.position, len(prompt))
            logits = first
            got2 = []
            for _ in range(16):
                t = argmax(list(logits[:vocab]))
                got2.append(t)
                logits = s2.forward(t)
            self.assertEqual(got2, got)
            self.assertEqual(max_abs_diff(s2.logits, after), 0.0)

            # And back into the first session (rewinding it).
            s.set_state(state)
            self.assertEqual(s.position, len(prompt))
            self.assertEqual(s.get_state(), state)

            s.reset()
            self.assertEqual(s.position, 0)

    def test_state_errors(self):
        with mamba.Model(fixture("A.bin")) as a, mamba.Model(fixture("B.bin")) as b:
            sa, sb = a.session(), b.session()
            sa.forward(1)
            state = sa.get_state()
            before = sb.get_state()
            with self.assertRaises(mamba.MambaError) as cm:
                sb.set_state(state)
            self.assertNotEqual(cm.exception.status, 0)
            self.assertTrue(cm.exception.message)
            self.assertEqual(sb.get_state(), before)  # unchanged on error
            with self.assertRaises(mamba.MambaError):
                sa.set_state(b"not a state")
            bad = bytearray(state)
            bad[-1] ^= 0xFF
            with self.assertRaises(mamba.MambaError):
                sa.set_state(bytes(bad))

    def test_errors_carry_messages(self):
        missing = os.path.join(self.tmp.name, "no_such_model.bin")
        with self.assertRaises(mamba.MambaError) as cm:
            mamba.Model(missing)
        e = cm.exception
        self.assertEqual(e.status, mamba.MambaError.ERR_IO)
        self.assertEqual(e.status_name, "MAMBA_ERR_IO")
        self.assertIn("no_such_model.bin", e.message)
        self.assertIn("no_such_model.bin", str(e))

        bad = os.path.join(self.tmp.name, "bad.bin")
        with open(bad, "wb") as f:
            f.write(b"Mamb")
        with self.assertRaises(mamba.MambaError) as cm:
            mamba.Model(bad)
        self.assertEqual(cm.exception.status, mamba.MambaError.ERR_FORMAT)
        self.assertIn("bad.bin", cm.exception.message)

        with mamba.Model(fixture("B.bin")) as model:
            s = model.session()
            with self.assertRaises(mamba.MambaError) as cm:
                s.forward(100000)
            self.assertEqual(cm.exception.status, mamba.MambaError.ERR_INVALID_ARGUMENT)
            self.assertIn("100000", cm.exception.message)
            with self.assertRaises(mamba.MambaError):
                s.forward_tokens([1, 2, -5])
            self.assertEqual(s.position, 0)
            # generate without a tokenizer, and the model file carries none
            with self.assertRaises(mamba.MambaError) as cm:
                list(s.generate("hello", max_tokens=3))
            self.assertIn("tokenizer", cm.exception.message)

    def test_close_is_safe(self):
        model = mamba.Model(fixture("B.bin"))
        s = model.session()
        model.close()
        model.close()
        # sessions outlive their model's handle
        self.assertEqual(len(s.forward(3)), 520)
        with self.assertRaises(mamba.MambaError):
            model.session()
        s.close()
        s.close()
        with self.assertRaises(mamba.MambaError) as cm:
            s.forward(1)
        self.assertIn("closed", cm.exception.message)
        # many objects dropped without close(): __del__ frees each once
        for _ in range(20):
            m = mamba.Model(fixture("B.bin"))
            m.session().forward(1)
            mamba.Sampler(m)
            del m
        gc.collect()


class TestNoNumpy(Base):
    def test_lists_without_numpy(self):
        with mamba.Model(fixture("B.gguf")) as model:
            prompt = read_i32(fixture("B", "prompt.i32"))
            self.assertFalse(mamba.use_numpy(False))
            s = model.session()
            a = s.forward_tokens(prompt)
            self.assertIsInstance(a, list)
            self.assertIsInstance(a[0], float)
            self.assertIsInstance(s.logits, list)
            b = model.session().forward(prompt[0])
            self.assertIsInstance(b, list)
            sampler = mamba.Sampler(model, temperature=0)
            self.assertEqual(sampler.sample(a), argmax(a))
            mamba.use_numpy(True)
            c = model.session().forward_tokens(prompt)
            if numpy is not None:
                self.assertIsInstance(c, numpy.ndarray)
                self.assertEqual(c.dtype, numpy.float32)
            self.assertEqual(max_abs_diff(a, c), 0.0)

    def test_env_var_disables_numpy(self):
        code = ("import mamba; m = mamba.Model(%r); l = m.session().forward(1); "
                "assert type(l) is list, type(l); print('ok')" % fixture("B.bin"))
        env = dict(os.environ, MAMBA_NO_NUMPY="1")
        env["PYTHONPATH"] = os.pathsep.join(
            [os.path.dirname(os.path.dirname(os.path.abspath(mamba.__file__)))]
            + [p for p in [os.environ.get("PYTHONPATH")] if p])
        env.setdefault("MAMBA_LIBRARY", mamba.library_path())
        out = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True)
        self.assertEqual(out.returncode, 0, out.stdout)
        self.assertIn("ok", out.stdout)


class TestTokenizerAndSampler(Base):
    def test_tokenizer(self):
        tok2 = self.tokenizer()
        with self.tokenizer() as tok:
            self.assertEqual(tok.vocab_size, 137)
            self.assertEqual(len(tok), 137)
            ids = tok.encode("the cat and the dog")
            self.assertTrue(all(isinstance(i, int) for i in ids))
            self.assertLess(len(ids), len("the cat and the dog"))  # merges applied
            self.assertEqual(tok.decode(ids), "the cat and the dog")
            self.assertEqual(tok.encode(b"the"), tok.encode("the"))
            self.assertEqual(tok.token_to_piece(ord("a")), b"a")
            self.assertEqual(tok.encode(""), [])
            long_text = "and " * 500
            self.assertEqual(tok.decode(tok.encode(long_text)), long_text)
            with self.assertRaises(mamba.MambaError):
                tok.token_to_piece(100000)
        self.assertTrue(tok.closed)
        with self.assertRaises(mamba.MambaError) as cm:
            tok.encode("x")
        self.assertIn("closed", cm.exception.message)
        missing = os.path.join(self.tmp.name, "no_such_tokenizer.bin")
        with self.assertRaises(mamba.MambaError) as cm:
            mamba.Tokenizer(missing)
        self.assertIn("no_such_tokenizer.bin", cm.exception.message)
        with mamba.Model(fixture("B.bin")) as model:
            with self.assertRaises(mamba.MambaError) as cm:
                list(model.session().generate("x", max_tokens=-1, tokenizer=tok2))
            self.assertIn("max_tokens", cm.exception.message)

    def test_hf_tokenizer_json(self):
        path = os.path.join(ROOT, "..", "shared", "data", "tokenizer", "gpt-neox-20b.json")
        self.assertTrue(os.path.exists(path), "../shared/data is missing: " + path)
        with mamba.Tokenizer(path) as tok:
            self.assertEqual(tok.vocab_size, 50281)
            self.assertEqual(tok.encode("Hello world"), [12092, 1533])
            text = "Naïve café — 日本語 😀\n  two spaces"
            self.assertEqual(tok.decode(tok.encode(text)), text)

    def test_sampler(self):
        with mamba.Model(fixture("B.gguf")) as model:
            logits = model.session().forward_tokens(read_i32(fixture("B", "prompt.i32")))
            greedy = mamba.Sampler(model.info.n_logits, temperature=0)
            self.assertEqual(greedy.sample(logits), argmax(list(logits)))
            greedy.accept(3)
            picks = []
            for _ in range(2):
                sm = mamba.Sampler(model, temperature=1.0, top_k=20, top_p=0.9, seed=42)
                picks.append([sm.sample(logits) for _ in range(10)])
            self.assertEqual(picks[0], picks[1])
            with self.assertRaises(mamba.MambaError):
                mamba.Sampler(model, temperature=-1)


class TestGenerate(Base):
    def gen(self, model, prompt, **kw):
        s = model.session()
        g = s.generate(prompt, tokenizer=self.tokenizer(), **kw)
        pieces = list(g)
        return s, g, pieces

    def test_generate_is_deterministic_at_temperature_0(self):
        with mamba.Model(fixture("A.bin")) as model:
            s1, g1, p1 = self.gen(model, "the", max_tokens=12, temperature=0)
            s2, g2, p2 = self.gen(model, "the", max_tokens=12, temperature=0)
            self.assertEqual(p1, p2)
            self.assertTrue(p1)
            self.assertTrue(all(isinstance(p, str) and p for p in p1))
            self.assertEqual(g1.stats.generated_tokens, 12)
            self.assertGreaterEqual(g1.stats.prompt_tokens, 1)
            self.assertEqual(s1.position, g1.stats.prompt_tokens + 12)
            # The same text from the low-level calls: greedy over the ids
            # that both the model and the tokenizer know (generate samples
            # only among those; the model has 1008 logits, the tokenizer 137).
            tok = self.tokenizer()
            s = model.session()
            logits = s.forward_tokens(tok.encode("the"))
            ids = []
            for _ in range(12):
                t = argmax(list(logits[:len(tok)]))
                ids.append(t)
                logits = s.forward(t)
            self.assertEqual(tok.decode(ids), "".join(p1))

    def test_generate_continues_and_stops_early(self):
        with mamba.Model(fixture("B.bin")) as model:
            tok = self.tokenizer()
            s = model.session()
            g = s.generate("and", max_tokens=5, temperature=0, tokenizer=tok, stop_at_eos=False)
            list(g)
            pos = s.position
            self.assertEqual(pos, g.stats.prompt_tokens + 5)
            g = s.generate("", max_tokens=5, temperature=0, tokenizer=tok, stop_at_eos=False)
            list(g)
            self.assertEqual(g.stats.prompt_tokens, 1)  # an empty prompt starts from end-of-text
            self.assertEqual(s.position, pos + 1 + 5)

            # Breaking out stops generating; the session is usable after.
            s.reset()
            g = s.generate("the", max_tokens=400, temperature=0.8, seed=1, tokenizer=tok, stop_at_eos=False)
            got = []
            for piece in g:
                got.append(piece)
                if len(got) == 2:
                    break
            g.close()
            self.assertEqual(len(got), 2)
            self.assertIsNone(g.stats)
            self.assertLess(s.position, 200)  # stopped well before max_tokens
            with self.assertRaises(StopIteration):
                next(g)
            s.forward(1)

            # While a generation is open the session refuses other calls.
            g = s.generate("the", max_tokens=50, tokenizer=tok)
            next(g)
            with self.assertRaises(mamba.MambaError) as cm:
                s.forward(1)
            self.assertIn("generating", cm.exception.message)
            with self.assertRaises(mamba.MambaError):
                list(s.generate("x", tokenizer=tok))
            del g  # abandoned: stopped by __del__
            gc.collect()
            s.forward(1)

            # Closing the session mid-generation is safe too.
            g = s.generate("the", max_tokens=50, tokenizer=tok)
            next(g)
            s.close()
            self.assertTrue(s.closed)

    def test_generate_seeded_sampling_repeats(self):
        with mamba.Model(fixture("A.gguf")) as model:
            kw = dict(max_tokens=20, temperature=0.9, top_p=0.95, top_k=40, repeat_penalty=1.1, seed=7)
            _, _, a = self.gen(model, "in the", **kw)
            _, _, b = self.gen(model, "in the", **kw)
            self.assertEqual(a, b)

    def test_generate_utf8_pieces(self):
        """Multi-byte characters come out as str pieces."""
        path = os.path.join(self.tmp.name, "high.bin")
        write_tokenizer(path, non_ascii=True)
        tok = mamba.Tokenizer(path)
        self.assertEqual(tok.decode(tok.encode("café 日本語")), "café 日本語")
        with mamba.Model(fixture("B.gguf")) as model:
            s = model.session()
            g = s.generate("café", max_tokens=500, temperature=1.5, seed=3, tokenizer=tok, stop_at_eos=False)
            pieces = list(g)
            self.assertEqual(g.stats.generated_tokens, 500)
            self.assertTrue(pieces)
            for p in pieces:
                self.assertIsInstance(p, str)
                self.assertTrue(p)
            self.assertTrue(any(ord(c) > 127 for p in pieces for c in p))

    def test_generate_bytes_prompt_and_eos(self):
        with mamba.Model(fixture("B.gguf")) as model:
            _, g, pieces = self.gen(model, b"the", max_tokens=30, temperature=0, stop_at_eos=False)
            self.assertEqual(g.stats.generated_tokens, 30)
            with self.assertRaises(mamba.MambaError):
                self.gen(model, "a\0b")


CLASSIFIER = os.path.join(ROOT, "tests", "fixtures", "classifier")
KWS_WAV = os.path.join(ROOT, "..", "shared", "data", "kws", "wav")  # optional data, as tests/c
MNIST_IMAGES = os.path.join(ROOT, "..", "shared", "data", "mnist", "t10k-images-idx3-ubyte.gz")


def tone_i16(n=16000, rate=16000, hz=440.0, amp=8000.0):
    import math
    return array.array("h", [int(amp * math.sin(2.0 * math.pi * hz * i / rate)) for i in range(n)])


class TestClassifyKws(Base):
    """The real keyword spotter (tests/fixtures/classifier/kws.gguf)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.model = mamba.Model(os.path.join(CLASSIFIER, "kws.gguf"))

    @classmethod
    def tearDownClass(cls):
        cls.model.close()
        super().tearDownClass()

    def test_info_and_labels(self):
        info = self.model.info
        self.assertEqual(info.kind, mamba.MODEL_CLASSIFIER)
        self.assertEqual(info.kind_name, "classifier")
        self.assertEqual(info.input_kind, mamba.INPUT_AUDIO)
        self.assertEqual((info.sample_rate, info.input_width, info.input_frames), (16000, 69, 135))
        labels = self.model.labels
        self.assertEqual(len(labels), info.n_classes)
        self.assertEqual(labels[0], "down")
        self.assertIn("yes", labels)
        with self.assertRaises(mamba.MambaError) as cm:
            self.model.class_label(info.n_classes)
        self.assertIn(str(info.n_classes), cm.exception.message)

    def test_samples_features_and_wav_agree(self):
        m = self.model
        s16 = tone_i16()
        f32 = [v / 32768.0 for v in s16]
        a = m.classify_audio(s16)  # array("h"): the int16 entry point
        b = m.classify_audio(f32)
        feats = m.audio_features(f32)
        self.assertEqual(len(feats), 135)
        self.assertEqual(len(feats[0]), 69)
        c = m.classify_features(feats)
        self.assertEqual(a.index, b.index)
        self.assertEqual(b.index, c.index)
        self.assertEqual(a.label, m.class_label(a.index))
        self.assertEqual(len(a.probs), m.info.n_classes)
        self.assertAlmostEqual(sum(float(p) for p in a.probs), 1.0, places=4)
        self.assertLess(max_abs_diff(a.probs, b.probs), 1e-6)
        self.assertEqual(len(c.logits), m.info.n_classes)
        if numpy is not None:
            d = m.classify_audio(numpy.array(s16, dtype=numpy.int16))
            self.assertEqual(d.index, a.index)
            self.assertIsInstance(d.probs, numpy.ndarray)
        # A batch of two items, the second shorter (padding ignored).
        batch = m.classify_features([feats, feats], lengths=[135, 135])
        self.assertEqual([r.index for r in batch], [c.index, c.index])

        # The same clip as a WAV file.
        import wave
        path = os.path.join(self.tmp.name, "tone.wav")
        w = wave.open(path, "wb")
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        data = array.array("h", s16)
        if sys.byteorder != "little":
            data.byteswap()
        w.writeframes(data.tobytes())
        w.close()
        e = m.classify_wav(path)
        self.assertEqual(e.index, a.index)
        self.assertLess(max_abs_diff(e.probs, a.probs), 1e-6)

    def test_errors(self):
        m = self.model
        missing = os.path.join(self.tmp.name, "missing.wav")
        with self.assertRaises(mamba.MambaError) as cm:
            m.classify_wav(missing)
        self.assertEqual(cm.exception.status, mamba.MambaError.ERR_IO)
        self.assertIn("missing.wav", cm.exception.message)
        with self.assertRaises(mamba.MambaError) as cm:
            m.classify_audio([0.0] * 16000, sample_rate=44100)
        self.assertEqual(cm.exception.status, mamba.MambaError.ERR_UNSUPPORTED)
        with self.assertRaises(ValueError):
            m.classify_features([[0.0] * 10])
        with mamba.Model(fixture("B.bin")) as lm:
            with self.assertRaises(mamba.MambaError) as cm:
                lm.classify_audio([0.0] * 16000, sample_rate=16000)
            self.assertIn("not a classifier", cm.exception.message)

    def test_recorded_keywords(self):
        ref = os.path.join(CLASSIFIER, "kws_ref_pred.txt")
        self.assertTrue(os.path.isdir(KWS_WAV), "KWS recordings not found at " + KWS_WAV)
        n = agree = correct = 0
        with open(ref) as f:
            for line in f:
                rel, want = line.split()
                got = self.model.classify_wav(os.path.join(KWS_WAV, rel))
                n += 1
                agree += got.index == int(want)
                correct += rel.split("/")[0] == got.label
        self.assertEqual(n, 100)
        self.assertGreaterEqual(agree, 99)
        self.assertGreaterEqual(correct, 97)


class TestClassifyImages(Base):
    def test_mnist_model(self):
        with mamba.Model(os.path.join(CLASSIFIER, "mnist.gguf")) as m:
            self.assertEqual(m.info.input_kind, mamba.INPUT_IMAGE)
            self.assertEqual(m.info.input_width, 784)
            self.assertEqual(m.class_label(7), "7")
            one = m.classify_images(bytes(784))
            self.assertIsInstance(one, mamba.Classification)
            two = m.classify_images([bytes(784), bytes([255]) * 784])
            self.assertEqual(len(two), 2)
            self.assertEqual(two[0].index, one.index)
            self.assertLess(max_abs_diff(two[0].probs, one.probs), 1e-6)
            with self.assertRaises(ValueError):
                m.classify_images(bytes(100))
            with self.assertRaises(mamba.MambaError):
                m.classify_wav(os.path.join(self.tmp.name, "x.wav"))

    def test_mnist_images_match_reference(self):
        self.assertTrue(os.path.exists(MNIST_IMAGES), "MNIST test images not found at " + MNIST_IMAGES)
        shape, data = mamba.read_idx(MNIST_IMAGES)
        self.assertEqual(shape, (10000, 28, 28))
        with open(os.path.join(CLASSIFIER, "mnist_ref_pred.u8"), "rb") as f:
            ref = f.read()
        n = 500
        with mamba.Model(os.path.join(CLASSIFIER, "mnist.gguf")) as m:
            got = m.classify_images(data[:n * 784])
        agree = sum(r.index == ref[i] for i, r in enumerate(got))
        self.assertGreaterEqual(agree, n - 1)


if __name__ == "__main__":
    unittest.main()

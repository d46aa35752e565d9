"""Makes tests/fixtures/audio/* for tests/audio.rs (raw little-endian float32 files).

Needs numpy, librosa, scipy and soundfile (pip install librosa soundfile); the Rust
tests read only the files this writes and ../shared. Run from the project root:

    python3 py/gen_audio_fixtures.py [../shared]

- extra_<name>.f32: 69 x 135 KWS features of data/kws/wav/extra/<name>.wav, by the
  same pipeline as shared/reference/ref_kws.py (the 100 keyword clips' features are
  read from the reference .npz itself).
- signal.f32: 8000 samples of a seeded synthetic signal (chirp + tone + noise +
  a silent stretch); mfcc_*.f32: librosa.feature.mfcc of it with other parameters
  (row-major n_mfcc x frames).
- delta_input.f32: 7 x 40 seeded random values; delta_w<W>_o<O>.f32:
  librosa.feature.delta(x, width=W, order=O) of it.
- sf_<name>.wav: small WAV files written by libsndfile (soundfile), in the layouts
  it produces (fmt sizes, fact/PEAK chunks, WAVE_FORMAT_EXTENSIBLE), and
  sf_<name>.f32 the interleaved samples soundfile reads back (dtype float32) for
  those the Rust reader must accept.
"""
import os, sys
import numpy as np, librosa, soundfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures', 'audio')
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared')
N_MFCC, N_FFT, HOP, N_MELS, SR, LEN = 23, 475, 119, 61, 16000, 16000


def save(name, a):
    a = np.ascontiguousarray(a, dtype='<f4')
    a.tofile(os.path.join(OUT, name))
    print(name, a.shape)


def kws_features(path):  # as ref_kws.py
    audio, sr = soundfile.read(path, dtype='int16')
    assert sr == SR, (path, sr)
    audio = audio.astype(np.float64)
    m = np.max(np.abs(audio))
    audio = audio / m if m > 0 else audio
    audio = audio.astype(np.float32)
    audio = np.pad(audio, (0, max(0, LEN - len(audio))))[:LEN]
    mf = librosa.feature.mfcc(y=audio, sr=SR, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
    return np.vstack([mf, librosa.feature.delta(mf), librosa.feature.delta(mf, order=2)]).astype(np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    print('librosa', librosa.__version__)
    for name in ['no_1000ms', 'noise_1000ms', 'silence_1000ms', 'yes_1000ms']:
        f = kws_features(os.path.join(SHARED, 'data', 'kws', 'wav', 'extra', name + '.wav'))
        assert f.shape == (69, 135)
        save(f'extra_{name}.f32', f)

    rng = np.random.default_rng(1234)
    t = np.arange(8000) / 16000.0
    y = 0.3 * np.sin(2 * np.pi * (200 + 3000 * t) * t) + 0.2 * np.sin(2 * np.pi * 1000 * t) + 0.05 * rng.standard_normal(8000)
    y[5000:6000] = 0.0
    y = y.astype(np.float32)
    save('signal.f32', y)
    save('mfcc_even.f32', librosa.feature.mfcc(y=y, sr=16000, n_mfcc=13, n_fft=512, hop_length=160, n_mels=40, fmin=20.0, fmax=7600.0))
    save('mfcc_kws_short.f32', librosa.feature.mfcc(y=y[:3001], sr=16000, n_mfcc=N_MFCC, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS))
    save('mfcc_8k.f32', librosa.feature.mfcc(y=y, sr=8000, n_mfcc=20, n_fft=256, hop_length=80, n_mels=32))

    x = rng.standard_normal((7, 40)).astype(np.float32)
    x[:, 10:20] += np.linspace(0, 5, 10, dtype=np.float32)
    save('delta_input.f32', x)
    for w, o in [(3, 1), (5, 1), (5, 2), (9, 1), (9, 2), (9, 3), (11, 4), (39, 2)]:
        save(f'delta_w{w}_o{o}.f32', librosa.feature.delta(x, width=w, order=o))

    wav_cases = [
        ('pcm16', 16000, 1, 'WAV', 'PCM_16'),
        ('float', 16000, 1, 'WAV', 'FLOAT'),
        ('wavex_pcm16', 16000, 1, 'WAVEX', 'PCM_16'),
        ('wavex_float_stereo', 44100, 2, 'WAVEX', 'FLOAT'),
        ('stereo_44k', 44100, 2, 'WAV', 'PCM_16'),
        ('pcm24', 16000, 1, 'WAV', 'PCM_24'),
        ('u8', 16000, 1, 'WAV', 'PCM_U8'),
        ('double', 16000, 1, 'WAV', 'DOUBLE'),
        ('ulaw', 16000, 1, 'WAV', 'ULAW'),
    ]
    for name, sr, ch, fmt, sub in wav_cases:
        data = (0.9 * np.sin(np.arange(101 * ch) * 0.37)).reshape(101, ch).astype(np.float32)
        if ch == 1:
            data = data[:, 0]
        path = os.path.join(OUT, f'sf_{name}.wav')
        soundfile.write(path, data, sr, format=fmt, subtype=sub)
        print(os.path.basename(path), sr, ch, fmt, sub)
        if sub in ('PCM_16', 'FLOAT'):
            back, _ = soundfile.read(path, dtype='float32', always_2d=False)
            save(f'sf_{name}.f32', back.reshape(-1))


if __name__ == '__main__':
    main()

//! MFCC features identical (to float32 rounding) to `librosa.feature.mfcc`, and
//! `librosa.feature.delta`.
//!
//! The pipeline of [`Mfcc::compute`], with librosa 0.10/0.11 defaults:
//! 1. STFT with `center=True`: the signal is padded with `n_fft / 2` zeros on each
//!    side (`pad_mode="constant"`, the default of the feature functions), frames of
//!    `n_fft` samples every `hop_length`, periodic Hann window of length `n_fft`;
//! 2. power spectrogram `|X|^2` over the `n_fft / 2 + 1` bins;
//! 3. Slaney-scale mel filterbank (`htk=False`) with Slaney area normalization;
//! 4. `power_to_db(ref=1.0, amin=1e-10, top_db=80)`: `10 log10(max(amin, S))`,
//!    then clipped below at (maximum over the WHOLE spectrogram) - `top_db`;
//! 5. orthonormal DCT-II along the mel axis, first `n_mfcc` coefficients.
//!
//! Layout: every matrix here is row-major with one row per coefficient/feature
//! and one column per frame (`data[row * n_frames + frame]`), like librosa's
//! `(n_mfcc, n_frames)` arrays. [`transpose`] gives frames x features.

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use super::wav::{read_mono_16k_file, read_wav, require_mono_16k};
use crate::bail;
use crate::error::{Error, Result};

/// Parameters of the MFCC front end (the arguments of `librosa.feature.mfcc`).
#[derive(Debug, Clone, PartialEq)]
pub struct MfccParams {
    /// Sample rate of the input, Hz.
    pub sample_rate: u32,
    /// Number of cepstral coefficients kept (rows of the output).
    pub n_mfcc: usize,
    /// FFT size = window length (any length; odd is fine).
    pub n_fft: usize,
    /// Samples between frame starts.
    pub hop_length: usize,
    /// Number of mel bands.
    pub n_mels: usize,
    /// Lowest mel band edge, Hz (librosa default 0).
    pub fmin: f64,
    /// Highest mel band edge, Hz (librosa default `sample_rate / 2`).
    pub fmax: f64,
    /// Floor of the power before the log (librosa default 1e-10).
    pub amin: f32,
    /// Dynamic range kept below the spectrogram's maximum, dB (librosa default
    /// `Some(80.0)`; `None` disables the clip).
    pub top_db: Option<f32>,
}

impl MfccParams {
    /// librosa defaults for the given sample rate and sizes.
    pub fn new(
        sample_rate: u32,
        n_mfcc: usize,
        n_fft: usize,
        hop_length: usize,
        n_mels: usize,
    ) -> Self {
        MfccParams {
            sample_rate,
            n_mfcc,
            n_fft,
            hop_length,
            n_mels,
            fmin: 0.0,
            fmax: sample_rate as f64 / 2.0,
            amin: 1e-10,
            top_db: Some(80.0),
        }
    }

    /// The keyword spotter's front end (data/README.md, kws/): 16 kHz, 23 MFCCs,
    /// `n_fft` 475, hop 119, 61 mel bands; 16,000 samples give 135 frames.
    pub fn kws_default() -> Self {
        Self::new(16000, 23, 475, 119, 61)
    }

    /// Number of frames that `n_samples` samples give (centered frames); 0 for no samples.
    pub fn n_frames(&self, n_samples: usize) -> usize {
        let padded = n_samples + 2 * (self.n_fft / 2);
        if n_samples == 0 || self.hop_length == 0 || padded < self.n_fft {
            0
        } else {
            1 + (padded - self.n_fft) / self.hop_length
        }
    }

    fn validate(&self) -> Result<()> {
        if self.sample_rate == 0 {
            bail!(InvalidArgument, "MFCC: sample rate 0");
        }
        if self.n_fft < 2 || self.n_fft > 1 << 20 {
            bail!(
                InvalidArgument,
                "MFCC: n_fft {} out of range 2..=1048576",
                self.n_fft
            );
        }
        if self.hop_length == 0 {
            bail!(InvalidArgument, "MFCC: hop_length 0");
        }
        if self.n_mels == 0 || self.n_mels > 4096 {
            bail!(
                InvalidArgument,
                "MFCC: n_mels {} out of range 1..=4096",
                self.n_mels
            );
        }
        if self.n_mfcc == 0 || self.n_mfcc > self.n_mels {
            bail!(
                InvalidArgument,
                "MFCC: n_mfcc {} must be in 1..={} (n_mels)",
                self.n_mfcc,
                self.n_mels
            );
        }
        let nyquist = self.sample_rate as f64 / 2.0;
        if !(self.fmin >= 0.0 && self.fmin < self.fmax && self.fmax <= nyquist) {
            bail!(
                InvalidArgument,
                "MFCC: need 0 <= fmin ({}) < fmax ({}) <= sample_rate/2 ({nyquist})",
                self.fmin,
                self.fmax
            );
        }
        if !(self.amin > 0.0 && self.amin.is_finite()) {
            bail!(InvalidArgument, "MFCC: amin must be positive");
        }
        if let Some(t) = self.top_db {
            if t.is_nan() || t < 0.0 {
                bail!(InvalidArgument, "MFCC: top_db must be non-negative");
            }
        }
        Ok(())
    }
}

/// Slaney mel scale (librosa `hz_to_mel(htk=False)`).
fn hz_to_mel(f: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

/// Inverse of [`hz_to_mel`] (librosa `mel_to_hz(htk=False)`).
fn mel_to_hz(m: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        f_sp * m
    }
}

/// `numpy.linspace(start, stop, num)` with its rounding.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// One mel band: the first FFT bin it touches and its (nonzero-range) weights.
#[derive(Debug, Clone)]
struct MelBand {
    start: usize,
    weights: Vec<f32>,
}

/// The librosa Slaney mel filterbank, rounded to f32 as librosa stores it.
fn mel_filterbank(p: &MfccParams) -> Vec<MelBand> {
    let n_bins = p.n_fft / 2 + 1;
    let sr = p.sample_rate as f64;
    // np.fft.rfftfreq(n_fft, d=1/sr)
    let val = 1.0 / (p.n_fft as f64 * (1.0 / sr));
    let fftfreqs: Vec<f64> = (0..n_bins).map(|k| k as f64 * val).collect();
    let mel_f: Vec<f64> = linspace(hz_to_mel(p.fmin), hz_to_mel(p.fmax), p.n_mels + 2)
        .into_iter()
        .map(mel_to_hz)
        .collect();
    let mut bands = Vec::with_capacity(p.n_mels);
    for i in 0..p.n_mels {
        let fdiff_lo = mel_f[i + 1] - mel_f[i];
        let fdiff_hi = mel_f[i + 2] - mel_f[i + 1];
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        let row: Vec<f32> = fftfreqs
            .iter()
            .map(|&f| {
                let lower = -(mel_f[i] - f) / fdiff_lo;
                let upper = (mel_f[i + 2] - f) / fdiff_hi;
                let w = 0f64.max(lower.min(upper)) as f32; // weights[i] = ... (float32)
                (w as f64 * enorm) as f32 // weights *= enorm (in place, float32)
            })
            .collect();
        let first = row.iter().position(|&w| w != 0.0);
        let band = match first {
            None => MelBand {
                start: 0,
                weights: Vec::new(),
            }, // an empty band (librosa warns)
            Some(s) => {
                let e = row.iter().rposition(|&w| w != 0.0).unwrap_or(s) + 1;
                MelBand {
                    start: s,
                    weights: row[s..e].to_vec(),
                }
            }
        };
        bands.push(band);
    }
    bands
}

/// A prepared MFCC front end: window, mel filterbank, DCT matrix and FFT plan are
/// computed once in [`Mfcc::new`]. `Mfcc` is `Send + Sync`; [`Mfcc::compute`]
/// takes `&self` and allocates only its output and a few per-call buffers.
pub struct Mfcc {
    params: MfccParams,
    window: Vec<f32>,
    fft: Arc<dyn Fft<f32>>,
    fft_scratch_len: usize,
    bands: Vec<MelBand>,
    /// n_mfcc x n_mels, row-major.
    dct: Vec<f32>,
}

impl std::fmt::Debug for Mfcc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mfcc")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Mfcc {
    /// Prepares the front end; fails on parameters librosa would reject.
    pub fn new(params: MfccParams) -> Result<Self> {
        params.validate()?;
        let n = params.n_fft;
        // scipy.signal.get_window("hann", n, fftbins=True): 0.5 + 0.5 cos(fac),
        // fac = linspace(-pi, pi, n + 1)[:n].
        let window: Vec<f32> = linspace(-std::f64::consts::PI, std::f64::consts::PI, n + 1)[..n]
            .iter()
            .map(|&fac| (0.5 + 0.5 * fac.cos()) as f32)
            .collect();
        let fft = FftPlanner::<f32>::new().plan_fft_forward(n);
        let fft_scratch_len = fft.get_inplace_scratch_len();
        let bands = mel_filterbank(&params);
        // scipy.fft.dct(type=2, norm="ortho") as a matrix.
        let m = params.n_mels;
        let mut dct = vec![0f32; params.n_mfcc * m];
        for k in 0..params.n_mfcc {
            let scale = if k == 0 {
                (1.0 / m as f64).sqrt()
            } else {
                (2.0 / m as f64).sqrt()
            };
            for j in 0..m {
                let angle = std::f64::consts::PI * k as f64 * (2 * j + 1) as f64 / (2 * m) as f64;
                dct[k * m + j] = (scale * angle.cos()) as f32;
            }
        }
        Ok(Mfcc {
            params,
            window,
            fft,
            fft_scratch_len,
            bands,
            dct,
        })
    }

    pub fn params(&self) -> &MfccParams {
        &self.params
    }

    /// Number of frames that `n_samples` samples give.
    pub fn n_frames(&self, n_samples: usize) -> usize {
        self.params.n_frames(n_samples)
    }

    /// Fills `frame` (length n_fft) with windowed frame `t` of the zero-padded signal.
    fn windowed_frame(&self, y: &[f32], t: usize, frame: &mut [f32]) {
        let n = self.params.n_fft;
        let pad = n / 2;
        // Frame t covers padded[t*hop .. t*hop+n], padded[i] = y[i - pad].
        let start = t * self.params.hop_length; // index into padded
        let lo = pad.saturating_sub(start).min(n); // first n with a real sample
        let hi = (pad + y.len()).saturating_sub(start).min(n).max(lo);
        frame[..lo].fill(0.0);
        frame[hi..].fill(0.0);
        let ys = &y[start + lo - pad..start + hi - pad];
        for ((f, &s), &w) in frame[lo..hi].iter_mut().zip(ys).zip(&self.window[lo..hi]) {
            *f = s * w;
        }
    }

    /// The power mel spectrogram, n_mels x n_frames (`librosa.feature.melspectrogram`).
    pub fn mel_power(&self, y: &[f32]) -> (Vec<f32>, usize) {
        let n = self.params.n_fft;
        let n_bins = n / 2 + 1;
        let n_frames = self.n_frames(y.len());
        let mut mel = vec![0f32; self.params.n_mels * n_frames];
        let mut buf = vec![Complex::<f32>::new(0.0, 0.0); n];
        let mut scratch = vec![Complex::<f32>::new(0.0, 0.0); self.fft_scratch_len];
        let mut fa = vec![0f32; n];
        let mut fb = vec![0f32; n];
        let mut pa = vec![0f32; n_bins];
        let mut pb = vec![0f32; n_bins];
        // Two real frames per complex FFT: z = a + i b, then
        // A[k] = (Z[k] + conj Z[n-k]) / 2 and B[k] = (Z[k] - conj Z[n-k]) / 2i.
        let mut t = 0;
        while t < n_frames {
            let pair = t + 1 < n_frames;
            self.windowed_frame(y, t, &mut fa);
            if pair {
                self.windowed_frame(y, t + 1, &mut fb);
            } else {
                fb.fill(0.0);
            }
            for ((z, &a), &b) in buf.iter_mut().zip(&fa).zip(&fb) {
                *z = Complex::new(a, b);
            }
            self.fft.process_with_scratch(&mut buf, &mut scratch);
            for k in 0..n_bins {
                let z = buf[k];
                let c = buf[if k == 0 { 0 } else { n - k }].conj();
                pa[k] = (z + c).norm_sqr() * 0.25;
                pb[k] = (z - c).norm_sqr() * 0.25;
            }
            for (m, band) in self.bands.iter().enumerate() {
                let row = &mut mel[m * n_frames..(m + 1) * n_frames];
                let sa = &pa[band.start..band.start + band.weights.len()];
                row[t] = band.weights.iter().zip(sa).map(|(w, p)| w * p).sum();
                if pair {
                    let sb = &pb[band.start..band.start + band.weights.len()];
                    row[t + 1] = band.weights.iter().zip(sb).map(|(w, p)| w * p).sum();
                }
            }
            t += 2;
        }
        (mel, n_frames)
    }

    /// MFCCs of `y` (no normalization or padding of the signal itself):
    /// returns (`n_mfcc` x `n_frames` row-major, `n_frames`). An empty `y`
    /// gives no frames.
    pub fn compute(&self, y: &[f32]) -> (Vec<f32>, usize) {
        let (mut spec, n_frames) = self.mel_power(y);
        let p = &self.params;
        let mut max = f32::NEG_INFINITY;
        for v in spec.iter_mut() {
            *v = 10.0 * v.max(p.amin).log10();
            max = max.max(*v);
        }
        if let Some(top_db) = p.top_db {
            let floor = max - top_db;
            for v in spec.iter_mut() {
                *v = v.max(floor);
            }
        }
        let m = p.n_mels;
        let mut out = vec![0f32; p.n_mfcc * n_frames];
        for k in 0..p.n_mfcc {
            let dst = &mut out[k * n_frames..(k + 1) * n_frames];
            for (j, &c) in self.dct[k * m..(k + 1) * m].iter().enumerate() {
                let src = &spec[j * n_frames..(j + 1) * n_frames];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d += c * s;
                }
            }
        }
        (out, n_frames)
    }
}

/// A Savitzky-Golay derivative filter with scipy's `mode="interp"` edges, as
/// `librosa.feature.delta` uses it (`polyorder = order`, `deriv = order`).
#[derive(Debug, Clone)]
pub struct DeltaFilter {
    width: usize,
    /// `weights[u * width + t]`: contribution of window sample `t` to the
    /// derivative of the least-squares polynomial at window position `u`.
    weights: Vec<f64>,
}

impl DeltaFilter {
    /// `width` odd and >= 3, `1 <= order < width` (librosa/scipy's conditions).
    pub fn new(order: usize, width: usize) -> Result<Self> {
        if order == 0 {
            bail!(InvalidArgument, "delta: order must be a positive integer");
        }
        Self::savgol(width, order, order)
    }

    /// General form: derivative `deriv` of a least-squares polynomial of degree
    /// `polyorder` fitted over `width` samples (scipy `savgol_filter`, delta 1).
    pub fn savgol(width: usize, polyorder: usize, deriv: usize) -> Result<Self> {
        if width < 3 || width.is_multiple_of(2) || width > 1001 {
            bail!(
                InvalidArgument,
                "delta: width must be an odd integer >= 3 (got {width})"
            );
        }
        if polyorder >= width {
            bail!(
                InvalidArgument,
                "delta: order {polyorder} must be less than width {width}"
            );
        }
        if polyorder > 12 {
            bail!(
                Unsupported,
                "delta: polynomial order {polyorder} is above 12 (numerically unsound)"
            );
        }
        let half = (width / 2) as f64;
        let np = polyorder + 1;
        // Vandermonde A[t][j] = u_t^j with u_t = t - half (centered for conditioning).
        let a: Vec<f64> = (0..width)
            .flat_map(|t| (0..np).map(move |j| (t as f64 - half).powi(j as i32)))
            .collect();
        // G = A^T A, solve G C = A^T  ->  C = (A^T A)^-1 A^T  (np x width).
        let mut g = vec![0f64; np * np];
        for r in 0..np {
            for c in 0..np {
                g[r * np + c] = (0..width).map(|t| a[t * np + r] * a[t * np + c]).sum();
            }
        }
        let mut cm: Vec<f64> = (0..np)
            .flat_map(|j| (0..width).map(move |t| (j, t)))
            .map(|(j, t)| a[t * np + j])
            .collect();
        // Gauss-Jordan with partial pivoting on [G | C].
        for col in 0..np {
            let piv = (col..np)
                .max_by(|&x, &y| g[x * np + col].abs().total_cmp(&g[y * np + col].abs()))
                .unwrap_or(col);
            if g[piv * np + col].abs() < 1e-300 {
                return Err(Error::invalid("delta: singular least-squares system"));
            }
            if piv != col {
                for c in 0..np {
                    g.swap(piv * np + c, col * np + c);
                }
                for t in 0..width {
                    cm.swap(piv * width + t, col * width + t);
                }
            }
            let d = g[col * np + col];
            for c in 0..np {
                g[col * np + c] /= d;
            }
            for t in 0..width {
                cm[col * width + t] /= d;
            }
            for r in 0..np {
                if r != col {
                    let f = g[r * np + col];
                    if f != 0.0 {
                        for c in 0..np {
                            g[r * np + c] -= f * g[col * np + c];
                        }
                        for t in 0..width {
                            cm[r * width + t] -= f * cm[col * width + t];
                        }
                    }
                }
            }
        }
        // d^deriv/du^deriv of sum_j c_j u^j = sum_{j>=deriv} c_j j!/(j-deriv)! u^(j-deriv).
        let mut weights = vec![0f64; width * width];
        for u_idx in 0..width {
            let u = u_idx as f64 - half;
            for j in deriv..np {
                let falling: f64 = ((j - deriv + 1)..=j).map(|x| x as f64).product();
                let coef = falling * u.powi((j - deriv) as i32);
                for t in 0..width {
                    weights[u_idx * width + t] += coef * cm[j * width + t];
                }
            }
        }
        Ok(DeltaFilter { width, weights })
    }

    /// Filters each row of `data` (`rows` x `cols`, row-major) along the columns.
    /// Needs `cols >= width` (scipy's condition for `mode="interp"`).
    pub fn apply(&self, data: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>> {
        let mut out = vec![0f32; data.len()];
        self.apply_into(data, rows, cols, &mut out)?;
        Ok(out)
    }

    /// As [`DeltaFilter::apply`], writing into `out` (same size as `data`).
    pub fn apply_into(
        &self,
        data: &[f32],
        rows: usize,
        cols: usize,
        out: &mut [f32],
    ) -> Result<()> {
        let w = self.width;
        let half = w / 2;
        if rows.checked_mul(cols) != Some(data.len()) || out.len() != data.len() {
            bail!(
                InvalidArgument,
                "delta: {} values for {rows} x {cols}",
                data.len()
            );
        }
        if cols < w {
            bail!(InvalidArgument, "delta: width {w} exceeds the {cols} frames (mode=\"interp\" needs width <= frames)");
        }
        let center = &self.weights[half * w..(half + 1) * w];
        for r in 0..rows {
            let x = &data[r * cols..(r + 1) * cols];
            let y = &mut out[r * cols..(r + 1) * cols];
            for i in half..cols - half {
                let win = &x[i - half..i + half + 1];
                y[i] = center
                    .iter()
                    .zip(win)
                    .map(|(&c, &v)| c * v as f64)
                    .sum::<f64>() as f32;
            }
            // Edges: the polynomial fitted to the first / last `width` samples.
            for u in 0..half {
                let wr = &self.weights[u * w..(u + 1) * w];
                y[u] = wr
                    .iter()
                    .zip(&x[..w])
                    .map(|(&c, &v)| c * v as f64)
                    .sum::<f64>() as f32;
                let u2 = w - half + u;
                let wr = &self.weights[u2 * w..(u2 + 1) * w];
                y[cols - half + u] = wr
                    .iter()
                    .zip(&x[cols - w..])
                    .map(|(&c, &v)| c * v as f64)
                    .sum::<f64>() as f32;
            }
        }
        Ok(())
    }
}

/// `librosa.feature.delta(data, width=width, order=order, axis=-1, mode="interp")`
/// on a `rows` x `cols` row-major matrix (rows = features, cols = frames).
pub fn delta(
    data: &[f32],
    rows: usize,
    cols: usize,
    order: usize,
    width: usize,
) -> Result<Vec<f32>> {
    DeltaFilter::new(order, width)?.apply(data, rows, cols)
}

/// Row-major `rows` x `cols` to row-major `cols` x `rows` (e.g. the 69 x 135
/// features to the 135 x 69 frames x features a model's input projection takes).
///
/// # Panics
/// If `data.len() != rows * cols`.
pub fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    assert_eq!(
        data.len(),
        rows * cols,
        "transpose: {} values for {rows} x {cols}",
        data.len()
    );
    let mut out = vec![0f32; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// The keyword spotter's signal conditioning (data/README.md, kws/): divide by
/// the largest |sample| when it is not 0 (computed in f64, as the reference
/// does), then zero-pad or cut to `len` samples.
pub fn kws_normalize(samples: &[f32], len: usize) -> Vec<f32> {
    let m = samples.iter().fold(0f32, |m, &s| m.max(s.abs())) as f64;
    let mut out = vec![0f32; len];
    let n = samples.len().min(len);
    if m > 0.0 {
        for (o, &s) in out.iter_mut().zip(&samples[..n]) {
            *o = (s as f64 / m) as f32;
        }
    } else {
        out[..n].copy_from_slice(&samples[..n]);
    }
    out
}

/// A prepared keyword-spotter front end: MFCC plus first- and second-order
/// deltas (width 9), stacked feature-major.
#[derive(Debug)]
pub struct KwsFrontend {
    mfcc: Mfcc,
    d1: DeltaFilter,
    d2: DeltaFilter,
    clip_len: usize,
}

impl KwsFrontend {
    /// The clip length is one second at `params.sample_rate` (16,000 samples
    /// for [`MfccParams::kws_default`], which gives 69 x 135 features).
    pub fn new(params: MfccParams) -> Result<Self> {
        let clip_len = params.sample_rate as usize;
        let mfcc = Mfcc::new(params)?;
        if mfcc.n_frames(clip_len) < 9 {
            bail!(
                InvalidArgument,
                "KWS front end: fewer than 9 frames per clip, too few for delta"
            );
        }
        Ok(KwsFrontend {
            mfcc,
            d1: DeltaFilter::new(1, 9)?,
            d2: DeltaFilter::new(2, 9)?,
            clip_len,
        })
    }

    pub fn mfcc(&self) -> &Mfcc {
        &self.mfcc
    }

    /// Samples per clip after padding/cutting.
    pub fn clip_len(&self) -> usize {
        self.clip_len
    }

    /// Rows of the output: 3 x n_mfcc (69).
    pub fn n_features(&self) -> usize {
        3 * self.mfcc.params.n_mfcc
    }

    /// Columns of the output (135).
    pub fn n_frames(&self) -> usize {
        self.mfcc.n_frames(self.clip_len)
    }

    /// Features of one clip of samples in [-1, 1] (any length; see
    /// [`kws_normalize`]): `n_features()` x `n_frames()` row-major, rows
    /// 0..n_mfcc the MFCCs, then their deltas, then the delta-deltas, one column
    /// per frame, exactly the reference's `np.vstack([mfcc, delta, delta2])`.
    pub fn features(&self, samples: &[f32]) -> Vec<f32> {
        let y = kws_normalize(samples, self.clip_len);
        let (mf, n_frames) = self.mfcc.compute(&y);
        let n_mfcc = self.mfcc.params.n_mfcc;
        let block = n_mfcc * n_frames;
        let mut out = vec![0f32; 3 * block];
        out[..block].copy_from_slice(&mf);
        // n_frames >= 9 was checked in new(), so these cannot fail.
        let (d1, rest) = out[block..].split_at_mut(block);
        self.d1
            .apply_into(&mf, n_mfcc, n_frames, d1)
            .expect("delta shape checked in new");
        self.d2
            .apply_into(&mf, n_mfcc, n_frames, rest)
            .expect("delta shape checked in new");
        out
    }

    /// Features of a WAV file held in memory: [`read_wav`], [`require_mono_16k`],
    /// then [`KwsFrontend::features`].
    pub fn wav_features(&self, bytes: &[u8]) -> Result<Vec<f32>> {
        let wav = read_wav(bytes)?;
        require_mono_16k(&wav)?;
        Ok(self.features(&wav.samples))
    }

    /// Features of a WAV file; errors start with the path.
    pub fn file_features(&self, path: &str) -> Result<Vec<f32>> {
        Ok(self.features(&read_mono_16k_file(path)?))
    }
}

/// One-shot [`KwsFrontend::features`] (prepares the front end on each call; keep
/// a [`KwsFrontend`] for repeated use). Returns 69 x 135 row-major for
/// [`MfccParams::kws_default`].
pub fn kws_features(samples: &[f32], params: &MfccParams) -> Result<Vec<f32>> {
    Ok(KwsFrontend::new(params.clone())?.features(samples))
}

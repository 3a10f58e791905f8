"""Reference dMel encoder in plain numpy (ARCHITECTURE.md section 5, docs/media.md).

Written from the textbook formulas, independently of the TypeScript encoder in
packages/media, so the shared vectors in testdata/dmel/ check one against the
other. Whole-signal only; speed is not a goal here.

Conventions (the same as docs/media.md):
- 16 kHz mono float samples (int16 / 32768 for PCM16 input).
- Frame i covers samples [200*i - 600, 200*i + 200): zeros before t = 0, so
  the encoder is causal and a frame is complete once its 200-sample hop is in.
  A signal of n samples yields ceil(n / 200) frames; a partial last hop is
  zero-padded.
- Periodic Hann window of 800 samples, zero-padded to n_fft = 1024, |rfft|.
- 80 Slaney mel filters (Slaney mel scale, area normalisation), 80-7600 Hz,
  applied to the magnitude spectrum.
- log10(max(energy, 1e-10)), clamped to [-7, 2].
- code = floor((v + 7) * 15 / 9 + 0.5): nearest of 16 evenly spaced centres.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
WINDOW = 800
HOP = 200
N_FFT = 1024
CHANNELS = 80
FMIN_HZ = 80.0
FMAX_HZ = 7600.0
LOG_MIN = -7.0
LOG_MAX = 2.0
LOG_FLOOR = 1e-10
LEVELS = 16


def hz_to_mel(hz):
    """Slaney mel scale: 3 mel per 200 Hz below 1 kHz, then 27 mel per factor 6.4."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    linear = hz / f_sp
    log = min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log, linear)


def mel_to_hz(mel):
    """Inverse of hz_to_mel."""
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    linear = mel * f_sp
    log = min_log_hz * np.exp(logstep * (mel - min_log_mel))
    return np.where(mel >= min_log_mel, log, linear)


def mel_filterbank(
    sample_rate: int = SAMPLE_RATE,
    n_fft: int = N_FFT,
    n_mels: int = CHANNELS,
    fmin: float = FMIN_HZ,
    fmax: float = FMAX_HZ,
) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, each with unit area in Hz (Slaney norm)."""
    bin_hz = np.arange(n_fft // 2 + 1, dtype=np.float64) * sample_rate / n_fft
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    bank = np.zeros((n_mels, bin_hz.size), dtype=np.float64)
    for m in range(n_mels):
        left, centre, right = edges_hz[m], edges_hz[m + 1], edges_hz[m + 2]
        rising = (bin_hz - left) / (centre - left)
        falling = (right - bin_hz) / (right - centre)
        bank[m] = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (right - left))
    return bank


def hann_periodic(length: int = WINDOW) -> np.ndarray:
    n = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)


def frame_signal(samples: np.ndarray) -> np.ndarray:
    """(frames, 800) windows: frame i = samples[200 i - 600 : 200 i + 200], zero outside the signal."""
    x = np.asarray(samples, dtype=np.float64)
    frames = -(-x.size // HOP)
    context = WINDOW - HOP
    padded = np.zeros(context + frames * HOP, dtype=np.float64)
    padded[context : context + x.size] = x
    index = np.arange(frames)[:, None] * HOP + np.arange(WINDOW)[None, :]
    return padded[index]


def log_mel(samples: np.ndarray) -> np.ndarray:
    """(frames, 80) log10 mel energies of a 16 kHz mono signal, clamped to [-7, 2]."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"dMel needs mono 1-D samples, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        bad = int(np.flatnonzero(~np.isfinite(x))[0])
        raise ValueError(f"sample {bad} is {x[bad]}; audio samples must be finite")
    frames = frame_signal(x) * hann_periodic()[None, :]
    magnitude = np.abs(np.fft.rfft(frames, n=N_FFT, axis=1))
    energy = magnitude @ mel_filterbank().T
    return np.clip(np.log10(np.maximum(energy, LOG_FLOOR)), LOG_MIN, LOG_MAX)


def quantize(values: np.ndarray) -> np.ndarray:
    """Nearest of 16 centres evenly spread over [-7, 2] (ties go up), as uint8 codes."""
    v = np.clip(np.asarray(values, dtype=np.float64), LOG_MIN, LOG_MAX)
    return np.floor((v - LOG_MIN) * (LEVELS - 1) / (LOG_MAX - LOG_MIN) + 0.5).astype(np.uint8)


def dmel_codes(samples: np.ndarray) -> np.ndarray:
    """(frames, 80) uint8 dMel codes of a 16 kHz mono signal."""
    return quantize(log_mel(samples))


def boundary_distance(values: np.ndarray) -> float:
    """Smallest distance (log10 units) from any unclamped value to a quantiser decision boundary."""
    v = np.asarray(values, dtype=np.float64)
    step = (LOG_MAX - LOG_MIN) / (LEVELS - 1)
    inner = v[(v > LOG_MIN) & (v < LOG_MAX)]
    if inner.size == 0:
        return float("inf")
    position = (inner - LOG_MIN) / step + 0.5
    return float(np.min(np.abs(position - np.round(position))) * step)

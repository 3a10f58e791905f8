"""Streaming mel vocoder for the reference engine: log10 mel frames in the dMel
convention (dmel_reference.py) to 16 kHz mono PCM, one 200-sample hop per frame.

How: the inverse of dmel_reference's analysis. Magnitudes come from the Slaney
filterbank's pseudo-inverse (clamped non-negative), phases from real-time
iterative spectrogram inversion (RTISI, Beauregard, Bouchard & Wyse 2005): each
new frame runs a few Griffin-Lim iterations against the overlap-added signal of
the frames before it (kept fixed), its phase warm-started from the previous
frame's phase advanced by one hop. A frame depends only on the frames before it,
so any split of a frame sequence into blocks gives the same samples as one call.

Timing: frame i is analysed over samples [200 i - 600, 200 i + 200); the
vocoder emits samples only once every frame overlapping them is in, so its
output stream is the analysed signal delayed by STREAM_DELAY_SAMPLES (600, i.e.
37.5 ms), starting with a 37.5 ms fade-in, and yields exactly 200 samples per
frame. The last 600 samples of a stream sit in the overlap state until more
frames come; flush() returns them when an utterance ends, reset() drops them (a
rewind or a close).

Limits: the filterbank drops everything below 80 Hz and above 7600 Hz and
blurs each band to its filter's width; the phases are estimated, so voices
sound phasey/robotic even from a perfect mel. It checks the pipeline, not the
voice: a random-weight model's mel frames are noise, and so is their audio. A
trained neural vocoder (or a head that predicts waveforms) would replace this
module behind the same push()/reset() surface.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from microturn_sglang import dmel_reference as dmel

SAMPLE_RATE_HZ = dmel.SAMPLE_RATE
HOP_SAMPLES = dmel.HOP
STREAM_DELAY_SAMPLES = dmel.WINDOW - dmel.HOP
DEFAULT_ITERATIONS = 4
NNLS_ITERATIONS = 4
_NNLS_FLOOR = 1e-3
_BINS = dmel.N_FFT // 2 + 1
_OVERLAP = dmel.WINDOW // dmel.HOP  # frames covering one sample in steady state (4)
_EPS = 1e-8


def _window_square_sums(window: torch.Tensor) -> torch.Tensor:
    """sum of w^2 over the frames that overlap each sample of the newest frame,
    counting only it and the frames before it (the ones RTISI knows)."""
    w2 = window * window
    total = torch.zeros(dmel.WINDOW, dtype=window.dtype)
    for k in range(_OVERLAP):
        shift = k * dmel.HOP
        total[: dmel.WINDOW - shift] += w2[shift:]
    return total


class MelInverse:
    """The constants of the inversion, shared by every stream (read-only)."""

    def __init__(self, dtype: torch.dtype = torch.float32):
        bank = dmel.mel_filterbank()
        self.bank = torch.from_numpy(bank).to(dtype)  # [80, 513]
        self.pinv = torch.from_numpy(np.linalg.pinv(bank).T.copy()).to(dtype)  # [80, 513]
        self.window = torch.from_numpy(dmel.hann_periodic()).to(dtype)
        known = _window_square_sums(self.window).clamp_min(_EPS)
        # Griffin-Lim's least-squares signal estimate divides the overlap-add by the
        # frames' summed w^2; analysing it multiplies by w again: one vector.
        self.reanalysis = self.window / known
        # Steady-state sum of w^2 at hop N/4 for a periodic Hann: 4 x 3/8 = 1.5.
        self.norm = float(known[: dmel.HOP].mean())
        bins = torch.arange(_BINS, dtype=dtype)
        self.advance = 2 * math.pi * bins * dmel.HOP / dmel.N_FFT
        # A stream's first frame has no phase to continue: Griffin-Lim's usual
        # random start, fixed so that audio is a function of the mel frames alone.
        start = torch.Generator().manual_seed(0)
        self.first_phase = (2 * math.pi * torch.rand(_BINS, generator=start, dtype=torch.float64)).to(dtype)
        self.dtype = dtype

    def magnitudes(self, log_mel: torch.Tensor) -> torch.Tensor:
        """[frames, 80] log10 mel -> [frames, 513] non-negative STFT magnitudes.
        Non-finite values are taken as the clamp bounds (NaN as silence)."""
        v = torch.nan_to_num(log_mel.to(self.dtype), nan=dmel.LOG_MIN, posinf=dmel.LOG_MAX, neginf=dmel.LOG_MIN)
        energy = torch.pow(10.0, v.clamp(dmel.LOG_MIN, dmel.LOG_MAX))
        mag = (energy @ self.pinv).clamp_min(0.0)
        # Clamping the pseudo-inverse's negative lobes changes the band energies
        # (~0.25 log10 on two tones); a few multiplicative non-negative
        # least-squares steps (Lee & Seung) pull them back. The small floor lets
        # a clamped bin regrow, which a multiplicative step cannot do from 0.
        mag = mag + _NNLS_FLOOR * mag.mean(dim=-1, keepdim=True)
        target = energy @ self.bank
        for _ in range(NNLS_ITERATIONS):
            mag = mag * target / ((mag @ self.bank.T) @ self.bank + _EPS * _EPS)
        return mag


_SHARED: dict[torch.dtype, MelInverse] = {}


def mel_inverse(dtype: torch.dtype = torch.float32) -> MelInverse:
    if dtype not in _SHARED:
        _SHARED[dtype] = MelInverse(dtype)
    return _SHARED[dtype]


class StreamingVocoder:
    """One per speaking session: holds the overlap of frames not yet fully
    emitted and the last frame's phase, so audio stays continuous across calls."""

    def __init__(self, iterations: int = DEFAULT_ITERATIONS, dtype: torch.dtype = torch.float32):
        if iterations < 0:
            raise ValueError("iterations must be >= 0")
        self.iterations = iterations
        self.inv = mel_inverse(dtype)
        self.reset()

    def reset(self) -> None:
        self.overlap = torch.zeros(STREAM_DELAY_SAMPLES, dtype=self.inv.dtype)
        self.phase = torch.zeros(_BINS, dtype=self.inv.dtype)
        self.frames = 0

    def flush(self) -> torch.Tensor:
        """Ends an utterance: the STREAM_DELAY_SAMPLES still held in the overlap
        (they fade out, as no later frame adds to them), then a fresh start, so
        the next utterance does not open with this one's tail."""
        tail = self.overlap / self.inv.norm if self.frames else torch.zeros(0, dtype=self.inv.dtype)
        self.reset()
        return tail

    def push(self, log_mel: torch.Tensor) -> torch.Tensor:
        """[frames, 80] log10 mel -> [frames * 200] float samples (full scale 1.0, unclipped)."""
        if log_mel.dim() != 2 or log_mel.shape[1] != dmel.CHANNELS:
            raise ValueError(f"log mel must be [frames, {dmel.CHANNELS}], got {tuple(log_mel.shape)}")
        out = torch.empty(log_mel.shape[0] * dmel.HOP, dtype=self.inv.dtype)
        for i in range(log_mel.shape[0]):
            # Frame by frame, magnitudes too: a batched matmul may round differently
            # with the batch size, and a block split must not change the samples.
            mag = self.inv.magnitudes(log_mel[i : i + 1])[0]
            out[i * dmel.HOP : (i + 1) * dmel.HOP] = self._frame(mag)
        return out

    def _frame(self, mag: torch.Tensor) -> torch.Tensor:
        inv = self.inv
        past = torch.zeros(dmel.WINDOW, dtype=inv.dtype)
        past[:STREAM_DELAY_SAMPLES] = self.overlap
        phase = self.phase + inv.advance if self.frames else inv.first_phase
        for _ in range(self.iterations):
            mine = self._synthesise(mag, phase)
            phase = torch.angle(torch.fft.rfft((past + mine) * inv.reanalysis, n=dmel.N_FFT))
        full = past + self._synthesise(mag, phase)
        self.phase = torch.remainder(phase, 2 * math.pi)  # bounded, so long streams keep precision
        self.overlap = full[dmel.HOP :].clone()
        self.frames += 1
        return full[: dmel.HOP] / inv.norm

    def _synthesise(self, mag: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        spectrum = torch.polar(mag, phase)
        return self.inv.window * torch.fft.irfft(spectrum, n=dmel.N_FFT)[: dmel.WINDOW]


def vocode(log_mel: torch.Tensor, iterations: int = DEFAULT_ITERATIONS) -> torch.Tensor:
    """One-shot: a fresh stream over all frames (same samples as pushing them in blocks)."""
    return StreamingVocoder(iterations).push(log_mel)


def to_pcm16(samples: torch.Tensor) -> bytes:
    """Float samples (full scale 1.0, as dmel_reference reads int16 / 32768) to
    int16 little-endian bytes; out-of-range samples clip, non-finite ones are 0."""
    x = torch.nan_to_num(samples.double(), nan=0.0, posinf=0.0, neginf=0.0)
    ints = (x * 32768.0).round().clamp(-32768, 32767).to(torch.int16)
    return ints.numpy().astype("<i2", copy=False).tobytes()


def from_pcm16(data: bytes) -> torch.Tensor:
    """The inverse of to_pcm16: int16 little-endian bytes to float samples."""
    return torch.from_numpy(np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0)

import math

import numpy as np
import pytest
import torch

from microturn_sglang import dmel_reference as dmel
from microturn_sglang.vocoder import (
    HOP_SAMPLES,
    STREAM_DELAY_SAMPLES,
    StreamingVocoder,
    from_pcm16,
    mel_inverse,
    to_pcm16,
    vocode,
)

SR = dmel.SAMPLE_RATE
DELAY_FRAMES = STREAM_DELAY_SAMPLES // HOP_SAMPLES  # 3
QUANT_STEP = (dmel.LOG_MAX - dmel.LOG_MIN) / (dmel.LEVELS - 1)  # 0.6 log10


def tones() -> np.ndarray:
    t = np.arange(SR) / SR
    return 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1200 * t)


def chirp() -> np.ndarray:
    t = np.arange(SR) / SR  # 200 Hz -> 4 kHz in 1 s
    return 0.4 * np.sin(2 * np.pi * (200 * t + 1900 * t**2))


def random_phase(log_mel: np.ndarray) -> np.ndarray:
    """The floor to beat: the same magnitudes with random phases, overlap-added."""
    inv = mel_inverse()
    mag = inv.magnitudes(torch.from_numpy(log_mel))
    phase = 2 * math.pi * torch.rand(mag.shape, generator=torch.Generator().manual_seed(1))
    frames = torch.fft.irfft(torch.polar(mag, phase), n=dmel.N_FFT)[:, : dmel.WINDOW] * inv.window
    out = torch.zeros(STREAM_DELAY_SAMPLES + HOP_SAMPLES * len(log_mel))
    for i, f in enumerate(frames):
        out[i * HOP_SAMPLES : i * HOP_SAMPLES + dmel.WINDOW] += f
    return (out / inv.norm)[: HOP_SAMPLES * len(log_mel)].double().numpy()


def round_trip(log_mel: np.ndarray, audio: np.ndarray) -> dict:
    """Re-analyses ``audio`` and compares it with ``log_mel``. The stream lags the
    analysis by 3 frames; the first 3 analysed frames (onset, the stream's fade-in)
    are left out."""
    a = log_mel[DELAY_FRAMES:-DELAY_FRAMES]
    b = dmel.log_mel(audio)[2 * DELAY_FRAMES :]
    loud = a > a.max(axis=1, keepdims=True) - 3.0  # within 30 dB of the frame's peak
    ea, eb = 10.0**a, 10.0**b
    codes_a, codes_b = dmel.quantize(a).astype(int), dmel.quantize(b).astype(int)
    return {
        "sc": float(np.linalg.norm(ea - eb) / np.linalg.norm(ea)),  # spectral convergence of mel energy
        "dist": float(np.abs(a - b)[loud].mean()),  # mean |log10 mel error| where the sound is
        "codes": float((np.abs(codes_a - codes_b) <= 1)[loud].mean()),  # dMel codes within one step
    }


# Thresholds: the mel lost everything finer than a band, so no inversion is
# exact. The bar is (1) spectral convergence well under the random-phase
# floor (~0.6 for both signals), (2) mean log-mel error under a third (tones)
# or two thirds (the chirp, the hardest case for a look-ahead-free estimate) of
# a dMel quantiser step, (3) nearly every dMel code recovered within one step.
# Measured: tones sc 0.08 / dist 0.14 / codes 1.00; chirp 0.31 / 0.30 / 0.96.
@pytest.mark.parametrize("signal, max_sc, max_dist, min_codes", [
    (tones, 0.15, QUANT_STEP / 3, 0.99),
    (chirp, 0.45, QUANT_STEP * 2 / 3, 0.93),
])
def test_round_trip_through_the_dmel_analysis(signal, max_sc, max_dist, min_codes):
    x = signal()
    log_mel = dmel.log_mel(x)
    y = vocode(torch.from_numpy(log_mel)).double().numpy()
    assert y.shape == (HOP_SAMPLES * len(log_mel),)
    got = round_trip(log_mel, y)
    floor = round_trip(log_mel, random_phase(log_mel))
    assert got["sc"] < max_sc and got["sc"] < 0.75 * floor["sc"], (got, floor)
    assert got["dist"] < max_dist, got
    assert got["codes"] >= min_codes, got
    # The level survives: the stream is the signal delayed by 600 samples.
    rms = lambda v: float(np.sqrt(np.mean(v**2)))  # noqa: E731
    assert rms(y[STREAM_DELAY_SAMPLES:]) == pytest.approx(rms(x[: -STREAM_DELAY_SAMPLES]), rel=0.25)


def test_blocks_give_the_same_samples_as_one_call():
    log_mel = torch.from_numpy(dmel.log_mel(chirp()[:8000]))
    whole = vocode(log_mel)
    voice = StreamingVocoder()
    parts, at = [], 0
    for size in [1, 3, 7, 1, 16, 2]:
        parts.append(voice.push(log_mel[at : at + size]))
        at += size
    parts.append(voice.push(log_mel[at:]))
    assert [len(p) for p in parts[:3]] == [200, 600, 1400]
    assert torch.equal(torch.cat(parts), whole)
    # No click where blocks meet: the steps across block edges are those of the signal.
    steps = torch.diff(torch.cat(parts)).abs()
    edges = torch.tensor([200, 800, 2200, 2400, 5600, 6000]) - 1
    assert steps[edges].max() <= steps.max()
    # reset() starts a fresh stream.
    voice.reset()
    assert torch.equal(voice.push(log_mel[:5]), whole[:1000])


def test_tone_is_continuous_across_blocks():
    t = np.arange(SR // 2) / SR
    log_mel = torch.from_numpy(dmel.log_mel(0.5 * np.sin(2 * np.pi * 440 * t)))
    voice = StreamingVocoder()
    y = torch.cat([voice.push(log_mel[i : i + 1]) for i in range(len(log_mel))])
    steady = y[2000:]  # past the fade-in
    # A 440 Hz sine of amplitude A moves at most 2 pi 440 A / 16000 per sample (0.086 at 0.5).
    assert torch.diff(steady).abs().max() < 0.086 * 1.5


def test_out_of_range_and_non_finite_mel_give_finite_clipped_pcm():
    log_mel = torch.full((4, 80), 50.0)
    log_mel[1] = float("nan")
    log_mel[2] = float("-inf")
    log_mel[3, :40] = float("inf")
    y = StreamingVocoder().push(log_mel)
    assert torch.isfinite(y).all() and y.shape == (800,)
    pcm = to_pcm16(torch.tensor([0.5, -2.0, 2.0, float("nan"), float("inf"), -1.0, 32767 / 32768]))
    assert len(pcm) == 14
    assert np.frombuffer(pcm, dtype="<i2").tolist() == [16384, -32768, 32767, 0, 0, -32768, 32767]
    assert from_pcm16(pcm)[0] == 0.5


def test_shape_is_checked():
    with pytest.raises(ValueError):
        StreamingVocoder().push(torch.zeros(3, 40))


def test_flush_ends_an_utterance_and_starts_the_next_fresh():
    frames = torch.full((6, 80), -2.0)
    voice = StreamingVocoder()
    first = voice.push(frames)
    tail = voice.flush()
    assert tail.shape == (STREAM_DELAY_SAMPLES,) and torch.isfinite(tail).all()
    # After a flush the stream starts over: the same frames give the same samples as a fresh vocoder.
    assert torch.equal(voice.push(frames), first)
    # Flushing a stream that said nothing gives nothing.
    assert StreamingVocoder().flush().numel() == 0


"""Tests for the numpy dMel reference and the shared vectors in testdata/dmel/."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "sglang-patch"))

from microturn_sglang import dmel_reference as ref  # noqa: E402

VECTORS = sorted((ROOT / "testdata" / "dmel").glob("*.json"))


def load(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    doc = json.loads(path.read_text())
    pcm = np.frombuffer(base64.b64decode(doc["pcm16_le_base64"]), dtype="<i2")
    codes = np.array([int(c, 16) for c in doc["codes_hex"]], dtype=np.uint8).reshape(doc["frames"], doc["channels"])
    return pcm.astype(np.float64) / 32768.0, codes, doc


def test_vectors_exist_and_are_small():
    names = {p.stem for p in VECTORS}
    assert {"sine_sweep", "noise", "silence", "clicks"} <= names
    assert sum(p.stat().st_size for p in VECTORS) < 1_000_000


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_reference_reproduces_vector(path: Path):
    x, expected, doc = load(path)
    assert x.size == doc["samples"]
    assert doc["frames"] == -(-x.size // ref.HOP)
    np.testing.assert_array_equal(ref.dmel_codes(x), expected)


def test_slaney_mel_scale_anchor_points():
    assert ref.hz_to_mel(500.0) == pytest.approx(7.5)
    assert ref.hz_to_mel(1000.0) == pytest.approx(15.0)
    assert ref.hz_to_mel(6400.0) == pytest.approx(42.0)
    hz = np.array([0.0, 80.0, 999.0, 1000.0, 3000.0, 7600.0])
    np.testing.assert_allclose(ref.mel_to_hz(ref.hz_to_mel(hz)), hz, rtol=1e-12, atol=1e-9)


def test_filterbank_shape_and_unit_area():
    bank = ref.mel_filterbank()
    assert bank.shape == (80, 513)
    assert np.all(bank >= 0)
    bin_hz = 16000 / 1024
    edges = ref.mel_to_hz(np.linspace(ref.hz_to_mel(80.0), ref.hz_to_mel(7600.0), 82))
    for m in range(80):
        nonzero = np.flatnonzero(bank[m])
        assert nonzero.size > 0, f"filter {m} is empty"
        # Contiguous run strictly inside the filter's corners.
        assert np.all(np.diff(nonzero) == 1)
        assert nonzero[0] * bin_hz > edges[m] and nonzero[-1] * bin_hz < edges[m + 2]
        # Slaney norm: peak height 2 / (right - left), so the triangle's area in Hz is 1.
        assert bank[m].max() <= 2.0 / (edges[m + 2] - edges[m]) + 1e-15
    wide = bank[40:]  # filters spanning many bins: the Riemann sum of the area is close to 1
    np.testing.assert_allclose(wide.sum(axis=1) * bin_hz, 1.0, rtol=0.02)


def test_sine_peaks_in_the_band_around_its_frequency():
    t = np.arange(8000) / 16000
    centres = ref.mel_to_hz(np.linspace(ref.hz_to_mel(80.0), ref.hz_to_mel(7600.0), 82))[1:-1]
    for hz in (300.0, 1000.0, 2500.0, 6000.0):
        values = ref.log_mel(0.5 * np.sin(2 * np.pi * hz * t))
        peak = int(np.argmax(values[10]))
        assert abs(centres[peak] - hz) <= np.max(np.diff(centres)), (hz, centres[peak])


def test_frames_are_causal_and_streaming_exact():
    rng = np.random.default_rng(7)
    x = rng.normal(0, 0.2, 16000 + 123)
    whole = ref.dmel_codes(x)
    assert whole.shape == (81, 80)
    for frames in (1, 3, 16, 40):
        # Frame i only sees samples before 200 (i + 1): a prefix yields the same first frames.
        np.testing.assert_array_equal(ref.dmel_codes(x[: frames * ref.HOP]), whole[:frames])


def test_quantizer_centres_and_clamps():
    centres = ref.LOG_MIN + np.arange(16) * (9.0 / 15.0)
    np.testing.assert_array_equal(ref.quantize(centres), np.arange(16))
    assert ref.quantize(np.array([-100.0, -7.0, 2.0, 50.0])).tolist() == [0, 0, 15, 15]
    # Halfway between centres 0 and 1 rounds up.
    assert ref.quantize(np.array([-7.0 + 0.3 + 1e-12, -7.0 + 0.3 - 1e-12])).tolist() == [1, 0]


def test_silence_is_all_zero_codes():
    codes = ref.dmel_codes(np.zeros(1000))
    assert codes.shape == (5, 80)
    assert not codes.any()


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="sample 5 is nan"):
        ref.dmel_codes(np.r_[np.zeros(5), np.nan, np.zeros(5)])
    with pytest.raises(ValueError, match="mono"):
        ref.dmel_codes(np.zeros((100, 2)))

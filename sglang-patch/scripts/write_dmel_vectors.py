"""Writes the shared dMel test vectors to testdata/dmel/ (read by the Python and TypeScript suites).

Each vector is one JSON file: 16 kHz mono PCM16 samples (base64 of int16
little-endian; the float signal is int16 / 32768, exact in float32 and
float64), the expected codes as one hex digit per code (frame-major, 80 per
frame), and the smallest distance of any unclamped log-mel value to a
quantiser boundary, so a reader knows how much float disagreement the vector
tolerates.

    python3 sglang-patch/scripts/write_dmel_vectors.py
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "sglang-patch"))

from microturn_sglang import dmel_reference as ref  # noqa: E402

OUT = ROOT / "testdata" / "dmel"
RATE = ref.SAMPLE_RATE


def to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")


def signals() -> dict[str, tuple[str, np.ndarray]]:
    rng = np.random.default_rng(20240611)
    t = np.arange(int(0.75 * RATE)) / RATE
    # Exponential sweep 100 Hz -> 7 kHz: crosses every mel band.
    f0, f1, dur = 100.0, 7000.0, t[-1]
    k = np.log(f1 / f0) / dur
    sweep = 0.5 * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    noise = np.clip(rng.normal(0.0, 0.3, int(0.5 * RATE) + 37), -1, 1)
    quiet = rng.normal(0.0, 1e-4, int(0.4 * RATE) + 111)
    clicks = np.zeros(int(0.6 * RATE) + 150)
    clicks[500::1000] = 0.9
    clicks[1000::2000] = -0.9
    chord_t = np.arange(int(0.45 * RATE)) / RATE
    chord = sum(0.3 * np.sin(2 * np.pi * f * chord_t + p) for f, p in ((220.0, 0.0), (1375.0, 1.0), (4410.0, 2.0)))
    return {
        "sine_sweep": ("0.5 amplitude exponential sine sweep 100 Hz to 7 kHz, 0.75 s", to_pcm16(sweep)),
        "noise": ("white Gaussian noise, sigma 0.3, clipped to [-1, 1], 0.5 s + 37 samples", to_pcm16(noise)),
        "quiet_noise": ("white Gaussian noise at sigma 1e-4 (a few LSB), exercises the low codes", to_pcm16(quiet)),
        "silence": ("digital silence, 4810 samples (partial last hop)", np.zeros(4810, dtype="<i2")),
        "clicks": ("alternating +-0.9 single-sample clicks every 500 samples", to_pcm16(clicks)),
        "chord": ("three sines 220 / 1375 / 4410 Hz at 0.3 each, 0.45 s", to_pcm16(chord)),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, (description, pcm) in signals().items():
        x = pcm.astype(np.float64) / 32768.0
        values = ref.log_mel(x)
        codes = ref.quantize(values)
        doc = {
            "name": name,
            "description": description,
            "sample_rate_hz": RATE,
            "samples": int(pcm.size),
            "pcm16_le_base64": base64.b64encode(pcm.tobytes()).decode("ascii"),
            "frames": int(codes.shape[0]),
            "channels": int(codes.shape[1]),
            "codes_hex": "".join("0123456789abcdef"[c] for c in codes.reshape(-1)),
            "min_boundary_distance": ref.boundary_distance(values) if np.isfinite(ref.boundary_distance(values)) else None,
        }
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(doc, indent=1) + "\n")
        total += path.stat().st_size
        hist = np.bincount(codes.reshape(-1), minlength=16)
        print(f"{name:12s} frames={codes.shape[0]:3d} min_boundary_distance={doc['min_boundary_distance']} codes={hist.tolist()}")
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()

"""numpy baseline for `npm run bench:media`: the same per-chunk work as the
TypeScript encoder (streaming dMel of 200 ms at 16 kHz, patchify of a 640x480
RGB frame), timed per chunk. Prints one JSON object.

    python3 media_bench_numpy.py --chunks 500 --warmup 50
"""

import argparse
import json
import time

import numpy as np

RATE, WINDOW, HOP, N_FFT, MELS, CHUNK = 16000, 800, 200, 1024, 80, 3200
PATCH = 40


def slaney_filterbank():
    def hz_to_mel(hz):
        hz = np.asarray(hz, dtype=np.float64)
        return np.where(hz >= 1000, 15 + np.log(np.maximum(hz, 1e-9) / 1000) / (np.log(6.4) / 27), hz * 3 / 200)

    def mel_to_hz(mel):
        return np.where(mel >= 15, 1000 * np.exp(np.log(6.4) / 27 * (mel - 15)), mel * 200 / 3)

    edges = mel_to_hz(np.linspace(hz_to_mel(80.0), hz_to_mel(7600.0), MELS + 2))
    f = np.arange(N_FFT // 2 + 1) * RATE / N_FFT
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.maximum(0, np.minimum((f - lo) / (mid - lo), (hi - f) / (hi - mid)))
    return tri * (2 / (hi - lo))


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()

    rng = np.random.default_rng(1)
    audio = (0.3 * rng.standard_normal(CHUNK * 50)).astype(np.float32)
    frames_rgb = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(4)]
    mel_t = np.ascontiguousarray(slaney_filterbank().T)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)
    carry = np.zeros(WINDOW - HOP)

    def dmel_chunk(chunk):
        nonlocal carry
        buf = np.concatenate([carry, chunk.astype(np.float64)])
        carry = buf[-(WINDOW - HOP):]
        frames = np.lib.stride_tricks.sliding_window_view(buf, WINDOW)[::HOP] * hann
        energy = np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)) @ mel_t
        v = np.clip(np.log10(np.maximum(energy, 1e-10)), -7, 2)
        return np.floor((v + 7) * 15 / 9 + 0.5).astype(np.uint8)

    def patchify(rgb):
        h, w, _ = rgb.shape
        rows, cols = -(-h // PATCH), -(-w // PATCH)
        # np.pad copies even with nothing to pad; skip it then, as the TypeScript side does.
        padded = rgb if rows * PATCH == h and cols * PATCH == w else np.pad(rgb, ((0, rows * PATCH - h), (0, cols * PATCH - w), (0, 0)), mode="edge")
        grid = padded.reshape(rows, PATCH, cols, PATCH, 3).transpose(0, 2, 1, 3, 4)
        return np.ascontiguousarray(grid).reshape(-1)

    dmel_ms, patch_ms, total_ms = [], [], []
    n_audio = audio.size // CHUNK
    cpu_start = None
    for i in range(args.warmup + args.chunks):
        if i == args.warmup:
            cpu_start = time.process_time()
        chunk = audio[(i % n_audio) * CHUNK : (i % n_audio + 1) * CHUNK]
        t0 = time.perf_counter()
        codes = dmel_chunk(chunk)
        t1 = time.perf_counter()
        patches = patchify(frames_rgb[i % len(frames_rgb)])
        t2 = time.perf_counter()
        assert codes.shape == (16, MELS) and patches.size == 640 * 480 * 3
        if i >= args.warmup:
            dmel_ms.append((t1 - t0) * 1e3)
            patch_ms.append((t2 - t1) * 1e3)
            total_ms.append((t2 - t0) * 1e3)
    cpu_ms = (time.process_time() - cpu_start) * 1e3 / args.chunks
    print(json.dumps({
        "numpy": np.__version__,
        "cpu_ms": cpu_ms,
        "dmel": dmel_ms, "patch": patch_ms, "total": total_ms,
        "dmel_p50": percentile(dmel_ms, 50), "dmel_p95": percentile(dmel_ms, 95),
        "patch_p50": percentile(patch_ms, 50), "patch_p95": percentile(patch_ms, 95),
        "total_p50": percentile(total_ms, 50), "total_p95": percentile(total_ms, 95),
    }))


if __name__ == "__main__":
    main()

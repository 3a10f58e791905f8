"""GPU benchmark of the gather+gemv MoE against the fused grouped kernel at
Qwen3-30B-A3B shapes (128 experts, top-8, hidden 2048, expert dim 768, bf16):
us per MoE layer, GB/s of routed expert weights, % of HBM peak, and the
crossover T. Exits 0 with a message when there is no CUDA GPU.

Run: python sglang-patch/scripts/bench_moe.py [--hbm-gbps 3350] [--tokens 1,2,4,8,16,32,64]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402

EXPERTS, TOP_K, HIDDEN, INTER = 128, 8, 2048, 768
PEAK_GBPS = {"H100": 3350.0, "H200": 4800.0, "A100": 2039.0, "B200": 8000.0}
BLOCK_CONFIGS = [(bnu, bh, bnd, bi) for bnu in (8, 16, 32) for bh in (128, 256) for bnd in (8, 16, 32) for bi in (128, 256)]


def peak_gbps(override):
    if override:
        return override
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_GBPS.items() if k in name), None)


def time_us(fn, iters=200):
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=iters) * 1000.0


def grouped_baseline():
    """SGLang's fused grouped Triton MoE when SGLang is installed, else None."""
    try:
        from sglang.srt.layers.moe.moe_runner.base import MoeRunnerConfig
        from sglang.srt.layers.moe.moe_runner.triton_utils.fused_moe import fused_experts
        from sglang.srt.layers.moe.topk import StandardTopKOutput
    except Exception as err:  # noqa: BLE001 - reported, bench continues without it
        print(f"bench_moe: SGLang fused grouped kernel unavailable ({err!r}); comparing with torch per-expert loop")
        return None, "torch per-expert loop (NOT the fused grouped kernel)"
    config = MoeRunnerConfig(num_experts=EXPERTS, num_local_experts=EXPERTS, hidden_size=HIDDEN,
                             intermediate_size_per_partition=INTER, top_k=TOP_K, inplace=False,
                             params_dtype=torch.bfloat16)

    def run(x, w13, w2, ids, weights):
        return fused_experts(x, w13, w2, StandardTopKOutput(weights, ids, None), config)

    return run, "SGLang fused_experts (grouped Triton)"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hbm-gbps", type=float, default=None, help="HBM peak; default from the device name")
    parser.add_argument("--tokens", default="1,2,4,8,16,32,64")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_moe: no CUDA GPU on this machine; nothing measured. "
              "(Triton's CPU interpreter is a correctness tool, not a performance figure.)")
        return 0

    from microturn_sglang.moe_gather_gemv import gather_gemv_moe, moe_grouped_torch, routed_weight_bytes

    dev = "cuda"
    torch.manual_seed(0)
    w13 = (torch.randn(EXPERTS, 2 * INTER, HIDDEN, device=dev) / HIDDEN**0.5).to(torch.bfloat16)
    w2 = (torch.randn(EXPERTS, HIDDEN, INTER, device=dev) / INTER**0.5).to(torch.bfloat16)
    grouped, grouped_name = grouped_baseline()
    grouped = grouped or moe_grouped_torch
    peak = peak_gbps(args.hbm_gbps)
    print(f"device: {torch.cuda.get_device_name()}, HBM peak {peak or 'unknown'} GB/s; baseline: {grouped_name}")

    # Pick block sizes once at T=1, where the roofline target applies.
    x1 = torch.randn(1, HIDDEN, device=dev, dtype=torch.bfloat16)
    probs = torch.softmax(torch.randn(1, EXPERTS, device=dev), -1)
    w1_, ids1 = probs.topk(TOP_K, -1)
    best = min(BLOCK_CONFIGS, key=lambda c: time_us(lambda: gather_gemv_moe(
        x1, w13, w2, ids1.int(), w1_, block_n_up=c[0], block_h=c[1], block_n_down=c[2], block_i=c[3]), iters=50))
    print(f"blocks (n_up, h, n_down, i) = {best}")

    print(f"{'T':>3} {'gemv us':>9} {'grouped us':>11} {'speedup':>8} {'GB/s':>8} {'% peak':>7}")
    crossover = None
    for t in [int(v) for v in args.tokens.split(",")]:
        x = torch.randn(t, HIDDEN, device=dev, dtype=torch.bfloat16)
        weights, ids = torch.softmax(torch.randn(t, EXPERTS, device=dev), -1).topk(TOP_K, -1)
        ids = ids.int()
        ref = grouped(x, w13, w2, ids, weights)
        out = gather_gemv_moe(x, w13, w2, ids, weights, block_n_up=best[0], block_h=best[1],
                              block_n_down=best[2], block_i=best[3])
        err = float((out.float() - ref.float()).norm() / ref.float().norm())
        if err > 1e-2:
            print(f"bench_moe: T={t} gather+gemv disagrees with the baseline (rel err {err:.3g})")
            return 1
        us_gemv = time_us(lambda: gather_gemv_moe(x, w13, w2, ids, weights, block_n_up=best[0], block_h=best[1],
                                                  block_n_down=best[2], block_i=best[3]))
        us_grouped = time_us(lambda: grouped(x, w13, w2, ids, weights))
        gbps = routed_weight_bytes(ids, HIDDEN, INTER, 2) / (us_gemv * 1e-6) / 1e9
        pct = f"{100 * gbps / peak:6.1f}%" if peak else "   n/a"
        if crossover is None and us_gemv >= us_grouped:
            crossover = t
        print(f"{t:>3} {us_gemv:>9.1f} {us_grouped:>11.1f} {us_grouped / us_gemv:>7.2f}x {gbps:>8.0f} {pct:>7}")
    print(f"crossover: {'T=' + str(crossover) if crossover else 'none up to the largest T measured'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

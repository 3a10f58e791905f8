"""GPU benchmark of the gather+gemv MoE against grouped-GEMM MoE at Qwen3-30B-A3B
shapes (128 experts, top-8, hidden 2048, expert dim 768, bf16): us per MoE layer,
GB/s of routed expert weights, % of HBM peak and of the measured copy bandwidth,
and the crossover T. Exits 0 with a message when there is no CUDA GPU.

Baselines, each where it runs:
- SGLang's fused_experts (grouped Triton GEMM), when SGLang and its CUDA kernels
  are installed;
- PyTorch's grouped GEMM (torch._grouped_mm, CUTLASS on Hopper) with the routing
  glue in torch ops ("grouped_mm"), and its two GEMM launches alone with the
  glue precomputed ("gemms only": a floor for any grouped-GEMM MoE at that T);
- a torch loop over the routed experts (no fused kernel; not graph-capturable).

Times: "eager" is the median of triton.testing.do_bench (events around each call,
L2 flushed between calls, launch gaps included); "graph" replays a CUDA graph of
ROUTINGS calls with different routings and divides (launch gaps mostly gone, as
under SGLang's decode graphs). Block sizes and warps are tuned at T = 1 by graph
time, one kernel's parameters at a time.

Run: python sglang-patch/scripts/bench_moe.py [--hbm-gbps 4800] [--tokens 1,2,4,8,16,32,64] [--json out.json]
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

EXPERTS, TOP_K, HIDDEN, INTER = 128, 8, 2048, 768
PEAK_GBPS = {"H100": 3350.0, "H200": 4800.0, "A100": 2039.0, "B200": 8000.0}
ROUTINGS = 8
DEVICE = "cuda"
UP_SPACE = {"block_n_up": (4, 8, 16), "block_h": (128, 256, 512), "num_warps_up": (2, 4, 8)}
DOWN_SPACE = {"block_n_down": (4, 8, 16), "block_i": (128, 256), "num_warps_down": (2, 4, 8),
              "split_down": (False, True)}


def peak_gbps(override):
    if override:
        return override
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_GBPS.items() if k in name), None)


def copy_gbps():
    """Device-to-device copy of 2 GiB, bytes read plus written, median of 10."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device=DEVICE).random_()
    dst = torch.empty_like(src)
    times = []
    for i in range(13):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(end))
    ms = statistics.median(times)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * (1 << 30) / (ms * 1e-3) / 1e9


def eager_us(calls):
    from triton.testing import do_bench

    i = [0]

    def step():
        calls[i[0] % len(calls)]()
        i[0] += 1

    return do_bench(step, warmup=25, rep=100, return_mode="median") * 1000.0


def graph_us(calls, replays=30):
    """Median time of one call inside a CUDA graph of all `calls`; None when not capturable."""
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for c in calls:
                c()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for c in calls:
                c()
    except Exception as err:  # noqa: BLE001 - e.g. a baseline that syncs with the host; reported
        print(f"bench_moe: not graph-capturable ({type(err).__name__}: {str(err)[:200]})")
        torch.cuda.synchronize()
        return None
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(replays):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times) * 1000.0 / len(calls)


def sglang_fused():
    """SGLang's fused grouped Triton MoE when SGLang is installed, else None."""
    try:
        from sglang.srt.layers.moe.moe_runner.base import MoeRunnerConfig
        from sglang.srt.layers.moe.moe_runner.triton_utils.fused_moe import fused_experts
        from sglang.srt.layers.moe.topk import StandardTopKOutput
    except Exception as err:  # noqa: BLE001 - reported, bench continues without it
        print(f"bench_moe: SGLang's fused_experts unavailable here ({type(err).__name__}: {err}); not measured")
        return None
    config = MoeRunnerConfig(num_experts=EXPERTS, num_local_experts=EXPERTS, hidden_size=HIDDEN,
                             intermediate_size_per_partition=INTER, top_k=TOP_K, inplace=False,
                             params_dtype=torch.bfloat16)

    def run(x, w13, w2, ids, weights):
        return fused_experts(x, w13, w2, StandardTopKOutput(weights, ids, None), config)

    return run


def grouped_mm_route(ids):
    """Routing glue of a grouped-GEMM MoE: rows sorted by expert, group ends, source token of each row."""
    flat = ids.reshape(-1).long()
    order = torch.argsort(flat, stable=True)
    counts = torch.zeros(EXPERTS, dtype=torch.int32, device=ids.device)
    counts.scatter_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
    return order, torch.cumsum(counts, 0, dtype=torch.int32), order // ids.shape[1]


def grouped_mm_moe(x, w13, w2, ids, weights):
    order, offs, token_of = grouped_mm_route(ids)
    h = torch._grouped_mm(x.index_select(0, token_of), w13.transpose(1, 2), offs=offs)
    act = (F.silu(h[:, :INTER].float()) * h[:, INTER:].float()).to(x.dtype)
    y = torch._grouped_mm(act, w2.transpose(1, 2), offs=offs).float() * weights.reshape(-1)[order].float()[:, None]
    return torch.zeros(x.shape[0], HIDDEN, dtype=torch.float32, device=x.device).index_add_(0, token_of, y).to(x.dtype)


def grouped_mm_available(x, w13, w2, ids, weights, reference):
    if not hasattr(torch, "_grouped_mm"):
        print("bench_moe: torch._grouped_mm not in this PyTorch; grouped_mm not measured")
        return False
    try:
        err = rel_err(grouped_mm_moe(x, w13, w2, ids, weights), reference)
    except Exception as e:  # noqa: BLE001 - reported
        print(f"bench_moe: torch._grouped_mm failed here ({type(e).__name__}: {e}); grouped_mm not measured")
        return False
    if err > 1e-2:
        print(f"bench_moe: grouped_mm disagrees with the reference (rel err {err:.3g}); not measured")
        return False
    return True


def rel_err(out, ref):
    return float((out.float() - ref.float()).norm() / ref.float().norm())


def routings(tokens, n, device):
    sets = []
    for _ in range(n):
        weights, ids = torch.softmax(torch.randn(tokens, EXPERTS, device=device), -1).topk(TOP_K, -1)
        sets.append((torch.randn(tokens, HIDDEN, device=device, dtype=torch.bfloat16), ids.int(), weights))
    return sets


def tune(gemv, w13, w2):
    """Coordinate search at T = 1 by graph time: the up kernel's parameters, then the down kernel's."""
    cases = routings(1, ROUTINGS, DEVICE)
    config = {"block_n_up": 16, "block_h": 128, "num_warps_up": 4, "block_n_down": 16, "block_i": 128,
              "num_warps_down": 4, "split_down": False}  # a neutral start, not the tuned defaults

    def time_config(c):
        return graph_us([lambda x=x, ids=ids, w=w: gemv(x, w13, w2, ids, w, **c) for x, ids, w in cases], replays=10)

    for space in (UP_SPACE, DOWN_SPACE):
        keys = list(space)
        grid = [{}]
        for k in keys:
            grid = [dict(g, **{k: v}) for g in grid for v in space[k]]
        scored = [(time_config(dict(config, **g)), g) for g in grid]
        config.update(min(scored, key=lambda s: s[0])[1])
    return config


def breakdown_rows(w13, w2, config):
    """Graph time at T=1 and T=8 of the whole layer, of the same blocks with the
    other down variant, and of the gate/up kernel alone (gate_up, gather_gemv_moe's first step)."""
    from microturn_sglang.moe_gather_gemv import gate_up, gather_gemv_moe, split_down_pays

    rows = []
    print("breakdown, graph us: whole layer | other down variant | gate/up kernel alone | down part (whole - gate/up)")
    for t in (1, 8):
        cases = routings(t, ROUTINGS, DEVICE)
        split = config.get("split_down")
        if split is None:
            split = split_down_pays(t, HIDDEN, config["block_n_down"], torch.cuda.get_device_properties(0).multi_processor_count)
        config_t = dict(config, split_down=split)
        flipped = dict(config, split_down=not split)
        whole = graph_us([lambda x=x, ids=ids, w=w: gather_gemv_moe(x, w13, w2, ids, w, **config_t) for x, ids, w in cases])
        other = graph_us([lambda x=x, ids=ids, w=w: gather_gemv_moe(x, w13, w2, ids, w, **flipped) for x, ids, w in cases])
        acts = [torch.empty(t * TOP_K, INTER, dtype=torch.float32, device=DEVICE) for _ in cases]

        up_params = {k: config[k] for k in UP_SPACE}
        up = graph_us([lambda x=x, ids=ids, a=a: gate_up(x, w13, ids.view(-1), a, **up_params) for (x, ids, _), a in zip(cases, acts)])
        up_bytes = statistics.mean(int(torch.unique(ids).numel()) for _, ids, _ in cases) * 2 * INTER * HIDDEN * 2
        row = {"T": t, "whole_us": whole, "other_down_us": other, "up_us": up, "down_us": whole - up,
               "up_gbps": up_bytes / (up * 1e-6) / 1e9, "down_gbps": up_bytes / 2 / ((whole - up) * 1e-6) / 1e9}
        rows.append(row)
        print(f"T={t}: {whole:.1f} (split_down={split}) | {other:.1f} | {up:.1f} ({row['up_gbps']:.0f} GB/s)"
              f" | {whole - up:.1f} ({row['down_gbps']:.0f} GB/s)", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hbm-gbps", type=float, default=None, help="HBM peak; default from the device name")
    parser.add_argument("--tokens", default="1,2,4,8,16,32,64")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--config", default=None, help="gather+gemv parameters as JSON; skips the tuning")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time, at T=1 and T=8, the gate/up kernel alone and the other down variant")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_moe: no CUDA GPU on this machine; nothing measured. "
              "(Triton's CPU interpreter is a correctness tool, not a performance figure.)")
        return 0

    import triton

    from microturn_sglang.moe_gather_gemv import gather_gemv_moe, moe_grouped_torch, moe_reference, routed_weight_bytes

    dev = DEVICE
    torch.manual_seed(0)
    w13 = (torch.randn(EXPERTS, 2 * INTER, HIDDEN, device=dev) / HIDDEN**0.5).to(torch.bfloat16)
    w2 = (torch.randn(EXPERTS, HIDDEN, INTER, device=dev) / INTER**0.5).to(torch.bfloat16)
    peak = peak_gbps(args.hbm_gbps)
    measured_copy = copy_gbps()
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}; "
          f"HBM peak {peak or 'unknown'} GB/s (datasheet), device copy {measured_copy:.0f} GB/s (measured, read+write)")

    x0, ids0, w0 = routings(2, 1, dev)[0]
    reference0 = moe_reference(x0, w13, w2, ids0, w0)
    has_grouped_mm = grouped_mm_available(x0, w13, w2, ids0, w0, reference0)
    fused = sglang_fused()

    if args.config:
        config = json.loads(args.config)
        print(f"gather+gemv config (given): {config}")
    else:
        config = tune(gather_gemv_moe, w13, w2)
        print(f"gather+gemv config (tuned at T=1): {config}; the rows below let gather_gemv_moe pick split_down per T")
        config["split_down"] = None
    breakdown = breakdown_rows(w13, w2, config) if args.breakdown else None

    rows = []
    head = (f"{'T':>3} {'gemv graph':>10} {'gemv eager':>10} {'GB/s':>6} {'%peak':>6} {'%copy':>6} "
            f"{'grouped_mm graph':>16} {'gemms only':>10} {'fused eager':>11} {'torch loop':>10} "
            f"{'x vs grouped_mm':>15} {'x vs gemms':>10}")
    print("us per MoE layer (median); speedups are graph time over graph time")
    print(head)
    for t in [int(v) for v in args.tokens.split(",")]:
        cases = routings(t, ROUTINGS, dev)
        x, ids, weights = cases[0]
        ref = moe_reference(x, w13, w2, ids, weights)
        out = torch.full_like(x, float("nan"))
        gather_gemv_moe(x, w13, w2, ids, weights, out=out, **config)
        err = rel_err(out, ref)
        if err > 1e-2 or out.isnan().any():
            print(f"bench_moe: T={t} gather+gemv disagrees with the reference (rel err {err:.3g})")
            return 1
        gemv_calls = [lambda x=x, ids=ids, w=w: gather_gemv_moe(x, w13, w2, ids, w, **config) for x, ids, w in cases]
        row = {"T": t, "gemv_graph_us": graph_us(gemv_calls), "gemv_eager_us": eager_us(gemv_calls)}
        byte_count = statistics.mean(routed_weight_bytes(ids, HIDDEN, INTER, 2) for _, ids, _ in cases)
        row["gemv_gbps"] = byte_count / (row["gemv_graph_us"] * 1e-6) / 1e9
        if has_grouped_mm:
            grouped_calls = [lambda x=x, ids=ids, w=w: grouped_mm_moe(x, w13, w2, ids, w) for x, ids, w in cases]
            row["grouped_mm_graph_us"] = graph_us(grouped_calls)
            row["grouped_mm_eager_us"] = eager_us(grouped_calls)
            gemm_calls = []
            for x, ids, w in cases:
                order, offs, token_of = grouped_mm_route(ids)
                xs = x.index_select(0, token_of)
                act = torch.randn(xs.shape[0], INTER, device=dev, dtype=torch.bfloat16)

                def gemms(xs=xs, act=act, offs=offs):
                    torch._grouped_mm(xs, w13.transpose(1, 2), offs=offs)
                    torch._grouped_mm(act, w2.transpose(1, 2), offs=offs)

                gemm_calls.append(gemms)
            row["gemms_only_graph_us"] = graph_us(gemm_calls)
        if fused is not None:
            if rel_err(fused(x, w13, w2, ids, weights), ref) > 1e-2:
                print(f"bench_moe: T={t} SGLang fused_experts disagrees with the reference")
                return 1
            fused_calls = [lambda x=x, ids=ids, w=w: fused(x, w13, w2, ids, w) for x, ids, w in cases]
            row["fused_graph_us"] = graph_us(fused_calls)
            row["fused_eager_us"] = eager_us(fused_calls)
        if t <= 16:
            row["torch_loop_eager_us"] = eager_us([lambda x=x, ids=ids, w=w: moe_grouped_torch(x, w13, w2, ids, w)
                                                   for x, ids, w in cases])
        rows.append(row)

        def cell(key, width):
            v = row.get(key)
            return f"{v:>{width}.1f}" if v is not None else f"{'-':>{width}}"

        def ratio(key, width):
            v = row.get(key)
            return f"{v / row['gemv_graph_us']:>{width - 1}.2f}x" if v is not None else f"{'-':>{width}}"

        pct = f"{100 * row['gemv_gbps'] / peak:>6.1f}" if peak else f"{'n/a':>6}"
        print(f"{t:>3} {cell('gemv_graph_us', 10)} {cell('gemv_eager_us', 10)} {row['gemv_gbps']:>6.0f} {pct} "
              f"{100 * row['gemv_gbps'] / measured_copy:>6.1f} {cell('grouped_mm_graph_us', 16)} "
              f"{cell('gemms_only_graph_us', 10)} {cell('fused_eager_us', 11)} {cell('torch_loop_eager_us', 10)} "
              f"{ratio('grouped_mm_graph_us', 15)} {ratio('gemms_only_graph_us', 10)}", flush=True)

    def crossover(key):
        return next((r["T"] for r in rows if r.get(key) is not None and r["gemv_graph_us"] >= r[key]), None)

    summary = {
        "bench": "moe",
        "device": torch.cuda.get_device_name(),
        "hbm_peak_gbps": peak,
        "copy_gbps": round(measured_copy),
        "config": config,
        "rows": rows,
        "breakdown": breakdown,
        "crossover_vs_grouped_mm": crossover("grouped_mm_graph_us"),
        "crossover_vs_gemms_only": crossover("gemms_only_graph_us"),
        "crossover_vs_fused": crossover("fused_graph_us"),
    }
    for key in ("crossover_vs_grouped_mm", "crossover_vs_gemms_only", "crossover_vs_fused"):
        print(f"{key}: {'T=' + str(summary[key]) if summary[key] else 'none up to the largest T measured'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

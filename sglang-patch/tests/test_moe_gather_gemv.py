import pytest
import torch

from microturn_sglang.moe_gather_gemv import (
    gather_gemv_moe,
    moe_forward,
    moe_reference,
    routed_weight_bytes,
    split_down_pays,
)


# On a machine with a GPU the kernels run compiled there; without one, under
# Triton's interpreter on CPU (conftest.py).
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def make_case(tokens, experts, top_k, hidden, inter, dtype, *, skewed=False, seed=0, device=DEVICE):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, hidden, generator=g).to(dtype)
    w13 = (torch.randn(experts, 2 * inter, hidden, generator=g) / hidden**0.5).to(dtype)
    w2 = (torch.randn(experts, hidden, inter, generator=g) / inter**0.5).to(dtype)
    if skewed:
        # Most tokens hit the same few experts, as with a hot expert in practice.
        hot = torch.tensor([0, 1])
        ids = torch.stack([torch.cat([hot, torch.randperm(experts - 2, generator=g)[: top_k - 2] + 2]) for _ in range(tokens)])
    else:
        ids = torch.stack([torch.randperm(experts, generator=g)[:top_k] for _ in range(tokens)])
    logits = torch.randn(tokens, top_k, generator=g)
    weights = torch.softmax(logits, dim=-1).float()
    return tuple(t.to(device) for t in (x, w13, w2, ids.to(torch.int32), weights))


def rel_err(out, ref):
    return float((out.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-12))


@pytest.mark.parametrize(
    "tokens,experts,top_k,hidden,inter",
    [(1, 8, 2, 64, 32), (3, 16, 4, 96, 48), (5, 8, 8, 130, 70), (9, 12, 3, 200, 100)],
)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_matches_reference_random_routing(tokens, experts, top_k, hidden, inter, dtype):
    x, w13, w2, ids, weights = make_case(tokens, experts, top_k, hidden, inter, dtype)
    out = gather_gemv_moe(x, w13, w2, ids, weights, block_n_up=32, block_h=64, block_n_down=32, block_i=32)
    assert out.dtype == dtype and out.shape == (tokens, hidden)
    assert rel_err(out, moe_reference(x, w13, w2, ids, weights)) <= 1e-2


def test_matches_reference_skewed_routing_bf16():
    x, w13, w2, ids, weights = make_case(8, 16, 4, 72, 40, torch.bfloat16, skewed=True, seed=3)
    assert int((ids == 0).sum()) == 8
    out = gather_gemv_moe(x, w13, w2, ids, weights, block_h=32, block_i=16)
    assert rel_err(out, moe_reference(x, w13, w2, ids, weights)) <= 1e-2


@pytest.mark.parametrize("tokens,top_k", [(1, 4), (3, 2)])
def test_split_down_matches_reference(tokens, top_k):
    x, w13, w2, ids, weights = make_case(tokens, 8, top_k, 96, 40, torch.bfloat16, seed=5)
    ids[0, 0] = -1  # an expert off this rank adds nothing on the split path either
    out = gather_gemv_moe(x, w13, w2, ids, weights, block_h=32, block_n_down=16, block_i=16, split_down=True)
    assert out.dtype == torch.bfloat16 and out.shape == (tokens, 96)
    assert rel_err(out, moe_reference(x, w13, w2, ids, weights)) <= 1e-2


def test_split_down_only_while_the_token_grid_is_short():
    # H200 (132 multiprocessors), Qwen3-30B-A3B hidden 2048, down blocks of 8: measured
    # faster split at T = 1 and 2, even at 3, slower from 4 (docs/benchmarks.md).
    assert [split_down_pays(t, 2048, 8, 132) for t in (1, 2, 3, 4, 8)] == [True, True, False, False, False]
    assert split_down_pays(4, 2048, 8, 264)  # a chip with twice the multiprocessors splits longer


def test_reference_matches_dense_computation():
    # Independent check of the reference itself: a dense einsum over one-hot routing.
    x, w13, w2, ids, weights = make_case(4, 6, 2, 16, 8, torch.float32, device="cpu")
    dense = torch.zeros(4, 6)
    dense.scatter_(1, ids.long(), weights)
    gate_up = torch.einsum("th,eoh->teo", x, w13)
    act = torch.nn.functional.silu(gate_up[..., :8]) * gate_up[..., 8:]
    expected = torch.einsum("te,teh->th", dense, torch.einsum("tei,ehi->teh", act, w2))
    assert torch.allclose(moe_reference(x, w13, w2, ids, weights), expected, atol=1e-5)


def test_non_local_experts_contribute_nothing():
    x, w13, w2, ids, weights = make_case(2, 8, 4, 48, 24, torch.bfloat16)
    ids_masked = ids.clone()
    ids_masked[:, 2:] = -1
    out = gather_gemv_moe(x, w13, w2, ids_masked, weights, block_h=32, block_i=16)
    ref = moe_reference(x, w13, w2, ids[:, :2], weights[:, :2])
    assert rel_err(out, ref) <= 1e-2


def test_threshold_dispatch_uses_grouped_path_above_it():
    x, w13, w2, ids, weights = make_case(6, 8, 2, 32, 16, torch.bfloat16)
    calls = []

    def grouped(*args):
        calls.append(args[0].shape[0])
        return moe_reference(*args)

    small = moe_forward(x[:4], w13, w2, ids[:4], weights[:4], threshold_tokens=4, grouped=grouped)
    large = moe_forward(x, w13, w2, ids, weights, threshold_tokens=4, grouped=grouped)
    assert calls == [6]
    assert rel_err(small, moe_reference(x[:4], w13, w2, ids[:4], weights[:4])) <= 1e-2
    assert large.shape == (6, 32)


def test_deterministic_mode_follows_sglangs_batch_invariant_flag(monkeypatch):
    import sys
    import types

    import microturn_sglang.moe_gather_gemv as mgg

    state = {"on": False}
    fake = types.SimpleNamespace(is_batch_invariant_mode_enabled=lambda: state["on"])
    monkeypatch.setitem(sys.modules, "sglang.srt.batch_invariant_ops.batch_invariant_ops", fake)
    monkeypatch.setattr(mgg, "_batch_invariant_flag", mgg._UNSET)
    assert mgg.deterministic_mode() is False
    state["on"] = True  # read at each call: SGLang sets it at server start
    assert mgg.deterministic_mode() is True
    # Without SGLang (nothing importable) it is off.
    monkeypatch.setattr(mgg, "_batch_invariant_flag", None)
    assert mgg.deterministic_mode() is False


def test_cpu_tensors_without_the_interpreter_take_the_grouped_path(monkeypatch):
    # A machine with a GPU runs the kernels compiled, which cannot read CPU tensors: a model kept on
    # CPU there (the reference engine) must not reach them.
    import microturn_sglang.moe_gather_gemv as mgg

    monkeypatch.setattr(mgg, "INTERPRETED", False)
    x, w13, w2, ids, weights = make_case(2, 8, 2, 32, 16, torch.float32, device="cpu")
    calls = []
    out = moe_forward(x, w13, w2, ids, weights, threshold_tokens=16, grouped=lambda *a: calls.append(1) or moe_reference(*a))
    assert calls == [1] and rel_err(out, moe_reference(x, w13, w2, ids, weights)) <= 1e-5
    with pytest.raises(ValueError, match="CUDA device"):
        gather_gemv_moe(x, w13, w2, ids, weights)


def test_bad_shapes_raise_typed_errors():
    x, w13, w2, ids, weights = make_case(2, 4, 2, 16, 8, torch.bfloat16)
    with pytest.raises(ValueError):
        gather_gemv_moe(x[:, :8], w13, w2, ids, weights)
    with pytest.raises(ValueError):
        gather_gemv_moe(x, w13, w2, ids[:, :1], weights)
    with pytest.raises(TypeError):
        gather_gemv_moe(x.to(torch.int32), w13, w2, ids, weights)


def test_routed_weight_bytes_counts_distinct_experts():
    ids = torch.tensor([[0, 1], [1, 2], [-1, 2]])
    assert routed_weight_bytes(ids, hidden=4, inter=2, elem_bytes=2) == 3 * 3 * 4 * 2 * 2


def test_grouped_torch_path_matches_reference():
    from microturn_sglang.moe_gather_gemv import moe_grouped_torch

    x, w13, w2, ids, weights = make_case(40, 8, 3, 24, 12, torch.float32, skewed=True)
    ids[0, 0] = -1
    assert torch.allclose(moe_grouped_torch(x, w13, w2, ids, weights), moe_reference(x, w13, w2, ids, weights), atol=1e-5)

"""gather+gemv compiled for a real GPU (not the interpreter); skipped without CUDA."""

import pytest
import torch

from microturn_sglang.moe_gather_gemv import gather_gemv_moe, moe_reference

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none on this machine")


@pytest.mark.gpu
@pytest.mark.parametrize("split_down", [False, True, None])
@pytest.mark.parametrize("tokens", [1, 3, 8, 16])
def test_qwen3_moe_shape_on_gpu(tokens, split_down):
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(tokens, 2048, device="cuda", generator=g).bfloat16()
    w13 = (torch.randn(128, 1536, 2048, device="cuda", generator=g) / 45).bfloat16()
    w2 = (torch.randn(128, 2048, 768, device="cuda", generator=g) / 28).bfloat16()
    weights, ids = torch.softmax(torch.randn(tokens, 128, device="cuda", generator=g), -1).topk(8, -1)
    out = torch.full((tokens, 2048), float("nan"), device="cuda", dtype=torch.bfloat16)  # every element must be written
    gather_gemv_moe(x, w13, w2, ids.int(), weights, split_down=split_down, out=out)
    ref = moe_reference(x, w13, w2, ids, weights)
    assert not out.isnan().any()
    assert float((out.float() - ref.float()).norm() / ref.float().norm()) <= 1e-2

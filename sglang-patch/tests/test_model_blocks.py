import pytest
import torch

from microturn_sglang.interaction_model import InteractionModelConfig, LayerKvCache, MicroturnInteractionModel
from microturn_sglang.model_blocks import (
    DmelEmbedding,
    FlowMatchingAudioHead,
    HmlpPatchEmbedding,
    KvView,
    MoeFeedForward,
    MoeTransformerLayer,
    TimeMarkerEmbedding,
)


def test_dmel_embedding_one_vector_per_frame_and_channel_aware():
    emb = DmelEmbedding(dim=32)
    codes = torch.randint(0, 16, (16, 80))
    out = emb(codes)
    assert out.shape == (16, 32)
    swapped = codes.clone()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]
    differs = (codes[:, 0] != codes[:, 1])
    # The same levels on different channels embed differently.
    assert not torch.allclose(out[differs], emb(swapped)[differs])
    with pytest.raises(ValueError):
        emb(torch.full((2, 80), 16))
    with pytest.raises(ValueError):
        emb(torch.zeros(2, 40, dtype=torch.long))


def test_hmlp_keeps_patches_independent():
    emb = HmlpPatchEmbedding(dim=48)
    rgb = torch.randint(0, 256, (3, 40, 40, 3), dtype=torch.uint8)
    out = emb(rgb)
    assert out.shape == (3, 48)
    assert torch.allclose(emb(rgb[1:2]), out[1:2], atol=1e-5)
    with pytest.raises(ValueError):
        emb(torch.zeros(1, 16, 16, 3, dtype=torch.uint8))


def test_time_marker_distinguishes_chunks():
    emb = TimeMarkerEmbedding(dim=16)
    out = emb(torch.tensor([0.0, 200.0, 600_000.0]))
    assert out.shape == (3, 16)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])


def test_moe_layer_incremental_equals_full_sequence():
    # KV written into slots chunk by chunk must give the same result as one pass.
    torch.manual_seed(0)
    layer = MoeTransformerLayer(dim=32, n_heads=4, n_experts=4, top_k=2, expert_dim=16, threshold_tokens=4).eval()
    h = torch.randn(10, 32)
    k = torch.zeros(64, 4, 8)
    v = torch.zeros(64, 4, 8)
    with torch.no_grad():
        full = layer(h, torch.arange(10), KvView(k.clone(), v.clone(), start=5, past_len=0))
        first = layer(h[:7], torch.arange(7), KvView(k, v, start=5, past_len=0))
        rest = layer(h[7:], torch.arange(7, 10), KvView(k, v, start=5, past_len=7))
    assert torch.allclose(torch.cat([first, rest]), full, atol=1e-4)


def test_moe_under_cuda_graph_capture_stays_on_gather_gemv(monkeypatch):
    # Capture is simulated: the torch path above the threshold must not run
    # while a CUDA graph is being captured (it syncs on routing).
    from microturn_sglang import model_blocks

    torch.manual_seed(0)
    moe = MoeFeedForward(dim=32, n_experts=4, top_k=2, expert_dim=16, threshold_tokens=2).eval()
    h = torch.randn(5, 32)
    with torch.no_grad():
        eager = moe(h)

    def no_host_sync(*args):
        raise AssertionError("per-expert torch path used during capture")

    monkeypatch.setattr(model_blocks, "moe_grouped_torch", no_host_sync)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    with torch.no_grad():
        captured = moe(h)
    assert torch.allclose(captured, eager, atol=1e-4)


def test_flow_matching_head_learns_a_target_and_samples_it():
    torch.manual_seed(0)
    head = FlowMatchingAudioHead(dim=8, n_mels=4, hidden=64)
    cond = torch.randn(2, 8)
    target = torch.tensor([[1.0, -1.0, 0.5, 0.0], [-0.5, 0.5, 1.0, -1.0]])
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    first = None
    for step in range(600):
        loss = head.loss(target, cond, generator=g)
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < first
    sample = head.sample(cond, steps=16, generator=torch.Generator().manual_seed(2))
    assert sample.shape == (2, 4)
    assert float((sample - target).abs().mean()) < 0.3
    with pytest.raises(ValueError):
        head.sample(cond, steps=0)


def test_model_assembled_from_config_runs_on_cpu():
    config = InteractionModelConfig(dim=32, n_layers=2, n_heads=2, n_experts=4, top_k=2, expert_dim=16)
    model = MicroturnInteractionModel(config).eval()
    kv = LayerKvCache(config, num_slots=128)
    embeds = torch.cat([
        model.time_marker(torch.tensor([0.0])),
        model.embed_tokens([258, 104, 105]),
        model.dmel(torch.randint(0, 16, (16, 80))),
        model.patches(torch.zeros(2, 40, 40, 3, dtype=torch.uint8)),
    ])
    hidden = model(embeds, kv, start=0, past_len=0)
    assert hidden.shape == (1, 32)
    assert 0 <= model.next_token(hidden, 0.0, torch.Generator()) < config.vocab_size
    mel = model.audio_head.sample(hidden, steps=4)
    assert mel.shape == (1, 80)
    with pytest.raises(ValueError):
        MicroturnInteractionModel(InteractionModelConfig(dim=30, n_heads=4))

import pytest
import torch

from microturn_sglang.interaction_model import InteractionModelConfig, MicroturnInteractionModel
from microturn_sglang.reference_engine import ChunkInput, Finish, OutputPiece, ReferenceEngine, TurnSummary
from microturn_sglang.session_kv import RewindOutOfRange, SessionBusy, SessionNotFound


@pytest.fixture(scope="module")
def model():
    return MicroturnInteractionModel(InteractionModelConfig()).eval()


def run_turn(engine, sid, **kw):
    events = list(engine.append(sid, ChunkInput(**kw)))
    assert isinstance(events[-1], TurnSummary)
    assert all(isinstance(e, OutputPiece) for e in events[:-1])
    return "".join(e.text for e in events[:-1]), events[-1]


def test_positions_account_for_every_modality(model):
    engine = ReferenceEngine(model, num_slots=4096)
    opened = engine.open("s", system_prompt="be brief")
    assert opened.position_tokens == 1 + len("be brief")
    codes = torch.randint(0, 16, (16, 80))
    patches = torch.randint(0, 256, (3, 40, 40, 3), dtype=torch.uint8)
    _, done = run_turn(engine, "s", text="hi", dmel_codes=codes, patches=patches, context=["note"])
    # time marker + (context tag + 4 bytes) + (user tag + 2 bytes) + 16 frames + 3 patches
    assert done.input_tokens == 1 + 5 + 3 + 16 + 3
    assert done.input_end_tokens == opened.position_tokens + done.input_tokens
    assert done.output_tokens == 0 and done.finish is Finish.LENGTH
    assert done.position_tokens == done.input_end_tokens


def test_rewind_restores_state_so_output_repeats(model):
    engine = ReferenceEngine(model, num_slots=4096)
    engine.open("s", system_prompt="sys")
    text1, done1 = run_turn(engine, "s", text="hello", max_output_tokens=6)
    assert done1.position_tokens == done1.input_end_tokens + done1.output_tokens
    pos, dropped = engine.rewind("s", done1.input_end_tokens - done1.input_tokens)
    assert dropped == done1.input_tokens + done1.output_tokens
    text2, done2 = run_turn(engine, "s", text="hello", max_output_tokens=6)
    assert (text2, done2.position_tokens) == (text1, done1.position_tokens)
    with pytest.raises(RewindOutOfRange):
        engine.rewind("s", done2.position_tokens + 1)
    with pytest.raises(RewindOutOfRange):
        engine.rewind("s", 2)  # inside the 4-token system prompt


def test_stop_string_ends_turn_without_emitting_it(model):
    engine = ReferenceEngine(model, num_slots=4096)
    engine.open("s")
    text, done = run_turn(engine, "s", text="x", max_output_tokens=6)
    if done.finish is not Finish.LENGTH or len(text) < 3:
        pytest.skip("random model produced too little text to pick a stop string")
    engine.rewind("s", 0)
    stop = text[1:3]
    text2, done2 = run_turn(engine, "s", text="x", max_output_tokens=6, stop=[stop])
    assert done2.finish is Finish.STOP
    assert text2 == text[: text.find(stop)]


def test_one_append_in_flight_and_close_aborts_it(model):
    engine = ReferenceEngine(model, num_slots=4096)
    engine.open("s")
    events = engine.append("s", ChunkInput(text="a", max_output_tokens=50))
    with pytest.raises(SessionBusy):
        engine.append("s", ChunkInput(text="b"))
    with pytest.raises(SessionBusy):
        engine.rewind("s", 0)
    engine.close("s")
    done = list(events)[-1]
    assert done.finish is Finish.ABORT
    with pytest.raises(SessionNotFound):
        engine.append("s", ChunkInput(text="c"))
    assert engine.table.pool.free_slots == engine.table.pool.num_slots


def test_growth_relocates_kv_and_keeps_outputs(model):
    # Two sessions with tiny reservations force relocation; the relocated session
    # must produce the same output as an identical session that never moved.
    moved = ReferenceEngine(model, num_slots=4096, default_capacity_tokens=8)
    moved.open("a")
    moved.open("b")
    still = ReferenceEngine(model, num_slots=4096, default_capacity_tokens=512)
    still.open("a")
    out_moved, _ = run_turn(moved, "a", text="a longer chunk of text", max_output_tokens=4)
    out_still, _ = run_turn(still, "a", text="a longer chunk of text", max_output_tokens=4)
    assert moved.table.get("a").relocations >= 1
    assert out_moved == out_still

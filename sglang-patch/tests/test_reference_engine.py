import gc

import numpy as np
import pytest
import torch

from microturn_sglang.interaction_model import TOKEN_END_OF_TURN, InteractionModelConfig, MicroturnInteractionModel
from microturn_sglang.reference_engine import (
    AUDIO_SAMPLES_PER_TOKEN,
    ChunkInput,
    Finish,
    OutputPiece,
    ReferenceEngine,
    TurnSummary,
)
from microturn_sglang.session_kv import RewindOutOfRange, SessionBusy, SessionNotFound
from microturn_sglang.vocoder import STREAM_DELAY_SAMPLES


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


def speak_turn(engine, sid, **kw):
    events = list(engine.append(sid, ChunkInput(**kw)))
    pieces, done = events[:-1], events[-1]
    return pieces, done


def test_speaking_session_carries_one_frame_of_audio_per_token(model):
    silent = ReferenceEngine(model, num_slots=4096)
    speaking = ReferenceEngine(model, num_slots=4096)
    silent.open("s", system_prompt="sys")
    speaking.open("s", system_prompt="sys", audio_output=True)
    assert speaking.speaks("s") and not silent.speaks("s")
    for temperature in (0.0, 0.8):
        quiet, quiet_done = speak_turn(silent, "s", text="hello", max_output_tokens=12, temperature=temperature)
        pieces, done = speak_turn(speaking, "s", text="hello", max_output_tokens=12, temperature=temperature)
        assert all(p.audio == b"" for p in quiet)
        # Speaking changes nothing about what is said (the audio has its own sampler).
        assert "".join(p.text for p in pieces) == "".join(p.text for p in quiet)
        assert done.position_tokens == quiet_done.position_tokens
        # One piece per spoken token (all but <end-of-turn>): its 200 samples, 12.5 ms at 16 kHz, PCM16.
        spoken = done.output_tokens - (done.finish in (Finish.STOP, Finish.SILENT))
        assert [len(p.audio) for p in pieces] == [2 * AUDIO_SAMPLES_PER_TOKEN] * spoken
        first = done.input_end_tokens + 1
        assert [p.position_tokens for p in pieces] == list(range(first, first + spoken))
        assert np.frombuffer(b"".join(p.audio for p in pieces), dtype="<i2").std() > 0
        silent.rewind("s", 4)
        speaking.rewind("s", 4)


def test_audio_is_deterministic_and_a_rewind_restarts_it(model):
    a = ReferenceEngine(model, num_slots=4096)
    b = ReferenceEngine(model, num_slots=4096)
    for engine in (a, b):
        engine.open("s", audio_output=True)
    first_a, done = speak_turn(a, "s", seq=0, text="hi", max_output_tokens=6, temperature=0.7)
    first_b, _ = speak_turn(b, "s", seq=0, text="hi", max_output_tokens=6, temperature=0.7)
    assert [p.audio for p in first_a] == [p.audio for p in first_b]
    # The next micro-turn continues the stream (different audio from a fresh start).
    second, done2 = speak_turn(a, "s", seq=1, start_ms=200, text="there", max_output_tokens=6)
    assert sum(len(p.audio) for p in second) == 2 * AUDIO_SAMPLES_PER_TOKEN * done2.output_tokens
    # Rewind to before the first turn: the voice starts fresh, so the same turn says the same again.
    a.rewind("s", 0)
    again, _ = speak_turn(a, "s", seq=0, text="hi", max_output_tokens=6, temperature=0.7)
    assert [p.audio for p in again] == [p.audio for p in first_a]
    # Continue after the rewind.
    more, done3 = speak_turn(a, "s", seq=1, start_ms=200, text="there", max_output_tokens=6)
    assert [p.audio for p in more] == [p.audio for p in second]
    assert done3.position_tokens == done2.position_tokens


def test_end_of_turn_and_stop_strings_in_a_speaking_session(model, monkeypatch):
    engine = ReferenceEngine(model, num_slots=4096)
    engine.open("s", audio_output=True)
    script = iter([ord("a"), ord("b"), ord("X"), ord("Y"), ord("c"), TOKEN_END_OF_TURN])
    monkeypatch.setattr(model, "next_token", lambda *_: next(script))
    pieces, done = speak_turn(engine, "s", text="go", max_output_tokens=10)
    assert done.finish is Finish.STOP and done.output_tokens == 6
    assert "".join(p.text for p in pieces) == "abXYc"
    # Five spoken tokens; <end-of-turn> says nothing, and ends the utterance: the vocoder's
    # held 37.5 ms come out with the last piece, fading.
    tail = 2 * STREAM_DELAY_SAMPLES
    assert [len(p.audio) for p in pieces] == [2 * AUDIO_SAMPLES_PER_TOKEN] * 5 + [tail]
    assert pieces[-1].text == "" and pieces[-1].position_tokens == done.position_tokens
    faded = np.frombuffer(pieces[-1].audio, dtype="<i2").astype(np.float64)
    assert np.abs(faded[-50:]).mean() < np.abs(faded[:50]).mean()
    script = iter([ord("a"), ord("X"), ord("Y"), ord("b")])
    pieces, done = speak_turn(engine, "s", seq=1, text="go", max_output_tokens=10, stop=["XY"])
    # The stop string is cut from the text, not from the audio: every token in the sequence was spoken.
    assert done.finish is Finish.STOP and "".join(p.text for p in pieces) == "a"
    assert [len(p.audio) for p in pieces] == [2 * AUDIO_SAMPLES_PER_TOKEN] * 3 + [tail]
    assert pieces[-1].position_tokens == done.position_tokens
    # A turn cut by its budget (LENGTH) goes on speaking next turn: nothing is flushed.
    script = iter([ord("a")] * 3)
    pieces, done = speak_turn(engine, "s", seq=2, text="go", max_output_tokens=3)
    assert done.finish is Finish.LENGTH
    assert [len(p.audio) for p in pieces] == [2 * AUDIO_SAMPLES_PER_TOKEN] * 3


def test_speech_ceiling_limits_the_voice_softly(model):
    full = ReferenceEngine(model, num_slots=4096)
    limited = ReferenceEngine(model, num_slots=4096, speech_ceiling=0.1)
    for engine in (full, limited):
        engine.open("s", audio_output=True)
    full_pieces, _ = speak_turn(full, "s", seq=0, text="hi", max_output_tokens=6)
    limited_pieces, _ = speak_turn(limited, "s", seq=0, text="hi", max_output_tokens=6)
    a = np.frombuffer(b"".join(p.audio for p in full_pieces), dtype="<i2").astype(np.float64)
    b = np.frombuffer(b"".join(p.audio for p in limited_pieces), dtype="<i2").astype(np.float64)
    assert len(a) == len(b) and b.std() > 0
    # Never above -20 dBFS; quiet samples (the fade-in) pass nearly unchanged.
    assert np.abs(b).max() <= 0.1 * 32768 + 1
    quiet = np.abs(a) < 0.01 * 32768
    assert quiet.any()
    assert np.abs(b[quiet] - a[quiet]).max() <= 0.01 * 32768 * 0.01 + 1


def test_close_and_reap_drop_the_voice(model):
    engine = ReferenceEngine(model, num_slots=4096, idle_timeout_ms=1)
    engine.open("s", audio_output=True)
    events = engine.append("s", ChunkInput(text="a", max_output_tokens=3))
    engine.close("s")
    assert engine.speaks("s")  # closes with the in-flight turn
    list(events)
    assert not engine.speaks("s")
    engine.open("t", audio_output=True)
    engine.table.get("t").last_active_ms -= 1000
    assert engine.reap_idle() == ["t"] and not engine.speaks("t")


def test_audio_output_needs_an_audio_head():
    model = MicroturnInteractionModel(InteractionModelConfig())
    model.audio_head = None
    engine = ReferenceEngine(model, num_slots=256)
    assert not engine.can_speak
    with pytest.raises(ValueError, match="audio head"):
        engine.open("s", audio_output=True)
    assert len(engine.table) == 0


def test_a_sequence_that_fills_up_mid_answer_ends_the_turn_with_length(model):
    """The turn ends with its summary (LENGTH) at the engine's max context, never
    with an error after its output went out."""
    engine = ReferenceEngine(model, num_slots=64, default_capacity_tokens=16)
    engine.open("full")
    text, done = run_turn(engine, "full", text="hello", max_output_tokens=100)
    assert done.finish is Finish.LENGTH
    assert done.position_tokens == 64 == engine.table.get("full").length
    assert done.output_tokens == 64 - done.input_end_tokens
    # Full: the next input is refused whole (too large), the session unchanged.
    with pytest.raises(Exception, match="max context"):
        run_turn(engine, "full", text="more")
    assert engine.table.get("full").length == 64


def test_a_nan_temperature_is_refused_before_anything_is_appended(model):
    engine = ReferenceEngine(model, num_slots=2048)
    engine.open("t")
    before = engine.table.get("t").length
    with pytest.raises(ValueError, match="temperature"):
        engine.append("t", ChunkInput(text="hi", max_output_tokens=2, temperature=float("nan")))
    assert engine.table.get("t").length == before and not engine.table.get("t").in_flight


@pytest.mark.parametrize("how", ["del", "close"])
def test_a_turn_dropped_before_its_first_step_leaves_the_session_as_it_was(model, how):
    engine = ReferenceEngine(model, num_slots=4096)
    engine.open("s", system_prompt="sys")
    before = engine.table.get("s").length
    events = engine.append("s", ChunkInput(seq=1, text="never sent", max_output_tokens=4))
    if how == "close":
        events.close()
    else:
        del events
        gc.collect()
    assert engine.table.get("s").length == before and not engine.table.get("s").in_flight
    text, done = run_turn(engine, "s", seq=2, text="hi", max_output_tokens=4)
    # The same as a session that never saw the dropped append.
    fresh = ReferenceEngine(model, num_slots=4096)
    fresh.open("s", system_prompt="sys")
    fresh_text, fresh_done = run_turn(fresh, "s", seq=2, text="hi", max_output_tokens=4)
    assert text == fresh_text
    assert (done.input_end_tokens, done.position_tokens) == (fresh_done.input_end_tokens, fresh_done.position_tokens)
    assert done.input_end_tokens - done.input_tokens == before
    assert engine.rewind("s", before) == (before, done.position_tokens - before)


@pytest.mark.parametrize("how", ["del", "close"])
def test_a_close_waiting_on_an_unstarted_turn_takes_effect_when_it_is_dropped(model, how):
    engine = ReferenceEngine(model, num_slots=4096)
    engine.open("s", audio_output=True)
    events = engine.append("s", ChunkInput(text="a", max_output_tokens=4))
    engine.close("s")
    if how == "close":
        events.close()
    else:
        del events
        gc.collect()
    assert "s" not in engine.table and not engine.speaks("s")
    assert engine.table.pool.free_slots == engine.table.pool.num_slots
    assert engine.open("s").position_tokens == 0


@pytest.mark.parametrize("how", ["del", "close"])
def test_a_turn_dropped_after_its_first_step_keeps_what_went_in(model, how):
    engine = ReferenceEngine(model, num_slots=4096)
    engine.open("s")
    events = engine.append("s", ChunkInput(text="abc", max_output_tokens=8))
    next(events)
    went_in = engine.table.get("s").length
    if how == "close":
        events.close()
    else:
        del events
        gc.collect()
    assert engine.table.get("s").length == went_in > 0 and not engine.table.get("s").in_flight
    _, done = run_turn(engine, "s", text="d")
    assert done.input_end_tokens - done.input_tokens == went_in

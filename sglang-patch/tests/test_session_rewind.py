"""plan_rewind: the bounds and new committed lengths of a streaming-session
rewind, without SGLang (the hooks themselves run against SGLang's real classes
in test_sglang_rewind_upstream.py)."""

import pytest

from microturn_sglang.session_rewind import REFUSAL_PREFIX, RewindPlan, plan_rewind

# A session whose last finished request had 12 committed input tokens and 2
# outputs, 13 of them in the fill array, the first 6 published to the tree.
HISTORY = dict(origin_len=12, output_len=2, fill_len=13, protected_len=6, new_input_tokens=1)


def test_rewind_inside_the_input_drops_the_output():
    assert plan_rewind(8, **HISTORY) == RewindPlan(position=8, origin_len=8, output_len=0, fill_len=8)
    assert plan_rewind(12, **HISTORY) == RewindPlan(12, 12, 0, 12)


def test_rewind_inside_the_output_keeps_its_start():
    assert plan_rewind(13, **HISTORY) == RewindPlan(13, 12, 1, 13)
    assert plan_rewind(14, **HISTORY) == RewindPlan(14, 12, 2, 13)  # the end: nothing dropped


def test_protected_prompt_is_the_lower_bound():
    assert plan_rewind(6, **HISTORY) == RewindPlan(6, 6, 0, 6)
    refusal = plan_rewind(5, **HISTORY)
    assert refusal.startswith(REFUSAL_PREFIX) and "below the session's protected prompt (6 tokens" in refusal


@pytest.mark.parametrize("position", [15, -1])
def test_past_the_end_or_negative_is_refused(position):
    refusal = plan_rewind(position, **HISTORY)
    assert refusal.startswith(REFUSAL_PREFIX) and "past the committed end of the session (14 tokens)" in refusal


def test_a_rewind_must_carry_new_input():
    refusal = plan_rewind(8, **{**HISTORY, "new_input_tokens": 0})
    assert "at least one new input token" in refusal

"""The pure sizing rules of session_reserve.py (no SGLang needed)."""

from microturn_sglang.session_reserve import (
    RESERVE_TOKENS_ENV,
    initial_reserve_tokens,
    meaningful_capacity,
    plan_growth,
)


def test_capacity_is_meaningful_only_as_a_positive_int():
    assert meaningful_capacity(1000) == 1000
    assert [meaningful_capacity(v) for v in (0, -5, None, True, 3.5, "100")] == [None] * 6


def test_initial_reservation_is_the_default_capped_by_capacity(monkeypatch):
    monkeypatch.delenv(RESERVE_TOKENS_ENV, raising=False)
    assert initial_reserve_tokens(None) == 256
    assert initial_reserve_tokens(100_000) == 256
    assert initial_reserve_tokens(40) == 40
    monkeypatch.setenv(RESERVE_TOKENS_ENV, "16")
    assert initial_reserve_tokens(0) == 16
    for bad in ("0", "-3", "lots"):  # warned, never raised inside the scheduler
        monkeypatch.setenv(RESERVE_TOKENS_ENV, bad)
        assert initial_reserve_tokens(None) == 256


def test_growth_doubles_within_free_slots_and_capacity():
    common = dict(available=10_000, seq_after=100, capacity=None, initial=256)
    assert plan_growth(need=3, granted=0, **common) == 256  # the first reservation
    assert plan_growth(need=3, granted=256, **common) == 256  # doubles the total to 512
    assert plan_growth(need=600, granted=256, **common) == 600  # the need wins over the doubling
    # Beyond the need, only half of what is free (nothing evicted for it).
    assert plan_growth(need=3, granted=1024, available=203, seq_after=100, capacity=None, initial=256) == 3 + 100
    # Never held past the session's declared capacity; the need is always asked for.
    assert plan_growth(need=3, granted=256, available=10_000, seq_after=900, capacity=1000, initial=256) == 3 + 100
    assert plan_growth(need=50, granted=256, available=10_000, seq_after=1200, capacity=1000, initial=256) == 50
    assert plan_growth(need=50, granted=0, available=20, seq_after=60, capacity=None, initial=256) == 50

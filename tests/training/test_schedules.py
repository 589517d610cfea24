"""learning_rate_at: constant, step, exponential and cosine schedules with linear warm-up."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from training.schedules import learning_rate_at

BASE = 0.1


def lr(schedule: str, epoch: int, fraction: float = 0.0, *, epochs: int = 20, warmup: int = 0,
       decay: float = 0.9) -> float:
    return learning_rate_at(base_lr=BASE, schedule=schedule, epochs=epochs, epoch=epoch,
                            fraction=fraction, warmup_epochs=warmup, lr_decay=decay)


def every_batch(epochs: int, per_epoch: int = 4):
    for epoch in range(epochs):
        for b in range(per_epoch):
            yield epoch, b / per_epoch


def test_constant_schedule_never_changes():
    for epoch, fraction in every_batch(20):
        assert lr("constant", epoch, fraction) == BASE


def test_step_schedule_drops_tenfold_at_half_and_three_quarters():
    rates = [lr("step", epoch, epochs=20) for epoch in range(20)]
    assert rates[:10] == [BASE] * 10
    assert rates[10:15] == pytest.approx([BASE * 0.1] * 5, rel=1e-12)
    assert rates[15:] == pytest.approx([BASE * 0.01] * 5, rel=1e-12)


def test_step_schedule_milestones_round_up_to_whole_epochs():
    # 10 epochs: 50 % -> epoch 5, 75 % = 7.5 -> first drop-twice epoch is 8.
    rates = [lr("step", epoch, epochs=10) for epoch in range(10)]
    assert rates == pytest.approx([BASE] * 5 + [BASE * 0.1] * 3 + [BASE * 0.01] * 2, rel=1e-12)


def test_exponential_schedule_is_base_times_decay_to_the_epoch():
    for epoch in range(20):
        assert lr("exponential", epoch, 0.5, decay=0.9) == pytest.approx(BASE * 0.9**epoch, rel=1e-12)


def test_cosine_starts_at_base_halves_at_midpoint_and_ends_near_zero():
    assert lr("cosine", 0) == pytest.approx(BASE, rel=1e-12)
    assert lr("cosine", 10) == pytest.approx(BASE / 2, rel=1e-12)
    assert lr("cosine", 19, 0.999) < BASE * 1e-5
    assert lr("cosine", 19, 1.0) == pytest.approx(0.0, abs=1e-15)
    assert lr("cosine", 5) == pytest.approx(BASE * 0.5 * (1 + math.cos(math.pi / 4)), rel=1e-12)


def test_cosine_decreases_monotonically_within_and_across_epochs():
    rates = [lr("cosine", epoch, fraction) for epoch, fraction in every_batch(20)]
    assert all(a > b for a, b in pairwise(rates))


@pytest.mark.parametrize("schedule", ["constant", "step", "exponential", "cosine"])
def test_warmup_ramps_linearly_to_base_and_is_never_zero(schedule):
    warmup = 4
    ramp = [(epoch, fraction) for epoch, fraction in every_batch(warmup)]
    rates = [lr(schedule, e, f, warmup=warmup) for e, f in ramp]
    assert all(rate > 0 for rate in rates)
    assert rates[0] < BASE * 0.01
    for (epoch, fraction), rate in zip(ramp[1:], rates[1:], strict=True):
        assert rate == pytest.approx(BASE * (epoch + fraction) / warmup, rel=1e-12)
    assert all(a < b for a, b in pairwise(rates))
    # Warm-up ends exactly at the base rate, then the schedule starts from there.
    assert lr(schedule, warmup, 0.0, warmup=warmup) == pytest.approx(BASE, rel=1e-12)


def test_cosine_after_warmup_spans_the_remaining_epochs():
    # 4 warm-up epochs of 20: the cosine runs over the other 16, so its midpoint is epoch 12.
    assert lr("cosine", 12, warmup=4) == pytest.approx(BASE / 2, rel=1e-12)
    assert lr("cosine", 19, 1.0, warmup=4) == pytest.approx(0.0, abs=1e-15)


def test_unknown_schedule_raises_value_error():
    with pytest.raises(ValueError, match="triangular"):
        lr("triangular", 3)

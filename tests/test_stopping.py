"""The stopping rule on the held-out loss (hetero_ae.training.stopping), checked against hand-worked sequences."""

from __future__ import annotations

import math

import pytest

from hetero_ae.training.stopping import Stopping


def feed(rule: Stopping, values: list[float]) -> int:
    """The epoch (1-based) at which the rule stops, or 0 if it never does."""
    for epoch, v in enumerate(values, start=1):
        rule.update(epoch, v)
        if rule.done():
            return epoch
    return 0


def test_stops_after_patience_epochs_without_improvement():
    # best at epoch 2 (0.5); epochs 3, 4 do not improve -> stop at epoch 4 with patience 2
    assert feed(Stopping(patience=2, min_delta=0.0, cap=10), [1.0, 0.5, 0.6, 0.5]) == 4


def test_an_improvement_smaller_than_min_delta_of_the_best_does_not_count():
    # 1.0 -> 0.995 is 0.5 % better: below min_delta 1 %, so it is a bad epoch
    rule = Stopping(patience=1, min_delta=0.01, cap=10)
    assert feed(rule, [1.0, 0.995]) == 2
    assert rule.best_epoch == 1 and rule.best == 1.0


def test_relative_improvement_uses_the_magnitude_of_a_negative_loss():
    # Eq. 4's loss is negative: -2.0 -> -2.03 is 1.5 % better than |-2.0|, above 1 %
    rule = Stopping(patience=1, min_delta=0.01, cap=10)
    rule.update(1, -2.0)
    assert rule.update(2, -2.03)
    assert rule.best_epoch == 2


def test_record_says_plateau_cap_or_fixed():
    plateau = Stopping(patience=1, min_delta=0.0, cap=5)
    feed(plateau, [1.0, 1.0])
    rec = plateau.record(2)
    assert (rec["stop_reason"], rec["converged"], rec["kept"], rec["best_epoch"]) == ("plateau", True, "best", 1)
    capped = Stopping(patience=3, min_delta=0.0, cap=3)
    assert feed(capped, [3.0, 2.0, 1.0]) == 0
    rec = capped.record(3)
    assert (rec["stop_reason"], rec["converged"], rec["best_epoch"]) == ("cap", False, 3)
    fixed = Stopping(patience=0, min_delta=0.0, cap=2)
    feed(fixed, [1.0, 2.0])
    assert fixed.record(2)["stop_reason"] == "fixed" and fixed.record(2)["kept"] == "last"


def test_a_non_finite_held_out_loss_raises():
    with pytest.raises(FloatingPointError):
        Stopping(patience=2, min_delta=0.0, cap=5).update(1, math.nan)


def test_state_round_trips():
    rule = Stopping(patience=2, min_delta=0.1, cap=9)
    feed(rule, [1.0, 0.95])
    assert Stopping(**rule.state()) == rule


def test_a_fixed_schedule_counts_as_converged_only_when_it_ends_on_a_plateau():
    from hetero_ae.training.stopping import plateaued

    falling = [1.0 - 0.05 * e for e in range(20)]  # improves 5 % of 1.0 every epoch to the end
    flat_end = falling[:8] + [falling[7]] * 12  # nothing better over the last 12 epochs
    assert not plateaued(falling, patience=10) and plateaued(flat_end, patience=10)
    assert not plateaued(flat_end[:5], patience=10), "too short to show a plateau"
    fixed = Stopping(patience=0, min_delta=0.0, cap=20)
    rec = fixed.record(20, flat_end)
    assert rec["stop_reason"] == "fixed" and rec["converged"]
    assert not fixed.record(20, falling)["converged"]


def test_still_falling_is_a_downward_line_through_the_last_fifth_of_the_curve():
    from scipy.stats import linregress

    from hetero_ae.training.stopping import still_falling

    flat = [10.0, 6.0, 4.0, 3.0] + [2.5 + 0.01 * (-1) ** i for i in range(16)]  # 20 epochs, flat at the end
    falling = [10.0 - 0.4 * i for i in range(20)]
    assert not still_falling(flat) and still_falling(falling)
    tail = falling[-4:]  # the last fifth of 20 epochs
    assert linregress(range(4), tail, alternative="less").pvalue < 0.05


def test_still_falling_ignores_a_fall_below_one_percent_of_the_whole():
    from hetero_ae.training.stopping import still_falling

    whole = [100.0, 50.0, 20.0] + [10.0 - 0.01 * i for i in range(17)]  # falls 0.03 over its last 4 epochs of 90
    assert not still_falling(whole)
    assert still_falling([100.0, 50.0, 20.0] + [10.0 - 1.0 * i for i in range(17)])


def test_a_curve_too_short_or_with_a_gap_cannot_show_it_converged():
    from hetero_ae.training.stopping import still_falling

    assert still_falling([3.0, 2.0, 2.0, 2.0, 2.0])  # under two fifths of three epochs each
    assert still_falling([3.0, 2.0, None, 2.0, 2.0, 2.0, 2.0, 2.0])
    assert not still_falling([3.0, 2.0] + [2.0] * 6)


def test_keep_lowest_keeps_the_lowest_epoch_whatever_min_delta():
    from hetero_ae.training.stopping import Stopping

    losses = [1.0, 0.90, 0.895, 0.893, 0.894, 0.95]  # epochs 3 and 4 beat 0.90 by less than 1 %
    saved = {}
    for keep in ("best", "lowest"):
        rule = Stopping(patience=3, min_delta=0.01, cap=10, keep=keep)
        saved[keep] = [e for e, v in enumerate(losses, start=1) if rule.update(e, v)]
        record = rule.record(len(losses))
        assert rule.done() and record["keep"] == keep
        assert record["best_epoch"] == {"best": 2, "lowest": 4}[keep]
        assert record["best_val_loss"] == {"best": 0.90, "lowest": 0.893}[keep]
    assert saved == {"best": [1, 2], "lowest": [1, 2, 3, 4]}  # the epochs whose weights were taken


def test_keep_is_checked_and_part_of_the_cache_key_only_when_set():
    import pytest

    from hetero_ae.config import TrainConfig, key_dict
    from hetero_ae.errors import ConfigError

    assert "keep" not in key_dict(TrainConfig()) and key_dict(TrainConfig(keep="lowest"))["keep"] == "lowest"
    with pytest.raises(ConfigError, match="unknown keep 'last'"):
        TrainConfig(keep="last")


def test_the_learning_rate_is_lowered_every_lr_patience_epochs_without_improvement_short_of_the_stop():
    rule = Stopping(patience=6, min_delta=0.0, cap=50, lr_patience=2, lr_factor=0.5)
    losses = [1.0, 0.9, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85]
    factors = []
    for epoch, v in enumerate(losses, start=1):
        rule.update(epoch, v)
        factors.append(rule.lower_lr())
        if rule.done():
            break
    # bad epochs: 3,4 (lowered at 4); 5 improves; 6..11 bad: lowered at 7 and 9, stop at 11 (6 bad), not lowered there
    assert factors == [1.0, 1.0, 1.0, 0.5, 1.0, 1.0, 0.5, 1.0, 0.5, 1.0, 1.0]
    assert epoch == 11 and rule.lr_steps == 3
    record = rule.record(epoch)
    assert record["lr_steps"] == 3 and record["lr_patience"] == 2 and record["lr_factor"] == 0.5
    assert "lr_steps" not in Stopping(patience=6, min_delta=0.0, cap=50).record(3)  # runs without it keep their record


def test_no_learning_rate_step_without_the_rule():
    rule = Stopping(patience=0, min_delta=0.0, cap=50, lr_patience=2)
    assert [rule.update(e, 1.0) or rule.lower_lr() for e in range(1, 8)] == [1.0] * 7 and rule.lr_steps == 0


def test_lr_patience_is_checked_and_keyed_only_when_set():
    from hetero_ae.config import TrainConfig, key_dict
    from hetero_ae.errors import ConfigError

    assert "lr_patience" not in key_dict(TrainConfig()) and "lr_factor" not in key_dict(TrainConfig())
    assert key_dict(TrainConfig(patience=15, lr_patience=5))["lr_patience"] == 5
    with pytest.raises(ConfigError, match=r"lr_patience \(5\) must be below patience \(5\)"):
        TrainConfig(patience=5, lr_patience=5)
    with pytest.raises(ConfigError, match="lr_patience must be a whole number"):
        TrainConfig(patience=5, lr_patience=-1)
    with pytest.raises(ConfigError, match="lr_factor must be between 0 and 1"):
        TrainConfig(patience=5, lr_patience=2, lr_factor=1.0)

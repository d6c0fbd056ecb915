"""The shift statistics behind 'isobench compare' and 'isobench ab', on drawn samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isobench.compare.runs import holm_adjust
from isobench.compare.shift import (
    MIN_SAMPLES,
    MinEffect,
    compare,
    hodges_lehmann,
    hodges_lehmann_paired,
    parse_min_effect,
)
from isobench.errors import UsageError


def test_hodges_lehmann_small_case() -> None:
    # The differences new - base are 1, 2, 2, 3, 3, 3, 4, 4, 5: their median is 3.
    estimate, _, _ = hodges_lehmann([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], 0.95)
    assert estimate == 3.0


def test_hodges_lehmann_paired_small_case() -> None:
    # The Walsh averages of 1, 2, 6 are 1, 1.5, 3.5, 2, 4, 6: their median is 2.75.
    estimate, _, _ = hodges_lehmann_paired([1.0, 2.0, 6.0], 0.95)
    assert estimate == 2.75


def test_interval_too_wide_for_few_samples() -> None:
    _, low, high = hodges_lehmann([1.0, 2.0], [3.0, 4.0], 0.95)
    assert low is None
    assert high is None


def test_shift_found_and_interval_covers_it() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(0.030, 0.003, 200)
    new = rng.normal(0.040, 0.003, 200)
    shift = compare(base, new, "higher")
    assert shift.verdict == "regressed"
    assert shift.ci_low is not None and shift.ci_high is not None
    assert shift.ci_low < 0.010 < shift.ci_high
    assert shift.p_value is not None and shift.p_value < 1e-10


def test_lower_is_worse_for_rates() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(500.0, 5.0, 50)
    new = rng.normal(450.0, 5.0, 50)
    assert compare(base, new, "lower").verdict == "regressed"
    assert compare(new, base, "lower").verdict == "improved"


def test_same_distribution_unchanged() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(0.5, 0.01, 300)
    new = rng.normal(0.5, 0.01, 300)
    shift = compare(base, new, "higher")
    assert shift.verdict == "unchanged"
    assert shift.reason.startswith("the 95% interval lies within")


def test_significant_below_min_effect_not_flagged() -> None:
    # A 1 % shift is real and, with 2,000 samples a side, significant; 5 % is the bar.
    rng = np.random.default_rng(4)
    base = rng.normal(1.00, 0.01, 2000)
    new = rng.normal(1.01, 0.01, 2000)
    shift = compare(base, new, "higher", min_effect=MinEffect(relative=0.05))
    assert shift.p_value is not None and shift.p_value < 0.05
    assert shift.verdict == "unchanged"


def test_noisy_small_session_inconclusive() -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(1.0, 0.5, 8)
    new = rng.normal(1.0, 0.5, 8)
    assert compare(base, new, "higher").verdict == "inconclusive"


def test_too_few_samples_inconclusive() -> None:
    shift = compare([1.0] * (MIN_SAMPLES - 1), [2.0] * 10, "higher")
    assert shift.verdict == "inconclusive"
    assert shift.p_value is None
    assert f"fewer than {MIN_SAMPLES}" in shift.reason


def test_identical_pairs_unchanged() -> None:
    values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    shift = compare(values, values, "higher", paired=True)
    assert shift.p_value == 1.0
    assert shift.shift == 0.0
    assert shift.verdict == "unchanged"


def test_pairing_removes_shared_drift() -> None:
    # Both sides drift from 200 to 400 ms over the session; B is 10 ms slower in every pair.
    rng = np.random.default_rng(6)
    drift = np.linspace(0.2, 0.4, 120)
    base = drift + rng.normal(0, 0.002, 120)
    new = drift + 0.010 + rng.normal(0, 0.002, 120)
    paired = compare(base, new, "higher", paired=True, min_effect=MinEffect(absolute=0.005))
    unpaired = compare(base, new, "higher", min_effect=MinEffect(absolute=0.005))
    assert paired.verdict == "regressed"
    assert paired.ci_low is not None and paired.ci_low > 0.009
    assert unpaired.verdict == "inconclusive"


def test_paired_needs_equal_lengths() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        compare([1.0] * 6, [1.0] * 7, "higher", paired=True)


def test_unknown_direction_rejected() -> None:
    with pytest.raises(ValueError, match="worse_when"):
        compare([1.0] * 6, [1.0] * 6, "sideways")


def test_false_alarm_rate_near_alpha() -> None:
    # 200 A/A comparisons with no minimum effect: about alpha of them are flagged.
    rng = np.random.default_rng(7)
    flagged = 0
    for _ in range(200):
        base = rng.lognormal(-3.5, 0.2, 40)
        new = rng.lognormal(-3.5, 0.2, 40)
        verdict = compare(base, new, "higher", min_effect=MinEffect(absolute=0.0)).verdict
        flagged += verdict in ("regressed", "improved")
    assert flagged <= 20


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.001, 10.0), min_size=MIN_SAMPLES, max_size=40),
    st.floats(-1.0, 1.0),
)
def test_estimate_follows_a_constant_shift(values: list[float], offset: float) -> None:
    shifted = [v + offset for v in values]
    unpaired = compare(values, shifted, "higher")
    paired = compare(values, shifted, "higher", paired=True)
    assert math.isclose(unpaired.shift, offset, abs_tol=1e-9)
    assert math.isclose(paired.shift, offset, abs_tol=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.001, 10.0), min_size=20, max_size=60), st.integers(0, 2**32 - 1))
def test_interval_contains_estimate(values: list[float], seed: int) -> None:
    rng = np.random.default_rng(seed)
    other = list(rng.permutation(values) * 1.1)
    shift = compare(values, other, "higher")
    assert shift.ci_low is not None and shift.ci_high is not None
    assert shift.ci_low <= shift.shift <= shift.ci_high


def test_large_sets_thinned_without_error() -> None:
    rng = np.random.default_rng(8)
    base = rng.normal(1.0, 0.1, 5000)
    new = rng.normal(1.2, 0.1, 5000)
    shift = compare(base, new, "higher")
    assert shift.verdict == "regressed"
    assert math.isclose(shift.shift, 0.2, abs_tol=0.02)


@pytest.mark.parametrize(
    ("text", "relative", "absolute"),
    [
        ("5%", 0.05, None),
        ("0.5 %", 0.005, None),
        ("10ms", None, 0.01),
        ("0.01s", None, 0.01),
        ("250us", None, 0.00025),
        ("3", None, 3.0),
    ],
)
def test_min_effect_parsed(text: str, relative: float | None, absolute: float | None) -> None:
    effect = parse_min_effect(text)
    assert effect.relative == pytest.approx(relative) if relative else effect.relative is None
    assert effect.absolute == pytest.approx(absolute) if absolute else effect.absolute is None


@pytest.mark.parametrize("text", ["", "five", "5 percent", "-3%", "10 min"])
def test_min_effect_invalid(text: str) -> None:
    with pytest.raises(UsageError, match="invalid minimum effect"):
        parse_min_effect(text)


def test_holm_adjustment() -> None:
    # Sorted: 0.01 x3 = 0.03, 0.02 x2 = 0.04, 0.04 x1 = 0.04 (kept monotone).
    adjusted = holm_adjust([0.04, 0.01, None, 0.02])
    assert adjusted[1] == pytest.approx(0.03)
    assert adjusted[3] == pytest.approx(0.04)
    assert adjusted[0] == pytest.approx(0.04)
    assert adjusted[2] is None


def test_interval_reaching_into_min_effect_inconclusive() -> None:
    # A 5 % shift against a 5 % minimum effect: significant, but the interval straddles 5 %.
    rng = np.random.default_rng(9)
    base = rng.normal(1.00, 0.05, 200)
    new = rng.normal(1.05, 0.05, 200)
    shift = compare(base, new, "higher", min_effect=MinEffect(relative=0.05))
    assert shift.p_value is not None and shift.p_value < 1e-6
    assert shift.ci_low is not None and shift.ci_low < shift.min_effect
    assert shift.verdict == "inconclusive"
    assert "reaches into the minimum effect" in shift.reason


def test_real_shift_below_min_effect_rarely_flagged() -> None:
    # 100 sessions with a real 3 % shift against a 5 % minimum effect.
    rng = np.random.default_rng(10)
    flagged = 0
    for _ in range(100):
        base = rng.normal(0.030, 0.003, 60)
        new = rng.normal(0.0309, 0.003, 60)
        flagged += compare(base, new, "higher", paired=True).verdict == "regressed"
    assert flagged <= 3

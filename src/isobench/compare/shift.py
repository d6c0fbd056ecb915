"""The shift between two sets of benchmark samples, and its verdict.

Two independent sample sets (a baseline run and a new run) are compared with
the Mann-Whitney U test and the Hodges-Lehmann estimate of the shift: the
median of every difference ``new - base`` between a new and a baseline
sample. Samples taken in pairs (an A/B session alternates the two sides) are
compared with the Wilcoxon signed-rank test on the pair differences and the
one-sample Hodges-Lehmann estimate: the median of the Walsh averages
``(d_i + d_j) / 2``, ``i <= j``. Pairing removes drift that both sides of a
pair share, such as a daemon that slows down over minutes.

Both confidence intervals are the distribution-free ones that invert the
same rank test: order statistics of the differences (or Walsh averages),
picked with the normal approximation of the test's critical value. A shift
whose interval excludes 0 is therefore also significant by the test, up to
the approximation.

The verdict needs both significance and size, so one interval decides it. A
shift is ``regressed`` or ``improved`` when the test rejects "no shift" at
``alpha`` and the whole interval lies past the minimum effect in that
direction: the shift is then larger than the minimum effect with about
``1 - alpha/2`` confidence, and a real shift smaller than it is flagged at most
about ``alpha/2`` of the time. It is ``unchanged`` when the whole interval lies
within the minimum effect on both sides, and ``inconclusive`` otherwise: too
few samples, or too much noise, to tell.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from scipy.stats import mannwhitneyu, wilcoxon  # type: ignore[import-untyped]

from isobench.errors import UsageError

Verdict = Literal["regressed", "improved", "unchanged", "inconclusive"]
VERDICTS: tuple[Verdict, ...] = ("regressed", "improved", "unchanged", "inconclusive")

DEFAULT_ALPHA = 0.05
#: Below this many samples a side, the rank tests cannot reach ``alpha`` = 0.05
#: (with 3 and 3 the smallest two-sided p of Mann-Whitney U is 0.1).
MIN_SAMPLES = 5
# The largest difference matrix built at once: 8 MB of float64. Larger sample
# sets are first thinned to every k-th sorted value.
MAX_DIFFERENCES = 1_000_000


@dataclass(frozen=True)
class MinEffect:
    """The smallest shift that counts: a fraction of the baseline median, or an absolute value."""

    relative: float | None = None
    absolute: float | None = None

    def threshold(self, base_median: float) -> float:
        """Return the minimum effect in the unit of the samples, for this baseline."""
        if self.absolute is not None:
            return self.absolute
        return abs(base_median) * (self.relative or 0.0)

    def __str__(self) -> str:
        if self.absolute is not None:
            return f"{self.absolute:g}"
        return f"{(self.relative or 0.0) * 100:g}%"


DEFAULT_MIN_EFFECT = MinEffect(relative=0.05)

_DURATION_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_min_effect(text: str) -> MinEffect:
    """Parse ``2%``, ``0.5%``, ``10ms``, ``0.01s`` or a bare number in the metric's unit."""
    value = text.strip()
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%|s|ms|us|µs|ns)?", value)
    if match is None:
        raise UsageError(
            f"invalid minimum effect {text!r}: give a percentage of the baseline median "
            "(2%), a duration (10ms, 0.01s) or a number in the metric's unit"
        )
    number = float(match.group(1))
    unit = match.group(2)
    if unit == "%":
        return MinEffect(relative=number / 100)
    if unit is None:
        return MinEffect(absolute=number)
    return MinEffect(absolute=number * _DURATION_UNITS[unit])


@dataclass(frozen=True)
class Shift:
    """The comparison of one metric: base (A) against new (B)."""

    #: "unpaired" (Mann-Whitney U) or "paired" (Wilcoxon signed-rank).
    method: str
    n_base: int
    n_new: int
    base_median: float
    new_median: float
    #: Hodges-Lehmann estimate of new - base, in the metric's unit.
    shift: float
    ci_low: float | None
    ci_high: float | None
    confidence: float
    p_value: float | None
    #: The minimum effect in the metric's unit, and as given.
    min_effect: float
    min_effect_text: str
    #: "higher" or "lower": the direction in which values are worse.
    worse_when: str
    verdict: Verdict
    reason: str

    @property
    def relative_shift(self) -> float | None:
        """The shift as a fraction of the baseline median."""
        if self.base_median == 0:
            return None
        return self.shift / abs(self.base_median)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["relative_shift"] = self.relative_shift
        return record


def hodges_lehmann(
    base: Sequence[float], new: Sequence[float], confidence: float
) -> tuple[float, float | None, float | None]:
    """Return the two-sample shift estimate of new - base and its confidence interval."""
    x = _thin(np.sort(np.asarray(base, dtype=float)))
    y = _thin(np.sort(np.asarray(new, dtype=float)))
    differences = np.sort(np.subtract.outer(y, x).ravel())
    estimate = float(np.median(differences))
    n, m = len(x), len(y)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    # The rank of the lower bound among the n*m sorted differences.
    k = math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))
    if k < 1:
        return estimate, None, None
    return estimate, float(differences[k - 1]), float(differences[n * m - k])


def hodges_lehmann_paired(
    differences: Sequence[float], confidence: float
) -> tuple[float, float | None, float | None]:
    """Return the one-sample shift estimate of paired differences and its confidence interval."""
    d = _thin(np.sort(np.asarray(differences, dtype=float)))
    upper = np.triu_indices(len(d))
    walsh = np.sort(((d[:, None] + d[None, :]) / 2)[upper])
    estimate = float(np.median(walsh))
    n = len(d)
    count = n * (n + 1) // 2
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    k = math.floor(count / 2 - z * math.sqrt(n * (n + 1) * (2 * n + 1) / 24))
    if k < 1:
        return estimate, None, None
    return estimate, float(walsh[k - 1]), float(walsh[count - k])


def _thin(values: np.ndarray) -> np.ndarray:
    """Keep every k-th sorted value so that a difference matrix stays within MAX_DIFFERENCES."""
    limit = int(math.sqrt(MAX_DIFFERENCES))
    if len(values) <= limit:
        return values
    step = math.ceil(len(values) / limit)
    return values[step // 2 :: step]


def compare(
    base: Sequence[float],
    new: Sequence[float],
    worse_when: str = "higher",
    *,
    paired: bool = False,
    alpha: float = DEFAULT_ALPHA,
    min_effect: MinEffect = DEFAULT_MIN_EFFECT,
) -> Shift:
    """Compare two sample sets of one metric and give the verdict for ``new`` against ``base``.

    With ``paired``, ``base[i]`` and ``new[i]`` are one pair, so both must have
    the same length. ``worse_when`` is "higher" for durations and sizes and
    "lower" for rates.
    """
    if worse_when not in ("higher", "lower"):
        raise ValueError(f"worse_when must be 'higher' or 'lower', not {worse_when!r}")
    if paired and len(base) != len(new):
        raise ValueError(f"paired samples need equal lengths, not {len(base)} and {len(new)}")
    confidence = 1 - alpha
    base_median = float(np.median(base)) if len(base) else math.nan
    new_median = float(np.median(new)) if len(new) else math.nan
    threshold = min_effect.threshold(base_median) if len(base) else math.nan
    common: dict[str, Any] = {
        "method": "paired" if paired else "unpaired",
        "n_base": len(base),
        "n_new": len(new),
        "base_median": base_median,
        "new_median": new_median,
        "confidence": confidence,
        "min_effect": threshold,
        "min_effect_text": str(min_effect),
        "worse_when": worse_when,
    }
    if min(len(base), len(new)) < MIN_SAMPLES:
        return Shift(
            **common,
            shift=new_median - base_median if len(base) and len(new) else math.nan,
            ci_low=None,
            ci_high=None,
            p_value=None,
            verdict="inconclusive",
            reason=f"fewer than {MIN_SAMPLES} samples on a side ({len(base)} and {len(new)})",
        )

    if paired:
        differences = np.asarray(new, dtype=float) - np.asarray(base, dtype=float)
        estimate, low, high = hodges_lehmann_paired(differences, confidence)
        p_value = _paired_p(differences)
    else:
        estimate, low, high = hodges_lehmann(base, new, confidence)
        p_value = float(mannwhitneyu(new, base, alternative="two-sided").pvalue)

    verdict, reason = verdict_for(estimate, low, high, p_value, alpha, threshold, worse_when)
    return Shift(
        **common,
        shift=estimate,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        verdict=verdict,
        reason=reason,
    )


def _paired_p(differences: np.ndarray) -> float:
    if not np.any(differences):
        return 1.0
    return float(wilcoxon(differences, zero_method="wilcox", alternative="two-sided").pvalue)


def verdict_for(
    estimate: float,
    low: float | None,
    high: float | None,
    p_value: float,
    alpha: float,
    threshold: float,
    worse_when: str,
) -> tuple[Verdict, str]:
    """Return the verdict of one shift and the reason for it, in words."""
    if low is None or high is None:
        return "inconclusive", "too few samples for a confidence interval"
    level = f"{1 - alpha:.0%}"
    beyond_high = low > 0 and low >= threshold
    beyond_low = high < 0 and high <= -threshold
    if p_value < alpha and (beyond_high or beyond_low):
        worse = beyond_high if worse_when == "higher" else beyond_low
        direction: Verdict = "regressed" if worse else "improved"
        return direction, (
            f"p = {p_value:.2g} < {alpha:g} and the whole {level} interval is past the "
            "minimum effect"
        )
    if -threshold < low and high < threshold:
        return "unchanged", f"the {level} interval lies within the minimum effect"
    if p_value < alpha:
        return "inconclusive", (
            f"p = {p_value:.2g}, but the {level} interval reaches into the minimum effect, "
            "so the shift may be too small to count"
        )
    return "inconclusive", (
        f"p = {p_value:.2g} and the {level} interval reaches past the minimum effect: "
        "more samples would tell"
    )

"""Remaining time read straight off past cases: censoring-aware, bounded, backed off by sample count.

Every estimate here comes from Kaplan-Meier curves on weighted, right-censored samples (open jobs
count as "at least this long", so the survivorship of a young history, where only the short jobs
have finished, does not make estimates short). Two rules keep them sane on processes never seen:

- **Bounded tail.** Where a curve never falls to the wanted level (too much is still open), the
  mass left beyond the longest sample is spread as an exponential tail whose mean residual is that
  sample: a quantile is then at most ``(1 + ln 10)`` times the longest time seen in the group.
- **Lindy beyond the evidence.** For a job older than all but ``min_at_risk`` past jobs, the
  residual of the last age with enough jobs still at risk grows in proportion to the job's age
  (at most ``MAX_SLOPE`` times it): it widens smoothly, never exponentially.

Fine groups are shrunk towards coarser ones by ``n / (n + n0)`` (in log time), so a thin group moves
the estimate only as far as its evidence allows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tracker.estimates.history import BoolArray, FloatArray, IntArray

PROBS = (0.5, 0.9)
MIN_AT_RISK = 10
MAX_SLOPE = 4.0  # beyond the evidence a residual grows at most this many times as fast as the age
SHRINKAGE = 20.0
_FLOOR = 60.0  # shrinkage in log time: durations below a minute count as a minute


def _sorted_survival(
    times: FloatArray, done: BoolArray, weights: FloatArray
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Times in order (completions before censorings at ties) and the KM survival after each."""
    order = np.lexsort((~done, times))
    t, d, w = times[order], done[order], weights[order]
    at_risk = np.cumsum(w[::-1])[::-1]
    survival = np.cumprod(1.0 - np.where(d, w / np.maximum(at_risk, 1e-300), 0.0))
    return t, np.asarray(survival, dtype=np.float64), d


def tail_quantile(longest: FloatArray, left: FloatArray, level: FloatArray) -> FloatArray:
    """Quantile in an exponential tail beyond ``longest`` holding the survival ``left``: where the
    survival reaches ``level`` (< ``left``), with a mean residual of ``longest``."""
    return np.asarray(longest * (1.0 + np.log(np.maximum(left, 1e-12) / np.maximum(level, 1e-12))))


def grouped_quantiles(
    groups: IntArray,
    times: FloatArray,
    done: BoolArray,
    n_groups: int,
    probs: Sequence[float] = PROBS,
) -> tuple[FloatArray, IntArray]:
    """KM quantiles of ``times`` per group (rows: groups, columns: probs) and each group's size.

    Groups without samples get NaN; a level the curve never reaches comes from the bounded tail.
    """
    result = np.full((n_groups, len(probs)), np.nan)
    size = np.bincount(groups, minlength=n_groups)
    if times.size == 0:
        return result, size
    # By group, then time, completions first at equal times, in one sort of a composite key.
    span = 2.0 * (float(np.abs(times).max()) + 1.0)
    order = np.argsort(groups * span + (times - 1e-3 * done))
    g, t, d = groups[order], times[order], done[order]
    end = np.cumsum(size)
    start = end - size
    at_risk = (end[g] - np.arange(g.size)).astype(np.float64)
    log_s = np.cumsum(np.log(np.maximum(1.0 - np.where(d, 1.0 / at_risk, 0.0), 1e-300)))
    log_s -= np.r_[0.0, log_s][start][g]
    climb = g + (1.0 - np.exp(log_s))
    present = size > 0
    last = np.maximum(end - 1, 0)
    left = np.where(present, np.exp(log_s[last]), 1.0)
    longest = np.where(present, t[last], 0.0)
    for j, p in enumerate(probs):
        index = np.searchsorted(climb, np.arange(n_groups) + p - 1e-12, side="left")
        reached = (index < end) & present
        tail = tail_quantile(longest, left, np.full(n_groups, 1.0 - p))
        result[:, j] = np.where(reached, t[np.minimum(index, t.size - 1)], np.where(present, tail, np.nan))
    return result, size


def residual_quantiles(
    durations: FloatArray,
    done: BoolArray,
    ages: FloatArray,
    probs: Sequence[float] = PROBS,
    min_at_risk: int = MIN_AT_RISK,
) -> tuple[FloatArray, FloatArray]:
    """Quantiles of D - a given D > a for each age ``a`` in ``ages`` (rows: ages, columns: probs),
    from durations D (open ones censored), and the number still at risk at each age.

    Past the last age with ``min_at_risk`` jobs at risk, the residual there grows with age.
    """
    ages = np.maximum(np.asarray(ages, dtype=np.float64), 0.0)
    result = np.zeros((ages.size, len(probs)))
    if durations.size == 0:
        return result, np.zeros(ages.size)
    t, survival, _ = _sorted_survival(durations, done, np.ones(durations.size))
    n = t.size
    # The last age with enough at risk: the min_at_risk-th longest duration (just below it).
    anchor = float(t[max(n - min_at_risk, 0)]) if n >= min_at_risk else 0.0
    at = np.minimum(ages, anchor)
    at_risk = n - np.searchsorted(t, ages, side="right")
    before = np.searchsorted(t, at, side="right") - 1
    s_at = np.where(before >= 0, survival[np.maximum(before, 0)], 1.0)
    left, longest = float(survival[-1]), float(t[-1])
    for j, p in enumerate(probs):
        target = (1.0 - p) * s_at
        index = np.searchsorted(-survival, -target - 1e-12, side="left")
        reached = index < n
        value = np.where(
            reached,
            t[np.minimum(index, n - 1)],
            tail_quantile(np.full(ages.size, longest), np.full(ages.size, left), target),
        )
        residual = np.maximum(value - at, 0.0)
        slope = np.minimum(residual / np.maximum(at, 1e-9), MAX_SLOPE)
        result[:, j] = np.where(ages > at, np.maximum(residual, slope * ages), residual)
    return result, at_risk.astype(np.float64)


def shrink(fine: FloatArray, n_fine: FloatArray, coarse: FloatArray, n0: float = SHRINKAGE) -> FloatArray:
    """``fine`` pulled towards ``coarse`` by n / (n + n0), in log time; NaN or empty fine groups give
    ``coarse``."""
    n = np.where(np.isnan(fine).any(axis=-1, keepdims=True), 0.0, n_fine.reshape(*n_fine.shape, 1))
    w = n / (n + n0)
    log_fine = np.log(np.maximum(np.nan_to_num(fine, nan=_FLOOR), _FLOOR))
    log_coarse = np.log(np.maximum(coarse, _FLOOR))
    blended = np.exp(w * log_fine + (1 - w) * log_coarse)
    # Below a minute the blend is not trusted in log time: keep the coarse value's scale.
    return np.asarray(np.where((fine < _FLOOR) & (coarse < _FLOOR), w * fine + (1 - w) * coarse, blended))

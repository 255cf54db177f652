"""Kaplan-Meier estimates on weighted, right-censored samples (numpy only)."""

from __future__ import annotations

import numpy as np

from tracker.estimates.history import BoolArray, FloatArray, IntArray


def km_masses(
    times: FloatArray, done: BoolArray, weights: FloatArray
) -> tuple[FloatArray, FloatArray, float]:
    """Probability mass of the KM estimate at each observed completion, and the mass left beyond.

    Censored samples (``done`` False) count as "at least this long": they stay in the risk set up
    to their time and then hand their weight to the longer samples, so slow open visits make a
    stage look slower, never faster. Returns ``(support, mass, leftover)`` with support sorted.
    """
    if times.size == 0:
        return np.zeros(0), np.zeros(0), 1.0
    order = np.lexsort((~done, times))  # completions before censorings at equal times
    t, d, w = times[order], done[order], weights[order]
    at_risk = np.cumsum(w[::-1])[::-1]
    hazard = np.where(d, w / np.maximum(at_risk, 1e-300), 0.0)
    survival = np.cumprod(1.0 - hazard)
    before = np.concatenate(([1.0], survival[:-1]))
    mass = before - survival
    return t[d], mass[d], float(survival[-1])


def newest_per_group(groups: IntArray, times: FloatArray, limit: int, counted: BoolArray) -> BoolArray:
    """Mask of the samples of every group since its ``limit``-th newest counted sample.

    Selecting on time only (never on outcome) keeps the Kaplan-Meier estimate unbiased; counting
    only completed samples guarantees ``limit`` real outcomes even when most recent jobs are
    still open.
    """
    if groups.size == 0 or np.bincount(groups - groups.min(), weights=counted).max() <= limit:
        return np.ones(groups.size, dtype=np.bool_)
    order = np.lexsort((-times, groups))
    sorted_groups, hits = groups[order], counted[order].astype(np.int64)
    first = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    running = np.cumsum(hits)
    before_group = np.repeat(running[first] - hits[first], np.diff(np.r_[first, sorted_groups.size]))
    newer = running - hits - before_group  # counted samples strictly before this one in the group
    keep = np.zeros(groups.size, dtype=np.bool_)
    keep[order] = newer < limit
    return keep

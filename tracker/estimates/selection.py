"""Let the data choose: score candidate predictors on recent outcomes and keep the best.

Candidates are scored on the same recent predictions with a censoring-aware absolute error: a
job that has closed counts its exact error; a job still open counts what is already certain, how
far it has run past the candidate's P50 (zero while it has not). Scoring only the closed jobs would
reward predicting short, because the jobs that close first are the short ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tracker.estimates.history import BoolArray, FloatArray, IntArray

Why = Literal["few_outcomes", "clearly_best", "no_clear_winner", "not_scored"]
"""What decided the choice, for readers in any language: too few known outcomes to score on (the
default), a candidate clearly better than the default, none clearly better (the default), or no
scoring yet."""

MIN_RESOLVED = 30
MARGIN = 0.01
Z = 2.0
_DAY = 86_400.0


@dataclass(frozen=True)
class Choice:
    """The candidate chosen, why, and every candidate's score (mean absolute error, seconds)."""

    name: str
    reason: str
    errors: dict[str, float]
    samples: int
    why: Why
    outcomes: int
    """How many jobs' outcomes were known (closed) among those scored on."""


def geometric_blend(a: FloatArray, b: FloatArray) -> FloatArray:
    """Geometric mean of two predictors' remaining times (below a second counted as a second): a
    blend in log time, where their errors are of comparable size whatever the job's length."""
    return np.asarray(np.sqrt(np.maximum(a, 1.0) * np.maximum(b, 1.0)), dtype=np.float64)


def prediction_errors(p50: FloatArray, observed: FloatArray, resolved: BoolArray) -> FloatArray:
    """Absolute error of each prediction of each row of ``p50`` (candidates x predictions); open
    outcomes (``resolved`` False, ``observed`` the time elapsed so far) count only their certain
    part."""
    exact = np.abs(p50 - observed)
    certain = np.maximum(observed - p50, 0.0)
    return np.asarray(np.where(resolved, exact, certain), dtype=np.float64)


def censored_errors(
    p50: FloatArray, observed: FloatArray, resolved: BoolArray, weights: FloatArray | None = None
) -> FloatArray:
    """Mean of :func:`prediction_errors` per candidate, weighted by ``weights`` when given."""
    errors = prediction_errors(p50, observed, resolved)
    return np.asarray(np.average(errors, axis=1, weights=weights), dtype=np.float64)


def choose(
    names: Sequence[str],
    p50: FloatArray,
    observed: FloatArray,
    resolved: BoolArray,
    *,
    default: str,
    min_resolved: int = MIN_RESOLVED,
    weights: FloatArray | None = None,
    cases: IntArray | None = None,
) -> Choice:
    """The candidate with the lowest censoring-aware error (each prediction weighted by
    ``weights`` when given) among those that beat ``default`` clearly: by more than ``MARGIN`` of
    its error (a difference that small does not matter) and by more than ``Z`` standard errors of
    the paired differences (one that uncertain is noise, not evidence). ``default`` while fewer than
    ``min_resolved`` outcomes are known or no candidate beats it clearly; with ``cases`` (the job
    of each prediction), outcomes are counted by job: the predictions of one job share one
    outcome."""
    n_resolved = int(resolved.sum() if cases is None else np.unique(cases[resolved]).size)
    if n_resolved < min_resolved:
        reason = f"{n_resolved} outcomes known, fewer than {min_resolved}: the default"
        return Choice(default, reason, {}, 0, "few_outcomes", n_resolved)
    w = np.ones(observed.size) if weights is None else weights / weights.sum()
    w = w / w.sum()
    each = prediction_errors(p50, observed, resolved)
    # Row by row, not as a matrix product: two candidates that predict alike then score exactly
    # alike, and the first listed wins the tie.
    errors = (each * w).sum(axis=1)
    fallback = list(names).index(default)
    gain = each[fallback] - each  # per prediction, how much each candidate does better
    mean_gain = (gain * w).sum(axis=1)
    spread = np.sqrt((((gain - mean_gain[:, None]) ** 2) * w**2).sum(axis=1))
    clear = (mean_gain > MARGIN * errors[fallback]) & (mean_gain > Z * spread)
    best = int(np.argmin(np.where(clear, errors, np.inf))) if clear.any() else fallback
    scores = {name: float(e) for name, e in zip(names, errors, strict=True)}
    listed = ", ".join(
        f"{name} {scores[name] / _DAY:.3f} d" for name in sorted(scores, key=scores.__getitem__)
    )
    seen = f"on the {observed.size} newest predictions ({n_resolved} closed)"
    if clear.any():
        reason = f"lowest mean error {seen}, clearly below {default}'s: {listed}"
    else:
        reason = (
            f"{default}, the default: no candidate beats it clearly (by {MARGIN:.0%} and"
            f" {Z:g} standard errors) {seen}: {listed}"
        )
    why: Why = "clearly_best" if clear.any() else "no_clear_winner"
    return Choice(names[best], reason, scores, int(observed.size), why, n_resolved)

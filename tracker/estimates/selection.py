"""Let the data choose: score candidate predictors on recent outcomes and keep the best.

Candidates are scored on the same recent predictions with a censoring-aware absolute error: a
job that has closed counts its exact error; a job still open counts what is already certain, how
far it has run past the candidate's P50 (zero while it has not). Scoring only the closed jobs would
reward predicting short, because the jobs that close first are the short ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tracker.estimates.history import BoolArray, FloatArray

MIN_RESOLVED = 30
MARGIN = 0.01
_DAY = 86_400.0


@dataclass(frozen=True)
class Choice:
    """The candidate chosen, why, and every candidate's score (mean absolute error, seconds)."""

    name: str
    reason: str
    errors: dict[str, float]
    samples: int


def censored_errors(p50: FloatArray, observed: FloatArray, resolved: BoolArray) -> FloatArray:
    """Mean absolute error of each row of ``p50`` (candidates x predictions); open outcomes
    (``resolved`` False, ``observed`` the time elapsed so far) count only their certain part."""
    exact = np.abs(p50 - observed)
    certain = np.maximum(observed - p50, 0.0)
    return np.asarray(np.where(resolved, exact, certain).mean(axis=1), dtype=np.float64)


def choose(
    names: Sequence[str],
    p50: FloatArray,
    observed: FloatArray,
    resolved: BoolArray,
    *,
    default: str,
    min_resolved: int = MIN_RESOLVED,
) -> Choice:
    """The candidate with the lowest censoring-aware error; ``default`` while fewer than
    ``min_resolved`` outcomes are known, or while no candidate beats it by more than ``MARGIN``
    (a difference that small is noise, not evidence)."""
    n_resolved = int(resolved.sum())
    if n_resolved < min_resolved:
        return Choice(default, f"{n_resolved} outcomes known, fewer than {min_resolved}: the default", {}, 0)
    errors = censored_errors(p50, observed, resolved)
    best = int(np.argmin(errors))
    if errors[best] >= (1 - MARGIN) * errors[list(names).index(default)]:
        best = list(names).index(default)
    scores = {name: float(e) for name, e in zip(names, errors, strict=True)}
    listed = ", ".join(
        f"{name} {scores[name] / _DAY:.2f} d" for name in sorted(scores, key=scores.__getitem__)
    )
    reason = f"lowest mean error on the {observed.size} newest predictions ({n_resolved} closed): {listed}"
    return Choice(names[best], reason, scores, int(observed.size))

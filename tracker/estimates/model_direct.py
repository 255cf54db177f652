"""Direct history: what actually remained for past jobs seen in the same position.

Every past job contributes one *moment* per stage it entered (and per stage it completed): where
it stood, how long its next step took, and how long it then took to close (right-censored while
the job is still open). For a group of moments (same position, optionally same age and number of
completed stages), the remaining time of a job that has already spent *a* in its step is read off
the moments whose next step outlasted *a*, with Kaplan-Meier for the open jobs. Everything here is
vectorised across groups: one fit handles hundreds of groups with a few dozen numpy calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracker.estimates.history import BoolArray, FloatArray, IntArray, VisitTable
from tracker.estimates.residual import shrink

# Elapsed-time grid: 0, then 1 min growing by 25 % per step up to ~9 years.
GRID: FloatArray = np.concatenate(([0.0], 60.0 * 1.25 ** np.arange(72)))
_PROBS = (0.5, 0.9)
_MAX_POINTS = 12


@dataclass(frozen=True)
class Moments:
    """Moments at which a past job could have been predicted, with what happened next."""

    position: IntArray
    completed: IntArray
    time: FloatArray
    first: FloatArray  # time until the job's next stage completion (or censoring)
    remaining: FloatArray  # time until the job closed (or censoring)
    closed: BoolArray  # remaining is exact (the job closed)
    case: IntArray
    age: FloatArray  # working time since the job began
    handler: IntArray  # who finished the job's last completed visit (-1: unknown or none)


def moments_of(
    table: VisitTable, is_last: BoolArray, case: IntArray, *, inside_stages: bool = True
) -> Moments:
    """Positions are: inside stage s (s), just after stage x (S + x), not started (2S).

    Without ``inside_stages`` the moments inside stages are left out (for event logs, where a
    job's current stage is never known).
    """
    s = len(table.stage_keys)
    duration = np.where(table.informative, table.duration, 0.0)
    before = np.cumsum(duration) - duration
    before -= before[table.case_start[:-1][case]]
    total = np.bincount(case, weights=duration, minlength=table.n_cases) + table.case_open_s
    closed = table.case_finished[case]
    from_entry = total[case] - before
    # Inside stage s from its entry: the visit itself is the first step.
    inside = np.flatnonzero(table.informative & inside_stages)
    # Just after a finished visit of an open job (or before the last visit of a closed one).
    after = np.flatnonzero(table.finished & ~(is_last & closed))
    nxt = np.minimum(after + 1, table.stage.size - 1)
    after_first = np.where(is_last[after], table.case_open_s[case[after]], duration[nxt])
    after_time = np.where(is_last[after], table.entered[after], table.entered[nxt])
    starts = table.case_start[:-1][np.diff(table.case_start) > 0]
    index_in_case = np.arange(table.stage.size) - table.case_start[case]
    handler = np.full(table.stage.size, -1, np.int64) if table.handler is None else table.handler
    handler_before = np.where(index_in_case > 0, np.roll(handler, 1), -1)
    return Moments(
        position=np.concatenate([table.stage[inside], s + table.stage[after], np.full(starts.size, 2 * s)]),
        completed=np.concatenate(
            [index_in_case[inside], index_in_case[after] + 1, np.zeros(starts.size, np.int64)]
        ),
        time=np.concatenate([table.entered[inside], after_time, table.entered[starts]]),
        first=np.concatenate([duration[inside], after_first, duration[starts]]),
        remaining=np.concatenate(
            [from_entry[inside], from_entry[after] - duration[after], total[case[starts]]]
        ),
        closed=np.concatenate([closed[inside], closed[after], closed[starts]]),
        case=np.concatenate([case[inside], case[after], case[starts]]),
        age=np.concatenate([before[inside], before[after] + duration[after], np.zeros(starts.size)]),
        handler=np.concatenate([handler_before[inside], handler[after], np.full(starts.size, -1, np.int64)]),
    )


@dataclass(frozen=True)
class DirectLevel:
    """Residual P50/P90 rows on :data:`GRID` for the groups with enough history (NaN where the
    group's history runs out along the elapsed axis)."""

    keys: IntArray
    q50: FloatArray
    q90: FloatArray
    samples: IntArray


@dataclass(frozen=True)
class RankedMoments:
    """Moments with their ranks by time (newest first), remaining time and first step, so each
    grouping needs only integer sorts."""

    moments: Moments
    weights: FloatArray
    newest: IntArray
    by_remaining: IntArray
    first_cell: IntArray  # number of grid times below the first step

    @classmethod
    def of(cls, moments: Moments, weights: FloatArray) -> RankedMoments:
        def ranks(values: FloatArray) -> IntArray:
            rank = np.empty(values.size, dtype=np.int64)
            rank[np.argsort(values, kind="stable")] = np.arange(values.size)
            return rank

        first_cell = np.searchsorted(GRID, moments.first, side="left")
        return cls(moments, weights, ranks(-moments.time), ranks(moments.remaining), first_cell)

    def order(self, keys: IntArray, rank: IntArray) -> IntArray:
        """Positions in ``keys`` sorted by key, then by ``rank`` (a rank of this object)."""
        return np.argsort(keys * self.newest.size + rank)


def direct_level(
    keys: IntArray, ranked: RankedMoments, *, window: int, min_samples: int, timeless: BoolArray
) -> DirectLevel:
    """Group moments by ``keys`` (non-negative) and estimate each group's residual quantiles.

    Each group keeps its moments back to its ``window``-th newest closed one (a cut on time only,
    so the open jobs left in stay an unbiased, censored sample). Groups smaller than
    ``min_samples`` are dropped. Moments flagged ``timeless`` (jobs not started yet) ignore the
    elapsed time. The elapsed axis is sampled at a few grid times chosen by how many of the
    group's next steps outlast them, and interpolated in between.
    """
    moments = ranked.moments
    use = _within_window(keys, ranked, window)
    use &= np.bincount(keys, weights=use, minlength=int(keys.max(initial=0)) + 1)[keys] >= min_samples
    sel = np.flatnonzero(use)
    if sel.size == 0:
        empty = np.zeros((0, GRID.size))
        return DirectLevel(np.zeros(0, np.int64), empty, empty, np.zeros(0, np.int64))
    # Sorted by group, then remaining time; dense group ids.
    sel = sel[ranked.order(keys[sel], ranked.by_remaining[sel])]
    group_start = run_starts(keys[sel])
    n = np.diff(np.r_[group_start, sel.size])
    dense = np.repeat(np.arange(n.size), n)
    flat = timeless[sel][group_start]
    first_cell = ranked.first_cell[sel]
    at = _elapsed_points(first_cell, dense, n, min_samples, flat)
    q = _km_quantiles_by_point(
        moments.remaining[sel], moments.closed[sel], ranked.weights[sel], first_cell, dense, at
    )
    return DirectLevel(
        keys=keys[sel][group_start],
        q50=_on_grid(at, q[:, :, 0], flat),
        q90=_on_grid(at, q[:, :, 1], flat),
        samples=n,
    )


def _within_window(keys: IntArray, ranked: RankedMoments, window: int) -> BoolArray:
    """Moments of each group back to its ``window``-th newest closed one."""
    closed = ranked.moments.closed
    closed_per_key = np.bincount(keys, weights=closed, minlength=int(keys.max(initial=0)) + 1)
    crowded = np.flatnonzero(closed_per_key[keys] > window)
    use = np.ones(keys.size, dtype=np.bool_)
    if crowded.size == 0:
        return use
    order = crowded[ranked.order(keys[crowded], ranked.newest[crowded])]
    starts = run_starts(keys[order])
    hits = closed[order].astype(np.int64)
    newer = np.cumsum(hits) - hits
    newer -= np.repeat(newer[starts], np.diff(np.r_[starts, order.size]))
    use[order] = newer < window
    return use


def run_starts(sorted_keys: IntArray) -> IntArray:
    """Index of the first of each run of equal keys."""
    if sorted_keys.size == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


def _elapsed_points(
    first_cell: IntArray, dense: IntArray, n: IntArray, min_samples: int, timeless: BoolArray
) -> FloatArray:
    """Per group: 0, the last grid time that every next step outlasts (the residual falls one for
    one up to there), then the grid times that about 70 %, 49 %, ... of them outlast (while at
    least ``min_samples`` do); NaN after the last such point.

    ``first_cell[i]`` counts the grid times below moment i's first step, so the step outlasts
    ``GRID[k]`` exactly when ``k < first_cell[i]``.
    """
    cells = GRID.size + 1
    counts = np.bincount(dense * cells + first_cell, minlength=n.size * cells).reshape(n.size, cells)
    outlasting = counts[:, ::-1].cumsum(axis=1)[:, ::-1][:, 1:]  # outlasting[g, k]: steps longer than GRID[k]
    at = np.full((n.size, _MAX_POINTS), np.nan)
    at[:, 0] = 0.0
    everyone = (outlasting[:, :-1] >= n[:, None]).sum(axis=1) - 1
    at[(everyone > 0) & ~timeless, 1] = GRID[everyone[(everyone > 0) & ~timeless]]
    for j in range(2, _MAX_POINTS):
        wanted = np.maximum(n * 0.7 ** (j - 1), min_samples)
        # The first grid time that no more than `wanted` steps outlast (outlasting is non-increasing).
        k = (outlasting[:, :-1] > wanted[:, None]).sum(axis=1)
        ok = (outlasting[np.arange(n.size), k] >= min_samples) & ~timeless & (k > 0)
        at[ok, j] = GRID[k[ok]]
    # Distinct points in increasing order, packed to the left of each row.
    at = np.sort(np.nan_to_num(at, nan=np.inf), axis=1)
    at[:, 1:][at[:, 1:] == at[:, :-1]] = np.inf
    at = np.sort(at, axis=1)
    return np.where(np.isinf(at), np.nan, at)


def _km_quantiles_by_point(
    remaining: FloatArray,
    closed: BoolArray,
    weights: FloatArray,
    first_cell: IntArray,
    dense: IntArray,
    at: FloatArray,
) -> FloatArray:
    """KM P50/P90 of remaining - a among each group's moments whose first step outlasted a.

    Moments are sorted by group, then remaining time. For each elapsed point only the outlasting
    moments are kept; survival within a group comes from segmented cumulative sums, and
    ``group + (1 - survival)`` is non-decreasing over the whole array, so one ``searchsorted``
    finds every group's quantile at once.
    """
    g = at.shape[0]
    result = np.full((g, at.shape[1], len(_PROBS)), np.nan)
    targets = (np.arange(g)[:, None] + np.asarray(_PROBS)[None, :] - 1e-12).ravel()
    cell_of_point = np.searchsorted(GRID, np.nan_to_num(at, nan=np.inf), side="left")
    for j in range(at.shape[1]):
        valid = ~np.isnan(at[:, j])
        if not valid.any():
            break
        keep = valid[dense] & ((first_cell > cell_of_point[dense, j]) if j else True)
        idx = np.flatnonzero(keep)
        group, w, done, rem = dense[idx], weights[idx], closed[idx], remaining[idx]
        size = np.bincount(group, minlength=g)
        end = np.cumsum(size)
        start = end - size
        running = np.r_[0.0, np.cumsum(w)]
        before = running[start]
        at_risk = (running[end] - before)[group] - (running[1:] - before[group]) + w
        hazard = np.where(done, w / np.maximum(at_risk, 1e-300), 0.0)
        log_survival = np.cumsum(np.log(np.maximum(1.0 - hazard, 1e-300)))
        log_survival -= np.r_[0.0, log_survival][start][group]
        climb = group + (1.0 - np.exp(log_survival))
        index = np.searchsorted(climb, targets, side="left").reshape(g, len(_PROBS))
        found = (index < end[:, None]) & (size[:, None] > 0) & valid[:, None]
        if rem.size:
            values = rem[np.minimum(index, rem.size - 1)] - at[:, j][:, None]
            result[:, j, :] = np.where(found, values, np.nan)
    return result


def _on_grid(at: FloatArray, values: FloatArray, timeless: BoolArray) -> FloatArray:
    """Linear interpolation of each group's points onto GRID; NaN beyond its last valid point."""
    g = at.shape[0]
    rows = np.full((g, GRID.size), np.nan)
    valid = ~np.isnan(at) & ~np.isnan(values)
    valid = np.logical_and.accumulate(valid, axis=1)
    rows[:, 0] = np.where(valid[:, 0], values[:, 0], np.nan)
    for j in range(at.shape[1] - 1):
        both = valid[:, j] & valid[:, j + 1]
        if not both.any():
            break
        lo, hi = at[both, j][:, None], at[both, j + 1][:, None]
        inside = (GRID[None, :] >= lo) & (GRID[None, :] <= hi)
        t = (GRID[None, :] - lo) / (hi - lo)
        interpolated = values[both, j][:, None] + t * (values[both, j + 1] - values[both, j])[:, None]
        rows[both] = np.where(inside, interpolated, rows[both])
    rows[timeless] = np.where(valid[timeless, :1], values[timeless, :1], np.nan)
    return rows


def add_level(
    tables: tuple[FloatArray, FloatArray, IntArray], parent_rows: IntArray, level: DirectLevel
) -> tuple[tuple[FloatArray, FloatArray, IntArray], IntArray]:
    """Append a row per group of ``level``, pulled towards the coarser parent row by the group's
    size (:func:`~tracker.estimates.residual.shrink`), so a thin group moves the estimate only as
    far as its evidence allows; elsewhere (and wherever the group's history runs out along the
    elapsed grid) the parent row stands. Returns the tables and the row of every key of this level
    (``parent_rows`` is indexed by key)."""
    q50, q90, samples = tables
    rows = parent_rows.copy()
    if level.keys.size == 0:
        return tables, rows
    parent = parent_rows[level.keys]
    size = np.broadcast_to(level.samples[:, None], level.q50.shape).astype(np.float64)

    def pulled(fine: FloatArray, coarse: FloatArray) -> FloatArray:
        blended = shrink(fine[..., None], size, coarse[..., None])[..., 0]
        return np.asarray(np.where(np.isnan(fine), coarse, blended))

    covered = ~np.isnan(level.q50)
    rows[level.keys] = q50.shape[0] + np.arange(level.keys.size)
    return (
        (
            np.vstack([q50, pulled(level.q50, q50[parent])]),
            np.vstack([q90, pulled(level.q90, q90[parent])]),
            np.vstack([samples, np.where(covered, level.samples[:, None], samples[parent])]),
        ),
        rows,
    )

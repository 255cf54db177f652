"""Set-based SQL for the recompute hot path, which the ORM would do one row at a time.

Claims: on PostgreSQL a batch of open jobs not yet estimated in this tick is taken with
`FOR UPDATE SKIP LOCKED` inside the caller's transaction, so concurrent processes take disjoint batches
and the row locks (the lease) end with the transaction, also when a process dies. SQLite has one writer:
the caller's transaction already excludes everyone else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from tortoise.backends.base.client import BaseDBAsyncClient

from tracker.domain.workflow import OPEN_STATUSES


def _job_columns(postgres: bool) -> str:
    """The columns a recomputation reads, with instants as POSIX seconds and money as floats already,
    so a batch of thousands of rows needs no per-row conversion in Python."""

    def epoch(expression: str) -> str:
        if postgres:
            return f"extract(epoch from {expression})::float8"
        return f"(julianday({expression}) - 2440587.5) * 86400.0"

    def number(expression: str) -> str:
        return f"{expression}::float8" if postgres else f"CAST({expression} AS REAL)"

    def announced(key: str) -> str:
        return f"announced->>'{key}'" if postgres else f"json_extract(announced, '$.{key}')"

    timestamp = "::timestamptz" if postgres else ""
    columns = {
        "id": "id",
        "workflow_id": "workflow_id",
        "stage_key": "stage_key",
        "stage_held_seconds": "stage_held_seconds",
        "stages_completed": "stages_completed",
        "version": "version",
        "promised_day": (
            "(promised_on - DATE '1970-01-01')::float8" if postgres else "julianday(promised_on) - 2440587.5"
        ),
        "estimate_basis": "estimate_basis",
        "announced": "announced::text" if postgres else "announced",
        "stage_entered_s": epoch("stage_entered_at"),
        "held_since_s": epoch("held_since"),
        "created_s": epoch("created_at"),
        "eta_p50_s": epoch("eta_p50"),
        "eta_p90_s": epoch("eta_p90"),
        "cost_p50_f": number("cost_p50"),
        "actual_cost_f": number("actual_cost"),
        # Recorded since the job entered its current stage: within the stage's planned share it does not
        # move the projected cost (one probe of the cost_entry (job_id, id) index per job).
        "stage_cost_f": number(
            "(SELECT coalesce(sum(c.amount), 0) FROM cost_entry AS c WHERE c.job_id = job.id"
            " AND c.stage_key = job.stage_key AND c.created_at >= job.stage_entered_at)"
        ),
        "quote_f": number("quote_amount"),
        "announced_eta_s": epoch(f"({announced('eta_p50')}){timestamp}"),
        "announced_cost_f": number(f"({announced('cost_p50')})"),
        "announced_at_risk": (
            f"coalesce(({announced('at_risk')})::bool, false)"
            if postgres
            else f"coalesce({announced('at_risk')}, 0)"
        ),
        "announced_stuck": announced("stuck_visit_id"),
        # Who moved the job into its current stage, i.e. finished its last one (one probe of the
        # stage_visit (job_id, entered_at) index per job).
        "handled_by": (
            "(SELECT v.entered_by FROM stage_visit AS v WHERE v.job_id = job.id AND job.stages_completed > 0"
            " ORDER BY v.entered_at DESC, v.id DESC LIMIT 1)"
        ),
        "first_eta_p90_s": epoch(f"({announced('first_eta_p90')}){timestamp}"),
    }
    return ", ".join(f"{expression} AS {name}" for name, expression in columns.items())


IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class OpenJobs:
    """A batch of open jobs as columns, as a recomputation reads them: instants as POSIX seconds, money as
    floats, a missing value as NaN (numbers) or None (text). Columns, not rows: the recompute works on whole
    arrays, and PostgreSQL hands each column over as one array."""

    id: IntArray
    workflow_id: IntArray
    stage_key: list[str]
    stage_held_seconds: FloatArray
    stages_completed: IntArray
    version: IntArray
    promised_day: FloatArray
    """Days since 1970-01-01."""
    estimate_basis: list[str | None]
    announced: list[str | None]
    """What customers were last told, as JSON text."""
    stage_entered_s: FloatArray
    held_since_s: FloatArray
    created_s: FloatArray
    eta_p50_s: FloatArray
    eta_p90_s: FloatArray
    cost_p50_f: FloatArray
    actual_cost_f: FloatArray
    stage_cost_f: FloatArray
    quote_f: FloatArray
    announced_eta_s: FloatArray
    announced_cost_f: FloatArray
    announced_at_risk: BoolArray
    announced_stuck: list[str | None]
    first_eta_p90_s: FloatArray
    handled_by: list[str | None]
    """Who finished the job's last completed stage (None before the first)."""

    def __len__(self) -> int:
        return len(self.id)

    def take(self, index: IntArray) -> OpenJobs:
        """The jobs at these positions."""
        taken: dict[str, Any] = {
            name: [value[i] for i in index] if isinstance(value, list) else value[index]
            for name, value in vars(self).items()
        }
        return OpenJobs(**taken)

    @classmethod
    def from_columns(cls, columns: dict[str, list[Any] | None]) -> OpenJobs:
        """From one list per column (None for an empty batch), NULL as None."""

        def ints(name: str) -> IntArray:
            return np.array(columns[name] or [], dtype=np.int64)

        def floats(name: str) -> FloatArray:
            return np.array(columns[name] or [], dtype=np.float64)  # None becomes NaN

        def texts(name: str) -> list[Any]:
            return list(columns[name] or [])

        return cls(
            id=ints("id"),
            workflow_id=ints("workflow_id"),
            stage_key=texts("stage_key"),
            stage_held_seconds=floats("stage_held_seconds"),
            stages_completed=ints("stages_completed"),
            version=ints("version"),
            promised_day=floats("promised_day"),
            estimate_basis=texts("estimate_basis"),
            announced=texts("announced"),
            stage_entered_s=floats("stage_entered_s"),
            held_since_s=floats("held_since_s"),
            created_s=floats("created_s"),
            eta_p50_s=floats("eta_p50_s"),
            eta_p90_s=floats("eta_p90_s"),
            cost_p50_f=floats("cost_p50_f"),
            actual_cost_f=floats("actual_cost_f"),
            stage_cost_f=floats("stage_cost_f"),
            quote_f=floats("quote_f"),
            announced_eta_s=floats("announced_eta_s"),
            announced_cost_f=floats("announced_cost_f"),
            announced_at_risk=np.array(columns["announced_at_risk"] or [], dtype=np.bool_),
            announced_stuck=texts("announced_stuck"),
            first_eta_p90_s=floats("first_eta_p90_s"),
            handled_by=texts("handled_by"),
        )


# The SQL below interpolates only these fixed column expressions and placeholder marks; every value is a
# bound parameter.
SWEPT_STATUSES = tuple(sorted(status.value for status in OPEN_STATUSES))
"""Statuses of open jobs; a recompute sweeps them one after the other, each along its (status, id) index."""
OPEN_JOBS = "FROM job WHERE status IN (" + ", ".join(f"'{status}'" for status in SWEPT_STATUSES) + ")"
SELECT_JOBS = {postgres: f"SELECT {_job_columns(postgres)} {OPEN_JOBS}" for postgres in (True, False)}
AS_ARRAYS = "SELECT " + ", ".join(f"array_agg({name}) AS {name}" for name in OpenJobs.__dataclass_fields__)
"""PostgreSQL: one row of one array per column, each aggregate over the same rows in the same order."""


def is_postgres(connection: BaseDBAsyncClient) -> bool:
    return connection.capabilities.dialect == "postgres"


async def _open_jobs(connection: BaseDBAsyncClient, conditions: str, values: list[Any]) -> OpenJobs:
    """Open jobs matching the extra `conditions` (SQL, ending in its ORDER BY and any LIMIT or lock)."""
    query = f"{SELECT_JOBS[is_postgres(connection)]} AND {conditions}"
    if is_postgres(connection):
        rows = await connection.execute_query_dict(f"{AS_ARRAYS} FROM ({query}) AS batch", values)
        return OpenJobs.from_columns(rows[0])
    rows = await connection.execute_query_dict(query, values)
    return OpenJobs.from_columns(
        {name: [row[name] for row in rows] for name in OpenJobs.__dataclass_fields__}
    )


async def claim_jobs(
    connection: BaseDBAsyncClient, *, status: str, after_id: int, tick_start: datetime, limit: int
) -> OpenJobs:
    """Jobs in `status` with an id above `after_id`, not estimated since `tick_start`, by id; call inside a
    transaction.

    The sweep walks the (status, id) index forward, so no batch rescans the jobs done before it; that is
    also why `estimated_at` needs no index (see `Job.estimated_at`).
    """
    if is_postgres(connection):
        return await _open_jobs(
            connection,
            "status = $1 AND id > $2 AND (estimated_at IS NULL OR estimated_at < $3)"
            " ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED",
            [status, after_id, tick_start, limit],
        )
    return await _open_jobs(
        connection,
        "status = ? AND id > ? AND (estimated_at IS NULL OR estimated_at < ?) ORDER BY id LIMIT ?",
        [status, after_id, _sqlite_time(tick_start), limit],
    )


def among_ids(connection: BaseDBAsyncClient, column: str, ids: Sequence[int]) -> tuple[str, list[Any]]:
    """The condition "`column` is one of `ids`" and its parameters, as the statement's only parameters:
    one array on PostgreSQL, one mark per id on SQLite."""
    if is_postgres(connection):
        return f"{column} = ANY($1::int[])", [list(ids)]
    return f"{column} IN ({', '.join('?' * len(ids))})", list(ids)


async def jobs_by_id(connection: BaseDBAsyncClient, ids: list[int]) -> OpenJobs:
    condition, values = among_ids(connection, "id", ids)
    return await _open_jobs(connection, f"{condition} ORDER BY id", values)


@dataclass(frozen=True)
class EstimateColumns:
    """New estimate values for many jobs: instants as POSIX seconds, money as floats."""

    ids: npt.NDArray[np.int64]
    eta_p50: npt.NDArray[np.float64]
    eta_p90: npt.NDArray[np.float64]
    cost_p50: npt.NDArray[np.float64]
    cost_p90: npt.NDArray[np.float64]
    basis: list[str]


async def write_estimates(connection: BaseDBAsyncClient, values: EstimateColumns, *, now: datetime) -> None:
    if not len(values.ids):
        return
    if is_postgres(connection):
        # One statement for the whole batch; the arrays go over the wire as binary arrays.
        await connection.execute_query(
            "UPDATE job SET eta_p50 = to_timestamp(v.eta_p50), eta_p90 = to_timestamp(v.eta_p90), "
            "cost_p50 = v.cost_p50::numeric(18, 4), cost_p90 = v.cost_p90::numeric(18, 4), "
            "estimate_basis = v.basis, estimated_at = $7 "
            "FROM unnest($1::int[], $2::float8[], $3::float8[], $4::float8[], $5::float8[], $6::text[]) "
            "AS v(id, eta_p50, eta_p90, cost_p50, cost_p90, basis) WHERE job.id = v.id",
            [
                values.ids.tolist(),
                values.eta_p50.tolist(),
                values.eta_p90.tolist(),
                values.cost_p50.tolist(),
                values.cost_p90.tolist(),
                values.basis,
                now,
            ],
        )
        return
    stamp = _sqlite_time(now)
    await connection.execute_many(
        "UPDATE job SET eta_p50 = ?, eta_p90 = ?, cost_p50 = ?, cost_p90 = ?, estimate_basis = ?, "
        "estimated_at = ? WHERE id = ?",
        [
            [
                _sqlite_time(_instant(p50)),
                _sqlite_time(_instant(p90)),
                f"{c50:.4f}",
                f"{c90:.4f}",
                basis,
                stamp,
                int(job_id),
            ]
            for job_id, p50, p90, c50, c90, basis in zip(
                values.ids,
                values.eta_p50,
                values.eta_p90,
                values.cost_p50,
                values.cost_p90,
                values.basis,
                strict=True,
            )
        ],
    )


@dataclass(frozen=True)
class HistoryRows:
    """Estimate-history rows for many jobs (instants as POSIX seconds, money as floats)."""

    job_ids: list[int]
    eta_p50: list[float]
    eta_p90: list[float]
    cost_p50: list[float]
    cost_p90: list[float]
    basis: list[str]
    overdue: list[bool]
    detail: list[str]
    """JSON text."""


async def write_history(connection: BaseDBAsyncClient, rows: HistoryRows, *, now: datetime) -> None:
    if not rows.job_ids:
        return
    if is_postgres(connection):
        await connection.execute_query(
            "INSERT INTO job_estimate (job_id, computed_at, eta_p50, eta_p90, cost_p50, cost_p90, basis, "
            "overdue, detail) SELECT v.job_id, $1, to_timestamp(v.eta_p50), to_timestamp(v.eta_p90), "
            "v.cost_p50::numeric(18, 4), v.cost_p90::numeric(18, 4), v.basis, v.overdue, v.detail::json "
            "FROM unnest($2::int[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::text[], "
            "$8::bool[], $9::text[]) "
            "AS v(job_id, eta_p50, eta_p90, cost_p50, cost_p90, basis, overdue, detail)",
            [
                now,
                rows.job_ids,
                rows.eta_p50,
                rows.eta_p90,
                rows.cost_p50,
                rows.cost_p90,
                rows.basis,
                rows.overdue,
                rows.detail,
            ],
        )
        return
    stamp = _sqlite_time(now)
    await connection.execute_many(
        "INSERT INTO job_estimate (job_id, computed_at, eta_p50, eta_p90, cost_p50, cost_p90, basis, "
        "overdue, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [
                job_id,
                stamp,
                _sqlite_time(_instant(p50)),
                _sqlite_time(_instant(p90)),
                f"{c50:.4f}",
                f"{c90:.4f}",
                basis,
                int(overdue),
                detail,
            ]
            for job_id, p50, p90, c50, c90, basis, overdue, detail in zip(
                rows.job_ids,
                rows.eta_p50,
                rows.eta_p90,
                rows.cost_p50,
                rows.cost_p90,
                rows.basis,
                rows.overdue,
                rows.detail,
                strict=True,
            )
        ],
    )


async def write_announced(connection: BaseDBAsyncClient, announced: list[tuple[int, dict[str, Any]]]) -> None:
    """Store what customers were last told, for many jobs at once."""
    if not announced:
        return
    ids = [job_id for job_id, _ in announced]
    payloads = [json.dumps(payload) for _, payload in announced]
    if is_postgres(connection):
        await connection.execute_query(
            "UPDATE job SET announced = v.announced::json FROM unnest($1::int[], $2::text[]) "
            "AS v(id, announced) WHERE job.id = v.id",
            [ids, payloads],
        )
        return
    await connection.execute_many(
        "UPDATE job SET announced = ? WHERE id = ?",
        [[payload, job_id] for job_id, payload in zip(ids, payloads, strict=True)],
    )


def _instant(epoch: float) -> datetime:
    return datetime.fromtimestamp(float(epoch), UTC)


def _sqlite_time(moment: datetime) -> str:
    """The text form Tortoise itself writes for an aware datetime on SQLite."""
    return str(moment.astimezone(UTC))

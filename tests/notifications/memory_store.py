"""A test DeliveryStore kept in memory: the rules of tracker's outbox table (leases, due times, states),
so dispatcher tests can watch every call. Not for production: tracker implements the store over its database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from notifications.attempts import Attempt
from notifications.dispatcher import Delivery
from notifications.ratelimit import Rate, Reservation, TokenBucket
from notifications.retry import TargetHealth, TargetVerdict


@dataclass
class Row:
    delivery: Delivery
    due: datetime
    state: str = "queued"
    lease_until: datetime | None = None
    claim: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    claims: int = 0
    releases: list[datetime] = field(default_factory=list)


class InMemoryStore:
    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.health: dict[str, TargetHealth] = {}
        self.target_verdicts: list[tuple[str, TargetVerdict]] = []
        self.skipped: list[frozenset[str]] = []
        self.claimed_per_call: list[int] = []
        self.fail_next_claims = 0
        self.stale_marks = 0
        self.buckets: dict[str, TokenBucket] = {}
        self._changed = asyncio.Condition()

    def add(self, delivery: Delivery, due: datetime) -> None:
        self.rows[delivery.id] = Row(delivery, due)

    def states(self) -> dict[str, str]:
        return {key: row.state for key, row in self.rows.items()}

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait (5 s at most) until `condition` holds after some change to the store."""
        async with asyncio.timeout(5.0), self._changed:
            await self._changed.wait_for(condition)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def claim_due(
        self, limit: int, lease_until: datetime, now: datetime, per_target: int, skip_targets: Collection[str]
    ) -> Sequence[Delivery]:
        self.skipped.append(frozenset(skip_targets))
        if self.fail_next_claims:
            self.fail_next_claims -= 1
            raise ConnectionError("database unavailable")
        due = [
            row
            for row in self.rows.values()
            if row.state == "queued"
            and row.due <= now
            and (row.lease_until is None or row.lease_until <= now)
            and row.delivery.target not in skip_targets
        ]
        due.sort(key=lambda row: row.due)
        per_target_count: Counter[str] = Counter()
        chosen: list[Row] = []
        for row in due:
            if len(chosen) < limit and per_target_count[row.delivery.target] < per_target:
                per_target_count[row.delivery.target] += 1
                chosen.append(row)
        self.claimed_per_call.append(len(chosen))
        claimed = []
        for row in chosen:
            row.lease_until, row.claim, row.claims = lease_until, uuid.uuid4().hex, row.claims + 1
            health = self.health.get(row.delivery.target, TargetHealth())
            is_webhook = row.delivery.target.startswith("webhook:")
            claimed.append(
                dataclasses.replace(
                    row.delivery,
                    attempts_made=len(row.attempts),
                    claim=row.claim,
                    target_health=health if is_webhook else None,
                )
            )
        return claimed

    def _claimed_row(self, delivery: Delivery) -> Row | None:
        row = self.rows[delivery.id]
        if row.claim != delivery.claim or row.lease_until is None:
            self.stale_marks += 1  # another claim took over: this result is not recorded
            return None
        return row

    async def _finish(self, delivery: Delivery, attempt: Attempt | None, **changes: object) -> None:
        row = self._claimed_row(delivery)
        if row is not None:
            if attempt is not None:
                row.attempts.append(attempt)
            row.lease_until, row.claim = None, ""
            for name, value in changes.items():
                setattr(row, name, value)
        await self._notify()

    async def mark_sent(self, delivery: Delivery, attempt: Attempt, now: datetime) -> None:
        await self._finish(delivery, attempt, state="sent")

    async def mark_retry(
        self, delivery: Delivery, attempt: Attempt, next_attempt_at: datetime, now: datetime
    ) -> None:
        await self._finish(delivery, attempt, due=next_attempt_at)

    async def mark_dead(self, delivery: Delivery, attempt: Attempt, now: datetime) -> None:
        await self._finish(delivery, attempt, state="dead")

    async def mark_bounced(self, delivery: Delivery, attempt: Attempt, now: datetime) -> None:
        await self._finish(delivery, attempt, state="bounced")

    async def release(self, delivery: Delivery, available_at: datetime) -> None:
        row = self.rows[delivery.id]
        if row.claim == delivery.claim:
            row.releases.append(available_at)
        await self._finish(delivery, None, due=available_at)

    async def reserve_rate(
        self, delivery: Delivery, rate: Rate, now: datetime, max_wait: float
    ) -> Reservation:
        moment = now.timestamp()
        stored = self.buckets.get(delivery.target)
        bucket = TokenBucket.full(rate, moment) if stored is None else dataclasses.replace(stored, rate=rate)
        reservation = bucket.reserve(moment, max_wait)
        self.buckets[delivery.target] = reservation.bucket
        return reservation

    async def update_target(self, target: str, verdict: TargetVerdict, now: datetime) -> None:
        self.health[target] = verdict.health
        self.target_verdicts.append((target, verdict))
        await self._notify()

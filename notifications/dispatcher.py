"""The dispatcher: claims due deliveries from a store, sends them, and records what happened.

The store is tracker's outbox behind the `DeliveryStore` protocol; the dispatcher knows nothing of jobs or
databases. It wakes when told that deliveries were queued (`wake()`, called after the commit) and on a
periodic sweep, which alone would be enough: the signal only makes it sooner. It holds nothing across a
send but the claim (a lease in the store), so a process that dies loses nothing: its claims expire and
another process takes them. Concurrency is bounded overall and per target, and a target may have a rate.

Life of one delivery: claimed -> (waits for its target's rate) -> sent -> `decide()` -> mark_sent,
mark_retry, mark_dead or mark_bounced; a webhook endpoint's failure streak goes to `update_target`. On
`stop()`, sends in flight may finish within a grace period; every other claim is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from notifications.attempts import Attempt, Outcome
from notifications.email import OutgoingEmail
from notifications.ratelimit import Rate, Reservation
from notifications.retry import (
    TargetAction,
    TargetHealth,
    TargetVerdict,
    Uniform,
    Verdict,
    decide,
    judge_target,
)
from notifications.webhook import WebhookMessage

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to one recipient or endpoint, as the store hands it out with its claim."""

    id: str
    target: str
    """What concurrency and rate limits apply to, e.g. "webhook:17" per endpoint, "email:<address>"."""
    message: WebhookMessage | OutgoingEmail
    attempts_made: int = 0
    """Attempts before this one."""
    claim: str = ""
    """The store's own token for this claim, so it can tell its claim from a later one."""
    target_health: TargetHealth | None = None
    """A webhook endpoint's failure streak when claimed; None where targets are not disabled (email)."""
    rate: Rate | None = None
    """The target's rate limit, if it has one."""


class DeliveryStore(Protocol):
    """What tracker implements over its outbox table. Each call is its own short transaction.

    Every call but `claim_due` changes a row only while `delivery.claim` is still its claim (a
    compare-and-set), so a result arriving after the lease ran out and another process claimed the row
    changes nothing.
    """

    async def claim_due(
        self,
        limit: int,
        lease_until: datetime,
        now: datetime,
        per_target: int,
        skip_targets: Collection[str],
    ) -> Sequence[Delivery]:
        """Claim until `lease_until` up to `limit` deliveries due at `now` (unclaimed, or whose lease has
        ended), oldest due first, at most `per_target` of any one target and none of `skip_targets`
        (already busy in this process)."""
        ...

    async def mark_sent(self, delivery: Delivery, attempt: Attempt, now: datetime) -> None: ...

    async def mark_retry(
        self, delivery: Delivery, attempt: Attempt, next_attempt_at: datetime, now: datetime
    ) -> None: ...

    async def mark_dead(self, delivery: Delivery, attempt: Attempt, now: datetime) -> None:
        """No more attempts: retries exhausted, the endpoint is gone, or the message cannot be sent."""
        ...

    async def mark_bounced(self, delivery: Delivery, attempt: Attempt, now: datetime) -> None:
        """The address refused the mail for good: suppress it, and stop what is queued for it."""
        ...

    async def release(self, delivery: Delivery, available_at: datetime) -> None:
        """Give the claim back without an attempt; the delivery is due again at `available_at`."""
        ...

    async def reserve_rate(
        self, delivery: Delivery, rate: Rate, now: datetime, max_wait: float
    ) -> Reservation:
        """Take a token of `delivery.target`'s rate from the bucket every sending process shares (see
        `TokenBucket.reserve`): the wait before sending, or a refusal when it would exceed `max_wait`."""
        ...

    async def update_target(self, target: str, verdict: TargetVerdict, now: datetime) -> None:
        """Keep an endpoint's failure streak; on WARN tell its owner, on DISABLE disable it and tell them."""
        ...


class WebhookSending(Protocol):
    async def send(self, message: WebhookMessage) -> Attempt: ...


class EmailSending(Protocol):
    async def send(self, message: OutgoingEmail) -> Attempt: ...


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    max_in_flight: int = 128
    """Claimed deliveries not yet sent (one sent and being recorded no longer counts). The dispatcher claims
    again when half of them are sent, so this is also twice the size of a claim: a claim's queries (the
    claim, what its emails read) are shared by that many messages. Sends are bounded below it by the email
    sender's connections and by `per_target`."""
    per_target: int = 4
    """Sends to one target at once in this process (and at most twice as many claims held for it)."""
    sweep_interval: float = 5.0
    lease: timedelta = timedelta(minutes=5)
    """Longer than a claim is ever held: behind its target's other sends, its rate wait, its own send."""
    max_rate_wait: float = 10.0
    """A delivery whose target's rate would make it wait longer is released until then."""


def loggable_target(target: str) -> str:
    """A target as logs show it: an email address keeps its domain only (a customer's address is personal
    data, and the domain is what an operator needs to see a provider refusing mail)."""
    channel, _, address = target.partition(":")
    if channel == "email" and "@" in address:
        return f"email:…@{address.rpartition('@')[2]}"
    return target


class Dispatcher:
    def __init__(
        self,
        store: DeliveryStore,
        *,
        webhooks: WebhookSending,
        email: EmailSending,
        clock: Callable[[], datetime],
        settings: DispatcherSettings = DispatcherSettings(),
        uniform: Uniform = random.uniform,
    ) -> None:
        if settings.lease.total_seconds() <= settings.max_rate_wait:
            raise ValueError("the lease must outlast the longest wait for a rate")
        self._store = store
        self._webhooks = webhooks
        self._email = email
        self._clock = clock
        self._settings = settings
        self._uniform = uniform
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._saturated = False
        """The last claim found work: look again as sends finish rather than at the next sweep."""
        self._full_targets: set[str] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: dict[asyncio.Task[None], Delivery] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._recording: set[asyncio.Task[None]] = set()
        """Sent, their result being written: the store may gather results, so they do not hold room
        that the next claim could fill."""
        self._held: Counter[str] = Counter()
        self._target_slots: dict[str, asyncio.Semaphore] = {}

    def start(self) -> None:
        if self._loop_task is not None:
            raise RuntimeError("the dispatcher is already running")
        self._stopping = False
        self._loop_task = asyncio.create_task(self._run(), name="notifications-dispatcher")

    def wake(self) -> None:
        """Deliveries were queued (or may be due): look now rather than at the next sweep."""
        self._wakeup.set()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let sends in flight finish for up to `grace` seconds; release every other claim."""
        self._stopping = True
        self._wakeup.set()
        if self._loop_task is not None:
            await self._loop_task
            self._loop_task = None
        for task in self._tasks.keys() - self._sending:
            task.cancel()  # waiting for a send slot or a rate: released at once
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping:
            await self._claim()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.sweep_interval):
                    await self._wakeup.wait()
            self._wakeup.clear()

    async def _claim(self) -> None:
        settings = self._settings
        free = settings.max_in_flight - self._unsent()
        self._saturated = free <= 0
        if free <= 0:
            return
        now = self._clock()
        try:
            batch = await self._store.claim_due(
                free, now + settings.lease, now, settings.per_target, frozenset(self._full_targets)
            )
        except Exception:
            logger.exception("claiming deliveries failed; trying again at the next sweep")
            return
        # More may be due than this claim handed out: the store may have claimed rows it then held back
        # (an email folded into another, or deferred), and a target's cap may have left rows behind. So
        # while claims find work, claim again as room frees up; a claim that finds nothing waits for a
        # signal or the sweep.
        self._saturated = bool(batch)
        for delivery in batch:
            self._held[delivery.target] += 1
            if self._held[delivery.target] >= settings.per_target:
                self._full_targets.add(delivery.target)
            self._target_slots.setdefault(delivery.target, asyncio.Semaphore(settings.per_target))
            task = asyncio.create_task(self._deliver(delivery), name=f"delivery-{delivery.id}")
            self._tasks[task] = delivery
            task.add_done_callback(self._finished)

    def _unsent(self) -> int:
        return len(self._tasks) - len(self._recording)

    def _sent(self, task: asyncio.Task[None]) -> None:
        """The send is over: its target and its room are free while its result is written."""
        self._recording.add(task)
        self._let_go(self._tasks[task].target)
        self._claim_when_half_free()

    def _finished(self, task: asyncio.Task[None]) -> None:
        delivery = self._tasks.pop(task)
        self._sending.discard(task)
        if task in self._recording:
            self._recording.discard(task)
        else:  # ended before or during its send (stopped, released for its rate)
            self._let_go(delivery.target)
        self._claim_when_half_free()

    def _let_go(self, target: str) -> None:
        self._held[target] -= 1
        held = self._held[target]
        if held <= 0:
            del self._held[target]
            del self._target_slots[target]
        if target in self._full_targets and held <= self._settings.per_target // 2:
            self._full_targets.discard(target)
            self._wakeup.set()

    def _claim_when_half_free(self) -> None:
        # Claim again once half the room is free, not after every send: one claim (a query) per batch.
        if self._saturated and self._unsent() <= self._settings.max_in_flight // 2:
            self._wakeup.set()

    async def _release(self, delivery: Delivery, available_at: datetime) -> None:
        try:
            await self._store.release(delivery, available_at)
        except Exception:
            logger.exception("releasing delivery %s failed; its lease will end", delivery.id)

    async def _deliver(self, delivery: Delivery) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            async with self._target_slots[delivery.target]:
                if delivery.rate is not None and not await self._wait_for_rate(delivery, delivery.rate):
                    return
                self._sending.add(task)
                attempt = await self._send(delivery)
            self._sent(task)
            await self._record(delivery, attempt)
        except asyncio.CancelledError:
            # Stopped before the result was recorded; a release after it was recorded changes nothing.
            await self._release(delivery, self._clock())
            raise
        except Exception:
            logger.exception(
                "recording delivery %s failed; it is sent again when its lease ends", delivery.id
            )

    async def _wait_for_rate(self, delivery: Delivery, rate: Rate) -> bool:
        """Wait for the target's rate, which every process shares; False when the delivery was released
        instead (the wait would be too long, or the store could not be asked)."""
        try:
            reservation = await self._store.reserve_rate(
                delivery, rate, self._clock(), self._settings.max_rate_wait
            )
        except Exception:
            logger.exception(
                "reserving a send of delivery %s failed; released until the next sweep", delivery.id
            )
            await self._release(delivery, self._clock() + timedelta(seconds=self._settings.sweep_interval))
            return False
        if not reservation.granted:
            await self._release(delivery, self._clock() + timedelta(seconds=reservation.wait))
            return False
        if reservation.wait > 0:
            await asyncio.sleep(reservation.wait)
        return True

    async def _send(self, delivery: Delivery) -> Attempt:
        try:
            match delivery.message:
                case WebhookMessage():
                    return await self._webhooks.send(delivery.message)
                case OutgoingEmail():
                    return await self._email.send(delivery.message)
        except Exception as error:  # a sender's bug must not lose the delivery
            logger.exception("sending delivery %s raised", delivery.id)
            return Attempt(Outcome.FAILED, 0.0, error=f"{type(error).__name__}: {error}")

    async def _record(self, delivery: Delivery, attempt: Attempt) -> None:
        now = self._clock()
        decision = decide(attempt, delivery.attempts_made + 1, now, self._uniform)
        logger.info(
            "delivery %s to %s: %s (%s, %.0f ms) -> %s",
            delivery.id,
            loggable_target(delivery.target),
            attempt.outcome,
            attempt.status_code,
            attempt.latency_ms,
            decision.verdict,
        )
        match decision.verdict:
            case Verdict.SENT:
                await self._store.mark_sent(delivery, attempt, now)
            case Verdict.RETRY:
                assert decision.next_attempt_at is not None
                await self._store.mark_retry(delivery, attempt, decision.next_attempt_at, now)
            case Verdict.DEAD:
                await self._store.mark_dead(delivery, attempt, now)
            case Verdict.BOUNCED:
                await self._store.mark_bounced(delivery, attempt, now)
        if delivery.target_health is not None:
            verdict = judge_target(delivery.target_health, attempt.outcome, now)
            if verdict.health != delivery.target_health or verdict.action is not TargetAction.NONE:
                await self._store.update_target(delivery.target, verdict, now)

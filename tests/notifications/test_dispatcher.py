"""The dispatcher end to end: an in-memory store, real sends to the loopback receiver and to aiosmtpd."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks
from freezegun import freeze_time

from notifications.attempts import Attempt, Outcome
from notifications.dispatcher import Delivery, Dispatcher, DispatcherSettings
from notifications.email import Mailbox, OutgoingEmail, SmtpSecurity, SmtpSender, SmtpSettings, message_id
from notifications.ratelimit import Rate
from notifications.retry import TargetAction, TargetHealth
from notifications.signing import generate_secret
from notifications.ssrf import URLPolicy
from notifications.webhook import WebhookMessage, WebhookSender, encode_payload
from tests.notifications.memory_store import InMemoryStore
from tests.notifications.receiver import Receiver, Reply
from tests.notifications.smtp_server import SmtpServer

LOOPBACK = URLPolicy.from_settings(allow_http=True, allowed_networks=["127.0.0.0/8"])
SECRET = generate_secret()
QUICK = DispatcherSettings(sweep_interval=60.0)  # only the signal wakes it, unless a test says otherwise


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
async def webhooks(clock: Clock) -> AsyncIterator[WebhookSender]:
    async with WebhookSender(LOOPBACK, clock) as sender:
        yield sender


@pytest.fixture
async def email(smtp_server: SmtpServer, clock: Clock) -> AsyncIterator[SmtpSender]:
    settings = SmtpSettings(
        "127.0.0.1", smtp_server.port, SmtpSecurity.NONE, timeout=5.0, local_hostname="t.example"
    )
    async with SmtpSender(settings, clock) as sender:
        yield sender


def hook(receiver: Receiver, key: str, target: str = "webhook:1", **fields) -> Delivery:
    body = encode_payload("job.stage_changed", datetime(2026, 3, 2, tzinfo=UTC), {"delivery": key})
    message = WebhookMessage(f"msg_{key}", receiver.url(f"/{target.split(':')[1]}"), body, (SECRET,))
    return Delivery(id=key, target=target, message=message, **fields)


def mail(key: str, to: str = "ana@customer.example") -> Delivery:
    message = OutgoingEmail(
        sender=Mailbox("notify@tracker.example", "Garage"),
        recipient=Mailbox(to),
        subject="Your Clio: in paint",
        text="In paint.",
        html="<p>In paint.</p>",
        message_id=message_id(f"job-1.{key}", "tracker.example"),
        thread_id=message_id("job-1", "tracker.example"),
    )
    return Delivery(id=key, target=f"email:{to}", message=message)


@asynccontextmanager
async def running(
    store: InMemoryStore,
    clock: Clock,
    webhooks: WebhookSender,
    email: SmtpSender,
    settings: DispatcherSettings = QUICK,
    grace: float = 5.0,
) -> AsyncIterator[Dispatcher]:
    dispatcher = Dispatcher(
        store, webhooks=webhooks, email=email, clock=clock, settings=settings, uniform=lambda a, b: 1.0
    )
    dispatcher.start()
    try:
        yield dispatcher
    finally:
        await dispatcher.stop(grace)


def settled(store: InMemoryStore, *states: str):
    return lambda: all(row.state in states for row in store.rows.values())


async def test_every_queued_delivery_arrives_once_when_the_dispatcher_is_woken(
    store, clock, webhooks, email, receiver: Receiver, smtp_server: SmtpServer
):
    for number in range(20):
        store.add(hook(receiver, f"h{number}", f"webhook:{number % 4}"), clock.now)
    for number in range(5):
        store.add(mail(f"m{number}"), clock.now)
    async with running(store, clock, webhooks, email) as dispatcher:
        dispatcher.wake()
        await store.wait_until(settled(store, "sent"))
    assert sorted(request.headers["webhook-id"] for request in receiver.requests) == sorted(
        f"msg_h{n}" for n in range(20)
    )
    for request in receiver.requests:
        standardwebhooks.Webhook(SECRET).verify(request.body, request.headers)
    assert sorted(message["Message-ID"] for message in smtp_server.inbox.messages) == sorted(
        f"<job-1.m{n}@tracker.example>" for n in range(5)
    )
    assert all(len(row.attempts) == 1 for row in store.rows.values())


class HoldingBackStore(InMemoryStore):
    """Hands out one delivery a claim and gives the rest of what it claimed back, as tracker's store does
    with emails it folds or defers: a claim's size says nothing about what is left."""

    async def claim_due(self, limit, lease_until, now, per_target, skip_targets):
        claimed = await super().claim_due(limit, lease_until, now, per_target, skip_targets)
        for delivery in claimed[1:]:
            await self.release(delivery, now)
        return claimed[:1]


async def test_a_backlog_drains_without_waiting_for_sweeps_while_claims_find_work(
    clock, webhooks, email, smtp_server: SmtpServer
):
    store = HoldingBackStore()
    for number in range(8):
        store.add(mail(f"m{number}"), clock.now)
    async with running(store, clock, webhooks, email) as dispatcher:  # sweeps a minute apart
        dispatcher.wake()
        async with asyncio.timeout(10):
            await store.wait_until(settled(store, "sent"))
    assert len(smtp_server.inbox.messages) == 8


class SlowRecordingStore(InMemoryStore):
    """Writes no result until told to, as a store gathering results into one statement keeps them."""

    def __init__(self) -> None:
        super().__init__()
        self.write = asyncio.Event()

    async def mark_sent(self, delivery, attempt, now):
        await self.write.wait()
        await super().mark_sent(delivery, attempt, now)


async def test_sends_whose_results_are_still_being_written_leave_room_to_claim_more(
    clock, webhooks, email, smtp_server: SmtpServer
):
    store = SlowRecordingStore()
    for number in range(6):
        store.add(mail(f"m{number}"), clock.now)  # one target (a domain) of per_target 2
    settings = DispatcherSettings(max_in_flight=2, per_target=2, sweep_interval=60.0)
    async with running(store, clock, webhooks, email, settings) as dispatcher:
        dispatcher.wake()
        async with asyncio.timeout(5):
            while len(smtp_server.inbox.messages) < 6:
                await smtp_server.inbox.arrived.wait()
                smtp_server.inbox.arrived.clear()
        assert all(not row.attempts for row in store.rows.values())  # all sent, none recorded yet
        store.write.set()
        await store.wait_until(settled(store, "sent"))


async def test_the_sweep_finds_due_deliveries_without_a_signal(store, clock, webhooks, email, receiver):
    async with running(store, clock, webhooks, email, DispatcherSettings(sweep_interval=0.05)):
        await asyncio.sleep(0.01)
        store.add(hook(receiver, "late"), clock.now)
        await store.wait_until(settled(store, "sent"))
    assert len(receiver.requests) == 1


async def test_a_delivery_not_yet_due_waits_for_its_time(store, clock, webhooks, email, receiver):
    store.add(hook(receiver, "later"), clock.now + timedelta(minutes=5))
    async with running(store, clock, webhooks, email, DispatcherSettings(sweep_interval=0.02)):
        await asyncio.sleep(0.1)
        assert receiver.requests == []
        clock.advance(300)
        await store.wait_until(settled(store, "sent"))
    assert len(receiver.requests) == 1


async def test_a_failed_delivery_is_retried_on_schedule_with_the_same_id(
    store, clock, webhooks, email, receiver
):
    answers = iter([Reply(503), Reply(200)])
    receiver.respond = lambda request: next(answers)
    store.add(hook(receiver, "flaky"), clock.now)
    async with running(store, clock, webhooks, email) as dispatcher:
        dispatcher.wake()
        await store.wait_until(lambda: len(store.rows["flaky"].attempts) == 1)
        row = store.rows["flaky"]
        assert (row.state, row.due) == ("queued", clock.now + timedelta(seconds=5))
        clock.advance(5)
        dispatcher.wake()
        await store.wait_until(settled(store, "sent"))
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "msg_flaky"
    assert int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) == 5
    assert [attempt.status_code for attempt in store.rows["flaky"].attempts] == [503, 200]


async def test_the_tenth_failure_is_final(store, clock, webhooks, email, receiver):
    receiver.respond = lambda request: Reply(500)
    store.add(hook(receiver, "doomed"), clock.now)
    store.rows["doomed"].attempts = [Attempt(Outcome.FAILED, 1.0, 500)] * 9
    async with running(store, clock, webhooks, email) as dispatcher:
        dispatcher.wake()
        await store.wait_until(settled(store, "dead"))
    assert len(store.rows["doomed"].attempts) == 10


async def test_410_kills_the_delivery_and_disables_the_endpoint(store, clock, webhooks, email, receiver):
    receiver.respond = lambda request: Reply(410)
    store.add(hook(receiver, "gone"), clock.now)
    async with running(store, clock, webhooks, email) as dispatcher:
        dispatcher.wake()
        await store.wait_until(lambda: bool(store.target_verdicts))
    assert store.states() == {"gone": "dead"}
    [(target, verdict)] = store.target_verdicts
    assert (target, verdict.action) == ("webhook:1", TargetAction.DISABLE)


async def test_an_endpoint_failure_streak_is_kept_warned_and_ended(store, clock, webhooks, email, receiver):
    receiver.respond = lambda request: Reply(200 if request.headers["webhook-id"] == "msg_c" else 500)
    started = clock.now
    async with running(store, clock, webhooks, email) as dispatcher:
        for key, days in (("a", 0), ("b", 3), ("c", 3)):
            clock.now = started + timedelta(days=days, minutes=len(store.rows))
            store.add(hook(receiver, key), clock.now)
            dispatcher.wake()
            await store.wait_until(lambda: len(store.target_verdicts) == len(store.rows))
            store.rows[key].state = "done"  # out of the way of the next step
    assert [(verdict.health, verdict.action) for _, verdict in store.target_verdicts] == [
        (TargetHealth(failing_since=started), TargetAction.NONE),
        (TargetHealth(failing_since=started, warned=True), TargetAction.WARN),
        (TargetHealth(), TargetAction.NONE),
    ]


async def test_smtp_answers_bounce_retry_or_deliver(store, clock, webhooks, email, smtp_server: SmtpServer):
    smtp_server.inbox.refuse_rcpt = {
        "gone@customer.example": "550 5.1.1 No such user",
        "full@customer.example": "452 4.2.2 Full",
    }
    store.add(mail("gone", "gone@customer.example"), clock.now)
    store.add(mail("full", "full@customer.example"), clock.now)
    store.add(mail("fine", "fine@customer.example"), clock.now)
    async with running(store, clock, webhooks, email) as dispatcher:
        dispatcher.wake()
        await store.wait_until(lambda: all(row.attempts for row in store.rows.values()))
    assert store.states() == {"gone": "bounced", "full": "queued", "fine": "sent"}
    assert store.rows["full"].due == clock.now + timedelta(seconds=5)
    assert store.target_verdicts == []  # email targets have no failure streak
    assert [message["To"] for message in smtp_server.inbox.messages] == ["fine@customer.example"]


async def test_concurrency_is_bounded_overall_and_per_target(store, clock, webhooks, email, receiver):
    receiver.respond = lambda request: Reply(delay=0.05)
    for number in range(8):
        store.add(hook(receiver, f"a{number}", "webhook:a"), clock.now)
        store.add(hook(receiver, f"b{number}", "webhook:b"), clock.now)
        store.add(hook(receiver, f"c{number}", "webhook:c"), clock.now)
    settings = DispatcherSettings(max_in_flight=4, per_target=2, sweep_interval=60.0)
    async with running(store, clock, webhooks, email, settings) as dispatcher:
        dispatcher.wake()
        await store.wait_until(settled(store, "sent"))
    assert receiver.most_in_flight == {"/a": 2, "/b": 2, "/c": 2}
    assert receiver.most_at_once == 4
    assert len(receiver.requests) == 24


async def test_a_busy_target_is_claimed_no_more_than_it_can_take(store, clock, webhooks, email, receiver):
    receiver.respond = lambda request: Reply(delay=0.05)
    for number in range(6):
        store.add(hook(receiver, f"a{number}", "webhook:a"), clock.now)
    settings = DispatcherSettings(max_in_flight=8, per_target=2, sweep_interval=60.0)
    async with running(store, clock, webhooks, email, settings) as dispatcher:
        dispatcher.wake()
        await store.wait_until(settled(store, "sent"))
    assert receiver.most_in_flight == {"/a": 2}
    assert store.skipped[0] == frozenset()
    assert frozenset({"webhook:a"}) in store.skipped
    assert store.claimed_per_call[0] == 2  # never more than per_target of one target in a claim
    assert all(not row.releases for row in store.rows.values())
    assert all(len(row.attempts) == 1 for row in store.rows.values())


async def test_a_target_rate_spaces_its_requests(store, clock, webhooks, email, receiver):
    for number in range(6):
        store.add(hook(receiver, f"r{number}", rate=Rate(per_second=20)), clock.now)
    settings = DispatcherSettings(per_target=6, sweep_interval=60.0)
    async with running(store, clock, webhooks, email, settings) as dispatcher:
        dispatcher.wake()
        await store.wait_until(settled(store, "sent"))
    arrivals = sorted(request.arrived_at for request in receiver.requests)
    assert arrivals[-1] - arrivals[0] >= 5 * 0.05 * 0.9  # 6 requests at 20/s span at least 0.25 s


async def test_a_delivery_that_would_wait_long_for_its_rate_is_released_until_then(
    store, clock, webhooks, email, receiver
):
    for key in ("first", "second"):
        store.add(hook(receiver, key, rate=Rate(per_second=0.01)), clock.now)
    settings = DispatcherSettings(per_target=2, sweep_interval=60.0, max_rate_wait=1.0)
    async with running(store, clock, webhooks, email, settings) as dispatcher:
        dispatcher.wake()
        await store.wait_until(
            lambda: store.rows["first"].state == "sent" and bool(store.rows["second"].releases)
        )
    second = store.rows["second"]
    assert (second.state, second.attempts, second.lease_until) == ("queued", [], None)
    [available_at] = second.releases
    assert abs(available_at - (clock.now + timedelta(seconds=100))) < timedelta(seconds=1)
    assert len(receiver.requests) == 1


async def test_on_stop_a_send_in_flight_finishes(store, clock, webhooks, email, receiver):
    receiver.respond = lambda request: Reply(delay=0.2)
    store.add(hook(receiver, "slow"), clock.now)
    async with running(store, clock, webhooks, email, grace=5.0) as dispatcher:
        dispatcher.wake()
        await receiver.arrived.wait()
    assert store.states() == {"slow": "sent"}


async def test_on_stop_a_send_that_cannot_finish_is_released(store, clock, webhooks, email, receiver):
    receiver.respond = lambda request: None
    store.add(hook(receiver, "stuck"), clock.now)
    async with running(store, clock, webhooks, email, grace=0.1) as dispatcher:
        dispatcher.wake()
        await receiver.arrived.wait()
    row = store.rows["stuck"]
    assert (row.state, row.attempts, row.lease_until, row.releases) == ("queued", [], None, [clock.now])


async def test_on_stop_deliveries_waiting_for_their_rate_are_released_at_once(
    store, clock, webhooks, email, receiver
):
    for key in ("first", "second"):
        store.add(hook(receiver, key, rate=Rate(per_second=0.2)), clock.now)
    async with running(store, clock, webhooks, email, grace=30.0) as dispatcher:
        dispatcher.wake()
        await store.wait_until(lambda: store.rows["first"].state == "sent")
        stopping = asyncio.get_running_loop().time()
    assert asyncio.get_running_loop().time() - stopping < 2.0  # not the 5 s the rate would ask
    assert store.rows["second"].releases == [clock.now]
    assert store.rows["second"].state == "queued"


async def test_a_store_that_fails_to_claim_is_tried_again_at_the_next_sweep(
    store, clock, webhooks, email, receiver
):
    store.fail_next_claims = 2
    store.add(hook(receiver, "patient"), clock.now)
    async with running(store, clock, webhooks, email, DispatcherSettings(sweep_interval=0.02)):
        await store.wait_until(settled(store, "sent"))
    assert len(store.skipped) >= 3


class BrokenEmail:
    async def send(self, message: OutgoingEmail) -> Attempt:
        raise RuntimeError("template engine exploded")


async def test_a_sender_that_raises_counts_as_a_failed_attempt(store, clock, webhooks):
    store.add(mail("m"), clock.now)
    dispatcher = Dispatcher(
        store, webhooks=webhooks, email=BrokenEmail(), clock=clock, settings=QUICK, uniform=lambda a, b: 1.0
    )
    dispatcher.start()
    dispatcher.wake()
    await store.wait_until(lambda: bool(store.rows["m"].attempts))
    await dispatcher.stop()
    [attempt] = store.rows["m"].attempts
    assert (attempt.outcome, attempt.error) == (Outcome.FAILED, "RuntimeError: template engine exploded")
    assert store.rows["m"].due == clock.now + timedelta(seconds=5)


async def test_two_dispatchers_on_one_store_send_each_delivery_once(store, clock, webhooks, email, receiver):
    receiver.respond = lambda request: Reply(delay=0.01)
    for number in range(40):
        store.add(hook(receiver, f"d{number}", f"webhook:{number % 5}"), clock.now)
    async with (
        running(store, clock, webhooks, email) as first,
        running(store, clock, webhooks, email) as second,
    ):
        first.wake()
        second.wake()
        await store.wait_until(settled(store, "sent"))
    ids = [request.headers["webhook-id"] for request in receiver.requests]
    assert len(ids) == len(set(ids)) == 40


def test_the_lease_must_outlast_a_rate_wait(store, clock, webhooks):
    with pytest.raises(ValueError, match="lease"):
        Dispatcher(
            store,
            webhooks=webhooks,
            email=BrokenEmail(),
            clock=clock,
            settings=DispatcherSettings(lease=timedelta(seconds=5), max_rate_wait=10.0),
        )


async def test_a_dispatcher_starts_once(store, clock, webhooks):
    dispatcher = Dispatcher(store, webhooks=webhooks, email=BrokenEmail(), clock=clock, settings=QUICK)
    dispatcher.start()
    with pytest.raises(RuntimeError, match="already running"):
        dispatcher.start()
    await dispatcher.stop()


async def test_retry_timing_end_to_end_on_a_frozen_wall_clock(store, email, receiver):
    def wall_clock() -> datetime:
        return datetime.now(UTC)

    answers = iter([Reply(503), Reply(200)])
    receiver.respond = lambda request: next(answers)
    with freeze_time("2026-03-02 09:00:00", real_asyncio=True) as frozen:
        async with WebhookSender(LOOPBACK, wall_clock) as webhooks:
            dispatcher = Dispatcher(
                store,
                webhooks=webhooks,
                email=email,
                clock=wall_clock,
                settings=DispatcherSettings(sweep_interval=0.01),
                uniform=lambda a, b: 1.0,
            )
            store.add(hook(receiver, "timed"), wall_clock())
            dispatcher.start()
            await store.wait_until(lambda: len(store.rows["timed"].attempts) == 1)
            assert store.rows["timed"].due == datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC)
            frozen.tick(timedelta(seconds=4.9))
            await asyncio.sleep(0.1)  # several sweeps: not due yet
            assert len(receiver.requests) == 1
            frozen.tick(timedelta(seconds=0.1))
            await store.wait_until(settled(store, "sent"))
            await dispatcher.stop()
    first, second = receiver.requests
    assert first.headers["webhook-timestamp"] == str(int(datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()))
    assert int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) == 5


async def test_claims_come_in_batches_not_one_per_send(store, clock, webhooks, email, receiver):
    for number in range(40):
        store.add(hook(receiver, f"d{number}", f"webhook:{number % 10}"), clock.now)
    settings = DispatcherSettings(max_in_flight=8, sweep_interval=60.0)
    async with running(store, clock, webhooks, email, settings) as dispatcher:
        dispatcher.wake()
        await store.wait_until(settled(store, "sent"))
    assert store.claimed_per_call[0] == 8
    assert len(store.claimed_per_call) <= 12  # claims again when half the room is free
    assert len(receiver.requests) == 40


async def test_a_stalled_dispatchers_claims_are_taken_over_when_their_lease_ends(
    store, clock, webhooks, email, receiver
):
    receiver.respond = lambda request: None if len(receiver.requests) == 1 else Reply()  # the first one hangs
    store.add(hook(receiver, "x"), clock.now)
    async with (
        WebhookSender(LOOPBACK, clock) as healthy,
        running(store, clock, webhooks, email, grace=0.0) as stalled,
    ):
        stalled.wake()
        await receiver.arrived.wait()
        async with running(store, clock, healthy, email, DispatcherSettings(sweep_interval=0.01)):
            await asyncio.sleep(0.05)
            assert store.rows["x"].state == "queued"  # still leased to the stalled one
            clock.advance(QUICK.lease.total_seconds())
            await store.wait_until(settled(store, "sent"))
    assert [request.headers["webhook-id"] for request in receiver.requests] == ["msg_x", "msg_x"]
    assert store.rows["x"].claims == 2
    assert store.stale_marks == 1  # the stalled one's late release changed nothing


async def test_logs_name_deliveries_but_never_secrets_bodies_or_addresses(
    store, clock, webhooks, email, receiver, caplog
):
    receiver.respond = lambda request: Reply(500)
    store.add(hook(receiver, "logged"), clock.now)
    store.add(mail("logged-mail"), clock.now)
    with caplog.at_level("DEBUG"):
        async with running(store, clock, webhooks, email) as dispatcher:
            dispatcher.wake()
            await store.wait_until(lambda: all(row.attempts for row in store.rows.values()))
    logged = "\n".join(
        record.getMessage() for record in caplog.records if record.name.startswith("notifications")
    )
    assert "delivery logged to webhook:1: failed (500" in logged
    assert "delivery logged-mail to email:…@customer.example: delivered" in logged
    for secret_or_body in (SECRET, SECRET.removeprefix("whsec_"), '"delivery":"logged"', "In paint.", "ana@"):
        assert secret_or_body not in logged

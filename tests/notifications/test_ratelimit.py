"""The token bucket, with the time passed in."""

from __future__ import annotations

import pytest

from notifications.ratelimit import MIN_PER_SECOND, Rate, TokenBucket


def waits(bucket: TokenBucket, times: list[float], max_wait: float = 60.0) -> list[float | None]:
    """The wait of each reservation made at `times`, None where refused."""
    result: list[float | None] = []
    for now in times:
        reservation = bucket.reserve(now, max_wait)
        bucket = reservation.bucket
        result.append(round(reservation.wait, 6) if reservation.granted else None)
    return result


@pytest.mark.parametrize(
    ("rate", "times", "expected"),
    [
        (Rate(2), [0, 0, 0, 0], [0, 0.5, 1.0, 1.5]),  # concurrent senders line up
        (Rate(2), [0, 0.5, 1.0, 1.5], [0, 0, 0, 0]),  # exactly at the rate: never waits
        (Rate(2), [0, 0.25, 0.25], [0, 0.25, 0.75]),
        (Rate(1, burst=3), [0, 0, 0, 0, 0], [0, 0, 0, 1.0, 2.0]),  # a burst, then the rate
        (Rate(1, burst=3), [0, 0, 0, 10, 10, 10, 10], [0, 0, 0, 0, 0, 0, 1.0]),  # refills up to the burst
        (Rate(10), [5.0, 5.0, 5.05], [0, 0.1, 0.15]),
    ],
)
def test_reservations_follow_the_rate(rate, times, expected):
    assert waits(TokenBucket.full(rate, times[0]), times) == expected


def test_a_reservation_that_would_wait_too_long_is_refused_and_takes_nothing():
    bucket = TokenBucket.full(Rate(1), 0.0)
    assert waits(bucket, [0, 0, 0, 0], max_wait=1.5) == [0, 1.0, None, None]
    first = bucket.reserve(0, 1.5).bucket.reserve(0, 1.5).bucket
    refused = first.reserve(0, 1.5)
    assert not refused.granted
    assert refused.wait == pytest.approx(2.0)
    assert refused.bucket == first


def test_a_full_bucket_grants_at_once():
    reservation = TokenBucket.full(Rate(0.01), 100.0).reserve(100.0, 0.0)
    assert (reservation.granted, reservation.wait) == (True, 0.0)


@pytest.mark.parametrize(("per_second", "burst"), [(0, 1), (-1, 1), (1, 0), (1e-300, 1), (0.99 / 3600, 1)])
def test_a_rate_must_let_something_through_at_least_hourly(per_second, burst):
    with pytest.raises(ValueError, match="at least one request an hour"):
        Rate(per_second, burst)


def test_the_slowest_rate_waits_an_hour_between_sends():
    bucket = TokenBucket.full(Rate(MIN_PER_SECOND), 0.0)
    first = bucket.reserve(0.0, 7200.0)
    second = first.bucket.reserve(0.0, 7200.0)
    assert (first.wait, second.granted, round(second.wait)) == (0.0, True, 3600)

"""A per-endpoint token bucket, pure: the caller passes the time (seconds) in.

The store keeps each endpoint's bucket between reservations, so every process sending to the endpoint
takes from the same bucket and the rate holds for the whole fleet, not per process.

Taking a token reserves it even when the bucket is empty, so concurrent senders line up one after the other
instead of all waking at the same instant; a reservation that would wait too long is not made at all.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_PER_SECOND = 1 / 3600
"""The slowest rate an endpoint may ask for, one request an hour: slower, a send would wait longer than a
delivery lives (and a wait of 1e300 seconds is no time at all to a clock)."""


@dataclass(frozen=True, slots=True)
class Rate:
    per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        if self.per_second < MIN_PER_SECOND or self.burst < 1:
            raise ValueError("a rate is at least one request an hour and lets one through at once")


@dataclass(frozen=True, slots=True)
class Reservation:
    bucket: TokenBucket
    """The bucket after this reservation (unchanged when it was not granted)."""
    wait: float
    """Seconds until the reserved token may be used (or, when not granted, until one would be)."""
    granted: bool


@dataclass(frozen=True, slots=True)
class TokenBucket:
    rate: Rate
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: Rate, now: float) -> TokenBucket:
        return cls(rate, float(rate.burst), now)

    def reserve(self, now: float, max_wait: float) -> Reservation:
        """Take one token at `now`, to be used after `wait` seconds, unless that is more than `max_wait`."""
        refilled = min(
            float(self.rate.burst), self.tokens + max(0.0, now - self.updated) * self.rate.per_second
        )
        wait = max(0.0, (1.0 - refilled) / self.rate.per_second)
        if wait > max_wait:
            return Reservation(self, wait, granted=False)
        return Reservation(TokenBucket(self.rate, refilled - 1.0, max(now, self.updated)), wait, granted=True)

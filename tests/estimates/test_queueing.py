from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import numpy as np
import pytest

from tracker.estimates.queueing import (
    QueueWait,
    ServiceTimes,
    WaitingJob,
    queue_waits_from_throughput,
    simulate_queue_waits,
)

T0 = datetime(2024, 6, 3, 8, tzinfo=UTC)
HOUR = 3600.0


def line(count: int) -> list[WaitingJob]:
    return [WaitingJob(f"job-{i}", T0 + timedelta(minutes=i)) for i in range(count)]


def expected(waits: list[QueueWait]) -> list[float]:
    return [w.expected_wait_s for w in waits]


def test_unlimited_capacity_means_no_wait() -> None:
    service = ServiceTimes.from_mean_sd(4 * HOUR, HOUR)
    waits = simulate_queue_waits(None, line(5), [HOUR] * 10, service)
    assert expected(waits) == [0.0] * 5
    assert [w.jobs_ahead for w in waits] == [10, 11, 12, 13, 14]
    assert expected(queue_waits_from_throughput(None, line(3), 10, 0.0)) == [0.0] * 3


def test_free_slots_mean_no_wait() -> None:
    service = ServiceTimes.from_samples([HOUR, 2 * HOUR, 5 * HOUR])
    waits = simulate_queue_waits(4, line(2), [0.5 * HOUR], service)
    assert [(w.expected_wait_s, w.p90_wait_s) for w in waits] == [(0.0, 0.0), (0.0, 0.0)]
    assert expected(queue_waits_from_throughput(4, line(3), 1, 1 / HOUR)) == [0.0, 0.0, 0.0]


def test_jobs_are_served_in_order_of_arrival() -> None:
    jobs = [WaitingJob("late", T0 + timedelta(hours=2)), WaitingJob("early", T0), WaitingJob("b", T0)]
    waits = simulate_queue_waits(1, jobs, [0.0], ServiceTimes.from_samples([HOUR]))
    assert [(w.job_id, w.position) for w in waits] == [("b", 1), ("early", 2), ("late", 3)]


def test_deterministic_service_gives_exact_waits() -> None:
    service = ServiceTimes.from_mean_sd(HOUR, 0.0)
    # Two slots, one busy for 45 min already: it frees in 15 min, the other is free now.
    waits = simulate_queue_waits(2, line(4), [0.75 * HOUR], service)
    assert expected(waits) == pytest.approx([0.0, 0.25 * HOUR, HOUR, 1.25 * HOUR])


def test_each_job_in_line_waits_longer_than_the_one_before() -> None:
    service = ServiceTimes.from_mean_sd(3 * HOUR, 2 * HOUR)
    waits = simulate_queue_waits(2, line(8), [HOUR, 2 * HOUR], service)
    means = expected(waits)
    assert all(b > a for a, b in pairwise(means))
    assert all(w.p90_wait_s >= w.expected_wait_s for w in waits)
    by_rate = expected(queue_waits_from_throughput(2, line(8), 2, 1 / (1.5 * HOUR)))
    assert all(b > a for a, b in pairwise(by_rate))


def test_doubling_capacity_roughly_halves_the_wait() -> None:
    service = ServiceTimes.from_samples(np.random.default_rng(1).lognormal(np.log(2 * HOUR), 0.5, 500))
    narrow = simulate_queue_waits(2, line(40), [0.0, 0.0], service)
    wide = simulate_queue_waits(4, line(40), [0.0, 0.0, 0.0, 0.0], service)
    assert wide[-1].expected_wait_s / narrow[-1].expected_wait_s == pytest.approx(0.5, rel=0.1)


def test_a_job_in_service_only_finishes_after_its_elapsed_time() -> None:
    service = ServiceTimes.from_samples([HOUR, 4 * HOUR])
    # In service for 2 h: only the 4 h samples are compatible, 2 h remain.
    waits = simulate_queue_waits(1, line(1), [2 * HOUR], service)
    assert waits[0].expected_wait_s == pytest.approx(2 * HOUR)


def test_a_job_overdue_beyond_every_sample_is_assumed_to_finish_now() -> None:
    waits = simulate_queue_waits(1, line(1), [10 * HOUR], ServiceTimes.from_samples([HOUR]))
    assert waits[0].expected_wait_s == 0.0


def test_more_jobs_in_service_than_slots_delays_the_line() -> None:
    service = ServiceTimes.from_mean_sd(HOUR, 0.0)
    # Capacity lowered to 1 while 2 jobs run: the first waiting job starts when both are done.
    waits = simulate_queue_waits(1, line(2), [0.5 * HOUR, 0.0], service)
    assert expected(waits) == pytest.approx([HOUR, 2 * HOUR])


def test_throughput_wait_follows_littles_law() -> None:
    rate = 1 / (2 * HOUR)  # one completion every 2 working hours
    waits = queue_waits_from_throughput(1, line(3), 1, rate)
    assert expected(waits) == pytest.approx([2 * HOUR, 4 * HOUR, 6 * HOUR])
    # P90 of the time to the first completion of a Poisson process is ln(10) / rate.
    assert waits[0].p90_wait_s == pytest.approx(np.log(10) * 2 * HOUR, rel=0.02)


def test_simulation_is_reproducible() -> None:
    service = ServiceTimes.from_mean_sd(3 * HOUR, 2 * HOUR)
    assert simulate_queue_waits(2, line(5), [HOUR], service) == simulate_queue_waits(
        2, line(5), [HOUR], service
    )


@pytest.mark.parametrize("capacity", [1, 3])
def test_deep_in_a_long_line_the_normal_limit_matches_a_full_replay(capacity: int) -> None:
    service = ServiceTimes.from_mean_sd(3 * HOUR, 2 * HOUR)
    jobs = line(40 * capacity)
    in_service = [HOUR] * capacity
    full = simulate_queue_waits(capacity, jobs, in_service, service, simulated_positions=len(jobs))
    continued = simulate_queue_waits(capacity, jobs, in_service, service, simulated_positions=10 * capacity)
    assert [w.job_id for w in continued] == [w.job_id for w in full]
    assert expected(continued[: 10 * capacity]) == expected(full[: 10 * capacity])  # replayed alike
    for mine, replayed in zip(continued[10 * capacity :], full[10 * capacity :], strict=True):
        assert mine.expected_wait_s == pytest.approx(replayed.expected_wait_s, rel=0.03)
        assert mine.p90_wait_s == pytest.approx(replayed.p90_wait_s, rel=0.04)


def test_a_long_line_costs_a_bounded_replay() -> None:
    service = ServiceTimes.from_mean_sd(3 * HOUR, 2 * HOUR)
    waits = simulate_queue_waits(2, line(20_000), [0.0, 0.0], service, runs=200)
    assert len(waits) == 20_000
    assert all(a.expected_wait_s < b.expected_wait_s for a, b in pairwise(waits))
    assert all(a.p90_wait_s < b.p90_wait_s for a, b in pairwise(waits[200:]))
    # The last of 20,000 jobs on two slots waits about 10,000 service times of the distribution's mean.
    assert waits[-1].expected_wait_s == pytest.approx(20_000 * service.samples.mean() / 2, rel=0.005)


@pytest.mark.parametrize("samples", [[], [-1.0], [float("nan")]])
def test_invalid_service_times_are_rejected(samples: list[float]) -> None:
    with pytest.raises(ValueError, match="service times"):
        ServiceTimes.from_samples(samples)


def test_invalid_capacity_and_rate_are_rejected() -> None:
    service = ServiceTimes.from_samples([HOUR])
    with pytest.raises(ValueError, match="capacity"):
        simulate_queue_waits(0, line(1), [], service)
    with pytest.raises(ValueError, match="completions_per_s"):
        queue_waits_from_throughput(1, line(1), 1, 0.0)

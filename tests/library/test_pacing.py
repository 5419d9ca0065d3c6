"""The adaptive pacer against a model of AWS's token bucket, on a clock of the test's own: deterministic.

Calls go through a :class:`TokenBucket` as the pacer's workers use it, to an endpoint that admits or refuses each
one when it arrives (a bucket of its own, as the sandbox's throttle model); parallel workers are simulated one
event at a time (a call is sent when its token is due, arrives half a latency later, is answered half a latency
after that), so "seconds" below are simulated seconds, the same on every machine.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from opskit.errors import AwsError
from opskit.library import AWS_RATES, Pacer, Rate, TokenBucket
from opskit.library.pacing import (
    TASK_DEFINITION_DELETE,
    TASK_DEFINITION_MODIFY,
    TASK_DEFINITION_READ,
    AdaptiveRate,
)

READS = AWS_RATES[TASK_DEFINITION_READ]  # a burst of 50, then 20 a second


@dataclass
class Endpoint:
    """AWS's side of one category: a bucket of ``burst`` tokens refilling at ``per_second``; ``noise`` refuses that
    share of calls whatever the bucket holds (a fault injector), from a seeded random generator."""

    burst: float
    per_second: float
    noise: float = 0.0
    refused: int = 0
    admitted: int = 0
    _tokens: float = field(init=False)
    _stamp: float = 0.0
    _random: random.Random = field(default_factory=lambda: random.Random(7))

    def __post_init__(self) -> None:
        self._tokens = self.burst

    def admit(self, at: float) -> bool:
        self._tokens = min(self.burst, self._tokens + (at - self._stamp) * self.per_second)
        self._stamp = at
        ok = self._tokens >= 1 and not (self.noise and self._random.random() < self.noise)
        if ok:
            self._tokens -= 1
            self.admitted += 1
        else:
            self.refused += 1
        return ok

    def bound(self) -> float:
        """The least time its bucket allows for the calls it admitted."""
        return max(0.0, self.admitted - self.burst) / self.per_second


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def bucket(clock: Clock, rate: Rate = READS, **options: object) -> TokenBucket:
    options.setdefault("adaptive", True)
    return TokenBucket(rate, clock=clock, sleep=clock.sleep, **options)  # type: ignore[arg-type]


def run(paced: TokenBucket, clock: Clock, endpoint: Endpoint, calls: int, workers: int, latency: float) -> float:
    """``calls`` calls by ``workers`` workers, each refused one sent again at once (its next token); returns the
    simulated seconds until the last one was admitted."""
    events: list[tuple[float, int, str, int]] = []  # (when, order, what, ticket)
    order = 0

    def push(when: float, what: str, ticket: int = -1) -> None:
        nonlocal order
        heapq.heappush(events, (when, order, what, ticket))
        order += 1

    def send() -> None:
        ticket, due = paced.reserve()
        push(max(clock.now, due), "send", ticket)

    left, last = calls, 0.0
    for _ in range(workers):
        push(0.0, "next")
    while events:
        clock.now, _, what, ticket = heapq.heappop(events)
        if what == "next" and left > 0:
            left -= 1
            send()
        elif what == "send":
            ok = endpoint.admit(clock.now + latency / 2)
            push(clock.now + latency, "done" if ok else "refused", ticket)
        elif what == "done":
            last = clock.now
            push(clock.now, "next")
        elif what == "refused":
            paced.refused(ticket)
            send()
    return last


# -- finding the rate ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("label", "endpoint_rate", "calls"),
    [("AWS's own rate", 20, 400), ("a quota raised threefold", 60, 1000), ("a sandbox at time scale 10", 200, 2000)],
)
def test_parallel_readers_run_within_a_tenth_of_the_bound_the_endpoint_allows(
    label: str, endpoint_rate: float, calls: int
) -> None:
    clock = Clock()
    reads = bucket(clock)
    endpoint = Endpoint(READS.burst, endpoint_rate)
    seconds = run(reads, clock, endpoint, calls, workers=8, latency=0.004)
    assert seconds <= 1.10 * endpoint.bound(), label
    assert endpoint.refused <= calls // 20, label  # a few refusals find the rate; none cascade
    assert 0.9 * endpoint_rate <= reads.per_second <= 1.1 * endpoint_rate, label


def test_one_caller_cleaning_up_finds_ten_times_the_published_modify_rate() -> None:
    clock = Clock()
    modify = bucket(clock, AWS_RATES[TASK_DEFINITION_MODIFY])  # a burst of 20, then 1 a second
    endpoint = Endpoint(20, 10)
    seconds = run(modify, clock, endpoint, 150, workers=1, latency=0.015)
    assert seconds <= 1.05 * endpoint.bound()
    assert endpoint.refused <= 5


def test_a_burst_of_five_is_no_obstacle_to_finding_the_deletion_rate() -> None:
    clock = Clock()
    deletion = bucket(clock, AWS_RATES[TASK_DEFINITION_DELETE])  # a burst of 5, then 1 a second
    endpoint = Endpoint(5, 10)
    seconds = run(deletion, clock, endpoint, 100, workers=1, latency=0.015)
    assert seconds <= 1.10 * endpoint.bound()
    assert endpoint.refused <= 5


def test_the_probe_grows_only_while_callers_wait_for_tokens() -> None:
    rate = AdaptiveRate(20, 50)
    for n in range(200):
        rate.sent(n * 0.1, waited=False)  # ten calls a second, half what the bucket allows: nothing to find
    assert rate.per_second == 20
    for n in range(10):
        rate.sent(20 + n / 20, waited=True)  # callers wait half a second at 20 a second
    assert rate.per_second > 20 * 4


def test_a_rate_the_caller_knows_is_crept_past_not_probed() -> None:
    clock = Clock()
    told = bucket(clock, READS.scaled(10), known=True)  # rate_scale=10, for a sandbox at time scale 10
    rates = []
    original = told.probe.sent

    def sent(at: float, *, waited: bool) -> int:
        rates.append((at, told.per_second))
        return original(at, waited=waited)

    told.probe.sent = sent  # type: ignore[method-assign]
    endpoint = Endpoint(READS.burst, 200)
    run(told, clock, endpoint, 600, workers=8, latency=0.004)
    assert endpoint.refused <= 1
    assert max(rate for at, rate in rates if at < 2) <= 1.05 * 200


# -- what a refusal teaches ----------------------------------------------------------------------------------------
def test_the_bounds_of_a_refusal_bracket_the_endpoint_rate() -> None:
    rate = AdaptiveRate(40, 50, adaptive=False)  # twice what the endpoint allows, and it stays there
    endpoint = Endpoint(50, 20)
    bounds = []
    for n in range(400):
        at = n / 40
        ticket = rate.sent(at, waited=True)
        if not endpoint.admit(at):
            rate.refused(ticket, at)
            bounds.append(rate.bounds(ticket))
    assert len(bounds) > 100
    assert all(low < 20 < high for low, high in bounds)
    assert all(high < 22 for _, high in bounds[20:])  # tighter as the refusals to draw stretches from add up


def test_one_throttle_cuts_the_rate_once_however_many_calls_it_refused() -> None:
    rate = AdaptiveRate(60, 50, adaptive=True)
    endpoint = Endpoint(50, 20)
    refused: list[int] = []
    at = 0.0
    while len(refused) < 8:  # three times what the endpoint allows: once its burst is gone, calls are refused
        ticket = rate.sent(at, waited=False)
        if not endpoint.admit(at):
            refused.append(ticket)
        at += 1 / 60
    cuts = [rate.refused(ticket, at) for ticket in refused]  # all eight told at once: they were on their way
    assert cuts == [True] + [False] * 7 and rate.cuts == 1
    assert 0.9 * 20 <= rate.per_second <= 20 * 1.05


def test_refusals_no_bucket_explains_leave_the_rate_alone() -> None:
    clock = Clock()
    reads = bucket(clock, READS.scaled(10), known=True)
    endpoint = Endpoint(READS.burst, 200, noise=0.3)  # three calls in ten refused, whatever the rate
    seconds = run(reads, clock, endpoint, 1000, workers=8, latency=0.004)
    assert endpoint.refused > 300
    assert reads.probe.refusals == endpoint.refused and reads.probe.cuts < endpoint.refused // 20
    assert 1000 / seconds > 0.5 * 200 * 0.7  # trimmed now and then, never cut down to a crawl


def test_a_neighbour_taking_half_the_quota_is_made_room_for() -> None:
    clock = Clock()
    reads = bucket(clock)
    endpoint = Endpoint(READS.burst, 200)
    run(reads, clock, endpoint, 1000, workers=8, latency=0.004)
    endpoint.per_second = 100  # another tool starts on the same account's bucket
    refused, started, admitted = endpoint.refused, clock.now, endpoint.admitted
    run(reads, clock, endpoint, 1500, workers=8, latency=0.004)
    assert 0.9 * 100 <= reads.per_second <= 1.05 * 100
    assert (endpoint.admitted - admitted) / (clock.now - started) >= 0.9 * 100
    assert endpoint.refused - refused <= 1500 // 5


def test_a_refusal_before_a_burst_was_admitted_teaches_nothing() -> None:
    rate = AdaptiveRate(20, 50)
    first = rate.sent(0.0, waited=False)
    rate.sent(0.1, waited=False)
    assert not rate.refused(first, 0.2)  # a neighbour emptied the bucket: no rate of ours is to blame
    assert rate.per_second == 20 and rate.ceiling is None and rate.faults == 1


def test_the_rate_never_falls_under_a_quarter_of_the_published_one() -> None:
    clock = Clock()
    reads = bucket(clock)
    endpoint = Endpoint(READS.burst, 1)  # a neighbour takes all but 1 call a second
    run(reads, clock, endpoint, 200, workers=2, latency=0.004)
    assert reads.per_second >= 0.25 * 20 * 0.98


# -- the pacer -----------------------------------------------------------------------------------------------------
def throttled_by(endpoint: Endpoint, clock: Clock) -> Callable[[], str]:
    def list_things() -> str:
        if not endpoint.admit(clock.now):
            raise AwsError("Rate exceeded", code="ThrottlingException", operation="ListThings", transient=True)
        clock.now += 0.002
        return "page"

    return list_things


def test_a_pacer_absorbs_every_throttle_and_learns_the_rate() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    endpoint = Endpoint(50, 200)
    list_things = throttled_by(endpoint, clock)
    assert [pacer.call(TASK_DEFINITION_READ, list_things) for _ in range(1000)] == ["page"] * 1000
    assert pacer.throttled["ListThings"] == endpoint.refused > 0
    assert pacer.calls["ListThings"] == 1000 + endpoint.refused
    assert 0.9 * 200 <= pacer.buckets[TASK_DEFINITION_READ].per_second <= 1.1 * 200


def test_an_operation_of_no_category_gets_a_bucket_of_its_own_once_throttled() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    endpoint = Endpoint(10, 100)  # as ECR publishes per action: a second's worth of burst
    list_things = throttled_by(endpoint, clock)
    for _ in range(600):
        pacer.call(None, list_things)
    learnt = pacer.buckets["operation:ListThings"]  # started at the rate it went unpaced: five times too fast
    assert endpoint.refused <= 600 // 15
    assert 0.8 * 100 <= learnt.per_second <= 1.1 * 100


def test_a_fixed_pacer_keeps_its_rates() -> None:
    clock = Clock()
    pacer = Pacer(adaptive=False, clock=clock, sleep=clock.sleep)
    endpoint = Endpoint(50, 10)
    list_things = throttled_by(endpoint, clock)
    for _ in range(200):
        pacer.call(TASK_DEFINITION_READ, list_things)
    assert endpoint.refused > 0
    assert pacer.buckets[TASK_DEFINITION_READ].per_second == 20 * 0.98


def test_a_pacer_gives_up_after_its_patience_with_one_line_that_says_what_to_do() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=clock.sleep, patience=30)
    never = Endpoint(50, 20, noise=1.0)
    with pytest.raises(AwsError, match=r"^AWS kept throttling ListThings for 30 s: .* run again later$"):
        pacer.call(TASK_DEFINITION_READ, throttled_by(never, clock))
    assert clock.now > 30


def test_bad_rate_scales_are_refused() -> None:
    for scale in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="rate_scale must be a positive number"):
            Pacer(rate_scale=scale)

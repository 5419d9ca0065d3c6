"""Syncing against a sandbox that throttles at AWS's real rates: paced, nothing refused, no exception surfacing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit.errors import AwsError
from opskit.library import Pacer, Rate, RevisionLibrary, TokenBucket
from opskit.sandbox import Sandbox

from .seeding import library_of, register

REVISIONS = 120


@pytest.fixture
def real_rates() -> Iterator[Sandbox]:
    """A sandbox at AWS's own rates (time scale 1: task-definition reads burst 50, then 20 per second)."""
    with Sandbox(seed=None, time_scale=1, docker=False, registry=False) as sb:
        ecs = sb.client("ecs")
        with sb.throttle.suspended():
            for n in range(REVISIONS):
                register(ecs, f"family-{n % 4}", f"127.0.0.1:1/app:{n:07x}")
        sb.reset_calls()
        yield sb


def test_a_sync_at_aws_rates_is_paced_under_the_bucket_and_never_refused(real_rates: Sandbox, cache_dir: Path) -> None:
    library = library_of(real_rates, cache_dir)
    report = library.sync(include=["revisions"])
    # Paced to the bucket from the first call: at most a stray refusal when a loaded machine delivers requests in
    # a clump (unpaced, most describes past the burst of 50 are refused). How close to the rate it runs is
    # benchmarks/library_sync.py's figure.
    throttled = real_rates.throttled.get("DescribeTaskDefinition", 0)
    assert real_rates.calls["DescribeTaskDefinition"] == REVISIONS + throttled
    assert throttled <= REVISIONS // 20, real_rates.throttled
    assert report.revisions is not None and report.revisions.described == REVISIONS


def test_a_sync_faster_than_aws_allows_is_throttled_yet_completes(real_rates: Sandbox, cache_dir: Path) -> None:
    library = library_of(real_rates, cache_dir, rate_scale=20)  # thinks AWS allows 400/s: it allows 20/s
    report = library.sync(include=["revisions"])
    assert real_rates.throttled["DescribeTaskDefinition"] > 0
    assert report.revisions is not None and report.revisions.described == REVISIONS
    assert len(library.revisions()) == REVISIONS


def test_injected_throttles_on_every_read_are_absorbed(sandbox: Sandbox, cache_dir: Path) -> None:
    ecs = sandbox.client("ecs")
    with sandbox.throttle.suspended():
        for n in range(24):
            register(ecs, "web", f"127.0.0.1:1/web:{n:07x}")
    for action in ("DescribeTaskDefinition", "ListTaskDefinitions", "ListServices", "DescribeImages"):
        sandbox.faults.set(action, throttle_rate=0.4)
    ecs.create_cluster(clusterName="prod")
    # One attempt per call in botocore, so every injected throttle reaches the pacer, which retries it (with two,
    # a run of ~30 calls saw no throttle get past botocore about once in 200).
    library = RevisionLibrary(sandbox.aws(max_attempts=1), cache_dir=cache_dir, rate_scale=60)
    report = library.sync()
    assert sandbox.throttled["DescribeTaskDefinition"] > 0
    assert sum(report.throttled.values()) > 0
    assert len(library.revisions()) == 24


def test_when_aws_never_stops_throttling_the_caller_gets_a_one_line_error(sandbox: Sandbox, cache_dir: Path) -> None:
    ecs = sandbox.client("ecs")
    register(ecs, "web")
    sandbox.faults.set("ListTaskDefinitions", throttle_rate=1.0)
    library = RevisionLibrary(sandbox.aws(max_attempts=2), cache_dir=cache_dir, rate_scale=60)
    library.pacer.patience = 1.0
    with pytest.raises(AwsError, match=r"AWS kept throttling ListTaskDefinitions .* run again later") as caught:
        library.sync(include=["revisions"])
    assert "\n" not in str(caught.value)


def test_a_token_bucket_lets_the_burst_through_then_paces_to_the_rate() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    bucket = TokenBucket(Rate(50, 20), headroom=1.0, reserve=0.0, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire() for _ in range(70)]
    assert waits[:50] == [0.0] * 50
    assert now[0] == pytest.approx(20 / 20)  # 20 more calls at 20 per second

    now[0] = 0.0
    spared = TokenBucket(Rate(50, 20), headroom=1.0, clock=lambda: now[0], sleep=sleep)  # 10% of the burst kept
    waits = [spared.acquire() for _ in range(50)]
    assert waits[:45] == [0.0] * 45 and all(w > 0 for w in waits[45:])
    bucket.hold(2.0)
    before = now[0]
    bucket.acquire()
    assert now[0] - before >= 2.0


def test_a_pacer_counts_calls_per_operation() -> None:
    pacer = Pacer({"x": Rate(5, 1000)})

    def list_things() -> int:
        return 1

    assert sum(pacer.call("x", list_things) for _ in range(3)) == 3
    assert pacer.calls == {"ListThings": 3}

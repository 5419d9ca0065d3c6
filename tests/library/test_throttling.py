"""Syncing against a sandbox that throttles: the pacer finds the rate the endpoint allows, every throttle reaches it
(botocore's own retries do not hide them) and is absorbed, no exception surfaces. The controller itself is tested
deterministically in test_pacing.py; how close to the throttle bound each command runs is
benchmarks/pacing_bound.py's figure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit.errors import AwsError
from opskit.library import Pacer, Rate, RevisionLibrary, TokenBucket
from opskit.library.pacing import TASK_DEFINITION_READ, paced_aws
from opskit.sandbox import Sandbox

from .seeding import library_of, register

REVISIONS = 120
READS = ("ListTaskDefinitions", "DescribeTaskDefinition")


def seeded(time_scale: float, revisions: int) -> Iterator[Sandbox]:
    with Sandbox(seed=None, time_scale=time_scale, docker=False, registry=False) as sb:
        ecs = sb.client("ecs")
        with sb.throttle.suspended():
            for n in range(revisions):
                register(ecs, f"family-{n % 4}", f"127.0.0.1:1/app:{n:07x}")
        sb.reset_calls()
        yield sb


@pytest.fixture
def real_rates() -> Iterator[Sandbox]:
    """A sandbox at AWS's own rates (time scale 1: task-definition reads burst 50, then 20 per second)."""
    yield from seeded(1, REVISIONS)


@pytest.fixture
def ten_times() -> Iterator[Sandbox]:
    """A sandbox ten times faster than AWS (task-definition reads: 200 per second), as `opskit sandbox --time-scale
    10` serves it: the library is not told."""
    yield from seeded(10, 600)


def reads_of(counts: dict[str, int]) -> int:
    return sum(counts.get(action, 0) for action in READS)


def test_a_sync_at_aws_rates_probes_past_them_then_settles_just_under_absorbing_every_throttle(
    real_rates: Sandbox, cache_dir: Path
) -> None:
    library = RevisionLibrary(real_rates.aws(), cache_dir=cache_dir)  # default options: AWS's rates to start
    report = library.sync(include=["revisions"])
    assert report.revisions is not None and report.revisions.described == REVISIONS
    # The probe went past 20 a second and was refused (AWS's bucket was the limit), each refusal reached the pacer
    # at once (botocore made one attempt) and was retried by it, and there were few: one throttle cuts once.
    throttled = reads_of(real_rates.throttled)
    assert throttled > 0
    assert reads_of(report.throttled) == throttled
    assert real_rates.calls["DescribeTaskDefinition"] == REVISIONS + real_rates.throttled["DescribeTaskDefinition"]
    assert throttled <= 3 * library.workers, real_rates.throttled
    assert 0.5 * 20 <= library.pacer.buckets[TASK_DEFINITION_READ].per_second <= 1.5 * 20


def test_a_sync_at_time_scale_10_with_default_options_finds_more_and_absorbs_its_throttles(
    ten_times: Sandbox, cache_dir: Path
) -> None:
    library = RevisionLibrary(ten_times.aws(), cache_dir=cache_dir)
    report = library.sync(include=["revisions"])
    assert report.revisions is not None and report.revisions.described == 600
    assert len(library.revisions()) == 600
    assert reads_of(report.throttled) == reads_of(ten_times.throttled)  # each throttle reached the pacer
    learnt = library.pacer.buckets[TASK_DEFINITION_READ].per_second
    assert learnt > 2 * 20  # well past AWS's published rate (how far depends on how fast this machine serves)
    if reads_of(ten_times.throttled):
        assert learnt <= 1.5 * 200  # and, once refused, near the sandbox's


def test_a_sync_faster_than_aws_allows_is_throttled_yet_completes_and_slows_down(
    real_rates: Sandbox, cache_dir: Path
) -> None:
    library = library_of(real_rates, cache_dir, rate_scale=20)  # thinks AWS allows 400/s: it allows 20/s
    report = library.sync(include=["revisions"])
    assert real_rates.throttled["DescribeTaskDefinition"] > 0
    assert report.revisions is not None and report.revisions.described == REVISIONS
    assert len(library.revisions()) == REVISIONS
    assert library.pacer.buckets[TASK_DEFINITION_READ].per_second <= 2 * 20


def test_injected_throttles_on_every_read_are_absorbed(sandbox: Sandbox, cache_dir: Path) -> None:
    ecs = sandbox.client("ecs")
    with sandbox.throttle.suspended():
        for n in range(24):
            register(ecs, "web", f"127.0.0.1:1/web:{n:07x}")
    for action in ("DescribeTaskDefinition", "ListTaskDefinitions", "ListServices", "DescribeImages"):
        sandbox.faults.set(action, throttle_rate=0.4)
    ecs.create_cluster(clusterName="prod")
    # botocore's default attempts: the pacer's calls still make one, so every injected throttle reaches the pacer.
    library = RevisionLibrary(sandbox.aws(), cache_dir=cache_dir, rate_scale=60)
    report = library.sync()
    assert sandbox.throttled["DescribeTaskDefinition"] > 0
    assert report.throttled == dict(sandbox.throttled)
    assert len(library.revisions()) == 24


def test_what_botocore_retries_besides_throttles_is_still_retried_as_configured(
    sandbox: Sandbox, cache_dir: Path
) -> None:
    register(sandbox.client("ecs"), "web")
    sandbox.reset_calls()
    sandbox.faults.set("DescribeTaskDefinition", error_rate=1.0)  # a 5xx answer, every time
    library = RevisionLibrary(sandbox.aws(max_attempts=3), cache_dir=cache_dir, rate_scale=60)
    with pytest.raises(AwsError, match=r"^AWS kept failing DescribeTaskDefinition \(\w+: .*\) after 3 attempts"):
        library.sync(include=["revisions"])
    # the pacer's single attempt, then the three the Aws is configured to make
    assert sandbox.calls["DescribeTaskDefinition"] == 1 + 3


def test_a_throttle_outside_a_pacer_is_retried_by_botocore_as_before(sandbox: Sandbox) -> None:
    aws = sandbox.aws(max_attempts=3)
    sandbox.faults.set("ListClusters", throttle_rate=1.0)
    with pytest.raises(AwsError, match=r"^AWS kept failing ListClusters \(ThrottlingException: .*\) after 3 attempts"):
        paced_aws(aws).client("ecs").list_clusters()
    assert sandbox.calls["ListClusters"] == 1 + 3


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

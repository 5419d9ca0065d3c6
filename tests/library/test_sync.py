"""Syncing revisions: pagination across pages, the cache picking up new revisions and status changes with
exactly the calls expected (counted by the sandbox), refresh, families, and an interrupted sync resuming."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from opskit.library import RevisionLibrary
from opskit.progress import ProgressEvent
from opskit.sandbox import Sandbox
from opskit.sandbox.ecs.taskdefs import DELETE_SECONDS

from .seeding import library_of, list_all, register


def counts(ecs: Any) -> dict[str, int]:
    return {status: len(list_all(ecs, status)) for status in ("ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS")}


def pages(by_status: dict[str, int]) -> int:
    """ListTaskDefinitions calls for complete listings of every status (an empty status is one empty page)."""
    return sum(max(1, math.ceil(n / 100)) for n in by_status.values())


def read_calls(sandbox: Sandbox) -> dict[str, int]:
    calls = sandbox.calls
    return {k: v for k, v in calls.items() if k in ("ListTaskDefinitions", "DescribeTaskDefinition")}


@pytest.fixture
def seeded(sandbox: Sandbox) -> Sandbox:
    """250 revisions of "big" (3 pages of ACTIVE), 120 of them deregistered, 10 of those deleted; "a" and "b"."""
    ecs = sandbox.client("ecs")
    with sandbox.throttle.suspended():
        for n in range(1, 251):
            register(ecs, "big", f"127.0.0.1:1/big:{n:07x}")
        for family in ("a", "b"):
            for n in range(5):
                register(ecs, family, f"127.0.0.1:1/{family}:{n:07x}")
        for n in range(1, 121):
            ecs.deregister_task_definition(taskDefinition=f"big:{n}")
        ecs.delete_task_definitions(taskDefinitions=[f"big:{n}" for n in range(1, 11)])
    sandbox.clock.advance(DELETE_SECONDS)  # ECS removes them a few minutes after the call
    sandbox.reset_calls()
    return sandbox


def test_a_cold_sync_lists_every_status_page_by_page_and_describes_each_revision_once(
    seeded: Sandbox, cache_dir: Path
) -> None:
    ecs = seeded.client("ecs")
    expected = counts(ecs)
    assert expected == {"ACTIVE": 140, "INACTIVE": 110, "DELETE_IN_PROGRESS": 0}
    seeded.reset_calls()
    library = library_of(seeded, cache_dir)
    report = library.sync(include=["revisions"])

    assert read_calls(seeded) == {"ListTaskDefinitions": pages(expected), "DescribeTaskDefinition": 250}
    assert seeded.throttled == {}
    assert report.revisions is not None
    assert (report.revisions.listed, report.revisions.described, report.revisions.list_pages) == (250, 250, 5)
    frame = library.revisions()
    for status in expected:
        assert sorted(frame.loc[frame["status"] == status, "arn"]) == sorted(list_all(ecs, status))
    big = frame[frame["family"] == "big"]
    assert list(big["revision"]) == list(range(11, 251))
    assert list(library.containers(family="big")["tag"]) == [f"{n:07x}" for n in range(11, 251)]


def test_a_warm_sync_describes_only_new_revisions_and_takes_status_changes_from_the_listings(
    seeded: Sandbox, cache_dir: Path
) -> None:
    ecs = seeded.client("ecs")
    library_of(seeded, cache_dir).sync(include=["revisions"])
    with seeded.throttle.suspended():
        new = [register(ecs, "a", f"127.0.0.1:1/a:{n:07x}") for n in range(100, 107)]
        for n in (200, 201, 202, 203):
            ecs.deregister_task_definition(taskDefinition=f"big:{n}")
        ecs.delete_task_definitions(taskDefinitions=["big:11", "big:12"])  # unused: gone a few minutes later
    seeded.clock.advance(DELETE_SECONDS)
    expected = counts(ecs)
    seeded.reset_calls()

    library = library_of(seeded, cache_dir)  # a new process would start like this: from the cache on disk
    report = library.sync(include=["revisions"])

    assert read_calls(seeded) == {"ListTaskDefinitions": pages(expected), "DescribeTaskDefinition": 7}
    assert report.revisions is not None
    assert (report.revisions.described, report.revisions.status_changes, report.revisions.removed) == (7, 4, 2)
    frame = library.revisions().set_index("arn")
    assert set(new) <= set(frame.index)
    assert all(frame.loc[new, "status"] == "ACTIVE")
    inactive = frame[(frame["family"] == "big") & (frame["status"] == "INACTIVE")]["revision"]
    assert sorted(inactive) == [*range(13, 121), 200, 201, 202, 203]
    assert not frame["revision"][frame["family"] == "big"].isin([11, 12]).any()
    assert len(library.containers()) == len(frame)

    seeded.reset_calls()
    library.sync(include=["revisions"])  # nothing new: listings only
    assert read_calls(seeded) == {"ListTaskDefinitions": pages(expected)}


def test_refresh_describes_everything_again(seeded: Sandbox, cache_dir: Path) -> None:
    library = library_of(seeded, cache_dir)
    library.sync(include=["revisions"])
    seeded.reset_calls()
    report = library.sync(include=["revisions"], refresh=True)
    assert read_calls(seeded)["DescribeTaskDefinition"] == 250
    assert report.revisions is not None and report.revisions.described == 250
    assert len(library.revisions()) == 250


def test_families_limit_what_is_listed_and_described(seeded: Sandbox, cache_dir: Path) -> None:
    library = library_of(seeded, cache_dir)
    library.sync(include=["revisions"], families=["a"])
    assert read_calls(seeded) == {"ListTaskDefinitions": 3, "DescribeTaskDefinition": 5}
    assert set(library.revisions()["family"]) == {"a"}
    seeded.reset_calls()
    library.sync(include=["revisions"], families="b")
    assert read_calls(seeded) == {"ListTaskDefinitions": 3, "DescribeTaskDefinition": 5}
    assert set(library.revisions()["family"]) == {"a", "b"}  # a sync of "b" leaves "a" alone
    assert list(library.revisions(family="b", status="ACTIVE")["revision"]) == [1, 2, 3, 4, 5]


def test_an_interrupted_sync_keeps_what_it_described_and_the_next_one_resumes(seeded: Sandbox, cache_dir: Path) -> None:
    class Interrupted(Exception):
        pass

    def stop_after_60(done: int, total: int) -> None:
        if done >= 60:
            raise Interrupted

    with pytest.raises(Interrupted):
        library_of(seeded, cache_dir).sync(include=["revisions"], progress=stop_after_60)
    kept = len(library_of(seeded, cache_dir).revisions())
    assert kept >= 60
    seeded.reset_calls()
    library = library_of(seeded, cache_dir)
    report = library.sync(include=["revisions"])
    assert report.revisions is not None
    assert read_calls(seeded)["DescribeTaskDefinition"] == report.revisions.described == 250 - kept
    assert len(library.revisions()) == 250


def test_progress_reports_done_of_total(seeded: Sandbox, cache_dir: Path) -> None:
    seen: list[tuple[int, int]] = []
    library_of(seeded, cache_dir).sync(include=["revisions"], progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (250, 250)
    assert all(0 <= d <= t for d, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_a_sync_reports_through_the_one_progress_protocol(seeded: Sandbox, cache_dir: Path) -> None:
    events: list[ProgressEvent] = []
    report = library_of(seeded, cache_dir).sync(include=["revisions"], report=events.append)
    assert {e.stage for e in events} == {"sync"}
    assert (events[-1].state, events[-1].message) == ("done", report.summary())
    running = [e for e in events if e.state == "running"]
    assert running and (running[-1].done, running[-1].total) == (250, 250) and running[-1].eta is None
    assert report.summary().startswith("synced 250 revisions (250 described, ")


def test_a_revision_deleted_while_a_service_uses_it_shows_delete_in_progress(sandbox: Sandbox, cache_dir: Path) -> None:
    ecs = sandbox.client("ecs")
    ecs.create_cluster(clusterName="prod")
    with sandbox.throttle.suspended():
        first = register(ecs, "svc")
        second = register(ecs, "svc")
    ecs.create_service(cluster="prod", serviceName="svc", taskDefinition=first, desiredCount=0)
    library = library_of(sandbox, cache_dir)
    library.sync(include=["revisions"])
    ecs.deregister_task_definition(taskDefinition=first)
    ecs.delete_task_definitions(taskDefinitions=[first])
    assert list_all(ecs, "DELETE_IN_PROGRESS") == [first]
    sandbox.reset_calls()
    report = library.sync(include=["revisions"])
    assert read_calls(sandbox) == {"ListTaskDefinitions": 3}
    assert report.revisions is not None and report.revisions.status_changes == 1
    statuses = dict(zip(library.revisions()["arn"], library.revisions()["status"], strict=True))
    assert statuses == {first: "DELETE_IN_PROGRESS", second: "ACTIVE"}
    # The body still has what it was described with; the status is the listing's.
    assert library.revision_body(first)["taskDefinition"]["status"] == "DELETE_IN_PROGRESS"


def test_a_library_without_sync_reads_only_its_cache(seeded: Sandbox, cache_dir: Path) -> None:
    library_of(seeded, cache_dir).sync(include=["revisions"])
    seeded.reset_calls()
    offline = RevisionLibrary(seeded.aws(), cache_dir=cache_dir, account_id=seeded.account_id)
    assert len(offline.revisions()) == 250
    assert seeded.calls == {}

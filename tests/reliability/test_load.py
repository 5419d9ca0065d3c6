"""Load: the revision library's sync and a cleanup over thousands of revisions, with the sandbox throttling at AWS's
(time-scaled) rates, finish with the right end state, no errors, and memory that stays bounded.

The world is the one of benchmarks/load_20k.py (which runs it at 20,000 revisions and prints the figures), at the
largest sizes that fit a CI budget. The opskit side runs in a process of its own, so that its memory is measured
alone: the peak RSS of that process in each phase, over its RSS after imports (the sandbox's models and server stay
out of it; tracemalloc would triple the run's time, the benchmark reports its figures).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from benchmarks.load_20k import KEEP, LoadWorld, seed, state_of, worker
from opskit.sandbox import Sandbox
from opskit.sandbox.ecs.taskdefs import DELETE_SECONDS

# Sizes that keep each test near a minute on a CI machine of two cores, and a time scale at which the buckets still
# refuse anything faster than AWS's rates x 50 (deregistrations: 50/s) without those rates making up the run.
SYNC_REVISIONS, SYNC_FAMILIES = 4_000, 5
CLEANUP_REVISIONS, CLEANUP_FAMILIES = 2_000, 5
TIME_SCALE = 50

# A generous bound on the opskit process's peak RSS in any phase, over its RSS after imports: at these sizes the
# phases peak at 20 to 60 MB over it (and at about 45 MB for the sync, 190 MB for the plan at 20,000 revisions).
PEAK_RSS_MB = 200


@pytest.fixture
def loaded() -> Any:
    with Sandbox(seed=None, time_scale=TIME_SCALE, docker=False, registry=False) as sb:
        yield sb


def sandbox_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("opskit") and r.levelno >= logging.ERROR]


def test_a_cold_sync_of_thousands_of_revisions_is_complete_paced_and_flat_in_memory(
    loaded: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = seed(loaded, SYNC_REVISIONS, SYNC_FAMILIES)
    inactive = world.inactive * len(world.families)
    with worker(loaded, world, tmp_path, trace=False) as opskit_process:
        cold = opskit_process.run("sync")
        counted = opskit_process.run("count")
        warm = opskit_process.run("sync")

    for phase in (cold, counted, warm):
        assert phase["error"] is None
    assert (cold["listed"], cold["described"]) == (SYNC_REVISIONS, SYNC_REVISIONS)
    assert counted["statuses"] == {"ACTIVE": SYNC_REVISIONS - inactive, "INACTIVE": inactive}
    assert warm["described"] == 0 and warm["calls"]["DescribeTaskDefinition"] == 0  # the cache holds them all
    assert sandbox_errors(caplog) == []
    for phase in (cold, counted, warm):
        assert phase["rss_peak_mb"] - opskit_process.baseline_mb < PEAK_RSS_MB


def test_a_cleanup_of_thousands_of_revisions_leaves_exactly_what_it_must_and_touches_nothing_protected(
    loaded: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = seed(loaded, CLEANUP_REVISIONS, CLEANUP_FAMILIES)
    before = state_of(loaded, world)
    expected = world.expected()
    with worker(loaded, world, tmp_path, trace=False) as opskit_process:
        phases = {name: opskit_process.run(name) for name in ("sync", "plan", "apply")}

    for phase in phases.values():
        assert phase["error"] is None
    acting = sum(len(before[f]) - len(expected[f]) for f in world.families)
    planned = phases["plan"]["counts"]
    assert planned["delete"] + planned["deregister+delete"] == acting
    applied = phases["apply"]
    assert applied["ok"] and applied["failed"] == 0
    assert applied["outcomes"] == {"deleted": acting, "kept": CLEANUP_REVISIONS - acting}
    assert Path(applied["journal"]).name.endswith(".jsonl.done")
    assert not list((tmp_path / "state").rglob("*.jsonl"))  # no run left unfinished

    loaded.clock.advance(DELETE_SECONDS)  # ECS removes deleted revisions a few minutes after the call
    after = state_of(loaded, world)
    assert after == expected
    assert_protected_untouched(world, before, after)
    assert sandbox_errors(caplog) == []
    for phase in phases.values():
        assert phase["rss_peak_mb"] - opskit_process.baseline_mb < PEAK_RSS_MB


def assert_protected_untouched(world: LoadWorld, before: dict[str, dict[int, str]], after: dict[str, Any]) -> None:
    """The newest KEEP, each service's current revision and rollback targets, and the pinned revisions: all there,
    in the status they had."""
    for family in world.families:
        protected = set(range(world.per_family - KEEP + 1, world.per_family + 1))
        protected |= set(world.deployed.get(family, ())) | set(world.pinned[family])
        assert {n: after[family].get(n) for n in protected} == {n: before[family][n] for n in protected}

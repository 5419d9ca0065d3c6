"""A cleanup against a sandbox ten times faster than AWS, not told so: its pacer starts at ECS's published modify
rate (1 a second) and finds the sandbox's (10), every throttle on the way reaching it and absorbed."""

from __future__ import annotations

from pathlib import Path

import pytest

from opskit.cleanup import apply_cleanup
from opskit.library import Pacer
from opskit.library.pacing import TASK_DEFINITION_MODIFY
from opskit.sandbox import Sandbox
from tests.cleanup.conftest import build_world, expected_after


@pytest.fixture(autouse=True)
def state_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Journals and library caches under the test's own folder."""
    monkeypatch.setenv("OPSKIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("OPSKIT_CACHE_DIR", str(tmp_path / "cache"))


def test_a_cleanup_at_time_scale_10_with_default_options_finds_the_rate_and_absorbs_its_throttles() -> None:
    with Sandbox(seed=None, time_scale=10, docker=False, registry=False) as sandbox:
        world = build_world(sandbox, revisions=30)  # 52 to deregister and delete
        plan = world.plan()
        sandbox.throttle.refill()
        sandbox.reset_calls()
        pacer = Pacer()  # what apply_cleanup makes by default, kept to read what it learnt
        result = apply_cleanup(plan, sandbox.aws(), pacer=pacer)
        world.deletions_finish()
        assert result.ok and world.state() == expected_after(world, plan)
        assert (
            sandbox.calls["DeregisterTaskDefinition"]
            == len(plan.to_deregister) + sandbox.throttled["DeregisterTaskDefinition"]
        )
        assert result.throttled == dict(sandbox.throttled)  # each throttle reached the pacer, which retried it
        assert pacer.buckets[TASK_DEFINITION_MODIFY].per_second > 2 * 1  # found more than ECS publishes

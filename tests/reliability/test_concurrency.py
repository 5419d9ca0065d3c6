"""Two people acting at once: two releases of one service, and a cleanup while a release registers and deploys.

Two releases: exactly one proceeds and the other refuses with one line naming the holder, whether they collide at
the lock itself (threads released by a barrier) or as two `opskit release` processes started together.
A cleanup during a release: whatever the moment, the revision the release registers (or reuses) is never touched,
the release completes, and the cleanup still does its work elsewhere.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from opskit.cleanup import CleanupOptions, apply_cleanup, plan_cleanup
from opskit.errors import ConflictError
from opskit.progress import ProgressEvent
from opskit.release import ReleaseOptions, apply_release, plan_release
from opskit.release.lock import is_lock_tag, service_lock
from opskit.sandbox import Sandbox
from tests.release.conftest import World

FAST = {"poll_interval": 0.1, "timeout": 120}


def lock_tags(world: World) -> list[str]:
    arn = world.service()["serviceArn"]
    return [t["key"] for t in world.ecs.list_tags_for_resource(resourceArn=arn)["tags"] if is_lock_tag(t["key"])]


def race(world: World, arn: str, contenders: int) -> tuple[list[str], list[str]]:
    """``contenders`` threads go for the lock at once; returns who got in and the refusals of the others."""
    barrier = threading.Barrier(contenders)
    inside: list[str] = []
    refused: list[str] = []
    everyone_tried = threading.Event()

    def contend(name: str) -> None:
        barrier.wait()
        try:
            with service_lock(world.aws, arn):
                inside.append(name)
                everyone_tried.wait(10)  # hold it until every other contender has had its go
        except ConflictError as exc:
            refused.append(str(exc))
            if len(refused) == contenders - 1:
                everyone_tried.set()

    threads = [threading.Thread(target=contend, args=(str(n),)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return inside, refused


def test_racing_for_the_lock_exactly_one_proceeds_each_time(release_world: World) -> None:
    world = release_world
    arn = world.service()["serviceArn"]
    world.sandbox.faults.set("ListTagsForResource", latency=0.02, latency_rate=0.5)  # shuffle the interleavings
    for _ in range(8):
        inside, refused = race(world, arn, 3)
        assert len(inside) == 1, (inside, refused)
        assert len(refused) == 2
        pattern = r"web is being released by \S+@\S+ pid \d+ since \d+: wait .*--force.*"
        assert all(re.fullmatch(pattern, line) for line in refused), refused
        assert lock_tags(world) == []


def test_two_release_commands_at_once_one_proceeds_the_other_names_it(release_world: World) -> None:
    world = release_world
    sha = world.commit(**{"app.txt": "v2"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | world.sandbox.env
    command = [
        sys.executable, "-m", "opskit", "release", "--cluster", "prod", "--service", "web",
        "--path", str(world.app), "--poll-interval", "0.1",
    ]  # fmt: skip
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"
    ]
    outcomes = [(proc.pid, proc.wait(180), proc.stderr.read() if proc.stderr else "") for proc in procs]
    for proc in procs:
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]

    winners = [o for o in outcomes if o[1] == 0]
    losers = [o for o in outcomes if o[1] != 0]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    (winner_pid, _, _), (_, code, stderr) = winners[0], losers[0]
    assert code == 2
    line = stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith("opskit: error: web is being released by ") and f" pid {winner_pid} since " in line, line
    assert "--force" in line
    # one release happened: one new revision, on the new commit's image, deployed
    revisions = world.ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"]
    assert [arn.rsplit(":", 1)[-1] for arn in revisions] == ["1", "2"]
    image = world.ecs.describe_task_definition(taskDefinition="web:2")["taskDefinition"]["containerDefinitions"][0]
    assert image["image"] == f"{world.uri}:{sha[:12]}"
    assert world.service()["taskDefinition"].endswith("web:2")
    assert lock_tags(world) == []


def test_a_dead_holders_lock_does_not_block_the_next_release(release_world: World) -> None:
    world = release_world
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process of this host that has exited
    holder = f"someone@{os.uname().nodename} pid {pid} since {int(__import__('time').time())}"
    arn = world.service()["serviceArn"]
    world.ecs.tag_resource(resourceArn=arn, tags=[{"key": "opskit:release-lock/deadbeef0000", "value": holder}])
    world.commit(**{"app.txt": "after a crash"})
    record = apply_release(plan_release(world.aws, ReleaseOptions("prod", "web", path=world.app)), world.aws, **FAST)
    assert record.ok, record.reason
    assert lock_tags(world) == []


def test_a_live_holders_lock_is_refused_until_forced(release_world: World) -> None:
    world = release_world
    arn = world.service()["serviceArn"]
    with service_lock(world.aws, arn):  # held by this very (live) process
        world.commit(**{"app.txt": "v2"})
        plan = plan_release(world.aws, ReleaseOptions("prod", "web", path=world.app))
        with pytest.raises(ConflictError, match=rf"web is being released by .* pid {os.getpid()} since \d+: wait"):
            apply_release(plan, world.aws, **FAST)
        assert world.service()["taskDefinition"].endswith("web:1")
        forced = plan_release(world.aws, ReleaseOptions("prod", "web", path=world.app, force=True))
        assert apply_release(forced, world.aws, **FAST).ok
    assert world.service()["taskDefinition"].endswith("web:2")
    assert lock_tags(world) == []


# --- a cleanup while a release registers and deploys -------------------------------------------------------------


def add_history(world: World, family: str, count: int) -> list[str]:
    """``count`` unused revisions of ``family`` on the bootstrap image (their own family for ``api``)."""
    arns = []
    with world.sandbox.throttle.suspended():
        for n in range(count):
            body = {"name": family, "image": f"{world.uri}:bootstrap", "memory": 64, "essential": True}
            body["environment"] = [{"name": "N", "value": str(n)}]
            answer = world.ecs.register_task_definition(family=family, containerDefinitions=[body])
            arns.append(answer["taskDefinition"]["taskDefinitionArn"])
    return arns


def statuses(sandbox: Sandbox, family: str) -> dict[int, str]:
    ecs = sandbox.client("ecs")
    out = {}
    for status in ("ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS"):
        for arn in ecs.list_task_definitions(familyPrefix=family, status=status)["taskDefinitionArns"]:
            out[int(arn.rsplit(":", 1)[-1])] = status
    return out


def run_cleanup(world: World) -> Any:
    options = CleanupOptions(keep=1, keep_days=0, rollback_depth=1, delete_deregistered=True)
    scale = world.sandbox.clock.time_scale
    plan = plan_cleanup(world.aws, options, now=world.sandbox.clock.now(), rate_scale=scale)
    return apply_cleanup(plan, world.aws, rate_scale=scale)


def during(stage: str, state: str, action: Callable[[], None]) -> Callable[[ProgressEvent], None]:
    """A progress callback that runs ``action`` once, when the release reports ``stage`` ``state``."""
    fired: list[bool] = []

    def progress(event: ProgressEvent) -> None:
        if event.stage == stage and event.state == state and not fired:
            fired.append(True)
            action()

    return progress


@pytest.mark.parametrize(
    "stage,state",
    [("build", "started"), ("register", "done"), ("update", "done"), ("wait", "log")],
    ids=["before-register", "registered-not-deployed", "deploying", "rolling-out"],
)
def test_a_cleanup_during_a_release_never_touches_its_revision(release_world: World, stage: str, state: str) -> None:
    world = release_world
    add_history(world, "web", 6)  # web:2..7, unused
    add_history(world, "api", 6)  # api:1..6, no service: the cleanup keeps only api:6
    world.commit(**{"app.txt": "v2"})
    plan = plan_release(world.aws, ReleaseOptions("prod", "web", path=world.app))
    results: list[Any] = []
    record = apply_release(
        plan, world.aws, progress=during(stage, state, lambda: results.append(run_cleanup(world))), **FAST
    )

    assert results, "the cleanup ran during the release"
    assert record.ok, record.reason
    new = int(record.revision_arn.rsplit(":", 1)[-1])  # type: ignore[union-attr]
    assert new == 8
    assert statuses(world.sandbox, "web")[new] == "ACTIVE"
    assert world.service()["taskDefinition"] == record.revision_arn
    # the cleanup did its work where no release was going on
    assert statuses(world.sandbox, "api") == {6: "ACTIVE"}
    # and once the release is over, the next cleanup retires web's old revisions but keeps the new one and web:1,
    # the revision the service can roll back to
    world.sandbox.clock.advance(600)
    run_cleanup(world)
    assert statuses(world.sandbox, "web") == {1: "ACTIVE", 8: "ACTIVE"}


def test_a_cleanup_cannot_retire_a_revision_a_release_is_about_to_reuse(release_world: World) -> None:
    """Re-releasing an older commit reuses its ACTIVE revision; a cleanup between the plan and the update would
    retire it (neither in use, nor a rollback target, nor the newest) were the release lock not honoured."""
    world = release_world
    first = world.commit(**{"app.txt": "one"})
    for n, text in enumerate(["one", "two", "three"]):
        if n:
            world.commit(**{"app.txt": text})
        assert apply_release(
            plan_release(world.aws, ReleaseOptions("prod", "web", path=world.app)), world.aws, **FAST
        ).ok
    from tests.release.conftest import git

    git(world.app, "checkout", "-q", first)
    plan = plan_release(world.aws, ReleaseOptions("prod", "web", path=world.app))
    assert plan.reuse_revision and plan.reuse_revision.endswith("web:2"), plan.reuse_revision
    results: list[Any] = []
    record = apply_release(
        plan, world.aws, progress=during("register", "skipped", lambda: results.append(run_cleanup(world))), **FAST
    )
    assert results
    assert record.ok, record.reason
    assert world.service()["taskDefinition"].endswith("web:2")
    assert statuses(world.sandbox, "web")[2] == "ACTIVE"

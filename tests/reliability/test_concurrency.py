"""Two people acting at once: two releases of one service, and a cleanup while a release registers and deploys.

Two releases: exactly one proceeds and the other refuses with one line naming the holder, whether they collide at
the lock itself (threads released by a barrier) or as two `opskit release` processes started together.
A cleanup during a release: whatever the moment, the revision the release registers (or reuses) is never touched,
the release completes, and the cleanup still does its work elsewhere. Each moment is reached by state, never by
waiting: the release's progress says where it is, and from its update on the sandbox's clock stands still, moved
only as far as the moment needs, so the rollout is exactly where the moment says however loaded the machine is.
"""

from __future__ import annotations

import contextlib
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
from opskit.lock import is_lock_tag, service_lock
from opskit.progress import ProgressEvent
from opskit.release import ReleaseOptions, apply_release, plan_release
from opskit.sandbox import Sandbox
from opskit.sandbox.ecs.taskdefs import DELETE_SECONDS
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


def run_cleanup(world: World, scale: float | None = None) -> Any:
    """keep 1, rollback depth 1, deregistered revisions deleted: paced to the sandbox's rates at ``scale`` (by
    default its time scale now)."""
    options = CleanupOptions(keep=1, keep_days=0, rollback_depth=1, delete_deregistered=True)
    scale = scale or world.sandbox.clock.time_scale
    plan = plan_cleanup(world.aws, options, now=world.sandbox.clock.now(), rate_scale=scale)
    return apply_cleanup(plan, world.aws, rate_scale=scale)


def during(stage: str, state: str, action: Callable[[], None]) -> Callable[[ProgressEvent], None]:
    """A progress callback that runs ``action`` once, when the release reports ``stage`` ``state``."""
    return at({(stage, state): action})


def at(moments: dict[tuple[str, str], Callable[[], None]]) -> Callable[[ProgressEvent], None]:
    """A progress callback that runs each (stage, state)'s action once, the first time the release reports it."""
    fired: set[tuple[str, str]] = set()

    def progress(event: ProgressEvent) -> None:
        moment = (event.stage, event.state)
        if moment in moments and moment not in fired:
            fired.add(moment)
            moments[moment]()

    return progress


STILL = 1e-9  # the sandbox's time scale while it stands still: one sandbox second takes thirty wall years


class StandStill:
    """The sandbox's clock stopped from one moment of a release to another: no rollout, task or scheduler moves on
    unless the test moves the clock (:meth:`step`). The throttle's buckets refill on that clock too, so it is off
    meanwhile (with full buckets after): what is tested is the lock, not the pace."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.scale = sandbox.clock.time_scale
        self._throttle = contextlib.ExitStack()

    def begin(self) -> None:
        self.sandbox.clock.time_scale = STILL
        self._throttle.enter_context(self.sandbox.throttle.suspended())

    def end(self) -> None:
        self.sandbox.clock.time_scale = self.scale
        self._throttle.close()

    def step(self, until: Callable[[], bool], seconds: float = 1.0, most: int = 60) -> None:
        """Move the clock on ``seconds`` at a time (the rollout catches up at once) until ``until()`` holds."""
        for _ in range(most):
            if until():
                return
            self.sandbox.clock.advance(seconds)
        pytest.fail(f"not reached in {most * seconds} sandbox seconds")


def deployments(world: World) -> list[tuple[str, str, str, int, int]]:
    """web's deployments: (status, revision, rollout state, pending tasks, running tasks)."""
    return [
        (d["status"], d["taskDefinition"].rsplit("/", 1)[-1], d["rolloutState"], d["pendingCount"], d["runningCount"])
        for d in world.service()["deployments"]
    ]


# Each moment: what it is, and web's deployments then (status, revision, rollout state, tasks pending, running).
RUNS_WEB_1 = ("PRIMARY", "web:1", "COMPLETED", 0, 2)
MOMENTS: dict[str, tuple[str, list[tuple[str, str, str, int, int]]]] = {
    "before-register": ("the build starts: nothing of the release exists yet", [RUNS_WEB_1]),
    "registered-not-deployed": ("web:8 is registered, web still runs web:1", [RUNS_WEB_1]),
    "deploying": (
        "web was just updated to web:8: its deployment is PRIMARY, no task of it launched yet",
        [("PRIMARY", "web:8", "IN_PROGRESS", 0, 0), ("ACTIVE", "web:1", "COMPLETED", 0, 2)],
    ),
    "rolling-out": (
        "web:8's tasks are launching, web:1's still run: the rollout is under way",
        [("PRIMARY", "web:8", "IN_PROGRESS", 2, 0), ("ACTIVE", "web:1", "COMPLETED", 0, 2)],
    ),
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_cleanup_during_a_release_never_touches_its_revision(release_world: World, moment: str) -> None:
    """The moment is reached by the release's progress and, once web is updated, held by the sandbox's clock:
    it stands still from the update until the cleanup is done, moved on only as far as the moment needs."""
    world = release_world
    add_history(world, "web", 6)  # web:2..7, unused
    add_history(world, "api", 6)  # api:1..6, no service: the cleanup keeps only api:6
    world.commit(**{"app.txt": "v2"})
    plan = plan_release(world.aws, ReleaseOptions("prod", "web", path=world.app))
    still = StandStill(world.sandbox)
    results: list[Any] = []
    seen: list[list[tuple[str, str, str, int, int]]] = []

    def clean_up() -> None:
        seen.append(deployments(world))
        results.append(run_cleanup(world, still.scale))
        still.end()

    def launching() -> bool:
        (status, revision, _, pending, running), *_ = deployments(world)
        return (status, revision) == ("PRIMARY", "web:8") and pending + running > 0

    moments = {
        "before-register": {("build", "started"): clean_up},
        "registered-not-deployed": {("register", "done"): clean_up},
        "deploying": {("update", "started"): still.begin, ("update", "done"): clean_up},
        "rolling-out": {
            ("update", "started"): still.begin,
            ("wait", "started"): lambda: still.step(until=launching),
            ("wait", "log"): clean_up,  # the first service event of ours: "has started 2 tasks"
        },
    }[moment]
    try:
        record = apply_release(plan, world.aws, progress=at(moments), **FAST)
    finally:
        still.end()

    assert results, "the cleanup ran during the release"
    description, then = MOMENTS[moment]
    assert seen == [then], description
    assert record.ok, record.reason
    new = int(record.revision_arn.rsplit(":", 1)[-1])  # type: ignore[union-attr]
    assert new == 8
    assert statuses(world.sandbox, "web")[new] == "ACTIVE"
    assert world.service()["taskDefinition"] == record.revision_arn
    # the cleanup did its work where no release was going on (ECS removes deleted revisions a few minutes later)
    world.sandbox.clock.advance(DELETE_SECONDS)
    assert statuses(world.sandbox, "api") == {6: "ACTIVE"}
    # and once the release is over, the next cleanup retires web's old revisions but keeps the new one and web:1,
    # the revision the service can roll back to
    world.sandbox.clock.advance(600)
    run_cleanup(world)
    world.sandbox.clock.advance(DELETE_SECONDS)
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

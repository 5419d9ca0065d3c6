"""Crash and resume: ``opskit release`` and ``opskit cleanup`` killed with SIGKILL at 20 seeded points each, then run
again with the same command.

A point is an exact moment of the run's traffic through the sandbox's front door: the n-th time an AWS action (or a
registry request of the push) arrives, before anything acted on it, or is served, when the sandbox has acted and
the answer is not yet sent, so the process dies without hearing it. Release points also fall in the docker build
(at a step of its log). Half of each command's points are its mutating calls at the moment they were served; the
others are drawn from the whole run. After each kill: nothing protected is gone and every journal entry is true;
after the rerun: the world is as an uninterrupted run leaves it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opskit.cleanup import runs_folder, unfinished_runs
from opskit.release import ReleaseOptions, apply_release, plan_release
from opskit.release.taskdef import registrable
from opskit.sandbox import Sandbox
from opskit.sandbox.server.app import Seen
from tests.cleanup.conftest import World as CleanupWorld
from tests.cleanup.conftest import build_world
from tests.release.conftest import World as ReleaseWorld
from tests.release.conftest import build_release_world

POINTS = 20
TIME_SCALE = 60
RUN_TIMEOUT = 120  # seconds a run may take before the test gives up on it (a hang is a failure, not a wait)
QUIET_AFTER_KILL = 0.5  # seconds without a request: a push the engine was making for the killed run has stopped
RELEASE_MUTATIONS = (
    "TagResource",
    "registry PUT uploads",
    "registry PUT manifests",
    "RegisterTaskDefinition",
    "UpdateService",
    "UntagResource",
)
CLEANUP_MUTATIONS = ("DeregisterTaskDefinition", "DeleteTaskDefinitions", "BatchDeleteImage")
# What the cleanup world keeps with keep 2 and rollback depth 2 (tests/cleanup/conftest.py), and their images.
KEPT = {"web:3", "web:5", "web:7", "web:9", "web:13", "web:14", "api:13", "api:14"}
NEEDED_IMAGES = {"web": {"v3", "v5", "v7", "v9", "v13", "v14"}, "api": {"v13", "v14"}}


# -- a run, killed at a point of its traffic --------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    key: str  # the AWS action, or "registry <METHOD> <what>" for the ECR data plane
    served: bool


@dataclass(frozen=True)
class Point:
    """Where a run is killed: the ``occurrence``-th time ``event`` is seen, or when its build log reaches a step."""

    event: Event | None = None
    occurrence: int = 1
    build_step: int | None = None

    def __str__(self) -> str:
        if self.event is None:
            return f"docker build step {self.build_step}"
        moment = "served (the client never hears)" if self.event.served else "arriving"
        return f"{self.event.key} #{self.occurrence}, {moment}"


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    events: list[Event]
    killed: bool


def event_of(seen: Seen) -> Event:
    if seen.action != "registry":
        return Event(seen.action, seen.served)
    what = next((w for w in ("uploads", "manifests", "blobs") if f"/{w}/" in seen.path + "/"), "base")
    return Event(f"registry {seen.method} {what}", seen.served)


class Watch:
    """A process's requests as the sandbox's front door sees them; kills the process with SIGKILL at ``point``."""

    def __init__(self, point: Point | None, on_kill: Callable[[], None]) -> None:
        self.point = point
        self.on_kill = on_kill
        self.lock = threading.Lock()
        self.events: list[Event] = []
        self.counts: Counter[Event] = Counter()
        self.process: subprocess.Popen[str] | None = None
        self.killed = False
        self.last = time.monotonic()

    def observe(self, seen: Seen) -> None:  # in the sandbox's thread serving the request
        event = event_of(seen)
        with self.lock:
            self.events.append(event)
            self.counts[event] += 1
            self.last = time.monotonic()
            if self.point is not None and self.point.event == event and self.counts[event] == self.point.occurrence:
                self._kill()

    def log_line(self, line: str) -> None:
        if self.point is not None and self.point.build_step and f"| Step {self.point.build_step}/" in line:
            with self.lock:
                self._kill()

    def _kill(self) -> None:
        if self.process is not None and not self.killed:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
            self.killed = True
            self.on_kill()


def run_cli(
    sandbox: Sandbox,
    args: list[str],
    env: dict[str, str],
    point: Point | None = None,
    *,
    on_kill: Callable[[], None] = lambda: None,
    on_line: Callable[[str], None] = lambda line: None,
) -> Ran:
    """``opskit <args>`` as a process, every request it causes observed; killed with SIGKILL at ``point``."""
    watch = Watch(point, on_kill)
    stdout: list[str] = []
    lines: list[str] = []
    with sandbox.observing(watch.observe):
        with watch.lock:
            process = watch.process = subprocess.Popen(
                [sys.executable, "-m", "opskit", *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        watchdog = threading.Timer(RUN_TIMEOUT, process.kill)
        watchdog.start()
        assert process.stdout is not None and process.stderr is not None
        reader = threading.Thread(target=lambda out=process.stdout: stdout.append(out.read()))
        reader.start()
        for line in process.stderr:
            lines.append(line)
            on_line(line)
            watch.log_line(line)
        process.wait()
        reader.join()
        watchdog.cancel()
        if watch.killed and any(e.key.startswith("registry") for e in watch.events):  # the engine may still push
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and time.monotonic() - watch.last < QUIET_AFTER_KILL:
                time.sleep(0.05)
    with watch.lock:
        return Ran(process.returncode, "".join(stdout), "".join(lines), list(watch.events), watch.killed)


def draw_point(seed: int, reference: list[Event], mutations: tuple[str, ...], last: int) -> Point:
    """Odd seeds: a mutating call at the moment it was served (each kind in turn, a random one of its calls);
    even seeds: any request among the reference run's first ``last``, arriving or served."""
    rng = random.Random(seed)
    if seed % 2:
        event = Event(mutations[(seed // 2) % len(mutations)], True)
        occurrences = reference.count(event)
        assert occurrences, f"the uninterrupted run never made {event.key}"
        return Point(event, rng.randint(1, occurrences))
    index = rng.randrange(last)
    event = reference[index]
    return Point(event, reference[: index + 1].count(event))


def journal_lines(path: Path) -> Iterator[dict[str, Any]]:
    """A journal's entries; a torn last line (the process died writing it) claims nothing."""
    for line in path.read_text().splitlines():
        try:
            yield json.loads(line)
        except ValueError:
            continue


# -- release ----------------------------------------------------------------------------------------------------------
@dataclass
class ReleaseStage:
    """The release world of one worker, and its reference: an uninterrupted release's requests and end state."""

    sandbox: Sandbox
    world: ReleaseWorld
    docker: Any
    events: list[Event] = field(default_factory=list)
    build_steps: int = 0
    end_state: dict[str, Any] = field(default_factory=dict)

    def args(self) -> list[str]:
        return [
            "release",
            "--cluster",
            "prod",
            "--service",
            "web",
            "--path",
            str(self.world.app),
            "--poll-interval",
            "0.2",
        ]

    def env(self, state: Path) -> dict[str, str]:
        return _env(self.sandbox, state)

    def commit(self, name: str) -> str:
        return self.world.commit(name, marker=name)

    def before(self) -> dict[str, Any]:
        return {"revisions": _active(self.world), "images": _digests(self.world)}


def _env(sandbox: Sandbox, state: Path) -> dict[str, str]:
    return {
        **os.environ,
        **sandbox.env,
        "OPSKIT_STATE_DIR": str(state / "state"),
        "OPSKIT_CACHE_DIR": str(state / "cache"),
        "COLUMNS": "200",
    }


def _active(world: ReleaseWorld) -> list[str]:
    pages = world.ecs.get_paginator("list_task_definitions").paginate(familyPrefix="web", status="ACTIVE")
    return [arn for page in pages for arn in page["taskDefinitionArns"]]


def _digests(world: ReleaseWorld) -> dict[str, list[str]]:
    details = world.ecr.describe_images(repositoryName="web")["imageDetails"]
    return {d["imageDigest"]: sorted(d.get("imageTags") or []) for d in details}


def release_end_state(world: ReleaseWorld, sha: str, before: dict[str, Any], state: Path) -> dict[str, Any]:
    """What a release of ``sha`` left, in terms that do not depend on which commit it was."""
    tag = sha[:12]
    new = [arn for arn in _active(world) if arn not in before["revisions"]]
    service = world.service()
    bodies = [world.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"]) for arn in new]
    shapes = []
    for answer in bodies:
        body = registrable(answer["taskDefinition"])
        images = [c.pop("image") for c in body["containerDefinitions"]]
        shapes.append(
            {
                "body": body,
                "images": [image == f"{world.uri}:{tag}" for image in images],
                "tags": sorted((t["key"], t["value"] == sha) for t in answer.get("tags", [])),
            }
        )
    digests = _digests(world)
    (journal,) = (state / "state" / "journal" / "release").glob(f"*{tag}.jsonl")
    entries = list(journal_lines(journal))
    return {
        "new revisions": shapes,
        "service runs the new revision": [service["taskDefinition"]] == new,
        "deployments": [
            (d["status"], d.get("rolloutState"), d["taskDefinition"] in new) for d in service["deployments"]
        ],
        "running": (service["runningCount"], service["desiredCount"], service["pendingCount"]),
        "lock tags": [t["key"] for t in world.ecs.list_tags_for_resource(resourceArn=service["serviceArn"])["tags"]],
        "images kept": set(before["images"]) <= set(digests),
        "new images": sorted(tags == [tag] for digest, tags in digests.items() if digest not in before["images"]),
        "journal ends": (entries[-1]["event"], entries[-1].get("outcome")),
    }


def check_release_journal(world: ReleaseWorld, docker: Any, state: Path, sha: str) -> None:
    """Every stage the journal says was done, was."""
    tag = sha[:12]
    for journal in (state / "state" / "journal" / "release").glob(f"*{tag}.jsonl"):
        for entry in journal_lines(journal):
            what = entry["event"]
            if what == "built":
                assert docker.images.get(entry["image_id"]), entry
            elif what == "pushed":
                found = world.ecr.describe_images(repositoryName="web", imageIds=[{"imageTag": tag}])
                assert found["imageDetails"][0]["imageDigest"] == entry["digest"], entry
            elif what == "registered":
                answer = world.ecs.describe_task_definition(taskDefinition=entry["revision_arn"], include=["TAGS"])
                assert answer["taskDefinition"]["status"] == "ACTIVE", entry
                assert answer["taskDefinition"]["containerDefinitions"][0]["image"].endswith(f":{tag}"), entry
                assert {"key": "commit", "value": sha} in answer["tags"], entry
            elif what == "updated":
                ours = [d for d in world.service()["deployments"] if d["id"] == entry["deployment_id"]]
                assert ours and _image(world, ours[0]["taskDefinition"]).endswith(f":{tag}"), entry
            elif what == "finished":
                assert entry["outcome"] == "COMPLETED", entry
                primary = next(d for d in world.service()["deployments"] if d["status"] == "PRIMARY")
                assert primary.get("rolloutState") == "COMPLETED", primary
                assert _image(world, primary["taskDefinition"]).endswith(f":{tag}"), primary


def _image(world: ReleaseWorld, revision: str) -> str:
    answer = world.ecs.describe_task_definition(taskDefinition=revision)
    return str(answer["taskDefinition"]["containerDefinitions"][0]["image"])


def release_point(seed: int, stage: ReleaseStage) -> Point:
    if seed % 5 == 0:  # 4 of 20: in the docker build
        return Point(build_step=random.Random(seed).randint(2, stage.build_steps))
    # Drawn up to the first poll of the rollout (how many polls follow depends on the machine's speed); the run's
    # end is among the mutations (UntagResource), and a kill at the update leaves the rollout to the rerun.
    updated = stage.events.index(Event("UpdateService", True))
    return draw_point(seed, stage.events, RELEASE_MUTATIONS, updated + 3)


@pytest.fixture(scope="module")
def release_stage(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[ReleaseStage]:
    """One release world per worker; each point releases a commit of its own on it. Tasks run simulated: the
    rollout is the sandbox's, the images are built by the real engine and pushed to the real registry."""
    folder = tmp_path_factory.mktemp("release")
    with Sandbox(seed=None, time_scale=TIME_SCALE, docker=False) as sandbox:
        world = build_release_world(sandbox, docker_client, folder)
        stage = ReleaseStage(sandbox, world, docker_client)
        # The app's layers go up once, so that every release after pushes alike (a config and a manifest).
        warm_up = plan_release(world.aws, ReleaseOptions(cluster="prod", service="web", path=world.app))
        assert apply_release(warm_up, world.aws, docker=docker_client, poll_interval=0.1, journal_dir=folder).ok
        sha, before = stage.commit("reference"), stage.before()
        ran = run_cli(sandbox, stage.args(), stage.env(folder))
        assert ran.returncode == 0, ran.stderr
        stage.events = ran.events
        stage.build_steps = max(int(n) for n in re.findall(r"\| Step \d+/(\d+)", ran.stderr))
        stage.end_state = release_end_state(world, sha, before, folder)
        check_release_journal(world, docker_client, folder, sha)
        try:
            yield stage
        finally:
            # The tags only: their untagged parents are the build cache that other workers' builds of the same
            # Dockerfile stand on, and pruning them mid-build fails that build ("unable to find image").
            for image in docker_client.images.list(name=world.uri.split("/")[0] + "/web"):
                for tag in image.tags:
                    with contextlib.suppress(Exception):
                        docker_client.images.remove(tag, noprune=True)


@pytest.mark.parametrize("seed", range(POINTS))
def test_a_release_killed_at_any_point_and_rerun_ends_as_an_uninterrupted_one(
    release_stage: ReleaseStage, tmp_path: Path, seed: int
) -> None:
    stage, world = release_stage, release_stage.world
    point = release_point(seed, stage)
    sha, before = stage.commit(f"point-{seed}"), stage.before()
    env = stage.env(tmp_path)
    clock = stage.sandbox.clock

    def as_on_aws() -> None:
        # From the crash until the rerun waits for its rollout, time runs at AWS's pace: a rollout the killed run
        # started is still going when the rerun starts, as it would be on AWS (minutes, not the sandbox's seconds).
        clock.time_scale = 1

    def rerun_waiting(line: str) -> None:
        if re.match(r"\.\.\s+wait\s", line):
            clock.time_scale = TIME_SCALE

    try:
        killed = run_cli(stage.sandbox, stage.args(), env, point, on_kill=as_on_aws)
        assert killed.killed and killed.returncode == -signal.SIGKILL, f"never reached {point}:\n{killed.stderr}"
        after = stage.before()
        assert set(before["revisions"]) <= set(after["revisions"]), f"killed at {point}: a revision went"
        assert set(before["images"]) <= set(after["images"]), f"killed at {point}: an image went"
        check_release_journal(world, stage.docker, tmp_path, sha)

        rerun = run_cli(stage.sandbox, stage.args(), env, on_line=rerun_waiting)
    finally:
        clock.time_scale = TIME_SCALE
    assert rerun.returncode == 0, f"killed at {point}, the rerun failed:\n{rerun.stderr}"
    assert release_end_state(world, sha, before, tmp_path) == stage.end_state, f"killed at {point}"
    check_release_journal(world, stage.docker, tmp_path, sha)


# -- cleanup ----------------------------------------------------------------------------------------------------------
@dataclass
class CleanupReference:
    events: list[Event]
    state: dict[str, str]
    images: dict[str, set[str]]


def cleanup_args(world: CleanupWorld) -> list[str]:
    args = ["cleanup"]
    for family in world.families:
        args += ["--family", family, "--repository", family]
    args += ["--keep", "2", "--keep-days", "0", "--rollback-depth", "2", "--delete-deregistered"]
    args += ["--images", "--untagged-days", "0", "--unreferenced-days", "0"]
    return [*args, "--apply", "--yes", "--rate-scale", str(TIME_SCALE)]


@pytest.fixture(scope="module")
def cleanup_reference(tmp_path_factory: pytest.TempPathFactory) -> CleanupReference:
    """An uninterrupted cleanup of the same world: its requests (where points are drawn) and what it leaves."""
    folder = tmp_path_factory.mktemp("cleanup-reference")
    with Sandbox(seed=None, time_scale=TIME_SCALE, docker=False, registry=False, fault_seed=5) as sandbox:
        world = build_world(sandbox)
        ran = run_cli(sandbox, cleanup_args(world), _env(sandbox, folder))
        assert ran.returncode == 0, ran.stderr
        world.deletions_finish()
        assert world.state() == dict.fromkeys(KEPT, "ACTIVE")
        return CleanupReference(ran.events, world.state(), world.images())


def check_cleanup_after_kill(world: CleanupWorld, folder: Path) -> None:
    """Nothing protected or needed is gone, and each journal entry claiming an action is true."""
    state = world.state()
    assert {k: state.get(k) for k in KEPT} == dict.fromkeys(KEPT, "ACTIVE")
    images = world.images()
    assert all(NEEDED_IMAGES[repository] <= images[repository] for repository in NEEDED_IMAGES), images
    ecr = world.sandbox.client("ecr")
    digests = {
        f"{family}@{d['imageDigest']}"
        for family in world.families
        for d in ecr.describe_images(repositoryName=family)["imageDetails"]
    }
    for journal in folder.glob("*.jsonl*"):
        for entry in journal_lines(journal):
            for o in entry.get("outcomes") or ():
                name = o["key"].rsplit("/", 1)[-1]
                if entry["event"] == "revisions" and o["outcome"] in ("deregistered", "already"):
                    assert state.get(name) != "ACTIVE", o
                if entry["event"] == "revisions" and o["outcome"] in ("deleted", "gone"):
                    assert state.get(name, "DELETE_IN_PROGRESS") == "DELETE_IN_PROGRESS", o
                if entry["event"] == "images" and o["outcome"] in ("deleted", "gone"):
                    assert o["key"] not in digests, o


@pytest.mark.parametrize("seed", range(POINTS))
def test_a_cleanup_killed_at_any_point_and_rerun_ends_as_an_uninterrupted_one(
    cleanup_world: CleanupWorld, cleanup_reference: CleanupReference, tmp_path: Path, seed: int
) -> None:
    world, sandbox = cleanup_world, cleanup_world.sandbox
    point = draw_point(seed, cleanup_reference.events, CLEANUP_MUTATIONS, len(cleanup_reference.events) - 4)
    env = _env(sandbox, tmp_path / "run")
    folder = runs_folder(sandbox.aws(), tmp_path / "run" / "state")

    killed = run_cli(sandbox, cleanup_args(world), env, point)
    assert killed.killed and killed.returncode == -signal.SIGKILL, f"never reached {point}:\n{killed.stderr}"
    check_cleanup_after_kill(world, folder)

    rerun = run_cli(sandbox, cleanup_args(world), env)
    assert rerun.returncode == 0, f"killed at {point}, the rerun failed:\n{rerun.stderr}"
    world.deletions_finish()
    assert world.state() == cleanup_reference.state, f"killed at {point}"
    assert world.images() == cleanup_reference.images, f"killed at {point}"
    assert unfinished_runs(folder) == []
    check_cleanup_after_kill(world, folder)
    # Nothing journaled twice: each revision's deregistration and deletion, each image's deletion, once.
    (done,) = folder.glob("*.jsonl.done")
    steps = [(e["event"], o["key"], o["step"]) for e in journal_lines(done) for o in e.get("outcomes") or ()]
    assert len(steps) == len(set(steps)), f"killed at {point}"

"""The fault matrix: release, rollback, library sync and cleanup under the sandbox's faults.

Each scenario builds its world with the faults off, then runs with every AWS call ("*") exposed to faults: 30% of
calls throttled, 10% answered 5xx, 10% dropped without an answer, latency spikes, or all of them at once. A run
must end exactly where a clean run ends, or stop with one line that says what to do, after which the same command,
with the faults gone, finishes the job.

botocore retries throttles, 5xx answers and dropped connections (``standard`` mode). With opskit's default of 10
attempts per call one kind of fault is absorbed, so those runs must finish. All faults at once (nearly half the
calls fail) run through the CLI with AWS_MAX_ATTEMPTS=3, so retries may run out: the error must then be one line and
the same command, rerun, must finish. Where a run stops saying AWS kept failing a call (or the connection was lost),
the wire log (tests/reliability/conftest.py) shows that very call: the configured number of attempts, one after
the other, none answered with success. An action that fails every time shows the same by the sandbox's call counter
alone: a run that stops "after N attempts" called it exactly N times. Faults meet AWS API calls only: the image push
to the registry (``/v2`` on the same port) never meets them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from opskit.aws import Aws
from opskit.cleanup import CleanupOptions, CleanupPlan, apply_cleanup, plan_cleanup
from opskit.errors import AwsError, OpskitError
from opskit.library import RevisionLibrary
from opskit.lock import is_lock_tag, release_holder
from opskit.progress import ProgressEvent
from opskit.release import ReleaseOptions, apply_release, apply_rollback, plan_release, plan_rollback
from opskit.sandbox import Sandbox
from tests.cleanup.conftest import TIME_SCALE, build_world, expected_after
from tests.cleanup.conftest import World as CleanupWorld
from tests.release.conftest import World as ReleaseWorld
from tests.reliability.conftest import WireLog

FAULT_SEED = 8
FAST = {"poll_interval": 0.1, "timeout": 120}

# One kind of fault at a time, absorbed by botocore's retries (10 attempts per call).
FAULTS: dict[str, dict[str, float]] = {
    "throttled": {"throttle_rate": 0.3},
    "server-errors": {"error_rate": 0.1},
    "dropped": {"drop_rate": 0.1},
    "latency-spikes": {"latency": 1.0, "latency_rate": 0.03},
}
# All of them at once, with 3 attempts per call: about one call in ten fails for good.
COMBINED = {"throttle_rate": 0.3, "error_rate": 0.1, "drop_rate": 0.05, "latency": 1.0, "latency_rate": 0.03}
FEW_ATTEMPTS = 3


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The release world's sandbox (in place of tests/conftest's): the same, with reproducible faults."""
    with Sandbox(seed=None, time_scale=TIME_SCALE, fault_seed=FAULT_SEED) as sb:
        yield sb


@pytest.fixture
def cleanup_world(quiet: Sandbox) -> CleanupWorld:
    """The cleanup world (in place of the reliability conftest's) at 10 revisions per family: each fault costs
    botocore a backoff of up to seconds, and a cleanup re-reads what is in use before every action."""
    return build_world(quiet, revisions=10)


# -- running under faults ------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """A run under faults: it finished (``error`` None), or it stopped with ``error`` and the rerun finished."""

    error: str | None
    result: Any


def under_faults(sandbox: Sandbox, faults: dict[str, float], run: Callable[[], Any]) -> Outcome:
    """``run()`` with every AWS call exposed to ``faults``; when it stops with an error, the faults are turned off
    and ``run()`` goes again, as a user reruns the command."""
    sandbox.reset_calls()
    sandbox.faults.set("*", **faults)
    try:
        result = run()
    except OpskitError as exc:
        sandbox.faults.clear()
        assert_says_what_to_do(str(exc))
        return Outcome(str(exc), run())
    finally:
        sandbox.faults.clear()
    assert_faults_met(sandbox, faults)
    return Outcome(None, result)


def assert_faults_met(sandbox: Sandbox, faults: dict[str, float]) -> None:
    """The faults were really there: calls were made, and throttles answered."""
    assert sum(sandbox.calls.values()) > 0
    if faults.get("throttle_rate"):
        assert sum(sandbox.throttled.values()) > 0


def assert_says_what_to_do(error: str) -> None:
    assert "\n" not in error and "Traceback" not in error
    assert any(words in error for words in ("run it again", "run the cleanup again")), error


KEPT_FAILING = re.compile(r"AWS kept failing (\w+) \((\w+): [^)]*\)(?: after (\d+) attempts)?: ")


def assert_retries_ran_out(error: str, wire: WireLog, sandbox: Sandbox, attempts: int) -> None:
    """What a stop says, checked on the wire: AWS kept failing call X (with code C) after N attempts, or the
    connection to AWS was lost. Some call (of X) was made N = ``attempts`` times, botocore's attempts 1 to N of N one
    after the other, none answered with success, the last one with C (or dropped); and the wire log saw every call
    of X the sandbox counted, so nothing went past it."""
    said = KEPT_FAILING.search(error)
    if said is None:
        assert error.startswith(("lost the connection to AWS", "lost AWS")), error
        action, code, tries = None, None, attempts
    else:
        action, code, tries = said.group(1), said.group(2), int(said.group(3) or attempts)
        assert sum(len(call) for call in wire.calls(action).values()) == sandbox.calls[action], action
    assert tries == attempts, error  # retries ran out: botocore made every attempt it was allowed
    calls = wire.calls(action)
    gave_up = [
        call
        for call in calls.values()
        if [a.number for a in call] == list(range(1, attempts + 1))
        and all(a.failed and a.limit == attempts for a in call)
        and (call[-1].code == code if code else call[-1].status is None)
    ]
    assert gave_up, (error, {key: [(a.action, a.outcome) for a in call] for key, call in calls.items()})


@dataclass
class Cli:
    """``opskit`` in its own process, pointed at the sandbox, making at most ``attempts`` attempts per call."""

    sandbox: Sandbox
    wire: WireLog
    attempts: int = FEW_ATTEMPTS

    def __call__(self, *args: str, faults: dict[str, float] | None = None) -> subprocess.CompletedProcess[str]:
        """The command, through the wire log (cleared first) under ``faults`` (every AWS call)."""
        return self.run(*args, faults={"*": faults} if faults else None)

    def run(self, *args: str, faults: dict[str, dict[str, float]] | None = None) -> subprocess.CompletedProcess[str]:
        """The command with ``faults`` per action (or "*"); the call counter and the wire log start from zero."""
        env = {k: v for k, v in os.environ.items() if k != "AWS_PROFILE"}
        env.update(self.sandbox.env, AWS_MAX_ATTEMPTS=str(self.attempts), AWS_ENDPOINT_URL=self.wire.endpoint_url)
        self.sandbox.reset_calls()
        self.wire.clear()
        for action, settings in (faults or {}).items():
            self.sandbox.faults.set(action, **settings)
        try:
            return subprocess.run(
                [sys.executable, "-m", "opskit", *args], env=env, capture_output=True, text=True, timeout=300
            )
        finally:
            self.sandbox.faults.clear()

    def until_done(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The command under every fault at once; when it stops (one line, exit 2), again without faults.
        Returns the run that finished."""
        first = self(*args, faults=COMBINED)
        assert_faults_met(self.sandbox, COMBINED)
        assert "Traceback" not in first.stderr, first.stderr
        if first.returncode == 0:
            return first
        errors = [line for line in first.stderr.splitlines() if line.startswith("opskit: error: ")]
        assert first.returncode == 2 and len(errors) == 1, first.stderr
        assert first.stderr.rstrip().splitlines()[-1] == errors[0]  # the last word, on one line
        assert_says_what_to_do(errors[0])
        assert_retries_ran_out(errors[0].removeprefix("opskit: error: "), self.wire, self.sandbox, self.attempts)
        again = self(*args)
        assert again.returncode == 0, again.stderr
        return again


# -- release and rollback -----------------------------------------------------------------------------------------
def service_state(world: ReleaseWorld) -> dict[str, Any]:
    """What a release or rollback leaves: the service's revision and deployments, the family, ECR, the lock."""
    service = world.ecs.describe_services(cluster="prod", services=["web"], include=["TAGS"])["services"][0]
    revisions = {}
    for status in ("ACTIVE", "INACTIVE"):
        for arn in world.ecs.list_task_definitions(familyPrefix="web", status=status)["taskDefinitionArns"]:
            revisions[short(arn)] = status
    images = world.ecr.describe_images(repositoryName="web")["imageDetails"]
    return {
        "running": short(service["taskDefinition"]),
        "deployments": [
            (short(d["taskDefinition"]), d["status"], d.get("rolloutState")) for d in service["deployments"]
        ],
        "revisions": revisions,
        "tags": sorted(t for i in images for t in i.get("imageTags", [])),
        "locks": [t["key"] for t in service.get("tags", []) if is_lock_tag(t["key"])],
    }


def clean_state(running: int, *released: str) -> dict[str, Any]:
    """The release world after clean releases of the commits ``released`` (web:2, web:3 ...), running web:N:
    one revision and one image per release however often a call was retried, one completed deployment, no lock."""
    return {
        "running": f"web:{running}",
        "deployments": [(f"web:{running}", "PRIMARY", "COMPLETED")],
        "revisions": {f"web:{n}": "ACTIVE" for n in range(1, len(released) + 2)},
        "tags": sorted(["bootstrap", *(sha[:12] for sha in released)]),
        "locks": [],
    }


def assert_ends_as_a_clean_run(world: ReleaseWorld, wire: WireLog, clean: dict[str, Any]) -> None:
    """The state ``clean`` but for what a clean run never meets: the finishing run's UntagResource of its lock kept
    failing (the wire log shows each such call, every attempt failed), so its lock tag stays, dead: its process is
    gone, no release waits for it and the next one removes it."""
    state = service_state(world)
    if state["locks"]:
        untag_gave_up = [call for call in wire.calls("UntagResource").values() if all(a.failed for a in call)]
        assert len(state["locks"]) <= len(untag_gave_up), (state["locks"], wire.calls("UntagResource"))
        tags = world.ecs.list_tags_for_resource(resourceArn=world.service()["serviceArn"])["tags"]
        assert release_holder(tags) is None, tags
    assert {**state, "locks": []} == clean


def short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def image_of(world: ReleaseWorld, revision: str) -> str:
    body = world.ecs.describe_task_definition(taskDefinition=revision)["taskDefinition"]
    return str(body["containerDefinitions"][0]["image"])


def release(world: ReleaseWorld, aws: Aws, progress: Callable[[ProgressEvent], None] = lambda event: None) -> Any:
    plan = plan_release(aws, ReleaseOptions(cluster="prod", service="web", path=world.app))
    return apply_release(plan, aws, progress=progress, **FAST)


def rollback(aws: Aws) -> Any:
    return apply_rollback(plan_rollback(aws, "prod", "web"), aws, **FAST)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_release_and_a_rollback_under_faults_end_as_clean_ones(release_world: ReleaseWorld, fault: str) -> None:
    world, faults = release_world, FAULTS[fault]
    first = world.commit("first", marker="one")

    released = under_faults(world.sandbox, faults, lambda: release(world, world.aws))

    assert released.error is None and released.result.ok, released.result.reason
    assert service_state(world) == clean_state(2, first)
    assert image_of(world, "web:2") == f"{world.uri}:{first[:12]}"

    second = world.commit("second", marker="two")
    assert release(world, world.aws).ok
    rolled_back = under_faults(world.sandbox, faults, lambda: rollback(world.aws))

    assert rolled_back.error is None and rolled_back.result.ok, rolled_back.result.reason
    assert service_state(world) == clean_state(2, first, second)


def test_a_release_and_a_rollback_whose_retries_run_out_say_one_line_and_the_same_command_finishes(
    release_world: ReleaseWorld, wire_log: Callable[[Sandbox], WireLog]
) -> None:
    world = release_world
    cli = Cli(world.sandbox, wire_log(world.sandbox))
    first = world.commit("first", marker="one")

    done = cli.until_done(
        "release", "--cluster", "prod", "--service", "web", "--path", str(world.app), "--poll-interval", "0.1"
    )

    assert "COMPLETED" in done.stdout
    assert_ends_as_a_clean_run(world, cli.wire, clean_state(2, first))

    second = world.commit("second", marker="two")
    assert release(world, world.aws).ok
    done = cli.until_done("rollback", "--cluster", "prod", "--service", "web", "--poll-interval", "0.1")

    assert "COMPLETED" in done.stdout
    assert_ends_as_a_clean_run(world, cli.wire, clean_state(2, first, second))


# AWS goes away as a release reaches a stage (every call of the stage's action dropped): it stops there.
LOST_AT = {"register": "RegisterTaskDefinition", "update": "UpdateService", "wait": "DescribeServices"}


def test_a_release_that_loses_aws_mid_way_stops_in_one_line_and_the_rerun_finishes(
    release_world: ReleaseWorld,
) -> None:
    world, sandbox = release_world, release_world.sandbox
    aws = sandbox.aws(max_attempts=FEW_ATTEMPTS)
    commits = []
    for stage, action in LOST_AT.items():
        commits.append(world.commit(f"lost at {stage}", marker=stage))

        def lose_aws(event: ProgressEvent, stage: str = stage, action: str = action) -> None:
            if (event.stage, event.state) == (stage, "started"):
                sandbox.reset_calls()
                sandbox.faults.set(action, drop_rate=1.0)
                if stage == "wait":
                    sandbox.clock.time_scale = 1  # rollouts at AWS's pace: the rerun finds ours still going

        def at_full_speed(event: ProgressEvent) -> None:
            if (event.stage, event.state) == ("wait", "started"):
                sandbox.clock.time_scale = TIME_SCALE

        try:
            with pytest.raises(AwsError, match=r"^lost the connection to AWS") as stopped:
                release(world, aws, lose_aws)
        finally:
            sandbox.faults.clear()
        assert_says_what_to_do(str(stopped.value))
        # every attempt the Aws may make, each one dropped (the fault drops every call of the action)
        assert sandbox.calls[action] == FEW_ATTEMPTS, (stage, sandbox.calls)

        again = release(world, aws, at_full_speed)

        assert again.ok, (stage, again.reason)
        assert service_state(world) == clean_state(len(commits) + 1, *commits), stage


# AWS answers every call of one action with a fault: throttles, or 5xx answers. The release stops at that action
# saying how many attempts it made, which is the number configured (AWS_MAX_ATTEMPTS for the command, max_attempts
# in Python), and the sandbox counted exactly that many calls of the action, each one failed: none got through.
KEEPS_FAILING = {
    "register-throttled-command": ("RegisterTaskDefinition", {"throttle_rate": 1.0}, "ThrottlingException", 4),
    "update-5xx-python": ("UpdateService", {"error_rate": 1.0}, "ServerException", 2),
}


@pytest.mark.parametrize("case", list(KEEPS_FAILING))
def test_a_release_aws_keeps_failing_stops_after_exactly_the_configured_attempts(
    release_world: ReleaseWorld, case: str, wire_log: Callable[[Sandbox], WireLog]
) -> None:
    world, sandbox = release_world, release_world.sandbox
    action, fault, code, attempts = KEEPS_FAILING[case]
    first = world.commit("first", marker="one")
    said = rf"^AWS kept failing {action} \({code}: [^)]*\) after {attempts} attempts: run it again later, "

    if case.endswith("-command"):
        cli = Cli(sandbox, wire_log(sandbox), attempts=attempts)
        args = ("release", "--cluster", "prod", "--service", "web", "--path", str(world.app), "--poll-interval", "0.1")
        stopped = cli.run(*args, faults={action: fault})
        assert stopped.returncode == 2, stopped.stderr
        last = stopped.stderr.rstrip().splitlines()[-1]
        assert last.startswith("opskit: error: "), stopped.stderr
        error = last.removeprefix("opskit: error: ")
        assert re.match(said, error), stopped.stderr
        assert sandbox.calls[action] == attempts, sandbox.calls
        assert_retries_ran_out(error, cli.wire, sandbox, attempts)  # and on the wire: one call, attempts 1..N of N
        again = cli(*args)
        assert again.returncode == 0, again.stderr
    else:
        aws = sandbox.aws(max_attempts=attempts)
        plan = plan_release(aws, ReleaseOptions(cluster="prod", service="web", path=world.app))
        sandbox.reset_calls()
        sandbox.faults.set(action, **fault)
        try:
            with pytest.raises(AwsError, match=said) as raised:
                apply_release(plan, aws, **FAST)
        finally:
            sandbox.faults.clear()
        assert sandbox.calls[action] == attempts, sandbox.calls
        assert_says_what_to_do(str(raised.value))
        assert release(world, aws).ok

    assert service_state(world) == clean_state(2, first)


# -- the library and cleanup ---------------------------------------------------------------------------------------
TABLES = ("revisions", "containers", "images", "services", "deployments", "lineage")


def library_frames(aws: Aws, cache: Path) -> dict[str, pd.DataFrame]:
    with RevisionLibrary(aws, cache_dir=cache, rate_scale=TIME_SCALE) as library:
        library.sync()
        return {table: library.table(table) for table in TABLES}


def cleanup_options(world: CleanupWorld) -> CleanupOptions:
    """web's revisions and images (api's are left alone): in use, rollback targets, pinned, newest and the rest."""
    return world.options(families=(world.family("web"),), images=True, untagged_days=0, unreferenced_days=0)


def decisions(plan: CleanupPlan) -> list[tuple[str, str]]:
    return sorted([(d.key, d.fate) for d in plan.revisions] + [(d.key, d.fate) for d in plan.images])


def cleanup(world: CleanupWorld, aws: Aws, clean: CleanupPlan) -> Any:
    with RevisionLibrary(aws, rate_scale=TIME_SCALE) as library:
        plan = plan_cleanup(library, cleanup_options(world), now=world.sandbox.clock.now())
    assert decisions(plan) == decisions(clean)  # faults change nothing the plan decides
    return apply_cleanup(plan, aws, rate_scale=TIME_SCALE)


def cleaned_state(world: CleanupWorld, clean: CleanupPlan) -> tuple[dict[str, str], dict[str, set[str]]]:
    """Revisions and images after a clean run of ``clean``: api as it was; web's kept revisions and the images they
    run (revision N runs image vN) stay, the rest of web goes."""
    revisions = {key: status for key, status in world.state().items() if key.startswith("api:")}
    revisions.update(expected_after(world, clean))
    images = {"api": world.images()["api"], "web": {f"v{key[4:]}" for key in revisions if key.startswith("web:")}}
    assert images["web"] == {"v3", "v5", "v7", "v9", "v10"}  # pinned, rollback targets 2 and 1, running, newest
    return revisions, images


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_sync_and_a_cleanup_under_faults_end_as_clean_ones(
    cleanup_world: CleanupWorld, fault: str, tmp_path: Path
) -> None:
    world, faults, aws = cleanup_world, FAULTS[fault], cleanup_world.sandbox.aws()
    clean_frames = library_frames(aws, tmp_path / "clean")
    assert len(clean_frames["revisions"]) == 2 * world.revisions and len(clean_frames["services"]) == 2

    synced = under_faults(world.sandbox, faults, lambda: library_frames(aws, tmp_path / "faulty"))

    assert synced.error is None
    for table in TABLES:
        pd.testing.assert_frame_equal(synced.result[table], clean_frames[table], obj=table)

    clean = world.plan(cleanup_options(world))
    expected = cleaned_state(world, clean)
    cleaned = under_faults(world.sandbox, faults, lambda: cleanup(world, aws, clean))

    assert cleaned.error is None and cleaned.result.ok
    world.deletions_finish()
    assert (world.state(), world.images()) == expected


def test_a_sync_and_a_cleanup_whose_retries_run_out_say_one_line_and_the_same_command_finishes(
    cleanup_world: CleanupWorld, tmp_path: Path, wire_log: Callable[[Sandbox], WireLog]
) -> None:
    world = cleanup_world
    cli = Cli(world.sandbox, wire_log(world.sandbox))
    clean_frame = cli("revisions", "--format", "json", "--cache", str(tmp_path / "clean.sqlite"))
    assert clean_frame.returncode == 0, clean_frame.stderr

    done = cli.until_done("revisions", "--format", "json", "--cache", str(tmp_path / "faulty.sqlite"))

    assert json.loads(done.stdout) == json.loads(clean_frame.stdout)
    assert len(json.loads(done.stdout)) == 2 * world.revisions

    clean = world.plan(cleanup_options(world))
    expected = cleaned_state(world, clean)
    args = ("cleanup", "--family", "web", "--keep", "2", "--keep-days", "0", "--rollback-depth", "2")
    args += ("--delete-deregistered", "--images")
    done = cli.until_done(
        *args, "--untagged-days", "0", "--unreferenced-days", "0", "--rate-scale", str(TIME_SCALE), "--apply", "--yes"
    )

    assert "every revision went as planned" in done.stdout
    world.deletions_finish()
    assert (world.state(), world.images()) == expected

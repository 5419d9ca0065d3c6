"""An apply interrupted at random points (an exception from the progress callback, a SIGKILL) and resumed ends in
the state an uninterrupted run leaves, touches nothing protected, and its journal never claims what did not happen."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from opskit.cleanup import CleanupPlan, apply_cleanup, runs_folder, unfinished_runs
from opskit.progress import ProgressEvent
from opskit.sandbox import Sandbox

from .conftest import TIME_SCALE, World, build_world, expected_after

KEPT = {"web:3", "web:5", "web:7", "web:9", "web:13", "web:14", "api:13", "api:14"}


class Interrupted(Exception):
    pass


def interrupt_after(events: int) -> Any:
    seen = [0]

    def progress(event: ProgressEvent) -> None:
        seen[0] += 1
        if seen[0] == events:
            raise Interrupted(f"interrupted at event {events}")

    return progress


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_interrupted_at_random_points_and_resumed_it_ends_as_an_uninterrupted_run(quiet: Sandbox, seed: int) -> None:
    options = {"images": True, "untagged_days": 0, "unreferenced_days": 0}
    reference = build_world(quiet, prefix="ref")
    apply_cleanup(reference.plan(reference.options(**options)), quiet.aws(), rate_scale=TIME_SCALE)

    world = build_world(quiet, prefix=f"s{seed}")
    first = world.plan(world.options(**options))
    rng = random.Random(seed)
    interruptions = 0
    plan = first
    at = rng.randint(1, 20)  # the first run has more than 20 events: it is interrupted for sure
    while True:  # interrupted again and again, each time at a random event, until a run gets through
        try:
            apply_cleanup(plan, quiet.aws(), rate_scale=TIME_SCALE, progress=interrupt_after(at))
            break
        except Interrupted:
            interruptions += 1
            at = rng.randint(1, 25)
            assert set(world.state().items()) >= {(k, "ACTIVE") for k in KEPT}  # nothing protected touched
        plan = world.plan(world.options(**options))  # the same options: the interrupted run's plan comes back
        assert plan.resumed is not None and plan.key == first.key

    assert interruptions >= 1
    world.deletions_finish()  # both worlds share the sandbox and its clock
    assert world.state() == reference.state() == dict.fromkeys(KEPT, "ACTIVE")
    assert world.images() == reference.images()
    assert unfinished_runs(runs_folder(quiet.aws())) == []
    # Nothing done twice: one deregistration per revision, as many deletions as the uninterrupted run made.
    journal = [json.loads(line) for line in Path(_done_journal(world)).read_text().splitlines()]
    steps = [(o["key"], o["step"]) for e in journal if e["event"] == "revisions" for o in e["outcomes"]]
    assert len(steps) == len(set(steps)) == 2 * len(first.to_deregister)


def _done_journal(world: World) -> str:
    folder = runs_folder(world.sandbox.aws())
    (path,) = [p for p in folder.glob("*.jsonl.done") if _families(p) == list(world.families)]
    return str(path)


def _families(path: Path) -> list[str]:
    with path.open() as handle:
        return list(json.loads(handle.readline())["plan"]["options"]["families"])


def test_a_run_killed_with_sigkill_resumes_from_its_journal(quiet: Sandbox, state_dirs: Path) -> None:
    world = build_world(quiet, revisions=40)  # 72 to deregister and delete
    env = {**os.environ, **quiet.env}
    cli = [sys.executable, "-c", "from opskit.cli.cleanup import command; command()"]
    args = ["--family", "web", "--family", "api", "--keep", "2", "--keep-days", "0", "--rollback-depth", "2"]
    args += ["--delete-deregistered", "--apply", "--yes"]
    folder = runs_folder(quiet.aws())
    rng = random.Random(7)
    killed_at: list[int] = []
    for _kill in range(2):
        # Slower than the sandbox allows (10x instead of 60x): a few seconds to kill it in.
        process = subprocess.Popen(
            [*cli, *args, "--rate-scale", "10"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        before = _journaled(folder)
        deadline = time.monotonic() + 60
        while _journaled(folder) <= before and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)  # until this process has acted at least once
        time.sleep(rng.uniform(0.0, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        (journal,) = folder.glob("*.jsonl")
        killed_at.append(_journaled(folder))
        _journal_claims_only_what_happened(world, journal)
        assert set(world.state().items()) >= {(k, "ACTIVE") for k in KEPT - {"web:13", "web:14", "api:13", "api:14"}}

    done = subprocess.run(
        [*cli, *args, "--rate-scale", str(TIME_SCALE), "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["resumed"]
    finished = journal.with_name(journal.name + ".done")  # the same journal, renamed when the run finished
    plan = CleanupPlan.from_dict(json.loads(finished.read_text().splitlines()[0])["plan"])
    world.deletions_finish()
    assert (
        world.state()
        == expected_after(world, plan)
        == dict.fromkeys({"web:3", "web:5", "web:7", "web:9", "web:39", "web:40", "api:39", "api:40"}, "ACTIVE")
    )
    assert unfinished_runs(folder) == []
    assert 0 < killed_at[0] < killed_at[1] < 2 * 72  # each kill landed in the middle of the work


def _journaled(folder: Path) -> int:
    """Outcomes the journals in ``folder`` record so far."""
    count = 0
    for path in folder.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                count += len(json.loads(line).get("outcomes") or ())
    return count


def _journal_claims_only_what_happened(world: World, journal: Path) -> None:
    state = world.state()
    for line in journal.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a torn last line
        for o in entry.get("outcomes") or ():
            name = o["key"].rsplit("/", 1)[-1]
            if o["outcome"] == "deregistered":
                assert state.get(name) != "ACTIVE", name
            if o["outcome"] == "deleted":
                assert name not in state or state[name] == "DELETE_IN_PROGRESS", name


def test_a_journal_torn_mid_line_is_repaired_and_nothing_is_lost(quiet: Sandbox) -> None:
    world = build_world(quiet)
    plan = world.plan()
    with pytest.raises(Interrupted):
        apply_cleanup(plan, quiet.aws(), rate_scale=TIME_SCALE, progress=interrupt_after(8))
    (journal,) = runs_folder(quiet.aws()).glob("*.jsonl")
    with journal.open("a") as handle:
        handle.write('{"event": "revisions", "outcomes": [{"key": "arn:aws:ecs:us-east-1:1')  # died mid-write
    resumed = world.plan()
    assert resumed.resumed is not None
    apply_cleanup(resumed, quiet.aws(), rate_scale=TIME_SCALE)
    world.deletions_finish()
    assert world.state() == expected_after(world, plan)
    lines = Path(str(journal) + ".done").read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line reads: the torn one was cut
    steps = [(o["key"], o["step"]) for e in entries if e["event"] == "revisions" for o in e["outcomes"]]
    assert len(steps) == len(set(steps)) == 2 * len(plan.to_deregister)

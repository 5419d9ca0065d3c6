"""The revision library and a cleanup on 20,000 revisions, with throttling on: time, calls and bounded memory.

Run: python benchmarks/load_20k.py [--revisions 20000] [--families 10] [--time-scale 60] [--no-trace]

The world (:func:`seed`): ``--revisions`` revisions in ``--families`` families, with bodies like real ones
(variables, secrets, log configuration, a commit tag); the oldest 45% of each family deregistered (INACTIVE); two
revisions of each family pinned with ``opskit:keep`` (one INACTIVE, one ACTIVE); and, for the first four families,
a service that ran three older revisions one after the other, so it can roll back twice. It is laid down over the
sandbox's API with throttling suspended (about a minute for 20,000).

The sandbox then throttles at AWS's rates, ``--time-scale`` times faster. At the default, 60, the rates allow the
sync's 20,000 describes in 17 s and the cleanup's 10,000 deregistrations (1 per second at AWS's rate) in 166 s:
beyond that the run is bound by how fast the sandbox serves calls, not by the rates, and the apply makes five
calls per action (it re-reads the services and tasks in use before each). On an idle machine of two cores that is
about ten minutes with ``--no-trace``; tracemalloc makes the opskit process two to three times slower.

The opskit work runs in a process of its own (so the sandbox's models and server stay out of its memory), phase by
phase: a cold library sync (revisions and services), the cleanup plan (keep the newest 100 of each family, two
rollback targets, no age rule, deregistered revisions deleted in the same run) and its apply. Printed per phase:
wall time and the least time the rates allow, the calls the sandbox served, the throttled answers it gave and the
throttles opskit's pacer retried, errors, the peak RSS of the opskit process (over its baseline after imports, and
in all), tracemalloc's peak in that process (``--no-trace`` leaves tracemalloc off: it slows allocation down and
its own bookkeeping counts in the RSS), the cache's size; then whether the end state is the expected one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import opskit
from opskit.cleanup import PIN_TAG
from opskit.sandbox import Sandbox
from opskit.sandbox.ecs.taskdefs import DELETE_SECONDS
from opskit.sandbox.sandbox import ACCESS_KEY_ID, SECRET_ACCESS_KEY

INACTIVE_SHARE = 0.45  # the oldest revisions of each family, deregistered when seeded
SERVICES = 4  # families with a service and a rollback history
KEEP, ROLLBACK_DEPTH = 100, 2
READ_BURST, READ_RATE = 50, 20  # task-definition reads
MODIFY_BURST, DELETE_BURST, MODIFY_RATE = 20, 5, 1  # deregistrations; DeleteTaskDefinitions; both 1/s


@dataclass(frozen=True)
class LoadWorld:
    """What was seeded, and so what a cleanup with :func:`cleanup_options` must leave."""

    families: tuple[str, ...]
    per_family: int
    cluster: str
    pinned: dict[str, frozenset[int]]  # family -> pinned revision numbers
    deployed: dict[str, tuple[int, ...]]  # family -> the revisions its service ran, oldest first

    @property
    def revisions(self) -> int:
        return len(self.families) * self.per_family

    @property
    def inactive(self) -> int:
        """Revisions 1..inactive of each family were deregistered."""
        return int(self.per_family * INACTIVE_SHARE)

    def expected(self) -> dict[str, dict[int, str]]:
        """family -> revision -> status after the cleanup (revisions it deletes are absent).

        Kept: the newest ``KEEP``, the service's current revision and its ``ROLLBACK_DEPTH`` rollback targets, the
        pinned ones (INACTIVE ones stay INACTIVE). Every other revision is deregistered and deleted.
        """
        out: dict[str, dict[int, str]] = {}
        for family in self.families:
            kept = set(range(self.per_family - KEEP + 1, self.per_family + 1))
            kept.update(self.deployed.get(family, ())[-1 - ROLLBACK_DEPTH :])
            kept.update(self.pinned[family])
            out[family] = {n: "INACTIVE" if n <= self.inactive else "ACTIVE" for n in sorted(kept)}
        return out


def body(family: str, n: int, registry: str, pinned: bool) -> dict[str, Any]:
    """A revision body like a real service's: about 1 KB of JSON."""
    sha = hashlib.sha1(f"{family}-{n}".encode()).hexdigest()[:12]
    tags = [{"key": "commit", "value": sha}] + ([{"key": PIN_TAG, "value": "true"}] if pinned else [])
    return {
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
        "containerDefinitions": [
            {
                "name": "app",
                "image": f"{registry}/{family}:{sha}",
                "essential": True,
                "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
                "environment": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "RELEASE", "value": sha}],
                "secrets": [{"name": "DATABASE_URL", "valueFrom": f"arn:aws:ssm:us-east-1:1:parameter/{family}/db"}],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": f"/ecs/{family}", "awslogs-stream-prefix": family},
                },
            }
        ],
        "tags": tags,
    }


def seed(sandbox: Sandbox, revisions: int, families: int, prefix: str = "load") -> LoadWorld:
    """Lay the world down over the sandbox's API, throttling suspended; one thread per family keeps each family's
    revision numbers in registration order."""
    names = tuple(f"{prefix}-{i:02d}" for i in range(families))
    per_family = revisions // families
    inactive = int(per_family * INACTIVE_SHARE)
    # Pinned: one old INACTIVE revision and one ACTIVE revision outside the newest KEEP, per family.
    pinned = {
        name: frozenset({max(1, inactive // 2), inactive + 1 + (per_family - KEEP - inactive) // 3}) for name in names
    }
    # Each service ran three older ACTIVE revisions, each rollout completed: it runs the third, and the first
    # two are its rollback targets.
    span = per_family - KEEP - inactive
    deployed = {name: tuple(inactive + span * k // 4 for k in (1, 2, 3)) for name in names[:SERVICES]}
    world = LoadWorld(names, per_family, f"{prefix}-prod", pinned, deployed)
    assert span > 8, "too few revisions per family for the world's layout"
    ecs = sandbox.client("ecs")

    def register(family: str) -> None:
        for n in range(1, per_family + 1):
            ecs.register_task_definition(**body(family, n, sandbox.registry_host, n in pinned[family]))

    def deregister(family: str) -> None:
        for n in range(1, inactive + 1):
            ecs.deregister_task_definition(taskDefinition=f"{family}:{n}")

    with sandbox.throttle.suspended(), ThreadPoolExecutor(families) as pool:
        list(pool.map(register, names))
        ecs.create_cluster(clusterName=world.cluster)
        for family, revisions_run in deployed.items():
            first, *later = revisions_run
            ecs.create_service(
                cluster=world.cluster, serviceName=family, taskDefinition=f"{family}:{first}", desiredCount=1
            )
            sandbox.clock.advance(600)  # the rollout completes on the sandbox clock
            for n in later:
                ecs.update_service(cluster=world.cluster, service=family, taskDefinition=f"{family}:{n}")
                sandbox.clock.advance(600)
        list(pool.map(deregister, names))
    return world


def cleanup_options(world: LoadWorld) -> dict[str, Any]:
    return {
        "families": list(world.families),
        "keep": KEEP,
        "keep_days": 0,
        "rollback_depth": ROLLBACK_DEPTH,
        "delete_deregistered": True,
    }


def state_of(sandbox: Sandbox, world: LoadWorld) -> dict[str, dict[int, str]]:
    """family -> revision -> status, as the sandbox lists them now (paged, throttling suspended)."""
    ecs = sandbox.client("ecs")
    out: dict[str, dict[int, str]] = {family: {} for family in world.families}
    with sandbox.throttle.suspended():
        for status in ("ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS"):
            for page in ecs.get_paginator("list_task_definitions").paginate(status=status):
                for arn in page["taskDefinitionArns"]:
                    family, number = arn.rsplit("/", 1)[-1].rsplit(":", 1)
                    if family in out:
                        out[family][int(number)] = status
    return out


# The opskit side, in a process of its own: reads one phase per line on stdin, answers one JSON line per phase.
WORKER = r"""
import json, sys, time, tracemalloc
from datetime import datetime
from pathlib import Path
from opskit.aws import Aws
from opskit.cleanup import CleanupOptions, apply_cleanup, plan_cleanup
from opskit.library import RevisionLibrary

config = json.loads(sys.argv[1])

def status_mb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024

def reset_rss_peak():
    with open("/proc/self/clear_refs", "w") as handle:  # "5": the peak RSS (VmHWM) starts again from now
        handle.write("5")

aws = Aws(region=config["region"], endpoint_url=config["endpoint"], access_key_id=config["key"],
          secret_access_key=config["secret"])
library = RevisionLibrary(aws, cache_dir=config["cache_dir"], rate_scale=config["scale"])
journals = Path(config["state_dir"])
state = {}
events = {"count": 0}

def progress(event):
    events["count"] += 1  # a reporter that draws and forgets, as the CLI's does

def sync():
    report = library.sync(include=["revisions", "services"])
    return {"listed": report.revisions.listed, "described": report.revisions.described,
            "pacer_throttled": sum(report.throttled.values())}

def count():
    return {"statuses": {k: n for k, n in library.revisions()["status"].value_counts().items() if n}}

def plan():
    options = CleanupOptions.from_dict(config["options"])
    plan = plan_cleanup(library, options, now=datetime.fromisoformat(config["now"]), journal_dir=journals)
    state["plan"] = plan
    return {"counts": plan.counts, "calls_needed": plan.calls}

def apply():
    result = apply_cleanup(state.pop("plan"), aws, rate_scale=config["scale"], progress=progress,
                           journal_dir=journals)
    failed = sum(1 for o in result.revision_outcomes.values() if o["outcome"] in ("failed", "pending"))
    return {"outcomes": result.counts, "failed": failed, "ok": result.ok, "journal": result.journal,
            "pacer_throttled": sum(result.throttled.values()), "progress_events": events["count"]}

def cache_mb():  # the SQLite file and its write-ahead log
    files = [library.cache_path, Path(f"{library.cache_path}-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20

phases = {"sync": sync, "count": count, "plan": plan, "apply": apply}
baseline = status_mb("VmRSS")
if config["trace"]:
    tracemalloc.start()
print(json.dumps({"ready": True, "baseline_mb": baseline}), flush=True)
for line in sys.stdin:
    name = line.strip()
    if name == "quit":
        break
    reset_rss_peak()
    if config["trace"]:
        tracemalloc.reset_peak()
        held = tracemalloc.get_traced_memory()[0] / 2**20
    started = time.perf_counter()
    try:
        figures = phases[name]()
        error = None
    except Exception as exc:
        figures, error = {}, f"{type(exc).__name__}: {exc}"
    figures.update(seconds=time.perf_counter() - started, error=error, rss_peak_mb=status_mb("VmHWM"),
                   baseline_mb=baseline, cache_mb=cache_mb())
    if config["trace"]:
        figures["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        figures["traced_held_mb"] = held  # what earlier phases left (botocore's models, the plan)
    print(json.dumps(figures), flush=True)
"""


class Worker:
    """The opskit process: :meth:`run` one phase and get its figures, with the sandbox's calls and throttles."""

    def __init__(self, sandbox: Sandbox, world: LoadWorld, folder: Path, *, trace: bool) -> None:
        self.sandbox = sandbox
        config = {
            "region": sandbox.region_name,
            "endpoint": sandbox.endpoint_url,
            "key": ACCESS_KEY_ID,
            "secret": SECRET_ACCESS_KEY,
            "scale": sandbox.clock.time_scale,
            "cache_dir": str(folder / "cache"),
            "state_dir": str(folder / "state"),
            "options": cleanup_options(world),
            "now": sandbox.clock.now().isoformat(),
            "trace": trace,
        }
        root = str(Path(opskit.__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.baseline_mb = float(self._answer()["baseline_mb"])

    def run(self, phase: str) -> dict[str, Any]:
        self.sandbox.throttle.refill()  # each phase starts from full buckets, as after a quiet while
        self.sandbox.reset_calls()
        assert self.process.stdin is not None
        self.process.stdin.write(phase + "\n")
        self.process.stdin.flush()
        figures = self._answer()
        figures["calls"] = self.sandbox.calls
        figures["throttled"] = self.sandbox.throttled
        return figures

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the opskit process ended (exit {self.process.wait()})")
        return dict(json.loads(line))

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
        self.process.wait(timeout=60)


@contextmanager
def worker(sandbox: Sandbox, world: LoadWorld, folder: Path, *, trace: bool) -> Iterator[Worker]:
    opened = Worker(sandbox, world, folder, trace=trace)
    try:
        yield opened
    finally:
        opened.close()


def sync_bound(figures: dict[str, Any], scale: float) -> float:
    """Task-definition reads beyond the burst, at the read rate."""
    calls: Counter[str] = figures["calls"]
    reads = calls["ListTaskDefinitions"] + calls["DescribeTaskDefinition"]
    return max(0, reads - READ_BURST) / (READ_RATE * scale)


def apply_bound(figures: dict[str, Any], scale: float) -> float:
    """Deregistrations beyond the burst at 1/s; DeleteTaskDefinitions likewise, in parallel (the slower wins)."""
    calls: Counter[str] = figures["calls"]
    deregistering = max(0, calls["DeregisterTaskDefinition"] - MODIFY_BURST) / (MODIFY_RATE * scale)
    deleting = max(0, calls["DeleteTaskDefinitions"] - DELETE_BURST) / (MODIFY_RATE * scale)
    return max(deregistering, deleting)


def print_phase(name: str, figures: dict[str, Any], bound: float | None, baseline_mb: float) -> None:
    calls: Counter[str] = figures["calls"]
    throttled: Counter[str] = figures["throttled"]
    print(f"\n{name}: {figures['seconds']:.1f} s" + ("" if bound is None else f" (the rates allow {bound:.1f} s)"))
    top = ", ".join(f"{n} {action}" for action, n in calls.most_common(6))
    print(f"  calls served: {sum(calls.values())} ({top})")
    print(
        f"  throttled answers: {sum(throttled.values())}; throttles retried by opskit's pacer: "
        f"{figures.get('pacer_throttled', 0)}; errors: {figures['error'] or figures.get('failed', 0)}"
    )
    memory = (
        f"  memory: peak RSS {figures['rss_peak_mb'] - baseline_mb:.0f} MB over the {baseline_mb:.0f} MB after "
        f"imports ({figures['rss_peak_mb']:.0f} MB in all)"
    )
    if "traced_peak_mb" in figures:
        memory += (
            f"; tracemalloc peak {figures['traced_peak_mb']:.1f} MB "
            f"(of which {figures['traced_held_mb']:.1f} MB held from earlier phases)"
        )
    print(memory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revisions", type=int, default=20_000)
    parser.add_argument("--families", type=int, default=10)
    parser.add_argument("--time-scale", type=float, default=60.0)
    parser.add_argument("--no-trace", action="store_true", help="Leave tracemalloc off (peak RSS only).")
    args = parser.parse_args()
    scale = args.time_scale
    with (
        Sandbox(seed=None, time_scale=scale, docker=False, registry=False) as sandbox,
        tempfile.TemporaryDirectory() as tmp,
    ):
        started = time.perf_counter()
        world = seed(sandbox, args.revisions, args.families)
        print(
            f"seeded {world.revisions:,} revisions in {len(world.families)} families ({world.inactive} of each "
            f"INACTIVE, {SERVICES} services with a rollback history) in {time.perf_counter() - started:.1f} s"
        )
        print(
            f"time scale {scale:g}: task-definition reads {READ_BURST} at once then {READ_RATE * scale:g}/s; "
            f"deregistrations {MODIFY_BURST} then {MODIFY_RATE * scale:g}/s; DeleteTaskDefinitions (10 revisions "
            f"each) {DELETE_BURST} then {MODIFY_RATE * scale:g}/s"
        )
        with worker(sandbox, world, Path(tmp), trace=not args.no_trace) as opskit:
            synced = opskit.run("sync")
            print_phase(
                "cold library sync (revisions, services)", synced, sync_bound(synced, scale), opskit.baseline_mb
            )
            print(
                f"  {synced.get('listed')} revisions listed, {synced.get('described')} described; "
                f"cache {synced['cache_mb']:.1f} MB on disk"
            )
            planned = opskit.run("plan")
            print_phase("cleanup plan (warm sync, gather, decide)", planned, None, opskit.baseline_mb)
            print(f"  fates: {planned.get('counts')}; mutating calls it needs: {planned.get('calls_needed')}")
            applied = opskit.run("apply")
            print_phase("cleanup apply", applied, apply_bound(applied, scale), opskit.baseline_mb)
            print(f"  outcomes: {applied.get('outcomes')}; progress events: {applied.get('progress_events')}")
        sandbox.clock.advance(DELETE_SECONDS)  # ECS removes deleted revisions a few minutes after the call
        print(
            f"\nend state as expected (kept revisions as they were, every other one gone): "
            f"{state_of(sandbox, world) == world.expected()}"
        )


if __name__ == "__main__":
    main()

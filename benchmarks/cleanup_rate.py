"""How close a cleanup runs to the rate ECS's throttling allows, against a fixed one-second sleep between calls.

Run: python benchmarks/cleanup_rate.py [--revisions 1000] [--time-scale 25]
Prints, measured in the same run on one sandbox with AWS's throttle buckets time-scaled (task-definition modify:
a burst of 20, then 1 per second; deletion: a burst of 5, then 1 per second; both x time scale):

- opskit's apply of a plan that deregisters and deletes N revisions (the whole apply: each action re-reads the
  services and tasks in use right before it acts, and is journaled): wall time against the bound the two buckets
  allow, API calls, throttles and failed calls;
- the same N revisions cleaned the simple way: deregister each, then DeleteTaskDefinitions 10 at a time, with a
  fixed one-second (scaled) sleep between calls and nothing re-checked: wall time, throttles, failures.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from opskit.cleanup import CleanupOptions, apply_cleanup, plan_cleanup
from opskit.library import RevisionLibrary
from opskit.sandbox import Sandbox

MODIFY_BURST, DELETE_BURST, PER_SECOND = 20, 5, 1.0
KEEP = 5  # per family
MUTATING = ("DeregisterTaskDefinition", "DeleteTaskDefinitions")


def seed(sandbox: Sandbox, families: list[str], per_family: int) -> None:
    """``per_family`` revisions of each family; a service runs the newest revision of the first family."""
    ecs = sandbox.client("ecs")

    def register(item: tuple[str, int]) -> None:
        family, n = item
        container = {"name": "app", "image": f"{sandbox.registry_host}/{family}:{n:012x}", "memory": 64}
        ecs.register_task_definition(family=family, containerDefinitions=[container])

    with sandbox.throttle.suspended(), ThreadPoolExecutor(8) as pool:
        for family in families:  # in order per family, so revision numbers follow registration
            list(pool.map(register, [(family, n) for n in range(1, per_family + 1)]))
        ecs.create_cluster(clusterName="bench")
        first = families[0]
        ecs.create_service(cluster="bench", serviceName=first, taskDefinition=f"{first}:{per_family}", desiredCount=1)
        sandbox.clock.advance(600)


def bound(deregisters: int, deletes: int, scale: float) -> float:
    """The least time the buckets allow: deregistrations beyond the burst at 1/s; a delete of 10 can only follow
    their deregistration, so the last delete call waits for the last deregistration (its own bucket has refilled
    by then: 10 deregistrations per delete call)."""
    deregistering = max(0, deregisters - MODIFY_BURST) / (PER_SECOND * scale)
    deleting = max(0, deletes - DELETE_BURST) / (PER_SECOND * scale)
    return max(deregistering, deleting)


def opskit_run(sandbox: Sandbox, families: list[str], scale: float, state: Path) -> dict[str, Any]:
    options = CleanupOptions(
        families=tuple(families), keep=KEEP, keep_days=0, rollback_depth=1, delete_deregistered=True
    )
    with RevisionLibrary(sandbox.aws(), cache_dir=state / "cache", rate_scale=scale) as library:
        plan = plan_cleanup(library, options, journal_dir=state, now=sandbox.clock.now())
    sandbox.throttle.refill()
    sandbox.reset_calls()
    started = time.perf_counter()
    result = apply_cleanup(plan, sandbox.aws(), rate_scale=scale, journal_dir=state)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "deregisters": len(plan.to_deregister),
        "deletes": math.ceil(len(plan.to_delete) / 10),
        "calls": sandbox.calls,
        "throttled": sandbox.throttled,
        "failed": sum(1 for o in result.revision_outcomes.values() if o["outcome"] in ("failed", "pending")),
        "outcomes": Counter(o["outcome"] for o in result.revision_outcomes.values()),
    }


def fixed_sleep_run(sandbox: Sandbox, families: list[str], per_family: int, scale: float) -> dict[str, Any]:
    ecs = sandbox.client("ecs")
    arns = [f"{family}:{n}" for family in families for n in range(1, per_family - KEEP + 1)]
    sandbox.throttle.refill()
    sandbox.reset_calls()
    failed = 0
    started = time.perf_counter()

    def call(function: Any, **params: Any) -> None:
        nonlocal failed
        try:
            answer = function(**params)
            failed += len(answer.get("failures") or [])
        except Exception:
            failed += 1
        time.sleep(1.0 / scale)

    for arn in arns:
        call(ecs.deregister_task_definition, taskDefinition=arn)
    for start in range(0, len(arns), 10):
        call(ecs.delete_task_definitions, taskDefinitions=arns[start : start + 10])
    return {
        "seconds": time.perf_counter() - started,
        "calls": sandbox.calls,
        "throttled": sandbox.throttled,
        "failed": failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revisions", type=int, default=1000, help="revisions to clean up (two families)")
    parser.add_argument("--time-scale", type=float, default=25.0)
    args = parser.parse_args()
    scale, per_family = args.time_scale, args.revisions // 2 + KEEP
    with (
        Sandbox(seed=None, time_scale=scale, docker=False, registry=False) as sandbox,
        tempfile.TemporaryDirectory() as tmp,
    ):
        ours, simple = ["bench-a", "bench-b"], ["plain-a", "plain-b"]
        started = time.perf_counter()
        seed(sandbox, ours + simple, per_family)
        print(
            f"seeded {4 * per_family} revisions in 4 families in {time.perf_counter() - started:.1f} s; "
            f"time scale {scale:g}: modify burst {MODIFY_BURST} then {PER_SECOND * scale:g}/s, "
            f"deletion burst {DELETE_BURST} then {PER_SECOND * scale:g}/s"
        )

        run = opskit_run(sandbox, ours, scale, Path(tmp))
        limit = bound(run["deregisters"], run["deletes"], scale)
        calls: Counter[str] = run["calls"]
        reads = sum(v for k, v in calls.items() if k not in MUTATING)
        print(f"\nopskit apply_cleanup of {run['deregisters']} revisions (deregister, then delete 10 per call):")
        ratio = run["seconds"] / limit
        print(
            f"  wall {run['seconds']:.2f} s; bound from the rates {limit:.2f} s; wall/bound = {ratio:.3f} "
            f"({(ratio - 1) * 100:+.1f}%)"
        )
        print(
            f"  calls: {calls['DeregisterTaskDefinition']} DeregisterTaskDefinition, {calls['DeleteTaskDefinitions']} "
            f"DeleteTaskDefinitions, {reads} reads re-checking what is in use "
            f"({reads / (run['deregisters'] + run['deletes']):.1f} per action)"
        )
        print(
            f"  throttled: {sum(run['throttled'].values())}; failed calls: {run['failed']}; "
            f"outcomes: {dict(run['outcomes'])}"
        )

        plain = fixed_sleep_run(sandbox, simple, per_family, scale)
        made = plain["calls"]["DeregisterTaskDefinition"] + plain["calls"]["DeleteTaskDefinitions"]
        print(f"\nfixed one-second sleep (scaled: {1000 / scale:.0f} ms) between calls, same revisions, no re-checks:")
        print(
            f"  wall {plain['seconds']:.2f} s for {made} calls; wall/bound = {plain['seconds'] / limit:.3f}; "
            f"throttled: {sum(plain['throttled'].values())}; failed calls: {plain['failed']}"
        )
        print(f"\nopskit is {plain['seconds'] / run['seconds']:.2f}x faster than the fixed sleep, in the same run")


if __name__ == "__main__":
    main()

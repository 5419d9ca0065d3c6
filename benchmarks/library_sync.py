"""How fast the revision library syncs against ECS's throttling, and how fast it loads from its cache.

Run: python benchmarks/library_sync.py [--revisions 5000] [--families 25] [--time-scale 3] [--load 100000]
Prints, all measured in the same run on a sandbox with AWS's throttle buckets time-scaled:

- cold sync of every revision: wall time against the throttle bound for the calls it made (calls beyond the
  burst of 50, at 20 per second x time scale), the calls, throttles, the errors that reached the caller and the
  library's own counts (revisions listed, revisions in the cache, throttles its pacer retried);
- warm re-sync after 10 new revisions: the same, and wall time against the cold sync;
- the same cold fetch done the simple ways: one describe after another, and a plain 10-thread pool, both with
  a default boto3 client (default retries): wall time, calls, throttles, errors that reached the caller;
- N revisions loaded from the cache into the revisions and containers DataFrames: time and peak memory
  (measured in a fresh process: peak RSS over the baseline after imports, and tracemalloc's peak).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit.errors import OpskitError
from opskit.library import RevisionLibrary
from opskit.library.rows import revision_rows
from opskit.library.store import CacheIdentity, Store
from opskit.sandbox import Sandbox

BURST, PER_SECOND = 50, 20  # task-definition reads, per account and region
READS = ("ListTaskDefinitions", "DescribeTaskDefinition")
STATUSES = ("ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS")


def body(family: str, n: int, host: str = "123456789012.dkr.ecr.us-east-1.amazonaws.com") -> dict[str, Any]:
    sha = hashlib.sha1(f"{family}-{n}".encode()).hexdigest()[:12]
    return {
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
        "containerDefinitions": [
            {
                "name": family,
                "image": f"{host}/{family}:{sha}",
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
        "tags": [{"key": "commit", "value": sha}],
    }


def seed(sandbox: Sandbox, revisions: int, families: int) -> None:
    ecs = sandbox.client("ecs")
    names = [f"service-{i:02d}" for i in range(families)]

    def register(i: int) -> None:
        ecs.register_task_definition(**body(names[i % families], i // families + 1, sandbox.registry_host))

    with sandbox.throttle.suspended(), ThreadPoolExecutor(8) as pool:
        list(pool.map(register, range(revisions)))
        # The older half of each family deregistered: two statuses with pages of their own.
        per_family = revisions // families
        old = [f"{name}:{n}" for name in names for n in range(1, per_family // 2 + 1)]
        list(pool.map(lambda ref: ecs.deregister_task_definition(taskDefinition=ref), old))


def measure(sandbox: Sandbox, work: Callable[[], Any]) -> tuple[float, Counter[str], Counter[str], Any]:
    """Run ``work`` from full buckets; wall seconds, calls and throttles per action, and what it returned."""
    sandbox.throttle.refill()
    sandbox.reset_calls()
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, sandbox.calls, sandbox.throttled, result


def bound(calls: int, time_scale: float) -> float:
    return max(0, calls - BURST) / (PER_SECOND * time_scale)


@dataclass(frozen=True)
class Synced:
    """An opskit sync as its caller sees it: the error that reached it (the sync stops at the first), and the
    library's own counts: revisions the listings showed and the cache holds, throttles its pacer retried."""

    error: str | None
    listed: int
    cached: int
    retried: int

    def summary(self) -> str:
        errors = 0 if self.error is None else 1
        return (
            f"{errors} errors reached the caller{f' ({self.error})' if self.error else ''}; "
            f"{self.cached} of {self.listed} listed revisions in the cache; "
            f"{self.retried} throttles past botocore, retried by the pacer"
        )


def opskit_sync(sandbox: Sandbox, cache: Path, scale: float) -> Synced:
    with RevisionLibrary(sandbox.aws(), cache_path=cache, rate_scale=scale) as library:
        try:
            report = library.sync(include=["revisions"])
        except OpskitError as exc:
            return Synced(str(exc), 0, len(library.revisions()), sum(library.pacer.throttled.values()))
        listed = report.revisions.listed if report.revisions is not None else 0
        return Synced(None, listed, len(library.revisions()), sum(report.throttled.values()))


def naive_listing(ecs: Any) -> list[str]:
    return [
        arn
        for status in STATUSES
        for page in ecs.get_paginator("list_task_definitions").paginate(status=status)
        for arn in page["taskDefinitionArns"]
    ]


def naive_serial(sandbox: Sandbox) -> int:
    ecs, errors = sandbox.client("ecs"), 0
    try:
        arns = naive_listing(ecs)
    except Exception:
        return 1
    for arn in arns:
        try:
            ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        except Exception:
            errors += 1
    return errors


def naive_pool(sandbox: Sandbox) -> int:
    ecs = sandbox.client("ecs")
    try:
        arns = naive_listing(ecs)
    except Exception:
        return 1

    def one(arn: str) -> int:
        try:
            ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
            return 0
        except Exception:
            return 1

    with ThreadPoolExecutor(10) as pool:
        return sum(pool.map(one, arns))


def row(label: str, seconds: float, calls: Counter[str], throttled: Counter[str], extra: str = "") -> None:
    made = sum(calls[a] for a in READS)
    print(
        f"  {label:<34} {seconds:8.2f} s  {made:6d} task-definition reads  "
        f"{sum(throttled.values()):6d} throttled{extra}"
    )


def build_cache(path: Path, identity: CacheIdentity, revisions: int, families: int) -> None:
    store = Store(path, identity)
    arn = f"arn:aws:ecs:{identity.region}:{identity.account}:task-definition"
    batch = []
    for i in range(revisions):
        family, n = f"service-{i % families:02d}", i // families + 1
        registered = body(family, n)
        tags = registered.pop("tags")
        answer = {
            "taskDefinition": {
                **registered,
                "taskDefinitionArn": f"{arn}/{family}:{n}",
                "revision": n,
                "status": "ACTIVE" if i % 3 else "INACTIVE",
                "compatibilities": ["EC2", "FARGATE"],
                "registeredAt": 1.7e9 + i * 60,
                "registeredBy": f"arn:aws:iam::{identity.account}:root",
                **({} if i % 3 else {"deregisteredAt": 1.7e9 + i * 60 + 86400}),
            },
            "tags": tags,
        }
        batch.append(revision_rows(answer))
        if len(batch) == 5000:
            store.put_revisions(batch)
            batch.clear()
    store.put_revisions(batch)
    store.close()


LOAD = """
import json, resource, sys, time, tracemalloc
from opskit.aws import Aws
from opskit.errors import OpskitError
from opskit.library import RevisionLibrary
path, account, traced = sys.argv[1], sys.argv[2], sys.argv[3] == "traced"
aws = Aws(region="us-east-1", endpoint_url="http://bench.invalid", access_key_id="x", secret_access_key="y")
library = RevisionLibrary(aws, cache_path=path, account_id=account)
def rss_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
baseline = rss_kb()
if traced:
    tracemalloc.start()
started = time.perf_counter()
revisions = library.revisions()
middle = time.perf_counter()
containers = library.containers()
done = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
frames = revisions.memory_usage(deep=True).sum() + containers.memory_usage(deep=True).sum()
print(json.dumps({"rows": len(revisions), "containers": len(containers), "revisions_s": middle - started,
                  "containers_s": done - middle, "total_s": done - started, "rss_peak_mb": (peak - baseline) / 1024,
                  "rss_peak_total_mb": peak / 1024, "frames_mb": frames / 2**20,
                  "traced_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20 if traced else None}))
"""


def load_from_cache(revisions: int, families: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cache.sqlite"
        identity = CacheIdentity("123456789012", "us-east-1", "http://bench.invalid")
        started = time.perf_counter()
        build_cache(path, identity, revisions, families)
        built = time.perf_counter() - started

        def load(mode: str) -> dict[str, Any]:
            out = subprocess.run(
                [sys.executable, "-c", LOAD, str(path), identity.account, mode],
                capture_output=True,
                text=True,
                check=True,
            )
            return dict(json.loads(out.stdout))

        figures = load("timed")  # tracemalloc slows allocation down: memory is traced in a run of its own
        figures.update(
            build_s=built, file_mb=path.stat().st_size / 2**20, traced_peak_mb=load("traced")["traced_peak_mb"]
        )
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revisions", type=int, default=5000)
    parser.add_argument("--families", type=int, default=25)
    parser.add_argument("--time-scale", type=float, default=3.0)
    parser.add_argument("--load", type=int, default=100_000)
    parser.add_argument("--load-only", action="store_true", help="Only the load from the cache.")
    args = parser.parse_args()
    if not args.load_only:
        sync_figures(args.revisions, args.families, args.time_scale)
    print(f"\n{args.load:,} revisions loaded from the cache into DataFrames (fresh process):")
    figures = load_from_cache(args.load, args.families)
    print(
        f"  cache built in {figures['build_s']:.1f} s ({figures['file_mb']:.0f} MB on disk)\n"
        f"  revisions(): {figures['rows']:,} rows in {figures['revisions_s']:.2f} s; "
        f"containers(): {figures['containers']:,} rows in {figures['containers_s']:.2f} s; "
        f"total {figures['total_s']:.2f} s\n"
        f"  peak memory: {figures['rss_peak_mb']:.0f} MB RSS over the baseline after imports "
        f"({figures['rss_peak_total_mb']:.0f} MB peak RSS of the whole process), "
        f"{figures['traced_peak_mb']:.0f} MB traced by tracemalloc; the two frames hold {figures['frames_mb']:.0f} MB"
    )


def sync_figures(revisions: int, families: int, scale: float) -> None:
    with Sandbox(seed=None, time_scale=scale, docker=False, registry=False) as sandbox:
        started = time.perf_counter()
        seed(sandbox, revisions, families)
        print(
            f"seeded {revisions} revisions in {families} families in {time.perf_counter() - started:.1f} s; "
            f"time scale {scale:g}: task-definition reads burst {BURST}, then {PER_SECOND * scale:g}/s"
        )
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "cache.sqlite"

            def cold() -> Synced:
                return opskit_sync(sandbox, cache, scale)

            print("\ncold sync (opskit):")
            seconds, calls, throttled, synced = measure(sandbox, cold)
            made = sum(calls[a] for a in READS)
            limit = bound(made, scale)
            row("opskit RevisionLibrary.sync", seconds, calls, throttled, f"  {synced.summary()}")
            print(
                f"    {calls['ListTaskDefinitions']} list pages + {calls['DescribeTaskDefinition']} describes "
                f"(+ {calls['GetCallerIdentity']} GetCallerIdentity for the cache's account); throttle bound "
                f"{limit:.2f} s; wall/bound = {seconds / limit:.3f} ({(seconds / limit - 1) * 100:+.1f}%)"
            )
            cold_seconds = seconds

            ecs = sandbox.client("ecs")
            with sandbox.throttle.suspended():
                for n in range(10):
                    ecs.register_task_definition(**body("service-00", 10_000 + n, sandbox.registry_host))
            print("\nwarm re-sync after 10 new revisions (a new library on the same cache):")
            seconds, calls, throttled, synced = measure(sandbox, cold)
            row("opskit RevisionLibrary.sync", seconds, calls, throttled, f"  {synced.summary()}")
            others = {k: v for k, v in calls.items() if k not in READS}
            print(
                f"    {calls['ListTaskDefinitions']} list pages + {calls['DescribeTaskDefinition']} describes; "
                f"other calls: {others or 'none'}; {cold_seconds / seconds:.0f}x faster than the cold sync"
            )

        print("\nthe same cold fetch done the simple ways (default boto3 client and retries):")
        for label, way in (("one describe after another", naive_serial), ("plain 10-thread pool", naive_pool)):
            seconds, calls, throttled, errors = measure(sandbox, lambda way=way: way(sandbox))
            admitted = sum(calls[a] - throttled[a] for a in READS)
            row(label, seconds, calls, throttled, f"  {errors} errors reached the caller")
            print(
                f"    throttle bound for the {admitted} calls admitted: {bound(admitted, scale):.2f} s; "
                f"wall/bound = {seconds / bound(admitted, scale):.3f}"
            )


if __name__ == "__main__":
    main()

"""How close each bulk command runs to the throttle bound with the adaptive pacer, at sandbox time scales 1, 10, 60.

Run: python benchmarks/pacing_bound.py [--scales 1 10 60]
For each bulk command (revision sync, image inventory sync, service inventory sync, cleanup of revisions, cleanup
of images), on a sandbox per time scale seeded over its API, with default options (opskit's pacer starts at AWS's
published rates and learns what the endpoint allows), it prints the calls the sandbox served, the throttles it
answered, the wall time, the throttle bound and wall/bound; then the same commands with the pacer of before
(fixed at AWS's published rates: ``Pacer(adaptive=False)``, rate_scale=1), on a sandbox of its own at smaller sizes
(it goes at 20 reads a second whatever the endpoint allows, so the sizes of time scale 1).

The bound is the least time the endpoint's buckets allow for the calls made: per throttled category, the calls
beyond its burst over its refill rate (AWS's rate x time scale), the largest of them (the buckets refill each on
its own); "w/b adm" is the same over the calls admitted (throttled ones left out). Commands whose calls are all
of unthrottled actions (ECR's DescribeImages, ListImages, BatchDeleteImage have no published rate) have no bound.
"unthrottled" is the same command with the sandbox's throttling off and the pacer told to go at 10,000x: the
least this endpoint and this machine allow whatever the rates, the floor under wall time at high time scales
(the sandbox serves a few hundred calls a second on two cores; at time scale 60 the task-definition bucket
refills at 1,200 a second).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit.cleanup import CleanupOptions, apply_cleanup, plan_cleanup
from opskit.library import Pacer, RevisionLibrary
from opskit.library.pacing import (
    SERVICE_DEPLOYMENT_READ,
    SERVICE_READ,
    TASK_DEFINITION_MODIFY,
    TASK_DEFINITION_READ,
)
from opskit.sandbox import Sandbox

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
UNPACED = 1e4  # a rate scale no endpoint keeps up with: the pacer never holds a call back
# The category whose learnt rate is shown per command: an action of it (for the sandbox's rate), the pacer's name.
SHOWN = {
    "revision sync": ("DescribeTaskDefinition", TASK_DEFINITION_READ),
    "service inventory sync": ("ListServiceDeployments", SERVICE_DEPLOYMENT_READ),
    "cleanup revisions": ("DeregisterTaskDefinition", TASK_DEFINITION_MODIFY),
    "cleanup images": ("DescribeServices", SERVICE_READ),
}


@dataclass(frozen=True)
class Sizes:
    revisions: int  # in 20 families, the older half of each deregistered
    repositories: int  # for the image inventory sync ...
    images: int  # ... with this many images each
    services: int  # in one cluster, one deployment each
    deregisters: int  # revisions the cleanup deregisters and deletes
    image_repositories: int  # repositories whose one image the cleanup deletes


SIZES = {
    1.0: Sizes(revisions=300, repositories=20, images=10, services=200, deregisters=30, image_repositories=120),
    10.0: Sizes(revisions=2000, repositories=40, images=25, services=700, deregisters=200, image_repositories=250),
    60.0: Sizes(revisions=1000, repositories=40, images=25, services=500, deregisters=300, image_repositories=150),
}
FIXED = SIZES[1.0]  # the fixed pacer's runs, at every scale


@dataclass(frozen=True)
class Row:
    command: str
    scale: float
    pacer: str
    wall: float
    calls: Counter[str]
    throttled: Counter[str]
    bound: float
    bound_admitted: float
    learnt: str = ""
    unthrottled: float | None = None

    def line(self) -> str:
        ratio = f"{self.wall / self.bound:7.3f}" if self.bound > 0 else "      -"
        admitted = f"{self.wall / self.bound_admitted:7.3f}" if self.bound_admitted > 0 else "      -"
        floor = f"{self.unthrottled:8.2f}" if self.unthrottled is not None else "       -"
        return (
            f"  {self.command:<23} {self.scale:>4g} {self.pacer:<9} {sum(self.calls.values()):6d} "
            f"{sum(self.throttled.values()):6d} {self.wall:8.2f} {self.bound:8.2f} {ratio} {admitted} {floor}  "
            f"{self.learnt}"
        )


HEADER = (
    f"  {'command':<23} {'scale':>4} {'pacer':<9} {'calls':>6} {'thrott':>6} {'wall s':>8} {'bound s':>8} "
    f"{'w/bound':>7} {'w/b adm':>7} {'unthrot':>8}  learnt rate (endpoint's)"
)


# -- what the rates allow ------------------------------------------------------------------------------------------
def bound(sandbox: Sandbox, calls: Counter[str], throttled: Counter[str] | None = None) -> float:
    """The least time the sandbox's buckets allow ``calls`` (less ``throttled``): the largest over categories of the
    calls beyond the burst over the refill rate."""
    per_category: Counter[str] = Counter()
    rates = {}
    for action, count in calls.items():
        category = sandbox.throttle.category(action)
        rate = sandbox.throttle.rate(action)
        if category is None or rate is None:
            continue
        per_category[category] += count - (throttled or Counter())[action]
        rates[category] = rate
    scale = sandbox.clock.time_scale
    return max(
        (max(0.0, n - rates[c].burst) / (rates[c].per_second * scale) for c, n in per_category.items()), default=0.0
    )


def learnt(command: str, sandbox: Sandbox, pacer: Pacer | None) -> str:
    if pacer is None or command not in SHOWN:
        return ""
    action, ours = SHOWN[command]
    real = sandbox.throttle.rate(action)
    assert real is not None
    return f"{ours} {pacer.buckets[ours].per_second:.0f}/s ({real.per_second * sandbox.clock.time_scale:g})"


def measure(sandbox: Sandbox, work: Callable[[], Pacer | None]) -> tuple[float, Counter[str], Counter[str], Any]:
    """``work()`` from full buckets: wall seconds, calls and throttles per action, and the pacer it used."""
    sandbox.throttle.refill()
    sandbox.reset_calls()
    started = time.perf_counter()
    pacer = work()
    return time.perf_counter() - started, sandbox.calls, sandbox.throttled, pacer


def unthrottled(sandbox: Sandbox, work: Callable[[], Pacer | None]) -> float:
    with sandbox.throttle.suspended():
        return measure(sandbox, work)[0]


# -- seeding, over the sandbox's API -------------------------------------------------------------------------------
def manifest(marker: str) -> str:
    def digest(text: str) -> str:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    layer = {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100, "digest": digest(marker)}
    config = {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 10, "digest": digest(f"c{marker}")}
    return json.dumps({"schemaVersion": 2, "mediaType": SCHEMA2, "config": config, "layers": [layer]})


def in_parallel(function: Callable[[Any], Any], items: Iterable[Any]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(function, items))


def seed_revisions(sandbox: Sandbox, prefix: str, families: int, per_family: int, deregistered: int) -> list[str]:
    """``per_family`` revisions in each of ``families`` families; the oldest ``deregistered`` of each deregistered."""
    ecs = sandbox.client("ecs")
    names = [f"{prefix}-{i:02d}" for i in range(families)]

    def register(item: tuple[str, int]) -> None:
        family, n = item
        image = f"{sandbox.registry_host}/{family}:{hashlib.sha1(f'{family}{n}'.encode()).hexdigest()[:12]}"
        ecs.register_task_definition(
            family=family, containerDefinitions=[{"name": "app", "image": image, "memory": 64}]
        )

    with sandbox.throttle.suspended():
        for family in names:  # in order per family, so revision numbers follow registration
            in_parallel(register, [(family, n) for n in range(1, per_family + 1)])
        in_parallel(
            lambda ref: ecs.deregister_task_definition(taskDefinition=ref),
            [f"{family}:{n}" for family in names for n in range(1, deregistered + 1)],
        )
    return names


def seed_images(sandbox: Sandbox, prefix: str, repositories: int, images: int) -> list[str]:
    ecr = sandbox.client("ecr")
    names = [f"{prefix}-{i:03d}" for i in range(repositories)]
    with sandbox.throttle.suspended():
        in_parallel(lambda name: ecr.create_repository(repositoryName=name), names)
        in_parallel(
            lambda item: ecr.put_image(
                repositoryName=item[0], imageManifest=manifest(f"{item[0]}-{item[1]}"), imageTag=f"v{item[1]}"
            ),
            [(name, n) for name in names for n in range(images)],
        )
    return names


def seed_services(sandbox: Sandbox, cluster: str, count: int) -> None:
    ecs = sandbox.client("ecs")
    with sandbox.throttle.suspended():
        ecs.create_cluster(clusterName=cluster)
        container = {"name": "app", "image": f"{sandbox.registry_host}/svc:1", "memory": 64}
        arn = ecs.register_task_definition(family=f"{cluster}-svc", containerDefinitions=[container])
        revision = arn["taskDefinition"]["taskDefinitionArn"]
        in_parallel(
            lambda i: ecs.create_service(
                cluster=cluster, serviceName=f"svc-{i:04d}", taskDefinition=revision, desiredCount=0
            ),
            range(count),
        )


# -- the commands --------------------------------------------------------------------------------------------------
def library_sync(sandbox: Sandbox, cache: Path, part: str, pacer: Pacer | None, **options: Any) -> Callable[[], Pacer]:
    def work() -> Pacer:
        library = RevisionLibrary(sandbox.aws(), cache_path=cache, account_id=sandbox.account_id)
        if pacer is not None:
            library.pacer = pacer
        with library:
            library.sync(include=[part], **options)
        return library.pacer

    return work


def cleanup(sandbox: Sandbox, state: Path, options: CleanupOptions, pacer: Callable[[], Pacer]) -> Callable[[], Pacer]:
    """The apply of a plan made beforehand (throttling off: only the apply is measured), in a journal of its own."""
    with (
        sandbox.throttle.suspended(),
        RevisionLibrary(sandbox.aws(), cache_dir=state / "cache", rate_scale=UNPACED) as library,
    ):
        plan = plan_cleanup(library, options, journal_dir=state, now=sandbox.clock.now())
    assert plan.to_deregister or plan.images_to_delete, plan.describe()

    def work() -> Pacer:
        chosen = pacer()
        result = apply_cleanup(plan, sandbox.aws(), journal_dir=state, pacer=chosen)
        assert result.ok, result.describe()
        return chosen

    return work


@dataclass
class Bench:
    sandbox: Sandbox
    tmp: Path
    rows: list[Row]
    runs: int = 0

    def place(self) -> Path:
        self.runs += 1
        path = self.tmp / f"run-{self.runs}"
        path.mkdir(parents=True)
        return path

    def run(self, command: str, label: str, work: Callable[[], Pacer | None], floor: Callable[[], Any] | None) -> None:
        wall, calls, throttled, pacer = measure(self.sandbox, work)
        lowest = unthrottled(self.sandbox, floor) if floor is not None else None
        self.rows.append(
            Row(
                command,
                self.sandbox.clock.time_scale,
                label,
                wall,
                calls,
                throttled,
                bound(self.sandbox, calls),
                bound(self.sandbox, calls, throttled),
                learnt(command, self.sandbox, pacer),
                lowest,
            )
        )
        print(self.rows[-1].line(), flush=True)


def syncs(bench: Bench, sizes: Sizes, label: str, pacer: Callable[[], Pacer]) -> None:
    """The three inventory syncs; with the default pacer, each one's unthrottled floor too."""
    sandbox, adaptive = bench.sandbox, label == "adaptive"
    per_family = sizes.revisions // 20
    seed_revisions(sandbox, "rev", 20, per_family, per_family // 2)
    seed_images(sandbox, "inv", sizes.repositories, sizes.images)
    seed_services(sandbox, "bulk", sizes.services)
    for command, part in (
        ("revision sync", "revisions"),
        ("image inventory sync", "images"),
        ("service inventory sync", "services"),
    ):
        work = library_sync(sandbox, bench.place() / "cache.sqlite", part, pacer())
        floor = (
            library_sync(sandbox, bench.place() / "cache.sqlite", part, Pacer(rate_scale=UNPACED)) if adaptive else None
        )
        bench.run(command, label, work, floor)


def cleanups(bench: Bench, sizes: Sizes, label: str, pacer: Callable[[], Pacer]) -> None:
    """The cleanup of revisions (deregister, then delete 10 per call) and of images (100 per call), each in a world
    of its own; with the default pacer, the same world again unthrottled for the floor."""
    sandbox, adaptive = bench.sandbox, label == "adaptive"
    keep = 2

    def revisions_world(name: str) -> CleanupOptions:
        families = seed_revisions(sandbox, name, 2, sizes.deregisters // 2 + keep, 0)
        return CleanupOptions(
            families=tuple(families), keep=keep, keep_days=0, rollback_depth=1, delete_deregistered=True
        )

    def images_world(name: str) -> CleanupOptions:
        repositories = seed_images(sandbox, name, sizes.image_repositories, 1)
        return CleanupOptions(
            images=True,
            repositories=tuple(repositories),
            keep=10**6,
            keep_days=0,
            untagged_days=0,
            unreferenced_days=0,
        )

    seed_services(sandbox, "live", 1)  # what every action re-reads: a cluster with a service
    for command, world in (("cleanup revisions", revisions_world), ("cleanup images", images_world)):
        work = cleanup(sandbox, bench.place(), world(f"{label[:3]}-{command[8:11]}"), pacer)
        floor = None
        if adaptive:
            floor = cleanup(sandbox, bench.place(), world(f"flo-{command[8:11]}"), lambda: Pacer(rate_scale=UNPACED))
        bench.run(command, label, work, floor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0, 60.0])
    args = parser.parse_args()
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            sizes = SIZES.get(scale, SIZES[10.0])
            print(f"\ntime scale {scale:g}: {sizes}")
            print(HEADER)
            # The default pacer (what the library and apply_cleanup make when given none), then the fixed one.
            for label, pacer in (("adaptive", Pacer), ("fixed", lambda: Pacer(adaptive=False))):
                for phase in (syncs, cleanups):
                    with Sandbox(seed=None, time_scale=scale, docker=False, registry=False) as sandbox:
                        bench = Bench(sandbox, Path(tmp) / f"{scale:g}-{phase.__name__}-{label}", rows)
                        phase(bench, sizes if label == "adaptive" else FIXED, label, pacer)
    summary(rows, time.perf_counter() - started)


def summary(rows: list[Row], seconds: float) -> None:
    """The worst adaptive wall/bound where the throttle is what limits (the bound at least the unthrottled floor),
    and the worst wall/floor where this endpoint itself is slower than its buckets."""
    measured = [(r, r.unthrottled) for r in rows if r.pacer == "adaptive" and r.bound > 0 and r.unthrottled]
    throttle_bound = [r for r, floor in measured if r.bound >= floor]
    endpoint_bound = [(r, floor) for r, floor in measured if r.bound < floor]
    print()
    if throttle_bound:
        worst = max(throttle_bound, key=lambda r: r.wall / r.bound)
        print(
            f"adaptive, where the throttle is the limit (bound >= unthrottled), worst wall/bound: "
            f"{worst.wall / worst.bound:.3f} ({worst.command}, time scale {worst.scale:g}; {len(throttle_bound)} rows)"
        )
    if endpoint_bound:
        row, floor = max(endpoint_bound, key=lambda item: item[0].wall / item[1])
        print(
            f"adaptive, where the endpoint is slower than its buckets (unthrottled > bound), worst wall/unthrottled: "
            f"{row.wall / floor:.3f} ({row.command}, time scale {row.scale:g}; {len(endpoint_bound)} rows)"
        )
    print(f"whole benchmark {seconds:.0f} s")


if __name__ == "__main__":
    main()

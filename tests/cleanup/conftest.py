"""A world to clean up, laid down over the sandbox's API: two families with services, rollback history, a pinned
revision and images; several worlds can share one sandbox (each under its own prefix and cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opskit.cleanup import CleanupOptions, CleanupPlan, plan_cleanup
from opskit.library import RevisionLibrary
from opskit.sandbox import Sandbox
from opskit.sandbox.ecs.taskdefs import DELETE_SECONDS
from tests.library.seeding import manifest

TIME_SCALE = 60
REVISIONS = 14  # per family


@pytest.fixture(autouse=True)
def state_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Journals and library caches under the test's own folder."""
    monkeypatch.setenv("OPSKIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("OPSKIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def quiet() -> Iterator[Sandbox]:
    """An empty sandbox 60x faster than AWS, throttling at AWS's (scaled) rates; tasks run simulated."""
    with Sandbox(seed=None, time_scale=TIME_SCALE, docker=False, registry=False, fault_seed=5) as sb:
        yield sb


@dataclass
class World:
    sandbox: Sandbox
    prefix: str
    revisions: int

    @property
    def cluster(self) -> str:
        return f"{self.prefix}prod"

    def family(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @property
    def families(self) -> tuple[str, str]:
        return (self.family("web"), self.family("api"))

    @property
    def ecs(self) -> Any:
        return self.sandbox.client("ecs")

    def options(self, **changes: Any) -> CleanupOptions:
        """Keep the newest 2, no age rule, 2 rollback targets; deregistered revisions deleted in the same run."""
        values: dict[str, Any] = {
            "families": self.families,
            "keep": 2,
            "keep_days": 0,
            "rollback_depth": 2,
            "delete_deregistered": True,
        }
        values.update(changes)
        return CleanupOptions(**values)

    def plan(self, options: CleanupOptions | None = None, cache: Path | None = None, **kwargs: Any) -> CleanupPlan:
        library = RevisionLibrary(self.sandbox.aws(), cache_dir=cache, rate_scale=self.sandbox.clock.time_scale)
        with library:
            return plan_cleanup(library, options or self.options(), now=self.sandbox.clock.now(), **kwargs)

    def state(self) -> dict[str, str]:
        """family:revision (without the prefix) -> status, for this world's families."""
        out = {}
        for family in self.families:
            for status in ("ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS"):
                pages = self.ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, status=status)
                for page in pages:
                    for arn in page["taskDefinitionArns"]:
                        out[arn.rsplit("/", 1)[-1].removeprefix(self.prefix)] = status
        return out

    def images(self) -> dict[str, set[str]]:
        """repository (without the prefix) -> its tags (untagged images as "-digest...")."""
        ecr = self.sandbox.client("ecr")
        out: dict[str, set[str]] = {}
        for family in self.families:
            details = ecr.describe_images(repositoryName=family)["imageDetails"]
            out[family.removeprefix(self.prefix)] = {
                t for d in details for t in (d.get("imageTags") or [f"-{d['imageDigest'][7:19]}"])
            }
        return out

    def settle(self) -> None:
        self.sandbox.clock.advance(600)  # rollouts play out on the sandbox clock at once

    def deletions_finish(self) -> None:
        """ECS removes a deleted revision a few minutes after DeleteTaskDefinitions, not inside the call (listed as
        DELETE_IN_PROGRESS meanwhile): move the clock past that, for the state a cleanup leaves once ECS is done."""
        self.sandbox.clock.advance(DELETE_SECONDS)


def build_world(sandbox: Sandbox, prefix: str = "", revisions: int = REVISIONS) -> World:
    """Per family: ECR images v1..vN (MUTABLE, plus two left untagged by re-tags) and revisions 1..N using them.

    web: the service went 5 -> 7 -> 9 (all completed), so it runs 9 and can roll back to 7 and 5; revision 3 is
    pinned (opskit:keep). api: its service runs the newest revision. With the world's default options (keep 2,
    rollback depth 2, no age rule) web keeps 3, 5, 7, 9, N-1, N and api keeps N-1, N.
    """
    assert revisions >= 10, "web's service history needs revisions 5, 7 and 9"
    world = World(sandbox, prefix, revisions)
    ecs, ecr = sandbox.client("ecs"), sandbox.client("ecr")
    with sandbox.throttle.suspended():
        ecs.create_cluster(clusterName=world.cluster)
        for family in world.families:
            ecr.create_repository(repositoryName=family)
            for k in range(3):  # each push moves the tag: two images are left untagged
                ecr.put_image(
                    repositoryName=family, imageManifest=manifest(f"{family}-scratch-{k}"), imageTag="scratch"
                )
            for n in range(1, revisions + 1):
                ecr.put_image(repositoryName=family, imageManifest=manifest(f"{family}-v{n}"), imageTag=f"v{n}")
                image = f"{sandbox.registry_host}/{family}:v{n}"
                tags = [{"key": "opskit:keep", "value": "true"}] if family.endswith("web") and n == 3 else []
                ecs.register_task_definition(
                    family=family,
                    containerDefinitions=[{"name": "app", "image": image, "memory": 64}],
                    **({"tags": tags} if tags else {}),
                )
        web, api = world.families
        ecs.create_service(cluster=world.cluster, serviceName="web", taskDefinition=f"{web}:5", desiredCount=1)
        world.settle()
        for n in (7, 9):
            ecs.update_service(cluster=world.cluster, service="web", taskDefinition=f"{web}:{n}")
            world.settle()
        ecs.create_service(
            cluster=world.cluster, serviceName="api", taskDefinition=f"{api}:{revisions}", desiredCount=1
        )
        world.settle()
    sandbox.reset_calls()
    return world


def expected_after(world: World, plan: CleanupPlan) -> dict[str, str]:
    """The state an uninterrupted apply of ``plan`` leaves (nothing moved in between)."""
    out = {}
    for d in plan.revisions:
        name = d.key.removeprefix(world.prefix)
        if d.fate == "keep":
            out[name] = d.status
        elif d.fate == "deregister":
            out[name] = "INACTIVE"
    return out

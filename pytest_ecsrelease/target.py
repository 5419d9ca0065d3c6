"""Where the plugin's checks look: the ``--ecs-*`` options (or their ini names), and the library and snapshot of
that target, built once per pytest process and only when something asks for them.

Everything here goes through opskit: :class:`opskit.aws.Aws` for the connection, the revision library for what
exists, :meth:`opskit.checks.Snapshot.from_library` for the records the checks read.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from opskit.checks import Snapshot, Target

if TYPE_CHECKING:
    from opskit.library import RevisionLibrary
    from opskit.sandbox import Sandbox

SANDBOX_TIME_SCALE = 60.0
POLICIES = ("release", "all", "hardening", "none")

# (option, ini name, kind, help): kind "text", "list" (repeatable) or "flag"
OPTIONS = (
    ("--ecs-region", "ecs_region", "text", "AWS region of the target (default: the AWS environment's)."),
    ("--ecs-profile", "ecs_profile", "text", "AWS profile to use (default: AWS_PROFILE)."),
    ("--ecs-endpoint-url", "ecs_endpoint_url", "text", "AWS endpoint, such as an opskit sandbox's."),
    ("--ecs-cluster", "ecs_cluster", "text", "Only the services of this ECS cluster."),
    ("--ecs-service", "ecs_service", "list", "Only this service, name or cluster/name (repeat for more)."),
    ("--ecs-family", "ecs_family", "list", "Only this task-definition family (repeat for more)."),
    ("--ecr-repository", "ecr_repository", "list", "Only this ECR repository (repeat for more)."),
    ("--ecs-sandbox", "ecs_sandbox", "flag", "Check opskit's embedded sandbox seeded with the demo history."),
)


@dataclass(frozen=True)
class EcsSettings:
    """The target and policy as the command line (first) or the ini file give them."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    cluster: str | None = None
    services: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    repositories: tuple[str, ...] = ()
    sandbox: bool = False
    policy: str = "none"  # release, all, hardening or none (no policy suite collected)

    @classmethod
    def from_config(cls, config: pytest.Config) -> EcsSettings:
        values: dict[str, Any] = {}
        for _, ini, kind, _ in OPTIONS:
            given = config.getoption(ini)
            if kind == "list":
                values[ini] = tuple(given or config.getini(ini) or ())
            elif kind == "flag":
                values[ini] = bool(given) or bool(config.getini(ini))
            else:
                values[ini] = given or config.getini(ini) or None
        policy = config.getoption("ecs_policy") or config.getini("ecs_policy") or "none"
        if policy not in POLICIES:
            raise pytest.UsageError(f"--ecs-policy={policy}: pass release, all or hardening (or none)")
        settings = cls(
            region=values["ecs_region"],
            profile=values["ecs_profile"],
            endpoint_url=values["ecs_endpoint_url"],
            cluster=values["ecs_cluster"],
            services=values["ecs_service"],
            families=values["ecs_family"],
            repositories=values["ecr_repository"],
            sandbox=values["ecs_sandbox"],
            policy=policy,
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Malformed names, an unknown profile or a bad endpoint: a one-line usage error now, not at collection."""
        from opskit.errors import OpskitError

        try:
            self.target  # noqa: B018  # building it checks the names
            if not self.sandbox and (self.profile or self.endpoint_url):
                from opskit.aws import Aws

                Aws(region=self.region, profile=self.profile, endpoint_url=self.endpoint_url)
        except OpskitError as exc:
            raise pytest.UsageError(f"ecsrelease: {exc}") from exc

    @property
    def asked(self) -> bool:
        """Whether any option or ini setting was given: without one the plugin looks at nothing and calls no AWS."""
        return self != EcsSettings()

    @property
    def target(self) -> Target:
        return Target(
            cluster=self.cluster, services=self.services, families=self.families, repositories=self.repositories
        )

    def describe(self) -> str:
        where = (
            "the demo sandbox" if self.sandbox else (self.endpoint_url or f"AWS {self.region or '(default region)'}")
        )
        return f"{where}, {self.target.describe()}"


@dataclass
class EcsTarget:
    """The connection, library and snapshot of one pytest process (each xdist worker has its own)."""

    settings: EcsSettings
    sandbox: Sandbox | None = None
    _library: RevisionLibrary | None = field(default=None, repr=False)
    _snapshot: Snapshot | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def demo_sandbox(self) -> Sandbox:
        """The seeded sandbox ``--ecs-sandbox`` checks, started on first use."""
        if self.sandbox is None:
            from opskit.sandbox import Sandbox

            self.sandbox = Sandbox(seed="demo", time_scale=SANDBOX_TIME_SCALE, docker=False).start()
        return self.sandbox

    @property
    def library(self) -> RevisionLibrary:
        if self._library is None:
            from opskit.aws import Aws
            from opskit.library import RevisionLibrary

            if self.settings.sandbox:
                sandbox = self.demo_sandbox()
                self._library = RevisionLibrary(
                    sandbox.aws(), cache_path=":memory:", rate_scale=SANDBOX_TIME_SCALE, account_id=sandbox.account_id
                )
            else:
                aws = Aws(
                    region=self.settings.region, profile=self.settings.profile, endpoint_url=self.settings.endpoint_url
                )
                # An endpoint is a sandbox or an emulator whose state is gone after the run: keep no cache of it.
                self._library = RevisionLibrary(aws, cache_path=":memory:" if aws.custom_endpoint else None)
        return self._library

    def snapshot(self, *, hardening: bool = False) -> Snapshot:
        """The target's snapshot, synced once; ``hardening`` adds the revisions' security settings to it."""
        with self._lock:
            if self._snapshot is None:
                library = self.library
                # A sandbox's "now" is its own clock, which runs faster than the wall clock.
                now = self.sandbox.clock.now() if self.sandbox is not None else None
                self._snapshot = Snapshot.from_library(library, self.settings.target, now=now)
            if hardening and not self._snapshot.settings:
                self._snapshot = self._snapshot.with_settings(self.library)
            return self._snapshot

    def close(self) -> None:
        if self._library is not None:
            self._library.close()
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None


__all__ = ["OPTIONS", "POLICIES", "EcsSettings", "EcsTarget"]

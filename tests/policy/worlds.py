"""Sandbox states for the policy tests, laid down over the sandbox's AWS API like a team would.

:func:`good_world` satisfies every check (release and hardening): an IMMUTABLE, scanned repository with a
lifecycle policy that expires untagged images only, two releases of ``web`` (each a commit-SHA-tagged image and one
hardened revision) deployed in turn to a ROLLING service with the circuit breaker (its rollback monitor), so
``web:1`` is the rollback target. :data:`BREAKAGES` each change one thing of that world and name the policy items that
must fail then (how the service deploys, too: strategy, bake times, hooks, alarms).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opskit.sandbox import Sandbox
from opskit.sandbox.alb import make_alb

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
SHA1 = hashlib.sha1(b"web-1").hexdigest()[:12]
SHA2 = hashlib.sha1(b"web-2").hexdigest()[:12]
SHA3 = hashlib.sha1(b"web-3").hexdigest()[:12]
UNTAGGED_AFTER_14_DAYS = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "expire untagged images after 14 days",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 14,
            },
            "action": {"type": "expire"},
        }
    ]
}
SECRET_VALUE = "hunter2-do-not-print-me"


def manifest(marker: str) -> str:
    """An image manifest whose digest depends on ``marker`` only."""

    def digest(text: str) -> str:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    layer = {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100, "digest": digest(marker)}
    config = {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 10, "digest": digest("c" + marker)}
    return json.dumps({"schemaVersion": 2, "mediaType": SCHEMA2, "config": config, "layers": [layer]})


# Inner pytest runs (pytester) need neither a cache nor hypothesis, whose plugin imports it (a second) at the end.
INNER = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")


def target_args(sandbox: Sandbox, *more: str) -> list[str]:
    """The plugin's options for checking ``sandbox`` (its credentials come from the environment)."""
    return [*INNER, "--ecs-endpoint-url", sandbox.endpoint_url, "--ecs-region", sandbox.region_name, *more]


def hardened(name: str, image: str, **extra: Any) -> dict[str, Any]:
    """A container definition every hardening check passes."""
    return {
        "name": name,
        "image": image,
        "memory": 64,
        "essential": True,
        "user": "1000:1000",
        "readonlyRootFilesystem": True,
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": f"/ecs/{name}"}},
        "environment": [{"name": "LOG_LEVEL", "value": "info"}],
        **extra,
    }


@dataclass
class World:
    sandbox: Sandbox
    revisions: dict[str, str] = field(default_factory=dict)  # "web:1" -> ARN
    digests: dict[str, str] = field(default_factory=dict)  # tag -> digest

    def __post_init__(self) -> None:
        self.ecs = self.sandbox.client("ecs")
        self.ecr = self.sandbox.client("ecr")

    def image(self, repository: str, tag: str) -> str:
        return f"{self.sandbox.registry_host}/{repository}:{tag}"

    def repository(
        self,
        name: str,
        *,
        mutability: str = "IMMUTABLE",
        filters: tuple[str, ...] = (),
        scan: bool = True,
        lifecycle: dict[str, Any] | None = None,
    ) -> None:
        extra: dict[str, Any] = {}
        if filters:
            extra["imageTagMutabilityExclusionFilters"] = [{"filterType": "WILDCARD", "filter": f} for f in filters]
        self.ecr.create_repository(
            repositoryName=name,
            imageTagMutability=mutability,
            imageScanningConfiguration={"scanOnPush": scan},
            **extra,
        )
        if lifecycle is not None:
            self.lifecycle(name, lifecycle)

    def lifecycle(self, repository: str, policy: dict[str, Any]) -> None:
        self.ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=json.dumps(policy))

    def push(self, repository: str, tag: str, marker: str | None = None) -> str:
        answer = self.ecr.put_image(repositoryName=repository, imageManifest=manifest(marker or tag), imageTag=tag)
        digest = str(answer["image"]["imageId"]["imageDigest"])
        self.digests[tag] = digest
        return digest

    def register(self, family: str, *containers: dict[str, Any], **extra: Any) -> str:
        extra.setdefault("networkMode", "bridge")
        body = self.ecs.register_task_definition(family=family, containerDefinitions=list(containers), **extra)
        definition = body["taskDefinition"]
        label = f"{family}:{definition['revision']}"
        self.revisions[label] = definition["taskDefinitionArn"]
        return label

    def deploy(self, cluster: str, service: str, label: str, *, breaker: bool = True) -> None:
        """Create the service or update it to ``label``, and let the rollout finish."""
        arn = self.revisions[label]
        found = self.ecs.describe_services(cluster=cluster, services=[service])["services"]
        if any(s["status"] == "ACTIVE" for s in found):
            self.ecs.update_service(cluster=cluster, service=service, taskDefinition=arn)
        else:
            self.ecs.create_service(
                cluster=cluster,
                serviceName=service,
                taskDefinition=arn,
                desiredCount=1,
                deploymentConfiguration={"deploymentCircuitBreaker": {"enable": breaker, "rollback": breaker}},
            )
        self.settle(cluster, service, arn)

    def settle(self, cluster: str, service: str, arn: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.sandbox.clock.advance(3600)
            primary = self.ecs.describe_services(cluster=cluster, services=[service])["services"][0]["deployments"][0]
            if primary["taskDefinition"] == arn and primary.get("rolloutState") == "COMPLETED":
                return
            time.sleep(0.05)
        raise AssertionError(f"{service} never settled on {arn}")


def good_world(sandbox: Sandbox) -> World:
    world = World(sandbox)
    world.ecs.create_cluster(clusterName="prod")
    world.repository("web", lifecycle=UNTAGGED_AFTER_14_DAYS)
    for sha in (SHA1, SHA2):
        world.push("web", sha)
        world.register("web", hardened("web", world.image("web", sha)))
    world.deploy("prod", "web", "web:1")
    world.deploy("prod", "web", "web:2")
    return world


# -- one broken thing each: (what changes, the policy items that fail then) ---------------------------------------
def _latest(world: World) -> None:
    world.push("web", "latest", marker="latest-build")
    world.register("web", hardened("web", world.image("web", "latest")))


def _untagged_reference(world: World) -> None:
    world.push("web", "latest", marker="latest-build")  # what a reference without a tag pulls
    world.register("web", hardened("web", f"{world.sandbox.registry_host}/web"))


def _mutable(world: World) -> None:
    world.ecr.put_image_tag_mutability(repositoryName="web", imageTagMutability="MUTABLE")


def _exclusion(filters: tuple[str, ...], mutability: str = "IMMUTABLE_WITH_EXCLUSION") -> Callable[[World], None]:
    def change(world: World) -> None:
        world.ecr.put_image_tag_mutability(
            repositoryName="web",
            imageTagMutability=mutability,
            imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": f} for f in filters],
        )

    return change


def _same_commit_two_images(world: World) -> None:
    world.push("web", SHA2[:7], marker="rebuilt")  # the same commit, a shorter SHA, another image


def _retagged_under_a_pin(world: World) -> None:
    """A mutable repository: a revision pins SHA2's image by digest, then SHA2 is pushed again over another image,
    which leaves the pinned image untagged (and the untagged rule selects it)."""
    world.ecr.put_image_tag_mutability(repositoryName="web", imageTagMutability="MUTABLE")
    pinned = f"{world.image('web', SHA2)}@{world.digests[SHA2]}"
    world.register("web", hardened("web", pinned))
    world.push("web", SHA2, marker="pushed-again")


def _duplicate_revision(world: World) -> None:
    world.register("web", hardened("web", world.image("web", SHA2)))


def _missing_image(world: World) -> None:
    world.register("web", hardened("web", world.image("web", "0123456789ab")))


def _solo_service(world: World) -> None:
    world.deploy("prod", "solo", "web:2")


def _target_deregistered(world: World) -> None:
    world.ecs.deregister_task_definition(taskDefinition=world.revisions["web:1"])


def _target_image_deleted(world: World) -> None:
    world.ecr.batch_delete_image(repositoryName="web", imageIds=[{"imageTag": SHA1}])


def _no_breaker(world: World) -> None:
    world.ecs.update_service(
        cluster="prod",
        service="web",
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": False, "rollback": False}},
    )


def with_alarms(*, rollback: bool, breaker: bool = False) -> Callable[[World], None]:
    """Deployment alarms on prod/web (with or without rollback), and the circuit breaker off unless ``breaker``."""

    def change(world: World) -> None:
        world.ecs.update_service(
            cluster="prod",
            service="web",
            deploymentConfiguration={
                "deploymentCircuitBreaker": {"enable": breaker, "rollback": breaker},
                "alarms": {"alarmNames": ["web-5xx"], "enable": True, "rollback": rollback},
            },
        )

    return change


def _shifting(strategy: str, **config: Any) -> Callable[[World], None]:
    """prod/web moved behind a load balancer to ``strategy`` with ``config`` (its next release deploys that way)."""

    def change(world: World) -> None:
        alb = make_alb(world.sandbox)
        body = {"cluster": "prod", "service": "web", "loadBalancers": [alb.load_balancer()]}
        body["deploymentConfiguration"] = {"strategy": strategy, **config}
        world.sandbox.aws().call_json("ecs", "UpdateService", body)  # raw: an older botocore has no PAUSE hooks

    return change


def lambda_hook(world: World, **extra: Any) -> dict[str, Any]:
    """A lifecycle hook calling a Lambda function after the test traffic shift."""
    where = f"{world.sandbox.region_name}:{world.sandbox.account_id}"
    return {
        "targetType": "AWS_LAMBDA",
        "hookTargetArn": f"arn:aws:lambda:{where}:function:web-smoke-test",
        "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
        **extra,
    }


def with_hooks(world: World) -> None:
    role = f"arn:aws:iam::{world.sandbox.account_id}:role/ecsLifecycleHooks"
    pause = {"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}
    _shifting("BLUE_GREEN", bakeTimeInMinutes=10, lifecycleHooks=[pause, lambda_hook(world, roleArn=role)])(world)


def _version_consistency_disabled(*, pinned: bool) -> Callable[[World], None]:
    """web:3 (a new commit's image, tagged or pinned by digest) with versionConsistency disabled, deployed."""

    def change(world: World) -> None:
        digest = world.push("web", SHA3)
        image = world.image("web", SHA3) + (f"@{digest}" if pinned else "")
        world.register("web", hardened("web", image, versionConsistency="disabled"))
        world.deploy("prod", "web", "web:3")

    return change


def _hand_made(world: World) -> None:
    """web:3 registered by hand and deployed: its image pinned by digest only (in the repository under no commit
    tag), no commit tag on the revision, so no commit explains what the service runs."""
    digest = world.push("web", "handmade")
    uri = world.image("web", "handmade").rsplit(":", 1)[0]
    world.register("web", hardened("web", f"{uri}@{digest}"))
    world.deploy("prod", "web", "web:3")


def _no_scan(world: World) -> None:
    world.ecr.put_image_scanning_configuration(repositoryName="web", imageScanningConfiguration={"scanOnPush": False})


def _no_lifecycle(world: World) -> None:
    world.ecr.delete_lifecycle_policy(repositoryName="web")


def _rule(priority: int, status: str, count_type: str, number: int, **selection: Any) -> dict[str, Any]:
    chosen: dict[str, Any] = {"tagStatus": status, "countType": count_type, "countNumber": number, **selection}
    if count_type != "imageCountMoreThan":
        chosen["countUnit"] = "days"
    return {"rulePriority": priority, "selection": chosen, "action": {"type": "expire"}}


def _lifecycle(*rules: dict[str, Any]) -> Callable[[World], None]:
    return lambda world: world.lifecycle("web", {"rules": list(rules)})


def _bad_revision(world: World) -> None:
    world.push("web", "feedfacecafe")
    container = {
        "name": "web",
        "image": world.image("web", "feedfacecafe"),
        "memory": 64,
        "privileged": True,
        "environment": [{"name": "DB_PASSWORD", "value": SECRET_VALUE}],
    }
    world.register("web", container, networkMode="host", pidMode="host")


HARDENING = [
    f"HARD00{n}-{name}[web:3]"
    for n, name in enumerate(
        (
            "no-secrets-in-environment",
            "not-privileged",
            "read-only-root-filesystem",
            "log-configuration",
            "non-root-user",
            "no-host-network",
            "no-host-pid",
        ),
        start=1,
    )
]

# name -> (change, items that fail with --ecs-policy=all)
BREAKAGES: dict[str, tuple[Callable[[World], None], set[str]]] = {
    "latest-tag": (_latest, {"REL001-image-reference[web:3]"}),
    "untagged-reference": (_untagged_reference, {"REL001-image-reference[web:3]"}),
    "mutable-repository": (_mutable, {"REL002-tag-immutability[web]"}),
    "exclusion-can-match-sha": (_exclusion(("latest", "a*")), {"REL002-tag-immutability[web]"}),
    "exclusion-star": (_exclusion(("*",)), {"REL002-tag-immutability[web]"}),
    "exclusion-never-sha": (_exclusion(("latest", "dev-*", "release-*")), set()),
    "mutable-with-exclusion-some": (
        _exclusion(("release-*",), "MUTABLE_WITH_EXCLUSION"),
        {"REL002-tag-immutability[web]"},
    ),
    "mutable-with-exclusion-all": (_exclusion(("*",), "MUTABLE_WITH_EXCLUSION"), set()),
    "same-commit-two-images": (_same_commit_two_images, {"REL003-one-image-per-commit[web]"}),
    "retagged-under-a-pin": (
        _retagged_under_a_pin,
        {
            "REL002-tag-immutability[web]",
            "REL003-one-image-per-commit[web]",
            "REL010-lifecycle-keeps-active-images[web]",
        },
    ),
    "duplicate-revision": (_duplicate_revision, {"REL004-one-revision-per-image[web]"}),
    "missing-image": (_missing_image, {"REL005-images-exist[web:3]"}),
    "no-rollback-target": (_solo_service, {"REL006-rollback-target[prod/solo]"}),
    "rollback-target-deregistered": (_target_deregistered, {"REL006-rollback-target[prod/web]"}),
    "rollback-target-image-deleted": (
        _target_image_deleted,
        {"REL005-images-exist[web:1]", "REL006-rollback-target[prod/web]"},
    ),
    "no-circuit-breaker": (_no_breaker, {"REL007-circuit-breaker[prod/web]"}),
    "alarms-roll-back-instead": (with_alarms(rollback=True), set()),
    "alarms-without-rollback": (with_alarms(rollback=False), {"REL007-circuit-breaker[prod/web]"}),
    "blue-green-without-bake-time": (_shifting("BLUE_GREEN", bakeTimeInMinutes=0), {"REL011-bake-time[prod/web]"}),
    "blue-green-with-hooks": (with_hooks, set()),
    "linear-without-step-bake-time": (
        _shifting("LINEAR", bakeTimeInMinutes=5, linearConfiguration={"stepPercent": 25.0, "stepBakeTimeInMinutes": 0}),
        {"REL011-bake-time[prod/web]"},
    ),
    "canary-with-default-bake-time": (_shifting("CANARY", canaryConfiguration={"canaryPercent": 10.0}), set()),
    "canary-without-bake-time": (
        _shifting("CANARY", canaryConfiguration={"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 0}),
        {"REL011-bake-time[prod/web]"},
    ),
    "version-consistency-disabled": (
        _version_consistency_disabled(pinned=False),
        {"REL013-version-consistency[prod/web]"},
    ),
    "version-consistency-disabled-pinned": (_version_consistency_disabled(pinned=True), set()),
    "hand-made-revision": (_hand_made, {"REL014-live-revision-explained[prod/web]"}),
    "no-scan-on-push": (_no_scan, {"REL008-scan-on-push[web]"}),
    "no-lifecycle-policy": (_no_lifecycle, {"REL009-lifecycle-policy[web]"}),
    "lifecycle-count-expires-rollback-image": (
        _lifecycle(_rule(1, "tagged", "imageCountMoreThan", 1, tagPatternList=["*"])),
        {"REL010-lifecycle-keeps-active-images[web]"},
    ),
    "lifecycle-age-selects-sha-tags": (
        _lifecycle(_rule(1, "tagged", "sinceImagePushed", 90, tagPrefixList=[SHA1[:1]])),
        {"REL010-lifecycle-keeps-active-images[web]"},
    ),
    "lifecycle-any-after-untagged": (
        _lifecycle(_rule(1, "untagged", "sinceImagePushed", 1), _rule(2, "any", "sinceImagePushed", 365)),
        {"REL010-lifecycle-keeps-active-images[web]"},
    ),
    "lifecycle-protected-by-higher-priority": (
        _lifecycle(
            _rule(1, "tagged", "imageCountMoreThan", 100, tagPatternList=["*"]),
            _rule(2, "any", "sinceImagePushed", 1),
        ),
        set(),
    ),
    "lifecycle-needs-every-pattern": (
        _lifecycle(_rule(1, "tagged", "sinceImagePushed", 1, tagPatternList=["*", "release-*"])),
        set(),
    ),
    "hardening": (_bad_revision, set(HARDENING)),
}

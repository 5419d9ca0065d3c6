"""The demo history: six months of releases of three services, with the mistakes real teams make.

Everything is laid down through the sandbox's own AWS API (and the registry protocol for images), with the clock
moved back six months and forward release by release, so every timestamp, deployment and event is the kind AWS
would have recorded. What it seeds is described by :data:`DEMO`, which tests and the policy suite rely on:

- cluster ``demo`` with services ``web``, ``api`` (circuit breaker with rollback, IMMUTABLE repositories with scan on
  push and a lifecycle policy) and ``worker`` (no circuit breaker; MUTABLE repository without scanning or lifecycle
  policy; its live revision runs ``worker:latest``);
- one commit per release, tagged with its 12-digit SHA, one revision per image;
- ``web`` once released a commit whose image was never pushed: the circuit breaker rolled it back, and the bad
  revision was deregistered afterwards;
- old revisions deregistered (INACTIVE) and the oldest ones deleted, so revision numbers do not start at 1;
- containers hardened (a non-root user, a read-only root filesystem, logs, secrets from SSM): the policy checks'
  hardening group finds nothing, and the release group finds exactly worker's mistakes above.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opskit.sandbox.ecs.runner import SIMULATED_LABEL

if TYPE_CHECKING:
    from opskit.sandbox.sandbox import Sandbox

SHA_LENGTH = 12
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
HISTORY = timedelta(days=180)


@dataclass(frozen=True)
class DemoService:
    name: str
    releases: int  # commits released over the history
    desired: int
    circuit_breaker: bool
    mutability: str
    scan_on_push: bool
    lifecycle_policy: bool
    keep_active: int  # the newest revisions left ACTIVE; older ones are deregistered
    delete_oldest: int  # the oldest revisions deleted outright
    latest_last: bool = False  # the last release registered with the ``latest`` tag
    broken_release: int | None = None  # the release (1-based) whose image was never pushed


@dataclass(frozen=True)
class Demo:
    cluster: str
    services: tuple[DemoService, ...]

    def service(self, name: str) -> DemoService:
        return next(s for s in self.services if s.name == name)


DEMO = Demo(
    cluster="demo",
    services=(
        DemoService("web", 30, 2, True, "IMMUTABLE", True, True, keep_active=10, delete_oldest=5, broken_release=27),
        DemoService("api", 24, 2, True, "IMMUTABLE", True, True, keep_active=8, delete_oldest=0),
        DemoService("worker", 14, 1, False, "MUTABLE", False, False, keep_active=6, delete_oldest=0, latest_last=True),
    ),
)

LIFECYCLE_POLICY = {
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


def commit_sha(service: str, release: int) -> str:
    """A stable, realistic-looking commit SHA for the demo's history."""
    return hashlib.sha1(f"{service}-{release}".encode()).hexdigest()


def seed_demo(sandbox: Sandbox) -> None:
    """Lay down :data:`DEMO` in ``sandbox``; takes a few seconds and is never throttled."""
    region = sandbox.region
    assert region is not None
    runner, region.services.runner = region.services.runner, None  # history is simulated, not run
    try:
        with sandbox.throttle.suspended():
            _History(sandbox).lay_down()
    finally:
        region.services.runner = runner


class _History:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.ecs = sandbox.client("ecs")
        self.ecr = sandbox.client("ecr")
        self.uris: dict[str, str] = {}
        self.pusher = _Pusher(sandbox, self.ecr) if sandbox.registry is not None else None

    def lay_down(self) -> None:
        clock = self.sandbox.clock
        end = clock.now()
        clock.set(end - HISTORY)
        self.ecs.create_cluster(clusterName=DEMO.cluster)
        logs = self.sandbox.client("logs")
        for service in DEMO.services:
            self._repository(service)
            logs.create_log_group(logGroupName=f"/ecs/{service.name}")  # where its revisions' awslogs write
        # Releases of the three services interleave over the months, as they would in one team.
        schedule = sorted(
            (HISTORY * (index / (service.releases + 1)), service.name, index)
            for service in DEMO.services
            for index in range(1, service.releases + 1)
        )
        start = clock.now()
        for offset, name, index in schedule:
            moment = start + offset
            if moment > clock.now():
                clock.advance(moment - clock.now())
            self._release(DEMO.service(name), index)
        clock.advance(timedelta(hours=6))  # the last rollouts finish
        for service in DEMO.services:
            self._retire_old_revisions(service)
        if end > clock.now():
            clock.advance(end - clock.now())

    def _repository(self, service: DemoService) -> None:
        answer = self.ecr.create_repository(
            repositoryName=service.name,
            imageTagMutability=service.mutability,
            imageScanningConfiguration={"scanOnPush": service.scan_on_push},
        )
        self.uris[service.name] = answer["repository"]["repositoryUri"]
        if service.lifecycle_policy:
            self.ecr.put_lifecycle_policy(repositoryName=service.name, lifecyclePolicyText=json.dumps(LIFECYCLE_POLICY))

    def _release(self, service: DemoService, index: int) -> None:
        sha = commit_sha(service.name, index)[:SHA_LENGTH]
        latest = service.latest_last and index == service.releases
        tag = "latest" if latest else sha
        if index != service.broken_release:
            self._push(service.name, tag, sha)
        image = f"{self.uris[service.name]}:{tag}"
        body = self.ecs.register_task_definition(
            family=service.name,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            executionRoleArn=f"arn:aws:iam::{self.sandbox.account_id}:role/ecsTaskExecutionRole",
            containerDefinitions=[
                {
                    "name": service.name,
                    "image": image,
                    "essential": True,
                    # Hardened as Security Hub asks (the checks' hardening group finds nothing here).
                    "user": "1000:1000",
                    "readonlyRootFilesystem": True,
                    "portMappings": [{"containerPort": 8080, "protocol": "tcp"}] if service.name != "worker" else [],
                    "environment": [
                        {"name": "LOG_LEVEL", "value": "info"},
                        {"name": "RELEASE", "value": sha},
                    ],
                    "secrets": [
                        {
                            "name": "DATABASE_URL",
                            "valueFrom": f"arn:aws:ssm:{self.sandbox.region_name}:{self.sandbox.account_id}"
                            f":parameter/{service.name}/database-url",
                        }
                    ],
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": f"/ecs/{service.name}",
                            "awslogs-region": self.sandbox.region_name,
                            "awslogs-stream-prefix": service.name,
                        },
                    },
                }
            ],
            tags=[{"key": "commit", "value": sha}],
        )["taskDefinition"]
        arn = body["taskDefinitionArn"]
        if index == 1:
            self.ecs.create_service(
                cluster=DEMO.cluster,
                serviceName=service.name,
                taskDefinition=arn,
                desiredCount=service.desired,
                launchType="FARGATE",
                networkConfiguration={
                    "awsvpcConfiguration": {"subnets": ["subnet-0demo"], "assignPublicIp": "DISABLED"}
                },
                deploymentConfiguration={
                    "maximumPercent": 200,
                    "minimumHealthyPercent": 100,
                    "deploymentCircuitBreaker": {
                        "enable": service.circuit_breaker,
                        "rollback": service.circuit_breaker,
                    },
                },
            )
        else:
            self.ecs.update_service(cluster=DEMO.cluster, service=service.name, taskDefinition=arn)
        # Each rollout settles (or fails and rolls back) before the next release: an hour of sandbox time.
        self.sandbox.clock.advance(timedelta(hours=1))
        if index == service.broken_release:
            self.ecs.deregister_task_definition(taskDefinition=arn)

    def _retire_old_revisions(self, service: DemoService) -> None:
        arns = [
            arn
            for page in self.ecs.get_paginator("list_task_definitions").paginate(familyPrefix=service.name)
            for arn in page["taskDefinitionArns"]
        ]
        live = {
            d["taskDefinition"]
            for s in self.ecs.describe_services(cluster=DEMO.cluster, services=[service.name])["services"]
            for d in s["deployments"]
        }
        retire = [arn for arn in arns[: max(0, len(arns) - service.keep_active)] if arn not in live]
        for arn in retire:
            self.ecs.deregister_task_definition(taskDefinition=arn)
        doomed = [f"{service.name}:{n}" for n in range(1, service.delete_oldest + 1)]
        for start in range(0, len(doomed), 10):
            self.ecs.delete_task_definitions(taskDefinitions=doomed[start : start + 10])

    def _push(self, repository: str, tag: str, sha: str) -> None:
        config, layer = _image(sha)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "config": {"mediaType": CONFIG_V1, "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": LAYER_GZIP, "size": len(layer), "digest": _digest(layer)}],
        }
        manifest_bytes = json.dumps(manifest, indent=3).encode()
        if self.pusher is not None:
            self.pusher.push(repository, tag, [config, layer], manifest_bytes)
        else:
            self.ecr.put_image(
                repositoryName=repository,
                imageManifest=manifest_bytes.decode(),
                imageManifestMediaType=MANIFEST_V2,
                imageTag=tag,
            )


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _image(sha: str) -> tuple[bytes, bytes]:
    """A tiny image: one layer holding the commit it was built from, and a config that labels it."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = f"{sha}\n".encode()
        info = tarfile.TarInfo("etc/commit")
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))
    uncompressed = raw.getvalue()
    layer = gzip.compress(uncompressed, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Cmd": ["/bin/sh"],
                # The demo's images hold a file, not a program: the sandbox runs their tasks simulated.
                "Labels": {"org.opencontainers.image.revision": sha, SIMULATED_LABEL: "true"},
            },
            "rootfs": {"type": "layers", "diff_ids": [_digest(uncompressed)]},
        }
    ).encode()
    return config, layer


class _Pusher:
    """Pushes an image over the registry protocol through the sandbox's ECR endpoint, as ``docker push`` would."""

    def __init__(self, sandbox: Sandbox, ecr: Any) -> None:
        self.base = sandbox.endpoint_url
        self.ecr = ecr
        self.auth = ""

    def _login(self) -> None:
        # A token lasts 12 h of sandbox time and seeding moves the clock by months: a fresh one per image.
        token = self.ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        self.auth = "Basic " + token

    def _call(self, method: str, url: str, body: bytes | None = None, content_type: str | None = None) -> Any:
        request = urllib.request.Request(url if url.startswith("http") else self.base + url, data=body, method=method)
        request.add_header("Authorization", self.auth)
        if content_type:
            request.add_header("Content-Type", content_type)
        return urllib.request.urlopen(request, timeout=30)

    def push(self, repository: str, tag: str, blobs: list[bytes], manifest: bytes) -> None:
        self._login()
        for blob in blobs:
            # Every demo blob is new (it holds its commit): no existence check, straight to the upload.
            digest = _digest(blob)
            with self._call("POST", f"/v2/{repository}/blobs/uploads/", b"") as answer:
                location = answer.headers["Location"]
            separator = "&" if "?" in location else "?"
            self._call("PUT", f"{location}{separator}digest={digest}", blob, "application/octet-stream").close()
        self._call("PUT", f"/v2/{repository}/manifests/{tag}", manifest, MANIFEST_V2).close()


__all__ = ["DEMO", "SHA_LENGTH", "commit_sha", "seed_demo"]

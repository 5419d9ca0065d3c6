"""The library's records: small immutable facts about what exists in ECS and ECR.

>>> ImageRef.parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:3f2a9c1")
ImageRef(registry='123456789012.dkr.ecr.us-east-1.amazonaws.com', repository='web', tag='3f2a9c1', digest=None)
>>> ImageRef.parse("nginx").tag is None, ImageRef.parse("127.0.0.1:5000/web@sha256:" + "a" * 64).digest[:9]
(True, 'sha256:aa')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

COMMIT_SHA = re.compile(r"^[0-9a-f]{7,40}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageRef:
    """A container image reference as written in a task definition: ``[registry/]repository[:tag][@digest]``."""

    registry: str | None
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, reference: str) -> ImageRef:
        rest, _, digest = reference.partition("@")
        registry = None
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, rest = first, remainder
        name, colon, tag = rest.rpartition(":")
        if not colon or "/" in tag:
            name, tag = rest, ""
        return cls(registry=registry, repository=name, tag=tag or None, digest=digest or None)

    @property
    def commit_sha(self) -> str | None:
        """The commit this image was built from, when its tag is a commit SHA (7 to 40 hex digits)."""
        return self.tag if self.tag and COMMIT_SHA.match(self.tag) else None

    @property
    def uses_latest(self) -> bool:
        return self.tag == "latest" or (self.tag is None and self.digest is None)

    @property
    def pinned(self) -> bool:
        return self.digest is not None and bool(DIGEST.match(self.digest))


@dataclass(frozen=True)
class ContainerRecord:
    name: str
    image: str
    essential: bool
    environment_names: tuple[str, ...]
    secret_names: tuple[str, ...]

    @property
    def ref(self) -> ImageRef:
        return ImageRef.parse(self.image)

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> ContainerRecord:
        return cls(
            name=body["name"],
            image=body.get("image", ""),
            essential=bool(body.get("essential", True)),
            environment_names=tuple(e["name"] for e in body.get("environment", []) if "name" in e),
            secret_names=tuple(s["name"] for s in body.get("secrets", []) if "name" in s),
        )


@dataclass(frozen=True)
class RevisionRecord:
    """One task-definition revision, as DescribeTaskDefinition tells it (values of variables are not kept)."""

    family: str
    revision: int
    arn: str
    status: str
    registered_at: datetime | None
    registered_by: str | None
    deregistered_at: datetime | None
    cpu: str | None
    memory: str | None
    network_mode: str | None
    compatibilities: tuple[str, ...]
    containers: tuple[ContainerRecord, ...]
    tags: tuple[tuple[str, str], ...]

    @classmethod
    def from_api(cls, body: dict[str, Any], tags: list[dict[str, str]] | None = None) -> RevisionRecord:
        return cls(
            family=body["family"],
            revision=int(body["revision"]),
            arn=body["taskDefinitionArn"],
            status=body["status"],
            registered_at=body.get("registeredAt"),
            registered_by=body.get("registeredBy"),
            deregistered_at=body.get("deregisteredAt"),
            cpu=body.get("cpu"),
            memory=body.get("memory"),
            network_mode=body.get("networkMode"),
            compatibilities=tuple(body.get("compatibilities", [])),
            containers=tuple(ContainerRecord.from_api(c) for c in body.get("containerDefinitions", [])),
            tags=tuple((t["key"], t["value"]) for t in tags or []),
        )

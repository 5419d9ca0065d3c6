"""Seeding an empty sandbox over its API, for the library's tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from opskit.library import RevisionLibrary
from opskit.sandbox import Sandbox

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"


def library_of(sandbox: Sandbox, cache_dir: Path, **options: Any) -> RevisionLibrary:
    """A library of ``sandbox`` paced to its time scale, caching under ``cache_dir``."""
    options.setdefault("rate_scale", sandbox.clock.time_scale)
    return RevisionLibrary(sandbox.aws(), cache_dir=cache_dir, **options)


def register(ecs: Any, family: str, image: str = "127.0.0.1:1/app:abc1234", **extra: Any) -> str:
    container = {"name": "app", "image": image, "memory": 64, **extra.pop("container", {})}
    answer = ecs.register_task_definition(family=family, containerDefinitions=[container], **extra)
    return str(answer["taskDefinition"]["taskDefinitionArn"])


def manifest(marker: str) -> str:
    def digest(text: str) -> str:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    layer = {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100, "digest": digest(marker)}
    config = {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 10, "digest": digest(f"c{marker}")}
    return json.dumps({"schemaVersion": 2, "mediaType": SCHEMA2, "config": config, "layers": [layer]})


def list_all(ecs: Any, status: str, **params: Any) -> list[str]:
    return [
        arn
        for page in ecs.get_paginator("list_task_definitions").paginate(status=status, **params)
        for arn in page["taskDefinitionArns"]
    ]

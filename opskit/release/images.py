"""Building, tagging and pushing release images with the Docker SDK (through :mod:`opskit.docker_engine`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.errors import ConfigError, OpskitError
from opskit.gateway import RegistryAuth

Log = Callable[[str], None]


class BuildError(OpskitError):
    """The image did not build; the message ends with the tail of the failing step's output."""


class PushError(OpskitError):
    """The registry refused the image."""


class TagTakenError(PushError):
    """The registry refused the image because its tag already holds another in an immutable repository (ECR:
    ``tag invalid: The image tag ... already exists``): another release of this commit pushed first."""


OCI_REVISION = "org.opencontainers.image.revision"


@dataclass(frozen=True)
class BuildSpec:
    context: Path
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str] = field(default_factory=dict, repr=False)  # they may carry tokens: never shown
    target: str | None = None
    platform: str = "linux/amd64"
    labels: dict[str, str] = field(default_factory=dict)

    def check(self) -> None:
        if not self.context.is_dir():
            raise ConfigError(f"build context {self.context} is not a folder: pass --path with your checkout")
        dockerfile = self.context / self.dockerfile
        if not dockerfile.is_file():
            raise ConfigError(f"no Dockerfile at {dockerfile}: add one, or pass --dockerfile with its path")


def build(docker: Any, spec: BuildSpec, tag: str, log: Log) -> str:
    """Build ``spec`` as ``tag``, streaming the log line by line; returns the image id."""
    from docker.errors import APIError

    spec.check()
    try:
        return _built(docker, spec, tag, log)
    except APIError as exc:  # refused outright, e.g. a Dockerfile that does not parse
        error = " ".join(str(exc.explanation or exc).split())
        raise BuildError(f"docker build failed: {error}; fix the Dockerfile and release again") from exc


def _built(docker: Any, spec: BuildSpec, tag: str, log: Log) -> str:
    tail: deque[str] = deque(maxlen=5)
    image_id = None
    stream = docker.api.build(
        path=str(spec.context),
        dockerfile=spec.dockerfile,
        tag=tag,
        buildargs=spec.build_args or None,
        target=spec.target,
        platform=spec.platform,
        labels=spec.labels,
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
    )
    for chunk in stream:
        for line in str(chunk.get("stream", "")).splitlines():
            if line.strip():
                tail.append(line.strip())
                log(line)
        if "error" in chunk:
            last = " / ".join(list(tail)[-3:])
            error = " ".join(str(chunk["error"]).split())
            raise BuildError(
                f"docker build failed: {error} (last output: {last}); fix the Dockerfile step and release again"
            )
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
    if image_id is None:
        raise BuildError("docker build finished without an image id: run `docker build` by hand to see why")
    return str(image_id)


def local_image(docker: Any, name: str, commit: str, platform: str) -> str | None:
    """The id of the engine's image ``name`` (``repository:tag``) when it can be released as ``commit`` for
    ``platform``, else None: a SHA tag names its commit, so an image a CI step built under the release's name (or an
    earlier release built and could not push) is pushed as it is, without a build; one whose OCI revision label
    names another commit, or built for another platform, is built again."""
    from docker.errors import ImageNotFound

    try:
        found = docker.api.inspect_image(name)
    except ImageNotFound:
        return None
    labels = (found.get("Config") or {}).get("Labels") or {}
    if labels.get(OCI_REVISION, commit) != commit:
        return None
    built_for = "/".join(str(found.get(key) or "") for key in ("Os", "Architecture"))
    if built_for != platform:
        return None
    return str(found["Id"])


def push(docker: Any, repository_uri: str, tag: str, auth: RegistryAuth, log: Log) -> str:
    """Push ``repository_uri:tag``; returns the digest the registry answered."""
    digest = None
    for chunk in docker.api.push(repository_uri, tag=tag, auth_config=auth.docker_config(), stream=True, decode=True):
        if "error" in chunk:
            error = " ".join(str(chunk["error"]).split())
            taken = "tag invalid" in error.lower() and "already exists" in error.lower()
            raise (TagTakenError if taken else PushError)(f"push of {repository_uri}:{tag} refused: {error}")
        status = chunk.get("status")
        if status and chunk.get("id") and status in ("Pushed", "Layer already exists", "Mounted from"):
            log(f"{chunk['id']}: {status}")
        aux = chunk.get("aux") or {}
        if aux.get("Digest"):
            digest = str(aux["Digest"])
    if digest is None:
        raise PushError(f"push of {repository_uri}:{tag} ended without a digest: check the registry and release again")
    return digest

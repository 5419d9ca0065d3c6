"""The Docker engine boundary: the one place that connects to the user's engine (DOCKER_HOST or the default socket)."""

from __future__ import annotations

import os
from typing import Any

from opskit.errors import DockerUnavailableError

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
IN_NOTEBOOK = (
    "no Docker engine answers where this notebook's kernel runs, so the image cannot be built here: start Docker "
    "on that machine (the runbooks' setup script starts one on Debian as root) and plan again; a commit whose "
    "image is already in ECR releases without one"
)


def engine_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def connect(timeout: int = 120) -> Any:
    """A ``docker.DockerClient`` that has answered a ping, or a one-line error that names DOCKER_HOST."""
    import docker
    import docker.errors

    host = engine_host()
    try:
        client = docker.DockerClient(base_url=host, timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        raise DockerUnavailableError(
            f"cannot reach the Docker engine at {host}: start Docker, or set DOCKER_HOST to a running engine",
            in_notebook=IN_NOTEBOOK,
        ) from exc
    return client


def connect_or_problem(timeout: int = 10, work_timeout: int = 120) -> tuple[Any, DockerUnavailableError | None]:
    """(client, None) when an engine answers a ping within ``timeout`` seconds, else (None, why): for a plan, which
    says why an image cannot be built rather than failing, and hands the client on to the build and the push
    (``work_timeout``: a build step may say nothing for a while)."""
    try:
        client = connect(timeout=timeout)
    except DockerUnavailableError as exc:
        return None, exc
    client.api.timeout = work_timeout
    return client, None


def engine_or_none() -> tuple[Any, str | None]:
    """(client, host) when an engine answers, else (None, None): for parts that can do without one."""
    try:
        return connect(), engine_host()
    except DockerUnavailableError:
        return None, None

"""Shared fixtures: a fresh sandbox per test, the real Docker engine, and tiny buildable images.

Tests talk to the sandbox over HTTP with boto3 and to the real Docker engine named by DOCKER_HOST; nothing of
opskit's own is mocked. CI (`.ci/run`) starts the engine and puts the registry binary on the machine.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opskit.sandbox import Sandbox

# pytester runs pytest inside a test (the plugin's own tests, tests/policy); allowed only in this top-level conftest.
pytest_plugins = ["pytester"]

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """An empty sandbox running 60x faster than AWS (a minute of rollout takes a second)."""
    with Sandbox(seed=None, time_scale=60) as sb:
        yield sb


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """The real Docker engine; a test that needs one fails (not skips) without it, as CI always has one."""
    from opskit.docker_engine import connect

    client = connect()
    yield client
    client.close()


def busybox_path() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        if Path(candidate).exists():
            return Path(candidate)
    pytest.fail("a statically linked busybox is needed to build test images: apt-get install busybox-static")


def make_context(directory: Path, *, cmd: str = "sleep 3600", extra: str = "", marker: str = "") -> Path:
    """A build context whose Dockerfile needs no base image (no registry is reachable): busybox FROM scratch.

    ``marker`` changes the image's content (and so its digest) without changing what it does.
    """
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(busybox_path(), directory / "busybox")
    (directory / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        f"RUN echo '{marker}' > /marker\n"
        f"{extra}"
        f'CMD ["/bin/sh", "-c", "{cmd}"]\n'
    )
    return directory


@pytest.fixture
def build_context(tmp_path: Path) -> Path:
    return make_context(tmp_path / "context")

"""Fixtures for the revision library: the demo sandbox (read-only, shared), a library synced from it, and helpers
that seed an empty sandbox over its API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit.library import RevisionLibrary
from opskit.sandbox import Sandbox


@pytest.fixture(scope="session")
def demo() -> Iterator[Sandbox]:
    """The demo history (six months of web/api/worker releases); tests only read it."""
    with Sandbox(seed="demo", time_scale=60, docker=False) as sb:
        yield sb


@pytest.fixture(scope="session")
def demo_library(demo: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RevisionLibrary]:
    """A library of the demo sandbox, synced once (every part)."""
    library = RevisionLibrary(demo.aws(), cache_dir=tmp_path_factory.mktemp("demo-cache"), rate_scale=60)
    library.sync()
    yield library
    library.close()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"

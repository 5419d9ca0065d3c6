"""Worlds for the reliability scenarios: the release world (tests/release) and the cleanup world (tests/cleanup),
each under a test's own state folder so journals and caches never leak between tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opskit.sandbox import Sandbox
from tests.cleanup.conftest import World as CleanupWorld
from tests.cleanup.conftest import build_world
from tests.release.conftest import World as ReleaseWorld
from tests.release.conftest import build_release_world


@pytest.fixture(autouse=True)
def state_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Journals and library caches under the test's own folder."""
    monkeypatch.setenv("OPSKIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("OPSKIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def release_world(sandbox: Sandbox, docker_client: Any, tmp_path: Path) -> ReleaseWorld:
    """Cluster prod, service web (circuit breaker on) on an IMMUTABLE repository web, and a git checkout."""
    return build_release_world(sandbox, docker_client, tmp_path)


@pytest.fixture
def quiet() -> Any:
    """An empty sandbox 60x faster than AWS, throttling at AWS's (scaled) rates; tasks run simulated."""
    with Sandbox(seed=None, time_scale=60, docker=False, registry=False, fault_seed=5) as sb:
        yield sb


@pytest.fixture
def cleanup_world(quiet: Sandbox) -> CleanupWorld:
    """Two families (web, api) of 14 revisions with services, rollback history, a pinned revision and images."""
    return build_world(quiet)

"""Worlds for the reliability scenarios: the release world (tests/release) and the cleanup world (tests/cleanup),
each under a test's own state folder so journals and caches never leak between tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opskit.sandbox import Sandbox
from tests.cleanup.conftest import World as CleanupWorld
from tests.cleanup.conftest import build_world, quiet, state_dirs  # noqa: F401  (quiet, state_dirs: fixtures)
from tests.release.conftest import World as ReleaseWorld
from tests.release.conftest import build_release_world


@pytest.fixture
def release_world(sandbox: Sandbox, docker_client: Any, tmp_path: Path) -> ReleaseWorld:
    """Cluster prod, service web (circuit breaker on) on an IMMUTABLE repository web, and a git checkout."""
    return build_release_world(sandbox, docker_client, tmp_path)


@pytest.fixture
def cleanup_world(quiet: Sandbox) -> CleanupWorld:  # noqa: F811
    """Two families (web, api) of 14 revisions with services, rollback history, a pinned revision and images."""
    return build_world(quiet)

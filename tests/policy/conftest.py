"""Fixtures of the policy tests: sandbox states built to keep or break each rule (:mod:`.worlds`), the demo
sandbox, and the environment that points an inner pytest run (pytester) or ``opskit check`` at a sandbox."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest

from opskit.checks import Snapshot
from opskit.library import RevisionLibrary
from opskit.sandbox import Sandbox

from .worlds import World, good_world


@pytest.fixture(scope="session", autouse=True)
def imported_once() -> None:
    """pytester puts ``sys.modules`` back after each test, so what the first world, sync or inner run imports lazily
    (botocore's pieces, opskit's library and plugin modules) would be imported again in every test: do it all once,
    before any test takes its snapshot of the modules."""
    for module in (
        "opskit.cli.check",
        "opskit.cli.library_view",
        "pytest_ecsrelease.policy",
        "pytest_ecsrelease.suite",
    ):
        importlib.import_module(module)

    with Sandbox(seed=None, time_scale=60, docker=False, registry=False) as sb:
        good_world(sb)
        Snapshot.from_library(RevisionLibrary(sb.aws(), cache_path=":memory:"), hardening=True)


@pytest.fixture
def quiet() -> Iterator[Sandbox]:
    """An empty sandbox without registry or Docker: tasks run simulated, ECR's model holds the images."""
    with Sandbox(seed=None, time_scale=60, docker=False, registry=False) as sb:
        yield sb


@pytest.fixture
def world(quiet: Sandbox) -> World:
    """Every check passes here; tests break one thing (:data:`.worlds.BREAKAGES`)."""
    return good_world(quiet)


@pytest.fixture
def aws_env(quiet: Sandbox, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The sandbox's environment (endpoint, region, credentials) for code that reads the usual AWS variables."""
    for name, value in quiet.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return dict(quiet.env)


@pytest.fixture(scope="session")
def demo() -> Iterator[Sandbox]:
    """The demo history, read only."""
    with Sandbox(seed="demo", time_scale=60, docker=False) as sb:
        yield sb


@pytest.fixture(scope="session")
def demo_snapshot(demo: Sandbox) -> Snapshot:
    library = RevisionLibrary(demo.aws(), cache_path=":memory:", rate_scale=60)
    return Snapshot.from_library(library, hardening=True, now=demo.clock.now())

"""Fixtures for the widgets: the demo sandbox, the demo app to release, and what the notebook tests need (the
runbooks folder, a Jupyter kernel, Debian's chromium).

Widgets are driven headless: set a value, ``.click()`` a button, ``.wait()`` for the panel's background work, then
read what the panel shows (its views keep the frame or the text they show next to the HTML).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit.sandbox import Sandbox
from opskit.widgets import session

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "opskit" / "runbooks"  # the runbooks, package data of opskit
CHROMIUM = "/usr/bin/chromium"
WAIT = 90.0  # seconds any background work may take before a test gives up


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Journals of releases and cleanups go to the test's folder, not the user's state folder."""
    folder = tmp_path / "state"
    monkeypatch.setenv("OPSKIT_STATE_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def demo() -> Iterator[Sandbox]:
    """The demo history (web, api, worker in cluster demo), with the registry and the Docker engine when there;
    the tests of one module may change it (release, roll back, clean up)."""
    with Sandbox(seed="demo", time_scale=60) as sb:
        yield sb


@pytest.fixture(scope="session")
def seeded() -> Iterator[Sandbox]:
    """The demo history for tests that only read it (one per test process)."""
    with Sandbox(seed="demo", time_scale=60, docker=False) as sb:
        yield sb


@pytest.fixture(scope="module")
def demo_app() -> Path:
    """A git checkout of an app that builds FROM scratch (what the release runbook releases on the sandbox)."""
    return session.demo_app()


def chromium() -> str:
    """Debian's chromium; CI installs it (scripts/test), so its absence fails rather than skips."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail("the browser tests need Debian's chromium: apt-get install chromium (scripts/test does)")
    return CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))


def kernel_env() -> dict[str, str]:
    """The environment notebook kernels inherit: ours, without a sandbox to join unless a test says so."""
    env = dict(os.environ)
    env.pop(session.SANDBOX_ENDPOINT_ENV, None)
    return env


def stop_runbooks(process: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM an ``opskit runbooks`` process, as Ctrl-C's twin: it must stop cleanly within a minute."""
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    assert code == 0, log.read_text()[-2000:]
    assert "opskit runbooks: stopped" in log.read_text()

"""Shared fixtures: a fresh sandbox per test, the real Docker engine, and tiny buildable images.

Tests talk to the sandbox over HTTP with boto3 and to the real Docker engine named by DOCKER_HOST; nothing of
opskit's own is mocked. CI (`.ci/run`) starts the engine and puts the registry binary on the machine.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opskit.sandbox import SECRET_ACCESS_KEY, Sandbox, issued_secrets

# pytester runs pytest inside a test (the plugin's own tests, tests/policy); allowed only in this top-level conftest.
pytest_plugins = ["pytester"]

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
CANARY_ENV = "OPSKIT_TEST_CANARY"
SCANNED_LOGGERS = ("opskit", "pytest_ecsrelease")
_canary = os.environ.get(CANARY_ENV) or "canary" + secrets.token_hex(8)


# -- no secret in anything a test shows ------------------------------------------------------------------------------
# Secret values tests seed (environment variables of task definitions, passwords) contain the run's canary, and the
# sandboxes of a test process record every credential they hand out (opskit.sandbox.issued_secrets). A test whose
# captured output, log, failure text or JUnit properties shows one of them fails, with the value redacted. opskit's
# own loggers are captured at DEBUG for that; botocore's DEBUG wire trace is not (opskit never turns it on).
def pytest_configure(config: pytest.Config) -> None:
    global _canary
    # Set once by the first pytest process; xdist workers and subprocesses inherit it.
    _canary = os.environ.setdefault(CANARY_ENV, "canary" + secrets.token_hex(8))
    for name in SCANNED_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)


def canary(label: str) -> str:
    """A secret value to seed (an environment variable's, a password): nothing the test suite shows may hold it."""
    return f"{_canary}-{label}"


def known_secrets() -> tuple[str, ...]:
    """The run's canary, the sandbox's secret access key and every registry password or ECR authorization token a
    sandbox of this process issued."""
    return (_canary, *issued_secrets())


def secrets_in(text: str, values: Iterable[str] | None = None) -> list[str]:
    """Which of ``values`` (default: :func:`known_secrets`) ``text`` shows, described without showing them."""
    found = [value for value in (known_secrets() if values is None else values) if value and value in text]
    return [_kind(value) for value in found]


def redact(text: str, values: Iterable[str]) -> str:
    for value in values:
        text = text.replace(value, "<secret>")
    return text


def _kind(value: str) -> str:
    if value.startswith(_canary):
        return "a seeded secret value (the run's canary)"
    if value == SECRET_ACCESS_KEY:
        return "the sandbox's secret access key"
    return "a registry password or ECR authorization token"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    shown = {f"captured {name}": text for name, text in report.sections}
    shown["failure text"] = report.longreprtext
    shown["JUnit properties"] = repr(report.user_properties)
    values = [value for value in known_secrets() if any(value in text for text in shown.values())]
    if not values:
        return
    where = sorted(name for name, text in shown.items() if any(value in text for value in values))
    kinds = sorted({_kind(value) for value in values})
    report.sections = [(name, redact(text, values)) for name, text in report.sections]
    report.user_properties = [(name, redact(str(value), values)) for name, value in report.user_properties]
    message = f"{item.nodeid} ({call.when}) shows {' and '.join(kinds)} in: {', '.join(where)}"
    earlier = redact(report.longreprtext, values) if report.failed else ""
    report.outcome = "failed"
    report.longrepr = f"{earlier}\n\n{message}" if earlier else message


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Iterator[None]:
    """A JUnit XML report of the run (``--junitxml``, written by now) must hold no known secret either."""
    yield
    path = session.config.option.xmlpath if hasattr(session.config.option, "xmlpath") else None
    if not path or not Path(path).is_file() or hasattr(session.config, "workerinput"):
        return
    found = secrets_in(Path(path).read_text(encoding="utf-8", errors="replace"))
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"the JUnit report {path} shows {' and '.join(sorted(set(found)))}"
        if reporter is not None:
            reporter.write_line(f"ERROR: {message}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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

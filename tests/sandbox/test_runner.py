"""The container runner on the real Docker engine (DOCKER_HOST), with images built locally FROM scratch.

The runner pulls only from loopback registries; these images exist only in the engine's cache, which is
where the runner takes them from (as the ECS agent does when a pull fails and the image is cached).
"""

from __future__ import annotations

import os
import queue
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opskit.sandbox import Sandbox
from opskit.sandbox.ecs.awslogs import CloudWatchLogs
from opskit.sandbox.ecs.runner import LABEL_SANDBOX, LABEL_TASK, ContainerRunner, ContainerSpec, Report
from tests.conftest import make_context
from tests.sandbox.test_services import wait_for

pytestmark = pytest.mark.docker

SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def images(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    built = {}
    for name, cmd in (("sleeper", "sleep 3600"), ("crasher", "exit 3")):
        tag = f"opskit-test/runner:{name}-{os.getpid()}"  # xdist workers share the engine
        docker_client.images.build(path=str(make_context(tmp_path_factory.mktemp(name), cmd=cmd)), tag=tag, rm=True)
        built[name] = tag
    yield built
    for tag in built.values():
        docker_client.images.remove(tag, force=True, noprune=True)


class Reports:
    """Collects a runner's reports, per task."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Report] = queue.Queue()

    def __call__(self, report: Report) -> None:
        self.queue.put(report)

    def next(self, kind: str, timeout: float = 20.0) -> Report:
        while True:
            report = self.queue.get(timeout=timeout)
            if report.kind == kind:
                return report
            if report.kind in ("pull-failed", "start-failed") and kind not in ("pull-failed", "start-failed"):
                raise AssertionError(f"expected {kind}, got {report}")


@pytest.fixture
def runner(docker_client: Any) -> Iterator[ContainerRunner]:
    runner = ContainerRunner(docker_client, sandbox_id=f"test-{uuid.uuid4().hex[:8]}")
    yield runner
    runner.close()


def ours(docker_client: Any, runner: ContainerRunner) -> list[Any]:
    return list(
        docker_client.containers.list(all=True, sparse=True, filters={"label": f"{LABEL_SANDBOX}={runner.sandbox_id}"})
    )


def test_an_essential_container_that_exits_is_reported_with_its_code(
    docker_client: Any, runner: ContainerRunner, images: dict[str, str]
) -> None:
    reports, task = Reports(), uuid.uuid4().hex
    runner.run(task, [ContainerSpec(name="app", image=images["crasher"])], reports)
    assert reports.next("pulled").task_id == task
    started = reports.next("started")
    exited = reports.next("exited")
    assert (exited.container, exited.exit_code) == ("app", 3)

    container = docker_client.containers.get(started.runtime_ids["app"])
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"
    assert container.labels[LABEL_SANDBOX] == runner.sandbox_id and container.labels[LABEL_TASK] == task
    runner.stop(task)
    runner.close()
    assert ours(docker_client, runner) == []


def test_command_and_environment_come_from_the_container_definition(
    runner: ContainerRunner, images: dict[str, str]
) -> None:
    reports = Reports()
    spec = ContainerSpec(
        name="app", image=images["sleeper"], command=["sh", "-c", "exit $CODE"], environment={"CODE": "7"}
    )
    runner.run(uuid.uuid4().hex, [spec], reports)
    assert reports.next("exited").exit_code == 7


def test_docker_health_checks_are_reported(runner: ContainerRunner, images: dict[str, str]) -> None:
    reports = Reports()
    check = {"interval": SECOND // 5, "timeout": 5 * SECOND, "retries": 1, "start_period": 0}
    healthy = ContainerSpec(name="ok", image=images["sleeper"], healthcheck={"test": ["CMD-SHELL", "true"], **check})
    sick = ContainerSpec(name="sick", image=images["sleeper"], healthcheck={"test": ["CMD-SHELL", "exit 1"], **check})
    runner.run("a" * 32, [healthy], reports)
    report = reports.next("health")
    assert (report.container, report.health) == ("ok", "healthy")
    runner.run("b" * 32, [sick], reports)
    report = reports.next("health")
    assert (report.task_id, report.health) == ("b" * 32, "unhealthy")


def test_stop_removes_the_containers_and_reports_their_exit(
    docker_client: Any, runner: ContainerRunner, images: dict[str, str]
) -> None:
    reports, task = Reports(), uuid.uuid4().hex
    specs = [ContainerSpec(name=name, image=images["sleeper"]) for name in ("a", "b")]
    runner.run(task, specs, reports)
    assert set(reports.next("started").runtime_ids) == {"a", "b"}
    runner.stop(task, timeout=0)
    codes = {reports.next("exited").exit_code, reports.next("exited").exit_code}
    assert codes == {137}
    deadline = time.monotonic() + 10
    while ours(docker_client, runner) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ours(docker_client, runner) == []


def test_images_that_cannot_be_had_are_pull_failures(runner: ContainerRunner, tmp_path: Path) -> None:
    reports = Reports()
    runner.run("c" * 32, [ContainerSpec(name="app", image="opskit-test/runner:never-built")], reports)
    failed = reports.next("pull-failed")
    assert failed.container == "app" and "opskit-test/runner" in (failed.message or "")
    runner.run("d" * 32, [ContainerSpec(name="app", image="127.0.0.1:9/nothing:here")], reports)
    failed = reports.next("pull-failed")
    assert (failed.message or "").startswith("Error response from daemon")


def test_closing_puts_the_output_read_and_not_yet_put(docker_client: Any, images: dict[str, str]) -> None:
    """The awslogs driver puts what it read every 5 sandbox seconds: on a clock 100 times slower than wall time
    (500 wall seconds), only the runner's close can put the line."""
    with Sandbox(seed=None, time_scale=0.01, docker=False, registry=False) as sandbox:
        logs = sandbox.client("logs")
        logs.create_log_group(logGroupName="/ecs/closing")
        runner = ContainerRunner(
            docker_client,
            sandbox_id=f"test-{uuid.uuid4().hex[:8]}",
            logs=CloudWatchLogs(sandbox.account_id, sandbox.region_name, sandbox.clock),
        )
        reports, task = Reports(), uuid.uuid4().hex
        configuration = {
            "logDriver": "awslogs",
            "options": {"awslogs-group": "/ecs/closing", "awslogs-stream-prefix": "web"},
        }
        spec = ContainerSpec(
            name="app",
            image=images["sleeper"],
            command=["sh", "-c", "echo hello; sleep 3600"],
            log_configuration=configuration,
        )
        try:
            runner.run(task, [spec], reports)
            container = docker_client.containers.get(reports.next("started").runtime_ids["app"])
            wait_for(lambda: b"hello" in container.logs())
            stream = f"web/app/{task}"  # in the sandbox's region: the configuration names none
            assert logs.get_log_events(logGroupName="/ecs/closing", logStreamName=stream)["events"] == []
        finally:
            runner.close()
        events = logs.get_log_events(logGroupName="/ecs/closing", logStreamName=stream)["events"]
        assert [e["message"] for e in events] == ["hello"]

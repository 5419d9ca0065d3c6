"""Tasks as ECS runs them, simulated on the sandbox clock: PROVISIONING -> PENDING -> RUNNING -> STOPPED.

The event queue of the sandbox's discrete-event simulation lives here too. Every transition is an event due
at a sandbox time; :meth:`TaskLifecycle.run_due` processes every event due by now, in order, stamping each
with its own due time, so one ``clock.advance(3600)`` plays out an hour with the timestamps it would have
had. Where a Docker engine runs the containers (:mod:`opskit.sandbox.ecs.runner`), its reports (pulled, started,
exited, unhealthy) arrive as events due when they arrive, so a task is RUNNING only once its containers
really started.

The service scheduler (:mod:`opskit.sandbox.ecs.scheduler`) builds on this: it decides which tasks to launch and
stop, and hears back through :meth:`~TaskLifecycle.settle`, :meth:`~TaskLifecycle.poke` and
:meth:`~TaskLifecycle.count_failure`.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import threading
import uuid
from collections.abc import Callable
from typing import Any

from opskit.sandbox.clock import SandboxClock, from_epoch
from opskit.sandbox.ecs.records import (
    DEACTIVATING,
    PENDING,
    PROVISIONING,
    RUNNING,
    STOPPED,
    Container,
    Deployment,
    Service,
    Task,
)
from opskit.sandbox.ecs.runner import ContainerRunner, ContainerSpec, Report

# Sandbox seconds (AWS-like durations; time_scale compresses them).
PROVISIONING_SECONDS = 8.0
PULL_SECONDS = 12.0
PULL_FAILURE_SECONDS = 20.0  # ECS retries a pull several times before CannotPullContainerError
START_SECONDS = 4.0
STOP_SECONDS = 15.0  # SIGTERM, the container exits, the task is deprovisioned
EXIT_STOP_SECONDS = 3.0  # an essential container exited: the rest of the task goes down
DEFAULT_HEALTH_INTERVAL = 30.0
STOPPED_RETENTION = 3600.0  # stopped tasks stay describable for about an hour
MIN_HEALTH_INTERVAL_WALL = 0.2


class TaskLifecycle:
    """The event queue and every task's transitions; callers hold :attr:`lock` (:meth:`report` takes it)."""

    def __init__(
        self,
        *,
        clock: SandboxClock,
        region: str,
        account_id: str,
        digest_of: Callable[[str], str | None],
        runner: ContainerRunner | None,
    ) -> None:
        self.clock = clock
        self.region = region
        self.account_id = account_id
        self.digest_of = digest_of  # what an image reference names now (None: it cannot be pulled)
        self.runner = runner
        self.lock = threading.RLock()
        self.tasks: dict[str, Task] = {}  # task id
        self.closed = False
        self._queue: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = itertools.count()
        self._last_now = clock.timestamp()

    # -- what the service scheduler provides -----------------------------------------------------------------
    def settle(self, service: Service, at: float) -> None:
        raise NotImplementedError

    def poke(self, service: Service, at: float, delay: float = 2.0) -> None:
        raise NotImplementedError

    def count_failure(self, task: Task, at: float) -> None:
        raise NotImplementedError

    def task_healthy(self, task: Task, at: float) -> None:
        raise NotImplementedError

    def address(self) -> str:
        """A private IP address for a new task."""
        raise NotImplementedError

    def task_running(self, task: Task, at: float) -> None:
        """A task reached RUNNING (a load balancer may register it)."""

    def task_stopping(self, task: Task) -> None:
        """A running task was told to stop (its target drains)."""

    def task_stopped(self, task: Task) -> None:
        """A task is STOPPED (its target goes)."""

    def shifted(self, seconds: float) -> None:
        """The clock was set back by ``-seconds``: move any pending instants kept outside the queue."""

    # -- the event queue -------------------------------------------------------------------------------------
    def schedule(self, due: float, action: Callable[[float], None]) -> None:
        heapq.heappush(self._queue, (due, next(self._seq), action))

    def run_due(self) -> None:
        now = self.clock.timestamp()
        if now < self._last_now:  # clock.set() went back in time: what was pending stays as far ahead
            shift = now - self._last_now
            self._queue = [(due + shift, seq, action) for due, seq, action in self._queue]
            heapq.heapify(self._queue)
            self.shifted(shift)
        self._last_now = now
        while self._queue and self._queue[0][0] <= now:
            due, _, action = heapq.heappop(self._queue)
            action(due)

    def report(self, report: Report) -> None:
        """From the container runner's threads: handled as an event due now."""
        with self.lock:
            if not self.closed:
                self.schedule(self.clock.timestamp(), lambda at: self._on_report(report, at))

    # -- one task's life -------------------------------------------------------------------------------------
    def launch(self, deployment: Deployment, at: float) -> Task:
        service, when = deployment.service, from_epoch(at)
        task_id = uuid.uuid4().hex
        prefix = f"arn:aws:ecs:{self.region}:{self.account_id}"
        containers = [
            Container(
                name=str(c["name"]),
                image=str(c["image"]),
                pull=deployment.pull_reference(c),
                arn=f"{prefix}:container/{service.cluster_name}/{task_id}/{uuid.uuid4()}",
                essential=bool(c.get("essential", True)),
                health_checked=bool(c.get("healthCheck")),
                definition=c,
            )
            for c in deployment.revision.body.get("containerDefinitions", [])
        ]
        task = Task(
            id=task_id,
            arn=f"{prefix}:task/{service.cluster_name}/{task_id}",
            service=service,
            deployment=deployment,
            revision=deployment.revision,
            containers=containers,
            created_at=when,
            private_ip=self.address(),
        )
        deployment.tasks.append(task)
        deployment.updated_at = when
        self.tasks[task_id] = task
        self.schedule(at + PROVISIONING_SECONDS, lambda at: self._provisioned(task, at))
        return task

    def _provisioned(self, task: Task, at: float) -> None:
        if task.last_status != PROVISIONING or not task.live:
            return
        self._touch(task, at, PENDING)
        task.pull_started_at = from_epoch(at)
        missing = next((c for c in task.containers if self.digest_of(c.pull) is None), None)
        if missing is not None:
            image = missing.image
            reason = (
                "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
                f"failed to resolve ref {image}: {image}: not found"
            )
            self.schedule(at + PULL_FAILURE_SECONDS, lambda at: self._fail_to_start(task, at, reason, missing))
        elif self.runner is not None:
            task.in_docker = True
            self.runner.run(task.id, [self._spec(c) for c in task.containers], self.report)
        else:
            self.schedule(at + PULL_SECONDS, lambda at: self._pulled(task, at, {}))

    def _pulled(self, task: Task, at: float, digests: dict[str, str]) -> None:
        if task.last_status != PENDING or not task.live or task.pull_stopped_at is not None:
            return
        task.pull_stopped_at = from_epoch(at)
        resolved = task.deployment.digests  # what a simulated pull got: the digest the deployment pinned
        for container in task.containers:
            container.image_digest = (
                digests.get(container.name) or resolved.get(container.name) or container.image_digest
            )
        if not task.in_docker:
            self.schedule(at + START_SECONDS, lambda at: self._started(task, at, {}))

    def _started(self, task: Task, at: float, runtime_ids: dict[str, str]) -> None:
        if task.last_status != PENDING or not task.live:
            return
        if task.pull_stopped_at is None:
            task.pull_stopped_at = from_epoch(at)
        self._touch(task, at, RUNNING)
        task.started_at = from_epoch(at)
        for container in task.containers:
            if container.last_status != STOPPED:
                container.last_status = RUNNING
            container.runtime_id = runtime_ids.get(container.name, container.runtime_id)
            if container.health_checked and not task.in_docker:
                check = container.definition["healthCheck"]
                due = at + float(check.get("interval", DEFAULT_HEALTH_INTERVAL))
                self.schedule(due, functools.partial(self._health, task, container.name, "HEALTHY"))
        if task.healthy:
            self.task_healthy(task, at)
        self.task_running(task, at)
        self.settle(task.service, at)
        self.poke(task.service, at)

    def _health(self, task: Task, name: str, health: str, at: float) -> None:
        container = next((c for c in task.containers if c.name == name), None)
        if container is None or task.last_status == STOPPED:
            return
        container.health_status = health
        checked = [c.health_status for c in task.containers if c.essential and c.health_checked]
        before = task.health_status
        task.health_status = (
            "UNHEALTHY"
            if "UNHEALTHY" in checked
            else "HEALTHY"
            if checked and set(checked) == {"HEALTHY"}
            else "UNKNOWN"
        )
        if task.health_status == before:
            return
        task.version += 1
        if task.health_status == "UNHEALTHY" and task.live and task.last_status == RUNNING:
            task.service.event(from_epoch(at), f"(task {task.id}) failed container health checks.")
            self.stop(task, at, "Task failed container health checks")
            self.count_failure(task, at)
            self.poke(task.service, at)
        elif task.health_status == "HEALTHY":
            self.task_healthy(task, at)
            self.settle(task.service, at)
            self.poke(task.service, at)

    def _fail_to_start(self, task: Task, at: float, reason: str, container: Container | None) -> None:
        if not task.live:
            return
        if container is not None:
            container.reason = reason
        self.stop(task, at, reason, code="TaskFailedToStart", delay=0.0)
        self.count_failure(task, at)
        self.poke(task.service, at)

    def _exited(self, task: Task, container: Container, exit_code: int | None, at: float) -> None:
        container.last_status, container.exit_code = STOPPED, exit_code
        if container.essential and task.live:
            self.stop(
                task,
                at,
                "Essential container in task exited",
                code="EssentialContainerExited",
                delay=EXIT_STOP_SECONDS,
            )
            self.count_failure(task, at)
            self.poke(task.service, at)

    def stop(
        self,
        task: Task,
        at: float,
        reason: str,
        *,
        code: str = "ServiceSchedulerInitiated",
        delay: float = STOP_SECONDS,
    ) -> None:
        if not task.live:
            return
        when = from_epoch(at)
        task.desired_status = STOPPED
        task.stop_code = task.stop_code or code
        task.stopped_reason = task.stopped_reason or reason
        task.stopping_at = when
        if self.runner is not None and task.in_docker:
            self.runner.stop(task.id, timeout=self._stop_timeout(task))
        self.task_stopping(task)
        if task.last_status == RUNNING and delay > 0:
            self._touch(task, at, DEACTIVATING)
            self.schedule(at + delay, lambda at: self._stopped(task, at))
        else:
            self._stopped(task, at)

    def _stopped(self, task: Task, at: float) -> None:
        if task.last_status == STOPPED:
            return
        when = from_epoch(at)
        was_running = task.started_at is not None
        self._touch(task, at, STOPPED)
        self.task_stopped(task)
        task.execution_stopped_at = task.stopped_at = when
        for container in task.containers:
            if container.last_status == RUNNING and was_running and not task.in_docker:
                container.exit_code = 0 if container.exit_code is None else container.exit_code
            container.last_status = STOPPED
        self.schedule(at + STOPPED_RETENTION, lambda at: self._forget_task(task))
        self.settle(task.service, at)
        self.poke(task.service, at)

    def _touch(self, task: Task, at: float, status: str) -> None:
        task.last_status = status
        task.version += 1
        task.deployment.updated_at = from_epoch(at)

    def _on_report(self, report: Report, at: float) -> None:
        task = self.tasks.get(report.task_id)
        if task is None:
            return
        container = next((c for c in task.containers if c.name == report.container), None)
        if report.kind == "pulled":
            self._pulled(task, at, report.digests)
        elif report.kind == "started":
            self._started(task, at, report.runtime_ids)
        elif report.kind == "pull-failed":
            self._fail_to_start(task, at, f"CannotPullContainerError: {report.message}", container)
        elif report.kind == "start-failed":
            self._fail_to_start(task, at, f"CannotStartContainerError: {report.message}", container)
        elif report.kind == "exited" and container is not None:
            self._exited(task, container, report.exit_code, at)
        elif report.kind == "health" and container is not None and report.health:
            self._health(task, container.name, report.health.upper(), at)

    def _spec(self, container: Container) -> ContainerSpec:
        definition = container.definition
        environment = {str(e["name"]): str(e.get("value", "")) for e in definition.get("environment") or []}
        return ContainerSpec(
            name=container.name,
            image=container.pull,
            essential=container.essential,
            command=definition.get("command"),
            entry_point=definition.get("entryPoint"),
            environment=environment,
            working_directory=definition.get("workingDirectory"),
            user=definition.get("user"),
            healthcheck=_docker_healthcheck(definition.get("healthCheck"), self.clock.time_scale),
            log_configuration=definition.get("logConfiguration"),
        )

    def _stop_timeout(self, task: Task) -> int:
        """ECS's stopTimeout (default 30 s, at most 120 s) in whole wall seconds, as Docker takes it."""
        sandbox_seconds = min((int(c.definition.get("stopTimeout") or 30) for c in task.containers), default=30)
        return int(min(120, sandbox_seconds) / self.clock.time_scale)

    def _forget_task(self, task: Task) -> None:
        self.tasks.pop(task.id, None)
        if task in task.deployment.tasks:
            task.deployment.tasks.remove(task)
        if self.runner is not None and task.in_docker:
            self.runner.forget(task.id)


def _docker_healthcheck(check: dict[str, Any] | None, time_scale: float) -> dict[str, Any] | None:
    """ECS healthCheck (sandbox seconds) -> Docker's (wall nanoseconds): the sandbox's clock runs faster."""
    if not check or not check.get("command"):
        return None

    def nanos(seconds: float, floor: float) -> int:
        return int(max(floor, seconds / time_scale) * 1e9)

    return {
        "test": list(check["command"]),
        "interval": nanos(float(check.get("interval", DEFAULT_HEALTH_INTERVAL)), MIN_HEALTH_INTERVAL_WALL),
        "timeout": int(float(check.get("timeout", 5)) * 1e9),  # the command itself runs in wall time
        "retries": int(check.get("retries", 3)),
        "start_period": nanos(float(check.get("startPeriod", 0)), 0.0),
    }

"""Runs a sandbox task's containers on the user's Docker engine, so an exit or a failing HEALTHCHECK is real.

The service model decides *what* runs; this module only talks to Docker, never blocking its caller: pulls,
creates and starts go to a small worker pool, and what happens to a container afterwards (it exits, its health
changes) comes from the engine's event stream. Everything is reported back through one callback, as
:class:`Report` values, which the model turns into task transitions on its own clock.

Containers run with ``network_mode="none"`` and carry labels naming the sandbox and the task, so :meth:`close`
(and a later sandbox, if this process died) can find and remove exactly what this sandbox started.

>>> runner = ContainerRunner(docker.from_env(), sandbox_id="123456789012-5000")  # doctest: +SKIP
>>> spec = ContainerSpec(name="web", image="127.0.0.1:5000/web:abc")
>>> runner.run("4f1c0d...", [spec], print)                                       # doctest: +SKIP
>>> runner.close()                                                                # doctest: +SKIP

Pull policy, like the ECS agent's default on EC2: pull from the registry; if the pull fails and the engine has
the image cached, run the cached image. Only loopback registries (the sandbox's own) are ever contacted: any
other reference runs from the engine's cache or fails as a pull error.

Given ``logs`` (moto's CloudWatch Logs), a container whose definition logs with the awslogs driver has its output
written there (:mod:`opskit.sandbox.ecs.awslogs`); its exit is reported once its output is in.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from opskit.sandbox.ecs.awslogs import AwsLogsDriver, CloudWatchLogs, LogFollower

log = logging.getLogger("opskit.sandbox")

LABEL_SANDBOX = "opskit.sandbox"
LABEL_TASK = "opskit.task"
LABEL_CONTAINER = "opskit.container"
WORKERS = 4
SIMULATED_LABEL = "org.opskit.sandbox.simulated"  # an image whose tasks run simulated, without a container
STOP_TIMEOUT_SECONDS = 30  # ECS's default stopTimeout: SIGTERM, then SIGKILL (wall seconds)


@dataclass(frozen=True)
class ContainerSpec:
    """One container of a task, as Docker will run it (times already in wall seconds)."""

    name: str
    image: str
    essential: bool = True
    command: list[str] | None = None
    entry_point: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    working_directory: str | None = None
    user: str | None = None
    # Docker's healthcheck: {"test": [...], "interval": ns, "timeout": ns, "retries": n, "start_period": ns}
    healthcheck: dict[str, Any] | None = None
    log_configuration: dict[str, Any] | None = None  # the container definition's, as registered


@dataclass(frozen=True)
class Report:
    """What happened to a task's containers. ``kind`` is one of:

    - ``pulled``: every image is there (``digests``: container name -> image digest, when known);
    - ``pull-failed``: ``container``'s image could not be pulled (``message`` says why, in Docker's words);
    - ``started``: every container started (``runtime_ids``: container name -> Docker container id);
    - ``start-failed``: ``container`` could not be created or started;
    - ``exited``: ``container`` exited with ``exit_code``;
    - ``health``: ``container``'s health is now ``health`` (``healthy`` or ``unhealthy``).
    """

    task_id: str
    kind: str
    container: str | None = None
    message: str | None = None
    exit_code: int | None = None
    health: str | None = None
    digests: dict[str, str] = field(default_factory=dict)
    runtime_ids: dict[str, str] = field(default_factory=dict)


ReportSink = Callable[[Report], None]


class PullFailed(Exception):
    pass


class ContainerRunner:
    """Runs tasks' containers on one Docker engine for one sandbox.

    ``registry_auth`` returns the sandbox registry's credentials as ECR's GetAuthorizationToken gives them,
    ``{"username": "AWS", "password": ...}``, or ``None`` when the registry needs none. ``logs`` is where the
    awslogs driver writes; without it, log configurations are ignored.
    """

    def __init__(
        self,
        docker_client: Any,
        sandbox_id: str,
        registry_auth: Callable[[], dict[str, str] | None] | None = None,
        *,
        logs: CloudWatchLogs | None = None,
        workers: int = WORKERS,
    ) -> None:
        self.docker = docker_client
        self.sandbox_id = sandbox_id
        self.registry_auth = registry_auth
        self.awslogs = AwsLogsDriver(logs) if logs is not None else None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="opskit-runner")
        self._lock = threading.Lock()
        self._sinks: dict[str, ReportSink] = {}  # task id -> where its reports go
        self._stopping: set[str] = set()  # tasks being stopped: starts still in flight must not start more
        self._pulled: set[str] = set()  # image references this runner pulled (untagged again on close)
        self._exits: set[tuple[str, str]] = set()  # (task id, container) whose exit was reported
        self._closed = False
        self._events: Any = None
        self._watcher = threading.Thread(target=self._watch, name="opskit-runner-events", daemon=True)
        self._watch_ready = threading.Event()
        self._watcher.start()
        self._watch_ready.wait(timeout=10)

    # -- the model's side ------------------------------------------------------------------------------------
    def run(self, task_id: str, specs: list[ContainerSpec], report: ReportSink) -> None:
        """Pull, create and start ``specs`` in the background; outcomes go to ``report``."""
        with self._lock:
            if self._closed:
                return
            self._sinks[task_id] = report
        self._pool.submit(self._run, task_id, specs)

    def stop(self, task_id: str, timeout: int = STOP_TIMEOUT_SECONDS) -> None:
        """Stop (SIGTERM, then SIGKILL after ``timeout`` wall seconds) and remove the task's containers, in the
        background; their exit codes are still reported."""
        with self._lock:
            if self._closed:
                return
            self._stopping.add(task_id)
        self._pool.submit(self._remove, task_id, timeout)

    def forget(self, task_id: str) -> None:
        """The model no longer keeps this task: drop its report sink."""
        with self._lock:
            self._sinks.pop(task_id, None)
            self._stopping.discard(task_id)
            self._exits = {exit for exit in self._exits if exit[0] != task_id}
        if self.awslogs is not None:
            self.awslogs.forget(task_id)

    def close(self) -> None:
        """Stop the event watcher and the workers, then remove every container this sandbox started."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._sinks.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._events is not None:
            self._events.close()
        self._watcher.join(timeout=10)
        for container in self._containers():
            self._force_remove(container)
        if self.awslogs is not None:  # their output ended with them: what is left of it goes now
            self.awslogs.close()
        # As the ECS agent cleans up images; other tags keep their data, and so do parent layers, which a build
        # running meanwhile may be using as its cache.
        for reference in self._pulled:
            with contextlib.suppress(Exception):
                self.docker.images.remove(reference, noprune=True)

    # -- workers ---------------------------------------------------------------------------------------------
    def _run(self, task_id: str, specs: list[ContainerSpec]) -> None:
        try:
            self._start(task_id, specs)
        finally:
            with self._lock:
                stopped_meanwhile = task_id in self._stopping and not self._closed
            if stopped_meanwhile:  # a stop raced with the start: remove what the start created after it
                self._remove(task_id)

    def _start(self, task_id: str, specs: list[ContainerSpec]) -> None:
        digests: dict[str, str] = {}
        for spec in specs:
            try:
                digest = self._pull(spec.image)
            except PullFailed as exc:
                self._report(Report(task_id, "pull-failed", container=spec.name, message=str(exc)))
                return
            if digest:
                digests[spec.name] = digest
        self._report(Report(task_id, "pulled", digests=digests))
        if all(self._simulated(spec.image) for spec in specs):
            self._report(Report(task_id, "started"))  # fixture images (the demo's): they hold nothing to run
            return
        runtime_ids: dict[str, str] = {}
        for spec in specs:
            with self._lock:
                if self._closed or task_id in self._stopping:
                    return
            follower: LogFollower | None = None
            try:
                container = self.docker.containers.create(**self._create_options(task_id, spec))
                runtime_ids[spec.name] = container.id
                follower = self._log_follower(task_id, spec, container.id)  # Docker readies the log driver here
                container.start()
            except Exception as exc:  # docker.errors.APIError and friends: the task fails to start, as on ECS
                if follower is not None:
                    follower.abandon()
                self._report(Report(task_id, "start-failed", container=spec.name, message=_explain(exc)))
                return
            if follower is not None:
                follower.follow(container)
        self._report(Report(task_id, "started", runtime_ids=runtime_ids))
        # A container that exits at once can be gone before the engine's event stream tells us (seen under load):
        # one look after the start reports its exit too; the event, if it comes, is not reported twice.
        for name, container_id in runtime_ids.items():
            try:
                state = self.docker.api.inspect_container(container_id).get("State") or {}
            except Exception:
                continue  # removed meanwhile (a stop): its exit was the stop's
            if state.get("Status") in ("exited", "dead"):
                self._exited(task_id, name, int(state.get("ExitCode", -1)))

    def _log_follower(self, task_id: str, spec: ContainerSpec, container_id: str) -> LogFollower | None:
        """The container's log stream, ready before it starts (a missing log group fails the start)."""
        if self.awslogs is None:
            return None
        return self.awslogs.open(task_id, spec.name, spec.log_configuration, container_id)

    def _simulated(self, image: str) -> bool:
        try:
            labels = self.docker.images.get(image).labels or {}
        except Exception:
            return False
        return bool(labels.get(SIMULATED_LABEL) == "true")

    def _pull(self, image: str) -> str | None:
        from docker.errors import APIError, ImageNotFound
        from docker.utils import parse_repository_tag

        repository, tag = parse_repository_tag(image)
        failure: str | None = None
        if _is_loopback(repository):
            try:
                auth = self.registry_auth() if self.registry_auth else None
                self.docker.images.pull(repository, tag=tag or "latest", auth_config=auth)
                with self._lock:
                    self._pulled.add(image)
            except APIError as exc:
                failure = _explain(exc)
        else:
            failure = (
                f"pull access denied for {repository}: the opskit sandbox pulls only from its own registry "
                "(127.0.0.1) and this image is not in the Docker engine's cache"
            )
        try:
            pulled = self.docker.images.get(image)
        except ImageNotFound as exc:
            raise PullFailed(failure or _explain(exc)) from exc
        except APIError as exc:
            raise PullFailed(_explain(exc)) from exc
        for digest in pulled.attrs.get("RepoDigests") or []:
            if digest.startswith(repository + "@"):
                return str(digest.split("@", 1)[1])
        return None

    def _create_options(self, task_id: str, spec: ContainerSpec) -> dict[str, Any]:
        options: dict[str, Any] = {
            "image": spec.image,
            "name": f"opskit-{self.sandbox_id}-{task_id[:12]}-{spec.name}",
            "labels": {LABEL_SANDBOX: self.sandbox_id, LABEL_TASK: task_id, LABEL_CONTAINER: spec.name},
            "network_mode": "none",
            "environment": dict(spec.environment),
            "detach": True,
        }
        if spec.command is not None:
            options["command"] = list(spec.command)
        if spec.entry_point is not None:
            options["entrypoint"] = list(spec.entry_point)
        if spec.working_directory:
            options["working_dir"] = spec.working_directory
        if spec.user:
            options["user"] = spec.user
        if spec.healthcheck:
            options["healthcheck"] = dict(spec.healthcheck)
        return options

    def _remove(self, task_id: str, timeout: int = 0) -> None:
        for container in self._containers(task_id):
            with contextlib.suppress(Exception):  # already stopped, or already gone
                container.stop(timeout=timeout)
            if self.awslogs is not None:  # what it printed while stopping is read before it goes
                self.awslogs.drain(task_id, (container.attrs.get("Labels") or {}).get(LABEL_CONTAINER, ""))
            self._force_remove(container)

    def _containers(self, task_id: str | None = None) -> list[Any]:
        labels = [f"{LABEL_SANDBOX}={self.sandbox_id}"]
        if task_id is not None:
            labels.append(f"{LABEL_TASK}={task_id}")
        try:
            return list(self.docker.containers.list(all=True, filters={"label": labels}, sparse=True))
        except Exception:
            log.warning("could not list the sandbox's containers", exc_info=True)
            return []

    @staticmethod
    def _force_remove(container: Any) -> None:
        with contextlib.suppress(Exception):  # removed meanwhile: nothing left to do
            container.remove(force=True)

    # -- what the engine says about our containers -----------------------------------------------------------
    def _watch(self) -> None:
        try:
            self._events = self.docker.events(
                decode=True, filters={"type": "container", "label": f"{LABEL_SANDBOX}={self.sandbox_id}"}
            )
        except Exception:
            log.warning("cannot follow the Docker engine's events: container exits will not be seen", exc_info=True)
            return
        finally:
            self._watch_ready.set()
        try:
            for event in self._events:
                self._on_event(event)
        except Exception:
            with self._lock:
                closed = self._closed
            if not closed:
                log.warning("the Docker event stream ended: container exits are no longer seen", exc_info=True)

    def _on_event(self, event: dict[str, Any]) -> None:
        action = str(event.get("Action") or event.get("status") or "")
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        task_id, name = attributes.get(LABEL_TASK), attributes.get(LABEL_CONTAINER)
        if not task_id or not name:
            return
        if action == "die":
            try:
                code = int(attributes.get("exitCode", "0"))
            except ValueError:
                code = -1
            self._exited(task_id, name, code)
        elif action.startswith("health_status:"):
            health = action.split(":", 1)[1].strip()
            if health in ("healthy", "unhealthy"):
                self._report(Report(task_id, "health", container=name, health=health))

    def _exited(self, task_id: str, name: str, code: int) -> None:
        """Report a container's exit once, whether the event stream or the look after its start saw it first."""
        with self._lock:
            if (task_id, name) in self._exits:
                return
            self._exits.add((task_id, name))
        exited = Report(task_id, "exited", container=name, exit_code=code)
        if self.awslogs is not None:  # the task stops on this report: its log is complete first
            self.awslogs.then(task_id, name, lambda: self._report(exited))
        else:
            self._report(exited)

    def _report(self, report: Report) -> None:
        with self._lock:
            sink = None if self._closed else self._sinks.get(report.task_id)
        if sink is None:
            return
        try:
            sink(report)
        except Exception:
            log.exception("the sandbox failed to take a container report")


def _is_loopback(repository: str) -> bool:
    host = repository.split("/", 1)[0] if "/" in repository else ""
    hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return hostname == "localhost" or hostname.startswith("127.")


def _explain(exc: BaseException) -> str:
    """Docker's own words for a failure: its API's explanation when there is one."""
    explanation = getattr(exc, "explanation", None)
    text = explanation if isinstance(explanation, str) and explanation else str(exc)
    return text if text.startswith("Error response from daemon") else f"Error response from daemon: {text}"

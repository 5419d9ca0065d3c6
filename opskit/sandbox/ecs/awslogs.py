"""The awslogs log driver for containers that really run: their output, line by line, in CloudWatch Logs.

A container definition's ``logConfiguration`` of ``{"logDriver": "awslogs", "options": {...}}`` sends the
container's stdout and stderr to the log group ``awslogs-group`` in ``awslogs-region``, in the stream ECS names
``<awslogs-stream-prefix>/<container name>/<task id>`` (without a prefix: ``awslogs-stream``, else the Docker
container's id, as on EC2). As Docker's driver does when the container starts, the stream is created then: a group
that does not exist fails the start, in the words ECS shows (``CannotStartContainerError: ... The specified log group
does not exist.``), unless ``awslogs-create-group`` is true, which creates it.

The events land in moto's CloudWatch Logs of the sandbox's account, where a plain boto3 ``logs`` client at the
sandbox's endpoint reads them. ``awslogs-region`` is honoured: a group in another region is written there, and read
with a client for that region (the sandbox's front door hands CloudWatch Logs calls of any region to moto). They
are written in-process, not over the sandbox's HTTP front door, for three reasons: the ECS agent's calls are not
the user's, so they must not be counted, throttled or faulted with them; moto's PutLogEvents refuses events more
than two hours ahead of wall time, and the sandbox's clock runs ahead of it; and the last lines of a closing
sandbox still land after its HTTP server has stopped.

Each followed container has a thread reading its output from the Docker engine (``container.logs(follow=True)``:
what it printed before being followed comes first); one more thread per runner puts what was read every
:data:`FLUSH_SECONDS`, in batches within PutLogEvents' limits. What is left goes when the output ends: before the
runner reports the container's exit, so the log of a task its container's exit stopped is complete.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opskit.sandbox.clock import SandboxClock

log = logging.getLogger("opskit.sandbox")

FLUSH_SECONDS = 5.0  # sandbox seconds: Docker's awslogs driver puts what it holds every 5 seconds
MIN_FLUSH_WALL_SECONDS = 0.05
MAX_BATCH_EVENTS = 10_000  # PutLogEvents' limits: events, bytes (each event counts 26 bytes more), time span
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_BATCH_SPAN_MS = 24 * 3600 * 1000
MAX_EVENT_BYTES = 262_144 - EVENT_OVERHEAD_BYTES  # a longer line is split, as Docker's driver splits it
DRAIN_WALL_SECONDS = 30.0  # how long a container's exit waits for the rest of its output, at most
CLOSE_WALL_SECONDS = 5.0  # how long a closing runner waits for the output of the containers it removed
_TRUE = ("1", "t", "T", "TRUE", "true", "True")  # Go's strconv.ParseBool, which Docker uses for the option
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class LogDriverError(Exception):
    """The log driver cannot start, in Docker's words: the container fails to start."""


@dataclass(frozen=True)
class AwsLogsOptions:
    """The awslogs options of one container definition."""

    group: str
    region: str | None = None  # None: the sandbox's region (Docker on EC2 takes the instance's)
    stream_prefix: str | None = None
    stream: str | None = None
    create_group: bool = False

    @classmethod
    def of(cls, configuration: Mapping[str, Any] | None) -> AwsLogsOptions | None:
        """The options of an awslogs ``logConfiguration``; ``None`` for no configuration or another driver."""
        if not configuration or configuration.get("logDriver") != "awslogs":
            return None
        options = {str(k): str(v) for k, v in (configuration.get("options") or {}).items()}
        group = options.get("awslogs-group", "")
        if not group:
            raise LogDriverError("must specify a value for log opt 'awslogs-group'")
        create = options.get("awslogs-create-group", "")
        if create and create not in _TRUE + _FALSE:
            raise LogDriverError(
                f"must specify valid value for log opt 'awslogs-create-group': "
                f'strconv.ParseBool: parsing "{create}": invalid syntax'
            )
        return cls(
            group=group,
            region=options.get("awslogs-region") or None,
            stream_prefix=options.get("awslogs-stream-prefix") or None,
            stream=options.get("awslogs-stream") or None,
            create_group=create in _TRUE,
        )

    def stream_name(self, container: str, task_id: str, container_id: str) -> str:
        if self.stream_prefix:
            return f"{self.stream_prefix}/{container}/{task_id}"
        return self.stream or container_id


@dataclass(frozen=True)
class Destination:
    region: str
    group: str
    stream: str


class CloudWatchLogs:
    """moto's CloudWatch Logs of one account, as the awslogs driver writes to it; ``clock`` stamps the events."""

    def __init__(self, account_id: str, region: str, clock: SandboxClock) -> None:
        self.account_id = account_id
        self.region = region
        self.clock = clock

    def open(self, options: AwsLogsOptions, stream: str) -> Destination:
        """Create the stream (and the group, when the options say so), or fail as Docker's driver fails."""
        region = options.region or self.region
        backend = self._backend(region)
        if options.group not in backend.groups:
            if not options.create_group:
                raise LogDriverError(
                    "failed to initialize logging driver: failed to create Cloudwatch log stream: "
                    "ResourceNotFoundException: The specified log group does not exist. "
                    f"(log group {options.group} in {region}: create it, or set the awslogs-create-group option "
                    'to "true")'
                )
            try:
                backend.create_log_group(options.group, {})
            except Exception as exc:  # another task's start created it meanwhile, or moto refuses the name
                if getattr(exc, "error_type", None) != "ResourceAlreadyExistsException":
                    raise LogDriverError(
                        f"failed to initialize logging driver: failed to create Cloudwatch log group: {_words(exc)}"
                    ) from exc
        try:
            backend.ensure_log_stream(options.group, stream)
        except Exception as exc:  # the group was deleted meanwhile
            raise LogDriverError(
                f"failed to initialize logging driver: failed to create Cloudwatch log stream: {_words(exc)}"
            ) from exc
        return Destination(region, options.group, stream)

    def put(self, where: Destination, events: list[dict[str, Any]]) -> None:
        """Add ``events`` (in order) to the stream. Straight to the log group's model: moto's PutLogEvents would
        judge the timestamps against wall time, not the sandbox's."""
        group = self._backend(where.region).groups.get(where.group)
        if group is None:
            raise LogDriverError(f"log group {where.group} was deleted")
        group.put_log_events(where.stream, events)

    def flush_wall_seconds(self) -> float:
        return max(MIN_FLUSH_WALL_SECONDS, FLUSH_SECONDS / self.clock.time_scale)

    def _backend(self, region: str) -> Any:
        from moto.logs.models import logs_backends

        backends = logs_backends[self.account_id]
        if region not in backends:
            raise LogDriverError(
                "failed to initialize logging driver: failed to create Cloudwatch log stream: "
                f"{region} is not a region of CloudWatch Logs: set the awslogs-region option to the log group's region"
            )
        return backends[region]


class LogFollower:
    """One container's output on its way to its log stream."""

    def __init__(self, logs: CloudWatchLogs, where: Destination, name: str) -> None:
        self.logs = logs
        self.where = where
        self.name = name
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._put_lock = threading.Lock()  # one put at a time, so batches land in the order read
        self._pending: list[dict[str, Any]] = []
        self._last_ms = 0
        self._stream: Any = None
        self._waiting: list[Callable[[], None]] = []  # called once the output has ended and been put

    def follow(self, container: Any) -> None:
        """Read ``container``'s output (it has started) in a thread of its own, until it ends."""
        threading.Thread(target=self._read, args=(container,), name=f"opskit-awslogs-{self.name}", daemon=True).start()

    def drain(self, timeout: float = DRAIN_WALL_SECONDS) -> None:
        """Wait for the output to end (the container exited) and to be put."""
        self.done.wait(timeout)

    def then(self, action: Callable[[], None], timeout: float = DRAIN_WALL_SECONDS) -> None:
        """Call ``action`` once the output has ended and been put (now, if it has), or after ``timeout`` wall seconds
        at the latest, in another thread: a chatty container's last lines can take seconds to read."""
        once = _Once(action)
        with self._lock:
            if not self.done.is_set():
                self._waiting.append(once)
                timer = threading.Timer(timeout, once)
                timer.daemon = True
                timer.start()
                return
        once()

    def abandon(self) -> None:
        """The container did not start: there is nothing to read."""
        self._finish()

    def cancel(self) -> None:
        """Stop reading (the engine will not end the stream): what was read is still put."""
        with contextlib.suppress(Exception):
            if self._stream is not None:
                self._stream.close()

    def flush(self) -> None:
        with self._put_lock:
            with self._lock:
                events, self._pending = self._pending, []
            for batch in batches(events):
                try:
                    self.logs.put(self.where, batch)
                except Exception:  # the group or stream was deleted: Docker's driver drops the events too
                    log.debug("could not put %d log events into %s", len(batch), self.where, exc_info=True)

    def _read(self, container: Any) -> None:
        from docker.errors import NotFound

        try:
            self._stream = container.logs(stream=True, follow=True, stdout=True, stderr=True)
            rest = b""
            for chunk in self._stream:
                *lines, rest = (rest + chunk).split(b"\n")
                self._add(lines)
            self._add([rest])
        except NotFound:  # removed before it was followed: a stop raced with the start
            log.debug("container %s was gone before its output was followed", self.name)
        except Exception:
            log.warning("stopped following the output of container %s", self.name, exc_info=True)
        finally:
            self.flush()
            self._finish()

    def _finish(self) -> None:
        with self._lock:
            self.done.set()
            waiting, self._waiting = self._waiting, []
        for action in waiting:
            action()

    def _add(self, lines: list[bytes]) -> None:
        messages = [piece for line in lines for piece in _pieces(line.rstrip(b"\r")) if piece]
        if not messages:
            return
        # Stamped with the sandbox clock's now as the line is read, not with the container's own timestamps: those
        # are the engine's wall clock (another time scale, maybe another machine's clock), while DescribeTasks' times
        # are the sandbox clock's. Lines are read live, within milliseconds of being written, and only once the
        # container has started, so none is earlier than its task's pullStoppedAt; a container's exit is reported
        # only once its output is read, so when that exit stops the task none is later than its stoppedAt. No line
        # of a stream is stamped earlier than the one before it, even when the clock is set back.
        with self._lock:
            self._last_ms = stamp = max(self._last_ms, int(self.logs.clock.timestamp() * 1000))
            self._pending.extend({"timestamp": stamp, "message": message} for message in messages)
            full = len(self._pending) >= MAX_BATCH_EVENTS
        if full:
            self.flush()


class AwsLogsDriver:
    """The awslogs driver of one container runner: its followers, and the thread that puts what they read."""

    def __init__(self, logs: CloudWatchLogs) -> None:
        self.logs = logs
        self._lock = threading.Lock()
        self._followers: dict[tuple[str, str], LogFollower] = {}  # (task id, container name)
        self._closed = threading.Event()
        self._flusher: threading.Thread | None = None

    def open(
        self, task_id: str, container: str, configuration: Mapping[str, Any] | None, container_id: str
    ) -> LogFollower | None:
        """Ready the container's log stream before it starts; ``None`` when it logs elsewhere.

        Raises :class:`LogDriverError` when the driver cannot start (the container must not)."""
        options = AwsLogsOptions.of(configuration)
        if options is None:
            return None
        where = self.logs.open(options, options.stream_name(container, task_id, container_id))
        follower = LogFollower(self.logs, where, container)
        with self._lock:
            self._followers[(task_id, container)] = follower
            if self._flusher is None and not self._closed.is_set():
                self._flusher = threading.Thread(target=self._flush_every, name="opskit-awslogs-flush", daemon=True)
                self._flusher.start()
        return follower

    def drain(self, task_id: str, container: str) -> None:
        """Wait for the container's output to end and be put."""
        follower = self._follower(task_id, container)
        if follower is not None:
            follower.drain()

    def then(self, task_id: str, container: str, action: Callable[[], None]) -> None:
        """Call ``action`` once the container's output has ended and been put (see :meth:`LogFollower.then`)."""
        follower = self._follower(task_id, container)
        if follower is None:
            action()
        else:
            follower.then(action)

    def _follower(self, task_id: str, container: str) -> LogFollower | None:
        with self._lock:
            return self._followers.get((task_id, container))

    def forget(self, task_id: str) -> None:
        with self._lock:
            for key in [key for key in self._followers if key[0] == task_id]:
                del self._followers[key]

    def close(self) -> None:
        """The containers are gone: wait for their output to end, put it, and stop."""
        self._closed.set()
        with self._lock:
            followers, flusher = list(self._followers.values()), self._flusher
            self._followers.clear()
        deadline = time.monotonic() + CLOSE_WALL_SECONDS
        for follower in followers:
            follower.drain(max(0.0, deadline - time.monotonic()))
            follower.cancel()
            follower.flush()
        if flusher is not None:
            flusher.join(timeout=10)

    def _flush_every(self) -> None:
        while not self._closed.wait(self.logs.flush_wall_seconds()):
            with self._lock:
                followers = list(self._followers.values())
                for key in [key for key, follower in self._followers.items() if follower.done.is_set()]:
                    del self._followers[key]  # its output ended and was put
            for follower in followers:
                follower.flush()


def batches(events: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """``events`` (in time order) cut into PutLogEvents requests: at most 10,000 events and 1 MB, within 24 hours."""
    batch: list[dict[str, Any]] = []
    size = 0
    for event in events:
        cost = len(event["message"].encode()) + EVENT_OVERHEAD_BYTES
        if batch and (
            len(batch) >= MAX_BATCH_EVENTS
            or size + cost > MAX_BATCH_BYTES
            or event["timestamp"] - batch[0]["timestamp"] > MAX_BATCH_SPAN_MS
        ):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += cost
    if batch:
        yield batch


def _pieces(line: bytes) -> Iterator[str]:
    """A line as events' messages: pieces of at most :data:`MAX_EVENT_BYTES`, cut between UTF-8 characters."""
    while len(line) > MAX_EVENT_BYTES:
        cut = MAX_EVENT_BYTES
        while cut > 0 and (line[cut] & 0xC0) == 0x80:  # a continuation byte: cut before its character
            cut -= 1
        cut = cut or MAX_EVENT_BYTES
        yield line[:cut].decode(errors="replace")
        line = line[cut:]
    yield line.decode(errors="replace")


class _Once:
    """An action that runs at most once, whichever thread calls it first."""

    def __init__(self, action: Callable[[], None]) -> None:
        self._action: Callable[[], None] | None = action
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            action, self._action = self._action, None
        if action is not None:
            action()


def _words(exc: BaseException) -> str:
    """moto's error as AWS's SDKs show it: ``Code: message``."""
    code, message = getattr(exc, "error_type", None), getattr(exc, "message", None)
    return f"{code}: {message}" if code and message else str(exc)

"""The sandbox's clock: AWS time, compressed and controllable.

Two readings come from one clock:

- :meth:`SandboxClock.now` is the calendar time the sandbox reports (registeredAt, createdAt, events). Tests and
  the demo move it with :meth:`advance` and :meth:`set` to lay down months of history in seconds.
- :meth:`SandboxClock.elapsed` counts scaled seconds since start and never jumps; token buckets refill on it,
  so moving the calendar does not hand out free API calls.

Both run ``time_scale`` times faster than wall time.

>>> clock = SandboxClock(time_scale=60)
>>> before = clock.now()
>>> clock.advance(3600)
>>> (clock.now() - before).total_seconds() >= 3600
True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SandboxClock:
    def __init__(self, time_scale: float = 1.0, start: datetime | None = None) -> None:
        if not time_scale > 0:
            raise ValueError("time_scale must be > 0")
        self._lock = threading.Lock()
        self._scale = float(time_scale)
        self._wall0 = time.monotonic()
        self._elapsed0 = 0.0  # scaled seconds accumulated before the last re-anchor
        self._calendar0 = (start or datetime.now(UTC)).timestamp()
        self._listeners: list[Callable[[], None]] = []

    # -- readings -------------------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Scaled seconds since the clock started; monotonic, unaffected by advance/set."""
        with self._lock:
            return self._elapsed0 + (time.monotonic() - self._wall0) * self._scale

    def timestamp(self) -> float:
        """Calendar time as POSIX seconds."""
        with self._lock:
            return self._calendar0 + (time.monotonic() - self._wall0) * self._scale

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    @property
    def time_scale(self) -> float:
        return self._scale

    @time_scale.setter
    def time_scale(self, value: float) -> None:
        if not value > 0:
            raise ValueError("time_scale must be > 0")
        with self._lock:
            self._reanchor()
            self._scale = float(value)

    # -- control --------------------------------------------------------------------------------------------------
    def advance(self, seconds: float | timedelta) -> None:
        """Jump the calendar forward; rollouts due in between happen, with their own timestamps."""
        delta = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        if delta < 0:
            raise ValueError("the sandbox clock only moves forward; use set() to travel back")
        with self._lock:
            self._calendar0 += delta
        self._notify()

    def set(self, when: datetime) -> None:
        """Put the calendar at ``when`` (timezone-aware); used to seed history that starts in the past."""
        if when.tzinfo is None:
            raise ValueError("pass a timezone-aware datetime")
        with self._lock:
            self._reanchor()
            self._calendar0 = when.timestamp()
        self._notify()

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of sandbox time (``seconds / time_scale`` of wall time)."""
        time.sleep(max(0.0, seconds) / self._scale)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every advance/set (the rollout engine catches up at once)."""
        self._listeners.append(listener)

    def _reanchor(self) -> None:
        wall = time.monotonic()
        passed = (wall - self._wall0) * self._scale
        self._elapsed0 += passed
        self._calendar0 += passed
        self._wall0 = wall

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()


def to_epoch(moment: datetime | None) -> float | None:
    """AWS JSON protocols send timestamps as epoch seconds."""
    return None if moment is None else moment.timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


__all__ = ["SandboxClock", "from_epoch", "timedelta", "to_epoch"]

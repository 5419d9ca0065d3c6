"""Fault injection per API action: added latency, 5xx answers and dropped connections.

>>> faults = Faults(seed=1)
>>> faults.set("DescribeTaskDefinition", error_rate=1.0)
>>> faults.draw("DescribeTaskDefinition").error
True
>>> faults.draw("ListServices").error
False
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

ALL = "*"


@dataclass(frozen=True)
class Fault:
    """What to do to calls of one action (or of every action, under ``"*"``).

    ``latency`` is wall seconds added to a call with probability ``latency_rate``; ``error_rate`` answers 500
    InternalFailure (botocore retries it), ``drop_rate`` closes the connection without an answer,
    ``throttle_rate`` answers ThrottlingException whatever the buckets say.
    """

    latency: float = 0.0
    latency_rate: float = 1.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    throttle_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("latency_rate", "error_rate", "drop_rate", "throttle_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.latency < 0:
            raise ValueError("latency must be >= 0 seconds")


@dataclass(frozen=True)
class Draw:
    """The fate of one call."""

    delay: float = 0.0
    error: bool = False
    drop: bool = False
    throttle: bool = False


class Faults:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._faults: dict[str, Fault] = {}

    def set(self, action: str = ALL, **settings: float) -> None:
        """Set the fault for ``action`` (an API action name such as ``"UpdateService"``, or ``"*"`` for all)."""
        with self._lock:
            self._faults[action] = Fault(**settings)

    def clear(self, action: str | None = None) -> None:
        with self._lock:
            if action is None:
                self._faults.clear()
            else:
                self._faults.pop(action, None)

    def snapshot(self) -> dict[str, Fault]:
        with self._lock:
            return dict(self._faults)

    def draw(self, action: str) -> Draw:
        with self._lock:
            fault = self._faults.get(action) or self._faults.get(ALL)
            if fault is None:
                return Draw()
            roll = self._random.random
            delay = fault.latency if fault.latency and roll() < fault.latency_rate else 0.0
            # One roll decides the outcome so the rates add up as given (0.3 throttle + 0.1 error = 40% faulty).
            outcome = roll()
            drop = outcome < fault.drop_rate
            error = not drop and outcome < fault.drop_rate + fault.error_rate
            throttle = not drop and not error and outcome < fault.drop_rate + fault.error_rate + fault.throttle_rate
            return Draw(delay=delay, error=error, drop=drop, throttle=throttle)

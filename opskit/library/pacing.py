"""Calls paced to ECS's throttling buckets, so a sync goes as fast as AWS allows and no faster.

AWS throttles per account and region with one token bucket per API category ("Request throttling for the Amazon
ECS API"; task-definition reads: a burst of 50, then 20 per second). A :class:`Pacer` keeps a client-side bucket
per category, so parallel workers wait their turn instead of being refused; what still gets throttled (another
tool using the same account's quota) is retried by botocore, and beyond botocore's attempts by the pacer, which
then holds every worker of that category back for a while. A ThrottlingException never reaches the caller: after
``patience`` seconds of refusals the caller gets an :class:`~opskit.errors.AwsError` that says what to do.

>>> pacer = Pacer(rate_scale=60)                      # a sandbox running 60x faster than AWS
>>> pacer.call(TASK_DEFINITION_READ, ecs.list_task_definitions, maxResults=100)   # doctest: +SKIP
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from opskit.aws import THROTTLE_CODES
from opskit.errors import AwsError

T = TypeVar("T")

TASK_DEFINITION_READ = "task-definition-read"
SERVICE_READ = "service-read"
SERVICE_DEPLOYMENT_READ = "service-deployment-read"
TASK_DEFINITION_MODIFY = "task-definition-modify"  # RegisterTaskDefinition, DeregisterTaskDefinition
TASK_DEFINITION_DELETE = "task-definition-deletion"  # DeleteTaskDefinitions


@dataclass(frozen=True)
class Rate:
    """A token bucket: ``burst`` calls at once, then ``per_second``."""

    burst: float
    per_second: float

    def scaled(self, factor: float) -> Rate:
        return Rate(self.burst, self.per_second * factor)


# The published ECS rates, per account and region (notes: aws-facts).
AWS_RATES: dict[str, Rate] = {
    TASK_DEFINITION_READ: Rate(50, 20),
    SERVICE_READ: Rate(100, 20),
    SERVICE_DEPLOYMENT_READ: Rate(50, 20),
    TASK_DEFINITION_MODIFY: Rate(20, 1),
    TASK_DEFINITION_DELETE: Rate(5, 1),
}


class TokenBucket:
    """Blocks each caller until its call fits the rate; callers are served in the order they asked.

    A caller that finds no token reserves the next one (the count goes negative) and sleeps until it is due, so
    N threads waiting cost no polling and the k-th call goes exactly when the bucket would have refilled it.
    ``headroom`` (< 1) runs slightly under the rate so clock jitter never makes AWS's bucket refuse us, and
    ``reserve`` leaves that share of the burst unused, so calls delayed on the way and delivered together (a busy
    network, a loaded machine) still find tokens in AWS's bucket.
    """

    def __init__(
        self,
        rate: Rate,
        *,
        headroom: float = 0.98,
        reserve: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate.burst < 1 or rate.per_second <= 0:
            raise ValueError(f"a rate needs a burst of at least 1 and a positive refill, not {rate}")
        self.rate = rate
        self._refill = rate.per_second * headroom
        self._capacity = max(1.0, math.floor(rate.burst * (1 - reserve)))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self._capacity
        self._stamp = clock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is there; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._refill)
            self._stamp = now
            self._tokens -= 1
            wait = -self._tokens / self._refill if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait

    def ready_in(self, count: int = 1) -> float:
        """Seconds until ``count`` more calls could go without waiting (nothing is taken): for choosing which
        bucket to use next, and for estimates of the time left."""
        with self._lock:
            tokens = min(self._capacity, self._tokens + (self._clock() - self._stamp) * self._refill)
        return max(0.0, (count - tokens) / self._refill)

    def hold(self, seconds: float) -> None:
        """Nobody gets a token for ``seconds``: AWS's bucket is empty (we were throttled), let it refill."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._refill)
            self._stamp = now
            self._tokens = min(self._tokens, -seconds * self._refill)


class Pacer:
    """Paced, throttle-proof AWS calls per API category (categories without a rate are not paced).

    ``rates`` overrides :data:`AWS_RATES` per category; ``rate_scale`` multiplies every refill rate (a sandbox
    running ``time_scale`` times faster than AWS refills its buckets that much faster too). ``calls`` counts
    the calls made per operation and ``throttled`` the throttles that got past botocore's own retries.
    """

    def __init__(
        self,
        rates: Mapping[str, Rate] | None = None,
        *,
        rate_scale: float = 1.0,
        headroom: float = 0.98,
        patience: float = 900.0,
    ) -> None:
        if not rate_scale > 0:
            raise ValueError("rate_scale must be positive")
        merged = {**AWS_RATES, **(rates or {})}
        self.buckets = {name: TokenBucket(rate.scaled(rate_scale), headroom=headroom) for name, rate in merged.items()}
        self.patience = patience
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self._lock = threading.Lock()

    def call(self, category: str | None, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` when the category's bucket allows, retried while AWS throttles it."""
        bucket = self.buckets.get(category) if category else None
        name = _operation(function, args)
        started = time.monotonic()
        attempt = 0
        while True:
            if bucket is not None:
                bucket.acquire()
            with self._lock:
                self.calls[name] += 1
            try:
                return function(*args, **kwargs)
            except AwsError as exc:
                if exc.code not in THROTTLE_CODES:
                    raise
                with self._lock:
                    self.throttled[name] += 1
                if time.monotonic() - started > self.patience:
                    raise AwsError(
                        f"AWS kept throttling {name} for {self.patience:.0f} s: another tool is using this account's "
                        "ECS quota; run again later"
                    ) from exc
                attempt += 1
                pause = min(20.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2)
                if bucket is not None:
                    bucket.hold(pause)
                else:
                    time.sleep(pause)


def _operation(function: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """The API operation a call makes, as AWS names it (ListTaskDefinitions), for counting."""
    name = getattr(function, "__name__", "call")
    if name == "call_json" and len(args) >= 2:
        return str(args[1])
    return "".join(part.capitalize() for part in name.split("_"))


__all__ = [
    "AWS_RATES",
    "SERVICE_DEPLOYMENT_READ",
    "SERVICE_READ",
    "TASK_DEFINITION_DELETE",
    "TASK_DEFINITION_MODIFY",
    "TASK_DEFINITION_READ",
    "THROTTLE_CODES",
    "Pacer",
    "Rate",
    "TokenBucket",
]

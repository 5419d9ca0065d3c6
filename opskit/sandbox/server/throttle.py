"""ECS and ECR request throttling, as AWS publishes it: one token bucket per API category.

Buckets refill on the sandbox clock's scaled time, so ``time_scale=10`` lets ten times AWS's rate through
per wall second, exactly as if AWS ran ten times faster.

A bucket belongs to a service's action, not to an action name: ECR and ECS both have ListTagsForResource (and
TagResource, ...), and ECR's calls do not drain ECS's tag-read bucket. ECR's actions with no published rate
(DescribeImages, ListTagsForResource, TagResource, ...) are not throttled.

>>> from opskit.sandbox.clock import SandboxClock
>>> throttle = Throttle(SandboxClock())
>>> all(throttle.admit("DeleteTaskDefinitions", "ecs") for _ in range(5))
True
>>> throttle.admit("DeleteTaskDefinitions", "ecs")
False
>>> throttle.category("ListTagsForResource", "ecs"), throttle.category("ListTagsForResource", "ecr")
('tag-read', None)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opskit.sandbox.clock import SandboxClock


@dataclass(frozen=True)
class Rate:
    burst: float
    per_second: float


# "Request throttling for the Amazon ECS API": all actions of one category share one bucket.
ECS_CATEGORIES: dict[str, tuple[Rate, tuple[str, ...]]] = {
    "task-definition-read": (
        Rate(50, 20),
        ("DescribeTaskDefinition", "ListTaskDefinitions", "ListTaskDefinitionFamilies"),
    ),
    "task-definition-modify": (Rate(20, 1), ("RegisterTaskDefinition", "DeregisterTaskDefinition")),
    "task-definition-deletion": (Rate(5, 1), ("DeleteTaskDefinitions",)),
    "service-modify": (Rate(50, 5), ("CreateService", "UpdateService", "DeleteService")),
    "service-read": (Rate(100, 20), ("DescribeServices", "ListServices")),
    "service-deployments": (
        Rate(50, 20),
        ("ListServiceDeployments", "DescribeServiceDeployments", "DescribeServiceRevisions"),
    ),
    "tag-read": (Rate(50, 20), ("ListTagsForResource",)),
}

# "Amazon ECR service quotas": per-second rates (the burst is taken as one second's worth).
ECR_RATES: dict[str, float] = {
    "BatchGetImage": 2000,
    "GetDownloadUrlForLayer": 3000,
    "BatchCheckLayerAvailability": 1000,
    "GetAuthorizationToken": 500,
    "UploadLayerPart": 500,
    "InitiateLayerUpload": 100,
    "CompleteLayerUpload": 100,
    "PutImage": 10,
}


class TokenBucket:
    def __init__(self, rate: Rate, clock: SandboxClock) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = rate.burst
        self._stamp = clock.elapsed()

    def take(self) -> bool:
        now = self._clock.elapsed()
        self._tokens = min(self.rate.burst, self._tokens + (now - self._stamp) * self.rate.per_second)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def refill(self) -> None:
        self._tokens = self.rate.burst
        self._stamp = self._clock.elapsed()


class Throttle:
    """Admits or refuses each call by its service and action; actions with no published rate are never throttled.

    ``service`` is ``"ecs"`` or ``"ecr"``. Left out, the action name alone picks the bucket (ECS's first): that
    is for counters that are keyed by action alone, such as the sandbox's call counts; the front door always
    names the service."""

    def __init__(self, clock: SandboxClock, enabled: bool = True) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        self._category: dict[tuple[str, str], str] = {}  # (service, action) -> category
        for category, (rate, actions) in ECS_CATEGORIES.items():
            self._buckets[category] = TokenBucket(rate, clock)
            self._category.update(dict.fromkeys((("ecs", action) for action in actions), category))
        for action, per_second in ECR_RATES.items():
            self._buckets[f"ecr:{action}"] = TokenBucket(Rate(per_second, per_second), clock)
            self._category["ecr", action] = f"ecr:{action}"

    def category(self, action: str, service: str | None = None) -> str | None:
        if service is not None:
            return self._category.get((service, action))
        return self._category.get(("ecs", action)) or self._category.get(("ecr", action))

    def rate(self, action: str, service: str | None = None) -> Rate | None:
        category = self.category(action, service)
        return None if category is None else self._buckets[category].rate

    def admit(self, action: str, service: str | None = None) -> bool:
        if not self.enabled:
            return True
        category = self.category(action, service)
        if category is None:
            return True
        with self._lock:
            return self._buckets[category].take()

    def refill(self) -> None:
        """Fill every bucket to its burst, as after a long quiet period."""
        with self._lock:
            for bucket in self._buckets.values():
                bucket.refill()

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """No throttling inside the block (seeding), full buckets after it."""
        previous, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = previous
            self.refill()

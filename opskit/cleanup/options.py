"""What a cleanup keeps: the options, their conservative defaults, and their limits.

>>> CleanupOptions(families=("web",), keep=5).keep
5
>>> CleanupOptions(keep=-1)
Traceback (most recent call last):
...
opskit.errors.ConfigError: --keep -1 is out of range: pass a count from 1 to 1000000
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from opskit.errors import ConfigError
from opskit.records import ECS_NAME, REPOSITORY_NAME, checked_names

MAX_REVISIONS = 1_000_000  # ECS keeps at most this many revisions per family: a larger count means nothing
MAX_DEPTH = 100
MAX_DAYS = 36_500
PIN_TAG = "opskit:keep"


@dataclass(frozen=True)
class CleanupOptions:
    """What to clean up and what to keep whatever happens.

    A revision is **kept** when any of these holds (the defaults are deliberately generous):

    - a service deployment uses it (PRIMARY, ACTIVE, or a rollout in progress), or a running or pending task;
    - it is one of the last ``rollback_depth`` (default 3) revisions a service ran to completion, so "roll back"
      still works that many times; at least 1;
    - it is one of the ``keep`` (default 10) newest revisions of its family; at least 1, so every family keeps a
      revision to deploy;
    - it was registered less than ``keep_days`` (default 30) days ago (0: no age protection);
    - it carries one of the ``pin_tags`` (default ``opskit:keep``), whatever the value.

    Otherwise an ACTIVE revision is deregistered and an INACTIVE one deleted. A revision deregistered by this run
    is deleted in the same run only with ``delete_deregistered`` (default False: it stays INACTIVE, still
    describable, until the next cleanup).

    Images (only with ``images=True``): an image that a kept revision, a revision this cleanup leaves in place, or
    a running task refers to (by tag or digest) is never deleted, nor a part of an image index that stays. Of the
    rest, untagged images pushed more than ``untagged_days`` (default 14) days ago and tagged images pushed more
    than ``unreferenced_days`` (default 90) days ago are deleted (0: no age rule). ``families`` limits revisions
    to those families and images to the repositories their revisions use; ``repositories`` names them outright.
    """

    families: tuple[str, ...] = ()
    keep: int = 10
    keep_days: float = 30
    rollback_depth: int = 3
    pin_tags: tuple[str, ...] = (PIN_TAG,)
    delete_deregistered: bool = False
    images: bool = False
    untagged_days: float = 14
    unreferenced_days: float = 90
    repositories: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        families = checked_names(self.families, "--family", ECS_NAME, "opskit revisions")
        repositories = checked_names(self.repositories, "--repository", REPOSITORY_NAME, "opskit images")
        object.__setattr__(self, "families", families)
        object.__setattr__(self, "repositories", repositories)
        object.__setattr__(self, "pin_tags", tuple(self.pin_tags))
        _count(self.keep, "--keep", 1, MAX_REVISIONS)
        _count(self.rollback_depth, "--rollback-depth", 1, MAX_DEPTH)
        for value, name in (
            (self.keep_days, "--keep-days"),
            (self.untagged_days, "--untagged-days"),
            (self.unreferenced_days, "--unreferenced-days"),
        ):
            _days(value, name)
        if not all(isinstance(tag, str) and tag for tag in self.pin_tags):
            raise ConfigError("pin tags must be non-empty tag keys, such as opskit:keep")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CleanupOptions:
        known: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in cls.__dataclass_fields__
        }
        return cls(**known)


def _count(value: Any, name: str, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{name} {value!r} is out of range: pass a count from {low} to {high}")


def _days(value: Any, name: str) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if not ok or not 0 <= value <= MAX_DAYS:
        raise ConfigError(f"{name} {value!r} is out of range: pass a number of days from 0 to {MAX_DAYS}")


__all__ = ["MAX_DEPTH", "MAX_REVISIONS", "PIN_TAG", "CleanupOptions"]

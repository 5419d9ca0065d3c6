"""A release lock on the service, so two people releasing (or rolling back) at once do not trample each other.

ECS tags have no compare-and-set, so each contender writes a tag of its own, ``opskit:release-lock/<token>``, whose
value names it and when it started, then reads the tags back and proceeds only if its tag is the only live one.
Two contenders can then never both proceed: whoever proceeds read the tags after its own write and before the
other's, and the other reads them after its write and sees it. When both see each other, both step back and try
again after a random pause, so one of them proceeds and the other refuses with the holder's name.

A holder is dead, and its tag is removed by the next release, when it is older than ``stale_after`` seconds, is a
process of this host that no longer runs (a release killed mid-way must not block the next one), or is this very
process but no longer holds it (its release could not remove the tag). ``force`` takes the lock from any holder.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import random
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from opskit.aws import Aws
from opskit.errors import AwsError, ConflictError

LOCK_TAG = "opskit:release-lock"
STALE_AFTER = 2 * 3600
ATTEMPTS = 6
_held: set[str] = set()  # the lock tags this process holds now (threads included)


def holder_name() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def is_lock_tag(key: str) -> bool:
    return key == LOCK_TAG or key.startswith(LOCK_TAG + "/")


def lock_holders(ecs: Any, service_arn: str) -> dict[str, str]:
    """The service's lock tags (key -> "<user>@<host> pid <pid> since <epoch>"), live or dead."""
    return holders_in(ecs.list_tags_for_resource(resourceArn=service_arn).get("tags", []))


def holders_in(tags: Iterable[dict[str, str]]) -> dict[str, str]:
    """The lock tags among a service's ``tags`` (as ListTagsForResource or DescribeServices include them)."""
    return {t["key"]: t["value"] for t in tags if is_lock_tag(t.get("key", ""))}


def release_holder(tags: list[dict[str, str]], stale_after: float = STALE_AFTER) -> str | None:
    """Who is releasing a service now, from its tags (as DescribeServices includes them), or None."""
    live = [
        t["value"]
        for t in tags
        if is_lock_tag(t.get("key", "")) and not _dead(t["key"], t.get("value", ""), stale_after)
    ]
    return min(live, key=_since) if live else None


class ServiceLock:
    """The release lock of one service: :meth:`claim` writes our tag unless a live holder is there, :meth:`confirm`
    reads the tags back and proceeds only if ours is the only live one, :meth:`release` removes it.

    The read before the write can be one the caller made anyway (a release's plan reads the service with its
    tags), so a release pays the lock its write, one read and the removal.
    """

    def __init__(self, aws: Aws, service_arn: str, *, force: bool = False, stale_after: float = STALE_AFTER) -> None:
        self.ecs = aws.client("ecs")
        self.arn = service_arn
        self.force = force
        self.stale_after = stale_after
        self.key = f"{LOCK_TAG}/{uuid.uuid4().hex[:12]}"
        self.value = f"{holder_name()} since {int(time.time())}"
        self.untaggable = False  # services in the old ARN format cannot be tagged: they release without the lock
        self._removed: set[str] = set()  # dead (or, forced, any) holders' tags our claim removed

    def claim(self, holders: dict[str, str] | None = None) -> None:
        """Write our tag, unless a live holder is there (``holders``: lock tags read just now, else read here)."""
        holders = lock_holders(self.ecs, self.arn) if holders is None else holders
        live = {k: v for k, v in holders.items() if not _dead(k, v, self.stale_after)}
        if live and not self.force:
            raise ConflictError(_busy(self.arn, live))
        _held.add(self.key)
        try:
            self.ecs.tag_resource(resourceArn=self.arn, tags=[{"key": self.key, "value": self.value}])
        except AwsError as exc:
            _held.discard(self.key)
            if exc.code == "InvalidParameterException":
                self.untaggable = True
                return
            raise
        except BaseException:
            _held.discard(self.key)
            raise
        gone = [k for k, v in holders.items() if self.force or _dead(k, v, self.stale_after)]
        if gone:
            self.ecs.untag_resource(resourceArn=self.arn, tagKeys=gone)
        self._removed = set(gone)

    def confirm(self) -> None:
        """Proceed if ours is the only live lock tag, as read after our write; when another contender wrote at the
        same time both step back, and whoever comes back first finds the other gone. Raises
        :class:`ConflictError` naming the holder when another has it."""
        for attempt in range(ATTEMPTS):
            if self.untaggable:
                return
            others = self._others(lock_holders(self.ecs, self.arn))
            if not others:
                return
            self.ecs.untag_resource(resourceArn=self.arn, tagKeys=[self.key])
            _held.discard(self.key)
            if attempt == ATTEMPTS - 1:
                raise ConflictError(_busy(self.arn, others))
            time.sleep(random.uniform(0.05, 0.4) * (attempt + 1))
            self.force = False
            self.claim()

    def release(self) -> None:
        """Remove our tag. If AWS stopped answering, the release's own error is the one to show: the tag left behind
        is dead to this process now, to this host once the process ends, and to everyone after ``stale_after``."""
        if self.key not in _held:
            return
        _held.discard(self.key)
        with contextlib.suppress(AwsError):
            self.ecs.untag_resource(resourceArn=self.arn, tagKeys=[self.key])

    def _others(self, holders: dict[str, str]) -> dict[str, str]:
        """Live holders other than us, leaving out those our claim removed (a read may still show them)."""
        return {
            k: v
            for k, v in holders.items()
            if k != self.key and k not in self._removed and not _dead(k, v, self.stale_after)
        }


@contextmanager
def service_lock(
    aws: Aws,
    service_arn: str,
    *,
    force: bool = False,
    stale_after: float = STALE_AFTER,
    holders: dict[str, str] | None = None,
) -> Iterator[ServiceLock]:
    """Hold the release lock of ``service_arn`` inside the block; ``force`` takes it from another holder.

    ``holders``: the service's lock tags as a read made just now saw them (the plan's DescribeServices), so the lock
    need not read them again before its write; it always reads them after."""
    lock = ServiceLock(aws, service_arn, force=force, stale_after=stale_after)
    try:
        lock.claim(holders)
        lock.confirm()
    except BaseException:
        lock.release()
        raise
    try:
        yield lock
    finally:
        lock.release()


def _busy(arn: str, holders: dict[str, str]) -> str:
    first = min(holders.values(), key=_since)
    return (
        f"{arn.rsplit('/', 1)[-1]} is being released by {first}: wait for that release, or pass --force if it is dead"
    )


def _since(value: str) -> int:
    try:
        return int(value.split(" since ", 1)[1].split()[0])
    except (IndexError, ValueError):
        return 0


def _dead(key: str, value: str, stale_after: float) -> bool:
    """Older than ``stale_after``, a process of this host that is gone (its pid no longer runs), or this process
    when it no longer holds that lock (its release failed to remove the tag, say when AWS stopped answering)."""
    since = _since(value)
    if not since or time.time() - since > stale_after:
        return True
    who = value.split(" since ", 1)[0]
    host, _, pid = who.partition(" pid ")
    if host.rsplit("@", 1)[-1] != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return key not in _held
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False

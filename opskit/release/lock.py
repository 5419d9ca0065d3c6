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
from collections.abc import Iterator
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
    answer = ecs.list_tags_for_resource(resourceArn=service_arn)
    return {t["key"]: t["value"] for t in answer.get("tags", []) if is_lock_tag(t["key"])}


def release_holder(tags: list[dict[str, str]], stale_after: float = STALE_AFTER) -> str | None:
    """Who is releasing a service now, from its tags (as DescribeServices includes them), or None."""
    live = [
        t["value"]
        for t in tags
        if is_lock_tag(t.get("key", "")) and not _dead(t["key"], t.get("value", ""), stale_after)
    ]
    return min(live, key=_since) if live else None


@contextmanager
def service_lock(
    aws: Aws, service_arn: str, *, force: bool = False, stale_after: float = STALE_AFTER
) -> Iterator[None]:
    """Hold the release lock of ``service_arn`` inside the block; ``force`` takes it from another holder."""
    ecs = aws.client("ecs")
    key = f"{LOCK_TAG}/{uuid.uuid4().hex[:12]}"
    mine = f"{holder_name()} since {int(time.time())}"
    _held.add(key)
    try:
        _acquire(ecs, service_arn, key, mine, force, stale_after)
    except _Untaggable:
        _held.discard(key)
        yield  # services in the old ARN format cannot be tagged: release without the lock
        return
    except BaseException:
        _held.discard(key)
        raise
    try:
        yield
    finally:
        _held.discard(key)
        # If AWS stopped answering, the release's own error is the one to show. The tag left behind is dead to
        # this process now, to this host once the process ends, and to everyone after ``stale_after``.
        with contextlib.suppress(AwsError):
            ecs.untag_resource(resourceArn=service_arn, tagKeys=[key])


class _Untaggable(Exception):
    pass


def _acquire(ecs: Any, arn: str, key: str, mine: str, force: bool, stale_after: float) -> None:
    others: dict[str, str] = {}
    for attempt in range(ATTEMPTS):
        holders = lock_holders(ecs, arn)
        live = {k: v for k, v in holders.items() if not _dead(k, v, stale_after)}
        if live and not force:
            raise ConflictError(_busy(arn, live))
        try:
            ecs.tag_resource(resourceArn=arn, tags=[{"key": key, "value": mine}])
        except AwsError as exc:
            if exc.code == "InvalidParameterException":
                raise _Untaggable from exc
            raise
        gone = [k for k, v in holders.items() if force or _dead(k, v, stale_after)]
        if gone:
            ecs.untag_resource(resourceArn=arn, tagKeys=gone)
        others = {
            k: v
            for k, v in lock_holders(ecs, arn).items()
            if k != key and k not in gone and not _dead(k, v, stale_after)
        }
        if not others:
            return
        # Someone wrote at the same time: both step back, and whoever comes back first finds the other gone.
        ecs.untag_resource(resourceArn=arn, tagKeys=[key])
        time.sleep(random.uniform(0.05, 0.4) * (attempt + 1))
        force = False
    raise ConflictError(_busy(arn, others))


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

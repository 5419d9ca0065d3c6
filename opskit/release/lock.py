"""A release lock on the service, so two people releasing at once do not trample each other.

The lock is a tag on the ECS service (``opskit:release-lock``) that names its holder and when it was taken.
Taking it re-reads the tags after writing, so of two releases racing, the one whose write landed last proceeds
and the other refuses with the holder's name. A lock older than ``stale_after`` seconds is taken over: a crashed
release must not block the next one forever.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import botocore.exceptions

from opskit.aws import Aws
from opskit.errors import ConflictError

LOCK_TAG = "opskit:release-lock"
STALE_AFTER = 2 * 3600


def holder_name() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def _tags(ecs: object, arn: str) -> dict[str, str]:
    answer = ecs.list_tags_for_resource(resourceArn=arn)  # type: ignore[attr-defined]
    return {t["key"]: t["value"] for t in answer.get("tags", [])}


@contextmanager
def service_lock(
    aws: Aws, service_arn: str, *, force: bool = False, stale_after: float = STALE_AFTER
) -> Iterator[None]:
    """Hold the release lock of ``service_arn`` inside the block; ``force`` takes it from another holder."""
    ecs = aws.client("ecs")
    token = uuid.uuid4().hex[:8]
    mine = f"{holder_name()} since {int(time.time())} [{token}]"
    held = _tags(ecs, service_arn).get(LOCK_TAG)
    if held and not force and not _stale(held, stale_after):
        raise ConflictError(
            f"{service_arn.rsplit('/', 1)[-1]} is being released by {held.rsplit(' [', 1)[0]}: "
            "wait for that release, or pass --force if it is dead"
        )
    try:
        ecs.tag_resource(resourceArn=service_arn, tags=[{"key": LOCK_TAG, "value": mine}])
    except botocore.exceptions.ClientError:
        yield  # services in the old ARN format cannot be tagged: release without the lock
        return
    now_held = _tags(ecs, service_arn).get(LOCK_TAG)
    if now_held != mine:
        raise ConflictError(
            f"{service_arn.rsplit('/', 1)[-1]} is being released by {str(now_held).rsplit(' [', 1)[0]}: "
            "wait for that release, or pass --force if it is dead"
        )
    try:
        yield
    finally:
        if _tags(ecs, service_arn).get(LOCK_TAG) == mine:
            ecs.untag_resource(resourceArn=service_arn, tagKeys=[LOCK_TAG])


def _stale(value: str, stale_after: float) -> bool:
    try:
        since = int(value.split(" since ", 1)[1].split()[0])
    except (IndexError, ValueError):
        return True
    return time.time() - since > stale_after

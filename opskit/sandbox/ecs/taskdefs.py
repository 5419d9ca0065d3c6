"""Task-definition revisions as ECS keeps them.

The sandbox owns this model instead of moto because release work depends on exactly what moto gets wrong
(notes: moto-fidelity): every field of a registered body is kept (including fields botocore does not model yet),
revision numbers are never reused, timestamps come from the sandbox clock, listings page and sort as AWS does,
and DeleteTaskDefinitions moves revisions through DELETE_IN_PROGRESS: ECS removes a deleted revision later, not
inside the call (listable and describable as DELETE_IN_PROGRESS for DELETE_SECONDS of sandbox time), and not at
all while a service or task still uses it.

What ECS changes in a body, the sandbox changes too, because tools read the described body back: task-level
``cpu`` and ``memory`` given in units (``".25 vcpu"``, ``"1 GB"``) come back as numbers of CPU units and MiB, and
the empty lists and defaults ECS fills in (``volumes``, ``placementConstraints``; per container ``cpu: 0``,
``essential: true``, ``portMappings``, ``environment``, ``mountPoints``, ``volumesFrom``) are there, so a tool that
reads ``td["volumes"]`` works here as it does on AWS. Registering a described body again gives the same body.

>>> normalized({"family": "web", "cpu": ".25 vcpu", "memory": "0.5GB",
...             "containerDefinitions": [{"name": "app", "image": "web:1"}]})["cpu"]
'256'
"""

from __future__ import annotations

import bisect
import copy
import json
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from opskit.sandbox.clock import SandboxClock
from opskit.sandbox.server.paging import paginate
from opskit.sandbox.server.wire import ApiError, ApiRequest, Handler, client_error, invalid_parameter

ACTIVE, INACTIVE, DELETE_IN_PROGRESS = "ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS"
MAX_BODY_BYTES = 64 * 1024
MAX_CONTAINERS = 10
MAX_REVISIONS_PER_FAMILY = 1_000_000
MAX_DELETE_BATCH = 10
# Sandbox seconds a deleted revision stays DELETE_IN_PROGRESS when nothing uses it. ECS deletes asynchronously and
# publishes no figure; users see unused revisions listed as DELETE_IN_PROGRESS for minutes after the call.
DELETE_SECONDS = 10 * 60
MAX_TAGS = 50
MAX_TAG_KEY, MAX_TAG_VALUE = 128, 256

# What DescribeTaskDefinition shows for what a registration left out.
TASK_DEFAULTS: dict[str, Any] = {"volumes": [], "placementConstraints": []}
CONTAINER_DEFAULTS: dict[str, Any] = {
    "cpu": 0,
    "portMappings": [],
    "essential": True,
    "environment": [],
    "mountPoints": [],
    "volumesFrom": [],
}

_FAMILY = re.compile(r"^[a-zA-Z0-9_-]{1,255}$")
_ARN = re.compile(r"^arn:aws[a-z-]*:ecs:([a-z0-9-]+):(\d{12}):task-definition/([a-zA-Z0-9_-]+):(\d+)$")
_FAMILY_REVISION = re.compile(r"^([a-zA-Z0-9_-]+):(\d+)$")
_CPU_UNITS = re.compile(r"^\s*(\d*\.?\d+)\s*vcpu\s*$", re.IGNORECASE)
_MEMORY_UNITS = re.compile(r"^\s*(\d*\.?\d+)\s*gb\s*$", re.IGNORECASE)
_TAG_PUNCTUATION = frozenset("_.:/=+-@")


@dataclass
class Revision:
    family: str
    revision: int
    arn: str
    body: dict[str, Any]  # what was registered, minus tags, as ECS keeps it (see normalized)
    tags: list[dict[str, str]]
    registered_at: datetime
    registered_by: str
    status: str = ACTIVE
    deregistered_at: datetime | None = None
    delete_requested_at: datetime | None = None

    def describe(self) -> dict[str, Any]:
        """The taskDefinition object DescribeTaskDefinition returns: the registered body plus read-only fields."""
        out: dict[str, Any] = dict(self.body)
        out.update(
            taskDefinitionArn=self.arn,
            family=self.family,
            revision=self.revision,
            status=self.status,
            requiresAttributes=_requires_attributes(self.body),
            compatibilities=_compatibilities(self.body),
            registeredAt=self.registered_at,
            registeredBy=self.registered_by,
        )
        if self.deregistered_at is not None:
            out["deregisteredAt"] = self.deregistered_at
        if self.delete_requested_at is not None:
            out["deleteRequestedAt"] = self.delete_requested_at
        return out


@dataclass
class _Family:
    revisions: dict[int, Revision] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)  # ascending revision numbers still on record
    last_revision: int = 0  # never decreases: numbers are not reused after deletes


class TaskDefinitions:
    """All revisions of one account and region."""

    def __init__(self, clock: SandboxClock, account_id: str, region: str) -> None:
        self.clock = clock
        self.account_id = account_id
        self.region = region
        self.lock = threading.RLock()
        self._families: dict[str, _Family] = {}
        # Sorted (family, revision) keys per status: list pages are binary searches, not scans.
        self._by_status: dict[str, list[tuple[str, int]]] = {ACTIVE: [], INACTIVE: [], DELETE_IN_PROGRESS: []}
        # Set by the sandbox: is a revision used by a service deployment or a task? (DELETE_IN_PROGRESS stays then)
        self.in_use: Callable[[str], bool] = lambda arn: False

    # -- model ------------------------------------------------------------------------------------------------------
    def register(
        self,
        body: dict[str, Any],
        tags: list[dict[str, str]] | None = None,
        *,
        raw_size: int = 0,
        registered_by: str | None = None,
    ) -> Revision:
        body = dict(body)
        family = body.get("family")
        if not isinstance(family, str) or not _FAMILY.match(family):
            raise client_error("Family must be 1-255 characters: letters, numbers, hyphens and underscores only.")
        containers = body.get("containerDefinitions")
        if not isinstance(containers, list) or not containers:
            raise client_error("Container definitions are required: at least one container definition.")
        if len(containers) > MAX_CONTAINERS:
            raise client_error(
                f"Too many containers: a task definition has at most {MAX_CONTAINERS} container definitions."
            )
        names = set()
        for container in containers:
            if not isinstance(container, dict) or not container.get("name"):
                raise client_error("Container.name should not be null or empty.")
            if not container.get("image"):
                raise client_error("Container.image should not be null or empty.")
            if container["name"] in names:
                raise client_error(f"Container names must be unique: {container['name']!r} appears twice.")
            names.add(container["name"])
        if "FARGATE" in (body.get("requiresCompatibilities") or []):
            if body.get("networkMode") != "awsvpc":
                raise client_error("Fargate only supports network mode 'awsvpc'.")
            if not body.get("cpu") or not body.get("memory"):
                raise client_error("Fargate requires task definition to have cpu and memory values set.")
        size = raw_size or len(json.dumps(body))
        if size > MAX_BODY_BYTES:
            raise client_error(f"Actual length: '{size}'. Max allowed length is '{MAX_BODY_BYTES}' bytes.")
        body = normalized(body)
        tags = validate_tags(tags or [])
        with self.lock:
            fam = self._families.setdefault(family, _Family())
            if fam.last_revision >= MAX_REVISIONS_PER_FAMILY:
                raise client_error(
                    f"Too many revisions: family {family} has reached {MAX_REVISIONS_PER_FAMILY} revisions."
                )
            fam.last_revision += 1
            number = fam.last_revision
            rev = Revision(
                family=family,
                revision=number,
                arn=self.arn(family, number),
                body=body,
                tags=list(tags or []),
                registered_at=self.clock.now(),
                registered_by=registered_by or f"arn:aws:iam::{self.account_id}:root",
            )
            fam.revisions[number] = rev
            fam.order.append(number)
            bisect.insort(self._by_status[ACTIVE], (family, number))  # at the end, usually: O(log n)
            return rev

    def arn(self, family: str, revision: int) -> str:
        return f"arn:aws:ecs:{self.region}:{self.account_id}:task-definition/{family}:{revision}"

    def resolve(self, reference: str, *, latest_active: bool = True) -> Revision:
        """Find a revision by ARN, ``family:revision`` or (latest ACTIVE) ``family``."""
        if not isinstance(reference, str) or not reference:
            raise client_error("Unable to describe task definition.")
        with self.lock:
            match = _ARN.match(reference) or None
            if match:
                family, number = match.group(3), int(match.group(4))
            elif m := _FAMILY_REVISION.match(reference):
                family, number = m.group(1), int(m.group(2))
            elif _FAMILY.match(reference) and latest_active:
                fam = self._families.get(reference) or _Family()
                for number in reversed(fam.order):
                    if fam.revisions[number].status == ACTIVE:
                        return fam.revisions[number]
                raise client_error("Unable to describe task definition.")
            else:
                raise client_error("Unable to describe task definition.")
            found = self._families.get(family)
            if found is None or number not in found.revisions:
                raise client_error("Unable to describe task definition.")
            return found.revisions[number]

    def deregister(self, reference: str) -> Revision:
        if not isinstance(reference, str) or not (_ARN.match(reference) or _FAMILY_REVISION.match(reference)):
            raise client_error("Revision must be specified: pass family:revision or the full ARN.")
        with self.lock:
            rev = self.resolve(reference, latest_active=False)
            if rev.status != ACTIVE:
                raise client_error("The specified task definition is already inactive.")
            self._move(rev, INACTIVE)
            rev.deregistered_at = self.clock.now()
            return rev

    def delete(self, references: Any) -> tuple[list[Revision], list[dict[str, str]]]:
        if not isinstance(references, list) or not references:
            raise invalid_parameter("taskDefinitions must list between 1 and 10 task definitions.")
        if len(references) > MAX_DELETE_BATCH:
            raise invalid_parameter(f"taskDefinitions can contain at most {MAX_DELETE_BATCH} task definitions.")
        deleted: list[Revision] = []
        failures: list[dict[str, str]] = []
        with self.lock:
            for reference in references:
                try:
                    if not isinstance(reference, str) or not (
                        _ARN.match(reference) or _FAMILY_REVISION.match(reference)
                    ):
                        raise client_error("Unable to describe task definition.")
                    rev = self.resolve(reference, latest_active=False)
                except ApiError:
                    failures.append({"arn": str(reference), "reason": "The specified task definition does not exist."})
                    continue
                if rev.status == ACTIVE:
                    failures.append(
                        {
                            "arn": rev.arn,
                            "reason": "The specified task definition is still in ACTIVE status. "
                            "Please deregister the target and try again.",
                        }
                    )
                    continue
                if rev.status == INACTIVE:
                    self._move(rev, DELETE_IN_PROGRESS)
                    rev.delete_requested_at = self.clock.now()
                deleted.append(rev)
            self.reap()
        return deleted, failures

    def reap(self) -> int:
        """Remove DELETE_IN_PROGRESS revisions deleted DELETE_SECONDS ago or more that nothing uses any more;
        returns how many went."""
        with self.lock:
            now = self.clock.now()
            gone = [
                key
                for key in self._by_status[DELETE_IN_PROGRESS]
                if self._deletion_due(self._families[key[0]].revisions[key[1]], now) and not self.in_use(self.arn(*key))
            ]
            for family, number in gone:
                fam = self._families[family]
                self._move(fam.revisions[number], None)
                del fam.revisions[number]
                fam.order.remove(number)
            return len(gone)

    @staticmethod
    def _deletion_due(rev: Revision, now: datetime) -> bool:
        requested = rev.delete_requested_at
        return requested is None or (now - requested).total_seconds() >= DELETE_SECONDS

    def revisions(self, status: str | None = None) -> Iterator[Revision]:
        with self.lock:
            keys = (
                list(self._by_status[status])
                if status
                else sorted(k for keys in self._by_status.values() for k in keys)
            )
            for family, number in keys:
                yield self._families[family].revisions[number]

    def families(self) -> list[str]:
        with self.lock:
            return sorted(name for name, fam in self._families.items() if fam.revisions)

    def _move(self, rev: Revision, status: str | None) -> None:
        key = (rev.family, rev.revision)
        keys = self._by_status[rev.status]
        index = bisect.bisect_left(keys, key)
        if index < len(keys) and keys[index] == key:
            del keys[index]
        if status is not None:
            bisect.insort(self._by_status[status], key)
            rev.status = status

    # -- wire -------------------------------------------------------------------------------------------------------
    def handlers(self) -> dict[str, Handler]:
        return {
            "RegisterTaskDefinition": self._register,
            "DescribeTaskDefinition": self._describe,
            "ListTaskDefinitions": self._list,
            "ListTaskDefinitionFamilies": self._list_families,
            "DeregisterTaskDefinition": self._deregister,
            "DeleteTaskDefinitions": self._delete,
        }

    def _register(self, request: ApiRequest) -> dict[str, Any]:
        params = dict(request.params)
        tags = params.pop("tags", None) or []
        rev = self.register(params, tags, raw_size=len(request.raw_body), registered_by=request.caller_arn)
        out: dict[str, Any] = {"taskDefinition": rev.describe()}
        if tags:
            out["tags"] = tags
        return out

    def _describe(self, request: ApiRequest) -> dict[str, Any]:
        rev = self.resolve(request.params.get("taskDefinition", ""))
        out: dict[str, Any] = {"taskDefinition": rev.describe()}
        if "TAGS" in (request.params.get("include") or []):
            out["tags"] = rev.tags
        return out

    def _list(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        status = params.get("status") or ACTIVE
        if status not in self._by_status:
            raise invalid_parameter("status must be one of ACTIVE, INACTIVE, DELETE_IN_PROGRESS.")
        sort = params.get("sort") or "ASC"
        if sort not in ("ASC", "DESC"):
            raise invalid_parameter("sort must be ASC or DESC.")
        family = params.get("familyPrefix")
        with self.lock:
            keys = self._by_status[status]
            if family:
                lo = bisect.bisect_left(keys, (family, 0))
                hi = bisect.bisect_left(keys, (family, MAX_REVISIONS_PER_FAMILY + 1))
                keys = keys[lo:hi]
            page, token = paginate(
                keys,
                key=lambda k: k,
                max_results=params.get("maxResults"),
                next_token=params.get("nextToken"),
                default=100,
                limit=100,
                query=f"list-task-definitions:{status}:{family}",
                descending=sort == "DESC",
            )
        out: dict[str, Any] = {"taskDefinitionArns": [self.arn(*key) for key in page]}
        if token:
            out["nextToken"] = token
        return out

    def _list_families(self, request: ApiRequest) -> dict[str, Any]:
        params = request.params
        status = params.get("status") or ACTIVE
        if status not in ("ACTIVE", "INACTIVE", "ALL"):
            raise invalid_parameter("status must be one of ACTIVE, INACTIVE, ALL.")
        prefix = params.get("familyPrefix") or ""
        with self.lock:
            names = []
            for name in sorted(self._families):
                fam = self._families[name]
                if not name.startswith(prefix) or not fam.revisions:
                    continue
                has_active = any(r.status == ACTIVE for r in fam.revisions.values())
                if status == "ALL" or (status == ACTIVE) == has_active:
                    names.append(name)
        page, token = paginate(
            names,
            key=lambda n: n,
            max_results=params.get("maxResults"),
            next_token=params.get("nextToken"),
            default=100,
            limit=100,
            query=f"list-task-definition-families:{status}:{prefix}",
        )
        out: dict[str, Any] = {"families": page}
        if token:
            out["nextToken"] = token
        return out

    def _deregister(self, request: ApiRequest) -> dict[str, Any]:
        return {"taskDefinition": self.deregister(request.params.get("taskDefinition", "")).describe()}

    def _delete(self, request: ApiRequest) -> dict[str, Any]:
        deleted, failures = self.delete(request.params.get("taskDefinitions"))
        return {"taskDefinitions": [rev.describe() for rev in deleted], "failures": failures}

    # -- tags (TagResource & co. on task-definition ARNs) -----------------------------------------------------------
    def tags_of(self, arn: str) -> list[dict[str, str]]:
        return self.resolve(arn, latest_active=False).tags

    def tag(self, arn: str, tags: list[dict[str, str]]) -> None:
        tags = validate_tags(tags)
        with self.lock:
            rev = self.resolve(arn, latest_active=False)
            merged = {t["key"]: t.get("value", "") for t in rev.tags}
            merged.update({t["key"]: t.get("value", "") for t in tags})
            if len(merged) > MAX_TAGS:
                raise invalid_parameter(
                    f"Too many tags: {arn} would have {len(merged)}; a resource has at most {MAX_TAGS}. "
                    "Untag some first (UntagResource)."
                )
            rev.tags = [{"key": k, "value": v} for k, v in merged.items()]

    def untag(self, arn: str, keys: list[str]) -> None:
        with self.lock:
            rev = self.resolve(arn, latest_active=False)
            rev.tags = [t for t in rev.tags if t["key"] not in set(keys)]


# -- what ECS makes of a registered body ------------------------------------------------------------------------------
def normalized(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as ECS keeps and describes it: task cpu and memory in CPU units and MiB (strings of numbers), and
    the defaults ECS fills in. Raises ClientException for a cpu or memory ECS cannot read."""
    out = copy.deepcopy(body)
    for key, pattern, unit in (("cpu", _CPU_UNITS, 1024), ("memory", _MEMORY_UNITS, 1024)):
        if out.get(key) is not None:
            out[key] = _task_size(key, out[key], pattern, unit)
    for key, default in TASK_DEFAULTS.items():
        out.setdefault(key, copy.deepcopy(default))
    host_ports = out.get("networkMode") in ("awsvpc", "host")
    for container in out["containerDefinitions"]:
        for key, default in CONTAINER_DEFAULTS.items():
            container.setdefault(key, copy.deepcopy(default))
        for mapping in container["portMappings"] if isinstance(container["portMappings"], list) else []:
            if not isinstance(mapping, dict):
                continue
            mapping.setdefault("protocol", "tcp")
            if host_ports and "containerPort" in mapping:  # these modes publish the container's own port
                mapping.setdefault("hostPort", mapping["containerPort"])
    return out


def _task_size(key: str, value: Any, units: re.Pattern[str], per_unit: int) -> str:
    """``"512"``, ``".5 vcpu"`` or ``"0.5GB"`` as ECS stores it: the number of CPU units or MiB, as a string."""
    text = str(value).strip()
    match = units.match(text)
    number: Decimal | None = None
    try:
        if match:
            number = Decimal(match.group(1)) * per_unit
        elif text.isascii() and text.isdigit():
            number = Decimal(text)
    except InvalidOperation:
        number = None
    if number is None or number <= 0 or number != number.to_integral_value():
        example = "'256', '.25 vcpu' or '1 vCPU'" if key == "cpu" else "'512', '0.5GB' or '2 GB'"
        raise client_error(
            f"Invalid '{key}' setting for task: {value!r}. Give {'CPU units' if key == 'cpu' else 'MiB'} as a "
            f"number in a string, or {'vCPUs' if key == 'cpu' else 'GB'} with the unit: {example}."
        )
    return str(int(number))


def validate_tags(tags: Any) -> list[dict[str, str]]:
    """Tags as ECS accepts them (at most 50; keys 1-128 characters, unique, not ``aws:``; values 0-256), or
    InvalidParameterException saying which tag is wrong."""
    if not isinstance(tags, list):
        raise invalid_parameter("tags must be a list of {key, value} objects.")
    if len(tags) > MAX_TAGS:
        raise invalid_parameter(f"Too many tags: {len(tags)} given; a resource has at most {MAX_TAGS} tags.")
    seen: set[str] = set()
    for tag in tags:
        key = tag.get("key") if isinstance(tag, dict) else None
        value = tag.get("value", "") if isinstance(tag, dict) else None
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_TAG_KEY:
            raise invalid_parameter(f"Tag key {key!r} is not valid: a key is 1 to {MAX_TAG_KEY} characters.")
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            raise invalid_parameter(
                f"The value of tag {key!r} is not valid: a value is 0 to {MAX_TAG_VALUE} characters."
            )
        if key.lower().startswith("aws:"):
            raise invalid_parameter(f"Tag key {key!r} is not valid: the aws: prefix is reserved for AWS's use.")
        bad = next((c for c in key + value if not _tag_character(c)), None)
        if bad is not None:
            raise invalid_parameter(
                f"Tag {key!r} is not valid: {bad!r} is not allowed; use letters, numbers, spaces and + - = . _ : / @."
            )
        if key in seen:
            raise invalid_parameter(f"Tag key {key!r} appears twice: each key of a resource has one value.")
        seen.add(key)
    return [dict(tag) for tag in tags]


def _tag_character(char: str) -> bool:
    """ECS's tag pattern ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]``: letters, separators (spaces), numbers, and a little
    punctuation."""
    return char in _TAG_PUNCTUATION or unicodedata.category(char)[0] in "LZN"


def _compatibilities(body: dict[str, Any]) -> list[str]:
    out = ["EC2"]
    if body.get("networkMode") == "awsvpc" and body.get("cpu") and body.get("memory"):
        out.append("FARGATE")
    return out


def _requires_attributes(body: dict[str, Any]) -> list[dict[str, str]]:
    attributes = []
    if body.get("networkMode") == "awsvpc":
        attributes.append({"name": "ecs.capability.task-eni"})
    if body.get("taskRoleArn"):
        attributes.append({"name": "com.amazonaws.ecs.capability.task-iam-role"})
    if any(c.get("secrets") for c in body.get("containerDefinitions", [])):
        attributes.append({"name": "ecs.capability.secrets.asm.environment-variables"})
    return attributes

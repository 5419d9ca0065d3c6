"""Task-definition bodies as ECS means them, so that comparing two shows only what really differs.

A revision described by ECS and the same task definition kept in a file rarely read the same: ECS fills in what a
registration left out (``essential: true``, ``cpu: 0``, empty lists, ``protocol: tcp`` ...), returns read-only fields
and lists environment variables in whatever order they were given. :func:`normalised` drops the read-only fields and
fills in every default of :data:`DEFAULTS` (the one table of them); :func:`minimal` leaves the defaults out instead,
in a stable key order, for a file kept in the repository; :func:`differences` says where two normalised bodies
differ, values masked as everywhere else (:mod:`opskit.masking`).

Pure functions over the JSON bodies AWS returns (read with :meth:`opskit.aws.Aws.call_json`): fields the installed
botocore does not model are kept and compared like any other.

>>> live = {"family": "web", "revision": 3, "containerDefinitions": [
...     {"name": "web", "image": "web:1", "cpu": 0, "essential": True, "portMappings": [
...         {"containerPort": 8080, "protocol": "tcp"}], "environment": [], "mountPoints": [], "volumesFrom": []}],
...     "volumes": [], "placementConstraints": []}
>>> kept = {"family": "web", "containerDefinitions": [
...     {"name": "web", "image": "web:1", "portMappings": [{"containerPort": 8080}]}]}
>>> normalised(live) == normalised(kept), minimal(live) == kept
(True, True)
>>> [d.path for d in differences(normalised(live), normalised({**kept, "cpu": "1 vCPU"}))]
['cpu']
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opskit.masking import mask
from opskit.release.taskdef import registrable

Body = dict[str, Any]


def _not_windows(task: Body) -> bool:
    family = str((task.get("runtimePlatform") or {}).get("operatingSystemFamily") or "")
    return not family.upper().startswith("WINDOWS")


def _publishes_container_port(task: Body) -> bool:
    return task.get("networkMode") in ("awsvpc", "host")


@dataclass(frozen=True)
class Default:
    """``field`` of every object at ``scope`` is ``value`` when left out, where ``when`` holds for the task.

    ``scope``: ``task``, ``container`` (each of ``containerDefinitions``), or a container's list field
    (``portMappings``, ...) for each of its items. ``value`` may be a function of the item (hostPort)."""

    scope: str
    field: str
    value: Any
    when: Callable[[Body], bool] | None = None

    def applies(self, task: Body, item: Body) -> bool:
        return (self.when is None or self.when(task)) and (not callable(self.value) or "containerPort" in item)

    def for_item(self, item: Body) -> Any:
        return self.value(item) if callable(self.value) else copy.deepcopy(self.value)


# What ECS takes a left-out field to mean, and where that is said. "ecs model" is botocore's service model
# (botocore/data/ecs), the documentation string of that shape's member; "observed" is what DescribeTaskDefinition
# returns for a revision registered without the field (on AWS, and the sandbox does the same).
DEFAULTS: tuple[Default, ...] = (
    # ecs model, RegisterTaskDefinitionRequest.networkMode: "If no network mode is specified, the default is
    # bridge" (EC2 Linux; Windows has its own <default>, Fargate needs awsvpc). Observed: DescribeTaskDefinition
    # then returns no networkMode at all, so the live side needs filling in as much as the file.
    Default("task", "networkMode", "bridge", when=_not_windows),
    # Observed: DescribeTaskDefinition returns [] for both when the registration had none.
    Default("task", "volumes", []),
    Default("task", "placementConstraints", []),
    # ecs model, RegisterTaskDefinitionRequest.requiresCompatibilities: "If no value is specified, the parameter is
    # omitted from the response" (not defaulted: left out and [] are the same thing).
    Default("task", "requiresCompatibilities", []),
    # ecs model, RegisterTaskDefinitionRequest.enableFaultInjection: "The default value is false."
    Default("task", "enableFaultInjection", False),
    # ecs model, ContainerDefinition.essential: "If this parameter is omitted, a container is assumed to be
    # essential." Observed: returned as true.
    Default("container", "essential", True),
    # Observed: returned as 0 (ecs model, ContainerDefinition.cpu: null and zero are passed to Docker alike).
    Default("container", "cpu", 0),
    # Observed: returned as [] when the registration had none.
    Default("container", "portMappings", []),
    Default("container", "environment", []),
    Default("container", "mountPoints", []),
    Default("container", "volumesFrom", []),
    # ecs model, ContainerDefinition.versionConsistency: "By default, the value is enabled."
    Default("container", "versionConsistency", "enabled"),
    # ecs model, PortMapping.protocol: "The default is tcp." Observed: returned as tcp.
    Default("portMappings", "protocol", "tcp"),
    # ecs model, PortMapping.hostPort and ContainerDefinition.portMappings: with awsvpc "the hostPort is set to the
    # same value as the containerPort"; with host, host ports "must either be undefined or they must match the
    # container port". Observed: returned so under awsvpc; under bridge it stays out (a dynamic port).
    Default("portMappings", "hostPort", lambda mapping: mapping["containerPort"], when=_publishes_container_port),
    # ecs model, MountPoint.readOnly and VolumeFrom.readOnly: "The default value is false."
    Default("mountPoints", "readOnly", False),
    Default("volumesFrom", "readOnly", False),
)

# Lists whose order means nothing to ECS (each name set once), compared sorted by name.
BY_NAME = ("environment", "secrets")

# Task-level cpu and memory in units: ecs model, RegisterTaskDefinitionRequest.cpu and .memory: "String values are
# converted to an integer indicating the CPU units [MiB] when the task definition is registered" ("1 vCPU", "1 GB").
_UNITS = {
    "cpu": re.compile(r"^\s*(\d*\.?\d+)\s*vcpu\s*$", re.I),
    "memory": re.compile(r"^\s*(\d*\.?\d+)\s*gb\s*$", re.I),
}

# Tags a release sets itself (its commit) and AWS's own (aws:..., which nobody can set): not the file's to say.
RELEASE_TAGS = ("commit",)


def normalised(body: Body) -> Body:
    """``body`` (a described revision or a file's) as ECS means it: read-only fields and ``tags`` dropped, every
    default of :data:`DEFAULTS` filled in, task cpu and memory in units, environment and secrets sorted by name."""
    out = {k: v for k, v in registrable(body).items() if k != "tags"}
    for key, pattern in _UNITS.items():
        if isinstance(out.get(key), (str, int)) and not isinstance(out[key], bool):
            out[key] = _units(out[key], pattern)
    for default, item in _places(out):
        if default.field not in item and default.applies(out, item):
            item[default.field] = default.for_item(item)
    for container in _containers(out):
        for key in BY_NAME:
            if isinstance(container.get(key), list):
                container[key] = sorted(container[key], key=lambda v: str(v.get("name")) if isinstance(v, dict) else "")
    return out


def minimal(body: Body) -> Body:
    """``body`` normalised, then with every field that holds its default left out, in a stable order (the ecs
    model's, as ``aws ecs register-task-definition --generate-cli-skeleton`` lists them; fields it does not know
    after, sorted): what to keep in a file. ``normalised(minimal(b)) == normalised(b)``."""
    full = normalised(body)
    out = copy.deepcopy(full)
    # Decided on the full body (hostPort needs networkMode), applied to the copy: innermost first.
    for default, item in reversed(list(_places(out))):
        if default.field in item and default.applies(full, item) and item[default.field] == default.for_item(item):
            del item[default.field]
    ordered_body: Body = ordered(out)
    return ordered_body


def comparable_tags(tags: Iterable[dict[str, str]] | None) -> list[dict[str, str]]:
    """A revision's tags as a file says them: sorted by key, without the ones a release sets (its commit) and AWS's
    own (``aws:``)."""
    kept = [
        {"key": str(t["key"]), "value": str(t.get("value", ""))}
        for t in tags or []
        if t["key"] not in RELEASE_TAGS and not str(t["key"]).lower().startswith("aws:")
    ]
    return sorted(kept, key=lambda t: t["key"])


def comparable(body: Body, tags: Iterable[dict[str, str]] | None) -> Body:
    """What :func:`differences` and the diff compare: the normalised body and its :func:`comparable_tags`."""
    return {**normalised(body), "tags": comparable_tags(tags)}


@dataclass(frozen=True)
class Difference:
    """One place where two bodies differ: ``path`` such as ``containerDefinitions[web].memory`` (list items by
    their name, else their index), each side's value masked (None where that side has nothing)."""

    path: str
    live: Any
    file: Any

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "live": self.live, "file": self.file}


_MISSING: Any = object()


def differences(live: Body, file: Body) -> list[Difference]:
    """Where ``live`` and ``file`` differ (both normalised, or both :func:`comparable`), values masked; empty when
    they are the same."""
    out: list[Difference] = []
    _walk("", live, file, mask(live), mask(file), out)
    return out


def _walk(path: str, a: Any, b: Any, a_shown: Any, b_shown: Any, out: list[Difference]) -> None:
    if a is not _MISSING and b is not _MISSING and type(a) is type(b) and a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            where = f"{path}.{key}" if path else str(key)
            _walk(where, a.get(key, _MISSING), b.get(key, _MISSING), a_shown.get(key), b_shown.get(key), out)
        return
    if isinstance(a, list) and isinstance(b, list):
        key = _key_of(a, b)
        if key is not None:
            a_items = {item[key]: (item, shown) for item, shown in zip(a, a_shown, strict=True)}
            b_items = {item[key]: (item, shown) for item, shown in zip(b, b_shown, strict=True)}
            for name in [*a_items, *(n for n in b_items if n not in a_items)]:
                left, left_shown = a_items.get(name, (_MISSING, None))
                right, right_shown = b_items.get(name, (_MISSING, None))
                _walk(f"{path}[{name}]", left, right, left_shown, right_shown, out)
            shared = [n for n in a_items if n in b_items]
            if shared != [n for n in b_items if n in a_items]:
                out.append(Difference(path, shared, [n for n in b_items if n in a_items]))  # the same, in another order
            return
        if len(a) == len(b):
            for index, (left, right, left_shown, right_shown) in enumerate(zip(a, b, a_shown, b_shown, strict=True)):
                _walk(f"{path}[{index}]", left, right, left_shown, right_shown, out)
            return
    out.append(Difference(path, None if a is _MISSING else a_shown, None if b is _MISSING else b_shown))


def _key_of(a: list[Any], b: list[Any]) -> str | None:
    """The field that names the items of both lists (``name``, or ``key`` for tags), when every item has its own."""
    for key in ("name", "key"):
        names = [item.get(key) if isinstance(item, dict) else None for item in [*a, *b]]
        named = bool(names) and all(isinstance(n, str) for n in names)
        if named and len(set(names[: len(a)])) == len(a) and len(set(names[len(a) :])) == len(b):
            return key
    return None


def _containers(body: Body) -> list[Body]:
    return [c for c in body.get("containerDefinitions") or [] if isinstance(c, dict)]


def _places(body: Body) -> Iterable[tuple[Default, Body]]:
    """Each default with each object it applies to in ``body``, outermost first."""
    for default in DEFAULTS:
        if default.scope == "task":
            yield default, body
    for container in _containers(body):
        for default in DEFAULTS:
            if default.scope == "container":
                yield default, container
        for default in DEFAULTS:
            if default.scope not in ("task", "container") and isinstance(container.get(default.scope), list):
                for item in container[default.scope]:
                    if isinstance(item, dict):
                        yield default, item


def _units(value: str | int, pattern: re.Pattern[str]) -> str:
    text = str(value).strip()
    match = pattern.match(text)
    if match:
        number = float(match.group(1)) * 1024
        if number.is_integer():
            return str(int(number))
    return text


@functools.cache
def _model() -> Any:
    from opskit.aws import service_model

    return service_model("ecs")


def ordered(body: Body) -> Body:
    """``body`` with its keys in the ecs model's order (RegisterTaskDefinitionRequest's members, and so on down),
    fields the model does not know after them, sorted; map keys (dockerLabels, options ...) sorted."""
    result: Body = _ordered(body, _model().shape_for("RegisterTaskDefinitionRequest"))
    return result


def _ordered(value: Any, shape: Any) -> Any:
    type_name = getattr(shape, "type_name", None)
    if isinstance(value, list):
        return [_ordered(item, shape.member if type_name == "list" else None) for item in value]
    if not isinstance(value, dict):
        return value
    if type_name == "structure":
        known = [k for k in shape.members if k in value]
        rest = sorted(k for k in value if k not in shape.members)
        return {k: _ordered(value[k], shape.members.get(k)) for k in [*known, *rest]}
    inner = shape.value if type_name == "map" else None
    return {k: _ordered(value[k], inner) for k in sorted(value)}


__all__ = [
    "DEFAULTS",
    "Default",
    "Difference",
    "comparable",
    "comparable_tags",
    "differences",
    "minimal",
    "normalised",
    "ordered",
]

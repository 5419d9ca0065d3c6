"""The revision rule: which revisions a cleanup keeps, deregisters or deletes, and why. Pure: records in, decisions out.

>>> inventory = Inventory(revisions, services, history, tasks, now=datetime.now(UTC))   # doctest: +SKIP
>>> [(d.revision, d.fate, d.reason) for d in decide_revisions(inventory, CleanupOptions(keep=2))]  # doctest: +SKIP
[(1, 'deregister', 'not in use, not a rollback target, #3 of web, 40 days old'), (2, 'keep', ...), ...]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opskit.cleanup.options import CleanupOptions
from opskit.library.rollback import rollback_targets
from opskit.records import DeploymentRecord, ImageRecord, RevisionRecord, ServiceRecord, TaskRecord

KEEP, DEREGISTER, DEREGISTER_DELETE, DELETE, DELETING = "keep", "deregister", "deregister+delete", "delete", "deleting"
FATES = (KEEP, DEREGISTER, DEREGISTER_DELETE, DELETE, DELETING)
# Why a revision is kept, strongest first (the first one found is the reason shown).
PROTECTIONS = ("deployment", "task", "rollback", "pinned", "newest", "young")
DAY = 86_400.0


@dataclass(frozen=True)
class Inventory:
    """Everything a cleanup plan is decided from, as records; ``now`` is when "N days old" is measured from.

    ``deployments`` is every service's deployment history (for rollback targets); ``tasks`` are the tasks ECS
    wants running (desired status RUNNING, so PENDING ones too); ``image_children`` maps
    ``repository@digest`` of an image index to the digests of the manifests it lists.
    """

    revisions: tuple[RevisionRecord, ...]
    services: tuple[ServiceRecord, ...]
    deployments: tuple[DeploymentRecord, ...]
    tasks: tuple[TaskRecord, ...]
    now: datetime
    images: tuple[ImageRecord, ...] = ()
    image_children: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class RevisionDecision:
    """One revision's fate: ``keep``, ``deregister``, ``deregister+delete``, ``delete`` (INACTIVE), or
    ``deleting`` (already DELETE_IN_PROGRESS: nothing to do). ``protections`` lists every reason to keep it."""

    family: str
    revision: int
    arn: str
    status: str
    registered_at: datetime | None
    fate: str
    reason: str
    protections: tuple[str, ...] = ()
    images: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.family}:{self.revision}"

    @property
    def deregisters(self) -> bool:
        return self.fate in (DEREGISTER, DEREGISTER_DELETE)

    @property
    def deletes(self) -> bool:
        return self.fate in (DELETE, DEREGISTER_DELETE)

    @property
    def acts(self) -> bool:
        return self.deregisters or self.deletes

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "revision": self.revision,
            "arn": self.arn,
            "status": self.status,
            "registered_at": self.registered_at.isoformat() if self.registered_at else None,
            "fate": self.fate,
            "reason": self.reason,
            "protections": list(self.protections),
            "images": list(self.images),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RevisionDecision:
        registered = data.get("registered_at")
        return cls(
            family=data["family"],
            revision=int(data["revision"]),
            arn=data["arn"],
            status=data["status"],
            registered_at=datetime.fromisoformat(registered) if registered else None,
            fate=data["fate"],
            reason=data["reason"],
            protections=tuple(data.get("protections") or ()),
            images=tuple(data.get("images") or ()),
        )


def revision_key(reference: str | None) -> str:
    """``family:revision`` of an ARN (or of ``family:revision`` itself): ARNs of one account and region compare
    equal however they are spelled."""
    if not reference:
        return ""
    return reference.rsplit("task-definition/", 1)[-1]


@dataclass(frozen=True)
class InUse:
    """Why revisions (by ``family:revision``) are in use: deployments and tasks, with words to show."""

    deployments: Mapping[str, tuple[str, ...]]
    tasks: Mapping[str, tuple[str, ...]]

    def reason(self, key: str) -> str | None:
        if key in self.deployments:
            return "used by " + ", ".join(self.deployments[key])
        if key in self.tasks:
            return "run by " + ", ".join(self.tasks[key])
        return None


def in_use(
    services: Iterable[ServiceRecord], history: Iterable[DeploymentRecord], tasks: Iterable[TaskRecord]
) -> InUse:
    """Revisions a service deployment (PRIMARY, ACTIVE, or a rollout in progress) or a wanted task uses."""
    deployments: dict[str, list[str]] = defaultdict(list)
    for service in services:
        if service.status == "INACTIVE":
            continue
        name = f"{service.cluster}/{service.service}"
        if service.task_definition and not service.deployments:
            deployments[revision_key(service.task_definition)].append(f"{name} (current)")
        for deployment in service.deployments:
            if deployment.task_definition:
                label = f"{name} ({deployment.status or 'deployment'})"
                deployments[revision_key(deployment.task_definition)].append(label)
    for deployment in history:
        if deployment.rollout_state == "IN_PROGRESS" and deployment.task_definition:
            label = f"{deployment.cluster}/{deployment.service} (rollout in progress)"
            deployments[revision_key(deployment.task_definition)].append(label)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for task in tasks:
        if task.desired_status != "STOPPED":  # stopping tasks go away; ECS holds a deletion until they do
            where = f"{task.cluster}/{task.service}" if task.service else f"{task.cluster} ({task.group or 'task'})"
            counts[revision_key(task.task_definition)][where] += 1
    task_words = {
        key: tuple(f"{n} task{'s' if n > 1 else ''} of {where}" for where, n in sorted(places.items()))
        for key, places in counts.items()
    }
    return InUse({k: tuple(dict.fromkeys(v)) for k, v in deployments.items()}, task_words)


def rollback_protection(
    services: Iterable[ServiceRecord], history: Iterable[DeploymentRecord], depth: int
) -> dict[str, str]:
    """``family:revision`` -> why it is a rollback target (its rank for a service), for every service."""
    by_service: dict[tuple[str, str], list[DeploymentRecord]] = defaultdict(list)
    for deployment in history:
        by_service[(deployment.cluster, deployment.service)].append(deployment)
    out: dict[str, str] = {}
    for service in services:
        if service.status == "INACTIVE":
            continue
        # What the service shows now counts too: a history that was never synced still knows the current ones.
        known = [*by_service[(service.cluster, service.service)], *service.deployments]
        targets = rollback_targets(known, service.task_definition, depth=depth)
        for rank, arn in enumerate(targets, start=1):
            out.setdefault(revision_key(arn), f"rollback target {rank} of {service.cluster}/{service.service}")
    return out


def decide_revisions(inventory: Inventory, options: CleanupOptions) -> list[RevisionDecision]:
    """Every revision of the families in scope (all, without ``options.families``), oldest first, with its fate."""
    wanted = set(options.families)
    revisions = [r for r in inventory.revisions if not wanted or r.family in wanted]
    using = in_use(inventory.services, inventory.deployments, inventory.tasks)
    targets = rollback_protection(inventory.services, inventory.deployments, options.rollback_depth)
    rank = _newest_ranks(revisions)
    pins = set(options.pin_tags)
    decisions = []
    for record in sorted(revisions, key=lambda r: (r.family, r.revision)):
        key = f"{record.family}:{record.revision}"
        age = _age_days(record.registered_at, inventory.now)
        why: dict[str, str] = {}
        if key in using.deployments:
            why["deployment"] = using.reason(key) or ""
        if key in using.tasks:
            why["task"] = "run by " + ", ".join(using.tasks[key])
        if key in targets:
            why["rollback"] = targets[key]
        pinned = sorted(k for k, _ in record.tags if k in pins)
        if pinned:
            why["pinned"] = f"pinned by tag {pinned[0]}"
        if key in rank and rank[key] <= options.keep:
            why["newest"] = f"newest {options.keep} of {record.family} (#{rank[key]})"
        if options.keep_days and (age is None or age < options.keep_days):
            why["young"] = (
                "registration time unknown" if age is None else f"{age:.1f} days old (< {options.keep_days:g})"
            )
        protections = tuple(p for p in PROTECTIONS if p in why)
        fate, reason = _fate(record, protections, why, rank.get(key), age, options)
        decisions.append(
            RevisionDecision(
                family=record.family,
                revision=record.revision,
                arn=record.arn,
                status=record.status,
                registered_at=record.registered_at,
                fate=fate,
                reason=reason,
                protections=protections,
                images=tuple(dict.fromkeys(c.image for c in record.containers)),
            )
        )
    return decisions


def _fate(
    record: RevisionRecord,
    protections: tuple[str, ...],
    why: dict[str, str],
    rank: int | None,
    age: float | None,
    options: CleanupOptions,
) -> tuple[str, str]:
    if record.status == "DELETE_IN_PROGRESS":
        held = f"; {why[protections[0]]}" if protections else ""
        return DELETING, f"deletion already requested: ECS removes it once nothing uses it{held}"
    if protections:
        return KEEP, why[protections[0]]
    facts = f"not in use, not a rollback target, #{rank} of {record.family}" + (
        f", {age:.0f} days old" if age is not None else ""
    )
    if record.status == "ACTIVE":
        return (DEREGISTER_DELETE if options.delete_deregistered else DEREGISTER), facts
    if record.status == "INACTIVE":
        return DELETE, f"INACTIVE, {facts}"
    return KEEP, f"unknown status {record.status}: left alone"


def _newest_ranks(revisions: Iterable[RevisionRecord]) -> dict[str, int]:
    """1 for the newest revision of each family, 2 for the next... (revisions being deleted do not count)."""
    by_family: dict[str, list[int]] = defaultdict(list)
    for record in revisions:
        if record.status != "DELETE_IN_PROGRESS":
            by_family[record.family].append(record.revision)
    return {
        f"{family}:{number}": rank
        for family, numbers in by_family.items()
        for rank, number in enumerate(sorted(numbers, reverse=True), start=1)
    }


def _age_days(when: datetime | None, now: datetime) -> float | None:
    # A clock a little behind AWS's (or a time-scaled sandbox) must not make anything "-0 days old".
    return None if when is None else max(0.0, (now - when).total_seconds() / DAY)


__all__ = [
    "DELETE",
    "DELETING",
    "DEREGISTER",
    "DEREGISTER_DELETE",
    "FATES",
    "KEEP",
    "PROTECTIONS",
    "InUse",
    "Inventory",
    "RevisionDecision",
    "decide_revisions",
    "in_use",
    "revision_key",
    "rollback_protection",
]

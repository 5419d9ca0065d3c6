"""The image rule: which ECR images a cleanup deletes, consistent with what it does to revisions. Pure.

An image stays when a kept revision, a revision this cleanup leaves in place (a deregistered one stays INACTIVE)
or a running task refers to it, by tag or by digest; when it is part of an image index that stays; or when it is
younger than the rule that would delete it (untagged: ``untagged_days``; tagged: ``unreferenced_days``).

>>> [(d.digest[:15], d.fate, d.reason) for d in decide_images(inventory, revisions, options)]   # doctest: +SKIP
[('sha256:1f2e3d4c', 'keep', 'used by kept revision web:31'), ('sha256:9a8b7c6d', 'delete', 'untagged, 20 days old')]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opskit.cleanup.options import CleanupOptions
from opskit.cleanup.revisions import DAY, DELETING, KEEP, Inventory, RevisionDecision
from opskit.records import ImageRecord, ImageRef

IMAGE_KEEP, IMAGE_DELETE = "keep", "delete"
INDEX_MEDIA_TYPES = frozenset(
    {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
)
IMAGE_PROTECTIONS = ("kept-revision", "task", "remaining-revision", "index", "index-unread", "young")


@dataclass(frozen=True)
class ImageDecision:
    repository: str
    digest: str
    tags: tuple[str, ...]
    pushed_at: datetime | None
    fate: str  # keep or delete
    reason: str
    protections: tuple[str, ...] = ()
    referenced_by: tuple[str, ...] = ()  # family:revision of every revision that refers to it
    media_type: str | None = None
    size_bytes: int | None = None

    @property
    def key(self) -> str:
        return f"{self.repository}@{self.digest}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "digest": self.digest,
            "tags": list(self.tags),
            "pushed_at": self.pushed_at.isoformat() if self.pushed_at else None,
            "fate": self.fate,
            "reason": self.reason,
            "protections": list(self.protections),
            "referenced_by": list(self.referenced_by),
            "media_type": self.media_type,
            "size_bytes": self.size_bytes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageDecision:
        pushed = data.get("pushed_at")
        return cls(
            repository=data["repository"],
            digest=data["digest"],
            tags=tuple(data.get("tags") or ()),
            pushed_at=datetime.fromisoformat(pushed) if pushed else None,
            fate=data["fate"],
            reason=data["reason"],
            protections=tuple(data.get("protections") or ()),
            referenced_by=tuple(data.get("referenced_by") or ()),
            media_type=data.get("media_type"),
            size_bytes=data.get("size_bytes"),
        )


@dataclass(frozen=True)
class _Reference:
    revision: str  # family:revision
    ref: ImageRef
    kept: bool  # the revision is kept (or out of this cleanup's scope)
    remains: bool  # the revision still exists after this cleanup


def refers_to(ref: ImageRef, image: ImageRecord) -> bool:
    """Does an image reference name this ECR image? By repository name (any registry: a wider match keeps more),
    then by digest, or by one of its tags (no tag and no digest means ``latest``)."""
    if ref.repository != image.repository:
        return False
    if ref.digest:
        return ref.digest == image.digest
    return (ref.tag or "latest") in image.tags


def decide_images(
    inventory: Inventory, revisions: Iterable[RevisionDecision], options: CleanupOptions
) -> list[ImageDecision]:
    """A decision for every image of the repositories in scope, oldest first per repository."""
    decided = {d.key: d for d in revisions}
    # References indexed by what they name: (repository, "@digest") or (repository, tag); a bare name is latest.
    references: dict[tuple[str, str], list[_Reference]] = defaultdict(list)
    for record in inventory.revisions:
        key = f"{record.family}:{record.revision}"
        decision = decided.get(key)
        if decision is None:  # outside the families cleaned: kept as it is
            kept, remains = record.status != "DELETE_IN_PROGRESS", record.status != "DELETE_IN_PROGRESS"
        else:
            kept = decision.fate == KEEP
            remains = (
                kept or decision.fate == "deregister" or (decision.fate == DELETING and bool(decision.protections))
            )
        for container in record.containers:
            ref = container.ref
            named = f"@{ref.digest}" if ref.digest else (ref.tag or "latest")
            references[(ref.repository, named)].append(_Reference(key, ref, kept, remains))
    running = {digest for task in inventory.tasks if task.desired_status != "STOPPED" for digest in task.image_digests}
    scope = _repositories(inventory, decided.values(), options)

    decisions: dict[str, ImageDecision] = {}
    for image in sorted(inventory.images, key=lambda i: (i.repository, i.pushed_at or inventory.now, i.digest)):
        if image.repository not in scope:
            continue
        names = [f"@{image.digest}", *image.tags]
        found = [r for name in names for r in references.get((image.repository, name), ())]
        age = None if image.pushed_at is None else max(0.0, (inventory.now - image.pushed_at).total_seconds() / DAY)
        limit = options.unreferenced_days if image.tags else options.untagged_days
        why: dict[str, str] = {}
        keeping = [r.revision for r in found if r.kept]
        if keeping:
            why["kept-revision"] = f"used by kept revision {_few(keeping)}"
        if image.digest in running:
            why["task"] = "pulled by a running task"
        remaining = [r.revision for r in found if r.remains and not r.kept]
        if remaining:
            why["remaining-revision"] = f"used by {_few(remaining)}, which stays (INACTIVE)"
        if limit and (age is None or age < limit):  # 0: no age rule, as for revisions
            why["young"] = "push time unknown" if age is None else f"{age:.1f} days old (< {limit:g})"
        decisions[f"{image.repository}@{image.digest}"] = _decision(image, why, age, tuple(r.revision for r in found))
    return _keep_index_parts(list(decisions.values()), inventory)


def _decision(
    image: ImageRecord, why: dict[str, str], age: float | None, referenced_by: tuple[str, ...]
) -> ImageDecision:
    protections = tuple(p for p in IMAGE_PROTECTIONS if p in why)
    if protections:
        fate, reason = IMAGE_KEEP, why[protections[0]]
    elif image.tags:
        fate, reason = IMAGE_DELETE, "no revision refers to it" + _old(age)
    else:
        fate, reason = IMAGE_DELETE, "untagged" + _old(age)
    return ImageDecision(
        repository=image.repository,
        digest=image.digest,
        tags=image.tags,
        pushed_at=image.pushed_at,
        fate=fate,
        reason=reason,
        protections=protections,
        referenced_by=referenced_by,
        media_type=image.media_type,
        size_bytes=image.size_bytes,
    )


def _old(age: float | None) -> str:
    return "" if age is None else f", {age:.0f} days old"


def _keep_index_parts(decisions: list[ImageDecision], inventory: Inventory) -> list[ImageDecision]:
    """Manifests an image index lists stay while the index does (deleting one breaks the index); where the manifest
    of an index that stays could not be read, every untagged image of its repository stays."""
    by_key = {d.key: d for d in decisions}
    untagged: dict[str, list[str]] = defaultdict(list)
    for d in decisions:
        if not d.tags:
            untagged[d.repository].append(d.key)
    changed = True
    while changed:  # a part kept may be an index itself: repeat until nothing more is kept
        changed = False
        for decision in list(by_key.values()):
            if decision.fate != IMAGE_KEEP or decision.media_type not in INDEX_MEDIA_TYPES:
                continue
            short = decision.digest[:19]
            if decision.key in inventory.image_children:
                parts = [
                    by_key.get(f"{decision.repository}@{child}") for child in inventory.image_children[decision.key]
                ]
                why, protection = f"part of image index {short}", "index"
            else:
                parts = [by_key[key] for key in untagged[decision.repository]]
                why, protection = f"image index {short} stays and its parts are unknown", "index-unread"
            for part in parts:
                if part is not None and part.fate != IMAGE_KEEP:
                    by_key[part.key] = _kept(part, protection, why)
                    changed = True
    return list(by_key.values())


def _kept(decision: ImageDecision, protection: str, reason: str) -> ImageDecision:
    from dataclasses import replace

    return replace(decision, fate=IMAGE_KEEP, reason=reason, protections=(*decision.protections, protection))


def _repositories(inventory: Inventory, decided: Iterable[RevisionDecision], options: CleanupOptions) -> set[str]:
    if options.repositories:
        return set(options.repositories)
    if options.families:
        return {ImageRef.parse(image).repository for d in decided for image in d.images}
    return {image.repository for image in inventory.images}


def _few(names: list[str]) -> str:
    unique = list(dict.fromkeys(names))
    return ", ".join(unique[:3]) + (f" and {len(unique) - 3} more" if len(unique) > 3 else "")


__all__ = [
    "IMAGE_DELETE",
    "IMAGE_KEEP",
    "IMAGE_PROTECTIONS",
    "INDEX_MEDIA_TYPES",
    "ImageDecision",
    "decide_images",
    "refers_to",
]

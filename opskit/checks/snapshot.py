"""What the checks look at: the library's records at one moment, narrowed to a target.

A :class:`Snapshot` holds records only (revisions, ECR images and repositories, services with how they deploy and
their rollback targets, the versionConsistency of the containers services run, and for the hardening checks each
ACTIVE revision's security settings), so checks are pure functions and tests build snapshots by hand.
:meth:`Snapshot.from_library` syncs a library and takes one.

>>> from opskit.library import RevisionLibrary                               # doctest: +SKIP
>>> library = RevisionLibrary(Aws())                                          # doctest: +SKIP
>>> snapshot = Snapshot.from_library(library, Target(cluster="prod", services=("web",)))  # doctest: +SKIP
>>> [r.family for r in snapshot.active_revisions][:3]                         # doctest: +SKIP
['web', 'web', 'web']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from opskit.checks.secrets import secret_reason
from opskit.errors import NotFoundError
from opskit.records import (
    ECS_NAME,
    REPOSITORY_NAME,
    ContainerRecord,
    ImageRecord,
    ImageRef,
    RepositoryRecord,
    RevisionRecord,
    ServiceRecord,
    checked_names,
)

if TYPE_CHECKING:
    from opskit.library import RevisionLibrary

_SERVICE = re.compile(r"^(?:[a-zA-Z0-9_-]{1,255}/)?[a-zA-Z0-9_-]{1,255}$")  # a name, or cluster/name


def revision_label(arn: str | None) -> str:
    """``arn:aws:ecs:...:task-definition/web:30`` -> ``web:30``."""
    return (arn or "").rsplit("/", 1)[-1]


def family_of(arn: str | None) -> str:
    return revision_label(arn).rpartition(":")[0]


@dataclass(frozen=True)
class Target:
    """What to check. Nothing given: everything the account and region hold. Services (names or
    ``cluster/service``) or a cluster narrow the families to the ones those services run; families narrow the
    repositories to the ones their ACTIVE revisions use; repositories given are checked as given."""

    cluster: str | None = None
    services: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    repositories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.cluster is not None:
            checked_names(self.cluster, "cluster", ECS_NAME, "opskit services")
        for name, option, pattern, listing in (
            ("services", "service", _SERVICE, "opskit services"),
            ("families", "family", ECS_NAME, "opskit revisions"),
            ("repositories", "repository", REPOSITORY_NAME, "opskit images"),
        ):
            object.__setattr__(self, name, checked_names(getattr(self, name), option, pattern, listing))

    @property
    def narrowed(self) -> bool:
        return bool(self.cluster or self.services or self.families or self.repositories)

    def describe(self) -> str:
        parts = [f"cluster {self.cluster}"] if self.cluster else []
        parts += [f"service {s}" for s in self.services] + [f"family {f}" for f in self.families]
        parts += [f"repository {r}" for r in self.repositories]
        return ", ".join(parts) or "everything"


@dataclass(frozen=True)
class ContainerSettings:
    """The security settings of one container definition. Variables are reported by name only: the values were
    read to judge them (:func:`opskit.checks.secrets.secret_reason`) and were not kept."""

    name: str
    privileged: bool
    readonly_root_filesystem: bool
    user: str | None
    log_driver: str | None
    secret_variables: tuple[tuple[str, str], ...] = ()  # (variable name, why it looks like a secret)

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> ContainerSettings:
        secret_variables = []
        for variable in body.get("environment") or []:
            reason = secret_reason(str(variable.get("name", "")), variable.get("value"))
            if reason:
                secret_variables.append((str(variable.get("name", "")), reason))
        return cls(
            name=str(body.get("name", "")),
            privileged=bool(body.get("privileged")),
            readonly_root_filesystem=bool(body.get("readonlyRootFilesystem")),
            user=str(body["user"]) if body.get("user") not in (None, "") else None,
            log_driver=(body.get("logConfiguration") or {}).get("logDriver") or None,
            secret_variables=tuple(secret_variables),
        )


@dataclass(frozen=True)
class RevisionSettings:
    """The security settings of one revision: its task-level modes and each container's settings."""

    arn: str
    network_mode: str | None
    pid_mode: str | None
    operating_system: str | None  # runtimePlatform.operatingSystemFamily (None: Linux)
    containers: tuple[ContainerSettings, ...]

    @property
    def windows(self) -> bool:
        return (self.operating_system or "").upper().startswith("WINDOWS")

    @classmethod
    def from_api(cls, task_definition: Mapping[str, Any]) -> RevisionSettings:
        """From a DescribeTaskDefinition ``taskDefinition`` with its variable values (unmasked)."""
        return cls(
            arn=str(task_definition["taskDefinitionArn"]),
            network_mode=task_definition.get("networkMode"),
            pid_mode=task_definition.get("pidMode"),
            operating_system=(task_definition.get("runtimePlatform") or {}).get("operatingSystemFamily"),
            containers=tuple(ContainerSettings.from_api(c) for c in task_definition.get("containerDefinitions") or []),
        )


@dataclass(frozen=True)
class ImageUse:
    """One container of one revision, and what its image reference names in ECR now."""

    revision: RevisionRecord
    container: ContainerRecord
    ref: ImageRef
    repository: RepositoryRecord | None  # the ECR repository the reference points into, when one is known
    image: ImageRecord | None  # the image it names now (by digest if pinned, else by tag)
    in_known_registry: bool  # the reference points at a registry whose repositories the library lists

    @property
    def missing(self) -> bool:
        """It points into a registry we list, and no image is there (or not even the repository)."""
        return self.in_known_registry and self.image is None

    @property
    def identity(self) -> str:
        """What it runs: the image digest when resolved, else the reference as written."""
        return self.image.digest if self.image is not None else self.container.image


@dataclass(frozen=True)
class Snapshot:
    """The records the checks read, narrowed by ``target``; ``taken_at`` is "now" for lifecycle rules."""

    revisions: tuple[RevisionRecord, ...] = ()
    images: tuple[ImageRecord, ...] = ()
    repositories: tuple[RepositoryRecord, ...] = ()
    services: tuple[ServiceRecord, ...] = ()
    rollback_targets: Mapping[str, str | None] = field(default_factory=dict)  # by service ARN
    settings: Mapping[str, RevisionSettings] = field(default_factory=dict)  # by revision ARN (hardening only)
    # By revision ARN, for the revisions services run: (container name, versionConsistency) of each container
    # definition, "enabled" (ECS's default) where the definition names none.
    version_consistency: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    target: Target = Target()
    taken_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    # -- taking one -------------------------------------------------------------------------------------------
    @classmethod
    def from_library(
        cls,
        library: RevisionLibrary,
        target: Target = Target(),
        *,
        hardening: bool = False,
        sync: bool = True,
        now: datetime | None = None,
    ) -> Snapshot:
        """Sync ``library`` (ECR and services first, then only the families the target needs) and take a snapshot.

        ``hardening`` reads each ACTIVE revision's full body for the hardening checks (from the cache: sync
        described them). The revisions the target's services run are read from the cache too, for their containers'
        versionConsistency. ``now`` defaults to the wall clock; pass the sandbox's clock for a sandbox.
        """
        if sync:
            library.sync(include=["images", "services"])
        services = tuple(library.service_records())
        _check_services(services, target)  # before syncing revisions for a target that is not there
        rollback_targets = library.rollback_targets()
        families: list[str] | None = None
        if target.families or target.cluster or target.services:
            chosen = _chosen_services(services, target)
            wanted = {f for s in chosen for f in _families_run_by(s, rollback_targets)}
            families = sorted(wanted | set(target.families))
        if sync:
            library.sync(include=["revisions"], families=families or None)
        snapshot = cls(
            revisions=tuple(library.revision_records()),
            images=tuple(library.image_records()),
            repositories=tuple(library.repository_records()),
            services=services,
            rollback_targets=rollback_targets,
            target=target,
            taken_at=now or datetime.now(UTC),
        )
        snapshot.check_target()
        snapshot = replace(snapshot, version_consistency=_version_consistency(library, snapshot.scoped_services))
        return snapshot.with_settings(library) if hardening else snapshot

    def with_settings(self, library: RevisionLibrary) -> Snapshot:
        """This snapshot with the security settings of its ACTIVE revisions, read from ``library``'s cache (values
        of variables are judged there and dropped)."""
        settings = {
            r.arn: RevisionSettings.from_api(library.revision_body(r.arn, unmask=True)["taskDefinition"])
            for r in self.active_revisions
        }
        return replace(self, settings=settings)

    def check_target(self) -> None:
        """Raise :class:`~opskit.errors.NotFoundError` for a cluster, service, family or repository not there."""
        target = self.target
        _check_services(self.services, target)
        families = {r.family for r in self.revisions}
        for family in target.families:
            if family not in families:
                raise NotFoundError(f"no task-definition family {family}: list them with `opskit revisions`")
        repositories = {r.name for r in self.repositories}
        for name in target.repositories:
            if name not in repositories:
                raise NotFoundError(f"no ECR repository {name}: list them with `opskit images`")

    # -- lookups ----------------------------------------------------------------------------------------------
    @cached_property
    def revision_by_arn(self) -> dict[str, RevisionRecord]:
        return {r.arn: r for r in self.revisions}

    @cached_property
    def _repository_by_uri(self) -> dict[str, RepositoryRecord]:
        return {r.uri: r for r in self.repositories}

    @cached_property
    def _registries(self) -> frozenset[str]:
        return frozenset(r.registry for r in self.repositories)

    @cached_property
    def _images_by_repository(self) -> dict[str, list[ImageRecord]]:
        found: dict[str, list[ImageRecord]] = {}
        for image in self.images:
            found.setdefault(image.repository, []).append(image)
        return found

    @cached_property
    def _image_by_tag(self) -> dict[tuple[str, str], ImageRecord]:
        return {(i.repository, tag): i for i in self.images for tag in i.tags}

    @cached_property
    def _image_by_digest(self) -> dict[tuple[str, str], ImageRecord]:
        return {(i.repository, i.digest): i for i in self.images}

    @cached_property
    def _uses(self) -> dict[str, tuple[ImageUse, ...]]:
        return {}  # filled by uses(), revision by revision

    @cached_property
    def _active_uses_by_repository(self) -> dict[str, list[ImageUse]]:
        found: dict[str, list[ImageUse]] = {}
        for revision in self.revisions:
            if revision.status == "ACTIVE":
                for use in self.uses(revision):
                    if use.repository is not None:
                        found.setdefault(use.repository.uri, []).append(use)
        return found

    def images_in(self, repository: RepositoryRecord) -> list[ImageRecord]:
        """The images of ``repository``."""
        return list(self._images_by_repository.get(repository.name, []))

    def image(self, repository: RepositoryRecord, digest: str) -> ImageRecord | None:
        return self._image_by_digest.get((repository.name, digest))

    def resolve(self, ref: ImageRef) -> tuple[RepositoryRecord | None, ImageRecord | None]:
        """The ECR repository an image reference points into and the image it names there now (ECS pulls by
        digest when there is one, else by tag; no tag means ``latest``)."""
        repository = self._repository_by_uri.get(f"{ref.registry}/{ref.repository}") if ref.registry else None
        if repository is None:
            return None, None
        if ref.digest:
            return repository, self._image_by_digest.get((repository.name, ref.digest))
        return repository, self._image_by_tag.get((repository.name, ref.tag or "latest"))

    def uses(self, revision: RevisionRecord) -> tuple[ImageUse, ...]:
        """Each container of ``revision`` with what its image names in ECR."""
        if revision.arn not in self._uses:
            out = []
            for container in revision.containers:
                ref = container.ref
                repository, image = self.resolve(ref)
                known = repository is not None or (ref.registry is not None and ref.registry in self._registries)
                out.append(ImageUse(revision, container, ref, repository, image, known))
            self._uses[revision.arn] = tuple(out)
        return self._uses[revision.arn]

    def uses_of(self, repository: RepositoryRecord) -> list[ImageUse]:
        """The containers of every ACTIVE revision the snapshot holds that point into ``repository``."""
        return list(self._active_uses_by_repository.get(repository.uri, []))

    # -- the target ---------------------------------------------------------------------------------------------
    @cached_property
    def scoped_services(self) -> tuple[ServiceRecord, ...]:
        """ACTIVE services in the target, by cluster and name."""
        target = self.target
        if target.cluster or target.services or not (target.families or target.repositories):
            chosen = _chosen_services(self.services, target)
        else:
            families = set(self.scoped_families)
            chosen = [s for s in self.services if s.status == "ACTIVE" and family_of(s.task_definition) in families]
        return tuple(sorted(chosen, key=lambda s: (s.cluster, s.service)))

    @cached_property
    def scoped_families(self) -> tuple[str, ...]:
        target = self.target
        if target.families:
            return tuple(sorted(set(target.families)))
        if target.cluster or target.services:
            families: set[str] = set()
            for service in _chosen_services(self.services, target):
                families |= _families_run_by(service, self.rollback_targets)
            return tuple(sorted(families))
        active = [r for r in self.revisions if r.status == "ACTIVE"]
        if target.repositories:
            wanted = set(target.repositories)
            return tuple(
                sorted(
                    {
                        u.revision.family
                        for r in active
                        for u in self.uses(r)
                        if u.repository is not None and u.repository.name in wanted
                    }
                )
            )
        return tuple(sorted({r.family for r in active}))

    @cached_property
    def active_revisions(self) -> tuple[RevisionRecord, ...]:
        """ACTIVE revisions of the families in the target, by family and revision number."""
        families = set(self.scoped_families)
        chosen = [r for r in self.revisions if r.status == "ACTIVE" and r.family in families]
        return tuple(sorted(chosen, key=lambda r: (r.family, r.revision)))

    @cached_property
    def scoped_repositories(self) -> tuple[RepositoryRecord, ...]:
        target = self.target
        if target.repositories:
            wanted = set(target.repositories)
            chosen = [r for r in self.repositories if r.name in wanted]
        elif target.narrowed:
            used = {u.repository.uri for r in self.active_revisions for u in self.uses(r) if u.repository is not None}
            chosen = [r for r in self.repositories if r.uri in used]
        else:
            chosen = list(self.repositories)
        return tuple(sorted(chosen, key=lambda r: r.name))


def _check_services(services: Iterable[ServiceRecord], target: Target) -> None:
    services = [s for s in services if s.status == "ACTIVE"]
    if target.cluster:
        services = [s for s in services if s.cluster == target.cluster]
        if not services:
            raise NotFoundError(f"no services in cluster {target.cluster}: check --cluster (and the region)")
    known = {s.service for s in services} | {f"{s.cluster}/{s.service}" for s in services}
    for name in target.services:
        if name not in known:
            where = f" in cluster {target.cluster}" if target.cluster else ""
            raise NotFoundError(f"no service {name}{where}: list them with `opskit services`")


def _chosen_services(services: Iterable[ServiceRecord], target: Target) -> list[ServiceRecord]:
    chosen = [s for s in services if s.status == "ACTIVE"]
    if target.cluster:
        chosen = [s for s in chosen if s.cluster == target.cluster]
    if target.services:
        wanted = set(target.services)
        chosen = [s for s in chosen if s.service in wanted or f"{s.cluster}/{s.service}" in wanted]
    return chosen


def _version_consistency(
    library: RevisionLibrary, services: Iterable[ServiceRecord]
) -> dict[str, tuple[tuple[str, str], ...]]:
    """versionConsistency of each container of the revisions ``services`` run, from the library's cache only (no
    call: a revision it does not hold is left out, and the check says so)."""
    from opskit.library.rows import decode_body

    found = {}
    for arn in sorted({s.task_definition for s in services if s.task_definition}):
        cached = library.store.body(arn)
        if cached is None:
            continue
        containers = decode_body(cached[0])["taskDefinition"].get("containerDefinitions") or []
        found[arn] = tuple((str(c.get("name", "")), str(c.get("versionConsistency") or "enabled")) for c in containers)
    return found


def _families_run_by(service: ServiceRecord, rollback_targets: Mapping[str, str | None]) -> set[str]:
    arns = [service.task_definition, rollback_targets.get(service.arn)]
    arns += [d.task_definition for d in service.deployments]
    return {family_of(arn) for arn in arns if arn}


__all__ = [
    "ContainerSettings",
    "ImageUse",
    "RevisionSettings",
    "Snapshot",
    "Target",
    "family_of",
    "revision_label",
]

"""The ``ecs_release_policy`` fixture: assertions over the target's snapshot, one per check, for users' own tests.

    def test_web_can_roll_back(ecs_release_policy, ecs_service):
        ecs_release_policy.assert_rollback_possible(ecs_service)

    def test_repositories(ecs_release_policy, ecs_repository):
        ecs_release_policy.assert_tag_immutable(ecs_repository)
        ecs_release_policy.assert_lifecycle_keeps_active_images(ecs_repository)

A failing assertion names the revision, image, tag or rule at fault and says how to fix it; every assertion adds
the check's ID and cross-references to the test's JUnit XML properties.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from opskit.checks import Check, Finding, Snapshot, checks_for, get_check, groups_for
from opskit.checks.snapshot import revision_label
from opskit.records import RepositoryRecord, RevisionRecord, ServiceRecord

SnapshotOf = Callable[..., Snapshot]


def resource_name(resource: object) -> str:
    """What findings call a record: ``repo``, ``family:revision`` or ``cluster/service``; strings as given."""
    if isinstance(resource, RepositoryRecord):
        return resource.name
    if isinstance(resource, RevisionRecord):
        return revision_label(resource.arn)
    if isinstance(resource, ServiceRecord):
        return f"{resource.cluster}/{resource.service}"
    return str(resource)


class ReleasePolicy:
    """Checks of :mod:`opskit.checks` as assertions; ``resource`` is a record from the ``ecs_repository``,
    ``ecs_task_definition`` or ``ecs_service`` fixtures, or its name."""

    def __init__(self, snapshot_of: SnapshotOf, node: pytest.Item | None = None) -> None:
        self._snapshot_of = snapshot_of
        self._node = node

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot_of(hardening=False)

    def findings(self, check: str, resource: object | None = None) -> list[Finding]:
        """The findings of ``check`` (ID or name), all of them or ``resource``'s."""
        chosen = get_check(check)
        found = chosen.run(self._snapshot_of(hardening=chosen.group == "hardening"))
        if resource is not None:
            name = resource_name(resource)
            found = [f for f in found if f.resource == name]
        return found

    def assert_passes(self, check: str, resource: object | None = None) -> None:
        """Fail the test, naming what is wrong and how to fix it, unless ``check`` passes (on ``resource``)."""
        chosen = get_check(check)
        self._record(chosen.id, [(r.key, r.id) for r in chosen.references])
        found = self.findings(chosen.id, resource)
        if resource is not None and not found:
            pytest.fail(
                f"{chosen.id}: no {chosen.resource_type} {resource_name(resource)} in the target "
                f"({self.snapshot.target.describe()})",
                pytrace=False,
            )
        failed = [f for f in found if f.failed]
        if failed:
            pytest.fail("\n\n".join(f.explain() for f in failed), pytrace=False)

    def assert_policy(self, policy: str = "release") -> None:
        """Every check of ``policy`` (release, all or hardening) on every resource of the target."""
        self._assert_all(checks_for(groups_for(policy)), None)

    # -- one per check -------------------------------------------------------------------------------------------
    def assert_image_pinned(self, task_definition: object) -> None:
        """REL001: every image is tagged with a commit SHA or pinned by digest (no latest, no untagged)."""
        self.assert_passes("REL001", task_definition)

    def assert_tag_immutable(self, ecr_repository: object) -> None:
        """REL002: commit SHA tags cannot be overwritten (exclusion filters included)."""
        self.assert_passes("REL002", ecr_repository)

    def assert_one_image_per_commit(self, ecr_repository: object) -> None:
        """REL003: each commit SHA tag names one image."""
        self.assert_passes("REL003", ecr_repository)

    def assert_one_revision_per_image(self, family: object) -> None:
        """REL004: no two ACTIVE revisions of the family run the same image(s); a revision stands for its family."""
        name = family.family if isinstance(family, RevisionRecord) else family
        self.assert_passes("REL004", name)

    def assert_images_exist(self, task_definition: object) -> None:
        """REL005: every image the revision refers to is in ECR."""
        self.assert_passes("REL005", task_definition)

    def assert_rollback_possible(self, service: object) -> None:
        """REL006: the service's rollback target exists, is ACTIVE and its images are in ECR."""
        self.assert_passes("REL006", service)

    def assert_circuit_breaker(self, service: object) -> None:
        """REL007: a failed deployment rolls back: the circuit breaker with rollback, or deployment alarms with
        rollback (also :meth:`assert_rollback_monitor`)."""
        self.assert_passes("REL007", service)

    def assert_rollback_monitor(self, service: object) -> None:
        """REL007, by what it asks: a rollback monitor (circuit breaker or alarms, with rollback)."""
        self.assert_passes("REL007", service)

    def assert_bake_time(self, service: object) -> None:
        """REL011: a traffic-shifting deployment bakes before the old revision goes."""
        self.assert_passes("REL011", service)

    def assert_hook_roles(self, service: object) -> None:
        """REL012: every Lambda lifecycle hook names the role ECS invokes it with."""
        self.assert_passes("REL012", service)

    def assert_version_consistency(self, service: object) -> None:
        """REL013: no container of the revision the service runs has versionConsistency disabled."""
        self.assert_passes("REL013", service)

    def assert_scan_on_push(self, ecr_repository: object) -> None:
        """REL008: images are scanned when pushed."""
        self.assert_passes("REL008", ecr_repository)

    def assert_lifecycle_policy(self, ecr_repository: object) -> None:
        """REL009: the repository has a lifecycle policy."""
        self.assert_passes("REL009", ecr_repository)

    def assert_lifecycle_keeps_active_images(self, ecr_repository: object) -> None:
        """REL010: no lifecycle rule can expire an image an ACTIVE revision refers to."""
        self.assert_passes("REL010", ecr_repository)

    def assert_hardened(self, task_definition: object) -> None:
        """Every hardening check (HARD001 to HARD007) on the revision."""
        self._assert_all(checks_for("hardening"), task_definition)

    def _assert_all(self, checks: Iterable[Check], resource: object | None) -> None:
        failed: list[Finding] = []
        for check in checks:
            self._record(check.id, [(r.key, r.id) for r in check.references])
            failed += [f for f in self.findings(check.id, resource) if f.failed]
        if failed:
            pytest.fail("\n\n".join(f.explain() for f in failed), pytrace=False)

    def _record(self, check_id: str, references: list[tuple[str, str]]) -> None:
        if self._node is not None:
            self._node.user_properties.append(("check_id", check_id))
            self._node.user_properties.extend(references)


__all__ = ["ReleasePolicy", "resource_name"]

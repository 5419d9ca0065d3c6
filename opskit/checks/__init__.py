"""Release policy as pure functions over the library's records, shared by ``opskit check``, the pytest plugin
(``pytest --ecs-policy``) and the widgets.

Two groups: ``release`` (the invariants of immutable releases, on by default) and ``hardening`` (Security Hub's
ECS task-definition controls, off by default). Each check has an ID, a severity, a title, a remediation and, where
one exists, the AWS Config rule, Security Hub control and Checkov check it corresponds to.

>>> from opskit.checks import Snapshot, Target, run_checks
>>> snapshot = Snapshot.from_library(library, Target(cluster="prod"))       # doctest: +SKIP
>>> failed = [f for f in run_checks(snapshot) if f.failed]                   # doctest: +SKIP
>>> print(failed[0].explain())                                               # doctest: +SKIP
REL002 repository worker: MUTABLE: any tag, commit SHA tags included, can be pushed again over another image
rule: Commit SHA tags cannot be overwritten in the repository (high)
fix: aws ecr put-image-tag-mutability --repository-name NAME --image-tag-mutability IMMUTABLE, ...
see also: Security Hub ECR.2, AWS Config ecr-private-tag-immutability-enabled, Checkov CKV_AWS_51
"""

from __future__ import annotations

from collections.abc import Iterable

from opskit.checks.hardening import HARDENING_CHECKS
from opskit.checks.model import GROUPS, SEVERITIES, Check, Finding, Outcome, Reference
from opskit.checks.release import RELEASE_CHECKS
from opskit.checks.report import findings_frame, findings_json, findings_table, summary
from opskit.checks.snapshot import ContainerSettings, ImageUse, RevisionSettings, Snapshot, Target
from opskit.errors import ConfigError

CHECKS: tuple[Check, ...] = RELEASE_CHECKS + HARDENING_CHECKS
POLICIES = {"release": ("release",), "all": GROUPS, "hardening": ("hardening",)}


def groups_for(policy: str) -> tuple[str, ...]:
    """The groups a policy name means: ``release`` (the default), ``all`` (release and hardening) or ``hardening``."""
    if policy not in POLICIES:
        raise ConfigError(f"unknown policy {policy!r}: pass release, all or hardening")
    return POLICIES[policy]


def get_check(check_id: str) -> Check:
    for check in CHECKS:
        if check.id == check_id or check.name == check_id:
            return check
    raise ConfigError(f"no check {check_id!r}: the checks are {', '.join(c.id for c in CHECKS)}")


def checks_for(groups: Iterable[str] | str = ("release",), ids: Iterable[str] | None = None) -> tuple[Check, ...]:
    """The checks of ``groups`` (or exactly ``ids``, by ID or name), in ID order."""
    wanted = {groups} if isinstance(groups, str) else set(groups)
    unknown = wanted - set(GROUPS)
    if unknown:
        raise ConfigError(f"unknown check group {', '.join(sorted(unknown))}: pass release and/or hardening")
    if ids is not None:
        return tuple(get_check(i) for i in ids)
    return tuple(c for c in CHECKS if c.group in wanted)


def run_checks(
    snapshot: Snapshot, groups: Iterable[str] | str = ("release",), ids: Iterable[str] | None = None
) -> list[Finding]:
    """Every finding of the checks of ``groups`` (or ``ids``) on ``snapshot``: one per check and resource,
    passed or not, by check ID then resource.

    >>> [f.status for f in run_checks(Snapshot())]   # an empty account: nothing to check
    []
    """
    return [finding for check in checks_for(groups, ids) for finding in check.run(snapshot)]


__all__ = [
    "CHECKS",
    "GROUPS",
    "HARDENING_CHECKS",
    "POLICIES",
    "RELEASE_CHECKS",
    "SEVERITIES",
    "Check",
    "ContainerSettings",
    "Finding",
    "ImageUse",
    "Outcome",
    "Reference",
    "RevisionSettings",
    "Snapshot",
    "Target",
    "checks_for",
    "findings_frame",
    "findings_json",
    "findings_table",
    "get_check",
    "groups_for",
    "run_checks",
    "summary",
]

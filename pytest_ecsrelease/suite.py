"""The built-in policy suite (``--ecs-policy``): one test item per check and resource.

Items are named ``<check id>-<check name>[<resource>]`` under the node ``ecsrelease``, so ``-k REL002``,
``-k worker`` and ``-m ecs_hardening`` select them and CI shows each failing resource as its own failure. Each
item carries the check's ID, severity, resource and cross-references as ``user_properties``, which ``--junit-xml``
writes as ``<property>`` elements (and pytest-xdist carries back from its workers).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from opskit.checks import Finding, groups_for, run_checks
from opskit.errors import OpskitError

SUITE = "ecsrelease"


class PolicyViolation(Exception):
    """A finding that failed; its report is the finding explained, without a traceback."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(f"{finding.id} {finding.resource}: {finding.message}")
        self.finding = finding


class PolicySuite(pytest.Collector):
    """The suite's collector: takes the target's snapshot and runs the checks of the chosen policy on it."""

    def __init__(self, *, policy: str, snapshot_of: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy
        self.snapshot_of = snapshot_of  # (hardening: bool) -> Snapshot

    def collect(self) -> Iterable[pytest.Item]:
        groups = groups_for(self.policy)
        try:
            snapshot = self.snapshot_of(hardening="hardening" in groups)
        except OpskitError as exc:
            raise self.CollectError(f"opskit: {exc}") from exc
        return [PolicyItem.from_parent(self, finding=f) for f in run_checks(snapshot, groups)]

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"ecsrelease policy suite ({self.policy})"


class PolicyItem(pytest.Item):
    """One check on one resource; passes or fails as its finding did."""

    def __init__(self, *, finding: Finding, **kwargs: Any) -> None:
        super().__init__(name=f"{finding.id}-{finding.name}[{finding.resource}]", **kwargs)
        self.finding = finding
        self.add_marker("ecs_policy")
        self.add_marker(f"ecs_{finding.group}")
        self.user_properties.extend(finding.properties())

    def runtest(self) -> None:
        if self.finding.failed:
            raise PolicyViolation(self.finding)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, PolicyViolation):
            return excinfo.value.finding.explain()
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        f = self.finding
        return self.path, None, f"{f.id} {f.resource_type} {f.resource}"


def collect_suite(session: pytest.Session, policy: str, snapshot_of: Any) -> list[pytest.Item]:
    """The suite's items, collected through pytest's hooks (so they are counted and reported as collected)."""
    suite = PolicySuite.from_parent(session, name=SUITE, nodeid=SUITE, policy=policy, snapshot_of=snapshot_of)
    report = suite.ihook.pytest_make_collect_report(collector=suite)
    suite.ihook.pytest_collectreport(report=report)
    if report.failed:
        return []  # the report counted as a collection error: pytest stops before running anything
    return [item for item in report.result if isinstance(item, pytest.Item)]


__all__ = ["SUITE", "PolicyItem", "PolicySuite", "PolicyViolation", "collect_suite"]

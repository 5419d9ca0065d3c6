"""PolicyReport driven headless against the demo sandbox, whose worker service breaks the release policy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opskit.library import RevisionLibrary
from opskit.sandbox import Sandbox
from opskit.sandbox.demo import DEMO
from opskit.widgets import PolicyReport
from tests.widgets.conftest import WAIT


@pytest.fixture(scope="module")
def library(seeded: Sandbox) -> Iterator[RevisionLibrary]:
    with RevisionLibrary(seeded.aws(), cache_path=":memory:", rate_scale=60) as library:
        yield library


def test_failures_are_grouped_by_check_with_their_remediation(seeded: Sandbox, library: RevisionLibrary) -> None:
    report = PolicyReport(library, clock=seeded.clock.now)
    assert report.shown.empty and report.groups.value == ""
    report.run_button.click()
    report.wait(WAIT)
    assert report.messages.kind == "error", report.messages.text  # high-severity failures
    assert report.messages.text.startswith("5 of ") and "(4 high, 1 medium)" in report.messages.text
    failed = report.shown
    assert set(failed["status"]) == {"FAIL"}
    assert sorted(failed["check_id"]) == ["REL001", "REL002", "REL007", "REL008", "REL009"]
    assert set(failed["resource"]) == {"worker", "worker:14", "demo/worker"}
    groups = report.groups.value
    assert groups.count("<details open class='check'>") == 5
    assert "fix: " in groups and "IMMUTABLE" in groups and "see also: Security Hub ECR.2" in groups
    assert "<span class='sev-high'>high</span>" in groups
    assert "release" in report.counts.value and "hardening" not in report.counts.value

    report.status.value = "(all)"
    assert len(report.shown) == len(report.findings) > len(failed)
    assert "<details class='check'>" in report.groups.value  # a check that passed everywhere stays folded
    report.check.value = "REL002"
    assert set(report.shown["check_id"]) == {"REL002"}
    assert set(report.shown["resource"]) == {s.name for s in DEMO.services}
    report.status.value = "passed"
    report.resource.value = "WE"
    assert report.shown["resource"].tolist() == ["web"]
    report.severity.value = "critical"
    assert report.shown.empty and "no finding matches the filters" in report.groups.value


def test_hardening_and_a_narrower_target(seeded: Sandbox, library: RevisionLibrary) -> None:
    report = PolicyReport(library, cluster="demo", services=["web"], hardening=True, clock=seeded.clock.now, run=True)
    report.wait(WAIT)
    assert {f.group for f in report.findings} == {"release", "hardening"}
    assert not any("worker" in f.resource for f in report.findings)
    assert "hardening" in report.counts.value


def test_a_target_that_does_not_exist_is_one_line(seeded: Sandbox, library: RevisionLibrary) -> None:
    report = PolicyReport(library, cluster="prod", clock=seeded.clock.now, run=True)
    report.wait(WAIT)
    assert report.messages.kind == "error" and "prod" in report.messages.text
    assert "\n" not in report.messages.text and "unexpected" not in report.messages.text

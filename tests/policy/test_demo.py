"""The demo history produces exactly the findings it was seeded with (opskit.sandbox.demo.DEMO), through the API,
through ``opskit check`` and through the plugin's ``--ecs-sandbox``, and no others: hardening included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from opskit.checks import Snapshot, get_check, run_checks
from opskit.cli.check import command
from opskit.sandbox import Sandbox
from opskit.sandbox.demo import DEMO

from .worlds import INNER


def seeded() -> set[tuple[str, str]]:
    """(check, resource) of every finding the demo was seeded to produce, from its description."""
    expected = set()
    for service in DEMO.services:
        if service.latest_last:
            expected.add(("REL001", f"{service.name}:{service.releases}"))  # its live revision runs :latest
        if service.mutability != "IMMUTABLE":
            expected.add(("REL002", service.name))
        if not service.circuit_breaker:
            expected.add(("REL007", f"{DEMO.cluster}/{service.name}"))
        if not service.scan_on_push:
            expected.add(("REL008", service.name))
        if not service.lifecycle_policy:
            expected.add(("REL009", service.name))
    return expected


def test_the_demo_produces_the_findings_it_was_seeded_with(demo_snapshot: Snapshot) -> None:
    findings = run_checks(demo_snapshot, ("release", "hardening"))
    assert {(f.id, f.resource) for f in findings if f.failed} == seeded()
    # ... with every service, repository and ACTIVE revision looked at.
    assert {f.resource for f in findings if f.id == "REL006"} == {f"{DEMO.cluster}/{s.name}" for s in DEMO.services}
    assert {f.resource for f in findings if f.id == "REL002"} == {s.name for s in DEMO.services}
    active = sum(s.keep_active for s in DEMO.services)
    assert len([f for f in findings if f.id == "HARD001"]) == len(demo_snapshot.active_revisions) == active


def test_the_broken_release_was_rolled_back_and_leaves_nothing_to_find(demo_snapshot: Snapshot) -> None:
    web = DEMO.service("web")
    broken = f"web:{web.broken_release}"
    assert broken not in {f"{r.family}:{r.revision}" for r in demo_snapshot.active_revisions}
    findings = {f.resource: f for f in get_check("REL006").run(demo_snapshot)}
    assert findings["demo/web"].passed and f"rolls back to web:{web.releases - 1}" in findings["demo/web"].message


def test_opskit_check_on_the_demo(demo: Sandbox, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        command, ["--hardening", "--format", "json", "--cache", str(tmp_path / "cache.sqlite")], env=demo.env
    )
    assert result.exit_code == 1, result.output
    assert {(f["check_id"], f["resource"]) for f in json.loads(result.stdout)} == seeded()


def test_the_plugin_checks_the_seeded_sandbox(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_own="""
        def test_revision(ecs_task_definition, ecs_release_policy):
            ecs_release_policy.assert_images_exist(ecs_task_definition)

        def test_the_session_sandbox_is_the_one_checked(ecs_sandbox_session, ecs_library):
            assert ecs_library.aws.endpoint_url == ecs_sandbox_session.endpoint_url
        """
    )
    result = pytester.runpytest(*INNER, "--ecs-sandbox", "--ecs-policy=all")
    passed, _, failed = result.reprec.listoutcomes()  # type: ignore[attr-defined]
    names = {r.nodeid.split("::", 1)[1] for r in failed}
    assert names == {f"{check}-{get_check(check).name}[{resource}]" for check, resource in seeded()}
    own = [r.nodeid for r in passed if r.nodeid.startswith("test_own.py")]
    assert len(own) == sum(s.keep_active for s in DEMO.services) + 1
    result.stdout.fnmatch_lines(["ecsrelease: the demo sandbox, everything; policy suite: all"])

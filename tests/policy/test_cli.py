"""``opskit check``: table and JSON, the hardening switch, narrowing, and exit codes (0 passed, 1 failed, 2 error)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from opskit.checks import SEVERITIES
from opskit.cli.check import command

from .worlds import BREAKAGES, SECRET_VALUE, World


def check(world: World, cache: Path, *args: str) -> Result:
    return CliRunner().invoke(command, [*args, "--cache", str(cache)], env=world.sandbox.env)


def test_a_world_that_keeps_every_rule(world: World, tmp_path: Path) -> None:
    result = check(world, tmp_path / "c.sqlite", "--hardening")
    assert result.exit_code == 0, result.output
    assert result.stdout == "(no findings)\n"
    assert result.stderr.splitlines()[-1] == "opskit: all 30 checks passed across 5 resources"
    table = check(world, tmp_path / "c.sqlite", "--all").stdout.splitlines()
    assert table[0].split() == ["STATUS", "CHECK", "SEVERITY", "RESOURCE", "MESSAGE"]
    assert len(table) == 17 and all(line.startswith("PASS") for line in table[1:])


def test_failures_as_a_table_and_as_json(world: World, tmp_path: Path) -> None:
    BREAKAGES["mutable-repository"][0](world)
    BREAKAGES["hardening"][0](world)
    cache = tmp_path / "c.sqlite"
    result = check(world, cache)
    assert result.exit_code == 1
    (line,) = result.stdout.splitlines()[1:]
    assert line.split()[:5] == ["FAIL", "REL002", "high", "repository", "web"]
    assert "opskit: 1 of 18 checks failed (1 high)" in result.stderr

    result = check(world, cache, "--hardening", "--format", "json")
    assert result.exit_code == 1
    findings = json.loads(result.stdout)
    assert {(f["check_id"], f["resource"]) for f in findings} == {("REL002", "web")} | {
        (f"HARD00{n}", "web:3") for n in range(1, 8)
    }
    assert {"check_id", "severity", "resource", "message", "passed", "remediation", "references"} <= set(findings[0])
    severities = [f["severity"] for f in findings]
    assert severities == sorted(severities, key=SEVERITIES.index)  # the most severe first
    assert SECRET_VALUE not in result.stdout + result.stderr
    assert any("DB_PASSWORD" in f["message"] for f in findings)

    result = check(world, cache, "--check", "tag-immutability", "--format", "json", "--all", "--no-sync")
    assert [(f["check_id"], f["passed"]) for f in json.loads(result.stdout)] == [("REL002", False)]


def test_narrowing_to_a_service(world: World, tmp_path: Path) -> None:
    BREAKAGES["no-rollback-target"][0](world)
    cache = tmp_path / "c.sqlite"
    assert check(world, cache).exit_code == 1
    assert check(world, cache, "--cluster", "prod", "--service", "web").exit_code == 0
    result = check(world, cache, "--service", "prod/solo", "--format", "json")
    assert [(f["check_id"], f["resource"]) for f in json.loads(result.stdout)] == [("REL006", "prod/solo")]


def test_no_sync_reads_only_the_cache(world: World, tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    assert check(world, cache).exit_code == 0
    world.sandbox.reset_calls()
    result = check(world, cache, "--no-sync", "--all")
    assert result.exit_code == 0 and "PASS" in result.stdout
    assert set(world.sandbox.calls) <= {"GetCallerIdentity"}


def test_errors_are_one_line_and_exit_2(world: World, tmp_path: Path) -> None:
    for args, says in (
        (("--cluster", "staging"), "opskit: error: no services in cluster staging: check --cluster (and the region)"),
        (("--check", "REL999"), "opskit: error: no check 'REL999': the checks are REL001, "),
        (("--repository", "nope"), "opskit: error: no ECR repository nope: list them with `opskit images`"),
    ):
        result = check(world, tmp_path / "c.sqlite", *args)
        assert result.exit_code == 2
        assert result.stderr.splitlines()[-1].startswith(says)
        assert "Traceback" not in result.output

"""The pytest plugin, run with pytester against sandbox states built to keep or break each rule."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .worlds import BREAKAGES, INNER, SECRET_VALUE, World, target_args

RELEASE_ITEMS = 16  # 5 on the repository, 1 on the family, 2 on each of 2 revisions, 6 on the service
HARDENING_ITEMS = 14  # 7 on each of 2 revisions


def outcomes(result: pytest.RunResult) -> tuple[set[str], set[str]]:
    """(passed, failed) item names of an in-process run."""
    passed, _, failed = result.reprec.listoutcomes()  # type: ignore[attr-defined]
    return {r.nodeid.split("::", 1)[1] for r in passed}, {r.nodeid.split("::", 1)[1] for r in failed}


def junit(path: Path) -> dict[str, tuple[bool, dict[str, str], str]]:
    """name -> (passed, properties, failure text) of each test case in a JUnit XML report."""
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        failure = case.find("failure")
        properties = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        text = "" if failure is None else (failure.get("message", "") + (failure.text or ""))
        cases[case.get("name", "")] = (failure is None, properties, text)
    return cases


def test_a_world_that_keeps_every_rule_passes_every_item(
    pytester: pytest.Pytester, world: World, aws_env: dict[str, str]
) -> None:
    result = pytester.runpytest(*target_args(world.sandbox, "--ecs-policy=all", "-v"))
    passed, failed = outcomes(result)
    assert failed == set() and len(passed) == RELEASE_ITEMS + HARDENING_ITEMS
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            f"ecsrelease: {world.sandbox.endpoint_url}, everything; policy suite: all",
            "*ecsrelease::REL006-rollback-target[[]prod/web[]] PASSED*",
            "*ecsrelease::HARD005-non-root-user[[]web:2[]] PASSED*",
        ]
    )


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_each_broken_rule_fails_its_items_and_no_others(
    pytester: pytest.Pytester, world: World, aws_env: dict[str, str], breakage: str
) -> None:
    change, expected = BREAKAGES[breakage]
    change(world)
    result = pytester.runpytest(*target_args(world.sandbox, "--ecs-policy=all"))
    _, failed = outcomes(result)
    assert failed == expected
    assert result.ret == (1 if expected else 0)
    assert SECRET_VALUE not in result.stdout.str()


def test_failures_name_the_resource_say_how_to_fix_it_and_carry_junit_properties(
    pytester: pytest.Pytester, world: World, aws_env: dict[str, str]
) -> None:
    BREAKAGES["mutable-repository"][0](world)
    BREAKAGES["hardening"][0](world)
    report = pytester.path / "report.xml"
    result = pytester.runpytest(*target_args(world.sandbox, "--ecs-policy=all", f"--junit-xml={report}"))
    result.stdout.fnmatch_lines(
        [
            "*REL002 repository web: MUTABLE: any tag, commit SHA tags included, can be pushed again*",
            "rule: Commit SHA tags cannot be overwritten in the repository (high)",
            "fix: aws ecr put-image-tag-mutability --repository-name NAME --image-tag-mutability IMMUTABLE*",
            "see also: Security Hub ECR.2, AWS Config ecr-private-tag-immutability-enabled, Checkov CKV_AWS_51",
        ]
    )
    cases = junit(report)
    passed, properties, failure = cases["REL002-tag-immutability[web]"]
    assert not passed and "fix:" in failure
    assert properties == {
        "check_id": "REL002",
        "check_name": "tag-immutability",
        "check_group": "release",
        "severity": "high",
        "resource_type": "repository",
        "resource": "web",
        "security_hub": "ECR.2",
        "aws_config": "ecr-private-tag-immutability-enabled",
        "checkov": "CKV_AWS_51",
    }
    passed, properties, _ = cases["REL006-rollback-target[prod/web]"]
    assert passed and properties["check_id"] == "REL006" and properties["resource"] == "prod/web"
    _, properties, failure = cases["HARD001-no-secrets-in-environment[web:3]"]
    assert properties["security_hub"] == "ECS.8" and "DB_PASSWORD" in failure
    assert SECRET_VALUE not in report.read_text()


def test_the_suite_runs_under_xdist(pytester: pytest.Pytester, world: World, aws_env: dict[str, str]) -> None:
    BREAKAGES["no-circuit-breaker"][0](world)
    report = pytester.path / "report.xml"
    result = pytester.runpytest_subprocess(
        *target_args(world.sandbox, "--ecs-policy=release", "-n", "2", f"--junit-xml={report}")
    )
    result.stdout.fnmatch_lines(["*2 workers*", f"*1 failed, {RELEASE_ITEMS - 1} passed*"])
    cases = junit(report)
    assert len(cases) == RELEASE_ITEMS
    assert [name for name, (passed, _, _) in cases.items() if not passed] == ["REL007-circuit-breaker[prod/web]"]
    assert all(properties["check_id"] for _, properties, _ in cases.values())


def test_options_have_ini_equivalents_and_the_command_line_wins(
    pytester: pytest.Pytester, world: World, aws_env: dict[str, str]
) -> None:
    BREAKAGES["no-rollback-target"][0](world)  # service solo has nowhere to roll back to
    pytester.makeini(
        f"""
        [pytest]
        ecs_endpoint_url = {world.sandbox.endpoint_url}
        ecs_region = {world.sandbox.region_name}
        ecs_cluster = prod
        ecs_service =
            prod/web
        ecr_repository = web
        ecs_policy = release
        """
    )
    result = pytester.runpytest(*INNER)
    passed, failed = outcomes(result)
    assert failed == set() and len(passed) == RELEASE_ITEMS  # solo is not in the target
    result = pytester.runpytest(*INNER, "--ecs-service", "solo", "--ecs-policy=release")
    _, failed = outcomes(result)
    assert failed == {"REL006-rollback-target[prod/solo]"}
    result = pytester.runpytest(*INNER, "--ecs-policy=none")
    assert outcomes(result) == (set(), set())


def test_markers_are_registered_and_select_items(
    pytester: pytest.Pytester, world: World, aws_env: dict[str, str]
) -> None:
    result = pytester.runpytest(*INNER, "--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.ecs_policy:*", "@pytest.mark.ecs_release:*", "@pytest.mark.ecs_hardening:*"]
    )
    args = target_args(world.sandbox, "--ecs-policy=all", "--strict-markers")
    passed, _ = outcomes(pytester.runpytest(*args, "-m", "ecs_hardening"))
    assert len(passed) == HARDENING_ITEMS and all(name.startswith("HARD") for name in passed)
    passed, _ = outcomes(pytester.runpytest(*args, "-k", "REL002 or rollback"))
    assert passed == {"REL002-tag-immutability[web]", "REL006-rollback-target[prod/web]"}
    result = pytester.runpytest(*args, "--collect-only", "-q")
    collected = RELEASE_ITEMS + HARDENING_ITEMS
    result.stdout.fnmatch_lines(["ecsrelease::REL001-image-reference[[]web:1[]]", f"*{collected} tests collected*"])


USERS_TESTS = """
def test_repository(ecs_repository, ecs_release_policy):
    ecs_release_policy.assert_tag_immutable(ecs_repository)
    ecs_release_policy.assert_lifecycle_keeps_active_images(ecs_repository)

def test_revision(ecs_task_definition, ecs_release_policy):
    ecs_release_policy.assert_image_pinned(ecs_task_definition)
    ecs_release_policy.assert_images_exist(ecs_task_definition)
    ecs_release_policy.assert_one_revision_per_image(ecs_task_definition)
    ecs_release_policy.assert_hardened(ecs_task_definition)

def test_service(ecs_service, ecs_release_policy):
    ecs_release_policy.assert_rollback_possible(ecs_service)
    ecs_release_policy.assert_circuit_breaker(ecs_service)
    ecs_release_policy.assert_rollback_monitor(ecs_service)
    ecs_release_policy.assert_bake_time(ecs_service)
    ecs_release_policy.assert_hook_roles(ecs_service)
    ecs_release_policy.assert_version_consistency(ecs_service)

def test_snapshot(ecs_snapshot, ecs_library):
    assert [s.service for s in ecs_snapshot.scoped_services] == ["web"]
    assert len(ecs_library.revisions()) >= 2

def test_everything(ecs_release_policy):
    ecs_release_policy.assert_policy("all")
"""


def test_fixtures_run_users_tests_per_resource(
    pytester: pytest.Pytester, world: World, aws_env: dict[str, str]
) -> None:
    pytester.makepyfile(test_release=USERS_TESTS)
    report = pytester.path / "report.xml"
    result = pytester.runpytest(*target_args(world.sandbox, f"--junit-xml={report}"))
    passed, failed = outcomes(result)
    assert failed == set()
    assert passed == {
        "test_repository[web]",
        "test_revision[web:1]",
        "test_revision[web:2]",
        "test_service[prod/web]",
        "test_snapshot",
        "test_everything",
    }
    _, properties, _ = junit(report)["test_service[prod/web]"]
    assert properties["check_id"] in ("REL006", "REL007", "REL011", "REL012", "REL013", "REL014")


def test_assertion_helpers_name_the_problem_and_the_fix(
    pytester: pytest.Pytester, world: World, aws_env: dict[str, str]
) -> None:
    BREAKAGES["no-circuit-breaker"][0](world)
    BREAKAGES["latest-tag"][0](world)
    pytester.makepyfile(test_release=USERS_TESTS)
    result = pytester.runpytest(*target_args(world.sandbox))
    _, failed = outcomes(result)
    assert failed == {"test_service[prod/web]", "test_revision[web:3]", "test_everything"}
    result.stdout.fnmatch_lines(
        [
            "*REL007 service prod/web: no deployment circuit breaker*",
            "fix: aws ecs update-service --cluster CLUSTER --service SERVICE*",
            "*REL001 revision web:3: container web runs *web:latest: the tag latest names whatever was pushed last",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_target_that_is_not_there_is_one_line(
    pytester: pytest.Pytester, world: World, aws_env: dict[str, str]
) -> None:
    result = pytester.runpytest(*target_args(world.sandbox, "--ecs-cluster", "staging", "--ecs-policy"))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*opskit: no services in cluster staging: check --cluster (and the region)*"])
    assert "Traceback" not in result.stdout.str()
    pytester.makepyfile(test_release=USERS_TESTS)
    result = pytester.runpytest(*target_args(world.sandbox, "--ecs-cluster", "staging"))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ecsrelease: opskit: no services in cluster staging*"])
    assert "Traceback" not in result.stdout.str()


def test_without_options_the_plugin_stays_out_of_the_way(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(passed=1)
    assert "ecsrelease:" not in result.stdout.str()
    # Every pytest run of a project with opskit installed loads the plugin: it must not pull the AWS stack in.
    script = "import sys, pytest_ecsrelease.plugin; print(sorted({'boto3', 'moto', 'pandas'} & set(sys.modules)))"
    assert pytester.run(sys.executable, "-c", script).stdout.lines[-1] == "[]"


def test_ecs_sandbox_is_fresh_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_first(ecs_sandbox):
            ecs_sandbox.client("ecs").create_cluster(clusterName="one")

        def test_second(ecs_sandbox):
            assert ecs_sandbox.client("ecs").list_clusters()["clusterArns"] == []
        """
    )
    pytester.runpytest(*INNER).assert_outcomes(passed=2)

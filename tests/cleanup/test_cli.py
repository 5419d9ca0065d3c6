"""`opskit cleanup`: a dry run by default (table or JSON), --apply asks unless --yes, bad input: one line, exit 2."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from opskit.cli.cleanup import command
from opskit.sandbox import Sandbox

from .conftest import TIME_SCALE, World, build_world

BASE = ("--keep", "2", "--keep-days", "0", "--rollback-depth", "2", "--rate-scale", str(TIME_SCALE))


@pytest.fixture
def world(quiet: Sandbox) -> World:
    return build_world(quiet, revisions=10)


@pytest.fixture
def run(quiet: Sandbox) -> Any:
    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(command, list(args), env={**quiet.env, "AWS_PROFILE": None}, input=input)

    return invoke


def test_a_dry_run_prints_the_plan_and_changes_nothing(world: World, run: Any) -> None:
    before = world.state()
    result = run(*BASE)
    assert result.exit_code == 0, result.output
    assert "Cleanup plan: 20 revisions: keep 7, deregister 13, delete 0" in result.stdout
    assert "not in use, not a rollback target, #10 of web" in result.stdout  # web:1, with its reason
    assert "dry run: nothing changed" in result.stderr
    assert world.state() == before


def test_json_is_the_whole_plan(world: World, run: Any) -> None:
    result = run(*BASE, "--family", "web", "--format", "json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["counts"]["keep"] == 5 and plan["counts"]["deregister"] == 5
    assert plan["calls"] == {"DeregisterTaskDefinition": 5, "DeleteTaskDefinitions": 0, "BatchDeleteImage": 0}
    rows = {r["revision"]: r for r in plan["revisions"]}
    assert rows[9]["protections"] == ["deployment", "task", "newest"]
    assert rows[7]["reason"] == "rollback target 1 of prod/web"


def test_apply_asks_first_and_no_changes_nothing(world: World, run: Any) -> None:
    before = world.state()
    result = run(*BASE, "--apply", input="n\n")
    assert result.exit_code == 1
    assert "Deregister 13 and delete 0 revisions?" in result.stderr
    assert world.state() == before


def test_apply_yes_carries_it_out_and_prints_the_outcomes(world: World, run: Any) -> None:
    result = run(
        *BASE,
        "--delete-deregistered",
        "--images",
        "--untagged-days",
        "0",
        "--unreferenced-days",
        "0",
        "--apply",
        "--yes",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Cleanup: revisions: deleted 13, kept 7; images: deleted 19, kept 7")
    assert "journal:" in result.stdout
    world.deletions_finish()
    assert set(world.state()) == {"web:3", "web:5", "web:7", "web:9", "web:10", "api:9", "api:10"}


def test_apply_with_json_prints_the_result(world: World, run: Any) -> None:
    result = run(*BASE, "--family", "api", "--apply", "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["ok"] and outcome["counts"] == {"kept": 2, "deregistered": 8}
    assert {r["outcome"] for r in outcome["revisions"]} == {"kept", "deregistered"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--keep", "-1"), "--keep -1 is out of range: pass a count from 1 to 1000000"),
        (("--keep", "10000000000"), "--keep 10000000000 is out of range: pass a count from 1 to 1000000"),
        (("--keep", "0"), "--keep 0 is out of range"),
        (("--keep", "ten"), "--keep 'ten' is not a whole number"),
        (("--keep-days", "-2"), "--keep-days -2.0 is out of range: pass a number of days from 0 to 36500"),
        (("--keep-days", "nan"), "--keep-days 'nan' is not a number"),
        (("--rollback-depth", "0"), "--rollback-depth 0 is out of range: pass a count from 1 to 100"),
        (("--family", ""), "--family is empty"),
        (("--family", "web;rm -rf /"), "--family 'web;rm -rf /' is not a valid name"),
        (("--family", "nosuch"), "no task-definition family 'nosuch' in us-east-1: list them with `opskit revisions`"),
        (("--untagged-days", "3"), "apply to images: add --images"),
        (("--images", "--repository", "../etc"), "--repository '../etc' is not a valid name"),
        (("--images", "--repository", "nosuch"), "no ECR repository 'nosuch' in us-east-1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(world: World, run: Any, args: tuple[str, ...], message: str) -> None:
    before = world.state()
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("opskit: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1
    assert world.state() == before


def test_the_same_command_resumes_an_interrupted_run_and_others_mention_it(world: World, run: Any) -> None:
    from opskit.cleanup import apply_cleanup
    from opskit.progress import ProgressEvent

    plan = world.plan(world.options(families=("web",), delete_deregistered=False))

    def stop_at_the_third(event: ProgressEvent, seen: list[int] = [0]) -> None:  # noqa: B006
        seen[0] += 1
        if seen[0] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        apply_cleanup(plan, world.sandbox.aws(), rate_scale=TIME_SCALE, progress=stop_at_the_third)
    other = run(*BASE)
    assert "note: an interrupted cleanup with other options is unfinished (families=['web']" in other.stderr
    same = run(*BASE, "--family", "web")
    assert same.exit_code == 0 and same.stdout.startswith("Resuming the cleanup started")
    done = run(*BASE, "--family", "web", "--apply", "--yes", "--format", "json")
    assert json.loads(done.stdout)["resumed"] is True
    assert {k for k, v in world.state().items() if v == "INACTIVE"} == {f"web:{n}" for n in (1, 2, 4, 6, 8)}

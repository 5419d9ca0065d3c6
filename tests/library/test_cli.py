"""`opskit revisions | images | services | lineage` in every format, against the demo sandbox through its env."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from opskit.cli import main
from opskit.library import TABLES
from opskit.sandbox import Sandbox
from opskit.sandbox.demo import DEMO

COMMANDS = {"revisions": "revisions", "images": "images", "services": "services", "lineage": "lineage"}


@pytest.fixture
def run(demo: Sandbox, tmp_path: Path) -> Any:
    env = {**demo.env, "OPSKIT_CACHE_DIR": str(tmp_path / "cache"), "AWS_PROFILE": None, "OPSKIT_CACHE": None}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_json_is_a_list_of_rows_with_the_documented_columns(run: Any, command: str) -> None:
    result = run(command, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and all(list(row) == [c.name for c in TABLES[COMMANDS[command]]] for row in rows)
    assert "synced" in result.stderr  # the summary goes to stderr, never into the data


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_csv_has_a_header_of_the_documented_columns(run: Any, command: str) -> None:
    result = run(command, "--format", "csv")
    assert result.exit_code == 0, result.output
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert table[0] == [c.name for c in TABLES[COMMANDS[command]]]
    assert len(table) > 1


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_parquet_is_written_to_the_output_file(run: Any, command: str, tmp_path: Path) -> None:
    target = tmp_path / f"{command}.parquet"
    result = run(command, "--format", "parquet", "--output", str(target))
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(target)
    assert list(frame.columns) == [c.name for c in TABLES[COMMANDS[command]]]
    assert f"wrote {len(frame)} rows to {target}" in result.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_parquet_without_an_output_file_says_what_to_do(run: Any, command: str) -> None:
    result = run(command, "--format", "parquet")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "opskit: error: --format parquet writes a file: pass --output PATH, such as --output revisions.parquet"
    ]


def test_revisions_as_a_table_filtered_by_family_and_status(run: Any, demo: Sandbox) -> None:
    result = run("revisions", "--family", "web", "--status", "ACTIVE")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "family",
        "revision",
        "status",
        "registered_at",
        "commit",
        "container_count",
        "cpu",
        "memory",
    ]
    rows = [line.split() for line in lines[1:]]
    assert {r[0] for r in rows} == {"web"} and {r[2] for r in rows} == {"ACTIVE"}
    assert [int(r[1]) for r in rows] == [20, 21, 22, 23, 24, 25, 26, 28, 29, 30]


def test_services_as_a_table_show_the_rollback_targets(run: Any) -> None:
    result = run("services")
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line.split() for line in result.stdout.splitlines()[1:]}
    assert rows["web"][5] == "web:30" and rows["web"][-1] == "web:29"
    assert rows["worker"][-1] == "worker:13"


def test_images_unused_and_lineage_by_commit(run: Any) -> None:
    from opskit.sandbox.demo import commit_sha

    unused = run("images", "--unused", "--format", "json")
    tags = sorted(t for row in json.loads(unused.stdout) for t in row["tags"])
    assert tags == sorted(commit_sha("web", n)[:12] for n in range(1, 6))
    sha = commit_sha("api", 24)[:12]
    lineage = json.loads(run("lineage", "--commit", sha[:7], "--format", "json").stdout)
    assert [(r["family"], r["revision"], r["service"], r["is_current"]) for r in lineage] == [("api", 24, "api", True)]


def test_a_second_run_uses_the_cache_and_refresh_describes_again(run: Any, demo: Sandbox) -> None:
    assert run("revisions", "--format", "json").exit_code == 0
    demo.reset_calls()
    assert run("revisions", "--format", "json").exit_code == 0
    assert "DescribeTaskDefinition" not in demo.calls
    assert run("revisions", "--refresh", "--format", "json").exit_code == 0
    kept = sum(s.releases - s.delete_oldest for s in DEMO.services)  # every revision the demo did not delete
    assert demo.calls["DescribeTaskDefinition"] == kept
    demo.reset_calls()
    offline = run("revisions", "--no-sync", "--format", "json")
    assert len(json.loads(offline.stdout)) == kept
    assert set(demo.calls) <= {"GetCallerIdentity"}


def test_a_corrupt_cache_is_reported_as_one_warning_line(run: Any, tmp_path: Path) -> None:
    cache = tmp_path / "my.sqlite"
    cache.write_bytes(b"garbage" * 100)
    result = run("services", "--cache", str(cache), "--format", "json")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("opskit: warning:")]
    assert len(warnings) == 1 and "cannot be trusted" in warnings[0]

"""Drift in the library: revisions no release explains, from the sandbox over HTTP, and `opskit drift`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from opskit.cli import main
from opskit.library import RevisionLibrary
from opskit.sandbox import Sandbox

SHA = "0a8b1c9ee7e7"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """web:1 released from a commit, web:2 a console copy of it pinned by digest (no commit), live; web:3 managed
    by Terraform, with its commit; web:4 with a commit, registered by someone else than web:1 and web:3 (alice)."""
    with Sandbox(seed=None, time_scale=60, docker=False, registry=False, throttle=False) as sb:
        ecs = sb.client("ecs")
        ecs.create_cluster(clusterName="prod")
        image = f"{sb.registry_host}/web"

        def register(reference: str, *tags: tuple[str, str]) -> str:
            answer = ecs.register_task_definition(
                family="web",
                containerDefinitions=[{"name": "web", "image": reference, "memory": 64}],
                tags=[{"key": k, "value": v} for k, v in tags],
            )
            return str(answer["taskDefinition"]["taskDefinitionArn"])

        register(f"{image}:{SHA}", ("commit", SHA))
        hotfix = register(f"{image}@sha256:{'1' * 64}")
        register(f"{image}:{SHA}", ("commit", SHA), ("ManagedBy", "terraform"))
        ecs.create_service(cluster="prod", serviceName="web", taskDefinition=hotfix, desiredCount=1)
        iam = sb.client("iam")
        iam.create_user(UserName="alice")
        key = iam.create_access_key(UserName="alice")["AccessKey"]
        alice = sb.client("ecs", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        alice.register_task_definition(
            family="web",
            containerDefinitions=[{"name": "web", "image": f"{image}:{SHA}", "memory": 128}],
            tags=[{"key": "commit", "value": SHA}],
        )
        yield sb


def test_drift_names_each_revision_no_release_explains(sandbox: Sandbox, tmp_path: Path) -> None:
    library = RevisionLibrary(sandbox.aws(), cache_dir=tmp_path)
    library.sync(include=["revisions", "services"])
    drift = library.drift()
    assert drift["revision"].tolist() == [2, 3, 4]
    hotfix, managed, by_alice = drift.to_dict("records")
    assert by_alice["reasons"] == ["registered by another principal"]
    assert by_alice["registered_by"] == f"arn:aws:iam::{sandbox.account_id}:user/alice" and by_alice["commit"] == SHA
    assert hotfix["reasons"] == ["no commit"] and hotfix["running_in"] == ["prod/web"] and hotfix["commit"] is None
    assert managed["reasons"] == ["managed by terraform"] and managed["managed_by"] == "terraform"
    assert managed["running_in"] == [] and managed["commit"] == SHA


def test_opskit_drift_lists_the_live_drift(sandbox: Sandbox, tmp_path: Path) -> None:
    env = {**sandbox.env, "OPSKIT_CACHE_DIR": str(tmp_path / "cache")}
    result = CliRunner().invoke(main, ["drift", "--live", "--format", "json"], env=env)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert (row["family"], row["revision"], row["reasons"]) == ("web", 2, ["no commit"])
    table = CliRunner().invoke(main, ["drift", "--no-sync"], env=env).stdout.splitlines()
    assert table[0].split()[:3] == ["family", "revision", "status"] and len(table) == 4

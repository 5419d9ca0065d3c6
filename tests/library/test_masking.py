"""Variable values and secret sources never appear in the tables; a revision's body masks them unless asked."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from opskit.errors import NotFoundError
from opskit.library import MASK, export
from opskit.sandbox import Sandbox

from .seeding import library_of

SECRET_VALUES = ("hunter2-db-password", "tok-8f1c2e", "arn:aws:ssm:us-east-1:123456789012:parameter/prod/db")


@pytest.fixture
def revision(sandbox: Sandbox) -> str:
    ecs = sandbox.client("ecs")
    containers = [
        {
            "name": "app",
            "image": "127.0.0.1:1/app@sha256:" + "a" * 64,
            "memory": 128,
            "environment": [
                {"name": "DB_PASSWORD", "value": SECRET_VALUES[0]},
                {"name": "API_TOKEN", "value": SECRET_VALUES[1]},
            ],
            "secrets": [{"name": "DATABASE_URL", "valueFrom": SECRET_VALUES[2]}],
            "logConfiguration": {
                "logDriver": "splunk",
                "secretOptions": [{"name": "splunk-token", "valueFrom": SECRET_VALUES[2] + "-splunk"}],
            },
            "restartPolicy": {"enabled": True, "restartAttemptPeriod": 60},  # newer than some botocore models
        },
        {"name": "sidecar", "image": "nginx", "memory": 64, "essential": False},
        {"name": "hub", "image": "library/redis:7", "memory": 64, "essential": False},
    ]
    answer = ecs.register_task_definition(
        family="app",
        containerDefinitions=containers,
        enableFaultInjection=True,
        tags=[{"key": "commit", "value": "0123abc"}, {"key": "team", "value": "core"}],
    )
    return str(answer["taskDefinition"]["taskDefinitionArn"])


def test_the_tables_hold_names_and_never_values(sandbox: Sandbox, cache_dir: Path, revision: str) -> None:
    library = library_of(sandbox, cache_dir)
    library.sync()
    containers = library.containers()
    app = containers[containers["name"] == "app"].iloc[0]
    assert app["environment_names"] == ["DB_PASSWORD", "API_TOKEN"]
    assert app["secret_names"] == ["DATABASE_URL"]
    assert app["digest"] == "sha256:" + "a" * 64 and app["tag"] is pd_na()
    assert not app["uses_latest"] and not app["untagged"]
    sidecar = containers[containers["name"] == "sidecar"].iloc[0]
    assert (sidecar["repository"], bool(sidecar["untagged"]), bool(sidecar["uses_latest"])) == ("nginx", True, True)
    assert sidecar["registry"] is pd_na() and not sidecar["essential"]
    hub = containers[containers["name"] == "hub"].iloc[0]
    assert (hub["registry"], hub["repository"], hub["tag"]) == (pd_na(), "library/redis", "7")
    revisions = library.revisions()
    assert revisions.iloc[0]["tags"] == {"commit": "0123abc", "team": "core"}
    assert revisions.iloc[0]["commit"] == "0123abc" and revisions.iloc[0]["container_count"] == 3
    for name in ("revisions", "containers", "images", "services", "deployments", "lineage"):
        frame = library.table(name)
        for fmt in ("csv", "json"):
            text = io.StringIO()
            export(frame, text, fmt)
            assert not any(value in text.getvalue() for value in SECRET_VALUES), (name, fmt)


def test_a_body_is_masked_unless_asked(sandbox: Sandbox, cache_dir: Path, revision: str) -> None:
    library = library_of(sandbox, cache_dir)
    library.sync(include=["revisions"])
    sandbox.reset_calls()
    masked = library.revision_body("app:1")
    assert sandbox.calls == {}  # from the cache
    app = masked["taskDefinition"]["containerDefinitions"][0]
    assert app["environment"] == [{"name": "DB_PASSWORD", "value": MASK}, {"name": "API_TOKEN", "value": MASK}]
    assert app["secrets"] == [{"name": "DATABASE_URL", "valueFrom": MASK}]
    assert app["logConfiguration"]["secretOptions"] == [{"name": "splunk-token", "valueFrom": MASK}]
    assert not any(value in repr(masked) for value in SECRET_VALUES)

    unmasked = library.revision_body(revision, unmask=True)
    body = unmasked["taskDefinition"]
    app = body["containerDefinitions"][0]
    assert [e["value"] for e in app["environment"]] == list(SECRET_VALUES[:2])
    assert app["secrets"][0]["valueFrom"] == SECRET_VALUES[2]
    # Every field is kept, even ones the installed botocore may not model.
    assert body["enableFaultInjection"] is True and app["restartPolicy"] == {
        "enabled": True,
        "restartAttemptPeriod": 60,
    }
    assert unmasked["tags"] == [{"key": "commit", "value": "0123abc"}, {"key": "team", "value": "core"}]
    assert body["taskDefinitionArn"] == revision and body["status"] == "ACTIVE"


def test_a_body_not_yet_cached_is_described_on_request(sandbox: Sandbox, cache_dir: Path, revision: str) -> None:
    library = library_of(sandbox, cache_dir)
    body = library.revision_body(revision)
    assert sandbox.calls["DescribeTaskDefinition"] == 1
    assert body["taskDefinition"]["containerDefinitions"][0]["environment"][0]["value"] == MASK
    sandbox.reset_calls()
    library.revision_body(revision)
    assert sandbox.calls == {}
    with pytest.raises(NotFoundError, match="no task-definition revision app:9"):
        library.revision_body("app:9")


def pd_na() -> object:
    import pandas as pd

    return pd.NA

"""The AWS boundary: botocore decides region, endpoint and retries from the AWS environment as boto3 documents,
opskit never guesses them, and every way that environment can be wrong is one line and exit 2 from the command.

The command runs as a real process with an environment built here (no AWS_* variable of the machine's, empty AWS
config files), so what botocore resolves is what a user's shell would give it.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import botocore.exceptions
import pytest

from opskit.aws import Aws
from opskit.errors import AwsError, ConfigError
from opskit.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The process environment with nothing of AWS in it: no AWS_* variable, empty config and credentials files."""
    config, credentials = tmp_path / "aws-config", tmp_path / "aws-credentials"
    config.write_text("")
    credentials.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask an instance metadata service for credentials or a region
        "OPSKIT_CACHE_DIR": str(tmp_path / "cache"),
        "OPSKIT_STATE_DIR": str(tmp_path / "state"),
    }
    # The same environment for the in-process checks below (botocore reads os.environ).
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def run(clean_env: dict[str, str]) -> Run:
    def opskit(*args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
        full = {**clean_env, **{k: v for k, v in env.items() if v is not None}}
        for name in [k for k, v in env.items() if v is None]:
            full.pop(name, None)
        return subprocess.run(
            [sys.executable, "-m", "opskit", *args], env=full, capture_output=True, text=True, timeout=120, cwd=ROOT
        )

    return opskit


def assert_one_line(answer: subprocess.CompletedProcess[str], *words: str) -> str:
    assert answer.returncode == 2, (answer.returncode, answer.stdout, answer.stderr)
    assert answer.stdout == ""
    lines = answer.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("opskit: error: "), answer.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in answer.stderr
    return lines[0]


def sandbox_keys(sandbox: Sandbox) -> dict[str, str]:
    return {k: sandbox.env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}


def dead_endpoint() -> str:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- region --------------------------------------------------------------------------------------------------------
def test_no_region_is_an_error_never_a_guess(run: Run, sandbox: Sandbox) -> None:
    answer = run("services", AWS_ENDPOINT_URL=sandbox.endpoint_url, **sandbox_keys(sandbox))
    assert_one_line(answer, "no AWS region is configured", "AWS_REGION", "--region")
    assert sum(sandbox.calls.values()) == 0


def test_the_region_comes_from_aws_region_the_profile_or_the_option(run: Run, sandbox: Sandbox, tmp_path: Path) -> None:
    for how in ({"AWS_REGION": sandbox.region_name}, {"AWS_DEFAULT_REGION": sandbox.region_name}):
        sandbox.reset_calls()
        answer = run("services", AWS_ENDPOINT_URL=sandbox.endpoint_url, **sandbox_keys(sandbox), **how)
        assert answer.returncode == 0, answer.stderr
        assert sandbox.calls["ListClusters"] >= 1
    profile = tmp_path / "profile-config"
    profile.write_text(f"[profile demo]\nregion = {sandbox.region_name}\n")
    answer = run(
        "services",
        AWS_ENDPOINT_URL=sandbox.endpoint_url,
        AWS_CONFIG_FILE=str(profile),
        AWS_PROFILE="demo",
        **sandbox_keys(sandbox),
    )
    assert answer.returncode == 0, answer.stderr
    answer = run(
        "services", "--region", sandbox.region_name, AWS_ENDPOINT_URL=sandbox.endpoint_url, **sandbox_keys(sandbox)
    )
    assert answer.returncode == 0, answer.stderr


def test_a_malformed_region_is_one_line(run: Run) -> None:
    assert_one_line(run("services", "--region", "us east 1"), "is not a region name")


def test_an_unknown_region_is_told_apart_from_an_unreachable_endpoint() -> None:
    aws = Aws(region="us-nowhere-1")
    lost = botocore.exceptions.EndpointConnectionError(endpoint_url="https://ecs.us-nowhere-1.amazonaws.com/")
    assert "not a region AWS has" in str(aws.translate(lost))
    known = Aws(region="eu-west-1")
    assert "check the region, the endpoint URL and the network" in str(known.translate(lost))


# -- credentials and profiles ------------------------------------------------------------------------------------
def test_a_partial_key_pair_is_one_line_before_anything_is_sent(run: Run, sandbox: Sandbox, tmp_path: Path) -> None:
    checkout = tmp_path / "app"
    checkout.mkdir()
    (checkout / "Dockerfile").write_text("FROM scratch\n")
    for args in (
        ["init", "-q"],
        ["add", "Dockerfile"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
    ):
        subprocess.run(["git", *args], cwd=checkout, check=True, capture_output=True)
    half = {
        "AWS_ENDPOINT_URL": sandbox.endpoint_url,
        "AWS_REGION": sandbox.region_name,
        "AWS_ACCESS_KEY_ID": "AKIAHALF",
    }
    answer = run("release", "--cluster", "demo", "--service", "web", "--path", str(checkout), "--dry-run", **half)
    assert_one_line(answer, "incomplete", "AWS_SECRET_ACCESS_KEY")
    assert_one_line(run("services", **half), "incomplete", "AWS_SECRET_ACCESS_KEY")
    assert sum(sandbox.calls.values()) == 0


def test_a_profile_that_is_not_configured_is_named(run: Run) -> None:
    assert_one_line(run("services", AWS_PROFILE="nope"), "'nope' is not configured")
    assert_one_line(run("services", "--profile", "nope"), "'nope' is not configured")


def test_no_credentials_at_all_is_one_line(run: Run, sandbox: Sandbox) -> None:
    answer = run("services", AWS_ENDPOINT_URL=sandbox.endpoint_url, AWS_REGION=sandbox.region_name)
    assert_one_line(answer, "no AWS credentials found")


# -- endpoints -----------------------------------------------------------------------------------------------------
def test_a_service_endpoint_wins_over_the_global_one(run: Run, sandbox: Sandbox) -> None:
    """AWS_ENDPOINT_URL_<SERVICE> beats AWS_ENDPOINT_URL, as boto3 documents: opskit passes no endpoint itself."""
    here = sandbox.endpoint_url
    answer = run(
        "services",
        AWS_ENDPOINT_URL=dead_endpoint(),
        AWS_ENDPOINT_URL_ECS=here,
        AWS_ENDPOINT_URL_ECR=here,
        AWS_ENDPOINT_URL_STS=here,
        AWS_REGION=sandbox.region_name,
        **sandbox_keys(sandbox),
    )
    assert answer.returncode == 0, answer.stderr
    assert sandbox.calls["ListClusters"] >= 1


def test_configured_endpoints_can_be_ignored(
    clean_env: dict[str, str], sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", sandbox.endpoint_url)
    assert Aws(region="eu-west-1").custom_endpoint == sandbox.endpoint_url
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    aws = Aws(region="eu-west-1")
    assert aws.custom_endpoint is None
    assert aws.endpoint("ecs") == "https://ecs.eu-west-1.amazonaws.com"
    assert Aws(region="eu-west-1", endpoint_url=sandbox.endpoint_url).custom_endpoint == sandbox.endpoint_url


def test_an_endpoint_without_a_scheme_is_one_line(run: Run) -> None:
    assert_one_line(run("services", AWS_REGION="eu-west-1", AWS_ENDPOINT_URL="127.0.0.1:4566"), "http(s) URL")
    assert_one_line(run("services", "--region", "eu-west-1", "--endpoint-url", "127.0.0.1:4566"), "http(s) URL")


def test_an_unreachable_endpoint_is_one_line(run: Run, sandbox: Sandbox) -> None:
    answer = run(
        "services",
        AWS_REGION=sandbox.region_name,
        AWS_ENDPOINT_URL=dead_endpoint(),
        AWS_MAX_ATTEMPTS="2",
        **sandbox_keys(sandbox),
    )
    assert_one_line(answer, "cannot reach AWS")


# -- retries -------------------------------------------------------------------------------------------------------
def test_retry_mode_and_attempts_come_from_the_aws_environment(
    clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def retries() -> dict[str, object]:
        return dict(Aws(region="eu-west-1").client("ecs").meta.config.retries)

    assert retries() == {"mode": "standard", "total_max_attempts": 10}
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "4")
    assert retries() == {"mode": "adaptive", "total_max_attempts": 4}
    monkeypatch.setenv("AWS_RETRY_MODE", "eager")
    with pytest.raises(ConfigError, match="AWS_RETRY_MODE"):
        Aws(region="eu-west-1")


def test_adaptive_retries_recover_from_throttling(
    sandbox: Sandbox, clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """adaptive is honoured for real: a throttled call is retried by botocore and succeeds."""
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    aws = sandbox.aws()
    sandbox.faults.set("ListClusters", throttle_rate=0.5)
    calls = 0
    while not sandbox.throttled["ListClusters"] and calls < 200:  # until one was throttled (a coin each time)
        aws.client("ecs").list_clusters()
        calls += 1
    assert sandbox.throttled["ListClusters"] >= 1
    # every throttled attempt was retried by botocore until it passed: each call of ours succeeded
    assert sandbox.calls["ListClusters"] == calls + sandbox.throttled["ListClusters"]


# -- translation -------------------------------------------------------------------------------------------------
def test_every_failure_of_an_aws_client_is_an_aws_error(sandbox: Sandbox) -> None:
    ecs = sandbox.aws(max_attempts=1).client("ecs")
    with pytest.raises(AwsError) as refused:
        ecs.describe_services(cluster="nope", services=["web"])
    assert refused.value.code == "ClusterNotFoundException"
    with pytest.raises(AwsError) as invalid:
        ecs.describe_services(cluster=7, services="web")
    assert invalid.value.code is None and "refuse" in str(invalid.value)
    with pytest.raises(AwsError):
        list(ecs.get_paginator("list_services").paginate(cluster="nope"))
    lost = Aws(
        region="us-east-1", endpoint_url=dead_endpoint(), max_attempts=1, access_key_id="a", secret_access_key="b"
    )
    with pytest.raises(AwsError, match="cannot reach AWS"):
        lost.client("ecs").list_clusters()
    with pytest.raises(AwsError, match="cannot reach AWS"):
        lost.call_json("ecs", "ListClusters", {})


def test_only_the_boundary_and_the_sandbox_know_botocore() -> None:
    """No layer above opskit.aws catches botocore's types or reads its error responses."""
    allowed = {"aws.py", "aws_errors.py"}
    offenders = []
    for path in sorted((ROOT / "opskit").rglob("*.py")) + sorted((ROOT / "pytest_ecsrelease").rglob("*.py")):
        relative = path.relative_to(ROOT)
        if (path.name in allowed and path.parent.name == "opskit") or relative.parts[:2] == ("opskit", "sandbox"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            offenders += [f"{relative}: {n}" for n in names if n.split(".")[0] == "botocore"]
    assert offenders == []


def test_a_raw_call_parses_its_answer_once_and_leaves_errors_to_botocore(sandbox: Sandbox) -> None:
    """call_json returns the answer exactly as sent (fields the installed model may not know included), and
    botocore's model parser is handed an empty body for it: one json.loads per answer, not two parses."""
    aws = sandbox.aws()
    parsed: list[dict[str, object]] = []
    raw = aws._raw_client("ecs")  # the client call_json uses: a public botocore event shows what its parser made
    raw.meta.events.register("after-call", lambda **kwargs: parsed.append(kwargs["parsed"]))
    body = {
        "family": "once",
        "containerDefinitions": [{"name": "web", "image": "busybox", "memory": 64}],
        "enableFaultInjection": False,
    }
    answer = aws.call_json("ecs", "RegisterTaskDefinition", body)
    assert answer["taskDefinition"]["family"] == "once"
    assert answer["taskDefinition"]["revision"] == 1
    assert isinstance(answer["taskDefinition"]["registeredAt"], float)  # epoch seconds, as sent
    assert parsed and "taskDefinition" not in parsed[-1]  # the model parser saw nothing to parse
    with pytest.raises(AwsError) as missing:
        aws.call_json("ecs", "DescribeTaskDefinition", {"taskDefinition": "nope:1"})
    assert missing.value.code == "ClientException"  # an error's body still reaches botocore, code and all


def test_a_raw_call_reaches_an_operation_the_installed_model_lacks(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ECS adds operations faster than every machine upgrades botocore: call_json sends one its model lacks all the
    same (here an ECS model without ContinueServiceDeployment, as botocore had before PAUSE hooks came)."""
    import botocore.session

    loader = botocore.session.get_session().get_component("data_loader")
    model = loader.load_service_model("ecs", "service-2")
    version = model["metadata"]["apiVersion"]
    model["operations"].pop("ContinueServiceDeployment", None)
    (tmp_path / "ecs" / version).mkdir(parents=True)
    (tmp_path / "ecs" / version / "service-2.json").write_text(json.dumps(model))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    aws = sandbox.aws()
    assert not hasattr(aws.client("ecs"), "continue_service_deployment")
    arn = f"arn:aws:ecs:{sandbox.region_name}:{sandbox.account_id}:service-deployment/prod/web/none"
    with pytest.raises(AwsError) as missing:  # the sandbox's answer to ContinueServiceDeployment itself
        aws.call_json("ecs", "ContinueServiceDeployment", {"serviceDeploymentArn": arn, "hookId": "h"})
    assert missing.value.code == "ServiceDeploymentNotFoundException"
    with pytest.raises(AwsError) as unknown:
        aws.call_json("ecs", "FrobnicateServices", {})
    assert unknown.value.code == "UnknownOperationException" and "FrobnicateServices" in str(unknown.value)


def test_sessions_share_botocore_data_files_per_data_path(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One loader of botocore's models per data path: a second Aws does not read and parse them again, and one
    with AWS_DATA_PATH of its own gets a loader that searches that path."""
    first, second = sandbox.aws(), sandbox.aws()
    loader = first._session.get_component("data_loader")
    assert second._session.get_component("data_loader") is loader
    assert second.client("ecs").list_clusters()["clusterArns"] == []

    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    elsewhere = sandbox.aws()
    other = elsewhere._session.get_component("data_loader")
    assert other is not loader and str(tmp_path) in other.search_paths
    assert elsewhere.client("ecs").list_clusters()["clusterArns"] == []

"""Lambda functions in the sandbox: created with plain boto3 over HTTP, run by the sandbox's runner in child
processes, read as ECS reads a lifecycle hook's answer."""

from __future__ import annotations

import io
import json
import queue
import time
import zipfile
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from opskit.sandbox import Sandbox
from opskit.sandbox.lambdas import InvokeResult, hook_event, hook_outcome
from opskit.sandbox.server.wire import ApiError

ROLE = "hook-role"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
WAIT_SECONDS = 120  # how long a test waits for what it is owed; never an assertion on speed

HOOK = """
import json
import os
import subprocess
import sys
import time


def succeeded(event, context):
    return {"hookStatus": "SUCCEEDED"}


def echo(event, context):
    return {
        "hookStatus": "SUCCEEDED",
        "event": event,
        "function_name": context.function_name,
        "invoked_function_arn": context.invoked_function_arn,
        "aws_request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "environment": {
            name: os.environ.get(name)
            for name in ("STAGE_NAME", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                         "AWS_LAMBDA_FUNCTION_NAME", "LAMBDA_TASK_ROOT")
        },
        "cwd": os.getcwd(),
    }


def answer(event, context):
    return event["answer"]


def raises(event, context):
    raise ValueError("the green revision answered 503 on /health")


def sleeps(event, context):
    child = subprocess.Popen(["sleep", "600"])
    with open(event["pids"], "w") as out:
        json.dump({"hook": os.getpid(), "child": child.pid}, out)
    time.sleep(600)
    return {"hookStatus": "SUCCEEDED"}


def looks_at_the_sandbox(event, context):
    import boto3

    ecs = boto3.client("ecs")
    while context.get_remaining_time_in_millis() > 2000:
        arns = ecs.list_clusters()["clusterArns"]
        if any(arn.endswith("/" + event["wait_for"]) for arn in arns):
            described = ecs.describe_clusters(clusters=arns)["clusters"]
            return {"hookStatus": "SUCCEEDED", "clusters": sorted(c["clusterName"] for c in described)}
        time.sleep(0.1)
    return {"hookStatus": "FAILED"}
"""


def zipped(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return out.getvalue()


CODE = zipped({"hook.py": HOOK})  # made once: a zip's entries carry the time they were written


def role_arn(sandbox: Sandbox) -> str:
    iam = sandbox.client("iam")
    try:
        return str(iam.get_role(RoleName=ROLE)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"])


def create_function(
    sandbox: Sandbox, name: str, handler: str, *, timeout: int = 60, env: dict[str, str] | None = None, **extra: Any
) -> str:
    """A function made as users make it: plain boto3 against the sandbox's endpoint; its ARN."""
    created = sandbox.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role_arn(sandbox),
        Handler=handler,
        Code={"ZipFile": CODE},
        Timeout=timeout,
        Environment={"Variables": env or {}},
        **extra,
    )
    return str(created["FunctionArn"])


def deployment_event(sandbox: Sandbox, stage: str = "POST_SCALE_UP", **details: Any) -> dict[str, Any]:
    prefix = f"arn:aws:ecs:{sandbox.region_name}:{sandbox.account_id}"
    return hook_event(
        lifecycle_stage=stage,
        service_deployment_arn=f"{prefix}:service-deployment/prod/web/dep1",
        service_arn=f"{prefix}:service/prod/web",
        target_service_revision_arn=f"{prefix}:service-revision/prod/web/2",
        production_traffic_weights={f"{prefix}:service-revision/prod/web/1": 100},
        test_traffic_weights={f"{prefix}:service-revision/prod/web/2": 100},
        **details,
    )


def gone(pid: int) -> bool:
    """The process has ended: no such process, or a zombie nobody reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.05)


# -- functions over the sandbox's endpoint ---------------------------------------------------------------------------
def test_functions_and_roles_are_created_with_plain_boto3_over_the_sandbox_endpoint(sandbox: Sandbox) -> None:
    arn = create_function(sandbox, "gate", "hook.succeeded", timeout=7, env={"STAGE_NAME": "prod"})
    assert arn == f"arn:aws:lambda:{sandbox.region_name}:{sandbox.account_id}:function:gate"
    config = sandbox.client("lambda").get_function(FunctionName="gate")["Configuration"]
    assert (config["Handler"], config["Timeout"], config["Environment"]) == (
        "hook.succeeded",
        7,
        {"Variables": {"STAGE_NAME": "prod"}},
    )
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sandbox.client("lambda").get_function(FunctionName="nope")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_closed_sandbox_leaves_no_function_or_role_to_the_next_one_of_its_account() -> None:
    accounts = []
    for _ in range(2):  # the second sandbox takes the account the first one gave back
        with Sandbox(seed=None, registry=False, docker=False) as sandbox:
            accounts.append(sandbox.account_id)
            assert sandbox.client("lambda").list_functions()["Functions"] == []
            create_function(sandbox, "gate", "hook.succeeded")  # the role too: EntityAlreadyExists if it were kept
    assert accounts[0] == accounts[1]


# -- invoking ---------------------------------------------------------------------------------------------------------
def test_a_hook_gets_the_event_a_context_its_variables_and_the_sandbox_environment(sandbox: Sandbox) -> None:
    # AWS_ENDPOINT_URL set on the function loses to the sandbox's: a hook's calls never leave the sandbox.
    arn = create_function(
        sandbox, "echo", "hook.echo", env={"STAGE_NAME": "prod", "AWS_ENDPOINT_URL": "http://192.0.2.1:9"}
    )
    event = deployment_event(sandbox, hook_details={"endpoint": "http://web.test"})

    result = sandbox.region.lambdas.invoke(arn, event)

    assert result.function_error is None, result.payload
    seen = result.payload
    assert seen["event"] == event
    assert (seen["function_name"], seen["invoked_function_arn"], seen["aws_request_id"]) == (
        "echo",
        arn,
        result.request_id,
    )
    assert 0 < seen["remaining_ms"] <= 60_000
    assert seen["memory_limit_in_mb"] == "128"
    assert seen["environment"] == {
        "STAGE_NAME": "prod",
        "AWS_ENDPOINT_URL": sandbox.endpoint_url,
        "AWS_REGION": sandbox.region_name,
        "AWS_DEFAULT_REGION": sandbox.region_name,
        "AWS_ACCESS_KEY_ID": sandbox.env["AWS_ACCESS_KEY_ID"],
        "AWS_LAMBDA_FUNCTION_NAME": "echo",
        "LAMBDA_TASK_ROOT": seen["cwd"],
    }
    assert hook_outcome(result).status == "SUCCEEDED"


def test_a_function_is_found_by_name_or_arn_and_its_code_is_unpacked_once(sandbox: Sandbox) -> None:
    arn = create_function(sandbox, "echo", "hook.echo")
    create_function(sandbox, "echo-too", "hook.echo")  # the same zip under another name
    roots = {sandbox.region.lambdas.invoke(name, {}).payload["cwd"] for name in ("echo", arn, "echo-too")}
    assert len(roots) == 1


@pytest.mark.parametrize(
    ("answer", "status", "delay", "details"),
    [
        ({"hookStatus": "SUCCEEDED"}, "SUCCEEDED", None, None),
        ({"hookStatus": "FAILED"}, "FAILED", None, None),
        (
            {"hookStatus": "IN_PROGRESS", "callBackDelay": 5, "hookDetails": {"attempt": 1}},
            "IN_PROGRESS",
            5,
            {"attempt": 1},
        ),
        ({"hookStatus": "IN_PROGRESS"}, "IN_PROGRESS", 30, None),  # ECS's default delay
        ({"hookStatus": "SUCCEEDED", "callBackDelay": "soon"}, "SUCCEEDED", None, None),  # read only with IN_PROGRESS
    ],
)
def test_a_hooks_answer_reads_as_ecs_reads_it(
    sandbox: Sandbox, answer: dict[str, Any], status: str, delay: int | None, details: Any
) -> None:
    create_function(sandbox, "gate", "hook.answer")
    result = sandbox.region.lambdas.invoke("gate", {"answer": answer})
    assert result.payload == answer
    outcome = hook_outcome(result)
    assert (outcome.status, outcome.callback_delay, outcome.hook_details, outcome.reason) == (
        status,
        delay,
        details,
        "",
    )


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("SUCCEEDED", "str, not a JSON object with hookStatus"),
        (None, "NoneType, not a JSON object"),
        ({"status": "SUCCEEDED"}, "hookStatus None is not one of SUCCEEDED, FAILED, IN_PROGRESS"),
        ({"hookStatus": "succeeded"}, "hookStatus 'succeeded' is not one of"),
        ({"hookStatus": "IN_PROGRESS", "callBackDelay": "soon"}, "callBackDelay 'soon' is not a number of seconds"),
        ({"hookStatus": "IN_PROGRESS", "callBackDelay": -1}, "callBackDelay -1 is not a number of seconds"),
        ({"hookStatus": "IN_PROGRESS", "hookDetails": ["a"]}, "hookDetails is list, not a JSON object"),
    ],
)
def test_a_malformed_answer_fails_the_hook(sandbox: Sandbox, answer: Any, why: str) -> None:
    arn = create_function(sandbox, "gate", "hook.answer")
    result = sandbox.region.lambdas.invoke("gate", {"answer": answer})
    assert result.function_error is None
    outcome = hook_outcome(result)
    assert outcome.status == "FAILED"
    assert outcome.reason.startswith(f"the lifecycle hook {arn} returned an invalid answer: {why}")


def test_a_handler_that_raises_is_a_function_error_and_fails_the_hook(sandbox: Sandbox) -> None:
    arn = create_function(sandbox, "gate", "hook.raises")
    result = sandbox.region.lambdas.invoke("gate", deployment_event(sandbox))
    assert result.function_error == "Unhandled"
    assert (result.error_type, result.error_message) == ("ValueError", "the green revision answered 503 on /health")
    assert result.payload["requestId"] == result.request_id
    assert any("in raises" in frame for frame in result.payload["stackTrace"])
    assert "ValueError: the green revision answered 503 on /health" in result.logs
    outcome = hook_outcome(result)
    assert outcome.status == "FAILED"
    assert outcome.reason == f"the lifecycle hook {arn} failed: ValueError: the green revision answered 503 on /health"


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("hook", "Runtime.MalformedHandlerName", "Bad handler 'hook'"),
        ("nomodule.handler", "Runtime.ImportModuleError", "Unable to import module 'nomodule'"),
        ("hook.missing", "Runtime.HandlerNotFound", "Handler 'missing' missing on module 'hook'"),
    ],
)
def test_a_handler_that_cannot_be_loaded_fails_as_lambda_says(
    sandbox: Sandbox, handler: str, error_type: str, message: str
) -> None:
    create_function(sandbox, "gate", handler)
    result = sandbox.region.lambdas.invoke("gate", {})
    assert result.function_error == "Unhandled"
    assert result.error_type == error_type
    assert (result.error_message or "").startswith(message)
    assert hook_outcome(result).status == "FAILED"


def test_a_function_over_its_timeout_is_killed_with_what_it_started(sandbox: Sandbox, tmp_path: Path) -> None:
    create_function(sandbox, "slow", "hook.sleeps", timeout=1)
    pids = tmp_path / "pids.json"

    result = sandbox.region.lambdas.invoke("slow", {"pids": str(pids)})

    assert result.function_error == "Unhandled"
    assert result.error_type == "Sandbox.Timedout"
    assert result.error_message == f"RequestId: {result.request_id} Error: Task timed out after 1.00 seconds"
    started = json.loads(pids.read_text())
    assert gone(started["hook"])
    wait_for(lambda: gone(started["child"]), "the process the hook started to end")
    assert hook_outcome(result).status == "FAILED"


def test_wait_returns_once_the_started_invocations_have_ended(sandbox: Sandbox, tmp_path: Path) -> None:
    """What the demo's history waits on before it moves the clock past a Lambda hook."""
    create_function(sandbox, "slow", "hook.sleeps", timeout=1)
    done: queue.Queue[InvokeResult] = queue.Queue()
    sandbox.region.lambdas.start("slow", {"pids": str(tmp_path / "pids.json")}, done.put)
    assert sandbox.region.lambdas.wait(0.05) is False  # it sleeps until its timeout (a second) kills it
    assert sandbox.region.lambdas.wait(WAIT_SECONDS) is True
    assert done.get(timeout=WAIT_SECONDS).error_type == "Sandbox.Timedout"
    assert sandbox.region.lambdas.wait(0) is True  # nothing left to wait for


def test_a_missing_function_is_resource_not_found_in_lambdas_words(sandbox: Sandbox) -> None:
    missing = f"arn:aws:lambda:{sandbox.region_name}:{sandbox.account_id}:function:nope"
    with pytest.raises(ApiError) as caught:
        sandbox.region.lambdas.invoke("nope", {})
    assert (caught.value.code, caught.value.message) == ("ResourceNotFoundException", f"Function not found: {missing}")

    done: queue.Queue[InvokeResult] = queue.Queue()
    sandbox.region.lambdas.start(missing, {}, done.put)
    result = done.get(timeout=WAIT_SECONDS)
    assert result.error is not None and result.error.code == "ResourceNotFoundException"
    assert (result.function_arn, result.error_type) == (missing, "ResourceNotFoundException")
    outcome = hook_outcome(result)
    assert outcome.status == "FAILED"
    assert (
        outcome.reason
        == f"the lifecycle hook {missing} failed: ResourceNotFoundException: Function not found: {missing}"
    )


def test_a_function_the_sandbox_cannot_run_is_refused_with_what_to_do(sandbox: Sandbox) -> None:
    sandbox.client("lambda").create_function(
        FunctionName="node",
        Runtime="nodejs20.x",
        Role=role_arn(sandbox),
        Handler="index.handler",
        Code={"ZipFile": zipped({"index.js": "exports.handler = async () => ({hookStatus: 'SUCCEEDED'});"})},
    )
    with pytest.raises(ApiError) as caught:
        sandbox.region.lambdas.invoke("node", {})
    assert caught.value.code == "InvalidRuntimeException"
    assert "Runtime python3.x" in caught.value.message


def test_a_payload_that_is_not_json_is_refused(sandbox: Sandbox) -> None:
    create_function(sandbox, "gate", "hook.succeeded")
    with pytest.raises(ApiError) as caught:
        sandbox.region.lambdas.invoke("gate", {"when": object()})
    assert caught.value.code == "InvalidRequestContentException"


# -- a hook calls the sandbox while it runs ---------------------------------------------------------------------------
def test_the_sandbox_serves_a_hook_that_calls_it_while_the_hook_runs(sandbox: Sandbox) -> None:
    ecs = sandbox.client("ecs")
    ecs.create_cluster(clusterName="prod")
    create_function(sandbox, "watcher", "hook.looks_at_the_sandbox")
    done: queue.Queue[InvokeResult] = queue.Queue()

    sandbox.region.lambdas.start("watcher", {"wait_for": "late"}, done.put)
    # The hook polls the sandbox until this cluster shows up: it ends only if the sandbox answers both of us meanwhile.
    wait_for(lambda: sandbox.calls["ListClusters"] > 0, "the hook's first call")
    ecs.create_cluster(clusterName="late")
    result = done.get(timeout=WAIT_SECONDS)

    assert result.function_error is None, (result.payload, result.logs)
    assert result.payload == {"hookStatus": "SUCCEEDED", "clusters": ["late", "prod"]}
    assert sandbox.calls["DescribeClusters"] == 1  # the hook's call, received by this sandbox


def test_closing_the_sandbox_kills_running_functions_and_calls_nobody_back(tmp_path: Path) -> None:
    pids = tmp_path / "pids.json"
    done: queue.Queue[InvokeResult] = queue.Queue()
    with Sandbox(seed=None, registry=False, docker=False) as sandbox:
        create_function(sandbox, "slow", "hook.sleeps", timeout=600)
        sandbox.region.lambdas.start("slow", {"pids": str(pids)}, done.put)
        wait_for(pids.exists, "the hook to start")
        wait_for(lambda: pids.stat().st_size > 0, "the hook to write its pids")
    started = json.loads(pids.read_text())
    assert gone(started["hook"])
    wait_for(lambda: gone(started["child"]), "the process the hook started to end")
    assert done.empty()


# -- the event ECS sends ----------------------------------------------------------------------------------------------
def test_the_hook_event_has_ecs_fields_and_hook_details_only_when_there_are_some() -> None:
    arn = "arn:aws:ecs:us-east-1:123456789012"
    event = hook_event(
        lifecycle_stage="POST_TEST_TRAFFIC_SHIFT",
        service_deployment_arn=f"{arn}:service-deployment/prod/web/d1",
        service_arn=f"{arn}:service/prod/web",
        target_service_revision_arn=f"{arn}:service-revision/prod/web/2",
        test_traffic_weights={f"{arn}:service-revision/prod/web/2": 100},
        execution_id="x1",
    )
    assert event == {
        "executionId": "x1",
        "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
        "resourceArn": f"{arn}:service-deployment/prod/web/d1",
        "executionDetails": {
            "testTrafficWeights": {f"{arn}:service-revision/prod/web/2": 100},
            "productionTrafficWeights": {},
            "serviceArn": f"{arn}:service/prod/web",
            "targetServiceRevisionArn": f"{arn}:service-revision/prod/web/2",
        },
    }
    again = hook_event(
        lifecycle_stage="PRE_SCALE_UP",
        service_deployment_arn="d",
        service_arn="s",
        target_service_revision_arn="r",
        hook_details={"bucket": "approvals"},
    )
    assert again["hookDetails"] == {"bucket": "approvals"}
    assert (
        again["executionId"]
        != hook_event(
            lifecycle_stage="PRE_SCALE_UP", service_deployment_arn="d", service_arn="s", target_service_revision_arn="r"
        )["executionId"]
    )
    with pytest.raises(ValueError, match="not a stage a lifecycle hook runs at"):
        hook_event(
            lifecycle_stage="BAKE_TIME", service_deployment_arn="d", service_arn="s", target_service_revision_arn="r"
        )

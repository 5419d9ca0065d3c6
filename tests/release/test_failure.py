"""Why a release failed, in words a person acts on: the failing container's exit code and the last line of its log
(CloudWatch Logs, awslogs), the circuit breaker's count, from the record, the panel's data and the command."""

from __future__ import annotations

import json
import time
from typing import Any

from opskit.release import ReleaseOptions, apply_release, plan_release
from opskit.release.failure import Failure
from tests.release.conftest import World, settle_rollout
from tests.release.test_release_errors import release_cli

FAST = {"poll_interval": 0.1, "timeout": 120}
FATAL = "FATAL: DATABASE_URL is not set"
# A health check (Docker's, in real seconds) that the crashing container never lives to pass, so each of its tasks
# counts against the circuit breaker; web:2's sleeping container passes it after one interval.
HEALTH = {"command": ["CMD-SHELL", "true"], "interval": 5, "retries": 1}


def logging_world(world: World) -> None:
    """web:2 like web:1, with its log in CloudWatch Logs (awslogs, group /ecs/web) and a health check; live."""
    world.sandbox.client("logs").create_log_group(logGroupName="/ecs/web")
    body = world.ecs.describe_task_definition(taskDefinition="web:1")["taskDefinition"]
    (container,) = body["containerDefinitions"]
    container["logConfiguration"] = {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": "/ecs/web",
            "awslogs-region": world.sandbox.region_name,
            "awslogs-stream-prefix": "web",
        },
    }
    container["healthCheck"] = HEALTH
    world.ecs.register_task_definition(family="web", containerDefinitions=[container])
    world.ecs.update_service(cluster="prod", service="web", taskDefinition="web:2")
    deadline = time.monotonic() + 60
    while not all(t.get("healthStatus") == "HEALTHY" for t in running(world)) and time.monotonic() < deadline:
        time.sleep(0.5)
    settle_rollout(world)


def running(world: World) -> list[dict[str, Any]]:
    arns = world.ecs.list_tasks(cluster="prod", serviceName="web", desiredStatus="RUNNING")["taskArns"]
    tasks = world.ecs.describe_tasks(cluster="prod", tasks=arns)["tasks"] if arns else []
    return [t for t in tasks if t["taskDefinitionArn"].endswith("web:2")] or [{}]


def crashing_commit(world: World) -> None:
    dockerfile = (world.app / "Dockerfile").read_text().replace("sleep 3600", f"echo starting; echo {FATAL}; exit 3")
    world.commit("needs a database", Dockerfile=dockerfile)


def test_a_crashing_release_names_the_exit_code_and_the_log_line(world: World) -> None:
    logging_world(world)
    crashing_commit(world)
    record = apply_release(
        plan_release(world.aws, ReleaseOptions(cluster="prod", service="web", path=world.app)), world.aws, **FAST
    )

    assert record.outcome == "ROLLED_BACK", record.reason
    assert "circuit breaker" in record.reason
    assert "container web exited with code 3" in record.cause
    assert "Essential container in task exited" in record.cause
    assert record.cause.endswith(f"its log ends: {FATAL}")
    failure = Failure.from_dict(record.failure or {})
    assert failure.tasks and all(t.containers[0].exit_code == 3 for t in failure.tasks)
    assert failure.log[-2:] == ("starting", FATAL)
    assert failure.breaker["status"] == "TRIGGERED"
    frame = record.failure_frame()
    assert list(frame.columns) == ["kind", "subject", "status", "detail"]
    assert {"reason", "circuit breaker", "task", "container", "log"} <= set(frame["kind"])
    assert FATAL in set(frame.loc[frame["kind"] == "log", "detail"])
    assert frame.loc[frame["kind"] == "circuit breaker", "status"].item() == "TRIGGERED"
    assert json.loads(record.to_json())["failure"]["cause"] == record.cause
    assert any(line.split() == ["cause", *record.cause.split()] for line in record.to_text().splitlines())


def test_a_success_has_no_failure() -> None:
    from opskit.release.record import ReleaseRecord

    record = ReleaseRecord("release", "prod", "web", None, None, None, None, None, "COMPLETED", "done", "now")
    assert record.cause == "" and record.failure_frame().empty and "cause" not in record.row()


def test_the_command_says_the_cause_on_its_last_line(world: World) -> None:
    logging_world(world)
    crashing_commit(world)
    done = release_cli(world, "--poll-interval", "0.1", "--timeout", "120", "--format", "json")
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("opskit: cause: container web exited with code 3"), done.stderr
    assert last.endswith(FATAL)
    assert json.loads(done.stdout)["failure"]["log"][-1] == FATAL

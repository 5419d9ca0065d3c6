"""The release plan says what the rollout will go through: for each strategy, its stages in order with their hooks
and bake times, its alarms and circuit breaker, and the shortest time it can take, read off services on the sandbox.

A plan deploys nothing, so one sandbox serves every test here, its clock all but standing still; each test makes its
own service (raw CreateService: an older botocore would drop the newest settings) and plans a release to it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from opskit.release import ReleaseOptions, plan_release
from opskit.release.plan import ReleasePlan
from opskit.release.stages import LIFECYCLE_STAGES, rollout_stages, shortest_seconds
from opskit.sandbox import Sandbox
from opskit.sandbox.alb import AlbSetup, make_alb
from opskit.widgets import ReleasePanel
from tests.release.conftest import git
from tests.sandbox.test_services import manifest

README = Path(__file__).resolve().parents[2] / "README.md"
FUNCTION = "arn:aws:lambda:us-east-1:{account}:function:{name}"
HOOK_ROLE = "arn:aws:iam::{account}:role/ecsLifecycleHooks"
_services = count(1)
_networks = count(1)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=None, time_scale=0.001, docker=False, registry=False, throttle=False) as sb:
        sb.client("ecr").create_repository(repositoryName="web")
        sb.client("ecr").put_image(repositoryName="web", imageManifest=manifest("v1"), imageTag="v1")
        sb.client("ecs").create_cluster(clusterName="prod")
        yield sb


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git checkout to release (nothing is built: the plans only read it)."""
    root = tmp_path_factory.mktemp("app")
    (root / "Dockerfile").write_text("FROM scratch\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    return root


def alb(sandbox: Sandbox) -> AlbSetup:
    number = next(_networks)
    return make_alb(sandbox, f"lb{number}", cidr=f"10.{number}.0.0/16")


def lambda_hook(sandbox: Sandbox, name: str, *stages: str, **timeout: Any) -> dict[str, Any]:
    hook: dict[str, Any] = {
        "targetType": "AWS_LAMBDA",
        "hookTargetArn": FUNCTION.format(account=sandbox.account_id, name=name),
        "roleArn": HOOK_ROLE.format(account=sandbox.account_id),
        "lifecycleStages": list(stages),
    }
    return {**hook, "timeoutConfiguration": timeout} if timeout else hook


def pause_hook(*stages: str, **timeout: Any) -> dict[str, Any]:
    hook: dict[str, Any] = {"targetType": "PAUSE", "lifecycleStages": list(stages)}
    return {**hook, "timeoutConfiguration": timeout} if timeout else hook


def service(
    sandbox: Sandbox, config: dict[str, Any], *, balancer: dict[str, Any] | None = None, desired: int = 2
) -> str:
    """A new service of cluster prod on web:v1 deploying with ``config``; returns its name."""
    name = f"svc{next(_services)}"
    image = f"{sandbox.registry_host}/web:v1"
    container = {"name": "web", "image": image, "memory": 64, "portMappings": [{"containerPort": 8080}]}
    ecs = sandbox.client("ecs")
    arn = ecs.register_task_definition(family=name, containerDefinitions=[container])["taskDefinition"]
    body: dict[str, Any] = {
        "cluster": "prod",
        "serviceName": name,
        "taskDefinition": arn["taskDefinitionArn"],
        "desiredCount": desired,
        "deploymentConfiguration": config,
        **({"loadBalancers": [balancer]} if balancer else {}),
    }
    sandbox.aws().call_json("ecs", "CreateService", body)
    return name


def plan(sandbox: Sandbox, app: Path, name: str) -> ReleasePlan:
    return plan_release(sandbox.aws(), ReleaseOptions(cluster="prod", service=name, path=app))


def rows(plan: ReleasePlan) -> list[tuple[str, str, str]]:
    """The plan's table, as the dry run prints it and the panel shows it."""
    return [(str(step), str(action), str(detail)) for step, action, detail in plan.to_frame().itertuples(index=False)]


def stage_rows(plan: ReleasePlan) -> list[tuple[str, str]]:
    return [(step, detail) for step, action, detail in rows(plan) if action == "stage"]


def wait_detail(plan: ReleasePlan) -> str:
    (wait,) = [s for s in plan.steps if s.name == "wait"]
    return wait.detail


def test_rolling_is_one_stage_said_in_the_wait_row(sandbox: Sandbox, app: Path) -> None:
    config = {
        "minimumHealthyPercent": 50,
        "maximumPercent": 150,
        "deploymentCircuitBreaker": {
            "enable": True,
            "rollback": False,
            "thresholdConfiguration": {"type": "COUNT", "value": 4},
        },
        "alarms": {"alarmNames": ["web-5xx", "web-latency"], "enable": True, "rollback": True},
    }
    planned = plan(sandbox, app, service(sandbox, config, desired=4))
    assert planned.strategy == "ROLLING" and planned.rollout is not None
    (stage,) = planned.rollout.stages
    assert stage.name == "ROLLING" and stage.detail == "4 tasks replaced, 50-150% of them running"
    assert planned.rollout.shortest_seconds == 0 and planned.rollout.shortest == "no bake time"
    assert (
        wait_detail(planned)
        == "until ECS records the ROLLING deployment's verdict (SUCCESSFUL, or why not), no bake time"
    )
    frame = planned.to_frame()
    assert list(frame["step"]) == ["build", "push", "register", "update", "wait"]  # one stage: no rows of its own
    assert frame["detail"].iloc[-1] == (
        f"{wait_detail(planned)}; 4 tasks replaced, 50-150% of them running; "
        "alarms: web-5xx, web-latency, rollback on; circuit breaker: rollback off, trips at 4 failed tasks (COUNT 4)"
    )


def test_blue_green_goes_through_every_lifecycle_stage_with_its_hooks(sandbox: Sandbox, app: Path) -> None:
    config = {
        "strategy": "BLUE_GREEN",
        "bakeTimeInMinutes": 3,
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        "alarms": {"alarmNames": ["web-5xx"], "enable": True, "rollback": False},
        "lifecycleHooks": [
            lambda_hook(sandbox, "smoke", "POST_SCALE_UP", "PRE_PRODUCTION_TRAFFIC_SHIFT"),
            pause_hook("POST_TEST_TRAFFIC_SHIFT", timeoutInMinutes=30, action="CONTINUE"),
            lambda_hook(sandbox, "check", "POST_PRODUCTION_TRAFFIC_SHIFT", timeoutInMinutes=5),
        ],
    }
    planned = plan(sandbox, app, service(sandbox, config, balancer=alb(sandbox).load_balancer(), desired=5))
    assert planned.rollout is not None
    assert [s.name for s in planned.rollout.stages] == list(LIFECYCLE_STAGES)
    assert stage_rows(planned) == [
        (
            "RECONCILE_SERVICE",
            "ECS reconciles the service revisions that are active; only when more than one is active (1 now)",
        ),
        ("PRE_SCALE_UP", "before the new revision starts"),
        ("SCALE_UP", "the new revision starts 5 tasks beside the old one's, no traffic yet"),
        ("POST_SCALE_UP", "the new revision runs; the old one has all traffic; Lambda hook smoke"),
        ("TEST_TRAFFIC_SHIFT", "test traffic to the new revision, 0 -> 100%"),
        (
            "POST_TEST_TRAFFIC_SHIFT",
            "the new revision has the test traffic; PAUSE hook until continued (timeout 30 min, then CONTINUE)",
        ),
        (
            "PRODUCTION_TRAFFIC_SHIFT",
            "production traffic to the new revision, 0 -> 100%; before the shift: Lambda hook smoke",
        ),
        (
            "POST_PRODUCTION_TRAFFIC_SHIFT",
            "the new revision has all production traffic; Lambda hook check (timeout 5 min, then ROLLBACK)",
        ),
        ("BAKE_TIME", "3 min with both revisions running"),
        ("CLEAN_UP", "the old revision's tasks stop"),
    ]
    monitors = [(step, detail) for step, action, detail in rows(planned) if action == "monitor"]
    assert monitors == [
        ("alarms", "web-5xx, rollback off"),
        ("circuit breaker", "rollback on, trips at 3 failed tasks"),
    ]
    assert [step for step, _, _ in rows(planned)][:5] == ["build", "push", "register", "update", "wait"]
    assert planned.rollout.shortest_seconds == 180
    assert wait_detail(planned).endswith(
        "BLUE_GREEN deployment's verdict (SUCCESSFUL, or why not), at least 3 min (bake time 3 min), plus the PAUSE "
        "hook's wait"
    )
    shown = json.loads(json.dumps(planned.to_dict()))  # what --format json prints, and the journal keeps
    assert shown["rollout"] == planned.summary()["rollout"]
    assert [s["name"] for s in shown["rollout"]["stages"]] == list(LIFECYCLE_STAGES)
    assert shown["rollout"]["stages"][6]["hooks"] == [
        {
            "kind": "AWS_LAMBDA",
            "target": "smoke",
            "hook_stage": "PRE_PRODUCTION_TRAFFIC_SHIFT",
            "timeout_minutes": None,
            "timeout_action": None,
        }
    ]
    assert shown["rollout"]["shortest_seconds"] == 180 and shown["rollout"]["alarms"]["names"] == ["web-5xx"]
    page = planned._repr_html_()
    assert all(f"<td>{name}</td>" in page for name in LIFECYCLE_STAGES) and "PAUSE hook until continued" in page


def test_linear_shifts_production_in_steps_each_with_its_bake(sandbox: Sandbox, app: Path) -> None:
    config = {
        "strategy": "LINEAR",
        "bakeTimeInMinutes": 1,
        "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 2},
        "lifecycleHooks": [pause_hook("PRE_PRODUCTION_TRAFFIC_SHIFT")],
    }
    without_test_rule = alb(sandbox).load_balancer(test=False)
    planned = plan(sandbox, app, service(sandbox, config, balancer=without_test_rule))
    assert planned.rollout is not None
    stages = planned.rollout.stages
    shifts = [s for s in stages if s.name == "PRODUCTION_TRAFFIC_SHIFT"]
    assert [(s.production_percent, s.bake_seconds) for s in shifts] == [(25, 120), (50, 120), (75, 120), (100, 0)]
    assert [s.detail for s in shifts] == [
        "production traffic to the new revision, 0 -> 25%, then 2 min bake",
        "production traffic to the new revision, 25 -> 50%, then 2 min bake",
        "production traffic to the new revision, 50 -> 75%, then 2 min bake",
        "production traffic to the new revision, 75 -> 100%",
    ]
    assert all(s.describe().endswith("before the shift: PAUSE hook until continued") for s in shifts)
    names = [s.name for s in stages]
    assert names == [*LIFECYCLE_STAGES[:6], *["PRODUCTION_TRAFFIC_SHIFT"] * 4, *LIFECYCLE_STAGES[7:]]
    test_stages = [s for s in stages if s.name in ("TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT")]
    assert {s.note for s in test_stages} == {"no test listener rule: no test traffic to shift"}
    assert shortest_seconds(stages) == 7 * 60
    assert (
        planned.rollout.shortest == "at least 7 min (3 step bakes of 2 min, bake time 1 min), plus 4 PAUSE hooks' waits"
    )
    assert planned.rollout.shortest in wait_detail(planned)
    assert ("alarms", "monitor", "none") in rows(planned) and ("circuit breaker", "monitor", "off") in rows(planned)


def test_canary_shifts_its_share_then_the_rest(sandbox: Sandbox, app: Path) -> None:
    config = {
        "strategy": "CANARY",
        "bakeTimeInMinutes": 0,
        "canaryConfiguration": {"canaryPercent": 12.5, "canaryBakeTimeInMinutes": 4},
        "deploymentCircuitBreaker": {
            "enable": True,
            "rollback": True,
            "thresholdConfiguration": {"type": "BOUNDED_PERCENT", "value": 20},
        },
    }
    planned = plan(sandbox, app, service(sandbox, config, balancer=alb(sandbox).load_balancer(), desired=30))
    assert planned.rollout is not None
    shifts = [(step, detail) for step, detail in stage_rows(planned) if step == "PRODUCTION_TRAFFIC_SHIFT"]
    assert shifts == [
        ("PRODUCTION_TRAFFIC_SHIFT", "production traffic to the new revision, 0 -> 12.5%, then 4 min bake"),
        ("PRODUCTION_TRAFFIC_SHIFT", "production traffic to the new revision, 12.5 -> 100%"),
    ]
    assert ("BAKE_TIME", "no bake time: the old revision goes at once") in stage_rows(planned)
    assert planned.rollout.shortest_seconds == 240 and planned.rollout.shortest == "at least 4 min (canary bake 4 min)"
    breaker = ("circuit breaker", "monitor", "rollback on, trips at 6 failed tasks (BOUNDED_PERCENT 20)")
    assert breaker in rows(planned)
    assert planned.to_dict()["rollout"]["circuit_breaker"]["threshold"] == 6


def test_what_the_configuration_leaves_out_is_ecs_default() -> None:
    """The stages of a described service as ECS could send it: defaults filled in, an untyped hook (older models
    know Lambda hooks only), a function named with its alias."""
    described = {
        "serviceName": "web",
        "desiredCount": 1,
        "deploymentConfiguration": {
            "strategy": "LINEAR",
            "lifecycleHooks": [
                {
                    "hookTargetArn": "arn:aws:lambda:eu-west-1:111122223333:function:gate:live",
                    "lifecycleStages": ["PRE_SCALE_UP"],
                }
            ],
        },
        "currentServiceRevisions": [{"arn": "a"}, {"arn": "b"}],
    }
    stages = rollout_stages(described)
    shifts = [s for s in stages if s.name == "PRODUCTION_TRAFFIC_SHIFT"]
    assert [s.production_percent for s in shifts] == [10.0 * n for n in range(1, 11)]  # 10 %, every 6 min
    assert shortest_seconds(stages) == 9 * 6 * 60
    assert stages[0].name == "RECONCILE_SERVICE" and stages[0].note == ""  # two revisions are active: it runs
    assert stages[1].describe() == "before the new revision starts; Lambda hook gate:live"
    rolling = rollout_stages({"serviceName": "web", "desiredCount": 3})
    assert [s.detail for s in rolling] == ["3 tasks replaced, 100-200% of them running"]


def test_the_panel_shows_the_stages(sandbox: Sandbox, app: Path) -> None:
    config = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 2}
    name = service(sandbox, config, balancer=alb(sandbox).load_balancer())
    panel = ReleasePanel(sandbox.aws(), cluster="prod", service=name, path=app, poll_interval=0.1)
    assert panel.plan()
    panel.wait(120)
    assert panel.steps.frame is not None, panel.messages.text
    shown = panel.steps.frame
    assert list(shown.loc[shown["action"] == "stage", "step"]) == list(LIFECYCLE_STAGES)
    assert "at least 2 min (bake time 2 min)" in shown.loc[shown["step"] == "wait", "detail"].iloc[0]
    assert "CLEAN_UP" in panel.steps.value


def readme_stage_lines() -> list[str]:
    """The dry run's lines the README's Releasing section shows for the demo's checkout."""
    section = README.read_text().split("\n## Releasing\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```text\n(.*?)```", section, re.S)
    assert match, "the Releasing section shows the dry run's stage lines"
    return [" ".join(line.split()) for line in match.group(1).splitlines() if line.strip()]


def test_the_dry_run_prints_the_stages_as_the_readme_shows_them(tmp_path: Path) -> None:
    """``opskit release --dry-run`` for the demo's BLUE_GREEN service, checkout: every line the README shows."""
    with Sandbox(seed="demo", time_scale=60, docker=False, registry=False) as demo:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | demo.env
        command = [sys.executable, "-m", "opskit", "release", "--cluster", "demo", "--service", "checkout"]
        dry = subprocess.run(
            [*command, "--path", str(_checkout(tmp_path)), "--dry-run"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert dry.returncode == 0, dry.stderr
    printed = [" ".join(line.split()) for line in dry.stdout.splitlines()]
    steps = [line.split()[0] for line in printed if line.split()[1:2] == ["stage"]]
    assert steps == list(LIFECYCLE_STAGES)
    for line in readme_stage_lines():
        assert line in printed, f"the README shows {line!r}, the dry run does not:\n{dry.stdout}"


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    root.mkdir()
    (root / "Dockerfile").write_text("FROM scratch\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    return root

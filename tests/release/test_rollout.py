"""The rollout follows a service deployment through ECS's own record to its verdict, over HTTP against the sandbox
(tasks simulated, the sandbox clock moved by the tests): each strategy to each ending, with polls far apart."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from opskit.errors import ConfigError
from opskit.progress import ProgressEvent
from opskit.release.rollout import EXIT_CODES, Outcome, Pause, Rollout, Until, strategy_of
from opskit.sandbox import Sandbox
from opskit.sandbox.alb import AlbSetup, make_alb
from tests.sandbox.test_services import client_models
from tests.sandbox.test_strategies import (  # noqa: F401 (sandbox: the fixture)
    create,
    deploy,
    play,
    revision,
    sandbox,
    service,
    web_5xx_alarm,
)


@pytest.fixture
def alb(sandbox: Sandbox) -> AlbSetup:  # noqa: F811
    return make_alb(sandbox)


def rollout(sandbox: Sandbox) -> Rollout:  # noqa: F811
    return Rollout.for_service(sandbox.aws(), service(sandbox))


def clock_sleep(sandbox: Sandbox, scale: float = 1.0) -> Callable[[float], None]:  # noqa: F811
    """A sleep that moves the sandbox's clock instead of waiting: ``scale`` sandbox seconds per second asked."""
    return lambda seconds: sandbox.clock.advance(seconds * scale)


def lines(events: list[ProgressEvent]) -> list[str]:
    return [e.message for e in events if e.state == "log"]


@pytest.mark.parametrize("poll", [5.0, 7200.0], ids=["polled-often", "polled-once-after-it-ended"])
@pytest.mark.parametrize(
    "config",
    [
        {"strategy": "ROLLING"},
        {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 2},
        {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 1}},
        {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 50.0, "stepBakeTimeInMinutes": 1}},
    ],
    ids=lambda c: c["strategy"],
)
def test_each_strategy_completes_with_the_record_s_verdict(
    sandbox: Sandbox,  # noqa: F811
    alb: AlbSetup,
    config: dict[str, Any],
    poll: float,
) -> None:
    arn = deploy(sandbox, create(sandbox, alb, config))
    following = rollout(sandbox)
    assert (following.arn, following.strategy) == (arn, config["strategy"])
    seen: list[ProgressEvent] = []
    verdict = following.follow(progress=seen.append, poll_interval=poll, timeout=10**6, sleep=clock_sleep(sandbox))
    assert verdict.outcome is Outcome.COMPLETED and verdict.outcome.exit_code == 0 and verdict.ok
    assert verdict.record["status"] == "SUCCESSFUL"
    said = lines(seen)
    assert any(line.startswith("web:2 (new): 2/2 running") for line in said)
    if config["strategy"] != "ROLLING" and poll == 5.0:  # what a person watching sees as it moves
        assert "stage PRODUCTION_TRAFFIC_SHIFT" in said and "stage BAKE_TIME" in said
        assert any("production 100% / test 100% of the traffic" in line for line in said)
        if config["strategy"] == "BLUE_GREEN" and client_models("DeploymentConfiguration", "bakeTimeInMinutes"):
            assert "bake time 2 min: at most 2 min left" in said  # counted from the first poll that saw the bake


@pytest.mark.parametrize("poll", [5.0, 7200.0], ids=["polled-often", "polled-once-after-it-ended"])
@pytest.mark.parametrize("strategy", ["ROLLING", "BLUE_GREEN"])
def test_a_circuit_breaker_rollback_is_rolled_back_with_its_count_and_where_ecs_went(
    sandbox: Sandbox,  # noqa: F811
    alb: AlbSetup,
    strategy: str,
    poll: float,
) -> None:
    breaker = {"deploymentCircuitBreaker": {"enable": True, "rollback": True}}
    config = {"strategy": strategy, **breaker, **({"bakeTimeInMinutes": 1} if strategy == "BLUE_GREEN" else {})}
    create(sandbox, alb, config)
    deploy(sandbox, revision(sandbox, "never-pushed"))
    verdict = rollout(sandbox).follow(poll_interval=poll, timeout=10**6, sleep=clock_sleep(sandbox))
    assert verdict.outcome is Outcome.ROLLED_BACK and verdict.outcome.exit_code == 1
    assert "circuit breaker: 3 of 3 tasks failed" in verdict.reason
    assert verdict.reason.endswith("ECS rolled back to web:1")


def test_an_alarm_rollback_names_the_alarm(sandbox: Sandbox, alb: AlbSetup) -> None:  # noqa: F811
    config = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 10, "alarms": web_5xx_alarm(sandbox)}
    arn = deploy(sandbox, create(sandbox, alb, config))
    following = rollout(sandbox)
    play(sandbox, 60)
    sandbox.client("cloudwatch").set_alarm_state(AlarmName="web-5xx", StateValue="ALARM", StateReason="5xx")
    seen: list[ProgressEvent] = []
    verdict = following.follow(progress=seen.append, poll_interval=5, timeout=10**6, sleep=clock_sleep(sandbox))
    assert verdict.outcome is Outcome.ROLLED_BACK and verdict.record["serviceDeploymentArn"] == arn
    assert "in ALARM: web-5xx" in verdict.reason and verdict.reason.endswith("ECS rolled back to web:1")
    assert "alarms TRIGGERED: web-5xx in ALARM" in lines(seen)


def test_an_abort_and_a_newer_deployment_stop_it_where_it_stands(sandbox: Sandbox, alb: AlbSetup) -> None:  # noqa: F811
    v2 = create(sandbox, alb, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 10})
    arn = deploy(sandbox, v2)
    following = rollout(sandbox)
    play(sandbox, 30)
    sandbox.client("ecs").stop_service_deployment(serviceDeploymentArn=arn, stopType="ABORT")
    verdict = following.follow(poll_interval=5, timeout=10**6, sleep=clock_sleep(sandbox))
    assert verdict.outcome is Outcome.STOPPED and verdict.outcome.exit_code == 4
    assert "StopServiceDeployment" in verdict.reason

    play(sandbox, 600)
    deploy(sandbox, revision(sandbox, "v1"))
    superseded = rollout(sandbox)
    play(sandbox, 20)
    deploy(sandbox, revision(sandbox, "v2"))
    verdict = superseded.follow(poll_interval=5, timeout=10**6, sleep=clock_sleep(sandbox))
    assert verdict.outcome is Outcome.STOPPED and "a newer service deployment started" in verdict.reason


def test_a_wait_that_gives_up_says_where_the_deployment_stands(sandbox: Sandbox, alb: AlbSetup) -> None:  # noqa: F811
    deploy(sandbox, create(sandbox, alb, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 60}))
    verdict = rollout(sandbox).follow(poll_interval=0.01, timeout=0.05)  # the clock all but stands still
    assert verdict.outcome is Outcome.TIMED_OUT and verdict.outcome.exit_code == 5
    assert "did not finish within 0.05 s (IN_PROGRESS: " in verdict.reason and "it goes on in ECS" in verdict.reason


def test_each_failure_has_its_own_exit_code() -> None:
    failures = [code for outcome, code in EXIT_CODES.items() if outcome not in (Outcome.COMPLETED, Outcome.REACHED)]
    assert sorted(failures) == list(range(1, len(failures) + 1)) and set(EXIT_CODES) == set(Outcome)
    assert EXIT_CODES[Outcome.REACHED] == 0  # got where --wait-until said: the command did what was asked
    assert EXIT_CODES[Outcome.COMPLETED] == 0 and EXIT_CODES[Outcome.REFUSED] == 2  # 2: as every refused command


@pytest.mark.parametrize(
    ("controller", "words"),
    [("CODE_DEPLOY", "release it through CodeDeploy"), ("EXTERNAL", "release it with that controller")],
)
def test_a_service_ecs_does_not_deploy_is_refused_in_one_line(controller: str, words: str) -> None:
    described = {"serviceName": "web", "deploymentController": {"type": controller}}
    with pytest.raises(ConfigError, match=words) as refused:
        strategy_of(described)
    assert "\n" not in str(refused.value)
    assert strategy_of({"serviceName": "web", "deploymentConfiguration": {"strategy": "CANARY"}}) == "CANARY"
    assert strategy_of({"serviceName": "web"}) == "ROLLING"


@pytest.mark.parametrize(("answer", "outcome"), [("CONTINUE", Outcome.COMPLETED), ("ROLLBACK", Outcome.ROLLED_BACK)])
def test_on_pause_answers_each_paused_hook_once(
    sandbox: Sandbox,  # noqa: F811
    alb: AlbSetup,
    answer: str,
    outcome: Outcome,
) -> None:
    pause = {"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}
    config = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1}
    body = {"cluster": "prod", "serviceName": "web", "taskDefinition": revision(sandbox, "v1"), "desiredCount": 2}
    body |= {"loadBalancers": [alb.load_balancer()], "deploymentConfiguration": {**config, "lifecycleHooks": [pause]}}
    sandbox.aws().call_json("ecs", "CreateService", body)  # raw: older botocore has no PAUSE hooks
    play(sandbox, 120)
    deploy(sandbox, revision(sandbox, "v2"))
    asked: list[Pause] = []

    def on_pause(pause: Pause) -> str:
        asked.append(pause)
        return answer

    verdict = rollout(sandbox).follow(poll_interval=5, timeout=10**6, sleep=clock_sleep(sandbox), on_pause=on_pause)
    assert verdict.outcome is outcome
    assert [p.hook["status"] for p in asked] == ["AWAITING_ACTION"]
    assert asked[0].timeout_action == "ROLLBACK" and "awaits action" in asked[0].describe()


@pytest.mark.parametrize("poll", [5.0, 7200.0], ids=["polled-often", "polled-once-after-it-ended"])
def test_wait_until_a_stage_stops_there_and_a_missed_stage_keeps_the_verdict(
    sandbox: Sandbox,  # noqa: F811
    alb: AlbSetup,
    poll: float,
) -> None:
    deploy(sandbox, create(sandbox, alb, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 2}))
    until = Until.parse("stage:production_traffic_shift")
    verdict = rollout(sandbox).follow(poll_interval=poll, timeout=10**6, sleep=clock_sleep(sandbox), until=until)
    if poll == 5.0:
        assert verdict.outcome is Outcome.REACHED and verdict.ok and verdict.outcome.exit_code == 0
        assert verdict.reason.startswith("the deployment reached PRODUCTION_TRAFFIC_SHIFT")
        assert verdict.record["status"] == "IN_PROGRESS"
        verdict = rollout(sandbox).follow(poll_interval=poll, timeout=10**6, sleep=clock_sleep(sandbox))
    assert verdict.outcome is Outcome.COMPLETED  # a poll that came after the end reads the end


def test_wait_until_paused_stops_at_the_hook_and_stable_waits_for_a_steady_service(
    sandbox: Sandbox,  # noqa: F811
    alb: AlbSetup,
) -> None:
    pause = {"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}
    config = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1, "lifecycleHooks": [pause]}
    body = {"cluster": "prod", "serviceName": "web", "taskDefinition": revision(sandbox, "v1"), "desiredCount": 2}
    body |= {"loadBalancers": [alb.load_balancer()], "deploymentConfiguration": config}
    sandbox.aws().call_json("ecs", "CreateService", body)  # raw: older botocore has no PAUSE hooks
    play(sandbox, 120)
    deploy(sandbox, revision(sandbox, "v2"))
    following = rollout(sandbox)
    verdict = following.follow(poll_interval=5, timeout=10**6, sleep=clock_sleep(sandbox), until=Until.parse("paused"))
    assert verdict.outcome is Outcome.REACHED, verdict.reason
    assert "waits at PAUSE hook" in verdict.reason and "opskit continue" in verdict.reason
    (hook,) = verdict.record["lifecycleHookDetails"]
    following.continue_hook(hook["hookId"])
    seen: list[ProgressEvent] = []
    stable = following.follow(
        progress=seen.append, poll_interval=5, timeout=10**6, sleep=clock_sleep(sandbox), until=Until.parse("stable")
    )
    assert stable.outcome is Outcome.COMPLETED and stable.reason.endswith("; the service is steady")
    assert "web is steady: 2/2 tasks running" in lines(seen)
    (described,) = sandbox.client("ecs").describe_services(cluster="prod", services=["web"])["services"]
    assert len(described["deployments"]) == 1 and described["runningCount"] == 2


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "stage:BAKING",
            "--wait-until stage:BAKING names no lifecycle stage: pass stage: and one of RECONCILE_SERVICE",
        ),
        ("done", "--wait-until 'done' is not one of deployed, stable, paused, stage:NAME"),
        ("paused:x", "--wait-until 'paused:x' is not one of"),
    ],
)
def test_a_wait_until_that_names_nothing_is_refused_in_one_line(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(words)):
        Until.parse(text)
    assert str(Until.parse("stage:bake_time")) == "stage:BAKE_TIME" and str(Until.parse(" stable ")) == "stable"

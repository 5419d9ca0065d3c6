"""The bad-input catalogue: malformed or hostile input at every surface (CLI, Python API, widgets, plugin options)
is refused with one line that says what to do, and nothing changes in ECS or ECR.

Each row of CATALOGUE is (id, surface, input, words the error must contain). ``input`` is the command line for
"cli" (``{app}``, ``{broken}``, ``{missing}`` and ``{port}`` are filled in), the pytest arguments for "plugin" (an
``ini:`` first argument is the ini file's ``[pytest]`` section), and a function of the world for "api" and
"widget". ``env`` changes the environment for the row (None removes a variable).
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from opskit.aws import Aws
from opskit.checks import Snapshot, Target
from opskit.cleanup import CleanupOptions, plan_cleanup
from opskit.cli import main
from opskit.errors import OpskitError
from opskit.library import RevisionLibrary
from opskit.release import ReleaseOptions, apply_release, plan_release, plan_rollback
from opskit.release.taskdef import MAX_BODY_BYTES, body_size, registrable
from opskit.sandbox import Sandbox
from opskit.widgets import CleanupPanel, PolicyReport, ReleasePanel, RevisionBrowser

EXPIRED_KEY = "AKIAOPSKITEXPIRED000"
NO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_SESSION_TOKEN": None,
    "AWS_SHARED_CREDENTIALS_FILE": "{missing}",
    "AWS_CONFIG_FILE": "{missing}",
}
EXPIRED = {"AWS_ACCESS_KEY_ID": EXPIRED_KEY}
WRONG_REGION = {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1"}
NO_DOCKER = {"DOCKER_HOST": "unix://{missing}/docker.sock"}
SANDBOX_REGION = ("us-east-1", "region")
MUTATING = re.compile(r"^(Register|Deregister|Update|Delete|BatchDelete|Put|Create|Tag|Untag|Run|Start|Stop)")
LOCK_ACTIONS = {"TagResource", "UntagResource"}  # the release lock: taken and given back, the tags as they were


@dataclass(frozen=True)
class Case:
    id: str
    surface: str  # cli, api, widget or plugin
    given: Any  # see the module's docstring
    expect: tuple[str, ...]  # words the one-line error must contain (what is wrong, and what to do)
    env: dict[str, str | None] = field(default_factory=dict)
    locks: bool = False  # it gets as far as the release lock (taken and released) before refusing


def release_api(w: World, **options: Any) -> Any:
    return plan_release(Aws(), ReleaseOptions(**{"cluster": "prod", "service": "web", "path": w.app, **options}))


def release_all_the_way(w: World, app: Path) -> Any:
    aws = Aws()
    plan = plan_release(aws, ReleaseOptions("prod", "web", path=app))
    return apply_release(plan, aws, poll_interval=0.1, timeout=60)


CATALOGUE: list[Case] = [
    # -- the command line: release ---------------------------------------------------------------------------------
    Case("cli-short-sha", "cli", "release --cluster prod --service web --path {app} --tag abc", ("not a commit SHA",)),
    Case("cli-non-hex-sha", "cli", "release --cluster prod --service web --path {app} --tag ghijklmn", ("omit --tag",)),
    Case("cli-41-char-sha", "cli", f"release --cluster prod --service web --path {{app}} --tag {'a' * 41}", ("SHA",)),
    Case("cli-latest", "cli", "release --cluster prod --service web --path {app} --tag latest", ("'latest'", "--tag")),
    Case(
        "cli-shell-tag",
        "cli",
        ["release", "--cluster", "prod", "--service", "web", "--path", "{app}", "--tag", ";rm -rf /"],
        ("not a commit SHA", "omit --tag"),
    ),
    Case(
        "cli-subshell-tag",
        "cli",
        ["release", "--cluster", "prod", "--service", "web", "--path", "{app}", "--tag", "$(id)"],
        ("not a commit SHA",),
    ),
    Case("cli-path-tag", "cli", "release --cluster prod --service web --path {app} --tag ../x", ("not a commit SHA",)),
    Case(
        "cli-spaced-tag",
        "cli",
        ["release", "--cluster", "prod", "--service", "web", "--path", "{app}", "--tag", "abc 1234"],
        ("not a commit SHA",),
    ),
    Case("cli-unknown-cluster", "cli", "release --cluster nope --service web --path {app}", ("'nope'", "--cluster")),
    Case("cli-unknown-service", "cli", "release --cluster prod --service nope --path {app}", ("'nope'", "--service")),
    Case(
        "cli-unknown-repository",
        "cli",
        "release --cluster prod --service web --path {app} --repository nope",
        ("'nope' does not exist", "--create-repository"),
    ),
    Case(
        "cli-path-repository",
        "cli",
        "release --cluster prod --service web --path {app} --repository ../etc",
        ("not a valid ECR repository name",),
    ),
    Case(
        "cli-empty-cluster",
        "cli",
        ["release", "--cluster", "", "--service", "web", "--path", "{app}"],
        ("--cluster is empty", "pass the name"),
    ),
    Case("cli-unicode-cluster", "cli", "release --cluster прод --service web --path {app}", ("'прод'", "--cluster")),
    Case("cli-sha-length", "cli", "release --cluster prod --service web --sha-length 99", ("--sha-length", "--help")),
    Case(
        "cli-wrong-region",
        "cli",
        "release --cluster prod --service web --path {app} --region eu-west-1",
        SANDBOX_REGION,
    ),
    Case(
        "cli-no-credentials",
        "cli",
        "release --cluster prod --service web --path {app}",
        ("AWS_PROFILE",),
        env=NO_CREDENTIALS,
    ),
    Case(
        "cli-expired-credentials",
        "cli",
        "release --cluster prod --service web --path {app}",
        ("expired", "refresh"),
        env=EXPIRED,
    ),
    Case(
        "cli-bad-endpoint",
        "cli",
        "release --cluster prod --service web --endpoint-url localhost:1",
        ("http(s) URL", "http://"),
    ),
    Case(
        "cli-failing-dockerfile",
        "cli",
        "release --cluster prod --service web --path {broken}",
        ("docker build failed",),
        locks=True,
    ),
    Case(
        "cli-no-docker-engine",
        "cli",
        "release --cluster prod --service web --path {app}",
        ("DOCKER_HOST", "start Docker"),
        env=NO_DOCKER,
        locks=True,
    ),
    Case(
        "cli-task-definition-over-64-kib",
        "cli",
        "release --cluster prod --service big --path {app}",
        ("-byte limit", "secrets or files"),
    ),
    # -- the command line: rollback, cleanup, listings, check, sandbox ---------------------------------------------
    Case("cli-rollback-to-latest", "cli", "rollback --cluster prod --service web --to latest", ("--to", "a number")),
    Case("cli-rollback-to-missing", "cli", "rollback --cluster prod --service web --to web:99", ("opskit revisions",)),
    Case("cli-rollback-path", "cli", "rollback --cluster prod --service web --to ../../x", ("is not a revision",)),
    Case("cli-negative-keep", "cli", "cleanup --keep -1", ("--keep -1 is out of range", "from 1")),
    Case("cli-huge-keep", "cli", f"cleanup --keep {10**20}", ("out of range", "1000000")),
    Case("cli-word-keep", "cli", "cleanup --keep ten", ("not a whole number", "such as 10")),
    Case("cli-zero-rollback-depth", "cli", "cleanup --rollback-depth 0", ("--rollback-depth", "from 1 to 100")),
    Case("cli-negative-days", "cli", "cleanup --keep-days -3", ("--keep-days", "from 0")),
    Case("cli-infinite-days", "cli", "cleanup --keep-days inf", ("--keep-days", "pass a number")),
    Case("cli-path-family", "cli", "cleanup --family ../web", ("not a valid name", "opskit revisions")),
    Case("cli-empty-family", "cli", ["cleanup", "--family", " "], ("--family is empty",)),
    Case("cli-unknown-family", "cli", "cleanup --family nope", ("'nope'", "opskit revisions")),
    Case("cli-unknown-cleanup-repository", "cli", "cleanup --images --repository nope", ("'nope'", "opskit images")),
    Case("cli-images-options-alone", "cli", "cleanup --untagged-days 3", ("add --images",)),
    Case("cli-cleanup-wrong-region", "cli", "cleanup --keep 5", SANDBOX_REGION, env=WRONG_REGION),
    Case("cli-cleanup-expired", "cli", "cleanup --keep 5", ("expired", "refresh"), env=EXPIRED),
    Case("cli-revisions-expired", "cli", "revisions", ("expired", "refresh"), env=EXPIRED),
    Case("cli-revisions-wrong-region", "cli", "revisions --region eu-west-1", SANDBOX_REGION),
    Case("cli-bad-format", "cli", "cleanup --format xml", ("'xml' is not one of", "--help")),
    Case("cli-bad-library-format", "cli", "revisions --format yaml", ("'yaml'", "--help")),
    Case("cli-missing-option", "cli", "rollback --service web", ("--cluster", "--help")),
    Case("cli-unknown-command", "cli", "deploy", ("No such command", "--help")),
    Case("cli-check-unknown-cluster", "cli", "check --cluster nope", ("cluster nope", "--cluster")),
    Case("cli-check-path-family", "cli", "check --family ../x", ("not a valid name", "opskit revisions")),
    Case("cli-sandbox-port", "cli", "sandbox --port 70000", ("--port", "--help")),
    Case("cli-sandbox-taken-port", "cli", "sandbox --empty --port {port}", ("is taken", "another --port")),
    Case("cli-sandbox-zero-scale", "cli", "sandbox --time-scale 0", ("--time-scale", "--help")),
    Case("cli-sandbox-infinite-scale", "cli", "sandbox --empty --time-scale inf", ("time scale inf", "such as 1")),
    # -- the Python API ---------------------------------------------------------------------------------------------
    Case("api-latest", "api", lambda w: release_api(w, tag="latest"), ("'latest'", "omit --tag")),
    Case("api-sha-of-another-commit", "api", lambda w: release_api(w, tag="0000000"), ("check out 0000000",)),
    Case("api-empty-service", "api", lambda w: release_api(w, service=""), ("--service is empty",)),
    Case("api-sha-length", "api", lambda w: release_api(w, sha_length=-1), ("SHA length -1", "from 7 to 40")),
    Case("api-unknown-container", "api", lambda w: release_api(w, containers=("nope",)), ("pass --container",)),
    Case("api-not-a-checkout", "api", lambda w: release_api(w, path=w.folder), ("not inside a git checkout",)),
    Case("api-rollback-unknown-service", "api", lambda w: plan_rollback(Aws(), "prod", "nope"), ("'nope'",)),
    Case("api-rollback-to-zero", "api", lambda w: plan_rollback(Aws(), "prod", "web", to="web:0"), ("web:0",)),
    Case("api-keep-bool", "api", lambda w: CleanupOptions(keep=True), ("--keep True is out of range",)),
    Case("api-keep-float", "api", lambda w: CleanupOptions(keep=2.5), ("out of range", "a count")),
    Case("api-depth-huge", "api", lambda w: CleanupOptions(rollback_depth=10**9), ("from 1 to 100",)),
    Case("api-nan-days", "api", lambda w: CleanupOptions(keep_days=float("nan")), ("number of days",)),
    Case("api-unicode-family", "api", lambda w: CleanupOptions(families=("wéb",)), ("'wéb' is not a valid name",)),
    Case("api-cleanup-expired", "api", lambda w: plan_cleanup(Aws(), CleanupOptions()), ("expired",), env=EXPIRED),
    Case("api-sync-wrong-region", "api", lambda w: w.library().sync(), SANDBOX_REGION, env=WRONG_REGION),
    Case("api-sync-no-credentials", "api", lambda w: w.library().sync(), ("no AWS credentials",), env=NO_CREDENTIALS),
    Case("api-snapshot-expired", "api", lambda w: Snapshot.from_library(w.library()), ("refresh",), env=EXPIRED),
    Case("api-target-empty-service", "api", lambda w: Target(services=("",)), ("service is empty",)),
    Case("api-sandbox-negative-scale", "api", lambda w: Sandbox(time_scale=-1), ("time scale -1", "above 0")),
    Case("api-sandbox-port", "api", lambda w: Sandbox(port=-5), ("port -5", "0 for any")),
    Case("api-bad-profile", "api", lambda w: Aws(profile="nope"), ("profile 'nope'", "--profile")),
    Case(
        "api-failing-dockerfile",
        "api",
        lambda w: release_all_the_way(w, w.broken),
        ("docker build failed",),
        locks=True,
    ),
    # -- the widgets ---------------------------------------------------------------------------------------------------
    Case("widget-release-empty-cluster", "widget", lambda w: w.release_panel(cluster=" "), ("'cluster' is empty",)),
    Case("widget-release-unknown-service", "widget", lambda w: w.release_panel(service="nope"), ("'nope'",)),
    Case(
        "widget-release-path-repository",
        "widget",
        lambda w: w.release_panel(repository="../x"),
        ("not a valid ECR repository name",),
    ),
    Case("widget-release-not-a-checkout", "widget", lambda w: w.release_panel(path="{missing}"), ("git checkout",)),
    Case("widget-rollback-to-latest", "widget", lambda w: w.rollback_panel("latest"), ("is not a revision",)),
    Case("widget-rollback-expired", "widget", lambda w: w.rollback_panel(""), ("expired",), env=EXPIRED),
    Case(
        "widget-cleanup-path-family", "widget", lambda w: w.cleanup_panel(families="../x, web"), ("not a valid name",)
    ),
    Case("widget-cleanup-unknown-family", "widget", lambda w: w.cleanup_panel(families="nope"), ("'nope'",)),
    Case("widget-policy-unknown-cluster", "widget", lambda w: w.policy_report(cluster="nope"), ("cluster nope",)),
    Case(
        "widget-policy-hostile-service",
        "widget",
        lambda w: w.policy_report(services="web; rm -rf /"),
        ("not a valid name",),
    ),
    Case("widget-browser-wrong-region", "widget", lambda w: w.browser(), SANDBOX_REGION, env=WRONG_REGION),
    # -- the pytest plugin's options -------------------------------------------------------------------------------
    Case("plugin-unknown-policy", "plugin", ["--ecs-policy=bogus"], ("--ecs-policy=bogus", "pass release")),
    Case("plugin-unknown-ini-policy", "plugin", ["ini:ecs_policy = sometimes"], ("sometimes", "pass release")),
    Case("plugin-path-family", "plugin", ["--ecs-family", "../web"], ("family '../web'", "opskit revisions")),
    Case("plugin-empty-service", "plugin", ["--ecs-service", ""], ("service is empty",)),
    Case("plugin-upper-case-repository", "plugin", ["--ecr-repository", "Web"], ("'Web' is not a valid name",)),
    Case("plugin-bad-endpoint", "plugin", ["--ecs-endpoint-url", "localhost:4566"], ("http(s) URL",)),
    Case("plugin-unknown-profile", "plugin", ["--ecs-profile", "nope"], ("profile 'nope'",)),
]


# -- the world: one per module (and xdist worker), since no case may change it ----------------------------------------
@dataclass
class World:
    sandbox: Sandbox
    folder: Path  # not a git checkout
    app: Path  # a checkout that builds
    broken: Path  # a checkout whose Dockerfile fails
    missing: Path  # nothing there

    def library(self) -> RevisionLibrary:
        return RevisionLibrary(Aws(), cache_path=":memory:")

    def release_panel(self, **fields: str) -> ReleasePanel:
        panel = ReleasePanel(Aws(), cluster="prod", service="web", path=self.app, poll_interval=0.1)
        for name, value in fields.items():
            getattr(panel, name).value = value.format(missing=self.missing)
        panel.plan_button.click()
        return panel

    def rollback_panel(self, to: str) -> ReleasePanel:
        panel = ReleasePanel(Aws(), cluster="prod", service="web", path=self.app, poll_interval=0.1)
        panel.rollback_to.value = to
        panel.rollback_plan_button.click()
        return panel

    def cleanup_panel(self, families: str) -> CleanupPanel:
        panel = CleanupPanel(self.library(), rate_scale=60)
        panel.families.value = families
        panel.plan_button.click()
        return panel

    def policy_report(self, **fields: str) -> PolicyReport:
        report = PolicyReport(self.library())
        for name, value in fields.items():
            getattr(report, name).value = value
        report.run_button.click()
        return report

    def browser(self) -> RevisionBrowser:
        browser = RevisionBrowser(self.library())
        browser.wait(60)
        browser.sync_button.click()
        return browser


def git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
    )


def checkout(folder: Path, dockerfile: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "Dockerfile").write_text(dockerfile)
    (folder / "release.txt").write_text("v1\n")
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "first")
    return folder


def register_near_the_limit(sandbox: Sandbox, uri: str) -> None:
    """Family big: its live revision fits ECS's size limit, and the same with a release's image and tag does not."""
    aws = sandbox.aws()

    def body(padding: int) -> dict[str, Any]:
        container = {
            "name": "big",
            "image": f"{uri}:b",
            "memory": 64,
            "environment": [{"name": "P", "value": "x" * padding}],
        }
        return {"family": "big", "containerDefinitions": [container]}

    probe = aws.call_json("ecs", "RegisterTaskDefinition", body(1000))["taskDefinition"]
    overhead = body_size(registrable(probe)) - 1000
    aws.call_json("ecs", "RegisterTaskDefinition", body(MAX_BODY_BYTES - overhead - 4))
    sandbox.client("ecs").create_service(cluster="prod", serviceName="big", taskDefinition="big:2", desiredCount=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("bad-input")
    with Sandbox(seed=None, time_scale=60, docker=False, registry=False) as sandbox:
        ecr, ecs = sandbox.client("ecr"), sandbox.client("ecs")
        uri = ecr.create_repository(repositoryName="web", imageTagMutability="IMMUTABLE")["repository"]["repositoryUri"]
        ecs.create_cluster(clusterName="prod")
        for marker in ("bootstrap", "second"):
            ecs.register_task_definition(
                family="web", containerDefinitions=[{"name": "web", "image": f"{uri}:{marker}", "memory": 64}]
            )
        ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web:2", desiredCount=1)
        register_near_the_limit(sandbox, uri)
        sandbox.expire_credentials(EXPIRED_KEY)
        (root / "plain").mkdir()
        yield World(
            sandbox=sandbox,
            folder=root / "plain",
            app=checkout(root / "app", "FROM scratch\nCOPY release.txt /release.txt\n"),
            broken=checkout(root / "broken", "FROMM scratch\nCOPY release.txt /release.txt\n"),
            missing=root / "missing",
        )


def state(sandbox: Sandbox) -> tuple[Any, ...]:
    """What no refused input may change: services (revision, deployments, tags), revisions, repositories, images."""
    ecs, ecr = sandbox.client("ecs"), sandbox.client("ecr")
    services = ecs.describe_services(cluster="prod", services=["web", "big"], include=["TAGS"])["services"]
    revisions = [
        arn
        for status in ("ACTIVE", "INACTIVE")
        for arn in ecs.list_task_definitions(status=status)["taskDefinitionArns"]
    ]
    images = ecr.describe_images(repositoryName="web")["imageDetails"]
    return (
        [(s["serviceName"], s["taskDefinition"], len(s["deployments"]), s.get("tags")) for s in services],
        revisions,
        [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]],
        sorted(i["imageDigest"] for i in images),
        ecs.list_clusters()["clusterArns"],
    )


def refused(case: Case, world: World, pytester: pytest.Pytester) -> str:
    """Run the case; returns the one line of error it showed, after checking it is one line and an error."""
    if case.surface == "cli":
        args = case.given.split() if isinstance(case.given, str) else case.given
        port = socket.socket()
        port.bind(("127.0.0.1", 0))
        handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            values = {"app": world.app, "broken": world.broken, "missing": world.missing, "port": port.getsockname()[1]}
            result = CliRunner().invoke(main, [a.format(**values) for a in args])
        finally:
            port.close()
            for number, handler in handlers.items():  # `opskit sandbox` installs its own
                signal.signal(number, handler)
        assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
        assert isinstance(result.exception, SystemExit)
        lines = result.stderr.splitlines()
        errors = [line for line in lines if line.startswith("opskit: error: ")]
        assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stdout == "", result.stdout
        return errors[0]
    if case.surface == "api":
        with pytest.raises(OpskitError) as error:
            case.given(world)
        assert "\n" not in str(error.value)
        return str(error.value)
    if case.surface == "widget":
        panel = case.given(world)
        panel.wait(60)
        assert panel.messages.kind == "error", panel.messages.text
        assert "\n" not in panel.messages.text and "<details>" not in panel.messages.value  # no folded traceback
        return str(panel.messages.text)
    args = list(case.given)
    if args and args[0].startswith("ini:"):
        pytester.makeini(f"[pytest]\n{args.pop(0)[4:]}\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.outlines + result.errlines
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("ERROR: "), result.errlines
    return errors[0]


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_bad_input_is_refused_in_one_line_and_changes_nothing(
    case: Case, world: World, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused_without_a_change(case, world, pytester, monkeypatch)


# Every command the `opskit` program offers, asked of the program itself: one added later is covered too.
COMMANDS = main.list_commands(click.Context(main))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_an_option_it_does_not_have(
    command: str, world: World, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = Case(f"cli-{command}-unknown-option", "cli", f"{command} --no-such-option", ("--no-such-option",))
    line = refused_without_a_change(case, world, pytester, monkeypatch)
    assert line.endswith(f"{command} --help`"), line


def refused_without_a_change(
    case: Case, world: World, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Run the case in the sandbox's environment: the one line it showed has the expected words, and no mutating
    call reached the sandbox (the release lock aside, when the case says so) and nothing there changed."""
    environment = {**world.sandbox.env, "AWS_PROFILE": None, "OPSKIT_CACHE": None, "AWS_EC2_METADATA_DISABLED": "true"}
    for name, value in {**environment, **case.env}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value.format(missing=world.missing))
    before = state(world.sandbox)
    world.sandbox.reset_calls()

    line = refused(case, world, pytester)

    for words in case.expect:
        assert words in line, f"{words!r} not in {line!r}"
    changes = {a: n for a, n in world.sandbox.calls.items() if MUTATING.match(a)}
    allowed = LOCK_ACTIONS if case.locks else set()
    assert set(changes) <= allowed, changes
    assert state(world.sandbox) == before
    return line

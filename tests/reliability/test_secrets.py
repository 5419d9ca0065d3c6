"""No secret in anything opskit shows: DataFrames, CLI output in every format, log lines, progress messages,
widget and notebook outputs, journals, and the pytest plugin's JUnit report and failure messages.

The sandboxes here carry task definitions whose variables hold the run's canary (under names that look secret and
names that do not), secret sources (``valueFrom``) that hold it too, and they issue registry passwords and ECR
authorization tokens (:meth:`opskit.sandbox.Sandbox.secrets`). Every output is gathered into a :class:`Shown` and
searched for all of them. Python logging of opskit's loggers is captured at DEBUG; botocore's own DEBUG wire trace
is not (opskit never turns it on, and the suite-wide guard in tests/conftest.py checks what tests show).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets
import nbformat
import pandas as pd
import pytest
from click.testing import CliRunner
from nbclient import NotebookClient

from opskit.checks import Snapshot, findings_frame, findings_json, findings_table, run_checks
from opskit.cleanup import CleanupOptions, apply_cleanup, plan_cleanup
from opskit.cli import main as cli
from opskit.errors import OpskitError
from opskit.library import RevisionLibrary, export
from opskit.progress import ProgressEvent
from opskit.release import ReleaseOptions, apply_release, apply_rollback, plan_release, plan_rollback
from opskit.sandbox import Sandbox, issued_secrets
from opskit.widgets import CleanupPanel, PolicyReport, ReleasePanel, RevisionBrowser
from tests.conftest import SCANNED_LOGGERS, canary, secrets_in
from tests.library.seeding import manifest
from tests.release.conftest import World as ReleaseWorld
from tests.release.conftest import settle_rollout

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "opskit" / "runbooks"
FAST = {"poll_interval": 0.1, "timeout": 120}
WAIT = 90.0
TABLES = ("revisions", "containers", "images", "services", "deployments", "lineage")
LIBRARY_COMMANDS = ("revisions", "images", "services", "lineage")
NO_SYNC = ("--no-sync",)


def secret_environment() -> list[dict[str, str]]:
    """Variables whose values are secret, under names that say so and names that do not."""
    names = ("DB_PASSWORD", "API_TOKEN", "STRIPE_KEY", "LOG_LEVEL", "GREETING", "FEATURE_FLAGS")
    return [{"name": name, "value": canary(name.lower())} for name in names]


def secret_container(name: str, image: str) -> dict[str, Any]:
    """A container with secret variables, secret sources, and a log driver whose token comes from a secret."""
    source = f"arn:aws:ssm:us-east-1:123456789012:parameter/{canary('parameter')}"
    return {
        "name": name,
        "image": image,
        "memory": 64,
        "essential": True,
        "environment": secret_environment(),
        "secrets": [{"name": "DATABASE_URL", "valueFrom": source}],
        "logConfiguration": {
            "logDriver": "splunk",
            "secretOptions": [{"name": "splunk-token", "valueFrom": source + "-splunk"}],
        },
    }


class Captured(logging.Handler):
    """Every record of opskit's loggers, at DEBUG, formatted with its arguments and any traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Shown:
    """Everything a scenario showed, by where it was shown, and the log lines written meanwhile."""

    texts: dict[str, str] = field(default_factory=dict)
    log: Captured = field(default_factory=Captured)

    def add(self, where: str, shown: Any) -> None:
        self.texts[where] = self.texts.get(where, "") + "\n" + _text(shown)

    def frame(self, where: str, frame: pd.DataFrame) -> None:
        """A DataFrame as a notebook, a terminal and each export show it."""
        self.add(where, [repr(frame), frame.to_html(), frame.to_string()])
        for fmt in ("csv", "json", "parquet"):
            out = io.BytesIO() if fmt == "parquet" else io.StringIO()
            export(frame, out, fmt)
            self.add(f"{where} as {fmt}", out.getvalue())

    def cli(self, where: str, env: dict[str, str | None], *args: str, ok: bool = True) -> str:
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        self.add(f"opskit {where}", [result.stdout, result.stderr])
        assert (result.exit_code == 0) == ok, (args, result.exit_code)
        return str(result.stdout)

    def files(self, where: str, folder: Path) -> None:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix not in (".sqlite", ".db"):  # the library's cache keeps bodies whole
                self.add(f"{where} {path.name}", path.read_bytes())

    def widgets(self, where: str) -> None:
        """Every widget's state, as a notebook saves it."""
        self.add(where, json.dumps(ipywidgets.Widget.get_manager_state(drop_defaults=True), default=str))

    def leaks(self, secrets: frozenset[str]) -> dict[str, list[str]]:
        values = (canary(""), *secrets)
        texts = {**self.texts, "log lines": "\n".join(self.log.lines)}
        return {where: found for where, text in texts.items() if (found := secrets_in(text, values))}


def _text(shown: Any) -> str:
    if isinstance(shown, bytes):
        return shown.decode("utf-8", errors="replace")
    if isinstance(shown, pd.DataFrame):
        return shown.to_csv()
    if isinstance(shown, (list, tuple)):
        return "\n".join(_text(part) for part in shown)
    return str(shown)


@pytest.fixture
def shown() -> Iterator[Shown]:
    """What the test shows, with the log lines of opskit's loggers at DEBUG."""
    seen = Shown()
    handler = seen.log
    loggers = [logging.getLogger(name) for name in SCANNED_LOGGERS]
    botocore = logging.getLogger("botocore")
    botocore_before = (botocore.level, list(botocore.handlers))
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield seen
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
    # opskit leaves botocore's logging as it found it: its DEBUG wire trace (request and response bodies) stays off.
    assert (botocore.level, list(botocore.handlers)) == botocore_before


def progress_of(seen: Shown, where: str) -> Any:
    def report(event: ProgressEvent) -> None:
        seen.add(f"{where} progress", [event.message, repr(event)])

    return report


def env_of(sandbox: Sandbox) -> dict[str, str | None]:
    return {**sandbox.env, "AWS_PROFILE": None}


def assert_nothing_shown(seen: Shown, sandbox: Sandbox) -> None:
    leaks = seen.leaks(sandbox.secrets())
    assert not leaks, f"secrets shown in: {sorted(leaks)}"  # where, never the value


# -- worlds -------------------------------------------------------------------------------------------------------
def seed_quiet(sandbox: Sandbox, revisions: int = 8) -> None:
    """Cluster prod; families web and api whose every revision carries the secrets; services on web:5 -> web:7
    (so web can roll back) and api's newest; images v1..vN in MUTABLE repositories."""
    ecs, ecr = sandbox.client("ecs"), sandbox.client("ecr")
    with sandbox.throttle.suspended():
        ecs.create_cluster(clusterName="prod")
        for family in ("web", "api"):
            ecr.create_repository(repositoryName=family)
            for n in range(1, revisions + 1):
                ecr.put_image(repositoryName=family, imageManifest=manifest(f"{family}-{n}"), imageTag=f"v{n}")
                image = f"{sandbox.registry_host}/{family}:v{n}"
                ecs.register_task_definition(family=family, containerDefinitions=[secret_container("app", image)])
        ecs.create_service(cluster="prod", serviceName="web", taskDefinition="web:5", desiredCount=1)
        sandbox.clock.advance(600)
        ecs.update_service(cluster="prod", service="web", taskDefinition="web:7")
        sandbox.clock.advance(600)
        ecs.create_service(cluster="prod", serviceName="api", taskDefinition=f"api:{revisions}", desiredCount=1)
        sandbox.clock.advance(600)


def with_secrets(world: ReleaseWorld) -> None:
    """The release world's service moved to a revision of web whose container carries the secrets."""
    ecs = world.sandbox.client("ecs")
    ecs.register_task_definition(family="web", containerDefinitions=[secret_container("web", f"{world.uri}:bootstrap")])
    ecs.update_service(cluster="prod", service="web", taskDefinition="web:2")
    world.sandbox.clock.advance(600)
    ecs.get_waiter("services_stable").wait(cluster="prod", services=["web"], WaiterConfig={"Delay": 0.2})
    settle_rollout(world)


# -- the scenarios ------------------------------------------------------------------------------------------------
def test_the_sandbox_names_every_credential_it_issued(quiet: Sandbox) -> None:
    data = quiet.client("ecr").get_authorization_token()["authorizationData"][0]
    token = data["authorizationToken"]
    password = base64.b64decode(token).decode().partition(":")[2]
    pull = quiet.region.images.pull_credentials()["password"] if quiet.region else ""
    for value in (token, password, pull, quiet.env["AWS_SECRET_ACCESS_KEY"]):
        assert value in quiet.secrets() and value in issued_secrets()
    assert not secrets_in(json.dumps(quiet.env) + repr(quiet.aws()), [token, password, pull])


def test_a_release_and_a_rollback_show_no_secret(
    release_world: ReleaseWorld, shown: Shown, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = release_world
    with_secrets(world)
    options = ReleaseOptions(cluster="prod", service="web", path=world.app)
    plan = plan_release(world.aws, options)
    shown.add("release plan", [plan.diff, plan.to_dict(), plan.summary(), plan._repr_html_()])
    shown.frame("release plan frame", plan.to_frame())
    record = apply_release(plan, world.aws, progress=progress_of(shown, "release"), **FAST)
    assert record.ok, record.reason
    shown.add("release record", [record.to_json(), repr(record)])
    shown.frame("release record frame", record.to_frame())

    env = env_of(world.sandbox)
    world.commit("second", extra="2")
    shown.cli("release --dry-run", env, "release", "--cluster", "prod", "--service", "web", "--path", str(world.app),
              "--dry-run")  # fmt: skip
    shown.cli("release --dry-run --format json", env, "release", "--cluster", "prod", "--service", "web",
              "--path", str(world.app), "--dry-run", "--format", "json")  # fmt: skip
    shown.cli("release", env, "release", "--cluster", "prod", "--service", "web", "--path", str(world.app),
              "--poll-interval", "0.1", "--format", "json")  # fmt: skip

    rollback = plan_rollback(world.aws, "prod", "web")
    shown.add("rollback plan", [rollback.to_dict(), rollback._repr_html_()])
    shown.frame("rollback plan frame", rollback.to_frame())
    shown.cli("rollback --dry-run", env, "rollback", "--cluster", "prod", "--service", "web", "--dry-run")
    back = apply_rollback(rollback, world.aws, progress=progress_of(shown, "rollback"), **FAST)
    assert back.ok, back.reason
    shown.add("rollback record", back.to_json())

    panel = ReleasePanel(world.aws, cluster="prod", service="web", path=world.app, poll_interval=0.1, timeout=WAIT)
    panel.plan()
    panel.wait(WAIT)
    assert panel.release_plan is not None, panel.messages.text
    shown.widgets("release panel")

    # A build that fails, and credentials that expired: the errors say what to do, and show nothing secret.
    world.commit("broken", Dockerfile='FROM scratch\nRUN ["/bin/false"]\n')
    with pytest.raises(OpskitError) as failed:
        apply_release(plan_release(world.aws, options), world.aws, progress=progress_of(shown, "failed build"), **FAST)
    shown.add("build error", str(failed.value))
    world.sandbox.expire_credentials(world.sandbox.env["AWS_ACCESS_KEY_ID"])
    shown.cli("release, expired", env, "release", "--cluster", "prod", "--service", "web", "--path", str(world.app),
              ok=False)  # fmt: skip
    shown.files("journal", Path(os.environ["OPSKIT_STATE_DIR"]))
    issued = len(world.sandbox.secrets()) - 1  # passwords and tokens, besides the secret access key
    assert issued >= 4, "the release asked for registry credentials, which are looked for too"
    assert_nothing_shown(shown, world.sandbox)


def test_the_library_checks_and_every_format_show_no_secret(quiet: Sandbox, shown: Shown, tmp_path: Path) -> None:
    seed_quiet(quiet)
    library = RevisionLibrary(quiet.aws(), cache_dir=tmp_path / "library", rate_scale=60)
    with library:
        library.sync(progress=lambda done, total: shown.add("sync progress", f"{done}/{total}"))
        for name in TABLES:
            shown.frame(f"library {name}", library.table(name))
        shown.add("revision body", library.revision_body("web:3"))
        control = Shown()  # what the scan finds when a value does show: the body as registered
        control.add("unmasked body", library.revision_body("web:3", unmask=True))
        assert list(control.leaks(quiet.secrets())) == ["unmasked body"]
        shown.add("timeline", [t.get_text() for t in library.timeline().findobj(lambda a: hasattr(a, "get_text"))])
        findings = run_checks(Snapshot.from_library(library, hardening=True), ("release", "hardening"))
        assert any(f.failed and f.id == "HARD001" for f in findings), "the secret variables were judged"
        shown.frame("check findings", findings_frame(findings))
        shown.add(
            "check reports", [findings_json(findings), findings_table(findings), *(f.explain() for f in findings)]
        )

        browser = RevisionBrowser(library, sync=True)
        browser.wait(WAIT)
        browser.select("web:3")
        browser.wait(WAIT)
        assert browser.environment.frame is not None and len(browser.environment.frame) == 7
        report = PolicyReport(library, hardening=True, clock=quiet.clock.now, run=True)
        report.wait(WAIT)
        shown.widgets("revision browser and policy report")

    env = env_of(quiet)
    for command in LIBRARY_COMMANDS:
        for fmt in ("table", "csv", "json"):  # the first syncs, the others print what the cache holds
            shown.cli(f"{command} --format {fmt}", env, command, "--format", fmt, *(() if fmt == "table" else NO_SYNC))
        target = tmp_path / f"{command}.parquet"
        shown.cli(f"{command} parquet", env, command, "--format", "parquet", "--output", str(target), *NO_SYNC)
        shown.add(f"{command}.parquet", target.read_bytes())
    for fmt in ("table", "json"):
        result = CliRunner().invoke(cli, ["check", "--hardening", "--all", "--format", fmt], env=env)
        assert result.exit_code == 1, result.output  # HARD001 fails, by variable name
        shown.add(f"opskit check --format {fmt}", [result.stdout, result.stderr])
        assert "DB_PASSWORD" in result.stdout
    assert_nothing_shown(shown, quiet)


def test_a_cleanup_shows_no_secret(quiet: Sandbox, shown: Shown, tmp_path: Path) -> None:
    seed_quiet(quiet, revisions=12)
    options = CleanupOptions(keep=2, keep_days=0, rollback_depth=1, images=True, untagged_days=0)
    with RevisionLibrary(quiet.aws(), cache_dir=tmp_path / "library", rate_scale=60) as library:
        plan = plan_cleanup(library, options, now=quiet.clock.now())
        assert plan.to_deregister, "the world has revisions to clean up"
        shown.frame("cleanup plan", plan.to_frame())
        shown.frame("cleanup summary", plan.summary())
        shown.add("cleanup plan", [json.dumps(plan.to_dict(), default=str), plan._repr_html_()])
        panel = CleanupPanel(library, keep=2, keep_days=0, rollback_depth=1, clock=quiet.clock.now, rate_scale=60)
        panel.plan()
        panel.wait(WAIT)
        shown.widgets("cleanup panel")
    result = apply_cleanup(plan, quiet.aws(), progress=progress_of(shown, "cleanup"), rate_scale=60)
    shown.frame("cleanup result", result.to_frame())
    shown.add("cleanup result", [result.to_json(), result._repr_html_()])

    env = env_of(quiet)
    base = ("cleanup", "--keep", "1", "--keep-days", "0", "--rollback-depth", "1", "--rate-scale", "60")
    shown.cli("cleanup", env, *base)
    shown.cli("cleanup --format json", env, *base, "--format", "json")
    shown.cli("cleanup --apply", env, *base, "--images", "--untagged-days", "0", "--apply", "--yes")
    shown.files("journal", Path(os.environ["OPSKIT_STATE_DIR"]))
    assert_nothing_shown(shown, quiet)


PLUGIN_TESTS = """
def test_no_secret_in_the_environment(ecs_release_policy, ecs_task_definition):
    ecs_release_policy.assert_passes("no-secrets-in-environment", ecs_task_definition)


def test_the_tables(ecs_library):
    print(ecs_library.containers().to_string())
    print(ecs_library.revisions().to_string())
    assert ecs_library.containers().empty, "show the frame in the failure"
"""


def test_the_plugin_report_and_its_failures_show_no_secret(
    pytester: pytest.Pytester, quiet: Sandbox, shown: Shown, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_quiet(quiet)
    for name, value in env_of(quiet).items():
        monkeypatch.setenv(name, value) if value is not None else monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(test_own=PLUGIN_TESTS)
    report = pytester.path / "report.xml"
    result = pytester.runpytest(
        f"--ecs-endpoint-url={quiet.endpoint_url}",
        f"--ecs-region={quiet.region_name}",
        "--ecs-policy=all",
        "-p",
        "no:benchmark",
        f"--junitxml={report}",
        "-o",
        "junit_logging=all",
        "-rA",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 4 and outcomes.get("passed", 0) > 0, outcomes
    assert "HARD001" in result.stdout.str() and "DB_PASSWORD" in report.read_text()
    shown.add("inner pytest output", [result.stdout.str(), result.stderr.str()])
    shown.add("JUnit report", report.read_bytes())
    assert_nothing_shown(shown, quiet)


@pytest.mark.parametrize("runbook", ["audit", "cleanup"])
def test_runbook_outputs_show_no_secret(runbook: str, quiet: Sandbox, shown: Shown, tmp_path: Path) -> None:
    seed_quiet(quiet)
    nb = nbformat.read(NOTEBOOKS / f"{runbook}.ipynb", as_version=4)
    index = next(i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", []))
    values = {"endpoint_url": quiet.endpoint_url, **({"hardening": True} if runbook == "audit" else {"keep": 1})}
    code = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(code, metadata={"tags": ["injected-parameters"]}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env |= {"OPSKIT_CACHE_DIR": str(tmp_path / "cache"), "OPSKIT_STATE_DIR": str(tmp_path / "state")}
    client = NotebookClient(
        nb, kernel_name="python3", store_widget_state=True, timeout=180, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=env)
    outputs = json.dumps([cell.get("outputs", []) for cell in nb.cells]) + json.dumps(nb.metadata.get("widgets"))
    shows = {"audit": "HARD001", "cleanup": "Revisions that change, and why they may"}[runbook]
    assert shows in outputs, "the runbook showed the world"
    shown.add(f"{runbook} runbook outputs", outputs)
    assert_nothing_shown(shown, quiet)

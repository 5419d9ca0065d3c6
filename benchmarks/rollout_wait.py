"""Following a deployment to its end: opskit, the aws CLI's waiter and ecs-deploy, on one sandbox, in one run.

Run: python benchmarks/rollout_wait.py [--time-scale 6] [--opskit PATH] [--aws PATH] [--ecs PATH] [--cap 150]
in an environment with opskit installed; the aws CLI and ecs-deploy may live in one of their own (`pip install
awscli ecs-deploy` in a virtualenv, then --aws and --ecs name its commands). About two minutes, no Docker needed.
Each tool is the command a user runs, found on PATH unless an option names it (a tool not found is skipped, with a
line saying so); each is pointed at the sandbox by AWS_ENDPOINT_URL, the sandbox's dummy credentials and its region
(botocore >= 1.28 honours AWS_ENDPOINT_URL; the tools call no AWS service outside the sandbox), and each runs with
its own default poll interval:
- opskit: `opskit release` (opskit has no command that only follows a deployment someone else started; a release
  updates the service, then follows ECS's record of the deployment), of a one-commit checkout whose image a CI step
  already pushed to ECR under the commit's SHA (nothing is built: no Docker engine needed); polls every 5 s
  (--poll-interval's default). Its console script next to this interpreter, else on PATH, else `python -m opskit`;
- aws CLI: `aws ecs update-service` (to a revision registered beforehand, as a deploy script does) then `aws ecs
  wait services-stable`, botocore's waiter (DescribeServices every 15 s, at most 40 times; success once the service
  has one deployment and as many tasks running as desired);
- ecs-deploy (fabfuel/ecs-deploy on PyPI, the `ecs` command): `ecs deploy CLUSTER SERVICE --tag SHA`, which
  registers a copy of the live revision with the new tag, updates the service and follows it (every second,
  --sleep-time's default, for at most 300 s, --timeout's default).
Three cases, each on services of their own (one per tool, the three tools at once, the cases one after another):
a ROLLING service (circuit breaker with rollback), a BLUE_GREEN one (bake time 1 minute) behind an Application Load
Balancer of its own (opskit.sandbox.alb.make_alb, as tests/sandbox/test_strategies.py sets one up), and a ROLLING one
whose new tasks cannot start: the new image is in ECR when each tool starts and is deleted from it as the tool's
UpdateService reaches the sandbox, so every task fails to start (CannotPullContainerError: without Docker the sandbox's
tasks can fail only at the pull; with Docker, tests/release/conftest.py's `unstartable()` image fails at the start, the
same TaskFailedToStart), the circuit breaker trips and ECS rolls back: a tool should report a failure.
Measured per tool and case: its exit code and whether that verdict is right (0 for the two good cases, non-zero for
the rollback); the seconds from the moment the deployment reached its final state, as the sandbox recorded it
(DescribeServiceDeployments' finishedAt, a sandbox time turned back into wall time; negative: the tool exited
before ECS was done), to the tool's process exiting; and the API calls it made from its UpdateService's answer to
its exit, per minute, counted by a thin HTTP proxy in front of the sandbox, one per tool run. Tasks run simulated
(no Docker), throttling is off, the time scale compresses ECS's durations (60 s of bake time take 60 / scale wall
seconds) but not the tools' poll intervals, which are wall time; one sample per tool and case, so the seconds to
exit fall anywhere up to a poll interval.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opskit.sandbox import Sandbox
from opskit.sandbox.alb import make_alb

CLUSTER, CONTAINER, PORT = "bench", "web", 8080
FINAL = {"SUCCESSFUL", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED", "STOPPED"}
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
# A tool's verdict line: opskit's record (outcome) or failure, ecs-deploy's, botocore's waiter error.
VERDICT = re.compile(r"^(outcome\b|opskit: \w+ failed|Deployment (successful|failed)|ERROR|Waiter)")
OPSKIT_EXIT = {0: "COMPLETED", 1: "ROLLED_BACK", 2: "REFUSED", 3: "ROLLBACK_FAILED", 4: "STOPPED", 5: "TIMED_OUT"}


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    config: dict[str, Any]
    blue_green: bool = False
    fails: bool = False  # the new image goes from ECR as the update arrives: the breaker rolls back

    @property
    def expected(self) -> str:
        return "a failure (non-zero)" if self.fails else "success (0)"


CASES = (
    Case(
        "rolling",
        "ROLLING",
        {"strategy": "ROLLING", "deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    ),
    Case("blue-green", "BLUE_GREEN, bake 1 min", {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1}, blue_green=True),
    Case(
        "rollback",
        "ROLLING, tasks cannot start",
        {"strategy": "ROLLING", "deploymentCircuitBreaker": {"enable": True, "rollback": True}},
        fails=True,
    ),
)


# -- a thin counting proxy in front of the sandbox, one per tool run --------------------------------------------------
class CountingProxy(ThreadingHTTPServer):
    """Forwards every request to the sandbox unchanged and notes (wall time, AWS action) as each is answered;
    ``before_update`` runs as an UpdateService arrives, before the sandbox sees it."""

    daemon_threads = True

    def __init__(self, upstream: str, before_update: Callable[[], None] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(port))
        self.before_update = before_update
        self.seen: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, name="bench-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def note(self, action: str) -> None:
        with self.lock:
            self.seen.append((time.monotonic(), action))

    def calls(self) -> list[tuple[float, str]]:
        with self.lock:
            return list(self.seen)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the sandbox serves it: one connection per client connection
    server: CountingProxy
    upstream: http.client.HTTPConnection | None = None

    def do_POST(self) -> None:
        self.forward()

    do_GET = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_POST

    def forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        action = action_of(self.headers.get("X-Amz-Target"), body)
        if action == "UpdateService" and self.server.before_update is not None:
            self.server.before_update()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
        for attempt in (1, 2):  # the sandbox may close an idle keep-alive connection: reopen once
            try:
                if self.upstream is None:
                    self.upstream = http.client.HTTPConnection(*self.server.upstream, timeout=60)
                self.upstream.request(self.command, self.path, body, headers)
                answer = self.upstream.getresponse()
                data = answer.read()
                break
            except (ConnectionError, http.client.HTTPException):
                if self.upstream is not None:
                    self.upstream.close()
                self.upstream = None
                if attempt == 2:
                    raise
        self.server.note(action)
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


def action_of(target: str | None, body: bytes) -> str:
    """The AWS action of a request: X-Amz-Target's (ECS, ECR: JSON protocol) or the form's Action (query)."""
    if target:
        return target.rsplit(".", 1)[-1]
    for part in body.split(b"&"):
        if part.startswith(b"Action="):
            return part[len(b"Action=") :].decode()
    return "other"


# -- the world: services to deploy to, and the commit every tool releases ----------------------------------------------
def manifest(marker: str) -> str:
    """An image manifest for ECR's PutImage (tasks run simulated: no layer is ever pulled)."""

    def digest(text: str) -> str:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    layer = {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100, "digest": digest(marker)}
    config = {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 10, "digest": digest(f"c{marker}")}
    return json.dumps({"schemaVersion": 2, "mediaType": SCHEMA2, "config": config, "layers": [layer]})


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def make_app(directory: Path) -> str:
    """A one-commit checkout with a Dockerfile (never built: its image is in ECR already); returns HEAD's SHA."""
    directory.mkdir(parents=True)
    (directory / "Dockerfile").write_text('FROM scratch\nCMD ["/bin/sh", "-c", "sleep 3600"]\n')
    git(directory, "init", "-q")
    git(directory, "add", "-A")
    git(directory, "commit", "-qm", "the release")
    return git(directory, "rev-parse", "HEAD")


def create_service(sandbox: Sandbox, case: Case, name: str, number: int, tag: str) -> None:
    """Service ``name`` on ``name:1`` (image v1 of repository ``name``), with ``tag`` also in the repository."""
    ecr, ecs = sandbox.client("ecr"), sandbox.client("ecs")
    ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    for label in ("v1", tag):
        ecr.put_image(repositoryName=name, imageManifest=manifest(f"{name}:{label}"), imageTag=label)
    container = {
        "name": CONTAINER,
        "image": f"{sandbox.registry_host}/{name}:v1",
        "memory": 64,
        "essential": True,
        "portMappings": [{"containerPort": PORT}],
    }
    ecs.register_task_definition(family=name, containerDefinitions=[container])
    extra: dict[str, Any] = {}
    if case.blue_green:
        extra["loadBalancers"] = [make_alb(sandbox, name, cidr=f"10.{number}.0.0/16").load_balancer()]
    ecs.create_service(
        cluster=CLUSTER,
        serviceName=name,
        taskDefinition=f"{name}:1",
        desiredCount=2,
        deploymentConfiguration=case.config,
        **extra,
    )


def settle(sandbox: Sandbox, names: list[str]) -> None:
    """Move the sandbox's clock on until every service's first rollout is done (before anything is timed)."""
    ecs = sandbox.client("ecs")
    for _ in range(60):
        services = ecs.describe_services(cluster=CLUSTER, services=names)["services"]
        if all(
            [(d["status"], d.get("rolloutState")) for d in s["deployments"]] == [("PRIMARY", "COMPLETED")]
            and s["runningCount"] == s["desiredCount"]
            for s in services
        ):
            return
        sandbox.clock.advance(10)
    sys.exit("the services' first rollouts did not complete")


# -- the tools ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tool:
    key: str
    command: list[str]  # the executable (and interpreter, for `python -m opskit`)
    version: str
    waits: str  # what it runs and how it polls


def find_tools(args: argparse.Namespace) -> tuple[list[Tool], list[str]]:
    tools, skipped = [], []
    opskit = args.opskit or shutil.which("opskit", path=str(Path(sys.executable).parent)) or shutil.which("opskit")
    opskit_command = [opskit] if opskit else [sys.executable, "-m", "opskit"]
    tools.append(
        Tool(
            "opskit",
            opskit_command,
            _output([*opskit_command, "--version"]),
            "`opskit release`: updates the service, follows its service deployment; --poll-interval 5 (default)",
        )
    )
    aws = args.aws or shutil.which("aws")
    if aws is None:
        skipped.append("aws CLI: no `aws` on PATH (pip install awscli, or pass --aws): skipped")
    else:
        delay = boto_waiter_delay()
        tools.append(
            Tool(
                "aws",
                [aws],
                _output([aws, "--version"]),
                f"`aws ecs update-service`, then `aws ecs wait services-stable`: DescribeServices every {delay} s "
                "(botocore's waiter model)",
            )
        )
    ecs = args.ecs or shutil.which("ecs")
    if ecs is None:
        skipped.append("ecs-deploy: no `ecs` on PATH (pip install ecs-deploy, or pass --ecs): skipped")
    else:
        tools.append(
            Tool(
                "ecs-deploy",
                [ecs],
                _output([ecs, "--version"]),
                "`ecs deploy CLUSTER SERVICE --tag SHA`: polls every 1 s (--sleep-time's default), --timeout 300",
            )
        )
    return tools, skipped


def boto_waiter_delay() -> int:
    import botocore.session

    model = botocore.session.get_session().get_waiter_model("ecs")
    return int(model.get_waiter("ServicesStable").delay)


def _output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except OSError as exc:
        return f"(cannot run: {exc})"
    return " ".join((done.stdout or done.stderr).split())


@dataclass
class Run:
    case: Case
    tool: Tool
    service: str
    proxy: CountingProxy
    output: Path
    exit_code: int | None = None
    exited: float | None = None
    note: str = ""
    final_status: str = ""
    final_at: float | None = None  # wall (monotonic) time of the deployment's final state
    runs_now: str = ""  # the revision the service runs once it is all over, and whether it is still ACTIVE
    before: set[str] = field(default_factory=set)  # the service's deployments before the tool ran

    def run(self, steps: list[list[str]], env: dict[str, str], cap: float) -> None:
        """The steps one after another (the last is the one that waits); its exit code and exit time."""
        deadline = time.monotonic() + cap
        for step in steps:
            with self.output.open("wb") as out:  # the last step's output is the one kept: the waiting command's
                process = subprocess.Popen(step, stdout=out, stderr=subprocess.STDOUT, env=env)
                try:
                    code = process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    self.note = f"killed after {cap:g} s"
                    return
                self.exited = time.monotonic()
                self.exit_code = code
                if code != 0:
                    return

    def said(self) -> str:
        """The waiting command's verdict line: the last that names an outcome, else its last line."""
        lines = [line.strip() for line in self.output.read_text(errors="replace").splitlines() if line.strip()]
        lines = [line for line in lines if set(line) != {"."}]
        verdicts = [line for line in lines if VERDICT.search(line)]
        return " ".join((verdicts or lines or ["(no output)"])[-1].split())[:110]

    def waited(self) -> tuple[float | None, float, Counter[str]]:
        """(API calls per minute, the seconds they were counted over, calls by action) from the UpdateService's
        answer to the exit."""
        calls = self.proxy.calls()
        updated = next((at for at, action in calls if action == "UpdateService"), None)
        if updated is None or self.exited is None:
            return None, 0.0, Counter()
        during = Counter(action for at, action in calls if updated < at <= self.exited)
        span = self.exited - updated
        return (60 * sum(during.values()) / span if span > 0 else None), span, during

    @property
    def right(self) -> bool | None:
        if self.exit_code is None:
            return None
        return (self.exit_code != 0) if self.case.fails else (self.exit_code == 0)


def steps_for(run: Run, sandbox: Sandbox, app: Path, tag: str) -> list[list[str]]:
    command, name = run.tool.command, run.service
    if run.tool.key == "opskit":
        return [[*command, "release", "--cluster", CLUSTER, "--service", name, "--path", str(app)]]
    if run.tool.key == "aws":
        image = f"{sandbox.registry_host}/{name}:{tag}"
        container = {
            "name": CONTAINER,
            "image": image,
            "memory": 64,
            "essential": True,
            "portMappings": [{"containerPort": PORT}],
        }
        registered = sandbox.client("ecs").register_task_definition(family=name, containerDefinitions=[container])
        arn = registered["taskDefinition"]["taskDefinitionArn"]
        update = [*command, "ecs", "update-service", "--cluster", CLUSTER, "--service", name]
        return [
            [*update, "--task-definition", arn, "--query", "service.serviceName", "--output", "text"],
            [*command, "ecs", "wait", "services-stable", "--cluster", CLUSTER, "--services", name],
        ]
    return [[*command, "deploy", CLUSTER, name, "--tag", tag]]


def deployment_arns(sandbox: Sandbox, service: str) -> set[str]:
    listed = sandbox.client("ecs").list_service_deployments(cluster=CLUSTER, service=service)["serviceDeployments"]
    return {str(d["serviceDeploymentArn"]) for d in listed}


def final_state(sandbox: Sandbox, run: Run, wall_of: Callable[[datetime], float], cap: float) -> None:
    """The service deployment the tool started: its final status and when it reached it (waits for it, when the tool
    exited before ECS was done)."""
    ecs = sandbox.client("ecs")
    deadline = time.monotonic() + cap
    while True:
        arns = sorted(deployment_arns(sandbox, run.service) - run.before)
        described = ecs.describe_service_deployments(serviceDeploymentArns=arns)["serviceDeployments"] if arns else []
        newest = max(described, key=lambda d: d["createdAt"], default=None)
        if newest is not None and newest["status"] in FINAL:
            run.final_status = newest["status"]
            run.final_at = wall_of(newest.get("finishedAt") or newest["updatedAt"])
            live = ecs.describe_services(cluster=CLUSTER, services=[run.service])["services"][0]["taskDefinition"]
            status = ecs.describe_task_definition(taskDefinition=live)["taskDefinition"]["status"]
            run.runs_now = f"{live.rsplit('/', 1)[-1]} ({status})"
            return
        if time.monotonic() > deadline:
            run.final_status = f"{newest['status']}, not final" if newest else "no deployment started"
            return
        time.sleep(0.2)


def run_case(
    sandbox: Sandbox,
    case: Case,
    tools: list[Tool],
    app: Path,
    tag: str,
    work: Path,
    wall_of: Callable[[datetime], float],
    cap: float,
) -> list[Run]:
    ecr = sandbox.client("ecr")
    runs = []
    for tool in tools:
        name = f"{case.key}-{tool.key}"

        def vanish(name: str = name) -> None:  # as the update arrives, the new image goes from ECR
            ecr.batch_delete_image(repositoryName=name, imageIds=[{"imageTag": tag}])

        proxy = CountingProxy(sandbox.endpoint_url, before_update=vanish if case.fails else None)
        runs.append(Run(case, tool, name, proxy, work / f"{name}.out", before=deployment_arns(sandbox, name)))
    threads = []
    for run in runs:
        state = work / "state" / run.service
        env = {
            **os.environ,
            **sandbox.env,
            "AWS_ENDPOINT_URL": run.proxy.url,
            "AWS_REGION": sandbox.region_name,
            "OPSKIT_STATE_DIR": str(state),
            "AWS_CONFIG_FILE": os.devnull,  # no profile of the user's in the way
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_PAGER": "",
        }
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_ECS", "AWS_ENDPOINT_URL_ECR"):
            env.pop(name, None)
        thread = threading.Thread(target=run.run, args=(steps_for(run, sandbox, app, tag), env, cap), daemon=True)
        threads.append(thread)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for run in runs:
        final_state(sandbox, run, wall_of, cap)
        run.proxy.shutdown()
        run.proxy.server_close()
    return runs


# -- the report -------------------------------------------------------------------------------------------------------
def report(results: list[Run]) -> None:
    header = ("case", "tool", "exit code", "verdict right?", "s from final state to exit", "API calls/min waiting")
    rows = []
    for run in results:
        rate, _, _ = run.waited()
        code = "-" if run.exit_code is None else str(run.exit_code)
        if run.tool.key == "opskit" and run.exit_code in OPSKIT_EXIT:
            code = f"{code} {OPSKIT_EXIT[run.exit_code]}"
        right = {True: "yes", False: "NO", None: "-"}[run.right]
        lag = "-" if run.exited is None or run.final_at is None else f"{run.exited - run.final_at:+.2f}"
        rows.append((run.case.title, run.tool.key, code, right, lag, "-" if rate is None else f"{rate:.1f}"))
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(
        "s from final state to exit: from DescribeServiceDeployments' finishedAt (mapped to wall time) to the "
        "process's exit;\n  negative: the tool exited before ECS's record was final. API calls/min: calls from the "
        "tool's UpdateService answer to its exit."
    )
    print()
    print(
        "per run: the deployment's final status in ECS's record, what the service runs afterwards, the calls counted "
        "while waiting (over how long), the tool's last line"
    )
    for run in results:
        _, span, during = run.waited()
        calls = ", ".join(f"{action} {count}" for action, count in sorted(during.items())) or "none"
        extra = f" [{run.note}]" if run.note else ""
        print(f"  {run.case.key:<10} {run.tool.key:<10} {run.final_status}{extra}, service on {run.runs_now or '?'}")
        print(f"  {'':<21} {sum(during.values())} calls in {span:.1f} s: {calls}")
        print(f"  {'':<21} said: {run.said()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--time-scale", type=float, default=6.0, help="sandbox seconds per wall second (default 6)")
    parser.add_argument("--opskit", help="the opskit command (default: next to this Python, else on PATH)")
    parser.add_argument("--aws", help="the aws CLI (default: on PATH)")
    parser.add_argument("--ecs", help="ecs-deploy's `ecs` command (default: on PATH)")
    parser.add_argument("--cap", type=float, default=150.0, help="wall seconds after which a tool run is killed")
    args = parser.parse_args()
    tools, skipped = find_tools(args)
    for line in skipped:
        print(line)
    work = Path(tempfile.mkdtemp(prefix="opskit-bench-wait-"))
    begin = time.monotonic()
    try:
        app = work / "app"
        tag = make_app(app)[:12]  # opskit release's tag: the commit's SHA, 12 digits (its default)
        with Sandbox(seed=None, time_scale=args.time_scale, throttle=False, registry=False, docker=False) as sandbox:
            sandbox.client("ecs").create_cluster(clusterName=CLUSTER)
            names = []
            for number, case in enumerate(CASES):
                for index, tool in enumerate(tools):
                    name = f"{case.key}-{tool.key}"
                    create_service(sandbox, case, name, 1 + number * len(tools) + index, tag)
                    names.append(name)
            settle(sandbox, names)
            # From here the sandbox's calendar runs at time_scale x wall time: a recorded moment maps back to wall time.
            ts0, wall0 = sandbox.clock.timestamp(), time.monotonic()

            def wall_of(moment: datetime) -> float:
                return wall0 + (moment.timestamp() - ts0) / float(args.time_scale)

            print(f"sandbox: time scale {args.time_scale:g} (1 min of bake time = {60 / args.time_scale:.1f} s)")
            for tool in tools:
                print(f"  {tool.key:<10} {tool.version}: {tool.waits}")
            print()
            results = []
            for case in CASES:
                print(f"case {case.title} (expected: {case.expected}) ...", file=sys.stderr, flush=True)
                results.extend(run_case(sandbox, case, tools, app, tag, work, wall_of, args.cap))
            report(results)
        print(f"\nwhole run: {time.monotonic() - begin:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

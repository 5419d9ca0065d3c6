"""Releasing an already-built image: opskit against the usual hand-written deploy.sh, on one sandbox, in one run.

Run: DOCKER_HOST=unix:///path/to/docker.sock python benchmarks/release_vs_deploy_sh.py [--runs 3] [--history 20]
Prints first the comparison that matters to a user, processes against processes: wall time up to the start of the
rollout wait (the wait itself excluded from every path), the API calls made up to and including UpdateService and
the registry requests, medians over alternating runs, for
- `opskit release`: the `opskit` console script installed next to this interpreter (else the one on PATH), a new
  process per run (Python start-up and imports included), timed to its "wait" line, releasing the image a CI step
  built for the commit under the release's name (`docker tag`, untimed, as deploy.sh's image is built untimed);
- the same command with no image for the commit in the engine: a docker build whose steps are all cache hits;
- deploy.sh: bash + the docker CLI + the aws CLI (docker tag, ecr get-login-password | docker login, docker push,
  describe-task-definition, a jq/python edit, register-task-definition, update-service), each a process;
then, for reference, opskit in-process (plan_release + apply_release, a fresh Aws and Docker client per run) with
its time per stage and the calls of its plan.
Every run releases a new commit (a new SHA tag in an IMMUTABLE repository) of an app whose image was built once
before the runs; the API call table says what each of opskit's calls is for. Between runs the
rollout is let settle. Needs a Docker engine and the registry the sandbox uses (see README).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.gateway import RegistryAuth
from opskit.progress import ProgressEvent
from opskit.release import ReleaseOptions, apply_release, plan_release
from opskit.sandbox import Sandbox
from opskit.sandbox.server.app import Seen

CLUSTER, SERVICE, FAMILY, CONTAINER, REPOSITORY = "prod", "web", "web", "web", "web"
POLL = 0.2  # seconds between rollout polls; the wait is not measured, so this only shortens the run
# What each of opskit's calls up to the wait is for (the checks deploy.sh does not make among them).
PURPOSE = {
    "DescribeServices": "plan: the service, with its tags (the lock's holders); re-read before the update",
    "DescribeTaskDefinition": "plan: the live revision, with its tags (copied onto the new one)",
    "DescribeRepositories": "plan: the repository's URI and tag mutability",
    "DescribeImages": "plan: the commit's image already in ECR? (then nothing is built or pushed)",
    "TagResource": "the release lock: our tag",
    "ListTagsForResource": "the release lock: read back, ours the only live one",
    "GetAuthorizationToken": "the push's registry credentials",
    "RegisterTaskDefinition": "the new revision",
    "UpdateService": "the rollout",
}

# The usual deploy.sh, as found in CI jobs and blog posts; `mark` (a bash builtin echo) records step times.
DEPLOY_SH = r"""#!/usr/bin/env bash
# deploy.sh: release the already-built $LOCAL_IMAGE as $REPO_URI:<commit SHA> to $CLUSTER/$SERVICE.
set -euo pipefail
mark() { echo "$1 $EPOCHREALTIME" >> "$STEP_LOG"; }
mark start
SHA=$(git -C "$APP_DIR" rev-parse --short=12 HEAD)
IMAGE="$REPO_URI:$SHA"
REGISTRY="${REPO_URI%%/*}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
docker tag "$LOCAL_IMAGE" "$IMAGE"
mark tag
aws ecr get-login-password | docker login --username AWS --password-stdin "$REGISTRY" > /dev/null
mark login
docker push "$IMAGE" > /dev/null
mark push
aws ecs describe-task-definition --task-definition "$FAMILY" > "$WORK/live.json"
mark describe
__EDIT__ > "$WORK/new.json"
mark edit
NEW=$(aws ecs register-task-definition --cli-input-json "file://$WORK/new.json" \
      --query taskDefinition.taskDefinitionArn --output text)
mark register
aws ecs update-service --cluster "$CLUSTER" --service "$SERVICE" --task-definition "$NEW" > /dev/null
mark update
echo "$NEW"
"""
READ_ONLY = (
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
)
EDIT_JQ = (
    'jq --arg IMAGE "$IMAGE" --arg NAME "$CONTAINER" '
    "'.taskDefinition | (.containerDefinitions[] | select(.name == $NAME) | .image) = $IMAGE"
    f' | del({", ".join("." + name for name in READ_ONLY)})\' "$WORK/live.json"'
)
EDIT_PYTHON = (
    'python3 -c \'import json, sys; td = json.load(open(sys.argv[1]))["taskDefinition"]\n'
    "[c.update(image=sys.argv[2]) for c in td['containerDefinitions'] if c['name'] == sys.argv[3]]\n"
    f"print(json.dumps({{k: v for k, v in td.items() if k not in {set(READ_ONLY)!r}}}))'"
    ' "$WORK/live.json" "$IMAGE" "$CONTAINER"'
)
DEPLOY_STEPS = ("tag", "login", "push", "describe", "edit", "register", "update")


# -- the world: a service with a history, an app checkout, its image built once -------------------------------------
def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def make_context(directory: Path, marker: str) -> Path:
    """An app that builds without pulling a base image: busybox FROM scratch (as tests/conftest.py makes)."""
    busybox = next((Path(p) for p in ("/bin/busybox", "/usr/bin/busybox") if Path(p).exists()), None)
    if busybox is None:
        sys.exit("a statically linked busybox is needed to build the app: apt-get install busybox-static")
    directory.mkdir(parents=True)
    shutil.copy(busybox, directory / "busybox")
    (directory / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        f"RUN echo '{marker}' > /marker\n"
        'CMD ["/bin/sh", "-c", "sleep 3600"]\n'
    )
    return directory


def build(docker: Any, context: Path, tag: str) -> None:
    for chunk in docker.api.build(path=str(context), tag=tag, rm=True, decode=True, platform="linux/amd64"):
        if "error" in chunk:
            sys.exit(f"docker build of {context} failed: {chunk['error']}")


def push(sandbox: Sandbox, docker: Any, repository_uri: str, tag: str) -> None:
    data = sandbox.client("ecr").get_authorization_token()["authorizationData"][0]
    auth = RegistryAuth.from_ecr(data).docker_config()
    for chunk in docker.api.push(repository_uri, tag=tag, auth_config=auth, stream=True, decode=True):
        if "error" in chunk:
            sys.exit(f"push of {repository_uri}:{tag} failed: {chunk['error']}")


@dataclass
class World:
    sandbox: Sandbox
    docker: Any
    app: Path
    uri: str
    local_image: str
    work: Path
    seen: list[tuple[str, str]] = field(default_factory=list)  # (action or registry request kind), in order
    seen_lock: threading.Lock = field(default_factory=threading.Lock)
    commits: int = 0

    def commit(self, label: str) -> str:
        """A new commit whose change the Dockerfile never reads: every layer stays a build cache hit."""
        self.commits += 1
        (self.app / "RELEASE").write_text(f"{label} {self.commits}\n")
        git(self.app, "add", "-A")
        git(self.app, "commit", "-qm", f"{label} {self.commits}")
        return git(self.app, "rev-parse", "HEAD")

    def prebuild(self, sha: str) -> None:
        """The CI step before the release: the commit's image in the engine under the release's name."""
        self.docker.api.tag(self.local_image, self.uri, sha[:12])

    def env(self) -> dict[str, str]:
        """The environment of the deploy.sh and CLI processes: the sandbox's, the engine, a private docker config."""
        aws_bin = Path(sys.executable).parent  # the aws CLI itself, not a pyenv shim in front of it
        return {
            **os.environ,
            **self.sandbox.env,
            "DOCKER_HOST": os.environ["DOCKER_HOST"],
            "DOCKER_CONFIG": str(self.work / "docker-config"),  # docker login must not touch ~/.docker
            "OPSKIT_STATE_DIR": str(self.work / "state"),
            "PATH": f"{aws_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def reset_counters(self) -> None:
        self.sandbox.reset_calls()
        with self.seen_lock:
            self.seen.clear()

    def observe(self, seen: Seen) -> None:
        """The sandbox's observer: every AWS call and registry (/v2) request, on arrival, in order."""
        if seen.served:
            return
        if seen.action == "registry":
            kind = next((k for k in ("manifests", "uploads", "blobs") if f"/{k}/" in seen.path), "ping")
            entry = ("registry", f"{seen.method} {kind}")
        else:
            entry = ("api", seen.action)
        with self.seen_lock:
            self.seen.append(entry)

    def until_update(self) -> tuple[Counter[str], Counter[str]]:
        """(API calls, registry requests) since the counters were reset, up to and including the first
        UpdateService: what each path does before it waits for the rollout."""
        api, registry = Counter[str](), Counter[str]()
        with self.seen_lock:
            seen = list(self.seen)
        for where, what in seen:
            (api if where == "api" else registry)[what] += 1
            if what == "UpdateService":
                return api, registry
        sys.exit("no UpdateService reached the sandbox")

    def settle(self) -> None:
        """Until the service has one deployment, COMPLETED: opskit refuses to update during a rollout."""
        ecs = self.sandbox.client("ecs")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            service = ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
            deployments = service["deployments"]
            completed = len(deployments) == 1 and deployments[0].get("rolloutState") == "COMPLETED"
            if completed and service["runningCount"] == service["desiredCount"]:
                return
            time.sleep(POLL)
        sys.exit("the service did not settle within 300 s of sandbox wall time")


def set_up(sandbox: Sandbox, docker: Any, work: Path, history: int) -> World:
    ecr = sandbox.client("ecr")
    uri = ecr.create_repository(repositoryName=REPOSITORY, imageTagMutability="IMMUTABLE")["repository"]
    uri = str(uri["repositoryUri"])
    build(docker, make_context(work / "bootstrap", "bootstrap"), f"{uri}:bootstrap")
    push(sandbox, docker, uri, "bootstrap")
    ecs = sandbox.client("ecs")
    ecs.create_cluster(clusterName=CLUSTER)
    for number in range(1, history + 2):  # older revisions, as a family that has been released for a while has
        ecs.register_task_definition(
            family=FAMILY,
            containerDefinitions=[
                {
                    "name": CONTAINER,
                    "image": f"{uri}:bootstrap",
                    "memory": 64,
                    "essential": True,
                    "environment": [{"name": "REVISION", "value": str(number)}],
                }
            ],
        )
    ecs.create_service(
        cluster=CLUSTER,
        serviceName=SERVICE,
        taskDefinition=f"{FAMILY}:{history + 1}",
        desiredCount=2,
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    )
    app = make_context(work / "app", "v1")
    git(app, "init", "-q")
    git(app, "add", "-A")
    git(app, "commit", "-qm", "first")
    local_image = f"opskit-bench-app:built-{os.getpid()}"
    build(docker, app, local_image)  # the image both paths release, and opskit's build cache
    world = World(sandbox, docker, app, uri, local_image, work)
    world.settle()
    return world


# -- one measured release per path ------------------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    calls: Counter[str]
    registry: Counter[str]
    parts: dict[str, float] = field(default_factory=dict)  # seconds per stage or step
    plan_calls: Counter[str] = field(default_factory=Counter)
    after_wait_calls: Counter[str] = field(default_factory=Counter)
    cache_hits: tuple[int, int] = (0, 0)  # Dockerfile steps answered from the cache, Dockerfile steps (FROM aside)


def release_with_opskit(world: World) -> Run:
    """plan_release + apply_release in this process, of the commit's prebuilt image; timed and counted up to the
    wait stage's start."""
    sandbox = world.sandbox
    world.prebuild(world.commit("opskit"))
    world.reset_counters()
    marks: dict[str, float] = {}
    snapshots: dict[str, Counter[str]] = {}

    def progress(event: ProgressEvent) -> None:
        if event.stage == "wait" and event.state in ("started", "done", "failed"):
            marks[f"wait {event.state}"] = time.perf_counter()
            snapshots[f"wait {event.state}"] = sandbox.calls

    begin = time.perf_counter()
    aws = sandbox.aws()
    plan = plan_release(aws, ReleaseOptions(cluster=CLUSTER, service=SERVICE, path=world.app))
    planned = time.perf_counter()
    plan_calls = sandbox.calls
    record = apply_release(
        plan, aws, progress=progress, poll_interval=POLL, timeout=300, journal_dir=world.work / "state"
    )
    if not record.ok or "wait started" not in marks:
        sys.exit(f"opskit release failed: {record.outcome}: {record.reason}")
    parts = {"plan": planned - begin, **{k: v for k, v in record.stages.items() if k != "wait"}}
    seconds = marks["wait started"] - begin
    parts["other"] = seconds - sum(parts.values())  # lock, checks between stages, client set-up
    waited = snapshots.get("wait done") or snapshots["wait failed"]
    calls, registry = world.until_update()
    return Run(
        seconds=seconds,
        calls=calls,
        registry=registry,
        parts=parts,
        plan_calls=plan_calls,
        after_wait_calls=sandbox.calls - waited,
    )


def opskit_command() -> str:
    """The `opskit` console script of this interpreter's installation (next to it, as a venv or a prefix has it),
    else the first on PATH."""
    found = shutil.which("opskit", path=str(Path(sys.executable).parent)) or shutil.which("opskit")
    if found is None:
        sys.exit("no `opskit` command next to this Python or on PATH: pip install -e . in this environment")
    return found


def cache_hits(build_log: Iterable[str]) -> tuple[int, int]:
    """(Dockerfile steps answered from the cache, Dockerfile steps after FROM) of a build's log; the LABEL step the
    engine appends for opskit's OCI labels is not the Dockerfile's."""
    lines = list(build_log)
    steps = [line for line in lines if re.search(r"Step \d+/\d+ : (?!FROM |LABEL )", line)]
    return sum(1 for line in lines if "Using cache" in line), len(steps)


def release_with_opskit_command(world: World, opskit: str, *, prebuilt: bool = True) -> Run:
    """`opskit release` as a new process, timed from its start to the line announcing the wait: of the commit's
    prebuilt image, or (``prebuilt`` False) building it, every step a cache hit."""
    sha = world.commit("opskit-cli")
    if prebuilt:
        world.prebuild(sha)
    world.reset_counters()
    command = [opskit, "release", "--cluster", CLUSTER, "--service", SERVICE]
    command += ["--path", str(world.app), "--poll-interval", str(POLL), "--timeout", "300"]
    begin = time.perf_counter()
    process = subprocess.Popen(
        command, env=world.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    assert process.stderr is not None
    seconds, lines = None, []
    for line in process.stderr:
        lines.append(line)
        if seconds is None and re.match(r"^\.\.\s+wait\b", line):
            seconds = time.perf_counter() - begin
    if process.wait() != 0 or seconds is None:
        sys.exit("`opskit release` failed:\n" + "".join(lines[-10:]))
    calls, registry = world.until_update()
    return Run(seconds=seconds, calls=calls, registry=registry, cache_hits=cache_hits(lines))


def release_with_deploy_sh(world: World, script: Path) -> Run:
    world.commit("deploy.sh")
    world.reset_counters()
    step_log = world.work / "steps.log"
    step_log.unlink(missing_ok=True)
    env = {
        **world.env(),
        "STEP_LOG": str(step_log),
        "APP_DIR": str(world.app),
        "LOCAL_IMAGE": world.local_image,
        "REPO_URI": world.uri,
        "CLUSTER": CLUSTER,
        "SERVICE": SERVICE,
        "FAMILY": FAMILY,
        "CONTAINER": CONTAINER,
    }
    begin = time.perf_counter()
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - begin
    if done.returncode != 0:
        sys.exit(f"deploy.sh failed ({done.returncode}):\n{done.stderr[-2000:]}")
    calls, registry = world.until_update()
    stamps = [line.split() for line in step_log.read_text().splitlines()]
    parts = {name: float(at) - float(before) for (_, before), (name, at) in itertools.pairwise(stamps)}
    parts["bash, git, mktemp"] = seconds - sum(parts.values())  # bash start, the SHA, mktemp: before the first step
    return Run(seconds=seconds, calls=calls, registry=registry, parts=parts)


def write_deploy_sh(folder: Path) -> tuple[Path, str]:
    jq = shutil.which("jq")
    if jq:
        version = subprocess.run([jq, "--version"], capture_output=True, text=True).stdout.strip()
        edit, how = EDIT_JQ, f"jq ({version})"
    else:
        edit, how = EDIT_PYTHON, "python3 -c (no jq installed)"
    script = folder / "deploy.sh"
    script.write_text(DEPLOY_SH.replace("__EDIT__", edit))
    script.chmod(0o755)
    return script, how


# -- one-off start-up costs -------------------------------------------------------------------------------------------
def timed_command(command: list[str], env: dict[str, str], times: int = 3) -> float:
    results = []
    for _ in range(times):
        begin = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        results.append(time.perf_counter() - begin)
    return statistics.median(results)


# -- printing ---------------------------------------------------------------------------------------------------------
def median_counter(counters: Iterable[Counter[str]]) -> tuple[dict[str, float], dict[str, tuple[int, int]]]:
    """Median per key over runs, and (min, max) per key where runs differ."""
    counters = list(counters)
    keys = sorted({key for counter in counters for key in counter})
    medians = {key: statistics.median(c[key] for c in counters) for key in keys}
    spread = {key: (min(c[key] for c in counters), max(c[key] for c in counters)) for key in keys}
    return medians, {k: v for k, v in spread.items() if v[0] != v[1]}


def number(value: float) -> str:
    return f"{value:g}" if value else "-"


def print_counts(title: str, columns: dict[str, list[Counter[str]]], purposes: dict[str, str] | None = None) -> None:
    summaries = {name: median_counter(runs) for name, runs in columns.items()}
    keys = sorted({key for medians, _ in summaries.values() for key in medians})
    width = max([len(k) for k in keys] + [len(title)]) + 2
    print(f"\n{title:<{width}}" + "".join(f"{name:>16}" for name in columns))
    for key in keys:
        cells = []
        for medians, spread in summaries.values():
            cell = number(medians.get(key, 0))
            if key in spread:
                cell += f" ({spread[key][0]}-{spread[key][1]})"
            cells.append(f"{cell:>16}")
        purpose = f"   {purposes.get(key, '')}" if purposes else ""
        print(f"  {key:<{width - 2}}" + "".join(cells) + purpose)
    totals = [statistics.median(sum(c.values()) for c in runs) for runs in columns.values()]
    print(f"  {'total':<{width - 2}}" + "".join(f"{number(t):>16}" for t in totals))


def median_parts(runs: list[Run], names: Iterable[str]) -> str:
    return ", ".join(f"{name} {statistics.median(r.parts.get(name, 0.0) for r in runs):.3f}" for name in names)


def report(
    args: argparse.Namespace,
    world: World,
    edit: str,
    opskit: str,
    results: dict[str, list[Run]],
    startup: dict[str, float],
) -> None:
    api, cli, sh = results["opskit"], results["opskit release"], results["deploy.sh"]
    building = results["opskit release, building"]
    sh_median = statistics.median(r.seconds for r in sh)
    cli_median = statistics.median(r.seconds for r in cli)
    hits, steps = building[-1].cache_hits
    print("`opskit release` vs deploy.sh, processes against processes, on one sandbox (time scale 60)")
    print(f"  opskit release: {opskit} (a new process per run)")
    print(f"  deploy.sh:      bash, the docker CLI and the aws CLI, a process per step; JSON edited with {edit}")
    print(f"{args.runs} measured runs of each, alternating, after one unmeasured warm-up of each (first layer upload,")
    print(
        f"first docker login); service {CLUSTER}/{SERVICE} (2 tasks), family {FAMILY} with {args.history + 1} ACTIVE "
        f"revisions before the runs, IMMUTABLE repository {REPOSITORY}; each run releases a new commit (a new SHA tag)"
    )
    print(
        "image built once before the runs; before each run of opskit release, untimed, a CI step's `docker tag` names "
        "it as the release's image for the commit (deploy.sh tags it itself, timed), so opskit skips the build; "
        f"`building`: no such image, a docker build whose steps are all cache hits ({hits} of the Dockerfile's "
        f"{steps} steps after FROM 'Using cache'; then a LABEL step for the OCI labels, which runs a container)"
    )

    print("\nwall time up to the start of the rollout wait (wait excluded), median [min-max] of runs")
    print(f"  {'':48}{'seconds':>22}{'vs deploy.sh':>14}")
    for name, runs in (
        ("opskit release: the command, a new process", cli),
        ("deploy.sh: bash + docker CLI + aws CLI processes", sh),
        ("opskit release, building (cache hits)", building),
    ):
        values = [r.seconds for r in runs]
        med = statistics.median(values)
        cell = f"{med:.3f} [{min(values):.3f}-{max(values):.3f}]"
        print(f"  {name:<48}{cell:>22}{med / sh_median:>13.2f}x")
    print_counts(
        "API calls up to and including UpdateService (median per run)",
        {"opskit release": [r.calls for r in cli], "deploy.sh": [r.calls for r in sh]},
        PURPOSE,
    )
    print_counts(
        "registry /v2 requests up to UpdateService",
        {"opskit release": [r.registry for r in cli], "deploy.sh": [r.registry for r in sh]},
    )
    print("  (every request as the sandbox's observer saw it arrive, in order, cut at the first UpdateService)")

    print("\none-off start-up costs, measured now (median of 3)")
    print(f"  python -c pass (this interpreter)          {startup['python']:.3f} s")
    print(f"  opskit --help (the console script)         {startup['opskit']:.3f} s")
    print(f"  aws --version                              {startup['aws']:.3f} s")
    print(f"  aws ecs list-clusters (1 API call)         {startup['aws call']:.3f} s")

    api_median = statistics.median(r.seconds for r in api)
    print("\nfor reference: the same release in-process (plan_release + apply_release, no process start-up)")
    values = [r.seconds for r in api]
    print(
        f"  {'opskit: plan + apply, in-process':<48}"
        f"{f'{api_median:.3f} [{min(values):.3f}-{max(values):.3f}]':>22}{api_median / sh_median:>13.2f}x"
    )
    print(f"    opskit stages:    {median_parts(api, ('plan', 'build', 'tag', 'push', 'register', 'update', 'other'))}")
    print(f"    deploy.sh steps:  {median_parts(sh, ('bash, git, mktemp', *DEPLOY_STEPS))}")
    print_counts(
        "API calls in-process (median per run)",
        {"opskit plan": [r.plan_calls for r in api], "opskit total": [r.calls for r in api]},
    )
    after, _ = median_counter(r.after_wait_calls for r in api)
    print(
        "  after the wait, opskit also releases its lock: "
        + ", ".join(f"{k} {number(v)}" for k, v in after.items())
        + " (not counted above)"
    )

    aws_steps = sum(
        statistics.median(r.parts[name] for r in sh) for name in ("login", "describe", "register", "update")
    )
    print("\nnotes")
    print(
        f"  - deploy.sh starts the aws CLI 4 times (get-login-password, describe, register, update): those 4 steps "
        f"take {aws_steps:.2f} s of its {sh_median:.2f} s, and 4 x `aws --version` (start-up alone, no call) is "
        f"{4 * startup['aws']:.2f} s: nearly all of it is the aws CLI's Python start-up and botocore loading, "
        "not the API."
    )
    print(
        f"  - `opskit release` pays Python start-up and imports once per run (the command takes "
        f"{cli_median - api_median:.2f} s more than in-process here); it makes more API calls than deploy.sh, each "
        "a few ms on the sandbox; on AWS each is a round trip to the region, which this benchmark does not measure."
    )
    print(
        "  - what opskit does that deploy.sh does not: a release lock on the service (its first read is the plan's "
        "DescribeServices with tags; TagResource, ListTagsForResource; UntagResource after the wait); the commit's "
        "image looked for in ECR before anything is built (DescribeImages; only when it is there, ListTaskDefinitions "
        "+ DescribeTaskDefinition of up to 20 ACTIVE revisions for one that already is this release: not in these "
        "runs, each a new commit); the service re-read before the update (refuses a moved service or a rollout in "
        "progress); the live revision's tags copied plus a commit tag (read with the revision); OCI labels on the "
        "image it builds. In an IMMUTABLE repository the registry's acceptance of the manifest under the tag is the "
        "digest's confirmation, and its refusal of a taken tag the check for another push of the commit; a MUTABLE "
        "one costs a DescribeImages before and after the push."
    )
    print(
        "  - the label check (the image's org.opencontainers.image.revision read from the registry) runs only when "
        "the tag is already in ECR, so not in these runs; deploy.sh never checks what a tag holds."
    )
    print(
        "  - deploy.sh describes the family's latest revision, which is the live one only when nobody registered "
        "since; it copies it with an allowlist-free jq del of the read-only fields (as opskit does)."
    )
    print(
        "  - opskit's build stage is a real docker build (context upload, cache lookups, a new image config with the "
        "labels), which deploy.sh skips; a deploy.sh that runs docker build too pays the same."
    )
    print("  - the Docker engine may be shared with other work, which adds noise to the push and build figures.")


# -- main -------------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="measured runs of each path (default 3)")
    parser.add_argument("--history", type=int, default=20, help="older ACTIVE revisions of the family (default 20)")
    args = parser.parse_args()
    if not os.environ.get("DOCKER_HOST"):
        sys.exit("set DOCKER_HOST to a running Docker engine (deploy.sh and opskit build and push with it)")
    opskit = opskit_command()
    work = Path(tempfile.mkdtemp(prefix="opskit-bench-"))
    world: World | None = None
    try:
        with Sandbox(seed=None, time_scale=60) as sandbox:
            if sandbox.docker is None or sandbox.registry is None:
                sys.exit("the sandbox needs a Docker engine and a registry: " + "; ".join(sandbox.notices))
            world = set_up(sandbox, sandbox.docker, work, args.history)
            script, edit = write_deploy_sh(work)
            env = world.env()
            aws = str(Path(sys.executable).parent / "aws")
            startup = {
                "python": timed_command([sys.executable, "-c", "pass"], env),
                "aws": timed_command([aws, "--version"], env),
                "aws call": timed_command([aws, "ecs", "list-clusters"], env),
                "opskit": timed_command([opskit, "--help"], env),
            }
            edit = f"{edit}; aws CLI: {_output([aws, '--version'])}"
            paths: dict[str, Callable[[], Run]] = {
                "opskit release": lambda: release_with_opskit_command(world, opskit),
                "opskit release, building": lambda: release_with_opskit_command(world, opskit, prebuilt=False),
                "deploy.sh": lambda: release_with_deploy_sh(world, script),
                "opskit": lambda: release_with_opskit(world),
            }
            results: dict[str, list[Run]] = {name: [] for name in paths}
            with sandbox.observing(world.observe):
                for round_number in range(args.runs + 1):  # round 0 is the warm-up
                    for name, release in paths.items():
                        run = release()
                        world.settle()
                        if round_number:
                            results[name].append(run)
                        print(
                            f"  [{'warm-up' if not round_number else f'run {round_number}'}] {name}: "
                            f"{run.seconds:.3f} s, {sum(run.calls.values())} calls",
                            file=sys.stderr,
                        )
            report(args, world, edit, opskit, results, startup)
    finally:
        if world is not None:
            tags = {f"{world.uri}:{line}" for line in _local_tags(world)} | {world.local_image}
            for tag in sorted(tags):
                subprocess.run(["docker", "rmi", "--no-prune", tag], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def _output(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    return (done.stdout or done.stderr).strip()


def _local_tags(world: World) -> list[str]:
    listing = subprocess.run(
        ["docker", "images", world.uri, "--format", "{{.Tag}}"], capture_output=True, text=True
    ).stdout
    return [line for line in listing.split() if line and line != "<none>"]


if __name__ == "__main__":
    main()

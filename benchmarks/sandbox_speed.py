"""How fast the sandbox starts and how many calls per second it serves.

Run: python benchmarks/sandbox_speed.py
Prints: start time (empty, demo-seeded, and `opskit sandbox` as a process until it answers), and
DescribeTaskDefinition / ListTaskDefinitions calls per second served over HTTP, serially and from 8 threads
(each thread with its own client, in this process), with throttling off (the server's own capacity) and on (AWS's
rates, time scale 1). Clients make one attempt per call (no retries), so every call is one request and the figures
are what the sandbox answered: calls admitted per second and calls refused with ThrottlingException per second.
With throttling on, the admitted rate is held against the category's bucket (task-definition reads: a burst of 50,
then 20 per second, so at most (50 + 20 x seconds) / seconds), and once more with opskit's Pacer in front
(client-side buckets at those rates, not adaptive: these are plain botocore clients, whose throttles the adaptive
pacer, which reads opskit's AwsError, would not see): as many calls admitted, none refused.

The HTTP server, side by side: the same app (``sandbox.app``, throttling off) served by werkzeug's development
server (started here with ``werkzeug.serving.make_server``: a connection and a thread per request, what the sandbox
used before) and by the sandbox's own server (cheroot, HTTP/1.1 keep-alive), with the ratio. These clients run in
another process, so that their work does not share the server's GIL, and in two kinds: boto3 clients (what opskit
sees; their own work, about a millisecond a call, caps the figure on a small machine), and replays of the very
bytes a boto3 client sends, over one connection per thread (reopened when the server closes it), which leave the
server as the bottleneck. Beside each figure: the server process's CPU time per call, which the machine's other
load moves far less than the rate.
"""

from __future__ import annotations

import http.client
import logging
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.awsrequest
import botocore.config
import botocore.exceptions
from werkzeug.serving import make_server

from opskit.library.pacing import TASK_DEFINITION_READ, Pacer
from opskit.sandbox import Sandbox
from opskit.sandbox.sandbox import ACCESS_KEY_ID, DEFAULT_REGION, SECRET_ACCESS_KEY

SECONDS = 3.0
ONE_ATTEMPT = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1}, max_pool_connections=16)
CALLS = ("DescribeTaskDefinition", "ListTaskDefinitions")


def started(**options: object) -> float:
    begin = time.perf_counter()
    with Sandbox(**options):  # type: ignore[arg-type]
        return time.perf_counter() - begin


def process_start() -> float:
    begin = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "opskit", "sandbox"],
        stdout=subprocess.PIPE,
        text=True,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    endpoint = ""
    for line in process.stdout:  # `export NAME=value` lines, AWS_ENDPOINT_URL among them
        name, _, value = line.strip().removeprefix("export ").partition("=")
        if name == "AWS_ENDPOINT_URL":
            endpoint = value.strip("'")
            break
    if not endpoint:
        process.terminate()
        sys.exit("`opskit sandbox` printed no AWS_ENDPOINT_URL")
    urllib.request.urlopen(f"{endpoint}/_opskit/health").close()
    elapsed = time.perf_counter() - begin
    process.terminate()
    process.wait()
    return elapsed


def rate(calls: list[Callable[[], Any]], seconds: float, pacer: Pacer | None = None) -> tuple[float, float]:
    """Each of ``calls`` in a thread of its own, over and over for ``seconds`` (through ``pacer`` if given):
    (calls admitted per second, calls refused with ThrottlingException per second), of the calls answered within
    the ``seconds``."""
    barrier = threading.Barrier(len(calls))

    def work(call: Callable[[], Any]) -> tuple[int, int]:
        admitted = refused = 0
        barrier.wait()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            try:
                if pacer is None:
                    call()
                else:
                    pacer.call(TASK_DEFINITION_READ, call)
                answered = 1, 0
            except botocore.exceptions.ClientError as exc:
                if exc.response["Error"]["Code"] != "ThrottlingException":
                    raise
                answered = 0, 1
            if time.perf_counter() <= end:  # a call the pacer held past the end is outside the window
                admitted, refused = admitted + answered[0], refused + answered[1]
        return admitted, refused

    with ThreadPoolExecutor(len(calls)) as pool:
        counts = list(pool.map(work, calls))
    return sum(a for a, _ in counts) / seconds, sum(r for _, r in counts) / seconds


def main() -> None:
    print(f"start, empty:                 {started(seed=None):6.2f} s")
    print(f"start, demo history:          {started(seed='demo', time_scale=60):6.2f} s")
    print(f"`opskit sandbox` until it answers (demo): {process_start():6.2f} s")
    for throttle in (False, True):
        with Sandbox(seed=None, throttle=throttle, registry=False, docker=False) as sandbox:
            ecs = sandbox.client("ecs")
            with sandbox.throttle.suspended():
                for _ in range(5):
                    ecs.register_task_definition(
                        family="web", containerDefinitions=[{"name": "a", "image": "x:1", "memory": 64}]
                    )
            clients = [sandbox.client("ecs", config=ONE_ATTEMPT) for _ in range(8)]
            label = "AWS rates" if throttle else "no throttle"
            if throttle:
                bucket = sandbox.throttle.rate("DescribeTaskDefinition")
                assert bucket is not None
                most = (bucket.burst + bucket.per_second * SECONDS) / SECONDS
                print(
                    f"AWS rates: task-definition reads share one bucket, a burst of {bucket.burst:g} then "
                    f"{bucket.per_second:g}/s: at most {most:.1f} calls/s admitted over {SECONDS:g} s"
                )
            for name in CALLS:
                for threads in (1, 8):
                    calls = [call_of(client, name) for client in clients[:threads]]
                    sandbox.throttle.refill()
                    admitted, refused = rate(calls, SECONDS)
                    print(
                        f"{label:11} {name:24} {threads} thread(s): {admitted:7.1f} calls/s admitted, "
                        f"{refused:7.1f}/s throttled"
                    )
                    if throttle and threads > 1:
                        sandbox.throttle.refill()
                        admitted, refused = rate(
                            calls, SECONDS, Pacer(adaptive=False)
                        )  # these clients raise botocore's errors: a pacer that knows the rates
                        print(
                            f"{label:11} {name:24} {threads} thread(s), opskit's Pacer in front: {admitted:7.1f} "
                            f"calls/s admitted, {refused:7.1f}/s throttled"
                        )
            if not throttle:
                compare_servers(sandbox)


def compare_servers(sandbox: Sandbox) -> None:
    """werkzeug's development server and the sandbox's own, serving the same app, from clients in another process."""
    print(
        "HTTP servers, no throttle, clients in another process: werkzeug's development server vs the sandbox's own "
        "(calls/s, and the server process's CPU per call)"
    )
    with werkzeug_server(sandbox) as werkzeug_url:
        for kind in ("boto3", "replay"):
            for name in CALLS:
                for threads in (1, 8):
                    before, before_cpu = served(werkzeug_url, kind, name, threads)
                    after, after_cpu = served(sandbox.endpoint_url, kind, name, threads)
                    print(
                        f"{kind:6} clients {name:24} {threads} thread(s): werkzeug {before:7.1f} calls/s "
                        f"({before_cpu:.2f} ms CPU), sandbox {after:7.1f} calls/s ({after_cpu:.2f} ms CPU): "
                        f"x{after / before:.2f}"
                    )


@contextmanager
def werkzeug_server(sandbox: Sandbox) -> Iterator[str]:
    """``sandbox.app`` behind werkzeug's threaded development server (what the sandbox served with before)."""
    assert sandbox.app is not None
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = make_server("127.0.0.1", 0, sandbox.app, threaded=True)
    server.daemon_threads = True  # type: ignore[attr-defined]  # ThreadingMixIn's, set by make_server
    thread = threading.Thread(target=server.serve_forever, name="werkzeug-dev-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def served(url: str, kind: str, name: str, threads: int) -> tuple[float, float]:
    """(calls per second, this process's CPU milliseconds per call) of ``threads`` clients of ``kind`` calling
    ``name`` at ``url`` for SECONDS from another process (this script, run with ``--clients``)."""
    args = [sys.executable, __file__, "--clients", url, kind, name, str(threads)]
    with subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdin is not None and child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            sys.exit(f"the client process for {url} did not start")
        cpu = time.process_time()
        child.stdin.write("go\n")
        child.stdin.flush()
        calls = int(child.stdout.readline())
        cpu = time.process_time() - cpu
    if child.returncode:
        sys.exit(f"the client process for {url} failed")
    return calls / SECONDS, 1000 * cpu / max(calls, 1)


def clients_process(url: str, kind: str, name: str, threads: int) -> None:
    """The other process: ``threads`` clients, ready once they have made a call each; on "go" from stdin they call
    for SECONDS; prints the calls answered within that time."""
    boto_clients = [
        boto3.client(
            "ecs",
            region_name=DEFAULT_REGION,
            endpoint_url=url,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=ONE_ATTEMPT,
        )
        for _ in range(threads)
    ]
    calls = [call_of(client, name) for client in boto_clients]
    if kind == "replay":
        calls = [replay_of(client, call) for client, call in zip(boto_clients, calls, strict=True)]
    for call in calls:
        call()
    print("ready", flush=True)
    sys.stdin.readline()
    admitted, refused = rate(calls, SECONDS)
    print(round((admitted + refused) * SECONDS), flush=True)


def replay_of(client: Any, call: Callable[[], Any]) -> Callable[[], None]:
    """``call`` as the bytes ``client`` sends for it (captured from one real call), sent again over a connection of
    its own, reopened whenever the server closes it."""
    sent: list[botocore.awsrequest.AWSPreparedRequest] = []
    client.meta.events.register("before-send", lambda request, **_: sent.append(request))
    call()
    request = sent[-1]
    target = urllib.parse.urlsplit(request.url)
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    body = request.body if isinstance(request.body, bytes) else str(request.body or "").encode()
    connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 80)

    def again() -> None:
        connection.request(request.method or "POST", target.path or "/", body, headers)
        answer = connection.getresponse()
        answer.read()  # http.client reopens the connection for the next request if this answer closed it
        if answer.status != 200:
            raise RuntimeError(f"{request.url} answered {answer.status}")

    return again


def call_of(client: Any, name: str) -> Callable[[], Any]:
    if name == "DescribeTaskDefinition":
        return lambda: client.describe_task_definition(taskDefinition="web:3")
    return lambda: client.list_task_definitions(familyPrefix="web")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--clients"]:
        clients_process(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()

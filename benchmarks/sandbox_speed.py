"""How fast the sandbox starts and how many calls per second it serves.

Run: python benchmarks/sandbox_speed.py
Prints: start time (empty, demo-seeded, and `opskit sandbox` as a process until it answers), and
DescribeTaskDefinition / ListTaskDefinitions calls per second served over HTTP, serially and from 8 threads
(each thread with its own client), with throttling off (the server's own capacity) and on (AWS's rates, time
scale 1). Clients make one attempt per call (no retries), so every call is one request and the figures are what
the sandbox answered: calls admitted per second and calls refused with ThrottlingException per second. With
throttling on, the admitted rate is held against the category's bucket (task-definition reads: a burst of 50,
then 20 per second, so at most (50 + 20 x seconds) / seconds), and once more with opskit's Pacer in front
(client-side buckets, as the library paces its syncs): as many calls admitted, none refused.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.config
import botocore.exceptions

from opskit.library.pacing import TASK_DEFINITION_READ, Pacer
from opskit.sandbox import Sandbox

SECONDS = 3.0
ONE_ATTEMPT = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1}, max_pool_connections=16)


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
            for name in ("DescribeTaskDefinition", "ListTaskDefinitions"):
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
                        admitted, refused = rate(calls, SECONDS, Pacer())
                        print(
                            f"{label:11} {name:24} {threads} thread(s), opskit's Pacer in front: {admitted:7.1f} "
                            f"calls/s admitted, {refused:7.1f}/s throttled"
                        )


def call_of(client: Any, name: str) -> Callable[[], Any]:
    if name == "DescribeTaskDefinition":
        return lambda: client.describe_task_definition(taskDefinition="web:3")
    return lambda: client.list_task_definitions(familyPrefix="web")


if __name__ == "__main__":
    main()

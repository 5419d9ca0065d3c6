"""How fast the sandbox starts and how many calls per second it serves.

Run: python benchmarks/sandbox_speed.py
Prints: start time (empty, demo-seeded, and `opskit sandbox` as a process until it answers), and
DescribeTaskDefinition / ListTaskDefinitions calls per second served over HTTP, serially and from 8 threads,
with throttling off (the server's own capacity) and on (AWS's rates).
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from opskit.sandbox import Sandbox


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
    endpoint = process.stdout.readline().strip().split("=", 1)[1]
    urllib.request.urlopen(f"{endpoint}/_opskit/health").close()
    elapsed = time.perf_counter() - begin
    process.terminate()
    process.wait()
    return elapsed


def rate(call: object, seconds: float, threads: int) -> float:
    def work(_: int) -> int:
        count, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            call()  # type: ignore[operator]
            count += 1
        return count

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(work, range(threads))) / seconds


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
            describe = functools.partial(ecs.describe_task_definition, taskDefinition="web:3")
            listing = functools.partial(ecs.list_task_definitions, familyPrefix="web")
            label = "AWS rates" if throttle else "no throttle"
            for name, call in (("DescribeTaskDefinition", describe), ("ListTaskDefinitions", listing)):
                for threads in (1, 8):
                    sandbox.throttle.refill()
                    print(f"{label:11} {name:24} {threads} thread(s): {rate(call, 3.0, threads):7.1f} calls/s")


if __name__ == "__main__":
    main()

"""``opskit sandbox``: serve a local ECS/ECR and print the environment that points tools at it."""

from __future__ import annotations

import shlex
import signal
import threading
import time
from types import FrameType

import click


@click.command("sandbox")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@click.option("--empty", is_flag=True, help="Start with no resources instead of the demo history.")
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Run the clock, throttle refills and rollouts this many times faster than AWS.",
)
def command(port: int, empty: bool, time_scale: float) -> None:
    """Serve the sandbox until Ctrl-C or SIGTERM.

    It prints `export NAME=value` lines first, so `eval` or `source` them in another shell:

        opskit sandbox > sandbox.env &  sleep 5; source sandbox.env; aws ecs list-clusters
    """
    from opskit.sandbox import Sandbox

    started = time.monotonic()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with Sandbox(port=port, seed=None if empty else "demo", time_scale=time_scale) as sandbox:
        for name, value in sandbox.env.items():
            click.echo(f"export {name}={shlex.quote(value)}")
        click.get_text_stream("stdout").flush()
        for notice in sandbox.notices:
            click.echo(f"opskit sandbox: {notice}", err=True)
        click.echo(
            f"opskit sandbox: serving on {sandbox.endpoint_url} (up in {time.monotonic() - started:.1f} s); "
            "Ctrl-C to stop",
            err=True,
        )
        while not stop.wait(0.5):
            pass
    click.echo("opskit sandbox: stopped", err=True)

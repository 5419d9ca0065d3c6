"""``opskit sandbox``: serve a local ECS/ECR and print the environment that points tools at it."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

import click

from opskit.errors import ConfigError, OpskitError

ANSWER_SECONDS = 30.0  # how long the sandbox may take to answer its first request


def _exports(env: dict[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def _check_env_file(path: Path) -> Path:
    """Where --env-file goes, checked before the sandbox takes seconds to start."""
    path = path.expanduser().absolute()
    if path.is_dir():
        raise ConfigError(f"--env-file {path} is a folder: pass the path of a file in it")
    if not path.parent.is_dir():
        raise ConfigError(f"the folder of --env-file {path} does not exist: create it, or pass a file in another one")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write in {path.parent} (--env-file): pass a file in a folder you can write to")
    return path


def _wait_until_it_answers(endpoint_url: str) -> None:
    deadline = time.monotonic() + ANSWER_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint_url}/_opskit/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise OpskitError(f"the sandbox at {endpoint_url} did not answer within {ANSWER_SECONDS:.0f} s")
        time.sleep(0.1)


def write_atomically(path: Path, text: str) -> os.stat_result:
    """``text`` in ``path`` whole or not at all: written to a temporary file in the same folder (readable by its
    owner only), then renamed over ``path``. Returns what the file is, to recognize it later."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path.stat()


def _remove_if_ours(path: Path, written: os.stat_result) -> None:
    """Remove the environment file at the stop, unless something else replaced it meanwhile."""
    with contextlib.suppress(FileNotFoundError):
        now = path.stat()
        if (now.st_dev, now.st_ino) == (written.st_dev, written.st_ino):
            path.unlink()


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
@click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    help="Also write the `export` lines to this file, whole, once the sandbox answers; removed when it stops.",
)
def command(port: int, empty: bool, time_scale: float, env_file: Path | None) -> None:
    """Serve the sandbox until Ctrl-C or SIGTERM.

    It prints `export NAME=value` lines first, so `eval` or `source` them in another shell. With --env-file, the
    file appears only once the sandbox answers, so a shell can wait for it:

    \b
        opskit sandbox --env-file sandbox.env &
        while [ ! -s sandbox.env ] && kill -0 $! 2>/dev/null; do sleep 0.2; done; . ./sandbox.env
    """
    if env_file is not None:
        env_file = _check_env_file(env_file)
    from opskit.sandbox import Sandbox

    started = time.monotonic()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with Sandbox(port=port, seed=None if empty else "demo", time_scale=time_scale) as sandbox:
        exports = _exports(sandbox.env)
        click.echo(exports, nl=False)  # flushed: a shell reading them through a pipe gets them now
        written: os.stat_result | None = None
        if env_file is not None:
            _wait_until_it_answers(sandbox.endpoint_url)
            written = write_atomically(env_file, exports)
        try:
            for notice in sandbox.notices:
                click.echo(f"opskit sandbox: {notice}", err=True)
            click.echo(
                f"opskit sandbox: serving on {sandbox.endpoint_url} (up in {time.monotonic() - started:.1f} s); "
                + (f"environment in {env_file}; " if env_file is not None else "")
                + "Ctrl-C to stop",
                err=True,
            )
            while not stop.wait(0.5):
                pass
        finally:
            if env_file is not None and written is not None:
                _remove_if_ours(env_file, written)
    click.echo("opskit sandbox: stopped", err=True)

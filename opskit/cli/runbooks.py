"""``opskit runbooks``: open the runbook notebooks (release, audit, cleanup) on the embedded sandbox.

It starts one sandbox with the demo history, then serves the runbooks (``opskit/runbooks``, package data) with
Voila (or JupyterLab with ``--lab``) on 127.0.0.1; every notebook's kernel joins that sandbox
(``$OPSKIT_SANDBOX_ENDPOINT``), so a release made in one runbook shows in the others. Ctrl-C or SIGTERM stops the
server, then the sandbox.
Also runnable as ``python -m opskit.cli.runbooks``.
"""

from __future__ import annotations

import errno
import importlib.resources
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path
from types import FrameType

import click

from opskit.errors import ConfigError, OpskitError

DEFAULT_PORT = 8866  # Voila's own default
STOP_SECONDS = 15
RUNBOOKS = "runbooks"  # the runbook notebooks' folder in the opskit package (package data)


def notebooks_folder() -> Path:
    """The runbooks that come with opskit: package data, found wherever opskit is installed (wheel or editable)."""
    folder = importlib.resources.files("opskit").joinpath(RUNBOOKS)
    if not isinstance(folder, Path):  # opskit imported from a zip file: no folder for the notebook server to serve
        raise ConfigError(
            f"the runbooks are inside {folder}, not in a folder: reinstall opskit with pip, or pass --folder"
        )
    return folder


def _free_port(port: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on 127.0.0.1 is taken: pass another --port, or 0 for any free port"
                ) from exc
            raise
        return int(probe.getsockname()[1])


def server_command(folder: Path, port: int, lab: bool, open_browser: bool = False) -> list[str]:
    if lab:
        if importlib.util.find_spec("jupyterlab") is None:
            raise ConfigError("JupyterLab is not installed: pip install jupyterlab, or leave out --lab to use Voila")
        return [
            sys.executable,
            "-m",
            "jupyterlab",
            f"--ServerApp.root_dir={folder}",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.open_browser={open_browser}",  # with its token in the address
        ]
    if importlib.util.find_spec("voila") is None:
        raise ConfigError("Voila is not installed: pip install voila (or reinstall opskit), or pass --lab")
    return [
        sys.executable,
        "-m",
        "voila",
        str(folder),
        "--Voila.ip=127.0.0.1",
        f"--Voila.port={port}",
        "--Voila.port_retries=0",
        "--Voila.open_browser=False",
        "--Voila.log_level=WARN",
        # Runbooks show user errors as one line (opskit.widgets.session); a traceback is a bug worth seeing.
        "--show_tracebacks=True",
    ]


def _ready(url: str, server: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answers (JupyterLab asks for its token)
        except OSError:
            time.sleep(0.2)
    return False


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the server shuts its kernels down), then SIGKILL if it is still there after a while."""
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@click.command("runbooks")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="How much faster than AWS the sandbox runs.",
)
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of notebooks to serve (default: the runbooks that come with opskit).",
)
@click.option("--lab", is_flag=True, help="Serve them with JupyterLab (to edit them) instead of Voila.")
@click.option("--open-browser/--no-browser", default=True, show_default=True, help="Open a browser at the runbooks.")
def command(port: int, time_scale: float, folder: Path | None, lab: bool, open_browser: bool) -> None:
    """Open the runbooks (release, audit, cleanup) on the embedded sandbox and its demo history."""
    folder = (folder or notebooks_folder()).resolve()
    if not folder.is_dir() or not any(folder.glob("*.ipynb")):
        raise ConfigError(f"no notebooks in {folder}: pass --folder with the folder of the runbooks")
    port = _free_port(port)
    argv = server_command(folder, port, lab, open_browser)
    # Checked what can be wrong first: the sandbox (and the widgets) take seconds to import and start.
    from opskit.sandbox import Sandbox
    from opskit.widgets.session import SANDBOX_ENDPOINT_ENV

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    with Sandbox(seed="demo", time_scale=time_scale) as sandbox:
        for notice in sandbox.notices:
            click.echo(f"opskit runbooks: {notice}", err=True)
        env = {**os.environ, SANDBOX_ENDPOINT_ENV: sandbox.endpoint_url}
        if sandbox.docker_host:
            env["DOCKER_HOST"] = sandbox.docker_host
        # Its own session: Ctrl-C reaches this command only, which then stops the server in order.
        server = subprocess.Popen(argv, cwd=folder, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}/"
            probe = f"{url}voila/static/favicon.ico" if not lab else f"{url}api"
            if not _ready(probe, server, timeout=60):
                raise ConfigError(
                    f"the notebook server did not start (exit code {server.poll()}): run `{' '.join(argv)}` to see why"
                )
            click.echo(
                f"opskit runbooks: serving {folder} at {url} with the sandbox at {sandbox.endpoint_url} "
                f"(up in {time.monotonic() - started:.1f} s); Ctrl-C to stop",
                err=True,
            )
            if open_browser and not lab:
                webbrowser.open(url)
            while not stop.wait(0.5) and server.poll() is None:
                pass
        finally:
            stop_server(server)
    click.echo("opskit runbooks: stopped", err=True)


def main() -> None:
    """``python -m opskit.cli.runbooks``: the command on its own, with opskit's one-line errors."""
    try:
        command.main(standalone_mode=False)
    except OpskitError as exc:
        click.echo(f"opskit: error: {exc}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()

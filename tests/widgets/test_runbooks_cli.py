"""`opskit runbooks` refusing what it cannot serve, before it starts anything (serving: see test_voila.py)."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from opskit.cli.runbooks import notebooks_folder, server_command
from tests.widgets.conftest import NOTEBOOKS


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opskit.cli.runbooks", *args], capture_output=True, text=True, timeout=60
    )


def test_the_runbooks_that_come_with_opskit_are_served_by_default() -> None:
    assert notebooks_folder() == NOTEBOOKS
    argv = server_command(NOTEBOOKS, 8866, lab=False)
    assert argv[1:4] == ["-m", "voila", str(NOTEBOOKS)] and "--Voila.ip=127.0.0.1" in argv


def test_a_folder_without_notebooks_is_one_line(tmp_path: Path) -> None:
    answer = run("--folder", str(tmp_path), "--no-browser")
    assert answer.returncode == 2
    assert (
        answer.stderr == f"opskit: error: no notebooks in {tmp_path}: pass --folder with the folder of the runbooks\n"
    )


def test_a_taken_port_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        answer = run("--port", str(port), "--no-browser")
    assert answer.returncode == 2
    assert answer.stderr.startswith(f"opskit: error: port {port} on 127.0.0.1 is taken: pass another --port")


@pytest.mark.skipif(importlib.util.find_spec("jupyterlab") is not None, reason="JupyterLab is installed here")
def test_lab_without_jupyterlab_says_how_to_get_it() -> None:
    answer = run("--lab", "--no-browser")
    assert answer.returncode == 2 and "pip install jupyterlab" in answer.stderr

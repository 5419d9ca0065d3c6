"""`opskit runbooks` refusing what it cannot serve, before it starts anything, and serving its runbooks from a wheel
install (serving in a browser: see test_voila.py)."""

from __future__ import annotations

import html
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from opskit.cli.runbooks import notebooks_folder, server_command
from tests.widgets.conftest import NOTEBOOKS, ROOT, WAIT, kernel_env, stop_runbooks

# What a wheel build copies of the checkout: everything but version control, environments and build outputs.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "artifacts"
)
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
SERVING = re.compile(r"serving (\S+) at (http://127\.0\.0\.1:\d+/) with the sandbox at (http://127\.0\.0\.1:\d+) ")
CELL_OUTPUT = re.compile(r'<script type="application/vnd\.voila\.cell-output\+json">(.*?)</script>', re.DOTALL)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opskit.cli.runbooks", *args], capture_output=True, text=True, timeout=60
    )


def test_the_runbooks_that_come_with_opskit_are_served_by_default() -> None:
    assert notebooks_folder() == NOTEBOOKS
    assert sorted(path.name for path in NOTEBOOKS.glob("*.ipynb")) == ["audit.ipynb", "cleanup.ipynb", "release.ipynb"]
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


def build_wheel(work: Path) -> Path:
    """The checkout's wheel, built from a copy of it (a build in place leaves build/ and *.egg-info behind, and
    files of an old build/ would go into the wheel)."""
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES, symlinks=True)
    setuptools = tuple(int(part) for part in importlib.metadata.version("setuptools").split(".")[:2])
    # setuptools builds wheels by itself from 70.1 on: then the build uses this environment's, as it is; otherwise
    # pip fetches the build requirements of pyproject.toml into an isolated build environment.
    isolation = ["--no-build-isolation"] if setuptools >= (70, 1) else []
    subprocess.run(
        [*PIP, "wheel", "-q", "--no-deps", *isolation, "-w", str(work / "wheels"), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (work / "wheels").glob("opskit-*.whl")
    return wheel


def venv_with(wheel: Path, venv: Path) -> Path:
    """A new virtual environment with ``wheel`` installed (not editable) and this environment's packages as its
    dependencies: a path entry to them (not their .pth files, so the checkout's editable opskit stays out) and
    their Jupyter data but the kernels (its python3 kernel is its own interpreter). Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "opskit-dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    for data in ("share/jupyter", "etc/jupyter"):
        for entry in sorted((Path(sys.prefix) / data).glob("*")):
            if entry.name != "kernels":
                (venv / data).mkdir(parents=True, exist_ok=True)
                (venv / data / entry.name).symlink_to(entry)
    subprocess.run(
        [*PIP, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return python


def cell_outputs(page: str) -> list[dict[str, Any]]:
    """The outputs Voila rendered into the page, one JSON document per output."""
    return [json.loads(html.unescape(block)) for block in CELL_OUTPUT.findall(page)]


def test_a_wheel_install_serves_its_own_runbooks(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    python = venv_with(build_wheel(tmp_path), venv)
    env = {**kernel_env(), "OPSKIT_STATE_DIR": str(tmp_path / "state")}
    env.pop("PYTHONPATH", None)
    imported = subprocess.run(
        [python, "-c", "import opskit; print(opskit.__file__)"],
        env=env,
        cwd=tmp_path,  # not the checkout's folder, which python -c puts first on its path
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert Path(imported.stdout.strip()).is_relative_to(venv), imported

    log = tmp_path / "runbooks.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [venv / "bin" / "opskit", "runbooks", "--port", "0", "--no-browser"],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + WAIT
        while not (serving := SERVING.search(log.read_text())) and time.monotonic() < deadline:
            assert process.poll() is None, f"opskit runbooks exited: {log.read_text()[-2000:]}"
            time.sleep(0.2)
        assert serving, log.read_text()[-2000:]
        folder, url, sandbox = serving.groups()
        assert Path(folder).is_relative_to(venv) and sorted(os.listdir(folder)) == sorted(os.listdir(NOTEBOOKS))

        with urllib.request.urlopen(f"{url}voila/render/cleanup.ipynb", timeout=WAIT) as answer:
            page = answer.read().decode()
        outputs = cell_outputs(page)
        assert [output for output in outputs if output["output_type"] == "error"] == []
        shown = [output["data"].get("text/plain", "") for output in outputs if "data" in output]
        assert any(f"the opskit sandbox at {sandbox} (shared" in text for text in shown), shown
        widgets = [output for output in outputs if "application/vnd.jupyter.widget-view+json" in output.get("data", {})]
        assert [output["data"]["text/plain"].split("(", 1)[0] for output in widgets] == ["CleanupPanel"]
    finally:
        stop_runbooks(process, log)

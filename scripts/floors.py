"""Print a pip constraints file that pins every direct dependency of opskit (and its test extra) to its floor.

    python scripts/floors.py > floors.txt && pip install -c floors.txt -e ".[test]"

The floors are the lower bounds in pyproject.toml, so the floors run in CI tests exactly what pyproject promises.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOUND = re.compile(r"^\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(.*)$")


def floors(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """Each direct dependency's name -> the version its lower bound (``>=``) names."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    out: dict[str, str] = {}
    for requirement in requirements:
        match = BOUND.match(requirement.split(";")[0])
        if not match:
            raise SystemExit(f"cannot read the requirement {requirement!r}")
        name, _, spec = match.groups()
        lower = [part.strip()[2:].strip() for part in spec.split(",") if part.strip().startswith(">=")]
        if not lower:
            raise SystemExit(f"{name} has no floor (>=) in pyproject.toml: give it one")
        out[name.lower()] = lower[0]
    return out


if __name__ == "__main__":
    sys.stdout.write("".join(f"{name}=={version}\n" for name, version in sorted(floors().items())))

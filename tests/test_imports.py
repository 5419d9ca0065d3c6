"""Every module of opskit and of the plugin imports with the installed dependencies (the floors run in CI shows it
at the lowest versions pyproject.toml allows)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import opskit
import pytest_ecsrelease

MODULES = sorted(
    name
    for package in (opskit, pytest_ecsrelease)
    for name in [package.__name__]
    + [m.name for m in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}.")]
    if not name.endswith("__main__")
)


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)


def test_the_floors_are_pyprojects_lower_bounds() -> None:
    """scripts/floors.py pins each direct dependency to its floor; one without a floor is refused there."""
    import runpy
    from pathlib import Path

    floors = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "floors.py"))["floors"]()
    assert {"boto3", "moto", "pandas", "pytest"} <= set(floors)
    assert all(version[0].isdigit() for version in floors.values())


def test_the_command_list_says_what_each_command_says_of_itself() -> None:
    """`opskit --help` reads the summaries from the sources (importing no command): the list is the one click makes
    from the imported commands."""
    import click

    from opskit.cli import main

    def listing(format_commands: object) -> str:
        context = click.Context(main)
        formatter = context.make_formatter()
        format_commands(context, formatter)  # type: ignore[operator]
        return formatter.getvalue()

    ours = listing(main.format_commands)
    assert ours.count("\n") > 10
    assert ours == listing(lambda context, formatter: click.Group.format_commands(main, context, formatter))

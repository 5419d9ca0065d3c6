"""The ``opskit`` command: one subcommand per module, each a thin view over opskit's plans and library.

Errors a user can cause (:class:`opskit.errors.OpskitError`) print one line to stderr and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import click

from opskit.errors import OpskitError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except OpskitError as exc:
            click.echo(f"opskit: error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="opskit")
def main() -> None:
    """Immutable releases for Amazon ECS: commit -> image -> revision -> service."""


def _register() -> None:
    from opskit.cli import demo, release, rollback, sandbox

    for module in (sandbox, demo, release, rollback):
        main.add_command(module.command)


_register()

"""The ``opskit`` command: one subcommand per module, each a thin view over opskit's plans and library.

Errors a user can cause (:class:`opskit.errors.OpskitError`, and bad options) print one line to stderr and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from opskit.errors import OpskitError

# Each command lives in its own module, imported only when that command runs: the library's commands pull in
# pandas and matplotlib, which `opskit sandbox` or `opskit release --help` should not pay for.
COMMANDS = {
    "sandbox": "opskit.cli.sandbox",
    "demo": "opskit.cli.demo",
    "release": "opskit.cli.release",
    "rollback": "opskit.cli.rollback",
    "revisions": "opskit.cli.revisions",
    "images": "opskit.cli.images",
    "services": "opskit.cli.services",
    "lineage": "opskit.cli.lineage",
    "runbooks": "opskit.cli.runbooks",
    "cleanup": "opskit.cli.cleanup",
    "check": "opskit.cli.check",
}


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        command: click.Command = importlib.import_module(COMMANDS[name]).command
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except OpskitError as exc:
            click.echo(f"opskit: error: {exc}", err=True)
            sys.exit(2)
        except click.UsageError as exc:
            # A mistyped option is a user error like any other: one line, not click's usage block.
            where = exc.ctx.command_path if exc.ctx else f"{ctx.command_path} {ctx.invoked_subcommand or ''}".strip()
            message = " ".join(exc.format_message().split()).rstrip(".")
            click.echo(f"opskit: error: {message}: see `{where} --help`", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="opskit")
def main() -> None:
    """Immutable releases for Amazon ECS: commit -> image -> revision -> service."""

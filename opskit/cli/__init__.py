"""The ``opskit`` command: one subcommand per module, each a thin view over opskit's plans and library.

Errors a user can cause (:class:`opskit.errors.OpskitError`, and bad options) print one line to stderr and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys

import click

from opskit.errors import OpskitError

# Each command lives in its own module, imported only when that command runs: the library's commands pull in
# pandas and matplotlib, which `opskit sandbox` or `opskit release --help` should not pay for.
COMMANDS = {
    "sandbox": "opskit.cli.sandbox",
    "demo": "opskit.cli.demo",
    "release": "opskit.cli.release",
    "verify": "opskit.cli.verify",
    "init": "opskit.cli.init",
    "diff": "opskit.cli.diff",
    "rollback": "opskit.cli.rollback",
    "continue": "opskit.cli.continue_hook",
    "abort": "opskit.cli.abort",
    "revisions": "opskit.cli.revisions",
    "images": "opskit.cli.images",
    "services": "opskit.cli.services",
    "lineage": "opskit.cli.lineage",
    "drift": "opskit.cli.drift",
    "runbooks": "opskit.cli.runbooks",
    "cleanup": "opskit.cli.cleanup",
    "check": "opskit.cli.check",
}


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list with each command's summary read from its module's source, not by importing it: the
        group's help then costs what click costs, not pandas and matplotlib."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, click.Command(name, help=_docstring(module)).get_short_help_str(limit))
            for name, module in COMMANDS.items()
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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


def _docstring(module: str) -> str:
    """The docstring of ``command`` (the click command's function) in ``module``, from its source."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    with open(spec.origin, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "command":
            return ast.get_docstring(node) or ""
    return ""


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="opskit")
def main() -> None:
    """Immutable releases for Amazon ECS: commit -> image -> revision -> service."""

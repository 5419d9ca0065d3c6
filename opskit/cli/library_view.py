"""What the library's commands share: options, opening and syncing the library with a progress bar, and
printing a table as text, CSV, JSON or Parquet.

Data goes to stdout (or ``--output``); progress, summaries and warnings go to stderr, so
``opskit revisions --format json | jq`` stays clean.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pandas as pd

from opskit.cli.options import aws_options, format_option, make_aws
from opskit.errors import ConfigError
from opskit.library import CacheWarning, RevisionLibrary, SyncReport
from opskit.library.export import export

FORMATS = ("table", "csv", "json", "parquet")


def library_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Where AWS is, how to print, and how to use the cache: shared by revisions, images, services, lineage."""
    for option in reversed(
        (
            format_option(*FORMATS),
            click.option(
                "--output",
                "-o",
                type=click.Path(dir_okay=False, writable=True, path_type=Path),
                help="Write to this file instead of stdout (required for parquet).",
            ),
            click.option(
                "--refresh", is_flag=True, help="Describe every revision again instead of trusting the cache."
            ),
            click.option("--no-sync", is_flag=True, help="Show what the cache holds without calling AWS."),
            click.option(
                "--cache",
                type=click.Path(dir_okay=False, path_type=Path),
                envvar="OPSKIT_CACHE",
                help="Cache file (default: one per account, region and endpoint in the user cache directory).",
            ),
        )
    ):
        command = option(command)
    return aws_options(command)


def check_output(output_format: str, output: Path | None) -> None:
    if output_format == "parquet" and output is None:
        raise ConfigError("--format parquet writes a file: pass --output PATH, such as --output revisions.parquet")


@contextmanager
def opened_library(
    region: str | None, profile: str | None, endpoint_url: str | None, cache: Path | None
) -> Iterator[RevisionLibrary]:
    """The library, with cache warnings printed as one line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CacheWarning)
        library = RevisionLibrary(make_aws(region, profile, endpoint_url), cache_path=cache)
        try:
            yield library
        finally:
            library.close()
            for warning in caught:
                if issubclass(warning.category, CacheWarning):
                    click.echo(f"opskit: warning: {warning.message}", err=True)


def sync(
    library: RevisionLibrary,
    *,
    include: Iterable[str],
    families: Sequence[str] | None = None,
    refresh: bool = False,
) -> SyncReport:
    """Sync with a progress bar on stderr, then one summary line."""
    from opskit.cli.progress import TerminalProgress

    report = library.sync(
        include=list(include), families=families or None, refresh=refresh, report=TerminalProgress(sys.stderr)
    )
    return report


def emit(frame: pd.DataFrame, output_format: str, output: Path | None, table_columns: Sequence[str]) -> None:
    """Print or write ``frame``: every documented column for csv/json/parquet, ``table_columns`` as text."""
    if output_format == "table":
        text = as_text(frame[list(table_columns)]) if len(frame) else "(no rows)"
        if output is None:
            click.echo(text)
        else:
            output.write_text(text + "\n", encoding="utf-8")
        return
    if output is not None:
        export(frame, output, output_format)
        click.echo(f"opskit: wrote {len(frame)} rows to {output}", err=True)
        return
    stream = sys.stdout
    export(frame, stream, output_format)
    if output_format == "json":
        stream.write("\n")


def as_text(frame: pd.DataFrame) -> str:
    shown = frame.copy()
    for name in shown.columns:
        column = shown[name]
        if column.dtype == object:
            shown[name] = [_cell(v) for v in column]
        elif isinstance(column.dtype, pd.DatetimeTZDtype):
            shown[name] = column.dt.strftime("%Y-%m-%d %H:%M").astype(object).where(column.notna(), "-")
    with pd.option_context("display.width", 250, "display.max_columns", 50, "display.max_colwidth", 60):
        return str(shown.to_string(index=False, na_rep="-"))


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ",".join(json.dumps(v) if isinstance(v, dict) else str(v) for v in value) or "-"
    return "-" if value is None else str(value)


def short_arn(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Task-definition ARNs as family:revision, for the text table."""
    out = frame.copy()
    for name in columns:
        out[name] = out[name].str.rsplit("/", n=1).str[-1]
    return out

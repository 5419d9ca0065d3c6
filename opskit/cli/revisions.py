"""``opskit revisions``: every task-definition revision, from the library (synced first, cached on disk)."""

from __future__ import annotations

from pathlib import Path

import click

from opskit.cli.library_view import check_output, emit, library_options, opened_library, sync
from opskit.records import REVISION_STATUSES

TABLE_COLUMNS = ("family", "revision", "status", "registered_at", "commit", "container_count", "cpu", "memory")


@click.command("revisions")
@click.option("--family", "families", multiple=True, help="Only this family (repeat for more).")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(REVISION_STATUSES, case_sensitive=False),
    help="Only revisions in this status (repeat for more).",
)
@library_options
def command(
    families: tuple[str, ...],
    statuses: tuple[str, ...],
    output_format: str,
    output: Path | None,
    refresh: bool,
    no_sync: bool,
    cache: Path | None,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
) -> None:
    """List task-definition revisions of all families and statuses.

    The first run describes every revision (paced to ECS's limits: about 20 per second); later runs list
    and describe only new ones.

        opskit revisions --family web --status ACTIVE --format csv > web.csv
    """
    check_output(output_format, output)
    with opened_library(region, profile, endpoint_url, cache) as library:
        if not no_sync:
            sync(library, include=["revisions"], families=list(families), refresh=refresh)
        frame = library.revisions(family=list(families) or None, status=[s.upper() for s in statuses] or None)
        emit(frame, output_format, output, TABLE_COLUMNS)

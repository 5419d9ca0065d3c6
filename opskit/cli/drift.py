"""``opskit drift``: revisions no release explains (no commit, another principal, managed by IaC), from the library."""

from __future__ import annotations

from pathlib import Path

import click

from opskit.cli.library_view import check_output, emit, library_options, opened_library, sync

TABLE_COLUMNS = ("family", "revision", "status", "registered_by", "commit", "running_in", "reasons")


@click.command("drift")
@click.option("--family", "families", multiple=True, help="Only this family (repeat for more).")
@click.option("--live", is_flag=True, help="Only revisions a service runs now.")
@library_options
def command(
    families: tuple[str, ...],
    live: bool,
    output_format: str,
    output: Path | None,
    refresh: bool,
    no_sync: bool,
    cache: Path | None,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
) -> None:
    """List revisions that no release explains: registered without a commit (by hand, or by a tool that does not
    say which), by another principal than the family's releases, or managed by infrastructure as code.

        opskit drift --live --format json
    """
    check_output(output_format, output)
    with opened_library(region, profile, endpoint_url, cache) as library:
        if not no_sync:
            sync(library, include=["revisions", "services"], families=list(families), refresh=refresh)
        frame = library.drift()
        if families:
            frame = frame[frame["family"].isin(families)]
        if live:
            frame = frame[frame["running_in"].map(bool)]
        emit(frame.reset_index(drop=True), output_format, output, TABLE_COLUMNS)

"""``opskit images``: ECR images, how many revisions refer to each, and whether a service runs it."""

from __future__ import annotations

from pathlib import Path

import click

from opskit.cli.library_view import check_output, emit, library_options, opened_library, sync

TABLE_COLUMNS = ("repository", "tags", "digest", "pushed_at", "size_bytes", "scan_status", "revision_count", "services")


@click.command("images")
@click.option("--repository", "repositories", multiple=True, help="Only this repository (repeat for more).")
@click.option("--unused", is_flag=True, help="Only images no revision refers to.")
@library_options
def command(
    repositories: tuple[str, ...],
    unused: bool,
    output_format: str,
    output: Path | None,
    refresh: bool,
    no_sync: bool,
    cache: Path | None,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
) -> None:
    """List ECR images with the revisions and services that use them.

    opskit images --unused --format json
    """
    check_output(output_format, output)
    with opened_library(region, profile, endpoint_url, cache) as library:
        if not no_sync:
            sync(library, include=["revisions", "images", "services"], refresh=refresh)
        frame = library.images(repository=list(repositories) or None)
        if unused:
            frame = frame[frame["revision_count"] == 0].reset_index(drop=True)
        shown = frame.assign(digest=frame["digest"].str.slice(0, 19))
        if output_format == "table":
            emit(shown, output_format, output, TABLE_COLUMNS)
        else:
            emit(frame, output_format, output, TABLE_COLUMNS)

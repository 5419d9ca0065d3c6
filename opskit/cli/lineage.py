"""``opskit lineage``: commit -> image digest -> revision -> services where it was deployed."""

from __future__ import annotations

from pathlib import Path

import click

from opskit.cli.library_view import check_output, emit, library_options, opened_library, sync

TABLE_COLUMNS = (
    "commit",
    "image_digest",
    "family",
    "revision",
    "revision_status",
    "cluster",
    "service",
    "last_deployed_at",
    "is_current",
    "is_rollback_target",
)


@click.command("lineage")
@click.option("--family", "families", multiple=True, help="Only this family (repeat for more).")
@click.option("--commit", help="Only this commit (a prefix is enough).")
@library_options
def command(
    families: tuple[str, ...],
    commit: str | None,
    output_format: str,
    output: Path | None,
    refresh: bool,
    no_sync: bool,
    cache: Path | None,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
) -> None:
    """Trace each commit to its image, revisions and the services they were deployed to.

    opskit lineage --commit 3f2a9c1
    """
    check_output(output_format, output)
    with opened_library(region, profile, endpoint_url, cache) as library:
        if not no_sync:
            sync(library, include=["revisions", "images", "services"], refresh=refresh)
        frame = library.lineage(family=list(families) or None)
        if commit:
            frame = frame[frame["commit"].str.startswith(commit).fillna(False)].reset_index(drop=True)
        shown = frame.assign(image_digest=frame["image_digest"].str.slice(0, 19)) if output_format == "table" else frame
        emit(shown, output_format, output, TABLE_COLUMNS)

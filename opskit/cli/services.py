"""``opskit services``: services with their current revision, deployments and rollback target."""

from __future__ import annotations

from pathlib import Path

import click

from opskit.cli.library_view import check_output, emit, library_options, opened_library, short_arn, sync

TABLE_COLUMNS = (
    "cluster",
    "service",
    "desired_count",
    "running_count",
    "pending_count",
    "task_definition",
    "rollout_state",
    "circuit_breaker",
    "rollback_target",
)


@click.command("services")
@click.option("--cluster", "clusters", multiple=True, help="Only this cluster (repeat for more).")
@library_options
def command(
    clusters: tuple[str, ...],
    output_format: str,
    output: Path | None,
    refresh: bool,
    no_sync: bool,
    cache: Path | None,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
) -> None:
    """List services: counts, the revision they run, the circuit breaker, and what a rollback goes back to.

    opskit services --cluster prod
    """
    check_output(output_format, output)
    with opened_library(region, profile, endpoint_url, cache) as library:
        if not no_sync:
            sync(library, include=["services"], refresh=refresh)
        frame = library.services(cluster=list(clusters) or None)
        if output_format == "table":
            frame = short_arn(frame, "task_definition", "rollback_target")
        emit(frame, output_format, output, TABLE_COLUMNS)

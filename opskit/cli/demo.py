"""``opskit demo``: start the embedded sandbox with the demo history and show its revision library."""

from __future__ import annotations

import click
import pandas as pd


@click.command("demo")
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="How much faster than AWS the sandbox runs.",
)
def command(time_scale: float) -> None:
    """Seed a sandbox with six months of releases and print the revision library it holds."""
    from opskit.library import RevisionLibrary
    from opskit.sandbox import Sandbox

    with Sandbox(seed="demo", time_scale=time_scale) as sandbox:
        for notice in sandbox.notices:
            click.echo(f"opskit demo: {notice}", err=True)
        # A throwaway sandbox: its library lives in memory, paced to the sandbox's compressed time.
        library = RevisionLibrary(sandbox.aws(), cache_path=":memory:", rate_scale=time_scale)
        library.sync()
        revisions = library.revisions()
        summary = (
            revisions.groupby(["family", "status"], observed=True)
            .agg(
                revisions=("revision", "count"),
                newest=("revision", "max"),
                last_registered=("registered_at", "max"),
            )
            .reset_index()
        )
        click.echo(f"Revision library of the demo sandbox ({len(revisions)} revisions):\n")
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            click.echo(summary.to_string(index=False))
            click.echo("\nNewest revisions:\n")
            newest = revisions.sort_values("registered_at", ascending=False).head(10)
            click.echo(newest[["family", "revision", "status", "registered_at", "commit"]].to_string(index=False))

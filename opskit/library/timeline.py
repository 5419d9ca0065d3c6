"""The release timeline: revisions registered per family and deployments per service over time, rollbacks marked.

Drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot state, safe in threads and notebooks alike: a
notebook shows the returned figure; ``figure.savefig("timeline.png")`` writes it).

>>> figure = library.timeline()                               # doctest: +SKIP
>>> figure.savefig("timeline.png")                            # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

COLOURS = {"COMPLETED": "#2a9d55", "IN_PROGRESS": "#e9a23b", "FAILED": "#c8553d"}


def timeline_figure(
    revisions: pd.DataFrame,
    deployments: pd.DataFrame,
    *,
    since: Any = None,
    title: str = "Releases",
    width: float = 12.0,
) -> Figure:
    """One lane per family (a tick per revision registered) and per service (a dot per deployment, coloured by its
    rollout state); a rollback is a red cross on the deployment it undid, labelled with that revision."""
    if since is not None:
        moment = pd.Timestamp(since, tz="UTC") if pd.Timestamp(since).tzinfo is None else pd.Timestamp(since)
        revisions = revisions[revisions["registered_at"] >= moment]
        deployments = deployments[deployments["created_at"] >= moment]
    families = sorted(revisions["family"].dropna().unique())
    services = sorted({f"{c}/{s}" for c, s in zip(deployments["cluster"], deployments["service"], strict=True)})
    lanes = [f"family {f}" for f in families] + [f"service {s}" for s in services]
    figure = Figure(figsize=(width, max(2.5, 0.55 * len(lanes) + 1.5)), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title)
    if not lanes:
        axes.text(0.5, 0.5, "nothing synced yet", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return figure
    position = {lane: i for i, lane in enumerate(lanes)}
    for family in families:
        moments = revisions.loc[revisions["family"] == family, "registered_at"].dropna()
        axes.scatter(moments, [position[f"family {family}"]] * len(moments), marker="|", s=120, color="#5b6b7a")
    where = deployments["cluster"].astype(str) + "/" + deployments["service"].astype(str)
    for lane in services:
        mine = deployments[where == lane]
        y = position[f"service {lane}"]
        for state, colour in COLOURS.items():
            part = mine[mine["rollout_state"] == state]
            axes.scatter(part["created_at"], [y] * len(part), s=36, color=colour, zorder=3)
        undone = mine[mine["rolled_back"].fillna(False).astype(bool)]
        for _, row in undone.iterrows():
            moment = row["finished_at"] if pd.notna(row["finished_at"]) else row["created_at"]
            axes.scatter([moment], [y], marker="X", s=140, color="#b00020", zorder=4)
            label = f"rollback from :{row['revision']}" if pd.notna(row["revision"]) else "rollback"
            axes.annotate(label, (moment, y), xytext=(4, 8), textcoords="offset points", fontsize=8, color="#b00020")
    axes.set_yticks(range(len(lanes)), lanes)
    axes.set_ylim(-0.7, len(lanes) - 0.3)
    axes.invert_yaxis()
    axes.grid(axis="x", alpha=0.3)
    axes.legend(
        handles=[
            Line2D([], [], marker="|", linestyle="", color="#5b6b7a", markersize=10, label="revision registered"),
            *(
                Line2D([], [], marker="o", linestyle="", color=c, label=f"deployment {s.lower().replace('_', ' ')}")
                for s, c in COLOURS.items()
            ),
            Line2D([], [], marker="X", linestyle="", color="#b00020", markersize=9, label="rolled back"),
        ],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        frameon=False,
    )
    figure.autofmt_xdate()
    return figure


__all__ = ["timeline_figure"]

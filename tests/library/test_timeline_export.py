"""The release timeline figure, and the tables exported to CSV, JSON and Parquet with their columns and types."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from opskit.library import TABLES, RevisionLibrary, columns, export
from opskit.sandbox.demo import DEMO


def test_the_timeline_has_a_lane_per_family_and_service_and_marks_the_rollback(demo_library: RevisionLibrary) -> None:
    figure = demo_library.timeline()
    assert isinstance(figure, Figure)
    (axes,) = figure.axes
    lanes = [label.get_text() for label in axes.get_yticklabels()]
    names = sorted(s.name for s in DEMO.services)
    assert lanes == [f"family {n}" for n in names] + [f"service demo/{n}" for n in names]
    # One mark per rolled-back release: web's (the circuit breaker), checkout's (the alarm), search's (the hook).
    assert sorted(text.get_text() for text in axes.texts) == sorted(
        f"rollback from :{s.rolled_back_release}" for s in DEMO.services if s.rolled_back_release
    )
    png = io.BytesIO()
    figure.savefig(png, format="png")
    assert png.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_timeline_of_an_empty_library_says_so(tmp_path: Path, demo_library: RevisionLibrary) -> None:
    empty = RevisionLibrary(demo_library.aws, cache_path=":memory:", account_id="000000000000")
    (axes,) = empty.timeline().axes
    assert [t.get_text() for t in axes.texts] == ["nothing synced yet"]


@pytest.mark.parametrize("table", sorted(TABLES))
def test_exports_keep_the_documented_columns(demo_library: RevisionLibrary, table: str, tmp_path: Path) -> None:
    frame = demo_library.table(table)
    names = [c.name for c in TABLES[table]]
    for fmt in ("csv", "json", "parquet"):
        target = tmp_path / f"{table}.{fmt}"
        demo_library.export(table, target)
        if fmt == "csv":
            back = pd.read_csv(target)
        elif fmt == "json":
            back = pd.DataFrame(json.loads(target.read_text()))
        else:
            back = pd.read_parquet(target)
        assert list(back.columns) == names, fmt
        assert len(back) == len(frame), fmt
    parquet = pd.read_parquet(tmp_path / f"{table}.parquet")
    for column in TABLES[table]:
        if column.dtype in ("string", "Int64", "boolean", "category"):
            # The documented dtype, both ways (a string column may come back with another storage backend).
            assert parquet[column.name].dtype == column.dtype == frame[column.name].dtype, column.name
        if column.dtype == "datetime":
            assert str(parquet[column.name].dtype) == "datetime64[us, UTC]"


def test_json_and_csv_write_lists_maps_and_timestamps_readably(demo_library: RevisionLibrary) -> None:
    text = io.StringIO()
    export(demo_library.revisions(family="web"), text, "json")
    first = json.loads(text.getvalue())[0]
    assert first["tags"] == {"commit": first["commit"]}
    assert first["registered_at"].endswith("Z") and first["deregistered_at"].endswith("Z")
    assert isinstance(first["revision"], int) and first["delete_requested_at"] is None
    text = io.StringIO()
    export(demo_library.containers(family="web"), text, "csv")
    row = pd.read_csv(io.StringIO(text.getvalue())).iloc[0]
    assert json.loads(row["environment_names"]) == ["LOG_LEVEL", "RELEASE"]


def test_columns_are_documented() -> None:
    for table in TABLES:
        frame = columns(table)
        assert list(frame.columns) == ["name", "dtype", "meaning"]
        assert frame["meaning"].str.len().min() > 5

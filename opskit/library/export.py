"""Writing the library's frames to CSV, JSON and Parquet with their documented columns.

- JSON: a list of row objects; timestamps in ISO 8601 (UTC), missing values as null, lists and maps as JSON.
- CSV: one header line of column names; lists, maps and records as JSON text; missing values empty.
- Parquet: the frame's own types (timestamps with their time zone, categories as dictionaries); maps as
  ``map<string, string>``.

>>> export(library.revisions(), "revisions.parquet")          # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import IO, Any

import pandas as pd

FORMATS = ("csv", "json", "parquet")


def format_of(path: str | Path) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the format of {path}: name it .csv, .json or .parquet, or pass format=")
    return suffix


def _nested(frame: pd.DataFrame) -> list[str]:
    return [
        name
        for name in frame.columns
        if frame[name].dtype == object and any(isinstance(v, (list, dict)) for v in frame[name].head(1000))
    ]


def to_json_text(frame: pd.DataFrame) -> str:
    text = frame.to_json(orient="records", date_format="iso", date_unit="us", force_ascii=False)
    return str(text or "[]")


def to_csv_text(frame: pd.DataFrame) -> str:
    flat = frame.copy()
    for name in _nested(frame):
        flat[name] = [None if v is None else json.dumps(v, separators=(",", ":")) for v in frame[name]]
    return str(flat.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ"))


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    """Parquet with pandas' metadata, so ``pd.read_parquet`` gives back the same dtypes (maps come back as lists
    of (key, value) pairs, as pyarrow reads every map)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = frame.copy()
    maps = [
        name
        for name in _nested(frame)
        if all(
            isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())
            for v in frame[name]
            if v is not None
        )
    ]
    for name in maps:
        flat[name] = [None if v is None else list(v.items()) for v in frame[name]]
    schema = pa.Schema.from_pandas(flat, preserve_index=False)
    for name in maps:
        schema = schema.set(schema.get_field_index(name), pa.field(name, pa.map_(pa.string(), pa.string())))
    table = pa.Table.from_pandas(flat, schema=schema, preserve_index=False)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def export(frame: pd.DataFrame, target: str | Path | IO[Any], format: str | None = None) -> None:
    """Write ``frame`` to ``target`` (a path, or an open file: text for csv/json, binary for parquet)."""
    if format is None:
        if not isinstance(target, (str, Path)):
            raise ValueError("pass format= when writing to an open file")
        format = format_of(target)
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    data: str | bytes
    if format == "json":
        data = to_json_text(frame)
    elif format == "csv":
        data = to_csv_text(frame)
    else:
        data = to_parquet_bytes(frame)
    if isinstance(target, (str, Path)):
        if isinstance(data, bytes):
            Path(target).write_bytes(data)
        else:
            Path(target).write_text(data, encoding="utf-8")
    else:
        target.write(data)


__all__ = ["FORMATS", "export", "format_of", "to_csv_text", "to_json_text", "to_parquet_bytes"]

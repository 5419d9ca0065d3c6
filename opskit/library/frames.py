"""Building the library's DataFrames from the cache, one place per table (columns: :mod:`.columns`).

Revisions and containers are one SELECT each, converted column by column (no per-row Python beyond the cursor);
list and map columns are JSON text in SQL, decoded with a single ``json.loads`` over the whole column. Images,
services, deployments and lineage are small SELECTs joined in pandas.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from opskit.library.columns import (
    CONTAINERS,
    DEPLOYMENTS,
    IMAGES,
    LINEAGE,
    REVISIONS,
    SERVICES,
    STRING,
    Column,
)
from opskit.library.rows import SERVICE_FIELDS
from opskit.library.store import Store

_TASK_DEFINITION = r"task-definition/(?P<family>[^:/]+):(?P<revision>\d+)$"


# -- typing raw columns -------------------------------------------------------------------------------------------
def _json_column(values: Sequence[Any]) -> list[Any]:
    """Decode a column of JSON texts in one call (100,000 small documents: one parse, not 100,000)."""
    if not values:
        return []
    return list(json.loads("[" + ",".join(v if v is not None else "null" for v in values) + "]"))


def _typed(column: Column, values: Sequence[Any]) -> Any:
    if column.dtype == "string":
        return pd.array(values, dtype=STRING)
    if column.dtype == "Int64":
        return pd.array(values, dtype="Int64")
    if column.dtype == "boolean":
        return pd.array(values, dtype="boolean")
    if column.dtype == "datetime":
        return pd.to_datetime(pd.array(values, dtype="Int64"), unit="us", utc=True)
    if column.dtype == "category":
        extra = sorted({v for v in values if v is not None} - set(column.categories))  # new AWS values kept
        return pd.Categorical(values, categories=[*column.categories, *extra])
    if column.dtype in ("list", "map", "records"):
        return _json_column(values)
    raise ValueError(f"unknown dtype {column.dtype!r}")


def typed_frame(spec: Sequence[Column], rows: Sequence[Sequence[Any]] | dict[str, Sequence[Any]]) -> pd.DataFrame:
    """A frame with exactly ``spec``'s columns and dtypes, from rows (in spec order) or from columns by name."""
    if isinstance(rows, dict):
        data = rows
    else:
        transposed = list(zip(*rows, strict=True)) if rows else [() for _ in spec]
        data = {c.name: transposed[i] for i, c in enumerate(spec)}
    return pd.DataFrame({c.name: _typed(c, list(data[c.name])) for c in spec}, columns=[c.name for c in spec])


_SEP, _NULL = "\x1f", "\x00"  # never inside ARNs, names, image references or JSON text (which escapes them)


def _fetch_columns(
    store: Store, spec: Sequence[Column], expressions: Sequence[str], rest: str, params: Sequence[Any]
) -> dict[str, Any]:
    """The columns of ``SELECT expressions rest`` typed per ``spec``, fetched as one text per column.

    One row out of SQLite instead of one Python tuple per row: each column arrives as a single ``group_concat``
    text, split by pyarrow (strings, numbers, times) or parsed by one ``json.loads`` (lists, maps). All the
    aggregates read the same rows in one pass, so the columns stay aligned row for row.
    """
    inner = ", ".join(f"{expression} AS c{i}" for i, expression in enumerate(expressions))
    outer = []
    for i, column in enumerate(spec):
        if column.dtype in ("list", "map", "records"):
            outer.append(f"'[' || group_concat(ifnull(c{i}, 'null'), ',') || ']'")
        else:
            outer.append(f"group_concat(ifnull(CAST(c{i} AS TEXT), char(0)), char(31))")
    (row,) = store.query(f"SELECT count(*), {', '.join(outer)} FROM (SELECT {inner} {rest})", params)
    count, texts = row[0], row[1:]
    return {column.name: _column_of(column, text, count) for column, text in zip(spec, texts, strict=True)}


def _column_of(column: Column, text: str | None, count: int) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.dtype in ("list", "map", "records"):
        return json.loads(text or "[]") if count else []
    raw = pc.split_pattern(pa.array([text or ""]), _SEP).flatten() if count else pa.array([], pa.string())
    values = pc.if_else(pc.equal(raw, _NULL), pa.scalar(None, pa.string()), raw)
    if column.dtype == "string":
        return pd.arrays.ArrowStringArray(values)
    if column.dtype == "category":
        return _typed(column, pd.arrays.ArrowStringArray(values).to_numpy(na_value=None))
    numbers = pc.cast(values, pa.int64())
    if column.dtype == "Int64":
        return pd.array(numbers.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get))
    if column.dtype == "boolean":
        return pd.array(pc.cast(numbers, pa.bool_()).to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get))
    if column.dtype == "datetime":
        return pd.DatetimeIndex(numbers.cast(pa.timestamp("us", tz="UTC")).to_pandas())
    raise ValueError(f"unknown dtype {column.dtype!r}")


def _where(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for column, value in filters.items():
        if value is None:
            continue
        values = [value] if isinstance(value, str) else list(value)
        clauses.append(f"{column} IN ({','.join('?' * len(values))})")
        params.extend(values)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


# -- the tables -----------------------------------------------------------------------------------------------------
def revisions(store: Store, family: Any = None, status: Any = None) -> pd.DataFrame:
    where, params = _where({"family": family, "status": status})
    expressions = [c.name if c.name != "commit" else "commit_sha" for c in REVISIONS]
    data = _fetch_columns(store, REVISIONS, expressions, f"FROM revisions{where} ORDER BY family, revision", params)
    return pd.DataFrame(data, columns=[c.name for c in REVISIONS])


def containers(store: Store, family: Any = None, status: Any = None) -> pd.DataFrame:
    where, params = _where({"family": family, "status": status})
    expressions = [c.name for c in CONTAINERS]
    rest = f"FROM containers{where} ORDER BY family, revision, position"
    data = _fetch_columns(store, CONTAINERS, expressions, rest, params)
    return pd.DataFrame(data, columns=expressions)


def services(store: Store, cluster: Any = None) -> pd.DataFrame:
    where, params = _where({"cluster": cluster})
    names = SERVICE_FIELDS  # the store's columns, every one of them, in its order
    rows = store.query(f"SELECT {', '.join(names)} FROM services{where} ORDER BY cluster, service", params)
    data: dict[str, Any] = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    family, revision = _split_task_definitions(data["task_definition"])
    current = _json_column(data["deployments"])
    data.update(
        family=family,
        revision=revision,
        deployments=[json.dumps(c) for c in current],
        rollout_state=[c[0]["rollout_state"] if c else None for c in current],
    )
    return typed_frame(SERVICES, data)


def deployments(store: Store, cluster: Any = None, service: Any = None) -> pd.DataFrame:
    where, params = _where({"cluster": cluster, "service": service})
    rows = store.query(
        "SELECT cluster, service, deployment, task_definition, status, rollout_state, rolled_back, created_at,"
        f" finished_at, source FROM deployments{where} ORDER BY cluster, service, created_at, deployment",
        params,
    )
    names = [
        "cluster",
        "service",
        "deployment",
        "task_definition",
        "status",
        "rollout_state",
        "rolled_back",
        "created_at",
        "finished_at",
        "source",
    ]
    data: dict[str, Any] = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    data["family"], data["revision"] = _split_task_definitions(data["task_definition"])
    return typed_frame(DEPLOYMENTS, data)


def images(store: Store, repository: Any = None) -> pd.DataFrame:
    where, params = _where({"i.repository": repository})
    rows = store.query(
        "SELECT i.repository, i.registry_id, p.uri, i.digest, i.tags, i.pushed_at, i.size_bytes, i.scan_status,"
        " i.scan_completed_at, i.media_type, i.last_pulled_at"
        f" FROM images i LEFT JOIN repositories p ON p.name = i.repository{where}"
        " ORDER BY i.repository, i.pushed_at, i.digest",
        params,
    )
    base = typed_frame(IMAGES[:11], rows)
    references = _image_references(store)
    counts = references.groupby(["repository", "digest"]).arn.nunique().rename("revision_count")
    running = _running_task_definitions(store)
    in_service = references.merge(running, left_on="arn", right_on="task_definition")
    users = in_service.groupby(["repository", "digest"]).where_.agg(lambda s: sorted(set(s))).rename("services")
    frame = base.join(counts, on=["repository", "digest"]).join(users, on=["repository", "digest"])
    frame["revision_count"] = frame["revision_count"].fillna(0).astype("Int64")
    frame["services"] = [v if isinstance(v, list) else [] for v in frame["services"]]
    frame["in_service"] = pd.array([bool(v) for v in frame["services"]], dtype="boolean")
    frame = frame[[c.name for c in IMAGES]].copy()
    frame["repository"] = frame["repository"].astype(STRING)
    frame["digest"] = frame["digest"].astype(STRING)
    return frame


def lineage(store: Store, family: Any = None) -> pd.DataFrame:
    """commit -> image -> revision -> services: one row per (revision container, service it was deployed to)."""
    parts = containers(store, family=family)
    revs = revisions(store, family=family)[["arn", "registered_at", "commit"]]
    frame = parts.merge(revs, on="arn", how="left")
    frame["commit"] = frame["commit_sha"].fillna(frame["commit"])
    digests = _resolved_digests(store)
    frame = frame.merge(digests, on=["arn", "name"], how="left")
    frame["image_digest"] = frame["digest"].fillna(frame["resolved_digest"])

    history = deployments(store)
    placed = (
        history.dropna(subset=["task_definition"])
        .assign(done=lambda d: d["rollout_state"] == "COMPLETED")
        .groupby(["task_definition", "cluster", "service"], observed=True)
        .agg(
            first_deployed_at=("created_at", "min"),
            last_deployed_at=("created_at", "max"),
            deployment_count=("deployment", "count"),
            completed=("done", "any"),
        )
        .reset_index()
    )
    now = services(store)[["cluster", "service", "task_definition", "rollback_target"]]
    current = now.rename(columns={"task_definition": "current"})
    # Services running a revision the history does not show (older than the history) still count as deployed there.
    missing = current.merge(
        placed,
        left_on=["current", "cluster", "service"],
        right_on=["task_definition", "cluster", "service"],
        how="left",
        indicator=True,
    )
    missing = missing[missing["_merge"] == "left_only"]
    extra = pd.DataFrame(
        {
            "task_definition": missing["current"].astype(STRING),
            "cluster": missing["cluster"],
            "service": missing["service"],
            "deployment_count": pd.array([0] * len(missing), dtype="Int64"),
        }
    )
    placed = pd.concat([placed, extra], ignore_index=True) if len(extra) else placed
    frame = frame.merge(placed, left_on="arn", right_on="task_definition", how="left")
    frame = frame.merge(current, on=["cluster", "service"], how="left")
    frame["is_current"] = pd.array((frame["current"] == frame["arn"]).fillna(False), dtype="boolean")
    frame["is_rollback_target"] = pd.array((frame["rollback_target"] == frame["arn"]).fillna(False), dtype="boolean")
    frame["task_definition"] = frame["arn"]
    frame["revision_status"] = frame["status"]
    frame["container"] = frame["name"]
    frame["deployment_count"] = frame["deployment_count"].fillna(0).astype("Int64")
    frame["completed"] = pd.array(frame["completed"].fillna(False).astype(bool), dtype="boolean")
    out = frame[[c.name for c in LINEAGE]].copy()
    for column in LINEAGE:
        if column.dtype == "string":
            out[column.name] = out[column.name].astype(STRING)
        elif column.dtype == "datetime":
            out[column.name] = pd.to_datetime(out[column.name], utc=True)
    return out.sort_values(["family", "revision", "container", "cluster", "service"], ignore_index=True)


# -- joins ----------------------------------------------------------------------------------------------------------
def _split_task_definitions(arns: Sequence[str | None]) -> tuple[list[Any], list[Any]]:
    parts = pd.Series(pd.array(list(arns), dtype=STRING)).str.extract(_TASK_DEFINITION)
    revision = pd.to_numeric(parts["revision"], errors="coerce").astype("Int64")
    return list(parts["family"]), list(revision)


def _container_refs(store: Store) -> pd.DataFrame:
    """(arn, name, uri, tag, digest) of every container; an untagged reference means the tag latest."""
    rows = store.query("SELECT arn, name, registry || '/' || repository, tag, digest, untagged FROM containers")
    refs = pd.DataFrame(rows, columns=["arn", "name", "uri", "tag", "digest", "untagged"])
    refs.loc[refs["untagged"] == 1, "tag"] = "latest"
    return refs.drop(columns="untagged")


def _image_index(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ECR's images by (uri, tag) and by (uri, digest), each with the repository name and digest."""
    rows = store.query(
        "SELECT p.uri, i.repository, i.digest, i.tags FROM images i JOIN repositories p ON p.name = i.repository"
    )
    by_digest = pd.DataFrame([r[:3] for r in rows], columns=["uri", "repository", "digest"])
    tagged = [
        (uri, repo, digest, tag)
        for (uri, repo, digest, _), tags in zip(rows, _json_column([r[3] for r in rows]), strict=True)
        for tag in tags
    ]
    by_tag = pd.DataFrame(tagged, columns=["uri", "repository", "digest", "tag"])
    return by_tag, by_digest


def _image_references(store: Store) -> pd.DataFrame:
    """(repository, digest, arn) for every revision container that refers to an ECR image, by tag or digest."""
    refs = _container_refs(store)
    by_tag, by_digest = _image_index(store)
    tag_refs = refs[refs["digest"].isna()].drop(columns="digest").merge(by_tag, on=["uri", "tag"])
    digest_refs = refs[refs["digest"].notna()].merge(by_digest, on=["uri", "digest"])
    columns = ["repository", "digest", "arn"]
    return pd.concat([tag_refs[columns], digest_refs[columns]], ignore_index=True).drop_duplicates()


def _resolved_digests(store: Store) -> pd.DataFrame:
    """(arn, name, resolved_digest): what each container's tag points at in ECR now."""
    refs = _container_refs(store)
    by_tag, _ = _image_index(store)
    found = refs[refs["digest"].isna()].merge(by_tag, on=["uri", "tag"], suffixes=("_ref", ""))
    found = found.rename(columns={"digest": "resolved_digest"})[["arn", "name", "resolved_digest"]]
    return found.astype({"arn": STRING, "name": STRING, "resolved_digest": STRING}).drop_duplicates(
        subset=["arn", "name"]
    )


def _running_task_definitions(store: Store) -> pd.DataFrame:
    """(task_definition, where_) for each current deployment of each service ("cluster/service")."""
    rows = store.query("SELECT cluster, service, deployments FROM services")
    pairs = [
        (deployment["task_definition"], f"{cluster}/{service}")
        for cluster, service, current in rows
        for deployment in json.loads(current or "[]")
        if deployment.get("task_definition")
    ]
    return pd.DataFrame(pairs, columns=["task_definition", "where_"])


__all__ = ["containers", "deployments", "images", "lineage", "revisions", "services", "typed_frame"]

"""The cache file: one per account, region and endpoint; a corrupt or foreign one is rebuilt with a warning."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from opskit.library import CacheIdentity, CacheWarning, RevisionLibrary
from opskit.library.store import Store
from opskit.sandbox import Sandbox

from .seeding import library_of, register


def seed(sandbox: Sandbox, family: str, n: int) -> None:
    ecs = sandbox.client("ecs")
    with sandbox.throttle.suspended():
        for i in range(n):
            register(ecs, family, f"127.0.0.1:1/{family}:{i:07x}")
    sandbox.reset_calls()


def test_the_default_cache_is_keyed_on_account_region_and_endpoint(sandbox: Sandbox, cache_dir: Path) -> None:
    library = library_of(sandbox, cache_dir)
    path = Path(library.cache_path)
    assert path.parent == cache_dir
    assert path.name.startswith(f"{sandbox.account_id}-{sandbox.region_name}-endpoint-")
    with Sandbox(seed=None, time_scale=60, docker=False, registry=False) as other:
        assert Path(library_of(other, cache_dir).cache_path) != path  # another endpoint (and account)
    aws = CacheIdentity("123456789012", "us-east-1", "").file_name
    assert aws == "123456789012-us-east-1-aws.sqlite"
    assert CacheIdentity("123456789012", "eu-west-1", "").file_name != aws


def test_the_cache_is_readable_by_its_owner_only(sandbox: Sandbox, tmp_path: Path) -> None:
    """It keeps revision bodies unmasked, environment values included."""
    seed(sandbox, "web", 3)
    folder = tmp_path / "fresh" / "cache"
    library = library_of(sandbox, folder)
    library.sync(include=["revisions"])
    files = [Path(library.cache_path), *Path(library.cache_path).parent.glob("*-wal")]
    assert files and all(f.stat().st_mode & 0o777 == 0o600 for f in files), [oct(f.stat().st_mode) for f in files]
    assert folder.stat().st_mode & 0o777 == 0o700


def test_the_cache_directory_comes_from_the_environment(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSKIT_CACHE_DIR", str(tmp_path / "env-cache"))
    library = RevisionLibrary(sandbox.aws())
    assert Path(library.cache_path).parent == tmp_path / "env-cache"


def test_a_corrupt_cache_file_is_rebuilt_with_a_warning(sandbox: Sandbox, cache_dir: Path) -> None:
    seed(sandbox, "web", 12)
    library = library_of(sandbox, cache_dir)
    library.sync(include=["revisions"])
    path = Path(library.cache_path)
    library.close()
    path.write_bytes(b"this is not what opskit wrote" * 100)
    sandbox.reset_calls()

    with pytest.warns(CacheWarning, match="not a readable SQLite database"):
        again = library_of(sandbox, cache_dir)
        again.sync(include=["revisions"])
    assert sandbox.calls["DescribeTaskDefinition"] == 12  # nothing trusted: everything described again
    assert len(again.revisions()) == 12


def test_a_cache_damaged_inside_is_rebuilt_when_found_in_use(sandbox: Sandbox, cache_dir: Path) -> None:
    seed(sandbox, "web", 300)
    library = library_of(sandbox, cache_dir)
    library.sync(include=["revisions"])
    path = Path(library.cache_path)
    library.close()
    with sqlite3.connect(path) as conn:  # fold the WAL in so the damage below hits the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(page * 3, len(data) - page, page * 2):  # scribble over every other page past the schema
        data[offset : offset + 256] = b"\xff" * 256
    path.write_bytes(bytes(data))

    with pytest.warns(CacheWarning):
        again = library_of(sandbox, cache_dir)
        again.sync(include=["revisions"])
    assert len(again.revisions()) == 300


def test_a_cache_of_another_endpoint_is_not_trusted(sandbox: Sandbox, tmp_path: Path) -> None:
    shared = tmp_path / "shared.sqlite"
    seed(sandbox, "mine", 3)
    library_of(sandbox, tmp_path, cache_path=shared).sync(include=["revisions"])
    with Sandbox(seed=None, time_scale=60, docker=False, registry=False) as other:
        seed(other, "theirs", 2)
        with pytest.warns(CacheWarning, match="belongs to"):
            theirs = library_of(other, tmp_path, cache_path=shared)
            theirs.sync(include=["revisions"])
        assert set(theirs.revisions()["family"]) == {"theirs"}


@pytest.mark.parametrize(
    "change", [{"region": "eu-west-1"}, {"account": "210987654321"}, {"endpoint": "https://ecs.example"}]
)
def test_a_cache_of_another_account_region_or_endpoint_is_rebuilt(
    sandbox: Sandbox, tmp_path: Path, change: dict[str, str]
) -> None:
    path = tmp_path / "cache.sqlite"
    mine = CacheIdentity(sandbox.account_id, sandbox.region_name, sandbox.endpoint_url)
    foreign = CacheIdentity(**{**mine.__dict__, **change})
    Store(path, foreign).close()
    with pytest.warns(CacheWarning, match=f"belongs to {next(iter(change))}"):
        library_of(sandbox, tmp_path, cache_path=path).revisions()


def test_a_cache_with_other_tables_is_rebuilt(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE revisions (arn TEXT)")
    with pytest.warns(CacheWarning, match="tables"):
        frame = library_of(sandbox, tmp_path, cache_path=path).revisions()
    assert frame.empty


def test_an_in_memory_cache_keeps_nothing_on_disk(sandbox: Sandbox, tmp_path: Path) -> None:
    seed(sandbox, "web", 3)
    library = library_of(sandbox, tmp_path, cache_path=":memory:")
    library.sync(include=["revisions"])
    assert len(library.revisions()) == 3
    assert list(tmp_path.iterdir()) == []

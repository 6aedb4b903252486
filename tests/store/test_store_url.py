"""How a ``--store`` value becomes a store: a filesystem path means the SQLite file at that path,
a URL is a URL; and ``create=False`` opens only a store that exists."""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from allele.errors import StoreError
from allele.store import open_store
from allele.store import schema as S
from allele.store.engine import parse_store_url


@pytest.mark.parametrize(("text", "database"), [
    (".allele/results.db", ".allele/results.db"),
    ("results.db", "results.db"),
    ("/abs/dir/results.db", "/abs/dir/results.db"),
    ("a dir/what?#x.db", "a dir/what?#x.db"),  # no query, no fragment: a file name
    ("C:\\store\\r.db", "C:\\store\\r.db"),      # a drive letter is not a scheme
    ("./sqlite:odd.db", "./sqlite:odd.db"),
])
def test_a_path_is_a_sqlite_file(text: str, database: str) -> None:
    url = parse_store_url(text)
    assert url.get_backend_name() == "sqlite" and url.database == database
    assert dict(url.query) == {}


@pytest.mark.parametrize(("text", "backend", "database"), [
    ("sqlite:///rel/r.db", "sqlite", "rel/r.db"),
    ("sqlite:////abs/r.db", "sqlite", "/abs/r.db"),
    ("sqlite://", "sqlite", None),
    ("postgresql+psycopg://u:p@host:5432/db", "postgresql", "db"),
])
def test_urls_stay_urls(text: str, backend: str, database: str | None) -> None:
    url = parse_store_url(text)
    assert url.get_backend_name() == backend and url.database == database


@pytest.mark.parametrize(("text", "message"), [
    ("", "invalid store URL ''"),
    ("sqlite:relative.db", "invalid store URL 'sqlite:relative.db'"),
    ("postgresql+psycopg://u@h:notaport/db", "invalid store URL"),
])
def test_what_is_neither_is_one_error(text: str, message: str) -> None:
    with pytest.raises(StoreError, match=message.replace("+", r"\+")):
        parse_store_url(text)


def test_a_relative_path_opens_the_file_under_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store(".allele/results.db") as st:
        assert st.url == "sqlite:///.allele/results.db"
        run_id = st.create_run("first", "spec", "t", {}, {})
    assert (tmp_path / ".allele" / "results.db").is_file()
    # the same file by the default URL, by its absolute path, and read-only
    for ref in ("sqlite:///.allele/results.db", str(tmp_path / ".allele" / "results.db")):
        with open_store(ref, read_only=True) as st:
            assert [r.id for r in st.list_runs(10)] == [run_id]
    odd = tmp_path / "a dir" / "what?#x.db"
    with open_store(str(odd)) as st:
        assert st.url.startswith("sqlite:///")
        reopened = pickle.loads(pickle.dumps(st))  # travels to workers as its URL
        try:
            assert reopened.url == st.url and reopened.list_runs(1) == []
        finally:
            reopened.close()
    assert odd.is_file() and sorted(p.name for p in odd.parent.iterdir())[0] == "what?#x.db"


def test_create_false_opens_only_an_existing_store(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "x.db"
    for ref in (str(missing), f"sqlite:///{missing}"):
        with pytest.raises(StoreError, match=f"no result store at {missing}: the file does not "
                                             "exist"):
            open_store(ref, create=False)
    assert not (tmp_path / "nope").exists()

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(StoreError, match="is not an Allele result store"):
        open_store(str(empty), create=False)
    with sqlite3.connect(empty) as con:  # no tables were made
        assert con.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)

    db = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:  # a store as an older Allele left it (schema version 2)
        S.schema_version.create(conn)
        for migration in S.MIGRATIONS[:2]:
            migration(conn)
        conn.execute(S.schema_version.insert().values(version=2))
    engine.dispose()
    with open_store(str(db), create=False) as st:  # existing: migrated and writable
        assert st.schema_version() == S.LATEST_VERSION
        st.create_run("w", "spec", "t", {}, {})
        again = pickle.loads(pickle.dumps(st))
        try:
            assert again.create is False
        finally:
            again.close()

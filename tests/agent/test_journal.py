"""The durable desired state: whole records after any crash (a real kill -9), and files
that are not ours, damaged, read-only or on a full disk refused with one clear line."""

from __future__ import annotations

import inspect
import json
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

import pyoffload
from pyoffload.agent.journal import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    Journal,
    JournalError,
    VnicRecord,
)


def entity_count(name: str, generation: int) -> int:
    """How many entities the crash test's child commits for a VNIC at a generation."""
    return 2000 + (generation * 7919 + len(name) * 131) % 6000


def record(name: str, generation: int, count: int = 3, size: int = 0) -> VnicRecord:
    """A record whose every part encodes its name and generation."""
    return VnicRecord(
        name=name,
        generation=generation,
        request=f"{name}:{generation}".encode(),
        entities=tuple(f"{name}:{generation}:{i}".encode().ljust(size, b".")
                       for i in range(count)),
        resources=json.dumps({"generation": generation}),
        updated=1_700_000_000.0 + generation,
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal.open(tmp_path / "state.db") as opened:
        yield opened


def test_commit_load_forget(journal: Journal) -> None:
    assert journal.load() == {}
    web, db = record("web-1", 1), record("db", 4, count=0)
    journal.commit(web)
    journal.commit(db)
    assert journal.load() == {"web-1": web, "db": db}
    journal.forget("web-1")
    journal.forget("never-there")
    assert journal.load() == {"db": db}


def test_commit_replaces_the_entities_wholly(journal: Journal) -> None:
    journal.commit(record("web-1", 1, count=10))
    journal.commit(record("web-1", 2, count=3))
    assert journal.load()["web-1"] == record("web-1", 2, count=3)
    journal.commit(record("web-1", 3, count=0))
    assert journal.load()["web-1"].entities == ()


def test_connections_round_trip(journal: Journal) -> None:
    assert journal.load_connections("web-1") == ([], None)
    rows = [bytes([i % 256]) * 60 for i in range(1000)]
    journal.save_connections("web-1", rows, 12.5)
    journal.save_connections("db", [b"\x00"], 13.0)
    assert journal.load_connections("web-1") == (rows, 12.5)
    journal.save_connections("web-1", rows[:2], 14.0)
    assert journal.load_connections("web-1") == (rows[:2], 14.0)
    journal.save_connections("web-1", [], 15.0)
    assert journal.load_connections("web-1") == ([], 15.0)
    journal.commit(record("db", 1))
    journal.forget("db")
    assert journal.load_connections("db") == ([], None)


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Journal.open(path) as journal:
        journal.commit(record("web-1", 7, count=500, size=100))
        journal.save_connections("web-1", [b"a", b"b"], 3.0)
    with Journal.open(path) as journal:
        assert journal.load() == {"web-1": record("web-1", 7, count=500, size=100)}
        assert journal.load_connections("web-1") == ([b"a", b"b"], 3.0)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_creates_a_private_directory_and_file(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "pyoffload" / "state.db"
    with Journal.open(path) as journal:
        journal.commit(record("web-1", 1))
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(Path(f"{path}-wal").stat().st_mode) == 0o600


def test_an_empty_existing_file_is_initialised(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.touch()
    with Journal.open(path) as journal:
        journal.commit(record("web-1", 1))
    with Journal.open(path) as journal:
        assert list(journal.load()) == ["web-1"]


def test_openers_racing_on_a_new_file_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    opened: list[Journal] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def open_it() -> None:
        start.wait()
        try:
            opened.append(Journal.open(path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == [] and len(opened) == 6
        opened[0].commit(record("web-1", 1))
        assert opened[5].load() == {"web-1": record("web-1", 1)}
    finally:
        for journal in opened:
            journal.close()


def test_a_closed_journal_says_so(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "state.db")
    journal.close()
    journal.close()
    with pytest.raises(JournalError, match=r"state\.db is not open \(it was closed\)"):
        journal.load()


def test_threads_share_one_journal(journal: Journal) -> None:
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            for generation in range(1, 21):
                journal.commit(record(name, generation, count=200))
                journal.save_connections(name, [name.encode()] * generation, generation)
                assert journal.load()[name].generation == generation
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"vnic-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert journal.load() == {f"vnic-{i}": record(f"vnic-{i}", 20, count=200) for i in range(4)}
    assert journal.load_connections("vnic-2") == ([b"vnic-2"] * 20, 20.0)


CHILD = inspect.getsource(entity_count) + """
import json, sys, time
from pathlib import Path
from pyoffload.agent.journal import Journal, VnicRecord

journal = Journal.open(Path(sys.argv[1]))
generation = max((r.generation for r in journal.load().values()), default=0)
print("ready", flush=True)
while True:
    generation += 1
    for name in ("web-1", "web-2", "db"):
        journal.commit(VnicRecord(
            name=name, generation=generation, request=f"{name}:{generation}".encode(),
            entities=tuple(f"{name}:{generation}:{i}".encode()
                           for i in range(entity_count(name, generation))),
            resources=json.dumps({"generation": generation}), updated=time.time()))
        print(name, generation, flush=True)
    journal.save_connections("web-1", [f"{generation}:{i}".encode() for i in range(3000)],
                             float(generation))
    print("connections", generation, flush=True)
"""


def test_a_kill_9_at_any_moment_leaves_whole_records(tmp_path: Path) -> None:
    seed = int(os.environ.get("JOURNAL_CRASH_SEED", random.randrange(2**32)))
    print(f"crash test seed: {seed} (rerun with JOURNAL_CRASH_SEED={seed})")
    rng = random.Random(seed)
    path = tmp_path / "state.db"
    env = {**os.environ, "PYTHONPATH": str(Path(pyoffload.__file__).parents[1])}
    durable: dict[str, int] = {}  # per VNIC (and "connections"): generation known committed
    for round_ in range(20):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert child.stdout is not None
        ready = child.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.4))  # the random moment of the kill
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=30)
        assert ready == b"ready\n" and child.returncode == -signal.SIGKILL, err.decode()
        for line in out.decode().splitlines():
            name, generation = line.split()
            durable[name] = max(durable.get(name, 0), int(generation))
        newest = max(durable.values(), default=0) + 1  # at most one commit was in flight
        with Journal.open(path) as journal:
            records = journal.load()
            rows, taken = journal.load_connections("web-1")
        where = f"seed {seed}, round {round_}"
        for name, committed in durable.items():
            if name != "connections":
                assert committed <= records[name].generation <= newest, where
        for name, found in records.items():
            assert found.request == f"{name}:{found.generation}".encode(), where
            assert json.loads(found.resources) == {"generation": found.generation}, where
            assert found.entities == tuple(
                f"{name}:{found.generation}:{i}".encode()
                for i in range(entity_count(name, found.generation))), where
            durable[name] = found.generation
        if taken is not None:
            assert durable.get("connections", 0) <= taken <= newest, where
            assert rows == [f"{taken:.0f}:{i}".encode() for i in range(3000)], where
            durable["connections"] = int(taken)
        else:
            assert "connections" not in durable and rows == [], where
    assert durable.get("db", 0) > 0, f"seed {seed}: the child never committed"


def garbage(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(8192))


def foreign_tables(path: Path) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("CREATE TABLE people (name TEXT, age INTEGER)")
        db.execute("INSERT INTO people VALUES ('ada', 36)")


def foreign_id(path: Path) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA application_id = 305419896")
        db.execute("CREATE TABLE vnics (name TEXT)")


def newer(path: Path) -> None:
    Journal.open(path).close()
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA user_version = 99")


def damaged(path: Path) -> None:
    with Journal.open(path) as journal:
        journal.commit(record("web-1", 1, count=2000, size=100))
    with path.open("r+b") as file:
        file.seek(4096 * 4)
        file.write(random.Random(8).randbytes(4096 * 8))


@pytest.mark.parametrize(("make", "message"), [
    (garbage, "is not a pyoffload state file (not an SQLite database); move it away or point "
              "state.path elsewhere"),
    (foreign_tables, "is not a pyoffload state file (application id 0x00000000, tables "
                     "people); move it away"),
    (foreign_id, "is not a pyoffload state file (application id 0x12345678); move it away"),
    (newer, "was written by a newer pyoffload (schema version 99, this one knows "
            f"{SCHEMA_VERSION}); upgrade pyoffload"),
    (damaged, "is damaged ("),
])
def test_files_not_ours_are_refused_untouched(tmp_path: Path, make: Callable[[Path], None],
                                               message: str) -> None:
    path = tmp_path / "state.db"
    make(path)
    before = path.read_bytes()
    with pytest.raises(JournalError) as info:
        Journal.open(path)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text
    assert path.read_bytes() == before
    with pytest.raises(JournalError):  # refused again: nothing was "repaired"
        Journal.open(path)


@contextmanager
def mounted(directory: Path, *arguments: str) -> Iterator[None]:
    """``mount ARGUMENTS DIRECTORY`` for the block, unmounted after; root only."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount (and as root, permission bits do not make a file "
                    "read-only)")
    result = subprocess.run(["mount", *arguments, str(directory)], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here: {result.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(directory)], check=True)


@pytest.mark.parametrize("read_only", ["directory", "file"])
def test_a_read_only_state_file_is_refused_and_kept(tmp_path: Path, read_only: str) -> None:
    directory = tmp_path / "state"
    path = directory / "state.db"
    kept = record("web-1", 1, count=100)
    with Journal.open(path) as journal:
        journal.commit(kept)
    before = path.read_bytes()
    target = directory if read_only == "directory" else path
    with mounted(target, "--bind", str(target)):
        subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], check=True)
        with pytest.raises(JournalError) as info:  # at start, not at the first apply
            Journal.open(path).close()
    text = str(info.value)
    assert text.startswith(f"cannot write the state file {path}: it is read-only (")
    assert "make it and its directory writable" in text and "\n" not in text
    assert path.read_bytes() == before
    with Journal.open(path) as journal:
        assert journal.load() == {"web-1": kept}


def test_a_full_disk_refuses_commits_and_keeps_the_record(tmp_path: Path) -> None:
    directory = tmp_path / "small"
    directory.mkdir()
    with mounted(directory, "-t", "tmpfs", "-o", "size=1m", "tmpfs"):
        path = directory / "state.db"
        other = record("db", 1, count=50)
        with Journal.open(path) as journal:
            journal.commit(other)
            kept: VnicRecord | None = None
            for generation, count in enumerate((500, 1000, 2000, 4000, 8000, 16000, 32000)):
                try:
                    journal.commit(record("web-1", generation, count=count, size=100))
                except JournalError as exc:
                    failure = str(exc)
                    break
                kept = record("web-1", generation, count=count, size=100)
            else:
                pytest.fail("32,000 entities fit in a 1 MiB file system")
            assert kept is not None
            assert f"cannot write the state file {path}: database or disk is full" in failure
            assert "\n" not in failure
            assert journal.load() == {"db": other, "web-1": kept}
        with Journal.open(path) as journal:
            assert journal.load() == {"db": other, "web-1": kept}


SCHEMA_1 = (
    "CREATE TABLE vnics (name TEXT PRIMARY KEY, generation INTEGER NOT NULL,"
    " request BLOB NOT NULL, resources TEXT NOT NULL, updated REAL NOT NULL)",
    "CREATE TABLE entities (vnic TEXT NOT NULL, seq INTEGER NOT NULL, entity BLOB NOT NULL,"
    " PRIMARY KEY (vnic, seq)) WITHOUT ROWID",
    "CREATE TABLE checkpoints (vnic TEXT PRIMARY KEY, taken REAL NOT NULL)",
    "CREATE TABLE connections (vnic TEXT NOT NULL, seq INTEGER NOT NULL, row BLOB NOT NULL,"
    " PRIMARY KEY (vnic, seq)) WITHOUT ROWID",
)
"""The state file as the first release of the journal wrote it (an upgrade meets it)."""


def test_an_older_state_file_is_brought_up_to_date(tmp_path: Path) -> None:
    """An upgrade keeps the desired state and the connection checkpoint of the file the
    previous version wrote (its rows keyed anew, each read at the checkpoint's time)."""
    path = tmp_path / "state.db"
    row = json.dumps(["out", 5_000_000, 6, 1, 2, 1234, 80, 3, 0, 0, 0, 0,
                      None, None, None, None, None]).encode()
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute("PRAGMA user_version = 1")
        for statement in SCHEMA_1:
            db.execute(statement)
        db.execute("INSERT INTO vnics VALUES ('web-1', 4, x'0a00', '{}', 1.0)")
        db.execute("INSERT INTO checkpoints VALUES ('web-1', 42.0)")
        db.execute("INSERT INTO connections VALUES ('web-1', 0, ?)", (row,))
        db.execute("INSERT INTO connections VALUES ('web-1', 1, x'6e6f74206a736f6e')")
        db.commit()
    with Journal.open(path) as journal:
        assert journal.load()["web-1"].generation == 4
        assert [(r, read) for _key, r, read in journal.read_connections("web-1")] == \
            [(row, 42.0)]  # the unreadable row is not carried over
        journal.update_connections("web-1", [(b"k", b"r")], [], 43.0)
    with Journal.open(path) as journal:  # and opens as the current version after
        assert len(journal.read_connections("web-1")) == 2

"""The agent's durable desired state: what each VNIC should have installed.

The agent journals every accepted apply or withdraw here before acknowledging it, so a
restarted agent (after ``kill -9``, SIGTERM or an upgrade) knows every VNIC's desired
state and reconciles the target to it instead of starting empty; the target's tables
are a cache of this journal, never the other way round. The connection checkpoint
(conntrackd's job) lives beside it, so connections survive a target restart.

One SQLite file per host, in WAL mode with ``synchronous=FULL``: a ``commit`` that
returned survives a power cut, and each write is one transaction, so after a crash a
VNIC has either its previous record or its new one, whole.

Our files are marked with ``PRAGMA application_id`` = ``APPLICATION_ID`` (0x50794F66,
"PyOf" in ASCII) and ``PRAGMA user_version`` = ``SCHEMA_VERSION``. A file that is not
ours, is newer than this code or is damaged is refused with a ``JournalError`` and left
exactly as it is: it may be someone's data, or the evidence of what went wrong.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import attrs

from pyoffload.errors import PyoffloadError
from pyoffload.pipeline.constants import Tuple5

APPLICATION_ID = 0x50794F66
"""``PRAGMA application_id`` of our state files: "PyOf" in ASCII."""
SCHEMA_VERSION = 2
"""``PRAGMA user_version`` this code writes; it refuses files of a newer one."""
BUSY_SECONDS = 10.0
"""How long a statement waits for another process's lock before failing."""
WAL_LIMIT = 16 * 1024 * 1024
"""Bytes the write-ahead log is truncated back to after a checkpoint (big commits grow it)."""

_SCHEMA = (
    "CREATE TABLE vnics (name TEXT PRIMARY KEY, generation INTEGER NOT NULL,"
    " request BLOB NOT NULL, resources TEXT NOT NULL, updated REAL NOT NULL)",
    "CREATE TABLE entities (vnic TEXT NOT NULL, seq INTEGER NOT NULL, entity BLOB NOT NULL,"
    " PRIMARY KEY (vnic, seq)) WITHOUT ROWID",
    "CREATE TABLE checkpoints (vnic TEXT PRIMARY KEY, taken REAL NOT NULL)",
    "CREATE TABLE connections (vnic TEXT NOT NULL, key BLOB NOT NULL, row BLOB NOT NULL,"
    " read REAL NOT NULL, PRIMARY KEY (vnic, key)) WITHOUT ROWID",
)
_TABLES = frozenset({"vnics", "entities", "checkpoints", "connections"})
_ELSEWHERE = "move it away or point state.path elsewhere"


class JournalError(PyoffloadError):
    """The state file cannot be used; the message names the file and what to do."""


@attrs.frozen(kw_only=True)
class VnicRecord:
    """One VNIC's committed desired state: enough to reinstall it without its guest."""

    name: str
    """VNIC name."""
    generation: int
    """The generation in force."""
    request: bytes
    """The guest's request as it sent it (serialized protobuf; opaque here)."""
    entities: tuple[bytes, ...]
    """What is installed for it: serialized ``p4.v1.Entity`` messages in install order
    (opaque here)."""
    resources: str
    """JSON text: the resource-pool numbers the VNIC holds (opaque here)."""
    updated: float
    """``time.time()`` of the commit."""


class Journal:
    """The state file, open: every method is one transaction, safe from several threads."""

    path: Path
    """The state file."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        """Use ``Journal.open``: it checks and prepares the file."""
        self.path = path
        self._connection: sqlite3.Connection | None = connection
        self._closed_because = "it was closed"
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Open the state file, creating it (and its directory) when missing."""
        path = Path(path)
        try:
            _create(path)
        except OSError as exc:
            raise JournalError(
                f"cannot create the state file {path}: {exc.strerror}; "
                "make its directory writable or point state.path elsewhere"
            ) from exc
        try:
            connection = sqlite3.connect(
                path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise _error(path, "open", exc) from exc
        deadline = time.monotonic() + BUSY_SECONDS
        while True:
            try:
                _prepare(connection, path)
                break
            except sqlite3.OperationalError as exc:
                # Switching a new file to WAL takes its lock without waiting: another
                # opener setting it up at the same moment makes this one retry.
                if "locked" in str(exc) and time.monotonic() < deadline:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    time.sleep(0.02)
                    continue
                connection.close()
                raise _error(path, "open", exc) from exc
            except sqlite3.Error as exc:
                connection.close()
                raise _error(path, "open", exc) from exc
            except BaseException:
                connection.close()
                raise
        return cls(path, connection)

    def load(self) -> dict[str, VnicRecord]:
        """Every VNIC's committed record, by name."""
        with self._transaction("read", "BEGIN") as db:
            heads = db.execute(
                "SELECT name, generation, request, resources, updated FROM vnics"
            ).fetchall()
            entities: dict[str, list[bytes]] = {row[0]: [] for row in heads}
            for vnic, entity in db.execute("SELECT vnic, entity FROM entities ORDER BY vnic, seq"):
                if vnic not in entities:
                    raise JournalError(
                        f"{self.path} is damaged: entities of VNIC {vnic!r} without its "
                        f"record; {_ELSEWHERE} (keep it for inspection)"
                    )
                entities[vnic].append(entity)
        return {
            name: VnicRecord(name=name, generation=generation, request=request,
                             entities=tuple(entities[name]), resources=resources,
                             updated=updated)
            for name, generation, request, resources, updated in heads
        }

    def commit(self, record: VnicRecord) -> None:
        """Replace the VNIC's record and entities as one; durable when it returns."""
        with self._transaction("write", "BEGIN IMMEDIATE") as db:
            db.execute(
                "INSERT INTO vnics (name, generation, request, resources, updated)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " generation = excluded.generation, request = excluded.request,"
                " resources = excluded.resources, updated = excluded.updated",
                (record.name, record.generation, record.request, record.resources,
                 record.updated),
            )
            db.execute("DELETE FROM entities WHERE vnic = ?", (record.name,))
            db.executemany(
                "INSERT INTO entities (vnic, seq, entity) VALUES (?, ?, ?)",
                ((record.name, seq, entity) for seq, entity in enumerate(record.entities)),
            )

    def forget(self, name: str) -> None:
        """Remove the VNIC's record and its connection checkpoint (stale once it is gone)."""
        with self._transaction("write", "BEGIN IMMEDIATE") as db:
            for table, column in (("vnics", "name"), ("entities", "vnic"),
                                  ("checkpoints", "vnic"), ("connections", "vnic")):
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))

    def save_connections(self, vnic: str, rows: Sequence[bytes], taken: float) -> None:
        """Replace the VNIC's connection checkpoint as one, every row read at ``taken``
        (its time.time()); the rows are kept in this order."""
        with self._transaction("write", "BEGIN IMMEDIATE") as db:
            db.execute("DELETE FROM connections WHERE vnic = ?", (vnic,))
            self._put_connections(db, vnic, ((seq.to_bytes(8, "big"), row)
                                             for seq, row in enumerate(rows)), (), taken)

    def update_connections(self, vnic: str, upserts: Iterable[tuple[bytes, bytes]],
                           deletes: Iterable[bytes], taken: float) -> None:
        """Change the VNIC's checkpoint as one: ``upserts`` (key, row) read at ``taken``
        are put in, the rows of the keys ``deletes`` taken out; the others stay as they
        were (each with the time it was read), so a checkpoint writes what changed only."""
        with self._transaction("write", "BEGIN IMMEDIATE") as db:
            self._put_connections(db, vnic, upserts, deletes, taken)

    @staticmethod
    def _put_connections(db: sqlite3.Connection, vnic: str,
                         upserts: Iterable[tuple[bytes, bytes]], deletes: Iterable[bytes],
                         taken: float) -> None:
        db.execute(
            "INSERT INTO checkpoints (vnic, taken) VALUES (?, ?)"
            " ON CONFLICT (vnic) DO UPDATE SET taken = excluded.taken",
            (vnic, taken),
        )
        db.executemany("DELETE FROM connections WHERE vnic = ? AND key = ?",
                       ((vnic, key) for key in deletes))
        db.executemany(
            "INSERT INTO connections (vnic, key, row, read) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (vnic, key) DO UPDATE SET row = excluded.row, read = excluded.read",
            ((vnic, key, row, taken) for key, row in upserts),
        )

    def load_connections(self, vnic: str) -> tuple[list[bytes], float | None]:
        """The VNIC's checkpointed rows and when it was last taken (None: never)."""
        with self._transaction("read", "BEGIN") as db:
            found = db.execute("SELECT taken FROM checkpoints WHERE vnic = ?", (vnic,)).fetchone()
            rows = [row for (row,) in db.execute(
                "SELECT row FROM connections WHERE vnic = ? ORDER BY key", (vnic,))]
        return rows, (None if found is None else found[0])

    def read_connections(self, vnic: str) -> list[tuple[bytes, bytes, float]]:
        """The VNIC's checkpoint as (key, row, time the row was read)."""
        with self._transaction("read", "BEGIN") as db:
            return [(key, row, read) for key, row, read in db.execute(
                "SELECT key, row, read FROM connections WHERE vnic = ? ORDER BY key", (vnic,))]

    def close(self) -> None:
        """Close the file; later calls raise ``JournalError``. Closing twice is harmless."""
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                try:
                    connection.close()
                except sqlite3.Error as exc:
                    raise _error(self.path, "close", exc) from exc

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    @contextmanager
    def _transaction(self, action: str, begin: str) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock; any failure rolls it back whole."""
        with self._lock:
            db = self._connection
            if db is None:
                raise JournalError(
                    f"the state file {self.path} is not open ({self._closed_because})"
                )
            try:
                db.execute(begin)
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                self._roll_back(db, exc)
                if isinstance(exc, sqlite3.Error):
                    raise _error(self.path, action, exc) from exc
                raise

    def _roll_back(self, db: sqlite3.Connection, exc: BaseException) -> None:
        """Undo a failed transaction; if even that fails, close so nothing half-done stays."""
        if not db.in_transaction:
            return
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error as failed:
            exc.add_note(f"the rollback failed too ({failed}); the journal was closed")
            self._connection = None
            self._closed_because = f"closed after a failed rollback: {failed}; reopen it"
            db.close()


def _create(path: Path) -> None:
    """The directory (0o700) and an empty file (0o600) when missing; never truncates."""
    if not path.parent.is_dir():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.chmod(0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
        os.fsync(fd)
    finally:
        os.close(fd)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _connections_by_key(db: sqlite3.Connection) -> None:
    """Schema 1 -> 2: checkpoint rows keyed by their connection's tuple, each with the time
    it was read (the checkpoint's time, the only one schema 1 kept)."""
    taken = dict(db.execute("SELECT vnic, taken FROM checkpoints"))
    rows = db.execute("SELECT vnic, row FROM connections").fetchall()
    db.execute("DROP TABLE connections")
    db.execute(_SCHEMA[3])
    moved = []
    for vnic, row in rows:
        try:
            fields = json.loads(row)
            key = Tuple5(protocol=fields[2], lo_addr=fields[3], hi_addr=fields[4],
                         lo_port=fields[5], hi_port=fields[6]).packed()
        except (ValueError, TypeError, IndexError, OverflowError, AttributeError):
            continue  # a row no pyoffload could restore: not carried over
        moved.append((vnic, key, row, taken.get(vnic, 0.0)))
    db.executemany("INSERT OR REPLACE INTO connections (vnic, key, row, read) "
                   "VALUES (?, ?, ?, ?)", moved)


_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _connections_by_key}
"""Schema version -> what brings a file of that version to SCHEMA_VERSION."""


def _prepare(db: sqlite3.Connection, path: Path) -> None:
    """Check the file is ours and sound (reading only), then set it up for durable writes."""
    db.execute("BEGIN")  # one snapshot: another opener may be initialising the file
    try:
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
    finally:
        if db.in_transaction:
            db.execute("COMMIT")
    fresh = application_id in (0, APPLICATION_ID) and version == 0 and not tables
    if not fresh:
        if application_id != APPLICATION_ID:
            what = f"application id {application_id:#010x}"
            if application_id == 0:
                what += f", tables {', '.join(sorted(tables))}"
            raise JournalError(f"{path} is not a pyoffload state file ({what}); {_ELSEWHERE}")
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{path} was written by a newer pyoffload (schema version {version}, this one "
                f"knows {SCHEMA_VERSION}); upgrade pyoffload or point state.path elsewhere"
            )
        if version not in (SCHEMA_VERSION, *_MIGRATIONS) or not tables >= _TABLES:
            missing = ", ".join(sorted(_TABLES - tables)) or "none"
            raise JournalError(
                f"{path} is damaged (schema version {version}, missing tables: {missing}); "
                f"{_ELSEWHERE} (keep it for inspection)"
            )
    problems = [row[0] for row in db.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise JournalError(
            f"{path} is damaged ({_one_line(problems[0])}); {_ELSEWHERE} (keep it for inspection)"
        )
    # A file we cannot write fails here, not at the first apply: a write, rolled back
    # (in WAL mode even a read-only file lets BEGIN IMMEDIATE through).
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(f"PRAGMA user_version = {version}")
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise JournalError(f"cannot use write-ahead logging on {path} (journal mode {mode}); "
                           "point state.path at a local file system")
    db.execute("PRAGMA synchronous = FULL")
    db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")
    if version in _MIGRATIONS:  # an older pyoffload's file: brought up to date, as one
        db.execute("BEGIN IMMEDIATE")
        try:
            now = db.execute("PRAGMA user_version").fetchone()[0]
            if now in _MIGRATIONS:  # (unless another opener just did it)
                _MIGRATIONS[now](db)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    if fresh:  # unless another process initialised it in the meantime
        db.execute("BEGIN IMMEDIATE")
        try:
            if not db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                for statement in _SCHEMA:
                    db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


def _error(path: Path, action: str, exc: sqlite3.Error) -> JournalError:
    """SQLite's failure in terms of the state file and what the operator can do about it."""
    code = getattr(exc, "sqlite_errorcode", -1) & 0xFF
    detail = _one_line(str(exc))
    if code == sqlite3.SQLITE_FULL:
        return JournalError(f"cannot write the state file {path}: {detail}; free space on its "
                            "file system (the previous state is kept)")
    if code == sqlite3.SQLITE_READONLY or (
            code in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR) and _read_only(path)):
        return JournalError(f"cannot write the state file {path}: it is read-only ({detail}); "
                            "make it and its directory writable (the previous state is kept)")
    if code == sqlite3.SQLITE_NOTADB:
        return JournalError(f"{path} is not a pyoffload state file (not an SQLite database); "
                            f"{_ELSEWHERE}")
    if code == sqlite3.SQLITE_CORRUPT:
        return JournalError(f"{path} is damaged ({detail}); {_ELSEWHERE} (keep it for "
                            "inspection)")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return JournalError(f"cannot {action} the state file {path}: {detail} by another "
                            "process; stop the other agent using it")
    if code == sqlite3.SQLITE_CANTOPEN:
        return JournalError(f"cannot open the state file {path}: {detail}; check that it and "
                            "its directory are readable and writable by the agent")
    return JournalError(f"cannot {action} the state file {path}: {detail}")


def _read_only(path: Path) -> bool:
    """Whether the file or its directory refuses writing (access(2) honours read-only mounts,
    even for root)."""
    return not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK))


def _one_line(text: str) -> str:
    return " ".join(text.split())

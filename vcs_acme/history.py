"""The history: every renewal attempt, check and deployment, in an embedded database.

By default the database is SQLite at ``<state_dir>/history.sqlite3`` (mode 0600, like every
other private file of the state folder). The schema uses only portable column types and the
queries are plain SQLAlchemy Core, so the same class works against PostgreSQL when given a
``postgresql+psycopg://`` URL instead of a path.

Tables::

    attempts         one row per attempt (see ``Entry`` for the columns)
    schema_version   exactly one row (id 1) naming the schema the file was written with, so
                     a later migration knows where to start

The daemon records from worker threads while a manual ``vcs-acme renew`` may write to the same
file from another process. Every call takes a pooled connection for one short transaction;
SQLite runs in WAL mode with a busy timeout, so one writer waits for the other instead of
failing with "database is locked".

What is stored is what the caller passes. The ``reason`` is the one-line message of an error
(``str()`` of a ``VcsAcmeError``), which by the project's rules never carries a password, an
EAB key or key material; callers must not put anything else there. Failures of the database
itself are raised as ``StoreError``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from vcs_acme.errors import StoreError
from vcs_acme.store import PRIVATE_MODE, private_folder

logger = logging.getLogger(__name__)

FILE_NAME = "history.sqlite3"

#: Bumped by every change to the tables; ``schema_version`` holds the value of the writer.
SCHEMA_VERSION = 1

#: How long a SQLite writer waits for another one before giving up, in milliseconds. Writes
#: are a single short INSERT, so waiting this long means something is stuck.
BUSY_TIMEOUT_MS = 10_000

#: ``create_all`` checks for a table, then creates it; two processes opening a new file at
#: once can both see it missing. The loser fails once and finds the tables on the next try.
CREATE_TRIES = 3

Kind = Literal["renewal", "deploy", "check"]
KINDS: tuple[str, ...] = get_args(Kind)

#: Outcomes known today; the column is open so that new ones need no migration.
OUTCOMES = ("renewed", "not-due", "failed", "verified", "pending-restart", "refused")


class UtcDateTime(sa.TypeDecorator[dt.datetime]):
    """An aware datetime stored as UTC, returned aware in UTC by every backend.

    SQLite keeps no offset (it returns naive values); PostgreSQL returns the session's zone.
    Converting on the way in and out gives callers the same values from both.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("history times must be timezone-aware")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


metadata = sa.MetaData()

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=False),
    sa.Column("certificate", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("device", sa.String(255), nullable=True),
    sa.Column("outcome", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("duration_seconds", sa.Float, nullable=False),
    sa.Column("attempt_number", sa.Integer, nullable=False),
    sa.Column("transient", sa.Boolean, nullable=True),
    sa.Column("next_try", UtcDateTime, nullable=True),
    # Serves both ``last()`` and ``entries(certificate)``, newest first.
    sa.Index("attempts_by_certificate", "certificate", "kind", "started_at"),
    sa.Index("attempts_by_time", "started_at"),
)

schema_version = sa.Table(
    "schema_version",
    metadata,
    # Always 1: the primary key is what keeps two racing openers from adding a second row.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Entry:
    """One attempt as recorded: a renewal, a check of a device, or a deployment to one.

    ``id`` is ``None`` until the entry has been recorded; ``History.record`` ignores it.
    ``duration_seconds`` is measured by the caller (a monotonic clock, not the difference of
    the two wall-clock times). ``transient`` and ``next_try`` describe a failure: whether
    trying again can help and when the next try is planned.
    """

    certificate: str
    kind: Kind
    outcome: str
    started_at: dt.datetime
    finished_at: dt.datetime
    duration_seconds: float
    reason: str = ""
    device: str | None = None
    version: int | None = None
    attempt_number: int = 1
    transient: bool | None = None
    next_try: dt.datetime | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"history kind must be one of {', '.join(KINDS)}: {self.kind!r}")
        for name in ("started_at", "finished_at", "next_try"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"history {name} must be timezone-aware")


class History:
    """The history database; safe to share between threads, and between processes on SQLite.

    ``url_or_path`` is a ``Path`` (or a string without ``://``) naming a SQLite file, or a
    SQLAlchemy URL string such as ``postgresql+psycopg://user@host/vcs_acme``. The tables are
    created when missing. An in-memory SQLite database is refused: each pooled connection
    would see a database of its own.
    """

    def __init__(self, url_or_path: str | Path) -> None:
        url = database_url(url_or_path)
        self.where = url.render_as_string(hide_password=True)
        self._closed = False
        if url.get_backend_name() == "sqlite":
            private_database_file(Path(str(url.database)))
        self._engine = make_engine(url)
        try:
            self._create_tables()
            self._stamp_schema_version()
        except BaseException:
            self._engine.dispose()
            raise
        logger.debug("history open at %s", self.where)

    @classmethod
    def open(cls, state_dir: Path) -> History:
        """The history of a state folder: ``<state_dir>/history.sqlite3``."""
        private_folder(state_dir)
        return cls(state_dir / FILE_NAME)

    def __repr__(self) -> str:
        return f"History({self.where!r})"

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def record(self, entry: Entry) -> int:
        """Store ``entry`` and return the id it was given."""
        values = dataclasses.asdict(entry)
        del values["id"]
        with self._transaction("record to") as connection:
            result = connection.execute(sa.insert(attempts).values(**values))
            key = result.inserted_primary_key
        if key is None:  # only for statements that are not a plain single-row INSERT
            raise StoreError(f"cannot record to history {self.where}: no id was returned")
        number = int(key[0])
        logger.debug(
            "history: %s %s of %s recorded as %d",
            entry.kind,
            entry.outcome,
            entry.certificate,
            number,
        )
        return number

    def entries(self, certificate: str | None = None, limit: int = 50) -> list[Entry]:
        """The newest ``limit`` entries, newest first; only those of ``certificate`` if given."""
        if limit < 1:
            raise ValueError(f"history limit must be at least 1: {limit}")
        query = newest_first(sa.select(attempts)).limit(limit)
        if certificate is not None:
            query = query.where(attempts.c.certificate == certificate)
        with self._transaction("read") as connection:
            return [row_entry(row) for row in connection.execute(query)]

    def last(self, certificate: str, kind: Kind = "renewal") -> Entry | None:
        """The newest entry of ``kind`` for ``certificate``, or ``None`` if there is none."""
        query = newest_first(sa.select(attempts)).limit(1)
        query = query.where(attempts.c.certificate == certificate, attempts.c.kind == kind)
        with self._transaction("read") as connection:
            row = connection.execute(query).first()
        return None if row is None else row_entry(row)

    def close(self) -> None:
        """Close every pooled connection; the object cannot be used afterwards."""
        self._closed = True
        self._engine.dispose()

    @contextlib.contextmanager
    def _transaction(self, action: str) -> Iterator[Connection]:
        """One transaction on a pooled connection; database errors become ``StoreError``."""
        if self._closed:
            raise StoreError(f"cannot {action} history {self.where}: it is closed")
        try:
            with self._engine.begin() as connection:
                yield connection
        except SQLAlchemyError as error:
            raise StoreError(f"cannot {action} history {self.where}: {describe(error)}") from None

    def _create_tables(self) -> None:
        for attempt in range(1, CREATE_TRIES + 1):
            try:
                with self._engine.begin() as connection:
                    metadata.create_all(connection)
                return
            except SQLAlchemyError as error:
                if attempt == CREATE_TRIES:
                    raise StoreError(
                        f"cannot create history {self.where}: {describe(error)}"
                    ) from None
                logger.debug("history tables created concurrently, checking again: %s", error)

    def _stamp_schema_version(self) -> None:
        found = self._schema_version()
        if found is None:
            found = self._insert_schema_version()
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"history {self.where} has schema version {found}, newer than this vcs-acme "
                f"understands ({SCHEMA_VERSION}); upgrade vcs-acme"
            )

    def _schema_version(self) -> int | None:
        query = sa.select(schema_version.c.version).where(schema_version.c.id == 1)
        with self._transaction("read") as connection:
            found = connection.execute(query).scalar_one_or_none()
        return None if found is None else int(found)

    def _insert_schema_version(self) -> int:
        try:
            with self._engine.begin() as connection:
                connection.execute(sa.insert(schema_version).values(id=1, version=SCHEMA_VERSION))
        except IntegrityError:
            # Another opener stamped the file between our read and our insert.
            pass
        except SQLAlchemyError as error:
            raise StoreError(f"cannot create history {self.where}: {describe(error)}") from None
        found = self._schema_version()
        assert found is not None, "the schema_version row exists once inserted"
        return found


def database_url(url_or_path: str | Path) -> URL:
    if isinstance(url_or_path, str) and "://" in url_or_path:
        url = sa.make_url(url_or_path)
    else:
        url = URL.create("sqlite", database=str(Path(url_or_path)))
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ValueError("history needs a SQLite file or a database server, not memory")
    return url


def make_engine(url: URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)

    # Pooled connections move between the daemon's threads; each is used by one at a time.
    engine = sa.create_engine(url, connect_args={"check_same_thread": False})
    sa.event.listen(engine, "connect", tune_sqlite)
    return engine


def tune_sqlite(connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
    """Let a second writer (thread or process) wait its turn; let readers go on meanwhile."""
    cursor = connection.cursor()
    try:
        # The timeout first: switching a new file to WAL needs a lock another opener may hold.
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def private_database_file(path: Path) -> None:
    """Create the SQLite file 0600 before SQLite does, and tighten a looser existing one.

    SQLite gives its ``-wal`` and ``-shm`` companions the mode of the database file, so they
    are private too.
    """
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
        os.close(descriptor)
        for companion in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
            if companion.exists() and stat.S_IMODE(companion.stat().st_mode) & 0o077:
                logger.warning("history file %s was readable by others; made it 0600", companion)
                companion.chmod(PRIVATE_MODE)
    except OSError as error:
        raise StoreError(f"cannot create history {path}: {error.strerror}") from None


def newest_first(query: sa.Select[Any]) -> sa.Select[Any]:
    # The id breaks ties between attempts started within the same microsecond.
    return query.order_by(attempts.c.started_at.desc(), attempts.c.id.desc())


def row_entry(row: sa.Row[Any]) -> Entry:
    return Entry(**row._mapping)


def describe(error: SQLAlchemyError) -> str:
    """The driver's own message, without the statement and parameters SQLAlchemy appends."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        return str(error.orig).splitlines()[0]
    return str(error).splitlines()[0]

"""Engines and sessions for SQLite (default) or PostgreSQL, and Alembic migrations at start."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from credo.errors import EnvironmentProblem, UnreachableError

__all__ = ["Database", "after_commit", "sqlite_url"]

MIGRATIONS = Path(__file__).parent / "migrations"


def head_revision() -> str:
    """The newest migration: revisions are named by their file's number (0001_..., 0002_...)."""
    return max(p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'credo.db'}"


# ``session.info`` key of what runs once the session's transaction has committed.
_AFTER_COMMIT = "credo.after_commit"
# Any constant, other than the audit log's (credo.server.audit): the key of the advisory lock that
# orders replicas' migrations.
_MIGRATION_LOCK_KEY = 0x637265646F6D6967


def after_commit(session: Session, hook: Callable[[], None]) -> None:
    """Run ``hook`` once the transaction of ``session`` (one of ``Database.session``) has
    committed; not at all if it rolls back."""
    session.info.setdefault(_AFTER_COMMIT, []).append(hook)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (output tails, lists) run beside the writer; foreign keys are off by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # How many transactions run at once in this process. SQLite has one writer at a time, and
        # colliding transactions wait in its busy handler, which sleeps 1, 2, 5, 10... ms: they
        # queue on a lock instead. With PostgreSQL, each thread that waits on the socket gives up
        # the GIL, and dozens of pool threads handing it round cost more than they overlap
        # (measured: 80-90 jobs/s unbounded, 110 with 4; BENCHMARKS.md). Four still lets a long
        # listing run beside the workers' short reports.
        self._slots = threading.BoundedSemaphore(1 if self.dialect == "sqlite" else 4)

    def revision(self) -> str | None:
        """The database's migration revision (None: none applied yet)."""
        try:
            with self.engine.connect() as connection:
                found = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError:
            return None
        return str(found) if found is not None else None

    def upgrade(self) -> None:
        """Apply every Alembic migration not yet applied.

        A database at the newest revision needs no Alembic at all: a replica started on it never
        imports it (Alembic, Mako and Pygments are some 11 MiB of every process's memory)."""
        if self.revision() == head_revision():
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                if self.dialect == "postgresql":
                    # Replicas that start at once migrate one after the other: the lock holds
                    # until this transaction ends (PostgreSQL's DDL is transactional), and the
                    # next one then finds every migration applied.
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except OperationalError as exc:
            raise UnreachableError(f"cannot reach the database: {exc.orig}", hint="check --database") from exc
        except Exception as exc:
            raise EnvironmentProblem(f"database migration failed: {exc}") from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        with self._slots, self.sessions() as session:
            with session.begin():
                yield session
            for hook in session.info.pop(_AFTER_COMMIT, ()):
                hook()

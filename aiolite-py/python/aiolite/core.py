"""aiosqlite's ``Connection`` and ``connect`` on aiolite's Rust core.

Each connection owns one aiolite worker thread (Rust) holding the SQLite handle. Statements
are submitted to it without taking any lock; results come back through a per-event-loop
completion hub (an eventfd the loop watches), so the worker never takes the GIL for plain
SQL. Python callbacks (functions, authorizer, trace, progress handler) run on the worker,
as ``sqlite3`` runs them, attached to the interpreter only for the call.
"""

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Literal, Optional, Union
from warnings import warn

from . import _aiolite
from .context import contextmanager
from .cursor import Cursor

__all__ = ["connect", "Connection", "Cursor"]

LOG = logging.getLogger("aiosqlite")

IsolationLevel = Optional[Literal["DEFERRED", "IMMEDIATE", "EXCLUSIVE"]]
AuthorizerCallback = Callable[[int, str, str, str, str], int]

_LEGACY = getattr(sqlite3, "LEGACY_TRANSACTION_CONTROL", -1)


class _Connector:
    """What :func:`connect` gives :class:`Connection`: the database and ``sqlite3.connect``
    arguments, opened natively by aiolite. Calling it opens a plain ``sqlite3`` connection,
    as aiosqlite's connector does."""

    __slots__ = ("database", "kwargs")

    def __init__(self, database, kwargs):
        self.database = database
        self.kwargs = kwargs

    def location(self) -> str:
        database = self.database
        if isinstance(database, str):
            return database
        if isinstance(database, bytes):
            return database.decode("utf-8")
        return str(database)

    def __call__(self) -> sqlite3.Connection:
        return sqlite3.connect(self.location(), **self.kwargs)

    async def open(self, iter_chunk_size):
        kw = dict(self.kwargs)
        timeout = float(kw.pop("timeout", 5.0))
        detect_types = int(kw.pop("detect_types", 0))
        isolation_level = kw.pop("isolation_level", "")
        kw.pop("check_same_thread", None)
        factory = kw.pop("factory", None)
        if factory not in (None, sqlite3.Connection):
            raise sqlite3.NotSupportedError("aiolite: connect(factory=...) is not supported")
        cached_statements = int(kw.pop("cached_statements", 128))
        uri = bool(kw.pop("uri", False))
        autocommit = kw.pop("autocommit", _LEGACY)
        worker_spin_us = kw.pop("aiolite_worker_spin_us", None)
        if kw:
            name = next(iter(kw))
            raise TypeError(f"connect() got an unexpected keyword argument {name!r}")
        if autocommit is True:
            isolation_level = None
        elif autocommit is not _LEGACY:
            raise sqlite3.NotSupportedError("aiolite: autocommit=False is not supported")
        path = self.location()
        if not uri and path.startswith("file:"):
            # Without uri=True, sqlite3 treats "file:..." as a plain file name.
            path = "./" + path
        core = await _aiolite.open(
            path,
            timeout=timeout,
            detect_types=detect_types,
            isolation_level=isolation_level,
            cached_statements=cached_statements,
            iter_chunk_size=iter_chunk_size,
            worker_spin_us=worker_spin_us,
        )
        return _SyncConnection(core, isolation_level)


async def _adopt(conn, iter_chunk_size):
    """Open aiolite on the database of a ``sqlite3.Connection`` returned by a foreign
    connector: the same file (or, for an in-memory database, a copy of its content), the
    same ``isolation_level`` / ``row_factory`` / ``text_factory``. The ``sqlite3``
    connection is closed (functions registered on it are not carried over)."""
    if isinstance(conn, _SyncConnection):
        return conn
    if not isinstance(conn, sqlite3.Connection):
        raise TypeError(f"the connector returned {type(conn).__name__}, not a sqlite3.Connection")
    files = {name: file for _, name, file in conn.execute("PRAGMA database_list")}
    main = files.get("main") or ""
    isolation_level = conn.isolation_level
    row_factory = conn.row_factory
    text_factory = conn.text_factory
    data = None if main else conn.serialize()
    if conn.in_transaction:
        conn.rollback()
    conn.close()
    core = await _aiolite.open(
        main or ":memory:",
        isolation_level=isolation_level,
        iter_chunk_size=iter_chunk_size,
    )
    if data is not None:
        await core.deserialize(data)
    view = _SyncConnection(core, isolation_level)
    view.row_factory = row_factory
    view.text_factory = text_factory
    return view


class _SyncConnection:
    """What aiosqlite exposes as ``Connection._conn`` / ``_connection`` (a
    ``sqlite3.Connection`` there): the connection's synchronous attributes."""

    __slots__ = ("_core", "_isolation_level", "row_factory", "__weakref__")

    def __init__(self, core, isolation_level):
        self._core = core
        self._isolation_level = isolation_level
        self.row_factory = None

    @property
    def isolation_level(self) -> Optional[str]:
        return self._isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Optional[str]) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError("isolation_level must be str or None")
        self._core.set_isolation_level(value)
        self._isolation_level = value

    @property
    def text_factory(self):
        return self._core.text_factory

    @text_factory.setter
    def text_factory(self, factory) -> None:
        self._core.text_factory = factory

    @property
    def in_transaction(self) -> bool:
        return self._core.in_transaction

    @property
    def total_changes(self) -> int:
        return self._core.total_changes

    def interrupt(self) -> None:
        self._core.interrupt()

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<aiolite connection {self._core!r}>"


class _TxQueue:
    """aiosqlite's ``Connection._tx`` job queue, as far as its users touch it: ``empty()``
    (no command pending on the worker) and ``put_nowait((future, function))`` (run
    ``function()`` on the worker, in order with the statements, and complete ``future``)."""

    __slots__ = ("_core",)

    def __init__(self):
        self._core = None

    def empty(self) -> bool:
        core = self._core
        return core is None or core.pending() == 0

    def qsize(self) -> int:
        core = self._core
        return 0 if core is None else core.pending()

    def put_nowait(self, item) -> None:
        future, function = item
        core = self._core
        if core is None or core.is_closed:
            if future is not None and not future.done():
                future.set_exception(ValueError("Connection closed"))
            return
        if future is None:
            future = asyncio.get_event_loop().create_future()
        core.run_python(function, future)

    put = put_nowait


class _WorkerThread:
    """Stands for aiosqlite's ``Connection._thread`` (aiolite's worker is a Rust thread that
    never keeps the process alive)."""

    __slots__ = ("daemon", "name")

    def __init__(self):
        self.daemon = True
        self.name = "aiolite-worker"

    def start(self) -> None:
        pass

    def is_alive(self) -> bool:
        return False

    def join(self, timeout=None) -> None:
        pass


class Connection:
    """An asyncio SQLite connection (aiosqlite's API)."""

    def __init__(
        self,
        connector: Callable[[], sqlite3.Connection],
        iter_chunk_size: int,
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        self._running = True
        self._connection: Optional[_SyncConnection] = None
        self._connector = connector
        self._tx = _TxQueue()
        self._iter_chunk_size = iter_chunk_size
        self._thread = _WorkerThread()
        if loop is not None:
            warn(
                "aiosqlite.Connection no longer uses the `loop` parameter",
                DeprecationWarning,
            )

    def __del__(self):
        conn = getattr(self, "_connection", None)
        if conn is None:
            return
        try:
            warn(
                (
                    f"{self!r} was deleted before being closed. "
                    "Please use 'async with' or '.close()' to close the connection properly."
                ),
                ResourceWarning,
                stacklevel=1,
            )
        finally:
            # No loop needed: the worker closes in the background.
            conn._core.stop()

    def stop(self) -> Optional[asyncio.Future]:
        """Stop the connection without waiting (prefer ``async with`` or ``await close()``).
        Returns a future that completes when the database is closed (``None`` when there is
        no event loop)."""
        self._running = False
        try:
            future = asyncio.get_event_loop().create_future()
        except Exception:
            future = None
        conn = self._connection
        self._connection = None
        if conn is None:
            if future is not None:
                future.set_result(None)
            return future
        if future is None:
            conn._core.stop()
        else:
            conn._core.close_into(future)
        return future

    @property
    def _conn(self) -> _SyncConnection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    def _core(self):
        conn = self._connection
        if conn is None:
            raise ValueError("no active connection")
        if not self._running:
            raise ValueError("Connection closed")
        return conn._core

    async def _connect(self) -> "Connection":
        if self._connection is None:
            try:
                connector = self._connector
                if isinstance(connector, _Connector):
                    view = await connector.open(self._iter_chunk_size)
                else:
                    view = await _adopt(connector(), self._iter_chunk_size)
                self._tx._core = view._core
                self._connection = view
            except BaseException:
                self.stop()
                self._connection = None
                raise
        return self

    def __await__(self):
        return self._connect().__await__()

    async def __aenter__(self) -> "Connection":
        return await self

    async def __aexit__(self, exc_type, exc_val, exc_tb) -> None:
        await self.close()

    @contextmanager
    async def cursor(self) -> Cursor:
        """Create a cursor (no round trip to the worker)."""
        core = self._core()
        return Cursor(self, core.cursor(self._connection.row_factory))

    async def commit(self) -> None:
        """Commit the current transaction."""
        await self._core().commit()

    async def rollback(self) -> None:
        """Roll back the current transaction."""
        await self._core().rollback()

    async def close(self) -> None:
        """Complete queued queries/cursors and close the connection."""
        conn = self._connection
        if conn is None:
            return
        try:
            await conn._core.close()
        except Exception:
            LOG.info("exception occurred while closing connection")
            raise
        finally:
            self._connection = None
            self._running = False

    @contextmanager
    async def execute(self, sql: str, parameters: Optional[Iterable[Any]] = None) -> Cursor:
        """Create a cursor and execute the given query."""
        core = self._core()
        raw = core.cursor(self._connection.row_factory)
        await raw.execute(sql, parameters)
        return Cursor(self, raw)

    @contextmanager
    async def execute_insert(self, sql: str, parameters: Optional[Iterable[Any]] = None):
        """Execute an insert and return the row ``(last_insert_rowid,)``."""
        core = self._core()
        return await core.execute_insert(sql, parameters, self._connection.row_factory)

    @contextmanager
    async def execute_fetchall(self, sql: str, parameters: Optional[Iterable[Any]] = None):
        """Execute a query and return all its rows (one round trip)."""
        core = self._core()
        return await core.execute_fetchall(sql, parameters, self._connection.row_factory)

    @contextmanager
    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Cursor:
        """Create a cursor and execute the given multiquery."""
        core = self._core()
        raw = core.cursor(self._connection.row_factory)
        await raw.executemany(sql, parameters)
        return Cursor(self, raw)

    @contextmanager
    async def executescript(self, sql_script: str) -> Cursor:
        """Create a cursor and execute a script (committing first)."""
        core = self._core()
        raw = core.cursor(self._connection.row_factory)
        await raw.executescript(sql_script)
        return Cursor(self, raw)

    async def interrupt(self) -> None:
        """Interrupt the statement running now."""
        return self._conn.interrupt()

    async def create_function(
        self, name: str, num_params: int, func: Callable, deterministic: bool = False
    ) -> None:
        """Create a user-defined SQL function (it runs on the worker thread)."""
        await self._core().create_function(name, num_params, func, deterministic=deterministic)

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    @property
    def isolation_level(self) -> Optional[str]:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: IsolationLevel) -> None:
        self._conn.isolation_level = value

    @property
    def row_factory(self) -> Optional[type]:
        return self._conn.row_factory

    @row_factory.setter
    def row_factory(self, factory: Optional[type]) -> None:
        self._conn.row_factory = factory

    @property
    def text_factory(self) -> Callable[[bytes], Any]:
        return self._conn.text_factory

    @text_factory.setter
    def text_factory(self, factory: Callable[[bytes], Any]) -> None:
        self._conn.text_factory = factory

    @property
    def total_changes(self) -> int:
        return self._conn.total_changes

    async def enable_load_extension(self, value: bool) -> None:
        await self._core().enable_load_extension(value)

    async def load_extension(self, path: str):
        await self._core().load_extension(path)

    async def set_progress_handler(self, handler: Callable[[], Optional[int]], n: int) -> None:
        await self._core().set_progress_handler(handler, n)

    async def set_trace_callback(self, handler: Callable) -> None:
        await self._core().set_trace_callback(handler)

    async def set_authorizer(self, authorizer_callback: Optional[AuthorizerCallback]) -> None:
        """Set (or, with ``None``, remove) an authorizer callback
        ``(action_code, arg1, arg2, db_name, trigger_name) -> SQLITE_OK / SQLITE_DENY /
        SQLITE_IGNORE``; an exception in it denies."""
        await self._core().set_authorizer(authorizer_callback)

    async def iterdump(self) -> AsyncIterator[str]:
        """Dump the database as SQL text, line by line (``sqlite3``'s ``iterdump``)."""
        dumper = self._core().iterdump()
        while True:
            lines = await dumper.next_batch()
            if not lines:
                break
            for line in lines:
                yield line

    async def backup(
        self,
        target: Union["Connection", sqlite3.Connection],
        *,
        pages: int = 0,
        progress: Optional[Callable[[int, int, int], None]] = None,
        name: str = "main",
        sleep: float = 0.250,
    ) -> None:
        """Back up this database into ``target`` (an aiosqlite/aiolite connection, with
        SQLite's online backup, or a ``sqlite3.Connection``)."""
        core = self._core()
        if isinstance(target, Connection):
            await core.backup(
                target._conn._core, pages=pages, progress=progress, name=name, sleep=sleep
            )
        elif isinstance(target, sqlite3.Connection):
            await core.backup_to_sqlite3(
                target, pages=pages, progress=progress, name=name, sleep=sleep
            )
        else:
            raise TypeError("target is not a Connection")


def connect(
    database: Union[str, Path],
    *,
    iter_chunk_size=64,
    loop: Optional[asyncio.AbstractEventLoop] = None,
    **kwargs: Any,
) -> Connection:
    """Create and return a connection proxy to the sqlite database (``await`` it, or use
    ``async with``). ``kwargs`` are ``sqlite3.connect``'s."""
    if loop is not None:
        warn(
            "aiosqlite.connect() no longer uses the `loop` parameter",
            DeprecationWarning,
        )
    return Connection(_Connector(database, kwargs), iter_chunk_size)

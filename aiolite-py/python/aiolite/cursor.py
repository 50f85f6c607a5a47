"""aiosqlite's ``Cursor`` over an aiolite cursor (rows stream from the worker in chunks)."""

from typing import Any, Callable, Iterable, Optional


class Cursor:
    """An async DB-API cursor.

    ``execute`` brings back the first rows with its reply; fetches are answered from that
    buffer when they can, otherwise with one round trip for what they need. ``async for``
    reads ``iter_chunk_size`` rows per round trip.
    """

    def __init__(self, conn, cursor) -> None:
        self.iter_chunk_size = conn._iter_chunk_size
        self._conn = conn
        self._cursor = cursor

    def __aiter__(self):
        return self._fetch_chunked()

    async def _fetch_chunked(self):
        while True:
            rows = await self.fetchmany(self.iter_chunk_size)
            if not rows:
                return
            for row in rows:
                yield row

    def _raw(self):
        conn = self._conn
        if not conn._running or not conn._connection:
            raise ValueError("Connection closed")
        return self._cursor

    async def execute(self, sql: str, parameters: Optional[Iterable[Any]] = None) -> "Cursor":
        """Execute the given query."""
        await self._raw().execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> "Cursor":
        """Execute the given multiquery."""
        await self._raw().executemany(sql, parameters)
        return self

    async def executescript(self, sql_script: str) -> "Cursor":
        """Execute a user script."""
        await self._raw().executescript(sql_script)
        return self

    async def fetchone(self):
        """Fetch a single row."""
        return await self._raw().fetchone()

    async def fetchmany(self, size: Optional[int] = None):
        """Fetch up to ``cursor.arraysize`` number of rows."""
        return await self._raw().fetchmany(size)

    async def fetchall(self):
        """Fetch all remaining rows."""
        return await self._raw().fetchall()

    async def close(self) -> None:
        """Close the cursor."""
        self._raw().close()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> Optional[int]:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    @property
    def description(self):
        return self._cursor.description

    @property
    def row_factory(self) -> Optional[Callable]:
        return self._cursor.row_factory

    @row_factory.setter
    def row_factory(self, factory: Optional[Callable]) -> None:
        self._cursor.row_factory = factory

    @property
    def connection(self):
        return self._conn._connection

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc_val, exc_tb):
        await self.close()

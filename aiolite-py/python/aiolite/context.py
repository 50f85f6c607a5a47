"""The awaitable-and-async-context-manager results of aiosqlite's connection methods."""

from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from functools import wraps

from .cursor import Cursor


class Result(AbstractAsyncContextManager, Coroutine):
    """Wraps the coroutine of a method: ``await`` it for the value, or use it with
    ``async with`` (a cursor is closed at the end of the block)."""

    __slots__ = ("_coro", "_obj")

    def __init__(self, coro):
        self._coro = coro
        self._obj = None

    def send(self, value):
        return self._coro.send(value)

    def throw(self, typ, val=None, tb=None):
        if val is None:
            return self._coro.throw(typ)
        if tb is None:
            return self._coro.throw(typ, val)
        return self._coro.throw(typ, val, tb)

    def close(self):
        return self._coro.close()

    def __await__(self):
        return self._coro.__await__()

    async def __aenter__(self):
        self._obj = await self._coro
        return self._obj

    async def __aexit__(self, exc_type, exc, tb):
        if isinstance(self._obj, Cursor):
            await self._obj.close()


def contextmanager(method):
    """Make ``method`` (an ``async def``) return a :class:`Result`."""

    @wraps(method)
    def wrapper(self, *args, **kwargs):
        return Result(method(self, *args, **kwargs))

    return wrapper

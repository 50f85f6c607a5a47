"""aiosqlite 0.22.1's public surface on aiolite: ``import aiolite.compat as aiosqlite``, or
:func:`aiolite.install_as_aiosqlite` to make ``import aiosqlite`` resolve here."""

from sqlite3 import (  # noqa: F401
    DatabaseError,
    Error,
    IntegrityError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Row,
    Warning,
    paramstyle,
    register_adapter,
    register_converter,
)

from ._aiolite import sqlite_version
from .core import Connection, Cursor, connect

sqlite_version_info = tuple(int(x) for x in sqlite_version.split("."))

# The aiosqlite release whose API this module reproduces.
__version__ = "0.22.1"

__all__ = [
    "__version__",
    "paramstyle",
    "register_adapter",
    "register_converter",
    "sqlite_version",
    "sqlite_version_info",
    "connect",
    "Connection",
    "Cursor",
    "Row",
    "Warning",
    "Error",
    "DatabaseError",
    "IntegrityError",
    "ProgrammingError",
    "OperationalError",
    "NotSupportedError",
]

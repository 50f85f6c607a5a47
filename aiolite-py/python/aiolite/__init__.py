"""aiolite: async SQLite for asyncio on aiolite's Rust core, with aiosqlite's API.

``aiolite.connect`` / ``Connection`` / ``Cursor`` are aiosqlite's (see :mod:`aiolite.compat`
for the module surface); :func:`install_as_aiosqlite` makes ``import aiosqlite`` resolve to
aiolite, for libraries written against aiosqlite (SQLAlchemy's ``sqlite+aiosqlite``, …).

SQLite itself is bundled (``aiolite.sqlite_version``), separate from the one Python's
``sqlite3`` uses: do not keep the same database file open through both at the same time in
one process (see the README, "Two SQLite libraries in one process").
"""

import atexit
import sys

from . import _aiolite
from .compat import (  # noqa: F401
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
    sqlite_version,
    sqlite_version_info,
)
from .core import Connection, Cursor, connect

__version__ = _aiolite.__version__

__all__ = [
    "__version__",
    "connect",
    "Connection",
    "Cursor",
    "Row",
    "install_as_aiosqlite",
    "paramstyle",
    "register_adapter",
    "register_converter",
    "sqlite_version",
    "sqlite_version_info",
    "Warning",
    "Error",
    "DatabaseError",
    "IntegrityError",
    "ProgrammingError",
    "OperationalError",
    "NotSupportedError",
]


def install_as_aiosqlite() -> None:
    """Make ``import aiosqlite`` (and its submodules ``core``, ``cursor``, ``context``)
    resolve to aiolite, like PyMySQL's ``install_as_MySQLdb()``. Call it before the code
    that imports aiosqlite."""
    from . import compat, context, core, cursor

    compat.core = core
    compat.cursor = cursor
    compat.context = context
    sys.modules["aiosqlite"] = compat
    sys.modules["aiosqlite.core"] = core
    sys.modules["aiosqlite.cursor"] = cursor
    sys.modules["aiosqlite.context"] = context


@atexit.register
def _shutdown() -> None:
    # Stop connections left open and give their workers a moment to close, so none runs a
    # Python callback while the interpreter finalizes.
    _aiolite.shutdown(1.0)

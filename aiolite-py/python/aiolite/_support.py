"""Helpers the native module calls: description cursors for row factories, and backups
into ``sqlite3`` connections."""

import sqlite3
import threading

_lock = threading.Lock()
_conn = None
_cursors = {}


def description_cursor(names):
    """A real ``sqlite3.Cursor`` whose ``description`` names ``names``.

    ``sqlite3.Row(cursor, values)`` reads only the cursor's description, so rows built with
    it are genuine ``sqlite3.Row`` objects. Cursors are cached by column names. The private
    connection is in-memory: it never opens a database file.
    """
    cursor = _cursors.get(names)
    if cursor is not None:
        return cursor
    global _conn
    with _lock:
        if _conn is None:
            _conn = sqlite3.connect(":memory:", check_same_thread=False)
        if names:
            cols = ", ".join('NULL AS "%s"' % n.replace('"', '""') for n in names)
            cursor = _conn.execute("SELECT %s LIMIT 0" % cols)
        else:
            cursor = _conn.cursor()
    if len(_cursors) >= 4096:
        _cursors.clear()
    _cursors[names] = cursor
    return cursor


def backup_into(data, target, pages, progress, sleep):
    """Copy a serialized database into the ``sqlite3.Connection`` ``target`` with
    ``sqlite3``'s own online backup (runs on the aiolite worker thread)."""
    source = sqlite3.connect(":memory:", check_same_thread=False)
    try:
        source.deserialize(data)
        source.backup(
            target,
            pages=pages if pages > 0 else -1,
            progress=progress,
            name="main",
            sleep=sleep,
        )
    finally:
        source.close()

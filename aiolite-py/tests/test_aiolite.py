"""aiolite's Python front end: what aiosqlite's smoke tests do not cover.

Semantics are checked against Python's own ``sqlite3`` where they should match it.
"""

import asyncio
import datetime
import gc
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
from pathlib import Path

import aiolite
from aiolite import _aiolite

aiolite.install_as_aiosqlite()
import aiosqlite  # noqa: E402


def fd_count():
    return len(os.listdir("/proc/self/fd"))


class Base(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        td = tempfile.TemporaryDirectory()
        self.addCleanup(td.cleanup)
        self.dir = Path(td.name)
        self.path = str(self.dir / "t.db")


class ModuleTest(unittest.TestCase):
    def test_install_as_aiosqlite(self):
        import aiosqlite.core
        import aiosqlite.cursor

        self.assertIs(sys.modules["aiosqlite"], aiolite.compat)
        self.assertIs(aiosqlite.core.Connection, aiolite.Connection)
        self.assertIs(aiosqlite.cursor.Cursor, aiolite.Cursor)
        self.assertIs(aiosqlite.Row, sqlite3.Row)
        self.assertIs(aiosqlite.IntegrityError, sqlite3.IntegrityError)
        self.assertEqual(aiosqlite.paramstyle, "qmark")
        self.assertTrue(hasattr(aiosqlite.Connection, "stop"))
        for name in aiosqlite.__all__:
            self.assertTrue(hasattr(aiosqlite, name), name)

    def test_bundled_sqlite_version(self):
        self.assertEqual(aiolite.sqlite_version, _aiolite.Core.sqlite_version())
        self.assertEqual(
            aiolite.sqlite_version_info, tuple(int(x) for x in aiolite.sqlite_version.split("."))
        )
        self.assertGreaterEqual(aiolite.sqlite_version_info, (3, 35, 0))


class StatementTest(Base):
    async def test_rowcount_lastrowid_description_match_sqlite3(self):
        script = [
            ("create table t(a integer primary key, b)", ()),
            ("insert into t(b) values (1), (2)", ()),
            ("select * from t", ()),
            ("update t set b = 3", ()),
            ("update t set b = 3 where a = 99", ()),
            ("delete from t where a = 1", ()),
            ("insert into t(b) values (?)", (7,)),
            ("  \n\tREPLACE into t(a, b) values (2, 9)", ()),
            ("select b as bee, a from t order by a", ()),
            ("pragma user_version", ()),
        ]
        ref = sqlite3.connect(":memory:").cursor()
        async with aiosqlite.connect(":memory:") as db:
            cur = await db.cursor()
            self.assertEqual((cur.rowcount, cur.lastrowid, cur.description), (-1, None, None))
            for sql, params in script:
                ref.execute(sql, params)
                await cur.execute(sql, params)
                self.assertEqual(cur.rowcount, ref.rowcount, sql)
                self.assertEqual(cur.lastrowid, ref.lastrowid, sql)
                self.assertEqual(cur.description, ref.description, sql)
                self.assertEqual(await cur.fetchall(), ref.fetchall(), sql)
            ref.executemany("insert into t(b) values (?)", [(1,), (2,), (3,)])
            await cur.executemany("insert into t(b) values (?)", [(1,), (2,), (3,)])
            self.assertEqual((cur.rowcount, cur.lastrowid), (ref.rowcount, ref.lastrowid))
            await cur.executemany("insert into t(b) values (?)", iter([(i,) for i in range(5)]))
            self.assertEqual(cur.rowcount, 5)
            ref.executemany("insert into t(b) values (?)", iter([(i,) for i in range(5)]))
            # Read-only statements are refused, as sqlite3 refuses them, with its message; a
            # statement that writes is taken whatever its first word.
            for sql in ("select ?", "with v(x) as (select ?) select x from v"):
                with self.assertRaises(sqlite3.ProgrammingError) as want:
                    ref.executemany(sql, [(1,), (2,)])
                with self.assertRaises(sqlite3.ProgrammingError) as got:
                    await cur.executemany(sql, [(1,), (2,)])
                self.assertEqual(str(got.exception), str(want.exception))
            cte = "with v(x) as (select ?) insert into t(b) select x from v"
            ref.executemany(cte, [(7,), (8,)])
            await cur.executemany(cte, [(7,), (8,)])
            self.assertEqual(cur.rowcount, ref.rowcount)
            await cur.execute("select count(*) from t")
            self.assertEqual(await cur.fetchall(), ref.execute("select count(*) from t").fetchall())

    async def test_returning_and_execute_insert(self):
        async with aiosqlite.connect(":memory:") as db:
            await db.execute("create table t(a integer primary key, b)")
            async with db.execute("insert into t(b) values (1), (2) returning a, b") as cur:
                self.assertEqual(await cur.fetchall(), [(1, 1), (2, 2)])
            self.assertEqual(await db.execute_insert("insert into t(b) values (?)", [5]), (3,))
            db.row_factory = aiosqlite.Row
            row = await db.execute_insert("insert into t(b) values (6)")
            self.assertEqual(row["last_insert_rowid()"], 4)
            rows = await db.execute_fetchall("insert into t(b) values (7) returning a")
            self.assertEqual([tuple(r) for r in rows], [(5,)])
            self.assertTrue(db.in_transaction)
            await db.commit()

    async def test_parameters(self):
        async with aiosqlite.connect(":memory:") as db:
            q = db.execute_fetchall
            self.assertEqual(await q("select ?, ?", (1, "a")), [(1, "a")])
            self.assertEqual(await q("select ?, ?", [None, 2.5]), [(None, 2.5)])
            self.assertEqual(await q("select ?, ?", "ab"), [("a", "b")])
            self.assertEqual(
                await q("select :x, @y, $z, :x", {"x": 1, "y": 2, "z": 3, "extra": 4}),
                [(1, 2, 3, 1)],
            )
            self.assertEqual(await q("select '?', ':x' -- ?\n, ?", (9,)), [("?", ":x", 9)])
            blob = bytes(range(256))
            got = await q("select ?, ?, ?", (blob, bytearray(b"x"), memoryview(b"y")))
            self.assertEqual(got, [(blob, b"x", b"y")])
            self.assertEqual(await q("select ?, ?", (True, 2**63 - 1)), [(1, 2**63 - 1)])
            with self.assertRaisesRegex(OverflowError, "too large"):
                await q("select ?", (2**64,))
            with self.assertRaisesRegex(sqlite3.ProgrammingError, "Incorrect number of bindings"):
                await q("select ?", (1, 2))
            with self.assertRaisesRegex(sqlite3.ProgrammingError, "parameter :x"):
                await q("select :x", {"y": 1})
            with self.assertRaisesRegex(sqlite3.ProgrammingError, "has no name"):
                await q("select ?", {"y": 1})
            with self.assertRaisesRegex(sqlite3.ProgrammingError, "type 'object' is not supported"):
                await q("select ?", (object(),))
            with self.assertRaisesRegex(sqlite3.ProgrammingError, "unsupported type"):
                await q("select ?", 5)
            with self.assertRaisesRegex(sqlite3.ProgrammingError, "one statement at a time"):
                await q("select 1; select 2")
            with self.assertRaisesRegex(sqlite3.ProgrammingError, "null character"):
                await q("select 1\0")

    async def test_adapters_and_converters(self):
        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

        sqlite3.register_adapter(Point, lambda p: f"{p.x};{p.y}")
        sqlite3.register_converter("point", lambda b: tuple(map(float, b.split(b";"))))
        self.addCleanup(sqlite3.adapters.pop, (Point, sqlite3.PrepareProtocol), None)
        self.addCleanup(sqlite3.converters.pop, "POINT", None)

        class Conforming:
            def __conform__(self, proto):
                return 42

        async with aiosqlite.connect(
            ":memory:", detect_types=sqlite3.PARSE_DECLTYPES | sqlite3.PARSE_COLNAMES
        ) as db:
            await db.execute("create table t(p point, d date, n integer)")
            await db.execute(
                "insert into t values (?, ?, ?)",
                (Point(1, 2), datetime.date(2020, 1, 2), Conforming()),
            )
            async with db.execute("select p, d, n, p as \"q [point]\" from t") as cur:
                self.assertEqual(await cur.fetchone(), ((1.0, 2.0), datetime.date(2020, 1, 2), 42, (1.0, 2.0)))
                self.assertEqual([d[0] for d in cur.description], ["p", "d", "n", "q"])

    async def test_text_factory_and_row_factories(self):
        async with aiosqlite.connect(":memory:") as db:
            await db.execute("create table t(a, b)")
            await db.execute("insert into t values (1, 'é')")
            db.text_factory = bytes
            self.assertEqual(await db.execute_fetchall("select b from t"), [("é".encode(),)])
            db.text_factory = lambda b: b.decode().upper()
            self.assertEqual(await db.execute_fetchall("select b from t"), [("É",)])
            db.text_factory = str
            db.row_factory = sqlite3.Row
            row = (await db.execute_fetchall("select a, b as Bee from t"))[0]
            self.assertIsInstance(row, sqlite3.Row)
            self.assertEqual(row.keys(), ["a", "Bee"])
            self.assertEqual((row["A"], row["bee"], row[1]), (1, "é", "é"))
            ref = sqlite3.connect(":memory:")
            ref.row_factory = sqlite3.Row
            self.assertEqual(row, ref.execute("select 1 as a, 'é' as Bee").fetchone())
            self.assertEqual(hash(row), hash(ref.execute("select 1 as a, 'é' as Bee").fetchone()))

            def as_dict(cursor, values):
                return {d[0]: v for d, v in zip(cursor.description, values)}

            async with db.cursor() as cur:
                self.assertIs(cur.row_factory, sqlite3.Row)
                cur.row_factory = as_dict
                await cur.execute("select a, b from t")
                self.assertEqual(await cur.fetchone(), {"a": 1, "b": "é"})

    async def test_fetch_sizes_and_cursor_reuse(self):
        async with aiosqlite.connect(":memory:", iter_chunk_size=10) as db:
            cur = await db.execute(
                "with recursive c(n) as (select 1 union all select n+1 from c where n < 100) "
                "select n from c"
            )
            self.assertEqual(await cur.fetchone(), (1,))
            self.assertEqual(cur.arraysize, 1)
            self.assertEqual(await cur.fetchmany(), [(2,)])
            cur.arraysize = 3
            self.assertEqual(await cur.fetchmany(), [(3,), (4,), (5,)])
            self.assertEqual(len(await cur.fetchmany(50)), 50)
            rest = await cur.fetchall()
            self.assertEqual(rest[0], (56,))
            self.assertEqual(len(rest), 45)
            self.assertIsNone(await cur.fetchone())
            self.assertEqual(await cur.fetchmany(5), [])
            await cur.execute("select 7")
            self.assertEqual(await cur.fetchall(), [(7,)])
            await cur.close()
            with self.assertRaisesRegex(sqlite3.ProgrammingError, "closed cursor"):
                await cur.fetchall()

    async def test_cursor_streams_with_bounded_memory(self):
        n = 200_000
        sql = (
            "with recursive c(n) as (select 1 union all select n+1 from c where n < ?) "
            "select n, 'some text of a row' from c"
        )
        async with aiosqlite.connect(":memory:", iter_chunk_size=256) as db:
            async with db.execute(sql, (n,)) as cur:
                self.assertLessEqual(cur._cursor.buffered, 256)
                seen = most = 0
                async for row in cur:
                    seen += 1
                    if seen % 1000 == 0:
                        most = max(most, cur._cursor.buffered)
                self.assertEqual(seen, n)
                # Two read-ahead chunks at most (see RawCursor).
                self.assertLessEqual(most, 2 * 256)
            async with db.execute(sql, (n,)) as cur:
                most = 0
                while await cur.fetchmany(1000):
                    most = max(most, cur._cursor.buffered)
                self.assertLessEqual(most, 2 * 1000)
            # Concurrent fetches on one cursor are answered in call order.
            async with db.execute(sql, (1000,)) as cur:
                parts = await asyncio.gather(
                    cur.fetchmany(300), cur.fetchone(), cur.fetchmany(300), cur.fetchall()
                )
                flat = [r[0] for r in parts[0]] + [parts[1][0]] + [r[0] for r in parts[2] + parts[3]]
                self.assertEqual(flat, list(range(1, 1001)))

    async def test_errors_are_sqlite3_classes_with_codes(self):
        async with aiosqlite.connect(":memory:") as db:
            await db.execute("create table t(x unique, y not null, z check (z > 0))")
            await db.execute("insert into t values (1, 1, 1)")
            cases = [
                ("insert into t values (1, 1, 1)", sqlite3.IntegrityError, 2067, "SQLITE_CONSTRAINT_UNIQUE"),
                ("insert into t values (2, null, 1)", sqlite3.IntegrityError, 1299, "SQLITE_CONSTRAINT_NOTNULL"),
                ("insert into t values (3, 1, 0)", sqlite3.IntegrityError, 275, "SQLITE_CONSTRAINT_CHECK"),
                ("selec 1", sqlite3.OperationalError, 1, "SQLITE_ERROR"),
                ("select * from nope", sqlite3.OperationalError, 1, "SQLITE_ERROR"),
            ]
            ref = sqlite3.connect(":memory:")
            ref.execute("create table t(x unique, y not null, z check (z > 0))")
            ref.execute("insert into t values (1, 1, 1)")
            for sql, cls, code, name in cases:
                with self.assertRaises(cls) as cm:
                    await db.execute(sql)
                self.assertIs(type(cm.exception), cls, sql)
                self.assertEqual(cm.exception.sqlite_errorcode, code, sql)
                self.assertEqual(cm.exception.sqlite_errorname, name, sql)
                with self.assertRaises(cls) as ref_cm:
                    ref.execute(sql)
                self.assertEqual(str(cm.exception), str(ref_cm.exception), sql)
                self.assertEqual(cm.exception.sqlite_errorcode, ref_cm.exception.sqlite_errorcode)

    async def test_closed_connection_errors(self):
        db = await aiosqlite.connect(":memory:")
        await db.close()
        with self.assertRaisesRegex(ValueError, "no active connection"):
            await db.execute("select 1")
        with self.assertRaisesRegex(ValueError, "no active connection"):
            db.in_transaction
        await db.close()


class TransactionTest(Base):
    async def test_implicit_transactions_like_sqlite3(self):
        for level in ("", "DEFERRED", "IMMEDIATE", "EXCLUSIVE", None):
            ref = sqlite3.connect(self.path + "ref", isolation_level=level)
            async with aiosqlite.connect(self.path, isolation_level=level) as db:
                self.assertEqual(db.isolation_level, level)
                steps = [
                    "create table if not exists t(x)",
                    "select * from t",
                    "insert into t values (1)",
                    "select * from t",
                    "update t set x = 2",
                ]
                for sql in steps:
                    ref.execute(sql)
                    await db.execute(sql)
                    self.assertEqual(db.in_transaction, ref.in_transaction, (level, sql))
                await db.commit()
                ref.commit()
                self.assertFalse(db.in_transaction)
                await db.execute("delete from t")
                await db.executescript("insert into t values (5);")
                ref.execute("delete from t")
                ref.executescript("insert into t values (5);")
                self.assertEqual(db.in_transaction, ref.in_transaction, level)
            ref.close()
            os.remove(self.path)
            os.remove(self.path + "ref")

    async def test_isolation_level_none_commits(self):
        async with aiosqlite.connect(self.path) as db:
            await db.execute("create table t(x)")
            await db.execute("insert into t values (1)")
            self.assertTrue(db.in_transaction)
            db.isolation_level = None
            await db.execute("select 1")
            self.assertFalse(db.in_transaction)
            await db.execute("insert into t values (2)")
            self.assertFalse(db.in_transaction)
            with self.assertRaises(ValueError):
                db.isolation_level = "SOMETIMES"
        with sqlite3.connect(self.path) as ref:
            self.assertEqual(ref.execute("select count(*) from t").fetchone(), (2,))

    async def test_tx_queue_put_nowait_runs_on_the_worker(self):
        async with aiosqlite.connect(":memory:") as db:
            await db.execute("create table t(x)")
            await db.execute("insert into t values (1)")
            fut = asyncio.get_running_loop().create_future()
            threads = []

            def set_iso(conn, value):
                threads.append(threading.current_thread().name)
                conn.isolation_level = value
                return conn.in_transaction

            from functools import partial

            db._tx.put_nowait((fut, partial(set_iso, db._conn, None)))
            self.assertEqual(await fut, True)
            self.assertNotEqual(threads[0], threading.current_thread().name)
            self.assertFalse(db.in_transaction)
            self.assertTrue(db._tx.empty())

    async def test_rollback(self):
        async with aiosqlite.connect(":memory:") as db:
            await db.execute("create table t(x)")
            await db.execute("insert into t values (1)")
            await db.rollback()
            self.assertEqual(await db.execute_fetchall("select * from t"), [])


class CallbackTest(Base):
    async def test_function_errors_and_types(self):
        async with aiosqlite.connect(":memory:") as db:
            await db.create_function("boom", 0, lambda: 1 / 0)
            await db.create_function("echo", -1, lambda *a: a[0] if a else None)
            await db.create_function("bad", 0, lambda: object())
            with self.assertRaisesRegex(sqlite3.OperationalError, "user-defined function raised exception"):
                await db.execute("select boom()")
            with self.assertRaisesRegex(sqlite3.OperationalError, "user-defined function raised exception"):
                await db.execute("select bad()")
            rows = await db.execute_fetchall(
                "select echo(1), echo(1.5), echo('x'), echo(x'00'), echo(null), echo()"
            )
            self.assertEqual(rows, [(1, 1.5, "x", b"\0", None, None)])
            await db.create_function("echo", -1, None)
            with self.assertRaises(sqlite3.OperationalError):
                await db.execute("select echo(1)")

    async def test_authorizer_ignore_and_trace(self):
        async with aiosqlite.connect(":memory:") as db:
            await db.execute("create table t(a, secret)")
            await db.execute("insert into t values (1, 2)")

            def auth(action, arg1, arg2, dbname, source):
                if action == sqlite3.SQLITE_READ and arg2 == "secret":
                    return sqlite3.SQLITE_IGNORE
                return sqlite3.SQLITE_OK

            await db.set_authorizer(auth)
            self.assertEqual(await db.execute_fetchall("select a, secret from t"), [(1, None)])
            await db.set_authorizer(None)
            traced = []
            await db.set_trace_callback(traced.append)
            await db.execute_fetchall("select ?", (5,))
            self.assertIn("select 5", traced)
            await db.set_trace_callback(None)
            await db.execute_fetchall("select 6")
            self.assertNotIn("select 6", traced)

    async def test_progress_handler_and_interrupt(self):
        slow = "with recursive c(n) as (select 1 union all select n+1 from c) select count(*) from c"
        async with aiosqlite.connect(":memory:") as db:
            calls = []
            await db.set_progress_handler(lambda: calls.append(1) or len(calls) > 3, 1000)
            with self.assertRaisesRegex(sqlite3.OperationalError, "interrupted"):
                await db.execute(slow)
            await db.set_progress_handler(None, 0)
            # interrupt() from the loop while the statement runs.
            task = asyncio.ensure_future(db.execute(slow))
            await asyncio.sleep(0.05)
            await db.interrupt()
            with self.assertRaisesRegex(sqlite3.OperationalError, "interrupted"):
                await task
            # A fine-grained handler (n < 1000), then interrupt() still works.
            await db.set_progress_handler(lambda: 0, 10)
            self.assertEqual(await db.execute_fetchall("select 1"), [(1,)])
            task = asyncio.ensure_future(db.execute(slow))
            await asyncio.sleep(0.05)
            await db.interrupt()
            with self.assertRaisesRegex(sqlite3.OperationalError, "interrupted"):
                await task
            self.assertEqual(await db.execute_fetchall("select 2"), [(2,)])

    async def test_callback_exception_in_authorizer_denies(self):
        async with aiosqlite.connect(":memory:") as db:
            await db.set_authorizer(lambda *a: "not an int")
            with self.assertRaisesRegex(sqlite3.DatabaseError, "not authorized"):
                await db.execute("select 1")


class DumpBackupTest(Base):
    async def test_iterdump_matches_sqlite3(self):
        script = """
            create table a(id integer primary key autoincrement, t text, r real, b blob, n);
            insert into a(t, r, b, n) values ('it''s', 1.5, x'00ff', null), ('x', -0.0, x'', 3);
            create index ai on a(t);
            create view v as select * from a;
            create trigger tr after insert on a begin select 1; end;
            create table "we""ird"(x);
            insert into "we""ird" values (1e300);
        """
        with sqlite3.connect(self.path) as ref:
            ref.executescript(script)
        expected = list(sqlite3.connect(self.path).iterdump())
        async with aiosqlite.connect(self.path) as db:
            lines = [line async for line in db.iterdump()]
        self.assertEqual(lines, expected)

    async def test_iterdump_large_table_in_batches(self):
        async with aiosqlite.connect(":memory:") as db:
            await db.execute("create table t(x)")
            await db.executemany("insert into t values (?)", [(i,) for i in range(3000)])
            lines = [line async for line in db.iterdump()]
            self.assertEqual(len(lines), 3003)

    async def test_backup_in_steps_with_progress(self):
        async with aiosqlite.connect(":memory:") as src, aiosqlite.connect(":memory:") as dst:
            await src.execute("create table t(x)")
            await src.executemany("insert into t values (?)", [("x" * 1000,) for _ in range(200)])
            await src.commit()
            steps = []
            await src.backup(dst, pages=10, progress=lambda *a: steps.append(a), sleep=0)
            self.assertGreater(len(steps), 3)
            self.assertEqual(steps[-1][0], 101)
            self.assertEqual(steps[-1][1], 0)
            self.assertEqual(await dst.execute_fetchall("select count(*) from t"), [(200,)])
            target = sqlite3.connect(":memory:")
            await src.backup(target, pages=5)
            self.assertEqual(target.execute("select count(*) from t").fetchone(), (200,))


class LoopTest(Base):
    async def test_gather_many(self):
        async with aiosqlite.connect(":memory:") as db:
            results = await asyncio.gather(*[db.execute_fetchall("select ?", (i,)) for i in range(5000)])
            self.assertEqual([r[0][0] for r in results], list(range(5000)))

    async def test_cancelled_call_leaves_the_connection_usable(self):
        slow = "with recursive c(n) as (select 1 union all select n+1 from c limit 3000000) select count(*) from c"
        async with aiosqlite.connect(":memory:") as db:
            with self.assertRaises(asyncio.TimeoutError):
                await asyncio.wait_for(db.execute_fetchall(slow), 0.01)
            self.assertEqual(await db.execute_fetchall("select 1"), [(1,)])
            task = asyncio.ensure_future(db.execute(slow))
            await asyncio.sleep(0)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            self.assertEqual(await db.execute_fetchall("select 2"), [(2,)])

    async def test_worker_replies_without_the_gil(self):
        # Hold the GIL (no thread switch for 10 s) while the worker runs two statements:
        # the second can only run once the first one's reply is delivered, so both finish
        # only if delivering a reply does not need the GIL.
        async with aiosqlite.connect(":memory:") as db:
            await db.execute_fetchall("select 1")
            core = db._conn._core
            old = sys.getswitchinterval()
            sys.setswitchinterval(10)
            try:
                f1 = core.execute_fetchall("select 1")
                f2 = core.execute_fetchall("select 2")
                deadline = time.monotonic() + 2
                while core.pending() and time.monotonic() < deadline:
                    pass
                pending = core.pending()
            finally:
                sys.setswitchinterval(old)
            self.assertEqual(pending, 0)
            self.assertEqual((await f1, await f2), ([(1,)], [(2,)]))

    def test_loop_closed_before_the_result_arrives(self):
        slow = "with recursive c(n) as (select 1 union all select n+1 from c limit 300000) select count(*) from c"
        db = None

        async def start():
            nonlocal db
            db = await aiosqlite.connect(":memory:")
            asyncio.ensure_future(db.execute_fetchall(slow))
            await asyncio.sleep(0)

        loop = asyncio.new_event_loop()
        loop.run_until_complete(start())
        loop.close()  # the statement still runs; its result goes to a hub nobody drains
        time.sleep(0.3)

        async def again():
            self.assertEqual(await db.execute_fetchall("select 3"), [(3,)])
            await db.close()

        asyncio.run(again())

    def test_loop_without_descriptor_watching_uses_the_fallback(self):
        class NoReaderLoop(asyncio.SelectorEventLoop):
            def add_reader(self, *args):
                raise NotImplementedError

        async def main():
            async with aiosqlite.connect(":memory:") as db:
                rows = await asyncio.gather(*[db.execute_fetchall("select ?", (i,)) for i in range(200)])
                self.assertEqual(len(rows), 200)
                async with db.execute("select 1") as cur:
                    self.assertEqual(await cur.fetchall(), [(1,)])
            hub = asyncio.get_running_loop()._aiolite_hub
            self.assertIsNotNone(hub)

        loop = NoReaderLoop()
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    def test_hub_descriptor_closed_with_its_loop(self):
        async def use():
            async with aiosqlite.connect(":memory:") as db:
                await db.execute_fetchall("select 1")

        asyncio.run(use())  # warm up imports and caches
        gc.collect()
        before = fd_count()
        for _ in range(20):
            asyncio.run(use())
        gc.collect()
        self.assertLessEqual(fd_count(), before + 2)


class ConnectTest(Base):
    async def test_foreign_connector_is_adopted(self):
        def connector():
            conn = sqlite3.connect(":memory:", isolation_level=None)
            conn.execute("create table t(x)")
            conn.execute("insert into t values (42)")
            return conn

        async with aiosqlite.Connection(connector, 64) as db:
            self.assertEqual(await db.execute_fetchall("select x from t"), [(42,)])
            self.assertIsNone(db.isolation_level)
        with sqlite3.connect(self.path) as c:
            c.execute("create table f(x)")
        async with aiosqlite.Connection(lambda: sqlite3.connect(self.path), 64) as db:
            await db.execute("insert into f values (1)")
            await db.commit()
        with sqlite3.connect(self.path) as c:
            self.assertEqual(c.execute("select * from f").fetchall(), [(1,)])

    async def test_uri_and_file_names(self):
        uri = "file:" + self.path + "?mode=rwc"
        async with aiosqlite.connect(uri, uri=True) as db:
            await db.execute("create table t(x)")
        self.assertTrue(os.path.exists(self.path))
        cwd = os.getcwd()
        os.chdir(self.dir)
        try:
            async with aiosqlite.connect("file:plain.db") as db:
                await db.execute("create table t(x)")
            self.assertTrue(os.path.exists(self.dir / "file:plain.db"))
        finally:
            os.chdir(cwd)
        with self.assertRaises(TypeError):
            await aiosqlite.connect(":memory:", no_such_option=1)

    async def test_read_only_uri(self):
        with sqlite3.connect(self.path) as c:
            c.execute("create table t(x)")
        async with aiosqlite.connect(f"file:{self.path}?mode=ro", uri=True) as db:
            with self.assertRaises(sqlite3.OperationalError) as cm:
                await db.execute("insert into t values (1)")
            self.assertEqual(cm.exception.sqlite_errorname, "SQLITE_READONLY")

    async def test_busy_timeout(self):
        async with aiosqlite.connect(self.path, timeout=0.05) as a, aiosqlite.connect(
            self.path, timeout=0.05
        ) as b:
            await a.execute("create table t(x)")
            await a.commit()
            await a.execute("insert into t values (1)")
            start = time.monotonic()
            with self.assertRaisesRegex(sqlite3.OperationalError, "locked"):
                await b.execute("insert into t values (2)")
            self.assertLess(time.monotonic() - start, 2)


class ExitTest(unittest.TestCase):
    def run_child(self, body, timeout=20):
        code = "import aiolite, asyncio, sqlite3\n" + textwrap.dedent(body)
        start = time.monotonic()
        p = subprocess.run(
            [sys.executable, "-X", "dev", "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return p, time.monotonic() - start

    def test_exit_with_open_connection_and_transaction(self):
        p, took = self.run_child(
            """
            async def main():
                global db
                db = await aiolite.connect(":memory:")
                await db.execute("create table t(x)")
                await db.execute("insert into t values (1)")
            asyncio.run(main())
            print("done")
            """
        )
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("done", p.stdout)
        self.assertLess(took, 10)

    def test_exit_while_a_python_function_runs_on_the_worker(self):
        p, took = self.run_child(
            """
            import time
            def slow(x):
                time.sleep(0.001)
                return x
            async def main():
                global db
                db = await aiolite.connect(":memory:")
                await db.create_function("slow", 1, slow)
                asyncio.ensure_future(db.execute_fetchall(
                    "with recursive c(n) as (select 1 union all select n+1 from c limit 100000) "
                    "select sum(slow(n)) from c"))
                await asyncio.sleep(0.2)
            loop = asyncio.new_event_loop()
            loop.run_until_complete(main())
            print("done")
            """
        )
        self.assertIn("done", p.stdout)
        self.assertNotIn("panicked", p.stderr)
        self.assertNotIn("Fatal Python error", p.stderr)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertLess(took, 10)


if __name__ == "__main__":
    unittest.main()

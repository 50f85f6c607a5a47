"""µs per call of common operations, aiosqlite vs aiolite, with the event loop in normal
(non-debug) mode — aiosqlite's perf.py runs under IsolatedAsyncioTestCase, whose loop is in
debug mode. Same script for both: ``python bench_compat.py aiolite|aiosqlite`` prints JSON;
without an argument it runs both, interleaved, and prints a table of medians.
"""

import asyncio
import json
import statistics
import subprocess
import sys
import time

ROUNDS = 5


async def bench(aiosqlite):
    out = {}

    async def timeit(name, fn, n):
        for _ in range(max(10, n // 20)):
            await fn()
        t = time.perf_counter()
        for _ in range(n):
            await fn()
        out[name] = (time.perf_counter() - t) / n * 1e6

    async with aiosqlite.connect(":memory:") as db:
        await db.execute("create table t(id integer primary key, a integer, b text, c real)")
        await db.executemany(
            "insert into t(a, b, c) values (?, ?, ?)", [(i, f"row {i}", i / 3) for i in range(1000)]
        )
        await db.commit()

        await timeit("execute_fetchall('select 1, 2')", lambda: db.execute_fetchall("select 1, 2"), 5000)

        async def execute_fetchall():
            cur = await db.execute("select 1, 2")
            await cur.fetchall()
            await cur.close()

        await timeit("execute + fetchall + close", execute_fetchall, 5000)

        async def point():
            async with db.execute("select * from t where id = ?", (500,)) as cur:
                await cur.fetchone()

        await timeit("point select (async with + fetchone)", point, 5000)

        async def insert_commit():
            await db.execute("insert into t(a, b, c) values (1, 'x', 2.5)")
            await db.commit()

        await timeit("insert + commit", insert_commit, 3000)

        async def gather64():
            await asyncio.gather(*[db.execute_fetchall("select ?", (i,)) for i in range(64)])

        await timeit("gather of 64 (per op)", gather64, 200)
        out["gather of 64 (per op)"] /= 64

        await timeit("fetch 1000 rows x 4 columns", lambda: db.execute_fetchall("select * from t"), 300)

        async def iterate():
            async with db.execute("select * from t") as cur:
                async for _ in cur:
                    pass

        await timeit("async for over 1000 rows", iterate, 300)

    async def connect_close():
        async with aiosqlite.connect(":memory:"):
            pass

    await timeit("connect + close", connect_close, 500)
    return out


def child(impl):
    if impl == "aiolite":
        import aiolite

        aiolite.install_as_aiosqlite()
    import aiosqlite

    print(json.dumps(asyncio.run(bench(aiosqlite))))


def main():
    results = {"aiosqlite": [], "aiolite": []}
    for _ in range(ROUNDS):
        for impl in results:
            p = subprocess.run(
                [sys.executable, __file__, impl], capture_output=True, text=True, check=True
            )
            results[impl].append(json.loads(p.stdout.strip().splitlines()[-1]))
    print(f"\n=== µs per call, loop not in debug mode (median of {ROUNDS} interleaved runs)\n")
    print(f"| {'operation':<38} | {'aiosqlite':>9} | {'aiolite':>8} | {'speed-up':>8} |")
    print(f"|{'-' * 40}|{'-' * 11}|{'-' * 10}|{'-' * 10}|")
    for name in results["aiosqlite"][0]:
        a = statistics.median(r[name] for r in results["aiosqlite"])
        b = statistics.median(r[name] for r in results["aiolite"])
        print(f"| {name:<38} | {a:>9.1f} | {b:>8.1f} | {a / b:>7.1f}x |")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        child(sys.argv[1])
    else:
        main()

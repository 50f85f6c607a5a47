"""SQLAlchemy's ``sqlite+aiosqlite`` dialect, unchanged, on aiolite (``install_as_aiosqlite``):
async engine (Core), ORM session, streaming (server-side cursor) results, transactions,
isolation levels, user functions, errors."""

import asyncio
import datetime
import os
import tempfile
import unittest

import aiolite

aiolite.install_as_aiosqlite()

import aiosqlite  # noqa: E402
from sqlalchemy import (  # noqa: E402
    Column,
    DateTime,
    ForeignKey,
    Integer,
    String,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, relationship, selectinload  # noqa: E402


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id = Column(Integer, primary_key=True)
    name = Column(String(50), nullable=False, unique=True)
    created = Column(DateTime, default=datetime.datetime(2024, 1, 2, 3, 4, 5))
    posts = relationship("Post", back_populates="author", cascade="all, delete-orphan")


class Post(Base):
    __tablename__ = "posts"
    id = Column(Integer, primary_key=True)
    title = Column(String(100))
    user_id = Column(ForeignKey("users.id"))
    author = relationship("User", back_populates="posts")


class SQLAlchemyTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.assertEqual(aiosqlite.__name__, "aiolite.compat")
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.url = "sqlite+aiosqlite:///" + os.path.join(self.dir.name, "sa.db")

    async def asyncSetUp(self):
        self.engine = create_async_engine(self.url)
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def asyncTearDown(self):
        await self.engine.dispose()

    async def test_driver_is_aiolite(self):
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            self.assertEqual(type(raw.driver_connection).__module__, "aiolite.core")
            version = (await conn.execute(text("select sqlite_version()"))).scalar_one()
            self.assertEqual(version, aiosqlite.sqlite_version)

    async def test_core_crud_and_rowcount(self):
        async with self.engine.begin() as conn:
            await conn.execute(insert(User), [{"name": f"u{i}"} for i in range(10)])
            r = await conn.execute(update(User).where(User.id <= 3).values(name=User.name + "!"))
            self.assertEqual(r.rowcount, 3)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(User.name).order_by(User.id))).scalars().all()
            self.assertEqual(rows[:4], ["u0!", "u1!", "u2!", "u3"])
            n = (await conn.execute(select(func.count()).select_from(User))).scalar_one()
            self.assertEqual(n, 10)

    async def test_orm_session_relationships_and_returning(self):
        Session = async_sessionmaker(self.engine, expire_on_commit=False)
        async with Session() as session:
            async with session.begin():
                ann = User(name="ann", posts=[Post(title="a"), Post(title="b")])
                bob = User(name="bob")
                session.add_all([ann, bob])
            self.assertIsNotNone(ann.id)
            self.assertEqual(ann.created, datetime.datetime(2024, 1, 2, 3, 4, 5))
        async with Session() as session:
            users = (
                await session.scalars(
                    select(User).options(selectinload(User.posts)).order_by(User.name)
                )
            ).all()
            self.assertEqual([u.name for u in users], ["ann", "bob"])
            self.assertEqual(sorted(p.title for p in users[0].posts), ["a", "b"])
            users[1].name = "robert"
            await session.commit()
        async with Session() as session:
            got = await session.get(User, users[1].id)
            self.assertEqual(got.name, "robert")
            await session.delete(got)
            await session.commit()
            self.assertEqual(await session.scalar(select(func.count(User.id))), 1)

    async def test_rollback_and_integrity_error(self):
        Session = async_sessionmaker(self.engine)
        async with Session() as session:
            session.add(User(name="dup"))
            await session.commit()
        async with Session() as session:
            session.add(User(name="dup"))
            with self.assertRaises(IntegrityError) as cm:
                await session.commit()
            self.assertEqual(cm.exception.orig.sqlite_errorname, "SQLITE_CONSTRAINT_UNIQUE")
            await session.rollback()
            session.add(User(name="other"))
            await session.commit()
        async with self.engine.begin() as conn:
            await conn.execute(insert(User).values(name="rolled-back"))
            await conn.rollback()
        async with self.engine.connect() as conn:
            names = set((await conn.execute(select(User.name))).scalars())
            self.assertEqual(names, {"dup", "other"})

    async def test_streaming_results(self):
        async with self.engine.begin() as conn:
            await conn.execute(insert(User), [{"name": f"s{i:05}"} for i in range(5000)])
        async with self.engine.connect() as conn:
            result = await conn.stream(select(User.id, User.name).order_by(User.id))
            count = 0
            async for partition in result.partitions(100):
                self.assertLessEqual(len(partition), 100)
                count += len(partition)
            self.assertEqual(count, 5000)
            result = await conn.stream_scalars(select(User.name).order_by(User.id))
            first = [name async for name in result]
            self.assertEqual(first[0], "s00000")
            self.assertEqual(len(first), 5000)

    async def test_isolation_levels_and_autocommit(self):
        auto = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        async with auto.connect() as conn:
            await conn.execute(insert(User).values(name="auto"))
            raw = await conn.get_raw_connection()
            self.assertFalse(raw.driver_connection.in_transaction)
        async with self.engine.connect() as conn:
            level = await conn.get_isolation_level()
            self.assertEqual(level, "SERIALIZABLE")
            names = (await conn.execute(select(User.name))).scalars().all()
            self.assertEqual(names, ["auto"])

    async def test_create_function_and_text(self):
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.create_function("twice", 1, lambda x: x * 2)
            v = (await conn.execute(text("select twice(:x)"), {"x": 21})).scalar_one()
            self.assertEqual(v, 42)
            # The dialect's own REGEXP function (registered on connect).
            r = (await conn.execute(text("select 'abc' REGEXP 'b'"))).scalar_one()
            self.assertEqual(r, 1)

    async def test_operational_error(self):
        async with self.engine.connect() as conn:
            with self.assertRaises(OperationalError):
                await conn.execute(text("select * from nope"))

    async def test_concurrent_sessions(self):
        Session = async_sessionmaker(self.engine)

        async def work(i):
            async with Session() as session:
                async with session.begin():
                    session.add(User(name=f"c{i}"))

        await asyncio.gather(*[work(i) for i in range(20)])
        async with Session() as session:
            self.assertEqual(await session.scalar(select(func.count(User.id))), 20)

    async def test_memory_database_static_pool(self):
        engine = create_async_engine("sqlite+aiosqlite://")
        try:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
                await conn.execute(insert(User).values(name="mem"))
            async with AsyncSession(engine) as session:
                self.assertEqual(await session.scalar(select(User.name)), "mem")
        finally:
            await engine.dispose()


if __name__ == "__main__":
    unittest.main()

//! `aiolite._aiolite`: the native half of the Python package `aiolite` (an aiosqlite drop-in
//! on aiolite's Rust core).
//!
//! - `core::Core`: one aiolite connection; commands go to its worker with
//!   `aiolite::Connection::submit`, replies come back through the per-loop completion hub
//!   (`hub`), so the worker never takes the GIL for plain SQL.
//! - `future::LiteFuture`: the asyncio-compatible future those replies complete.
//! - `cursor::RawCursor`: a DB-API cursor streaming rows in chunks.
//! - `dump::Dumper`: `iterdump()`.
//! - `gate`: the one door through which workers enter Python (shut at exit).
//!
//! The Python layer (`python/aiolite/`) reproduces aiosqlite's classes on top of these.

mod convert;
mod core;
mod cursor;
mod dump;
mod errnames;
mod future;
mod gate;
mod hub;
mod sqltext;

use pyo3::prelude::*;

#[pymodule]
fn _aiolite(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<core::Core>()?;
    m.add_class::<cursor::RawCursor>()?;
    m.add_class::<dump::Dumper>()?;
    m.add_class::<hub::Hub>()?;
    m.add_class::<future::LiteFuture>()?;
    m.add_function(wrap_pyfunction!(core::open, m)?)?;
    m.add_function(wrap_pyfunction!(core::shutdown, m)?)?;
    m.add("sqlite_version", aiolite::rusqlite::version())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

//! Big `fetch_all` results, built on the caller's thread.
//!
//! A `fetch_all` whose statement returns more than [`FIRST_ROWS`] rows does not build all its
//! rows on the worker. The worker replies with the first rows and a [`Pipe`], then steps on and
//! writes each further row's values into byte chunks of up to [`CHUNK_BYTES`]. The awaiting
//! future turns the chunks into [`Row`]s as they arrive, while the worker steps on.
//!
//! Two things are gained. The work per row is split over two threads, so a big result
//! arrives about as fast as one thread can step the statement. And the result's memory (the
//! row vector, every text and blob) is allocated by the thread that will use and free it,
//! not by the worker. A new worker thread's malloc arena starts cold, and filling tens of
//! megabytes there costs a page fault per page and many `mprotect` calls; the caller's arena
//! is usually warm.
//!
//! The job stays one job: the statement is stepped to its end before the worker takes the
//! next command, exactly as when all rows are built on the worker. Dropping the future stops
//! the worker at its next chunk, or sooner through the progress handler (the job is
//! cancelled like any running job).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use futures_util::task::AtomicWaker;

use crate::error::{Error, Result};
use crate::row::{ColumnLabel, Columns, Row};
use crate::value::Value;
use crate::worker::Ctx;

/// Rows a `fetch_all` builds on the worker before it streams the rest.
pub(crate) const FIRST_ROWS: usize = 256;

/// The size a chunk of encoded rows is sent at, at most.
pub(crate) const CHUNK_BYTES: usize = 64 * 1024;

/// The size of the first chunk: the chunks double from it up to [`CHUNK_BYTES`], so that the
/// collector gets to work early on results of a few hundred rows.
pub(crate) const FIRST_CHUNK_BYTES: usize = 8 * 1024;

/// Chunks the collector decodes in a row, without waiting, before it yields to its executor.
const YIELD_EVERY: usize = 16;

/// Return `Pending` once (after asking to be polled again).
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

const NULL: u8 = 0;
const INTEGER: u8 = 1;
const REAL: u8 = 2;
const TEXT: u8 = 3;
const BLOB: u8 = 4;

/// Appends one value in the chunk encoding (a tag byte; 8 native-endian bytes for numbers; a
/// native-endian `u32` length and the bytes for text and blobs).
#[derive(Debug)]
pub(crate) struct Encoder<'a>(pub(crate) &'a mut Vec<u8>);

impl Encoder<'_> {
    #[inline]
    pub(crate) fn null(&mut self) {
        self.0.push(NULL);
    }

    #[inline]
    pub(crate) fn integer(&mut self, v: i64) {
        self.0.push(INTEGER);
        self.0.extend_from_slice(&v.to_ne_bytes());
    }

    #[inline]
    pub(crate) fn real(&mut self, v: f64) {
        self.0.push(REAL);
        self.0.extend_from_slice(&v.to_ne_bytes());
    }

    /// Text as SQLite returned it; UTF-8 is checked where the `String` is built.
    #[inline]
    pub(crate) fn text(&mut self, bytes: &[u8]) -> Result<()> {
        self.bytes(TEXT, bytes)
    }

    #[inline]
    pub(crate) fn blob(&mut self, bytes: &[u8]) -> Result<()> {
        self.bytes(BLOB, bytes)
    }

    #[inline]
    fn bytes(&mut self, tag: u8, bytes: &[u8]) -> Result<()> {
        let n = u32::try_from(bytes.len()).map_err(|_| Error::sqlite(rusqlite::ffi::SQLITE_TOOBIG, "value too big"))?;
        self.0.reserve(5 + bytes.len());
        self.0.push(tag);
        self.0.extend_from_slice(&n.to_ne_bytes());
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Rows being encoded into a chunk (a cursor's next rows, see `worker::read_chunk`).
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) rows: usize,
}

/// A cursor's chunk of encoded rows.
#[derive(Debug)]
pub struct EncodedChunk {
    pub(crate) bytes: Vec<u8>,
    pub(crate) rows: usize,
    /// `true` when the statement finished (the cursor is closed).
    pub(crate) done: bool,
}

/// Decode every row of `buf` (rows of `columns.len()` values each) onto `out`.
fn decode(buf: &[u8], columns: &Columns, out: &mut Vec<Row>) -> Result<()> {
    let mut at = 0;
    while at < buf.len() {
        out.push(decode_row(buf, &mut at, columns)?);
    }
    Ok(())
}

/// Decode the row that starts at `*at` in `buf`, moving `*at` past it. Always inlined: left
/// to the compiler, an unrelated change once made it an out-of-line call from the cursor's
/// read path, and the stream lost 6% (same instruction count, interleaved runs).
#[inline(always)]
pub(crate) fn decode_row(buf: &[u8], at: &mut usize, columns: &Columns) -> Result<Row> {
    let mut p = *at;
    let mut row = Row::empty(Arc::clone(columns));
    for i in 0..columns.len() {
        let tag = buf[p];
        p += 1;
        let v = match tag {
            NULL => Value::Null,
            INTEGER | REAL => {
                let b: [u8; 8] = buf[p..p + 8].try_into().expect("8 bytes");
                p += 8;
                if tag == INTEGER {
                    Value::Integer(i64::from_ne_bytes(b))
                } else {
                    Value::Real(f64::from_ne_bytes(b))
                }
            }
            _ => {
                let len: [u8; 4] = buf[p..p + 4].try_into().expect("4 bytes");
                let len = u32::from_ne_bytes(len) as usize;
                let bytes = &buf[p + 4..p + 4 + len];
                p += 4 + len;
                if tag == TEXT {
                    match std::str::from_utf8(bytes) {
                        Ok(s) => Value::Text(s.to_owned()),
                        Err(_) => {
                            *at = p;
                            return Err(Error::InvalidUtf8 {
                                column: ColumnLabel(&columns[i].name, i).to_string(),
                            });
                        }
                    }
                } else {
                    debug_assert_eq!(tag, BLOB);
                    Value::Blob(bytes.to_vec())
                }
            }
        };
        row.push_value(v);
    }
    *at = p;
    Ok(row)
}

/// Chunks from the worker to the future that collects the rows.
pub(crate) struct Pipe {
    state: Mutex<State>,
    /// Chunks pushed plus the end: the collector spins on it before it parks.
    sent: AtomicUsize,
    waker: AtomicWaker,
    /// The collecting future was dropped: the worker stops.
    gone: AtomicBool,
}

#[derive(Default)]
struct State {
    full: VecDeque<Vec<u8>>,
    /// Chunks the collector decoded, for the worker to fill again.
    spare: Vec<Vec<u8>>,
    /// How the statement ended: set once, after the last chunk.
    end: Option<Result<()>>,
}

impl Pipe {
    pub(crate) fn new() -> Arc<Pipe> {
        Arc::new(Pipe {
            state: Mutex::new(State::default()),
            sent: AtomicUsize::new(0),
            waker: AtomicWaker::new(),
            gone: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new chunk to fill.
    pub(crate) fn new_chunk() -> Vec<u8> {
        Vec::with_capacity(CHUNK_BYTES + 512)
    }

    /// Chunks and end sent so far (see [`Pipe::sent`]).
    fn sent(&self) -> usize {
        self.sent.load(Ordering::Acquire)
    }

    /// Worker: send a chunk (waking the collector when `wake`; an empty one is dropped);
    /// returns a decoded one to fill next, if there is one.
    pub(crate) fn push(&self, chunk: Vec<u8>, wake: bool) -> Option<Vec<u8>> {
        let spare = {
            let mut s = self.lock();
            if !chunk.is_empty() {
                s.full.push_back(chunk);
                self.sent.fetch_add(1, Ordering::Release);
            }
            s.spare.pop()
        };
        if wake {
            self.waker.wake();
        }
        spare
    }

    /// How the command ended, after its last chunk: sent by the worker once the command is
    /// over, through the job's reply path.
    pub(crate) fn finish(&self, end: Result<()>) {
        self.lock().end = Some(end);
        self.sent.fetch_add(1, Ordering::Release);
        self.waker.wake();
    }

    /// `true` once the collecting future is gone.
    #[inline]
    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }
}

/// The reply to a `fetch_all` that streams: the rows the worker built, and the rest to come.
pub struct RowStream {
    pub(crate) first: Vec<Row>,
    pub(crate) columns: Columns,
    pub(crate) pipe: Arc<Pipe>,
    /// Rows the statement returned last time (to size the result).
    pub(crate) hint: usize,
    /// The job that streams (to cancel it).
    pub(crate) job: u64,
}

impl std::fmt::Debug for RowStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowStream")
            .field("first", &self.first.len())
            .field("columns", &self.columns.len())
            .finish_non_exhaustive()
    }
}

/// A stream dropped before its end (collected or not) stops the worker at its next chunk.
impl Drop for RowStream {
    fn drop(&mut self) {
        self.pipe.gone.store(true, Ordering::Relaxed);
    }
}

/// How the collector may spin before it parks: the connection's caller back-off and its
/// `wait_spin` bound (`None`: never).
pub(crate) type Spin<'a> = Option<(&'a crate::spin::Backoff, u64)>;

/// Cancels the streaming job if the collecting future is dropped before the end, so that the
/// progress handler stops the statement without waiting for the next chunk.
struct Collecting<'a> {
    ctx: &'a Ctx,
    job: u64,
    done: bool,
}

impl Drop for Collecting<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.ctx.request_cancel(self.job);
        }
    }
}

impl RowStream {
    /// Collect every row: the first ones, then each chunk as the worker sends it.
    pub(crate) async fn collect(self, ctx: &Ctx, spin: Spin<'_>) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        self.collect_into(ctx, spin, &mut out).await?;
        Ok(out)
    }

    /// [`collect`](Self::collect) onto `out`, which keeps the rows built before an error.
    pub(crate) async fn collect_into(mut self, ctx: &Ctx, spin: Spin<'_>, out: &mut Vec<Row>) -> Result<()> {
        let mut guard = Collecting {
            ctx,
            job: self.job,
            done: false,
        };
        let first = std::mem::take(&mut self.first);
        let (pipe, columns) = (&self.pipe, &self.columns);
        // The vector is allocated here, by the thread that will use it.
        out.reserve(self.hint.max(first.len() * 4).min(1 << 20));
        out.extend(first);
        let mut taken: VecDeque<Vec<u8>> = VecDeque::new();
        let mut since_pending = 0;
        loop {
            if since_pending >= YIELD_EVERY {
                // The worker keeps up: let other tasks of this executor thread run.
                since_pending = 0;
                yield_now().await;
            }
            if let Some((backoff, limit_ns)) = spin {
                // The worker is stepping: the next chunk is usually microseconds away, and a
                // parked thread takes tens of them to wake (bounded, adaptive: see `spin`).
                let seen = pipe.sent();
                let idle = {
                    let s = pipe.lock();
                    s.full.is_empty() && s.end.is_none()
                };
                if idle {
                    backoff.wait(limit_ns, || pipe.sent() != seen);
                }
            }
            let end = poll_fn(|cx| {
                let mut s = pipe.lock();
                if s.full.is_empty() && s.end.is_none() {
                    drop(s);
                    pipe.waker.register(cx.waker());
                    s = pipe.lock();
                    if s.full.is_empty() && s.end.is_none() {
                        since_pending = 0;
                        return Poll::Pending;
                    }
                }
                std::mem::swap(&mut taken, &mut s.full);
                Poll::Ready(if s.full.is_empty() { s.end.take() } else { None })
            })
            .await;
            since_pending += taken.len();
            for mut chunk in taken.drain(..) {
                let r = decode(&chunk, columns, out);
                chunk.clear();
                pipe.lock().spare.push(chunk);
                r?;
            }
            if let Some(end) = end {
                guard.done = true;
                return end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Column;

    fn columns(n: usize) -> Columns {
        Arc::new(
            (0..n)
                .map(|i| Column {
                    name: format!("c{i}"),
                    decl_type: None,
                })
                .collect(),
        )
    }

    #[test]
    fn encoding_round_trips_every_type() {
        let mut buf = Vec::new();
        let mut e = Encoder(&mut buf);
        e.null();
        e.integer(i64::MIN);
        e.real(-0.5);
        e.text("héllo".as_bytes()).unwrap();
        e.blob(&[0, 1, 255]).unwrap();
        e.integer(7);
        e.null();
        e.real(f64::MAX);
        e.text(b"").unwrap();
        e.blob(&[]).unwrap();
        let mut out = Vec::new();
        decode(&buf, &columns(5), &mut out).unwrap();
        assert_eq!(out.len(), 2);
        let v = |r: &Row, i: usize| r.get::<Value>(i).unwrap();
        assert_eq!(v(&out[0], 0), Value::Null);
        assert_eq!(v(&out[0], 1), Value::Integer(i64::MIN));
        assert_eq!(v(&out[0], 2), Value::Real(-0.5));
        assert_eq!(v(&out[0], 3), Value::Text("héllo".into()));
        assert_eq!(v(&out[0], 4), Value::Blob(vec![0, 1, 255]));
        assert_eq!(v(&out[1], 0), Value::Integer(7));
        assert_eq!(v(&out[1], 1), Value::Null);
        assert_eq!(v(&out[1], 2), Value::Real(f64::MAX));
        assert_eq!(v(&out[1], 3), Value::Text(String::new()));
        assert_eq!(v(&out[1], 4), Value::Blob(Vec::new()));
    }

    /// Counts wake-ups.
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn the_collector_yields_while_chunks_keep_coming() {
        let pipe = Pipe::new();
        let chunks = YIELD_EVERY * 2 + 3;
        for k in 0..chunks {
            let mut c = Vec::new();
            for i in 0..10 {
                Encoder(&mut c).integer((k * 10 + i) as i64);
            }
            let _ = pipe.push(c, true);
        }
        let stream = RowStream {
            first: Vec::new(),
            columns: columns(1),
            pipe: Arc::clone(&pipe),
            hint: 0,
            job: 0,
        };
        let ctx = Ctx::new();
        let wakes = Arc::new(Wakes(std::sync::atomic::AtomicUsize::new(0)));
        let waker = std::task::Waker::from(Arc::clone(&wakes));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut fut = std::pin::pin!(stream.collect(&ctx, None));
        // Everything queued is decoded, then the future yields (asking to be polled again)
        // instead of going on to wait or to decode more.
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(pipe.lock().spare.len(), chunks);
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        // Nothing new: it waits without a wake-up of its own.
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        pipe.finish(Ok(()));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 2);
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(rows)) => {
                assert_eq!(rows.len(), chunks * 10);
                assert!(
                    rows.iter()
                        .enumerate()
                        .all(|(i, r)| r.get::<i64>(0).unwrap() == i as i64)
                );
            }
            other => panic!("expected every row, got {other:?}"),
        }
    }

    #[test]
    fn invalid_utf8_names_the_column() {
        let mut buf = Vec::new();
        let mut e = Encoder(&mut buf);
        e.integer(1);
        e.text(&[0xff, 0xfe]).unwrap();
        let mut out = Vec::new();
        let err = decode(&buf, &columns(2), &mut out).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidUtf8 { column } if column.contains("c1")),
            "{err:?}"
        );
    }
}

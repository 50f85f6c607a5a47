//! `Cursor`: a streaming query result.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::pool::Permit;
use crate::reply::{ReplyTo, Slot, unexpected};
use crate::row::{Column, Columns, Row};
use crate::worker::{CursorChunk, Job, Op, Reply};

/// Upper bound of an adaptive chunk, in rows (see `Cursor::grow`).
const MAX_CHUNK_ROWS: usize = 512;
/// Upper bound of an adaptive chunk, in bytes of row data (estimated).
const MAX_CHUNK_BYTES: usize = 256 << 10;

/// The rows of a query, streamed from the worker in chunks of
/// [`iter_chunk_size`](crate::ConnectOptions::iter_chunk_size) rows.
///
/// The first chunk arrives with [`query`](Connection::query)'s reply; while you consume a
/// chunk, the worker reads the next one, so a cursor holds at most two chunks in memory
/// whatever the size of the result. When you read faster than the worker fills chunks (you
/// find the next one not there yet), the cursor asks for bigger ones, doubling up to 512 rows
/// or about 256 KiB of row data per chunk (never below `iter_chunk_size`), which keeps the
/// number of thread hand-offs low on big scans; a slow reader keeps the configured size.
///
/// Read it with [`fetch_one`](Cursor::fetch_one), [`fetch_many`](Cursor::fetch_many),
/// [`fetch_all`](Cursor::fetch_all) or as a [`Stream`] of `Result<Row>`. When a step fails,
/// the rows read before it come first, then the error.
///
/// The statement stays open on the connection until the cursor is exhausted or dropped;
/// dropping it early finalizes the statement. Reading on waits, like any statement, while
/// another handle's transaction is open: a cursor never reads inside someone else's
/// transaction. A cursor opened inside a transaction fails with
/// [`Error::TransactionEnded`] once that transaction is over.
pub struct Cursor {
    conn: Connection,
    /// The transaction the cursor was opened in (0: none): its chunks are its statements.
    owner: u64,
    id: u64,
    columns: Columns,
    /// The rows received and not read yet (a chunk's own vector: no copy).
    buf: std::vec::IntoIter<Row>,
    /// The worker has no more rows (or the cursor failed).
    done: bool,
    /// The cursor stopped because of an error (not because the rows ran out).
    failed: bool,
    /// An error met while asking for the next chunk, reported after the buffered rows.
    pending_error: Option<Error>,
    inflight: Option<Arc<Slot>>,
    /// Rows per hop as configured (`iter_chunk_size`).
    chunk: usize,
    /// Rows asked for in the next hop: `chunk`, grown while the reader outpaces the worker.
    next: usize,
    /// The reader found no rows buffered and the next chunk not there yet.
    starved: bool,
    /// A pool cursor keeps its pooled connection until it is dropped.
    permit: Option<Permit>,
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cursor")
            .field("columns", &self.columns)
            .field("buffered", &self.buf.len())
            .field("done", &self.done)
            .finish()
    }
}

impl Cursor {
    pub(crate) fn new(conn: Connection, owner: u64, id: u64, first: CursorChunk, chunk: usize) -> Cursor {
        let mut cur = Cursor {
            conn,
            owner,
            id,
            columns: first.columns,
            buf: Vec::new().into_iter(),
            done: false,
            failed: false,
            pending_error: None,
            inflight: None,
            chunk,
            next: chunk,
            starved: false,
            permit: None,
        };
        cur.accept_rows(first.rows, first.done);
        cur
    }

    pub(crate) fn with_permit(mut self, permit: Option<Permit>) -> Cursor {
        self.permit = permit;
        self
    }

    /// The result columns (names and declared types), known even when there are no rows.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn accept_rows(&mut self, rows: Vec<Row>, done: bool) {
        if std::mem::take(&mut self.starved) && !done {
            self.grow(&rows);
        }
        if self.buf.len() == 0 {
            self.buf = rows.into_iter();
        } else {
            // Not reached today (a chunk is accepted only once the buffer is empty).
            let mut all: Vec<Row> = std::mem::take(&mut self.buf).collect();
            all.extend(rows);
            self.buf = all.into_iter();
        }
        self.done = done;
        if !done {
            // Read ahead: the worker fills the next chunk while this one is consumed.
            if let Err(e) = self.request(self.next) {
                self.done = true;
                self.failed = true;
                self.pending_error = Some(e);
            }
        }
    }

    /// The reader waited for this chunk: ask for bigger ones (fewer hops), doubling up to
    /// [`MAX_CHUNK_ROWS`] rows and about [`MAX_CHUNK_BYTES`] bytes per chunk (judged by the
    /// rows just received), never below the configured size.
    fn grow(&mut self, rows: &[Row]) {
        self.next = grown(self.next, self.chunk, rows);
    }

    fn request(&mut self, n: usize) -> Result<()> {
        let shared = self.conn.shared();
        let slot = Slot::new();
        let job = Job {
            id: shared.next_id(),
            owner: self.owner,
            op: Op::CursorNext { cursor: self.id, n },
            reply: ReplyTo::Slot(Arc::clone(&slot)),
        };
        // A cursor has at most one request in flight, so it may pass the queue bound.
        if !shared.queue.push_force(job) {
            return Err(Error::Closed);
        }
        self.inflight = Some(slot);
        Ok(())
    }

    fn poll_row(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Row>>> {
        loop {
            if let Some(row) = self.buf.next() {
                return Poll::Ready(Some(Ok(row)));
            }
            let Some(slot) = self.inflight.as_ref() else {
                // The rows ran out, or a request for more failed: say why, once.
                return Poll::Ready(self.pending_error.take().map(Err));
            };
            if !slot.is_ready() {
                self.starved = true;
            }
            let outcome = std::task::ready!(slot.poll(cx));
            self.inflight = None;
            match outcome {
                Ok(Reply::Chunk(chunk)) => self.accept_rows(chunk.rows, chunk.done),
                Ok(_) => {
                    self.done = true;
                    self.failed = true;
                    return Poll::Ready(Some(Err(unexpected("cursor fetch"))));
                }
                Err(e) => {
                    self.done = true;
                    self.failed = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    /// The next row, `None` when the result is exhausted.
    ///
    /// # Failure
    /// SQLite's error while stepping (the cursor is then finished), or `Closed`.
    pub async fn fetch_one(&mut self) -> Result<Option<Row>> {
        // Like a cursor of a closed aiosqlite connection: once the connection closed under
        // it, every fetch says so (the stream, in contrast, ends after reporting it once).
        if self.failed && self.buf.len() == 0 && self.conn.is_closed() {
            return Err(Error::Closed);
        }
        futures_util::future::poll_fn(|cx| self.poll_row(cx)).await.transpose()
    }

    /// Up to `n` more rows (fewer only at the end of the result).
    ///
    /// # Failure
    /// As [`fetch_one`](Self::fetch_one).
    pub async fn fetch_many(&mut self, n: usize) -> Result<Vec<Row>> {
        let mut out = Vec::with_capacity(n.min(1024));
        while out.len() < n {
            match self.fetch_one().await? {
                Some(row) => out.push(row),
                None => break,
            }
        }
        Ok(out)
    }

    /// All remaining rows (the rest is read in one hop).
    ///
    /// # Failure
    /// As [`fetch_one`](Self::fetch_one).
    pub async fn fetch_all(&mut self) -> Result<Vec<Row>> {
        let mut out: Vec<Row> = std::mem::take(&mut self.buf).collect();
        // Wait for the read-ahead, then ask for everything else at once.
        if self.inflight.is_some() {
            let chunk_done =
                futures_util::future::poll_fn(|cx| self.inflight.as_ref().expect("in flight").poll(cx)).await;
            self.inflight = None;
            match chunk_done {
                Ok(Reply::Chunk(c)) => {
                    out.extend(c.rows);
                    self.done = c.done;
                }
                Ok(_) => {
                    self.done = true;
                    return Err(unexpected("cursor fetch"));
                }
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
        if !self.done {
            let op = Op::CursorNext {
                cursor: self.id,
                n: usize::MAX,
            };
            let r = self.conn.request(self.owner, op).await;
            self.done = true;
            match r? {
                Reply::Chunk(c) => out.extend(c.rows),
                _ => return Err(unexpected("cursor fetch")),
            }
        }
        Ok(out)
    }

    /// Stop reading: finalize the statement now (dropping the cursor does the same).
    pub fn close(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(slot) = self.inflight.take() {
            slot.cancel();
        }
        if !self.done {
            self.done = true;
            self.conn.send_cleanup(0, Op::CursorClose { cursor: self.id });
        }
        self.buf = Vec::new().into_iter();
        // Released after the close was queued: the next holder's work runs after it.
        self.permit = None;
    }
}

/// The next chunk size after the reader waited for `rows` (see `Cursor::grow`).
fn grown(next: usize, chunk: usize, rows: &[Row]) -> usize {
    if rows.is_empty() {
        return next;
    }
    let bytes: usize = rows.iter().map(Row::approx_size).sum();
    let per_row = (bytes / rows.len()).max(1);
    let cap = (MAX_CHUNK_BYTES / per_row).min(MAX_CHUNK_ROWS).max(chunk);
    next.saturating_mul(2).min(cap)
}

impl Stream for Cursor {
    type Item = Result<Row>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Row>>> {
        self.get_mut().poll_row(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (
            self.buf.len(),
            if self.done && self.inflight.is_none() {
                Some(self.buf.len())
            } else {
                None
            },
        )
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    fn rows(n: usize, blob: usize) -> Vec<Row> {
        let columns: Columns = Arc::from(vec![Column {
            name: "b".into(),
            decl_type: None,
        }]);
        (0..n)
            .map(|_| Row::new(Arc::clone(&columns), vec![Value::Blob(vec![0; blob])].into()))
            .collect()
    }

    #[test]
    fn small_rows_grow_to_the_row_cap() {
        let mut next = 64;
        for _ in 0..10 {
            next = grown(next, 64, &rows(4, 8));
        }
        assert_eq!(next, MAX_CHUNK_ROWS);
    }

    #[test]
    fn big_rows_are_capped_by_bytes_but_never_below_the_configured_size() {
        // 64 KiB rows: a little under 4 fit in 256 KiB.
        let mut next = 1;
        for _ in 0..10 {
            next = grown(next, 1, &rows(2, 64 * 1024));
        }
        assert_eq!(next, 3, "{next}");
        // A configured size above the cap is kept.
        assert_eq!(grown(100, 100, &rows(2, 64 * 1024)), 100);
        // Nothing received: unchanged.
        assert_eq!(grown(8, 8, &[]), 8);
    }
}

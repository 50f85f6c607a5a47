//! `Cursor`: a streaming query result.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::pipe::EncodedChunk;
use crate::pool::Permit;
use crate::reply::{ReplyTo, Slot, unexpected};
use crate::row::{Column, Columns, Row};
use crate::worker::{CursorChunk, Job, Op, Reply};

/// Upper bound of an adaptive chunk, in rows (see `Cursor::grow`).
const MAX_CHUNK_ROWS: usize = 512;
/// Upper bound of an adaptive chunk, in bytes of row data (estimated).
const MAX_CHUNK_BYTES: usize = 256 << 10;
/// Requests a starved reader keeps in flight (see `Cursor::request_ahead`).
const MAX_AHEAD: usize = 2;

/// The rows of a query, streamed from the worker in chunks of
/// [`iter_chunk_size`](crate::ConnectOptions::iter_chunk_size) rows.
///
/// The first chunk arrives with [`query`](Connection::query)'s reply; while you consume a
/// chunk, the worker reads the next one. When you read faster than the worker fills chunks
/// (you find the next one not there yet), the cursor asks for bigger ones, doubling up to 512
/// rows or about 256 KiB of row data per chunk (never below `iter_chunk_size`), and keeps a
/// second request queued behind the first, so the worker starts the next chunk as soon as it
/// finishes one instead of waiting for you to wake up and ask. Memory stays bounded whatever
/// the size of the result: at most three chunks (the one you read, one finished, one being
/// filled); a slow reader keeps the configured size and one chunk ahead.
///
/// After the first chunk, the worker sends each chunk's values encoded in one byte buffer,
/// and the cursor builds each [`Row`] when you read it, on your thread: the worker does not
/// allocate rows that your thread would then free, and a chunk waiting to be read holds only
/// its bytes. A text value that is not UTF-8 is found when its row is read
/// ([`Error::InvalidUtf8`], after every row before it).
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
    buf: VecDeque<Row>,
    /// Emptied chunk vectors, handed back to the worker with the next requests.
    spare: Vec<Vec<Row>>,
    /// A chunk of encoded rows (see `pipe`), after the rows of `buf`: each row is built
    /// when it is read, on the reader's thread.
    enc: Vec<u8>,
    /// Where the next encoded row starts in `enc`.
    enc_at: usize,
    /// Encoded rows not read yet.
    enc_left: usize,
    /// Emptied encoded chunks, handed back to the worker with the next requests.
    spare_enc: Vec<Vec<u8>>,
    /// The worker has no more rows (or the cursor failed).
    done: bool,
    /// The worker finalized the statement itself (its last chunk came): no `CursorClose`.
    worker_closed: bool,
    /// The cursor stopped because of an error (not because the rows ran out).
    failed: bool,
    /// An error met while asking for the next chunk, reported after the buffered rows.
    pending_error: Option<Error>,
    /// Requests for the next chunks, oldest first (replies come in this order).
    inflight: VecDeque<Arc<Slot>>,
    /// Requests to keep in flight: 1, or [`MAX_AHEAD`] once the reader was starved.
    ahead: usize,
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
            .field("buffered", &self.buffered())
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
            buf: VecDeque::new(),
            spare: Vec::new(),
            enc: Vec::new(),
            enc_at: 0,
            enc_left: 0,
            spare_enc: Vec::new(),
            done: false,
            worker_closed: false,
            failed: false,
            pending_error: None,
            inflight: VecDeque::with_capacity(MAX_AHEAD),
            ahead: 1,
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

    /// Rows received and not read yet.
    fn buffered(&self) -> usize {
        self.buf.len() + self.enc_left
    }

    fn accept_rows(&mut self, rows: Vec<Row>, done: bool) {
        if std::mem::take(&mut self.starved) && !done {
            let bytes = rows.iter().map(Row::approx_size).sum();
            self.grow(bytes, rows.len());
            self.ahead = MAX_AHEAD;
        }
        if self.buf.is_empty() {
            // Keep the emptied vector for a later request (converting an empty deque back
            // to a vector moves nothing).
            let old = Vec::from(std::mem::replace(&mut self.buf, VecDeque::from(rows)));
            if old.capacity() > 0 && self.spare.len() < MAX_AHEAD {
                self.spare.push(old);
            }
        } else {
            // Not reached today (a chunk is accepted only once the buffer is empty).
            self.buf.extend(rows);
        }
        self.after_chunk(done);
    }

    /// A chunk of encoded rows, accepted once every row before it was read.
    fn accept_encoded(&mut self, c: EncodedChunk) {
        debug_assert_eq!(self.buffered(), 0);
        if std::mem::take(&mut self.starved) && !c.done {
            self.grow(c.bytes.len(), c.rows);
            self.ahead = MAX_AHEAD;
        }
        let mut old = std::mem::replace(&mut self.enc, c.bytes);
        // A buffer that grew for a huge value is not kept for the next chunks.
        if old.capacity() > 0 && old.capacity() <= 2 * MAX_CHUNK_BYTES && self.spare_enc.len() < MAX_AHEAD {
            old.clear();
            self.spare_enc.push(old);
        }
        self.enc_at = 0;
        self.enc_left = c.rows;
        self.after_chunk(c.done);
    }

    /// Decode the encoded rows not read yet onto `buf` (where every row then is).
    fn settle(&mut self) -> Result<()> {
        while self.enc_left > 0 {
            let row = self.decode_next()?;
            self.buf.push_back(row);
        }
        Ok(())
    }

    /// Build the next encoded row. A row that cannot be built (invalid UTF-8) fails the
    /// cursor and closes its statement, as the same error on the worker does.
    fn decode_next(&mut self) -> Result<Row> {
        self.enc_left -= 1;
        crate::pipe::decode_row(&self.enc, &mut self.enc_at, &self.columns).inspect_err(|_| {
            self.enc_left = 0;
            self.fail_now();
            self.close_statement();
        })
    }

    /// After a chunk: the end of the result, or the next requests.
    fn after_chunk(&mut self, done: bool) {
        self.done = done;
        if done {
            self.worker_closed = true;
            // The result is complete: a failed request for more no longer matters, and
            // requests still queued would find the statement finished: skip them.
            self.pending_error = None;
            self.cancel_inflight();
            self.spare = Vec::new();
            self.spare_enc = Vec::new();
        } else {
            self.request_ahead();
        }
    }

    /// Read ahead: keep `ahead` requests in flight, so the worker fills the next chunk while
    /// this one is consumed (and, for a starved reader, has the one after queued already).
    fn request_ahead(&mut self) {
        while self.inflight.len() < self.ahead {
            if let Err(e) = self.request(self.next) {
                // Reported once the rows of the requests already sent are read.
                self.pending_error = Some(e);
                if self.inflight.is_empty() {
                    self.done = true;
                    self.failed = true;
                }
                return;
            }
        }
    }

    fn cancel_inflight(&mut self) {
        for slot in self.inflight.drain(..) {
            slot.cancel();
        }
    }

    /// The reader waited for this chunk: ask for bigger ones (fewer hops), doubling up to
    /// [`MAX_CHUNK_ROWS`] rows and about [`MAX_CHUNK_BYTES`] bytes per chunk (judged by the
    /// rows just received), never below the configured size.
    fn grow(&mut self, bytes: usize, rows: usize) {
        self.next = grown(self.next, self.chunk, bytes, rows);
    }

    fn request(&mut self, n: usize) -> Result<()> {
        let shared = self.conn.shared();
        let slot = Slot::new();
        let job = Job {
            id: shared.next_id(),
            owner: self.owner,
            op: Op::CursorNext {
                cursor: self.id,
                n,
                buf: self.spare.pop().unwrap_or_default(),
                encoded: Some(self.spare_enc.pop().unwrap_or_default()),
            },
            reply: ReplyTo::Slot(Arc::clone(&slot)),
        };
        // A cursor has at most `MAX_AHEAD` requests in flight, so it may pass the queue bound.
        if !shared.queue.push_force(job) {
            return Err(Error::Closed);
        }
        self.inflight.push_back(slot);
        Ok(())
    }

    fn poll_row(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Row>>> {
        loop {
            if let Some(row) = self.buf.pop_front() {
                return Poll::Ready(Some(Ok(row)));
            }
            if self.enc_left > 0 {
                return Poll::Ready(Some(self.decode_next()));
            }
            let Some(slot) = self.inflight.front() else {
                // The rows ran out, or a request for more failed: say why, once.
                return Poll::Ready(self.pending_error.take().map(Err));
            };
            if !slot.is_ready() {
                self.starved = true;
            }
            let outcome = std::task::ready!(slot.poll(cx));
            self.inflight.pop_front();
            match outcome {
                Ok(Reply::Chunk(chunk)) => self.accept_rows(chunk.rows, chunk.done),
                Ok(Reply::Encoded(chunk)) => self.accept_encoded(chunk),
                other => return Poll::Ready(Some(Err(self.failed_with(other)))),
            }
        }
    }

    /// The error a reply that is not a chunk stands for; the cursor is finished.
    fn failed_with(&mut self, reply: Result<Reply>) -> Error {
        self.fail_now();
        match reply {
            Err(e) => e,
            Ok(_) => unexpected("cursor fetch"),
        }
    }

    /// A reply was an error: the cursor is finished (`finish` closes the statement if the
    /// worker did not).
    fn fail_now(&mut self) {
        self.done = true;
        self.failed = true;
        self.cancel_inflight();
        self.spare = Vec::new();
        self.spare_enc = Vec::new();
    }

    /// The next row, `None` when the result is exhausted.
    ///
    /// # Failure
    /// SQLite's error while stepping (the cursor is then finished), or `Closed`.
    pub async fn fetch_one(&mut self) -> Result<Option<Row>> {
        // Like a cursor of a closed aiosqlite connection: once the connection closed under
        // it, every fetch says so (the stream, in contrast, ends after reporting it once).
        if self.failed && self.buffered() == 0 && self.conn.is_closed() {
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

    /// All remaining rows. The rest is read in one command, sent like a big
    /// [`Connection::fetch_all`] result: past its first 256 rows, this future builds the rows
    /// from encoded chunks while the worker steps on.
    ///
    /// The rows stay in the cursor until the call returns: if you drop the call, the rows
    /// received so far are still there for the next fetch. If you drop it during the final
    /// command, that command stops and the cursor ends after the rows received.
    ///
    /// # Failure
    /// As [`fetch_one`](Self::fetch_one); every row before the failing one stays in the
    /// cursor.
    pub async fn fetch_all(&mut self) -> Result<Vec<Row>> {
        self.settle()?;
        // Wait for the read-ahead, then ask for everything else at once.
        while let Some(slot) = self.inflight.front().cloned() {
            let reply = futures_util::future::poll_fn(|cx| slot.poll(cx)).await;
            self.inflight.pop_front();
            let done = self.take_reply(reply)?;
            self.done = done;
            if done {
                self.pending_error = None;
                self.cancel_inflight();
            }
        }
        if let Some(e) = self.pending_error.take() {
            self.done = true;
            self.failed = true;
            return Err(e);
        }
        // Everything else in one command, sent like a `fetch_all` result: past its first rows,
        // built here from encoded chunks while the worker steps on. A backend that sends a
        // chunk instead may end it early with the rows before a failed step: the next request
        // then reports the error.
        while !self.done {
            let reply = self.conn.request(self.owner, Op::CursorRest { cursor: self.id }).await;
            self.done = match reply {
                Ok(Reply::Rows(rows)) => {
                    self.append(rows);
                    self.worker_closed = true;
                    true
                }
                Ok(Reply::Streaming(rest)) => {
                    // The worker closes the statement whatever happens.
                    self.worker_closed = true;
                    // Collected onto the rows already here (no copy of the big part); they
                    // go back into the cursor however this ends, dropped future included.
                    let rows = Vec::from(std::mem::take(&mut self.buf));
                    let mut back = PutBack {
                        buf: &mut self.buf,
                        rows,
                    };
                    let shared = self.conn.shared();
                    let spin = (shared.wait_spin_ns != 0).then_some((&shared.caller_backoff, shared.wait_spin_ns));
                    let r = rest.collect_into(&shared.ctx, spin, &mut back.rows).await;
                    drop(back);
                    if let Err(e) = r {
                        self.fail_now();
                        return Err(e);
                    }
                    true
                }
                other => self.take_reply(other)?,
            };
        }
        self.enc = Vec::new();
        Ok(std::mem::take(&mut self.buf).into())
    }

    /// `fetch_all`: add a reply's rows to `buf`; whether the worker finished the statement.
    fn take_reply(&mut self, reply: Result<Reply>) -> Result<bool> {
        let done = match reply {
            Ok(Reply::Chunk(c)) => {
                self.append(c.rows);
                c.done
            }
            Ok(Reply::Encoded(c)) => {
                self.worker_closed |= c.done;
                (self.enc, self.enc_at, self.enc_left) = (c.bytes, 0, c.rows);
                self.settle()?;
                c.done
            }
            other => return Err(self.failed_with(other)),
        };
        self.worker_closed |= done;
        Ok(done)
    }

    /// Add a chunk's rows to the buffer (taking the chunk's vector when the buffer is empty).
    fn append(&mut self, rows: Vec<Row>) {
        if self.buf.is_empty() {
            self.buf = VecDeque::from(rows);
        } else {
            self.buf.extend(rows);
        }
    }

    /// Finalize the statement on the worker unless the worker did (closing an unknown cursor
    /// does nothing).
    fn close_statement(&mut self) {
        if !self.worker_closed {
            self.worker_closed = true;
            self.conn.send_cleanup(0, Op::CursorClose { cursor: self.id });
        }
    }

    /// Stop reading: finalize the statement now (dropping the cursor does the same).
    pub fn close(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.cancel_inflight();
        self.done = true;
        // Also after an error: a request refused because the cursor's transaction ended left
        // the statement (and its read transaction) open.
        self.close_statement();
        self.buf = VecDeque::new();
        self.spare = Vec::new();
        (self.enc, self.enc_left) = (Vec::new(), 0);
        self.spare_enc = Vec::new();
        // Released after the close was queued: the next holder's work runs after it.
        self.permit = None;
    }
}

/// Rows being collected for a cursor's buffer, put back into it when dropped.
struct PutBack<'a> {
    buf: &'a mut VecDeque<Row>,
    rows: Vec<Row>,
}

impl Drop for PutBack<'_> {
    fn drop(&mut self) {
        *self.buf = VecDeque::from(std::mem::take(&mut self.rows));
    }
}

/// The next chunk size after the reader waited for a chunk of `rows` rows holding about
/// `bytes` bytes (see `Cursor::grow`).
fn grown(next: usize, chunk: usize, bytes: usize, rows: usize) -> usize {
    if rows == 0 {
        return next;
    }
    let per_row = (bytes / rows).max(1);
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
            // Encoded rows may still fail to build: only built ones are certain.
            self.buf.len(),
            if self.done && self.inflight.is_empty() && self.pending_error.is_none() {
                Some(self.buffered())
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

    fn grown_by(next: usize, chunk: usize, rows: &[Row]) -> usize {
        grown(next, chunk, rows.iter().map(Row::approx_size).sum(), rows.len())
    }

    #[test]
    fn small_rows_grow_to_the_row_cap() {
        let mut next = 64;
        for _ in 0..10 {
            next = grown_by(next, 64, &rows(4, 8));
        }
        assert_eq!(next, MAX_CHUNK_ROWS);
    }

    #[test]
    fn big_rows_are_capped_by_bytes_but_never_below_the_configured_size() {
        // 64 KiB rows: a little under 4 fit in 256 KiB.
        let mut next = 1;
        for _ in 0..10 {
            next = grown_by(next, 1, &rows(2, 64 * 1024));
        }
        assert_eq!(next, 3, "{next}");
        // A configured size above the cap is kept.
        assert_eq!(grown_by(100, 100, &rows(2, 64 * 1024)), 100);
        // Nothing received: unchanged.
        assert_eq!(grown_by(8, 8, &[]), 8);
    }
}

//! Incremental BLOB I/O: a BLOB cell as an async reader, writer and seeker.

use std::any::Any;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncSeek, AsyncWrite, SeekFrom};

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::reply::Slot;
use crate::worker::Reply;

/// Largest read or write sent to the worker in one command.
const CHUNK: usize = 256 * 1024;

/// An open BLOB cell ([`Connection::blob_open`]): implements `futures::io::AsyncRead`,
/// `AsyncWrite` and `AsyncSeek` over the cell's bytes.
///
/// The size is fixed when the cell is written with SQL (e.g. `zeroblob(n)`); writes cannot
/// grow it — a write past the end fails. Each read or write is one command to the worker,
/// of at most 256 KiB, so other work on the connection interleaves with long transfers. If the
/// row is changed or deleted by SQL meanwhile, the next read or write sees the new cell or
/// fails.
pub struct Blob {
    conn: Connection,
    table: Arc<str>,
    column: Arc<str>,
    rowid: i64,
    read_only: bool,
    size: u64,
    pos: u64,
    inflight: Option<(Arc<Slot>, Pending)>,
    /// Bytes read but not yet handed out (the caller's buffer shrank between polls).
    leftover: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Pending {
    Read,
    Write,
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("table", &self.table)
            .field("column", &self.column)
            .field("rowid", &self.rowid)
            .field("size", &self.size)
            .field("position", &self.pos)
            .field("read_only", &self.read_only)
            .finish()
    }
}

fn io_err(e: Error) -> io::Error {
    match e {
        Error::Closed => io::Error::new(io::ErrorKind::NotConnected, e),
        other => io::Error::other(other),
    }
}

impl Blob {
    /// Size of the cell, in bytes.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// `true` for an empty cell.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Current position.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn start(&mut self, pending: Pending, data: Option<Vec<u8>>, len: usize) -> Result<()> {
        let (table, column, rowid, read_only, pos) = (
            Arc::clone(&self.table),
            Arc::clone(&self.column),
            self.rowid,
            self.read_only,
            self.pos,
        );
        let slot = self.conn.start_internal(Box::new(move |st| {
            let conn = st.conn();
            let mut blob = conn
                .blob_open("main", &*table, &*column, rowid, read_only)
                .map_err(Error::from_rusqlite)?;
            let offset = usize::try_from(pos).unwrap_or(usize::MAX);
            let out: Box<dyn Any + Send> = match data {
                None => {
                    let mut buf = vec![0_u8; len];
                    let n = blob.read_at(&mut buf, offset).map_err(Error::from_rusqlite)?;
                    buf.truncate(n);
                    Box::new(buf)
                }
                Some(bytes) => {
                    blob.write_at(&bytes, offset).map_err(|e| match e {
                        rusqlite::Error::BlobSizeError => Error::InvalidArgument {
                            message: "write past the end of the BLOB (its size is fixed)".into(),
                        },
                        other => Error::from_rusqlite(other),
                    })?;
                    Box::new(bytes.len())
                }
            };
            blob.close().map_err(Error::from_rusqlite)?;
            Ok(out)
        }))?;
        self.inflight = Some((slot, pending));
        Ok(())
    }

    /// Wait for the command in flight; returns what it produced.
    fn poll_inflight(&mut self, cx: &mut Context<'_>) -> Poll<Result<Box<dyn Any + Send>>> {
        let Some((slot, _)) = self.inflight.as_ref() else {
            return Poll::Ready(Ok(Box::new(())));
        };
        let outcome = std::task::ready!(slot.poll(cx));
        self.inflight = None;
        Poll::Ready(match outcome {
            Ok(Reply::Any(b)) => Ok(b),
            Ok(_) => Err(crate::reply::unexpected("blob")),
            Err(e) => Err(e),
        })
    }
}

impl AsyncRead for Blob {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.leftover.is_empty() {
            let n = buf.len().min(this.leftover.len());
            buf[..n].copy_from_slice(&this.leftover[..n]);
            this.leftover.drain(..n);
            return Poll::Ready(Ok(n));
        }
        loop {
            match this.inflight.as_ref().map(|(_, p)| *p) {
                None => {
                    if this.pos >= this.size || buf.is_empty() {
                        return Poll::Ready(Ok(0));
                    }
                    let left = usize::try_from(this.size - this.pos).unwrap_or(usize::MAX);
                    let n = buf.len().min(left).min(CHUNK);
                    this.start(Pending::Read, None, n).map_err(io_err)?;
                }
                Some(Pending::Write) => {
                    // Finish the write first.
                    let done = std::task::ready!(this.poll_inflight(cx)).map_err(io_err)?;
                    this.pos += done.downcast::<usize>().map_or(0, |n| *n as u64);
                }
                Some(Pending::Read) => {
                    let data = std::task::ready!(this.poll_inflight(cx)).map_err(io_err)?;
                    let data = data.downcast::<Vec<u8>>().map_or_else(|_| Vec::new(), |b| *b);
                    this.pos += data.len() as u64;
                    let n = buf.len().min(data.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    this.leftover.extend_from_slice(&data[n..]);
                    return Poll::Ready(Ok(n));
                }
            }
        }
    }
}

impl AsyncWrite for Blob {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.read_only {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the BLOB was opened read-only",
            )));
        }
        loop {
            match this.inflight.as_ref().map(|(_, p)| *p) {
                None => {
                    if buf.is_empty() {
                        return Poll::Ready(Ok(0));
                    }
                    if this.pos >= this.size {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "write past the end of the BLOB (its size is fixed)",
                        )));
                    }
                    let left = usize::try_from(this.size - this.pos).unwrap_or(usize::MAX);
                    let n = buf.len().min(left).min(CHUNK);
                    this.start(Pending::Write, Some(buf[..n].to_vec()), n).map_err(io_err)?;
                }
                Some(Pending::Read) => {
                    // A read was abandoned half-way: drop its data, keep the position.
                    std::task::ready!(this.poll_inflight(cx)).map_err(io_err)?;
                }
                Some(Pending::Write) => {
                    let done = std::task::ready!(this.poll_inflight(cx)).map_err(io_err)?;
                    let n = done.downcast::<usize>().map_or(0, |n| *n);
                    this.pos += n as u64;
                    return Poll::Ready(Ok(n));
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some((_, Pending::Write)) = this.inflight {
            let done = std::task::ready!(this.poll_inflight(cx)).map_err(io_err)?;
            this.pos += done.downcast::<usize>().map_or(0, |n| *n as u64);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl AsyncSeek for Blob {
    fn poll_seek(self: Pin<&mut Self>, cx: &mut Context<'_>, pos: SeekFrom) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        if let Some((_, pending)) = this.inflight {
            let done = std::task::ready!(this.poll_inflight(cx)).map_err(io_err)?;
            if let Pending::Write = pending {
                this.pos += done.downcast::<usize>().map_or(0, |n| *n as u64);
            }
        }
        this.leftover.clear();
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => this.size.checked_add_signed(d),
            SeekFrom::Current(d) => this.pos.checked_add_signed(d),
        };
        match target {
            Some(p) => {
                this.pos = p;
                Poll::Ready(Ok(p))
            }
            None => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative position",
            ))),
        }
    }
}

impl Connection {
    /// Open the BLOB (or TEXT) cell at `table`.`column` in row `rowid` of the `main`
    /// database for incremental I/O, like Python's `Connection.blobopen`. The returned
    /// [`Blob`] implements `AsyncRead`, `AsyncWrite` (unless `read_only`) and `AsyncSeek`.
    ///
    /// # Failure
    /// SQLite's error when the table, column or row does not exist; `Closed`.
    ///
    /// # Example
    /// ```
    /// # futures::executor::block_on(async {
    /// use futures::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, SeekFrom};
    /// let db = aiolite::connect(":memory:").await?;
    /// db.execute("CREATE TABLE files(id INTEGER PRIMARY KEY, data BLOB)", ()).await?;
    /// db.execute("INSERT INTO files(id, data) VALUES (1, zeroblob(5))", ()).await?;
    /// let mut blob = db.blob_open("files", "data", 1, false).await?;
    /// blob.write_all(b"hello").await.unwrap();
    /// blob.seek(SeekFrom::Start(1)).await.unwrap();
    /// let mut s = String::new();
    /// blob.read_to_string(&mut s).await.unwrap();
    /// assert_eq!(s, "ello");
    /// # Ok::<(), aiolite::Error>(()) }).unwrap();
    /// ```
    pub async fn blob_open(&self, table: &str, column: &str, rowid: i64, read_only: bool) -> Result<Blob> {
        let (t, c): (Arc<str>, Arc<str>) = (table.into(), column.into());
        let (t2, c2) = (Arc::clone(&t), Arc::clone(&c));
        let size = self
            .with_state(move |st| {
                let blob = st
                    .conn()
                    .blob_open("main", &*t2, &*c2, rowid, read_only)
                    .map_err(Error::from_rusqlite)?;
                let n = blob.len() as u64;
                blob.close().map_err(Error::from_rusqlite)?;
                Ok(n)
            })
            .await?;
        Ok(Blob {
            conn: self.clone(),
            table: t,
            column: c,
            rowid,
            read_only,
            size,
            pos: 0,
            inflight: None,
            leftover: Vec::new(),
        })
    }
}

//! Copies of a database: online backup (`sqlite3_backup_*`), serialize / deserialize.

use std::fmt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::ffi;

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::stmt::last_error;
use crate::worker::{ConnState, Op, Shared};

/// Options for [`Connection::backup`]; `BackupOptions::default()` copies everything in one
/// step, like Python's `backup()`.
pub struct BackupOptions {
    /// Pages copied per step; `-1` (or any value ≤ 0) copies the rest in one step. Between
    /// steps the source serves other work.
    pub pages: i32,
    /// Called after each step (on the caller's task, not the worker).
    pub progress: Option<Box<dyn FnMut(BackupProgress) + Send>>,
    /// The source schema to copy: `main` (default), `temp`, or an attached name.
    pub name: String,
    /// How long to wait before retrying when a step meets a lock (Python's `sleep`, default
    /// 250 ms).
    pub sleep: Duration,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            pages: -1,
            progress: None,
            name: "main".to_owned(),
            sleep: Duration::from_millis(250),
        }
    }
}

impl fmt::Debug for BackupOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupOptions")
            .field("pages", &self.pages)
            .field("progress", &self.progress.is_some())
            .field("name", &self.name)
            .field("sleep", &self.sleep)
            .finish()
    }
}

/// Progress of a backup after one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupProgress {
    /// Pages still to copy.
    pub remaining: i32,
    /// Pages in the source database.
    pub page_count: i32,
}

/// Where a backup goes: another connection (its `main` database is replaced) or a file path
/// (created or overwritten).
#[derive(Debug)]
pub enum BackupTarget<'a> {
    /// An open aiolite connection.
    Connection(&'a Connection),
    /// A database file.
    Path(&'a Path),
}

impl<'a> From<&'a Connection> for BackupTarget<'a> {
    fn from(c: &'a Connection) -> Self {
        BackupTarget::Connection(c)
    }
}
impl<'a> From<&'a Path> for BackupTarget<'a> {
    fn from(p: &'a Path) -> Self {
        BackupTarget::Path(p)
    }
}
impl<'a> From<&'a PathBuf> for BackupTarget<'a> {
    fn from(p: &'a PathBuf) -> Self {
        BackupTarget::Path(p)
    }
}
impl<'a> From<&'a str> for BackupTarget<'a> {
    fn from(p: &'a str) -> Self {
        BackupTarget::Path(Path::new(p))
    }
}

enum DestSpec {
    Path(PathBuf),
    Shared(Arc<Shared>),
}

enum Dest {
    Owned { _conn: rusqlite::Connection },
    Shared(Arc<Shared>),
}

/// A running `sqlite3_backup`, owned by the source connection's state.
pub(crate) struct RawBackup {
    ptr: NonNull<ffi::sqlite3_backup>,
    finished: bool,
    // Declared last: an owned destination connection closes after the backup is finished.
    dest: Dest,
}

// SAFETY: the backup object is only used by the source worker while it holds the source lock,
// and (for a connection destination) the destination's lock too.
unsafe impl Send for RawBackup {}

impl RawBackup {
    /// Run `f` with the destination locked (for a connection destination).
    fn with_dest<R>(&mut self, f: impl FnOnce(*mut ffi::sqlite3_backup) -> R) -> Result<R> {
        match &self.dest {
            Dest::Owned { .. } => Ok(f(self.ptr.as_ptr())),
            Dest::Shared(shared) => {
                let guard = shared.lock_conn();
                if guard.is_none() {
                    return Err(Error::Closed);
                }
                let r = f(self.ptr.as_ptr());
                drop(guard);
                Ok(r)
            }
        }
    }
}

impl RawBackup {
    /// `sqlite3_backup_finish`, once: SQLite's result code.
    fn finish(&mut self) -> Result<i32> {
        if self.finished {
            return Ok(ffi::SQLITE_OK);
        }
        // SAFETY: `ptr` came from `sqlite3_backup_init` and is finished exactly once (the flag),
        // with the destination locked when it is another connection.
        let rc = self.with_dest(|p| unsafe { ffi::sqlite3_backup_finish(p) })?;
        self.finished = true;
        Ok(rc)
    }
}

impl Drop for RawBackup {
    fn drop(&mut self) {
        // A destination connection closed meanwhile could not close its handle while the
        // backup was attached; nothing more can be done then.
        let _ = self.finish();
    }
}

fn start(st: &mut ConnState, dest: DestSpec, name: &str) -> Result<RawBackup> {
    let src_db = st.handle();
    let schema = std::ffi::CString::new(name).map_err(|_| Error::InvalidArgument {
        message: "schema name contains a NUL byte".into(),
    })?;
    let (dest, dest_db, guard_shared) = match dest {
        DestSpec::Path(p) => {
            let c = rusqlite::Connection::open(&p).map_err(Error::from_rusqlite)?;
            // SAFETY: rusqlite's documented raw handle of an open connection we own.
            let db = unsafe { c.handle() };
            (Dest::Owned { _conn: c }, db, None)
        }
        DestSpec::Shared(shared) => {
            let mut guard = shared.lock_conn();
            let engine = guard.as_mut().ok_or(Error::Closed)?;
            let db = engine.local().map(|l| l.handle()).ok_or_else(|| Error::Unsupported {
                message: "a backup target must be a local SQLite connection".into(),
            })?;
            drop(guard);
            (Dest::Shared(Arc::clone(&shared)), db, Some(shared))
        }
    };
    let lock = guard_shared.as_ref().map(|s| s.lock_conn());
    // SAFETY: both handles are open; the source is used under its lock (we run on its worker),
    // the destination under its lock (`lock`) or owned by us.
    let raw = unsafe { ffi::sqlite3_backup_init(dest_db, c"main".as_ptr(), src_db, schema.as_ptr()) };
    let result = match NonNull::new(raw) {
        Some(ptr) => Ok(RawBackup {
            ptr,
            finished: false,
            dest,
        }),
        // SAFETY: the error is reported on the destination handle.
        None => Err(unsafe { last_error(dest_db) }),
    };
    drop(lock);
    result
}

/// One step: `(done, busy, remaining, page_count)`.
fn step(st: &mut ConnState, id: u64, pages: i32) -> Result<(bool, bool, i32, i32)> {
    let b = st.backups.get_mut(&id).ok_or_else(|| Error::InvalidArgument {
        message: "no such backup".into(),
    })?;
    // SAFETY: `p` is a live backup; both connections are locked (see `with_dest`).
    let (rc, remaining, total) = b.with_dest(|p| unsafe {
        let rc = ffi::sqlite3_backup_step(p, if pages <= 0 { -1 } else { pages });
        (rc, ffi::sqlite3_backup_remaining(p), ffi::sqlite3_backup_pagecount(p))
    })?;
    match rc {
        ffi::SQLITE_DONE => Ok((true, false, remaining, total)),
        ffi::SQLITE_OK => Ok((false, false, remaining, total)),
        ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => Ok((false, true, remaining, total)),
        code => {
            let b = st.backups.remove(&id);
            drop(b);
            Err(Error::sqlite(code, "backup step failed"))
        }
    }
}

fn finish(st: &mut ConnState, id: u64) -> Result<()> {
    let Some(mut b) = st.backups.remove(&id) else {
        return Ok(());
    };
    match b.finish()? {
        ffi::SQLITE_OK => Ok(()),
        code => Err(Error::sqlite(code, "backup failed")),
    }
}

/// A database image must start with SQLite's header and a valid page size (an empty image is
/// an empty database). Checked before SQLite sees it: once `main` holds garbage, SQLite cannot
/// even prepare the statement that would replace it again.
fn check_image(bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let page_size = match bytes.get(16..18) {
        Some([1, 0]) => 65536,
        Some(&[hi, lo]) => u32::from(u16::from_be_bytes([hi, lo])),
        _ => 0,
    };
    let ok = bytes.starts_with(b"SQLite format 3\0")
        && page_size.is_power_of_two()
        && (512..=65536).contains(&page_size)
        && bytes.len() >= page_size as usize;
    if ok {
        Ok(())
    } else {
        Err(Error::sqlite(
            ffi::SQLITE_NOTADB,
            "the bytes are not an SQLite database image",
        ))
    }
}

/// Finishes an abandoned backup (future dropped half-way).
struct Abandon<'a> {
    conn: &'a Connection,
    id: u64,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        let id = self.id;
        self.conn.send_cleanup(
            0,
            Op::Internal(Box::new(move |st| {
                drop(st.backups.remove(&id));
                Ok(Box::new(()))
            })),
        );
    }
}

impl Connection {
    /// Copy this database to `target` — another [`Connection`] (whose `main` database is
    /// replaced) or a file path — with SQLite's online backup API, like Python's
    /// `Connection.backup`. With `pages > 0` the copy runs in steps and this connection serves
    /// other work between them; `progress` is told after each step. Writes to the source by
    /// this connection between steps are copied too; writes by other connections restart the
    /// copy.
    ///
    /// # Failure
    /// [`Error::InvalidArgument`] for a backup onto itself; SQLite's error (e.g. the target
    /// has a transaction open); `Closed`.
    ///
    /// # Example
    /// ```
    /// # futures::executor::block_on(async {
    /// use aiolite::BackupOptions;
    /// let src = aiolite::connect(":memory:").await?;
    /// src.execute_script("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);").await?;
    /// let dst = aiolite::connect(":memory:").await?;
    /// src.backup(&dst, BackupOptions { pages: 1, ..Default::default() }).await?;
    /// assert_eq!(dst.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await?, Some(2));
    /// # Ok::<(), aiolite::Error>(()) }).unwrap();
    /// ```
    pub async fn backup<'t>(&self, target: impl Into<BackupTarget<'t>>, mut options: BackupOptions) -> Result<()> {
        let spec = match target.into() {
            BackupTarget::Connection(c) => {
                if std::ptr::eq(c.shared(), self.shared()) {
                    return Err(Error::InvalidArgument {
                        message: "cannot back up a connection onto itself".into(),
                    });
                }
                if c.is_closed() {
                    return Err(Error::Closed);
                }
                DestSpec::Shared(c.shared_arc())
            }
            BackupTarget::Path(p) => DestSpec::Path(p.to_path_buf()),
        };
        let id = self.shared().next_id();
        let name = options.name.clone();
        let abandon = Abandon { conn: self, id };
        self.with_state(move |st| {
            let b = start(st, spec, &name)?;
            st.backups.insert(id, b);
            Ok(())
        })
        .await?;
        let pages = options.pages;
        loop {
            let (done, busy, remaining, page_count) = self.with_state(move |st| step(st, id, pages)).await?;
            if let Some(progress) = options.progress.as_mut() {
                progress(BackupProgress { remaining, page_count });
            }
            if done {
                break;
            }
            if busy {
                futures_timer::Delay::new(options.sleep).await;
            }
        }
        std::mem::forget(abandon);
        self.with_state(move |st| finish(st, id)).await
    }

    /// The database as bytes (`sqlite3_serialize` of `main`): the same bytes as the database
    /// file would hold.
    ///
    /// # Failure
    /// SQLite's error; `Closed`.
    pub async fn serialize(&self) -> Result<Vec<u8>> {
        self.with_state(|st| {
            let data = st.conn().serialize("main").map_err(Error::from_rusqlite)?;
            Ok(data.to_vec())
        })
        .await
    }

    /// Replace the `main` database with a serialized image (from [`serialize`](Self::serialize)
    /// or a database file's bytes). The connection then works on an in-memory copy; a file it
    /// was opened on is left as it was.
    ///
    /// # Failure
    /// `SQLITE_NOTADB` when the bytes do not start with a database header (checked first, so
    /// the connection keeps its database); SQLite's error (e.g. a cursor still open, or a
    /// damaged image: that shows when the data is read); `Closed`.
    ///
    /// # Example
    /// ```
    /// # futures::executor::block_on(async {
    /// let a = aiolite::connect(":memory:").await?;
    /// a.execute_script("CREATE TABLE t(x); INSERT INTO t VALUES (42);").await?;
    /// let bytes = a.serialize().await?;
    /// let b = aiolite::connect(":memory:").await?;
    /// b.deserialize(bytes).await?;
    /// assert_eq!(b.fetch_scalar::<i64>("SELECT x FROM t", ()).await?, Some(42));
    /// # Ok::<(), aiolite::Error>(()) }).unwrap();
    /// ```
    pub async fn deserialize(&self, bytes: impl Into<Vec<u8>>) -> Result<()> {
        let bytes = bytes.into();
        check_image(&bytes)?;
        self.with_state(move |st| {
            st.clear_statements();
            let len = bytes.len();
            st.conn()
                .deserialize_read_exact("main", &bytes[..], len, false)
                .map_err(Error::from_rusqlite)
        })
        .await
    }
}

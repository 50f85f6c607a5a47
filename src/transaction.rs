//! Transaction and savepoint guards.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::connection::{Connection, Target, statement_api};
use crate::error::{Error, Result};
use crate::options::TransactionBehavior;
use crate::pool::Permit;
use crate::worker::Op;

/// An open transaction: the statement API plus [`commit`](Transaction::commit),
/// [`rollback`](Transaction::rollback) and [`savepoint`](Transaction::savepoint).
///
/// While it is open, it has the connection to itself: statements from other handles (clones
/// of the [`Connection`]) wait in order until it ends, so nobody else's statement ever runs
/// inside it. Dropping it without committing rolls it back.
///
/// Do not use the connection handle itself while you hold one of its transactions in the same
/// task: that call waits for the transaction to end, which it never does. Use the transaction.
///
/// If SQLite ends the transaction on its own (an interrupted write, a `COMMIT` statement run
/// through it), the handle notices and further calls fail with [`Error::TransactionEnded`].
pub struct Transaction {
    inner: Arc<TxInner>,
}

pub(crate) struct TxInner {
    conn: Connection,
    owner: u64,
    finished: AtomicBool,
    savepoints: AtomicU32,
    /// A pool transaction holds the writer until it is dropped (after its cleanup is queued).
    _permit: Option<Permit>,
}

impl Drop for TxInner {
    fn drop(&mut self) {
        if !self.finished.load(Ordering::Acquire) {
            self.conn.send_cleanup(self.owner, Op::EndTx);
        }
    }
}

impl TxInner {
    pub(crate) fn target(&self) -> Result<Target<'_>> {
        if self.finished.load(Ordering::Acquire) {
            return Err(Error::TransactionEnded {
                reason: "it was already committed or rolled back",
            });
        }
        Ok(Target {
            conn: &self.conn,
            owner: self.owner,
        })
    }

    async fn finish(&self, op: Op) -> Result<()> {
        let target = self.target()?;
        let rollback = matches!(op, Op::Rollback);
        let r = target.request(op).await.map(drop);
        if r.is_ok() || rollback {
            self.finished.store(true, Ordering::Release);
        }
        r
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("connection", &self.inner.conn)
            .field("finished", &self.inner.finished.load(Ordering::Relaxed))
            .finish()
    }
}

impl Transaction {
    pub(crate) async fn begin(conn: Connection, behavior: TransactionBehavior) -> Result<Transaction> {
        Transaction::begin_with_permit(conn, behavior, None).await
    }

    pub(crate) async fn begin_with_permit(
        conn: Connection,
        behavior: TransactionBehavior,
        permit: Option<Permit>,
    ) -> Result<Transaction> {
        let owner = conn.shared().next_id();
        // Built before BEGIN is sent: if BEGIN fails or this future is dropped, its drop queues
        // the cleanup, which the worker runs after BEGIN (a no-op if BEGIN never took effect).
        let inner = Arc::new(TxInner {
            conn,
            owner,
            finished: AtomicBool::new(false),
            savepoints: AtomicU32::new(0),
            _permit: permit,
        });
        inner.conn.request(owner, Op::Begin(behavior)).await?;
        Ok(Transaction { inner })
    }

    pub(crate) fn target(&self) -> Result<Target<'_>> {
        self.inner.target()
    }

    statement_api!();

    /// Commit.
    ///
    /// # Failure
    /// SQLite's error (e.g. a deferred foreign key violation, `SQLITE_BUSY`); the transaction
    /// is then rolled back when the handle drops. [`Error::TransactionEnded`] if SQLite had
    /// already ended it.
    pub async fn commit(self) -> Result<()> {
        self.inner.finish(Op::Commit).await
    }

    /// Roll back.
    ///
    /// # Failure
    /// SQLite's error.
    pub async fn rollback(self) -> Result<()> {
        self.inner.finish(Op::Rollback).await
    }

    /// Open a savepoint (a nested transaction) inside this transaction.
    ///
    /// # Failure
    /// SQLite's error.
    ///
    /// # Example
    /// ```
    /// # futures::executor::block_on(async {
    /// let db = aiolite::connect(":memory:").await?;
    /// db.execute("CREATE TABLE t(x)", ()).await?;
    /// let mut tx = db.transaction().await?;
    /// tx.execute("INSERT INTO t VALUES (1)", ()).await?;
    /// let sp = tx.savepoint().await?;
    /// sp.execute("INSERT INTO t VALUES (2)", ()).await?;
    /// sp.rollback().await?;
    /// tx.commit().await?;
    /// assert_eq!(db.fetch_scalar::<i64>("SELECT count(*) FROM t", ()).await?, Some(1));
    /// # Ok::<(), aiolite::Error>(()) }).unwrap();
    /// ```
    pub async fn savepoint(&mut self) -> Result<Savepoint<'_>> {
        Savepoint::open(&self.inner).await
    }

    /// `true` once committed or rolled back through this handle.
    pub fn is_finished(&self) -> bool {
        self.inner.finished.load(Ordering::Acquire)
    }

    /// The connection this transaction runs on.
    pub fn connection(&self) -> &Connection {
        &self.inner.conn
    }
}

/// `with_transaction`: commit on `Ok`, roll back on `Err`; a panic unwinds through the drop of
/// the last handle, which rolls back.
pub(crate) async fn scoped<F, Fut, T, E>(tx: Transaction, f: F) -> std::result::Result<T, E>
where
    F: FnOnce(Transaction) -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
    E: From<Error>,
{
    let keep = Transaction {
        inner: Arc::clone(&tx.inner),
    };
    match f(tx).await {
        Ok(v) => {
            if !keep.is_finished() {
                keep.commit().await?;
            }
            Ok(v)
        }
        Err(e) => {
            if !keep.is_finished() {
                let _ = keep.rollback().await;
            }
            Err(e)
        }
    }
}

/// A savepoint inside a [`Transaction`]: the statement API plus `commit` (`RELEASE`),
/// `rollback` (`ROLLBACK TO` + `RELEASE`) and nested savepoints. Dropping it unfinished rolls
/// back to it.
pub struct Savepoint<'a> {
    tx: &'a TxInner,
    name: Box<str>,
    finished: bool,
}

impl fmt::Debug for Savepoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Savepoint")
            .field("name", &self.name)
            .field("finished", &self.finished)
            .finish()
    }
}

impl<'a> Savepoint<'a> {
    async fn open(tx: &'a TxInner) -> Result<Savepoint<'a>> {
        let target = tx.target()?;
        let n = tx.savepoints.fetch_add(1, Ordering::Relaxed);
        let sp = Savepoint {
            tx,
            name: format!("aiolite_sp_{n}").into_boxed_str(),
            finished: false,
        };
        // If this fails or is dropped half-way, `sp`'s drop rolls back to the (maybe) created
        // savepoint; a missing savepoint makes that cleanup a no-op.
        target.request(Op::Savepoint { name: sp.name.clone() }).await?;
        Ok(sp)
    }

    pub(crate) fn target(&self) -> Result<Target<'_>> {
        if self.finished {
            return Err(Error::TransactionEnded {
                reason: "the savepoint was already released or rolled back",
            });
        }
        self.tx.target()
    }

    statement_api!();

    /// Release the savepoint (its changes become part of the enclosing transaction).
    ///
    /// # Failure
    /// SQLite's error.
    pub async fn commit(mut self) -> Result<()> {
        let r = self
            .target()?
            .request(Op::Release {
                name: self.name.clone(),
            })
            .await;
        if r.is_ok() {
            self.finished = true;
        }
        r.map(drop)
    }

    /// Undo everything since the savepoint, and release it.
    ///
    /// # Failure
    /// SQLite's error.
    pub async fn rollback(mut self) -> Result<()> {
        let r = self
            .target()?
            .request(Op::RollbackTo {
                name: self.name.clone(),
            })
            .await;
        self.finished = true;
        r.map(drop)
    }

    /// A nested savepoint.
    ///
    /// # Failure
    /// SQLite's error.
    pub async fn savepoint(&mut self) -> Result<Savepoint<'_>> {
        self.target()?;
        Savepoint::open(self.tx).await
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if !self.finished && !self.tx.finished.load(Ordering::Acquire) {
            self.tx.conn.send_cleanup(
                self.tx.owner,
                Op::RollbackTo {
                    name: std::mem::take(&mut self.name),
                },
            );
        }
    }
}

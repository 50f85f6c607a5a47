//! A connection's read anchor: a second, read-only SQLite handle that the worker thread keeps
//! in a read transaction while it is idle and reads run inline, so that their WAL read locks
//! find the lock held and skip SQLite's `fcntl` calls (see `ConnectOptions::anchor_reads`).
//!
//! The callers' side is a few atomics ([`AnchorFlags`]): an inline read marks itself, and the
//! 16th read of a steady stream (each within 0.5 ms of the one before) wakes the worker. The
//! worker's side ([`ConnAnchor`]) runs only between commands, on the worker thread: it holds
//! one snapshot for about a millisecond at a time, lets go at the first look that finds no
//! read since the last, holds nothing while `PRAGMA data_version` shows commits, and lets go
//! before every command it runs (a command may need the database to itself, and the worker
//! cannot look at the anchor while it runs one).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long one snapshot is held before the worker looks for reads and commits.
pub(crate) const TICK: Duration = Duration::from_millis(1);
/// Reads that start within this of the one before count as a steady stream...
const STREAM_GAP_NS: u64 = 500_000;
/// ... and this many in a row start the anchor.
const STREAM_READS: u32 = 16;

/// What inline reads and the worker share.
#[derive(Default)]
pub(crate) struct AnchorFlags {
    /// The worker looks after the anchor (holding, or about to, or waiting out commits).
    pub(crate) active: AtomicBool,
    /// A read started since the worker last looked.
    touched: AtomicBool,
    /// No anchor for this connection (not a WAL file database, turned off, or it failed).
    pub(crate) disabled: AtomicBool,
    last_read_ns: AtomicU64,
    streak: AtomicU32,
    /// Times the anchor began holding a read transaction.
    pub(crate) holds: AtomicU64,
}

impl AnchorFlags {
    pub(crate) fn new(enabled: bool) -> Self {
        let f = AnchorFlags::default();
        f.disabled.store(!enabled, Ordering::Relaxed);
        f
    }

    /// An inline read is starting at `now_ns`. `true` when this read started the anchor: the
    /// caller must then wake the worker.
    #[inline]
    pub(crate) fn touch(&self, now_ns: impl FnOnce() -> u64) -> bool {
        if self.disabled.load(Ordering::Relaxed) {
            return false;
        }
        if !self.touched.load(Ordering::Relaxed) {
            self.touched.store(true, Ordering::Relaxed);
        }
        if self.active.load(Ordering::Relaxed) {
            return false;
        }
        let now = now_ns();
        let last = self.last_read_ns.swap(now, Ordering::Relaxed);
        let streak = if now.saturating_sub(last) < STREAM_GAP_NS {
            self.streak.load(Ordering::Relaxed).saturating_add(1)
        } else {
            0
        };
        self.streak.store(streak, Ordering::Relaxed);
        if streak >= STREAM_READS
            && self
                .active
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        {
            self.streak.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// Consecutive rounds that found the database locked before the anchor gives up.
const BUSY_ROUNDS: u32 = 1000;

/// The `file:` URI the second handle opens: the main handle's file by its absolute name (the
/// working directory may change later), read-only, with the original URI's other parameters
/// (`vfs=` …) but neither `mode=` nor `cache=`. `None` for a database without a file.
pub(crate) fn sibling_uri(original: &str, filename: Option<&str>) -> Option<String> {
    let filename = filename.filter(|f| !f.is_empty())?;
    let mut uri = String::from("file:");
    for c in filename.chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=ro");
    if original.starts_with("file:")
        && let Some((_, query)) = original.split_once('?')
    {
        let query = query.split('#').next().unwrap_or("");
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let key = param.split('=').next().unwrap_or("").to_ascii_lowercase();
            if key != "mode" && key != "cache" {
                uri.push('&');
                uri.push_str(param);
            }
        }
    }
    Some(uri)
}

/// The worker's side: the second handle and what it holds.
pub(crate) struct ConnAnchor {
    /// What to open (`None`: nothing to anchor).
    uri: Option<String>,
    sibling: Option<rusqlite::Connection>,
    /// Rounds in a row that found the database locked.
    busy_rounds: u32,
    /// When the read transaction began (`None`: not holding).
    holding: Option<Instant>,
    /// When the anchor last let go because of a commit or a command (`None`: it did not).
    paused: Option<Instant>,
    version: i64,
}

impl ConnAnchor {
    pub(crate) fn new(uri: Option<String>) -> Self {
        ConnAnchor {
            uri,
            sibling: None,
            busy_rounds: 0,
            holding: None,
            paused: None,
            version: 0,
        }
    }

    /// The worker is idle with the anchor active: hold, refresh or let go as the flags say.
    /// The second handle never waits for a lock (the worker must stay free for commands): a
    /// locked database skips the round, many in a row turn the anchor off, as does any other
    /// error.
    pub(crate) fn tick(&mut self, flags: &AnchorFlags) {
        match self.step(flags) {
            Ok(()) => self.busy_rounds = 0,
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && self.busy_rounds < BUSY_ROUNDS =>
            {
                self.busy_rounds += 1;
                self.release();
                self.paused = Some(Instant::now());
            }
            Err(e) => {
                tracing::debug!("aiolite: a connection's read anchor is off: {e}");
                self.release();
                self.sibling = None;
                flags.disabled.store(true, Ordering::Relaxed);
                flags.active.store(false, Ordering::SeqCst);
            }
        }
    }

    fn step(&mut self, flags: &AnchorFlags) -> rusqlite::Result<()> {
        let stop = |flags: &AnchorFlags| {
            flags.active.store(false, Ordering::SeqCst);
            Ok(())
        };
        if flags.disabled.load(Ordering::Relaxed) {
            self.release();
            return stop(flags);
        }
        if let Some(since) = self.holding {
            if since.elapsed() < TICK {
                return Ok(());
            }
            self.release();
            if !flags.touched.swap(false, Ordering::Relaxed) {
                return stop(flags);
            }
            if self.changed()? {
                self.paused = Some(Instant::now());
                return Ok(());
            }
            return self.hold(flags);
        }
        if let Some(since) = self.paused {
            if since.elapsed() < TICK {
                return Ok(());
            }
            if !flags.touched.swap(false, Ordering::Relaxed) {
                self.paused = None;
                return stop(flags);
            }
            if self.changed()? {
                self.paused = Some(Instant::now());
                return Ok(());
            }
            self.paused = None;
            return self.hold(flags);
        }
        // Just started.
        if self.sibling.is_none() {
            let Some(uri) = &self.uri else {
                flags.disabled.store(true, Ordering::Relaxed);
                return stop(flags);
            };
            let c = rusqlite::Connection::open_with_flags(
                uri,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_URI
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            c.busy_timeout(Duration::ZERO)?;
            let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                flags.disabled.store(true, Ordering::Relaxed);
                return stop(flags);
            }
            self.sibling = Some(c);
        }
        self.changed()?;
        self.hold(flags)
    }

    /// Begin a read transaction on the sibling.
    fn hold(&mut self, flags: &AnchorFlags) -> rusqlite::Result<()> {
        let Some(c) = &self.sibling else {
            return Ok(());
        };
        c.execute_batch("BEGIN")?;
        if let Err(e) = c.query_row("SELECT 1 FROM sqlite_schema LIMIT 1", [], |_| Ok(())) {
            if !matches!(e, rusqlite::Error::QueryReturnedNoRows) {
                let _ = c.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        self.holding = Some(Instant::now());
        flags.holds.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// `true` when another connection committed since the last look.
    fn changed(&mut self) -> rusqlite::Result<bool> {
        let Some(c) = &self.sibling else {
            return Ok(false);
        };
        let v: i64 = c.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        let changed = v != self.version;
        self.version = v;
        Ok(changed)
    }

    /// End the read transaction, if one is held (before a command, at close, on errors).
    pub(crate) fn release(&mut self) {
        if self.holding.take().is_some()
            && let Some(c) = &self.sibling
            && c.execute_batch("COMMIT").is_err()
        {
            let _ = c.execute_batch("ROLLBACK");
        }
    }

    /// Let go before the worker runs a command; hold again after a tick if reads go on.
    #[inline]
    pub(crate) fn pause(&mut self) {
        if self.holding.is_some() {
            self.release();
            self.paused = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after_a_tick() {
        std::thread::sleep(TICK + Duration::from_millis(1));
    }

    #[test]
    fn holds_refreshes_pauses_on_commits_and_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let writer = rusqlite::Connection::open(&path).unwrap();
        writer
            .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x);")
            .unwrap();
        let flags = AnchorFlags::new(true);
        flags.active.store(true, Ordering::SeqCst);
        let mut anchor = ConnAnchor::new(sibling_uri("", path.to_str()));
        let holds = || flags.holds.load(Ordering::Relaxed);
        // Started: holds at once.
        anchor.tick(&flags);
        assert!(anchor.holding.is_some());
        assert_eq!(holds(), 1);
        // Woken early: nothing changes.
        anchor.tick(&flags);
        assert_eq!(holds(), 1);
        // A tick with reads and no commit: a fresh snapshot.
        flags.touched.store(true, Ordering::Relaxed);
        after_a_tick();
        anchor.tick(&flags);
        assert!(anchor.holding.is_some());
        assert_eq!(holds(), 2);
        // A commit meanwhile: it lets go and holds nothing for a tick...
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        flags.touched.store(true, Ordering::Relaxed);
        after_a_tick();
        anchor.tick(&flags);
        assert!(anchor.holding.is_none(), "held across a commit");
        assert_eq!(holds(), 2);
        // ... then holds again after a quiet tick with reads.
        flags.touched.store(true, Ordering::Relaxed);
        after_a_tick();
        anchor.tick(&flags);
        assert!(anchor.holding.is_some());
        assert_eq!(holds(), 3);
        // A command: it lets go at once.
        anchor.pause();
        assert!(anchor.holding.is_none());
        // No reads for a tick: it stops.
        after_a_tick();
        anchor.tick(&flags);
        assert!(!flags.active.load(Ordering::SeqCst));
        assert!(anchor.holding.is_none());
        // While it held nothing, a TRUNCATE checkpoint goes through.
        let busy: i64 = writer
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 0);
    }

    #[test]
    fn the_second_handle_opens_the_same_file_read_only() {
        assert_eq!(
            sibling_uri("app.db", Some("/d/app.db")).unwrap(),
            "file:/d/app.db?mode=ro"
        );
        assert_eq!(
            sibling_uri("file:app.db?mode=rwc&vfs=unix-none&Cache=shared#x", Some("/d/a?b%#.db")).unwrap(),
            "file:/d/a%3fb%25%23.db?mode=ro&vfs=unix-none"
        );
        assert_eq!(sibling_uri(":memory:", Some("")), None);
        assert_eq!(sibling_uri("x.db", None), None);
    }

    #[test]
    fn outside_wal_mode_it_turns_itself_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t(x);")
            .unwrap();
        let flags = AnchorFlags::new(true);
        flags.active.store(true, Ordering::SeqCst);
        let mut anchor = ConnAnchor::new(sibling_uri("", path.to_str()));
        anchor.tick(&flags);
        assert!(anchor.holding.is_none());
        assert!(flags.disabled.load(Ordering::Relaxed));
        assert!(!flags.active.load(Ordering::SeqCst));
        // A disabled anchor is never started again.
        for _ in 0..100 {
            assert!(!flags.touch(|| 1));
        }
    }
}

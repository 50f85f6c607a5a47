//! Read anchors: a SQLite handle kept in a read transaction while reads on other handles to
//! the same file go on, so that their WAL read locks find the lock held and skip SQLite's
//! `fcntl` calls (see `ConnectOptions::anchor_reads` and `PoolOptions::anchor_reads`).
//!
//! The readers' side is a few atomics ([`AnchorFlags`]): a read marks itself, and a read that
//! overlaps another (pools) or the 16th of a steady stream (each within 0.5 ms of the one
//! before) starts the anchor. The anchor's side ([`Hold`]) holds one snapshot for about a
//! millisecond at a time, lets go at the first look that finds no read since the last, and
//! holds nothing while `PRAGMA data_version` shows commits. A pool runs it on a connection of
//! its own ([`hold_while_reads_go_on`]); a connection on its idle worker thread with a second
//! handle ([`ConnAnchor`]), letting go before every command it runs (a command may need the
//! database to itself, and the worker cannot look at the anchor while it runs one).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long one snapshot is held before the worker looks for reads and commits.
pub(crate) const TICK: Duration = Duration::from_millis(1);
/// Reads that start within this of the one before count as a steady stream...
const STREAM_GAP_NS: u64 = 500_000;
/// ... and this many in a row start the anchor.
const STREAM_READS: u32 = 16;

/// What the reads and the anchor share.
#[derive(Default)]
pub(crate) struct AnchorFlags {
    /// The anchor is at work (holding, or about to, or waiting out commits).
    pub(crate) active: AtomicBool,
    /// A read started since the anchor last looked.
    touched: AtomicBool,
    /// No anchor (not a WAL file database, turned off, closing, or it failed).
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

    /// A read is starting at `now_ns`; `others`: another read is running now. `true` when
    /// this read started the anchor: the caller must then set it to work.
    #[inline]
    pub(crate) fn touch(&self, now_ns: impl FnOnce() -> u64, others: bool) -> bool {
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
        if (others || streak >= STREAM_READS)
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

/// Marks the anchor inactive when dropped (also when a job carrying it never runs).
pub(crate) struct Inactive(pub(crate) Arc<AnchorFlags>);

impl Drop for Inactive {
    fn drop(&mut self) {
        self.0.active.store(false, Ordering::SeqCst);
    }
}

/// What an anchor holds, on whatever handle it is given: the state between looks.
pub(crate) struct Hold {
    /// When the read transaction began (`None`: not holding).
    holding: Option<Instant>,
    /// When it last let go because of a commit or a command (`None`: it did not).
    paused: Option<Instant>,
    /// Rounds in a row that found the database locked.
    busy_rounds: u32,
    version: i64,
    /// The journal mode was found to be WAL.
    checked: bool,
}

impl Hold {
    pub(crate) fn new() -> Self {
        Hold {
            holding: None,
            paused: None,
            busy_rounds: 0,
            version: 0,
            checked: false,
        }
    }

    /// A look: hold, refresh or let go as the flags say (`active` ends up false when it
    /// stopped). `c` never waits for a lock (its busy timeout is zero): a locked database
    /// skips the round, many in a row turn the anchor off, as does any other error.
    pub(crate) fn tick(&mut self, c: &rusqlite::Connection, flags: &AnchorFlags) {
        match self.step(c, flags) {
            Ok(()) => self.busy_rounds = 0,
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && self.busy_rounds < BUSY_ROUNDS =>
            {
                self.busy_rounds += 1;
                self.release(c);
                self.paused = Some(Instant::now());
            }
            Err(e) => {
                tracing::debug!("aiolite: a read anchor is off: {e}");
                self.release(c);
                flags.disabled.store(true, Ordering::Relaxed);
                flags.active.store(false, Ordering::SeqCst);
            }
        }
    }

    fn step(&mut self, c: &rusqlite::Connection, flags: &AnchorFlags) -> rusqlite::Result<()> {
        let stop = |flags: &AnchorFlags| {
            flags.active.store(false, Ordering::SeqCst);
            Ok(())
        };
        if flags.disabled.load(Ordering::Relaxed) {
            self.release(c);
            return stop(flags);
        }
        if let Some(since) = self.holding {
            if since.elapsed() < TICK {
                return Ok(());
            }
            self.release(c);
            if !flags.touched.swap(false, Ordering::Relaxed) {
                return stop(flags);
            }
            if self.changed(c)? {
                self.paused = Some(Instant::now());
                return Ok(());
            }
            return self.hold(c, flags);
        }
        if let Some(since) = self.paused {
            if since.elapsed() < TICK {
                return Ok(());
            }
            if !flags.touched.swap(false, Ordering::Relaxed) {
                self.paused = None;
                return stop(flags);
            }
            if self.changed(c)? {
                self.paused = Some(Instant::now());
                return Ok(());
            }
            self.paused = None;
            return self.hold(c, flags);
        }
        // Just started.
        if !self.checked {
            let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                flags.disabled.store(true, Ordering::Relaxed);
                return stop(flags);
            }
            self.checked = true;
        }
        self.changed(c)?;
        self.hold(c, flags)
    }

    /// Begin a read transaction.
    fn hold(&mut self, c: &rusqlite::Connection, flags: &AnchorFlags) -> rusqlite::Result<()> {
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
    fn changed(&mut self, c: &rusqlite::Connection) -> rusqlite::Result<bool> {
        let v: i64 = c.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        let changed = v != self.version;
        self.version = v;
        Ok(changed)
    }

    /// End the read transaction, if one is held.
    pub(crate) fn release(&mut self, c: &rusqlite::Connection) {
        if self.holding.take().is_some() && c.execute_batch("COMMIT").is_err() {
            let _ = c.execute_batch("ROLLBACK");
        }
    }
}

/// A pool's anchor, run as one command on a read-only connection of its own: look every
/// tick until the anchor stops (no reads, a closing pool, an error). The handle's busy
/// timeout is zero meanwhile and put back after.
pub(crate) fn hold_while_reads_go_on(c: &rusqlite::Connection, busy_timeout: Duration, flags: &AnchorFlags) {
    let mut hold = Hold::new();
    if c.busy_timeout(Duration::ZERO).is_ok() {
        loop {
            hold.tick(c, flags);
            if !flags.active.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(TICK);
        }
    }
    hold.release(c);
    let _ = c.busy_timeout(busy_timeout);
}

/// A connection's anchor, on its idle worker thread: a second, read-only handle, opened on
/// the first start.
pub(crate) struct ConnAnchor {
    /// What to open (`None`: nothing to anchor).
    uri: Option<String>,
    sibling: Option<rusqlite::Connection>,
    hold: Hold,
}

impl ConnAnchor {
    pub(crate) fn new(uri: Option<String>) -> Self {
        ConnAnchor {
            uri,
            sibling: None,
            hold: Hold::new(),
        }
    }

    /// The worker is idle with the anchor active: a look.
    pub(crate) fn tick(&mut self, flags: &AnchorFlags) {
        if self.sibling.is_none() {
            match self.open() {
                Ok(c) => self.sibling = Some(c),
                Err(e) => {
                    tracing::debug!("aiolite: a connection's read anchor is off: {e}");
                    flags.disabled.store(true, Ordering::Relaxed);
                    flags.active.store(false, Ordering::SeqCst);
                    return;
                }
            }
        }
        if let Some(c) = &self.sibling {
            self.hold.tick(c, flags);
        }
        if flags.disabled.load(Ordering::Relaxed) {
            self.sibling = None;
        }
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        let Some(uri) = &self.uri else {
            return Err(rusqlite::Error::InvalidPath("no file to anchor".into()));
        };
        let c = rusqlite::Connection::open_with_flags(
            uri,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                | rusqlite::OpenFlags::SQLITE_OPEN_URI
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(Duration::ZERO)?;
        Ok(c)
    }

    /// End the read transaction, if one is held (at close).
    pub(crate) fn release(&mut self) {
        if let Some(c) = &self.sibling {
            self.hold.release(c);
        }
    }

    /// Let go before the worker runs a command; hold again after a tick if reads go on.
    #[inline]
    pub(crate) fn pause(&mut self) {
        if self.hold.holding.is_some()
            && let Some(c) = &self.sibling
        {
            self.hold.release(c);
            self.hold.paused = Some(Instant::now());
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
        assert!(anchor.hold.holding.is_some());
        assert_eq!(holds(), 1);
        // Woken early: nothing changes.
        anchor.tick(&flags);
        assert_eq!(holds(), 1);
        // A tick with reads and no commit: a fresh snapshot.
        flags.touched.store(true, Ordering::Relaxed);
        after_a_tick();
        anchor.tick(&flags);
        assert!(anchor.hold.holding.is_some());
        assert_eq!(holds(), 2);
        // A commit meanwhile: it lets go and holds nothing for a tick...
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        flags.touched.store(true, Ordering::Relaxed);
        after_a_tick();
        anchor.tick(&flags);
        assert!(anchor.hold.holding.is_none(), "held across a commit");
        assert_eq!(holds(), 2);
        // ... then holds again after a quiet tick with reads.
        flags.touched.store(true, Ordering::Relaxed);
        after_a_tick();
        anchor.tick(&flags);
        assert!(anchor.hold.holding.is_some());
        assert_eq!(holds(), 3);
        // A command: it lets go at once.
        anchor.pause();
        assert!(anchor.hold.holding.is_none());
        // No reads for a tick: it stops.
        after_a_tick();
        anchor.tick(&flags);
        assert!(!flags.active.load(Ordering::SeqCst));
        assert!(anchor.hold.holding.is_none());
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
        assert!(anchor.hold.holding.is_none());
        assert!(flags.disabled.load(Ordering::Relaxed));
        assert!(!flags.active.load(Ordering::SeqCst));
        // A disabled anchor is never started again.
        for _ in 0..100 {
            assert!(!flags.touch(|| 1, true));
        }
    }
}

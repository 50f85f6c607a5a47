//! Schema migrations: ordered SQL steps, each applied once, atomically, and recorded.
//!
//! ```
//! # futures::executor::block_on(async {
//! use aiolite::migrate::{Migration, Migrator};
//!
//! let migrator = Migrator::new([
//!     Migration::new(1, "users", "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);"),
//!     Migration::new(2, "emails", "ALTER TABLE users ADD COLUMN email TEXT;"),
//! ]);
//! let db = aiolite::connect(":memory:").await?;
//! let report = migrator.run(&db).await?;
//! assert_eq!(report.applied, vec![1, 2]);
//! assert_eq!(migrator.run(&db).await?.applied, Vec::<i64>::new()); // a no-op the second time
//! assert_eq!(db.fetch_scalar::<i64>("PRAGMA user_version", ()).await?, Some(2));
//! # Ok::<(), aiolite::Error>(()) }).unwrap();
//! ```
//!
//! Each step runs in its own transaction (`BEGIN IMMEDIATE`; a savepoint when the executor is
//! already inside a transaction) together with its record in the `_aiolite_migrations` table
//! (version, name, checksum, applied_at) and `PRAGMA user_version = version`, so a failing
//! step leaves nothing behind and the database is always at a recorded version. Before
//! anything runs, the recorded history is checked against the steps: a step edited after it
//! was applied (checksum mismatch), a pending step older than an applied one (a gap), or a
//! database newer than the newest step (a downgrade) is an [`Error::Migration`] and nothing
//! is applied. Two processes running the same migrator at once are serialised by SQLite's
//! write lock; the second sees the first's records and skips those steps.
//!
//! Steps can be embedded at compile time from a folder of `<version>_<name>.sql` files with
//! [`embed_migrations!`](crate::embed_migrations), or read at run time with
//! [`Migrator::from_dir`].

use std::borrow::Cow;
use std::path::Path;

use crate::error::{Error, Result};
use crate::executor::{Executor, run_internal};
use crate::params::Params;
use crate::value::Value;
use crate::worker::{ConnState, FetchKind, Reply};

const TABLE_DDL: &str = "CREATE TABLE IF NOT EXISTS _aiolite_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)";

/// One migration step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    version: i64,
    name: Cow<'static, str>,
    sql: Cow<'static, str>,
}

impl Migration {
    /// A step: `version` (positive, unique, steps apply in increasing order), a short name,
    /// and the SQL script to run.
    pub fn new(version: i64, name: impl Into<Cow<'static, str>>, sql: impl Into<Cow<'static, str>>) -> Self {
        Migration {
            version,
            name: name.into(),
            sql: sql.into(),
        }
    }

    /// `const` constructor for embedded steps.
    pub const fn from_static(version: i64, name: &'static str, sql: &'static str) -> Self {
        Migration {
            version,
            name: Cow::Borrowed(name),
            sql: Cow::Borrowed(sql),
        }
    }

    /// The version.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SQL script.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The checksum recorded when the step is applied: FNV-1a (64-bit) of the SQL text, in
    /// hex. Any edit of the text changes it.
    pub fn checksum(&self) -> String {
        checksum(&self.sql)
    }
}

fn checksum(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A migration recorded in the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// The checksum of its SQL when it was applied.
    pub checksum: String,
    /// When it was applied (UTC, ISO 8601).
    pub applied_at: String,
}

/// What [`Migrator::run`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationReport {
    /// Versions applied by this run, in order (empty when the database was up to date).
    pub applied: Vec<i64>,
    /// The database's version afterwards (`PRAGMA user_version`).
    pub version: i64,
}

/// Applies [`Migration`] steps to a database. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Migrator {
    steps: Vec<Migration>,
}

fn mig_err(version: i64, message: impl Into<String>) -> Error {
    Error::Migration {
        version,
        message: message.into(),
    }
}

impl Migrator {
    /// A migrator over `steps` (in increasing version order).
    pub fn new(steps: impl IntoIterator<Item = Migration>) -> Self {
        Migrator {
            steps: steps.into_iter().collect(),
        }
    }

    /// Read the steps from the `*.sql` files of a folder, named `<version>_<name>.sql`
    /// (e.g. `0001_create_users.sql`); other files are ignored.
    ///
    /// # Failure
    /// [`Error::Migration`] for an unreadable folder or file, a `.sql` file whose name does not
    /// start with a version, or two files with the same version.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Migrator> {
        let dir = dir.as_ref();
        let entries = std::fs::read_dir(dir).map_err(|e| mig_err(0, format!("cannot read {}: {e}", dir.display())))?;
        let mut steps = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| mig_err(0, format!("cannot read {}: {e}", dir.display())))?
                .path();
            if path.extension().and_then(|e| e.to_str()) != Some("sql") {
                continue;
            }
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let (version, name) = parse_file_name(stem)
                .ok_or_else(|| mig_err(0, format!("{}: name it <version>_<name>.sql", path.display())))?;
            let sql =
                std::fs::read_to_string(&path).map_err(|e| mig_err(version, format!("{}: {e}", path.display())))?;
            steps.push(Migration::new(version, name.to_owned(), sql));
        }
        steps.sort_by_key(|m| m.version);
        if let Some(w) = steps.windows(2).find(|w| w[0].version == w[1].version) {
            return Err(mig_err(w[0].version, "two migration files have this version"));
        }
        Ok(Migrator { steps })
    }

    /// The steps.
    pub fn steps(&self) -> &[Migration] {
        &self.steps
    }

    fn check_steps(&self) -> Result<()> {
        let mut last = 0;
        for s in &self.steps {
            if s.version <= 0 {
                return Err(mig_err(s.version, "versions must be positive"));
            }
            if s.version <= last {
                return Err(mig_err(s.version, "versions must be unique and in increasing order"));
            }
            last = s.version;
        }
        Ok(())
    }

    /// The migrations recorded in the database (creating the record table if needed).
    ///
    /// # Failure
    /// SQLite's error.
    pub async fn applied<E: Executor + ?Sized>(&self, db: &E) -> Result<Vec<AppliedMigration>> {
        run_internal(db, true, |st| {
            st.atomically(|st| {
                st.script(TABLE_DDL)?;
                read_applied(st)
            })
        })
        .await
    }

    /// Bring the database up to the newest step.
    ///
    /// # Failure
    /// [`Error::Migration`] when the recorded history does not match the steps (nothing is
    /// applied then) or a step fails (that step is rolled back; earlier steps of this run stay
    /// applied and recorded); SQLite's error.
    pub async fn run<E: Executor + ?Sized>(&self, db: &E) -> Result<MigrationReport> {
        self.check_steps()?;
        // One transaction: the history and user_version must come from the same snapshot.
        let (applied, user_version) = run_internal(db, true, |st| {
            st.atomically(|st| {
                st.script(TABLE_DDL)?;
                Ok((read_applied(st)?, user_version(st)?))
            })
        })
        .await?;
        let pending = self.plan(&applied, user_version)?;
        let mut report = MigrationReport {
            applied: Vec::new(),
            version: user_version,
        };
        for step in pending {
            let (version, sql, name, sum) = (
                step.version,
                step.sql.to_string(),
                step.name.to_string(),
                step.checksum(),
            );
            let ran = run_internal(db, true, move |st| apply_step(st, version, &name, &sql, &sum)).await?;
            if ran {
                report.applied.push(version);
            }
            report.version = version;
        }
        Ok(report)
    }

    /// Check the recorded history against the steps; return the steps still to apply.
    fn plan(&self, applied: &[AppliedMigration], user_version: i64) -> Result<Vec<&Migration>> {
        let newest_step = self.steps.last().map_or(0, |s| s.version);
        let newest_applied = applied.iter().map(|a| a.version).max().unwrap_or(0);
        for a in applied {
            match self.steps.iter().find(|s| s.version == a.version) {
                Some(s) if s.checksum() != a.checksum => {
                    return Err(mig_err(
                        a.version,
                        format!(
                            "step {:?} was edited after it was applied (checksum {} recorded, {} now)",
                            s.name,
                            a.checksum,
                            s.checksum()
                        ),
                    ));
                }
                Some(_) => {}
                None if a.version > newest_step => {
                    return Err(mig_err(
                        a.version,
                        format!(
                            "the database is at version {newest_applied}, newer than the newest step ({newest_step}): refusing to downgrade"
                        ),
                    ));
                }
                None => {
                    return Err(mig_err(
                        a.version,
                        format!("applied step {:?} is missing from the migration list", a.name),
                    ));
                }
            }
        }
        if applied.is_empty() && user_version != 0 {
            return Err(mig_err(
                user_version,
                "PRAGMA user_version is set but no migration is recorded: this database is not managed by this migrator",
            ));
        }
        if !applied.is_empty() && user_version != newest_applied {
            return Err(mig_err(
                user_version,
                format!("PRAGMA user_version is {user_version} but the newest recorded step is {newest_applied}"),
            ));
        }
        let pending: Vec<&Migration> = self
            .steps
            .iter()
            .filter(|s| !applied.iter().any(|a| a.version == s.version))
            .collect();
        if let Some(old) = pending.iter().find(|s| s.version < newest_applied) {
            return Err(mig_err(
                old.version,
                format!(
                    "step {:?} is pending but the newer step {newest_applied} is already applied (a gap in the history)",
                    old.name
                ),
            ));
        }
        Ok(pending)
    }
}

/// Split `0001_create_users` into `(1, "create_users")`.
pub(crate) fn parse_file_name(stem: &str) -> Option<(i64, &str)> {
    let digits = stem.find(|c: char| !c.is_ascii_digit()).unwrap_or(stem.len());
    if digits == 0 {
        return None;
    }
    let version = stem[..digits].parse().ok()?;
    let name = stem[digits..].trim_start_matches(['_', '-']);
    Some((version, if name.is_empty() { stem } else { name }))
}

fn read_applied(st: &mut ConnState) -> Result<Vec<AppliedMigration>> {
    let rows = match st.fetch(
        "SELECT version, name, checksum, applied_at FROM _aiolite_migrations ORDER BY version",
        &().into_values(),
        FetchKind::All,
    )? {
        Reply::Rows(r) => r,
        _ => Vec::new(),
    };
    rows.iter()
        .map(|r| {
            Ok(AppliedMigration {
                version: r.get(0)?,
                name: r.get(1)?,
                checksum: r.get(2)?,
                applied_at: r.get(3)?,
            })
        })
        .collect()
}

fn user_version(st: &mut ConnState) -> Result<i64> {
    match st.fetch("PRAGMA user_version", &().into_values(), FetchKind::Scalar)? {
        Reply::Scalar(Some(Value::Integer(v))) => Ok(v),
        _ => Ok(0),
    }
}

/// Apply one step in its own transaction; `false` when another migrator applied it first.
fn apply_step(st: &mut ConnState, version: i64, name: &str, sql: &str, sum: &str) -> Result<bool> {
    st.atomically(|st| {
        // Re-check inside the write transaction: a concurrent migrator may have been first.
        if let Some(a) = read_applied(st)?.into_iter().find(|a| a.version == version) {
            if a.checksum != sum {
                return Err(mig_err(version, "applied concurrently with a different checksum"));
            }
            return Ok(false);
        }
        let newest = read_applied(st)?.iter().map(|a| a.version).max().unwrap_or(0);
        if newest > version {
            return Err(mig_err(
                version,
                format!("step {newest} was applied meanwhile: a gap in the history"),
            ));
        }
        st.script(sql)
            .map_err(|e| mig_err(version, format!("step {name:?} failed: {e}")))?;
        st.execute(
            "INSERT INTO _aiolite_migrations(version, name, checksum) VALUES (?1, ?2, ?3)",
            &(version, name, sum).into_values(),
        )?;
        // An integer, formatted by us: PRAGMA values cannot be bound parameters.
        st.script(&format!("PRAGMA user_version = {version}"))?;
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_and_checksums() {
        assert_eq!(parse_file_name("0001_create_users"), Some((1, "create_users")));
        assert_eq!(parse_file_name("20240101-init"), Some((20_240_101, "init")));
        assert_eq!(parse_file_name("7"), Some((7, "7")));
        assert_eq!(parse_file_name("init"), None);
        assert_eq!(checksum(""), "cbf29ce484222325");
        assert_ne!(checksum("CREATE TABLE a(x);"), checksum("CREATE TABLE a(y);"));
        assert!(
            Migrator::new([Migration::new(2, "b", ""), Migration::new(1, "a", "")])
                .check_steps()
                .is_err()
        );
        assert!(Migrator::new([Migration::new(0, "a", "")]).check_steps().is_err());
    }
}

//! Connection settings and migrations, applied once when the store opens.

use rusqlite::Connection;

use crate::{keyed, Durability, Error};

/// One migration: SQL, or code where SQL alone cannot do it.
enum Step {
    Sql(&'static str),
    Rust(fn(&Connection) -> Result<(), Error>),
}

/// Each entry migrates from version `index` to `index + 1` (`PRAGMA user_version`).
const MIGRATIONS: &[Step] = &[
    // Records are JSON of `otpd_core::policy::AddressRecord`: digests, never codes.
    Step::Sql(
        "CREATE TABLE addresses (
        email      TEXT PRIMARY KEY,
        record     TEXT NOT NULL,
        expires_at INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX addresses_expiry ON addresses (expires_at);
     CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        email           TEXT NOT NULL,
        sealed          BLOB,
        created_at      INTEGER NOT NULL,
        code_expires_at INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dead')),
        finished_at     INTEGER
     );
     CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';",
    ),
    // Rows are appended in the order addresses first get a code, and only the
    // email index (small entries) takes a random page per new address. Keyed
    // by email, the table itself did, and split its full pages often: about a
    // third more WAL frames per issued code.
    Step::Sql(
        "CREATE TABLE addresses_v2 (
        id         INTEGER PRIMARY KEY,
        email      TEXT NOT NULL UNIQUE,
        record     TEXT NOT NULL,
        expires_at INTEGER NOT NULL
     );
     INSERT INTO addresses_v2 (email, record, expires_at)
        SELECT email, record, expires_at FROM addresses;
     DROP TABLE addresses;
     ALTER TABLE addresses_v2 RENAME TO addresses;
     CREATE INDEX addresses_expiry ON addresses (expires_at);",
    ),
    // The email index is written in bulk (see `index`): SQLite's own index
    // took a random page per new address. Ids are never reused, which the
    // index's mark of merged records relies on.
    Step::Sql(
        "CREATE TABLE addresses_v3 (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        email      TEXT NOT NULL,
        record     TEXT NOT NULL,
        expires_at INTEGER NOT NULL
     );
     INSERT INTO addresses_v3 (id, email, record, expires_at)
        SELECT id, email, record, expires_at FROM addresses;
     DROP TABLE addresses;
     ALTER TABLE addresses_v3 RENAME TO addresses;
     CREATE INDEX addresses_expiry ON addresses (expires_at);
     CREATE TABLE address_index (
        email TEXT PRIMARY KEY,
        id    INTEGER NOT NULL
     ) WITHOUT ROWID;
     INSERT INTO address_index (email, id) SELECT email, id FROM addresses;
     CREATE TABLE address_index_state (merged_through INTEGER NOT NULL);
     INSERT INTO address_index_state SELECT coalesce(max(id), 0) FROM addresses;",
    ),
    // The state's CHECK as comparisons: written `IN (...)`, it built a
    // temporary b-tree of the three values on every insert (a sixteenth of
    // the writer thread's time under load).
    Step::Sql(
        "CREATE TABLE outbox_v4 (
        id              INTEGER PRIMARY KEY,
        email           TEXT NOT NULL,
        sealed          BLOB,
        created_at      INTEGER NOT NULL,
        code_expires_at INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        state           TEXT NOT NULL
                        CHECK (state = 'pending' OR state = 'sent' OR state = 'dead'),
        finished_at     INTEGER
     );
     INSERT INTO outbox_v4 SELECT id, email, sealed, created_at, code_expires_at, attempts,
        next_attempt_at, state, finished_at FROM outbox;
     DROP TABLE outbox;
     ALTER TABLE outbox_v4 RENAME TO outbox;
     CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';",
    ),
    // Ids are handed out by the writer (see `index`): `AUTOINCREMENT`
    // rewrote a row of `sqlite_sequence` on every insert. Records are
    // blobs in the layout of `record`; rows from earlier versions keep
    // their JSON text until their next change.
    Step::Sql(
        "CREATE TABLE addresses_v5 (
        id         INTEGER PRIMARY KEY,
        email      TEXT NOT NULL,
        record     BLOB NOT NULL,
        expires_at INTEGER NOT NULL
     );
     INSERT INTO addresses_v5 (id, email, record, expires_at)
        SELECT id, email, record, expires_at FROM addresses;
     DROP TABLE addresses;
     ALTER TABLE addresses_v5 RENAME TO addresses;
     CREATE INDEX addresses_expiry ON addresses (expires_at);",
    ),
    // The sweep scans the table in steps (see `index::delete_expired`): the
    // index took an entry per issued code, a tenth of the writer's
    // instructions and an eighth of the WAL's frames, for a once-a-minute job.
    Step::Sql("DROP INDEX addresses_expiry;"),
    // Mails not tried yet, one row per commit (see `queued`): the outbox
    // took a row and a due-index entry per code, deleted again at once.
    Step::Sql(
        "CREATE TABLE new_mails (
        id         INTEGER PRIMARY KEY,
        mails      BLOB NOT NULL,
        count      INTEGER NOT NULL,
        created_at INTEGER NOT NULL
     );",
    ),
    // The email index keyed by a keyed hash of the address (see `keyed`).
    Step::Rust(keyed::rekey_index),
    // Rows of `new_mails` that could not be read, set aside with the reason
    // so they no longer stop every claim (see `outbox::set_aside`).
    Step::Sql(
        "CREATE TABLE damaged_mails (
        id       INTEGER PRIMARY KEY,
        found_at INTEGER NOT NULL,
        error    TEXT NOT NULL,
        mails    BLOB,
        count    INTEGER NOT NULL
     );",
    ),
];

/// How long a connection waits for another one's lock (the checkpointer's).
const BUSY_TIMEOUT_MS: u32 = 5_000;
/// A lock is retried this often. SQLite's own waits grow to 100 ms: the
/// writer would oversleep a WAL restart, and the checkpointer would miss the
/// short gaps between the writer's transactions while the WAL keeps growing.
const BUSY_RETRY: std::time::Duration = std::time::Duration::from_micros(100);

/// Waits [`BUSY_RETRY`] per attempt, [`BUSY_TIMEOUT_MS`] in all.
fn retry_busy(attempt: i32) -> bool {
    std::thread::sleep(BUSY_RETRY);
    let waited_ms = i64::from(attempt) * BUSY_RETRY.as_micros() as i64 / 1000;
    waited_ms < i64::from(BUSY_TIMEOUT_MS)
}

/// Settings of the writer's connection, then migrations.
pub fn prepare_writer(conn: &Connection, durability: Durability) -> Result<(), Error> {
    let synchronous = match durability {
        Durability::ProcessCrash => "NORMAL",
        Durability::PowerLoss => "FULL",
    };
    // WAL: commits append and readers never block. Checkpoints run on their
    // own thread (see `checkpoint`), not inside the writer's commits.
    conn.busy_handler(Some(retry_busy))?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {synchronous};
         PRAGMA wal_autocheckpoint = 0;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -4000;"
    ))?;
    migrate(conn, MIGRATIONS.len())?;
    // Every pending mail is due at once after a restart, including those
    // earlier builds leased by moving their due time (the lock file says
    // the process that claimed them is gone).
    conn.execute(
        "UPDATE outbox SET next_attempt_at = MIN(next_attempt_at, strftime('%s', 'now') * 1000)
         WHERE state = 'pending'",
        [],
    )?;
    Ok(())
}

/// Migrates the database up to version `target`, one transaction per step.
fn migrate(conn: &Connection, target: usize) -> Result<(), Error> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, step) in MIGRATIONS.iter().enumerate().take(target).skip(version) {
        // Rolled back when dropped on an error.
        let tx = conn.unchecked_transaction()?;
        match step {
            Step::Sql(sql) => tx.execute_batch(sql)?,
            Step::Rust(code) => code(&tx)?,
        }
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}

pub fn prepare_checkpointer(conn: &Connection) -> Result<(), Error> {
    conn.busy_handler(Some(retry_busy))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::index::{self, Stage};

    /// Version 7's index was keyed by the address's text; version 8 keys
    /// the same entries by hash, and staged records stay staged.
    #[test]
    fn the_email_index_of_version_7_is_rekeyed_with_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("m.db")).unwrap();
        migrate(&conn, 7).unwrap();
        let email = |i: i64| format!("user{i}@example.com");
        for i in 1..=500 {
            conn.execute(
                "INSERT INTO addresses (id, email, record, expires_at) VALUES (?1, ?2, x'00', 0)",
                rusqlite::params![i, email(i)],
            )
            .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO address_index (email, id) SELECT email, id FROM addresses WHERE id <= 400;
             UPDATE address_index_state SET merged_through = 400;",
        )
        .unwrap();

        prepare_writer(&conn, Durability::default()).unwrap();
        let indexed: i64 = conn
            .query_row("SELECT count(*) FROM address_index", [], |row| row.get(0))
            .unwrap();
        assert_eq!(indexed, 400);
        let stage = Stage::open(&conn, 1_000).unwrap();
        for i in 1..=500 {
            let found = index::find(&conn, &stage, stage.address(&email(i)))
                .unwrap()
                .unwrap();
            assert_eq!(found.id, i);
        }
        assert!(index::find(&conn, &stage, stage.address(&email(501)))
            .unwrap()
            .is_none());
    }
}

//! Connection settings and migrations, applied once when the store opens.

use rusqlite::Connection;

use crate::Error;

/// Each entry migrates from version `index` to `index + 1` (`PRAGMA user_version`).
const MIGRATIONS: &[&str] = &[
    // Records are JSON of `otpd_core::policy::AddressRecord`: digests, never codes.
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
];

pub fn prepare(conn: &Connection) -> Result<(), Error> {
    // EXCLUSIVE: one otpd per file (see the crate docs). WAL: commits append,
    // readers never block. FULL: a commit is on disk before a request is answered.
    conn.execute_batch(
        "PRAGMA locking_mode = EXCLUSIVE;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )?;
    let version: usize = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
            index + 1
        ))?;
    }
    // Claims belong to the process that made them; that process is gone.
    conn.execute(
        "UPDATE outbox SET next_attempt_at = MIN(next_attempt_at, strftime('%s', 'now') * 1000)
         WHERE state = 'pending'",
        [],
    )?;
    Ok(())
}

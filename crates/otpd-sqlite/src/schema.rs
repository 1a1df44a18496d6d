//! Connection settings and migrations, applied once when the store opens.

use rusqlite::Connection;

use crate::{Durability, Error};

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

/// How long a connection waits for another one's lock (the checkpointer's).
const BUSY_TIMEOUT_MS: u32 = 5_000;

/// Settings of the writer's connection, then migrations.
pub fn prepare_writer(conn: &Connection, durability: Durability) -> Result<(), Error> {
    let synchronous = match durability {
        Durability::ProcessCrash => "NORMAL",
        Durability::PowerLoss => "FULL",
    };
    // WAL: commits append and readers never block. Checkpoints run on their
    // own thread (see `checkpoint`), not inside the writer's commits. The
    // sub-journals of the per-job savepoints stay in memory.
    conn.execute_batch(&format!(
        "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {synchronous};
         PRAGMA wal_autocheckpoint = 0;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -4000;"
    ))?;
    let version: usize = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
            index + 1
        ))?;
    }
    // Claims belong to the process that made them, and the lock file says
    // that process is gone.
    conn.execute(
        "UPDATE outbox SET next_attempt_at = MIN(next_attempt_at, strftime('%s', 'now') * 1000)
         WHERE state = 'pending'",
        [],
    )?;
    Ok(())
}

pub fn prepare_checkpointer(conn: &Connection) -> Result<(), Error> {
    conn.execute_batch(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};"))?;
    Ok(())
}

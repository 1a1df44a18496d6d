//! Copies the WAL back into the database file on a thread of its own, so the
//! writer's commits never pay for it.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

/// The shortest time between two checkpoints, so busy periods batch them.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Frames after which the WAL is restarted even if that briefly waits for
/// the writer, so sustained load cannot grow the file without bound.
const RESTART_AFTER_FRAMES: i64 = 64_000;
/// The longest the WAL waits for a checkpoint when the writer is idle.
const IDLE_CHECKPOINT: Duration = Duration::from_secs(5);

/// Runs until the writer drops its end of `commits` (one message per commit).
pub fn run(conn: Connection, commits: Receiver<()>) {
    while commits.recv_timeout(IDLE_CHECKPOINT) != Err(RecvTimeoutError::Disconnected) {
        if let Err(e) = checkpoint(&conn) {
            tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
        }
        std::thread::sleep(MIN_INTERVAL);
        while commits.try_recv().is_ok() {}
    }
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "final WAL checkpoint failed");
    }
}

fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    let (_, wal_frames, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    if wal_frames >= RESTART_AFTER_FRAMES {
        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))?;
    }
    Ok(())
}

//! Copies the WAL back into the database file on a thread of its own, so the
//! writer's commits never pay for it.
//!
//! Passive checkpoints never hold up the writer, but under sustained load
//! they cannot catch up with it entirely, and the WAL only starts over once
//! they do. So when the WAL has grown large, the checkpointer runs passes
//! back to back until one is short (little was committed meanwhile), and
//! then restarts the WAL: the restart holds up the writer only while it
//! copies and syncs that little.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// The shortest time between two checkpoints, so busy periods batch them
/// (a page written by many commits in between is copied once).
const MIN_INTERVAL: Duration = Duration::from_millis(500);
/// Frames after which the WAL is restarted, so sustained load cannot grow
/// the file without bound.
const RESTART_AFTER_FRAMES: i64 = 64_000;
/// A pass this short left only a few frames behind it.
const SHORT_PASS: Duration = Duration::from_millis(3);
/// Catching up gives up after this many passes and restarts anyway.
const MAX_CATCH_UP_PASSES: usize = 8;
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
    if passive(conn)? < RESTART_AFTER_FRAMES {
        return Ok(());
    }
    for _ in 0..MAX_CATCH_UP_PASSES {
        let started = Instant::now();
        passive(conn)?;
        if started.elapsed() < SHORT_PASS {
            break;
        }
    }
    conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
}

/// Copies what the WAL holds now; returns the WAL's length in frames.
fn passive(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

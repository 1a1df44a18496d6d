//! Copies the WAL back into the database file on a thread of its own, so the
//! writer's commits never pay for it.
//!
//! Passive checkpoints never hold up the writer, but under sustained load
//! they cannot catch up with it entirely, and the WAL only starts over once
//! they do. So when the WAL has grown large, the checkpointer runs passes
//! back to back until one is short (little was committed meanwhile), and
//! then restarts the WAL: the restart holds up the writer only while it
//! copies and syncs that little.
//!
//! For the syncs to be little too, this thread keeps both files written
//! back as it goes. SQLite syncs the database file only after a pass that
//! copied the whole WAL, which under load is only the restart: it then
//! waited for every page copied since the last one (about 30 ms with the
//! writer locked out). And a pass syncs the WAL before copying, which
//! waited for all the frames of the last 500 ms at once.

use std::fs::File;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::{schema, Error};

/// The shortest time between two checkpoints, so busy periods batch them
/// (a page written by many commits in between is copied once).
const MIN_INTERVAL: Duration = Duration::from_millis(500);
/// How often the WAL is written back between checkpoints while commits come in.
const WRITE_BACK_EVERY: Duration = Duration::from_millis(10);
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
    let mut files = Files::of(&conn);
    while commits.recv_timeout(IDLE_CHECKPOINT) != Err(RecvTimeoutError::Disconnected) {
        if let Err(e) = checkpoint(&conn, &mut files) {
            tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
        }
        let pass_ended = Instant::now();
        while pass_ended.elapsed() < MIN_INTERVAL {
            std::thread::sleep(WRITE_BACK_EVERY);
            if commits.try_recv().is_ok() {
                files.wal.sync();
            }
        }
    }
    if let Err(e) = truncate_wal(&conn) {
        tracing::warn!(error = %e, "final WAL checkpoint failed");
    }
}

/// Copies all of the WAL at `path`'s database into it and truncates the WAL,
/// on a connection of its own (a checkpoint cannot run inside the writer's
/// transactions).
pub fn truncate(path: &std::path::Path) -> Result<(), Error> {
    let conn = Connection::open(path)?;
    schema::prepare_checkpointer(&conn)?;
    truncate_wal(&conn)
}

fn truncate_wal(conn: &Connection) -> Result<(), Error> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
    match busy {
        0 => Ok(()),
        _ => Err(Error::CheckpointBusy),
    }
}

fn checkpoint(conn: &Connection, files: &mut Files) -> rusqlite::Result<()> {
    if passive(conn, files)? < RESTART_AFTER_FRAMES {
        return Ok(());
    }
    for _ in 0..MAX_CATCH_UP_PASSES {
        let started = Instant::now();
        passive(conn, files)?;
        if started.elapsed() < SHORT_PASS {
            break;
        }
    }
    conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
}

/// Copies what the WAL holds now and writes the copies back; returns the
/// WAL's length in frames.
fn passive(conn: &Connection, files: &mut Files) -> rusqlite::Result<i64> {
    let (frames, copied): (i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get(1)?, row.get(2)?))
        })?;
    if copied > 0 {
        files.database.sync();
    }
    Ok(frames)
}

/// The database and WAL files, each opened once for `fdatasync`.
struct Files {
    database: WrittenBack,
    wal: WrittenBack,
}

impl Files {
    fn of(conn: &Connection) -> Self {
        let path = conn.path().unwrap_or_default();
        Self {
            database: WrittenBack::new(path.to_owned()),
            wal: WrittenBack::new(format!("{path}-wal")),
        }
    }
}

struct WrittenBack {
    path: String,
    file: Option<File>,
}

impl WrittenBack {
    fn new(path: String) -> Self {
        Self { path, file: None }
    }

    /// Syncing more often than SQLite does only moves writeback earlier, so
    /// a failure is reported and otherwise left to SQLite's own syncs.
    fn sync(&mut self) {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        if let Some(Err(e)) = self.file.as_ref().map(File::sync_data) {
            tracing::warn!(error = %e, path = %self.path, "could not write a database file back");
            self.file = None;
        }
    }
}

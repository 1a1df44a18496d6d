//! The one thread that owns the SQLite connection.
//!
//! Every operation is a job sent over a channel. The thread takes whatever
//! jobs are waiting (up to [`MAX_BATCH`]), runs them in one transaction,
//! commits once, and only then answers the callers. Many concurrent requests
//! thus share one commit (and one fsync), and the async runtime never waits
//! on SQLite.
//!
//! Each job is atomic on its own: if one fails, the shared transaction is
//! rolled back and every job of the batch runs again in a transaction of its
//! own, in the same order. Failures are rare (I/O errors, a corrupt record),
//! so the common case pays for no savepoints.
//!
//! Jobs may also change a [`State`] the thread keeps in memory; it is told
//! of every commit and rollback, so it can stay in step with the database.

use std::sync::mpsc::SyncSender;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::Error;

/// Jobs committed together at most; bounds the latency one commit adds.
const MAX_BATCH: usize = 256;
/// Jobs waiting for the writer at most; callers wait (asynchronously) beyond that.
pub const QUEUE_CAPACITY: usize = 4096;

/// Memory the writer thread keeps beside the database, changed by jobs.
pub trait State: Send + 'static {
    /// Runs after the jobs of every transaction: writes what they left in
    /// memory for the database. If it fails, their writes are rolled back.
    fn finish(&mut self, _conn: &Connection) -> Result<(), Error> {
        Ok(())
    }
    /// Runs last in every batch's transaction (upkeep that rides on its commit).
    fn tend(&mut self, conn: &Connection) -> Result<(), Error>;
    /// The changes made since the last call were committed.
    fn committed(&mut self);
    /// The changes made since the last call were rolled back: undo them.
    fn rolled_back(&mut self);
}

impl State for () {
    fn tend(&mut self, _: &Connection) -> Result<(), Error> {
        Ok(())
    }
    fn committed(&mut self) {}
    fn rolled_back(&mut self) {}
}

/// A caller's operation and the way back to it.
trait Job<S>: Send {
    /// Runs the operation inside the current transaction; false if it failed
    /// (its writes must then be rolled back). May run more than once.
    fn run(&mut self, conn: &Connection, state: &mut S) -> bool;
    /// Answers with the last run's result, or `error` if its writes were lost.
    fn answer(self: Box<Self>, error: Option<Error>);
}

struct Pending<T, F> {
    operation: F,
    result: Option<Result<T, Error>>,
    reply: oneshot::Sender<Result<T, Error>>,
}

impl<S, T, F> Job<S> for Pending<T, F>
where
    T: Send,
    F: FnMut(&Connection, &mut S) -> Result<T, Error> + Send,
{
    fn run(&mut self, conn: &Connection, state: &mut S) -> bool {
        let result = (self.operation)(conn, state);
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn answer(self: Box<Self>, error: Option<Error>) {
        let answer = match error {
            Some(error) => Err(error),
            None => self.result.unwrap_or(Err(Error::WriterGone)),
        };
        let _ = self.reply.send(answer);
    }
}

pub struct Writer<S> {
    jobs: mpsc::Sender<Box<dyn Job<S>>>,
}

impl<S> Clone for Writer<S> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
        }
    }
}

impl<S: State> Writer<S> {
    /// Starts the thread with `state`. It tells `commits` after each commit,
    /// and holds `lock` (the store's single-process lock) for as long as it runs.
    pub fn spawn(
        conn: Connection,
        state: S,
        commits: SyncSender<()>,
        lock: std::fs::File,
    ) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("otpd-sqlite".into())
            .spawn(move || {
                run(conn, state, rx, &commits);
                drop(lock);
            })?;
        Ok(Self { jobs })
    }

    /// Runs `operation` atomically in the writer thread; resolves after its
    /// commit. The operation may run twice (see the module documentation), so
    /// it must depend on nothing but its captures and the connection.
    pub async fn run<T, F>(&self, operation: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnMut(&Connection, &mut S) -> Result<T, Error> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            operation,
            result: None,
            reply,
        });
        self.jobs.send(job).await.map_err(|_| Error::WriterGone)?;
        answer.await.map_err(|_| Error::WriterGone)?
    }
}

fn run<S: State>(
    mut conn: Connection,
    mut state: S,
    mut rx: mpsc::Receiver<Box<dyn Job<S>>>,
    commits: &SyncSender<()>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        match commit_together(&mut conn, &mut state, &mut batch) {
            Ok(()) => batch.drain(..).for_each(|job| job.answer(None)),
            Err(Together::Failed(reason)) => batch
                .drain(..)
                .for_each(|job| job.answer(Some(Error::CommitFailed(reason.clone())))),
            Err(Together::JobFailed) => {
                for mut job in batch.drain(..) {
                    let error = commit_alone(&mut conn, &mut state, job.as_mut()).err();
                    job.answer(error);
                }
            }
        }
        // Full means a checkpoint is already due; the checkpointer catches up.
        let _ = commits.try_send(());
    }
    tracing::debug!("sqlite writer stopped: every store handle was dropped");
}

enum Together {
    /// The transaction could not begin or commit: nothing was written.
    Failed(String),
    /// A job failed and the transaction was rolled back.
    JobFailed,
}

fn commit_together<S: State>(
    conn: &mut Connection,
    state: &mut S,
    jobs: &mut [Box<dyn Job<S>>],
) -> Result<(), Together> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| {
            tracing::error!(error = %e, "could not begin a sqlite transaction");
            Together::Failed(e.to_string())
        })?;
    let mut succeeded = jobs.iter_mut().all(|job| job.run(&tx, state));
    if succeeded {
        if let Err(e) = state.finish(&tx) {
            tracing::warn!(error = %e, "a batch could not be finished; it is committed job by job");
            succeeded = false;
        }
    }
    if succeeded {
        if let Err(e) = state.tend(&tx) {
            tracing::warn!(error = %e, "sqlite upkeep failed; the batch is committed job by job");
            succeeded = false;
        }
    }
    if !succeeded {
        roll_back(tx, state);
        return Err(Together::JobFailed);
    }
    commit(tx, state).map_err(|e| {
        tracing::error!(error = %e, "sqlite commit failed");
        Together::Failed(e.to_string())
    })
}

/// One job in a transaction of its own: its result stands only if committed.
fn commit_alone<S: State>(
    conn: &mut Connection,
    state: &mut S,
    job: &mut dyn Job<S>,
) -> Result<(), Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !job.run(&tx, state) {
        roll_back(tx, state);
        return Ok(());
    }
    if let Err(e) = state.finish(&tx) {
        roll_back(tx, state);
        return Err(e);
    }
    Ok(commit(tx, state)?)
}

/// Commits, and tells `state` whether its changes stand.
fn commit<S: State>(tx: Transaction<'_>, state: &mut S) -> rusqlite::Result<()> {
    let committed = tx.commit();
    match committed {
        Ok(()) => state.committed(),
        Err(_) => state.rolled_back(),
    }
    committed
}

fn roll_back<S: State>(tx: Transaction<'_>, state: &mut S) {
    // Dropping the transaction rolls it back.
    drop(tx);
    state.rolled_back();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The values jobs pushed, as the writer reported them committed.
    #[derive(Default)]
    struct Seen {
        committed: Vec<i64>,
        open: Vec<i64>,
    }

    impl State for Seen {
        /// Writes the values the open transaction's jobs pushed to `f`.
        fn finish(&mut self, conn: &Connection) -> Result<(), Error> {
            for x in &self.open {
                conn.execute("INSERT INTO f VALUES (?1)", [x])?;
            }
            Ok(())
        }
        fn tend(&mut self, _: &Connection) -> Result<(), Error> {
            Ok(())
        }
        fn committed(&mut self) {
            self.committed.append(&mut self.open);
        }
        fn rolled_back(&mut self) {
            self.open.clear();
        }
    }

    fn count(conn: &Connection, table: &str, value: i64) -> Result<i64, Error> {
        Ok(conn.query_row(
            &format!("SELECT COUNT(*) FROM {table} WHERE x = ?1"),
            [value],
            |row| row.get(0),
        )?)
    }

    fn counts(conn: &Connection, table: &str) -> Result<(i64, i64, i64), Error> {
        Ok((
            count(conn, table, 1)?,
            count(conn, table, 2)?,
            count(conn, table, 3)?,
        ))
    }

    /// Three jobs queued behind a held writer share one transaction; the
    /// middle one fails after writing, and only its writes (to the database,
    /// to the writer's state, and the finish step's for it) are undone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_job_leaves_the_jobs_of_its_batch_committed() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER); CREATE TABLE f (x INTEGER);")
            .unwrap();
        let (commits, _committed) = std::sync::mpsc::sync_channel(64);
        let lock = std::fs::File::create(dir.path().join("w.lock")).unwrap();
        let writer = Writer::spawn(conn, Seen::default(), commits, lock).unwrap();

        let (started, running) = std::sync::mpsc::channel::<()>();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = std::sync::Mutex::new(hold);
        let held = tokio::spawn({
            let writer = writer.clone();
            async move {
                writer
                    .run(move |_, _| {
                        started.send(()).ok();
                        hold.lock().unwrap().recv().ok();
                        Ok(())
                    })
                    .await
            }
        });
        running.recv().unwrap();
        let insert = |x: i64, fail: bool| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .run(move |conn, seen| {
                        conn.execute("INSERT INTO t VALUES (?1)", [x])?;
                        seen.open.push(x);
                        match fail {
                            true => Err(Error::WriterGone),
                            false => Ok(x),
                        }
                    })
                    .await
            })
        };
        let (first, second, third) = (insert(1, false), insert(2, true), insert(3, false));
        while writer.jobs.capacity() > QUEUE_CAPACITY - 3 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();

        assert!(held.await.unwrap().is_ok());
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert!(second.await.unwrap().is_err());
        assert_eq!(third.await.unwrap().unwrap(), 3);
        let counts = writer
            .run(|conn, _| Ok((counts(conn, "t")?, counts(conn, "f")?)))
            .await
            .unwrap();
        // What the finish step wrote for the jobs is committed with them, once.
        assert_eq!(counts, ((1, 0, 1), (1, 0, 1)));
        let mut seen = writer
            .run(|_, seen| Ok(seen.committed.clone()))
            .await
            .unwrap();
        // The three tasks may queue their jobs in any order.
        seen.sort_unstable();
        assert_eq!(seen, [1, 3]);
    }
}

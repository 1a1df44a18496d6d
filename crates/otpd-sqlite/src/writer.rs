//! The one thread that owns the SQLite connection.
//!
//! Every operation is a job sent over a channel. The thread takes whatever
//! jobs are waiting (up to [`MAX_BATCH`]), runs each inside its own savepoint
//! of one transaction, commits once, and only then answers the callers. Many
//! concurrent requests thus share one commit (and one fsync), the async
//! runtime never waits on SQLite, and each job is atomic on its own.

use std::sync::mpsc::SyncSender;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::Error;

/// Jobs committed together at most; bounds the latency one commit adds.
const MAX_BATCH: usize = 256;
/// Jobs waiting for the writer at most; callers wait (asynchronously) beyond that.
pub const QUEUE_CAPACITY: usize = 4096;

/// Runs inside the transaction (or learns it could not start) and returns
/// how to answer once the transaction's fate is known.
type Job = Box<dyn FnOnce(Result<&Connection, Error>) -> Answer + Send>;

struct Answer {
    succeeded: bool,
    send: Box<dyn FnOnce(Result<(), Error>) + Send>,
}

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the thread. It tells `commits` after each commit, and holds
    /// `lock` (the store's single-process lock) for as long as it runs.
    pub fn spawn(
        conn: Connection,
        commits: SyncSender<()>,
        lock: std::fs::File,
    ) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("otpd-sqlite".into())
            .spawn(move || {
                run(conn, rx, &commits);
                drop(lock);
            })?;
        Ok(Self { jobs })
    }

    /// Runs `f` atomically in the writer thread; resolves after its commit.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = conn.and_then(f);
            Answer {
                succeeded: result.is_ok(),
                send: Box::new(move |committed| {
                    let _ = tx.send(committed.and(result));
                }),
            }
        });
        self.jobs.send(job).await.map_err(|_| Error::WriterGone)?;
        rx.await.map_err(|_| Error::WriterGone)?
    }
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Job>, commits: &SyncSender<()>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let answers = commit_batch(&mut conn, batch.drain(..));
        // Full means a checkpoint is already due; the checkpointer catches up.
        let _ = commits.try_send(());
        for (answer, committed) in answers {
            (answer.send)(committed);
        }
    }
    tracing::debug!("sqlite writer stopped: every store handle was dropped");
}

/// Runs the jobs in one transaction; pairs each answer with the fate of its writes.
/// Savepoint statements run for every job: prepared once, not parsed each time.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn commit_batch(
    conn: &mut Connection,
    jobs: impl Iterator<Item = Job>,
) -> Vec<(Answer, Result<(), Error>)> {
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(error = %e, "could not begin a sqlite transaction");
            let reason = e.to_string();
            return jobs
                .map(|job| (job(Err(Error::CommitFailed(reason.clone()))), Ok(())))
                .collect();
        }
    };
    let mut answers = Vec::new();
    for job in jobs {
        let answer = match run_cached(&tx, "SAVEPOINT job") {
            Ok(()) => job(Ok(&tx)),
            Err(e) => job(Err(e.into())),
        };
        let undone = match answer.succeeded {
            true => Ok(()),
            false => run_cached(&tx, "ROLLBACK TO job"),
        };
        if let Err(e) = undone.and_then(|()| run_cached(&tx, "RELEASE job")) {
            tracing::error!(error = %e, "could not close a savepoint");
        }
        answers.push(answer);
    }
    let committed = tx.commit().map_err(|e| {
        tracing::error!(error = %e, "sqlite commit failed");
        e.to_string()
    });
    answers
        .into_iter()
        .map(|answer| (answer, committed.clone().map_err(Error::CommitFailed)))
        .collect()
}

//! The outbox: mails queued with their codes, claimed by the worker, and
//! settled once sent, retried or given up.
//!
//! A claim writes nothing. Claimed mails are leased in the writer thread's
//! memory ([`Leases`]); the lock file admits one process per database, so
//! when that process dies its leases go with it and a restart claims the
//! mails again at once.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use otpd_core::store::{MailId, NewMail, Outbox, OutboxStats, QueuedMail, Settlement, StoreError};
use otpd_core::{EmailAddress, SealedCode, Timestamp};
use rusqlite::{params, Connection};

use crate::{Error, SqliteStore};

/// Mails claimed and not settled yet, with the end of each one's lease.
#[derive(Default)]
pub struct Leases {
    held: HashMap<i64, i64>,
    /// Taken and released by the open transaction; they stand once it commits.
    taken: Vec<i64>,
    released: Vec<i64>,
}

impl Leases {
    fn holds(&self, id: i64, now: i64) -> bool {
        self.held.get(&id).is_some_and(|&until| until > now)
    }

    fn take(&mut self, id: i64, until: i64) {
        self.held.insert(id, until);
        self.taken.push(id);
    }

    /// The mail was settled; its lease ends once that commits.
    fn release(&mut self, id: i64) {
        self.released.push(id);
    }

    /// Forgets leases that ended: their mails were not settled (a worker
    /// stopped mid-send) and may be claimed again.
    fn prune(&mut self, now: i64) {
        self.held.retain(|_, &mut until| until > now);
    }

    pub fn committed(&mut self) {
        self.taken.clear();
        for id in self.released.drain(..) {
            self.held.remove(&id);
        }
    }

    pub fn rolled_back(&mut self) {
        for id in self.taken.drain(..) {
            self.held.remove(&id);
        }
        self.released.clear();
    }
}

const QUEUE: &str =
    "INSERT INTO outbox (email, sealed, created_at, code_expires_at, next_attempt_at, state)
     VALUES (?1, ?2, ?3, ?4, ?3, 'pending')";

/// Queues `mail`, due at once; part of issuing its code.
pub fn queue(conn: &Connection, mail: &NewMail) -> Result<(), Error> {
    conn.prepare_cached(QUEUE)?.execute(params![
        mail.email.as_str(),
        mail.sealed.as_bytes(),
        mail.created_at.as_millis(),
        mail.code_expires_at.as_millis()
    ])?;
    Ok(())
}

/// A claimed mail as stored.
struct Row {
    id: i64,
    email: String,
    sealed: Vec<u8>,
    created_at: i64,
    code_expires_at: i64,
    attempts: u32,
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        let claimed = self
            .writer
            .run(move |conn, memory| {
                let leases = &mut memory.leases;
                let now_ms = now.as_millis();
                leases.prune(now_ms);
                // Leased mails are due too, and come first: read past them.
                let wanted =
                    i64::try_from(limit.saturating_add(leases.held.len())).unwrap_or(i64::MAX);
                let mut statement = conn.prepare_cached(
                    "SELECT id, email, sealed, created_at, code_expires_at, attempts FROM outbox
                     WHERE state = 'pending' AND next_attempt_at <= ?1
                     ORDER BY next_attempt_at LIMIT ?2",
                )?;
                let mut rows = statement.query(params![now_ms, wanted])?;
                let mut claimed = Vec::with_capacity(limit);
                while let Some(row) = rows.next()? {
                    let id: i64 = row.get(0)?;
                    if leases.holds(id, now_ms) {
                        continue;
                    }
                    leases.take(id, now.plus(lease).as_millis());
                    claimed.push(Row {
                        id,
                        email: row.get(1)?,
                        sealed: row.get(2)?,
                        created_at: row.get(3)?,
                        code_expires_at: row.get(4)?,
                        attempts: row.get(5)?,
                    });
                    if claimed.len() == limit {
                        break;
                    }
                }
                Ok(claimed)
            })
            .await?;
        // Parsed here, not in the writer thread that every request waits for.
        claimed
            .into_iter()
            .map(|row| {
                let email =
                    EmailAddress::parse(&row.email).map_err(|e| Error::Decode(Box::new(e)))?;
                Ok(QueuedMail {
                    id: MailId(row.id),
                    mail: NewMail {
                        email,
                        sealed: SealedCode::from_bytes(row.sealed),
                        created_at: Timestamp::from_millis(row.created_at),
                        code_expires_at: Timestamp::from_millis(row.code_expires_at),
                    },
                    attempts: row.attempts,
                })
            })
            .collect()
    }

    async fn settle(&self, settlements: Vec<(MailId, Settlement)>) -> Result<(), StoreError> {
        self.writer
            .run(move |conn, memory| {
                let mut retry = conn.prepare_cached(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2 WHERE id = ?1",
                )?;
                // A sent mail leaves the outbox (its log line is the record).
                let mut sent = conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
                // The sealed code is erased; the row stays a while for inspection.
                let mut dead = conn.prepare_cached(
                    "UPDATE outbox SET state = 'dead', sealed = NULL,
                        finished_at = strftime('%s', 'now') * 1000
                     WHERE id = ?1",
                )?;
                for &(MailId(id), settlement) in &settlements {
                    match settlement {
                        Settlement::RetryAt(at) => retry.execute(params![id, at.as_millis()])?,
                        Settlement::Delivered => sent.execute([id])?,
                        Settlement::Dead => dead.execute([id])?,
                    };
                    memory.leases.release(id);
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let due = self
            .writer
            .run(|conn, memory| {
                let leases = &memory.leases;
                // Leased mails keep their due time until they are settled:
                // the first mail not leased, or the first lease to end.
                let wanted = i64::try_from(leases.held.len() + 1).unwrap_or(i64::MAX);
                let mut statement = conn.prepare_cached(
                    "SELECT id, next_attempt_at FROM outbox WHERE state = 'pending'
                     ORDER BY next_attempt_at LIMIT ?1",
                )?;
                let mut rows = statement.query([wanted])?;
                let mut due = leases.held.values().copied().min();
                while let Some(row) = rows.next()? {
                    if !leases.held.contains_key(&row.get(0)?) {
                        let at: i64 = row.get(1)?;
                        due = Some(due.map_or(at, |due| due.min(at)));
                        break;
                    }
                }
                Ok(due.map(Timestamp::from_millis))
            })
            .await?;
        Ok(due)
    }

    async fn stats(&self, now: Timestamp) -> Result<OutboxStats, StoreError> {
        let stats = self
            .writer
            .run(move |conn, _| {
                let (depth, oldest): (u64, Option<i64>) = conn
                    .prepare_cached(
                        "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state = 'pending'",
                    )?
                    .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                Ok(OutboxStats {
                    depth,
                    oldest_age: oldest
                        .map(|t| Timestamp::from_millis(t).until(now))
                        .unwrap_or_default(),
                })
            })
            .await?;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{schema, Durability};

    /// Once per issued code: the statement must not build a temporary
    /// b-tree, as the outbox's CHECK written `state IN (...)` made it do.
    #[test]
    fn queueing_a_mail_builds_no_temporary_btree() {
        let conn = Connection::open_in_memory().unwrap();
        schema::prepare_writer(&conn, Durability::default()).unwrap();
        let opcodes: Vec<String> = conn
            .prepare(&format!("EXPLAIN {QUEUE}"))
            .unwrap()
            .query_map(params!["a@example.com", [0u8], 1, 2], |row| row.get(1))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(opcodes.iter().any(|op| op == "Insert"), "{opcodes:?}");
        assert!(
            !opcodes.iter().any(|op| op == "OpenEphemeral"),
            "{opcodes:?}"
        );
    }
}

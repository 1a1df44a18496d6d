//! The outbox: mails queued with their codes, claimed by the worker, and
//! settled once sent, retried or given up.
//!
//! Mails not tried yet wait in `new_mails`, many to a row (see `queued`);
//! a mail whose first try fails moves to the `outbox` table, one row each,
//! with its attempts and its next due time, and stays there until sent or
//! given up. A claim takes from both, oldest due first.
//!
//! A claim writes nothing. Claimed mails are leased in the writer thread's
//! memory ([`Leases`]); the lock file admits one process per database, so
//! when that process dies its leases go with it and a restart claims the
//! mails again at once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use otpd_core::store::{MailId, NewMail, Outbox, OutboxStats, QueuedMail, Settlement, StoreError};
use otpd_core::{error_chain, EmailAddress, SealedCode, Timestamp};
use rusqlite::{params, Connection, OptionalExtension};

use crate::{queued, Error, SqliteStore};

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

/// A mail whose first try failed, due again at `?5`.
const RETRY_NEW: &str =
    "INSERT INTO outbox (email, sealed, created_at, code_expires_at, attempts, next_attempt_at, state)
     VALUES (?1, ?2, ?3, ?4, 1, ?5, 'pending')";

/// A claimable mail as stored, in either table.
struct Row {
    id: i64,
    email: String,
    sealed: Vec<u8>,
    created_at: i64,
    code_expires_at: i64,
    attempts: u32,
    due: i64,
}

impl Row {
    fn of_entry(row: i64, entry: &queued::Entry<'_>) -> Self {
        Self {
            id: queued::mail_id(row, entry.slot),
            email: entry.email.to_owned(),
            sealed: entry.sealed.to_vec(),
            created_at: entry.created_at,
            code_expires_at: entry.code_expires_at,
            attempts: 0,
            due: entry.created_at,
        }
    }
}

/// When to look: mails due by `due_by`, skipping those leased at `leased_at`.
#[derive(Clone, Copy)]
struct Look {
    due_by: i64,
    leased_at: i64,
}

/// Up to `limit` mails of the `outbox` table due and not leased, in due order.
fn due_retries(
    conn: &Connection,
    leases: &Leases,
    look: Look,
    limit: usize,
) -> Result<Vec<Row>, Error> {
    // Leased mails are due too, and come first: read past them.
    let wanted = i64::try_from(limit.saturating_add(leases.held.len())).unwrap_or(i64::MAX);
    let mut statement = conn.prepare_cached(
        "SELECT id, email, sealed, created_at, code_expires_at, attempts, next_attempt_at
         FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?1
         ORDER BY next_attempt_at LIMIT ?2",
    )?;
    let mut rows = statement.query(params![look.due_by, wanted])?;
    let mut due = Vec::with_capacity(limit);
    while due.len() < limit {
        let Some(row) = rows.next()? else { break };
        let id: i64 = row.get(0)?;
        if leases.holds(id, look.leased_at) {
            continue;
        }
        due.push(Row {
            id,
            email: row.get(1)?,
            sealed: row.get(2)?,
            created_at: row.get(3)?,
            code_expires_at: row.get(4)?,
            attempts: row.get(5)?,
            due: row.get(6)?,
        });
    }
    Ok(due)
}

/// Up to `limit` mails not tried yet, due (at their creation) and not
/// leased, in the order they were queued. Rows that cannot be read are set
/// aside on the way.
fn due_new(
    conn: &Connection,
    leases: &Leases,
    look: Look,
    limit: usize,
) -> Result<Vec<Row>, Error> {
    let mut statement = conn.prepare_cached("SELECT id, mails FROM new_mails ORDER BY id")?;
    let mut rows = statement.query([])?;
    let mut due = Vec::with_capacity(limit);
    let mut damaged = Vec::new();
    while due.len() < limit {
        let Some(row) = rows.next()? else { break };
        let id: i64 = row.get(0)?;
        let entries = match row.get_ref(1)?.as_blob() {
            Ok(bytes) => queued::decode(bytes),
            Err(e) => Err(Error::Decode(Box::new(e))),
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err(error) => {
                damaged.push((id, error));
                continue;
            }
        };
        for entry in entries {
            if due.len() == limit {
                break;
            }
            if entry.created_at <= look.due_by
                && !leases.holds(queued::mail_id(id, entry.slot), look.leased_at)
            {
                due.push(Row::of_entry(id, &entry));
            }
        }
    }
    drop(rows);
    for (id, error) in damaged {
        set_aside(conn, id, &error)?;
    }
    Ok(due)
}

/// Moves the `new_mails` row `row`, which could not be read, to
/// `damaged_mails`: one damaged row must not stop every claim after it.
/// Its mails are never sent; its bytes stay for the operator to look at.
fn set_aside(conn: &Connection, row: i64, error: &Error) -> Result<(), Error> {
    let reason = error_chain(error);
    let count: i64 = conn
        .prepare_cached(
            "INSERT INTO damaged_mails (found_at, error, mails, count)
             SELECT strftime('%s', 'now') * 1000, ?2, mails, CAST(count AS INTEGER)
             FROM new_mails WHERE id = ?1
             RETURNING count",
        )?
        .query_row(params![row, reason], |r| r.get(0))?;
    conn.prepare_cached("DELETE FROM new_mails WHERE id = ?1")?
        .execute([row])?;
    tracing::error!(
        row,
        mails = count,
        error = reason,
        "queued mails could not be read and were set aside in damaged_mails; they will not be sent"
    );
    Ok(())
}

/// The first `limit` of two lists sorted by due time, merged in due order.
fn merge(first: Vec<Row>, second: Vec<Row>, limit: usize) -> Vec<Row> {
    let mut merged = Vec::with_capacity(limit.min(first.len() + second.len()));
    let (mut first, mut second) = (first.into_iter().peekable(), second.into_iter().peekable());
    while merged.len() < limit {
        let next = match (first.peek(), second.peek()) {
            (Some(a), Some(b)) if b.due < a.due => second.next(),
            (Some(_), _) => first.next(),
            (None, _) => second.next(),
        };
        match next {
            Some(row) => merged.push(row),
            None => break,
        }
    }
    merged
}

/// Settles mails of the `new_mails` row `row`: each `settled` slot leaves
/// the row, to the `outbox` table if it is to be retried or kept as dead;
/// the row goes once it holds no mail.
fn settle_new(conn: &Connection, row: i64, settled: &[(u8, Settlement)]) -> Result<(), Error> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT mails FROM new_mails WHERE id = ?1")?
        .query_row([row], |r| r.get(0))
        .optional()?;
    let Some(bytes) = bytes else {
        return Ok(());
    };
    let mut left = Vec::new();
    for entry in queued::decode(&bytes)? {
        let settlement = settled
            .iter()
            .find(|(slot, _)| *slot == entry.slot)
            .map(|(_, settlement)| *settlement);
        match settlement {
            None => left.push(entry),
            Some(Settlement::Delivered) => {}
            Some(Settlement::RetryAt(at)) => {
                conn.prepare_cached(RETRY_NEW)?.execute(params![
                    entry.email,
                    entry.sealed,
                    entry.created_at,
                    entry.code_expires_at,
                    at.as_millis()
                ])?;
            }
            // As a mail of the `outbox` table given up: no failed attempts
            // counted beyond the retries, and no sealed code.
            Some(Settlement::Dead) => {
                conn.prepare_cached(
                    "INSERT INTO outbox (email, sealed, created_at, code_expires_at, attempts,
                        next_attempt_at, state, finished_at)
                     VALUES (?1, NULL, ?2, ?3, 0, ?2, 'dead', strftime('%s', 'now') * 1000)",
                )?
                .execute(params![
                    entry.email,
                    entry.created_at,
                    entry.code_expires_at
                ])?;
            }
        }
    }
    match left.iter().map(|entry| entry.created_at).min() {
        None => {
            conn.prepare_cached("DELETE FROM new_mails WHERE id = ?1")?
                .execute([row])?;
        }
        Some(oldest) => {
            conn.prepare_cached(
                "UPDATE new_mails SET mails = ?2, count = ?3, created_at = ?4 WHERE id = ?1",
            )?
            .execute(params![row, queued::encode(&left)?, left.len(), oldest])?;
        }
    }
    Ok(())
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
                let look = Look {
                    due_by: now_ms,
                    leased_at: now_ms,
                };
                let retries = due_retries(conn, leases, look, limit)?;
                let new = due_new(conn, leases, look, limit)?;
                let claimed = merge(retries, new, limit);
                let until = now.plus(lease).as_millis();
                for row in &claimed {
                    leases.take(row.id, until);
                }
                Ok(claimed)
            })
            .await?;
        // Parsed here, not in the writer thread that every request waits for.
        let mut queued = Vec::with_capacity(claimed.len());
        let mut unreadable = Vec::new();
        for row in claimed {
            let email = match EmailAddress::parse(&row.email) {
                Ok(email) => email,
                Err(error) => {
                    tracing::error!(
                        mail = row.id,
                        %error,
                        "a queued mail's stored address is not valid; the mail is given up"
                    );
                    unreadable.push((MailId(row.id), Settlement::Dead));
                    continue;
                }
            };
            queued.push(QueuedMail {
                id: MailId(row.id),
                mail: NewMail {
                    email,
                    sealed: SealedCode::from_bytes(row.sealed),
                    created_at: Timestamp::from_millis(row.created_at),
                    code_expires_at: Timestamp::from_millis(row.code_expires_at),
                },
                attempts: row.attempts,
            });
        }
        if !unreadable.is_empty() {
            self.settle(unreadable).await?;
        }
        Ok(queued)
    }

    async fn settle(&self, settlements: Vec<(MailId, Settlement)>) -> Result<(), StoreError> {
        self.writer
            .run(move |conn, memory| {
                // Most settled mails are new ones; these statements are for
                // the `outbox` table's, prepared only when one comes.
                let mut new: BTreeMap<i64, Vec<(u8, Settlement)>> = BTreeMap::new();
                for &(MailId(id), settlement) in &settlements {
                    memory.leases.release(id);
                    if let Some((row, slot)) = queued::place(id) {
                        new.entry(row).or_default().push((slot, settlement));
                        continue;
                    }
                    match settlement {
                        Settlement::RetryAt(at) => conn
                            .prepare_cached(
                                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2
                                 WHERE id = ?1",
                            )?
                            .execute(params![id, at.as_millis()])?,
                        // A sent mail leaves the outbox (its log line is the record).
                        Settlement::Delivered => conn
                            .prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                            .execute([id])?,
                        // The sealed code is erased; the row stays a while for inspection.
                        Settlement::Dead => conn
                            .prepare_cached(
                                "UPDATE outbox SET state = 'dead', sealed = NULL,
                                    finished_at = strftime('%s', 'now') * 1000
                                 WHERE id = ?1",
                            )?
                            .execute([id])?,
                    };
                }
                for (row, settled) in &new {
                    settle_new(conn, *row, settled)?;
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
                let mut due = leases.held.values().copied().min();
                // Every lease held counts, ended or not: a claim prunes them.
                let look = Look {
                    due_by: i64::MAX,
                    leased_at: i64::MIN,
                };
                let retries = due_retries(conn, leases, look, 1)?;
                let new = due_new(conn, leases, look, 1)?;
                for row in retries.iter().chain(&new) {
                    due = Some(due.map_or(row.due, |due| due.min(row.due)));
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
                let (mut depth, mut oldest) = (0, None::<i64>);
                for sql in [
                    "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state = 'pending'",
                    "SELECT coalesce(SUM(count), 0), MIN(created_at) FROM new_mails",
                ] {
                    let (count, first): (u64, Option<i64>) = conn
                        .prepare_cached(sql)?
                        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                    depth += count;
                    oldest = match (oldest, first) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                let damaged = conn
                    .prepare_cached("SELECT coalesce(SUM(count), 0) FROM damaged_mails")?
                    .query_row([], |row| row.get(0))?;
                Ok(OutboxStats {
                    depth,
                    oldest_age: oldest
                        .map(|t| Timestamp::from_millis(t).until(now))
                        .unwrap_or_default(),
                    damaged,
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

    /// Once per failed first try: the statement must not build a temporary
    /// b-tree, as the outbox's CHECK written `state IN (...)` made it do.
    #[test]
    fn queueing_a_retry_builds_no_temporary_btree() {
        let conn = Connection::open_in_memory().unwrap();
        schema::prepare_writer(&conn, Durability::default()).unwrap();
        let opcodes: Vec<String> = conn
            .prepare(&format!("EXPLAIN {RETRY_NEW}"))
            .unwrap()
            .query_map(params!["a@example.com", [0u8], 1, 2, 3], |row| row.get(1))
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

#[cfg(test)]
mod new_mail_tests {
    #![allow(clippy::unwrap_used)]

    use otpd_core::EmailAddress;

    use super::*;
    use crate::queued::Queued;
    use crate::{schema, Durability};

    const T0: i64 = 1_700_000_000_000;

    fn mail(n: i64) -> NewMail {
        NewMail {
            email: EmailAddress::parse(&format!("m{n}@example.com")).unwrap(),
            sealed: SealedCode::from_bytes(vec![n as u8; 34]),
            created_at: Timestamp::from_millis(T0 + n),
            code_expires_at: Timestamp::from_millis(T0 + 300_000),
        }
    }

    /// A database with mails 0, 1 and 2 in one `new_mails` row.
    fn three_in_a_row() -> (Connection, i64) {
        let conn = Connection::open_in_memory().unwrap();
        schema::prepare_writer(&conn, Durability::default()).unwrap();
        let mut queued = Queued::default();
        for n in 0..3 {
            queued.push(&mail(n)).unwrap();
        }
        queued.write(&conn).unwrap();
        let row = conn
            .query_row("SELECT id FROM new_mails", [], |r| r.get(0))
            .unwrap();
        (conn, row)
    }

    fn now() -> Look {
        Look {
            due_by: T0 + 10,
            leased_at: T0 + 10,
        }
    }

    fn outbox(conn: &Connection) -> Vec<(String, String, bool, u32, i64)> {
        conn.prepare(
            "SELECT email, state, sealed IS NULL, attempts, next_attempt_at FROM outbox ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    fn emails(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|row| row.email.as_str()).collect()
    }

    /// Part of a row is claimed and settled; the rest stays claimable, and
    /// the row goes with its last mail.
    #[test]
    fn a_row_of_new_mails_is_settled_mail_by_mail() {
        let (conn, row) = three_in_a_row();
        let mut leases = Leases::default();
        let first_two = due_new(&conn, &leases, now(), 2).unwrap();
        assert_eq!(emails(&first_two), ["m0@example.com", "m1@example.com"]);
        for claimed in &first_two {
            leases.take(claimed.id, T0 + 60_000);
        }
        leases.committed();
        let rest = due_new(&conn, &leases, now(), 10).unwrap();
        assert_eq!(emails(&rest), ["m2@example.com"]);

        let retry_at = Timestamp::from_millis(T0 + 5_000);
        settle_new(
            &conn,
            row,
            &[
                (0, Settlement::Delivered),
                (1, Settlement::RetryAt(retry_at)),
            ],
        )
        .unwrap();
        let (mails, count, created_at): (Vec<u8>, usize, i64) = conn
            .query_row("SELECT mails, count, created_at FROM new_mails", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        let left = queued::decode(&mails).unwrap();
        assert_eq!(
            (left.len(), left[0].slot, left[0].email),
            (1, 2, "m2@example.com")
        );
        assert_eq!((count, created_at), (1, T0 + 2));
        assert_eq!(
            outbox(&conn),
            [(
                "m1@example.com".into(),
                "pending".into(),
                false,
                1,
                T0 + 5_000
            )]
        );

        settle_new(&conn, row, &[(2, Settlement::Dead)]).unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM new_mails", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
        assert_eq!(
            outbox(&conn)[1],
            ("m2@example.com".into(), "dead".into(), true, 0, T0 + 2)
        );
        // Settling a row that is gone changes nothing.
        settle_new(&conn, row, &[(2, Settlement::Delivered)]).unwrap();
        assert_eq!(outbox(&conn).len(), 2);
    }

    /// Retries and new mails are claimed together, oldest due first.
    #[test]
    fn claims_take_retries_and_new_mails_in_due_order() {
        let (conn, row) = three_in_a_row();
        let retry_at = Timestamp::from_millis(T0 + 1);
        settle_new(&conn, row, &[(0, Settlement::RetryAt(retry_at))]).unwrap();
        let leases = Leases::default();
        let claimed = merge(
            due_retries(&conn, &leases, now(), 3).unwrap(),
            due_new(&conn, &leases, now(), 3).unwrap(),
            3,
        );
        // m1 (due T0+1, queued) ties with m0's retry (due T0+1): the retry first.
        assert_eq!(
            emails(&claimed),
            ["m0@example.com", "m1@example.com", "m2@example.com"]
        );
        assert_eq!(claimed[0].attempts, 1);
        assert!(claimed[0].id > 0 && claimed[1].id < 0);
        let early = Look {
            due_by: T0,
            leased_at: T0,
        };
        assert!(due_retries(&conn, &leases, early, 3).unwrap().is_empty());
        assert_eq!(
            emails(&due_new(&conn, &leases, early, 3).unwrap()),
            [] as [&str; 0]
        );
    }

    /// Rows that cannot be read (another layout, no mails, not a blob) are
    /// set aside with their bytes, and the rows after them are claimed.
    #[test]
    fn damaged_rows_are_set_aside_and_the_rows_after_them_are_claimed() {
        let conn = Connection::open_in_memory().unwrap();
        schema::prepare_writer(&conn, Durability::default()).unwrap();
        for mails in ["x'02ff'", "x'01'", "'text'"] {
            conn.execute(
                &format!(
                    "INSERT INTO new_mails (mails, count, created_at) VALUES ({mails}, 3, {T0})"
                ),
                [],
            )
            .unwrap();
        }
        let mut queued = Queued::default();
        for n in 0..3 {
            queued.push(&mail(n)).unwrap();
        }
        queued.write(&conn).unwrap();

        let leases = Leases::default();
        let claimed = due_new(&conn, &leases, now(), 10).unwrap();
        assert_eq!(
            emails(&claimed),
            ["m0@example.com", "m1@example.com", "m2@example.com"]
        );
        let damaged: Vec<(Option<Vec<u8>>, i64, String)> = conn
            .prepare("SELECT mails, count, error FROM damaged_mails ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0).ok(), r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(damaged.len(), 3);
        assert_eq!(damaged[0].0.as_deref(), Some(&[2, 255][..]));
        assert!(damaged[0].2.contains("unknown layout"), "{}", damaged[0].2);
        assert!(damaged[1].2.contains("without mails"), "{}", damaged[1].2);
        assert!(damaged.iter().all(|(_, count, _)| *count == 3));
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM new_mails", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1);
        // Set aside once: the next claim reads the good row only.
        assert_eq!(due_new(&conn, &leases, now(), 10).unwrap().len(), 3);
        let damaged_rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM damaged_mails", [], |r| r.get(0))
            .unwrap();
        assert_eq!(damaged_rows, 3);
    }
}

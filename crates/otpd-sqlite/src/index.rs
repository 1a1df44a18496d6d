//! Finding an address's record through an email index written in bulk.
//!
//! Records are appended to `addresses` in the order addresses first get a
//! code. Both parts of the email index map the address's key (a keyed
//! 64-bit hash, see [`keyed`](crate::keyed)) to record ids; a match counts
//! once the record's stored address is the one asked for. A new address is
//! found through the [`Stage`], a sorted set in the writer thread's memory,
//! and joins the on-disk `address_index` later, when [`Stage::tend`] merges
//! the staged entries of one key range. A page of the on-disk index then
//! takes many new entries at once, where an insert per new address dirtied
//! a page of its own (two thirds of the WAL written per code).
//!
//! Staged entries survive the process: every record with an id above
//! `address_index_state.merged_through` is staged again when the store
//! opens. Merging sweeps the key space in rounds; when a round wraps around,
//! every entry staged when it began is on disk, and the mark moves up to the
//! highest id of that moment. The stage hands out record ids itself, each
//! above every id in the table and above the mark, so a record above the
//! mark is always one that may still be staged only. (`AUTOINCREMENT` did
//! the same by rewriting a row of `sqlite_sequence` on every insert.)

use std::collections::BTreeSet;
use std::ops::Bound;

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use crate::keyed::Keyer;
use crate::writer::State;
use crate::{text, Error};

/// Entries merged at most by one step, so a step stays short for the writer.
const MAX_STEP: usize = 1024;

/// An entry of either part of the index: the address's key, the record's id.
type Entry = (i64, i64);

/// An address with its key, hashed once for all the index's uses in a job.
#[derive(Clone, Copy)]
pub struct Address<'a> {
    email: &'a str,
    key: i64,
}

/// A record found by email: its row and its stored form.
pub struct Found {
    pub id: i64,
    pub record: Value,
}

pub fn find(conn: &Connection, stage: &Stage, address: Address) -> Result<Option<Found>, Error> {
    let Address { email, key } = address;
    let row = |row: &rusqlite::Row| {
        Ok(Found {
            id: row.get(0)?,
            record: row.get(1)?,
        })
    };
    for &(_, id) in stage.entries.range((key, i64::MIN)..=(key, i64::MAX)) {
        let found = conn
            .prepare_cached("SELECT id, record FROM addresses WHERE id = ?1 AND email = ?2")?
            .query_row(params![id, email], row)
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(conn
        .prepare_cached(
            "SELECT a.id, a.record FROM address_index i JOIN addresses a ON a.id = i.id
             WHERE i.hash = ?1 AND a.email = ?2",
        )?
        .query_row(params![key, email], row)
        .optional()?)
}

/// Stores a record for an address that has none; the caller checked with [`find`].
pub fn insert(
    conn: &Connection,
    stage: &mut Stage,
    address: Address,
    record: &[u8],
    expires_at: i64,
) -> Result<(), Error> {
    let id = stage.next_id;
    conn.prepare_cached(
        "INSERT INTO addresses (id, email, record, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![id, address.email, record, expires_at])?;
    // Not taken back on a rollback: an id skipped is never a problem.
    stage.next_id += 1;
    stage.put((address.key, id));
    Ok(())
}

pub fn update(conn: &Connection, id: i64, record: &[u8], expires_at: i64) -> Result<(), Error> {
    conn.prepare_cached("UPDATE addresses SET record = ?2, expires_at = ?3 WHERE id = ?1")?
        .execute(params![id, record, expires_at])?;
    Ok(())
}

/// Deletes the record `id` of `address` and its entry.
pub fn delete(
    conn: &Connection,
    stage: &mut Stage,
    id: i64,
    address: Address,
) -> Result<(), Error> {
    conn.prepare_cached("DELETE FROM addresses WHERE id = ?1")?
        .execute([id])?;
    let entry = (address.key, id);
    // Re-staged after a restart, an entry can be in both parts.
    stage.take(entry);
    conn.prepare_cached("DELETE FROM address_index WHERE hash = ?1 AND id = ?2")?
        .execute([entry.0, entry.1])?;
    Ok(())
}

/// How far a sweep got: the records after `after` are left to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    pub deleted: usize,
    pub after: Option<i64>,
}

/// Deletes the records that expired by `now` (with their index entries)
/// among the next `step` records after id `after` and below id `below`, in
/// id order. A table scan in steps (see `sweep`), so no index on expiry has
/// to take an entry per issued code.
pub fn delete_expired(
    conn: &Connection,
    stage: &mut Stage,
    now: i64,
    (after, below): (i64, i64),
    step: usize,
) -> Result<Sweep, Error> {
    let mut next = conn.prepare_cached(
        "SELECT id, email, expires_at FROM addresses WHERE id > ?1 AND id < ?2
         ORDER BY id LIMIT ?3",
    )?;
    let step_sql = i64::try_from(step).unwrap_or(i64::MAX);
    let mut rows = next.query(params![after, below, step_sql])?;
    let (mut seen, mut last) = (0, after);
    let mut expired = Vec::new();
    while let Some(row) = rows.next()? {
        seen += 1;
        last = row.get(0)?;
        if row.get::<_, i64>(2)? <= now {
            expired.push((last, text(row, 1)?.to_owned()));
        }
    }
    for (id, email) in &expired {
        let address = stage.address(email);
        delete(conn, stage, *id, address)?;
    }
    Ok(Sweep {
        deleted: expired.len(),
        after: (seen == step).then_some(last),
    })
}

/// Where a round of merging is.
#[derive(Clone, Copy, Default)]
struct Round {
    /// The last entry merged; `None` before the round's first step.
    cursor: Option<Entry>,
    /// The highest record id when the round began.
    mark: i64,
}

/// The staged part of the email index, kept by the writer thread.
pub struct Stage {
    /// Entries of records not (known to be) in `address_index`.
    entries: BTreeSet<Entry>,
    /// How to undo the changes of the open transaction, oldest first: each
    /// entry, and whether it was put (else taken).
    undo: Vec<(Entry, bool)>,
    /// Entries left staged; merging starts above this many.
    target: usize,
    keyer: Keyer,
    /// The id of the next new record.
    pub next_id: i64,
    round: Round,
    /// Where the round will be once the open transaction commits.
    next_round: Option<Round>,
}

impl Stage {
    /// Stages every record not merged yet.
    pub fn open(conn: &Connection, target: usize) -> Result<Self, Error> {
        let keyer = Keyer::load(conn)?;
        let mut entries = BTreeSet::new();
        let mut statement = conn.prepare(
            "SELECT email, id FROM addresses
             WHERE id > (SELECT merged_through FROM address_index_state)",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            entries.insert((keyer.key(text(row, 0)?), row.get(1)?));
        }
        let next_id = conn.query_row(
            "SELECT max(coalesce((SELECT max(id) FROM addresses), 0),
                        coalesce((SELECT merged_through FROM address_index_state), 0)) + 1",
            [],
            |row| row.get(0),
        )?;
        Ok(Self {
            entries,
            undo: Vec::new(),
            target,
            keyer,
            next_id,
            round: Round::default(),
            next_round: None,
        })
    }

    /// `email` with its key in this database's index.
    pub fn address<'a>(&self, email: &'a str) -> Address<'a> {
        Address {
            email,
            key: self.keyer.key(email),
        }
    }

    fn put(&mut self, entry: Entry) {
        if self.entries.insert(entry) {
            self.undo.push((entry, true));
        }
    }

    fn take(&mut self, entry: Entry) {
        if self.entries.remove(&entry) {
            self.undo.push((entry, false));
        }
    }
}

impl State for Stage {
    /// Merges the staged entries beyond the target, the next ones in key
    /// order after the last step's.
    fn tend(&mut self, conn: &Connection) -> Result<(), Error> {
        let step = self.entries.len().saturating_sub(self.target).min(MAX_STEP);
        if step == 0 {
            return Ok(());
        }
        let mark = match self.round.cursor {
            Some(_) => self.round.mark,
            None => conn
                .prepare_cached("SELECT coalesce(max(id), 0) FROM addresses")?
                .query_row([], |row| row.get(0))?,
        };
        let after = match self.round.cursor {
            Some(cursor) => Bound::Excluded(cursor),
            None => Bound::Unbounded,
        };
        let merged: Vec<Entry> = self
            .entries
            .range((after, Bound::Unbounded))
            .take(step)
            .copied()
            .collect();
        let mut index = conn.prepare_cached(
            "INSERT INTO address_index (hash, id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?;
        for (key, id) in &merged {
            index.execute([key, id])?;
        }
        let next = match merged.len() < step {
            true => {
                conn.prepare_cached("UPDATE address_index_state SET merged_through = ?1")?
                    .execute([mark])?;
                Round::default()
            }
            false => Round {
                cursor: merged.last().copied(),
                mark,
            },
        };
        for entry in merged {
            self.take(entry);
        }
        self.next_round = Some(next);
        Ok(())
    }

    fn committed(&mut self) {
        self.undo.clear();
        if let Some(round) = self.next_round.take() {
            self.round = round;
        }
    }

    fn rolled_back(&mut self) {
        while let Some((entry, put)) = self.undo.pop() {
            match put {
                true => self.entries.remove(&entry),
                false => self.entries.insert(entry),
            };
        }
        self.next_round = None;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{schema, Durability};

    fn open(path: &std::path::Path, target: usize) -> (Connection, Stage) {
        let conn = Connection::open(path).unwrap();
        schema::prepare_writer(&conn, Durability::default()).unwrap();
        let stage = Stage::open(&conn, target).unwrap();
        (conn, stage)
    }

    /// As the writer does it: one transaction, tended at its end.
    fn commit(
        conn: &mut Connection,
        stage: &mut Stage,
        change: impl FnOnce(&Connection, &mut Stage),
    ) {
        let tx = conn.transaction().unwrap();
        change(&tx, stage);
        stage.tend(&tx).unwrap();
        tx.commit().unwrap();
        stage.committed();
    }

    fn email(i: usize) -> String {
        // Spread over the key space, as real addresses are.
        format!(
            "{:08x}@example.com",
            (i as u64).wrapping_mul(0x9e37_79b9) as u32
        )
    }

    fn insert_all(
        conn: &mut Connection,
        stage: &mut Stage,
        range: std::ops::Range<usize>,
        per_commit: usize,
    ) {
        let all: Vec<usize> = range.collect();
        for chunk in all.chunks(per_commit) {
            commit(conn, stage, |conn, stage| {
                for &i in chunk {
                    let text = email(i);
                    let address = stage.address(&text);
                    insert(conn, stage, address, format!("r{i}").as_bytes(), i as i64).unwrap();
                }
            });
        }
    }

    fn indexed(conn: &Connection) -> usize {
        conn.query_row("SELECT count(*) FROM address_index", [], |row| row.get(0))
            .unwrap()
    }

    fn merged_through(conn: &Connection) -> i64 {
        conn.query_row("SELECT merged_through FROM address_index_state", [], |r| {
            r.get(0)
        })
        .unwrap()
    }

    fn found(conn: &Connection, stage: &Stage, i: usize) -> Option<String> {
        find(conn, stage, stage.address(&email(i)))
            .unwrap()
            .map(|found| match found.record {
                Value::Blob(bytes) => String::from_utf8(bytes).unwrap(),
                other => panic!("{other:?}"),
            })
    }

    fn all_found(conn: &Connection, stage: &Stage, range: std::ops::Range<usize>) -> bool {
        range
            .into_iter()
            .all(|i| found(conn, stage, i) == Some(format!("r{i}")))
    }

    #[test]
    fn merged_and_staged_records_are_all_found_and_the_stage_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, mut stage) = open(&dir.path().join("i.db"), 50);
        insert_all(&mut conn, &mut stage, 0..2_000, 10);
        // The last step of a round merges only the keys above its cursor,
        // so up to one commit's entries may stay over the target.
        assert!(stage.entries.len() < 50 + 10);
        assert!(indexed(&conn) > 1_940);
        assert!(all_found(&conn, &stage, 0..2_000));
        assert_eq!(found(&conn, &stage, 2_000), None);
    }

    /// Addresses that share a key are told apart by their records, in the
    /// stage, on disk and across both.
    #[test]
    fn addresses_with_the_same_key_find_their_own_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, mut stage) = open(&dir.path().join("i.db"), 20);
        stage.keyer = stage.keyer.clone().colliding();
        insert_all(&mut conn, &mut stage, 0..100, 7);
        assert!(indexed(&conn) >= 80 && !stage.entries.is_empty());
        assert!(all_found(&conn, &stage, 0..100));
        assert_eq!(found(&conn, &stage, 100), None);
        commit(&mut conn, &mut stage, |conn, stage| {
            for i in [0, 50, 99] {
                let id = find(conn, stage, stage.address(&email(i)))
                    .unwrap()
                    .unwrap()
                    .id;
                let text = email(i);
                let address = stage.address(&text);
                delete(conn, stage, id, address).unwrap();
            }
        });
        assert!([0, 50, 99]
            .iter()
            .all(|&i| found(&conn, &stage, i).is_none()));
        assert!(all_found(&conn, &stage, 1..50) && all_found(&conn, &stage, 51..99));
        assert_eq!(stage.entries.len() + indexed(&conn), 97);
    }

    #[test]
    fn records_staged_when_the_process_stopped_are_found_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.db");
        {
            let (mut conn, mut stage) = open(&path, 100);
            insert_all(&mut conn, &mut stage, 0..1_000, 1);
            // Mid-round: some entries are merged, others only staged.
            assert_eq!(stage.entries.len(), 100);
        }
        let (conn, stage) = open(&path, 100);
        assert!(all_found(&conn, &stage, 0..1_000));
        assert!(merged_through(&conn) > 0, "a round should have completed");
        assert!(stage.entries.len() < 1_000);
    }

    #[test]
    fn a_rolled_back_transaction_leaves_the_stage_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, mut stage) = open(&dir.path().join("i.db"), 5);
        insert_all(&mut conn, &mut stage, 0..20, 3);
        let (entries, cursor) = (stage.entries.clone(), stage.round.cursor);
        {
            let tx = conn.transaction().unwrap();
            let text = email(20);
            let address = stage.address(&text);
            insert(&tx, &mut stage, address, b"r20", 0).unwrap();
            for i in [0, 7, 19] {
                let id = find(&tx, &stage, stage.address(&email(i)))
                    .unwrap()
                    .unwrap()
                    .id;
                let text = email(i);
                let address = stage.address(&text);
                delete(&tx, &mut stage, id, address).unwrap();
            }
            stage.tend(&tx).unwrap();
        }
        stage.rolled_back();
        assert_eq!(stage.entries, entries);
        assert_eq!(stage.round.cursor, cursor);
        assert!(all_found(&conn, &stage, 0..20));
        assert_eq!(found(&conn, &stage, 20), None);
    }

    #[test]
    fn deleted_records_are_gone_from_both_indexes_and_their_ids_are_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, mut stage) = open(&dir.path().join("i.db"), 5);
        insert_all(&mut conn, &mut stage, 0..20, 1);
        commit(&mut conn, &mut stage, |conn, stage| {
            for i in [3, 19] {
                let id = find(conn, stage, stage.address(&email(i)))
                    .unwrap()
                    .unwrap()
                    .id;
                let text = email(i);
                let address = stage.address(&text);
                delete(conn, stage, id, address).unwrap();
                assert_eq!(found(conn, stage, i), None);
            }
            let text = email(3);
            let address = stage.address(&text);
            insert(conn, stage, address, b"again", 0).unwrap();
        });
        let id = find(&conn, &stage, stage.address(&email(3)))
            .unwrap()
            .unwrap()
            .id;
        assert!(id > 20, "id {id} was used before");
        update(&conn, id, b"updated", 0).unwrap();
        assert_eq!(found(&conn, &stage, 3), Some("updated".into()));
    }

    /// With every record deleted, ids that restarted from the table's
    /// highest would fall below the mark, and a record staged then would be
    /// lost on restart.
    #[test]
    fn a_record_staged_after_every_record_was_deleted_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.db");
        {
            // With nothing left staged, a round ends at the first new key
            // below the last one merged, about every other insert. (With
            // entries left staged, whether a round ended within 20 inserts
            // depended on the database's random hash key.)
            let (mut conn, mut stage) = open(&path, 0);
            insert_all(&mut conn, &mut stage, 0..20, 1);
            commit(&mut conn, &mut stage, |conn, stage| {
                let swept = delete_expired(conn, stage, i64::MAX, (0, i64::MAX), 100).unwrap();
                assert_eq!(
                    swept,
                    Sweep {
                        deleted: 20,
                        after: None
                    }
                );
            });
            assert!(merged_through(&conn) > 1);
        }
        {
            let (mut conn, mut stage) = open(&path, 5);
            commit(&mut conn, &mut stage, |conn, stage| {
                let text = email(100);
                let address = stage.address(&text);
                insert(conn, stage, address, b"r100", 0).unwrap();
            });
        }
        let (conn, stage) = open(&path, 5);
        assert!(all_found(&conn, &stage, 100..101));
    }

    #[test]
    fn expired_records_are_deleted_with_their_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, mut stage) = open(&dir.path().join("i.db"), 5);
        insert_all(&mut conn, &mut stage, 0..20, 1);
        // Three records at a time, as the store sweeps them in steps.
        let mut deleted = 0;
        let mut after = Some(0);
        while let Some(from) = after {
            commit(&mut conn, &mut stage, |conn, stage| {
                let swept = delete_expired(conn, stage, 9, (from, i64::MAX), 3).unwrap();
                deleted += swept.deleted;
                after = swept.after;
            });
        }
        assert_eq!(deleted, 10);
        assert!((0..10).all(|i| found(&conn, &stage, i).is_none()));
        assert!(all_found(&conn, &stage, 10..20));
        assert_eq!(stage.entries.len() + indexed(&conn), 10);
    }
}

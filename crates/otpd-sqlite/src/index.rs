//! Finding an address's record through an email index written in bulk.
//!
//! Records are appended to `addresses` in the order addresses first get a
//! code. A new address is found through `temp.staged`, a small index in
//! memory, and joins the on-disk `address_index` later, when [`Stage::tend`]
//! merges the staged entries of one key range. A page of the on-disk index
//! then takes many new entries at once, where an insert per new address
//! dirtied a page of its own (two thirds of the WAL written per code).
//!
//! Staged entries survive the process: every record with an id above
//! `address_index_state.merged_through` is staged again when the store
//! opens. Merging sweeps the key space in rounds; when a round wraps around,
//! every entry staged when it began is on disk, and the mark moves up to the
//! highest id of that moment. Ids are never reused (`AUTOINCREMENT`), so a
//! record above the mark is always one that may still be staged only.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::Error;

/// Entries merged at most by one step, so a step stays short for the writer.
const MAX_STEP: usize = 1024;

/// A record found by email: its row and its JSON.
pub struct Found {
    pub id: i64,
    pub json: String,
}

pub fn find(conn: &Connection, email: &str) -> Result<Option<Found>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT id, record FROM addresses WHERE id = coalesce(
                (SELECT id FROM temp.staged WHERE email = ?1),
                (SELECT id FROM address_index WHERE email = ?1))",
        )?
        .query_row([email], |row| {
            Ok(Found {
                id: row.get(0)?,
                json: row.get(1)?,
            })
        })
        .optional()?)
}

/// Stores a record for an address that has none; the caller checked with [`find`].
pub fn insert(conn: &Connection, email: &str, json: &str, expires_at: i64) -> Result<(), Error> {
    conn.prepare_cached("INSERT INTO addresses (email, record, expires_at) VALUES (?1, ?2, ?3)")?
        .execute(params![email, json, expires_at])?;
    conn.prepare_cached("INSERT INTO temp.staged (email, id) VALUES (?1, last_insert_rowid())")?
        .execute([email])?;
    Ok(())
}

pub fn update(conn: &Connection, id: i64, json: &str, expires_at: i64) -> Result<(), Error> {
    conn.prepare_cached("UPDATE addresses SET record = ?2, expires_at = ?3 WHERE id = ?1")?
        .execute(params![id, json, expires_at])?;
    Ok(())
}

pub fn delete(conn: &Connection, id: i64, email: &str) -> Result<(), Error> {
    conn.prepare_cached("DELETE FROM addresses WHERE id = ?1")?
        .execute([id])?;
    forget(conn, email)
}

fn forget(conn: &Connection, email: &str) -> Result<(), Error> {
    conn.prepare_cached("DELETE FROM temp.staged WHERE email = ?1")?
        .execute([email])?;
    conn.prepare_cached("DELETE FROM address_index WHERE email = ?1")?
        .execute([email])?;
    Ok(())
}

/// Deletes the records that expired by `now`, with their index entries.
pub fn delete_expired(conn: &Connection, now: i64) -> Result<usize, Error> {
    conn.prepare_cached(
        "DELETE FROM temp.staged WHERE email IN (SELECT email FROM addresses WHERE expires_at <= ?1)",
    )?
    .execute([now])?;
    conn.prepare_cached(
        "DELETE FROM address_index WHERE email IN (SELECT email FROM addresses WHERE expires_at <= ?1)",
    )?
    .execute([now])?;
    Ok(conn
        .prepare_cached("DELETE FROM addresses WHERE expires_at <= ?1")?
        .execute([now])?)
}

/// The writer thread's side of merging: where the current round is.
pub struct Stage {
    /// Entries left staged; merging starts above this many.
    target: usize,
    /// The last key merged in this round; `None` before its first step.
    cursor: Option<String>,
    /// The highest record id when this round began.
    round_mark: i64,
}

impl Stage {
    /// Creates the staging index and stages every record not merged yet.
    pub fn open(conn: &Connection, target: usize) -> Result<Self, Error> {
        conn.execute_batch(
            "CREATE TEMP TABLE staged (email TEXT PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO temp.staged (email, id)
                SELECT email, id FROM addresses
                WHERE id > (SELECT merged_through FROM address_index_state);",
        )?;
        Ok(Self {
            target,
            cursor: None,
            round_mark: 0,
        })
    }

    /// Merges the staged entries beyond the target, the next ones in key
    /// order after the last step's, in a transaction of its own.
    pub fn tend(&mut self, conn: &mut Connection) -> Result<(), Error> {
        let staged: usize = conn
            .prepare_cached("SELECT count(*) FROM temp.staged")?
            .query_row([], |row| row.get(0))?;
        if staged <= self.target {
            return Ok(());
        }
        let step = (staged - self.target).min(MAX_STEP);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let round_mark = match self.cursor {
            Some(_) => self.round_mark,
            None => tx
                .prepare_cached("SELECT coalesce(max(id), 0) FROM addresses")?
                .query_row([], |row| row.get(0))?,
        };
        let after = self.cursor.as_deref().unwrap_or("");
        let last: Option<String> = tx
            .prepare_cached(
                "SELECT email FROM temp.staged WHERE email > ?1 ORDER BY email LIMIT 1 OFFSET ?2",
            )?
            .query_row(params![after, step - 1], |row| row.get(0))
            .optional()?;
        match &last {
            Some(last) => {
                tx.prepare_cached(
                    "INSERT INTO address_index (email, id)
                     SELECT email, id FROM temp.staged WHERE email > ?1 AND email <= ?2
                     ON CONFLICT (email) DO UPDATE SET id = excluded.id",
                )?
                .execute(params![after, last])?;
                tx.prepare_cached("DELETE FROM temp.staged WHERE email > ?1 AND email <= ?2")?
                    .execute(params![after, last])?;
            }
            None => {
                tx.prepare_cached(
                    "INSERT INTO address_index (email, id)
                     SELECT email, id FROM temp.staged WHERE email > ?1
                     ON CONFLICT (email) DO UPDATE SET id = excluded.id",
                )?
                .execute([after])?;
                tx.prepare_cached("DELETE FROM temp.staged WHERE email > ?1")?
                    .execute([after])?;
                tx.prepare_cached("UPDATE address_index_state SET merged_through = ?1")?
                    .execute([round_mark])?;
            }
        }
        tx.commit()?;
        self.cursor = last;
        self.round_mark = round_mark;
        Ok(())
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

    fn email(i: usize) -> String {
        // Spread over the key space, as real addresses are.
        format!(
            "{:08x}@example.com",
            (i as u64).wrapping_mul(0x9e37_79b9) as u32
        )
    }

    fn count(conn: &Connection, table: &str) -> usize {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
    }

    fn found(conn: &Connection, i: usize) -> Option<String> {
        find(conn, &email(i)).unwrap().map(|found| found.json)
    }

    #[test]
    fn merged_and_staged_records_are_all_found_and_the_stage_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, mut stage) = open(&dir.path().join("i.db"), 50);
        for i in 0..2_000 {
            insert(&conn, &email(i), &format!("r{i}"), 0).unwrap();
            if i % 10 == 9 {
                stage.tend(&mut conn).unwrap();
            }
        }
        assert!(count(&conn, "temp.staged") <= 50);
        assert!(count(&conn, "address_index") >= 1_950);
        assert!((0..2_000).all(|i| found(&conn, i) == Some(format!("r{i}"))));
        assert_eq!(found(&conn, 2_000), None);
    }

    #[test]
    fn records_staged_when_the_process_stopped_are_found_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.db");
        {
            let (mut conn, mut stage) = open(&path, 100);
            for i in 0..1_000 {
                insert(&conn, &email(i), &format!("r{i}"), 0).unwrap();
                stage.tend(&mut conn).unwrap();
            }
            // Mid-round: some entries are merged, others only staged.
            assert!(count(&conn, "temp.staged") > 0);
        }
        let (conn, _stage) = open(&path, 100);
        assert!((0..1_000).all(|i| found(&conn, i) == Some(format!("r{i}"))));
        let merged_through: i64 = conn
            .query_row("SELECT merged_through FROM address_index_state", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(merged_through > 0, "a round should have completed");
        assert!(count(&conn, "temp.staged") < 1_000);
    }

    #[test]
    fn deleted_records_are_gone_from_both_indexes_and_their_ids_are_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.db");
        let (mut conn, mut stage) = open(&path, 5);
        for i in 0..20 {
            insert(&conn, &email(i), "r", 0).unwrap();
            stage.tend(&mut conn).unwrap();
        }
        for i in [3, 19] {
            let id = find(&conn, &email(i)).unwrap().unwrap().id;
            delete(&conn, id, &email(i)).unwrap();
            assert_eq!(found(&conn, i), None);
        }
        insert(&conn, &email(3), "again", 0).unwrap();
        let id = find(&conn, &email(3)).unwrap().unwrap().id;
        assert!(id > 20, "id {id} was used before");
        update(&conn, id, "updated", 0).unwrap();
        assert_eq!(found(&conn, 3), Some("updated".into()));
    }

    #[test]
    fn expired_records_are_deleted_with_their_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, mut stage) = open(&dir.path().join("i.db"), 5);
        for i in 0..20 {
            insert(&conn, &email(i), "r", i as i64).unwrap();
            stage.tend(&mut conn).unwrap();
        }
        assert_eq!(delete_expired(&conn, 9).unwrap(), 10);
        assert!((0..10).all(|i| found(&conn, i).is_none()));
        assert!((10..20).all(|i| found(&conn, i).is_some()));
        assert_eq!(
            count(&conn, "temp.staged") + count(&conn, "address_index"),
            10
        );
    }
}

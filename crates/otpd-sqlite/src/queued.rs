//! Mails queued with their codes and not tried yet, stored together: the
//! mails of one commit go into one row of `new_mails` (up to
//! [`MAILS_PER_ROW`] each), written once when the commit's jobs are done
//! and deleted once the worker has settled them all. One row per commit
//! instead of an outbox row and its due-index entry per code, each
//! inserted and deleted again a moment later. A mail whose first try
//! fails moves to the `outbox` table (see `outbox`).
//!
//! Row layout version 1, integers little-endian; each mail:
//!
//! ```text
//! u8  version (1), then for each mail:
//! u8  slot (its place in the row when written; stays when others leave)
//! i64 created at (ms), i64 code expires at (ms)
//! u8  address length, the address; u8 sealed code length, the sealed code
//! ```

use otpd_core::store::NewMail;
use rusqlite::{params, Connection};

use crate::input::Input;
use crate::Error;

const VERSION: u8 = 1;
/// Mails in one row at most: about what one worker loop claims at once, so
/// a claim seldom takes part of a row.
pub const MAILS_PER_ROW: usize = 32;

/// An entry's size with an address of 30 bytes and a sealed six-digit code.
const TYPICAL_ENTRY: usize = 1 + 8 + 8 + 1 + 30 + 1 + 34;

/// One mail of a row, as read back (borrowed from the row's bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub slot: u8,
    pub created_at: i64,
    pub code_expires_at: i64,
    pub email: &'a str,
    pub sealed: &'a [u8],
}

/// A row being filled by the open transaction's jobs.
struct Filling {
    bytes: Vec<u8>,
    count: usize,
    oldest: i64,
}

/// Mails queued by the open transaction, written by [`Queued::write`].
#[derive(Default)]
pub struct Queued {
    rows: Vec<Filling>,
}

impl Queued {
    pub fn push(&mut self, mail: &NewMail) -> Result<(), Error> {
        let created_at = mail.created_at.as_millis();
        let row = match self.rows.last_mut() {
            Some(row) if row.count < MAILS_PER_ROW => row,
            _ => {
                let mut bytes = Vec::with_capacity(1 + MAILS_PER_ROW * TYPICAL_ENTRY);
                bytes.push(VERSION);
                self.rows.push(Filling {
                    bytes,
                    count: 0,
                    oldest: created_at,
                });
                self.rows
                    .last_mut()
                    .ok_or(Error::Encode("no row to fill"))?
            }
        };
        let slot = row.count as u8;
        put_entry(
            &mut row.bytes,
            slot,
            created_at,
            mail.code_expires_at.as_millis(),
            mail.email.as_str().as_bytes(),
            mail.sealed.as_bytes(),
        )?;
        row.count += 1;
        row.oldest = row.oldest.min(created_at);
        Ok(())
    }

    /// Inserts the rows filled since the last call; part of the transaction.
    pub fn write(&mut self, conn: &Connection) -> Result<(), Error> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut insert = conn.prepare_cached(
            "INSERT INTO new_mails (mails, count, created_at) VALUES (?1, ?2, ?3)",
        )?;
        for row in self.rows.drain(..) {
            insert.execute(params![row.bytes, row.count, row.oldest])?;
        }
        Ok(())
    }

    /// The transaction was rolled back: its mails were never queued.
    pub fn clear(&mut self) {
        self.rows.clear();
    }
}

fn put_entry(
    out: &mut Vec<u8>,
    slot: u8,
    created_at: i64,
    code_expires_at: i64,
    email: &[u8],
    sealed: &[u8],
) -> Result<(), Error> {
    out.push(slot);
    out.extend(created_at.to_le_bytes());
    out.extend(code_expires_at.to_le_bytes());
    for field in [email, sealed] {
        let len = u8::try_from(field.len()).map_err(|_| Error::Encode("a field over 255 bytes"))?;
        out.push(len);
        out.extend(field);
    }
    Ok(())
}

/// The row's bytes for `entries` (what is left of a row).
pub fn encode(entries: &[Entry<'_>]) -> Result<Vec<u8>, Error> {
    let mut out = vec![VERSION];
    for entry in entries {
        put_entry(
            &mut out,
            entry.slot,
            entry.created_at,
            entry.code_expires_at,
            entry.email.as_bytes(),
            entry.sealed,
        )?;
    }
    Ok(out)
}

pub fn decode(bytes: &[u8]) -> Result<Vec<Entry<'_>>, Error> {
    read(bytes).map_err(|e| Error::Decode(e.into()))
}

fn read(bytes: &[u8]) -> Result<Vec<Entry<'_>>, &'static str> {
    let mut input = Input(bytes);
    match input.take::<1>()? {
        [VERSION] => {}
        _ => return Err("unknown layout of queued mails"),
    }
    let mut entries = Vec::with_capacity(MAILS_PER_ROW);
    while !input.0.is_empty() {
        let [slot] = input.take()?;
        let created_at = input.timestamp()?.as_millis();
        let code_expires_at = input.timestamp()?.as_millis();
        let email = field(&mut input)?;
        let email = std::str::from_utf8(email).map_err(|_| "an address is not UTF-8")?;
        let sealed = field(&mut input)?;
        entries.push(Entry {
            slot,
            created_at,
            code_expires_at,
            email,
            sealed,
        });
    }
    if entries.is_empty() {
        // A settled row goes with its last mail, and none is written empty.
        return Err("a row without mails");
    }
    Ok(entries)
}

fn field<'a>(input: &mut Input<'a>) -> Result<&'a [u8], &'static str> {
    let [len] = input.take()?;
    input.bytes(usize::from(len))
}

/// The id of `slot` of row `row` as the worker sees it: negative, so it
/// never meets an `outbox` row's id.
pub fn mail_id(row: i64, slot: u8) -> i64 {
    -(row * MAILS_PER_ROW as i64 + i64::from(slot)) - 1
}

/// The row and slot of a [`mail_id`], or `None` for an `outbox` row's id.
pub fn place(id: i64) -> Option<(i64, u8)> {
    let n = id.checked_neg()?.checked_sub(1).filter(|n| *n >= 0)?;
    let per_row = MAILS_PER_ROW as i64;
    Some((n / per_row, (n % per_row) as u8))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use otpd_core::{EmailAddress, SealedCode, Timestamp};

    use super::*;

    fn mail(n: i64) -> NewMail {
        NewMail {
            email: EmailAddress::parse(&format!("m{n}@example.com")).unwrap(),
            sealed: SealedCode::from_bytes(vec![n as u8; 34]),
            created_at: Timestamp::from_millis(1_700_000_000_000 + n),
            code_expires_at: Timestamp::from_millis(1_700_000_300_000 + n),
        }
    }

    fn rows(conn: &Connection) -> Vec<(Vec<u8>, usize, i64)> {
        conn.prepare("SELECT mails, count, created_at FROM new_mails ORDER BY id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn queued_mails_fill_rows_of_at_most_32_and_read_back() {
        let conn = Connection::open_in_memory().unwrap();
        crate::schema::prepare_writer(&conn, crate::Durability::default()).unwrap();
        let mut queued = Queued::default();
        for n in 0..40 {
            queued.push(&mail(n)).unwrap();
        }
        queued.write(&conn).unwrap();
        queued.write(&conn).unwrap();
        let rows = rows(&conn);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].1, rows[1].1), (32, 8));
        assert_eq!(rows[1].2, 1_700_000_000_032);
        let second = decode(&rows[1].0).unwrap();
        assert_eq!(second.len(), 8);
        assert_eq!(second[3].slot, 3);
        assert_eq!(second[3].email, "m35@example.com");
        assert_eq!(second[3].sealed, [35; 34]);
        assert_eq!(second[3].code_expires_at, 1_700_000_300_035);
        assert_eq!(decode(&encode(&second).unwrap()).unwrap(), second);
    }

    #[test]
    fn rolled_back_mails_are_not_written() {
        let conn = Connection::open_in_memory().unwrap();
        crate::schema::prepare_writer(&conn, crate::Durability::default()).unwrap();
        let mut queued = Queued::default();
        queued.push(&mail(1)).unwrap();
        queued.clear();
        queued.write(&conn).unwrap();
        assert!(rows(&conn).is_empty());
    }

    #[test]
    fn damaged_rows_are_errors() {
        let bytes = encode(&[Entry {
            slot: 0,
            created_at: 1,
            code_expires_at: 2,
            email: "a@example.com",
            sealed: &[1; 34],
        }])
        .unwrap();
        let mut unknown = bytes.clone();
        unknown[0] = 2;
        // Every cut, including the version byte alone: no row is empty.
        let damaged = (0..bytes.len())
            .map(|len| bytes[..len].to_vec())
            .chain([unknown]);
        for damaged in damaged {
            assert!(
                matches!(decode(&damaged), Err(Error::Decode(_))),
                "{damaged:?}"
            );
        }
    }

    #[test]
    fn mail_ids_of_rows_and_outbox_rows_never_meet() {
        for row in [1, 2, 1 << 40] {
            for slot in [0, 1, 31] {
                let id = mail_id(row, slot);
                assert!(id < 0);
                assert_eq!(place(id), Some((row, slot)));
            }
        }
        for outbox_id in [0, 1, i64::MAX] {
            assert_eq!(place(outbox_id), None);
        }
        assert_eq!(place(i64::MIN), None);
    }
}

//! The email index's key of an address: a keyed 64-bit hash of its text.
//!
//! Eight bytes pack two to three times as many entries on an index page as
//! the address did, and a staged entry takes a fraction of the memory (see
//! `index`). The hash key is random per database and kept in it
//! (`address_index_state.hash_key`), so nobody outside can choose addresses
//! that share an index key; two addresses that do anyway are told apart by
//! the address stored with each record.

use hmac::{Hmac, Mac};
use rusqlite::Connection;
use sha2::Sha256;

use crate::Error;

const KEY_BYTES: usize = 32;

/// Hashes addresses with one database's key.
#[derive(Clone)]
pub struct Keyer {
    mac: Hmac<Sha256>,
    /// The bits of the hash kept: all of them, but in tests that make every
    /// address collide.
    mask: i64,
}

impl Keyer {
    /// The key of the database `conn` opened (created by migration 8).
    pub fn load(conn: &Connection) -> Result<Self, Error> {
        let key: Vec<u8> =
            conn.query_row("SELECT hash_key FROM address_index_state", [], |row| {
                row.get(0)
            })?;
        if key.len() != KEY_BYTES {
            return Err(Error::Decode(
                format!("the email index's hash key has {} bytes", key.len()).into(),
            ));
        }
        let mac = Hmac::new_from_slice(&key).map_err(|e| Error::Decode(e.to_string().into()))?;
        Ok(Self { mac, mask: -1 })
    }

    pub fn key(&self, email: &str) -> i64 {
        let mut mac = self.mac.clone();
        mac.update(email.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        i64::from_le_bytes(first) & self.mask
    }

    /// This keyer, giving every address the same key.
    #[cfg(test)]
    pub fn colliding(self) -> Self {
        Self { mask: 0, ..self }
    }
}

/// Migration 8: gives the database its hash key and rebuilds
/// `address_index` keyed by hash, in key order (appends to the b-tree).
pub fn rekey_index(conn: &Connection) -> Result<(), Error> {
    conn.execute_batch(&format!(
        "ALTER TABLE address_index_state ADD COLUMN hash_key BLOB;
         UPDATE address_index_state SET hash_key = randomblob({KEY_BYTES});
         CREATE TABLE address_index_v8 (
            hash INTEGER NOT NULL,
            id   INTEGER NOT NULL,
            PRIMARY KEY (hash, id)
         ) WITHOUT ROWID;"
    ))?;
    let keyer = Keyer::load(conn)?;
    let mut entries = Vec::new();
    {
        let mut old = conn.prepare("SELECT email, id FROM address_index")?;
        let mut rows = old.query([])?;
        while let Some(row) = rows.next()? {
            entries.push((keyer.key(crate::text(row, 0)?), row.get::<_, i64>(1)?));
        }
    }
    entries.sort_unstable();
    let mut insert = conn.prepare("INSERT INTO address_index_v8 (hash, id) VALUES (?1, ?2)")?;
    for (key, id) in entries {
        insert.execute([key, id])?;
    }
    conn.execute_batch(
        "DROP TABLE address_index;
         ALTER TABLE address_index_v8 RENAME TO address_index;",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn keyer(key: &[u8]) -> Keyer {
        Keyer {
            mac: Hmac::new_from_slice(key).unwrap(),
            mask: -1,
        }
    }

    #[test]
    fn keys_depend_on_the_address_and_on_the_database_key() {
        let (one, other) = (keyer(b"one"), keyer(b"other"));
        assert_eq!(one.key("a@example.com"), one.key("a@example.com"));
        assert_ne!(one.key("a@example.com"), one.key("b@example.com"));
        assert_ne!(one.key("a@example.com"), other.key("a@example.com"));
    }

    #[test]
    fn a_missing_or_damaged_hash_key_is_an_error() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(Keyer::load(&conn).is_err());
        conn.execute_batch(
            "CREATE TABLE address_index_state (merged_through INTEGER, hash_key BLOB);
             INSERT INTO address_index_state VALUES (0, x'0102');",
        )
        .unwrap();
        assert!(matches!(Keyer::load(&conn), Err(Error::Decode(_))));
        conn.execute(
            "UPDATE address_index_state SET hash_key = randomblob(32)",
            [],
        )
        .unwrap();
        assert!(Keyer::load(&conn).is_ok());
    }
}

//! The shared store contract, run against a real SQLite file, and what is
//! particular to SQLite.

#![allow(clippy::unwrap_used)]

use otpd_sqlite::SqliteStore;
use otpd_testkit::{outbox_contract_tests, store_contract_tests};

/// A fresh database file per test; the directory lives as long as the process.
fn store() -> SqliteStore {
    let dir = tempfile::tempdir().unwrap().keep();
    SqliteStore::open(&dir.join("otpd.db"), otpd_sqlite::Durability::default()).unwrap()
}

store_contract_tests!(store());
outbox_contract_tests!(store());

#[test]
fn a_second_process_cannot_open_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpd.db");
    let _first = SqliteStore::open(&path, otpd_sqlite::Durability::default()).unwrap();
    let second = SqliteStore::open(&path, otpd_sqlite::Durability::default());
    assert!(matches!(second, Err(otpd_sqlite::Error::Locked(_))));
}

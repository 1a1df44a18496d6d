//! The shared store contract, run against a real SQLite file.

#![allow(clippy::unwrap_used)]

use otpd_sqlite::SqliteStore;
use otpd_testkit::{outbox_contract_tests, store_contract_tests};

/// A fresh database file per test; the directory lives as long as the process.
fn store() -> SqliteStore {
    let dir = tempfile::tempdir().unwrap().keep();
    SqliteStore::open(&dir.join("otpd.db")).unwrap()
}

store_contract_tests!(store());
outbox_contract_tests!(store());

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

/// The same contract with every new address merged into the on-disk email
/// index at the first chance, instead of staying in memory.
mod merged_at_once {
    use super::*;

    fn store() -> SqliteStore {
        let dir = tempfile::tempdir().unwrap().keep();
        SqliteStore::open_with_stage(&dir.join("otpd.db"), otpd_sqlite::Durability::default(), 0)
            .unwrap()
    }

    store_contract_tests!(store());
    outbox_contract_tests!(store());
}

#[test]
fn a_second_process_cannot_open_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpd.db");
    let _first = SqliteStore::open(&path, otpd_sqlite::Durability::default()).unwrap();
    let second = SqliteStore::open(&path, otpd_sqlite::Durability::default());
    assert!(matches!(second, Err(otpd_sqlite::Error::Locked(_))));
}

/// A database written by the first schema (addresses keyed by email, JSON
/// records) keeps its codes and its queued mails when a newer otpd opens
/// it, and takes new addresses beside them.
#[tokio::test]
async fn a_first_version_database_is_migrated_with_its_records() {
    use otpd_core::policy::{Change, Rules, VerifyCommand, VerifyOutcome};
    use otpd_core::store::{IssueStore, Outbox, VerifyStore};
    use otpd_core::{EmailAddress, OtpCode, Timestamp};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpd.db");
    let keys = otpd_testkit::test_keys();
    let email = EmailAddress::parse("old@example.com").unwrap();
    let rules = Rules::default();
    let code = OtpCode::parse("123456", rules.code_length).unwrap();
    let now = Timestamp::from_millis(1_700_000_000_000);
    let (cmd, _) = otpd_testkit::issue_request(&keys, rules, &email, &code, now);
    let issued = cmd.apply(None);
    let Change::Put(record) = issued.change else {
        panic!("a first code is always stored")
    };
    {
        let v1 = rusqlite::Connection::open(&path).unwrap();
        v1.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE addresses (email TEXT PRIMARY KEY, record TEXT NOT NULL,
                expires_at INTEGER NOT NULL) WITHOUT ROWID;
             CREATE INDEX addresses_expiry ON addresses (expires_at);
             CREATE TABLE outbox (id INTEGER PRIMARY KEY, email TEXT NOT NULL, sealed BLOB,
                created_at INTEGER NOT NULL, code_expires_at INTEGER NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dead')),
                finished_at INTEGER);
             CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
             PRAGMA user_version = 1;",
        )
        .unwrap();
        v1.execute(
            "INSERT INTO addresses VALUES (?1, ?2, ?3)",
            rusqlite::params![
                email.as_str(),
                serde_json::to_string(&record).unwrap(),
                record.expires_at().as_millis()
            ],
        )
        .unwrap();
        v1.execute(
            "INSERT INTO outbox (email, sealed, created_at, code_expires_at, next_attempt_at,
                state) VALUES (?1, x'00', ?2, ?3, ?2, 'pending')",
            rusqlite::params![email.as_str(), now.as_millis(), now.as_millis() + 300_000],
        )
        .unwrap();
    }

    let store = SqliteStore::open(&path, otpd_sqlite::Durability::default()).unwrap();
    let queued = store
        .claim_due(now, std::time::Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].mail.email, email);
    assert_eq!(
        queued[0].mail.code_expires_at.as_millis(),
        now.as_millis() + 300_000
    );
    let verify = VerifyCommand {
        email: email.clone(),
        now,
        rules,
        candidate: keys.digest(&email, &code),
    };
    assert_eq!(
        store.verify(verify.clone()).await.unwrap(),
        VerifyOutcome::Verified
    );
    assert!(matches!(
        store.verify(verify).await.unwrap(),
        VerifyOutcome::NoLiveCode(_)
    ));

    let newcomer = EmailAddress::parse("new@example.com").unwrap();
    let (cmd, mail) = otpd_testkit::issue_request(&keys, rules, &newcomer, &code, now);
    store.issue(cmd, mail).await.unwrap();
    let verify = VerifyCommand {
        email: newcomer.clone(),
        now,
        rules,
        candidate: keys.digest(&newcomer, &code),
    };
    assert_eq!(store.verify(verify).await.unwrap(), VerifyOutcome::Verified);
}

/// A sent mail leaves the outbox; a given-up one stays (for a day) without its code.
#[tokio::test]
async fn sent_mails_leave_the_outbox_and_given_up_ones_stay_without_their_code() {
    use otpd_core::policy::Rules;
    use otpd_core::store::{IssueStore, Outbox, Settlement};
    use otpd_core::{EmailAddress, OtpCode, Timestamp};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpd.db");
    let store = SqliteStore::open(&path, otpd_sqlite::Durability::default()).unwrap();
    let keys = otpd_testkit::test_keys();
    let rules = Rules::default();
    let now = Timestamp::from_millis(1_700_000_000_000);
    for name in ["sent", "dead"] {
        let email = EmailAddress::parse(&format!("{name}@example.com")).unwrap();
        let code = OtpCode::parse("123456", rules.code_length).unwrap();
        let (cmd, mail) = otpd_testkit::issue_request(&keys, rules, &email, &code, now);
        store.issue(cmd, mail).await.unwrap();
    }
    let claimed = store
        .claim_due(now, std::time::Duration::from_secs(60), 10)
        .await
        .unwrap();
    let settlements = claimed
        .iter()
        .map(|queued| match queued.mail.email.as_str() {
            "sent@example.com" => (queued.id, Settlement::Delivered),
            _ => (queued.id, Settlement::Dead),
        })
        .collect();
    store.settle(settlements).await.unwrap();

    let db = rusqlite::Connection::open(&path).unwrap();
    let not_tried: i64 = db
        .query_row("SELECT COUNT(*) FROM new_mails", [], |row| row.get(0))
        .unwrap();
    assert_eq!(not_tried, 0);
    let rows: Vec<(String, String, bool)> = db
        .prepare("SELECT email, state, sealed IS NULL FROM outbox")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, [("dead@example.com".into(), "dead".into(), true)]);
}

/// The sweep looks at the records a thousand at a time: it deletes every
/// expired one, whichever step it falls in, and no live one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_every_expired_record_and_no_live_one() {
    use otpd_core::policy::{Rules, VerifyCommand, VerifyOutcome, CAP_WINDOW};
    use otpd_core::store::{IssueStore, VerifyStore};
    use otpd_core::{EmailAddress, OtpCode, Timestamp};

    let store = store();
    let keys = otpd_testkit::test_keys();
    let rules = Rules::default();
    let code = OtpCode::parse("123456", rules.code_length).unwrap();
    let first = Timestamp::from_millis(1_700_000_000_000);
    let later = first.plus(CAP_WINDOW);
    let issue = |name: String, at: Timestamp| {
        let (store, keys) = (store.clone(), keys.clone());
        let code = code.clone();
        tokio::spawn(async move {
            let email = EmailAddress::parse(&name).unwrap();
            let (cmd, mail) = otpd_testkit::issue_request(&keys, rules, &email, &code, at);
            store.issue(cmd, mail).await.unwrap();
        })
    };
    // Live ones in the middle of the ids too, not only after the expired ones.
    let mut issued = Vec::new();
    for i in 0..5_000 {
        issued.push(issue(format!("old{i}@example.com"), first));
        if i % 1_000 == 0 {
            issued.push(issue(format!("new{i}@example.com"), later));
        }
    }
    for task in issued {
        task.await.unwrap();
    }

    let swept_at = first
        .plus(CAP_WINDOW)
        .plus(std::time::Duration::from_millis(1));
    assert_eq!(store.sweep(first).await.unwrap(), 0);
    assert_eq!(store.sweep(swept_at).await.unwrap(), 5_000);
    assert_eq!(store.sweep(swept_at).await.unwrap(), 0);
    for i in (0..5_000).step_by(1_000) {
        let email = EmailAddress::parse(&format!("new{i}@example.com")).unwrap();
        let verify = VerifyCommand {
            email: email.clone(),
            now: later,
            rules,
            candidate: keys.digest(&email, &code),
        };
        assert_eq!(store.verify(verify).await.unwrap(), VerifyOutcome::Verified);
    }
}

/// A queued mail whose stored address is not valid is given up (kept dead,
/// without its code), and a row of queued mails that cannot be read is set
/// aside and counted: neither stops the mails queued after it.
#[tokio::test]
async fn unreadable_queued_mails_do_not_stop_the_others() {
    use otpd_core::policy::Rules;
    use otpd_core::store::{IssueStore, Outbox};
    use otpd_core::{EmailAddress, OtpCode, Timestamp};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpd.db");
    let store = SqliteStore::open(&path, otpd_sqlite::Durability::default()).unwrap();
    let now = Timestamp::from_millis(1_700_000_000_000);
    // Layout 1 of `new_mails` (see `queued`): one mail in slot 0.
    let mut bad_address = vec![1, 0];
    bad_address.extend(now.as_millis().to_le_bytes());
    bad_address.extend((now.as_millis() + 300_000).to_le_bytes());
    for field in [&b"Not An <address>"[..], &[7; 34]] {
        bad_address.push(field.len() as u8);
        bad_address.extend(field);
    }
    let db = rusqlite::Connection::open(&path).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    for (mails, count) in [(bad_address, 1), (vec![9, 9, 9], 2)] {
        db.execute(
            "INSERT INTO new_mails (mails, count, created_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![mails, count, now.as_millis()],
        )
        .unwrap();
    }
    let keys = otpd_testkit::test_keys();
    let rules = Rules::default();
    let email = EmailAddress::parse("good@example.com").unwrap();
    let code = OtpCode::parse("123456", rules.code_length).unwrap();
    let (cmd, mail) = otpd_testkit::issue_request(&keys, rules, &email, &code, now);
    store.issue(cmd, mail).await.unwrap();

    let lease = std::time::Duration::from_secs(60);
    let claimed = store.claim_due(now, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].mail.email, email);
    let stats = store.stats(now).await.unwrap();
    assert_eq!((stats.depth, stats.damaged), (1, 2));
    let dead: Vec<(String, Option<Vec<u8>>)> = db
        .prepare("SELECT email, sealed FROM outbox WHERE state = 'dead'")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(dead, [("Not An <address>".to_owned(), None)]);
    let set_aside: Vec<u8> = db
        .query_row("SELECT mails FROM damaged_mails", [], |row| row.get(0))
        .unwrap();
    assert_eq!(set_aside, [9, 9, 9]);
    // Nothing else is due: what could not be read is not claimed again.
    assert!(store
        .claim_due(now.plus(lease).plus(lease), lease, 10)
        .await
        .unwrap()
        .iter()
        .all(|queued| queued.mail.email == email));
}

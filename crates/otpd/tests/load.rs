//! A bounded load test with invariants, against the real binary and a real
//! SMTP server, with faults: the mail server is stopped and restarted once,
//! and otpd is killed (SIGKILL) and restarted once.
//!
//! `OTPD_LOAD_SECONDS` sets the length (default 20 s, the short version run
//! by the test command; `tests/load/run-long` runs 300 s). `OTPD_LOAD_SEED`
//! replays the clients' choices; the seed is printed.

#![allow(clippy::unwrap_used)]

// Shared with the API tests; each binary uses part of it.
#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use std::path::PathBuf;

use helpers::{free_port, Catcher, Client, Proc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CLIENTS: usize = 12;
const ADDRESSES: usize = 150;
/// Mean pause of a client between two requests. Unpaced, the clients issue
/// codes faster than the test's SMTP server (Python) can take them, and the
/// backlog outlives the codes: that measures the catcher, not otpd.
const MEAN_PAUSE_MS: u64 = 10;

#[derive(Default)]
struct Ledger {
    /// 200s from /GenerateOTP per address.
    issued: HashMap<String, u32>,
    /// (address, code) of every success.
    verified: Vec<(String, String)>,
    /// Codes a success consumed (every code of the address caught by then),
    /// with how many mails had carried that code. A code value can be issued
    /// again to the same address (one in a million per issue, so it happens in
    /// long runs); only a new mail with it makes it valid again.
    consumed: HashMap<(String, String), usize>,
    server_errors: u64,
    refused_connections: u64,
    requests: u64,
    statuses: HashMap<u16, u64>,
    violations: Vec<String>,
}

/// The files already read, and every caught mail's code per address, in arrival order.
type Mailbox = (HashSet<PathBuf>, HashMap<String, Vec<String>>);

struct Shared {
    url: RwLock<String>,
    ledger: Mutex<Ledger>,
    /// The SMTP servers, the current one last (the mail of stopped ones stays readable).
    catchers: Mutex<Vec<Catcher>>,
    mailbox: Mutex<Mailbox>,
    restarting: AtomicBool,
    stop: AtomicBool,
}

impl Shared {
    /// Reads the mail that arrived since the last call.
    fn collect_mail(&self) {
        let catchers = self.catchers.lock().unwrap();
        let mut mailbox = self.mailbox.lock().unwrap();
        let (seen, codes) = &mut *mailbox;
        for catcher in catchers.iter() {
            for mail in catcher.new_messages(seen) {
                codes.entry(mail.to.clone()).or_default().push(mail.code());
            }
        }
    }

    fn codes_for(&self, address: &str) -> Vec<String> {
        self.mailbox
            .lock()
            .unwrap()
            .1
            .get(address)
            .cloned()
            .unwrap_or_default()
    }

    fn all_codes(&self) -> HashMap<String, Vec<String>> {
        self.collect_mail();
        self.mailbox.lock().unwrap().1.clone()
    }
}

fn seconds() -> u64 {
    std::env::var("OTPD_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_with_faults_keeps_every_invariant() {
    let seed: u64 = std::env::var("OTPD_LOAD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let duration = Duration::from_secs(seconds());
    println!(
        "load test: {} s, seed {seed} (replay with OTPD_LOAD_SEED={seed})",
        duration.as_secs()
    );

    let smtp_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let vars = Proc::vars(
        dir.path(),
        smtp_port,
        &[
            ("OTPD_RESEND_COOLDOWN", "0"),
            ("OTPD_MAX_CODES_PER_HOUR", "0"),
        ],
    );
    let catcher = Catcher::start_on(smtp_port);
    let server = Proc::spawn(dir.path(), &vars);
    let shared = Arc::new(Shared {
        url: RwLock::new(server.client.base.clone()),
        ledger: Mutex::new(Ledger::default()),
        catchers: Mutex::new(vec![catcher]),
        mailbox: Mutex::new((HashSet::new(), HashMap::new())),
        restarting: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let peak_rss = Arc::new(AtomicU64::new(0));

    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client(shared.clone(), seed.wrapping_add(i as u64))))
        .collect();

    // Faults at a third and at two thirds of the run.
    let mut server = Some(server);
    let started = Instant::now();
    let mut smtp_fault_done = false;
    let mut kill_done = false;
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(200)).await;
        shared.collect_mail();
        if let Some(s) = &server {
            record_rss(s, &peak_rss);
        }
        if !smtp_fault_done && started.elapsed() > duration / 3 {
            smtp_fault_done = true;
            println!("fault: SMTP server stopped for 3 s");
            shared.catchers.lock().unwrap().last_mut().unwrap().stop();
            tokio::time::sleep(Duration::from_secs(3)).await;
            let restarted = Catcher::start_on(smtp_port);
            shared.catchers.lock().unwrap().push(restarted);
        }
        if !kill_done && started.elapsed() > duration * 2 / 3 {
            kill_done = true;
            println!("fault: otpd killed with SIGKILL and restarted");
            shared.restarting.store(true, Ordering::SeqCst);
            server.take().unwrap().kill_9();
            let restarted = Proc::spawn(dir.path(), &vars);
            *shared.url.write().unwrap() = restarted.client.base.clone();
            server = Some(restarted);
            tokio::time::sleep(Duration::from_millis(500)).await;
            shared.restarting.store(false, Ordering::SeqCst);
        }
    }
    shared.stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }

    // Every 200 from /GenerateOTP must produce a mail: wait for the outbox to drain.
    let issued = shared.ledger.lock().unwrap().issued.clone();
    let expected: u32 = issued.values().sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    let per_address = loop {
        let per_address = shared.all_codes();
        let all_in = issued
            .iter()
            .all(|(a, n)| per_address.get(a).map_or(0, Vec::len) >= *n as usize);
        if all_in || Instant::now() > deadline {
            break per_address;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let caught: usize = per_address.values().map(Vec::len).sum();
    if let Some(s) = &server {
        record_rss(s, &peak_rss);
    }

    let ledger = shared.ledger.lock().unwrap();
    let mut lost = 0u32;
    for (address, n) in &issued {
        let got = per_address.get(address).map_or(0, Vec::len) as u32;
        lost += n.saturating_sub(got);
    }
    // More mails than 200s: sent just before the kill and sent again after
    // it, or issued by a request whose answer the kill cut off.
    let duplicates = caught.saturating_sub(expected as usize);
    let mut successes: HashMap<&(String, String), usize> = HashMap::new();
    for v in &ledger.verified {
        *successes.entry(v).or_default() += 1;
    }
    let verified_twice: Vec<_> = successes
        .iter()
        .filter(|((address, code), n)| {
            **n > per_address[address].iter().filter(|c| *c == code).count()
        })
        .collect();
    let peak_mib = peak_rss.load(Ordering::SeqCst) / 1024;
    println!(
        "load test: {} requests {:?}, {} codes issued, {} mails caught, {} lost, {} duplicated (in flight at the kill), {} verified, {} 5xx, {} refused connections during the restart, peak RSS {} MiB",
        ledger.requests,
        sorted(&ledger.statuses),
        expected,
        caught,
        lost,
        duplicates,
        ledger.verified.len(),
        ledger.server_errors,
        ledger.refused_connections,
        peak_mib,
    );
    assert!(ledger.violations.is_empty(), "{:#?}", ledger.violations);
    assert_eq!(ledger.server_errors, 0, "5xx outside the restart window");
    assert_eq!(
        ledger.statuses.get(&429),
        None,
        "no limit is configured, so nothing is refused"
    );
    assert_eq!(lost, 0, "every 200 from /GenerateOTP produced a mail");
    assert!(
        verified_twice.is_empty(),
        "codes verified twice: {verified_twice:?}"
    );
    assert!(
        expected > 0 && !ledger.verified.is_empty(),
        "the load did real work"
    );
    assert!(peak_mib < 200, "memory stayed bounded: {peak_mib} MiB");
}

fn sorted(statuses: &HashMap<u16, u64>) -> Vec<(u16, u64)> {
    let mut v: Vec<_> = statuses.iter().map(|(k, v)| (*k, *v)).collect();
    v.sort();
    v
}

fn record_rss(server: &Proc, peak: &AtomicU64) {
    if let Some(kb) = server.rss_kib() {
        peak.fetch_max(kb, Ordering::SeqCst);
    }
}

/// One client: issues, guesses wrong, verifies with codes from the mail, resends.
async fn client(shared: Arc<Shared>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !shared.stop.load(Ordering::SeqCst) {
        let address = format!("load{}@example.com", rng.gen_range(0..ADDRESSES));
        let client = Client::new(&shared.url.read().unwrap().clone());
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..2 * MEAN_PAUSE_MS))).await;
        let roll = rng.gen_range(0..10);
        let (path, result) = if roll < 3 {
            (
                "/GenerateOTP",
                post(
                    &client,
                    "/GenerateOTP",
                    serde_json::json!({ "email": address }),
                )
                .await,
            )
        } else if roll < 5 {
            let wrong = format!("{:06}", rng.gen_range(0..1_000_000));
            if shared.codes_for(&address).contains(&wrong) {
                continue;
            }
            ("/VerifyOTP", verify(&client, &address, &wrong).await)
        } else {
            // One of the latest codes mailed to the address, not always the newest.
            let known = shared.codes_for(&address);
            if known.is_empty() {
                continue;
            }
            let code = known[known.len() - 1 - rng.gen_range(0..known.len().min(4))].clone();
            let status = verify(&client, &address, &code).await;
            if let Ok(200) = status {
                let mut ledger = shared.ledger.lock().unwrap();
                let mails_with = |c: &String| known.iter().filter(|k| *k == c).count();
                let key = (address.clone(), code.clone());
                if ledger.consumed.get(&key) == Some(&mails_with(&code)) {
                    ledger
                        .violations
                        .push(format!("{address}: consumed code {code} verified again"));
                }
                ledger.verified.push(key);
                for c in &known {
                    ledger
                        .consumed
                        .insert((address.clone(), c.clone()), mails_with(c));
                }
            }
            ("/VerifyOTP", status)
        };
        let mut ledger = shared.ledger.lock().unwrap();
        ledger.requests += 1;
        match result {
            Ok(status) => {
                *ledger.statuses.entry(status).or_default() += 1;
                if status >= 500 && !shared.restarting.load(Ordering::SeqCst) {
                    ledger.server_errors += 1;
                }
                if path == "/GenerateOTP" && status == 200 {
                    *ledger.issued.entry(address.clone()).or_default() += 1;
                }
                if path == "/VerifyOTP" && status == 200 && roll < 5 {
                    ledger
                        .violations
                        .push(format!("{address}: a never-mailed code verified"));
                }
            }
            Err(()) => ledger.refused_connections += 1,
        }
    }
}

async fn verify(client: &Client, address: &str, code: &str) -> Result<u16, ()> {
    post(
        client,
        "/VerifyOTP",
        serde_json::json!({ "email": address, "otp": code }),
    )
    .await
}

/// The status, or `Err` when no answer came (refused or cut connection).
async fn post(client: &Client, path: &str, body: serde_json::Value) -> Result<u16, ()> {
    let response = client
        .raw()
        .post(format!("{}{path}", client.base))
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|_| ())?;
    Ok(response.status().as_u16())
}

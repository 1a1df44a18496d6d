//! The outbox worker: a few loops around [`Delivery::deliver_due`], woken
//! when a mail is queued or a retry falls due, stopped by the shutdown signal
//! after finishing the mail in hand.

use std::sync::Arc;
use std::time::Duration;

use otpd_core::delivery::{Attempted, Delivery, Step};
use otpd_core::store::Outbox;
use otpd_core::{Clock, CodeKeys, Mailer};
use otpd_http::metrics;
use otpd_sqlite::SqliteStore;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

/// Loops claiming and sending, so one slow batch does not hold up all mail.
const LOOPS: usize = 2;
/// Mails claimed (and sent concurrently) at once by one loop.
const BATCH: usize = 32;
/// The longest a worker sleeps without looking at the outbox.
const MAX_IDLE: Duration = Duration::from_secs(5);
/// How often expired records and old finished mails are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub struct Worker {
    pub delivery: Delivery,
    pub store: SqliteStore,
    pub mailer: Arc<dyn Mailer>,
    pub clock: Arc<dyn Clock>,
    pub mail_queued: Arc<Notify>,
}

impl Worker {
    /// Runs until `shutdown` turns true.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut loops = JoinSet::new();
        for _ in 0..LOOPS {
            loops.spawn(this.clone().deliver_loop(shutdown.clone()));
        }
        loops.spawn(this.clone().sweep_loop(shutdown));
        while loops.join_next().await.is_some() {}
        tracing::info!("outbox worker stopped");
    }

    async fn deliver_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let attempts = self
                .delivery
                .deliver_due(&self.store, self.mailer.as_ref(), self.clock.now(), BATCH)
                .await;
            let idle = match attempts {
                Ok(attempts) if attempts.is_empty() => Some(self.until_next_due().await),
                Ok(attempts) => {
                    for attempted in &attempts {
                        log_attempt(&self.delivery.keys, attempted);
                        metrics::record_mail(&attempted.step);
                    }
                    None
                }
                Err(e) => {
                    tracing::error!(error = &e as &dyn std::error::Error, "outbox unavailable");
                    Some(Duration::from_secs(1))
                }
            };
            if let Some(idle) = idle {
                tokio::select! {
                    () = self.mail_queued.notified() => {}
                    () = tokio::time::sleep(idle) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    async fn until_next_due(&self) -> Duration {
        match self.store.next_due().await {
            Ok(Some(due)) => self
                .clock
                .now()
                .until(due)
                .clamp(Duration::from_millis(10), MAX_IDLE),
            _ => MAX_IDLE,
        }
    }

    async fn sweep_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = shutdown.changed() => return,
            }
            match self.store.sweep(self.clock.now()).await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, "swept expired rows"),
                Err(e) => tracing::warn!(error = &e as &dyn std::error::Error, "sweep failed"),
            }
        }
    }
}

/// One line per attempt, naming the address by the same tag as the request
/// that issued the code, so the two can be matched without the address.
fn log_attempt(keys: &CodeKeys, attempted: &Attempted) {
    // Called inside the macros: computed only when the line is written.
    let tag = || keys.address_tag(&attempted.queued.mail.email);
    let mail = attempted.queued.id.0;
    match &attempted.step {
        Step::Delivered => tracing::info!(address = %tag(), mail, "mail delivered"),
        Step::Retried { after, error } => tracing::warn!(
            address = %tag(),
            mail,
            retry_in_ms = after.as_millis() as u64,
            %error,
            "mail delivery failed; will retry"
        ),
        Step::Dead(reason) => tracing::error!(address = %tag(), mail, ?reason, "mail given up"),
    }
}

//! SendOTPEmail: the table's stream is the outbox. Records are handled in
//! order; the first that fails to send is reported by its sequence number and
//! the rest are left alone, because Lambda retries the batch from the lowest
//! reported record: handling them now would mail those codes twice.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use otpd_core::delivery::{Delivery, Step};
use otpd_core::store::{MailId, QueuedMail};
use otpd_core::{Clock, Mailer};
use otpd_dynamodb::{mail_in_new_image, Item};
use serde::Serialize;

/// What the function answers: the records to retry (empty: all went out).
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SendResponse {
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    pub item_identifier: String,
}

/// Built once per container.
pub struct Sender {
    pub delivery: Delivery,
    pub mailer: Arc<dyn Mailer>,
    pub clock: Arc<dyn Clock>,
}

impl Sender {
    /// Lambda retries the batch, so the delivery's backoff is not used here;
    /// its `give_up_after` still ends a mail that keeps failing.
    pub fn new(delivery: Delivery, mailer: Arc<dyn Mailer>, clock: Arc<dyn Clock>) -> Self {
        Self {
            delivery,
            mailer,
            clock,
        }
    }

    pub async fn handle(&self, event: Event) -> SendResponse {
        for record in event.records {
            if let Err(sequence_number) = self.handle_record(&record).await {
                return SendResponse {
                    batch_item_failures: vec![BatchItemFailure {
                        item_identifier: sequence_number,
                    }],
                };
            }
        }
        SendResponse::default()
    }

    /// `Err(sequence number)` when the record must be retried.
    async fn handle_record(&self, record: &EventRecord) -> Result<(), String> {
        let sequence_number = record.change.sequence_number.clone().unwrap_or_default();
        if record.event_name == "REMOVE" {
            return Ok(());
        }
        let new: Item = record.change.new_image.clone().into();
        let old: Item = record.change.old_image.clone().into();
        let old = (record.event_name == "MODIFY").then_some(&old);
        let mail = match mail_in_new_image(&new, old) {
            Ok(Some(mail)) => mail,
            Ok(None) => return Ok(()),
            Err(error) => {
                // Retrying cannot repair a malformed image; the log says why.
                tracing::error!(%error, sequence_number, "stream record without a readable mail");
                return Ok(());
            }
        };
        let queued = QueuedMail {
            id: MailId(0),
            mail,
            attempts: 0,
        };
        let step = self
            .delivery
            .attempt(&queued, self.mailer.as_ref(), self.clock.now())
            .await;
        otpd_http::metrics::record_mail(&step);
        // The tag the generate function logged for the same address, computed
        // only when a line is written.
        let tag = || self.delivery.keys.address_tag(&queued.mail.email);
        match step {
            Step::Delivered => {
                tracing::info!(address = %tag(), sequence_number, "mail delivered");
                Ok(())
            }
            Step::Dead(reason) => {
                tracing::error!(address = %tag(), ?reason, sequence_number, "mail given up");
                Ok(())
            }
            Step::Retried { error, .. } => {
                tracing::warn!(address = %tag(), %error, sequence_number, "mail failed; the batch resumes here");
                Err(sequence_number)
            }
        }
    }
}

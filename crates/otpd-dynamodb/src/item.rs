//! The item's attributes, and reading them back (from the table or from a
//! stream image).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use otpd_core::policy::AddressRecord;
use otpd_core::store::NewMail;
use otpd_core::{EmailAddress, SealedCode, Timestamp};

/// Partition key: the normalised address.
pub const EMAIL: &str = "email";
/// JSON of the [`AddressRecord`]: keyed digests, never codes.
pub const RECORD: &str = "record";
/// Bumped by every write; the condition of the next one.
pub const VERSION: &str = "version";
/// Epoch seconds after which DynamoDB may delete the item.
pub const TTL: &str = "ttl";
/// The newest code, sealed for the sender.
pub const MAIL_SEALED: &str = "mail_sealed";
/// When the newest code was issued (ms); changes only when a code is issued.
pub const MAIL_ISSUED_AT: &str = "mail_issued_at";
/// When the newest code expires (ms).
pub const MAIL_EXPIRES_AT: &str = "mail_expires_at";

pub type Item = HashMap<String, AttributeValue>;

pub fn number(n: impl ToString) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn get_number(item: &Item, name: &str) -> Result<i64, String> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("{name} is missing or not a number"))
}

pub fn decode(item: &Item) -> Result<(AddressRecord, u64), String> {
    let json = item
        .get(RECORD)
        .and_then(|v| v.as_s().ok())
        .ok_or("record is missing")?;
    let record = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let version = u64::try_from(get_number(item, VERSION)?).map_err(|e| e.to_string())?;
    Ok((record, version))
}

/// The mail a stream record asks for: a code issued by this write, which is
/// when `mail_issued_at` is new or changed. A wrong guess or a removal
/// changes nothing of the mail attributes and sends nothing; an image
/// without them (as the first of moto's two INSERTs for an UpdateItem that
/// creates an item) is skipped too.
pub fn mail_in_new_image(new: &Item, old: Option<&Item>) -> Result<Option<NewMail>, String> {
    let Ok(issued_at) = get_number(new, MAIL_ISSUED_AT) else {
        return Ok(None);
    };
    if old.is_some_and(|old| get_number(old, MAIL_ISSUED_AT) == Ok(issued_at)) {
        return Ok(None);
    }
    let email = new
        .get(EMAIL)
        .and_then(|v| v.as_s().ok())
        .ok_or("email is missing")?;
    let email = EmailAddress::parse(email).map_err(|e| e.to_string())?;
    let sealed = new
        .get(MAIL_SEALED)
        .and_then(|v| v.as_b().ok())
        .ok_or("mail_sealed is missing")?;
    Ok(Some(NewMail {
        email,
        sealed: SealedCode::from_bytes(sealed.as_ref().to_vec()),
        created_at: Timestamp::from_millis(issued_at),
        code_expires_at: Timestamp::from_millis(get_number(new, MAIL_EXPIRES_AT)?),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(issued_at: Option<i64>) -> Item {
        let mut item = Item::new();
        item.insert(EMAIL.into(), AttributeValue::S("a@example.com".into()));
        if let Some(at) = issued_at {
            item.insert(MAIL_ISSUED_AT.into(), number(at));
            item.insert(MAIL_EXPIRES_AT.into(), number(at + 300_000));
            item.insert(MAIL_SEALED.into(), AttributeValue::B(vec![1, 2, 3].into()));
        }
        item
    }

    #[test]
    fn only_a_newly_issued_code_asks_for_a_mail() {
        let first = mail_in_new_image(&image(Some(10)), None).expect("decodes");
        assert_eq!(
            first.map(|m| m.created_at),
            Some(Timestamp::from_millis(10))
        );
        let resend = mail_in_new_image(&image(Some(20)), Some(&image(Some(10)))).expect("decodes");
        assert!(resend.is_some(), "a resend (MODIFY) sends");
        let guess = mail_in_new_image(&image(Some(10)), Some(&image(Some(10)))).expect("decodes");
        assert!(guess.is_none(), "a wrong guess (MODIFY) sends nothing");
        let key_only = mail_in_new_image(&image(None), None).expect("decodes");
        assert!(key_only.is_none(), "an image without a mail is skipped");
    }
}

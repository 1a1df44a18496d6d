//! How an address's record is stored: a compact binary layout.
//!
//! Layout version 1, integers little-endian:
//!
//! ```text
//! u8  version (1)
//! u32 failed attempts
//! u32 number of codes, then for each: u32 digest length, the digest, i64 expiry (ms)
//! u32 number of issue times, then each as i64 (ms)
//! ```
//!
//! A fresh record takes 65 bytes, where its JSON took 141 and a twelfth of
//! the writer thread's instructions to write. Rows written before schema
//! version 5 hold JSON text; they are read as such and rewritten in this
//! layout by their next change.

use otpd_core::policy::{AddressRecord, LiveCode};
use otpd_core::CodeDigest;
use rusqlite::types::Value;

use crate::input::Input;
use crate::Error;

const VERSION: u8 = 1;

pub fn encode(record: &AddressRecord) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(13 + 44 * record.codes.len() + 8 * record.issued.len());
    out.push(VERSION);
    out.extend(record.failed_attempts.to_le_bytes());
    put_len(&mut out, record.codes.len())?;
    for code in &record.codes {
        let digest = code.digest.as_bytes();
        put_len(&mut out, digest.len())?;
        out.extend(digest);
        out.extend(code.expires_at.as_millis().to_le_bytes());
    }
    put_len(&mut out, record.issued.len())?;
    for at in &record.issued {
        out.extend(at.as_millis().to_le_bytes());
    }
    Ok(out)
}

fn put_len(out: &mut Vec<u8>, len: usize) -> Result<(), Error> {
    let len = u32::try_from(len).map_err(|_| Error::Encode("a list of over 2^32 entries"))?;
    out.extend(len.to_le_bytes());
    Ok(())
}

/// Reads a record in this layout (a blob) or in JSON (text, before version 5).
pub fn decode(value: &Value) -> Result<AddressRecord, Error> {
    match value {
        Value::Blob(bytes) => read(bytes).map_err(|e| Error::Decode(e.into())),
        Value::Text(json) => serde_json::from_str(json).map_err(|e| Error::Decode(Box::new(e))),
        _ => Err(Error::Decode("a record is neither a blob nor text".into())),
    }
}

fn read(bytes: &[u8]) -> Result<AddressRecord, &'static str> {
    let mut input = Input(bytes);
    match input.take::<1>()? {
        [VERSION] => {}
        _ => return Err("unknown record layout"),
    }
    let failed_attempts = u32::from_le_bytes(input.take()?);
    // A code is at least a digest's length and its expiry.
    let codes = (0..input.len(12)?)
        .map(|_| {
            let digest = input.len(1).and_then(|len| input.bytes(len))?;
            Ok(LiveCode {
                digest: CodeDigest::from_bytes(digest.to_vec()),
                expires_at: input.timestamp()?,
            })
        })
        .collect::<Result<_, &str>>()?;
    let issued = (0..input.len(8)?)
        .map(|_| input.timestamp())
        .collect::<Result<_, _>>()?;
    match input.0 {
        [] => Ok(AddressRecord {
            codes,
            failed_attempts,
            issued,
        }),
        _ => Err("bytes after the record"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use otpd_core::Timestamp;

    use super::*;

    fn record() -> AddressRecord {
        AddressRecord {
            codes: vec![
                LiveCode {
                    digest: CodeDigest::from_bytes(vec![7; 32]),
                    expires_at: Timestamp::from_millis(1_700_000_300_000),
                },
                LiveCode {
                    digest: CodeDigest::from_bytes(vec![0xff; 32]),
                    expires_at: Timestamp::from_millis(-1),
                },
            ],
            failed_attempts: 4,
            issued: vec![
                Timestamp::from_millis(1_700_000_000_000),
                Timestamp::from_millis(i64::MAX),
            ],
        }
    }

    #[test]
    fn a_record_reads_back_as_it_was_written() {
        for record in [record(), AddressRecord::default()] {
            let bytes = encode(&record).unwrap();
            assert_eq!(decode(&Value::Blob(bytes)).unwrap(), record);
        }
    }

    #[test]
    fn a_fresh_record_takes_65_bytes() {
        let mut fresh = record();
        fresh.codes.truncate(1);
        fresh.issued.truncate(1);
        assert_eq!(encode(&fresh).unwrap().len(), 65);
    }

    /// Rows written before schema version 5.
    #[test]
    fn a_json_record_is_read_as_well() {
        let json = serde_json::to_string(&record()).unwrap();
        assert!(json.starts_with('{'));
        assert_eq!(decode(&Value::Text(json)).unwrap(), record());
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_record() {
        let bytes = encode(&record()).unwrap();
        let mut unknown = bytes.clone();
        unknown[0] = 2;
        let mut longer = bytes.clone();
        longer.push(0);
        let mut huge_count = bytes.clone();
        huge_count[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        let damaged = (0..bytes.len())
            .map(|len| bytes[..len].to_vec())
            .chain([unknown, longer, huge_count]);
        for damaged in damaged {
            assert!(
                matches!(decode(&Value::Blob(damaged.clone())), Err(Error::Decode(_))),
                "{damaged:?}"
            );
        }
        assert!(matches!(decode(&Value::Integer(1)), Err(Error::Decode(_))));
    }
}

//! The secret that protects codes at rest, and the two keys derived from it.
//!
//! A store never sees a code: it keeps a [`CodeDigest`] (HMAC-SHA256 of the
//! address and the code) to check guesses, and the mail queue keeps a
//! [`SealedCode`] (AES-256-GCM, bound to the address) until the mail is
//! handed to the provider. Without the secret, a copy of the store reveals no
//! code: six digits are easy to brute-force from an unkeyed hash, not from a
//! keyed one.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{CodeLength, EmailAddress, OtpCode};

/// 256 bits: the floor for `OTPD_SECRET`.
pub const MIN_SECRET_BYTES: usize = 32;
const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret must be hex (64+ characters) or standard base64 of at least {MIN_SECRET_BYTES} bytes")]
    Malformed,
    #[error("the secret is {0} bytes; at least {MIN_SECRET_BYTES} random bytes are required")]
    TooShort(usize),
}

/// The operator's secret, parsed from `OTPD_SECRET` or a key file.
pub struct Secret(SecretBox<[u8]>);

impl Secret {
    /// Accepts hex (64 or more characters) or standard base64.
    pub fn parse(text: &SecretString) -> Result<Self, SecretError> {
        let text = text.expose_secret().trim();
        let bytes =
            if text.len() >= 2 * MIN_SECRET_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                hex::decode(text).map_err(|_| SecretError::Malformed)?
            } else {
                BASE64.decode(text).map_err(|_| SecretError::Malformed)?
            };
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort(bytes.len()));
        }
        Ok(Self(SecretBox::new(bytes.into_boxed_slice())))
    }

    /// A fresh secret from the OS CSPRNG, hex-encoded (what `otpd gen-secret` prints).
    pub fn generate_hex() -> SecretString {
        let mut bytes = [0u8; MIN_SECRET_BYTES];
        OsRng.fill_bytes(&mut bytes);
        SecretString::from(hex::encode(bytes))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Keys derived from the [`Secret`] with HKDF, one per purpose.
#[derive(Clone)]
pub struct CodeKeys {
    digest: Hmac<Sha256>,
    // AES-GCM rather than ChaCha20-Poly1305: with AES instructions it seals
    // a 6-byte code in a fifth of the time (key setup dominates messages
    // this short), and every generate seals one and every mail opens one.
    seal: Aes256Gcm,
}

impl std::fmt::Debug for CodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeKeys(<redacted>)")
    }
}

/// HMAC-SHA256 of an address and a code; what a store keeps instead of the code.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeDigest(#[serde(with = "base64_bytes")] Vec<u8>);

impl CodeDigest {
    /// Constant-time equality: a timing side channel must not tell how many
    /// leading bytes of a guess were right.
    pub fn matches(&self, other: &CodeDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// A digest as [`CodeDigest::as_bytes`] gave it, read back from a store.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for CodeDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeDigest(..)")
    }
}

/// A code under authenticated encryption, bound to its recipient.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedCode(#[serde(with = "base64_bytes")] Vec<u8>);

impl SealedCode {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SealedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedCode(..)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a sealed code could not be opened (wrong secret or tampered data)")]
pub struct UnsealError;

impl CodeKeys {
    pub fn derive(secret: &Secret) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(b"otpd"), secret.0.expose_secret());
        let mut digest_key = [0u8; 32];
        let mut seal_key = [0u8; 32];
        hkdf.expand(b"otpd code digest v1", &mut digest_key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        hkdf.expand(b"otpd code seal aes-256-gcm v2", &mut seal_key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self {
            digest: <Hmac<Sha256> as Mac>::new_from_slice(&digest_key)
                .expect("HMAC accepts keys of any length"),
            seal: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&seal_key)),
        }
    }

    pub fn digest(&self, email: &EmailAddress, code: &OtpCode) -> CodeDigest {
        let mut mac = self.digest.clone();
        mac.update(email.as_str().as_bytes());
        mac.update(&[0]);
        mac.update(code.expose().as_bytes());
        CodeDigest(mac.finalize().into_bytes().to_vec())
    }

    /// A short keyed tag of an address, so logs can correlate requests for
    /// one address without holding the address itself.
    pub fn address_tag(&self, email: &EmailAddress) -> String {
        let mut mac = self.digest.clone();
        mac.update(b"log tag\0");
        mac.update(email.as_str().as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..6])
    }

    pub fn seal(&self, email: &EmailAddress, code: &OtpCode) -> SealedCode {
        // A nonce must never repeat but need not be secret: the thread's
        // CSPRNG (ChaCha, seeded from the OS) saves a system call per code.
        let nonce = Aes256Gcm::generate_nonce(&mut rand::thread_rng());
        let payload = Payload {
            msg: code.expose().as_bytes(),
            aad: email.as_str().as_bytes(),
        };
        let ciphertext = self
            .seal
            .encrypt(&nonce, payload)
            .expect("AES-GCM encrypts any message shorter than 64 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        SealedCode(bytes)
    }

    pub fn unseal(
        &self,
        email: &EmailAddress,
        sealed: &SealedCode,
        length: CodeLength,
    ) -> Result<OtpCode, UnsealError> {
        if sealed.0.len() <= NONCE_LEN {
            return Err(UnsealError);
        }
        let (nonce, ciphertext) = sealed.0.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: email.as_str().as_bytes(),
        };
        let plain = self
            .seal
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| UnsealError)?;
        let text = std::str::from_utf8(&plain).map_err(|_| UnsealError)?;
        OtpCode::parse(text, length).map_err(|_| UnsealError)
    }
}

mod base64_bytes {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seed: u8) -> CodeKeys {
        let secret = Secret::parse(&SecretString::from(hex::encode([seed; 32]))).expect("valid");
        CodeKeys::derive(&secret)
    }

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).expect("valid address")
    }

    fn code(s: &str) -> OtpCode {
        OtpCode::parse(s, CodeLength::default()).expect("valid code")
    }

    #[test]
    fn secrets_must_be_long_enough_and_well_formed() {
        let parse = |s: &str| Secret::parse(&SecretString::from(s.to_owned())).map(|_| ());
        assert_eq!(parse(&"ab".repeat(32)), Ok(()));
        assert_eq!(parse(&BASE64.encode([7u8; 32])), Ok(()));
        assert_eq!(
            parse(&BASE64.encode([7u8; 16])),
            Err(SecretError::TooShort(16))
        );
        assert_eq!(parse("hunter2!"), Err(SecretError::Malformed));
        assert_eq!(parse(&"ab".repeat(20)), Err(SecretError::TooShort(30)));
        assert!(Secret::parse(&Secret::generate_hex()).is_ok());
    }

    #[test]
    fn digest_depends_on_key_address_and_code() {
        let a = keys(1).digest(&addr("a@example.com"), &code("123456"));
        assert!(a.matches(&keys(1).digest(&addr("a@example.com"), &code("123456"))));
        assert!(!a.matches(&keys(2).digest(&addr("a@example.com"), &code("123456"))));
        assert!(!a.matches(&keys(1).digest(&addr("b@example.com"), &code("123456"))));
        assert!(!a.matches(&keys(1).digest(&addr("a@example.com"), &code("123457"))));
    }

    #[test]
    fn sealed_code_opens_only_with_the_same_key_and_address() {
        let email = addr("a@example.com");
        let sealed = keys(1).seal(&email, &code("004217"));
        assert!(!sealed.as_bytes().windows(6).any(|w| w == b"004217"));
        let length = CodeLength::default();
        assert_eq!(keys(1).unseal(&email, &sealed, length), Ok(code("004217")));
        assert_eq!(keys(2).unseal(&email, &sealed, length), Err(UnsealError));
        assert_eq!(
            keys(1).unseal(&addr("b@example.com"), &sealed, length),
            Err(UnsealError)
        );
        let mut tampered = sealed.as_bytes().to_vec();
        tampered[NONCE_LEN] ^= 1;
        assert_eq!(
            keys(1).unseal(&email, &SealedCode::from_bytes(tampered), length),
            Err(UnsealError)
        );
    }
}

//! The generated key file used when no `OTPD_SECRET` is configured.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use otpd_core::Secret;
use secrecy::{ExposeSecret, SecretString};

/// Reads the key at `path`, creating it (mode 0600) on first start.
pub fn load_or_create(path: &Path) -> anyhow::Result<Secret> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            tracing::warn!(path = %path.display(), "using the generated key file; set OTPD_SECRET or OTPD_SECRET_FILE in production and keep the key away from the store's backups");
            Secret::parse(&SecretString::from(text))
                .with_context(|| format!("the key file {} is damaged", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = Secret::generate_hex();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("could not create the key file {}", path.display()))?;
            writeln!(file, "{}", secret.expose_secret())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("could not write the key file {}", path.display()))?;
            tracing::warn!(path = %path.display(), "no OTPD_SECRET set: generated a key file; set OTPD_SECRET or OTPD_SECRET_FILE in production");
            Ok(Secret::parse(&secret).context("a generated secret is valid")?)
        }
        Err(e) => Err(e).with_context(|| format!("could not read the key file {}", path.display())),
    }
}

//! The operator subcommands besides `serve`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use otpd_core::{CodeLength, CodeMail, EmailAddress, MailError, OtpCode};
use otpd_mail::SmtpMailer;
use rand::rngs::OsRng;
use secrecy::ExposeSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{Config, MailerUrl};
use crate::server::build_mailer;

/// Prints a fresh secret for `OTPD_SECRET`.
pub fn gen_secret() {
    println!("{}", otpd_core::Secret::generate_hex().expose_secret());
}

/// Sends one message through the configured mailer, so an operator sees the
/// mail settings work (or why not) before users do.
pub async fn send_test_email(config: &Config, to: &str) -> anyhow::Result<()> {
    let to = EmailAddress::parse(to).context("the recipient is not a valid address")?;
    if let MailerUrl::Smtp(url) = &config.mailer {
        let composer = otpd_mail::Composer {
            from: config.mail_from.clone(),
            product: config.product_name.clone(),
            templates: config.templates.clone(),
        };
        let smtp = SmtpMailer::from_url(url, composer)?;
        eprintln!("connecting to {} …", otpd_mail::redact(url));
        smtp.test_connection().await.map_err(explain)?;
    }
    let mailer = build_mailer(config).await?;
    let mail = CodeMail {
        to: to.clone(),
        code: OtpCode::generate(&mut OsRng, CodeLength::default()),
        lifetime: config.rules.code_ttl,
    };
    mailer.send(&mail).await.map_err(explain)?;
    eprintln!("a test message went to {to} through {}", mailer.describe());
    Ok(())
}

fn explain(error: MailError) -> anyhow::Error {
    anyhow::anyhow!("{error}")
}

/// Exit status 0 when `/healthz` on the configured address answers 200.
pub async fn healthcheck(config: &Config) -> anyhow::Result<()> {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr = match addr {
            SocketAddr::V4(_) => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
            SocketAddr::V6(_) => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        };
    }
    let status = tokio::time::timeout(Duration::from_secs(5), get_status(addr, "/healthz"))
        .await
        .context("no answer within 5 s")??;
    if status != 200 {
        bail!("http://{addr}/healthz answered {status}");
    }
    Ok(())
}

/// A minimal HTTP/1.0 GET returning the status code.
async fn get_status(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("could not connect to {addr}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    let line = std::str::from_utf8(&head).context("not an HTTP answer")?;
    line.get(9..12)
        .and_then(|code| code.parse().ok())
        .context("not an HTTP answer")
}

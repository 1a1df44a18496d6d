//! otpd's API tests: each starts otpd for real (in-process on 127.0.0.1:0,
//! or the binary) with a real SQLite file and a real SMTP server, and speaks
//! HTTP to it like a client.

#![allow(clippy::unwrap_used)]

// Shared with tests/load.rs; each binary uses part of it.
#[allow(dead_code)]
mod helpers;

mod durability;
mod flow;
mod hostile;
mod operations;
mod ses;

//! The `otpd` binary's library: configuration, the supervised server, the
//! outbox worker and the operator commands. `main` only parses and wires.

pub mod commands;
pub mod config;
mod json_log;
mod keyfile;
pub mod server;
pub mod telemetry;
mod worker;

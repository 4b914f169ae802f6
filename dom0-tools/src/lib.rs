//! `keel`, Dom0's management tool for the Keel hypervisor.
//!
//! Layers, bottom up: `sys` (the only unsafe code: mmap, volatile register
//! and window access, termios, signals, poll, setsid), [`device`] (finding
//! and opening the PCI function), [`transport`] (the shared-memory call
//! protocol), [`client`] (typed calls, statuses as errors), then the
//! commands ([`create`], [`console`], [`top`], [`output`], [`block`],
//! [`network`], [`commands`]), the virtio backend process ([`backend`]),
//! the network switch process ([`switch_daemon`], deciding with
//! [`switch`]), and the command line ([`cli`]).
#![deny(unsafe_code)]

pub mod backend;
pub mod block;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod console;
pub mod create;
pub mod device;
pub mod hvc;
pub mod network;
pub mod output;
pub mod switch;
pub mod switch_daemon;
mod sys;
pub mod top;
pub mod transport;
pub mod vif;

#[cfg(test)]
mod tests;

use std::process::ExitCode;

use clap::Parser;

/// The `keel` program: parses the command line (clap exits 2 on usage
/// errors and 0 after --help), runs the command against the real device,
/// and turns an error into `keel: <message>` and exit status 1.
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let streams = commands::Streams {
        out: &mut stdout,
        err: &mut stderr,
    };
    let connect = || client::Client::connect(device::Device::open()?);
    let mut backends = backend::supervisor::Supervisor::system();
    match commands::execute(cli.command, connect, streams, &mut backends) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // {:#}: the whole chain, "context: cause: cause".
            eprintln!("keel: {error:#}");
            ExitCode::FAILURE
        }
    }
}

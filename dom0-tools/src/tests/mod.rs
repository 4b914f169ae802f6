//! Host tests; everything that talks to Keel runs against [`fake`], a
//! small in-memory Keel.

mod backend;
mod backend_console;
mod backend_net;
mod client;
mod commands;
mod config;
mod console;
mod create;
mod fake;
mod output;
mod top;
mod transport;

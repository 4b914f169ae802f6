//! `cargo xtask bench <benchmark>`: measurements taken in Bochs, where RDTSC
//! counts emulated instructions and so gives repeatable numbers.

mod boot;
mod exits;
mod io;
mod serial;

use anyhow::Result;

use crate::cli::Benchmark;
use crate::workspace::Workspace;

pub fn run(workspace: &Workspace, benchmark: Benchmark) -> Result<()> {
    match benchmark {
        Benchmark::Exits { iterations } => exits::run(workspace, iterations),
        Benchmark::Boot { only } => boot::run(workspace, only),
        Benchmark::Io => io::run(workspace),
    }
}

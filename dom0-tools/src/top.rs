//! `keel top`: per-domain rates from two List samples.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Result;
use keel_abi::mgmt::DomainInfo;

use crate::client::Client;
use crate::transport::Transport;

/// One domain's line. Rates are `None` for a domain absent from the
/// previous sample (or whose counters went backwards, e.g. reset): there is
/// no honest number to show yet.
#[derive(Debug, Clone, PartialEq)]
pub struct TopRow {
    pub name: String,
    pub id: u32,
    pub state: &'static str,
    pub cpu_percent: Option<f64>,
    /// Exits per second: all, then io, mmio, msr, halt, timer.
    pub exits: [Option<f64>; 6],
    pub memory_mib: u64,
}

fn per_second(before: u64, after: u64, seconds: f64) -> Option<f64> {
    after.checked_sub(before).map(|delta| delta as f64 / seconds)
}

/// Rates between two samples taken `elapsed` apart.
pub fn rows(before: &[DomainInfo], after: &[DomainInfo], elapsed: Duration) -> Vec<TopRow> {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    after
        .iter()
        .map(|now| {
            let then = before.iter().find(|then| then.id == now.id);
            let rate = |counter: fn(&DomainInfo) -> u64| {
                then.and_then(|then| per_second(counter(then), counter(now), seconds))
            };
            TopRow {
                name: now.name.as_str().to_string(),
                id: now.id,
                state: now.state.name(),
                // ns of guest time per ns of wall time, as a percentage.
                cpu_percent: rate(|domain| domain.cpu_time_ns).map(|ns_per_second| ns_per_second / 1e7),
                exits: [
                    rate(|domain| domain.exits),
                    rate(|domain| domain.exits_io),
                    rate(|domain| domain.exits_mmio),
                    rate(|domain| domain.exits_msr),
                    rate(|domain| domain.exits_halt),
                    rate(|domain| domain.exits_timer),
                ],
                memory_mib: now.memory_bytes >> 20,
            }
        })
        .collect()
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |value| format!("{value:.decimals$}"))
}

pub fn frame(rows: &[TopRow], elapsed: Duration) -> String {
    let width = rows.iter().map(|row| row.name.len()).max().unwrap_or(0).max(4);
    let mut text = format!(
        "keel top: {} domains, {:.1} s sample\n{:<width$} {:>5}  {:<8} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
        rows.len(),
        elapsed.as_secs_f64(),
        "Name",
        "ID",
        "State",
        "CPU%",
        "Exits/s",
        "IO/s",
        "MMIO/s",
        "MSR/s",
        "HLT/s",
        "Timer/s",
        "Mem(MiB)"
    );
    for row in rows {
        let [all, io, mmio, msr, halt, timer] = row.exits.map(|rate| cell(rate, 0));
        text += &format!(
            "{:<width$} {:>5}  {:<8} {:>6} {all:>9} {io:>8} {mmio:>8} {msr:>8} {halt:>8} {timer:>8} {:>8}\n",
            row.name,
            row.id,
            row.state,
            cell(row.cpu_percent, 1),
            row.memory_mib
        );
    }
    text
}

/// Clears the terminal and homes the cursor.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// Prints `iterations` frames (forever when None), one per `interval`.
/// `batch`: plain frames separated by a blank line instead of redrawing.
pub fn run<T: Transport>(
    client: &mut Client<T>,
    interval: Duration,
    iterations: Option<u64>,
    batch: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let mut before = client.list()?;
    let mut then = Instant::now();
    let mut shown = 0;
    while iterations.is_none_or(|limit| shown < limit) {
        std::thread::sleep(interval);
        let after = client.list()?;
        let now = Instant::now();
        let elapsed = now - then;
        let text = frame(&rows(&before, &after, elapsed), elapsed);
        match (batch, shown) {
            (true, 0) => write!(out, "{text}")?,
            (true, _) => write!(out, "\n{text}")?,
            (false, _) => write!(out, "{CLEAR}{text}")?,
        }
        out.flush()?;
        (before, then) = (after, now);
        shown += 1;
    }
    Ok(())
}

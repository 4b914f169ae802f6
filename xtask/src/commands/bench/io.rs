//! `bench io`: sequential reads of one image file from a DomU through the
//! split block driver (its virtio-blk frontend, Keel's transport and
//! notifications, Dom0's backend process; `docs/virtio.md`) against Dom0
//! reading the same file itself, with the instructions and VM exits each
//! request costs; then the split network driver between two DomUs (their
//! virtio-net frontends, a backend process each and the switch in Dom0):
//! the round trip of a ping, the throughput of one TCP stream and the VM
//! exits each packet costs. `docs/testing.md` says exactly what each figure
//! counts.
//!
//! One Bochs boot of Dom0 with `keel.test=bench-io`: its /init runs
//! `/usr/lib/keel/bench-io.sh` (`xtask/guest/bench-io.sh`), which reads the
//! file natively, creates `domu-bench-io` (`xtask/guest/domu-bench-io.sh`
//! in the DomU) and takes three snapshots of `keel list --json` around the
//! DomU's read and an idle span after it; then creates `domu-bench-net-a`
//! and `-b` (`keel.domu=split-net` with `keel.net-bench=1`,
//! `xtask/guest/domu-init.sh`) and takes three snapshots around the
//! client's transfer and an idle span, before the client's pings. Every
//! figure comes from lines the guests print (through their kernel logs, so
//! whole), with times on the guests' own clocks, which run on the TSC: in
//! Bochs, emulated instructions, so the figures repeat from run to run. The
//! boot has a time-out and the emulator is stopped however it ends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use keel_boot_tests::cases::bochs_dom0;
use keel_boot_tests::dom0::{Dom0Modules, LINUX_CMDLINE};
use keel_boot_tests::iso::build_case_iso;
use keel_boot_tests::{Profile, TestCase};

use super::boot::{failure, Run};
use super::serial;
use crate::workspace::Workspace;
use crate::{cargo, guest, prerequisites, say};

const RUN_NAME: &str = "bench-io";
/// Makes Dom0's /init run the measurement.
pub const BENCH_IO_FLAG: &str = "keel.test=bench-io";
/// Dom0's boot, the DomU's boot and its read of 16 MiB, then two DomUs'
/// boots (at once), their transfer and pings, all in Bochs.
const TIMEOUT: Duration = Duration::from_secs(2400);

/// Dom0's line with its native read:
/// `dom0: bench-io native bytes=.. passes=.. ns=.. startup_ns=.. tsc_hz=..`.
const NATIVE_MARKER: &str = "dom0: bench-io native";
/// The DomU's line with its read, which Dom0 shows from its console:
/// `domu: bench-io result bytes=.. ns=.. requests=.. sectors=.. startup_ns=.. tsc_hz=..`.
const RESULT_MARKER: &str = "domu: bench-io result";
/// Dom0's snapshot lines: `dom0: bench-io snapshot <a|b|c> ns=..
/// dom0.exits=.. dom0.exits_io=.. ... domu.cpu_time_ns=.. ...`.
const SNAPSHOT_MARKER: &str = "dom0: bench-io snapshot";
/// The snapshots: before typing "go", after the DomU's result, after the
/// idle span.
const SNAPSHOTS: [&str; 3] = ["a", "b", "c"];
/// Dom0's verdicts: something went wrong (the rest says what), the DomU's
/// own failure line (Dom0 shows its console then), and the end.
const FAILED_MARKER: &str = "dom0: bench-io failed";
const DOMU_FAILED_MARKER: &str = "domu: bench-io FAILED";
const DONE_MARKER: &str = "dom0: bench-io done";
/// The exit kinds `keel list --json` counts besides the total.
const EXIT_KINDS: [&str; 5] = ["io", "mmio", "msr", "halt", "timer"];
/// The client DomU's line with its transfer and pings, which Dom0 shows
/// from its console: `domu: split-net bench result rtt_min_ms=..
/// rtt_avg_ms=.. rtt_max_ms=.. pings=.. bytes=.. ns=.. tx_packets=..
/// rx_packets=.. tx_bytes=.. tsc_hz=..`.
const NET_RESULT_MARKER: &str = "domu: split-net bench result";
/// Dom0's snapshot lines around the transfer: `dom0: bench-io net snapshot
/// <a|b|c> ns=.. dom0.exits=.. ... server.exits=.. ... client.exits=.. ...`.
const NET_SNAPSHOT_MARKER: &str = "dom0: bench-io net snapshot";
/// The domains of the network part, as the snapshots name them.
const NET_DOMAINS: [&str; 3] = ["dom0", "server", "client"];
/// Dom0's verdict on the network part when it went wrong (not a failure
/// marker of the boot: the split-blk figures still come), and its end.
const NET_FAILED_MARKER: &str = "dom0: bench-io net failed";
const NET_DONE_MARKER: &str = "dom0: bench-io net done";

/// Dom0's Linux command line for the measurement.
fn linux_cmdline() -> String {
    format!("{LINUX_CMDLINE} {BENCH_IO_FLAG}")
}

pub fn run(workspace: &Workspace) -> Result<()> {
    prerequisites::ensure(&[prerequisites::ISO_TOOLS, prerequisites::BOCHS])?;
    let layout = &workspace.layout;
    guest::ensure_dom0_images(workspace)?;
    let elf = cargo::build_hypervisor(workspace, Profile::Release)?;
    let case = TestCase {
        name: RUN_NAME,
        timeout: TIMEOUT,
        ..bochs_dom0()
    }
    .with_dom0(Dom0Modules::with_linux_cmdline(&linux_cmdline()));
    say!("building ISO {RUN_NAME} (Dom0 with {BENCH_IO_FLAG})");
    let iso = build_case_iso(layout, &elf, &case)?;
    let run = Run {
        name: RUN_NAME,
        machine: case.machine.clone(),
        timeout: case.timeout,
        finish: case.finish_marker(),
        done: DONE_MARKER,
        failures: &[FAILED_MARKER, DOMU_FAILED_MARKER],
    };
    let started = Instant::now();
    let outcome = run.boot(layout, &iso)?;
    let wall = started.elapsed();
    let log = &outcome.serial_log;
    let keel_hz = serial::keel_tsc_mhz(log).map(|mhz| mhz * 1e6);
    let measured = measurement(log).map_err(|error| failure(&outcome, RUN_NAME, &error))?;
    let figures = figures(&measured, keel_hz).map_err(|error| failure(&outcome, RUN_NAME, &error))?;
    for note in &figures.notes {
        say!("{note}");
    }
    say!("one Bochs boot, {:.0} s wall", wall.as_secs_f64());
    println!("{}", split_blk_line(&figures));
    let net = net_measurement(log)
        .and_then(|net| net_figures(&net, measured.native.tsc_hz, keel_hz))
        .map_err(|error| failure(&outcome, RUN_NAME, &error))?;
    for note in &net.notes {
        say!("{note}");
    }
    println!("{}", split_net_line(&net));
    Ok(())
}

/// The `key=value` words that follow `marker` on the first kernel-log line
/// of `log` saying it (the printk timestamp right before it, so that a
/// line merely quoting the marker does not count), with that line's index.
fn marked_line(log: &str, marker: &str) -> Option<MarkedLine> {
    log.lines().enumerate().find_map(|(index, line)| {
        serial::kernel_time(line, marker)?;
        let rest = &line[line.find(marker)? + marker.len()..];
        let fields = rest
            .split_whitespace()
            .filter_map(|word| word.split_once('='))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        Some(MarkedLine { index, fields })
    })
}

#[derive(Debug)]
struct MarkedLine {
    index: usize,
    fields: BTreeMap<String, String>,
}

impl MarkedLine {
    fn number(&self, key: &str, what: &str) -> Result<u64, String> {
        self.parsed(key, what)
    }

    /// A decimal such as ping's `1.234` (ms).
    fn decimal(&self, key: &str, what: &str) -> Result<f64, String> {
        self.parsed::<f64>(key, what).and_then(|value| {
            value
                .is_finite()
                .then_some(value)
                .ok_or_else(|| format!("{key}={value} in {what} (line {}) is not finite", self.index + 1))
        })
    }

    fn parsed<T: std::str::FromStr>(&self, key: &str, what: &str) -> Result<T, String> {
        let value = self
            .fields
            .get(key)
            .ok_or_else(|| format!("no {key}= in {what} (line {})", self.index + 1))?;
        value
            .parse()
            .map_err(|_| format!("{key}={value:?} in {what} (line {}) is not a number", self.index + 1))
    }

    /// Every `<domain>.<counter>=<n>` field, checking that each of
    /// `domains` has its `exits`.
    fn snapshot(&self, what: &str, domains: &[&str]) -> Result<Snapshot, String> {
        let mut counters = BTreeMap::new();
        for key in self.fields.keys().filter(|key| key.contains('.')) {
            counters.insert(key.clone(), self.number(key, what)?);
        }
        for domain in domains {
            if !counters.contains_key(&format!("{domain}.exits")) {
                return Err(format!("no {domain}.exits= in {what} (line {})", self.index + 1));
            }
        }
        Ok(Snapshot {
            ns: self.number("ns", what)?,
            counters,
        })
    }
}

/// Dom0 reading the file itself, `passes` times.
#[derive(Debug, Clone, PartialEq)]
struct NativeRead {
    /// All passes together.
    bytes: u64,
    passes: u64,
    /// From before the first dd to after the last, on Dom0's clock.
    ns: u64,
    /// One dd that reads nothing.
    startup_ns: u64,
    /// The rate Dom0's clock runs at (0: it found none).
    tsc_hz: u64,
}

/// The DomU reading its disk once, O_DIRECT.
#[derive(Debug, Clone, PartialEq)]
struct DomuRead {
    bytes: u64,
    /// The dd, on the DomU's clock.
    ns: u64,
    /// Reads completed on the disk during it (`/sys/block/vda/stat`).
    requests: u64,
    sectors: u64,
    startup_ns: u64,
    tsc_hz: u64,
}

/// One `keel list --json` in Dom0.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    /// When, on Dom0's clock (just before the call).
    ns: u64,
    /// `dom0.exits`, `domu.exits_io`, `domu.cpu_time_ns`, ...
    counters: BTreeMap<String, u64>,
}

impl Snapshot {
    fn get(&self, key: &str) -> Result<u64, String> {
        self.counters
            .get(key)
            .copied()
            .ok_or_else(|| format!("snapshot has no {key}"))
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Measurement {
    native: NativeRead,
    domu: DomuRead,
    /// A, B and C.
    snapshots: [Snapshot; 3],
}

fn measurement(log: &str) -> Result<Measurement, String> {
    let native = marked_line(log, NATIVE_MARKER).ok_or_else(|| format!("no {NATIVE_MARKER:?} line from Dom0"))?;
    let what = "Dom0's native line";
    let native = NativeRead {
        bytes: native.number("bytes", what)?,
        passes: native.number("passes", what)?,
        ns: native.number("ns", what)?,
        startup_ns: native.number("startup_ns", what)?,
        tsc_hz: native.number("tsc_hz", what)?,
    };
    let result = marked_line(log, RESULT_MARKER)
        .ok_or_else(|| format!("no {RESULT_MARKER:?} line from the DomU (as Dom0 shows its console)"))?;
    let what = "the DomU's result line";
    let domu = DomuRead {
        bytes: result.number("bytes", what)?,
        ns: result.number("ns", what)?,
        requests: result.number("requests", what)?,
        sectors: result.number("sectors", what)?,
        startup_ns: result.number("startup_ns", what)?,
        tsc_hz: result.number("tsc_hz", what)?,
    };
    let snapshot = |name: &str| -> Result<Snapshot, String> {
        let marker = format!("{SNAPSHOT_MARKER} {name} ");
        let line = marked_line(log, &marker).ok_or_else(|| format!("no {:?} line from Dom0", marker.trim_end()))?;
        line.snapshot(&format!("snapshot {name}"), &["dom0", "domu"])
    };
    let [a, b, c] = SNAPSHOTS;
    Ok(Measurement {
        native,
        domu,
        snapshots: [snapshot(a)?, snapshot(b)?, snapshot(c)?],
    })
}

/// What `bench io` prints, and how it got there.
#[derive(Debug, Clone, PartialEq)]
struct Figures {
    /// MB (10^6 bytes) per second of the guest's clock.
    domu_mb_s: f64,
    dom0_mb_s: f64,
    /// domu / dom0.
    ratio: f64,
    /// TSC ticks (emulated instructions in Bochs) of the DomU's read per
    /// request, the dd's start-up left out.
    instr_per_req: f64,
    /// VM exits of both domains during the read per request.
    exits_per_req: f64,
    /// Lines for the reader: the raw figures behind these.
    notes: Vec<String>,
}

/// The rate a guest's clock runs at, in Hz: its own, else Keel's.
fn rate(guest_hz: u64, keel_hz: Option<f64>, who: &str, notes: &mut Vec<String>) -> Result<f64, String> {
    match (guest_hz, keel_hz) {
        (0, Some(keel)) => {
            notes.push(format!(
                "{who} reported no TSC rate; using Keel's ({:.3} MHz)",
                keel / 1e6
            ));
            Ok(keel)
        }
        (0, None) => Err(format!("no TSC rate: {who} reported none and Keel printed none")),
        (hz, Some(keel)) if (hz as f64 - keel).abs() > keel * 0.001 => {
            notes.push(format!(
                "note: {who}'s clock runs at {:.3} MHz, Keel measured the TSC at {:.3} MHz",
                hz as f64 / 1e6,
                keel / 1e6
            ));
            Ok(hz as f64)
        }
        (hz, _) => Ok(hz as f64),
    }
}

/// `+12 (io +3 mmio +4 ...)`: how much domain `who`'s exits grew from
/// `from` to `to`.
fn exit_growth(from: &Snapshot, to: &Snapshot, who: &str) -> Result<String, String> {
    let mut kinds = Vec::new();
    for kind in EXIT_KINDS {
        let key = format!("{who}.exits_{kind}");
        if let (Ok(before), Ok(after)) = (from.get(&key), to.get(&key)) {
            kinds.push(format!("{kind} +{}", after.saturating_sub(before)));
        }
    }
    let key = format!("{who}.exits");
    Ok(format!("+{} ({})", to.get(&key)? - from.get(&key)?, kinds.join(", ")))
}

/// Domain `who`'s exits of each kind per request (or packet) during the
/// read (or transfer): its growth from `a` to `b` less its idle rate from
/// `b` to `c` over the `outside_s` seconds of a..b outside the read. `io
/// 1.8, mmio 7.0, ..., other 0.4 (total 20.1)`; kinds a snapshot lacks are
/// left out.
fn exits_per_request(
    [a, b, c]: &[Snapshot; 3],
    who: &str,
    idle_s: f64,
    outside_s: f64,
    requests: u64,
) -> Result<String, String> {
    let per_request = |key: &str| -> Result<f64, String> {
        let window = b.get(key)?.saturating_sub(a.get(key)?) as f64;
        let idle = c.get(key)?.saturating_sub(b.get(key)?) as f64;
        Ok((window - idle / idle_s * outside_s) / requests as f64)
    };
    let total = per_request(&format!("{who}.exits"))?;
    let mut parts = Vec::new();
    let mut kinds = 0.0;
    for kind in EXIT_KINDS {
        if let Ok(value) = per_request(&format!("{who}.exits_{kind}")) {
            parts.push(format!("{kind} {value:.1}"));
            kinds += value;
        }
    }
    if parts.is_empty() {
        return Ok(format!("total {total:.1}"));
    }
    parts.push(format!("other {:.1}", total - kinds));
    Ok(format!("{} (total {total:.1})", parts.join(", ")))
}

/// Both domains' exits together at a snapshot.
fn total_exits(snapshot: &Snapshot) -> Result<u64, String> {
    domains_exits(snapshot, &["dom0", "domu"])
}

/// The exits of `domains` together at a snapshot.
fn domains_exits(snapshot: &Snapshot, domains: &[&str]) -> Result<u64, String> {
    domains
        .iter()
        .map(|domain| snapshot.get(&format!("{domain}.exits")))
        .sum()
}

fn figures(measured: &Measurement, keel_hz: Option<f64>) -> Result<Figures, String> {
    let (native, domu) = (&measured.native, &measured.domu);
    let [a, b, c] = &measured.snapshots;
    let mut notes = Vec::new();
    let dom0_hz = rate(native.tsc_hz, keel_hz, "Dom0", &mut notes)?;
    let domu_hz = rate(domu.tsc_hz, keel_hz, "the DomU", &mut notes)?;

    // Throughput: the reads alone, without starting dd.
    let native_ns = native.ns as f64 - native.passes as f64 * native.startup_ns as f64;
    if native.passes == 0 || native_ns <= 0.0 {
        return Err(format!(
            "Dom0's native read took {} ns for {} passes, no more than starting dd ({} ns each)",
            native.ns, native.passes, native.startup_ns
        ));
    }
    let domu_ns = domu.ns as f64 - domu.startup_ns as f64;
    if domu.requests == 0 || domu_ns <= 0.0 {
        return Err(format!(
            "the DomU's read took {} ns and {} requests, against {} ns to start dd",
            domu.ns, domu.requests, domu.startup_ns
        ));
    }
    let dom0_mb_s = native.bytes as f64 / native_ns * 1e3;
    let domu_mb_s = domu.bytes as f64 / domu_ns * 1e3;
    let instr_per_req = domu_ns * domu_hz / 1e9 / domu.requests as f64;
    notes.push(format!(
        "Dom0 read {} bytes in {} passes in {:.3} s of its clock, {:.3} s of it starting dd ({:.3} s each): {dom0_mb_s:.2} MB/s",
        native.bytes,
        native.passes,
        native.ns as f64 / 1e9,
        (native.passes * native.startup_ns) as f64 / 1e9,
        native.startup_ns as f64 / 1e9,
    ));
    notes.push(format!(
        "the DomU read {} bytes ({} sectors) in {} requests of {} bytes in {:.3} s of its clock, {:.3} s of it starting dd: {domu_mb_s:.2} MB/s, {instr_per_req:.0} TSC ticks per request",
        domu.bytes,
        domu.sectors,
        domu.requests,
        domu.bytes / domu.requests,
        domu.ns as f64 / 1e9,
        domu.startup_ns as f64 / 1e9,
    ));

    // Exits: A..B holds the read; B..C is idle, and its rate stands for the
    // part of A..B outside the read.
    if !(a.ns < b.ns && b.ns < c.ns) {
        return Err(format!(
            "Dom0's snapshots are out of order: a at {} ns, b at {} ns, c at {} ns",
            a.ns, b.ns, c.ns
        ));
    }
    let (total_a, total_b, total_c) = (total_exits(a)?, total_exits(b)?, total_exits(c)?);
    for key in ["dom0.exits", "domu.exits"] {
        if !(a.get(key)? <= b.get(key)? && b.get(key)? <= c.get(key)?) {
            return Err(format!(
                "{key} went down between snapshots ({}, {}, {}): a domain restarted",
                a.get(key)?,
                b.get(key)?,
                c.get(key)?
            ));
        }
    }
    let window_s = (b.ns - a.ns) as f64 / 1e9;
    let idle_s = (c.ns - b.ns) as f64 / 1e9;
    // The read on Dom0's clock: both count the same TSC, each at its rate.
    let read_s = domu.ns as f64 * domu_hz / 1e9 / dom0_hz;
    if read_s > window_s {
        return Err(format!(
            "the DomU's read ({read_s:.3} s) is longer than the window between snapshots a and b ({window_s:.3} s)"
        ));
    }
    let idle_rate = (total_c - total_b) as f64 / idle_s;
    let outside_s = window_s - read_s;
    let idle_exits = idle_rate * outside_s;
    let read_exits = (total_b - total_a) as f64 - idle_exits;
    let exits_per_req = read_exits / domu.requests as f64;
    notes.push(format!(
        "exits from a to b ({window_s:.3} s of Dom0's clock, the read {read_s:.3} s of it): Dom0 {}, DomU {}",
        exit_growth(a, b, "dom0")?,
        exit_growth(a, b, "domu")?,
    ));
    notes.push(format!(
        "idle from b to c ({idle_s:.3} s): Dom0 {}, DomU {}: {idle_rate:.1} exits/s, so {idle_exits:.0} of a..b's {} for its {outside_s:.3} s outside the read; {read_exits:.0} for the read: {exits_per_req:.1} per request",
        exit_growth(b, c, "dom0")?,
        exit_growth(b, c, "domu")?,
        total_b - total_a,
    ));
    notes.push(format!(
        "per request, idle subtracted the same way: Dom0 {}; DomU {}",
        exits_per_request(&measured.snapshots, "dom0", idle_s, outside_s, domu.requests)?,
        exits_per_request(&measured.snapshots, "domu", idle_s, outside_s, domu.requests)?,
    ));
    if let (Ok(dom0_a), Ok(dom0_b), Ok(domu_a), Ok(domu_b)) = (
        a.get("dom0.cpu_time_ns"),
        b.get("dom0.cpu_time_ns"),
        a.get("domu.cpu_time_ns"),
        b.get("domu.cpu_time_ns"),
    ) {
        notes.push(format!(
            "CPU time from a to b: Dom0 {:.3} s, DomU {:.3} s",
            dom0_b.saturating_sub(dom0_a) as f64 / 1e9,
            domu_b.saturating_sub(domu_a) as f64 / 1e9
        ));
    }
    Ok(Figures {
        domu_mb_s,
        dom0_mb_s,
        ratio: domu_mb_s / dom0_mb_s,
        instr_per_req,
        exits_per_req,
        notes,
    })
}

fn split_blk_line(figures: &Figures) -> String {
    format!(
        "split-blk domu={:.2} dom0={:.2} ratio={:.4} instr_per_req={:.0} exits_per_req={:.1}",
        figures.domu_mb_s, figures.dom0_mb_s, figures.ratio, figures.instr_per_req, figures.exits_per_req
    )
}

/// The client DomU's transfer and pings (`domu: split-net bench result`).
#[derive(Debug, Clone, PartialEq)]
struct NetResult {
    /// busybox ping's `round-trip min/avg/max`, in ms of the client's clock.
    rtt_min_ms: f64,
    rtt_avg_ms: f64,
    rtt_max_ms: f64,
    /// Pings answered (all that were sent).
    pings: u64,
    /// The TCP payload of the measured transfer.
    bytes: u64,
    /// Its nc, from start to exit (the server closed), on the client's clock.
    ns: u64,
    /// The client NIC's packets sent and received meanwhile, and bytes sent
    /// (frames with their headers).
    tx_packets: u64,
    rx_packets: u64,
    tx_bytes: u64,
    tsc_hz: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct NetMeasurement {
    result: NetResult,
    /// A (before "go"), B (after the transfer), C (after the idle span).
    snapshots: [Snapshot; 3],
}

fn net_measurement(log: &str) -> Result<NetMeasurement, String> {
    if let Some(line) = log
        .lines()
        .find(|line| serial::kernel_time(line, NET_FAILED_MARKER).is_some())
    {
        let why = &line[line.find(NET_FAILED_MARKER).unwrap_or(0)..];
        return Err(format!("the network part failed: {why}"));
    }
    let result = marked_line(log, NET_RESULT_MARKER)
        .ok_or_else(|| format!("no {NET_RESULT_MARKER:?} line from the client DomU (as Dom0 shows its console)"))?;
    let what = "the client DomU's result line";
    let result = NetResult {
        rtt_min_ms: result.decimal("rtt_min_ms", what)?,
        rtt_avg_ms: result.decimal("rtt_avg_ms", what)?,
        rtt_max_ms: result.decimal("rtt_max_ms", what)?,
        pings: result.number("pings", what)?,
        bytes: result.number("bytes", what)?,
        ns: result.number("ns", what)?,
        tx_packets: result.number("tx_packets", what)?,
        rx_packets: result.number("rx_packets", what)?,
        tx_bytes: result.number("tx_bytes", what)?,
        tsc_hz: result.number("tsc_hz", what)?,
    };
    let snapshot = |name: &str| -> Result<Snapshot, String> {
        let marker = format!("{NET_SNAPSHOT_MARKER} {name} ");
        let line = marked_line(log, &marker).ok_or_else(|| format!("no {:?} line from Dom0", marker.trim_end()))?;
        line.snapshot(&format!("net snapshot {name}"), &NET_DOMAINS)
    };
    if marked_line(log, NET_DONE_MARKER).is_none() {
        return Err(format!("no {NET_DONE_MARKER:?} line from Dom0"));
    }
    let [a, b, c] = SNAPSHOTS;
    Ok(NetMeasurement {
        result,
        snapshots: [snapshot(a)?, snapshot(b)?, snapshot(c)?],
    })
}

/// What `bench io` prints about the network, and how it got there.
#[derive(Debug, Clone, PartialEq)]
struct NetFigures {
    /// The pings' average round trip, in µs of the client's clock.
    rtt_us: f64,
    /// Megabits (10^6 bits) of TCP payload per second of the client's clock.
    mbps: f64,
    /// VM exits of all three domains during the transfer per packet the
    /// client's NIC sent or received.
    exits_per_packet: f64,
    notes: Vec<String>,
}

fn net_figures(measured: &NetMeasurement, dom0_tsc_hz: u64, keel_hz: Option<f64>) -> Result<NetFigures, String> {
    let result = &measured.result;
    let [a, b, c] = &measured.snapshots;
    let mut notes = Vec::new();
    let dom0_hz = rate(dom0_tsc_hz, keel_hz, "Dom0", &mut notes)?;
    let client_hz = rate(result.tsc_hz, keel_hz, "the client DomU", &mut notes)?;
    let packets = result.tx_packets + result.rx_packets;
    if result.ns == 0 || result.bytes == 0 || packets == 0 || result.pings == 0 {
        return Err(format!(
            "the client's transfer of {} bytes took {} ns and {packets} packets, and {} pings were answered",
            result.bytes, result.ns, result.pings
        ));
    }
    if result.tx_bytes < result.bytes {
        return Err(format!(
            "the client's NIC sent {} bytes during the transfer, fewer than its {} bytes of payload",
            result.tx_bytes, result.bytes
        ));
    }
    if !(0.0 < result.rtt_min_ms && result.rtt_min_ms <= result.rtt_avg_ms && result.rtt_avg_ms <= result.rtt_max_ms) {
        return Err(format!(
            "the pings' round trips are not min <= avg <= max: {}/{}/{} ms",
            result.rtt_min_ms, result.rtt_avg_ms, result.rtt_max_ms
        ));
    }
    let rtt_us = result.rtt_avg_ms * 1e3;
    let mbps = result.bytes as f64 * 8.0 / result.ns as f64 * 1e3;
    let transfer_s = result.ns as f64 / 1e9;
    notes.push(format!(
        "the client sent {} bytes in {transfer_s:.3} s of its clock: {mbps:.3} Mbit/s; its NIC sent {} packets ({} bytes, {:.0} payload bytes a packet) and received {}; {:.0} TSC ticks per packet",
        result.bytes,
        result.tx_packets,
        result.tx_bytes,
        result.bytes as f64 / result.tx_packets.max(1) as f64,
        result.rx_packets,
        transfer_s * client_hz / packets as f64,
    ));
    notes.push(format!(
        "{} pings from the client to the server: round trip min/avg/max {:.3}/{:.3}/{:.3} ms",
        result.pings, result.rtt_min_ms, result.rtt_avg_ms, result.rtt_max_ms
    ));

    // Exits: as for the read, A..B holds the transfer and B..C is idle.
    if !(a.ns < b.ns && b.ns < c.ns) {
        return Err(format!(
            "Dom0's net snapshots are out of order: a at {} ns, b at {} ns, c at {} ns",
            a.ns, b.ns, c.ns
        ));
    }
    for domain in NET_DOMAINS {
        let key = format!("{domain}.exits");
        if !(a.get(&key)? <= b.get(&key)? && b.get(&key)? <= c.get(&key)?) {
            return Err(format!(
                "{key} went down between net snapshots ({}, {}, {}): a domain restarted",
                a.get(&key)?,
                b.get(&key)?,
                c.get(&key)?
            ));
        }
    }
    let (total_a, total_b, total_c) = (
        domains_exits(a, &NET_DOMAINS)?,
        domains_exits(b, &NET_DOMAINS)?,
        domains_exits(c, &NET_DOMAINS)?,
    );
    let window_s = (b.ns - a.ns) as f64 / 1e9;
    let idle_s = (c.ns - b.ns) as f64 / 1e9;
    // The transfer on Dom0's clock.
    let on_dom0_s = transfer_s * client_hz / dom0_hz;
    if on_dom0_s > window_s {
        return Err(format!(
            "the client's transfer ({on_dom0_s:.3} s) is longer than the window between net snapshots a and b ({window_s:.3} s)"
        ));
    }
    let idle_rate = (total_c - total_b) as f64 / idle_s;
    let outside_s = window_s - on_dom0_s;
    let idle_exits = idle_rate * outside_s;
    let transfer_exits = (total_b - total_a) as f64 - idle_exits;
    let exits_per_packet = transfer_exits / packets as f64;
    notes.push(format!(
        "exits from a to b ({window_s:.3} s of Dom0's clock, the transfer {on_dom0_s:.3} s of it): Dom0 {}, server {}, client {}",
        exit_growth(a, b, "dom0")?,
        exit_growth(a, b, "server")?,
        exit_growth(a, b, "client")?,
    ));
    notes.push(format!(
        "idle from b to c ({idle_s:.3} s): Dom0 {}, server {}, client {}: {idle_rate:.1} exits/s, so {idle_exits:.0} of a..b's {} for its {outside_s:.3} s outside the transfer; {transfer_exits:.0} for the transfer: {exits_per_packet:.1} per packet",
        exit_growth(b, c, "dom0")?,
        exit_growth(b, c, "server")?,
        exit_growth(b, c, "client")?,
        total_b - total_a,
    ));
    notes.push(format!(
        "per packet, idle subtracted the same way: Dom0 {}; server {}; client {}",
        exits_per_request(&measured.snapshots, "dom0", idle_s, outside_s, packets)?,
        exits_per_request(&measured.snapshots, "server", idle_s, outside_s, packets)?,
        exits_per_request(&measured.snapshots, "client", idle_s, outside_s, packets)?,
    ));
    let cpu = |domain: &str| -> Option<f64> {
        let key = format!("{domain}.cpu_time_ns");
        Some(b.get(&key).ok()?.saturating_sub(a.get(&key).ok()?) as f64 / 1e9)
    };
    if let (Some(dom0), Some(server), Some(client)) = (cpu("dom0"), cpu("server"), cpu("client")) {
        notes.push(format!(
            "CPU time from a to b: Dom0 {dom0:.3} s, server {server:.3} s, client {client:.3} s"
        ));
    }
    Ok(NetFigures {
        rtt_us,
        mbps,
        exits_per_packet,
        notes,
    })
}

fn split_net_line(figures: &NetFigures) -> String {
    format!(
        "split-net rtt_us={:.0} mbps={:.3} exits_per_packet={:.1}",
        figures.rtt_us, figures.mbps, figures.exits_per_packet
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dom0's /init and the two scripts.
    const INIT_SCRIPT: &str = include_str!("../../../guest/init.sh");
    const DOM0_SCRIPT: &str = include_str!("../../../guest/bench-io.sh");
    const DOMU_SCRIPT: &str = include_str!("../../../guest/domu-bench-io.sh");

    /// The shape of a `keel.test=bench-io` run's log (figures invented, in
    /// round numbers).
    const LOG: &str = "\
keel: TSC: 10.000 MHz
[    0.000000] tsc: Detected 10.000 MHz processor
[   76.000000] dom0: userspace started
[   80.000000] dom0: bench-io native bytes=67108864 passes=4 ns=2400000000 startup_ns=100000000 tsc_hz=10000000
dom0# keel create /etc/keel/domu-bench-io.toml
keel: domain 1 (domu-bench-io): created, 96 MiB
domu-bench-io: domu: bench-io ready warmup_bytes=2097152 warmup_ns=3000000000 startup_ns=100000000 tsc_hz=10000000
[  300.000000] dom0: bench-io snapshot a ns=200000000000 dom0.cpu_time_ns=1 dom0.exits=100000 dom0.exits_io=50000 dom0.exits_mmio=1000 dom0.exits_msr=2000 dom0.exits_halt=3000 dom0.exits_timer=4000 domu.cpu_time_ns=1 domu.exits=80000 domu.exits_io=40000 domu.exits_mmio=10 domu.exits_msr=20 domu.exits_halt=30 domu.exits_timer=40
[  310.000000] dom0: bench-io snapshot b ns=240000000000 dom0.cpu_time_ns=10000000001 dom0.exits=104000 dom0.exits_io=52000 dom0.exits_mmio=1500 dom0.exits_msr=2400 dom0.exits_halt=3300 dom0.exits_timer=4200 domu.cpu_time_ns=20000000001 domu.exits=82000 domu.exits_io=40256 domu.exits_mmio=10 domu.exits_msr=520 domu.exits_halt=330 domu.exits_timer=340
[  320.000000] dom0: bench-io snapshot c ns=250000000000 dom0.exits=104150 domu.exits=82050
--- domu-bench-io's bench-io lines ---
[   95.000000] domu: bench-io ready warmup_bytes=2097152 warmup_ns=3000000000 startup_ns=100000000 tsc_hz=10000000
[  120.000000] domu: bench-io go
[  150.000000] domu: bench-io result bytes=16777216 ns=32100000000 requests=256 sectors=32768 startup_ns=100000000 tsc_hz=10000000
---
[  330.000000] dom0: bench-io done
";

    fn measured() -> Measurement {
        measurement(LOG).unwrap()
    }

    #[test]
    fn the_lines_are_read() {
        let measured = measured();
        assert_eq!(
            measured.native,
            NativeRead {
                bytes: 67_108_864,
                passes: 4,
                ns: 2_400_000_000,
                startup_ns: 100_000_000,
                tsc_hz: 10_000_000,
            }
        );
        assert_eq!(
            measured.domu,
            DomuRead {
                bytes: 16_777_216,
                ns: 32_100_000_000,
                requests: 256,
                sectors: 32_768,
                startup_ns: 100_000_000,
                tsc_hz: 10_000_000,
            }
        );
        let [a, b, c] = &measured.snapshots;
        assert_eq!(a.ns, 200_000_000_000);
        assert_eq!(a.get("dom0.exits_io"), Ok(50_000));
        assert_eq!(b.get("domu.exits"), Ok(82_000));
        assert_eq!(c.get("dom0.exits"), Ok(104_150));
        assert!(c.get("dom0.exits_io").is_err());
        assert_eq!(a.counters.len(), 14);
    }

    #[test]
    fn the_figures_and_the_line() {
        let figures = figures(&measured(), Some(10e6)).unwrap();
        // Dom0: 64 MiB in 2.4 s less 4 × 0.1 s of starting dd.
        assert!((figures.dom0_mb_s - 67_108_864.0 / 2.0 / 1e6).abs() < 1e-9);
        // DomU: 16 MiB in 32.1 s less 0.1 s.
        assert!((figures.domu_mb_s - 16_777_216.0 / 32.0 / 1e6).abs() < 1e-9);
        assert!((figures.ratio - 1.0 / 64.0).abs() < 1e-12);
        // 32 s at 10 MHz over 256 requests.
        assert!((figures.instr_per_req - 1_250_000.0).abs() < 1e-6);
        // a..b: 40 s with 6000 exits, the read 32.1 s of it; b..c: 10 s
        // idle with 200 exits, 20/s: 7.9 s × 20 = 158 subtracted.
        let expected = (6000.0 - 20.0 * (40.0 - 32.1)) / 256.0;
        assert!(
            (figures.exits_per_req - expected).abs() < 1e-9,
            "{}",
            figures.exits_per_req
        );
        assert_eq!(
            split_blk_line(&figures),
            "split-blk domu=0.52 dom0=33.55 ratio=0.0156 instr_per_req=1250000 exits_per_req=22.8"
        );
        let notes = figures.notes.join("\n");
        for needed in [
            "Dom0 +4000 (io +2000, mmio +500, msr +400, halt +300, timer +200), DomU +2000 (io +256, mmio +0, msr +500, halt +300, timer +300)",
            "idle from b to c (10.000 s): Dom0 +150 (), DomU +50 (): 20.0 exits/s, so 158 of a..b's 6000",
            "5842 for the read: 22.8 per request",
            "CPU time from a to b: Dom0 10.000 s, DomU 20.000 s",
            // Snapshot c has no kinds: only the totals are split.
            "per request, idle subtracted the same way: Dom0 total 15.2; DomU total 7.7",
            "in 256 requests of 65536 bytes",
        ] {
            assert!(notes.contains(needed), "{needed}\n{notes}");
        }
        assert!(!notes.contains("note:"), "{notes}");
    }

    #[test]
    fn exits_per_request_splits_by_kind() {
        let snapshot = |ns: u64, counts: &[(&str, u64)]| Snapshot {
            ns,
            counters: counts.iter().map(|(key, value)| (key.to_string(), *value)).collect(),
        };
        let snapshots = [
            snapshot(
                0,
                &[("domu.exits", 1000), ("domu.exits_io", 100), ("domu.exits_halt", 0)],
            ),
            snapshot(
                0,
                &[("domu.exits", 1700), ("domu.exits_io", 356), ("domu.exits_halt", 300)],
            ),
            snapshot(
                0,
                &[("domu.exits", 1800), ("domu.exits_io", 356), ("domu.exits_halt", 400)],
            ),
        ];
        // Idle: 100 exits in 10 s, all halts; 5 s of a..b outside the read.
        assert_eq!(
            exits_per_request(&snapshots, "domu", 10.0, 5.0, 100).unwrap(),
            "io 2.6, halt 2.5, other 1.4 (total 6.5)"
        );
        assert!(exits_per_request(&snapshots, "dom0", 10.0, 5.0, 100).is_err());
    }

    #[test]
    fn each_guest_converts_with_its_own_rate() {
        // A DomU whose clock runs at 20 MHz: its 32.1 s are 642 M ticks,
        // 64.2 s of Dom0's 10 MHz clock, longer than a..b.
        let mut measured = measured();
        measured.domu.tsc_hz = 20_000_000;
        let error = figures(&measured, Some(10e6)).unwrap_err();
        assert!(error.contains("longer than the window"), "{error}");
        measured.domu.ns /= 2;
        measured.domu.startup_ns /= 2;
        let figures = figures(&measured, Some(10e6)).unwrap();
        assert!((figures.instr_per_req - 1_250_000.0).abs() < 1e-6);
        assert!(figures
            .notes
            .iter()
            .any(|note| note.starts_with("note: the DomU's clock runs at 20.000 MHz")));
    }

    #[test]
    fn keels_rate_stands_in_for_a_guest_without_one() {
        let mut measured = measured();
        measured.native.tsc_hz = 0;
        measured.domu.tsc_hz = 0;
        let with_keel = figures(&measured, Some(10e6)).unwrap();
        assert!((with_keel.instr_per_req - 1_250_000.0).abs() < 1e-6);
        assert!(with_keel.notes[0].contains("Dom0 reported no TSC rate; using Keel's (10.000 MHz)"));
        assert!(figures(&measured, None).unwrap_err().contains("no TSC rate"));
    }

    #[test]
    fn impossible_figures_are_refused() {
        let refuse = |change: fn(&mut Measurement), complaint: &str| {
            let mut measured = measured();
            change(&mut measured);
            let error = figures(&measured, Some(10e6)).unwrap_err();
            assert!(error.contains(complaint), "{complaint}: {error}");
        };
        refuse(|m| m.native.startup_ns = 600_000_000, "no more than starting dd");
        refuse(|m| m.domu.requests = 0, "0 requests");
        refuse(|m| m.snapshots[1].ns = m.snapshots[0].ns, "out of order");
        refuse(
            |m| _ = m.snapshots[2].counters.insert("domu.exits".into(), 1),
            "domu.exits went down",
        );
    }

    #[test]
    fn every_line_must_be_there_and_said_by_a_kernel() {
        let without = |text: &str| -> String {
            LOG.lines()
                .filter(|line| !line.contains(text))
                .map(|line| format!("{line}\n"))
                .collect()
        };
        for (missing, complaint) in [
            ("bench-io native", "dom0: bench-io native"),
            ("bench-io result", "from the DomU"),
            ("snapshot a", "dom0: bench-io snapshot a"),
            ("snapshot b", "dom0: bench-io snapshot b"),
            ("snapshot c", "dom0: bench-io snapshot c"),
        ] {
            let error = measurement(&without(missing)).unwrap_err();
            assert!(error.contains(complaint), "{missing}: {error}");
        }
        // A quote of the result (no timestamp right before it) is not the DomU's line.
        let quoted = LOG.replace(
            "[  150.000000] domu: bench-io result",
            "dom0: waiting for domu: bench-io result",
        );
        assert!(measurement(&quoted).is_err());
        // Fields that are missing or no numbers.
        let bad = LOG.replace("requests=256", "requests=many");
        assert!(measurement(&bad).unwrap_err().contains("requests=\"many\""));
        let bad = LOG.replace(" tsc_hz=10000000\ndom0#", "\ndom0#");
        assert!(measurement(&bad)
            .unwrap_err()
            .contains("no tsc_hz= in Dom0's native line"));
        let bad = LOG.replace(" domu.exits=82050", "");
        assert!(measurement(&bad).unwrap_err().contains("no domu.exits= in snapshot c"));
    }

    /// The network part of a run's log (figures invented, in round
    /// numbers), after the split-blk part.
    const NET_LOG: &str = "\
dom0# keel create /etc/keel/domu-bench-net-a.toml
dom0# keel create /etc/keel/domu-bench-net-b.toml
domu-bench-net-b: domu: split-net bench ready warmup_bytes=524288 warmup_ns=5000000000 bytes=4194304 tsc_hz=10000000
[  500.000000] dom0: bench-io net snapshot a ns=500000000000 dom0.cpu_time_ns=100000000000 dom0.exits=1000000 dom0.exits_io=400000 server.cpu_time_ns=20000000000 server.exits=300000 server.exits_io=100000 client.cpu_time_ns=30000000000 client.exits=310000 client.exits_io=100000
[  501.000000] dom0: bench-io net snapshot b ns=550000000000 dom0.cpu_time_ns=130000000000 dom0.exits=1200000 dom0.exits_io=480000 server.cpu_time_ns=28000000000 server.exits=350000 server.exits_io=104400 client.cpu_time_ns=40000000000 client.exits=372000 client.exits_io=104400
[  502.000000] dom0: bench-io net snapshot c ns=560000000000 dom0.exits=1201000 dom0.exits_io=480000 server.exits=350500 server.exits_io=104400 client.exits=372500 client.exits_io=104400
--- domu-bench-net-b's split-net lines ---
[  300.000000] domu: split-net bench ready warmup_bytes=524288 warmup_ns=5000000000 bytes=4194304 tsc_hz=10000000
[  310.000000] domu: split-net bench go
[  352.000000] domu: split-net bench sent bytes=4194304 ns=40000000000 tx_packets=2900 rx_packets=1500 tx_bytes=4391000 tries=1
[  362.000000] domu: split-net bench pinging 10.0.0.2 20 times every 0.2 s
[  369.000000] domu: split-net bench result rtt_min_ms=1.000 rtt_avg_ms=2.500 rtt_max_ms=4.000 pings=20 bytes=4194304 ns=40000000000 tx_packets=2900 rx_packets=1500 tx_bytes=4391000 tsc_hz=10000000
[  369.100000] domu: split-net done
---
[  510.000000] dom0: bench-io net done
";

    fn net_measured() -> NetMeasurement {
        net_measurement(&format!("{LOG}{NET_LOG}")).unwrap()
    }

    #[test]
    fn the_net_lines_are_read() {
        let measured = net_measured();
        assert_eq!(
            measured.result,
            NetResult {
                rtt_min_ms: 1.0,
                rtt_avg_ms: 2.5,
                rtt_max_ms: 4.0,
                pings: 20,
                bytes: 4_194_304,
                ns: 40_000_000_000,
                tx_packets: 2900,
                rx_packets: 1500,
                tx_bytes: 4_391_000,
                tsc_hz: 10_000_000,
            }
        );
        let [a, b, c] = &measured.snapshots;
        assert_eq!(a.ns, 500_000_000_000);
        assert_eq!(a.get("server.exits"), Ok(300_000));
        assert_eq!(b.get("client.exits_io"), Ok(104_400));
        assert_eq!(c.get("dom0.exits"), Ok(1_201_000));
        assert_eq!(a.counters.len(), 9);
        // The split-blk lines are not the network's, nor the other way round.
        let both = format!("{LOG}{NET_LOG}");
        assert_eq!(measurement(&both).unwrap(), measured_blk());
        assert!(net_measurement(LOG).unwrap_err().contains(NET_RESULT_MARKER));
    }

    fn measured_blk() -> Measurement {
        measurement(LOG).unwrap()
    }

    #[test]
    fn the_net_figures_and_the_line() {
        let figures = net_figures(&net_measured(), 10_000_000, Some(10e6)).unwrap();
        assert!((figures.rtt_us - 2500.0).abs() < 1e-9);
        // 4 MiB in 40 s: 32 Mibit / 40 s.
        assert!((figures.mbps - 4_194_304.0 * 8.0 / 40.0 / 1e6).abs() < 1e-12);
        // a..b: 50 s with 312000 exits, the transfer 40 s of it; b..c: 10 s
        // idle with 2000 exits, 200/s: 10 s × 200 = 2000 subtracted; 4400
        // packets.
        let expected = (312_000.0 - 2000.0) / 4400.0;
        assert!((figures.exits_per_packet - expected).abs() < 1e-9);
        assert_eq!(
            split_net_line(&figures),
            "split-net rtt_us=2500 mbps=0.839 exits_per_packet=70.5"
        );
        let notes = figures.notes.join("\n");
        for needed in [
            "the client sent 4194304 bytes in 40.000 s of its clock: 0.839 Mbit/s; its NIC sent 2900 packets (4391000 bytes, 1446 payload bytes a packet) and received 1500; 90909 TSC ticks per packet",
            "20 pings from the client to the server: round trip min/avg/max 1.000/2.500/4.000 ms",
            "Dom0 +200000 (io +80000), server +50000 (io +4400), client +62000 (io +4400)",
            "200.0 exits/s, so 2000 of a..b's 312000 for its 10.000 s outside the transfer; 310000 for the transfer: 70.5 per packet",
            "per packet, idle subtracted the same way: Dom0 io 18.2, other 27.0 (total 45.2); server io 1.0, other 10.2 (total 11.2); client io 1.0, other 13.0 (total 14.0)",
            "CPU time from a to b: Dom0 30.000 s, server 8.000 s, client 10.000 s",
        ] {
            assert!(notes.contains(needed), "{needed}\n{notes}");
        }
        assert!(!notes.contains("note:"), "{notes}");
    }

    #[test]
    fn impossible_net_figures_are_refused() {
        let refuse = |change: fn(&mut NetMeasurement), complaint: &str| {
            let mut measured = net_measured();
            change(&mut measured);
            let error = net_figures(&measured, 10_000_000, Some(10e6)).unwrap_err();
            assert!(error.contains(complaint), "{complaint}: {error}");
        };
        refuse(|m| m.result.ns = 0, "took 0 ns");
        refuse(|m| m.result.tx_bytes = 1000, "fewer than its 4194304 bytes of payload");
        refuse(|m| m.result.rtt_min_ms = 3.0, "not min <= avg <= max");
        refuse(|m| m.snapshots[1].ns = m.snapshots[0].ns, "out of order");
        refuse(
            |m| _ = m.snapshots[2].counters.insert("server.exits".into(), 1),
            "server.exits went down",
        );
        // A client clock at 20 MHz: its 40 s are 80 s of Dom0's, longer than a..b.
        refuse(|m| m.result.tsc_hz = 20_000_000, "longer than the window");
        let measured = net_measured();
        assert!(net_figures(&measured, 0, None).unwrap_err().contains("no TSC rate"));
    }

    #[test]
    fn every_net_line_must_be_there_and_a_net_failure_says_why() {
        let log = format!("{LOG}{NET_LOG}");
        let without = |text: &str| -> String {
            log.lines()
                .filter(|line| !line.contains(text))
                .map(|line| format!("{line}\n"))
                .collect()
        };
        for (missing, complaint) in [
            ("bench result", "from the client DomU"),
            ("net snapshot a", "dom0: bench-io net snapshot a"),
            ("net snapshot b", "dom0: bench-io net snapshot b"),
            ("net snapshot c", "dom0: bench-io net snapshot c"),
            ("bench-io net done", "dom0: bench-io net done"),
        ] {
            let error = net_measurement(&without(missing)).unwrap_err();
            assert!(error.contains(complaint), "{missing}: {error}");
        }
        let bad = log.replace("rtt_avg_ms=2.500", "rtt_avg_ms=soon");
        assert!(net_measurement(&bad).unwrap_err().contains("rtt_avg_ms=\"soon\""));
        let bad = log.replace(" client.exits=372500", "");
        assert!(net_measurement(&bad)
            .unwrap_err()
            .contains("no client.exits= in net snapshot c"));
        // Dom0's own verdict comes first, whatever else is there.
        let failed = format!(
            "{log}[  520.000000] dom0: bench-io net failed: domu-bench-net-b: domu: split-net FAILED: bench: no answer\n"
        );
        let error = net_measurement(&failed).unwrap_err();
        assert!(
            error.contains("dom0: bench-io net failed: domu-bench-net-b: domu: split-net FAILED: bench: no answer"),
            "{error}"
        );
        // It is not a failure marker of the boot (the split-blk line still comes).
        assert!(!NET_FAILED_MARKER.contains(FAILED_MARKER));
    }

    #[test]
    fn init_runs_the_bench_and_the_scripts_say_what_io_rs_reads() {
        let branch = format!(
            "if grep -qwF '{BENCH_IO_FLAG}' /proc/cmdline; then\n    /usr/lib/keel/bench-io.sh\n    poweroff -f\nfi\n"
        );
        assert!(INIT_SCRIPT.contains(&branch));
        assert_eq!(linux_cmdline(), "console=ttyS0 cryptomgr.notests keel.test=bench-io");
        // Dom0's lines, with the fields measurement() reads.
        for needed in [
            format!("say \"{FAILED_MARKER}: $*\""),
            format!("say \"{DONE_MARKER}\""),
            format!("say \"{NATIVE_MARKER} bytes=$((IMAGE_BYTES * NATIVE_PASSES)) passes=$NATIVE_PASSES ns=$((stamp_ns - start)) startup_ns=$startup_ns tsc_hz=$(tsc_hz)\""),
            format!("say \"{SNAPSHOT_MARKER} $snapshot ns=$snapshot_ns $line\""),
            format!("for snapshot in {}; do", SNAPSHOTS.join(" ")),
        ] {
            assert!(DOM0_SCRIPT.contains(&needed), "{needed}");
        }
        // The counters come from keel list --json's field names.
        assert!(DOM0_SCRIPT.contains("/\"(cpu_time_ns|exits[a-z_]*)\"[[:space:]]*:/"));
        // Dom0 as "dom0", the DomU as "domu": the prefixes read here.
        assert!(DOM0_SCRIPT.contains("awk -v labels=\"Domain-0=dom0 $*\""));
        assert!(DOM0_SCRIPT.contains("who = (name in label) ? label[name] : \"\""));
        assert!(DOM0_SCRIPT.contains("line=$(counters \"$snapshot_json\" \"$BENCH_DOMU=domu\")"));
        // The DomU's lines.
        for needed in [
            format!("say \"{RESULT_MARKER} bytes=$((blocks * BENCH_IO_BLOCK)) ns=$ns requests=$requests sectors=$sectors startup_ns=$startup_ns tsc_hz=$tsc_hz\""),
            format!("say \"{DOMU_FAILED_MARKER}: $*\""),
            "iflag=direct".to_string(),
            "< /proc/timer_list".to_string(),
            "< \"/sys/block/$BENCH_IO_DISK/stat\"".to_string(),
        ] {
            assert!(DOMU_SCRIPT.contains(&needed), "{needed}");
        }
        // Dom0 shows the DomU's lines as its console has them (with the
        // DomU's timestamps), and sleeps rather than polls through the read.
        assert!(DOM0_SCRIPT.contains("console_now \"$BENCH_DOMU\" | grep -F 'domu: bench-io'"));
        let go = DOM0_SCRIPT.find("printf 'go\\n'").unwrap();
        let sleep = DOM0_SCRIPT.find("sleep \"$sleep_seconds\"").unwrap();
        let b = DOM0_SCRIPT.find("b_json=$(keel list --json)").unwrap();
        assert!(DOM0_SCRIPT.find("a_json=$(keel list --json)").unwrap() < go);
        assert!(go < sleep && sleep < b);
        assert!(b < DOM0_SCRIPT.find("c_json=$(keel list --json)").unwrap());
    }

    #[test]
    fn the_scripts_say_the_net_lines_io_rs_reads() {
        const DOMU_INIT: &str = include_str!("../../../guest/domu-init.sh");
        for needed in [
            format!("say \"{NET_FAILED_MARKER}: $*\""),
            format!("say \"{NET_DONE_MARKER}\""),
            format!("say \"{NET_SNAPSHOT_MARKER} $snapshot ns=$snapshot_ns $line\""),
            "line=$(counters \"$snapshot_json\" \"$NET_SERVER_DOMU=server\" \"$NET_CLIENT_DOMU=client\")".to_string(),
            format!("for who in {}; do", NET_DOMAINS.join(" ")),
        ] {
            assert!(DOM0_SCRIPT.contains(&needed), "{needed}");
        }
        assert!(DOMU_INIT.contains(&format!(
            "say \"{NET_RESULT_MARKER} rtt_min_ms=$rtt_min rtt_avg_ms=$rtt_avg rtt_max_ms=$rtt_max pings=$answered bytes=$bytes ns=$ns tx_packets=$tx_packets rx_packets=$rx_packets tx_bytes=$tx_bytes tsc_hz=$tsc_hz\""
        )));
        // The transfer and its packets on the client's clock and NIC,
        // without sums; the server discards what it receives.
        for needed in [
            "< /proc/timer_list",
            "statistics/tx_packets\"",
            "statistics/rx_packets\"",
            "dd if=/dev/zero of=\"$SPLIT_NET_BENCH_SEND\"",
            "<> \"$SPLIT_NET_HOLD\" > /dev/null",
            "ping -c \"$SPLIT_NET_BENCH_PINGS\" -i \"$SPLIT_NET_BENCH_INTERVAL\"",
        ] {
            assert!(DOMU_INIT.contains(needed), "{needed}");
        }
        // Dom0: A, go, a sleep, B, the idle span, C, then the pings; the
        // network part after the split-blk part, the DomUs destroyed after.
        let net = DOM0_SCRIPT.find("\nbench_net() {").unwrap();
        let at = |text: &str| net + DOM0_SCRIPT[net..].find(text).unwrap_or_else(|| panic!("{text}"));
        let a = at("a_json=$(keel list --json)");
        let go = at("printf 'go\\n' | keel console \"$NET_CLIENT_DOMU\"");
        let sleep = at("sleep \"$sleep_seconds\"");
        let b = at("b_json=$(keel list --json)");
        let c = at("c_json=$(keel list --json)");
        let rtt = at("printf 'rtt\\n' | keel console \"$NET_CLIENT_DOMU\"");
        assert!(a < go && go < sleep && sleep < b && b < c && c < rtt);
        let order = [
            "\nbench\nbench_net\n",
            "destroy_and_wait \"$domu\"",
            "say \"dom0: bench-io net done\"",
            "say \"dom0: bench-io done\"",
        ];
        let positions: Vec<usize> = order.iter().map(|text| DOM0_SCRIPT.rfind(text).unwrap()).collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{positions:?}");
    }
}

//! `bench io`: sequential reads of one image file from a DomU through the
//! split block driver (its virtio-blk frontend, Keel's transport and
//! notifications, Dom0's backend process; `docs/virtio.md`) against Dom0
//! reading the same file itself, with the instructions and VM exits each
//! request costs. `docs/testing.md` says exactly what each figure counts.
//!
//! One Bochs boot of Dom0 with `keel.test=bench-io`: its /init runs
//! `/usr/lib/keel/bench-io.sh` (`xtask/guest/bench-io.sh`), which reads the
//! file natively, creates `domu-bench-io` (`xtask/guest/domu-bench-io.sh`
//! in the DomU) and takes three snapshots of `keel list --json` around the
//! DomU's read and an idle span after it. Every figure comes from lines the
//! guests print (through their kernel logs, so whole), with times on the
//! guests' own clocks, which run on the TSC: in Bochs, emulated
//! instructions, so the figures repeat from run to run. The boot has a
//! time-out and the emulator is stopped however it ends.

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
/// Dom0's boot, the DomU's boot and its read of 16 MiB, all in Bochs.
const TIMEOUT: Duration = Duration::from_secs(1200);

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
/// Printed after the split-blk line: there is no paravirtual network yet.
const SPLIT_NET_LINE: &str = "split-net: not measured (no virtio-net backend in Dom0 yet)";

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
    let figures = measurement(log)
        .and_then(|measured| figures(&measured, serial::keel_tsc_mhz(log).map(|mhz| mhz * 1e6)))
        .map_err(|error| failure(&outcome, RUN_NAME, &error))?;
    for note in &figures.notes {
        say!("{note}");
    }
    say!("one Bochs boot, {:.0} s wall", wall.as_secs_f64());
    println!("{}", split_blk_line(&figures));
    println!("{SPLIT_NET_LINE}");
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
        let value = self
            .fields
            .get(key)
            .ok_or_else(|| format!("no {key}= in {what} (line {})", self.index + 1))?;
        value
            .parse()
            .map_err(|_| format!("{key}={value:?} in {what} (line {}) is not a number", self.index + 1))
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
        let what = format!("snapshot {name}");
        let mut counters = BTreeMap::new();
        for key in line.fields.keys().filter(|key| key.contains('.')) {
            counters.insert(key.clone(), line.number(key, &what)?);
        }
        for domain in ["dom0", "domu"] {
            if !counters.contains_key(&format!("{domain}.exits")) {
                return Err(format!("no {domain}.exits= in {what} (line {})", line.index + 1));
            }
        }
        Ok(Snapshot {
            ns: line.number("ns", &what)?,
            counters,
        })
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

/// Domain `who`'s exits of each kind per request during the read: its
/// growth from `a` to `b` less its idle rate from `b` to `c` over the
/// `outside_s` seconds of a..b outside the read. `io 1.8, mmio 7.0, ...,
/// other 0.4 (total 20.1)`; kinds a snapshot lacks are left out.
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
    Ok(snapshot.get("dom0.exits")? + snapshot.get("domu.exits")?)
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

    #[test]
    fn the_split_net_line_says_why_there_is_no_figure() {
        assert_eq!(
            SPLIT_NET_LINE,
            "split-net: not measured (no virtio-net backend in Dom0 yet)"
        );
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
        assert!(DOM0_SCRIPT.contains("who = name == \"Domain-0\" ? \"dom0\" : (name == domu ? \"domu\" : \"\")"));
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
}

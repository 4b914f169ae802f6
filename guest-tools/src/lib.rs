//! `keel-stress`: load generators for Keel's DomU boot tests, run inside a
//! DomU's busybox initramfs (`xtask/guest/domu-init.sh`).
//!
//! ```text
//! keel-stress spin [SECONDS]                       busy loop (forever without SECONDS)
//! keel-stress wrmsr MSR COUNT|forever [VALUE]      write MSR in a tight loop
//! keel-stress hostile --seed N [--seconds S] [--rounds R] [--skip GROUPS]
//!                                                  a hostile guest (see [`hostile`])
//! keel-stress virtio-hostile PCI-ADDRESS [--wait S] [--seed N]
//!                                                  a misbehaving virtio-blk frontend
//!                                                  (see [`virtio_hostile`])
//! ```
//!
//! `wrmsr` writes through the `msr` driver (`/dev/cpu/0/msr`, module
//! `msr.ko`): one `pwrite` of 8 bytes at offset MSR per write, which the
//! guest kernel turns into one WRMSR instruction, and so one VM exit when
//! Keel intercepts that MSR. VALUE is a number (decimal or `0x` hex, default
//! 0) or `tsc+CYCLES`: the time stamp counter read just before each write
//! plus CYCLES, e.g. a TSC deadline (MSR 0x6e0) that keeps moving ahead of
//! the clock, so it never fires while the loop runs.
//!
//! Unlike a shell loop around busybox `dd`, which starts a process per
//! write, this issues writes back to back: the loop is the guest kernel's
//! system-call path and the exit itself.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

pub mod hostile;
pub mod intx;
pub mod virtio_hostile;

/// The `msr` driver's device for the first CPU.
pub const MSR_DEVICE: &str = "/dev/cpu/0/msr";

pub const USAGE: &str = "\
usage: keel-stress spin [SECONDS]
       keel-stress wrmsr MSR COUNT|forever [VALUE|tsc+CYCLES]
       keel-stress hostile --seed N [--seconds S] [--rounds R] [--skip GROUP,...]
       keel-stress virtio-hostile PCI-ADDRESS [--wait S] [--seed N]
       keel-stress intx PCI-ADDRESS [ROUNDS]
MSR, VALUE and CYCLES are decimal or 0x hex; wrmsr needs /dev/cpu/0/msr (insmod msr.ko).
hostile runs for S seconds (default 60) or R rounds, whichever ends first; its
GROUPs are cpuid, msr, port, mem, vmcall, tf, tf-string, ac, db and string; it needs
root, /dev/cpu/0/msr (msr.ko), iopl (else /dev/port) and /dev/mem.
virtio-hostile drives the virtio-blk function at PCI-ADDRESS (0000:00:05.0) from
user space with broken requests and rings, and checks that the device recovers;
it needs root, unbinds the function's driver and waits at most S seconds (default
10) for each answer; N seeds its ring rewrite.
intx checks an assigned e1000's level-triggered INTx through uio_pci_generic
(loaded beforehand; the function is bound to it): ROUNDS (default 10) causes,
each re-fired while still asserted, none once cleared.";

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Keep the CPU busy, forever or for this long.
    Spin { duration: Option<Duration> },
    /// Write `value` to `msr`, `count` times (forever when None).
    Wrmsr { msr: u32, count: Option<u64>, value: Value },
    /// Misbehave against the hypervisor (`hostile`).
    Hostile(hostile::Options),
    /// Misbehave against a virtio-blk backend (`virtio-hostile`).
    VirtioHostile(virtio_hostile::Options),
    /// Check an assigned e1000's INTx (`intx`).
    Intx(intx::Options),
}

/// What each write stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    Fixed(u64),
    /// The TSC read just before the write, plus this many cycles.
    TscPlus(u64),
}

impl Value {
    fn at(self, tsc: impl FnOnce() -> u64) -> u64 {
        match self {
            Value::Fixed(value) => value,
            Value::TscPlus(cycles) => tsc().wrapping_add(cycles),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Value::Fixed(value) => write!(f, "{value:#x}"),
            Value::TscPlus(cycles) => write!(f, "tsc+{cycles}"),
        }
    }
}

/// A usage error, said with [`USAGE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// A decimal or `0x` hexadecimal number.
pub fn number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The arguments after the program name.
pub fn parse(args: &[String]) -> Result<Mode, UsageError> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["spin"] => Ok(Mode::Spin { duration: None }),
        ["spin", seconds] => {
            let seconds = number(seconds)
                .filter(|&seconds| seconds > 0)
                .ok_or_else(|| usage(format!("spin: `{seconds}` is not a positive number of seconds")))?;
            Ok(Mode::Spin {
                duration: Some(Duration::from_secs(seconds)),
            })
        }
        ["wrmsr", msr, count, rest @ ..] if rest.len() <= 1 => {
            let msr = number(msr)
                .and_then(|msr| u32::try_from(msr).ok())
                .ok_or_else(|| usage(format!("wrmsr: `{msr}` is not an MSR number")))?;
            let count = match *count {
                "forever" => None,
                text => Some(
                    number(text)
                        .filter(|&count| count > 0)
                        .ok_or_else(|| usage(format!("wrmsr: `{text}` is neither a positive count nor `forever`")))?,
                ),
            };
            let value = match rest.first() {
                None => Value::Fixed(0),
                Some(text) => match text.strip_prefix("tsc+") {
                    Some(cycles) => Value::TscPlus(
                        number(cycles).ok_or_else(|| usage(format!("wrmsr: `{text}`: bad cycle count")))?,
                    ),
                    None => Value::Fixed(number(text).ok_or_else(|| usage(format!("wrmsr: `{text}` is not a value")))?),
                },
            };
            Ok(Mode::Wrmsr { msr, count, value })
        }
        ["hostile", rest @ ..] => hostile::Options::parse(rest).map(Mode::Hostile).map_err(usage),
        ["virtio-hostile", rest @ ..] => virtio_hostile::Options::parse(rest)
            .map(Mode::VirtioHostile)
            .map_err(usage),
        ["intx", rest @ ..] => intx::Options::parse(rest).map(Mode::Intx).map_err(usage),
        [] => Err(usage("no mode given")),
        [mode, ..] => Err(usage(format!("unknown mode or wrong arguments: `{mode}`"))),
    }
}

/// Busy-loops until `duration` has passed (forever when None); returns the
/// loop iterations.
pub fn spin(duration: Option<Duration>) -> u64 {
    let start = Instant::now();
    let mut iterations: u64 = 0;
    loop {
        // Check the clock only now and then: the loop is meant to burn
        // guest time, not to make system calls.
        for _ in 0..1_000_000 {
            iterations = std::hint::black_box(iterations.wrapping_add(1));
        }
        if duration.is_some_and(|duration| start.elapsed() >= duration) {
            return iterations;
        }
    }
}

/// Opens the `msr` device for writing.
pub fn open_msr_device(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).open(path)
}

/// Writes `value` to `msr` through `device` (an msr device, or any file
/// for tests), `count` times or forever; returns the writes made.
pub fn wrmsr_loop(device: &File, msr: u32, count: Option<u64>, value: Value) -> io::Result<u64> {
    let mut written: u64 = 0;
    while count.is_none_or(|count| written < count) {
        let bytes = value.at(read_tsc).to_le_bytes();
        let done = device.write_at(&bytes, u64::from(msr))?;
        if done != bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write: {done} of 8 bytes"),
            ));
        }
        written += 1;
    }
    Ok(written)
}

/// The time stamp counter (user space may read it: Linux leaves CR4.TSD clear).
fn read_tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no memory effects; it is always available on x86-64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn spin_runs_forever_or_for_seconds() {
        assert_eq!(parse(&args("spin")), Ok(Mode::Spin { duration: None }));
        assert_eq!(
            parse(&args("spin 3")),
            Ok(Mode::Spin {
                duration: Some(Duration::from_secs(3))
            })
        );
        assert!(parse(&args("spin 0")).is_err());
        assert!(parse(&args("spin x")).is_err());
        assert!(parse(&args("spin 1 2")).is_err());
    }

    #[test]
    fn wrmsr_takes_an_msr_a_count_and_a_value() {
        assert_eq!(
            parse(&args("wrmsr 0x6e0 forever tsc+100000")),
            Ok(Mode::Wrmsr {
                msr: 0x6e0,
                count: None,
                value: Value::TscPlus(100_000)
            })
        );
        assert_eq!(
            parse(&args("wrmsr 59 10")),
            Ok(Mode::Wrmsr {
                msr: 0x3b,
                count: Some(10),
                value: Value::Fixed(0)
            })
        );
        assert_eq!(
            parse(&args("wrmsr 0X3B 0x10 0xff")),
            Ok(Mode::Wrmsr {
                msr: 0x3b,
                count: Some(16),
                value: Value::Fixed(0xff)
            })
        );
        for bad in [
            "wrmsr",
            "wrmsr 0x6e0",
            "wrmsr 0x100000000 1",
            "wrmsr 0x6e0 0",
            "wrmsr 0x6e0 often",
            "wrmsr 0x6e0 1 tsc+x",
            "wrmsr 0x6e0 1 zero",
            "wrmsr 0x6e0 1 2 3",
            "",
            "devmem",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostile_takes_a_seed_and_limits() {
        assert_eq!(
            parse(&args("hostile --seed 3 --rounds 2")),
            Ok(Mode::Hostile(hostile::Options {
                seed: 3,
                duration: None,
                rounds: Some(2),
                skip: hostile::Groups::none(),
            }))
        );
        assert!(parse(&args("hostile")).is_err());
        assert!(parse(&args("hostile --seed 1 --skip nothing")).is_err());
    }

    #[test]
    fn virtio_hostile_takes_a_pci_address() {
        let options = |device: &str, wait: u64, seed: u64| {
            Ok(Mode::VirtioHostile(virtio_hostile::Options {
                device: device.to_string(),
                wait: Duration::from_secs(wait),
                seed,
            }))
        };
        assert_eq!(
            parse(&args("virtio-hostile 0000:00:05.0")),
            options("0000:00:05.0", 10, 1)
        );
        assert_eq!(parse(&args("virtio-hostile 00:1F.7")), options("0000:00:1f.7", 10, 1));
        assert_eq!(
            parse(&args("virtio-hostile --wait 60 0000:00:04.0 --seed 0x10")),
            options("0000:00:04.0", 60, 16)
        );
        for bad in [
            "virtio-hostile",
            "virtio-hostile 0000:00:05",
            "virtio-hostile 0000:00:20.0",
            "virtio-hostile 0000:00:05.8",
            "virtio-hostile 0:00:05.0",
            "virtio-hostile 0000:00:05.0 0000:00:06.0",
            "virtio-hostile 0000:00:05.0 --wait 0",
            "virtio-hostile 0000:00:05.0 --wait",
            "virtio-hostile 0000:00:05.0 --rounds 3",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tsc_relative_value_moves_with_the_clock() {
        assert_eq!(Value::Fixed(7).at(|| unreachable!()), 7);
        assert_eq!(Value::TscPlus(10).at(|| 5), 15);
        assert_eq!(Value::TscPlus(10).at(|| u64::MAX), 9);
        assert_eq!(Value::TscPlus(100).to_string(), "tsc+100");
        assert_eq!(Value::Fixed(0x6e0).to_string(), "0x6e0");
    }

    #[test]
    fn each_write_is_eight_bytes_at_the_msr_offset() {
        let path = std::env::temp_dir().join(format!("keel-stress-msr-{}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        assert_eq!(
            wrmsr_loop(&file, 0x10, Some(3), Value::Fixed(0x1122_3344_5566_7788)).unwrap(),
            3
        );
        let contents = std::fs::read(&path).unwrap();
        assert_eq!(contents.len(), 0x18);
        assert_eq!(contents[0x10..], 0x1122_3344_5566_7788u64.to_le_bytes());
        assert!(contents[..0x10].iter().all(|&byte| byte == 0));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_timed_spin_ends() {
        assert!(spin(Some(Duration::from_millis(1))) >= 1_000_000);
    }
}

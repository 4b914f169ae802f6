//! The hypervisor command line (from the multiboot2 command-line tag):
//! space-separated `key=value` options. Unknown options are reported, not
//! fatal, so an old bootloader entry still boots.

pub use keel_acpi_tables::find::Occurrence;
use log::LevelFilter;

/// What the built-in guest does in this boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestMode {
    /// Exercise every exit class and check the results.
    Selftest,
    /// Time exit round trips and print `exit-cost` lines.
    Bench,
    /// Boot the Linux kernel from the `dom0-kernel` module as Dom0.
    Dom0,
}

/// What Keel does with the host's IOMMU (VT-d remapping units).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IommuMode {
    /// Enable DMA and interrupt remapping, every device blocked (default).
    On,
    /// Leave the remapping units as the firmware left them.
    Off,
    /// As `On`, then run the DMA/interrupt self-test with QEMU's `edu` device.
    Selftest,
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub log_level: LevelFilter,
    /// `None`: Dom0 when a Dom0 kernel module is present, else the self-test.
    pub guest: Option<GuestMode>,
    /// Dom0's RAM in MiB.
    pub dom0_mem_mib: u32,
    /// Stop the emulator (QEMU debug-exit / Bochs shutdown port) at the end.
    pub exit_emulator: bool,
    pub bench_iterations: u32,
    pub iommu: IommuMode,
    /// Which DMAR to use if the firmware lists several (`iommu-dmar=`):
    /// real firmware has one; tests add a second with QEMU's `-acpitable`
    /// (after QEMU's own) and take the last.
    pub iommu_dmar: Occurrence,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            log_level: LevelFilter::Info,
            guest: None,
            dom0_mem_mib: 256,
            exit_emulator: false,
            bench_iterations: 1000,
            iommu: IommuMode::On,
            iommu_dmar: Occurrence::First,
        }
    }
}

/// A problem with one option; the rest of the command line still applies.
pub struct BadOption<'a> {
    pub option: &'a str,
    pub reason: &'static str,
}

/// Parses `cmdline`, calling `report` for every option it cannot use.
pub fn parse<'a>(cmdline: &'a str, mut report: impl FnMut(BadOption<'a>)) -> Options {
    let mut options = Options::default();
    for option in cmdline.split_ascii_whitespace() {
        let (key, value) = option.split_once('=').unwrap_or((option, ""));
        let result = match key {
            "log" => parse_level(value).map(|level| options.log_level = level),
            "guest" => parse_guest(value).map(|mode| options.guest = Some(mode)),
            "exit" => parse_exit(value).map(|exit| options.exit_emulator = exit),
            "iommu" => match value {
                "on" => Ok(IommuMode::On),
                "off" => Ok(IommuMode::Off),
                "selftest" => Ok(IommuMode::Selftest),
                _ => Err("expected on, off or selftest"),
            }
            .map(|mode| options.iommu = mode),
            "iommu-dmar" => match value {
                "first" => Ok(Occurrence::First),
                "last" => Ok(Occurrence::Last),
                _ => Err("expected first or last"),
            }
            .map(|which| options.iommu_dmar = which),
            "bench-iterations" => match value.parse::<u32>() {
                Ok(n) if (1..=1_000_000).contains(&n) => {
                    options.bench_iterations = n;
                    Ok(())
                }
                _ => Err("expected a number from 1 to 1000000"),
            },
            "dom0-mem" => match value.parse::<u32>() {
                Ok(mib) if (32..=3072).contains(&mib) && mib % 2 == 0 => {
                    options.dom0_mem_mib = mib;
                    Ok(())
                }
                _ => Err("expected an even number of MiB from 32 to 3072"),
            },
            _ => Err("unknown option"),
        };
        if let Err(reason) = result {
            report(BadOption { option, reason });
        }
    }
    options
}

fn parse_guest(value: &str) -> Result<GuestMode, &'static str> {
    match value {
        "selftest" => Ok(GuestMode::Selftest),
        "bench" => Ok(GuestMode::Bench),
        "dom0" => Ok(GuestMode::Dom0),
        _ => Err("expected selftest, bench or dom0"),
    }
}

/// `exit=emulator` stops the emulator at the end; `exit=halt` only halts.
fn parse_exit(value: &str) -> Result<bool, &'static str> {
    match value {
        "emulator" => Ok(true),
        "halt" => Ok(false),
        _ => Err("expected emulator or halt"),
    }
}

fn parse_level(value: &str) -> Result<LevelFilter, &'static str> {
    match value {
        "off" => Ok(LevelFilter::Off),
        "error" => Ok(LevelFilter::Error),
        "warn" => Ok(LevelFilter::Warn),
        "info" => Ok(LevelFilter::Info),
        "debug" => Ok(LevelFilter::Debug),
        "trace" => Ok(LevelFilter::Trace),
        _ => Err("expected off, error, warn, info, debug or trace"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_collecting(cmdline: &str) -> (Options, Vec<(String, &'static str)>) {
        let mut bad = Vec::new();
        let options = parse(cmdline, |option| bad.push((option.option.to_string(), option.reason)));
        (options, bad)
    }

    #[test]
    fn empty_command_line_gives_defaults() {
        let (options, bad) = parse_collecting("");
        assert!(bad.is_empty());
        assert_eq!(options.guest, None);
        assert_eq!(options.dom0_mem_mib, 256);
        assert_eq!(options.log_level, LevelFilter::Info);
        assert!(!options.exit_emulator);
        assert_eq!(options.bench_iterations, 1000);
        assert_eq!(options.iommu, IommuMode::On);
        assert_eq!(options.iommu_dmar, Occurrence::First);
    }

    #[test]
    fn every_option_is_understood() {
        let (options, bad) = parse_collecting(
            "log=debug guest=bench exit=emulator bench-iterations=50 dom0-mem=512 iommu=selftest iommu-dmar=last",
        );
        assert!(bad.is_empty());
        assert_eq!(options.iommu, IommuMode::Selftest);
        assert_eq!(options.iommu_dmar, Occurrence::Last);
        assert_eq!(options.log_level, LevelFilter::Debug);
        assert_eq!(options.guest, Some(GuestMode::Bench));
        assert_eq!(options.dom0_mem_mib, 512);
        assert!(options.exit_emulator);
        assert_eq!(options.bench_iterations, 50);
    }

    #[test]
    fn bad_options_are_reported_and_the_rest_still_applies() {
        let (options, bad) =
            parse_collecting("log=loud bogus guest=bench bench-iterations=0 exit= dom0-mem=33 iommu-dmar=2");
        assert_eq!(options.guest, Some(GuestMode::Bench));
        assert_eq!(options.dom0_mem_mib, 256);
        assert_eq!(options.log_level, LevelFilter::Info);
        assert_eq!(options.bench_iterations, 1000);
        let names: Vec<&str> = bad.iter().map(|(option, _)| option.as_str()).collect();
        assert_eq!(
            names,
            [
                "log=loud",
                "bogus",
                "bench-iterations=0",
                "exit=",
                "dom0-mem=33",
                "iommu-dmar=2"
            ]
        );
        assert_eq!(bad[1].1, "unknown option");
    }
}

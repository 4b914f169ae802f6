//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use keel_boot_tests::dom0::LINUX_CMDLINE;

#[derive(Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "Build, boot, test and benchmark the Keel hypervisor"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Build the hypervisor ELF (target/x86_64-unknown-none/<profile>/keel-hypervisor).
    Build {
        /// Build the debug profile instead of release.
        #[arg(long)]
        debug: bool,
    },
    /// Build the hypervisor and a GRUB rescue ISO that boots it (target/keel/keel.iso).
    Iso {
        /// The hypervisor command line, e.g. "log=debug guest=selftest".
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Add Dom0's Linux kernel and initramfs as modules (fetched from Debian if needed).
        #[arg(long)]
        dom0: bool,
        /// Dom0's kernel command line (with --dom0).
        #[arg(long, default_value = LINUX_CMDLINE, requires = "dom0")]
        linux_cmdline: String,
        /// Also copy the ISO to this path.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        debug: bool,
    },
    /// Boot the hypervisor with Dom0 (Linux, a busybox shell) on this terminal.
    ///
    /// The emulator's serial port (COM1) is this terminal in both directions:
    /// Keel's and Dom0's output appear here and what you type goes to Dom0's
    /// console (Keel passes it on). The terminal is in raw mode meanwhile, so
    /// Ctrl-C goes to the guest; Ctrl-A x stops the emulator (Ctrl-A Ctrl-A
    /// sends a Ctrl-A), and `poweroff -f` in Dom0 ends the run too.
    ///
    /// With stdin not a terminal, its bytes are sent once Dom0's userspace has
    /// started, followed by a Ctrl-D at their end:
    /// `printf 'uname -r\npoweroff -f\n' | cargo xtask run`. Ctrl-C stops the
    /// emulator then. The output is also logged to target/keel/run/serial.log.
    Run {
        /// Default: kvm when /dev/kvm accepts VMX guests, else bochs.
        #[arg(long, value_enum)]
        emulator: Option<EmulatorChoice>,
        /// The hypervisor command line [default: "guest=dom0 exit=emulator", "" with --no-dom0].
        #[arg(long)]
        cmdline: Option<String>,
        /// Boot without Dom0's kernel and initramfs modules.
        #[arg(long)]
        no_dom0: bool,
        /// Dom0's kernel command line.
        #[arg(long, default_value = LINUX_CMDLINE, conflicts_with = "no_dom0")]
        linux_cmdline: String,
        #[arg(long)]
        debug: bool,
    },
    /// Host unit tests, each fuzz target for a few seconds, then every boot test in the emulators.
    Test {
        /// Only boot tests whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Skip the host unit tests and the fuzz smoke run.
        #[arg(long)]
        no_host: bool,
        /// Skip the fuzz smoke run (every fuzz target for a few seconds).
        #[arg(long)]
        no_fuzz: bool,
    },
    /// Fuzz a parser of untrusted input with libFuzzer (targets in fuzz/);
    /// without a target, list them.
    ///
    /// Builds the targets with coverage instrumentation on the pinned stable
    /// toolchain (no nightly or cargo-fuzz needed) into target/fuzz/, grows a
    /// corpus in target/fuzz-corpus/<target>/ from the seeds in
    /// fuzz/seeds/<target>/, and saves a crashing input in
    /// target/fuzz-artifacts/<target>/.
    Fuzz {
        /// The target to fuzz.
        target: Option<String>,
        /// Fuzz every target, one after the other.
        #[arg(long, conflicts_with = "target")]
        all: bool,
        /// How long to fuzz each target.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        seconds: u64,
        /// Run the target once on this input (a saved crash) instead of fuzzing.
        #[arg(long, requires = "target", conflicts_with_all = ["all", "seconds"])]
        reproduce: Option<PathBuf>,
    },
    /// Measure the hypervisor in Bochs.
    Bench {
        #[command(subcommand)]
        benchmark: Benchmark,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EmulatorChoice {
    /// Bochs: emulates VMX.
    Bochs,
    /// QEMU's software emulation (TCG): no VMX, Keel reports that and stops.
    Qemu,
    /// QEMU with KVM and the host CPU: needs nested VMX on the host.
    Kvm,
}

#[derive(Subcommand)]
pub enum Benchmark {
    /// Cost of CPUID, VMCALL and I/O exits: prints the `exit-cost` lines.
    Exits {
        /// Exits of each kind to measure.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
        iterations: u32,
    },
    /// Dom0's Linux boot to userspace on bare Bochs and under Keel, then a
    /// DomU's from `keel create`: prints the `linux-boot` and `domu-boot`
    /// lines (three boots, a few minutes each in Bochs).
    Boot {
        /// Only the `linux-boot` figures (bare and Keel) or only `domu-boot`.
        #[arg(long, value_enum)]
        only: Option<BootPart>,
    },
    /// Sequential reads of one image file from a DomU through the split
    /// block driver (virtio-blk, Dom0's backend) and natively in Dom0:
    /// prints the `split-blk` and `split-net` lines (one boot, several
    /// minutes in Bochs).
    Io,
}

/// The parts of `bench boot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BootPart {
    /// Linux on bare Bochs and as Dom0 under Keel.
    Linux,
    /// A DomU created from Dom0.
    Domu,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bench_exits_defaults_to_a_thousand_iterations() {
        let cli = Cli::try_parse_from(["xtask", "bench", "exits"]).unwrap();
        let Command::Bench {
            benchmark: Benchmark::Exits { iterations },
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        assert_eq!(iterations, 1000);
    }

    #[test]
    fn zero_iterations_are_refused() {
        assert!(Cli::try_parse_from(["xtask", "bench", "exits", "--iterations", "0"]).is_err());
    }

    #[test]
    fn run_boots_dom0_with_the_default_linux_cmdline_unless_told_not_to() {
        let cli = Cli::try_parse_from(["xtask", "run"]).unwrap();
        let Command::Run {
            cmdline,
            no_dom0,
            linux_cmdline,
            ..
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        assert_eq!((cmdline, no_dom0), (None, false));
        assert_eq!(linux_cmdline, "console=ttyS0 cryptomgr.notests");
        assert!(Cli::try_parse_from(["xtask", "run", "--no-dom0"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "run", "--no-dom0", "--linux-cmdline", "x"]).is_err());
    }

    #[test]
    fn iso_takes_a_linux_cmdline_only_with_dom0() {
        assert!(Cli::try_parse_from(["xtask", "iso", "--linux-cmdline", "x"]).is_err());
        let cli = Cli::try_parse_from(["xtask", "iso", "--dom0", "--linux-cmdline", "quiet"]).unwrap();
        let Command::Iso {
            dom0, linux_cmdline, ..
        } = cli.command
        else {
            panic!("parsed as another command");
        };
        assert!(dom0);
        assert_eq!(linux_cmdline, "quiet");
    }

    #[test]
    fn bench_io_parses() {
        let cli = Cli::try_parse_from(["xtask", "bench", "io"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Bench {
                benchmark: Benchmark::Io
            }
        ));
        assert!(Cli::try_parse_from(["xtask", "bench", "io", "--only", "domu"]).is_err());
    }

    #[test]
    fn bench_boot_parses() {
        let cli = Cli::try_parse_from(["xtask", "bench", "boot"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Bench {
                benchmark: Benchmark::Boot { only: None }
            }
        ));
        for (name, part) in [("linux", BootPart::Linux), ("domu", BootPart::Domu)] {
            let cli = Cli::try_parse_from(["xtask", "bench", "boot", "--only", name]).unwrap();
            let Command::Bench {
                benchmark: Benchmark::Boot { only },
            } = cli.command
            else {
                panic!("parsed as another command");
            };
            assert_eq!(only, Some(part));
        }
        assert!(Cli::try_parse_from(["xtask", "bench", "boot", "--only", "bare"]).is_err());
    }

    #[test]
    fn fuzz_takes_a_target_or_all_and_seconds() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["xtask", "fuzz"], args].concat())?;
            let Command::Fuzz {
                target,
                all,
                seconds,
                reproduce,
            } = cli.command
            else {
                panic!("parsed as another command");
            };
            Ok::<_, clap::Error>((target, all, seconds, reproduce))
        };
        assert_eq!(parse(&[]).unwrap(), (None, false, 60, None));
        assert_eq!(
            parse(&["bzimage", "--seconds", "3600"]).unwrap(),
            (Some("bzimage".into()), false, 3600, None)
        );
        assert_eq!(parse(&["--all", "--seconds", "5"]).unwrap(), (None, true, 5, None));
        assert_eq!(
            parse(&["cmdline", "--reproduce", "crash-1"]).unwrap(),
            (Some("cmdline".into()), false, 60, Some(PathBuf::from("crash-1")))
        );
        assert!(parse(&["--all", "bzimage"]).is_err());
        assert!(parse(&["bzimage", "--seconds", "0"]).is_err());
        assert!(parse(&["--reproduce", "crash-1"]).is_err(), "needs a target");
    }

    #[test]
    fn test_can_skip_the_fuzz_smoke_run() {
        let cli = Cli::try_parse_from(["xtask", "test", "--no-fuzz"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Test {
                no_fuzz: true,
                no_host: false,
                ..
            }
        ));
    }

    #[test]
    fn run_accepts_each_emulator_name() {
        for (name, expected) in [
            ("bochs", EmulatorChoice::Bochs),
            ("qemu", EmulatorChoice::Qemu),
            ("kvm", EmulatorChoice::Kvm),
        ] {
            let cli = Cli::try_parse_from(["xtask", "run", "--emulator", name]).unwrap();
            let Command::Run { emulator, .. } = cli.command else {
                panic!("parsed as another command");
            };
            assert_eq!(emulator, Some(expected));
        }
    }
}

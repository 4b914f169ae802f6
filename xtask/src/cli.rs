//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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
        /// Also copy the ISO to this path.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        debug: bool,
    },
    /// Boot the hypervisor with its serial console on this terminal (Ctrl-C stops it).
    Run {
        /// Default: kvm when /dev/kvm accepts VMX guests, else bochs.
        #[arg(long, value_enum)]
        emulator: Option<EmulatorChoice>,
        #[arg(long, default_value = "")]
        cmdline: String,
        #[arg(long)]
        debug: bool,
    },
    /// Host unit tests, then every boot test in the emulators.
    Test {
        /// Only boot tests whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Skip the host unit tests.
        #[arg(long)]
        no_host: bool,
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

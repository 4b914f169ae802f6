//! The command line (clap derive). Every command documents itself in
//! `keel <command> --help`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use keel_abi::mgmt::PciAddress;

use crate::backend::BackendArgs;
use crate::switch_daemon::SwitchArgs;

#[derive(Debug, Parser)]
#[command(
    name = "keel",
    version,
    about = "Manage Keel domains from Dom0",
    long_about = "Manage Keel domains from Dom0.\n\n\
        keel talks to the Keel hypervisor through its management PCI function \
        (vendor 0x4b45, device 0x0001), which only Dom0 sees and only root may open. \
        Calls from concurrent keel processes are serialized with /run/keel.lock.",
    after_help = "A domain is named by its id (all digits) or its name.\n\
        Exit status: 0 on success, 1 on any error, 2 on a usage error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

const CONFIG_HELP: &str = "\
Create a domain from a TOML configuration file, load its kernel, initrd and \
command line, and boot it.

Keys:
  name = \"web\"              required; 1-32 bytes, no spaces, slashes or control characters, not all digits
  memory = 512              required; MiB of guest RAM, 16 to 1048576
  vcpus = 1                 default 1; only 1 is supported until SMP guests land
  kernel = \"bzImage\"        required; a Linux bzImage
  initrd = \"initrd.img\"     optional
  cmdline = \"console=ttyS0\" default \"console=ttyS0\"
  on_poweroff = \"destroy\"   default \"destroy\"
  on_reboot = \"restart\"     default \"restart\"
  on_crash = \"destroy\"      default \"destroy\"
  pci = [\"0000:00:04.0\"]    optional; host PCI devices to give the domain (see `keel pci-assignable-list`)
  pci_unconfined_dma = false default false; true attaches a device even without an IOMMU confining its DMA
  disk = [\"root.img,rw\"]    optional; virtio-blk disks, each \"<path>,rw\" or \"<path>,ro\" (at most 16)

The on_* keys take \"destroy\" (free the domain), \"restart\" (boot it again) or \
\"preserve\" (keep it, shut down or crashed, until `keel destroy`). Relative \
kernel and initrd paths are taken from the configuration file's directory. \
If a step after the domain was created fails, the half-built domain is destroyed.

Each pci device must first be made assignable (`keel pci-assignable-add`); it is \
handed to the domain when it boots and returned to the host (reset, still \
assignable) when it is destroyed. Keel refuses a device that no IOMMU confines \
unless pci_unconfined_dma = true: such a device's DMA can read and write all \
host memory, Keel's and other domains', and keel create warns about it.

Each disk is a raw image file or a block device; relative paths are taken from \
the configuration file's directory, and the mode (rw or ro) is required. The \
guest sees them as virtio-blk disks in the order listed (vda, vdb, ...); a \
read-only disk is offered as such. keel create starts a backend process for \
the domain's disks (log in /run/keel/backend-<id>.log) and boots the domain \
once it serves them; keel destroy stops it.";

const BLOCK_LIST_HELP: &str = "\
List a domain's virtio-blk disks.

Columns: the device index (the guest's vda is 0), the mode (rw or ro), the \
device status the guest's driver set (reset, acknowledge, driver, \
features-ok, driver-ok, or needs-reset / failed when something went wrong) \
and the image. A note on stderr says when no backend serves the disks.";

const DISKS_AT_CREATE: &str = "disks are attached when a domain is created, not while it runs, in this version: \
list them in its configuration (disk = [\"<path>,rw\", \"<path>,ro\"]) and create it again";

const BACKEND_RESTART_HELP: &str = "\
Start a domain's backend again after it died.

A domain's virtio disks, interfaces and console are served by one backend \
process in Dom0 (`keel create` starts it, `keel destroy` stops it). If it \
dies (killed, or a bug), the domain's devices stop answering: its driver \
may wait for a reset forever. This starts the same backend again; it picks \
up the queues where the dead one left them (requests it had taken but not \
answered are served again) and answers a pending reset. Refused while a \
backend runs. `keel block-list` and `keel network-list` say when none does.";

const NETWORK_LIST_HELP: &str = "\
List a domain's virtio-net interfaces.

Columns: the device index (interfaces follow the disks; the guest's eth0 is \
the first), the MAC address, the MTU offered (1500 when none is), and the \
device status the guest's driver set. Every interface is a port of Dom0's \
switch (`keel switch`), which Dom0 itself reaches through the TAP keel0. A \
note on stderr says when no backend serves the interfaces.";

const NICS_AT_CREATE: &str = "interfaces are attached when a domain is created, not while it runs, in this version: \
list them in its configuration (vif = [\"mac=02:4b:45:00:00:0a\", \"\"]) and create it again";

const PCI_LIST_HELP: &str = "\
List the host's PCI devices and whether they can be given to DomUs.

Columns: address, vendor:device, class (class, subclass, programming \
interface), state (assignable, attached to a domain, host bridge, or not \
assignable) and whether an IOMMU confines the device's DMA (\"dma NOT \
confined\": once attached, the device can reach all host memory).";

const CONSOLE_HELP: &str = "\
Show a domain's console and type into it.

Output the domain produced before you attached is shown first (as much as \
Keel's console ring still holds; a note on stderr says when older bytes were \
lost). When stdin is a terminal it is put in raw mode and every key goes to \
the guest; Ctrl-] detaches. Piped stdin is forwarded until its end, after \
which output keeps being shown.

With --until the command exits 0 as soon as the text appears in the output \
(for scripts and boot tests); with --timeout it exits 1 if that many seconds \
pass first. It also exits 0, with a note, when the domain no longer exists \
(or 1 when --until's text had not appeared).";

const TOP_HELP: &str = "\
Show per-domain CPU use and VM exit rates, refreshed every interval.

Columns: CPU% (guest time over wall time), exits per second in total and by \
cause (port I/O, MMIO, MSR, HLT, timer), and memory. The first frame comes \
after one interval: rates need two samples. When stdout is not a terminal, or \
with -n, frames are printed one after another separated by a blank line.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and boot a domain from a configuration file
    #[command(long_about = CONFIG_HELP)]
    Create {
        /// The domain's configuration (TOML)
        config: PathBuf,
        /// Leave the domain paused after loading it (start it with `keel unpause`)
        #[arg(short, long)]
        paused: bool,
        /// Attach to the domain's console once it is created
        #[arg(short, long)]
        console: bool,
    },
    /// List domains: name, id, memory, vCPUs, state, CPU time
    List {
        /// Print a JSON array with every field of every domain
        #[arg(long)]
        json: bool,
    },
    /// Stop a domain at once and free its memory (the guest gets no warning)
    Destroy {
        /// Domain id or name
        domain: String,
    },
    /// Ask a domain to power off (ACPI power button); returns at once
    Shutdown {
        /// Domain id or name
        domain: String,
    },
    /// Reset a domain and boot it again from its images
    Reboot {
        /// Domain id or name
        domain: String,
    },
    /// Stop running a domain's vCPU until `keel unpause`
    Pause {
        /// Domain id or name
        domain: String,
    },
    /// Let a paused domain run again
    Unpause {
        /// Domain id or name
        domain: String,
    },
    /// Show a domain's console and type into it (Ctrl-] detaches)
    #[command(long_about = CONSOLE_HELP)]
    Console {
        /// Domain id or name
        domain: String,
        /// Exit 0 as soon as TEXT appears in the output
        #[arg(long, value_name = "TEXT")]
        until: Option<String>,
        /// Exit 1 if SECONDS pass first (fractions allowed)
        #[arg(long, value_name = "SECONDS", value_parser = seconds)]
        timeout: Option<Duration>,
        /// The domain's virtio console (its hvc0, config `virtio_console = true`) instead of its UART
        #[arg(long)]
        hvc: bool,
    },
    /// Show the host: versions, CPUs, memory, TSC, features, domains
    Info {
        /// Print JSON, including each domain's memory and Keel's overhead for it
        #[arg(long)]
        json: bool,
    },
    /// Print Keel's own log
    Dmesg,
    /// List the host's PCI devices: address, ids, class, assignable or attached, DMA confinement
    #[command(long_about = PCI_LIST_HELP)]
    PciAssignableList {
        /// Print a JSON array, one object per device
        #[arg(long)]
        json: bool,
    },
    /// Make a PCI device assignable to DomUs (name it in a config's `pci` key)
    PciAssignableAdd {
        /// PCI address: 0000:00:04.0 or 00:04.0 (hexadecimal, segment 0)
        #[arg(value_parser = pci_address)]
        address: PciAddress,
        /// The host GSI its INTx arrives at (what /sys/bus/pci/devices/*/irq
        /// says under Linux on this machine), where the firmware routes PCI
        /// interrupts only through ACPI _PRT; default: the firmware's
        /// Interrupt Line register
        #[arg(long, value_name = "GSI")]
        intx_gsi: Option<u32>,
    },
    /// Give an assignable PCI device back to the host (refused while a domain has it)
    PciAssignableRemove {
        /// PCI address: 0000:00:04.0 or 00:04.0 (hexadecimal, segment 0)
        #[arg(value_parser = pci_address)]
        address: PciAddress,
    },
    /// List a domain's virtio-blk disks: index, mode, driver status, image
    #[command(long_about = BLOCK_LIST_HELP)]
    BlockList {
        /// Domain id or name
        domain: String,
        /// Print a JSON array, one object per disk
        #[arg(long)]
        json: bool,
    },
    /// Not supported yet: disks are attached at create time (config `disk = [...]`)
    BlockAttach {
        /// Domain id or name
        domain: String,
        /// The disk, as PATH,rw or PATH,ro
        disk: String,
    },
    /// Not supported yet: disks go away with their domain
    BlockDetach {
        /// Domain id or name
        domain: String,
        /// The disk's index (see `keel block-list`)
        index: String,
    },
    /// List a domain's virtio-net interfaces: index, MAC, MTU, driver status
    #[command(long_about = NETWORK_LIST_HELP)]
    NetworkList {
        /// Domain id or name
        domain: String,
        /// Print a JSON array, one object per interface
        #[arg(long)]
        json: bool,
    },
    /// Not supported yet: interfaces are attached at create time (config `vif = [...]`)
    NetworkAttach {
        /// Domain id or name
        domain: String,
        /// The interface, as mac=MAC[,mtu=MTU] or ""
        vif: String,
    },
    /// Not supported yet: interfaces go away with their domain
    NetworkDetach {
        /// Domain id or name
        domain: String,
        /// The interface's index (see `keel network-list`)
        index: String,
    },
    /// Start a domain's backend again after it died (its disks, interfaces and console as created)
    #[command(long_about = BACKEND_RESTART_HELP)]
    BackendRestart {
        /// Domain id or name
        domain: String,
    },
    /// Serve a domain's virtio disks and interfaces (started by `keel create`)
    #[command(hide = true)]
    Backend(BackendArgs),
    /// Switch frames between the DomUs' interfaces and Dom0's TAP (started by `keel create`)
    #[command(hide = true)]
    Switch(SwitchArgs),
    /// Show per-domain CPU use and VM exit rates, refreshed every second
    #[command(long_about = TOP_HELP)]
    Top {
        /// Seconds between frames (fractions allowed)
        #[arg(short = 'd', long = "delay", value_name = "SECONDS", default_value = "1", value_parser = seconds)]
        delay: Duration,
        /// Print this many frames, then exit (implies plain, batch output)
        #[arg(short = 'n', long, value_name = "ITERATIONS", value_parser = clap::value_parser!(u64).range(1..))]
        iterations: Option<u64>,
    },
}

/// A positive number of seconds, fractions allowed.
pub fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if value.is_nan() || value <= 0.0 {
        return Err(format!("must be more than 0 seconds, got {text}"));
    }
    Duration::try_from_secs_f64(value).map_err(|_| format!("`{text}` seconds is too long"))
}

/// A PCI address argument.
pub fn pci_address(text: &str) -> Result<PciAddress, String> {
    PciAddress::parse(text).map_err(|error| format!("`{text}`: {error}"))
}

/// Why `keel network-attach` and `keel network-detach` refuse.
pub fn nics_at_create_only() -> &'static str {
    NICS_AT_CREATE
}

/// Why `keel block-attach` and `keel block-detach` refuse.
pub fn disks_at_create_only() -> &'static str {
    DISKS_AT_CREATE
}

//! `keel-stress virtio-hostile`: a misbehaving virtio-blk frontend, the
//! DomU side of "a misbehaving frontend does not crash the backend, Dom0 or
//! Keel". With no kernel driver bound, the program drives a modern
//! virtio-blk PCI function (1af4:1042) from user space: it maps BAR 0,
//! kicks through the notification BAR, builds a split virtqueue of 8
//! entries in locked pages it finds the guest-physical addresses of, and
//! runs [`SCENARIOS`] one after the other. Each breaks the protocol in one
//! way, checks the device's answer (an error status for a bad buffer,
//! DEVICE_NEEDS_RESET for a broken ring) and then that the device still
//! serves a valid read of sector 0 with the same contents as the first.
//!
//! Nothing in this module touches a machine: here are the arguments and
//! the scenario table; `layout` has the ring and request layout and the
//! garbage a ring rewrite writes, `config` the capability list and
//! `/proc/self/pagemap` entries; [`driver`] runs the scenarios against any
//! [`driver::Hardware`]. The binary's `virtio_hostile_ops` module is the
//! Linux one (sysfs, mmap, pagemap); the tests run the same driver against
//! `keel-virtio`'s own transport and virtio-blk models.

use std::fmt;
use std::time::Duration;

pub use keel_virtio::blk::{
    VIRTIO_BLK_F_RO, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
pub use keel_virtio::features::{VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1};
pub use keel_virtio::pci::common;
pub use keel_virtio::queue::{
    VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
};
pub use keel_virtio::status;

mod config;
pub mod driver;
mod layout;
#[cfg(test)]
mod tests;

pub use config::*;
pub use layout::*;

/// What the program drives: a modern virtio-blk function.
pub const VENDOR_ID: u16 = keel_virtio::pci::VIRTIO_PCI_VENDOR_ID;
pub const DEVICE_ID: u16 = keel_virtio::pci::VIRTIO_PCI_DEVICE_ID_BASE + keel_virtio::device_id::BLOCK;

/// How long each wait (a reset, a completion, DEVICE_NEEDS_RESET) may take
/// without `--wait`: generous, the machine may be an emulator.
pub const DEFAULT_WAIT_SECONDS: u64 = 10;

pub const PAGE_SIZE: usize = 4096;
/// Entries in the one queue (0) the program sets up.
pub const QUEUE_SIZE: u16 = 8;
pub const SECTOR_SIZE: usize = 512;
/// A guest-physical address no DomU has RAM at (and no device): Keel's
/// window slot for a DomU is 4 GiB.
pub const NOT_RAM: u64 = 0xFFFF_FFFF_F000;

/// `keel-stress virtio-hostile <pci-address> [--wait SECONDS] [--seed N]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The function, as sysfs names it (`0000:00:05.0`).
    pub device: String,
    /// The bound of every wait.
    pub wait: Duration,
    /// Seeds the garbage of `ring-rewrite`.
    pub seed: u64,
}

impl Options {
    /// The arguments after `virtio-hostile`.
    pub fn parse(args: &[&str]) -> Result<Options, String> {
        let mut device = None;
        let mut wait = Duration::from_secs(DEFAULT_WAIT_SECONDS);
        let mut seed = 1;
        let mut rest = args.iter();
        while let Some(&arg) = rest.next() {
            let mut value = || {
                rest.next()
                    .copied()
                    .ok_or_else(|| format!("virtio-hostile: `{arg}` needs a value"))
            };
            match arg {
                "--wait" => {
                    let text = value()?;
                    let seconds = crate::number(text)
                        .filter(|&seconds| seconds > 0)
                        .ok_or_else(|| format!("virtio-hostile: `{text}` is not a positive number of seconds"))?;
                    wait = Duration::from_secs(seconds);
                }
                "--seed" => {
                    let text = value()?;
                    seed = crate::number(text).ok_or_else(|| format!("virtio-hostile: bad seed `{text}`"))?;
                }
                _ if device.is_none() && !arg.starts_with('-') => {
                    device = Some(
                        pci_address(arg)
                            .ok_or_else(|| format!("virtio-hostile: `{arg}` is not a PCI address (0000:00:05.0)"))?,
                    );
                }
                other => return Err(format!("virtio-hostile: unexpected argument `{other}`")),
            }
        }
        let device = device.ok_or("virtio-hostile: no PCI address given")?;
        Ok(Options { device, wait, seed })
    }
}

/// `[dddd:]bb:dd.f` in hex, as sysfs spells it: `0000:bb:dd.f`, lower case.
pub fn pci_address(text: &str) -> Option<String> {
    let (domain, rest) = match text.matches(':').count() {
        2 => text.split_once(':')?,
        1 => ("0000", text),
        _ => return None,
    };
    let (bus, rest) = rest.split_once(':')?;
    let (device, function) = rest.split_once('.')?;
    let field = |text: &str, digits: usize, max: u32| {
        (text.len() == digits && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(text, 16).ok())
            .flatten()
            .filter(|&value| value <= max)
    };
    let domain = field(domain, 4, 0xFFFF)?;
    let bus = field(bus, 2, 0xFF)?;
    let device = field(device, 2, 0x1F)?;
    let function = field(function, 1, 7)?;
    Some(format!("{domain:04x}:{bus:02x}:{device:02x}.{function:x}"))
}

// --- scenarios --------------------------------------------------------------

/// What a scenario expects the device to do with the bad request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The request completes with this status, and the device keeps
    /// working without a reset.
    Status(u8),
    /// DEVICE_NEEDS_RESET, no completion; a reset brings the device back.
    NeedsReset,
    /// Anything, as long as a reset brings the device back.
    Survive,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    ValidRead,
    BadAddress,
    DescriptorLoop,
    HeadOutOfRange,
    AvailJump,
    IndirectNotNegotiated,
    IndirectLoop,
    WriteToReadonly,
    RingRewrite,
}

/// In the order they run.
pub const SCENARIOS: [Scenario; 9] = [
    Scenario::ValidRead,
    Scenario::BadAddress,
    Scenario::DescriptorLoop,
    Scenario::HeadOutOfRange,
    Scenario::AvailJump,
    Scenario::IndirectNotNegotiated,
    Scenario::IndirectLoop,
    Scenario::WriteToReadonly,
    Scenario::RingRewrite,
];

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::ValidRead => "valid-read",
            Scenario::BadAddress => "bad-address",
            Scenario::DescriptorLoop => "descriptor-loop",
            Scenario::HeadOutOfRange => "head-out-of-range",
            Scenario::AvailJump => "avail-jump",
            Scenario::IndirectNotNegotiated => "indirect-not-negotiated",
            Scenario::IndirectLoop => "indirect-loop",
            Scenario::WriteToReadonly => "write-to-readonly",
            Scenario::RingRewrite => "ring-rewrite",
        }
    }

    /// Features accepted beyond VIRTIO_F_VERSION_1.
    pub fn features(self) -> u64 {
        match self {
            Scenario::IndirectLoop => VIRTIO_F_INDIRECT_DESC,
            Scenario::WriteToReadonly => VIRTIO_BLK_F_RO,
            _ => 0,
        }
    }

    pub fn expect(self) -> Expect {
        match self {
            Scenario::ValidRead => Expect::Status(VIRTIO_BLK_S_OK),
            Scenario::BadAddress | Scenario::WriteToReadonly => Expect::Status(VIRTIO_BLK_S_IOERR),
            Scenario::DescriptorLoop
            | Scenario::HeadOutOfRange
            | Scenario::AvailJump
            | Scenario::IndirectNotNegotiated
            | Scenario::IndirectLoop => Expect::NeedsReset,
            Scenario::RingRewrite => Expect::Survive,
        }
    }

    /// Runs only when the device offers these features (else it is skipped).
    pub fn needs_offered(self) -> u64 {
        match self {
            Scenario::WriteToReadonly => VIRTIO_BLK_F_RO,
            _ => 0,
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

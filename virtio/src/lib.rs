//! The device side of virtio 1.x for Keel's paravirtual devices.
//!
//! Keel offers DomUs modern (non-transitional) virtio-pci devices whose
//! backends run in Dom0 userspace and reach the DomU's RAM through a
//! window. This crate is the part both halves share, as pure logic that
//! never trusts the driver:
//!
//! - [`memory`]: the [`GuestMemory`] trait every guest access goes through;
//! - [`queue`]: the device side of a split virtqueue, validating every
//!   descriptor a hostile frontend can hand over;
//! - [`chain`]: validated descriptor chains and byte-stream readers/writers
//!   over them, so device code never handles a guest address;
//! - [`blk`]: virtio-blk request handling over a [`blk::BlockBackend`];
//! - [`net`]: virtio-net (one queue pair) to a [`net::FrameSink`];
//! - [`console`]: virtio-console (one port) to a [`console::ConsoleSink`];
//! - [`pci`]: the virtio-pci modern transport's registers, capabilities
//!   and MSI-X table as a state machine that reports effects;
//! - [`fuzzing`]: entry points for the fuzz targets.
//!
//! See `docs/virtio.md` for the layout, the validation rules and the error
//! policy, and for how Keel and Dom0's backends use it.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod blk;
pub mod chain;
pub mod console;
pub mod fuzzing;
pub mod memory;
pub mod net;
pub mod pci;
pub mod queue;
#[cfg(test)]
mod test_ring;

pub use chain::{ChainReader, ChainWriter, DataError, DescriptorChain, Segment, MAX_CHAIN_SEGMENTS};
pub use memory::{GuestMemory, MemoryError, SliceMemory};
pub use queue::{ConfigError, Queue, QueueConfig, QueueError, QueueFeatures, ResumeError};

/// Virtio device type ids (the PCI device id is 0x1040 plus these).
pub mod device_id {
    pub const NET: u16 = 1;
    pub const BLOCK: u16 = 2;
    pub const CONSOLE: u16 = 3;
}

/// Device-independent feature bits (virtio 1.x, section 6).
pub mod features {
    pub const VIRTIO_F_INDIRECT_DESC: u64 = 1 << 28;
    pub const VIRTIO_F_EVENT_IDX: u64 = 1 << 29;
    pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
    pub const VIRTIO_F_ACCESS_PLATFORM: u64 = 1 << 33;
    pub const VIRTIO_F_RING_PACKED: u64 = 1 << 34;
    pub const VIRTIO_F_IN_ORDER: u64 = 1 << 35;
    pub const VIRTIO_F_ORDER_PLATFORM: u64 = 1 << 36;
    pub const VIRTIO_F_SR_IOV: u64 = 1 << 37;
    pub const VIRTIO_F_NOTIFICATION_DATA: u64 = 1 << 38;
    pub const VIRTIO_F_NOTIF_CONFIG_DATA: u64 = 1 << 39;
    pub const VIRTIO_F_RING_RESET: u64 = 1 << 40;

    /// The transport features every Keel device offers: version 1,
    /// indirect descriptors and event-index notification suppression.
    pub const KEEL_TRANSPORT_FEATURES: u64 = VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX;
}

/// Device status bits (virtio 1.x, section 2.1).
pub mod status {
    pub const ACKNOWLEDGE: u8 = 1;
    pub const DRIVER: u8 = 2;
    pub const DRIVER_OK: u8 = 4;
    pub const FEATURES_OK: u8 = 8;
    pub const DEVICE_NEEDS_RESET: u8 = 64;
    pub const FAILED: u8 = 128;
}

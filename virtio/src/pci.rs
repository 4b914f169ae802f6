//! The virtio-pci modern transport (virtio 1.x, section 4.1) as pure logic.
//!
//! [`VirtioPciFunction`] is one non-transitional virtio PCI function: its
//! vendor capabilities and MSI-X capability in configuration space, the
//! registers behind its BARs, feature negotiation, queue configuration and
//! interrupt routing. It performs no I/O: register writes return an
//! [`Effect`] (a queue was notified, the driver reset the device, ...) and
//! the `signal_*` calls return the [`Interrupt`] to deliver, for the
//! hypervisor to act on.
//!
//! # Layout
//!
//! ```text
//! BAR0  32-bit memory, 16 KiB, non-prefetchable
//!   0x0000  common configuration (0x38 bytes)
//!   0x1000  ISR status (1 byte, read-to-clear)
//!   0x2000  device-specific configuration (up to 0x100 bytes)
//!   0x3000  MSI-X table (16 bytes per vector)
//!   0x3800  MSI-X pending bit array
//! BAR2  I/O ports: the notification region (16-bit writes)
//!   notify_off_multiplier 0: one port pair for every queue; the value
//!     written is the queue index (4 ports, the smallest I/O BAR)
//!   notify_off_multiplier 2 or 4: queue n at n × multiplier
//! ```
//!
//! Each BAR0 region sits in its own 4 KiB page. Notifications go to I/O
//! ports because a port exit reports port, size and value in the VM-exit
//! qualification and RAX: no instruction decoding on the hot path.
//!
//! Configuration space from 0x40 (the type-0 header below it is the
//! hypervisor's, which must point its capabilities pointer at 0x40 and set
//! the status register's Capabilities List bit):
//!
//! ```text
//! 0x40  vendor cap, common cfg      (16 bytes)
//! 0x50  vendor cap, notify cfg      (20 bytes, with notify_off_multiplier)
//! 0x64  vendor cap, ISR cfg         (16 bytes)
//! 0x74  vendor cap, device cfg      (16 bytes; left out of the list when
//!                                    the device has no configuration)
//! 0x84  vendor cap, PCI cfg access  (20 bytes, the window the spec requires)
//! 0x98  MSI-X capability            (12 bytes), end of the list
//! ```
//!
//! # What the hypervisor does with it
//!
//! - routes config-space accesses at 0x40.. to [`VirtioPciFunction::config_read`]
//!   / [`config_write`](VirtioPciFunction::config_write), BAR0 accesses to
//!   [`mmio_read`](VirtioPciFunction::mmio_read) / [`mmio_write`](VirtioPciFunction::mmio_write)
//!   and BAR2 port writes to [`notify_write`](VirtioPciFunction::notify_write)
//!   (BAR2 reads return 0);
//! - acts on each [`Effect`]; after [`Effect::Reset`] it stops the backend
//!   and calls [`complete_reset`](VirtioPciFunction::complete_reset), until
//!   which the driver keeps reading a non-zero status;
//! - delivers [`Interrupt::Msi`] messages (if Bus Master is enabled in the
//!   command register) and drives the INTx pin from
//!   [`intx_level`](VirtioPciFunction::intx_level), sampled after every
//!   call into the function (unless Interrupt Disable is set), which is
//!   also the status register's Interrupt Status bit.

use crate::device_id;
use crate::features::{
    VIRTIO_F_NOTIFICATION_DATA, VIRTIO_F_NOTIF_CONFIG_DATA, VIRTIO_F_RING_PACKED, VIRTIO_F_RING_RESET,
    VIRTIO_F_VERSION_1,
};
use crate::queue::{QueueConfig, MAX_QUEUE_SIZE};
use crate::status::{DEVICE_NEEDS_RESET, DRIVER_OK, FEATURES_OK};

pub const VIRTIO_PCI_VENDOR_ID: u16 = 0x1AF4;
/// A non-transitional device's PCI device id is this plus its virtio device type.
pub const VIRTIO_PCI_DEVICE_ID_BASE: u16 = 0x1040;
/// Non-transitional devices have revision 1 or more.
pub const VIRTIO_PCI_REVISION: u8 = 1;
/// Subsystem id: 0x40 or more for non-transitional devices.
pub const VIRTIO_PCI_SUBSYSTEM_ID: u16 = 0x0040;
/// "No MSI-X vector" in `config_msix_vector` / `queue_msix_vector`.
pub const NO_VECTOR: u16 = 0xFFFF;

/// Capability ids and virtio structure types.
pub const PCI_CAP_ID_VNDR: u8 = 0x09;
pub const PCI_CAP_ID_MSIX: u8 = 0x11;
pub const VIRTIO_PCI_CAP_COMMON_CFG: u8 = 1;
pub const VIRTIO_PCI_CAP_NOTIFY_CFG: u8 = 2;
pub const VIRTIO_PCI_CAP_ISR_CFG: u8 = 3;
pub const VIRTIO_PCI_CAP_DEVICE_CFG: u8 = 4;
pub const VIRTIO_PCI_CAP_PCI_CFG: u8 = 5;

/// BAR0: everything but notifications.
pub const MMIO_BAR: u8 = 0;
pub const MMIO_BAR_SIZE: u64 = 0x4000;
/// BAR2: the notification ports.
pub const NOTIFY_BAR: u8 = 2;
pub const COMMON_CFG_OFFSET: u64 = 0x0000;
pub const COMMON_CFG_LEN: u64 = 0x38;
pub const ISR_OFFSET: u64 = 0x1000;
pub const DEVICE_CFG_OFFSET: u64 = 0x2000;
pub const MAX_DEVICE_CONFIG_LEN: usize = 0x100;
pub const MSIX_TABLE_OFFSET: u64 = 0x3000;
pub const MSIX_PBA_OFFSET: u64 = 0x3800;
/// Most MSI-X vectors (one PBA qword).
pub const MAX_MSIX_VECTORS: u16 = 64;
/// Most virtqueues per function.
pub const MAX_QUEUES: usize = 32;

/// Common configuration register offsets.
pub mod common {
    pub const DEVICE_FEATURE_SELECT: u64 = 0x00;
    pub const DEVICE_FEATURE: u64 = 0x04;
    pub const DRIVER_FEATURE_SELECT: u64 = 0x08;
    pub const DRIVER_FEATURE: u64 = 0x0C;
    pub const CONFIG_MSIX_VECTOR: u64 = 0x10;
    pub const NUM_QUEUES: u64 = 0x12;
    pub const DEVICE_STATUS: u64 = 0x14;
    pub const CONFIG_GENERATION: u64 = 0x15;
    pub const QUEUE_SELECT: u64 = 0x16;
    pub const QUEUE_SIZE: u64 = 0x18;
    pub const QUEUE_MSIX_VECTOR: u64 = 0x1A;
    pub const QUEUE_ENABLE: u64 = 0x1C;
    pub const QUEUE_NOTIFY_OFF: u64 = 0x1E;
    pub const QUEUE_DESC: u64 = 0x20;
    pub const QUEUE_DRIVER: u64 = 0x28;
    pub const QUEUE_DEVICE: u64 = 0x30;
}

/// Configuration-space offsets of the capabilities.
pub const CAPABILITIES_POINTER: u8 = 0x40;
pub const CAP_COMMON: u16 = 0x40;
pub const CAP_NOTIFY: u16 = 0x50;
pub const CAP_ISR: u16 = 0x64;
pub const CAP_DEVICE: u16 = 0x74;
pub const CAP_PCI_CFG: u16 = 0x84;
pub const CAP_MSIX: u16 = 0x98;
/// Size of a conventional PCI configuration space.
pub const CONFIG_SPACE_SIZE: u16 = 0x100;

const CAPS_START: u16 = 0x40;
const CAPS_LEN: usize = (CONFIG_SPACE_SIZE - CAPS_START) as usize;
/// `struct virtio_pci_cfg_cap` fields, relative to the capability.
const PCI_CFG_BAR: u16 = 4;
const PCI_CFG_OFFSET: u16 = 8;
const PCI_CFG_LENGTH: u16 = 12;
const PCI_CFG_DATA: u16 = 16;
/// MSI-X Message Control bits.
const MSIX_CONTROL_ENABLE: u16 = 1 << 15;
const MSIX_CONTROL_FUNCTION_MASK: u16 = 1 << 14;
const MSIX_ENTRY_SIZE: u64 = 16;

/// Transport features this model cannot provide.
const UNSUPPORTED_FEATURES: u64 =
    VIRTIO_F_RING_PACKED | VIRTIO_F_NOTIFICATION_DATA | VIRTIO_F_NOTIF_CONFIG_DATA | VIRTIO_F_RING_RESET;

/// `(offset, size)` of every common configuration field.
const COMMON_FIELDS: [(u64, u64); 16] = [
    (common::DEVICE_FEATURE_SELECT, 4),
    (common::DEVICE_FEATURE, 4),
    (common::DRIVER_FEATURE_SELECT, 4),
    (common::DRIVER_FEATURE, 4),
    (common::CONFIG_MSIX_VECTOR, 2),
    (common::NUM_QUEUES, 2),
    (common::DEVICE_STATUS, 1),
    (common::CONFIG_GENERATION, 1),
    (common::QUEUE_SELECT, 2),
    (common::QUEUE_SIZE, 2),
    (common::QUEUE_MSIX_VECTOR, 2),
    (common::QUEUE_ENABLE, 2),
    (common::QUEUE_NOTIFY_OFF, 2),
    (common::QUEUE_DESC, 8),
    (common::QUEUE_DRIVER, 8),
    (common::QUEUE_DEVICE, 8),
];

/// What the function is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionConfig {
    /// Virtio device type ([`crate::device_id`]).
    pub device_type: u16,
    /// Features offered; must include VIRTIO_F_VERSION_1.
    pub device_features: u64,
    pub num_queues: u16,
    /// Largest size of every queue (a power of two).
    pub queue_max_size: u16,
    /// MSI-X table size, 1 to [`MAX_MSIX_VECTORS`]; `num_queues + 1` lets
    /// each queue and configuration changes have their own vector.
    pub msix_vectors: u16,
    /// 0, 2 or 4 (see the module documentation).
    pub notify_off_multiplier: u32,
}

/// Why a [`FunctionConfig`] cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionConfigError {
    /// No queues, or more than [`MAX_QUEUES`].
    QueueCount(u16),
    /// Queue maximum size zero, not a power of two or above 32768.
    QueueMaxSize(u16),
    /// MSI-X table size zero or above [`MAX_MSIX_VECTORS`].
    MsixVectors(u16),
    /// A multiplier other than 0, 2 or 4, or one that needs more than the
    /// 256 ports an I/O BAR may have.
    NotifyOffMultiplier(u32),
    /// VIRTIO_F_VERSION_1 not offered, or a transport feature this model
    /// does not implement offered.
    Features(u64),
    /// Device configuration above [`MAX_DEVICE_CONFIG_LEN`] bytes.
    DeviceConfigLen(usize),
}

/// The identity registers the type-0 header presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciIdentity {
    pub vendor_id: u16,
    pub device_id: u16,
    pub revision: u8,
    /// Base class, subclass, programming interface in bits 23:0.
    pub class_code: u32,
    pub subsystem_vendor_id: u16,
    pub subsystem_id: u16,
    /// 1 = INTA#.
    pub interrupt_pin: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    Memory32,
    Io,
}

/// One BAR the function implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarLayout {
    pub index: u8,
    pub kind: BarKind,
    pub size: u64,
}

/// An MSI-X message: a dword write of `data` to `address`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMessage {
    pub address: u64,
    pub data: u32,
}

/// An interrupt the hypervisor must deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    Msi(MsiMessage),
    /// MSI-X is off: the ISR became non-zero, INTx is asserted (see
    /// [`VirtioPciFunction::intx_level`]).
    Intx,
}

/// What a register write asks of the hypervisor and the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// The driver notified queue `n` (enabled, after DRIVER_OK).
    QueueNotify(u16),
    /// Queue `n` was enabled; [`VirtioPciFunction::queue_config`] has its layout.
    QueueEnabled(u16),
    /// The driver changed the device status (not to 0): FEATURES_OK
    /// accepted or refused, DRIVER_OK (start the device), FAILED.
    StatusChanged {
        old: u8,
        new: u8,
    },
    /// The driver wrote 0 to the status: the transport state is back to
    /// its reset values; stop the backend's use of the queues, then call
    /// [`VirtioPciFunction::complete_reset`].
    Reset,
    /// The device set DEVICE_NEEDS_RESET because the driver misconfigured
    /// it (a queue enabled with a bad layout or before FEATURES_OK,
    /// DRIVER_OK without FEATURES_OK), with the configuration-change
    /// interrupt to deliver if any.
    NeedsReset(Option<Interrupt>),
    /// The driver wrote the device configuration (bytes unchanged: the
    /// device decides, then calls [`VirtioPciFunction::set_device_config`]).
    DeviceConfigWrite {
        offset: u16,
        size: u8,
        value: u64,
    },
    /// An MSI-X vector with a pending message was unmasked: call
    /// [`VirtioPciFunction::next_released_interrupt`] until `None`.
    InterruptsReleased,
}

/// Per-queue transport registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct QueueRegs {
    size: u16,
    msix_vector: u16,
    enabled: bool,
    desc: u64,
    driver: u64,
    device: u64,
}

impl QueueRegs {
    const fn reset(max_size: u16) -> Self {
        Self {
            size: max_size,
            msix_vector: NO_VECTOR,
            enabled: false,
            desc: 0,
            driver: 0,
            device: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct MsixEntry {
    address: u64,
    data: u32,
    masked: bool,
}

/// One virtio-pci function's transport state. See the module documentation.
#[derive(Clone, Debug)]
pub struct VirtioPciFunction {
    config: FunctionConfig,
    device_feature_select: u32,
    driver_feature_select: u32,
    driver_features: u64,
    status: u8,
    /// While a reset is in progress: the status the driver keeps reading.
    resetting: Option<u8>,
    config_generation: u8,
    /// The device configuration changed since the driver last read it.
    config_dirty: bool,
    queue_select: u16,
    config_msix_vector: u16,
    queues: [QueueRegs; MAX_QUEUES],
    isr: u8,
    device_config: [u8; MAX_DEVICE_CONFIG_LEN],
    device_config_len: usize,
    /// Configuration space 0x40..0x100: capabilities, with the writable
    /// fields (MSI-X control, the PCI cfg window) kept in place.
    caps: [u8; CAPS_LEN],
    msix_entries: [MsixEntry; MAX_MSIX_VECTORS as usize],
    msix_pending: u64,
}

fn read_le(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0, |value, &byte| value << 8 | u64::from(byte))
}

fn valid_size(size: u8) -> bool {
    matches!(size, 1 | 2 | 4 | 8)
}

impl VirtioPciFunction {
    /// A function in its reset state, presenting `device_config`.
    pub fn new(config: FunctionConfig, device_config: &[u8]) -> Result<Self, FunctionConfigError> {
        if config.num_queues == 0 || usize::from(config.num_queues) > MAX_QUEUES {
            return Err(FunctionConfigError::QueueCount(config.num_queues));
        }
        let max = config.queue_max_size;
        if max == 0 || !max.is_power_of_two() || max > MAX_QUEUE_SIZE {
            return Err(FunctionConfigError::QueueMaxSize(max));
        }
        if config.msix_vectors == 0 || config.msix_vectors > MAX_MSIX_VECTORS {
            return Err(FunctionConfigError::MsixVectors(config.msix_vectors));
        }
        let multiplier = config.notify_off_multiplier;
        if !matches!(multiplier, 0 | 2 | 4) || notify_len(config.num_queues, multiplier) > 256 {
            return Err(FunctionConfigError::NotifyOffMultiplier(multiplier));
        }
        let features = config.device_features;
        if features & VIRTIO_F_VERSION_1 == 0 || features & UNSUPPORTED_FEATURES != 0 {
            return Err(FunctionConfigError::Features(features));
        }
        if device_config.len() > MAX_DEVICE_CONFIG_LEN {
            return Err(FunctionConfigError::DeviceConfigLen(device_config.len()));
        }
        let mut function = Self {
            config,
            device_feature_select: 0,
            driver_feature_select: 0,
            driver_features: 0,
            status: 0,
            resetting: None,
            config_generation: 0,
            config_dirty: false,
            queue_select: 0,
            config_msix_vector: NO_VECTOR,
            queues: [QueueRegs::reset(max); MAX_QUEUES],
            isr: 0,
            device_config: [0; MAX_DEVICE_CONFIG_LEN],
            device_config_len: device_config.len(),
            caps: [0; CAPS_LEN],
            msix_entries: [MsixEntry {
                masked: true,
                ..MsixEntry::default()
            }; MAX_MSIX_VECTORS as usize],
            msix_pending: 0,
        };
        function.device_config[..device_config.len()].copy_from_slice(device_config);
        function.build_capabilities();
        Ok(function)
    }

    fn build_capabilities(&mut self) {
        let has_device_cfg = self.device_config_len > 0;
        let after_isr = if has_device_cfg { CAP_DEVICE } else { CAP_PCI_CFG };
        let notify_len = notify_len(self.config.num_queues, self.config.notify_off_multiplier);
        self.vendor_cap(
            CAP_COMMON,
            CAP_NOTIFY,
            16,
            VIRTIO_PCI_CAP_COMMON_CFG,
            MMIO_BAR,
            COMMON_CFG_OFFSET,
            COMMON_CFG_LEN,
        );
        self.vendor_cap(
            CAP_NOTIFY,
            CAP_ISR,
            20,
            VIRTIO_PCI_CAP_NOTIFY_CFG,
            NOTIFY_BAR,
            0,
            notify_len,
        );
        self.put(CAP_NOTIFY + 16, &self.config.notify_off_multiplier.to_le_bytes());
        self.vendor_cap(CAP_ISR, after_isr, 16, VIRTIO_PCI_CAP_ISR_CFG, MMIO_BAR, ISR_OFFSET, 1);
        if has_device_cfg {
            let len = self.device_config_len as u64;
            self.vendor_cap(
                CAP_DEVICE,
                CAP_PCI_CFG,
                16,
                VIRTIO_PCI_CAP_DEVICE_CFG,
                MMIO_BAR,
                DEVICE_CFG_OFFSET,
                len,
            );
        }
        // The window starts pointing nowhere (bar 0, offset 0, length 0).
        self.vendor_cap(CAP_PCI_CFG, CAP_MSIX, 20, VIRTIO_PCI_CAP_PCI_CFG, MMIO_BAR, 0, 0);
        let control = self.config.msix_vectors - 1;
        self.put(CAP_MSIX, &[PCI_CAP_ID_MSIX, 0]);
        self.put(CAP_MSIX + 2, &control.to_le_bytes());
        self.put(
            CAP_MSIX + 4,
            &(MSIX_TABLE_OFFSET as u32 | u32::from(MMIO_BAR)).to_le_bytes(),
        );
        self.put(
            CAP_MSIX + 8,
            &(MSIX_PBA_OFFSET as u32 | u32::from(MMIO_BAR)).to_le_bytes(),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn vendor_cap(&mut self, at: u16, next: u16, len: u8, cfg_type: u8, bar: u8, offset: u64, length: u64) {
        self.put(at, &[PCI_CAP_ID_VNDR, next as u8, len, cfg_type, bar, 0, 0, 0]);
        self.put(at + 8, &(offset as u32).to_le_bytes());
        self.put(at + 12, &(length as u32).to_le_bytes());
    }

    fn put(&mut self, at: u16, bytes: &[u8]) {
        let start = usize::from(at - CAPS_START);
        self.caps[start..start + bytes.len()].copy_from_slice(bytes);
    }

    fn cap_bytes(&self, at: u16, len: usize) -> &[u8] {
        let start = usize::from(at - CAPS_START);
        &self.caps[start..start + len]
    }

    // ----- identity -----

    pub fn function_config(&self) -> FunctionConfig {
        self.config
    }

    /// What the type-0 header says about this function.
    pub fn identity(&self) -> PciIdentity {
        let class_code = match self.config.device_type {
            device_id::NET => 0x02_00_00,
            device_id::BLOCK => 0x01_00_00,
            device_id::CONSOLE => 0x07_80_00,
            _ => 0xFF_00_00,
        };
        PciIdentity {
            vendor_id: VIRTIO_PCI_VENDOR_ID,
            device_id: VIRTIO_PCI_DEVICE_ID_BASE.wrapping_add(self.config.device_type),
            revision: VIRTIO_PCI_REVISION,
            class_code,
            subsystem_vendor_id: VIRTIO_PCI_VENDOR_ID,
            subsystem_id: VIRTIO_PCI_SUBSYSTEM_ID,
            interrupt_pin: 1,
        }
    }

    /// The BARs to put in the type-0 header.
    pub fn bars(&self) -> [BarLayout; 2] {
        let notify_size = notify_len(self.config.num_queues, self.config.notify_off_multiplier)
            .max(4)
            .next_power_of_two();
        [
            BarLayout {
                index: MMIO_BAR,
                kind: BarKind::Memory32,
                size: MMIO_BAR_SIZE,
            },
            BarLayout {
                index: NOTIFY_BAR,
                kind: BarKind::Io,
                size: notify_size,
            },
        ]
    }

    // ----- state the backend and hypervisor read -----

    /// The device status as the function holds it (0 during a reset).
    pub fn status(&self) -> u8 {
        self.status
    }

    /// Whether a reset waits for [`complete_reset`](Self::complete_reset).
    pub fn reset_pending(&self) -> bool {
        self.resetting.is_some()
    }

    /// The features the driver accepted, once FEATURES_OK is set.
    pub fn negotiated_features(&self) -> Option<u64> {
        (self.status & FEATURES_OK != 0).then_some(self.driver_features)
    }

    /// Queue `n`'s layout, if the driver enabled it.
    pub fn queue_config(&self, n: u16) -> Option<QueueConfig> {
        let queue = self.queues.get(usize::from(n)).filter(|_| n < self.config.num_queues)?;
        queue.enabled.then_some(QueueConfig {
            size: queue.size,
            desc_table: queue.desc,
            avail_ring: queue.driver,
            used_ring: queue.device,
        })
    }

    pub fn queue_msix_vector(&self, n: u16) -> Option<u16> {
        (n < self.config.num_queues).then(|| self.queues[usize::from(n)].msix_vector)
    }

    pub fn config_msix_vector(&self) -> u16 {
        self.config_msix_vector
    }

    pub fn msix_enabled(&self) -> bool {
        self.msix_control() & MSIX_CONTROL_ENABLE != 0
    }

    fn msix_function_masked(&self) -> bool {
        self.msix_control() & MSIX_CONTROL_FUNCTION_MASK != 0
    }

    fn msix_control(&self) -> u16 {
        read_le(self.cap_bytes(CAP_MSIX + 2, 2)) as u16
    }

    /// The INTx pin's level: the ISR is non-zero and MSI-X is off.
    pub fn intx_level(&self) -> bool {
        self.isr != 0 && !self.msix_enabled()
    }

    pub fn config_generation(&self) -> u8 {
        self.config_generation
    }

    pub fn device_config(&self) -> &[u8] {
        &self.device_config[..self.device_config_len]
    }

    // ----- events from the device side -----

    /// The hypervisor stopped the backend after [`Effect::Reset`]: status
    /// now reads 0 and the driver may reinitialise the device.
    pub fn complete_reset(&mut self) {
        self.resetting = None;
    }

    /// The device used buffers on queue `n`: the interrupt to deliver, if
    /// any (none before DRIVER_OK, with MSI-X and no vector, or masked: then
    /// the vector's pending bit is set).
    pub fn signal_queue(&mut self, n: u16) -> Option<Interrupt> {
        if !self.running() || n >= self.config.num_queues {
            return None;
        }
        if self.msix_enabled() {
            self.msix_signal(self.queues[usize::from(n)].msix_vector)
        } else {
            self.isr |= 1;
            Some(Interrupt::Intx)
        }
    }

    /// Replaces the device configuration. If it changed, the driver sees a
    /// new `config_generation` at its next configuration read and gets a
    /// configuration-change interrupt (returned).
    pub fn set_device_config(&mut self, bytes: &[u8]) -> Option<Interrupt> {
        let len = bytes.len().min(self.device_config_len);
        if self.device_config[..len] == bytes[..len] {
            return None;
        }
        self.device_config[..len].copy_from_slice(&bytes[..len]);
        self.config_dirty = true;
        self.signal_config()
    }

    /// The device cannot go on (a [`crate::queue::QueueError`] that
    /// [`needs_reset`](crate::queue::QueueError::needs_reset)): sets
    /// DEVICE_NEEDS_RESET and, after DRIVER_OK, returns the
    /// configuration-change interrupt the spec requires.
    pub fn set_needs_reset(&mut self) -> Option<Interrupt> {
        if self.resetting.is_some() || self.status & DEVICE_NEEDS_RESET != 0 {
            return None;
        }
        self.status |= DEVICE_NEEDS_RESET;
        self.signal_config()
    }

    /// A pending MSI-X message whose vector is no longer masked.
    pub fn next_released_interrupt(&mut self) -> Option<MsiMessage> {
        if !self.msix_enabled() || self.msix_function_masked() {
            return None;
        }
        let vectors = usize::from(self.config.msix_vectors);
        let vector = (0..vectors).find(|&v| self.msix_pending & (1 << v) != 0 && !self.msix_entries[v].masked)?;
        self.msix_pending &= !(1 << vector);
        let entry = self.msix_entries[vector];
        Some(MsiMessage {
            address: entry.address,
            data: entry.data,
        })
    }

    fn running(&self) -> bool {
        self.resetting.is_none() && self.status & DRIVER_OK != 0
    }

    fn signal_config(&mut self) -> Option<Interrupt> {
        if !self.running() {
            return None;
        }
        self.isr |= 2;
        if self.msix_enabled() {
            self.msix_signal(self.config_msix_vector)
        } else {
            Some(Interrupt::Intx)
        }
    }

    fn msix_signal(&mut self, vector: u16) -> Option<Interrupt> {
        if vector >= self.config.msix_vectors {
            return None;
        }
        let entry = self.msix_entries[usize::from(vector)];
        if entry.masked || self.msix_function_masked() {
            self.msix_pending |= 1 << vector;
            return None;
        }
        Some(Interrupt::Msi(MsiMessage {
            address: entry.address,
            data: entry.data,
        }))
    }

    // ----- configuration space (0x40..0x100) -----

    /// Reads `size` (1, 2 or 4) bytes of configuration space at `offset`.
    /// Offsets below 0x40 (the header) and past 0x100 read 0. A read of the
    /// PCI cfg window's data performs the BAR read it describes.
    pub fn config_read(&mut self, offset: u16, size: u8) -> u32 {
        if !matches!(size, 1 | 2 | 4) {
            return 0;
        }
        let data = CAP_PCI_CFG + PCI_CFG_DATA;
        if overlaps(u64::from(offset), u64::from(size), u64::from(data), 4) {
            self.window_read();
        }
        let mut value = 0u32;
        for i in (0..u16::from(size)).rev() {
            let at = offset.saturating_add(i);
            let byte = if (CAPS_START..CONFIG_SPACE_SIZE).contains(&at) {
                self.caps[usize::from(at - CAPS_START)]
            } else {
                0
            };
            value = value << 8 | u32::from(byte);
        }
        value
    }

    /// Writes configuration space: the MSI-X Enable and Function Mask bits
    /// and the PCI cfg window's bar, offset, length and data (a data write
    /// performs the BAR write). Everything else is read-only.
    pub fn config_write(&mut self, offset: u16, size: u8, value: u32) -> Effect {
        if !matches!(size, 1 | 2 | 4) {
            return Effect::None;
        }
        let released_before = self.releasable();
        let mut wrote_data = false;
        for i in 0..u16::from(size) {
            let at = offset.saturating_add(i);
            let byte = (value >> (8 * i)) as u8;
            let window = CAP_PCI_CFG;
            if at == CAP_MSIX + 3 {
                let keep = self.caps[usize::from(at - CAPS_START)] & 0x3F;
                self.caps[usize::from(at - CAPS_START)] = keep | (byte & 0xC0);
            } else if at == window + PCI_CFG_BAR || (window + PCI_CFG_OFFSET..window + PCI_CFG_DATA + 4).contains(&at) {
                self.caps[usize::from(at - CAPS_START)] = byte;
                wrote_data |= at >= window + PCI_CFG_DATA;
            }
        }
        if wrote_data {
            return self.window_write();
        }
        if !released_before && self.releasable() {
            return Effect::InterruptsReleased;
        }
        Effect::None
    }

    /// Whether some pending MSI-X message could be sent now.
    fn releasable(&self) -> bool {
        self.msix_enabled()
            && !self.msix_function_masked()
            && (0..usize::from(self.config.msix_vectors))
                .any(|v| self.msix_pending & (1 << v) != 0 && !self.msix_entries[v].masked)
    }

    /// The PCI cfg window's bar, offset and length, if the length is 1, 2 or 4.
    fn window(&self) -> Option<(u8, u64, u8)> {
        let cap = CAP_PCI_CFG;
        let bar = self.cap_bytes(cap + PCI_CFG_BAR, 1)[0];
        let offset = read_le(self.cap_bytes(cap + PCI_CFG_OFFSET, 4));
        let length = read_le(self.cap_bytes(cap + PCI_CFG_LENGTH, 4));
        matches!(length, 1 | 2 | 4).then_some((bar, offset, length as u8))
    }

    fn window_read(&mut self) {
        let Some((bar, offset, length)) = self.window() else {
            return;
        };
        let value = match bar {
            MMIO_BAR => self.mmio_read(offset, length),
            _ => 0,
        };
        let bytes = (value as u32).to_le_bytes();
        self.put(CAP_PCI_CFG + PCI_CFG_DATA, &bytes[..usize::from(length)]);
    }

    fn window_write(&mut self) -> Effect {
        let Some((bar, offset, length)) = self.window() else {
            return Effect::None;
        };
        let value = read_le(self.cap_bytes(CAP_PCI_CFG + PCI_CFG_DATA, usize::from(length)));
        match bar {
            MMIO_BAR => self.mmio_write(offset, length, value),
            NOTIFY_BAR => self.notify_write(offset, length, value as u32),
            _ => Effect::None,
        }
    }

    // ----- BAR0 -----

    /// Reads `size` (1, 2, 4 or 8) bytes at `offset` in BAR0. Reading the
    /// ISR byte clears it. Holes read 0.
    pub fn mmio_read(&mut self, offset: u64, size: u8) -> u64 {
        if !valid_size(size) {
            return 0;
        }
        let size = u64::from(size);
        if offset < COMMON_CFG_OFFSET + COMMON_CFG_LEN {
            return self.read_bytes(offset, size, |f, at| f.common_byte(at));
        }
        if offset == ISR_OFFSET {
            let isr = self.isr;
            self.isr = 0;
            return u64::from(isr);
        }
        let device_end = DEVICE_CFG_OFFSET + self.device_config_len as u64;
        if (DEVICE_CFG_OFFSET..device_end).contains(&offset) {
            if self.config_dirty {
                self.config_dirty = false;
                self.config_generation = self.config_generation.wrapping_add(1);
            }
            return self.read_bytes(offset - DEVICE_CFG_OFFSET, size, |f, at| {
                f.device_config[..f.device_config_len]
                    .get(at as usize)
                    .copied()
                    .unwrap_or(0)
            });
        }
        let table_end = MSIX_TABLE_OFFSET + MSIX_ENTRY_SIZE * u64::from(self.config.msix_vectors);
        if (MSIX_TABLE_OFFSET..table_end).contains(&offset) {
            let table_len = table_end - MSIX_TABLE_OFFSET;
            return self.read_bytes(offset - MSIX_TABLE_OFFSET, size, |f, at| {
                if at < table_len {
                    f.msix_table_byte(at)
                } else {
                    0
                }
            });
        }
        if (MSIX_PBA_OFFSET..MSIX_PBA_OFFSET + 8).contains(&offset) {
            let pending = self.msix_pending;
            return self.read_bytes(offset - MSIX_PBA_OFFSET, size, |_, at| {
                if at < 8 {
                    (pending >> (8 * at)) as u8
                } else {
                    0
                }
            });
        }
        0
    }

    fn read_bytes(&self, offset: u64, size: u64, byte: impl Fn(&Self, u64) -> u8) -> u64 {
        (0..size)
            .rev()
            .fold(0, |value, i| value << 8 | u64::from(byte(self, offset + i)))
    }

    /// Writes `size` (1, 2, 4 or 8) bytes at `offset` in BAR0. Only
    /// naturally sized, aligned accesses to a register take effect (64-bit
    /// queue addresses also as two 32-bit halves); others are ignored.
    pub fn mmio_write(&mut self, offset: u64, size: u8, value: u64) -> Effect {
        if !valid_size(size) {
            return Effect::None;
        }
        if offset < COMMON_CFG_OFFSET + COMMON_CFG_LEN {
            return self.common_write(offset, size, value);
        }
        let device_end = DEVICE_CFG_OFFSET + self.device_config_len as u64;
        if (DEVICE_CFG_OFFSET..device_end).contains(&offset) {
            return Effect::DeviceConfigWrite {
                offset: (offset - DEVICE_CFG_OFFSET) as u16,
                size,
                value,
            };
        }
        let table_end = MSIX_TABLE_OFFSET + MSIX_ENTRY_SIZE * u64::from(self.config.msix_vectors);
        if (MSIX_TABLE_OFFSET..table_end).contains(&offset) {
            return self.msix_table_write(offset - MSIX_TABLE_OFFSET, size, value);
        }
        Effect::None
    }

    fn selected(&self) -> Option<&QueueRegs> {
        (self.queue_select < self.config.num_queues).then(|| &self.queues[usize::from(self.queue_select)])
    }

    fn common_register(&self, field: u64) -> u64 {
        let queue = self.selected();
        match field {
            common::DEVICE_FEATURE_SELECT => u64::from(self.device_feature_select),
            common::DEVICE_FEATURE => match self.device_feature_select {
                0 => self.config.device_features & 0xFFFF_FFFF,
                1 => self.config.device_features >> 32,
                _ => 0,
            },
            common::DRIVER_FEATURE_SELECT => u64::from(self.driver_feature_select),
            common::DRIVER_FEATURE => match self.driver_feature_select {
                0 => self.driver_features & 0xFFFF_FFFF,
                1 => self.driver_features >> 32,
                _ => 0,
            },
            common::CONFIG_MSIX_VECTOR => u64::from(self.config_msix_vector),
            common::NUM_QUEUES => u64::from(self.config.num_queues),
            common::DEVICE_STATUS => u64::from(self.resetting.unwrap_or(self.status)),
            common::CONFIG_GENERATION => u64::from(self.config_generation),
            common::QUEUE_SELECT => u64::from(self.queue_select),
            common::QUEUE_SIZE => queue.map_or(0, |q| u64::from(q.size)),
            common::QUEUE_MSIX_VECTOR => u64::from(queue.map_or(NO_VECTOR, |q| q.msix_vector)),
            common::QUEUE_ENABLE => queue.map_or(0, |q| u64::from(q.enabled)),
            common::QUEUE_NOTIFY_OFF => match (queue, self.config.notify_off_multiplier) {
                (Some(_), 1..) => u64::from(self.queue_select),
                _ => 0,
            },
            common::QUEUE_DESC => queue.map_or(0, |q| q.desc),
            common::QUEUE_DRIVER => queue.map_or(0, |q| q.driver),
            common::QUEUE_DEVICE => queue.map_or(0, |q| q.device),
            _ => 0,
        }
    }

    fn common_byte(&self, at: u64) -> u8 {
        COMMON_FIELDS
            .iter()
            .find(|&&(start, size)| (start..start + size).contains(&at))
            .map_or(0, |&(start, _)| {
                (self.common_register(start) >> (8 * (at - start))) as u8
            })
    }

    fn common_write(&mut self, offset: u64, size: u8, value: u64) -> Effect {
        if self.resetting.is_some() {
            return Effect::None;
        }
        let value32 = value as u32;
        match (offset, size) {
            (common::DEVICE_FEATURE_SELECT, 4) => self.device_feature_select = value32,
            (common::DRIVER_FEATURE_SELECT, 4) => self.driver_feature_select = value32,
            (common::DRIVER_FEATURE, 4) if self.status & FEATURES_OK == 0 => {
                let value = u64::from(value32);
                match self.driver_feature_select {
                    0 => self.driver_features = (self.driver_features & !0xFFFF_FFFF) | value,
                    1 => self.driver_features = (self.driver_features & 0xFFFF_FFFF) | value << 32,
                    _ => {}
                }
            }
            (common::CONFIG_MSIX_VECTOR, 2) => self.config_msix_vector = self.map_vector(value as u16),
            (common::DEVICE_STATUS, 1) => return self.write_status(value as u8),
            (common::QUEUE_SELECT, 2) => self.queue_select = value as u16,
            (common::QUEUE_SIZE, 2) => self.write_queue_size(value as u16),
            (common::QUEUE_MSIX_VECTOR, 2) => {
                let vector = self.map_vector(value as u16);
                if let Some(queue) = self.selected_mut() {
                    queue.msix_vector = vector;
                }
            }
            (common::QUEUE_ENABLE, 2) => return self.write_queue_enable(value as u16),
            (common::QUEUE_DESC..=0x37, 4 | 8) => self.write_queue_address(offset, size, value),
            _ => {}
        }
        Effect::None
    }

    fn selected_mut(&mut self) -> Option<&mut QueueRegs> {
        (self.queue_select < self.config.num_queues).then(|| &mut self.queues[usize::from(self.queue_select)])
    }

    /// A vector the table has, or NO_VECTOR (which tells the driver the
    /// mapping failed).
    fn map_vector(&self, vector: u16) -> u16 {
        if vector < self.config.msix_vectors {
            vector
        } else {
            NO_VECTOR
        }
    }

    fn write_status(&mut self, value: u8) -> Effect {
        let old = self.status;
        if value == 0 {
            self.reset();
            return Effect::Reset;
        }
        // Bits only accumulate until reset, and DEVICE_NEEDS_RESET is the device's.
        let mut new = old | (value & !DEVICE_NEEDS_RESET);
        if new & FEATURES_OK != 0 && old & FEATURES_OK == 0 && !self.features_acceptable() {
            new &= !FEATURES_OK;
        }
        let mut misconfigured = false;
        if new & DRIVER_OK != 0 && old & DRIVER_OK == 0 && new & FEATURES_OK == 0 {
            new &= !DRIVER_OK;
            misconfigured = true;
        }
        self.status = new;
        if misconfigured {
            return Effect::NeedsReset(self.set_needs_reset());
        }
        if new == old {
            Effect::None
        } else {
            Effect::StatusChanged { old, new }
        }
    }

    /// FEATURES_OK is granted when the driver accepted only offered
    /// features, VIRTIO_F_VERSION_1 among them (this is a modern-only device).
    fn features_acceptable(&self) -> bool {
        self.driver_features & !self.config.device_features == 0 && self.driver_features & VIRTIO_F_VERSION_1 != 0
    }

    fn reset(&mut self) {
        // From status 0 there is nothing a backend could be using (queues
        // are enabled only after FEATURES_OK): the reset is complete at
        // once. Linux's probe resets a fresh device and goes straight on to
        // ACKNOWLEDGE, which a pending reset would ignore.
        self.resetting = (self.status != 0).then_some(self.status);
        self.status = 0;
        self.device_feature_select = 0;
        self.driver_feature_select = 0;
        self.driver_features = 0;
        self.queue_select = 0;
        self.config_msix_vector = NO_VECTOR;
        self.queues = [QueueRegs::reset(self.config.queue_max_size); MAX_QUEUES];
        self.isr = 0;
    }

    /// Sizes that are zero, not a power of two, above the maximum or
    /// written to an enabled queue are ignored: the register keeps its
    /// value, which a careful driver reads back.
    fn write_queue_size(&mut self, size: u16) {
        let max = self.config.queue_max_size;
        if let Some(queue) = self.selected_mut() {
            if !queue.enabled && size != 0 && size.is_power_of_two() && size <= max {
                queue.size = size;
            }
        }
    }

    fn write_queue_enable(&mut self, value: u16) -> Effect {
        let index = self.queue_select;
        let max = self.config.queue_max_size;
        let features_ok = self.status & FEATURES_OK != 0;
        let Some(queue) = self.selected_mut() else {
            return Effect::None;
        };
        // Writing 0 is forbidden to the driver (no VIRTIO_F_RING_RESET): ignored.
        if value != 1 || queue.enabled {
            return Effect::None;
        }
        let config = QueueConfig {
            size: queue.size,
            desc_table: queue.desc,
            avail_ring: queue.driver,
            used_ring: queue.device,
        };
        if features_ok && config.validate(max).is_ok() {
            queue.enabled = true;
            return Effect::QueueEnabled(index);
        }
        Effect::NeedsReset(self.set_needs_reset())
    }

    fn write_queue_address(&mut self, offset: u64, size: u8, value: u64) {
        let Some(queue) = self.selected_mut() else {
            return;
        };
        if queue.enabled {
            return;
        }
        let field = match offset & !7 {
            common::QUEUE_DESC => &mut queue.desc,
            common::QUEUE_DRIVER => &mut queue.driver,
            _ => &mut queue.device,
        };
        *field = match (size, offset % 8) {
            (8, 0) => value,
            (4, 0) => (*field & !0xFFFF_FFFF) | (value & 0xFFFF_FFFF),
            (4, 4) => (*field & 0xFFFF_FFFF) | (value & 0xFFFF_FFFF) << 32,
            _ => *field,
        };
    }

    fn msix_table_byte(&self, at: u64) -> u8 {
        let entry = self.msix_entries[(at / MSIX_ENTRY_SIZE) as usize];
        let dword = match (at % MSIX_ENTRY_SIZE) / 4 {
            0 => entry.address as u32,
            1 => (entry.address >> 32) as u32,
            2 => entry.data,
            _ => u32::from(entry.masked),
        };
        (dword >> (8 * (at % 4))) as u8
    }

    /// Dword or aligned qword writes to the MSI-X table.
    fn msix_table_write(&mut self, at: u64, size: u8, value: u64) -> Effect {
        match (size, at % 8, at % 4) {
            (4, _, 0) => self.msix_dword_write(at, value as u32),
            (8, 0, _) => {
                let first = self.msix_dword_write(at, value as u32);
                let second = self.msix_dword_write(at + 4, (value >> 32) as u32);
                if first == Effect::None {
                    second
                } else {
                    first
                }
            }
            _ => Effect::None,
        }
    }

    fn msix_dword_write(&mut self, at: u64, value: u32) -> Effect {
        let vector = (at / MSIX_ENTRY_SIZE) as usize;
        let releasable = self.releasable();
        let entry = &mut self.msix_entries[vector];
        match (at % MSIX_ENTRY_SIZE) / 4 {
            // Message addresses are dword aligned: the low two bits are reserved.
            0 => entry.address = (entry.address & !0xFFFF_FFFF) | u64::from(value & !3),
            1 => entry.address = (entry.address & 0xFFFF_FFFF) | u64::from(value) << 32,
            2 => entry.data = value,
            _ => entry.masked = value & 1 != 0,
        }
        if !releasable && self.releasable() {
            Effect::InterruptsReleased
        } else {
            Effect::None
        }
    }

    // ----- BAR2 -----

    /// A write to the notification ports. 16-bit writes (32-bit accepted);
    /// with multiplier 0 the value names the queue, otherwise the port does.
    /// Ignored before DRIVER_OK, for unknown or disabled queues, and while
    /// a reset is pending.
    pub fn notify_write(&mut self, offset: u64, size: u8, value: u32) -> Effect {
        if !matches!(size, 2 | 4) || !self.running() {
            return Effect::None;
        }
        let multiplier = u64::from(self.config.notify_off_multiplier);
        let queue = match multiplier {
            0 if offset == 0 => value as u16,
            0 => return Effect::None,
            _ if offset.is_multiple_of(multiplier) => match u16::try_from(offset / multiplier) {
                Ok(queue) => queue,
                Err(_) => return Effect::None,
            },
            _ => return Effect::None,
        };
        match self.queues.get(usize::from(queue)) {
            Some(regs) if queue < self.config.num_queues && regs.enabled => Effect::QueueNotify(queue),
            _ => Effect::None,
        }
    }
}

/// Bytes of the notification region: `cap.length >= notify_off ×
/// multiplier + 2` for every queue.
fn notify_len(num_queues: u16, multiplier: u32) -> u64 {
    u64::from(num_queues.saturating_sub(1)) * u64::from(multiplier) + 2
}

fn overlaps(a: u64, a_len: u64, b: u64, b_len: u64) -> bool {
    a < b + b_len && b < a + a_len
}

#[cfg(test)]
mod tests;

//! The MSI and MSI-X capabilities of a host PCI function assigned to a
//! guest, as the guest sees them (PCI Local Bus 3.0 §6.8).
//!
//! Why they are emulated: an MSI is nothing but a memory write the device
//! performs, to the address and with the data software programmed. A guest
//! that programmed the real device's MSI or MSI-X registers directly could
//! make the device write anywhere in the interrupt address range (any host
//! CPU, any host vector) or send NMIs, SMIs and INITs to the host. So the
//! guest only ever sees the registers modelled here; Keel reads the guest's
//! programming from them ([`MsiCapability::state`], [`MsixTable::entry`]),
//! checks it ([`GuestMsi::decode`] refuses everything but fixed and
//! lowest-priority interrupts to valid vectors) and programs the real device
//! itself with host vectors (or interrupt-remapping entries) of its choosing.
//! When the real device interrupts, Keel asks the model what the guest would
//! have received ([`MsiCapability::fire`], [`MsixCapability::fire`]), which
//! also keeps the guest-visible pending bits honest for masked vectors.
//!
//! What is modelled:
//! - [`MsiCapability`]: ID 0x05, the next pointer, Message Control (Enable
//!   and Multiple Message Enable writable, MME clamped to the host's Multiple
//!   Message Capable; 64-bit and per-vector-masking capability bits copied
//!   from the host, everything else 0), Message Address (bits 1:0 read 0),
//!   Message Upper Address for 64-bit functions, Message Data (16 bits; the
//!   extended message data half reads 0), and Mask Bits / Pending Bits for
//!   functions with per-vector masking (pending is read-only: the model sets
//!   it). Any 1-, 2- or 4-byte access at any offset works byte lane by byte
//!   lane, as in [`crate::pci_config`].
//! - [`MsixCapability`]: ID 0x11, the next pointer, Message Control (MSI-X
//!   Enable and Function Mask writable, Table Size read-only), and the Table
//!   and PBA Offset/BIR registers exactly as the host has them (Keel maps the
//!   BARs one to one, so the guest finds the table where the device has it,
//!   and traps those pages: [`PassthroughCapabilities::msix_table_location`]).
//! - [`MsixTable`]: the table (16 bytes per entry: address low and high,
//!   data, vector control with bit 0 the mask, masked at reset) and the
//!   pending bit array (read-only to the guest), for aligned dword and qword
//!   accesses, which are all the spec allows; any other access reads 0 and
//!   writes nothing.
//! - [`PassthroughCapabilities`]: the guest-visible capability list, at a
//!   fixed layout in the device-specific area (MSI at [`MSI_GUEST_OFFSET`],
//!   MSI-X at [`MSIX_GUEST_OFFSET`]), for the function's configuration space
//!   handler to consult before anything else past the header.
//!
//! Nothing else of the host's capability list (power management, PCI
//! Express, vendor capabilities) is shown: the guest cannot reach them.

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use crate::InterruptMessage;

/// Capability IDs.
pub const MSI_CAPABILITY_ID: u8 = 0x05;
pub const MSIX_CAPABILITY_ID: u8 = 0x11;

/// MSI Message Control bits (PCI 3.0 §6.8.1.3).
pub const MSI_CONTROL_ENABLE: u16 = 1 << 0;
pub const MSI_CONTROL_64BIT: u16 = 1 << 7;
pub const MSI_CONTROL_PER_VECTOR_MASKING: u16 = 1 << 8;
const MSI_CONTROL_CAPABLE_SHIFT: u16 = 1;
const MSI_CONTROL_ENABLED_SHIFT: u16 = 4;
/// Multiple Message Capable / Enable are 3-bit log2 vector counts.
const MSI_CONTROL_COUNT_BITS: u16 = 0b111;
/// 32 vectors at most: the encodings above 5 are reserved.
const MSI_MAX_LOG2_VECTORS: u8 = 5;
/// Message addresses are dword aligned: bits 1:0 are reserved, read 0.
const MSI_ADDRESS_RESERVED_BITS: u64 = 0b11;

/// MSI-X Message Control bits (PCI 3.0 §6.8.2.3).
pub const MSIX_CONTROL_ENABLE: u16 = 1 << 15;
pub const MSIX_CONTROL_FUNCTION_MASK: u16 = 1 << 14;
/// Table Size: the entry count minus one.
pub const MSIX_CONTROL_TABLE_SIZE: u16 = 0x7FF;
/// Most MSI-X table entries a function can have.
pub const MSIX_MAX_ENTRIES: u16 = 2048;
/// Bytes of one MSI-X table entry.
pub const MSIX_ENTRY_BYTES: u32 = 16;
/// Bytes of the MSI-X capability structure.
pub const MSIX_CAPABILITY_BYTES: u8 = 12;
/// The BAR Indicator in the low bits of the Table and PBA registers.
pub const MSIX_BIR_BITS: u32 = 0b111;
/// BARs 0-5 exist; BIR values 6 and 7 are reserved.
const MSIX_MAX_BIR: u8 = 5;
/// Vector Control bit 0: the entry is masked. The other bits are reserved.
pub const MSIX_VECTOR_CONTROL_MASKED: u32 = 1;
/// Pending bits per PBA qword.
const PBA_BITS_PER_QWORD: u16 = 64;

/// Where the emulated capabilities sit in the guest's configuration space.
/// The largest MSI structure (64-bit with per-vector masking) is 0x18
/// bytes, so MSI ends by 0x68, before MSI-X.
pub const MSI_GUEST_OFFSET: u8 = 0x50;
pub const MSIX_GUEST_OFFSET: u8 = 0x70;

/// Interrupt messages on x86: a write to 0xFEEx_xxxx (Intel SDM vol. 3
/// §11.11). Compared against the address shifted right by 20.
const INTERRUPT_ADDRESS_WINDOW: u64 = 0xFEE;
const INTERRUPT_ADDRESS_WINDOW_SHIFT: u32 = 20;
/// Destination ID, address bits 19:12.
const ADDRESS_DESTINATION_SHIFT: u32 = 12;
/// Address bit 4: VT-d's remappable format. The guest has no interrupt
/// remapping unit, so it never has a reason to set it.
const ADDRESS_REMAPPABLE_FORMAT: u64 = 1 << 4;
/// Delivery mode, data bits 10:8.
const DATA_DELIVERY_MODE_SHIFT: u32 = 8;
const DATA_DELIVERY_MODE_BITS: u32 = 0b111;
const DELIVERY_MODE_FIXED: u8 = 0b000;
const DELIVERY_MODE_LOWEST_PRIORITY: u8 = 0b001;
/// Trigger mode, data bit 15: 1 = level.
const DATA_LEVEL_TRIGGERED: u32 = 1 << 15;
/// Vectors 0-15 are reserved (exceptions); a local APIC refuses them.
pub const FIRST_VALID_VECTOR: u8 = 16;

/// Why a guest's message cannot become an interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiError {
    /// The address is outside 0xFEE0_0000-0xFEEF_FFFF: an ordinary memory
    /// write, not an interrupt.
    NotAnInterrupt(u64),
    /// Address bit 4 asks for interrupt remapping, which the guest does not have.
    RemappableFormat,
    /// SMI, NMI, INIT, ExtINT or a reserved mode: a guest must not make
    /// its device send those.
    DeliveryMode(u8),
    /// Vectors 0-15 are reserved.
    Vector(u8),
}

impl core::fmt::Display for MsiError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::NotAnInterrupt(address) => write!(f, "MSI address {address:#x} is not an interrupt"),
            Self::RemappableFormat => write!(f, "MSI address in remappable format"),
            Self::DeliveryMode(mode) => write!(f, "MSI delivery mode {mode:#05b} refused"),
            Self::Vector(vector) => write!(f, "MSI vector {vector} is reserved"),
        }
    }
}

/// A message the guest programmed: the dword write of `data` to `address`
/// its device would perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestMsi {
    pub address: u64,
    pub data: u32,
}

impl GuestMsi {
    /// What an interrupt message asks of the local APICs. Only fixed and
    /// lowest-priority interrupts to vectors 16-255 are accepted; the
    /// destination mode (address bit 2) and redirection hint (bit 3) are not
    /// kept, as [`InterruptMessage`] has no place for them.
    pub fn decode(address: u64, data: u32) -> Result<InterruptMessage, MsiError> {
        if address >> INTERRUPT_ADDRESS_WINDOW_SHIFT != INTERRUPT_ADDRESS_WINDOW {
            return Err(MsiError::NotAnInterrupt(address));
        }
        if address & ADDRESS_REMAPPABLE_FORMAT != 0 {
            return Err(MsiError::RemappableFormat);
        }
        // Checked before the vector: NMI, INIT and SMI ignore the vector
        // field, so the mode is the more useful error.
        let mode = ((data >> DATA_DELIVERY_MODE_SHIFT) & DATA_DELIVERY_MODE_BITS) as u8;
        if mode != DELIVERY_MODE_FIXED && mode != DELIVERY_MODE_LOWEST_PRIORITY {
            return Err(MsiError::DeliveryMode(mode));
        }
        let vector = data as u8;
        if vector < FIRST_VALID_VECTOR {
            return Err(MsiError::Vector(vector));
        }
        Ok(InterruptMessage {
            vector,
            destination: ((address >> ADDRESS_DESTINATION_SHIFT) & 0xFF) as u32,
            level_triggered: data & DATA_LEVEL_TRIGGERED != 0,
        })
    }

    /// [`GuestMsi::decode`] of this message.
    pub fn interrupt(&self) -> Result<InterruptMessage, MsiError> {
        Self::decode(self.address, self.data)
    }
}

// ----- byte lanes -----

/// Whether `size` is an access width configuration space has.
const fn config_size_valid(size: u8) -> bool {
    matches!(size, 1 | 2 | 4)
}

/// The offset of `offset + index` from `base` if it falls in `base..base + len`.
fn offset_within(offset: u16, index: u16, base: u16, len: u16) -> Option<u16> {
    offset
        .checked_add(index)
        .and_then(|at| at.checked_sub(base))
        .filter(|relative| *relative < len)
}

/// Reads `size` bytes at `offset` from a structure of `len` bytes at `base`
/// whose dwords `dword` returns (by offset from `base`, a multiple of 4).
/// Bytes outside the structure read 0.
fn read_lanes(offset: u16, size: u8, base: u16, len: u16, dword: impl Fn(u16) -> u32) -> u32 {
    if !config_size_valid(size) {
        return 0;
    }
    (0..u16::from(size)).fold(0, |value, index| {
        let byte = offset_within(offset, index, base, len)
            .map_or(0, |relative| (dword(relative & !3) >> (8 * (relative % 4))) & 0xFF);
        value | byte << (8 * index)
    })
}

/// Splits a write of `size` bytes of `value` at `offset` into per-dword
/// writes to a structure of `len` bytes at `base`: `write_dword(dword
/// offset from base, value in place, byte lanes written)`. Bytes outside the
/// structure are dropped, so each register sees only its own lanes.
fn write_lanes(offset: u16, size: u8, value: u32, base: u16, len: u16, mut write_dword: impl FnMut(u16, u32, u32)) {
    if !config_size_valid(size) {
        return;
    }
    let mut gathered: Option<(u16, u32, u32)> = None;
    for index in 0..u16::from(size) {
        let Some(relative) = offset_within(offset, index, base, len) else {
            continue;
        };
        let dword = relative & !3;
        let shift = 8 * u32::from(relative % 4);
        let byte = ((value >> (8 * index)) & 0xFF) << shift;
        let lane = 0xFF << shift;
        match gathered.as_mut() {
            Some((at, bytes, lanes)) if *at == dword => {
                *bytes |= byte;
                *lanes |= lane;
            }
            _ => {
                if let Some((at, bytes, lanes)) = gathered.take() {
                    write_dword(at, bytes, lanes);
                }
                gathered = Some((dword, byte, lane));
            }
        }
    }
    if let Some((at, bytes, lanes)) = gathered {
        write_dword(at, bytes, lanes);
    }
}

// ----- MSI -----

/// What the guest programmed into the MSI capability: what Keel makes the
/// real device do (through host vectors it chooses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiState {
    pub enabled: bool,
    /// Bits 1:0 are always 0; below 4 GiB unless the function is 64-bit.
    pub address: u64,
    pub data: u16,
    /// Vectors enabled: 1, 2, 4, 8, 16 or 32. Vector `n` sends `data` with
    /// its low log2(`vectors`) bits replaced by `n`.
    pub vectors: u8,
    /// Per-vector mask bits (bit n: vector n); 0 without per-vector masking.
    pub masked: u32,
}

/// A guest write changed the MSI state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiChange {
    pub previous: MsiState,
    pub state: MsiState,
}

impl MsiChange {
    /// Enable, address, data or the vector count changed: the translation
    /// to host vectors must be redone.
    pub fn message_changed(&self) -> bool {
        let (old, new) = (self.previous, self.state);
        old.enabled != new.enabled || old.address != new.address || old.data != new.data || old.vectors != new.vectors
    }

    /// Mask bits changed: masked vectors must stop, and pending ones that
    /// were unmasked are due ([`MsiCapability::unmask_released`]).
    pub fn masks_changed(&self) -> bool {
        self.previous.masked != self.state.masked
    }
}

/// The dword registers of an MSI capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MsiRegister {
    /// Capability ID, next pointer, Message Control.
    Header,
    AddressLow,
    AddressHigh,
    Data,
    Mask,
    Pending,
}

/// An MSI capability as the guest sees it. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsiCapability {
    offset: u8,
    next: u8,
    is_64bit: bool,
    per_vector_masking: bool,
    /// log2 of the vectors the host function supports (Multiple Message Capable).
    log2_capable: u8,
    enabled: bool,
    /// log2 of the vectors the guest enabled (Multiple Message Enable).
    log2_enabled: u8,
    address: u64,
    data: u16,
    masked: u32,
    pending: u32,
}

impl MsiCapability {
    /// From the host capability's Message Control (only the 64-bit,
    /// per-vector masking and Multiple Message Capable bits are used; a
    /// reserved MMC above 32 vectors is taken as 32), placed at `offset`
    /// in the guest's configuration space with `next` as its next pointer.
    /// Both are dword aligned (the low two bits are dropped). The guest
    /// starts from the reset state: disabled, one vector, nothing masked.
    pub fn new(host_control: u16, offset: u8, next: u8) -> Self {
        let capable = ((host_control >> MSI_CONTROL_CAPABLE_SHIFT) & MSI_CONTROL_COUNT_BITS) as u8;
        Self {
            offset: offset & !3,
            next: next & !3,
            is_64bit: host_control & MSI_CONTROL_64BIT != 0,
            per_vector_masking: host_control & MSI_CONTROL_PER_VECTOR_MASKING != 0,
            log2_capable: capable.min(MSI_MAX_LOG2_VECTORS),
            enabled: false,
            log2_enabled: 0,
            address: 0,
            data: 0,
            masked: 0,
            pending: 0,
        }
    }

    /// Where the structure starts in the guest's configuration space.
    pub fn offset(&self) -> u8 {
        self.offset
    }

    /// Bytes of the structure: 0x0C, 0x10 (64-bit), 0x14 (per-vector
    /// masking) or 0x18 (both). The 32-bit forms are padded to a dword.
    pub fn structure_bytes(&self) -> u8 {
        let masking = if self.per_vector_masking { 8 } else { 0 };
        self.data_offset() + 4 + masking
    }

    pub fn is_64bit(&self) -> bool {
        self.is_64bit
    }

    pub fn per_vector_masking(&self) -> bool {
        self.per_vector_masking
    }

    /// Vectors the function supports: 1 to 32.
    pub fn capable_vectors(&self) -> u8 {
        1 << self.log2_capable
    }

    pub fn state(&self) -> MsiState {
        MsiState {
            enabled: self.enabled,
            address: self.address,
            data: self.data,
            vectors: 1 << self.log2_enabled,
            masked: self.masked,
        }
    }

    /// Pending Bits as the guest reads them.
    pub fn pending(&self) -> u32 {
        self.pending
    }

    /// Sets or clears vector `vector`'s pending bit (e.g. from the real
    /// device's register). Only functions with per-vector masking have
    /// pending bits, and only for vectors they support.
    pub fn set_pending(&mut self, vector: u8, pending: bool) {
        let bit = self.vector_bit(vector) & self.implemented_vector_bits();
        if !self.per_vector_masking {
            return;
        }
        if pending {
            self.pending |= bit;
        } else {
            self.pending &= !bit;
        }
    }

    /// The message vector `vector` sends: the programmed data with its low
    /// log2(enabled vectors) bits replaced by the vector number.
    pub fn message(&self, vector: u8) -> GuestMsi {
        msi_message(self.address, self.data, self.log2_enabled, vector)
    }

    /// The real device raised vector `vector`: the message to deliver to
    /// the guest, or `None` when MSI is off, the vector is not enabled, or
    /// it is masked (then its pending bit is set, for
    /// [`MsiCapability::unmask_released`] to deliver later).
    pub fn fire(&mut self, vector: u8) -> Option<GuestMsi> {
        if !self.enabled || u32::from(vector) >= 1 << self.log2_enabled {
            return None;
        }
        let bit = self.vector_bit(vector);
        if self.masked & bit != 0 {
            self.pending |= bit;
            return None;
        }
        Some(self.message(vector))
    }

    /// The pending messages that may be sent now (MSI enabled, vector
    /// enabled and no longer masked), lowest vector first; their pending
    /// bits are cleared. Call after a write that unmasked vectors.
    pub fn unmask_released(&mut self) -> MsiReleased {
        let enabled_vectors = ((1u64 << (1u32 << self.log2_enabled)) - 1) as u32;
        let due = if self.enabled {
            self.pending & !self.masked & enabled_vectors
        } else {
            0
        };
        self.pending &= !due;
        MsiReleased {
            address: self.address,
            data: self.data,
            log2_enabled: self.log2_enabled,
            due,
        }
    }

    /// Whether any byte of the access lies inside the structure.
    pub fn contains(&self, offset: u16, size: u8) -> bool {
        (0..u16::from(size.min(4))).any(|index| {
            offset_within(offset, index, u16::from(self.offset), u16::from(self.structure_bytes())).is_some()
        })
    }

    /// Reads `size` (1, 2 or 4) bytes at configuration offset `offset`;
    /// bytes outside the structure, and accesses of other sizes, read 0.
    pub fn read(&self, offset: u16, size: u8) -> u32 {
        read_lanes(
            offset,
            size,
            u16::from(self.offset),
            u16::from(self.structure_bytes()),
            |at| self.read_dword(at),
        )
    }

    /// Writes `size` (1, 2 or 4) bytes of `value` at configuration offset
    /// `offset`; bytes outside the structure, read-only bits and accesses of
    /// other sizes are ignored. Returns the new state when it changed.
    pub fn write(&mut self, offset: u16, size: u8, value: u32) -> Option<MsiChange> {
        let previous = self.state();
        let (base, len) = (u16::from(self.offset), u16::from(self.structure_bytes()));
        write_lanes(offset, size, value, base, len, |at, bytes, lanes| {
            self.write_dword(at, bytes, lanes)
        });
        let state = self.state();
        (state != previous).then_some(MsiChange { previous, state })
    }

    fn data_offset(&self) -> u8 {
        if self.is_64bit {
            0x0C
        } else {
            0x08
        }
    }

    fn register_at(&self, relative: u16) -> Option<MsiRegister> {
        let data = u16::from(self.data_offset());
        match relative {
            0x00 => Some(MsiRegister::Header),
            0x04 => Some(MsiRegister::AddressLow),
            0x08 if self.is_64bit => Some(MsiRegister::AddressHigh),
            at if at == data => Some(MsiRegister::Data),
            at if at == data + 4 && self.per_vector_masking => Some(MsiRegister::Mask),
            at if at == data + 8 && self.per_vector_masking => Some(MsiRegister::Pending),
            _ => None,
        }
    }

    fn control(&self) -> u16 {
        let mut control = u16::from(self.log2_capable) << MSI_CONTROL_CAPABLE_SHIFT
            | u16::from(self.log2_enabled) << MSI_CONTROL_ENABLED_SHIFT;
        if self.enabled {
            control |= MSI_CONTROL_ENABLE;
        }
        if self.is_64bit {
            control |= MSI_CONTROL_64BIT;
        }
        if self.per_vector_masking {
            control |= MSI_CONTROL_PER_VECTOR_MASKING;
        }
        control
    }

    fn read_dword(&self, relative: u16) -> u32 {
        match self.register_at(relative) {
            Some(MsiRegister::Header) => {
                u32::from(MSI_CAPABILITY_ID) | u32::from(self.next) << 8 | u32::from(self.control()) << 16
            }
            Some(MsiRegister::AddressLow) => self.address as u32,
            Some(MsiRegister::AddressHigh) => (self.address >> 32) as u32,
            // The upper half is Extended Message Data, which is not offered.
            Some(MsiRegister::Data) => u32::from(self.data),
            Some(MsiRegister::Mask) => self.masked,
            Some(MsiRegister::Pending) => self.pending,
            None => 0,
        }
    }

    fn write_dword(&mut self, relative: u16, bytes: u32, lanes: u32) {
        let merged = (self.read_dword(relative) & !lanes) | (bytes & lanes);
        match self.register_at(relative) {
            // The ID and next pointer (the low half) are read-only.
            Some(MsiRegister::Header) => {
                let control = (merged >> 16) as u16;
                self.enabled = control & MSI_CONTROL_ENABLE != 0;
                let asked = ((control >> MSI_CONTROL_ENABLED_SHIFT) & MSI_CONTROL_COUNT_BITS) as u8;
                // More vectors than the function has would make it send
                // messages it cannot: clamp, as the guest reads back.
                self.log2_enabled = asked.min(self.log2_capable);
            }
            Some(MsiRegister::AddressLow) => {
                let low = u64::from(merged) & !MSI_ADDRESS_RESERVED_BITS;
                self.address = (self.address & !0xFFFF_FFFF) | low;
            }
            Some(MsiRegister::AddressHigh) => {
                self.address = (self.address & 0xFFFF_FFFF) | u64::from(merged) << 32;
            }
            Some(MsiRegister::Data) => self.data = merged as u16,
            Some(MsiRegister::Mask) => self.masked = merged & self.implemented_vector_bits(),
            // Pending Bits are read-only.
            Some(MsiRegister::Pending) | None => {}
        }
    }

    /// Bits of the mask and pending registers for vectors the function has.
    fn implemented_vector_bits(&self) -> u32 {
        ((1u64 << (1u32 << self.log2_capable)) - 1) as u32
    }

    fn vector_bit(&self, vector: u8) -> u32 {
        1u32.checked_shl(u32::from(vector)).unwrap_or(0)
    }
}

/// The message MSI vector `vector` sends when `1 << log2_enabled` vectors
/// are enabled: `data` with its low log2_enabled bits replaced by the vector.
fn msi_message(address: u64, data: u16, log2_enabled: u8, vector: u8) -> GuestMsi {
    let low_bits = (1u16 << log2_enabled.min(MSI_MAX_LOG2_VECTORS)) - 1;
    let data = (data & !low_bits) | (u16::from(vector) & low_bits);
    GuestMsi {
        address,
        data: u32::from(data),
    }
}

/// Messages [`MsiCapability::unmask_released`] found due, lowest vector
/// first, from the address and data programmed when they were released.
#[derive(Clone, Debug)]
pub struct MsiReleased {
    address: u64,
    data: u16,
    log2_enabled: u8,
    /// Vectors still to hand out (bit n: vector n).
    due: u32,
}

impl Iterator for MsiReleased {
    type Item = GuestMsi;

    fn next(&mut self) -> Option<GuestMsi> {
        if self.due == 0 {
            return None;
        }
        let vector = self.due.trailing_zeros() as u8;
        self.due &= self.due - 1;
        Some(msi_message(self.address, self.data, self.log2_enabled, vector))
    }
}

// ----- MSI-X -----

/// The host MSI-X capability's registers, as read from the real device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostMsix {
    /// Message Control: only Table Size (bits 10:0) is used.
    pub control: u16,
    /// Table Offset (bits 31:3) and Table BIR (bits 2:0).
    pub table: u32,
    /// PBA Offset (bits 31:3) and PBA BIR (bits 2:0).
    pub pba: u32,
}

/// Why a host MSI-X capability cannot be shown to a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsixError {
    /// The table's BAR Indicator is reserved (6 or 7).
    TableBir(u8),
    /// The PBA's BAR Indicator is reserved (6 or 7).
    PbaBir(u8),
    /// The table or PBA would end past 4 GiB into its BAR.
    RegionTooLarge,
}

impl core::fmt::Display for MsixError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::TableBir(bir) => write!(f, "MSI-X table in reserved BAR indicator {bir}"),
            Self::PbaBir(bir) => write!(f, "MSI-X PBA in reserved BAR indicator {bir}"),
            Self::RegionTooLarge => write!(f, "MSI-X table or PBA extends past 4 GiB into its BAR"),
        }
    }
}

/// Where an MSI-X table or PBA lies: `bytes` bytes at `offset` into BAR `bar`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixRegion {
    pub bar: u8,
    pub offset: u32,
    pub bytes: u32,
}

impl MsixRegion {
    fn from_register(register: u32, bytes: u32) -> Result<Self, u8> {
        let bar = (register & MSIX_BIR_BITS) as u8;
        if bar > MSIX_MAX_BIR {
            return Err(bar);
        }
        Ok(Self {
            bar,
            offset: register & !MSIX_BIR_BITS,
            bytes,
        })
    }

    /// Whether any byte of a `size`-byte access at `offset` into BAR `bar`
    /// falls in the region.
    pub fn overlaps(&self, bar: u8, offset: u64, size: u8) -> bool {
        let start = u64::from(self.offset);
        let end = start + u64::from(self.bytes);
        bar == self.bar && size != 0 && offset < end && offset.saturating_add(u64::from(size)) > start
    }

    /// `offset` into the BAR as an offset into the region, if it is inside.
    fn relative(&self, offset: u64) -> Option<u64> {
        offset
            .checked_sub(u64::from(self.offset))
            .filter(|relative| *relative < u64::from(self.bytes))
    }
}

/// One MSI-X table entry as the guest programmed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixEntry {
    /// Bits 1:0 are always 0 (message addresses are dword aligned).
    pub address: u64,
    pub data: u32,
    /// Vector Control bit 0.
    pub masked: bool,
}

impl MsixEntry {
    /// An entry after reset: masked, everything else 0.
    pub const RESET: Self = Self {
        address: 0,
        data: 0,
        masked: true,
    };

    fn message(&self) -> GuestMsi {
        GuestMsi {
            address: self.address,
            data: self.data,
        }
    }
}

/// The MSI-X table and pending bit array of one function, as the guest
/// accesses them through MMIO. Offsets are from the start of the table
/// (or the PBA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsixTable {
    entries: Vec<MsixEntry>,
    /// Pending bits, 64 to a qword, as the PBA lays them out.
    pending: Vec<u64>,
}

impl MsixTable {
    /// A table of `entries` entries (clamped to 1-2048), all reset.
    pub fn new(entries: u16) -> Self {
        let entries = entries.clamp(1, MSIX_MAX_ENTRIES);
        Self {
            entries: vec![MsixEntry::RESET; usize::from(entries)],
            pending: vec![0; usize::from(entries.div_ceil(PBA_BITS_PER_QWORD))],
        }
    }

    /// Number of entries: 1 to 2048.
    pub fn len(&self) -> u16 {
        // At most MSIX_MAX_ENTRIES by construction.
        self.entries.len() as u16
    }

    /// Never empty: a function has at least one entry. For clippy's
    /// `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of the table: 16 per entry.
    pub fn table_bytes(&self) -> u32 {
        u32::from(self.len()) * MSIX_ENTRY_BYTES
    }

    /// Bytes of the PBA: a qword per 64 entries.
    pub fn pba_bytes(&self) -> u32 {
        self.pending.len() as u32 * 8
    }

    pub fn entry(&self, index: u16) -> Option<MsixEntry> {
        self.entries.get(usize::from(index)).copied()
    }

    /// Entry `index`'s pending bit (false for entries that do not exist).
    pub fn pending(&self, index: u16) -> bool {
        let (qword, bit) = Self::pending_position(index);
        self.pending.get(qword).is_some_and(|bits| bits & bit != 0)
    }

    /// Whether any entry is pending.
    pub fn any_pending(&self) -> bool {
        self.pending.iter().any(|bits| *bits != 0)
    }

    /// Reads the table: an aligned dword or qword inside it; anything else
    /// reads 0.
    pub fn read(&self, offset: u64, size: u8) -> u64 {
        let Some(dwords) = aligned_dwords(offset, size, u64::from(self.table_bytes())) else {
            return 0;
        };
        dwords.fold(0, |value, (at, shift)| value | u64::from(self.table_dword(at)) << shift)
    }

    /// Writes the table: an aligned dword or qword inside it; anything else
    /// is ignored. Returns the entry whose contents changed, if any.
    pub fn write(&mut self, offset: u64, size: u8, value: u64) -> Option<u16> {
        let dwords = aligned_dwords(offset, size, u64::from(self.table_bytes()))?;
        let mut changed = None;
        for (at, shift) in dwords {
            if let Some(index) = self.write_table_dword(at, (value >> shift) as u32) {
                changed = Some(index);
            }
        }
        changed
    }

    /// Reads the PBA: an aligned dword or qword inside it; anything else
    /// reads 0. The PBA is read-only: there is no write.
    pub fn pba_read(&self, offset: u64, size: u8) -> u64 {
        let Some(dwords) = aligned_dwords(offset, size, u64::from(self.pba_bytes())) else {
            return 0;
        };
        dwords.fold(0, |value, (at, shift)| {
            let qword = self.pending.get((at / 8) as usize).copied().unwrap_or(0);
            let dword = (qword >> (8 * (at % 8))) as u32;
            value | u64::from(dword) << shift
        })
    }

    fn set_pending(&mut self, index: u16, pending: bool) {
        let (qword, bit) = Self::pending_position(index);
        if usize::from(index) >= self.entries.len() {
            return;
        }
        if let Some(bits) = self.pending.get_mut(qword) {
            if pending {
                *bits |= bit;
            } else {
                *bits &= !bit;
            }
        }
    }

    /// The PBA qword and bit of entry `index`.
    fn pending_position(index: u16) -> (usize, u64) {
        (
            usize::from(index / PBA_BITS_PER_QWORD),
            1 << (index % PBA_BITS_PER_QWORD),
        )
    }

    /// The dword at table offset `at` (a multiple of 4 inside the table).
    fn table_dword(&self, at: u64) -> u32 {
        let Some(entry) = self.entries.get((at / u64::from(MSIX_ENTRY_BYTES)) as usize) else {
            return 0;
        };
        match (at % u64::from(MSIX_ENTRY_BYTES)) / 4 {
            0 => entry.address as u32,
            1 => (entry.address >> 32) as u32,
            2 => entry.data,
            // Vector Control: bits other than the mask are reserved, read 0.
            _ => u32::from(entry.masked) * MSIX_VECTOR_CONTROL_MASKED,
        }
    }

    fn write_table_dword(&mut self, at: u64, value: u32) -> Option<u16> {
        let index = at / u64::from(MSIX_ENTRY_BYTES);
        let entry = self.entries.get_mut(index as usize)?;
        let before = *entry;
        match (at % u64::from(MSIX_ENTRY_BYTES)) / 4 {
            0 => entry.address = (entry.address & !0xFFFF_FFFF) | u64::from(value) & !MSI_ADDRESS_RESERVED_BITS,
            1 => entry.address = (entry.address & 0xFFFF_FFFF) | u64::from(value) << 32,
            2 => entry.data = value,
            _ => entry.masked = value & MSIX_VECTOR_CONTROL_MASKED != 0,
        }
        // `index` is below the entry count (at most 2048), so it fits.
        (*entry != before).then_some(index as u16)
    }
}

/// The dword offsets (and their shift in the value) of an access the
/// MSI-X spec allows: a dword aligned to 4 or a qword aligned to 8, wholly
/// inside a region of `len` bytes.
fn aligned_dwords(offset: u64, size: u8, len: u64) -> Option<impl Iterator<Item = (u64, u32)>> {
    let aligned = match size {
        4 => offset.is_multiple_of(4),
        8 => offset.is_multiple_of(8),
        _ => false,
    };
    let end = offset.checked_add(u64::from(size))?;
    if !aligned || end > len {
        return None;
    }
    Some((0..u64::from(size / 4)).map(move |index| (offset + 4 * index, 32 * index as u32)))
}

/// The guest-visible MSI-X Enable and Function Mask bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixControl {
    pub enabled: bool,
    pub function_masked: bool,
}

/// An MSI-X capability, with the table and PBA it describes, as the guest
/// sees them. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsixCapability {
    offset: u8,
    next: u8,
    /// Table Offset/BIR and PBA Offset/BIR as the host has them.
    table_register: u32,
    pba_register: u32,
    table_region: MsixRegion,
    pba_region: MsixRegion,
    control: MsixControl,
    table: MsixTable,
}

impl MsixCapability {
    /// From the host capability's registers, placed at `offset` in the
    /// guest's configuration space with `next` as its next pointer (both
    /// dword aligned: the low two bits are dropped). The guest starts from
    /// the reset state: MSI-X disabled, not function-masked, every entry
    /// masked, nothing pending.
    pub fn new(host: HostMsix, offset: u8, next: u8) -> Result<Self, MsixError> {
        let table = MsixTable::new((host.control & MSIX_CONTROL_TABLE_SIZE) + 1);
        let table_region = MsixRegion::from_register(host.table, table.table_bytes()).map_err(MsixError::TableBir)?;
        let pba_region = MsixRegion::from_register(host.pba, table.pba_bytes()).map_err(MsixError::PbaBir)?;
        for region in [table_region, pba_region] {
            if region.offset.checked_add(region.bytes).is_none() {
                return Err(MsixError::RegionTooLarge);
            }
        }
        Ok(Self {
            offset: offset & !3,
            next: next & !3,
            table_register: host.table,
            pba_register: host.pba,
            table_region,
            pba_region,
            control: MsixControl {
                enabled: false,
                function_masked: false,
            },
            table,
        })
    }

    /// Where the structure starts in the guest's configuration space.
    pub fn offset(&self) -> u8 {
        self.offset
    }

    pub fn control(&self) -> MsixControl {
        self.control
    }

    pub fn table(&self) -> &MsixTable {
        &self.table
    }

    /// Where the table lies in the function's BARs.
    pub fn table_region(&self) -> MsixRegion {
        self.table_region
    }

    /// Where the PBA lies in the function's BARs.
    pub fn pba_region(&self) -> MsixRegion {
        self.pba_region
    }

    pub fn entry(&self, index: u16) -> Option<MsixEntry> {
        self.table.entry(index)
    }

    /// Reads the table (offset from its start); see [`MsixTable::read`].
    pub fn table_read(&self, offset: u64, size: u8) -> u64 {
        self.table.read(offset, size)
    }

    /// Writes the table (offset from its start); see [`MsixTable::write`].
    /// After an entry changed, call [`MsixCapability::unmask_released`]: it
    /// may have been unmasked with its pending bit set.
    pub fn table_write(&mut self, offset: u64, size: u8, value: u64) -> Option<u16> {
        self.table.write(offset, size, value)
    }

    /// Reads the PBA (offset from its start); see [`MsixTable::pba_read`].
    pub fn pba_read(&self, offset: u64, size: u8) -> u64 {
        self.table.pba_read(offset, size)
    }

    /// Whether entry `index` may not send now: its own mask, the Function
    /// Mask, or MSI-X being off. Entries that do not exist are masked.
    pub fn effective_masked(&self, index: u16) -> bool {
        let entry_masked = self.table.entry(index).is_none_or(|entry| entry.masked);
        entry_masked || self.control.function_masked || !self.control.enabled
    }

    /// The real device raised entry `index`: the guest's message for it, or
    /// `None` when it is effectively masked (then its pending bit is set,
    /// for [`MsixCapability::unmask_released`] to deliver later) or does not
    /// exist.
    pub fn fire(&mut self, index: u16) -> Option<GuestMsi> {
        let entry = self.table.entry(index)?;
        if self.effective_masked(index) {
            self.table.set_pending(index, true);
            return None;
        }
        Some(entry.message())
    }

    /// The pending messages that may be sent now, lowest entry first, each
    /// pending bit cleared as its message is taken. Call after a table write
    /// or a control change; entries left untaken stay pending.
    pub fn unmask_released(&mut self) -> MsixReleased<'_> {
        MsixReleased {
            capability: self,
            next: 0,
        }
    }

    /// Whether any byte of the access lies inside the structure.
    pub fn contains(&self, offset: u16, size: u8) -> bool {
        (0..u16::from(size.min(4)))
            .any(|index| offset_within(offset, index, u16::from(self.offset), MSIX_CAPABILITY_BYTES.into()).is_some())
    }

    /// Reads `size` (1, 2 or 4) bytes at configuration offset `offset`;
    /// bytes outside the structure, and accesses of other sizes, read 0.
    pub fn read(&self, offset: u16, size: u8) -> u32 {
        read_lanes(
            offset,
            size,
            u16::from(self.offset),
            MSIX_CAPABILITY_BYTES.into(),
            |at| self.read_dword(at),
        )
    }

    /// Writes `size` (1, 2 or 4) bytes of `value` at configuration offset
    /// `offset`: only MSI-X Enable and Function Mask change. Returns them
    /// when they did; then call [`MsixCapability::unmask_released`].
    pub fn write(&mut self, offset: u16, size: u8, value: u32) -> Option<MsixControl> {
        let previous = self.control;
        let (base, len) = (u16::from(self.offset), u16::from(MSIX_CAPABILITY_BYTES));
        write_lanes(offset, size, value, base, len, |at, bytes, lanes| {
            // Only Message Control, the upper half of the first dword, has
            // writable bits.
            if at == 0 && lanes & 0xFFFF_0000 != 0 {
                let merged = (self.read_dword(0) & !lanes) | (bytes & lanes);
                let control = (merged >> 16) as u16;
                self.control = MsixControl {
                    enabled: control & MSIX_CONTROL_ENABLE != 0,
                    function_masked: control & MSIX_CONTROL_FUNCTION_MASK != 0,
                };
            }
        });
        (self.control != previous).then_some(self.control)
    }

    fn message_control(&self) -> u16 {
        let mut control = self.table.len() - 1;
        if self.control.enabled {
            control |= MSIX_CONTROL_ENABLE;
        }
        if self.control.function_masked {
            control |= MSIX_CONTROL_FUNCTION_MASK;
        }
        control
    }

    fn read_dword(&self, relative: u16) -> u32 {
        match relative {
            0x00 => u32::from(MSIX_CAPABILITY_ID) | u32::from(self.next) << 8 | u32::from(self.message_control()) << 16,
            0x04 => self.table_register,
            0x08 => self.pba_register,
            _ => 0,
        }
    }
}

/// Messages [`MsixCapability::unmask_released`] finds due, lowest entry first.
pub struct MsixReleased<'a> {
    capability: &'a mut MsixCapability,
    /// The first entry not yet looked at.
    next: u16,
}

impl Iterator for MsixReleased<'_> {
    type Item = GuestMsi;

    fn next(&mut self) -> Option<GuestMsi> {
        let control = self.capability.control;
        if !control.enabled || control.function_masked {
            return None;
        }
        let table = &mut self.capability.table;
        while self.next < table.len() {
            let index = self.next;
            let (qword, bit) = MsixTable::pending_position(index);
            let bits = table.pending.get(qword).copied().unwrap_or(0);
            // Skip the rest of a qword with nothing pending at or above this
            // entry: a released sweep of a large table stays cheap.
            if bits & !(bit - 1) == 0 {
                self.next = (qword as u16 + 1).saturating_mul(PBA_BITS_PER_QWORD);
                continue;
            }
            self.next = index + 1;
            let Some(entry) = table.entry(index) else {
                break;
            };
            if bits & bit != 0 && !entry.masked {
                table.set_pending(index, false);
                return Some(entry.message());
            }
        }
        None
    }
}

// ----- the guest-visible capability list -----

/// Which of the host function's interrupt capabilities to show the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCapabilities {
    /// The host MSI capability's Message Control, if it has MSI.
    pub msi_control: Option<u16>,
    pub msix: Option<HostMsix>,
}

/// A guest write that Keel must act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapabilityChange {
    /// The MSI state changed: re-translate (and on unmasking, call
    /// [`MsiCapability::unmask_released`]).
    Msi(MsiChange),
    /// MSI-X Enable or Function Mask changed: apply, then call
    /// [`MsixCapability::unmask_released`].
    MsixControl(MsixControl),
    /// An MSI-X table entry changed: re-translate it, then call
    /// [`MsixCapability::unmask_released`].
    MsixEntry(u16),
}

/// The emulated capability list of a passthrough function. The layout is
/// fixed: MSI (if the host function has it) at [`MSI_GUEST_OFFSET`], MSI-X
/// (if it has it) at [`MSIX_GUEST_OFFSET`], chained in that order, the last
/// next pointer 0. [`PassthroughCapabilities::first_pointer`] is the
/// header's Capabilities Pointer. The bytes between and after the
/// structures are not claimed: they stay the function's device-specific
/// registers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassthroughCapabilities {
    msi: Option<MsiCapability>,
    msix: Option<MsixCapability>,
}

impl PassthroughCapabilities {
    pub fn new(host: HostCapabilities) -> Result<Self, MsixError> {
        let msix = host
            .msix
            .map(|registers| MsixCapability::new(registers, MSIX_GUEST_OFFSET, 0))
            .transpose()?;
        let after_msi = if msix.is_some() { MSIX_GUEST_OFFSET } else { 0 };
        let msi = host
            .msi_control
            .map(|control| MsiCapability::new(control, MSI_GUEST_OFFSET, after_msi));
        Ok(Self { msi, msix })
    }

    /// The header's Capabilities Pointer: the first structure, or 0 for none.
    pub fn first_pointer(&self) -> u8 {
        match (&self.msi, &self.msix) {
            (Some(msi), _) => msi.offset(),
            (None, Some(msix)) => msix.offset(),
            (None, None) => 0,
        }
    }

    pub fn msi(&self) -> Option<&MsiCapability> {
        self.msi.as_ref()
    }

    pub fn msi_mut(&mut self) -> Option<&mut MsiCapability> {
        self.msi.as_mut()
    }

    pub fn msix(&self) -> Option<&MsixCapability> {
        self.msix.as_ref()
    }

    pub fn msix_mut(&mut self) -> Option<&mut MsixCapability> {
        self.msix.as_mut()
    }

    /// Whether any byte of a configuration access lies in an emulated
    /// structure: then it must not reach the real device.
    pub fn claims(&self, offset: u16, size: u8) -> bool {
        self.msi.as_ref().is_some_and(|msi| msi.contains(offset, size))
            || self.msix.as_ref().is_some_and(|msix| msix.contains(offset, size))
    }

    /// A configuration read: `None` when no byte of it is in an emulated
    /// structure; otherwise the value, bytes outside the structures 0.
    pub fn read(&self, offset: u16, size: u8) -> Option<u32> {
        if !self.claims(offset, size) {
            return None;
        }
        let msi = self.msi.as_ref().map_or(0, |msi| msi.read(offset, size));
        let msix = self.msix.as_ref().map_or(0, |msix| msix.read(offset, size));
        Some(msi | msix)
    }

    /// A configuration write to the emulated structures (bytes outside them
    /// are left to the caller: see [`PassthroughCapabilities::claims`]).
    pub fn write(&mut self, offset: u16, size: u8, value: u32) -> Option<CapabilityChange> {
        let msi = self
            .msi
            .as_mut()
            .and_then(|msi| msi.write(offset, size, value))
            .map(CapabilityChange::Msi);
        let msix = self
            .msix
            .as_mut()
            .and_then(|msix| msix.write(offset, size, value))
            .map(CapabilityChange::MsixControl);
        // The structures are far enough apart that one access changes at
        // most one of them.
        msi.or(msix)
    }

    /// Where the MSI-X table lies, for Keel to trap its page(s).
    pub fn msix_table_location(&self) -> Option<MsixRegion> {
        self.msix.as_ref().map(MsixCapability::table_region)
    }

    /// Where the MSI-X PBA lies, for Keel to trap its page(s).
    pub fn pba_location(&self) -> Option<MsixRegion> {
        self.msix.as_ref().map(MsixCapability::pba_region)
    }

    /// Whether a BAR access touches the MSI-X table or PBA.
    pub fn claims_mmio(&self, bar: u8, offset: u64, size: u8) -> bool {
        self.msix.as_ref().is_some_and(|msix| {
            msix.table_region.overlaps(bar, offset, size) || msix.pba_region.overlaps(bar, offset, size)
        })
    }

    /// A read of `size` bytes at `offset` into BAR `bar`: `None` when it
    /// touches neither the MSI-X table nor the PBA (the real device
    /// answers); otherwise the table's or PBA's answer (0 for accesses the
    /// spec does not allow, e.g. straddling the region's edge).
    pub fn msix_mmio_read(&self, bar: u8, offset: u64, size: u8) -> Option<u64> {
        let msix = self.msix.as_ref()?;
        if msix.table_region.overlaps(bar, offset, size) {
            let relative = msix.table_region.relative(offset);
            return Some(relative.map_or(0, |at| msix.table_read(at, size)));
        }
        if msix.pba_region.overlaps(bar, offset, size) {
            let relative = msix.pba_region.relative(offset);
            return Some(relative.map_or(0, |at| msix.pba_read(at, size)));
        }
        None
    }

    /// A write to BAR `bar`: table writes update the entries; PBA writes
    /// are ignored. Whether the caller must forward the write to the real
    /// device is [`PassthroughCapabilities::claims_mmio`]'s answer.
    pub fn msix_mmio_write(&mut self, bar: u8, offset: u64, size: u8, value: u64) -> Option<CapabilityChange> {
        let msix = self.msix.as_mut()?;
        if !msix.table_region.overlaps(bar, offset, size) {
            return None;
        }
        let relative = msix.table_region.relative(offset)?;
        msix.table_write(relative, size, value).map(CapabilityChange::MsixEntry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: a tiny deterministic generator for hostile sequences.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next_u64() % bound
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len() as u64) as usize]
        }
    }

    /// Multiple Message Capable `log2` in Message Control.
    fn mmc(log2: u16) -> u16 {
        log2 << 1
    }

    const BASE: u16 = MSI_GUEST_OFFSET as u16;

    fn msi(host_control: u16) -> MsiCapability {
        MsiCapability::new(host_control, MSI_GUEST_OFFSET, 0x70)
    }

    fn msi_64_masking() -> MsiCapability {
        msi(MSI_CONTROL_64BIT | MSI_CONTROL_PER_VECTOR_MASKING | mmc(3))
    }

    // ----- decoding -----

    #[test]
    fn decode_accepts_fixed_and_lowest_priority_interrupts() {
        assert_eq!(
            GuestMsi::decode(0xFEE0_3000, 0x0041),
            Ok(InterruptMessage {
                vector: 0x41,
                destination: 3,
                level_triggered: false
            })
        );
        // Lowest priority, level, destination 0xFF, redirection hint and
        // logical mode bits ignored.
        assert_eq!(
            GuestMsi::decode(0xFEEF_F00C, 0x81FF),
            Ok(InterruptMessage {
                vector: 0xFF,
                destination: 0xFF,
                level_triggered: true
            })
        );
        assert_eq!(
            GuestMsi {
                address: 0xFEE0_0000,
                data: 0x10
            }
            .interrupt()
            .map(|message| message.vector),
            Ok(16),
            "vector 16 is the first valid one"
        );
        // Reserved data bits above 15 do not matter.
        assert!(GuestMsi::decode(0xFEE0_0000, 0xFFFF_0030).is_ok());
    }

    #[test]
    fn decode_refuses_what_a_guest_must_not_send() {
        for mode in [2u32, 3, 4, 5, 6, 7] {
            assert_eq!(
                GuestMsi::decode(0xFEE0_0000, mode << 8 | 0x30),
                Err(MsiError::DeliveryMode(mode as u8)),
                "SMI, NMI, INIT, ExtINT and reserved modes"
            );
        }
        // NMI with a reserved vector: the mode is what is reported.
        assert_eq!(GuestMsi::decode(0xFEE0_0000, 0x400), Err(MsiError::DeliveryMode(4)));
        for vector in 0..16u32 {
            assert_eq!(
                GuestMsi::decode(0xFEE0_0000, vector),
                Err(MsiError::Vector(vector as u8))
            );
        }
        for address in [0, 0xFED0_0000, 0xFEF0_0000, 0x1_FEE0_0000, u64::MAX, 0xFFEE_0000] {
            assert_eq!(GuestMsi::decode(address, 0x30), Err(MsiError::NotAnInterrupt(address)));
        }
        assert_eq!(GuestMsi::decode(0xFEE0_0010, 0x30), Err(MsiError::RemappableFormat));
        assert!(!MsiError::DeliveryMode(4).to_string().is_empty());
    }

    // ----- MSI -----

    #[test]
    fn msi_header_shows_the_host_capabilities_and_reset_state() {
        let capability = msi_64_masking();
        assert_eq!(capability.read(BASE, 1), u32::from(MSI_CAPABILITY_ID));
        assert_eq!(capability.read(BASE + 1, 1), 0x70, "next pointer");
        assert_eq!(
            capability.read(BASE + 2, 2),
            0x0186,
            "64-bit, masking, 8 vectors capable"
        );
        assert_eq!(capability.read(BASE, 4), 0x0186_7005);
        assert_eq!(capability.structure_bytes(), 0x18);
        assert_eq!(capability.capable_vectors(), 8);
        assert_eq!(
            capability.state(),
            MsiState {
                enabled: false,
                address: 0,
                data: 0,
                vectors: 1,
                masked: 0
            }
        );
        // Host bits the guest is not offered (enable, MME, extended data
        // capable/enable, reserved) read 0.
        let capability = msi(!(MSI_CONTROL_64BIT | MSI_CONTROL_PER_VECTOR_MASKING));
        assert_eq!(
            capability.read(BASE + 2, 2),
            u32::from(mmc(5)),
            "reserved MMC 7 shown as 32"
        );
        assert_eq!(capability.structure_bytes(), 0x0C);
    }

    #[test]
    fn msi_layouts_follow_the_capability_bits() {
        // (control, len, data offset, mask offset)
        let layouts = [
            (0, 0x0C, 0x08, None),
            (MSI_CONTROL_64BIT, 0x10, 0x0C, None),
            (MSI_CONTROL_PER_VECTOR_MASKING, 0x14, 0x08, Some(0x0C)),
            (
                MSI_CONTROL_64BIT | MSI_CONTROL_PER_VECTOR_MASKING,
                0x18,
                0x0C,
                Some(0x10),
            ),
        ];
        for (control, len, data, mask) in layouts {
            let mut capability = msi(control | mmc(5));
            assert_eq!(capability.structure_bytes(), len);
            capability.write(BASE + data, 2, 0xBEEF);
            assert_eq!(capability.state().data, 0xBEEF, "control {control:#x}");
            assert_eq!(capability.read(BASE + data, 4), 0xBEEF, "extended data reads 0");
            if let Some(mask) = mask {
                capability.write(BASE + mask, 4, 0x8000_0001);
                assert_eq!(capability.state().masked, 0x8000_0001);
                assert_eq!(capability.read(BASE + mask, 4), 0x8000_0001);
            } else {
                assert_eq!(capability.state().masked, 0);
            }
            // Nothing past the structure.
            assert_eq!(capability.read(BASE + u16::from(len), 4), 0);
            assert!(!capability.contains(BASE + u16::from(len), 1));
            assert!(capability.contains(BASE + u16::from(len) - 1, 1));
        }
    }

    #[test]
    fn msi_addresses_are_dword_aligned_and_32_bit_functions_stay_below_4_gib() {
        let mut capability = msi(0);
        capability.write(BASE + 4, 4, 0xFEE0_1003);
        assert_eq!(capability.read(BASE + 4, 4), 0xFEE0_1000);
        // Offset 8 is data here, not an upper address.
        capability.write(BASE + 8, 4, 0xFFFF_FFFF);
        assert_eq!(capability.state().address, 0xFEE0_1000);
        assert_eq!(capability.state().data, 0xFFFF);

        let mut capability = msi(MSI_CONTROL_64BIT);
        capability.write(BASE + 4, 4, 0xFEE0_0000);
        capability.write(BASE + 8, 4, 0x0000_0001);
        assert_eq!(capability.state().address, 0x1_FEE0_0000);
        assert_eq!(capability.read(BASE + 8, 4), 1);
    }

    #[test]
    fn msi_multiple_message_enable_is_clamped_to_capable() {
        let mut capability = msi(mmc(2));
        capability.write(BASE + 2, 2, 0x0071);
        assert_eq!(capability.state().vectors, 4, "asked 128, capable 4");
        assert_eq!(capability.read(BASE + 2, 2), 0x0025, "MME 2, MMC 2, enabled");
        assert!(capability.state().enabled);
        capability.write(BASE + 2, 2, 0x0010);
        assert_eq!(capability.state().vectors, 2);
        assert!(!capability.state().enabled);
        // The read-only capability bits do not move.
        capability.write(BASE + 2, 2, 0xFFFE);
        assert_eq!(capability.read(BASE + 2, 2), 0x0024);
        // ID and next pointer are read-only too.
        capability.write(BASE, 2, 0xFFFF);
        assert_eq!(capability.read(BASE, 2), 0x7005);
    }

    #[test]
    fn msi_byte_lanes_reach_only_their_registers() {
        let mut capability = msi_64_masking();
        // Byte by byte address.
        for (index, byte) in [0x00u32, 0x30, 0xE0, 0xFE].into_iter().enumerate() {
            capability.write(BASE + 4 + index as u16, 1, byte);
        }
        assert_eq!(capability.state().address, 0xFEE0_3000);
        // An unaligned dword across address high (bytes 2-3) and data
        // (bytes 0-1) touches both.
        capability.write(BASE + 0x0A, 4, 0x4321_0000);
        assert_eq!(
            capability.state().address,
            0xFEE0_3000,
            "high half got zeros in its upper lanes"
        );
        assert_eq!(capability.state().data, 0x4321);
        assert_eq!(capability.read(BASE + 0x0A, 4), 0x4321_0000);
        // A word at offset 3 spans control's high byte and address byte 0.
        capability.write(BASE + 3, 2, 0x11_01);
        assert_eq!(capability.state().address, 0xFEE0_3010);
        assert_eq!(
            capability.read(BASE + 2, 2),
            0x0186,
            "control high byte is read-only bits"
        );
        // Sizes other than 1, 2, 4 do nothing and read 0.
        for size in [0, 3, 5, 8, 255] {
            assert_eq!(capability.write(BASE + 4, size, 0), None);
            assert_eq!(capability.read(BASE, size), 0);
        }
    }

    #[test]
    fn msi_writes_report_changes_once() {
        let mut capability = msi_64_masking();
        // Linux's __pci_write_msi_msg then msi_capability_init's enable.
        let change = capability.write(BASE + 4, 4, 0xFEE0_0000).unwrap();
        assert!(change.message_changed() && !change.masks_changed());
        assert_eq!(capability.write(BASE + 8, 4, 0), None, "upper address already 0");
        assert!(capability.write(BASE + 0x0C, 2, 0x0040).is_some());
        assert_eq!(capability.write(BASE + 0x0C, 2, 0x0040), None, "same data");
        let change = capability.write(BASE + 2, 2, 0x0031).unwrap();
        assert_eq!(
            change.state,
            MsiState {
                enabled: true,
                address: 0xFEE0_0000,
                data: 0x40,
                vectors: 8,
                masked: 0
            }
        );
        assert!(!change.previous.enabled);
        let change = capability.write(BASE + 0x10, 4, 0b10).unwrap();
        assert!(change.masks_changed() && !change.message_changed());
        // Writes to the pending bits change nothing.
        assert_eq!(capability.write(BASE + 0x14, 4, u32::MAX), None);
        assert_eq!(capability.pending(), 0);
    }

    #[test]
    fn msi_mask_bits_exist_only_for_capable_vectors() {
        let mut capability = msi(MSI_CONTROL_PER_VECTOR_MASKING | mmc(2));
        capability.write(BASE + 0x0C, 4, u32::MAX);
        assert_eq!(capability.state().masked, 0xF);
        capability.set_pending(31, true);
        capability.set_pending(3, true);
        assert_eq!(capability.read(BASE + 0x10, 4), 0b1000);
        capability.set_pending(3, false);
        capability.set_pending(200, true);
        assert_eq!(capability.pending(), 0);
        // Without per-vector masking there is nothing to mask or pend.
        let mut plain = msi(mmc(5));
        plain.set_pending(0, true);
        assert_eq!(plain.pending(), 0);
        assert_eq!(plain.read(BASE + 0x0C, 4), 0);
    }

    #[test]
    fn msi_fire_honours_enable_vector_count_and_masks() {
        let mut capability = msi_64_masking();
        capability.write(BASE + 4, 4, 0xFEE0_1000);
        capability.write(BASE + 0x0C, 2, 0x4043);
        assert_eq!(capability.fire(0), None, "MSI off");
        assert_eq!(capability.pending(), 0, "a disabled function does not pend");
        capability.write(BASE + 2, 2, 0x0021);
        // Four vectors: data's low two bits carry the vector number.
        assert_eq!(
            capability.fire(2),
            Some(GuestMsi {
                address: 0xFEE0_1000,
                data: 0x4042
            })
        );
        assert_eq!(capability.fire(3).map(|m| m.data), Some(0x4043));
        assert_eq!(capability.fire(4), None, "not enabled");
        assert_eq!(capability.fire(255), None);
        capability.write(BASE + 0x10, 4, 0b0101);
        assert_eq!(capability.fire(0), None);
        assert_eq!(capability.fire(2), None);
        assert_eq!(capability.fire(1).map(|m| m.data), Some(0x4041));
        assert_eq!(capability.pending(), 0b0101);
        assert_eq!(capability.read(BASE + 0x14, 4), 0b0101);
        assert_eq!(capability.unmask_released().count(), 0, "still masked");
        capability.write(BASE + 0x10, 4, 0b0001);
        let released: Vec<_> = capability.unmask_released().collect();
        assert_eq!(
            released,
            [GuestMsi {
                address: 0xFEE0_1000,
                data: 0x4042
            }]
        );
        assert_eq!(capability.pending(), 0b0001);
        capability.write(BASE + 0x10, 4, 0);
        assert_eq!(
            capability.unmask_released().map(|m| m.data).collect::<Vec<_>>(),
            [0x4040]
        );
        assert_eq!(capability.pending(), 0);
    }

    #[test]
    fn msi_pending_vectors_wait_while_disabled_or_beyond_the_enabled_count() {
        let mut capability = msi(MSI_CONTROL_PER_VECTOR_MASKING | mmc(3));
        capability.write(BASE + 0x0C, 4, 0xFF);
        capability.set_pending(0, true);
        capability.set_pending(5, true);
        capability.write(BASE + 0x0C, 4, 0);
        assert_eq!(capability.unmask_released().count(), 0, "MSI off");
        capability.write(BASE + 2, 2, 0x0001);
        assert_eq!(capability.unmask_released().count(), 1, "only vector 0 is enabled");
        assert_eq!(capability.pending(), 1 << 5);
        capability.write(BASE + 2, 2, 0x0031);
        assert_eq!(capability.unmask_released().map(|m| m.data).collect::<Vec<_>>(), [5]);
    }

    /// What a hostile guest's MSI accesses must never break.
    fn check_msi_invariants(capability: &MsiCapability) {
        let state = capability.state();
        assert_eq!(state.address & 3, 0);
        if !capability.is_64bit() {
            assert!(state.address <= u64::from(u32::MAX));
        }
        assert!(state.vectors.is_power_of_two() && state.vectors <= capability.capable_vectors());
        let implemented = ((1u64 << capability.capable_vectors()) - 1) as u32;
        assert_eq!(state.masked & !implemented, 0);
        assert_eq!(capability.pending() & !implemented, 0);
        if !capability.per_vector_masking() {
            assert_eq!(state.masked | capability.pending(), 0);
        }
        // The guest reads back what the state says.
        let base = u16::from(capability.offset());
        let control = capability.read(base + 2, 2) as u16;
        assert_eq!(control & MSI_CONTROL_ENABLE != 0, state.enabled);
        assert_eq!(1u8 << ((control >> 4) & 7), state.vectors);
        assert_eq!(capability.read(base, 1), u32::from(MSI_CAPABILITY_ID));
        assert_eq!(u64::from(capability.read(base + 4, 4)), state.address & 0xFFFF_FFFF);
    }

    #[test]
    fn msi_survives_random_hostile_sequences() {
        let mut rng = Rng(0x5EED_0005_4D53_4921);
        for round in 0..64 {
            let control = rng.next_u64() as u16;
            let mut capability = MsiCapability::new(control, rng.next_u64() as u8, rng.next_u64() as u8);
            let base = u16::from(capability.offset());
            for _ in 0..400 {
                // Mostly near the structure, sometimes anywhere.
                let offset = if rng.below(8) == 0 {
                    rng.next_u64() as u16
                } else {
                    base.wrapping_sub(4).wrapping_add(rng.below(0x20) as u16)
                };
                let size = rng.pick(&[1, 2, 4, 4, 4, 0, 3, 8]);
                match rng.below(5) {
                    0 => {
                        let _ = capability.read(offset, size);
                    }
                    1 => {
                        let vector = rng.below(40) as u8;
                        if let Some(msi) = capability.fire(vector) {
                            assert!(capability.state().enabled);
                            assert_eq!(msi.address, capability.state().address);
                        }
                    }
                    2 => {
                        let before = capability.pending();
                        let state = capability.state();
                        let released: Vec<_> = capability.unmask_released().collect();
                        assert_eq!(released.len() as u32, (before ^ capability.pending()).count_ones());
                        if !released.is_empty() {
                            assert!(state.enabled, "round {round}");
                        }
                    }
                    3 => capability.set_pending(rng.below(40) as u8, rng.below(2) == 0),
                    _ => {
                        let before = capability.state();
                        let change = capability.write(offset, size, rng.next_u64() as u32);
                        match change {
                            Some(change) => {
                                assert_eq!(change.previous, before);
                                assert_eq!(change.state, capability.state());
                                assert_ne!(change.previous, change.state);
                            }
                            None => assert_eq!(capability.state(), before),
                        }
                    }
                }
                check_msi_invariants(&capability);
            }
        }
    }

    // ----- MSI-X -----

    const TABLE_BAR: u8 = 2;
    const TABLE_OFFSET: u32 = 0x2000;
    const PBA_OFFSET: u32 = 0x3000;

    fn host_msix(entries: u16) -> HostMsix {
        HostMsix {
            control: entries - 1,
            table: TABLE_OFFSET | u32::from(TABLE_BAR),
            pba: PBA_OFFSET | u32::from(TABLE_BAR),
        }
    }

    fn msix(entries: u16) -> MsixCapability {
        MsixCapability::new(host_msix(entries), MSIX_GUEST_OFFSET, 0).unwrap()
    }

    const MSIX_BASE: u16 = MSIX_GUEST_OFFSET as u16;

    fn enable(capability: &mut MsixCapability) {
        capability.write(MSIX_BASE + 2, 2, u32::from(MSIX_CONTROL_ENABLE));
    }

    /// Programs entry `index` like Linux's __pci_write_msi_msg for MSI-X
    /// (address low, high, data; unmask separately).
    fn program(capability: &mut MsixCapability, index: u16, address: u64, data: u32) {
        let at = u64::from(index) * 16;
        capability.table_write(at, 4, address & 0xFFFF_FFFF);
        capability.table_write(at + 4, 4, address >> 32);
        capability.table_write(at + 8, 4, u64::from(data));
    }

    fn unmask(capability: &mut MsixCapability, index: u16) {
        capability.table_write(u64::from(index) * 16 + 12, 4, 0);
    }

    #[test]
    fn msix_capability_registers() {
        let mut capability = msix(5);
        assert_eq!(capability.read(MSIX_BASE, 4), 0x0004_0011);
        assert_eq!(capability.read(MSIX_BASE + 4, 4), TABLE_OFFSET | 2);
        assert_eq!(capability.read(MSIX_BASE + 8, 4), PBA_OFFSET | 2);
        assert_eq!(capability.read(MSIX_BASE + 12, 4), 0, "past the structure");
        // Only Enable and Function Mask are writable.
        let change = capability.write(MSIX_BASE, 4, 0xFFFF_FFFF);
        assert_eq!(
            change,
            Some(MsixControl {
                enabled: true,
                function_masked: true
            })
        );
        assert_eq!(capability.read(MSIX_BASE, 4), 0xC004_0011);
        assert_eq!(capability.write(MSIX_BASE + 3, 1, 0xC0), None, "unchanged");
        assert_eq!(
            capability.write(MSIX_BASE + 3, 1, 0x80),
            Some(MsixControl {
                enabled: true,
                function_masked: false
            })
        );
        for offset in [MSIX_BASE + 4, MSIX_BASE + 8] {
            assert_eq!(capability.write(offset, 4, 0), None);
        }
        assert_eq!(capability.read(MSIX_BASE + 4, 4), TABLE_OFFSET | 2);
        assert_eq!(capability.read(MSIX_BASE + 8, 4), PBA_OFFSET | 2);
        // A byte write to the low control byte leaves the high one.
        capability.write(MSIX_BASE + 2, 1, 0xFF);
        assert_eq!(capability.read(MSIX_BASE + 2, 2), 0x8004);
        // Host enable/function-mask bits are not inherited.
        let host = HostMsix {
            control: 0xC000 | 7,
            ..host_msix(1)
        };
        let fresh = MsixCapability::new(host, MSIX_GUEST_OFFSET, 0).unwrap();
        assert_eq!(fresh.read(MSIX_BASE + 2, 2), 7);
        assert_eq!(fresh.table().len(), 8);
    }

    #[test]
    fn msix_construction_rejects_reserved_birs_and_overflowing_regions() {
        let bad_table = HostMsix {
            table: 6,
            ..host_msix(4)
        };
        assert_eq!(MsixCapability::new(bad_table, 0x70, 0), Err(MsixError::TableBir(6)));
        let bad_pba = HostMsix {
            pba: 0x1007,
            ..host_msix(4)
        };
        assert_eq!(MsixCapability::new(bad_pba, 0x70, 0), Err(MsixError::PbaBir(7)));
        let too_far = HostMsix {
            table: 0xFFFF_FFF8,
            ..host_msix(4)
        };
        assert_eq!(MsixCapability::new(too_far, 0x70, 0), Err(MsixError::RegionTooLarge));
        assert!(!MsixError::TableBir(6).to_string().is_empty());
    }

    #[test]
    fn msix_table_resets_masked_and_takes_dword_and_qword_writes() {
        let mut capability = msix(4);
        for index in 0..4 {
            assert_eq!(capability.entry(index), Some(MsixEntry::RESET));
            assert_eq!(capability.table_read(u64::from(index) * 16 + 12, 4), 1);
        }
        assert_eq!(capability.entry(4), None);
        program(&mut capability, 1, 0xFEE0_2003, 0x4051);
        assert_eq!(
            capability.entry(1),
            Some(MsixEntry {
                address: 0xFEE0_2000,
                data: 0x4051,
                masked: true
            })
        );
        // Qword writes: address in one, data + vector control in the other.
        assert_eq!(capability.table_write(32, 8, 0x0000_0001_FEE0_1000), Some(2));
        assert_eq!(capability.table_write(40, 8, 0x0000_0000_0000_0031), Some(2));
        assert_eq!(
            capability.entry(2),
            Some(MsixEntry {
                address: 0x1_FEE0_1000,
                data: 0x31,
                masked: false
            })
        );
        assert_eq!(capability.table_read(32, 8), 0x0000_0001_FEE0_1000);
        assert_eq!(capability.table_read(40, 8), 0x31);
        assert_eq!(capability.table_read(36, 4), 1);
        // Rewriting the same values is no change; reserved vector control
        // bits are dropped.
        assert_eq!(capability.table_write(40, 8, 0x0000_0000_0000_0031), None);
        assert_eq!(capability.table_write(44, 4, 0xFFFF_FFFE), None);
        assert_eq!(capability.table_read(44, 4), 0);
        assert_eq!(capability.table_write(44, 4, 0xFFFF_FFFF), Some(2));
        assert_eq!(capability.table_read(44, 4), 1);
    }

    #[test]
    fn msix_table_ignores_accesses_the_spec_does_not_allow() {
        let mut capability = msix(2);
        program(&mut capability, 0, 0xFEE0_0000, 0x41);
        let before = capability.table().clone();
        for (offset, size) in [
            (0u64, 1u8),
            (0, 2),
            (2, 4),
            (4, 8),
            (12, 8),
            (0, 3),
            (0, 0),
            (0, 16),
            (32, 4),
            (28, 8),
            (u64::MAX - 3, 4),
            (u64::MAX - 7, 8),
        ] {
            assert_eq!(
                capability.table_write(offset, size, u64::MAX),
                None,
                "{offset:#x}/{size}"
            );
            assert_eq!(capability.table_read(offset, size), 0, "{offset:#x}/{size}");
        }
        assert_eq!(capability.table(), &before);
        // The last qword is still in reach.
        assert_eq!(capability.table_read(24, 8), 1 << 32);
    }

    #[test]
    fn msix_effective_mask_combines_entry_function_mask_and_enable() {
        let mut capability = msix(2);
        for (enabled, function_masked, entry_masked, expected) in [
            (false, false, false, true),
            (true, false, false, false),
            (true, true, false, true),
            (true, false, true, true),
            (false, true, true, true),
        ] {
            let control = u32::from(enabled) << 15 | u32::from(function_masked) << 14;
            capability.write(MSIX_BASE + 2, 2, control);
            capability.table_write(12, 4, u64::from(entry_masked));
            assert_eq!(
                capability.effective_masked(0),
                expected,
                "enabled {enabled} function mask {function_masked} entry {entry_masked}"
            );
        }
        assert!(capability.effective_masked(2), "no such entry");
        assert!(capability.effective_masked(u16::MAX));
    }

    #[test]
    fn msix_masked_fires_pend_and_are_released_on_unmask() {
        let mut capability = msix(70);
        program(&mut capability, 0, 0xFEE0_0000, 0x30);
        program(&mut capability, 65, 0xFEE0_1000, 0x31);
        program(&mut capability, 69, 0xFEE0_2000, 0x32);
        // Disabled: every fire pends (the real device only interrupts when
        // Keel enabled it, so nothing the guest asked for is lost).
        assert_eq!(capability.fire(0), None);
        assert!(capability.table().pending(0));
        assert_eq!(capability.pba_read(0, 8), 1);
        enable(&mut capability);
        assert_eq!(capability.unmask_released().count(), 0, "entry still masked");
        // Entry 65: masked, fires, pends in the second PBA qword.
        assert_eq!(capability.fire(65), None);
        assert_eq!(capability.pba_read(8, 8), 1 << 1);
        assert_eq!(capability.pba_read(8, 4), 1 << 1);
        assert_eq!(capability.pba_read(12, 4), 0);
        unmask(&mut capability, 65);
        unmask(&mut capability, 0);
        let released: Vec<_> = capability.unmask_released().collect();
        assert_eq!(
            released,
            [
                GuestMsi {
                    address: 0xFEE0_0000,
                    data: 0x30
                },
                GuestMsi {
                    address: 0xFEE0_1000,
                    data: 0x31
                }
            ]
        );
        assert!(!capability.table().any_pending());
        // Unmasked and enabled: fires deliver directly.
        assert_eq!(capability.fire(65).map(|m| m.data), Some(0x31));
        assert!(!capability.table().any_pending());
        // Function Mask holds everything back, then releases it.
        capability.write(MSIX_BASE + 3, 1, 0xC0);
        assert_eq!(capability.fire(0), None);
        assert_eq!(capability.fire(69), None, "masked entry under function mask");
        assert_eq!(capability.unmask_released().count(), 0);
        capability.write(MSIX_BASE + 3, 1, 0x80);
        assert_eq!(capability.unmask_released().map(|m| m.data).collect::<Vec<_>>(), [0x30]);
        assert!(capability.table().pending(69), "its own mask still holds it");
        unmask(&mut capability, 69);
        assert_eq!(capability.unmask_released().map(|m| m.data).collect::<Vec<_>>(), [0x32]);
        assert_eq!(capability.fire(70), None, "no such entry");
        assert!(!capability.table().any_pending());
    }

    #[test]
    fn msix_released_messages_not_taken_stay_pending() {
        let mut capability = msix(8);
        for index in 0..8 {
            program(&mut capability, index, 0xFEE0_0000, 0x40 + u32::from(index));
            assert_eq!(capability.fire(index), None);
            unmask(&mut capability, index);
        }
        enable(&mut capability);
        assert_eq!(capability.unmask_released().take(3).count(), 3);
        assert_eq!(capability.pba_read(0, 4), 0xF8);
        assert_eq!(
            capability.unmask_released().map(|m| m.data).collect::<Vec<_>>(),
            [0x43, 0x44, 0x45, 0x46, 0x47]
        );
    }

    #[test]
    fn msix_pba_is_read_only_and_sized_to_the_table() {
        let table = MsixTable::new(MSIX_MAX_ENTRIES);
        assert_eq!(table.table_bytes(), 0x8000);
        assert_eq!(table.pba_bytes(), 256);
        assert_eq!(MsixTable::new(0).len(), 1, "clamped");
        assert_eq!(MsixTable::new(u16::MAX).len(), MSIX_MAX_ENTRIES);
        assert_eq!(MsixTable::new(65).pba_bytes(), 16);
        let mut capability = MsixCapability::new(host_msix(MSIX_MAX_ENTRIES), MSIX_GUEST_OFFSET, 0).unwrap();
        assert_eq!(capability.fire(2047), None);
        assert_eq!(capability.pba_read(248, 8), 1 << 63);
        assert_eq!(capability.pba_read(252, 4), 1 << 31);
        assert_eq!(capability.pba_read(256, 4), 0, "past the PBA");
        assert_eq!(capability.pba_read(250, 4), 0, "unaligned");
        enable(&mut capability);
        unmask(&mut capability, 2047);
        assert_eq!(capability.unmask_released().count(), 1);
        assert_eq!(capability.table_read(0x7FF0 + 12, 4), 0);
    }

    #[test]
    fn msix_survives_random_hostile_sequences() {
        let mut rng = Rng(0x9E37_79B9_0011_0011);
        for _ in 0..32 {
            let entries = rng.pick(&[1u16, 3, 64, 65, 200, MSIX_MAX_ENTRIES]);
            let mut capability = msix(entries);
            let table_bytes = u64::from(capability.table().table_bytes());
            for _ in 0..1000 {
                let size = rng.pick(&[4u8, 8, 4, 8, 1, 2, 3, 0, 16]);
                let offset = match rng.below(4) {
                    0 => rng.next_u64(),
                    1 => rng.below(table_bytes + 32),
                    _ => rng.below(table_bytes / 4 + 2) * 4,
                };
                let index = rng.below(u64::from(entries) + 3) as u16;
                match rng.below(8) {
                    0 => {
                        let _ = capability.table_read(offset, size);
                        let _ = capability.pba_read(offset % 300, size);
                    }
                    1 | 2 => {
                        let before = capability.table().clone();
                        let changed = capability.table_write(offset, size, rng.next_u64());
                        match changed {
                            Some(changed) => {
                                assert!(changed < entries);
                                assert_ne!(before.entry(changed), capability.entry(changed));
                            }
                            None => assert_eq!(&before, capability.table()),
                        }
                    }
                    3 => {
                        let masked = capability.effective_masked(index);
                        let fired = capability.fire(index);
                        assert_eq!(fired.is_some(), !masked && index < entries);
                        if masked && index < entries {
                            assert!(capability.table().pending(index));
                        }
                    }
                    4 => {
                        let released: Vec<_> = capability.unmask_released().collect();
                        let control = capability.control();
                        if !released.is_empty() {
                            assert!(control.enabled && !control.function_masked);
                        }
                        // Whatever is still pending is still masked.
                        for index in 0..entries {
                            if capability.table().pending(index) {
                                assert!(capability.effective_masked(index));
                            }
                        }
                    }
                    5 => {
                        let at = MSIX_BASE.wrapping_add(rng.below(16) as u16);
                        let _ = capability.write(at, size, rng.next_u64() as u32);
                    }
                    _ => {
                        let at = rng.next_u64() as u16;
                        let _ = capability.read(at, size);
                        let _ = capability.write(at, size, rng.next_u64() as u32);
                    }
                }
                // Invariants: the structure's read-only parts hold, entry
                // addresses stay dword aligned, no pending bit beyond the table.
                assert_eq!(capability.read(MSIX_BASE, 2), 0x0011);
                assert_eq!(capability.read(MSIX_BASE + 2, 2) & 0x7FF, u32::from(entries - 1));
                assert_eq!(capability.read(MSIX_BASE + 4, 4), TABLE_OFFSET | 2);
                assert_eq!(capability.read(MSIX_BASE + 8, 4), PBA_OFFSET | 2);
                let pba_qwords = u64::from(capability.table().pba_bytes() / 8);
                let last = capability.pba_read((pba_qwords - 1) * 8, 8);
                let used = u32::from(entries) - 64 * (pba_qwords as u32 - 1);
                if used < 64 {
                    assert_eq!(last >> used, 0);
                }
                let sample = rng.below(u64::from(entries)) as u16;
                assert_eq!(capability.entry(sample).map(|entry| entry.address & 3), Some(0));
            }
        }
    }

    // ----- the capability list -----

    fn both() -> PassthroughCapabilities {
        PassthroughCapabilities::new(HostCapabilities {
            msi_control: Some(MSI_CONTROL_64BIT | MSI_CONTROL_PER_VECTOR_MASKING | mmc(5)),
            msix: Some(host_msix(16)),
        })
        .unwrap()
    }

    /// Linux's __pci_find_next_cap_ttl: follows the chain from the header's
    /// pointer (48 hops at most), collecting (offset, ID).
    fn walk(capabilities: &PassthroughCapabilities) -> Vec<(u8, u8)> {
        let mut found = Vec::new();
        let mut pointer = capabilities.first_pointer();
        for _ in 0..48 {
            if pointer < 0x40 {
                break;
            }
            let header = capabilities.read(u16::from(pointer & !3), 2).unwrap();
            found.push((pointer, header as u8));
            pointer = (header >> 8) as u8;
        }
        found
    }

    #[test]
    fn the_list_chains_msi_then_msix_at_fixed_offsets() {
        let capabilities = both();
        assert_eq!(capabilities.first_pointer(), 0x50);
        assert_eq!(walk(&capabilities), [(0x50, 0x05), (0x70, 0x11)]);
        let msi_only = PassthroughCapabilities::new(HostCapabilities {
            msi_control: Some(0),
            msix: None,
        })
        .unwrap();
        assert_eq!(walk(&msi_only), [(0x50, 0x05)]);
        assert_eq!(msi_only.msix_table_location(), None);
        let msix_only = PassthroughCapabilities::new(HostCapabilities {
            msi_control: None,
            msix: Some(host_msix(1)),
        })
        .unwrap();
        assert_eq!(msix_only.first_pointer(), 0x70);
        assert_eq!(walk(&msix_only), [(0x70, 0x11)]);
        let none = PassthroughCapabilities::new(HostCapabilities::default()).unwrap();
        assert_eq!(none.first_pointer(), 0);
        assert_eq!(none.read(0x50, 4), None);
        assert!(!none.claims_mmio(TABLE_BAR, u64::from(TABLE_OFFSET), 4));
        let bad = HostCapabilities {
            msi_control: None,
            msix: Some(HostMsix {
                table: 7,
                ..host_msix(1)
            }),
        };
        assert_eq!(PassthroughCapabilities::new(bad), Err(MsixError::TableBir(7)));
    }

    #[test]
    fn the_list_claims_only_its_structures() {
        let mut capabilities = both();
        assert_eq!(capabilities.read(0x4C, 4), None);
        assert_eq!(capabilities.read(0x68, 4), None, "MSI is 0x18 bytes");
        assert_eq!(capabilities.read(0x7C, 4), None, "MSI-X is 12 bytes");
        assert_eq!(capabilities.read(0x4F, 1), None);
        assert!(capabilities.claims(0x4E, 4), "straddles into MSI");
        // Bytes outside the structures read 0 within a claimed access.
        assert_eq!(capabilities.read(0x4E, 4), Some(0x7005_0000));
        assert_eq!(capabilities.write(0x4C, 4, u32::MAX), None);
        assert_eq!(capabilities.write(0x68, 4, u32::MAX), None);
        for offset in [0u16, 0x3F, 0x100, 0xFFF, u16::MAX] {
            assert_eq!(capabilities.read(offset, 4), None);
            assert!(!capabilities.claims(offset, 4));
        }
    }

    #[test]
    fn the_list_routes_writes_and_reports_changes() {
        let mut capabilities = both();
        let change = capabilities.write(0x54, 4, 0xFEE0_0000);
        assert!(matches!(change, Some(CapabilityChange::Msi(change)) if change.state.address == 0xFEE0_0000));
        assert_eq!(
            capabilities.write(0x72, 2, 0xC000),
            Some(CapabilityChange::MsixControl(MsixControl {
                enabled: true,
                function_masked: true
            }))
        );
        assert_eq!(capabilities.read(0x72, 2), Some(0xC00F));
        assert_eq!(capabilities.msi().map(|msi| msi.state().address), Some(0xFEE0_0000));
        assert!(capabilities.msix().is_some_and(|msix| msix.control().function_masked));
        assert!(capabilities.msi_mut().is_some());
        assert!(capabilities.msix_mut().is_some());
    }

    #[test]
    fn the_list_traps_the_table_and_pba_in_their_bar() {
        let mut capabilities = both();
        assert_eq!(
            capabilities.msix_table_location(),
            Some(MsixRegion {
                bar: TABLE_BAR,
                offset: TABLE_OFFSET,
                bytes: 16 * 16
            })
        );
        assert_eq!(
            capabilities.pba_location(),
            Some(MsixRegion {
                bar: TABLE_BAR,
                offset: PBA_OFFSET,
                bytes: 8
            })
        );
        let table = u64::from(TABLE_OFFSET);
        assert_eq!(
            capabilities.msix_mmio_write(TABLE_BAR, table + 16, 4, 0xFEE0_1000),
            Some(CapabilityChange::MsixEntry(1))
        );
        assert_eq!(capabilities.msix_mmio_read(TABLE_BAR, table + 16, 4), Some(0xFEE0_1000));
        assert_eq!(capabilities.msix_mmio_read(TABLE_BAR, table + 12, 4), Some(1));
        // Another BAR, or outside the regions: the real device's business.
        assert_eq!(capabilities.msix_mmio_read(0, table, 4), None);
        assert_eq!(capabilities.msix_mmio_read(TABLE_BAR, table - 4, 4), None);
        assert_eq!(capabilities.msix_mmio_read(TABLE_BAR, table + 256, 4), None);
        assert!(!capabilities.claims_mmio(TABLE_BAR, table + 256, 8));
        assert_eq!(capabilities.msix_mmio_write(TABLE_BAR, table + 256, 4, 0), None);
        // Straddling the table's start: claimed, but reads 0 and writes nothing.
        assert!(capabilities.claims_mmio(TABLE_BAR, table - 4, 8));
        assert_eq!(capabilities.msix_mmio_read(TABLE_BAR, table - 4, 8), Some(0));
        assert_eq!(capabilities.msix_mmio_write(TABLE_BAR, table - 4, 8, u64::MAX), None);
        // The PBA: readable, writes ignored.
        let pba = u64::from(PBA_OFFSET);
        if let Some(msix) = capabilities.msix_mut() {
            assert_eq!(msix.fire(3), None);
        }
        assert!(capabilities.claims_mmio(TABLE_BAR, pba, 8));
        assert_eq!(capabilities.msix_mmio_read(TABLE_BAR, pba, 8), Some(1 << 3));
        assert_eq!(capabilities.msix_mmio_write(TABLE_BAR, pba, 8, 0), None);
        assert_eq!(capabilities.msix_mmio_read(TABLE_BAR, pba, 8), Some(1 << 3));
        assert!(!capabilities.claims_mmio(TABLE_BAR, u64::MAX, 8));
        assert!(!capabilities.claims_mmio(TABLE_BAR, table, 0));
    }

    #[test]
    fn every_offset_and_size_is_safe() {
        let mut capabilities = both();
        for offset in 0..=u16::MAX {
            for size in [0u8, 1, 2, 3, 4, 8, 255] {
                let value = capabilities.read(offset, size);
                assert_eq!(value.is_some(), capabilities.claims(offset, size));
            }
        }
        for offset in (0..=0x100).chain([0xFFFC, 0xFFFD, 0xFFFE, u16::MAX]) {
            for size in [0u8, 1, 2, 3, 4, 8, 255] {
                let _ = capabilities.write(offset, size, u32::MAX);
            }
        }
        // Everything written was all ones: MSI enabled with all it can
        // have, MSI-X enabled and function-masked, the chain untouched.
        assert_eq!(walk(&capabilities), [(0x50, 0x05), (0x70, 0x11)]);
        let msi = capabilities.msi().map(MsiCapability::state);
        assert_eq!(msi.map(|state| (state.enabled, state.vectors)), Some((true, 32)));
        assert_eq!(msi.map(|state| state.address), Some(0xFFFF_FFFF_FFFF_FFFC));
        let table_end = u64::from(TABLE_OFFSET) + 16 * 16;
        for bar in [0, TABLE_BAR, 7, u8::MAX] {
            for offset in (u64::from(TABLE_OFFSET) - 16..table_end + 16)
                .chain(u64::from(PBA_OFFSET) - 8..u64::from(PBA_OFFSET) + 16)
                .chain([u64::MAX - 7, u64::MAX])
            {
                for size in [0u8, 1, 2, 3, 4, 8, 16, 255] {
                    let _ = capabilities.msix_mmio_read(bar, offset, size);
                    let _ = capabilities.msix_mmio_write(bar, offset, size, u64::MAX);
                }
            }
        }
        if let Some(msix) = capabilities.msix_mut() {
            for index in 0..16 {
                let entry = msix.entry(index);
                assert_eq!(entry.map(|entry| (entry.address, entry.data)), Some((!3u64, u32::MAX)));
                assert_eq!(msix.fire(index), None, "all ones masks every entry");
            }
            assert_eq!(msix.fire(u16::MAX), None);
            assert_eq!(msix.pba_read(0, 8), 0xFFFF, "the PBA is not writable, but fires pend");
        }
    }

    #[test]
    fn the_list_survives_random_configuration_accesses() {
        let mut rng = Rng(0xC0FF_EE00_CAFE_0050);
        let mut capabilities = both();
        for _ in 0..20_000 {
            let offset = if rng.below(4) == 0 {
                rng.next_u64() as u16
            } else {
                0x40 + rng.below(0xC0) as u16
            };
            let size = rng.pick(&[1u8, 2, 4, 4, 0, 3, 8]);
            let claimed = capabilities.claims(offset, size);
            assert_eq!(capabilities.read(offset, size).is_some(), claimed);
            let change = capabilities.write(offset, size, rng.next_u64() as u32);
            if change.is_some() {
                assert!(claimed);
            }
            let bar = rng.below(8) as u8;
            let mmio = u64::from(TABLE_OFFSET) - 8 + rng.below(0x1100);
            let _ = capabilities.msix_mmio_read(bar, mmio, size);
            let _ = capabilities.msix_mmio_write(bar, mmio, size, rng.next_u64());
            // The chain never changes, whatever the guest wrote.
            assert_eq!(walk(&capabilities), [(0x50, 0x05), (0x70, 0x11)]);
        }
    }
}

//! A PCI type-0 (endpoint) configuration header: the first 64 bytes of a
//! virtual function's configuration space, reusable by every function model.
//!
//! What is modelled, as the PCI Local Bus 3.0 spec and Linux use it:
//! - identity registers (vendor, device, revision, class code, subsystem ids;
//!   header type 0, single function) are read-only;
//! - the command register keeps only I/O Space, Memory Space, Bus Master and
//!   Interrupt Disable (bit 10); every other bit reads 0;
//! - the status register reads Interrupt Status (bit 3), which the function
//!   drives with [`Type0Header::set_interrupt_status`] whatever Interrupt
//!   Disable says (`pci_check_and_mask_intx` and `uio_pci_generic` depend on
//!   that), and Capabilities List (bit 4), set when the function has a
//!   capability list ([`Type0Header::with_capabilities`]: the pointer at
//!   0x34; the function itself answers for the list's bytes).
//!   Writes to status are ignored (no RW1C error bits are ever set);
//! - six BARs: 32-bit or 64-bit memory (optionally prefetchable) or I/O, of
//!   power-of-two sizes. A BAR keeps only its address bits above its size, so
//!   writing all ones reads back the size mask with the type bits, exactly
//!   what Linux's `__pci_read_base` sizing expects; the upper half of a
//!   64-bit BAR is the next BAR slot. Unimplemented BARs and the expansion
//!   ROM BAR read 0 and ignore writes;
//! - Interrupt Line is read/write scratch for the OS, Interrupt Pin read-only.
//!
//! Accesses of 1, 2 or 4 bytes at any offset are handled byte lane by byte
//! lane (an access that crosses a dword boundary is split), so nothing a guest
//! sends can panic; offsets past the header read 0 and ignore writes.

/// Command register bits.
pub const COMMAND_IO: u16 = 1 << 0;
pub const COMMAND_MEMORY: u16 = 1 << 1;
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// Bits of the command register software can change.
pub const COMMAND_WRITABLE: u16 = COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE;

/// Status register bits.
pub const STATUS_INTERRUPT: u16 = 1 << 3;
pub const STATUS_CAPABILITIES_LIST: u16 = 1 << 4;

/// Number of base address registers in a type-0 header.
pub const BAR_COUNT: usize = 6;
/// Offset of BAR 0.
pub const BAR0_OFFSET: u16 = 0x10;
/// Bytes of the type-0 header proper.
pub const HEADER_BYTES: u16 = 0x40;

/// Interrupt Pin values.
pub const INTERRUPT_PIN_NONE: u8 = 0;
pub const INTERRUPT_PIN_INTA: u8 = 1;
pub const INTERRUPT_PIN_INTD: u8 = 4;

// Dword indices of the header registers (offset / 4).
const DWORD_ID: u16 = 0;
const DWORD_COMMAND_STATUS: u16 = 1;
const DWORD_CLASS_REVISION: u16 = 2;
const DWORD_BAR0: u16 = BAR0_OFFSET / 4;
const DWORD_SUBSYSTEM: u16 = 0x2C / 4;
const DWORD_INTERRUPT: u16 = 0x3C / 4;
const DWORD_CAPABILITIES: u16 = 0x34 / 4;

// BAR type bits (the low bits of the register).
const BAR_IO_SPACE: u32 = 1 << 0;
const BAR_MEMORY_64: u32 = 0b10 << 1;
const BAR_PREFETCHABLE: u32 = 1 << 3;
/// Address bits of a memory BAR's low dword / an I/O BAR.
const BAR_MEMORY_ADDRESS_MASK: u64 = !0xF;
const BAR_IO_ADDRESS_MASK: u64 = !0x3;
/// Smallest BAR sizes: the type bits must stay below the address bits.
const MIN_MEMORY_BAR_SIZE: u64 = 16;
const MIN_IO_BAR_SIZE: u64 = 4;
/// The spec caps I/O BARs at 256 bytes.
const MAX_IO_BAR_SIZE: u64 = 256;

/// Who the function says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciIdentity {
    pub vendor_id: u16,
    pub device_id: u16,
    /// Base class, subclass and programming interface in bits 23:0.
    pub class_code: u32,
    pub revision: u8,
    pub subsystem_vendor_id: u16,
    pub subsystem_id: u16,
}

impl PciIdentity {
    /// Vendor, device, class code and revision, without a subsystem.
    pub const fn new(vendor_id: u16, device_id: u16, class_code: u32, revision: u8) -> Self {
        Self {
            vendor_id,
            device_id,
            class_code,
            revision,
            subsystem_vendor_id: 0,
            subsystem_id: 0,
        }
    }
}

/// What kind of address space a BAR claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    Io,
    Memory32 {
        prefetchable: bool,
    },
    /// Occupies its slot and the next one (the upper address half).
    Memory64 {
        prefetchable: bool,
    },
}

impl BarKind {
    pub const fn is_memory(self) -> bool {
        !matches!(self, Self::Io)
    }
}

/// One implemented BAR: its kind, its size (a power of two) and the address
/// firmware assigned it (aligned to the size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    pub kind: BarKind,
    pub size: u64,
    pub address: u64,
}

/// Why a header cannot be built as asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciConfigError {
    /// BAR index 6 or more, or a 64-bit BAR in slot 5 (no room for its upper half).
    BarIndex(usize),
    /// The slot (or, for a 64-bit BAR, the next slot) is already used.
    BarSlotTaken(usize),
    /// Not a power of two, too small for its type bits, an I/O BAR over 256
    /// bytes or a 32-bit BAR over 2 GiB.
    BarSize { index: usize, size: u64 },
    /// The address is not aligned to the size or does not fit the BAR's width.
    BarAddress { index: usize, address: u64 },
    /// Interrupt Pin must be 0 (none) or 1-4 (INTA-INTD).
    InterruptPin(u8),
}

impl core::fmt::Display for PciConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::BarIndex(index) => write!(f, "BAR {index} does not exist"),
            Self::BarSlotTaken(index) => write!(f, "BAR slot {index} is already used"),
            Self::BarSize { index, size } => write!(f, "BAR {index}: invalid size {size:#x}"),
            Self::BarAddress { index, address } => {
                write!(f, "BAR {index}: address {address:#x} misaligned or too wide")
            }
            Self::InterruptPin(pin) => write!(f, "invalid interrupt pin {pin}"),
        }
    }
}

/// A BAR register slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BarSlot {
    Unimplemented,
    /// A BAR's own (low) register.
    Base(Bar),
    /// The upper 32 address bits of the 64-bit BAR in the previous slot.
    Upper,
}

/// The state of one type-0 configuration header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Type0Header {
    identity: PciIdentity,
    command: u16,
    interrupt_status: bool,
    bars: [BarSlot; BAR_COUNT],
    interrupt_line: u8,
    interrupt_pin: u8,
    capabilities: u8,
}

impl Type0Header {
    /// A header with no BARs, no interrupt pin and the command register clear.
    pub const fn new(identity: PciIdentity) -> Self {
        Self {
            identity,
            command: 0,
            interrupt_status: false,
            bars: [BarSlot::Unimplemented; BAR_COUNT],
            interrupt_line: 0,
            interrupt_pin: INTERRUPT_PIN_NONE,
            capabilities: 0,
        }
    }

    /// A capability list starting at `pointer` (dword-aligned, past the
    /// header); the function answers for the bytes there.
    pub fn with_capabilities(mut self, pointer: u8) -> Self {
        self.capabilities = pointer & 0xfc;
        self
    }

    /// Implements BAR `index` with the firmware-assigned `bar.address`.
    pub fn with_bar(mut self, index: usize, bar: Bar) -> Result<Self, PciConfigError> {
        let wide = matches!(bar.kind, BarKind::Memory64 { .. });
        let last = if wide { index.checked_add(1) } else { Some(index) };
        let last = last
            .filter(|last| *last < BAR_COUNT)
            .ok_or(PciConfigError::BarIndex(index))?;
        for slot in index..=last {
            if self.bars[slot] != BarSlot::Unimplemented {
                return Err(PciConfigError::BarSlotTaken(slot));
            }
        }
        let (min, max) = match bar.kind {
            BarKind::Io => (MIN_IO_BAR_SIZE, MAX_IO_BAR_SIZE),
            BarKind::Memory32 { .. } => (MIN_MEMORY_BAR_SIZE, 1 << 31),
            BarKind::Memory64 { .. } => (MIN_MEMORY_BAR_SIZE, 1 << 63),
        };
        if !bar.size.is_power_of_two() || bar.size < min || bar.size > max {
            return Err(PciConfigError::BarSize { index, size: bar.size });
        }
        let address_limit = if wide { u64::MAX } else { u64::from(u32::MAX) };
        if bar.address & (bar.size - 1) != 0 || bar.address > address_limit {
            return Err(PciConfigError::BarAddress {
                index,
                address: bar.address,
            });
        }
        self.bars[index] = BarSlot::Base(bar);
        if wide {
            self.bars[last] = BarSlot::Upper;
        }
        Ok(self)
    }

    /// Sets Interrupt Pin (0 = none, 1-4 = INTA-INTD).
    pub fn with_interrupt_pin(mut self, pin: u8) -> Result<Self, PciConfigError> {
        if pin > INTERRUPT_PIN_INTD {
            return Err(PciConfigError::InterruptPin(pin));
        }
        self.interrupt_pin = pin;
        Ok(self)
    }

    /// The command register as firmware leaves it (only writable bits stick),
    /// e.g. [`COMMAND_MEMORY`] so the BARs decode before any driver binds.
    pub fn with_command(mut self, command: u16) -> Self {
        self.command = command & COMMAND_WRITABLE;
        self
    }

    pub fn identity(&self) -> &PciIdentity {
        &self.identity
    }

    pub fn command(&self) -> u16 {
        self.command
    }

    pub fn status(&self) -> u16 {
        let interrupt = if self.interrupt_status { STATUS_INTERRUPT } else { 0 };
        let capabilities = if self.capabilities != 0 {
            STATUS_CAPABILITIES_LIST
        } else {
            0
        };
        interrupt | capabilities
    }

    pub fn memory_enabled(&self) -> bool {
        self.command & COMMAND_MEMORY != 0
    }

    pub fn io_enabled(&self) -> bool {
        self.command & COMMAND_IO != 0
    }

    pub fn intx_disabled(&self) -> bool {
        self.command & COMMAND_INTX_DISABLE != 0
    }

    pub fn interrupt_pin(&self) -> u8 {
        self.interrupt_pin
    }

    pub fn interrupt_line(&self) -> u8 {
        self.interrupt_line
    }

    /// The function's internal interrupt state, as Interrupt Status shows it.
    /// A function without an interrupt pin never sets it.
    pub fn set_interrupt_status(&mut self, pending: bool) {
        self.interrupt_status = pending && self.interrupt_pin != INTERRUPT_PIN_NONE;
    }

    pub fn interrupt_status(&self) -> bool {
        self.interrupt_status
    }

    /// Whether the INTx wire is asserted: an interrupt is pending and
    /// Interrupt Disable is clear.
    pub fn intx_asserted(&self) -> bool {
        self.interrupt_status && !self.intx_disabled()
    }

    /// BAR `index` as currently programmed (whatever the command register
    /// says); `None` for unimplemented slots and upper halves.
    pub fn bar(&self, index: usize) -> Option<Bar> {
        match self.bars.get(index)? {
            BarSlot::Base(bar) => Some(*bar),
            BarSlot::Unimplemented | BarSlot::Upper => None,
        }
    }

    /// The address BAR `index` decodes at now: `None` while its address
    /// space is disabled in the command register (as during Linux's BAR
    /// sizing, when the BAR holds the size mask) or if it is unimplemented.
    pub fn decoded_bar(&self, index: usize) -> Option<u64> {
        let bar = self.bar(index)?;
        let enabled = if bar.kind.is_memory() {
            self.memory_enabled()
        } else {
            self.io_enabled()
        };
        enabled.then_some(bar.address)
    }

    /// Reads `size` (1, 2 or 4; others are clamped to 4) bytes at `offset`,
    /// little-endian. Reads have no side effects.
    pub fn read(&self, offset: u16, size: u8) -> u32 {
        (0..u32::from(size.min(4))).fold(0, |value, index| {
            let byte = u32::from(offset)
                .checked_add(index)
                .map_or(0, |at| (self.read_dword(at / 4) >> ((at % 4) * 8)) & 0xFF);
            value | (byte << (index * 8))
        })
    }

    /// Writes the low `size` (1, 2 or 4; others are clamped to 4) bytes of
    /// `value` at `offset`. Each register sees only the byte lanes written.
    pub fn write(&mut self, offset: u16, size: u8, value: u32) {
        let size = u32::from(size.min(4));
        let mut done = 0;
        while done < size {
            let at = u32::from(offset) + done;
            let lane = at % 4;
            let count = (4 - lane).min(size - done);
            let lanes = (((1u64 << (count * 8)) - 1) as u32) << (lane * 8);
            let bytes = ((value >> (done * 8)) << (lane * 8)) & lanes;
            self.write_dword(at / 4, bytes, lanes);
            done += count;
        }
    }

    fn read_dword(&self, index: u32) -> u32 {
        let Ok(index) = u16::try_from(index) else {
            return 0;
        };
        let id = &self.identity;
        match index {
            DWORD_ID => u32::from(id.vendor_id) | u32::from(id.device_id) << 16,
            DWORD_COMMAND_STATUS => u32::from(self.command) | u32::from(self.status()) << 16,
            DWORD_CLASS_REVISION => u32::from(id.revision) | (id.class_code & 0xFF_FFFF) << 8,
            // Cache line size, latency timer, header type 0 (single
            // function) and BIST all read 0.
            DWORD_SUBSYSTEM => u32::from(id.subsystem_vendor_id) | u32::from(id.subsystem_id) << 16,
            DWORD_INTERRUPT => u32::from(self.interrupt_line) | u32::from(self.interrupt_pin) << 8,
            DWORD_CAPABILITIES => u32::from(self.capabilities),
            _ => match Self::bar_slot_index(index) {
                Some(slot) => self.read_bar(slot),
                // CardBus CIS, expansion ROM, capabilities pointer and
                // everything past the header: 0.
                None => 0,
            },
        }
    }

    fn bar_slot_index(dword: u16) -> Option<usize> {
        let slot = usize::from(dword.checked_sub(DWORD_BAR0)?);
        (slot < BAR_COUNT).then_some(slot)
    }

    fn read_bar(&self, slot: usize) -> u32 {
        match self.bars[slot] {
            BarSlot::Unimplemented => 0,
            BarSlot::Upper => match slot.checked_sub(1).map(|base| self.bars[base]) {
                Some(BarSlot::Base(bar)) => (bar.address >> 32) as u32,
                _ => 0,
            },
            BarSlot::Base(bar) => {
                let type_bits = match bar.kind {
                    BarKind::Io => BAR_IO_SPACE,
                    BarKind::Memory32 { prefetchable } => prefetch_bit(prefetchable),
                    BarKind::Memory64 { prefetchable } => BAR_MEMORY_64 | prefetch_bit(prefetchable),
                };
                bar.address as u32 | type_bits
            }
        }
    }

    /// Writes the bytes of `value` selected by `lanes` into dword `index`.
    fn write_dword(&mut self, index: u32, value: u32, lanes: u32) {
        let Ok(index) = u16::try_from(index) else {
            return;
        };
        let merged = (self.read_dword(u32::from(index)) & !lanes) | (value & lanes);
        match index {
            // Status (the upper half) has nothing writable.
            DWORD_COMMAND_STATUS => self.command = merged as u16 & COMMAND_WRITABLE,
            // Only Interrupt Line (byte 0) is writable.
            DWORD_INTERRUPT => self.interrupt_line = merged as u8,
            _ => {
                if let Some(slot) = Self::bar_slot_index(index) {
                    self.write_bar(slot, merged);
                }
            }
        }
    }

    fn write_bar(&mut self, slot: usize, value: u32) {
        match self.bars[slot] {
            BarSlot::Unimplemented => {}
            BarSlot::Upper => {
                if let Some(BarSlot::Base(bar)) = slot.checked_sub(1).and_then(|base| self.bars.get_mut(base)) {
                    let address = (bar.address & 0xFFFF_FFFF) | u64::from(value) << 32;
                    bar.address = address & !(bar.size - 1);
                }
            }
            BarSlot::Base(ref mut bar) => {
                let type_mask = if bar.kind.is_memory() {
                    BAR_MEMORY_ADDRESS_MASK
                } else {
                    BAR_IO_ADDRESS_MASK
                };
                let low = u64::from(value) & type_mask & !(bar.size - 1) & 0xFFFF_FFFF;
                bar.address = (bar.address & !0xFFFF_FFFF) | low;
            }
        }
    }
}

const fn prefetch_bit(prefetchable: bool) -> u32 {
    if prefetchable {
        BAR_PREFETCHABLE
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENTITY: PciIdentity = PciIdentity {
        vendor_id: 0x1234,
        device_id: 0x5678,
        class_code: 0x08_80_00,
        revision: 0x02,
        subsystem_vendor_id: 0x1AF4,
        subsystem_id: 0x1100,
    };

    /// BAR 0: 4 KiB 32-bit memory; BAR 1: 32-byte I/O; BAR 2-3: 2 MiB
    /// 64-bit prefetchable memory; BAR 4: 1 MiB 32-bit prefetchable; BAR 5 unused.
    fn header() -> Type0Header {
        Type0Header::new(IDENTITY)
            .with_bar(
                0,
                Bar {
                    kind: BarKind::Memory32 { prefetchable: false },
                    size: 0x1000,
                    address: 0xC000_0000,
                },
            )
            .and_then(|h| {
                h.with_bar(
                    1,
                    Bar {
                        kind: BarKind::Io,
                        size: 0x20,
                        address: 0xC000,
                    },
                )
            })
            .and_then(|h| {
                h.with_bar(
                    2,
                    Bar {
                        kind: BarKind::Memory64 { prefetchable: true },
                        size: 0x20_0000,
                        address: 0xC020_0000,
                    },
                )
            })
            .and_then(|h| {
                h.with_bar(
                    4,
                    Bar {
                        kind: BarKind::Memory32 { prefetchable: true },
                        size: 0x10_0000,
                        address: 0xC040_0000,
                    },
                )
            })
            .and_then(|h| h.with_interrupt_pin(INTERRUPT_PIN_INTA))
            .unwrap()
            .with_command(COMMAND_MEMORY | COMMAND_IO)
    }

    /// Linux's `__pci_read_base` for one BAR: decode off, save, write
    /// all-ones, read, restore (and the same on the upper half of a 64-bit
    /// BAR), decode back on. Returns (flags-bearing low dword, size).
    fn linux_size_bar(header: &mut Type0Header, index: u16) -> (u32, u64) {
        let pos = BAR0_OFFSET + 4 * index;
        let orig_cmd = header.read(0x04, 2) as u16;
        header.write(0x04, 2, u32::from(orig_cmd & !(COMMAND_IO | COMMAND_MEMORY)));
        let l = header.read(pos, 4);
        header.write(pos, 4, 0xFFFF_FFFF);
        let sz = header.read(pos, 4);
        header.write(pos, 4, l);
        let (mut l64, mut sz64, mut mask64) = if l & 1 != 0 {
            (u64::from(l & !3), u64::from(sz & !3), u64::from(!3u32 & 0xFFFF))
        } else {
            (u64::from(l & !0xF), u64::from(sz & !0xF), u64::from(!0xFu32))
        };
        if l & 1 == 0 && (l >> 1) & 3 == 2 {
            let hl = header.read(pos + 4, 4);
            header.write(pos + 4, 4, 0xFFFF_FFFF);
            let hsz = header.read(pos + 4, 4);
            header.write(pos + 4, 4, hl);
            l64 |= u64::from(hl) << 32;
            sz64 |= u64::from(hsz) << 32;
            mask64 |= u64::from(u32::MAX) << 32;
        }
        header.write(0x04, 2, u32::from(orig_cmd));
        // pci_size()
        let mut size = mask64 & sz64;
        if size != 0 {
            size &= !(size - 1);
        }
        let _ = l64;
        (l, size)
    }

    #[test]
    fn identity_registers_read_at_every_width() {
        let header = header();
        assert_eq!(header.read(0x00, 4), 0x5678_1234);
        assert_eq!(header.read(0x00, 2), 0x1234);
        assert_eq!(header.read(0x02, 2), 0x5678);
        assert_eq!(header.read(0x03, 1), 0x56);
        assert_eq!(header.read(0x08, 4), 0x0880_0002);
        assert_eq!(header.read(0x0A, 2), 0x0880, "class word Linux's sanity check reads");
        assert_eq!(header.read(0x09, 1), 0x00, "programming interface");
        assert_eq!(header.read(0x0E, 1), 0x00, "header type 0, single function");
        assert_eq!(header.read(0x2C, 4), 0x1100_1AF4);
        assert_eq!(header.read(0x3D, 1), 1, "INTA");
        assert_eq!(header.read(0x34, 1), 0, "no capabilities");
        assert_eq!(header.read(0x30, 4), 0, "no expansion ROM");
        // Read-only.
        let mut header = header;
        for offset in [0x00, 0x08, 0x0C, 0x2C, 0x34] {
            header.write(offset, 4, 0xFFFF_FFFF);
        }
        header.write(0x3D, 1, 3);
        assert_eq!(header.read(0x00, 4), 0x5678_1234);
        assert_eq!(header.read(0x08, 4), 0x0880_0002);
        assert_eq!(header.read(0x0C, 4), 0);
        assert_eq!(header.read(0x2C, 4), 0x1100_1AF4);
        assert_eq!(header.read(0x3D, 1), 1);
    }

    #[test]
    fn linux_bar_sizing_finds_every_size_and_type_and_restores_the_address() {
        let mut header = header();
        let (l, size) = linux_size_bar(&mut header, 0);
        assert_eq!((l, size), (0xC000_0000, 0x1000));
        let (l, size) = linux_size_bar(&mut header, 1);
        assert_eq!((l, size), (0xC001, 0x20), "I/O BAR, bit 0 set");
        let (l, size) = linux_size_bar(&mut header, 2);
        assert_eq!((l, size), (0xC020_000C, 0x20_0000), "64-bit prefetchable");
        let (l, size) = linux_size_bar(&mut header, 4);
        assert_eq!((l, size), (0xC040_0008, 0x10_0000), "32-bit prefetchable");
        let (l, size) = linux_size_bar(&mut header, 5);
        assert_eq!((l, size), (0, 0), "unimplemented");
        // Everything is back where firmware put it, decoding again.
        assert_eq!(header.decoded_bar(0), Some(0xC000_0000));
        assert_eq!(header.decoded_bar(1), Some(0xC000));
        assert_eq!(header.decoded_bar(2), Some(0xC020_0000));
        assert_eq!(header.command(), COMMAND_MEMORY | COMMAND_IO);
    }

    #[test]
    fn all_ones_reads_back_the_size_mask_with_type_bits() {
        let mut header = header();
        for (index, expected) in [
            (0u16, 0xFFFF_F000),
            (1, 0xFFFF_FFE1),
            (2, 0xFFE0_000C),
            (3, 0xFFFF_FFFF),
            (4, 0xFFF0_0008),
            (5, 0),
        ] {
            header.write(BAR0_OFFSET + 4 * index, 4, 0xFFFF_FFFF);
            assert_eq!(header.read(BAR0_OFFSET + 4 * index, 4), expected, "BAR {index}");
        }
        // While sizing, a decoding BAR would sit at the mask.
        assert_eq!(header.bar(2).map(|bar| bar.address), Some(0xFFFF_FFFF_FFE0_0000));
    }

    #[test]
    fn sixty_four_bit_bar_moves_above_4_gib_and_back() {
        let mut header = header();
        header.write(0x18, 4, 0x0040_0000);
        header.write(0x1C, 4, 0x0000_0001);
        assert_eq!(header.decoded_bar(2), Some(0x1_0040_0000));
        assert_eq!(header.read(0x18, 4), 0x0040_000C);
        assert_eq!(header.read(0x1C, 4), 1);
        // Low bits below the size are dropped.
        header.write(0x18, 4, 0xC030_1234);
        header.write(0x1C, 4, 0);
        assert_eq!(header.decoded_bar(2), Some(0xC020_0000));
    }

    #[test]
    fn byte_and_word_writes_update_only_their_lanes() {
        let mut header = header();
        // Move BAR 0 from 0xC000_0000 to 0xD000_0000 one byte at a time.
        header.write(0x13, 1, 0xD0);
        assert_eq!(header.read(0x10, 4), 0xD000_0000);
        header.write(0x11, 2, 0x1234);
        assert_eq!(header.read(0x10, 4), 0xD012_3000, "bits under the 4 KiB size stay 0");
        // Interrupt Line is a byte of its own: writing the dword leaves the pin.
        header.write(0x3C, 4, 0xFFFF_FF0B);
        assert_eq!(header.read(0x3C, 2), 0x010B);
        assert_eq!(header.interrupt_line(), 0x0B);
    }

    #[test]
    fn command_keeps_only_io_memory_bus_master_and_interrupt_disable() {
        let mut header = Type0Header::new(IDENTITY);
        header.write(0x04, 2, 0xFFFF);
        assert_eq!(header.read(0x04, 2), 0x0407);
        header.write(0x04, 2, 0);
        assert_eq!(header.command(), 0);
        // uio howto: re-enable interrupts with a byte write to offset 5.
        header.write(0x04, 2, 0x0406);
        header.write(0x05, 1, 0x00);
        assert_eq!(header.command(), 0x0006);
        // A dword write to 0x04 writes the command; status ignores its half.
        header.write(0x04, 4, 0xFFFF_0002);
        assert_eq!(header.read(0x04, 4), 0x0000_0002);
    }

    #[test]
    fn linux_intx_mask_probe_sees_the_bit_toggle() {
        // pci_intx_mask_broken: read, write orig ^ INTX_DISABLE, read, restore.
        let mut header = header();
        let orig = header.read(0x04, 2) as u16;
        let toggle = orig ^ COMMAND_INTX_DISABLE;
        header.write(0x04, 2, u32::from(toggle));
        let new = header.read(0x04, 2) as u16;
        header.write(0x04, 2, u32::from(orig));
        assert_eq!(new, toggle);
        assert_eq!(header.command(), orig);
    }

    #[test]
    fn interrupt_status_follows_the_function_not_interrupt_disable() {
        let mut header = header();
        header.set_interrupt_status(true);
        assert_eq!(header.read(0x06, 2), u32::from(STATUS_INTERRUPT));
        assert!(header.intx_asserted());
        // pci_check_and_mask_intx: dword read of command+status, word write.
        let dword = header.read(0x04, 4);
        assert_ne!((dword >> 16) as u16 & STATUS_INTERRUPT, 0);
        header.write(0x04, 2, (dword & 0xFFFF) | u32::from(COMMAND_INTX_DISABLE));
        assert!(!header.intx_asserted(), "line released");
        assert_eq!(header.read(0x06, 2), u32::from(STATUS_INTERRUPT), "still pending");
        // Writing 1s to status (RW1C elsewhere) changes nothing.
        header.write(0x06, 2, 0xFFFF);
        assert!(header.interrupt_status());
        header.set_interrupt_status(false);
        assert_eq!(header.read(0x06, 2), 0);
        // A function without a pin never shows Interrupt Status.
        let mut pinless = Type0Header::new(IDENTITY);
        pinless.set_interrupt_status(true);
        assert_eq!(pinless.status(), 0);
        assert!(!pinless.intx_asserted());
    }

    #[test]
    fn decoding_follows_the_command_register() {
        let mut header = header();
        header.write(0x04, 2, u32::from(COMMAND_IO));
        assert_eq!(header.decoded_bar(0), None);
        assert_eq!(header.decoded_bar(1), Some(0xC000));
        header.write(0x04, 2, u32::from(COMMAND_MEMORY));
        assert_eq!(header.decoded_bar(0), Some(0xC000_0000));
        assert_eq!(header.decoded_bar(1), None);
        assert_eq!(header.decoded_bar(3), None, "upper half is not a BAR");
        assert_eq!(header.decoded_bar(5), None);
        assert_eq!(header.decoded_bar(99), None);
    }

    #[test]
    fn constructor_rejects_impossible_bars() {
        let memory = |size, address| Bar {
            kind: BarKind::Memory32 { prefetchable: false },
            size,
            address,
        };
        let wide = Bar {
            kind: BarKind::Memory64 { prefetchable: false },
            size: 0x1000,
            address: 0x1_0000_0000,
        };
        let new = || Type0Header::new(IDENTITY);
        assert_eq!(new().with_bar(6, memory(0x1000, 0)), Err(PciConfigError::BarIndex(6)));
        assert_eq!(new().with_bar(5, wide), Err(PciConfigError::BarIndex(5)));
        assert_eq!(
            new().with_bar(0, memory(0x1800, 0)),
            Err(PciConfigError::BarSize { index: 0, size: 0x1800 })
        );
        assert_eq!(
            new().with_bar(0, memory(8, 0)),
            Err(PciConfigError::BarSize { index: 0, size: 8 })
        );
        let big_io = Bar {
            kind: BarKind::Io,
            size: 0x200,
            address: 0,
        };
        assert_eq!(
            new().with_bar(0, big_io),
            Err(PciConfigError::BarSize { index: 0, size: 0x200 })
        );
        assert_eq!(
            new().with_bar(0, memory(0x1000, 0x800)),
            Err(PciConfigError::BarAddress {
                index: 0,
                address: 0x800
            })
        );
        assert_eq!(
            new().with_bar(0, memory(0x1000, 0x1_0000_0000)),
            Err(PciConfigError::BarAddress {
                index: 0,
                address: 0x1_0000_0000
            })
        );
        let taken = new().with_bar(1, memory(0x1000, 0)).unwrap();
        assert_eq!(taken.clone().with_bar(0, wide), Err(PciConfigError::BarSlotTaken(1)));
        assert_eq!(taken.with_bar(1, wide), Err(PciConfigError::BarSlotTaken(1)));
        assert_eq!(new().with_interrupt_pin(5), Err(PciConfigError::InterruptPin(5)));
        let wide_header = new().with_bar(0, wide).unwrap();
        assert_eq!(wide_header.read(0x10, 4), 0x0000_0004);
        assert_eq!(wide_header.read(0x14, 4), 1);
        // Firmware command bits beyond the writable set are dropped.
        assert_eq!(new().with_command(0xFFFF).command(), COMMAND_WRITABLE);
    }

    #[test]
    fn any_offset_and_size_is_safe() {
        let mut header = header();
        for offset in (0..=0x110).chain([0xFFFC, 0xFFFD, 0xFFFE, u16::MAX]) {
            for size in [0, 1, 2, 3, 4, 8, 255] {
                let _ = header.read(offset, size);
            }
        }
        for offset in (0x40..=0x110).chain([0xFFFE, u16::MAX]) {
            header.write(offset, 4, 0xFFFF_FFFF);
            assert_eq!(header.read(offset, 1), 0);
        }
        // An unaligned dword crossing from BAR 5 into the CardBus pointer.
        header.write(0x26, 4, 0xFFFF_FFFF);
        assert_eq!(header.read(0x24, 4), 0);
        // Crossing from command into... the same dword at 0x04 via 0x05.
        header.write(0x05, 4, 0);
        assert_eq!(header.command() & COMMAND_INTX_DISABLE, 0);
        assert_eq!(header.read(0x00, 4), 0x5678_1234);
    }
}

//! A host function's real MSI-X capability and table, as Keel programs
//! them: for forwarding an assigned function's MSI-X (`passthrough`) and
//! for the IOMMU self-test.
//!
//! The table lives in one of the function's memory BARs; Keel reaches it
//! through the boot identity map, so only tables below 4 GiB can be
//! programmed ([`HostMsixTable::find`] says so otherwise). A table access
//! needs the function's memory decoding on: each one here turns it on for
//! the access if it was off (the guest may have it off while Keel changes
//! its interrupts) and restores the command register after.
//!
//! Entries Keel does not use are kept masked (Vector Control bit 0), so a
//! device never writes a message Keel did not choose; the Function Mask
//! stays clear (the guest's Function Mask is emulated).

use alloc::format;
use alloc::string::String;

use keel_devices::passthrough_msi::HostMsix;
use keel_iommu::RegisterAccess;
use keel_pci::bar::{Bar, BarKind};
use keel_pci::{header, Bdf, ConfigAccess};

use crate::arch::pci::HostConfig;
use crate::arch::phys::Mmio;

/// Message Control: MSI-X Enable, Function Mask, Table Size.
const CONTROL_ENABLE: u16 = 1 << 15;
const CONTROL_FUNCTION_MASK: u16 = 1 << 14;
const CONTROL_TABLE_SIZE: u16 = 0x7ff;
/// Table and PBA registers: BAR indicator in bits 2:0.
const BIR_BITS: u32 = 0b111;
const ENTRY_BYTES: u32 = 16;
const VECTOR_CONTROL_MASKED: u32 = 1;

/// A function's MSI-X capability (at `capability` in its configuration
/// space) and its table's registers.
pub struct HostMsixTable {
    bdf: Bdf,
    capability: u16,
    registers: HostMsix,
    table: Mmio,
    entries: u16,
}

impl HostMsixTable {
    /// The MSI-X capability of `bdf`, whose BARs (as probed) are `bars`:
    /// `Ok(None)` without one; an error when its table cannot be reached
    /// (a reserved or I/O BAR, past the BAR's end, above 4 GiB).
    pub fn find(config: &mut HostConfig, bdf: Bdf, bars: &[Bar]) -> Result<Option<Self>, String> {
        let Some(capability) = keel_pci::capabilities::find(config, bdf, keel_pci::capabilities::MSI_X) else {
            return Ok(None);
        };
        let registers = HostMsix {
            control: config.read16(bdf, capability + 2),
            table: config.read32(bdf, capability + 4),
            pba: config.read32(bdf, capability + 8),
        };
        let entries = (registers.control & CONTROL_TABLE_SIZE) + 1;
        let bir = (registers.table & BIR_BITS) as u8;
        let offset = u64::from(registers.table & !BIR_BITS);
        let bar = bars
            .iter()
            .find(|bar| bar.index == bir && bar.kind != BarKind::Io)
            .ok_or_else(|| format!("{bdf}: its MSI-X table is in BAR {bir}, which is not a memory BAR"))?;
        let bytes = u64::from(entries) * u64::from(ENTRY_BYTES);
        if offset + bytes > bar.size {
            return Err(format!(
                "{bdf}: its MSI-X table ({entries} entries at {offset:#x}) ends past BAR {bir} ({} bytes)",
                bar.size
            ));
        }
        let table = Mmio::new(bar.address + offset, bytes).ok_or_else(|| {
            format!(
                "{bdf}: its MSI-X table at {:#x} lies above 4 GiB, where Keel cannot program it",
                bar.address + offset
            )
        })?;
        Ok(Some(Self {
            bdf,
            capability,
            registers,
            table,
            entries,
        }))
    }

    /// The capability's registers as read from the device.
    pub fn registers(&self) -> HostMsix {
        self.registers
    }

    pub fn entries(&self) -> u16 {
        self.entries
    }

    /// Turns MSI-X on (Function Mask clear) or off.
    pub fn set_enabled(&self, config: &mut HostConfig, enabled: bool) {
        let control = config.read16(self.bdf, self.capability + 2) & !(CONTROL_ENABLE | CONTROL_FUNCTION_MASK);
        let control = if enabled { control | CONTROL_ENABLE } else { control };
        config.write16(self.bdf, self.capability + 2, control);
    }

    /// Masks every entry. Returns once the device has the writes: a read
    /// follows them (MMIO writes are posted; a message the device sends
    /// before it sees the mask must not find its vector or remapping entry
    /// already given to someone else).
    pub fn mask_all(&mut self, config: &mut HostConfig) {
        self.with_decoding(config, |table| {
            for index in 0..table.entries {
                table.write_entry_dword(index, 3, VECTOR_CONTROL_MASKED);
            }
            table.flush_posted_writes();
        });
    }

    /// Entry `index` sends `data` to `address` (Keel's own message: a host
    /// vector or a remapping entry), unmasked. Indexes past the table are
    /// ignored.
    pub fn program(&mut self, config: &mut HostConfig, index: u16, address: u64, data: u32) {
        if index >= self.entries {
            return;
        }
        self.with_decoding(config, |table| {
            // Masked while it changes: the device may not send a half-written message.
            table.write_entry_dword(index, 3, VECTOR_CONTROL_MASKED);
            table.write_entry_dword(index, 0, address as u32);
            table.write_entry_dword(index, 1, (address >> 32) as u32);
            table.write_entry_dword(index, 2, data);
            table.write_entry_dword(index, 3, 0);
        });
    }

    /// Masks entry `index`, and returns once the device has the write (see
    /// [`HostMsixTable::mask_all`]).
    pub fn mask(&mut self, config: &mut HostConfig, index: u16) {
        if index >= self.entries {
            return;
        }
        self.with_decoding(config, |table| {
            table.write_entry_dword(index, 3, VECTOR_CONTROL_MASKED);
            table.flush_posted_writes();
        });
    }

    /// Entry `index`'s Vector Control, as the device has it (for tests).
    pub fn vector_control(&mut self, config: &mut HostConfig, index: u16) -> Option<u32> {
        if index >= self.entries {
            return None;
        }
        let mut value = None;
        self.with_decoding(config, |table| {
            value = Some(table.table.read32(u32::from(index) * ENTRY_BYTES + 12));
        });
        value
    }

    /// A read from the table: it completes only after the writes before it.
    fn flush_posted_writes(&mut self) {
        let _ = self.table.read32(12);
    }

    fn write_entry_dword(&mut self, index: u16, dword: u32, value: u32) {
        // In bounds: `index` < entries (checked by the callers), and `new`
        // checked the table's bytes against the identity map.
        self.table.write32(u32::from(index) * ENTRY_BYTES + 4 * dword, value);
    }

    /// Runs `f` with the function's memory decoding on, then restores it.
    fn with_decoding(&mut self, config: &mut HostConfig, f: impl FnOnce(&mut Self)) {
        let command = config.read16(self.bdf, header::COMMAND);
        if command & header::COMMAND_MEMORY == 0 {
            config.write16(self.bdf, header::COMMAND, command | header::COMMAND_MEMORY);
        }
        f(self);
        if command & header::COMMAND_MEMORY == 0 {
            config.write16(self.bdf, header::COMMAND, command);
        }
    }
}

//! A host function's real MSI-X capability and table, as Keel programs
//! them: for forwarding an assigned function's MSI-X (`passthrough`) and
//! for the IOMMU self-test.
//!
//! The table lives in one of the function's memory BARs; Keel reaches it
//! at its own address (mapped on demand above 4 GiB, up to 512 GiB:
//! [`HostMsixTable::find`] says so otherwise). A table access
//! needs the function's memory decoding on, and on some devices MSI-X
//! enabled (Linux's `msix_capability_init` notes it): each access here
//! turns decoding on, and MSI-X on with the Function Mask set, for its
//! duration if they were off, and restores them after.
//!
//! Entries Keel does not use are kept masked (Vector Control bit 0), so a
//! device never writes a message Keel did not choose; while Keel forwards
//! the function's MSI-X the Function Mask stays clear (the guest's
//! Function Mask is emulated), otherwise MSI-X is off and function-masked
//! ([`force_off`], for functions whose MSI-X the guest is not shown).

use alloc::format;
use alloc::string::String;

use keel_devices::passthrough_msi::{
    HostMsix, MSIX_BIR_BITS as BIR_BITS, MSIX_CONTROL_ENABLE as CONTROL_ENABLE,
    MSIX_CONTROL_FUNCTION_MASK as CONTROL_FUNCTION_MASK, MSIX_CONTROL_TABLE_SIZE as CONTROL_TABLE_SIZE,
    MSIX_ENTRY_BYTES as ENTRY_BYTES, MSIX_VECTOR_CONTROL_MASKED as VECTOR_CONTROL_MASKED,
};
use keel_iommu::RegisterAccess;
use keel_pci::bar::{Bar, BarKind};
use keel_pci::{header, Bdf, ConfigAccess};

use crate::arch::pci::HostConfig;
use crate::arch::phys::Mmio;


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
    /// `Ok(None)` without one; an error when its table or PBA cannot be
    /// reached (a reserved or I/O BAR, past the BAR's end, past 512 GiB:
    /// Keel must program the one and forward accesses around the other).
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
        let table_bytes = u64::from(entries) * u64::from(ENTRY_BYTES);
        let pba_bytes = u64::from(entries.div_ceil(64)) * 8;
        let base = reachable(bdf, bars, "table", registers.table, table_bytes)?;
        reachable(bdf, bars, "PBA", registers.pba, pba_bytes)?;
        let table = Mmio::new(base, table_bytes)
            .ok_or_else(|| format!("{bdf}: its MSI-X table at {base:#x} is not 8-byte aligned"))?;
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

    /// Turns MSI-X on, Function Mask clear: the entries Keel programmed
    /// and unmasked may send.
    pub fn enable(&self, config: &mut HostConfig) {
        self.set_control(config, CONTROL_ENABLE);
    }

    /// Turns MSI-X off, function-masked.
    pub fn disable(&self, config: &mut HostConfig) {
        self.set_control(config, CONTROL_FUNCTION_MASK);
    }

    /// Before the function changes hands: every entry masked (with MSI-X
    /// on and function-masked for the writes, as some devices need), then
    /// MSI-X off and function-masked.
    pub fn quiet(&mut self, config: &mut HostConfig) {
        self.set_control(config, CONTROL_ENABLE | CONTROL_FUNCTION_MASK);
        self.mask_all(config);
        self.disable(config);
    }

    /// Writes Enable and Function Mask (`bits`) when they differ.
    fn set_control(&self, config: &mut HostConfig, bits: u16) {
        let at = self.capability + 2;
        let control = config.read16(self.bdf, at);
        let wanted = (control & !(CONTROL_ENABLE | CONTROL_FUNCTION_MASK)) | bits;
        if wanted != control {
            config.write16(self.bdf, at, wanted);
        }
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

    /// Runs `f` with the function's memory decoding on, and MSI-X enabled
    /// (function-masked if Keel turns it on), then restores both.
    fn with_decoding(&mut self, config: &mut HostConfig, f: impl FnOnce(&mut Self)) {
        let command = config.read16(self.bdf, header::COMMAND);
        if command & header::COMMAND_MEMORY == 0 {
            config.write16(self.bdf, header::COMMAND, command | header::COMMAND_MEMORY);
        }
        let at = self.capability + 2;
        let control = config.read16(self.bdf, at);
        if control & CONTROL_ENABLE == 0 {
            config.write16(self.bdf, at, control | CONTROL_ENABLE | CONTROL_FUNCTION_MASK);
        }
        f(self);
        if control & CONTROL_ENABLE == 0 {
            config.write16(self.bdf, at, control);
        }
        if command & header::COMMAND_MEMORY == 0 {
            config.write16(self.bdf, header::COMMAND, command);
        }
    }
}

/// Where the MSI-X `what` (table or PBA; `register` its Offset/BIR) of
/// `bdf` lies in host-physical memory, if Keel can reach all `bytes` of it:
/// inside a memory BAR and mappable.
fn reachable(bdf: Bdf, bars: &[Bar], what: &str, register: u32, bytes: u64) -> Result<u64, String> {
    let bir = (register & BIR_BITS) as u8;
    let offset = u64::from(register & !BIR_BITS);
    let bar = bars
        .iter()
        .find(|bar| bar.index == bir && bar.kind != BarKind::Io)
        .ok_or_else(|| format!("{bdf}: its MSI-X {what} is in BAR {bir}, which is not a memory BAR"))?;
    if offset + bytes > bar.size {
        return Err(format!(
            "{bdf}: its MSI-X {what} ({bytes} bytes at {offset:#x}) ends past BAR {bir} ({} bytes)",
            bar.size
        ));
    }
    let base = bar.address + offset;
    if !crate::arch::phys::map_device_memory(base, bytes) {
        return Err(format!(
            "{bdf}: its MSI-X {what} at {base:#x} lies where Keel cannot map it (past 512 GiB)"
        ));
    }
    Ok(base)
}

/// MSI-X off and function-masked on `bdf`, if it has MSI-X: for a function
/// whose MSI-X the guest is not shown (its table may then be mapped into
/// the guest; without Enable the device sends nothing from it, whatever a
/// previous owner left on), and when any function is taken back.
pub fn force_off(config: &mut HostConfig, bdf: Bdf) {
    if let Some(capability) = keel_pci::capabilities::find(config, bdf, keel_pci::capabilities::MSI_X) {
        let control = config.read16(bdf, capability + 2);
        config.write16(bdf, capability + 2, (control & !CONTROL_ENABLE) | CONTROL_FUNCTION_MASK);
    }
}

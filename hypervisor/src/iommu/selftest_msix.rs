//! The self-test's MSI-X part: the host half of forwarding an assigned
//! function's MSI-X, checked on a real MSI-X table. Passthrough programs a
//! host function's table with [`HostMsixTable`] and sends each entry
//! through an interrupt remapping entry of its own (`passthrough`); no
//! guest runs on the QEMU machine the self-test uses (QEMU offers no VMX
//! there), so the same calls are made here on QEMU's `e1000e` (Intel
//! 82574L, 8086:10d3, five MSI-X entries, its table in BAR 3):
//! - entry 0 gets a remapping entry's message and the NIC is made to
//!   signal it (its "Other" interrupt cause, raised through ICS): the
//!   interrupt must arrive at the entry's vector;
//! - entry 0 masked, the same cause must not arrive, and the function must
//!   hold it as pending in its Pending Bit Array (so the device did try).
//!
//! Without an e1000e (a machine other than the `qemu-iommu` test's) the
//! check is skipped and says so.

use alloc::format;
use alloc::string::String;

use keel_iommu::{RegisterAccess, SourceId};
use keel_pci::bar::{Bar, BarKind};
use keel_pci::{header, ConfigAccess};

use super::interrupts::{self, Requester};
use crate::arch::device_interrupts;
use crate::arch::pci::HostConfig;
use crate::arch::phys::Mmio;
use crate::host_msix::HostMsixTable;

const E1000E_VENDOR: u16 = 0x8086;
const E1000E_DEVICE: u16 = 0x10d3;
/// The 82574L's registers (BAR 0, Intel's datasheet section 10.2).
const ICR: u32 = 0x00c0;
const ICS: u32 = 0x00c8;
const IMS: u32 = 0x00d0;
const IMC: u32 = 0x00d8;
const EIAC: u32 = 0x00dc;
const IVAR: u32 = 0x00e4;
/// Interrupt throttling of MSI-X entry 0 (EITR0): 0 sends at once.
const EITR0: u32 = 0x00e8;
/// MSI-X PBA Clear: a bit per entry.
const PBACLR: u32 = 0x5b68;
/// Interrupt causes: Link Status Change, and "Other", which in MSI-X mode
/// stands for LSC and the other non-queue causes.
const CAUSE_LSC: u32 = 1 << 2;
const CAUSE_OTHER: u32 = 1 << 24;
/// IVAR: four bits per cause (MSI-X entry in bits 2:0, bit 3 valid); the
/// "Other" cause's are bits 19:16.
const IVAR_OTHER_SHIFT: u32 = 16;
const IVAR_VALID: u32 = 1 << 3;
/// The entry the check uses.
const ENTRY: u16 = 0;
/// The vector the interrupt is remapped to: the first after the I/O APIC
/// check's, among the forwarded interrupts' (no guest runs yet, so none is
/// taken).
const VECTOR: u8 = super::selftest_ioapic::LAST_VECTOR + 1;
const _: () = assert!(
    VECTOR >= keel_hypervisor::host_irq::FIRST_VECTOR && VECTOR <= keel_hypervisor::host_irq::LAST_VECTOR,
    "the MSI-X check borrows a forwarded interrupt's vector"
);

/// Runs the check on the first e1000e (or says there is none); `timeout`
/// bounds the wait for the interrupt, in TSC cycles.
pub fn run(timeout: u64) -> Result<(), String> {
    let config = &mut HostConfig;
    let Some(nic) = super::selftest::find_function(E1000E_VENDOR, E1000E_DEVICE) else {
        log::info!("iommu selftest: no e1000e ({E1000E_VENDOR:04x}:{E1000E_DEVICE:04x}): the MSI-X check is skipped");
        return Ok(());
    };
    let source = SourceId::new(nic.bus, nic.device, nic.function).ok_or("e1000e's address")?;
    if !interrupts::remaps(Requester::Function(source)) {
        return Err(format!("no enabled unit remaps the interrupts of e1000e at {source}"));
    }
    let bars = keel_pci::bar::probe(config, nic).map_err(|error| format!("e1000e's BARs: {error:?}"))?;
    let bar0 = bars
        .iter()
        .find(|bar| bar.index == 0 && bar.kind != BarKind::Io)
        .ok_or("e1000e has no memory BAR 0")?;
    let mut registers = Mmio::new(bar0.address, bar0.size).ok_or("e1000e's BAR 0 is outside the identity map")?;
    let table = HostMsixTable::find(config, nic, &bars)?.ok_or("e1000e has no MSI-X capability")?;
    let pba = pending_bits(&table, &bars)?;
    log::info!(
        "iommu selftest: e1000e at {source}, {} MSI-X entries in BAR {}",
        table.entries(),
        table.registers().table & 0b111
    );
    // Memory decoding for the registers, bus mastering for the message (an
    // MSI is a DMA write); both as they were after.
    let command = config.read16(nic, header::COMMAND);
    config.write16(
        nic,
        header::COMMAND,
        command | header::COMMAND_MEMORY | header::COMMAND_BUS_MASTER,
    );
    let result = check(config, source, table, &mut registers, pba, timeout);
    config.write16(nic, header::COMMAND, command);
    let index = result?;
    log::info!(
        "iommu selftest: e1000e's MSI-X entry {ENTRY} arrived through remapping entry {index} at vector {VECTOR:#x}; masked, it did not (its pending bit set)"
    );
    Ok(())
}

/// The function's Pending Bit Array (its first QWORD: entries 0-63).
fn pending_bits(table: &HostMsixTable, bars: &[Bar]) -> Result<Mmio, String> {
    let pba = table.registers().pba;
    let bir = (pba & 0b111) as u8;
    let bar = bars
        .iter()
        .find(|bar| bar.index == bir && bar.kind != BarKind::Io)
        .ok_or_else(|| format!("e1000e's PBA is in BAR {bir}, which is not a memory BAR"))?;
    let offset = u64::from(pba & !0b111);
    if offset + 8 > bar.size {
        return Err(format!("e1000e's PBA at {offset:#x} ends past BAR {bir}"));
    }
    Mmio::new(bar.address + offset, 8).ok_or_else(|| String::from("e1000e's PBA is outside the identity map"))
}

/// With the remapping entry written: entry 0 unmasked must deliver, masked
/// must not, and must be left pending. Returns the remapping entry's index.
fn check(
    config: &mut HostConfig,
    source: SourceId,
    mut table: HostMsixTable,
    nic: &mut Mmio,
    mut pba: Mmio,
    timeout: u64,
) -> Result<u16, String> {
    let entry = match interrupts::remap(Requester::Function(source), VECTOR, false) {
        Some(Ok(entry)) => entry,
        Some(Err(error)) => return Err(format!("no remapping entry for e1000e's MSI-X: {error}")),
        None => return Err(String::from("no enabled unit remaps e1000e's interrupts")),
    };
    device_interrupts::forget_pending(VECTOR);
    let saved_ivar = nic.read32(IVAR);
    let saved_eiac = nic.read32(EIAC);
    // Quiet first: no cause enabled or pending, nothing cleared by the
    // device behind the test's back (EIAC), no throttling of entry 0.
    nic.write32(IMC, u32::MAX);
    nic.write32(ICR, u32::MAX);
    nic.write32(EIAC, 0);
    nic.write32(EITR0, 0);
    nic.write32(IVAR, (IVAR_VALID | u32::from(ENTRY)) << IVAR_OTHER_SHIFT);

    let message = keel_iommu::irte::RemappableMsi::new(entry.index, None);
    table.mask_all(config);
    table.program(config, ENTRY, u64::from(message.address), message.data);
    table.enable(config);
    device_interrupts::enable_local_apic();

    let result = (|| {
        // Unmasked: the "Other" cause is sent on entry 0 as it is raised.
        let seen = device_interrupts::arrivals(VECTOR);
        nic.write32(IMS, CAUSE_LSC | CAUSE_OTHER);
        nic.write32(ICS, CAUSE_LSC | CAUSE_OTHER);
        let deadline = crate::arch::tsc::read().saturating_add(timeout);
        if !device_interrupts::wait_for(VECTOR, seen, deadline) {
            return Err(format!(
                "e1000e's MSI-X entry {ENTRY} did not arrive through remapping entry {} at vector {VECTOR:#x}",
                entry.index
            ));
        }
        // Cleared, so that raising it again is a new interrupt.
        nic.write32(ICR, u32::MAX);
        if pba.read32(0) & 1 << ENTRY != 0 {
            return Err(format!("e1000e's entry {ENTRY} is pending though it was delivered"));
        }

        // Masked: the device must hold the interrupt as pending instead.
        table.mask(config, ENTRY);
        if table.vector_control(config, ENTRY).map(|control| control & 1) != Some(1) {
            return Err(format!("e1000e's entry {ENTRY} did not read back masked"));
        }
        let seen = device_interrupts::arrivals(VECTOR);
        nic.write32(ICS, CAUSE_LSC | CAUSE_OTHER);
        let deadline = crate::arch::tsc::read().saturating_add(timeout / 50);
        if device_interrupts::wait_for(VECTOR, seen, deadline) {
            return Err(format!("e1000e's MSI-X entry {ENTRY} arrived while masked"));
        }
        if pba.read32(0) & 1 << ENTRY == 0 {
            return Err(format!(
                "masked, e1000e's entry {ENTRY} was not marked pending: the device did not signal it"
            ));
        }
        Ok(())
    })();

    // Undone in the order passthrough tears a route down: the source off
    // (causes masked, the pending bit dropped, MSI-X off), then the entry.
    nic.write32(IMC, u32::MAX);
    nic.write32(ICR, u32::MAX);
    nic.write32(PBACLR, 1 << ENTRY);
    table.mask_all(config);
    table.disable(config);
    nic.write32(IVAR, saved_ivar);
    nic.write32(EIAC, saved_eiac);
    interrupts::release(entry);
    device_interrupts::forget_pending(VECTOR);
    result.map(|()| entry.index)
}

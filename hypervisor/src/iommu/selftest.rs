//! `iommu=selftest`: proves remapping works with QEMU's `edu` teaching
//! device (PCI 1234:11e8: a DMA engine between RAM and a 4 KiB buffer of
//! its own at device address 0x40000, and an interrupt it raises on
//! demand, docs/specs/edu.rst in QEMU). The device gets a domain whose
//! tables map two pages; then
//! - a DMA from one mapped page into the device and back into the other
//!   must move the exact bytes;
//! - a DMA to an address the tables do not map (the host-physical address
//!   of a canary page, which an unconfined DMA would overwrite) must leave
//!   the canary intact, raise the unit's fault event interrupt and be
//!   recorded as a fault with edu's source id;
//! - edu's MSI, in remappable format, must arrive through the interrupt
//!   remapping table at the vector its entry names;
//! - where the machine has an e1000e NIC, its MSI-X, programmed as
//!   passthrough programs an assigned function's, must arrive through a
//!   remapping entry, and not while masked (`selftest_msix`).
//!
//! When the DMAR gives edu an RMRR (the `qemu-iommu-rmrr` test passes one),
//! a DMA within the region must work while edu is otherwise blocked (its
//! boot identity domain), a DMA outside it must fault, confining edu with
//! RAM over the region must be refused, and the region must stay reachable
//! inside the confined domain and after release.

use keel_iommu::dmar::NoBridges;
use keel_iommu::irte::{Irte, RemappableMsi};
use keel_iommu::rmrr::ReservedRegion;
use keel_iommu::unit::InvalidationScope;
use keel_iommu::{parse_dmar, SourceId};
use keel_memory::{FrameAllocator, HostPhysAddr};

use super::{report_faults, with_iommu, Iommu, Unit, PAGE};
use keel_pci::{capabilities, enumerate::enumerate, header, Bdf, ConfigAccess};

use crate::arch::device_interrupts;
use crate::arch::pci::HostConfig;
use crate::memory::HostFrames;

const EDU_VENDOR: u16 = 0x1234;
const EDU_DEVICE: u16 = 0x11e8;
const EDU_ID: u32 = 0x010000ed;
/// edu's registers (BAR 0).
const EDU_IDENTIFICATION: u64 = 0x00;
const EDU_RAISE_INTERRUPT: u64 = 0x60;
const EDU_ACK_INTERRUPT: u64 = 0x64;
const EDU_DMA_SOURCE: u64 = 0x80;
const EDU_DMA_DESTINATION: u64 = 0x88;
const EDU_DMA_COUNT: u64 = 0x90;
const EDU_DMA_COMMAND: u64 = 0x98;
const DMA_START: u64 = 1;
const DMA_TO_RAM: u64 = 2;
/// edu's own buffer, in its DMA address space.
const EDU_BUFFER: u64 = 0x40000;
/// Bytes per DMA: less than edu's 4 KiB buffer, whose last byte QEMU 7.2's
/// range check wrongly refuses (it stops the emulator).
const DMA_LEN: u64 = 2048;
/// The addresses edu sees (its DMA mask is 28 bits).
const SOURCE_IOVA: u64 = 0x10_0000;
const DESTINATION_IOVA: u64 = 0x10_1000;
/// The test's domain id (0 is reserved under caching mode).
const DOMAIN: u16 = 1;
const INTERRUPT_VECTOR: u8 = device_interrupts::FIRST_VECTOR;
use super::FAULT_VECTOR;
const INTERRUPT_ENTRY: u16 = 0;

/// Runs the self-test; returns whether it passed (it says why not).
pub fn run(tsc_hz: Option<u64>) -> bool {
    let verdict = (|| -> Result<(), alloc::string::String> {
        let edu = find_function(EDU_VENDOR, EDU_DEVICE).ok_or("no edu device (QEMU -device edu)")?;
        let source = SourceId::new(edu.bus, edu.device, edu.function).ok_or("edu's address")?;
        let base = with_iommu(|iommu| unit_base(iommu, source))
            .flatten()
            .ok_or("no enabled remapping unit covers edu")?;
        log::info!("iommu selftest: edu at {source}, behind the unit at {base:#x}");
        let timeout = tsc_hz.unwrap_or(1_000_000_000).saturating_mul(5);
        test_edu(edu, source, timeout)?;
        super::selftest_msix::run(timeout)?;
        super::selftest_reset::run()?;
        super::selftest_high_mmio::run()
    })();
    match verdict {
        Ok(()) => {
            log::info!("iommu selftest passed");
            true
        }
        Err(reason) => {
            log::info!("iommu selftest FAILED: {reason}");
            false
        }
    }
}

/// The first host function with these ids (the self-test's QEMU devices).
pub(super) fn find_function(vendor: u16, device: u16) -> Option<keel_pci::Bdf> {
    enumerate(&mut HostConfig)
        .into_iter()
        .find(|function| (function.vendor, function.device) == (vendor, device))
        .map(|function| function.bdf)
}

/// The register base of the enabled unit that covers `source`.
fn unit_base(iommu: &Iommu, source: SourceId) -> Option<u64> {
    let dmar = parse_dmar(&iommu.dmar).ok()?;
    let base = dmar.unit_for(0, source, &NoBridges)?.register_base().as_u64();
    iommu
        .units
        .iter()
        .any(|unit| unit.base == base && unit.segment == 0)
        .then_some(base)
}

/// Runs `f` on the unit that covers `source`.
fn with_unit<T>(source: SourceId, f: impl FnOnce(&mut Unit) -> Result<T, &'static str>) -> Result<T, &'static str> {
    with_iommu(|iommu| {
        let base = unit_base(iommu, source).ok_or("edu's remapping unit is gone")?;
        let unit = iommu
            .units
            .iter_mut()
            .find(|unit| unit.base == base)
            .ok_or("edu's remapping unit is gone")?;
        f(unit)
    })
    .unwrap_or(Err("no remapping unit is enabled"))
}

/// Frames the test owns, freed on every path.
struct Frames([HostPhysAddr; 3]);

impl Frames {
    fn allocate() -> Result<Self, &'static str> {
        let mut frames = [None; 3];
        for index in 0..frames.len() {
            match HostFrames.allocate_frame() {
                Some(frame) => frames[index] = Some(frame),
                None => {
                    frames.iter().flatten().for_each(|&frame| HostFrames.free_frame(frame));
                    return Err("out of memory");
                }
            }
        }
        let [Some(a), Some(b), Some(c)] = frames else {
            return Err("out of memory");
        };
        Ok(Self([a, b, c]))
    }

    fn get(&self, index: usize) -> HostPhysAddr {
        self.0[index]
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        for &frame in &self.0 {
            HostFrames.free_frame(frame);
        }
    }
}

fn bytes(frame: HostPhysAddr) -> &'static mut [u8] {
    // SAFETY: the frame is the test's own (Frames), identity-mapped, and
    // only edu's DMA (which the test waits for) touches it meanwhile.
    unsafe { core::slice::from_raw_parts_mut(frame.as_u64() as *mut u8, PAGE as usize) }
}

fn test_edu(edu: Bdf, source: SourceId, timeout: u64) -> Result<(), &'static str> {
    let config = &mut HostConfig;
    let bar = keel_pci::bar::probe(config, edu)
        .map_err(|_| "edu's BARs are malformed")?
        .into_iter()
        .find(|bar| bar.index == 0)
        .ok_or("edu has no BAR 0")?;
    let registers = crate::arch::phys::Mmio::new(bar.address, bar.size).ok_or("edu's BAR 0 is not mapped")?;
    let mut edu_mmio = EduRegisters(registers);
    let command = config.read16(edu, header::COMMAND);
    config.write16(
        edu,
        header::COMMAND,
        command | header::COMMAND_MEMORY | header::COMMAND_BUS_MASTER,
    );
    if edu_mmio.read32(EDU_IDENTIFICATION) != EDU_ID {
        return Err("edu's identification register is wrong");
    }
    let frames = Frames::allocate()?;
    let (source_page, destination_page, canary) = (frames.get(0), frames.get(1), frames.get(2));
    for (index, byte) in bytes(source_page).iter_mut().enumerate() {
        *byte = (index * 7 + 3) as u8;
    }
    bytes(canary).fill(0x5a);

    // A DMAR with an RMRR for edu (the qemu-iommu-rmrr test's): edu sits in
    // its unit's identity domain since boot, which maps only that region.
    let region = with_iommu(|iommu| {
        parse_dmar(&iommu.dmar)
            .ok()
            .and_then(|dmar| super::rmrr::regions_for(&dmar, source).first().copied())
    })
    .flatten();
    match region {
        None => log::info!("iommu selftest: edu has no RMRR: the RMRR checks are skipped"),
        Some(region) => {
            rmrr_dma(&mut edu_mmio, region, timeout, "blocked but for it")?;
            blocked_dma(&mut edu_mmio, source, canary, timeout)?;
            log::info!("iommu selftest: outside its RMRR, edu's DMA is blocked and recorded with edu's source id");
            // Strict policy: a domain whose RAM covers the region is refused
            // before anything changes (here RAM at the region's own address).
            match crate::iommu::confine(source, DOMAIN, &[(region.base, canary, PAGE)]) {
                Some(Err(error)) if error.contains("RMRR") => {
                    log::info!("iommu selftest: confining edu with RAM over its RMRR refused: {error}")
                }
                Some(Err(_)) => return Err("confining edu over its RMRR failed for another reason"),
                Some(Ok(confinement)) => {
                    crate::iommu::release(confinement);
                    return Err("edu was confined with RAM over its RMRR");
                }
                None => return Err("no enabled remapping unit covers edu"),
            }
        }
    }

    // The same confinement a DomU's assigned device gets: tables that map
    // exactly the given runs (here two pages at the addresses edu uses).
    let runs = [
        (SOURCE_IOVA, source_page, PAGE),
        (DESTINATION_IOVA, destination_page, PAGE),
    ];
    let confinement = match crate::iommu::confine(source, DOMAIN, &runs) {
        Some(Ok(confinement)) => confinement,
        Some(Err(_)) => return Err("confining edu to its two pages failed"),
        None => return Err("no enabled remapping unit covers edu"),
    };
    let result = (|| {
        // Mapped: RAM -> edu -> RAM.
        edu_mmio.dma(SOURCE_IOVA, EDU_BUFFER, false, timeout)?;
        edu_mmio.dma(EDU_BUFFER, DESTINATION_IOVA, true, timeout)?;
        let moved = DMA_LEN as usize;
        if bytes(destination_page)[..moved] != bytes(source_page)[..moved] {
            return Err("the mapped DMA did not move the bytes");
        }
        if bytes(destination_page)[moved..].iter().any(|&byte| byte != 0) {
            return Err("the mapped DMA wrote beyond its count");
        }
        let checksum = bytes(destination_page)[..moved]
            .iter()
            .fold(0u32, |sum, &b| sum.wrapping_add(u32::from(b)));
        log::info!("iommu selftest: mapped DMA ok: {moved} bytes through the device and back, sum {checksum:#x}");

        // Unmapped: to the canary's own address, which only an unconfined
        // DMA could reach.
        blocked_dma(&mut edu_mmio, source, canary, timeout)?;
        log::info!("iommu selftest: unmapped DMA blocked and recorded with edu's source id");
        if let Some(region) = region {
            rmrr_dma(&mut edu_mmio, region, timeout, "in its assigned domain")?;
        }

        with_unit(source, |unit| interrupt_test(unit, edu, &mut edu_mmio, source, timeout))?;
        intx_test(&mut edu_mmio, timeout)
    })();
    // Tear down as a destroyed DomU's device: blocked again, tables freed.
    crate::iommu::release(confinement);
    let result = result.and_then(|()| match region {
        Some(region) => rmrr_dma(
            &mut edu_mmio,
            region,
            timeout,
            "back in its identity domain after release",
        ),
        None => Ok(()),
    });
    config.write16(edu, header::COMMAND, command);
    result
}

/// A DMA to the canary's host-physical address, which nothing maps for
/// edu: the canary must stay intact, the unit's fault event interrupt must
/// arrive, and the drain it leads to must hold edu's fault at that address.
fn blocked_dma(
    edu_mmio: &mut EduRegisters,
    source: SourceId,
    canary: HostPhysAddr,
    timeout: u64,
) -> Result<(), &'static str> {
    // Earlier faults (none are expected) must not count as this one.
    with_unit(source, |unit| {
        report_faults(unit, &mut |_, _| {});
        Ok(())
    })?;
    let interrupts = device_interrupts::arrivals(FAULT_VECTOR);
    edu_mmio.dma(EDU_BUFFER, canary.as_u64(), true, timeout)?;
    if bytes(canary).iter().any(|&byte| byte != 0x5a) {
        return Err("a DMA to an unmapped address reached memory");
    }
    // The fault must come to Keel by itself: the unit's fault event
    // interrupt, then the drain host work does when it sees it.
    let deadline = crate::arch::tsc::read().saturating_add(timeout);
    if !device_interrupts::wait_for(FAULT_VECTOR, interrupts, deadline) {
        return Err("the blocked DMA raised no fault event interrupt");
    }
    let mut recorded = false;
    let drained = super::service_faults(|_, record| {
        recorded |= record.source == source && record.fault_info & !0xfff == canary.as_u64();
    });
    if !drained {
        return Err("the fault event interrupt did not lead to a drain");
    }
    if !recorded {
        return Err("the blocked DMA was not recorded as edu's fault at that address");
    }
    Ok(())
}

/// Within edu's RMRR, at its own address: bytes DMAed from the region's
/// first page into edu and back into the page's second half must arrive.
/// The page's contents are the firmware's, so they are put back after.
fn rmrr_dma(edu_mmio: &mut EduRegisters, region: ReservedRegion, timeout: u64, when: &str) -> Result<(), &'static str> {
    if region.end() > 4 << 30 {
        return Err("edu's RMRR is above the identity-mapped 4 GiB");
    }
    let page = || {
        // SAFETY: the region is below 4 GiB (identity-mapped) and
        // firmware's: Keel's allocator never hands it out (below 1 MiB, or
        // withheld at boot); only this test and edu's DMA, which it waits
        // for, touch it meanwhile, and its bytes are restored below. A new
        // borrow per step, so what edu wrote is read from memory.
        unsafe { core::slice::from_raw_parts_mut(region.base as *mut u8, PAGE as usize) }
    };
    let saved = page().to_vec();
    let half = DMA_LEN as usize;
    for (index, byte) in page().iter_mut().enumerate() {
        *byte = if index < half { (index * 13 + 5) as u8 } else { 0 };
    }
    let moved = edu_mmio
        .dma(region.base, EDU_BUFFER, false, timeout)
        .and_then(|()| edu_mmio.dma(EDU_BUFFER, region.base + DMA_LEN, true, timeout));
    let written = page();
    let arrived = written[half..2 * half] == written[..half];
    written.copy_from_slice(&saved);
    moved?;
    if !arrived {
        return Err("a DMA within edu's RMRR did not move the bytes");
    }
    log::info!("iommu selftest: DMA within edu's {region} ok ({when})");
    Ok(())
}

fn interrupt_test(
    unit: &mut Unit,
    edu: Bdf,
    edu_mmio: &mut EduRegisters,
    source: SourceId,
    timeout: u64,
) -> Result<(), &'static str> {
    let Some(table) = unit.interrupts else {
        return Err("interrupt remapping is off on edu's unit");
    };
    let config = &mut HostConfig;
    let msi = capabilities::find(config, edu, capabilities::MSI).ok_or("edu has no MSI capability")?;
    let destination = crate::arch::device_interrupts::local_apic_id();
    table
        .set(
            u32::from(INTERRUPT_ENTRY),
            &Irte::fixed(INTERRUPT_VECTOR, destination, source),
            &mut unit.tables,
        )
        .map_err(|_| "writing the remapping entry")?;
    unit.driver
        .invalidate(InvalidationScope::Global, &mut unit.tables)
        .map_err(|_| "invalidating the interrupt entry cache")?;
    let message = RemappableMsi::new(INTERRUPT_ENTRY, None);
    let control = config.read16(edu, msi + 2);
    let is_64_bit = control & (1 << 7) != 0;
    config.write32(edu, msi + 4, message.address);
    if is_64_bit {
        config.write32(edu, msi + 8, 0);
        config.write16(edu, msi + 12, message.data as u16);
    } else {
        config.write16(edu, msi + 8, message.data as u16);
    }
    config.write16(edu, msi + 2, control | 1);
    device_interrupts::enable_local_apic();
    let seen = device_interrupts::arrivals(INTERRUPT_VECTOR);
    edu_mmio.write32(EDU_RAISE_INTERRUPT, 1);
    let deadline = crate::arch::tsc::read().saturating_add(timeout);
    let arrived = device_interrupts::wait_for(INTERRUPT_VECTOR, seen, deadline);
    edu_mmio.write32(EDU_ACK_INTERRUPT, 1);
    config.write16(edu, msi + 2, control & !1);
    let _ = table.clear(u32::from(INTERRUPT_ENTRY), &mut unit.tables);
    let _ = unit.driver.invalidate(InvalidationScope::Global, &mut unit.tables);
    if !arrived {
        return Err("edu's interrupt did not arrive through the remapping table");
    }
    log::info!(
        "iommu selftest: edu's MSI arrived through remapping entry {INTERRUPT_ENTRY} at vector {INTERRUPT_VECTOR:#x}"
    );
    Ok(())
}

/// edu's INTx (its MSI is off again) through the I/O APIC and a remapping
/// entry.
fn intx_test(edu_mmio: &mut EduRegisters, timeout: u64) -> Result<(), &'static str> {
    let edu = core::cell::RefCell::new(edu_mmio);
    let (input, entry, vector) = super::selftest_ioapic::run(
        || edu.borrow_mut().write32(EDU_RAISE_INTERRUPT, 1),
        || edu.borrow_mut().write32(EDU_ACK_INTERRUPT, 1),
        timeout,
    )?;
    log::info!(
        "iommu selftest: edu's INTx arrived through I/O APIC input {input} and remapping entry {entry} at vector {vector:#x}"
    );
    Ok(())
}

struct EduRegisters(crate::arch::phys::Mmio);

impl EduRegisters {
    fn read32(&mut self, offset: u64) -> u32 {
        use keel_iommu::RegisterAccess;
        self.0.read32(offset as u32)
    }
    fn write32(&mut self, offset: u64, value: u32) {
        use keel_iommu::RegisterAccess;
        self.0.write32(offset as u32, value)
    }
    fn read64(&mut self, offset: u64) -> u64 {
        use keel_iommu::RegisterAccess;
        self.0.read64(offset as u32)
    }
    fn write64(&mut self, offset: u64, value: u64) {
        use keel_iommu::RegisterAccess;
        self.0.write64(offset as u32, value)
    }

    /// One 4 KiB DMA; waits (bounded by `timeout` TSC cycles) until edu
    /// says it is done.
    fn dma(&mut self, from: u64, to: u64, to_ram: bool, timeout: u64) -> Result<(), &'static str> {
        self.write64(EDU_DMA_SOURCE, from);
        self.write64(EDU_DMA_DESTINATION, to);
        self.write64(EDU_DMA_COUNT, DMA_LEN);
        self.write64(EDU_DMA_COMMAND, DMA_START | if to_ram { DMA_TO_RAM } else { 0 });
        let deadline = crate::arch::tsc::read().saturating_add(timeout);
        while self.read64(EDU_DMA_COMMAND) & DMA_START != 0 {
            if crate::arch::tsc::read() >= deadline {
                return Err("edu's DMA did not finish");
            }
            core::hint::spin_loop();
        }
        Ok(())
    }
}

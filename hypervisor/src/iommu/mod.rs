//! The host's IOMMU (Intel VT-d): at boot Keel finds the firmware's DMAR
//! table, and for every remapping unit it lists installs an empty root
//! table (every device blocked: its DMA faults), queued invalidation, an
//! empty interrupt remapping table (every remappable interrupt blocked)
//! where the platform supports it, and turns translation on. Each unit's
//! fault event interrupt is sent to [`FAULT_VECTOR`]; host work drains the
//! recorded faults onto Keel's console when it arrives, and polls at a low
//! rate in case one is missed (`poll_faults`). Devices are let
//! through one at a time, into a domain of their own (the self-test
//! today, passthrough later). The logic is `keel-iommu`'s; this module
//! reaches the hardware.

pub mod interrupts;
mod rmrr;
mod selftest;
mod selftest_ioapic;
mod selftest_high_mmio;
mod selftest_msix;
mod selftest_reset;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use keel_hypervisor::host_irq::IOMMU_FAULT_VECTOR as FAULT_VECTOR;
use keel_iommu::dmar::{DmarFlags, Drhd};
use keel_iommu::fault::{FaultEventMessage, FaultRecord};
use keel_iommu::invalidation::QueueSize;
use keel_iommu::irte::{ApicMode, InterruptRemappingTable, TableSize};
use keel_iommu::tables::RootTable;
use keel_iommu::unit::{EnableConfig, QueueConfig};
use keel_iommu::{parse_dmar, RemappingUnit};
use keel_memory::{FrameAllocator, PAGE_SIZE_4K};
use multiboot2::BootInformation;
use spin::Mutex;

use crate::arch::phys::{IommuTables, Mmio};
use crate::memory::HostFrames;

pub use selftest::run as selftest;

/// Bounded waits: the unit answers within microseconds on hardware and
/// within a few thousand polls under emulation.
const POLL_LIMIT: u32 = 10_000_000;
/// Interrupt remapping table entries (one 4 KiB page).
const INTERRUPT_ENTRIES: u32 = 256;
/// The register window checked to lie in the identity map.
const REGISTER_WINDOW: u64 = 64 * 1024;

/// One remapping unit Keel enabled.
pub struct Unit {
    pub base: u64,
    pub segment: u16,
    pub driver: RemappingUnit<Mmio>,
    pub root: RootTable,
    pub tables: IommuTables,
    pub interrupts: Option<InterruptRemappingTable>,
    /// Whether the fault event interrupt is armed (else faults are only
    /// seen by polling).
    fault_interrupt: bool,
    /// The devices with RMRRs behind this unit and their identity domain.
    identity: Option<rmrr::IdentityDomain>,
    /// Faults reported so far (the console line is rate-limited).
    faults: u64,
    /// Interrupt remapping entries in use (`interrupts::remap`); entry 0
    /// is the self-test's.
    entries_used: Vec<bool>,
}

pub struct Iommu {
    /// The DMAR table as read at boot (a checked copy).
    pub dmar: Vec<u8>,
    pub units: Vec<Unit>,
}

static IOMMU: Mutex<Option<Iommu>> = Mutex::new(None);

/// Finds and enables every remapping unit; says what it did. Without a
/// DMAR (no IOMMU, or one the firmware hides) or with one Keel refuses,
/// devices' DMA is not confined, and Keel says so. `which` picks the DMAR
/// when the firmware lists several (`iommu-dmar=`; a test's override).
pub fn init(boot_info: &BootInformation, which: keel_acpi_tables::find::Occurrence) {
    let dmar = match crate::host_acpi::find_occurrence(boot_info, *b"DMAR", which) {
        Ok(Some(dmar)) => dmar,
        Ok(None) => {
            log::info!("iommu: no DMAR table (no VT-d): DMA is not confined");
            return;
        }
        Err(error) => {
            log::warn!("iommu: reading the ACPI tables: {error}; DMA is not confined");
            return;
        }
    };
    let parsed = match parse_dmar(&dmar) {
        Ok(parsed) => parsed,
        Err(error) => {
            log::warn!("iommu: DMAR refused: {error}; continuing without DMA remapping");
            return;
        }
    };
    let interrupt_remapping = parsed.flags().contains(DmarFlags::INTR_REMAP);
    log::info!(
        "iommu: DMAR{}: {} remapping unit(s), host address width {} bits, interrupt remapping {}, {} reserved memory region(s)",
        if which == keel_acpi_tables::find::Occurrence::Last {
            " (the last the firmware lists, iommu-dmar=last)"
        } else {
            ""
        },
        parsed.drhds().count(),
        parsed.host_address_width(),
        if interrupt_remapping {
            "supported"
        } else {
            "not supported"
        },
        parsed.rmrrs().count(),
    );
    rmrr::withhold(&parsed);
    let functions = if parsed.rmrrs().next().is_some() {
        rmrr::present_functions()
    } else {
        Vec::new()
    };
    let mut units = Vec::new();
    for (index, drhd) in parsed.drhds().enumerate() {
        match bring_up(&drhd, interrupt_remapping, &parsed, &functions) {
            Ok(mut unit) => {
                arm_fault_interrupt(&mut unit);
                units.push(unit);
            }
            Err(reason) => log::warn!(
                "iommu: unit {index} at {:#x}: not enabled: {reason}; its devices' DMA is not confined",
                drhd.register_base().as_u64()
            ),
        }
    }
    *IOMMU.lock() = Some(Iommu { dmar, units });
}

fn bring_up(
    drhd: &Drhd<'_>,
    interrupt_remapping: bool,
    dmar: &keel_iommu::Dmar<'_>,
    functions: &[keel_iommu::SourceId],
) -> Result<Unit, alloc::string::String> {
    use alloc::format;
    let base = drhd.register_base().as_u64();
    let mmio = Mmio::new(base, REGISTER_WINDOW).ok_or("its registers are outside the identity map")?;
    let driver = RemappingUnit::new(mmio).with_poll_limit(POLL_LIMIT);
    let (version, cap, ecap) = (driver.version(), driver.capabilities(), driver.extended_capabilities());
    let mut tables = IommuTables {
        flush: !ecap.coherent(),
    };
    let mut frames = HostFrames;
    let root = RootTable::new(&mut frames, &mut tables).map_err(|error| format!("root table: {error}"))?;
    let queue = if ecap.queued_invalidation() {
        let base = frames.allocate_frame().ok_or("no memory for the invalidation queue")?;
        let status = frames.allocate_frame().ok_or("no memory for the invalidation status")?;
        Some(QueueConfig {
            base,
            size: QueueSize::ONE_PAGE,
            status,
        })
    } else {
        None
    };
    let interrupts = if interrupt_remapping && ecap.interrupt_remapping() && queue.is_some() {
        let table = frames
            .allocate_frame()
            .ok_or("no memory for the interrupt remapping table")?;
        let size = TableSize::from_entries(INTERRUPT_ENTRIES).map_err(|error| format!("{error:?}"))?;
        // Keel's local APIC is in xAPIC mode unless the host timer found
        // x2APIC; entries then carry 8-bit destinations either way.
        let mode = if ecap.extended_interrupt_mode() && crate::arch::device_interrupts::x2apic() {
            ApicMode::X2Apic
        } else {
            ApicMode::XApic
        };
        Some(InterruptRemappingTable::new(table, size, mode).map_err(|error| format!("{error:?}"))?)
    } else {
        None
    };
    let mut unit = Unit {
        base,
        segment: drhd.segment(),
        driver,
        root,
        tables,
        interrupts,
        fault_interrupt: false,
        identity: None,
        faults: 0,
        entries_used: alloc::vec![false; INTERRUPT_ENTRIES as usize],
    };
    // Devices with RMRRs get their identity entries before translation
    // comes on, so the firmware's DMA into the regions never faults.
    rmrr::set_up(dmar, functions, &mut unit);
    unit.driver
        .enable(
            &EnableConfig {
                root_table: unit.root.address(),
                invalidation_queue: queue,
                interrupt_remapping: interrupts,
            },
            &mut unit.tables,
        )
        .map_err(|error| format!("{error}"))?;
    let scopes = drhd.scopes().count();
    let scope = if drhd.include_pci_all() {
        "every other device, "
    } else {
        ""
    };
    log::info!(
        "iommu: unit at {base:#x} (segment {}, {scope}{scopes} device scope(s)): VT-d {}.{}, {} domains, caching mode {}: translation on, every device blocked{}; queued invalidation {}, interrupt remapping {}",
        drhd.segment(),
        version.major,
        version.minor,
        cap.domains(),
        on_off(cap.caching_mode()),
        match &unit.identity {
            Some(domain) => format!(" but for the RMRRs of {} device(s)", domain.devices.len()),
            None => alloc::string::String::new(),
        },
        on_off(queue.is_some()),
        on_off(interrupts.is_some()),
    );
    rmrr::report(&unit);
    Ok(unit)
}

/// Sends `unit`'s fault event interrupt to [`FAULT_VECTOR`] on this CPU,
/// then drains what the unit recorded before (firmware's DMA, or devices
/// blocked since translation came on): a fault left recorded would hold
/// back the next interrupt. A unit that cannot be programmed keeps the
/// interrupt masked and is polled.
fn arm_fault_interrupt(unit: &mut Unit) {
    let destination = crate::arch::device_interrupts::local_apic_id();
    let eim = unit.driver.extended_capabilities().extended_interrupt_mode();
    let armed = FaultEventMessage::new(FAULT_VECTOR, destination, eim)
        .map_err(|error| alloc::format!("{error}"))
        .and_then(|message| {
            unit.driver
                .enable_fault_event(&message)
                .map_err(|error| alloc::format!("{error}"))
        });
    match armed {
        Ok(()) => {
            // xAPIC mode without the host timer: nothing else enables the
            // local APIC, which would then refuse the message.
            crate::arch::device_interrupts::enable_local_apic();
            unit.fault_interrupt = true;
            log::info!(
                "iommu: unit at {:#x}: fault event interrupt on vector {FAULT_VECTOR:#x} (APIC ID {destination})",
                unit.base
            );
        }
        Err(reason) => {
            unit.driver.mask_fault_event();
            log::warn!(
                "iommu: unit at {:#x}: fault event interrupt not armed: {reason}; its faults are polled",
                unit.base
            );
        }
    }
    report_faults(unit, &mut |_, _| {});
}

fn on_off(enabled: bool) -> &'static str {
    if enabled {
        "on"
    } else {
        "off"
    }
}

/// TSC cycles between two looks at the fault registers when some unit's
/// fault event interrupt is not armed (an MMIO read per unit: cheap, but
/// not free on every scheduling decision).
const FAULT_POLL_CYCLES: u64 = 1 << 24;
/// The same when every unit interrupts: a fallback only, for a fault whose
/// interrupt was lost (one recorded while the registers were being drained
/// raises none, and the drain's sweeps are bounded).
const FAULT_FALLBACK_POLL_CYCLES: u64 = 1 << 30;
static NEXT_FAULT_POLL: AtomicU64 = AtomicU64::new(0);
/// [`FAULT_VECTOR`]'s arrivals already answered by a drain.
static FAULT_INTERRUPTS_SEEN: AtomicU64 = AtomicU64::new(0);
/// Drains that a fault event interrupt caused (the line is rate-limited).
static FAULT_INTERRUPT_DRAINS: AtomicU64 = AtomicU64::new(0);

/// Reports the faults every unit recorded: at once when the fault event
/// interrupt arrived since the last look, else at the polling rate (see
/// [`FAULT_POLL_CYCLES`]). Called from the scheduler's host work; the
/// lines are rate-limited per unit: the first few, then at powers of two.
pub fn poll_faults() {
    service_faults(|_, _| {});
}

/// What [`poll_faults`] does, showing every drained record to `observe`
/// (unit base, record). Returns whether the fault event interrupt had
/// arrived (and the units were drained for it).
fn service_faults(mut observe: impl FnMut(u64, &FaultRecord)) -> bool {
    let arrivals = crate::arch::device_interrupts::arrivals(FAULT_VECTOR);
    let interrupted = arrivals != FAULT_INTERRUPTS_SEEN.load(Ordering::Relaxed);
    let now = crate::arch::tsc::read();
    if !interrupted && now < NEXT_FAULT_POLL.load(Ordering::Relaxed) {
        return false;
    }
    // Taken by a confinement change (or the self-test) on this CPU: the
    // arrival stays unanswered and the next host work retries.
    let Some(mut guard) = IOMMU.try_lock() else {
        return false;
    };
    let Some(iommu) = guard.as_mut() else {
        return false;
    };
    FAULT_INTERRUPTS_SEEN.store(arrivals, Ordering::Relaxed);
    let interval = if iommu.units.iter().all(|unit| unit.fault_interrupt) {
        FAULT_FALLBACK_POLL_CYCLES
    } else {
        FAULT_POLL_CYCLES
    };
    NEXT_FAULT_POLL.store(now.saturating_add(interval), Ordering::Relaxed);
    if interrupted {
        let drains = FAULT_INTERRUPT_DRAINS.fetch_add(1, Ordering::Relaxed) + 1;
        if drains <= 8 || drains.is_power_of_two() {
            log::info!("iommu: fault event interrupt on vector {FAULT_VECTOR:#x} ({drains} so far)");
        }
    }
    for unit in &mut iommu.units {
        report_faults(unit, &mut observe);
    }
    interrupted
}

/// Drains `unit`'s fault recording registers onto the console (clearing
/// them re-arms its fault event interrupt); returns how many there were.
fn report_faults(unit: &mut Unit, observe: &mut impl FnMut(u64, &FaultRecord)) -> u64 {
    let base = unit.base;
    let mut seen = 0;
    let faults = &mut unit.faults;
    unit.driver.take_faults(|record| {
        seen += 1;
        *faults += 1;
        if *faults <= 8 || faults.is_power_of_two() {
            log::warn!("iommu: unit {base:#x}: DMA fault: {record} ({} so far)", faults);
        }
        observe(base, &record);
    });
    seen
}

/// Runs `f` with the IOMMU state, if Keel enabled one.
fn with_iommu<T>(f: impl FnOnce(&mut Iommu) -> T) -> Option<T> {
    IOMMU.lock().as_mut().map(f)
}

/// The page size the IOMMU code maps in.
const PAGE: u64 = PAGE_SIZE_4K;

/// A device's DMA confined to a domain's memory: what [`release`] undoes.
pub struct Confinement {
    unit_base: u64,
    source: keel_iommu::SourceId,
    domain_id: u16,
    tables: keel_iommu::tables::SecondLevelTables,
}

/// Whether an enabled remapping unit translates `source`'s DMA.
pub fn covers(source: keel_iommu::SourceId) -> bool {
    with_iommu(|iommu| unit_index_for(iommu, source).is_some()).unwrap_or(false)
}

fn unit_index_for(iommu: &Iommu, source: keel_iommu::SourceId) -> Option<usize> {
    unit_position(&parse_dmar(&iommu.dmar).ok()?, &iommu.units, source)
}

/// Which of `units` (those enabled) translates `source` (segment 0).
fn unit_position(dmar: &keel_iommu::Dmar<'_>, units: &[Unit], source: keel_iommu::SourceId) -> Option<usize> {
    let base = dmar.unit_for(0, source, &rmrr::HostBridges)?.register_base().as_u64();
    units.iter().position(|unit| unit.base == base && unit.segment == 0)
}

/// Gives `source` a translation domain (`domain_id`) whose tables map
/// exactly `runs` (guest-physical, host-physical, length), read-write: the
/// device's DMA reaches that memory at those addresses and faults anywhere
/// else. A device with RMRRs also keeps its reserved regions at their own
/// addresses, and is refused (naming the region) when one of them lies
/// where `runs` put the domain's memory. `None` when no enabled unit covers
/// the device.
pub fn confine(
    source: keel_iommu::SourceId,
    domain_id: u16,
    runs: &[(u64, keel_memory::HostPhysAddr, u64)],
) -> Option<Result<Confinement, alloc::string::String>> {
    use keel_iommu::tables::{Access, ContextEntry, PageSize, SecondLevelTables, SlConfig};
    use keel_iommu::unit::InvalidationScope;
    use keel_memory::GuestPhysAddr;
    with_iommu(|iommu| {
        let dmar = parse_dmar(&iommu.dmar).ok()?;
        let index = unit_position(&dmar, &iommu.units, source)?;
        let regions = rmrr::regions_for(&dmar, source);
        let unit = &mut iommu.units[index];
        Some((|| {
            if domain_id == rmrr::identity_domain_id(unit) {
                return Err(alloc::format!(
                    "domain ID {domain_id} is the IOMMU's RMRR identity domain"
                ));
            }
            keel_iommu::rmrr::check_identity_fits(
                regions.iter().copied(),
                runs.iter().map(|&(gpa, _, len)| (gpa, len)),
            )
            .map_err(|conflict| alloc::format!("{conflict}"))?;
            let identity = rmrr::merged(regions.iter().copied());
            let highest = runs
                .iter()
                .map(|&(gpa, _, len)| gpa + len)
                .chain(identity.iter().map(|&(_, end)| end))
                .max()
                .unwrap_or(0);
            let config = SlConfig::for_unit(
                unit.driver.capabilities(),
                unit.driver.extended_capabilities(),
                rmrr::address_bits(highest),
            )
            .ok_or("the IOMMU cannot translate that many address bits")?;
            let mut tables = SecondLevelTables::new(config, &mut HostFrames, &mut unit.tables)
                .map_err(|error| alloc::format!("IOMMU tables: {error}"))?;
            for &(gpa, hpa, len) in runs {
                let mut offset = 0;
                while offset < len {
                    let mapped = tables.map(
                        GuestPhysAddr::new(gpa + offset),
                        keel_memory::HostPhysAddr::new(hpa.as_u64() + offset),
                        PageSize::Size4K,
                        Access::READ_WRITE,
                        &mut HostFrames,
                        &mut unit.tables,
                    );
                    if let Err(error) = mapped {
                        tables.destroy(&mut HostFrames, &unit.tables);
                        return Err(alloc::format!("IOMMU mapping: {error}"));
                    }
                    offset += PAGE;
                }
            }
            if let Err(error) = rmrr::map_identity(&mut tables, &identity, unit) {
                tables.destroy(&mut HostFrames, &unit.tables);
                return Err(alloc::format!("IOMMU mapping of the device's RMRRs: {error}"));
            }
            let context = ContextEntry::second_level(domain_id, tables.root(), config.agaw);
            if let Err(error) = unit
                .root
                .set_context(source, &context, &mut HostFrames, &mut unit.tables)
            {
                tables.destroy(&mut HostFrames, &unit.tables);
                return Err(alloc::format!("IOMMU context entry: {error}"));
            }
            unit.driver
                .invalidate(InvalidationScope::Global, &mut unit.tables)
                .map_err(|error| alloc::format!("IOMMU invalidation: {error}"))?;
            for region in &regions {
                log::info!("iommu: {source}: {region} identity-mapped into domain {domain_id} too");
            }
            Ok(Confinement {
                unit_base: unit.base,
                source,
                domain_id,
                tables,
            })
        })())
    })
    .flatten()
}

/// Blocks the device again and frees its tables (after its domain is gone:
/// the device must be quiet or reset first). A device with RMRRs goes back
/// into its unit's identity domain, as at boot.
pub fn release(confinement: Confinement) {
    use keel_iommu::unit::InvalidationScope;
    with_iommu(|iommu| {
        let Some(unit) = iommu.units.iter_mut().find(|unit| unit.base == confinement.unit_base) else {
            return;
        };
        let identity = unit
            .identity
            .as_ref()
            .filter(|domain| domain.contains(confinement.source))
            .map(|domain| domain.context());
        match identity {
            Some(context) => {
                if let Err(error) =
                    unit.root
                        .set_context(confinement.source, &context, &mut HostFrames, &mut unit.tables)
                {
                    log::warn!(
                        "iommu: {}: back to its RMRR identity domain: {error}",
                        confinement.source
                    );
                    let _ = unit.root.clear_context(confinement.source, &mut unit.tables);
                }
            }
            None => {
                let _ = unit.root.clear_context(confinement.source, &mut unit.tables);
            }
        }
        if let Err(error) = unit.driver.invalidate(InvalidationScope::Global, &mut unit.tables) {
            log::warn!(
                "iommu: invalidating after releasing domain {}: {error}",
                confinement.domain_id
            );
        }
        confinement.tables.destroy(&mut HostFrames, &unit.tables);
    });
}

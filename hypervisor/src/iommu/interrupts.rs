//! Interrupt remapping entries for the interrupts Keel takes from host
//! devices it forwards to guests. A unit with interrupt remapping on blocks
//! compatibility-format interrupts (Keel leaves CFI clear), so an I/O APIC
//! input or an MSI Keel routes to one of its vectors must be a
//! remappable-format request naming an entry of the unit's table, and the
//! entry names Keel's vector and CPU and the only requester it accepts
//! (source validation: the I/O APIC's or the function's requester ID, so
//! another device cannot borrow the entry).
//!
//! Entry 0 is the self-test's; the others are handed out here, one per
//! forwarded interrupt, and cleared (with the unit's cached copy
//! invalidated) when the route goes.

use alloc::format;
use alloc::string::String;

use keel_iommu::invalidation::Descriptor;
use keel_iommu::irte::{Irte, TriggerMode};
use keel_iommu::{parse_dmar, SourceId};

use super::{rmrr, with_iommu, Unit, INTERRUPT_ENTRIES};

/// Who sends the interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requester {
    /// A PCI function's MSI.
    Function(SourceId),
    /// An input of the I/O APIC with this APIC ID.
    IoApic(u8),
}

/// A remapping entry Keel wrote; give it back with [`release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemappedInterrupt {
    unit: u64,
    pub index: u16,
}

/// Writes an entry that delivers `vector` (edge- or level-triggered, as
/// the source signals it) to this CPU for interrupts from `requester`.
/// `None` when no enabled unit remaps that requester's interrupts
/// (compatibility format reaches Keel as before); an error when one
/// should and cannot (no free entry, or an I/O APIC the DMAR does not
/// place under any unit while some unit remaps).
pub fn remap(requester: Requester, vector: u8, level: bool) -> Option<Result<RemappedInterrupt, String>> {
    with_iommu(|iommu| {
        let remapping = iommu.units.iter().any(|unit| unit.interrupts.is_some());
        if !remapping {
            return None;
        }
        let dmar = match parse_dmar(&iommu.dmar) {
            Ok(dmar) => dmar,
            Err(error) => return Some(Err(format!("the DMAR no longer parses: {error}"))),
        };
        let Some((base, source)) = placement(&dmar, requester) else {
            return match requester {
                Requester::Function(_) => None,
                Requester::IoApic(id) => Some(Err(format!(
                    "interrupt remapping is on but the DMAR places I/O APIC {id} under no remapping unit"
                ))),
            };
        };
        let unit = iommu.units.iter_mut().find(|unit| unit.base == base)?;
        unit.interrupts?;
        Some(write_entry(unit, source, vector, level))
    })
    .flatten()
}

/// Whether an enabled unit remaps interrupts from `requester` (its
/// requests to the interrupt window can then only raise entries Keel
/// wrote).
pub fn remaps(requester: Requester) -> bool {
    with_iommu(|iommu| {
        let dmar = parse_dmar(&iommu.dmar).ok()?;
        let (base, _) = placement(&dmar, requester)?;
        iommu
            .units
            .iter()
            .find(|unit| unit.base == base)
            .map(|unit| unit.interrupts.is_some())
    })
    .flatten()
    .unwrap_or(false)
}

/// The register base of the unit that receives `requester`'s interrupts,
/// and the requester ID its entries validate.
fn placement(dmar: &keel_iommu::Dmar<'_>, requester: Requester) -> Option<(u64, SourceId)> {
    match requester {
        Requester::Function(source) => Some((
            dmar.unit_for(0, source, &rmrr::HostBridges)?.register_base().as_u64(),
            source,
        )),
        Requester::IoApic(id) => dmar
            .ioapic(id, &rmrr::HostBridges)
            .map(|(drhd, source)| (drhd.register_base().as_u64(), source)),
    }
}

fn write_entry(unit: &mut Unit, source: SourceId, vector: u8, level: bool) -> Result<RemappedInterrupt, String> {
    let table = unit.interrupts.ok_or("interrupt remapping is off")?;
    let index = (1..INTERRUPT_ENTRIES as usize)
        .find(|&index| !unit.entries_used.get(index).copied().unwrap_or(true))
        .ok_or_else(|| format!("every interrupt remapping entry of unit {:#x} is taken", unit.base))?;
    let destination = crate::arch::device_interrupts::local_apic_id();
    let entry = Irte {
        trigger_mode: if level { TriggerMode::Level } else { TriggerMode::Edge },
        ..Irte::fixed(vector, destination, source)
    };
    table
        .set(index as u32, &entry, &mut unit.tables)
        .map_err(|error| format!("writing remapping entry {index}: {error:?}"))?;
    invalidate(unit, index as u16)?;
    if let Some(used) = unit.entries_used.get_mut(index) {
        *used = true;
    }
    Ok(RemappedInterrupt {
        unit: unit.base,
        index: index as u16,
    })
}

/// Drops the unit's cached copy of entry `index` (the unit may cache
/// entries; a changed one must not be used stale).
fn invalidate(unit: &mut Unit, index: u16) -> Result<(), String> {
    let descriptor = Descriptor::interrupt_entry_cache_entries(index, 0).map_err(|error| format!("{error:?}"))?;
    unit.driver
        .submit_and_wait(&[descriptor], &mut unit.tables)
        .map_err(|error| format!("invalidating remapping entry {index}: {error}"))
}

/// Clears an entry [`remap`] wrote; the caller has already masked the
/// source.
pub fn release(entry: RemappedInterrupt) {
    with_iommu(|iommu| {
        let Some(unit) = iommu.units.iter_mut().find(|unit| unit.base == entry.unit) else {
            return;
        };
        let Some(table) = unit.interrupts else { return };
        let _ = table.clear(u32::from(entry.index), &mut unit.tables);
        if let Err(error) = invalidate(unit, entry.index) {
            log::warn!("iommu: {error}");
        }
        if let Some(used) = unit.entries_used.get_mut(usize::from(entry.index)) {
            *used = false;
        }
    });
}

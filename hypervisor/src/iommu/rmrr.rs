//! RMRR identity domains (`keel_iommu::rmrr` holds the logic): at boot,
//! with every device blocked, each device the DMAR lists in a Reserved
//! Memory Region gets a context entry into its unit's identity domain,
//! whose tables map exactly the units' RMRR ranges at their own addresses,
//! so DMA the firmware started (USB legacy keyboard emulation, a display's
//! stolen memory) keeps working and nothing else of the device's does.

use alloc::vec::Vec;

use keel_iommu::dmar::{BridgeResolver, BusRange, Dmar};
use keel_iommu::rmrr::{merge_ranges, ReservedRegion};
use keel_iommu::tables::{Access, ContextEntry, SecondLevelTables, SlConfig};
use keel_iommu::SourceId;
use keel_memory::{GuestPhysAddr, HostPhysAddr};
use keel_pci::{header, Bdf, ConfigAccess};

use super::Unit;
use crate::arch::pci::HostConfig;
use crate::memory::HostFrames;

/// A unit's identity domain: the devices with RMRRs behind it and the
/// tables mapping their regions one to one.
pub struct IdentityDomain {
    pub domain_id: u16,
    pub tables: SecondLevelTables,
    /// Each device in the domain and its regions.
    pub devices: Vec<(SourceId, Vec<ReservedRegion>)>,
}

impl IdentityDomain {
    /// The context entry that puts a device back into this domain.
    pub fn context(&self) -> ContextEntry {
        ContextEntry::second_level(self.domain_id, self.tables.root(), self.tables.config().agaw)
    }

    pub fn contains(&self, source: SourceId) -> bool {
        self.devices.iter().any(|(device, _)| *device == source)
    }
}

/// The identity domain's ID: the unit's highest, far from the small
/// numbers domains are assigned under (and never 0, which caching mode
/// reserves).
pub fn identity_domain_id(unit: &Unit) -> u16 {
    (unit.driver.capabilities().domains().clamp(2, 1 << 16) - 1) as u16
}

/// PCI-PCI bridges in the host's configuration space (segment 0), so scope
/// paths through bridges resolve.
pub struct HostBridges;

impl BridgeResolver for HostBridges {
    fn bridge_buses(&self, segment: u16, bridge: SourceId) -> Option<BusRange> {
        if segment != 0 {
            return None;
        }
        let bdf = Bdf::new(bridge.bus(), bridge.device(), bridge.function())?;
        let config = &mut HostConfig;
        if config.read16(bdf, header::VENDOR_ID) == 0xffff
            || config.read8(bdf, header::HEADER_TYPE) & header::HEADER_TYPE_MASK != header::HEADER_BRIDGE
        {
            return None;
        }
        Some(BusRange {
            secondary: config.read8(bdf, header::SECONDARY_BUS),
            subordinate: config.read8(bdf, header::SECONDARY_BUS + 1),
        })
    }
}

/// The RMRRs of `source` (segment 0), in table order.
pub fn regions_for(dmar: &Dmar<'_>, source: SourceId) -> Vec<ReservedRegion> {
    dmar.rmrrs_for(0, source, &HostBridges).collect()
}

/// `[start, end)` ranges of `regions`, merged.
pub fn merged(regions: impl IntoIterator<Item = ReservedRegion>) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = regions.into_iter().map(|region| (region.base, region.end())).collect();
    let kept = merge_ranges(&mut ranges);
    ranges.truncate(kept);
    ranges
}

/// Maps `ranges` one to one (DMA address = host address) into `tables`.
pub fn map_identity(
    tables: &mut SecondLevelTables,
    ranges: &[(u64, u64)],
    unit: &mut Unit,
) -> Result<(), keel_iommu::tables::TableError> {
    for &(start, end) in ranges {
        tables.map_range(
            GuestPhysAddr::new(start),
            HostPhysAddr::new(start),
            end - start,
            Access::READ_WRITE,
            &mut HostFrames,
            &mut unit.tables,
        )?;
    }
    Ok(())
}

/// Address bits a domain needs to reach `highest` (exclusive), at least 32.
pub fn address_bits(highest: u64) -> u8 {
    (64 - highest.saturating_sub(1).leading_zeros()).max(32) as u8
}

/// RMRR memory belongs to the firmware; Keel's frame allocator must never
/// hand it out (a device would then DMA into whatever Keel put there).
/// Firmware marks it reserved in the memory map, so this normally
/// withholds nothing; it says so when a region was in memory marked free.
pub fn withhold(dmar: &Dmar<'_>) {
    for rmrr in dmar.rmrrs() {
        let (base, end) = (rmrr.base().as_u64(), rmrr.limit().as_u64().saturating_add(1));
        if crate::memory::withhold(base, end) {
            log::warn!(
                "iommu: RMRR {base:#x}-{:#x} lies in memory the firmware's map calls free (a firmware bug): withheld from Keel's allocator",
                end - 1
            );
        }
    }
}

/// Gives every function of `functions` that `unit` translates and that
/// has RMRRs the unit's identity domain (see the module documentation).
/// Called before the unit's translation comes on, whose global
/// invalidation then covers the new entries: the firmware's DMA into the
/// regions never sees a blocked moment. Says nothing: [`report`] does,
/// once the unit is on. What fails is logged, and those devices stay
/// blocked.
pub fn set_up(dmar: &Dmar<'_>, functions: &[SourceId], unit: &mut Unit) {
    let devices: Vec<(SourceId, Vec<ReservedRegion>)> = functions
        .iter()
        .filter(|&&source| {
            unit.segment == 0
                && dmar
                    .unit_for(0, source, &HostBridges)
                    .is_some_and(|drhd| drhd.register_base().as_u64() == unit.base)
        })
        .map(|&source| (source, regions_for(dmar, source)))
        .filter(|(_, regions)| !regions.is_empty())
        .collect();
    if devices.is_empty() {
        return;
    }
    let regions: Vec<ReservedRegion> = devices
        .iter()
        .flat_map(|(_, regions)| regions.iter().copied())
        .collect();
    match identity_domain(unit, &regions) {
        Ok(mut domain) => {
            let context = domain.context();
            for (source, regions) in devices {
                match unit
                    .root
                    .set_context(source, &context, &mut HostFrames, &mut unit.tables)
                {
                    Ok(()) => domain.devices.push((source, regions)),
                    Err(error) => log::warn!("iommu: {source}: its RMRR context entry: {error}; it stays blocked"),
                }
            }
            unit.identity = Some(domain);
        }
        Err(reason) => {
            for (source, _) in &devices {
                log::warn!("iommu: {source}: its RMRRs are not mapped ({reason}): its firmware's DMA faults");
            }
        }
    }
}

/// Says which devices of `unit` are in its identity domain, and with which
/// regions.
pub fn report(unit: &Unit) {
    let Some(domain) = &unit.identity else {
        return;
    };
    for (source, regions) in &domain.devices {
        for region in regions {
            log::info!(
                "iommu: {source}: {region} identity-mapped (domain {}) for the firmware's DMA; the device is otherwise blocked",
                domain.domain_id
            );
        }
    }
}

/// The PCI functions present on the host (segment 0), as requester IDs.
pub fn present_functions() -> Vec<SourceId> {
    keel_pci::enumerate::enumerate(&mut HostConfig)
        .iter()
        .filter_map(|function| SourceId::new(function.bdf.bus, function.bdf.device, function.bdf.function))
        .collect()
}

fn identity_domain(unit: &mut Unit, regions: &[ReservedRegion]) -> Result<IdentityDomain, alloc::string::String> {
    let ranges = merged(regions.iter().copied());
    let highest = ranges.iter().map(|&(_, end)| end).max().unwrap_or(0);
    let config = SlConfig::for_unit(
        unit.driver.capabilities(),
        unit.driver.extended_capabilities(),
        address_bits(highest),
    )
    .ok_or("the unit cannot translate addresses that high")?;
    let mut tables = SecondLevelTables::new(config, &mut HostFrames, &mut unit.tables)
        .map_err(|error| alloc::format!("IOMMU tables: {error}"))?;
    if let Err(error) = map_identity(&mut tables, &ranges, unit) {
        tables.destroy(&mut HostFrames, &unit.tables);
        return Err(alloc::format!("IOMMU mapping: {error}"));
    }
    Ok(IdentityDomain {
        domain_id: identity_domain_id(unit),
        tables,
        devices: Vec::new(),
    })
}

//! Which remapping unit translates a given device (VT-d §8.3, INCLUDE_PCI_ALL, and §8.3.1): the unit
//! whose device scopes name it, else the segment's INCLUDE_PCI_ALL unit.

use super::scope::{DeviceScope, ScopeKind};
use super::structures::Drhd;
use super::Dmar;
use crate::SourceId;

/// Bus numbers a PCI-PCI bridge forwards to (type 1 configuration header,
/// offsets 0x19 and 0x1a).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusRange {
    pub secondary: u8,
    pub subordinate: u8,
}

impl BusRange {
    pub fn contains(&self, bus: u8) -> bool {
        (self.secondary..=self.subordinate).contains(&bus)
    }
}

/// What a scope path needs from PCI configuration space: the buses behind
/// each bridge on the way. The hypervisor answers from config space; a
/// device with no bridge in its path needs no answers.
pub trait BridgeResolver {
    /// The buses behind the bridge at `bridge`, or `None` if there is no
    /// bridge there.
    fn bridge_buses(&self, segment: u16, bridge: SourceId) -> Option<BusRange>;
}

/// A topology without bridges: only single-hop scope paths resolve, and a
/// sub-hierarchy scope covers only its bridge.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoBridges;

impl BridgeResolver for NoBridges {
    fn bridge_buses(&self, _segment: u16, _bridge: SourceId) -> Option<BusRange> {
        None
    }
}

/// The function a scope's path ends at, following bridges from the start
/// bus; `None` if a bridge on the way is absent.
pub fn scope_target(scope: &DeviceScope<'_>, segment: u16, bridges: &impl BridgeResolver) -> Option<SourceId> {
    let mut bus = scope.start_bus();
    let mut path = scope.path().peekable();
    while let Some(hop) = path.next() {
        let here = SourceId::new(bus, hop.device, hop.function)?;
        if path.peek().is_none() {
            return Some(here);
        }
        bus = bridges.bridge_buses(segment, here)?.secondary;
    }
    None
}

/// Whether `scope` (in `segment`) covers `device`.
pub fn scope_covers(scope: &DeviceScope<'_>, segment: u16, device: SourceId, bridges: &impl BridgeResolver) -> bool {
    let Some(target) = scope_target(scope, segment, bridges) else {
        return false;
    };
    if target == device {
        return true;
    }
    scope.kind() == ScopeKind::PciSubHierarchy
        && bridges
            .bridge_buses(segment, target)
            .is_some_and(|buses| buses.contains(device.bus()))
}

impl<'a> Dmar<'a> {
    /// The remapping unit translating requests from `device`: a unit whose
    /// scope names it (endpoint, sub-hierarchy containing it, or an I/O
    /// APIC/HPET/ACPI device with that requester ID), else the segment's
    /// INCLUDE_PCI_ALL unit, else `None` (the device is not behind any
    /// remapping unit).
    pub fn unit_for(&self, segment: u16, device: SourceId, bridges: &impl BridgeResolver) -> Option<Drhd<'a>> {
        let named = self.drhds().find(|drhd| {
            drhd.segment() == segment
                && drhd
                    .scopes()
                    .any(|scope| scope_covers(&scope, segment, device, bridges))
        });
        named.or_else(|| self.include_all_unit(segment))
    }

    /// The I/O APIC with APIC ID `apic_id`: the unit whose scope lists it
    /// (its interrupts are remapped there) and its requester ID (the
    /// scope's path), which an interrupt remapping entry for its inputs
    /// validates. `None` when no unit lists it or its path is broken.
    pub fn ioapic(&self, apic_id: u8, bridges: &impl BridgeResolver) -> Option<(Drhd<'a>, SourceId)> {
        self.drhds().find_map(|drhd| {
            drhd.scopes()
                .filter(|scope| scope.kind() == ScopeKind::IoApic && scope.enumeration_id() == apic_id)
                .find_map(|scope| scope_target(&scope, drhd.segment(), bridges))
                .map(|source| (drhd, source))
        })
    }

    /// The segment's INCLUDE_PCI_ALL unit (at most one; parsing checks).
    pub fn include_all_unit(&self, segment: u16) -> Option<Drhd<'a>> {
        self.drhds()
            .find(|drhd| drhd.segment() == segment && drhd.include_pci_all())
    }
}

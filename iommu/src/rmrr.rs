//! Reserved Memory Region Reporting (VT-d §8.4): memory the firmware says
//! some devices DMA to on their own (USB controllers' legacy keyboard
//! emulation buffers, integrated graphics' stolen memory). Whenever such a
//! device's DMA is translated, its regions must be identity-mapped (DMA
//! address = host-physical address) or the firmware's use of the device
//! breaks.
//!
//! The policy Keel applies with these pieces (`docs/iommu.md`):
//! - at boot, with every other device blocked, devices with RMRRs get a
//!   context entry into an identity domain of their unit that maps exactly
//!   the RMRR ranges ([`merge_ranges`] joins what several devices share);
//! - a device with RMRRs assigned to a domain gets them identity-mapped into
//!   that domain's tables too, unless a region collides with the domain's
//!   own guest-physical RAM ([`check_identity_fits`]); then the assignment
//!   is refused, as Xen's `rdm_policy=strict` does: mapping either way would
//!   give the device, and so the guest, the wrong memory at one of them.
//!
//! Everything here is pure and allocation-free: which regions name which
//! device, and the range arithmetic; the hypervisor does the mapping.

use core::fmt;

use crate::dmar::{scope_covers, BridgeResolver, Dmar, ScopeKind};
use crate::SourceId;

/// One RMRR's range, with the table offset that names it in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReservedRegion {
    /// The RMRR structure's offset in the DMAR table.
    pub offset: usize,
    /// 4 KiB aligned.
    pub base: u64,
    /// Inclusive; limit + 1 is 4 KiB aligned (the parser checks both).
    pub limit: u64,
}

impl ReservedRegion {
    /// The first byte past the region (the parser guarantees no overflow;
    /// saturating anyway, so a hand-built value cannot panic).
    pub fn end(&self) -> u64 {
        self.limit.saturating_add(1)
    }

    pub fn len(&self) -> u64 {
        self.end().saturating_sub(self.base)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the region and `[start, end)` share a byte.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.base < end && start < self.end()
    }
}

impl fmt::Display for ReservedRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RMRR at DMAR offset {:#x} ({:#x}-{:#x})",
            self.offset, self.base, self.limit
        )
    }
}

impl<'a> Dmar<'a> {
    /// The reserved regions whose device scopes name `device` in `segment`:
    /// PCI endpoint scopes resolving to it, or PCI sub-hierarchy scopes whose
    /// bridge's buses contain it. I/O APIC, HPET and ACPI scopes name no PCI
    /// function and never match.
    pub fn rmrrs_for<'b>(
        &self,
        segment: u16,
        device: SourceId,
        bridges: &'b impl BridgeResolver,
    ) -> impl Iterator<Item = ReservedRegion> + 'b
    where
        'a: 'b,
    {
        self.rmrrs()
            .filter(move |rmrr| rmrr.segment() == segment)
            .filter(move |rmrr| {
                rmrr.scopes().any(|scope| {
                    matches!(scope.kind(), ScopeKind::PciEndpoint | ScopeKind::PciSubHierarchy)
                        && scope_covers(&scope, segment, device, bridges)
                })
            })
            .map(|rmrr| ReservedRegion {
                offset: rmrr.offset(),
                base: rmrr.base().as_u64(),
                limit: rmrr.limit().as_u64(),
            })
    }
}

/// An RMRR that cannot be identity-mapped into a domain: the domain's own
/// memory sits at those guest-physical addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmrrConflict {
    pub region: ReservedRegion,
    /// The guest-physical range of the domain's RAM it overlaps,
    /// `[guest_start, guest_end)`.
    pub guest_start: u64,
    pub guest_end: u64,
}

impl fmt::Display for RmrrConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the device needs its {} identity-mapped, but the domain's RAM is at guest-physical {:#x}-{:#x} \
             (strict RMRR policy: the assignment is refused)",
            self.region,
            self.guest_start,
            self.guest_end.saturating_sub(1)
        )
    }
}

/// Checks that identity-mapping every region of `regions` into a domain
/// whose tables map `guest_ranges` (guest-physical start, length) would not
/// collide with them: the first collision found is the error.
pub fn check_identity_fits(
    regions: impl IntoIterator<Item = ReservedRegion>,
    guest_ranges: impl IntoIterator<Item = (u64, u64)> + Clone,
) -> Result<(), RmrrConflict> {
    for region in regions {
        for (start, len) in guest_ranges.clone() {
            let end = start.saturating_add(len);
            if len != 0 && region.overlaps(start, end) {
                return Err(RmrrConflict {
                    region,
                    guest_start: start,
                    guest_end: end,
                });
            }
        }
    }
    Ok(())
}

/// Sorts `ranges` (`[start, end)`) and merges overlapping and adjacent ones
/// in place, so an identity domain shared by several devices (whose RMRRs
/// may repeat or overlap) maps each page once. Returns how many ranges
/// remain at the front of the slice; empty ranges are dropped.
pub fn merge_ranges(ranges: &mut [(u64, u64)]) -> usize {
    ranges.sort_unstable();
    let mut kept = 0;
    for index in 0..ranges.len() {
        let (start, end) = ranges[index];
        if start >= end {
            continue;
        }
        if kept > 0 && start <= ranges[kept - 1].1 {
            ranges[kept - 1].1 = ranges[kept - 1].1.max(end);
        } else {
            ranges[kept] = (start, end);
            kept += 1;
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dmar::{BusRange, DmarBuilder, DrhdSpec, RmrrSpec, ScopeSpec};
    use crate::parse_dmar;

    fn source(bus: u8, device: u8, function: u8) -> SourceId {
        SourceId::new(bus, device, function).unwrap()
    }

    /// A bridge at 00:1c.0 with buses 3..=4 behind it.
    struct OneBridge;

    impl BridgeResolver for OneBridge {
        fn bridge_buses(&self, segment: u16, bridge: SourceId) -> Option<BusRange> {
            (segment == 0 && bridge == source(0, 0x1c, 0)).then_some(BusRange {
                secondary: 3,
                subordinate: 4,
            })
        }
    }

    fn table() -> Vec<u8> {
        DmarBuilder::new(39)
            .drhd(DrhdSpec::new(0xfed9_0000).include_pci_all())
            // USB legacy emulation for 00:14.0 and 00:1a.0.
            .rmrr(
                RmrrSpec::new(0, 0x7a00_0000, 0x7a01_ffff)
                    .scope(ScopeSpec::endpoint(0, &[(0x14, 0)]))
                    .scope(ScopeSpec::endpoint(0, &[(0x1a, 0)])),
            )
            // Graphics stolen memory for 00:02.0.
            .rmrr(RmrrSpec::new(0, 0x8000_0000, 0x87ff_ffff).scope(ScopeSpec::endpoint(0, &[(2, 0)])))
            // A device behind the bridge at 00:1c.0 (03:00.0), and one in
            // another segment at the same address as 00:02.0.
            .rmrr(RmrrSpec::new(0, 0x7b00_0000, 0x7b00_0fff).scope(ScopeSpec::endpoint(0, &[(0x1c, 0), (0, 0)])))
            .rmrr(RmrrSpec::new(1, 0x7c00_0000, 0x7c00_0fff).scope(ScopeSpec::endpoint(0, &[(2, 0)])))
            // A whole hierarchy below the bridge.
            .rmrr(RmrrSpec::new(0, 0x7d00_0000, 0x7d00_0fff).scope(ScopeSpec::sub_hierarchy(0, &[(0x1c, 0)])))
            .build()
    }

    fn bases(dmar: &Dmar<'_>, device: SourceId, bridges: &impl BridgeResolver) -> Vec<u64> {
        dmar.rmrrs_for(0, device, bridges).map(|region| region.base).collect()
    }

    #[test]
    fn regions_are_found_for_the_devices_their_scopes_name() {
        let bytes = table();
        let dmar = parse_dmar(&bytes).unwrap();
        assert_eq!(bases(&dmar, source(0, 0x14, 0), &OneBridge), [0x7a00_0000]);
        assert_eq!(bases(&dmar, source(0, 0x1a, 0), &OneBridge), [0x7a00_0000]);
        assert_eq!(
            bases(&dmar, source(0, 2, 0), &OneBridge),
            [0x8000_0000],
            "not segment 1's"
        );
        assert_eq!(bases(&dmar, source(3, 0, 0), &OneBridge), [0x7b00_0000, 0x7d00_0000]);
        assert_eq!(bases(&dmar, source(4, 5, 0), &OneBridge), [0x7d00_0000]);
        assert!(bases(&dmar, source(0, 3, 0), &OneBridge).is_empty());
        // Without the bridge's bus numbers, paths through it resolve to nothing.
        assert!(bases(&dmar, source(3, 0, 0), &crate::dmar::NoBridges).is_empty());
        let region = dmar.rmrrs_for(0, source(0, 0x14, 0), &OneBridge).next().unwrap();
        assert_eq!((region.len(), region.end()), (0x2_0000, 0x7a02_0000));
        assert_eq!(region.to_string(), "RMRR at DMAR offset 0x40 (0x7a000000-0x7a01ffff)");
    }

    #[test]
    fn identity_mappings_must_not_collide_with_the_domains_ram() {
        let region = ReservedRegion {
            offset: 0x40,
            base: 0x8_0000,
            limit: 0x8_1fff,
        };
        // A domain with RAM at 1 MiB and above fits.
        assert_eq!(check_identity_fits([region], [(0x10_0000, 0x100_0000)]), Ok(()));
        // Ending exactly at the region, or starting just past it, fits.
        assert_eq!(
            check_identity_fits([region], [(0, 0x8_0000), (0x8_2000, 0x1000)]),
            Ok(())
        );
        // RAM from 0 (every real guest) covers it.
        let conflict = check_identity_fits([region], [(0x10_0000, 0x1000), (0, 0xa_0000)]).unwrap_err();
        assert_eq!((conflict.guest_start, conflict.guest_end), (0, 0xa_0000));
        assert_eq!(conflict.region, region);
        assert_eq!(
            conflict.to_string(),
            "the device needs its RMRR at DMAR offset 0x40 (0x80000-0x81fff) identity-mapped, but the domain's RAM \
             is at guest-physical 0x0-0x9ffff (strict RMRR policy: the assignment is refused)"
        );
        // One page of overlap is enough; empty ranges never collide.
        assert!(check_identity_fits([region], [(0x8_1000, 0x1000)]).is_err());
        assert_eq!(check_identity_fits([region], [(0x8_0000, 0)]), Ok(()));
        assert_eq!(check_identity_fits([], [(0, u64::MAX)]), Ok(()));
        assert!(
            check_identity_fits([region], [(0, u64::MAX)]).is_err(),
            "no overflow at the top"
        );
    }

    #[test]
    fn shared_ranges_merge() {
        let mut ranges = [
            (0x8_2000, 0x8_3000),
            (0x8_0000, 0x8_2000),
            (0x7a00_0000, 0x7a02_0000),
            (0x8_0000, 0x8_1000),
            (0x5000, 0x5000),
            (0x7a01_0000, 0x7a03_0000),
        ];
        let kept = merge_ranges(&mut ranges);
        assert_eq!(&ranges[..kept], [(0x8_0000, 0x8_3000), (0x7a00_0000, 0x7a03_0000)]);
        assert_eq!(merge_ranges(&mut []), 0);
    }
}

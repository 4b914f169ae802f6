//! Placement checks and checked writes to guest memory.

use keel_memory::{GuestMemory, GuestMemoryRead, GuestPhysAddr};

use crate::error::{GuestRegion, LoadError, RegionKind};

/// Size of the pages the loader aligns its structures to.
pub const PAGE_SIZE: u64 = 4096;

/// Fails unless `region` lies entirely inside the first `ram_bytes` bytes
/// (the RAM the memory layout declares).
pub(crate) fn check_in_ram(region: GuestRegion, ram_bytes: u64) -> Result<(), LoadError> {
    if region.end > ram_bytes {
        return Err(LoadError::OutOfRange { region, ram_bytes });
    }
    Ok(())
}

/// Fails unless every byte of `region` is guest RAM in `memory`, so that
/// writing it later cannot fail half way.
pub(crate) fn check_backed<M: GuestMemoryRead + ?Sized>(memory: &M, region: GuestRegion) -> Result<(), LoadError> {
    memory
        .check_ram(GuestPhysAddr::new(region.start), region.len())
        .map_err(|error| LoadError::NotBacked { region, error })
}

/// Copies `bytes` to guest-physical `gpa`.
pub(crate) fn write_guest<M: GuestMemory + ?Sized>(
    memory: &mut M,
    kind: RegionKind,
    gpa: u64,
    bytes: &[u8],
) -> Result<(), LoadError> {
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    let region = GuestRegion::new(kind, gpa, len)?;
    memory
        .write(GuestPhysAddr::new(gpa), bytes)
        .map_err(|error| LoadError::NotBacked { region, error })
}

/// Fails unless `address` is a multiple of `alignment` (a power of two).
pub(crate) fn check_aligned(kind: RegionKind, address: u64, alignment: u64) -> Result<(), LoadError> {
    if alignment == 0 || !address.is_multiple_of(alignment) {
        return Err(LoadError::Misaligned {
            kind,
            address,
            alignment,
        });
    }
    Ok(())
}

/// Rounds `value` up to a multiple of the power of two `alignment`, or `None`
/// if that overflows.
pub(crate) fn align_up(value: u64, alignment: u64) -> Option<u64> {
    let mask = alignment.checked_sub(1)?;
    value.checked_add(mask).map(|v| v & !mask)
}

/// Rounds `value` down to a multiple of the power of two `alignment`.
pub(crate) fn align_down(value: u64, alignment: u64) -> u64 {
    value & !alignment.saturating_sub(1)
}

/// Fails with `Overlap` if any two of `regions` share a byte.
pub(crate) fn check_disjoint(regions: &[GuestRegion]) -> Result<(), LoadError> {
    for (index, first) in regions.iter().enumerate() {
        for second in regions.iter().skip(index.saturating_add(1)) {
            if first.overlaps(second) {
                return Err(LoadError::Overlap {
                    first: *first,
                    second: *second,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use keel_memory::test_support::ArenaMemory;
    use keel_memory::{GuestMemoryError, GuestMemoryMap, MemoryKind};

    #[test]
    fn write_guest_rejects_ranges_past_the_end() {
        let mut ram = vec![0u8; 16];
        assert_eq!(write_guest(&mut ram, RegionKind::Gdt, 12, &[1, 2, 3, 4]), Ok(()));
        assert_eq!(&ram[12..], &[1, 2, 3, 4]);
        let err = write_guest(&mut ram, RegionKind::Gdt, 13, &[1, 2, 3, 4]);
        assert!(matches!(
            err,
            Err(LoadError::NotBacked { region, error: GuestMemoryError::Unmapped { gpa } })
                if region.start == 13 && region.end == 17 && gpa.as_u64() == 16
        ));
    }

    #[test]
    fn write_guest_rejects_wrapping_addresses() {
        let mut ram = vec![0u8; 16];
        let err = write_guest(&mut ram, RegionKind::Gdt, u64::MAX, &[1, 2]);
        assert!(matches!(err, Err(LoadError::AddressOverflow { .. })));
    }

    #[test]
    fn writes_cross_ram_regions_but_not_into_holes() {
        let mut memory = GuestMemoryMap::new(ArenaMemory::new());
        memory.add_arena_ram(GuestPhysAddr::new(0), 0x1000).unwrap();
        memory.add_arena_ram(GuestPhysAddr::new(0x1000), 0x1000).unwrap();
        memory.add_mmio(GuestPhysAddr::new(0x2000), 0x1000).unwrap();
        assert_eq!(write_guest(&mut memory, RegionKind::Gdt, 0xFF0, &[7; 32]), Ok(()));
        assert_eq!(memory.read_u64(GuestPhysAddr::new(0xFF8)), Ok(0x0707_0707_0707_0707));
        let region = GuestRegion::new(RegionKind::Kernel, 0x1800, 0x1000).unwrap();
        let not_ram = LoadError::NotBacked {
            region,
            error: GuestMemoryError::NotRam {
                gpa: GuestPhysAddr::new(0x2000),
                kind: MemoryKind::Mmio,
            },
        };
        assert_eq!(check_backed(&memory, region), Err(not_ram));
        assert_eq!(
            write_guest(&mut memory, RegionKind::Kernel, 0x1800, &[1; 0x1000]),
            Err(not_ram)
        );
        assert_eq!(memory.read_u8(GuestPhysAddr::new(0x1800)), Ok(0), "nothing written");
        assert_eq!(
            not_ram.to_string(),
            "kernel [0x1800, 0x2800) is not backed by guest RAM: guest-physical 0x2000 is emulated MMIO, not RAM"
        );
    }

    #[test]
    fn alignment_helpers_round_to_powers_of_two() {
        assert_eq!(align_up(0x1001, 0x1000), Some(0x2000));
        assert_eq!(align_up(0x2000, 0x1000), Some(0x2000));
        assert_eq!(align_up(u64::MAX, 0x1000), None);
        assert_eq!(align_down(0x1FFF, 0x1000), 0x1000);
        assert!(check_aligned(RegionKind::PageTables, 0x3000, 0x1000).is_ok());
        assert!(check_aligned(RegionKind::PageTables, 0x3008, 0x1000).is_err());
    }

    #[test]
    fn disjoint_check_names_both_regions() {
        let a = GuestRegion::new(RegionKind::Kernel, 0x1000, 0x1000).unwrap();
        let b = GuestRegion::new(RegionKind::Initrd, 0x2000, 0x1000).unwrap();
        let c = GuestRegion::new(RegionKind::Gdt, 0x1FF8, 0x20).unwrap();
        assert_eq!(check_disjoint(&[a, b]), Ok(()));
        assert_eq!(
            check_disjoint(&[a, b, c]),
            Err(LoadError::Overlap { first: a, second: c })
        );
    }
}

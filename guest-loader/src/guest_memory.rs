//! Bounds-checked access to guest RAM, where the byte index is the
//! guest-physical address.

use crate::error::{GuestRegion, LoadError, RegionKind};

/// Size of the pages the loader aligns its structures to.
pub const PAGE_SIZE: u64 = 4096;

/// Length of the host buffer as a guest-physical size.
pub(crate) fn buffer_len(ram: &[u8]) -> u64 {
    // usize is at most 64 bits on every target this crate supports.
    u64::try_from(ram.len()).unwrap_or(u64::MAX)
}

/// Fails unless `region` lies entirely inside the first `ram_bytes` bytes.
pub(crate) fn check_in_ram(region: GuestRegion, ram_bytes: u64) -> Result<(), LoadError> {
    if region.end > ram_bytes {
        return Err(LoadError::OutOfRange { region, ram_bytes });
    }
    Ok(())
}

/// The host bytes backing `region`.
pub(crate) fn guest_bytes_mut(ram: &mut [u8], region: GuestRegion) -> Result<&mut [u8], LoadError> {
    let ram_bytes = buffer_len(ram);
    let out_of_range = LoadError::OutOfRange { region, ram_bytes };
    let start = usize::try_from(region.start).map_err(|_| out_of_range)?;
    let end = usize::try_from(region.end).map_err(|_| out_of_range)?;
    ram.get_mut(start..end).ok_or(out_of_range)
}

/// Copies `bytes` to guest-physical `gpa`.
pub(crate) fn write_guest(ram: &mut [u8], kind: RegionKind, gpa: u64, bytes: &[u8]) -> Result<(), LoadError> {
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    let region = GuestRegion::new(kind, gpa, len)?;
    guest_bytes_mut(ram, region)?.copy_from_slice(bytes);
    Ok(())
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

    #[test]
    fn write_guest_rejects_ranges_past_the_end() {
        let mut ram = [0u8; 16];
        assert_eq!(write_guest(&mut ram, RegionKind::Gdt, 12, &[1, 2, 3, 4]), Ok(()));
        assert_eq!(&ram[12..], &[1, 2, 3, 4]);
        let err = write_guest(&mut ram, RegionKind::Gdt, 13, &[1, 2, 3, 4]);
        assert!(matches!(
            err,
            Err(LoadError::OutOfRange { region, ram_bytes: 16 }) if region.start == 13 && region.end == 17
        ));
    }

    #[test]
    fn write_guest_rejects_wrapping_addresses() {
        let mut ram = [0u8; 16];
        let err = write_guest(&mut ram, RegionKind::Gdt, u64::MAX, &[1, 2]);
        assert!(matches!(err, Err(LoadError::AddressOverflow { .. })));
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

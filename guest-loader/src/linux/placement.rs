//! Choosing where the kernel and initrd go in guest-physical memory.

use crate::boot_params::GuestMemoryLayout;
use crate::bzimage::BzImage;
use crate::error::{GuestRegion, LoadError, RegionKind};
use crate::guest_memory::{align_down, align_up, PAGE_SIZE};

/// Where a kernel without a preferred address goes: Linux's default
/// CONFIG_PHYSICAL_START, clear of low memory and the ISA DMA zone.
pub const DEFAULT_KERNEL_LOAD_GPA: u64 = 16 << 20;

/// The initrd stays above 1 MiB: the kernel needs low memory for its
/// real-mode trampoline and the legacy BIOS area lives there.
pub const INITRD_MIN_GPA: u64 = 1 << 20;

pub const FOUR_GIB: u64 = 1 << 32;

/// The kernel's whole footprint: its load address and `init_size` bytes
/// (or the image size, if larger) that it uses while decompressing.
pub fn kernel_region(image: &BzImage<'_>, ram_bytes: u64) -> Result<GuestRegion, LoadError> {
    let preferred = match image.pref_address {
        0 => DEFAULT_KERNEL_LOAD_GPA,
        address => address,
    };
    let does_not_fit = LoadError::KernelDoesNotFit {
        need: u64::MAX,
        have: ram_bytes,
    };
    // A non-relocatable kernel runs at pref_address no matter what, so only
    // a relocatable one may be moved to satisfy its alignment.
    let load = if image.relocatable_kernel {
        align_up(preferred, u64::from(image.kernel_alignment)).ok_or(does_not_fit)?
    } else {
        preferred
    };
    let image_len = u64::try_from(image.protected_mode_kernel().len()).unwrap_or(u64::MAX);
    let footprint = u64::from(image.init_size).max(image_len);
    let need = load.checked_add(footprint).ok_or(does_not_fit)?;
    if need > ram_bytes {
        return Err(LoadError::KernelDoesNotFit { need, have: ram_bytes });
    }
    GuestRegion::new(RegionKind::Kernel, load, footprint)
}

/// Fails if `region` ends above 4 GiB for a kernel that cannot take it there.
pub fn check_below_4g(image: &BzImage<'_>, region: GuestRegion) -> Result<(), LoadError> {
    if !image.can_be_loaded_above_4g() && region.end > FOUR_GIB {
        return Err(LoadError::AboveFourGiB { region });
    }
    Ok(())
}

/// Places an initrd of `size` bytes as high as possible, page-aligned, clear
/// of `occupied` and the layout's reserved ranges. It prefers to stay below
/// `initrd_addr_max`; a kernel that takes an initrd above 4 GiB may have it
/// anywhere in RAM when that is the only room left.
pub fn place_initrd(
    image: &BzImage<'_>,
    memory: &GuestMemoryLayout<'_>,
    occupied: &[GuestRegion],
    size: u64,
) -> Result<GuestRegion, LoadError> {
    let addressable = u64::from(image.initrd_addr_max).saturating_add(1);
    let preferred_limit = memory.ram_bytes.min(addressable);
    let below_max = highest_free(memory, occupied, size, preferred_limit);
    if below_max.is_ok() || !image.can_be_loaded_above_4g() {
        return below_max;
    }
    highest_free(memory, occupied, size, memory.ram_bytes)
}

/// Top-down search: whenever the candidate hits an obstacle, the next
/// candidate ends below that obstacle's start. Candidates only move down, so
/// each obstacle is hit at most once and the loop is bounded.
fn highest_free(
    memory: &GuestMemoryLayout<'_>,
    occupied: &[GuestRegion],
    size: u64,
    limit: u64,
) -> Result<GuestRegion, LoadError> {
    let does_not_fit = LoadError::InitrdDoesNotFit { size, limit };
    let reserved = || memory.reserved.iter().filter_map(|range| range.region().ok());
    let obstacle_count = occupied.len().saturating_add(memory.reserved.len());
    let mut top = limit;
    for _ in 0..=obstacle_count {
        let start = align_down(top.checked_sub(size).ok_or(does_not_fit)?, PAGE_SIZE);
        if start < INITRD_MIN_GPA {
            return Err(does_not_fit);
        }
        let candidate = GuestRegion::new(RegionKind::Initrd, start, size)?;
        let conflict = occupied
            .iter()
            .copied()
            .chain(reserved())
            .find(|obstacle| obstacle.overlaps(&candidate));
        match conflict {
            None => return Ok(candidate),
            Some(obstacle) => top = obstacle.start,
        }
    }
    Err(does_not_fit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_params::{E820Type, ReservedRange, LEGACY_HOLE};
    use crate::bzimage::header::{INITRD_ADDR_MAX, XLF_KERNEL_64, XLOADFLAGS};
    use crate::test_image::SyntheticImage;

    const MIB: u64 = 1 << 20;

    fn region(kind: RegionKind, start: u64, len: u64) -> GuestRegion {
        GuestRegion::new(kind, start, len).unwrap()
    }

    #[test]
    fn initrd_skips_past_every_obstacle_from_the_top() {
        let image = SyntheticImage::new();
        let parsed = BzImage::parse(&image.bytes).unwrap();
        let acpi = ReservedRange {
            start: 63 * MIB,
            size: MIB,
            kind: E820Type::Acpi,
        };
        let reserved = [LEGACY_HOLE, acpi];
        let memory = GuestMemoryLayout {
            ram_bytes: 64 * MIB,
            reserved: &reserved,
        };
        let occupied = [
            region(RegionKind::Kernel, 16 * MIB, 40 * MIB),
            region(RegionKind::ZeroPage, 63 * MIB - 0x1000, 0x1000),
        ];
        // ACPI region, then the zero page push it down; it stays page aligned.
        let small = place_initrd(&parsed, &memory, &occupied, 0x1800).unwrap();
        assert_eq!(small, region(RegionKind::Initrd, 63 * MIB - 0x3000, 0x1800));

        // Too big for the gap above the kernel: falls into the gap below it.
        let below_kernel = place_initrd(&parsed, &memory, &occupied, 10 * MIB).unwrap();
        assert_eq!(below_kernel, region(RegionKind::Initrd, 6 * MIB, 10 * MIB));
        let filling_the_gap = place_initrd(&parsed, &memory, &occupied, 15 * MIB).unwrap();
        assert_eq!(filling_the_gap, region(RegionKind::Initrd, MIB, 15 * MIB));

        assert_eq!(
            place_initrd(&parsed, &memory, &occupied, 15 * MIB + 1),
            Err(LoadError::InitrdDoesNotFit {
                size: 15 * MIB + 1,
                limit: 64 * MIB
            })
        );
    }

    #[test]
    fn initrd_prefers_initrd_addr_max_and_falls_back_above_it() {
        let mut image = SyntheticImage::new();
        image.set_u32(INITRD_ADDR_MAX, (32 * MIB - 1) as u32);
        let parsed = BzImage::parse(&image.bytes).unwrap();
        let memory = GuestMemoryLayout {
            ram_bytes: 64 * MIB,
            reserved: &[],
        };
        let kernel = [region(RegionKind::Kernel, 16 * MIB, 8 * MIB)];
        let small = place_initrd(&parsed, &memory, &kernel, MIB).unwrap();
        assert_eq!(small.end, 32 * MIB);
        let large = place_initrd(&parsed, &memory, &kernel, 20 * MIB).unwrap();
        assert_eq!(large, region(RegionKind::Initrd, 44 * MIB, 20 * MIB));

        // Without XLF_CAN_BE_LOADED_ABOVE_4G initrd_addr_max is a hard limit.
        image.set_u16(XLOADFLAGS, XLF_KERNEL_64);
        let strict = BzImage::parse(&image.bytes).unwrap();
        assert_eq!(
            place_initrd(&strict, &memory, &kernel, 20 * MIB),
            Err(LoadError::InitrdDoesNotFit {
                size: 20 * MIB,
                limit: 32 * MIB
            })
        );
    }

    #[test]
    fn initrd_never_goes_below_one_mib() {
        let image = SyntheticImage::new();
        let parsed = BzImage::parse(&image.bytes).unwrap();
        let memory = GuestMemoryLayout {
            ram_bytes: 4 * MIB,
            reserved: &[],
        };
        assert!(place_initrd(&parsed, &memory, &[], 3 * MIB).is_ok());
        assert!(place_initrd(&parsed, &memory, &[], 3 * MIB + 1).is_err());
        assert!(place_initrd(&parsed, &memory, &[], u64::MAX).is_err());
    }

    #[test]
    fn structures_above_4_gib_need_the_xloadflag() {
        let mut image = SyntheticImage::new();
        let high = region(RegionKind::ZeroPage, FOUR_GIB, 0x1000);
        let low = region(RegionKind::ZeroPage, FOUR_GIB - 0x1000, 0x1000);
        let capable = BzImage::parse(&image.bytes).unwrap();
        assert_eq!(check_below_4g(&capable, high), Ok(()));
        image.set_u16(XLOADFLAGS, XLF_KERNEL_64);
        let limited = BzImage::parse(&image.bytes).unwrap();
        assert_eq!(check_below_4g(&limited, low), Ok(()));
        assert_eq!(
            check_below_4g(&limited, high),
            Err(LoadError::AboveFourGiB { region: high })
        );
    }
}

use super::{AccessKind, PagingState, WalkError};
use keel_memory::{GuestMemoryRead, GuestPhysAddr};

/// The architectural limit on x86 instruction length.
pub const MAX_INSTRUCTION_LEN: usize = 15;

/// Paging works on at least 4 KiB granules; a larger page only means both
/// halves translate through the same leaf, so 4 KiB steps are always correct.
const PAGE_GRANULE: u64 = super::entry::SMALL_PAGE_SIZE;

/// Fetches up to [`MAX_INSTRUCTION_LEN`] instruction bytes at `linear_ip`
/// (CS base + RIP; the base is zero in 64-bit mode) into `buf`.
///
/// The bytes may straddle a page boundary into a frame unrelated to the
/// first, so each page is translated separately. Returns how many leading
/// bytes of `buf` are valid. A failure on the *second* page is not an error:
/// the instruction may well end before it, and the CPU fetched it without
/// faulting. If it did need those bytes, the decoder reports it as truncated.
pub fn fetch_instruction<M: GuestMemoryRead + ?Sized>(
    mem: &M,
    paging: &PagingState,
    linear_ip: u64,
    buf: &mut [u8; MAX_INSTRUCTION_LEN],
) -> Result<usize, WalkError> {
    let bytes_left_in_page = PAGE_GRANULE - (linear_ip % PAGE_GRANULE);
    let first_len =
        usize::try_from(bytes_left_in_page).map_or(MAX_INSTRUCTION_LEN, |left| left.min(MAX_INSTRUCTION_LEN));
    // `first_len <= MAX_INSTRUCTION_LEN == buf.len()`, so the split cannot fail.
    let (first_page, second_page) = buf.split_at_mut(first_len);
    read_linear(mem, paging, linear_ip, first_page)?;
    if second_page.is_empty() {
        return Ok(first_len);
    }
    // Wrapping mirrors the CPU: linear addresses wrap at the top of the space.
    let second_linear = linear_ip.wrapping_add(bytes_left_in_page);
    match read_linear(mem, paging, second_linear, second_page) {
        Ok(()) => Ok(MAX_INSTRUCTION_LEN),
        Err(_) => Ok(first_len),
    }
}

/// Reads `buf.len()` bytes that all lie within one page starting at `linear`.
fn read_linear<M: GuestMemoryRead + ?Sized>(
    mem: &M,
    paging: &PagingState,
    linear: u64,
    buf: &mut [u8],
) -> Result<(), WalkError> {
    let gpa = paging.translate(mem, linear, AccessKind::Execute)?;
    mem.read(GuestPhysAddr::new(gpa), buf)
        .map_err(|_| WalkError::InstructionUnreadable { gpa })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walk::test_memory::*;

    const PML4: u64 = 0x1000;
    const PDPT: u64 = 0x2000;
    const PD: u64 = 0x3000;
    const PT: u64 = 0x4000;

    fn long_mode() -> PagingState {
        PagingState::new(LONG_MODE_CR0, PML4, LONG_MODE_CR4, LONG_MODE_EFER)
    }

    /// Maps the two 4 KiB pages at `linear_page` and the page after it to the
    /// given frames; all four indices above the PT are shared.
    fn map_pages(mem: &mut FakeMemory, linear_page: u64, frames: &[u64]) {
        let [l4, l3, l2, l1] = indices(linear_page);
        mem.set_entry(PML4, l4, PDPT | P | RW);
        mem.set_entry(PDPT, l3, PD | P | RW);
        mem.set_entry(PD, l2, PT | P | RW);
        for (page, frame) in (l1..).zip(frames) {
            mem.set_entry(PT, page, frame | P);
        }
    }

    const INSTRUCTION: [u8; 7] = [0x48, 0xC7, 0x00, 0xFF, 0xFF, 0xFF, 0xFF];

    #[test]
    fn fetches_fifteen_bytes_within_one_page() {
        let mut mem = FakeMemory::default();
        map_pages(&mut mem, 0x40_0000, &[0x9000]);
        mem.write_bytes(0x9100, &[0xAA; 15]);
        let mut buf = [0; MAX_INSTRUCTION_LEN];
        assert_eq!(fetch_instruction(&mem, &long_mode(), 0x40_0100, &mut buf), Ok(15));
        assert_eq!(buf, [0xAA; 15]);
    }

    #[test]
    fn instruction_straddling_pages_reads_both_non_contiguous_frames() {
        let mut mem = FakeMemory::default();
        // The second page is deliberately mapped *below* the first.
        map_pages(&mut mem, 0x40_0000, &[0x9000, 0x6000]);
        let (head, tail) = INSTRUCTION.split_at(3);
        mem.write_bytes(0x9FFD, head);
        mem.write_bytes(0x6000, tail);
        mem.write_bytes(0x6000 + tail.len() as u64, &[0x90; 8]);
        let mut buf = [0; MAX_INSTRUCTION_LEN];
        assert_eq!(fetch_instruction(&mem, &long_mode(), 0x40_0FFD, &mut buf), Ok(15));
        assert_eq!(buf[..7], INSTRUCTION);
        assert_eq!(buf[7..], [0x90; 8]);
    }

    #[test]
    fn unmapped_second_page_yields_only_the_first_pages_bytes() {
        let mut mem = FakeMemory::default();
        map_pages(&mut mem, 0x40_0000, &[0x9000]);
        mem.write_bytes(0x9FF8, &[0x89, 0x08, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90]);
        let mut buf = [0; MAX_INSTRUCTION_LEN];
        assert_eq!(fetch_instruction(&mem, &long_mode(), 0x40_0FF8, &mut buf), Ok(8));
        assert_eq!(buf[..2], [0x89, 0x08]);
    }

    #[test]
    fn unmapped_first_page_is_an_error() {
        let mut mem = FakeMemory::default();
        map_pages(&mut mem, 0x40_0000, &[]);
        mem.set_entry(PT, indices(0x40_0000)[3], 0x9000); // present bit clear
        let mut buf = [0; MAX_INSTRUCTION_LEN];
        assert!(matches!(
            fetch_instruction(&mem, &long_mode(), 0x40_0000, &mut buf),
            Err(WalkError::NotPresent { .. })
        ));
    }

    #[test]
    fn frame_outside_guest_ram_is_reported() {
        let mut mem = FakeMemory::default();
        map_pages(&mut mem, 0x40_0000, &[0xFEC0_0000]);
        let mut buf = [0; MAX_INSTRUCTION_LEN];
        assert_eq!(
            fetch_instruction(&mem, &long_mode(), 0x40_0010, &mut buf),
            Err(WalkError::InstructionUnreadable { gpa: 0xFEC0_0010 })
        );
    }

    #[test]
    fn paging_disabled_fetches_physical_bytes() {
        let mut mem = FakeMemory::default();
        mem.write_bytes(0x7C00, &[0xC6, 0x07, 0x05]);
        mem.write_bytes(0x7C03, &[0; 12]);
        let mut buf = [0; MAX_INSTRUCTION_LEN];
        let flat = PagingState::new(0, 0, 0, 0);
        assert_eq!(fetch_instruction(&mem, &flat, 0x7C00, &mut buf), Ok(15));
        assert_eq!(buf[..3], [0xC6, 0x07, 0x05]);
    }

    mod region_map {
        use keel_memory::test_support::ArenaMemory;
        use keel_memory::{GuestMemory, GuestMemoryMap};

        use super::*;
        use crate::mmio::{decode_mmio, CodeBitness, DecodeError};

        fn gpa(raw: u64) -> GuestPhysAddr {
            GuestPhysAddr::new(raw)
        }

        /// RAM [0, 0x10000) as two host blocks split at 0x8000, a hole at
        /// [0x10000, 0x11000), an MMIO page at 0x11000.
        fn memory() -> GuestMemoryMap<ArenaMemory> {
            let mut mem = GuestMemoryMap::new(ArenaMemory::new());
            mem.add_arena_ram(gpa(0), 0x8000).unwrap();
            mem.add_arena_ram(gpa(0x8000), 0x8000).unwrap();
            mem.add_reserved(gpa(0x1_0000), 0x1000).unwrap();
            mem.add_mmio(gpa(0x1_1000), 0x1000).unwrap();
            mem
        }

        const FLAT: PagingState = PagingState::new(0, 0, 0, 0);

        #[test]
        fn fetch_crossing_into_a_hole_returns_what_precedes_it() {
            let mut mem = memory();
            // `mov qword [rax], -1` cut after 4 of its 7 bytes by the hole.
            mem.write(gpa(0xFFFC), &INSTRUCTION[..4]).unwrap();
            let mut buf = [0; MAX_INSTRUCTION_LEN];
            assert_eq!(fetch_instruction(&mem, &FLAT, 0xFFFC, &mut buf), Ok(4));
            assert_eq!(buf[..4], INSTRUCTION[..4]);
            assert_eq!(decode_mmio(&buf[..4], CodeBitness::Bits64), Err(DecodeError::Truncated));
        }

        #[test]
        fn fetch_from_a_hole_or_device_memory_is_an_error() {
            let mem = memory();
            let mut buf = [0; MAX_INSTRUCTION_LEN];
            assert_eq!(
                fetch_instruction(&mem, &FLAT, 0x1_0010, &mut buf),
                Err(WalkError::InstructionUnreadable { gpa: 0x1_0010 })
            );
            assert_eq!(
                fetch_instruction(&mem, &FLAT, 0x1_1000, &mut buf),
                Err(WalkError::InstructionUnreadable { gpa: 0x1_1000 })
            );
        }

        #[test]
        fn fetch_spans_ram_regions_in_different_host_blocks() {
            let mut mem = memory();
            mem.write(gpa(0x7FFD), &INSTRUCTION).unwrap();
            let mut buf = [0; MAX_INSTRUCTION_LEN];
            assert_eq!(fetch_instruction(&mem, &FLAT, 0x7FFD, &mut buf), Ok(15));
            assert_eq!(buf[..7], INSTRUCTION);
        }

        #[test]
        fn page_walk_reads_tables_through_the_map() {
            let mut mem = memory();
            // Tables on both sides of the host-block split; the code page
            // maps to guest-physical 0xA000.
            let (pml4, pdpt, pd, pt) = (0x1000, 0x7000, 0x9000, 0xC000);
            let [l4, l3, l2, l1] = indices(0x40_0000);
            mem.write_u64(gpa(pml4 + l4 * 8), pdpt | P | RW).unwrap();
            mem.write_u64(gpa(pdpt + l3 * 8), pd | P | RW).unwrap();
            mem.write_u64(gpa(pd + l2 * 8), pt | P | RW).unwrap();
            mem.write_u64(gpa(pt + l1 * 8), 0xA000 | P).unwrap();
            mem.write(gpa(0xA010), &INSTRUCTION).unwrap();
            let paging = PagingState::new(LONG_MODE_CR0, pml4, LONG_MODE_CR4, LONG_MODE_EFER);
            let mut buf = [0; MAX_INSTRUCTION_LEN];
            assert_eq!(fetch_instruction(&mem, &paging, 0x40_0010, &mut buf), Ok(15));
            assert_eq!(buf[..7], INSTRUCTION);

            // A page table pointed into device memory cannot be read.
            mem.write_u64(gpa(pd + l2 * 8), 0x1_1000 | P | RW).unwrap();
            assert_eq!(
                paging.translate(&mem, 0x40_0010, AccessKind::Execute),
                Err(WalkError::TableUnreadable {
                    linear: 0x40_0010,
                    entry_gpa: 0x1_1000 + l1 * 8
                })
            );
        }
    }
}

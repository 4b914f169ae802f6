use super::{AccessKind, PagingState, WalkError};
use crate::GuestMemoryRead;

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
pub fn fetch_instruction(
    mem: &impl GuestMemoryRead,
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
fn read_linear(mem: &impl GuestMemoryRead, paging: &PagingState, linear: u64, buf: &mut [u8]) -> Result<(), WalkError> {
    let gpa = paging.translate(mem, linear, AccessKind::Execute)?;
    mem.read_bytes(gpa, buf).ok_or(WalkError::InstructionUnreadable { gpa })
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
}

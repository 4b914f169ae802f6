use super::*;
use crate::walk::test_memory::*;

const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
const PT: u64 = 0x4000;

fn long_mode() -> PagingState {
    PagingState::new(LONG_MODE_CR0, PML4, LONG_MODE_CR4, LONG_MODE_EFER)
}

/// Maps `linear` down to the PD level; the caller supplies the last entries.
fn map_upper_levels(mem: &mut FakeMemory, linear: u64) {
    let [l4, l3, _, _] = indices(linear);
    mem.set_entry(PML4, l4, PDPT | P | RW);
    mem.set_entry(PDPT, l3, PD | P | RW);
}

fn map_4k(mem: &mut FakeMemory, linear: u64, frame: u64, flags: u64) {
    map_upper_levels(mem, linear);
    let [_, _, l2, l1] = indices(linear);
    mem.set_entry(PD, l2, PT | P | RW);
    mem.set_entry(PT, l1, frame | flags);
}

#[test]
fn translates_4k_page_and_keeps_offset() {
    let mut mem = FakeMemory::default();
    let linear = 0xFFFF_FFFF_8100_0ABC;
    map_4k(&mut mem, linear, 0x0076_5000, P | RW);
    assert_eq!(long_mode().translate(&mem, linear, AccessKind::Read), Ok(0x0076_5ABC));
}

#[test]
fn translates_2m_page_ignoring_pat_bit() {
    let mut mem = FakeMemory::default();
    let linear = 0x0000_0000_4012_3456;
    map_upper_levels(&mut mem, linear);
    let pat = 1 << 12;
    mem.set_entry(PD, indices(linear)[2], 0x0A00_0000 | pat | PS | P | RW);
    assert_eq!(long_mode().translate(&mem, linear, AccessKind::Read), Ok(0x0A12_3456));
}

#[test]
fn translates_1g_page() {
    let mut mem = FakeMemory::default();
    let linear = 0x0000_0040_1234_5678;
    mem.set_entry(PML4, indices(linear)[0], PDPT | P | RW);
    mem.set_entry(PDPT, indices(linear)[1], 0x0000_0001_C000_0000 | PS | P);
    assert_eq!(
        long_mode().translate(&mem, linear, AccessKind::Read),
        Ok(0x0000_0001_D234_5678)
    );
}

#[test]
fn free_function_matches_paging_state() {
    let mut mem = FakeMemory::default();
    let linear = 0x7000;
    map_4k(&mut mem, linear, 0x9000, P);
    let result = translate(
        &mem,
        LONG_MODE_CR0,
        PML4,
        LONG_MODE_CR4,
        LONG_MODE_EFER,
        linear + 4,
        AccessKind::Read,
    );
    assert_eq!(result, Ok(0x9004));
}

#[test]
fn reports_level_of_not_present_entry() {
    let mut mem = FakeMemory::default();
    let linear = 0x0000_0000_4012_3000;
    map_upper_levels(&mut mem, linear);
    mem.set_entry(PD, indices(linear)[2], PT | RW); // present bit clear
    assert_eq!(
        long_mode().translate(&mem, linear, AccessKind::Read),
        Err(WalkError::NotPresent {
            linear,
            level: PagingLevel::PageDirectory
        })
    );
}

#[test]
fn missing_table_memory_is_an_error_not_a_zero_entry() {
    let mem = FakeMemory::default();
    assert_eq!(
        long_mode().translate(&mem, 0x1000, AccessKind::Read),
        Err(WalkError::TableUnreadable {
            linear: 0x1000,
            entry_gpa: PML4
        })
    );
}

#[test]
fn rejects_page_size_bit_in_pml4_entry() {
    let mut mem = FakeMemory::default();
    mem.set_entry(PML4, 0, PDPT | PS | P);
    assert!(matches!(
        long_mode().translate(&mem, 0x1000, AccessKind::Read),
        Err(WalkError::ReservedBitSet {
            level: PagingLevel::Pml4,
            ..
        })
    ));
}

#[test]
fn rejects_misaligned_2m_frame_bits() {
    let mut mem = FakeMemory::default();
    let linear = 0x20_0000;
    map_upper_levels(&mut mem, linear);
    mem.set_entry(PD, indices(linear)[2], 0x0A00_0000 | (1 << 13) | PS | P);
    assert!(matches!(
        long_mode().translate(&mem, linear, AccessKind::Read),
        Err(WalkError::ReservedBitSet {
            level: PagingLevel::PageDirectory,
            ..
        })
    ));
}

#[test]
fn rejects_misaligned_1g_frame_bits() {
    let mut mem = FakeMemory::default();
    mem.set_entry(PML4, 0, PDPT | P);
    mem.set_entry(PDPT, 0, 0x4000_0000 | (1 << 21) | PS | P);
    assert!(matches!(
        long_mode().translate(&mem, 0x1000, AccessKind::Read),
        Err(WalkError::ReservedBitSet {
            level: PagingLevel::Pdpt,
            ..
        })
    ));
}

#[test]
fn execute_disable_bit_is_reserved_without_efer_nxe() {
    let mut mem = FakeMemory::default();
    map_4k(&mut mem, 0x5000, 0x8000, P | XD);
    let without_nx = PagingState {
        efer: LONG_MODE_EFER & !(1 << 11),
        ..long_mode()
    };
    assert!(matches!(
        without_nx.translate(&mem, 0x5000, AccessKind::Read),
        Err(WalkError::ReservedBitSet {
            level: PagingLevel::PageTable,
            ..
        })
    ));
}

#[test]
fn address_bits_above_guest_maxphyaddr_are_reserved() {
    let mut mem = FakeMemory::default();
    map_4k(&mut mem, 0x5000, 0x0000_0100_0000_0000, P); // bit 40
    let state = long_mode();
    assert_eq!(
        state.translate(&mem, 0x5000, AccessKind::Read),
        Ok(0x0000_0100_0000_0000)
    );
    assert!(matches!(
        state
            .with_max_phys_addr_bits(39)
            .translate(&mem, 0x5000, AccessKind::Read),
        Err(WalkError::ReservedBitSet { .. })
    ));
}

#[test]
fn write_to_read_only_page_faults_only_with_cr0_wp() {
    let mut mem = FakeMemory::default();
    map_4k(&mut mem, 0x5000, 0x8000, P); // no RW
    assert_eq!(
        long_mode().translate(&mem, 0x5000, AccessKind::Write),
        Err(WalkError::WriteProtected { linear: 0x5000 })
    );
    let without_wp = PagingState {
        cr0: LONG_MODE_CR0 & !(1 << 16),
        ..long_mode()
    };
    assert_eq!(without_wp.translate(&mem, 0x5000, AccessKind::Write), Ok(0x8000));
}

#[test]
fn execute_from_xd_page_faults_but_read_succeeds() {
    let mut mem = FakeMemory::default();
    map_4k(&mut mem, 0x5000, 0x8000, P | XD);
    assert_eq!(
        long_mode().translate(&mem, 0x5000, AccessKind::Execute),
        Err(WalkError::ExecuteDisabled { linear: 0x5000 })
    );
    assert_eq!(long_mode().translate(&mem, 0x5000, AccessKind::Read), Ok(0x8000));
}

#[test]
fn rejects_non_canonical_address() {
    let mem = FakeMemory::default();
    let linear = 0x0000_8000_0000_0000;
    assert_eq!(
        long_mode().translate(&mem, linear, AccessKind::Read),
        Err(WalkError::NonCanonical { linear })
    );
}

#[test]
fn paging_disabled_is_32_bit_identity() {
    let mem = FakeMemory::default();
    let real_mode = PagingState::new(0, 0, 0, 0);
    assert_eq!(
        real_mode.translate(&mem, 0x1_FEC0_0010, AccessKind::Write),
        Ok(0xFEC0_0010)
    );
}

#[test]
fn legacy_modes_are_reported_unsupported() {
    let mem = FakeMemory::default();
    let cases = [
        (PagingState::new(LONG_MODE_CR0, PML4, 0, 0), PagingMode::ThirtyTwoBit),
        (PagingState::new(LONG_MODE_CR0, PML4, LONG_MODE_CR4, 0), PagingMode::Pae),
        (
            PagingState::new(LONG_MODE_CR0, PML4, LONG_MODE_CR4 | (1 << 12), LONG_MODE_EFER),
            PagingMode::FiveLevel,
        ),
    ];
    for (state, mode) in cases {
        assert_eq!(
            state.translate(&mem, 0x1000, AccessKind::Read),
            Err(WalkError::UnsupportedPagingMode(mode))
        );
    }
}

#[test]
fn page_table_entry_bit_7_is_pat_not_page_size() {
    let mut mem = FakeMemory::default();
    map_4k(&mut mem, 0x5000, 0x8000, PS | P);
    assert_eq!(long_mode().translate(&mem, 0x5123, AccessKind::Read), Ok(0x8123));
}

const US: u64 = 1 << 2;

#[test]
fn user_accesses_need_the_user_bit_at_every_level() {
    let mut mem = FakeMemory::default();
    // The upper levels lack U/S: a user access fails even though the leaf has it.
    map_4k(&mut mem, 0x5000, 0x8000, P | RW | US);
    assert_eq!(
        long_mode().translate_as(&mem, 0x5000, AccessKind::Read, true),
        Err(WalkError::SupervisorOnly { linear: 0x5000 })
    );
    assert_eq!(
        long_mode().translate_as(&mem, 0x5000, AccessKind::Read, false),
        Ok(0x8000)
    );
    let [l4, l3, l2, _] = indices(0x5000);
    mem.set_entry(PML4, l4, PDPT | P | RW | US);
    mem.set_entry(PDPT, l3, PD | P | RW | US);
    mem.set_entry(PD, l2, PT | P | RW | US);
    assert_eq!(
        long_mode().translate_as(&mem, 0x5000, AccessKind::Write, true),
        Ok(0x8000)
    );
}

#[test]
fn user_writes_to_read_only_pages_fault_even_without_cr0_wp() {
    let mut mem = FakeMemory::default();
    map_4k(&mut mem, 0x5000, 0x8000, P | US);
    let [l4, l3, l2, _] = indices(0x5000);
    mem.set_entry(PML4, l4, PDPT | P | RW | US);
    mem.set_entry(PDPT, l3, PD | P | RW | US);
    mem.set_entry(PD, l2, PT | P | RW | US);
    let without_wp = PagingState {
        cr0: LONG_MODE_CR0 & !(1 << 16),
        ..long_mode()
    };
    assert_eq!(
        without_wp.translate_as(&mem, 0x5000, AccessKind::Write, true),
        Err(WalkError::WriteProtected { linear: 0x5000 })
    );
}

#[test]
fn walk_failures_map_to_the_guests_page_fault_error_codes() {
    use crate::walk::TranslationFault::{GeneralProtection, PageFault};
    let not_present = WalkError::NotPresent {
        linear: 0x1000,
        level: PagingLevel::PageTable,
    };
    assert_eq!(
        not_present.guest_fault(true, true),
        Some(PageFault {
            linear: 0x1000,
            error_code: 0b110
        })
    );
    assert_eq!(
        WalkError::WriteProtected { linear: 0x2000 }.guest_fault(true, false),
        Some(PageFault {
            linear: 0x2000,
            error_code: 0b011
        })
    );
    assert_eq!(
        WalkError::SupervisorOnly { linear: 0x3000 }.guest_fault(false, true),
        Some(PageFault {
            linear: 0x3000,
            error_code: 0b101
        })
    );
    assert_eq!(
        WalkError::NonCanonical { linear: 1 << 60 }.guest_fault(false, false),
        Some(GeneralProtection)
    );
    assert_eq!(
        WalkError::TableUnreadable {
            linear: 0,
            entry_gpa: 0
        }
        .guest_fault(false, false),
        None
    );
}

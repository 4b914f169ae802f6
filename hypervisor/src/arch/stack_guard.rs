//! The boot stack's guard page (set up in `boot.s`): checked at boot, so a
//! change to the early page tables cannot silently drop it.

extern "C" {
    static boot_stack_guard: u8;
}

const PRESENT: u64 = 1;
const HUGE: u64 = 1 << 7;
const ADDRESS: u64 = 0x000F_FFFF_FFFF_F000;

/// The guard page's address, if Keel's own page tables leave it unmapped.
pub fn unmapped_guard() -> Option<u64> {
    let guard = core::ptr::addr_of!(boot_stack_guard) as u64;
    let mut table = crate::arch::instructions::read_cr3() & ADDRESS;
    for shift in [39u32, 30, 21, 12] {
        let index = (guard >> shift) & 511;
        // SAFETY: Keel's page tables are identity-mapped, 4 KiB-aligned
        // tables of 512 entries; `index` < 512 stays inside the table.
        let entry = unsafe { core::ptr::read_volatile((table as *const u64).add(index as usize)) };
        if entry & PRESENT == 0 {
            return Some(guard);
        }
        if shift != 12 && shift != 39 && entry & HUGE != 0 {
            return None;
        }
        table = entry & ADDRESS;
    }
    None
}

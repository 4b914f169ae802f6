//! The CPU state and in-memory structures a 64-bit guest entry point needs:
//! identity-mapped paging, a flat GDT, and long mode enabled.

mod gdt;
mod paging;

pub use gdt::{
    BOOT_CODE_SELECTOR, BOOT_DATA_SELECTOR, CODE64_ACCESS_RIGHTS, DATA_ACCESS_RIGHTS, GDT_ALIGNMENT, GDT_SIZE,
    TSS_ACCESS_RIGHTS,
};
pub use paging::{long_mode_tables_size, MAX_IDENTITY_MAP_BYTES};

use keel_memory::{GuestMemory, GuestMemoryRead};

use crate::error::{GuestRegion, LoadError, RegionKind};
use crate::guest_memory::{check_aligned, check_backed, check_disjoint, write_guest, PAGE_SIZE};

/// CR0.PE: protected mode.
pub const CR0_PE: u64 = 1 << 0;
/// CR0.ET: always 1 on modern processors.
pub const CR0_ET: u64 = 1 << 4;
/// CR0.NE: native x87 error reporting, required by VMX.
pub const CR0_NE: u64 = 1 << 5;
/// CR0.PG: paging.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PAE: required for long-mode paging.
pub const CR4_PAE: u64 = 1 << 5;
/// EFER.LME: long mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA: long mode active; VM entry requires it to match the IA-32e
/// mode guest control, so it is set up front.
pub const EFER_LMA: u64 = 1 << 10;

/// Where the loader puts the long-mode structures in guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongModeLayout {
    /// Start of the page tables; 4 KiB aligned, [`long_mode_tables_size`] bytes long.
    pub page_tables_gpa: u64,
    /// Start of the [`GDT_SIZE`]-byte GDT; 8-byte aligned.
    pub gdt_gpa: u64,
    /// Identity-map `[0, identity_map_bytes)` with 2 MiB pages, rounded up to
    /// whole GiB, at most [`MAX_IDENTITY_MAP_BYTES`].
    pub identity_map_bytes: u64,
}

impl LongModeLayout {
    /// The guest-physical range the page tables occupy.
    pub fn page_tables_region(&self) -> Result<GuestRegion, LoadError> {
        GuestRegion::new(
            RegionKind::PageTables,
            self.page_tables_gpa,
            long_mode_tables_size(self.identity_map_bytes),
        )
    }

    /// The guest-physical range the GDT occupies.
    pub fn gdt_region(&self) -> Result<GuestRegion, LoadError> {
        GuestRegion::new(RegionKind::Gdt, self.gdt_gpa, GDT_SIZE)
    }

    /// Everything [`setup_long_mode`] checks before it writes: the regions
    /// (aligned, backed by RAM in `memory`, disjoint) and the identity
    /// map's size. Returns the page tables' and the GDT's regions.
    pub fn check<M: GuestMemoryRead + ?Sized>(&self, memory: &M) -> Result<(GuestRegion, GuestRegion), LoadError> {
        let tables = self.page_tables_region()?;
        let gdt = self.gdt_region()?;
        check_aligned(RegionKind::PageTables, tables.start, PAGE_SIZE)?;
        check_aligned(RegionKind::Gdt, gdt.start, GDT_ALIGNMENT)?;
        if self.identity_map_bytes > MAX_IDENTITY_MAP_BYTES {
            return Err(LoadError::IdentityMapTooLarge {
                requested: self.identity_map_bytes,
                max: MAX_IDENTITY_MAP_BYTES,
            });
        }
        check_backed(memory, tables)?;
        check_backed(memory, gdt)?;
        check_disjoint(&[tables, gdt])?;
        Ok((tables, gdt))
    }
}

/// Register values for entering the guest directly in 64-bit mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongModeState {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub gdtr_base: u64,
    pub gdtr_limit: u16,
    /// CS selector; its segment state is flat with [`CODE64_ACCESS_RIGHTS`].
    pub code_selector: u16,
    /// DS/ES/SS/FS/GS selector; flat with [`DATA_ACCESS_RIGHTS`].
    pub data_selector: u16,
}

/// Writes the identity-map page tables and the boot GDT into guest memory
/// and returns the control-register state that makes them live. Both must
/// lie in guest RAM (checked before anything is written).
pub fn setup_long_mode<M: GuestMemory + ?Sized>(
    memory: &mut M,
    layout: &LongModeLayout,
) -> Result<LongModeState, LoadError> {
    let (tables, gdt) = layout.check(memory)?;
    let cr3 = paging::write_identity_map(memory, tables.start, layout.identity_map_bytes)?;
    write_guest(memory, RegionKind::Gdt, gdt.start, &gdt::gdt_bytes())?;

    Ok(LongModeState {
        cr0: CR0_PE | CR0_ET | CR0_NE | CR0_PG,
        cr3,
        cr4: CR4_PAE,
        efer: EFER_LME | EFER_LMA,
        gdtr_base: gdt.start,
        // GDT_SIZE is 32, so the limit always fits.
        gdtr_limit: (GDT_SIZE - 1) as u16,
        code_selector: BOOT_CODE_SELECTOR,
        data_selector: BOOT_DATA_SELECTOR,
    })
}

#[cfg(test)]
mod tests;

use super::entry::{bits, ADDRESS_MASK, EXECUTE_DISABLE, PAGE_SIZE, PRESENT, SMALL_PAGE_SIZE, USER, WRITABLE};
use super::{PagingLevel, PagingMode, WalkError};
use keel_memory::{GuestMemoryRead, GuestPhysAddr};

const CR0_WRITE_PROTECT: u64 = 1 << 16;
const CR0_PAGING: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const EFER_LONG_MODE_ACTIVE: u64 = 1 << 10;
const EFER_NO_EXECUTE_ENABLE: u64 = 1 << 11;

/// The architectural ceiling on MAXPHYADDR; without a CPUID value, only the
/// bits above it can be declared reserved.
const ARCHITECTURAL_MAX_PHYS_ADDR_BITS: u8 = 52;
/// Smallest value accepted, so the reserved-bit mask never reaches into the
/// 4 KiB page offset.
const MIN_PHYS_ADDR_BITS: u8 = 12;

/// What the translated address will be used for; decides which permission
/// bits are checked. [`PagingState::translate`] treats accesses as
/// supervisor-mode (the hypervisor inspecting an access the guest already
/// performed); [`PagingState::translate_as`] checks U/S for an access
/// Keel performs on behalf of user-mode code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    Read,
    Write,
    Execute,
}

/// The guest control registers that determine how linear addresses translate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagingState {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    /// Guest MAXPHYADDR (CPUID 0x8000_0008 EAX bits 7:0); entry address bits at
    /// or above it are reserved. Clamped to 12..=52.
    pub max_phys_addr_bits: u8,
}

impl PagingState {
    /// Paging state with the architectural maximum physical-address width,
    /// which checks only the bits that are reserved on every CPU.
    pub const fn new(cr0: u64, cr3: u64, cr4: u64, efer: u64) -> Self {
        Self {
            cr0,
            cr3,
            cr4,
            efer,
            max_phys_addr_bits: ARCHITECTURAL_MAX_PHYS_ADDR_BITS,
        }
    }

    /// Narrows reserved-bit checking to the guest's real MAXPHYADDR.
    pub const fn with_max_phys_addr_bits(mut self, bits: u8) -> Self {
        self.max_phys_addr_bits = bits;
        self
    }

    pub const fn mode(&self) -> PagingMode {
        if self.cr0 & CR0_PAGING == 0 {
            PagingMode::Disabled
        } else if self.cr4 & CR4_PAE == 0 {
            PagingMode::ThirtyTwoBit
        } else if self.efer & EFER_LONG_MODE_ACTIVE == 0 {
            PagingMode::Pae
        } else if self.cr4 & CR4_LA57 != 0 {
            PagingMode::FiveLevel
        } else {
            PagingMode::FourLevel
        }
    }

    /// Translates `linear` to a guest-physical address as the guest's MMU would.
    pub fn translate<M: GuestMemoryRead + ?Sized>(
        &self,
        mem: &M,
        linear: u64,
        access: AccessKind,
    ) -> Result<u64, WalkError> {
        self.translate_as(mem, linear, access, false)
    }

    /// Translates `linear` for an access Keel performs for the guest: with
    /// `user` (CPL 3), every level must allow user access and writes need
    /// R/W whatever CR0.WP says.
    pub fn translate_as<M: GuestMemoryRead + ?Sized>(
        &self,
        mem: &M,
        linear: u64,
        access: AccessKind,
        user: bool,
    ) -> Result<u64, WalkError> {
        match self.mode() {
            // Without paging, linear addresses are 32 bits wide and map 1:1.
            PagingMode::Disabled => Ok(linear & 0xFFFF_FFFF),
            PagingMode::FourLevel => self.walk_four_level(mem, linear, access, user),
            unsupported => Err(WalkError::UnsupportedPagingMode(unsupported)),
        }
    }

    fn walk_four_level<M: GuestMemoryRead + ?Sized>(
        &self,
        mem: &M,
        linear: u64,
        access: AccessKind,
        user: bool,
    ) -> Result<u64, WalkError> {
        if !is_canonical_48(linear) {
            return Err(WalkError::NonCanonical { linear });
        }
        let mut table_base = self.cr3 & self.address_mask();
        let mut permissions = Permissions::ALL;
        for level in [PagingLevel::Pml4, PagingLevel::Pdpt, PagingLevel::PageDirectory] {
            let entry = self.read_entry(mem, level, table_base, linear)?;
            permissions = permissions.restricted_by(entry, self.nx_enabled());
            if let Some(page_size) = level.large_page_size().filter(|_| entry & PAGE_SIZE != 0) {
                return self.leaf_address(entry, page_size, permissions, linear, access, user);
            }
            table_base = entry & self.address_mask();
        }
        let entry = self.read_entry(mem, PagingLevel::PageTable, table_base, linear)?;
        permissions = permissions.restricted_by(entry, self.nx_enabled());
        self.leaf_address(entry, SMALL_PAGE_SIZE, permissions, linear, access, user)
    }

    /// Reads the entry `level` uses for `linear`, rejecting it unless present
    /// and free of reserved bits.
    fn read_entry<M: GuestMemoryRead + ?Sized>(
        &self,
        mem: &M,
        level: PagingLevel,
        table_base: u64,
        linear: u64,
    ) -> Result<u64, WalkError> {
        let entry_gpa = level.entry_address(table_base, linear);
        let entry = mem
            .read_u64(GuestPhysAddr::new(entry_gpa))
            .map_err(|_| WalkError::TableUnreadable { linear, entry_gpa })?;
        if entry & PRESENT == 0 {
            return Err(WalkError::NotPresent { linear, level });
        }
        let is_large_leaf = entry & PAGE_SIZE != 0 && level.large_page_size().is_some();
        if entry & self.reserved_bits(level, is_large_leaf) != 0 {
            return Err(WalkError::ReservedBitSet { linear, level, entry });
        }
        Ok(entry)
    }

    /// The guest-physical address within the page a leaf `entry` maps.
    fn leaf_address(
        &self,
        entry: u64,
        page_size: u64,
        permissions: Permissions,
        linear: u64,
        access: AccessKind,
        user: bool,
    ) -> Result<u64, WalkError> {
        self.check_access(permissions, linear, access, user)?;
        let offset_mask = page_size - 1;
        // `& !offset_mask` also drops the PAT bit (12) of large pages.
        let frame = entry & self.address_mask() & !offset_mask;
        Ok(frame | (linear & offset_mask))
    }

    fn check_access(
        &self,
        permissions: Permissions,
        linear: u64,
        access: AccessKind,
        user: bool,
    ) -> Result<(), WalkError> {
        if user && !permissions.user {
            return Err(WalkError::SupervisorOnly { linear });
        }
        match access {
            AccessKind::Write if user && !permissions.writable => Err(WalkError::WriteProtected { linear }),
            // Supervisor writes ignore R/W unless CR0.WP is set.
            AccessKind::Write if !permissions.writable && self.cr0 & CR0_WRITE_PROTECT != 0 => {
                Err(WalkError::WriteProtected { linear })
            }
            AccessKind::Execute if !permissions.executable => Err(WalkError::ExecuteDisabled { linear }),
            _ => Ok(()),
        }
    }

    const fn nx_enabled(&self) -> bool {
        self.efer & EFER_NO_EXECUTE_ENABLE != 0
    }

    /// Frame-address bits below the guest's MAXPHYADDR.
    fn address_mask(&self) -> u64 {
        let width = self
            .max_phys_addr_bits
            .clamp(MIN_PHYS_ADDR_BITS, ARCHITECTURAL_MAX_PHYS_ADDR_BITS);
        ADDRESS_MASK & bits(0, u32::from(width) - 1)
    }

    fn reserved_bits(&self, level: PagingLevel, is_large_leaf: bool) -> u64 {
        let above_max_phys_addr = ADDRESS_MASK & !self.address_mask();
        let execute_disable = if self.nx_enabled() { 0 } else { EXECUTE_DISABLE };
        above_max_phys_addr | execute_disable | level.reserved_bits(is_large_leaf)
    }
}

/// Translates `linear` with the given guest control registers; see
/// [`PagingState::translate`].
pub fn translate<M: GuestMemoryRead + ?Sized>(
    mem: &M,
    cr0: u64,
    cr3: u64,
    cr4: u64,
    efer: u64,
    linear: u64,
    access: AccessKind,
) -> Result<u64, WalkError> {
    PagingState::new(cr0, cr3, cr4, efer).translate(mem, linear, access)
}

/// Access rights accumulate as the intersection over every level of the walk.
#[derive(Clone, Copy)]
struct Permissions {
    writable: bool,
    executable: bool,
    user: bool,
}

impl Permissions {
    const ALL: Self = Self {
        writable: true,
        executable: true,
        user: true,
    };

    fn restricted_by(self, entry: u64, nx_enabled: bool) -> Self {
        Self {
            writable: self.writable && entry & WRITABLE != 0,
            executable: self.executable && !(nx_enabled && entry & EXECUTE_DISABLE != 0),
            user: self.user && entry & USER != 0,
        }
    }
}

/// Bits 63:47 must all equal bit 47 in 4-level paging.
const fn is_canonical_48(linear: u64) -> bool {
    let sign_extended = ((linear << 16) as i64 >> 16) as u64;
    sign_extended == linear
}

#[cfg(test)]
#[path = "paging_tests.rs"]
mod tests;

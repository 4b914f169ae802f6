use keel_memory::{FrameAllocator, GuestPhysAddr, HostPhysAddr, PhysMemory, PAGE_SIZE_4K};

use crate::error::EptError;
use crate::flags::{EptFlags, MemoryType, PageSize};
use crate::table::{EntryFormat, Leaf, PageTables, ADDRESS_MASK};

/// A 4-level walk translates 48-bit guest-physical addresses.
pub const GUEST_PHYS_ADDR_LIMIT: u64 = 1 << 48;
/// The architectural MAXPHYADDR ceiling (entry bits 51:12).
pub const HOST_PHYS_ADDR_LIMIT: u64 = 1 << 52;

const MEMORY_TYPE_SHIFT: u32 = 3;
const MEMORY_TYPE_MASK: u64 = 0b111 << MEMORY_TYPE_SHIFT;
const EPTP_WALK_LENGTH_SHIFT: u32 = 3;
const EPTP_ACCESSED_DIRTY_ENABLE: u64 = 1 << 6;

#[derive(Debug)]
struct EptFormat;

impl EntryFormat for EptFormat {
    /// SDM: an EPT entry whose bits 2:0 are all clear is not present.
    const PRESENT_MASK: u64 = EptFlags::READ_WRITE_EXECUTE.bits();
    const TABLE_POINTER_FLAGS: u64 = EptFlags::READ_WRITE_EXECUTE.bits();
}

/// Where a guest-physical address lands and under which attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The exact host address of the byte, page offset included.
    pub hpa: HostPhysAddr,
    pub size: PageSize,
    /// The leaf's flags, without `HUGE` (that is what `size` says).
    pub flags: EptFlags,
    pub memtype: MemoryType,
}

/// One guest's EPT hierarchy; owns its table frames (not the mapped pages).
///
/// Dropping it without [`EptTables::destroy`] leaks the table frames.
#[derive(Debug)]
pub struct EptTables {
    tables: PageTables<EptFormat>,
}

impl EptTables {
    pub fn new(alloc: &mut impl FrameAllocator, mem: &impl PhysMemory) -> Result<Self, EptError> {
        Ok(Self {
            tables: PageTables::new(alloc, mem)?,
        })
    }

    /// The PML4 frame.
    pub fn root(&self) -> HostPhysAddr {
        self.tables.root()
    }

    /// Maps one page. `perms` may contain READ, WRITE, EXECUTE, USER_EXECUTE
    /// and IGNORE_PAT, must grant some access, and WRITE needs READ. On error
    /// nothing changes and no frame is leaked.
    #[allow(
        clippy::too_many_arguments,
        reason = "the allocator and memory are passed per call so the tables hold no borrows"
    )]
    pub fn map(
        &mut self,
        gpa: GuestPhysAddr,
        hpa: HostPhysAddr,
        size: PageSize,
        perms: EptFlags,
        memtype: MemoryType,
        alloc: &mut impl FrameAllocator,
        mem: &impl PhysMemory,
    ) -> Result<(), EptError> {
        let leaf = encode_leaf(gpa, hpa, size, perms, memtype)?;
        self.tables.map_leaf(gpa.as_u64(), leaf, size, alloc, mem)
    }

    /// Maps `len` bytes with the largest pages (up to `max_page`) that the
    /// alignment of both addresses and the remaining length allow. Pass
    /// `max_page` below `Size1G` when the CPU lacks 1 GiB EPT pages. On error
    /// the pages this call mapped are unmapped again.
    #[allow(
        clippy::too_many_arguments,
        reason = "the allocator and memory are passed per call so the tables hold no borrows"
    )]
    pub fn map_range(
        &mut self,
        gpa: GuestPhysAddr,
        hpa: HostPhysAddr,
        len: u64,
        perms: EptFlags,
        memtype: MemoryType,
        max_page: PageSize,
        alloc: &mut impl FrameAllocator,
        mem: &impl PhysMemory,
    ) -> Result<(), EptError> {
        if !gpa.is_aligned(PAGE_SIZE_4K) || !hpa.is_aligned(PAGE_SIZE_4K) || !len.is_multiple_of(PAGE_SIZE_4K) {
            return Err(EptError::Misaligned);
        }
        let gpa_end = gpa.as_u64().checked_add(len).ok_or(EptError::AddressOutOfRange)?;
        let hpa_end = hpa.as_u64().checked_add(len).ok_or(EptError::AddressOutOfRange)?;
        if gpa_end > GUEST_PHYS_ADDR_LIMIT || hpa_end > HOST_PHYS_ADDR_LIMIT {
            return Err(EptError::AddressOutOfRange);
        }

        let mut mapped = 0;
        while mapped < len {
            // In range: mapped < len and both ends were checked above.
            let page_gpa = GuestPhysAddr::new(gpa.as_u64() + mapped);
            let page_hpa = HostPhysAddr::new(hpa.as_u64() + mapped);
            let size = largest_page(page_gpa, page_hpa, len - mapped, max_page);
            if let Err(error) = self.map(page_gpa, page_hpa, size, perms, memtype, alloc, mem) {
                self.unmap_mapped_prefix(gpa, mapped, alloc, mem);
                return Err(error);
            }
            mapped += size.bytes();
        }
        Ok(())
    }

    /// Rolls back a partial `map_range`: `[gpa, gpa + len)` is exactly the
    /// pages that call mapped.
    fn unmap_mapped_prefix(
        &mut self,
        gpa: GuestPhysAddr,
        len: u64,
        alloc: &mut impl FrameAllocator,
        mem: &impl PhysMemory,
    ) {
        let mut offset = 0;
        while offset < len {
            let page = GuestPhysAddr::new(gpa.as_u64() + offset);
            let size = self.translate(page, mem).map_or(PageSize::Size4K, |t| t.size);
            // Cannot fail: these pages were mapped with exactly this size.
            let _ = self.unmap(page, size, alloc, mem);
            offset += size.bytes();
        }
    }

    /// Removes the page of `size` starting at `gpa` and returns the host
    /// address it mapped. Tables left empty are freed. The caller must
    /// INVEPT before a vCPU using these tables runs again.
    pub fn unmap(
        &mut self,
        gpa: GuestPhysAddr,
        size: PageSize,
        alloc: &mut impl FrameAllocator,
        mem: &impl PhysMemory,
    ) -> Result<HostPhysAddr, EptError> {
        if !gpa.is_aligned(size.bytes()) {
            return Err(EptError::Misaligned);
        }
        if gpa.as_u64() >= GUEST_PHYS_ADDR_LIMIT {
            return Err(EptError::AddressOutOfRange);
        }
        let entry = self.tables.unmap_leaf(gpa.as_u64(), size, alloc, mem)?;
        Ok(page_base(entry, size))
    }

    /// The translation of any guest-physical address; `None` if unmapped.
    pub fn translate(&self, gpa: GuestPhysAddr, mem: &impl PhysMemory) -> Option<Translation> {
        if gpa.as_u64() >= GUEST_PHYS_ADDR_LIMIT {
            return None;
        }
        let Leaf { entry, size } = self.tables.lookup(gpa.as_u64(), mem)?;
        let offset_in_page = gpa.as_u64() & (size.bytes() - 1);
        let memory_type_bits = (entry & MEMORY_TYPE_MASK) >> MEMORY_TYPE_SHIFT;
        Some(Translation {
            hpa: page_base(entry, size).offset(offset_in_page)?,
            size,
            flags: EptFlags::from_bits_truncate(entry).difference(EptFlags::HUGE),
            memtype: MemoryType::from_bits(memory_type_bits as u8)?,
        })
    }

    /// The VMCS EPT pointer: `memtype` is the memory type used to read the
    /// tables themselves (only `WriteBack` or `Uncacheable` are valid, per
    /// IA32_VMX_EPT_VPID_CAP), a 4-level walk, and optionally accessed/dirty
    /// flag tracking.
    pub fn eptp(&self, memtype: MemoryType, enable_accessed_dirty: bool) -> u64 {
        let walk_length_minus_one = 3 << EPTP_WALK_LENGTH_SHIFT;
        let accessed_dirty = if enable_accessed_dirty {
            EPTP_ACCESSED_DIRTY_ENABLE
        } else {
            0
        };
        self.root().as_u64() | u64::from(memtype.bits()) | walk_length_minus_one | accessed_dirty
    }

    /// Frees every table frame back to `alloc`; mapped pages are not freed.
    pub fn destroy(self, alloc: &mut impl FrameAllocator, mem: &impl PhysMemory) {
        self.tables.destroy(alloc, mem);
    }
}

/// Validates a single-page mapping request and builds its leaf entry.
fn encode_leaf(
    gpa: GuestPhysAddr,
    hpa: HostPhysAddr,
    size: PageSize,
    perms: EptFlags,
    memtype: MemoryType,
) -> Result<u64, EptError> {
    let grants_access = perms.intersects(EptFlags::READ_WRITE_EXECUTE);
    let write_without_read = perms.contains(EptFlags::WRITE) && !perms.contains(EptFlags::READ);
    if !grants_access || write_without_read || !EptFlags::REQUESTABLE.contains(perms) {
        return Err(EptError::InvalidPermissions);
    }
    if !gpa.is_aligned(size.bytes()) || !hpa.is_aligned(size.bytes()) {
        return Err(EptError::Misaligned);
    }
    if gpa.as_u64() >= GUEST_PHYS_ADDR_LIMIT || hpa.as_u64() >= HOST_PHYS_ADDR_LIMIT {
        return Err(EptError::AddressOutOfRange);
    }
    let huge = if size == PageSize::Size4K {
        EptFlags::empty()
    } else {
        EptFlags::HUGE
    };
    Ok(hpa.as_u64() | perms.union(huge).bits() | u64::from(memtype.bits()) << MEMORY_TYPE_SHIFT)
}

fn page_base(entry: u64, size: PageSize) -> HostPhysAddr {
    HostPhysAddr::new(entry & ADDRESS_MASK & !(size.bytes() - 1))
}

fn largest_page(gpa: GuestPhysAddr, hpa: HostPhysAddr, remaining: u64, max_page: PageSize) -> PageSize {
    PageSize::LARGEST_FIRST
        .into_iter()
        .filter(|&size| size <= max_page)
        .find(|size| {
            let bytes = size.bytes();
            gpa.is_aligned(bytes) && hpa.is_aligned(bytes) && remaining >= bytes
        })
        .unwrap_or(PageSize::Size4K)
}

#[cfg(test)]
mod tests;

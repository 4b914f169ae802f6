//! Host-physical memory outside Keel's allocator: firmware tables (read
//! through the boot identity map of the first 4 GiB), device registers
//! (volatile accesses; above 4 GiB mapped uncached on first use), and
//! IOMMU structures in frames Keel allocated (written back from the caches
//! when the IOMMU does not snoop them).

use keel_acpi_tables::find::{PhysicalMemory, Unreadable};
use keel_iommu::{RegisterAccess, TableMemory};
use keel_memory::HostPhysAddr;

/// The boot page tables identity-map this much.
const IDENTITY_MAPPED: u64 = 4 << 30;
/// What Keel's page tables can reach: PML4 entry 0's 512 GiB. Device
/// memory between 4 GiB and this (64-bit BARs, an MCFG window) is mapped
/// on demand ([`map_device_memory`]).
const MAPPABLE: u64 = 512 << 30;
const PAGE_2M: u64 = 2 << 20;
const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const WRITE_THROUGH: u64 = 1 << 3;
const CACHE_DISABLE: u64 = 1 << 4;
const HUGE: u64 = 1 << 7;
const ADDRESS: u64 = 0x000F_FFFF_FFFF_F000;

/// Serializes additions to Keel's page tables.
static HIGH_MAPPINGS: spin::Mutex<()> = spin::Mutex::new(());

/// Makes device memory `[base, base + len)` reachable at its own address:
/// below 4 GiB it is (the boot identity map); from 4 GiB up to 512 GiB,
/// Keel identity-maps it uncached in 2 MiB pages, taking page directories
/// from its allocator as needed (kept for good: a device's registers stay
/// where they are). Whether all of it is reachable now (`false` past 512
/// GiB, for an empty or overflowing range, or without memory for a page
/// directory).
pub fn map_device_memory(base: u64, len: u64) -> bool {
    let Some(end) = base.checked_add(len) else {
        return false;
    };
    if base == 0 || len == 0 || end > MAPPABLE {
        return false;
    }
    if end <= IDENTITY_MAPPED {
        return true;
    }
    let _serialized = HIGH_MAPPINGS.lock();
    let pml4 = crate::arch::instructions::read_cr3() & ADDRESS;
    // SAFETY: CR3 holds Keel's PML4, an identity-mapped 4 KiB table; entry
    // 0 is the boot PDPT (`boot.s`).
    let pdpt = unsafe { core::ptr::read_volatile(pml4 as *const u64) } & ADDRESS;
    let mut at = base.max(IDENTITY_MAPPED) & !(PAGE_2M - 1);
    while at < end {
        let pdpt_slot = (pdpt as *mut u64).wrapping_add((at >> 30) as usize);
        // SAFETY: `at` < 512 GiB, so the index is below 512: inside the
        // identity-mapped PDPT.
        let pdpt_entry = unsafe { core::ptr::read_volatile(pdpt_slot) };
        let directory = if pdpt_entry & PRESENT == 0 {
            let Some(frame) = crate::memory::allocate_zeroed(4096, 4096) else {
                return false;
            };
            // SAFETY: as above; the new directory is zeroed (nothing
            // present), identity-mapped and Keel's for good. A not-present
            // entry is never cached by the TLB, so no flush is needed.
            unsafe { core::ptr::write_volatile(pdpt_slot, frame.as_u64() | PRESENT | WRITABLE) };
            frame.as_u64()
        } else if pdpt_entry & HUGE != 0 {
            // A 1 GiB page already maps it.
            at = (at | ((1 << 30) - 1)) + 1;
            continue;
        } else {
            pdpt_entry & ADDRESS
        };
        let pd_slot = (directory as *mut u64).wrapping_add(((at >> 21) & 511) as usize);
        // SAFETY: the directory is an identity-mapped 4 KiB table of 512
        // entries and the index is below 512. Only a not-present entry is
        // written (a present one already maps this 2 MiB).
        unsafe {
            if core::ptr::read_volatile(pd_slot) & PRESENT == 0 {
                core::ptr::write_volatile(pd_slot, at | PRESENT | WRITABLE | HUGE | CACHE_DISABLE | WRITE_THROUGH);
            }
        }
        at += PAGE_2M;
    }
    true
}

/// Firmware memory (ACPI tables): read-only, below 4 GiB.
pub struct Firmware;

impl PhysicalMemory for Firmware {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        let end = address.checked_add(buf.len() as u64).ok_or(Unreadable)?;
        if address == 0 || end > IDENTITY_MAPPED {
            return Err(Unreadable);
        }
        for (offset, byte) in buf.iter_mut().enumerate() {
            // SAFETY: the range is identity-mapped (checked above) and
            // reading firmware tables has no side effects; volatile because
            // the firmware, not Rust, owns that memory.
            *byte = unsafe { core::ptr::read_volatile((address + offset as u64) as *const u8) };
        }
        Ok(())
    }
}

/// A device's memory-mapped registers at `base` (below 512 GiB: above
/// 4 GiB they are mapped when first asked for, [`map_device_memory`]).
pub struct Mmio {
    base: u64,
}

impl Mmio {
    /// `len` bytes of registers at `base`.
    pub fn new(base: u64, len: u64) -> Option<Self> {
        (base.is_multiple_of(8) && map_device_memory(base, len)).then_some(Self { base })
    }

    fn pointer<T>(&self, offset: u32) -> *mut T {
        (self.base + u64::from(offset)) as *mut T
    }
}

impl RegisterAccess for Mmio {
    fn read32(&mut self, offset: u32) -> u32 {
        // SAFETY: the register window is mapped at its address (new);
        // offsets come from the VT-d register layout, within its 4 KiB page
        // or the CAP-given fault/IOTLB register offsets.
        unsafe { core::ptr::read_volatile(self.pointer(offset)) }
    }
    fn read64(&mut self, offset: u32) -> u64 {
        // SAFETY: as in read32.
        unsafe { core::ptr::read_volatile(self.pointer(offset)) }
    }
    fn write32(&mut self, offset: u32, value: u32) {
        // SAFETY: as in read32.
        unsafe { core::ptr::write_volatile(self.pointer(offset), value) }
    }
    fn write64(&mut self, offset: u32, value: u64) {
        // SAFETY: as in read32.
        unsafe { core::ptr::write_volatile(self.pointer(offset), value) }
    }
}

/// Frames holding IOMMU structures (all from Keel's allocator, below 4 GiB).
pub struct IommuTables {
    /// The IOMMU's page walks do not snoop the caches (ECAP.C clear):
    /// every write is flushed to memory.
    pub flush: bool,
}

impl TableMemory for IommuTables {
    fn read_u64(&self, addr: HostPhysAddr) -> u64 {
        // SAFETY: the crate only passes addresses in frames Keel allocated
        // for these tables (identity-mapped, 8-byte aligned).
        unsafe { core::ptr::read_volatile(addr.as_u64() as *const u64) }
    }

    fn write_u64(&mut self, addr: HostPhysAddr, value: u64) {
        let pointer = addr.as_u64() as *mut u64;
        // SAFETY: as in read_u64; CLFLUSH of a mapped line has no other effect.
        unsafe {
            core::ptr::write_volatile(pointer, value);
            if self.flush {
                core::arch::asm!("clflush [{}]", in(reg) pointer, options(nostack, preserves_flags));
            }
        }
    }
}

/// A guest access to an assigned device's register that Keel forwards
/// (`size` bytes at host-physical `address`, naturally aligned, below
/// 512 GiB): the value read, or `None` for an access Keel does not make
/// (misaligned, another size, unmappable). The caller has checked that
/// the address lies in the device's BAR.
pub fn device_read(address: u64, size: u8) -> Option<u64> {
    device_register(address, size)?;
    // SAFETY: `device_register` checked the access is naturally aligned,
    // 1, 2, 4 or 8 bytes, and mapped at its address; it is a register of the
    // device the caller owns, so reading it affects only that device.
    let value = unsafe {
        match size {
            1 => u64::from(core::ptr::read_volatile(address as *const u8)),
            2 => u64::from(core::ptr::read_volatile(address as *const u16)),
            4 => u64::from(core::ptr::read_volatile(address as *const u32)),
            _ => core::ptr::read_volatile(address as *const u64),
        }
    };
    Some(value)
}

/// The same as [`device_read`] for a write; `false` when not made.
pub fn device_write(address: u64, size: u8, value: u64) -> bool {
    if device_register(address, size).is_none() {
        return false;
    }
    // SAFETY: as in `device_read`: an aligned register access of the
    // caller's device, mapped at its address.
    unsafe {
        match size {
            1 => core::ptr::write_volatile(address as *mut u8, value as u8),
            2 => core::ptr::write_volatile(address as *mut u16, value as u16),
            4 => core::ptr::write_volatile(address as *mut u32, value as u32),
            _ => core::ptr::write_volatile(address as *mut u64, value),
        }
    }
    true
}

/// `Some(())` for an access [`device_read`] and [`device_write`] make.
fn device_register(address: u64, size: u8) -> Option<()> {
    let sized = matches!(size, 1 | 2 | 4 | 8);
    (sized && address.is_multiple_of(u64::from(size)) && map_device_memory(address, u64::from(size))).then_some(())
}

//! Host-physical memory outside Keel's allocator: firmware tables (read
//! through the boot identity map of the first 4 GiB), device registers
//! (volatile accesses), and IOMMU structures in frames Keel allocated
//! (written back from the caches when the IOMMU does not snoop them).

use keel_acpi_tables::find::{PhysicalMemory, Unreadable};
use keel_iommu::{RegisterAccess, TableMemory};
use keel_memory::HostPhysAddr;

/// The boot page tables identity-map this much.
const IDENTITY_MAPPED: u64 = 4 << 30;

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

/// A device's memory-mapped registers at `base` (below 4 GiB: the DMAR's
/// register bases on every machine Keel targets; `new` refuses others).
pub struct Mmio {
    base: u64,
}

impl Mmio {
    /// `len` bytes of registers at `base`.
    pub fn new(base: u64, len: u64) -> Option<Self> {
        let end = base.checked_add(len)?;
        (base != 0 && end <= IDENTITY_MAPPED && base.is_multiple_of(8)).then_some(Self { base })
    }

    fn pointer<T>(&self, offset: u32) -> *mut T {
        (self.base + u64::from(offset)) as *mut T
    }
}

impl RegisterAccess for Mmio {
    fn read32(&mut self, offset: u32) -> u32 {
        // SAFETY: the register window is identity-mapped (checked in new);
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
/// 4 GiB): the value read, or `None` for an access Keel does not make
/// (misaligned, another size, outside the identity map). The caller has
/// checked that the address lies in the device's BAR.
pub fn device_read(address: u64, size: u8) -> Option<u64> {
    device_register(address, size)?;
    // SAFETY: `device_register` checked the access is naturally aligned,
    // 1, 2, 4 or 8 bytes, and identity-mapped; it is a register of the
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
    // caller's device, inside the identity map.
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
    let end = address.checked_add(u64::from(size))?;
    (sized && address != 0 && address.is_multiple_of(u64::from(size)) && end <= IDENTITY_MAPPED).then_some(())
}

//! Memory mappings for `virtio-hostile`, and all of its `unsafe`: a PCI
//! BAR mapped from sysfs (every access one volatile load or store of its
//! width), and locked anonymous pages a device reads and writes behind the
//! program's back (volatile copies; atomic ring indices). Every access
//! checks its bounds and alignment, so callers stay in safe code.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

/// One `mmap` region, unmapped on drop.
struct Region {
    base: NonNull<u8>,
    len: usize,
}

impl Region {
    fn map(len: usize, prot: i32, flags: i32, fd: i32) -> io::Result<Region> {
        Self::map_at(len, prot, flags, fd, 0)
    }

    fn map_at(len: usize, prot: i32, flags: i32, fd: i32, offset: libc::off_t) -> io::Result<Region> {
        if len == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: a fresh mapping at an address the kernel picks: it
        // aliases no Rust object. A file descriptor, if any, is valid for
        // the call; the mapping keeps its own reference to the file.
        let base = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, offset) };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Region { base, len })
    }

    /// The address of `[offset, offset + len)`, which must lie inside and
    /// be aligned to `align`.
    fn at(&self, offset: usize, len: usize, align: usize) -> *mut u8 {
        let fits = offset.checked_add(len).is_some_and(|end| end <= self.len);
        assert!(
            fits && offset.is_multiple_of(align),
            "access at {offset:#x}+{len} outside the mapping or misaligned"
        );
        // SAFETY: in bounds, checked just above.
        unsafe { self.base.as_ptr().add(offset) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `map` mapped; nothing borrows it
        // (accesses go through raw pointers that do not outlive a call).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// A shared, read-write mapping of a sysfs `resourceN` file (a memory BAR,
/// mapped uncached by the kernel).
pub struct Bar(Region);

impl Bar {
    pub fn map(file: &File, len: usize) -> io::Result<Bar> {
        Self::map_at(file, 0, len)
    }

    /// The same from `offset` into `file` (e.g. a physical address in
    /// `/dev/mem`).
    pub fn map_at(file: &File, offset: u64, len: usize) -> io::Result<Bar> {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let offset = libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        Region::map_at(len, prot, libc::MAP_SHARED, file.as_raw_fd(), offset).map(Bar)
    }

    /// One load of 1, 2 or 4 bytes at a multiple of its size: a plain
    /// `mov`, like Linux's `readb`/`readw`/`readl`. A volatile read in Rust
    /// may be folded into another instruction (`cmp byte ptr [..], 0`),
    /// which a hypervisor's MMIO emulation need not accept.
    pub fn read(&self, offset: usize, size: u8) -> u64 {
        let at = self.0.at(offset, usize::from(size), usize::from(size));
        // SAFETY: `at` checked bounds and alignment; the asm performs one
        // load of the register's width from that address and nothing else.
        unsafe {
            match size {
                1 => {
                    let value: u8;
                    core::arch::asm!("mov {v}, byte ptr [{p}]", p = in(reg) at, v = out(reg_byte) value,
                        options(nostack, preserves_flags));
                    u64::from(value)
                }
                2 => {
                    let value: u16;
                    core::arch::asm!("mov {v:x}, word ptr [{p}]", p = in(reg) at, v = out(reg) value,
                        options(nostack, preserves_flags));
                    u64::from(value)
                }
                4 => {
                    let value: u32;
                    core::arch::asm!("mov {v:e}, dword ptr [{p}]", p = in(reg) at, v = out(reg) value,
                        options(nostack, preserves_flags));
                    u64::from(value)
                }
                _ => panic!("BAR read of {size} bytes"),
            }
        }
    }

    /// One store of 1, 2 or 4 bytes at a multiple of its size: a plain
    /// `mov`, like Linux's `writeb`/`writew`/`writel`.
    pub fn write(&self, offset: usize, size: u8, value: u64) {
        let at = self.0.at(offset, usize::from(size), usize::from(size));
        // SAFETY: as in `read`; one store of the register's width.
        unsafe {
            match size {
                1 => core::arch::asm!("mov byte ptr [{p}], {v}", p = in(reg) at, v = in(reg_byte) value as u8,
                    options(nostack, preserves_flags)),
                2 => core::arch::asm!("mov word ptr [{p}], {v:x}", p = in(reg) at, v = in(reg) value as u16,
                    options(nostack, preserves_flags)),
                4 => core::arch::asm!("mov dword ptr [{p}], {v:e}", p = in(reg) at, v = in(reg) value as u32,
                    options(nostack, preserves_flags)),
                _ => panic!("BAR write of {size} bytes"),
            }
        }
    }
}

pub const PAGE_SIZE: usize = 4096;

/// Anonymous private pages, locked in memory, each touched (so each has
/// its own frame), for a device to use as DMA buffers.
pub struct DmaPages(Region);

impl DmaPages {
    pub fn new(pages: usize) -> io::Result<DmaPages> {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE | libc::MAP_LOCKED;
        let region = Region::map(pages * PAGE_SIZE, prot, flags, -1)?;
        // SAFETY: locks the mapping just made (MAP_LOCKED does not report
        // failure; mlock does).
        if unsafe { libc::mlock(region.base.as_ptr().cast(), region.len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let dma = DmaPages(region);
        for page in 0..pages {
            // A write, not a read: a read could map the shared zero page.
            dma.write(page * PAGE_SIZE, &[0]);
        }
        Ok(dma)
    }

    /// The virtual address of a page, for `/proc/self/pagemap`.
    pub fn address(&self, page: usize) -> usize {
        self.0.at(page * PAGE_SIZE, PAGE_SIZE, PAGE_SIZE) as usize
    }

    /// Copies `bytes` to `offset`: 1, 2, 4 or 8 bytes at a multiple of
    /// their size as one volatile store, anything else byte by byte.
    pub fn write(&self, offset: usize, bytes: &[u8]) {
        let at = self.0.at(offset, bytes.len(), 1);
        // SAFETY: in bounds (checked); the pages are ours, and the device
        // reading them concurrently is why every store is volatile.
        unsafe {
            match *bytes {
                [b0, b1] if offset.is_multiple_of(2) => at.cast::<u16>().write_volatile(u16::from_le_bytes([b0, b1])),
                [b0, b1, b2, b3] if offset.is_multiple_of(4) => {
                    at.cast::<u32>().write_volatile(u32::from_le_bytes([b0, b1, b2, b3]))
                }
                [b0, b1, b2, b3, b4, b5, b6, b7] if offset.is_multiple_of(8) => at
                    .cast::<u64>()
                    .write_volatile(u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7])),
                _ => {
                    for (i, &byte) in bytes.iter().enumerate() {
                        at.add(i).write_volatile(byte);
                    }
                }
            }
        }
    }

    /// Copies from `offset` into `buf` with volatile loads (as `write`).
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        let at = self.0.at(offset, buf.len(), 1);
        // SAFETY: in bounds (checked); volatile because the device writes
        // these pages concurrently.
        unsafe {
            match buf.len() {
                2 if offset.is_multiple_of(2) => buf.copy_from_slice(&at.cast::<u16>().read_volatile().to_le_bytes()),
                4 if offset.is_multiple_of(4) => buf.copy_from_slice(&at.cast::<u32>().read_volatile().to_le_bytes()),
                8 if offset.is_multiple_of(8) => buf.copy_from_slice(&at.cast::<u64>().read_volatile().to_le_bytes()),
                _ => {
                    for (i, byte) in buf.iter_mut().enumerate() {
                        *byte = at.add(i).read_volatile();
                    }
                }
            }
        }
    }

    fn index(&self, offset: usize) -> &AtomicU16 {
        let at = self.0.at(offset, 2, 2);
        // SAFETY: in bounds and 2-aligned (checked); the pages live as long
        // as `self`, and every other access to them is volatile or atomic.
        unsafe { AtomicU16::from_ptr(at.cast()) }
    }

    /// A release store of a ring index.
    pub fn publish_u16(&self, offset: usize, value: u16) {
        self.index(offset).store(value, Ordering::Release);
    }

    /// An acquire load of a ring index.
    pub fn observe_u16(&self, offset: usize) -> u16 {
        self.index(offset).load(Ordering::Acquire)
    }
}

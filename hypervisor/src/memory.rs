//! Host physical memory: the frame allocator built from the multiboot2
//! memory map, and the hypervisor heap carved out of it.
//!
//! The boot code identity-maps the first 4 GiB, so only memory below that
//! line is handed out; physical addresses double as pointers.

use keel_memory::{
    FrameAllocator, GuestMemoryMap, GuestPhysAddr, HostPhysAddr, IdentityPhysMemory, MapError, MemoryKind, PhysRange,
    RangeAllocator, PAGE_SIZE_2M, PAGE_SIZE_4K,
};
use linked_list_allocator::LockedHeap;
use multiboot2::{BootInformation, MemoryAreaType};
use spin::Mutex;

/// Memory above this line is not mapped in the hypervisor's address space.
const IDENTITY_MAPPED_LIMIT: u64 = 4 << 30;
/// The first MiB holds firmware data (BIOS data area, EBDA, option ROMs).
const LOW_MEMORY_LIMIT: u64 = 1 << 20;
const HEAP_SIZE: u64 = 8 << 20;

static FRAMES: Mutex<RangeAllocator<128>> = Mutex::new(RangeAllocator::new());

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

#[derive(Debug)]
pub enum MemoryInitError {
    NoMemoryMap,
    Allocator(keel_memory::AllocError),
    NoRoomForHeap,
}

impl core::fmt::Display for MemoryInitError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::NoMemoryMap => f.write_str("the bootloader passed no memory map"),
            Self::Allocator(error) => write!(f, "memory map rejected: {error:?}"),
            Self::NoRoomForHeap => write!(f, "no {} MiB of free memory for the heap", HEAP_SIZE >> 20),
        }
    }
}

/// Builds the frame allocator (available RAM minus the hypervisor image,
/// modules and boot information) and the heap. Returns the free bytes.
pub fn init(boot_info: &BootInformation) -> Result<u64, MemoryInitError> {
    let map = boot_info.memory_map_tag().ok_or(MemoryInitError::NoMemoryMap)?;
    let mut frames = FRAMES.lock();
    for area in map.memory_areas() {
        if MemoryAreaType::from(area.typ()) != MemoryAreaType::Available {
            continue;
        }
        let start = area.start_address().max(LOW_MEMORY_LIMIT);
        let end = area.end_address().min(IDENTITY_MAPPED_LIMIT);
        if start < end {
            let range = PhysRange::new(HostPhysAddr::new(start), HostPhysAddr::new(end));
            frames.add_free(range).map_err(MemoryInitError::Allocator)?;
        }
    }
    // The linker script defines both symbols; only their addresses are used.
    let image = (&raw const __image_start as u64, &raw const __image_end as u64);
    reserve(&mut frames, image.0, image.1)?;
    reserve(
        &mut frames,
        boot_info.start_address() as u64,
        boot_info.end_address() as u64,
    )?;
    for module in boot_info.module_tags() {
        reserve(
            &mut frames,
            u64::from(module.start_address()),
            u64::from(module.end_address()),
        )?;
    }
    let heap = frames
        .allocate(HEAP_SIZE, PAGE_SIZE_4K)
        .ok_or(MemoryInitError::NoRoomForHeap)?;
    // SAFETY: the range was just taken from the allocator, is identity-mapped
    // (below 4 GiB) and nothing else refers to it; init runs once.
    unsafe { HEAP.lock().init(heap.as_u64() as *mut u8, HEAP_SIZE as usize) };
    Ok(frames.free_bytes())
}

fn reserve(frames: &mut RangeAllocator<128>, start: u64, end: u64) -> Result<(), MemoryInitError> {
    let start = start & !(PAGE_SIZE_4K - 1);
    let end = end.div_ceil(PAGE_SIZE_4K) * PAGE_SIZE_4K;
    if start >= end {
        return Ok(());
    }
    frames
        .reserve(PhysRange::new(HostPhysAddr::new(start), HostPhysAddr::new(end)))
        .map_err(MemoryInitError::Allocator)
}

/// A zeroed, `align`-aligned block of host memory (size in bytes, a multiple of 4 KiB).
pub fn allocate_zeroed(size: u64, align: u64) -> Option<HostPhysAddr> {
    let block = FRAMES.lock().allocate(size, align)?;
    // SAFETY: the block is identity-mapped, freshly allocated and owned by the caller now.
    unsafe { core::ptr::write_bytes(block.as_u64() as *mut u8, 0, size as usize) };
    Some(block)
}

/// Returns a block from [`allocate_zeroed`].
pub fn free(block: HostPhysAddr, size: u64) {
    if let Err(error) = FRAMES.lock().free(block, size) {
        log::error!("freeing {size:#x} bytes at {block}: {error:?} (memory leaked)");
    }
}

/// Takes `[start, end)` out of the free memory for good (firmware's, found
/// after the allocator was built). Returns whether any of it was free.
/// Pages of it already handed out stay where they are.
pub fn withhold(start: u64, end: u64) -> bool {
    let mut frames = FRAMES.lock();
    let before = frames.free_bytes();
    if reserve(&mut frames, start, end).is_err() {
        return false;
    }
    frames.free_bytes() != before
}

pub fn free_bytes() -> u64 {
    FRAMES.lock().free_bytes()
}

/// The global frame allocator as a [`FrameAllocator`] for page-table builders.
pub struct HostFrames;

impl FrameAllocator for HostFrames {
    fn allocate_frame(&mut self) -> Option<HostPhysAddr> {
        allocate_zeroed(PAGE_SIZE_4K, PAGE_SIZE_4K)
    }

    fn free_frame(&mut self, frame: HostPhysAddr) {
        free(frame, PAGE_SIZE_4K);
    }
}

/// Access to host frames through the identity map.
pub fn phys_memory() -> IdentityPhysMemory {
    // SAFETY: every frame the allocator hands out lies below 4 GiB, which
    // the boot page tables identity-map read/write.
    unsafe { IdentityPhysMemory::new() }
}

/// A guest's physical address space, its RAM reached through the identity
/// map. Its RAM regions are always blocks from [`allocate_guest_ram`].
pub type GuestRam = GuestMemoryMap<IdentityPhysMemory>;

/// Why [`allocate_guest_ram`] added nothing.
#[derive(Debug)]
pub enum GuestRamError {
    /// No free block of that size.
    OutOfMemory,
    /// The map refused the region (the block went back to the allocator).
    Map(MapError),
}

/// Allocates a zeroed, 2 MiB-aligned host block of `size` bytes (a multiple
/// of 4 KiB) and adds it to `ram` as guest RAM at `gpa`. The block belongs
/// to `ram` from then on, until [`free_guest_ram`].
pub fn allocate_guest_ram(ram: &mut GuestRam, gpa: GuestPhysAddr, size: u64) -> Result<HostPhysAddr, GuestRamError> {
    let block = allocate_zeroed(size, PAGE_SIZE_2M).ok_or(GuestRamError::OutOfMemory)?;
    // SAFETY: the block was just taken from the frame allocator for this map
    // alone and is only returned by `free_guest_ram`, which consumes the map;
    // it lies below 4 GiB, so every frame of it is identity-mapped read/write
    // for `IdentityPhysMemory`; nothing makes a Rust reference to it (the map
    // copies through raw pointers and hands none out).
    match unsafe { ram.add_ram(gpa, block, size) } {
        Ok(()) => Ok(block),
        Err(error) => {
            free(block, size);
            Err(GuestRamError::Map(error))
        }
    }
}

/// Returns every RAM block of `ram` to the frame allocator, together with
/// the map that reached them.
pub fn free_guest_ram(ram: GuestRam) {
    for region in ram.regions() {
        if let (MemoryKind::Ram, Some(host)) = (region.kind(), region.host()) {
            free(host, region.len());
        }
    }
}

/// A byte view of a host block the caller owns.
///
/// # Safety
/// `[block, block + len)` must be allocated to the caller and not aliased.
pub unsafe fn block_bytes<'a>(block: HostPhysAddr, len: u64) -> &'a mut [u8] {
    // SAFETY: delegated to the caller; the block is identity-mapped.
    unsafe { core::slice::from_raw_parts_mut(block.as_u64() as *mut u8, len as usize) }
}

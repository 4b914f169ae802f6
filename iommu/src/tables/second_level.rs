//! Second-level page tables (VT-d §3.7 and §9.8): translate a device's DMA
//! addresses, which for an assigned device are guest-physical addresses, to
//! host-physical ones with 3, 4 or 5 levels of 512-entry tables.

use keel_memory::{FrameAllocator, GuestPhysAddr, HostPhysAddr, PAGE_SIZE_1G, PAGE_SIZE_2M, PAGE_SIZE_4K};

use super::{TableError, ENTRIES_PER_TABLE};
use crate::caps::{Agaw, Capabilities, ExtendedCapabilities, LargePages};
use crate::TableMemory;

const READ: u64 = 1 << 0;
const WRITE: u64 = 1 << 1;
/// PS: in a level-2 or level-3 entry, the entry maps a 2 MiB or 1 GiB page.
const PAGE_SIZE_BIT: u64 = 1 << 7;
/// SNP: force the access to snoop processor caches (needs ECAP.SC).
const SNOOP: u64 = 1 << 11;
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Non-leaf entries: permissions are enforced at the leaves.
const TABLE_POINTER: u64 = READ | WRITE;

/// Host addresses are at most 52 bits (entry bits 51:12).
pub const HOST_ADDRESS_LIMIT: u64 = 1 << 52;

/// Ordered smallest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageSize {
    Size4K,
    Size2M,
    Size1G,
}

impl PageSize {
    const LARGEST_FIRST: [Self; 3] = [Self::Size1G, Self::Size2M, Self::Size4K];

    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4K => PAGE_SIZE_4K,
            Self::Size2M => PAGE_SIZE_2M,
            Self::Size1G => PAGE_SIZE_1G,
        }
    }

    /// The table level (1 = last) whose entries map pages of this size.
    const fn level(self) -> u8 {
        match self {
            Self::Size4K => 1,
            Self::Size2M => 2,
            Self::Size1G => 3,
        }
    }
}

/// What a device may do to a mapped page. A write-only mapping is valid
/// in VT-d (unlike EPT).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Access {
    pub read: bool,
    pub write: bool,
}

impl Access {
    pub const READ: Self = Self {
        read: true,
        write: false,
    };
    pub const READ_WRITE: Self = Self {
        read: true,
        write: true,
    };

    const fn bits(self) -> u64 {
        (if self.read { READ } else { 0 }) | (if self.write { WRITE } else { 0 })
    }

    const fn from_entry(entry: u64) -> Self {
        Self {
            read: entry & READ != 0,
            write: entry & WRITE != 0,
        }
    }
}

/// How the tables are shaped, from the unit's capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlConfig {
    pub agaw: Agaw,
    pub large_pages: LargePages,
    /// Set SNP in every leaf.
    pub snoop: bool,
}

impl SlConfig {
    /// The smallest walk the unit supports that covers `address_bits`, the
    /// superpages it supports, and SNP where snoop control exists. Tables
    /// shared by several units need the intersection of their configs.
    pub fn for_unit(cap: Capabilities, ecap: ExtendedCapabilities, address_bits: u8) -> Option<Self> {
        Some(Self {
            agaw: cap.agaw_covering(address_bits)?,
            large_pages: cap.large_pages(),
            snoop: ecap.snoop_control(),
        })
    }

    fn supports(&self, size: PageSize) -> bool {
        match size {
            PageSize::Size4K => true,
            PageSize::Size2M => self.large_pages.size_2m,
            PageSize::Size1G => self.large_pages.size_1g,
        }
    }
}

/// Where an address lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlTranslation {
    /// The exact host address, page offset included.
    pub hpa: HostPhysAddr,
    pub size: PageSize,
    pub access: Access,
    pub snoop: bool,
}

/// What a walk found.
enum Walk {
    Leaf {
        entry: u64,
        size: PageSize,
    },
    /// Not present at `level`, whose entries span `2^(12 + 9 * (level-1))`.
    Hole {
        level: u8,
    },
}

const fn level_shift(level: u8) -> u32 {
    12 + 9 * (level as u32 - 1)
}

const fn index(level: u8, address: u64) -> u64 {
    (address >> level_shift(level)) & (ENTRIES_PER_TABLE - 1)
}

fn entry_address(table: HostPhysAddr, level: u8, address: u64) -> HostPhysAddr {
    HostPhysAddr::new(table.as_u64() + index(level, address) * 8)
}

const fn is_present(entry: u64) -> bool {
    entry & (READ | WRITE) != 0
}

fn is_leaf(entry: u64, level: u8) -> bool {
    level == 1 || (matches!(level, 2 | 3) && entry & PAGE_SIZE_BIT != 0)
}

const fn pointed_table(entry: u64) -> HostPhysAddr {
    HostPhysAddr::new(entry & ADDRESS_MASK)
}

const fn leaf_size(level: u8) -> PageSize {
    match level {
        3 => PageSize::Size1G,
        2 => PageSize::Size2M,
        _ => PageSize::Size4K,
    }
}

/// One domain's second-level tables; owns the table frames (not the mapped
/// pages). Dropping it without [`SecondLevelTables::destroy`] leaks them.
#[derive(Debug)]
pub struct SecondLevelTables {
    root: HostPhysAddr,
    config: SlConfig,
}

impl SecondLevelTables {
    /// Empty tables: every address faults.
    pub fn new(
        config: SlConfig,
        alloc: &mut impl FrameAllocator,
        mem: &mut impl TableMemory,
    ) -> Result<Self, TableError> {
        let root = alloc.allocate_frame().ok_or(TableError::OutOfFrames)?;
        mem.zero_frame(root);
        Ok(Self { root, config })
    }

    /// The top table, for the context entry's SLPTPTR.
    pub fn root(&self) -> HostPhysAddr {
        self.root
    }

    pub fn config(&self) -> SlConfig {
        self.config
    }

    fn top_level(&self) -> u8 {
        self.config.agaw.levels()
    }

    fn check_range(&self, iova: u64, hpa: u64, len: u64) -> Result<(), TableError> {
        let iova_end = iova.checked_add(len).ok_or(TableError::AddressOutOfRange)?;
        let hpa_end = hpa.checked_add(len).ok_or(TableError::AddressOutOfRange)?;
        if iova_end > self.config.agaw.limit() || hpa_end > HOST_ADDRESS_LIMIT {
            return Err(TableError::AddressOutOfRange);
        }
        Ok(())
    }

    /// Maps one page. On error nothing changes and no frame leaks.
    pub fn map(
        &mut self,
        iova: GuestPhysAddr,
        hpa: HostPhysAddr,
        size: PageSize,
        access: Access,
        alloc: &mut impl FrameAllocator,
        mem: &mut impl TableMemory,
    ) -> Result<(), TableError> {
        if access == Access::default() {
            return Err(TableError::NoAccess);
        }
        if !self.config.supports(size) {
            return Err(TableError::PageSizeUnsupported);
        }
        if !iova.is_aligned(size.bytes()) || !hpa.is_aligned(size.bytes()) {
            return Err(TableError::Misaligned);
        }
        self.check_range(iova.as_u64(), hpa.as_u64(), size.bytes())?;
        let large = if size == PageSize::Size4K { 0 } else { PAGE_SIZE_BIT };
        let snoop = if self.config.snoop { SNOOP } else { 0 };
        let leaf = hpa.as_u64() | access.bits() | large | snoop;

        let target = size.level();
        let iova = iova.as_u64();
        let (mut table, mut level) = self.deepest_table_towards(iova, target, mem)?;
        let needed = usize::from(level - target);
        let mut fresh = [None; 4];
        for slot in fresh.iter_mut().take(needed) {
            *slot = alloc.allocate_frame();
        }
        if fresh.iter().take(needed).any(Option::is_none) {
            fresh.into_iter().flatten().for_each(|frame| alloc.free_frame(frame));
            return Err(TableError::OutOfFrames);
        }
        for frame in fresh.into_iter().flatten() {
            mem.zero_frame(frame);
            mem.write_u64(entry_address(table, level, iova), frame.as_u64() | TABLE_POINTER);
            table = frame;
            level -= 1;
        }
        mem.write_u64(entry_address(table, level, iova), leaf);
        Ok(())
    }

    /// The lowest existing table on the way to `target`, with its level,
    /// if a leaf can go there.
    fn deepest_table_towards(
        &self,
        iova: u64,
        target: u8,
        mem: &impl TableMemory,
    ) -> Result<(HostPhysAddr, u8), TableError> {
        let mut table = self.root;
        let mut level = self.top_level();
        loop {
            let entry = mem.read_u64(entry_address(table, level, iova));
            if !is_present(entry) {
                return Ok((table, level));
            }
            if level == target || is_leaf(entry, level) {
                return Err(TableError::AlreadyMapped);
            }
            table = pointed_table(entry);
            level -= 1;
        }
    }

    /// Maps `len` bytes with the largest pages the unit supports that the
    /// alignment of both addresses and the remaining length allow. On error
    /// the pages this call mapped are unmapped again.
    pub fn map_range(
        &mut self,
        iova: GuestPhysAddr,
        hpa: HostPhysAddr,
        len: u64,
        access: Access,
        alloc: &mut impl FrameAllocator,
        mem: &mut impl TableMemory,
    ) -> Result<(), TableError> {
        if !iova.is_aligned(PAGE_SIZE_4K) || !hpa.is_aligned(PAGE_SIZE_4K) || !len.is_multiple_of(PAGE_SIZE_4K) {
            return Err(TableError::Misaligned);
        }
        self.check_range(iova.as_u64(), hpa.as_u64(), len)?;
        let mut done = 0;
        while done < len {
            // In range: done < len and both ends were checked above.
            let page_iova = GuestPhysAddr::new(iova.as_u64() + done);
            let page_hpa = HostPhysAddr::new(hpa.as_u64() + done);
            let size = self.largest_page(page_iova, page_hpa, len - done);
            if let Err(error) = self.map(page_iova, page_hpa, size, access, alloc, mem) {
                // Cannot fail: exactly these pages were just mapped.
                let _ = self.unmap_range(iova, done, alloc, mem);
                return Err(error);
            }
            done += size.bytes();
        }
        Ok(())
    }

    fn largest_page(&self, iova: GuestPhysAddr, hpa: HostPhysAddr, remaining: u64) -> PageSize {
        PageSize::LARGEST_FIRST
            .into_iter()
            .find(|&size| {
                let bytes = size.bytes();
                self.config.supports(size) && iova.is_aligned(bytes) && hpa.is_aligned(bytes) && remaining >= bytes
            })
            .unwrap_or(PageSize::Size4K)
    }

    /// Removes the page of `size` at `iova` and returns the host address it
    /// mapped. Tables left empty are freed.
    pub fn unmap(
        &mut self,
        iova: GuestPhysAddr,
        size: PageSize,
        alloc: &mut impl FrameAllocator,
        mem: &mut impl TableMemory,
    ) -> Result<HostPhysAddr, TableError> {
        if !iova.is_aligned(size.bytes()) {
            return Err(TableError::Misaligned);
        }
        if iova.as_u64() >= self.config.agaw.limit() {
            return Err(TableError::AddressOutOfRange);
        }
        let entry = unmap_below(self.root, self.top_level(), iova.as_u64(), size.level(), alloc, mem)?;
        Ok(HostPhysAddr::new(entry & ADDRESS_MASK))
    }

    /// Unmaps every page inside `[iova, iova + len)`, skipping holes. Fails
    /// without changing anything if a page straddles either end.
    pub fn unmap_range(
        &mut self,
        iova: GuestPhysAddr,
        len: u64,
        alloc: &mut impl FrameAllocator,
        mem: &mut impl TableMemory,
    ) -> Result<(), TableError> {
        if !iova.is_aligned(PAGE_SIZE_4K) || !len.is_multiple_of(PAGE_SIZE_4K) {
            return Err(TableError::Misaligned);
        }
        let start = iova.as_u64();
        let end = start.checked_add(len).ok_or(TableError::AddressOutOfRange)?;
        if end > self.config.agaw.limit() {
            return Err(TableError::AddressOutOfRange);
        }
        for (page, size, mapped) in self.spans(start, end, mem) {
            if mapped && (page < start || page + size.bytes() > end) {
                return Err(TableError::SizeMismatch);
            }
        }
        // Collecting first would need a buffer; re-walking after each unmap
        // is correct because unmapping only turns spans into holes.
        let mut address = start;
        while address < end {
            match self.walk(address, mem) {
                Walk::Leaf { size, .. } => {
                    self.unmap(GuestPhysAddr::new(address), size, alloc, mem)?;
                    address += size.bytes();
                }
                Walk::Hole { level } => address = next_boundary(address, level),
            }
        }
        Ok(())
    }

    /// The pages and holes covering `[start, end)`: (first address of the
    /// span, its size as a page size where mapped, whether it is mapped).
    fn spans<'a, M: TableMemory>(
        &'a self,
        start: u64,
        end: u64,
        mem: &'a M,
    ) -> impl Iterator<Item = (u64, PageSize, bool)> + 'a {
        let mut address = start;
        core::iter::from_fn(move || {
            if address >= end {
                return None;
            }
            let span = match self.walk(address, mem) {
                Walk::Leaf { size, .. } => {
                    let base = address & !(size.bytes() - 1);
                    address = base + size.bytes();
                    (base, size, true)
                }
                Walk::Hole { level } => {
                    let hole = address;
                    address = next_boundary(address, level);
                    (hole, PageSize::Size4K, false)
                }
            };
            Some(span)
        })
    }

    fn walk(&self, iova: u64, mem: &impl TableMemory) -> Walk {
        let mut table = self.root;
        let mut level = self.top_level();
        loop {
            let entry = mem.read_u64(entry_address(table, level, iova));
            if !is_present(entry) {
                return Walk::Hole { level };
            }
            if is_leaf(entry, level) {
                return Walk::Leaf {
                    entry,
                    size: leaf_size(level),
                };
            }
            table = pointed_table(entry);
            level -= 1;
        }
    }

    /// The translation of any address; `None` if it would fault.
    pub fn translate(&self, iova: GuestPhysAddr, mem: &impl TableMemory) -> Option<SlTranslation> {
        if iova.as_u64() >= self.config.agaw.limit() {
            return None;
        }
        let Walk::Leaf { entry, size } = self.walk(iova.as_u64(), mem) else {
            return None;
        };
        let base = entry & ADDRESS_MASK & !(size.bytes() - 1);
        Some(SlTranslation {
            hpa: HostPhysAddr::new(base | (iova.as_u64() & (size.bytes() - 1))),
            size,
            access: Access::from_entry(entry),
            snoop: entry & SNOOP != 0,
        })
    }

    /// Frees every table frame; mapped pages are left alone. No context
    /// entry may point here any more.
    pub fn destroy(self, alloc: &mut impl FrameAllocator, mem: &impl TableMemory) {
        free_subtree(self.root, self.top_level(), alloc, mem);
    }
}

/// The first address past the `level` entry containing `address`.
fn next_boundary(address: u64, level: u8) -> u64 {
    let span = 1u64 << level_shift(level);
    (address & !(span - 1)).saturating_add(span)
}

/// Recursion depth is bounded by the five levels.
fn unmap_below(
    table: HostPhysAddr,
    level: u8,
    iova: u64,
    target: u8,
    alloc: &mut impl FrameAllocator,
    mem: &mut impl TableMemory,
) -> Result<u64, TableError> {
    let address = entry_address(table, level, iova);
    let entry = mem.read_u64(address);
    if !is_present(entry) {
        return Err(TableError::NotMapped);
    }
    if is_leaf(entry, level) != (level == target) {
        return Err(TableError::SizeMismatch);
    }
    if level == target {
        mem.write_u64(address, 0);
        return Ok(entry);
    }
    let child = pointed_table(entry);
    let removed = unmap_below(child, level - 1, iova, target, alloc, mem)?;
    let child_empty = (0..ENTRIES_PER_TABLE).all(|index| {
        let entry = mem.read_u64(HostPhysAddr::new(child.as_u64() + index * 8));
        !is_present(entry)
    });
    if child_empty {
        mem.write_u64(address, 0);
        alloc.free_frame(child);
    }
    Ok(removed)
}

fn free_subtree(table: HostPhysAddr, level: u8, alloc: &mut impl FrameAllocator, mem: &impl TableMemory) {
    for index in 0..ENTRIES_PER_TABLE {
        let entry = mem.read_u64(HostPhysAddr::new(table.as_u64() + index * 8));
        if is_present(entry) && !is_leaf(entry, level) {
            free_subtree(pointed_table(entry), level - 1, alloc, mem);
        }
    }
    alloc.free_frame(table);
}

#[cfg(test)]
mod tests;

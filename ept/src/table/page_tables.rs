use core::marker::PhantomData;

use keel_memory::{FrameAllocator, HostPhysAddr, PhysMemory};

use super::frame::TableFrame;
use super::level::{EntryIndex, Level};
use super::{is_leaf, is_present, EntryFormat};
use crate::error::EptError;
use crate::flags::PageSize;

/// A leaf entry found by a walk, with the size of the page it maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub(crate) entry: u64,
    pub(crate) size: PageSize,
}

/// A 4-level table tree. Callers pass addresses already checked to be within
/// the 48 bits a 4-level walk covers and aligned to the page size, and leaf
/// entries already encoded for the format.
#[derive(Debug)]
pub(crate) struct PageTables<F> {
    root: TableFrame,
    format: PhantomData<F>,
}

impl<F: EntryFormat> PageTables<F> {
    pub(crate) fn new(alloc: &mut impl FrameAllocator, mem: &impl PhysMemory) -> Result<Self, EptError> {
        let root = TableFrame::allocate(alloc, mem).ok_or(EptError::OutOfFrames)?;
        Ok(Self {
            root,
            format: PhantomData,
        })
    }

    pub(crate) fn root(&self) -> HostPhysAddr {
        self.root.addr()
    }

    pub(crate) fn lookup(&self, addr: u64, mem: &impl PhysMemory) -> Option<Leaf> {
        let mut table = self.root;
        let mut level = Level::TOP;
        loop {
            let entry = table.read(mem, level.index(addr));
            if !is_present::<F>(entry) {
                return None;
            }
            if is_leaf(entry, level) {
                return Some(Leaf {
                    entry,
                    size: level.leaf_size()?,
                });
            }
            table = TableFrame::from_pointer_entry(entry);
            level = level.below();
        }
    }

    /// Installs `leaf_entry` for the page of `size` at `addr`, creating
    /// missing tables. All frames are allocated before anything is written,
    /// so on error the tree is unchanged and no frame is leaked.
    pub(crate) fn map_leaf(
        &mut self,
        addr: u64,
        leaf_entry: u64,
        size: PageSize,
        alloc: &mut impl FrameAllocator,
        mem: &impl PhysMemory,
    ) -> Result<(), EptError> {
        let target = Level::for_leaf(size);
        let (mut table, mut level) = self.deepest_table_towards(addr, target, mem)?;

        let mut fresh: [Option<TableFrame>; 3] = [None; 3];
        for slot in fresh.iter_mut().take(level.tables_down_to(target)) {
            *slot = TableFrame::allocate(alloc, mem);
        }
        if fresh.iter().take(level.tables_down_to(target)).any(Option::is_none) {
            fresh.into_iter().flatten().for_each(|frame| frame.free(alloc));
            return Err(EptError::OutOfFrames);
        }

        for new_table in fresh.into_iter().flatten() {
            table.write(mem, level.index(addr), new_table.pointer_entry(F::TABLE_POINTER_FLAGS));
            table = new_table;
            level = level.below();
        }
        table.write(mem, target.index(addr), leaf_entry);
        Ok(())
    }

    /// Walks towards the `target` level and returns the lowest existing
    /// table on the way, with its level, if a leaf can go there.
    fn deepest_table_towards(
        &self,
        addr: u64,
        target: Level,
        mem: &impl PhysMemory,
    ) -> Result<(TableFrame, Level), EptError> {
        let mut table = self.root;
        let mut level = Level::TOP;
        loop {
            let entry = table.read(mem, level.index(addr));
            if !is_present::<F>(entry) {
                return Ok((table, level));
            }
            // Present at the target level is either the same-size page or a
            // table of smaller mappings; above it, a leaf is a larger page.
            if level == target || is_leaf(entry, level) {
                return Err(EptError::AlreadyMapped);
            }
            table = TableFrame::from_pointer_entry(entry);
            level = level.below();
        }
    }

    /// Clears the leaf of `size` at `addr` and returns it. Tables left empty
    /// are freed, so a region can later be remapped with larger pages.
    pub(crate) fn unmap_leaf(
        &mut self,
        addr: u64,
        size: PageSize,
        alloc: &mut impl FrameAllocator,
        mem: &impl PhysMemory,
    ) -> Result<u64, EptError> {
        unmap_below::<F>(self.root, Level::TOP, addr, Level::for_leaf(size), alloc, mem)
    }

    /// Frees every table frame; mapped pages are left alone.
    pub(crate) fn destroy(self, alloc: &mut impl FrameAllocator, mem: &impl PhysMemory) {
        free_subtree::<F>(self.root, Level::TOP, alloc, mem);
    }
}

fn unmap_below<F: EntryFormat>(
    table: TableFrame,
    level: Level,
    addr: u64,
    target: Level,
    alloc: &mut impl FrameAllocator,
    mem: &impl PhysMemory,
) -> Result<u64, EptError> {
    let index = level.index(addr);
    let entry = table.read(mem, index);
    if !is_present::<F>(entry) {
        return Err(EptError::NotMapped);
    }
    if is_leaf(entry, level) != (level == target) {
        return Err(EptError::SizeMismatch);
    }
    if level == target {
        table.write(mem, index, 0);
        return Ok(entry);
    }
    let child = TableFrame::from_pointer_entry(entry);
    let removed = unmap_below::<F>(child, level.below(), addr, target, alloc, mem)?;
    if is_empty::<F>(child, mem) {
        table.write(mem, index, 0);
        child.free(alloc);
    }
    Ok(removed)
}

fn is_empty<F: EntryFormat>(table: TableFrame, mem: &impl PhysMemory) -> bool {
    EntryIndex::all().all(|index| !is_present::<F>(table.read(mem, index)))
}

/// Recursion depth is bounded by the four levels.
fn free_subtree<F: EntryFormat>(
    table: TableFrame,
    level: Level,
    alloc: &mut impl FrameAllocator,
    mem: &impl PhysMemory,
) {
    for index in EntryIndex::all() {
        let entry = table.read(mem, index);
        if is_present::<F>(entry) && !is_leaf(entry, level) {
            free_subtree::<F>(TableFrame::from_pointer_entry(entry), level.below(), alloc, mem);
        }
    }
    table.free(alloc);
}

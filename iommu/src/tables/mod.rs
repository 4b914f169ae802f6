//! Legacy-mode translation structures (VT-d §3.4 and chapter 9): the root
//! table (one entry per bus), context tables (one entry per device and
//! function) and second-level page tables.
//!
//! The tables live in frames from a [`keel_memory::FrameAllocator`] and are
//! read and written through [`TableMemory`](crate::TableMemory). Nothing
//! here invalidates hardware caches: after changing an entry the unit may
//! have cached, the caller issues the matching invalidation (context cache
//! for context entries, IOTLB for page tables; with CAP.CM set also after
//! making an entry present).
//!
//! Why not `keel-ept`'s walker: EPT and VT-d second-level entries agree on
//! bits 1:0 (read, write), bit 7 (large page) and bits 51:12 (address), and
//! `keel-ept`'s 4-level walker was written with that in mind, but it is
//! private to that crate, walks exactly 4 levels where VT-d units may only
//! offer 3 (CAP.SAGAW 39-bit only, as QEMU's `aw-bits=39`) or 5, cannot set the VT-d
//! bits (SNP, bit 11) and touches memory through raw pointers while this
//! crate forbids `unsafe`. The walker here has the same shape (all frames
//! allocated before anything is written, emptied tables freed on unmap);
//! exporting a level-generic walker from `keel-ept` would let both share it.

mod context;
mod error;
mod second_level;

pub use context::{ContextEntry, RootEntry, RootTable, TranslationType};
pub use error::TableError;
pub use second_level::{Access, PageSize, SecondLevelTables, SlConfig, SlTranslation, HOST_ADDRESS_LIMIT};

/// A table is one 4 KiB frame of 512 eight-byte entries (page tables) or
/// 256 sixteen-byte entries (root and context tables).
pub const ENTRIES_PER_TABLE: u64 = 512;

//! Input of the `mmio_decode` target.
//!
//! ```text
//! u8 selector          bit 0 clear: the rest is instruction bytes to decode;
//!                      bit 0 set: a page-walk case follows
//! u64 cr0, u64 cr3, u64 cr4, u64 efer, u8 max_phys_addr_bits, u64 linear_ip
//! { u16 gpa, u8 len, len bytes }...   contents of guest memory
//! ```
//!
//! Guest memory is a [`GuestMemoryMap`] like the hypervisor's: RAM
//! `[0, 0x8000)` and `[0x8000, 0xF000)` in two host blocks, a reserved hole
//! `[0xF000, 0x10000)` and an MMIO page at `0x10000`; chunks that would
//! touch anything but RAM are dropped.

use keel_insn::walk::PagingState;
use keel_memory::test_support::ArenaMemory;
use keel_memory::{GuestMemory, GuestMemoryMap, GuestPhysAddr};

use crate::{Input, Output};

pub const RAM_END: u64 = 0xF000;
pub const MMIO_PAGE: u64 = 0x1_0000;

pub enum Case<'a> {
    /// Bytes for the decoder alone.
    Decode(&'a [u8]),
    Walk(WalkCase),
}

pub struct WalkCase {
    pub paging: PagingState,
    pub linear_ip: u64,
    pub memory: GuestMemoryMap<ArenaMemory>,
}

pub fn memory() -> GuestMemoryMap<ArenaMemory> {
    let mut memory = GuestMemoryMap::new(ArenaMemory::new());
    let layout = memory
        .add_arena_ram(GuestPhysAddr::new(0), 0x8000)
        .and_then(|_| memory.add_arena_ram(GuestPhysAddr::new(0x8000), RAM_END - 0x8000))
        .and_then(|_| memory.add_reserved(GuestPhysAddr::new(RAM_END), MMIO_PAGE - RAM_END))
        .and_then(|()| memory.add_mmio(GuestPhysAddr::new(MMIO_PAGE), 0x1000));
    layout.expect("the fixed layout is valid");
    memory
}

impl<'a> Case<'a> {
    pub fn parse(data: &'a [u8]) -> Self {
        let mut input = Input::new(data);
        if input.u8() & 1 == 0 {
            return Self::Decode(input.rest());
        }
        let (cr0, cr3, cr4, efer) = (input.u64(), input.u64(), input.u64(), input.u64());
        let paging = PagingState::new(cr0, cr3, cr4, efer).with_max_phys_addr_bits(input.u8());
        let linear_ip = input.u64();
        let mut memory = memory();
        while !input.is_empty() {
            let gpa = u64::from(input.u16());
            let len = usize::from(input.u8());
            // Chunks that touch anything but RAM are dropped.
            let _ = memory.write(GuestPhysAddr::new(gpa), input.take(len));
        }
        Self::Walk(WalkCase {
            paging,
            linear_ip,
            memory,
        })
    }
}

/// Seed encoders.
pub fn decode_seed(bytes: &[u8]) -> Vec<u8> {
    let mut out = Output::default();
    out.u8(0).bytes(bytes);
    out.bytes
}

pub struct WalkSeed<'a> {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub max_phys_addr_bits: u8,
    pub linear_ip: u64,
    pub chunks: &'a [(u16, &'a [u8])],
}

impl WalkSeed<'_> {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Output::default();
        out.u8(1)
            .u64(self.cr0)
            .u64(self.cr3)
            .u64(self.cr4)
            .u64(self.efer)
            .u8(self.max_phys_addr_bits)
            .u64(self.linear_ip);
        for (gpa, bytes) in self.chunks {
            for (index, piece) in bytes.chunks(255).enumerate() {
                out.u16(gpa + (index * 255) as u16).u8(piece.len() as u8).bytes(piece);
            }
        }
        out.bytes
    }
}

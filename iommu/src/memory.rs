//! How the crate reaches the memory that holds remapping structures.

use keel_memory::HostPhysAddr;

/// Access to host-physical memory holding root, context, page and interrupt
/// remapping tables and the invalidation queue. The hypervisor implements it
/// over its identity map; tests use a map of fake frames.
///
/// Addresses passed in are 8-byte aligned and lie in frames the caller
/// allocated for these structures (from a [`keel_memory::FrameAllocator`]).
///
/// Implementations for a remapping unit whose page walks do not snoop the
/// processor caches (`ECAP.C` clear, see its description in VT-d §10.4.3) must write each modified
/// cache line back to memory (`clflush`) before `write_u64` returns, so the
/// hardware sees what was written.
pub trait TableMemory {
    fn read_u64(&self, addr: HostPhysAddr) -> u64;

    fn write_u64(&mut self, addr: HostPhysAddr, value: u64);

    /// Zeroes one 4 KiB frame; override with something faster than 512
    /// single writes if it matters.
    fn zero_frame(&mut self, frame: HostPhysAddr) {
        for index in 0..512 {
            self.write_u64(HostPhysAddr::new(frame.as_u64() + index * 8), 0);
        }
    }
}

/// Read-only access to guest-physical memory.
///
/// Implementations must return `None` for any address (or any byte of a range)
/// that is not backed by ordinary guest RAM — in particular for emulated MMIO
/// ranges — so that a hostile guest cannot make the hypervisor read device
/// state or host memory by pointing its page tables there.
pub trait GuestMemoryRead {
    /// Reads the little-endian 64-bit value at `gpa` (a paging-structure entry).
    fn read_u64(&self, gpa: u64) -> Option<u64>;

    /// Fills `buf` from guest-physical memory starting at `gpa`; all or nothing.
    fn read_bytes(&self, gpa: u64, buf: &mut [u8]) -> Option<()>;
}

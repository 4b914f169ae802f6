//! A validated descriptor chain and byte-stream access to its buffers.
//!
//! [`crate::queue::Queue::pop`] copies a chain's descriptors out of guest
//! memory once, validates the copy and returns it as a [`DescriptorChain`]:
//! a fixed-capacity list of [`Segment`]s, device-readable ones first. Device
//! code then sees the chain as two byte streams: the readable part through a
//! [`ChainReader`] and the writable part through a [`ChainWriter`]. Neither
//! exposes an address, and both copy through [`GuestMemory`], so a segment
//! that points outside guest RAM fails that copy (a per-request error), never
//! the device.
//!
//! Segment boundaries carry no meaning (virtio 1.x: "the device MUST NOT make
//! assumptions about the particular arrangement of descriptors"), which is
//! why everything here is a stream.

use crate::memory::{GuestMemory, MemoryError};
use crate::queue::QueueError;

/// Most segments one chain can hold; [`crate::queue::Queue`] may be
/// configured to accept fewer. Big enough for virtio-blk with `seg_max`
/// up to 254 and for virtio-net's largest Linux chains (MAX_SKB_FRAGS + 2).
pub const MAX_CHAIN_SEGMENTS: usize = 256;

/// One buffer of a chain: `len` bytes at guest-physical `addr`, which the
/// device may only read (`writable == false`) or only write.
///
/// `addr + len` never overflows in a segment of a validated chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub addr: u64,
    pub len: u32,
    pub writable: bool,
}

/// A descriptor chain as popped from a queue: its head index (to hand back
/// with [`crate::queue::Queue::add_used`]) and its segments, readable ones
/// before writable ones. Plain data: it refers to nothing in guest memory.
///
/// Invariants (checked by [`DescriptorChain::push`]): at most
/// [`MAX_CHAIN_SEGMENTS`] segments, no readable segment after a writable
/// one, no segment whose end overflows, and at most `u32::MAX` bytes in all
/// (so any used length fits the used ring's 32-bit field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescriptorChain {
    head: u16,
    segments: [Segment; MAX_CHAIN_SEGMENTS],
    count: usize,
    first_writable: usize,
    readable_len: u64,
    writable_len: u64,
}

impl DescriptorChain {
    /// An empty chain for `head`.
    pub fn new(head: u16) -> Self {
        Self {
            head,
            segments: [Segment::default(); MAX_CHAIN_SEGMENTS],
            count: 0,
            first_writable: 0,
            readable_len: 0,
            writable_len: 0,
        }
    }

    /// Builds a chain from segments with the same checks as a popped chain
    /// (for tests, fuzzing and devices that synthesise requests).
    pub fn from_segments(head: u16, segments: &[Segment]) -> Result<Self, QueueError> {
        let mut chain = Self::new(head);
        for &segment in segments {
            chain.push(segment, MAX_CHAIN_SEGMENTS)?;
        }
        Ok(chain)
    }

    /// Appends a segment, refusing it when the chain already holds `limit`
    /// segments (or [`MAX_CHAIN_SEGMENTS`]), when it is readable after a
    /// writable one, when its end overflows, or when the chain would exceed
    /// `u32::MAX` bytes.
    pub fn push(&mut self, segment: Segment, limit: usize) -> Result<(), QueueError> {
        if self.count >= limit.min(MAX_CHAIN_SEGMENTS) {
            return Err(QueueError::TooManySegments);
        }
        if segment.addr.checked_add(u64::from(segment.len)).is_none() {
            return Err(QueueError::AddressOverflow);
        }
        let has_writable = self.first_writable < self.count;
        if !segment.writable && has_writable {
            return Err(QueueError::ReadableAfterWritable);
        }
        let total = self.readable_len + self.writable_len + u64::from(segment.len);
        if total > u64::from(u32::MAX) {
            return Err(QueueError::ChainTooLarge);
        }
        self.segments[self.count] = segment;
        self.count += 1;
        if segment.writable {
            self.writable_len += u64::from(segment.len);
        } else {
            self.readable_len += u64::from(segment.len);
            self.first_writable = self.count;
        }
        Ok(())
    }

    /// Index of the chain's first descriptor in the descriptor table.
    pub fn head(&self) -> u16 {
        self.head
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }

    /// The device-readable segments (driver → device).
    pub fn readable(&self) -> &[Segment] {
        &self.segments[..self.first_writable]
    }

    /// The device-writable segments (device → driver).
    pub fn writable(&self) -> &[Segment] {
        &self.segments[self.first_writable..self.count]
    }

    pub fn readable_len(&self) -> u64 {
        self.readable_len
    }

    pub fn writable_len(&self) -> u64 {
        self.writable_len
    }

    /// A reader over the readable part, from its first byte.
    pub fn reader(&self) -> ChainReader<'_> {
        ChainReader {
            segments: self.readable(),
            pos: 0,
            end: self.readable_len,
        }
    }

    /// A writer over the writable part, from its first byte.
    pub fn writer(&self) -> ChainWriter<'_> {
        ChainWriter {
            segments: self.writable(),
            start: 0,
            pos: 0,
            end: self.writable_len,
        }
    }
}

/// Why a copy to or from a chain did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataError {
    /// A segment points where the memory refuses access.
    Memory(MemoryError),
    /// The stream has fewer bytes left than the copy needs (nothing copied).
    Short,
}

impl From<MemoryError> for DataError {
    fn from(error: MemoryError) -> Self {
        Self::Memory(error)
    }
}

/// Copies the stream bytes `[pos, pos + len)` of `segments` piece by piece,
/// calling `copy(gpa, offset_in_request, piece_len)`. Returns how many bytes
/// were copied before the first failure, and that failure.
fn for_each_piece(
    segments: &[Segment],
    pos: u64,
    len: usize,
    mut copy: impl FnMut(u64, usize, usize) -> Result<(), MemoryError>,
) -> (usize, Result<(), MemoryError>) {
    let mut done = 0usize;
    let mut segment_start = 0u64;
    for segment in segments {
        if done == len {
            break;
        }
        let segment_end = segment_start + u64::from(segment.len);
        let cursor = pos + done as u64;
        if cursor >= segment_start && cursor < segment_end {
            let offset = cursor - segment_start;
            let piece = (segment_end - cursor).min((len - done) as u64) as usize;
            // No overflow: `addr + len` was checked when the chain was built.
            if let Err(error) = copy(segment.addr + offset, done, piece) {
                return (done, Err(error));
            }
            done += piece;
        }
        segment_start = segment_end;
    }
    (done, Ok(()))
}

/// Reads the readable part of a chain as one byte stream.
#[derive(Clone, Debug)]
pub struct ChainReader<'a> {
    segments: &'a [Segment],
    pos: u64,
    end: u64,
}

impl ChainReader<'_> {
    /// Bytes not yet read.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    /// Bytes read (or skipped) so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Reads up to `buf.len()` bytes; returns how many (fewer only at the end
    /// of the stream). On a memory error the position still moves past the
    /// pieces that were copied.
    pub fn read<M: GuestMemory + ?Sized>(&mut self, memory: &M, buf: &mut [u8]) -> Result<usize, MemoryError> {
        let len = (buf.len() as u64).min(self.remaining()) as usize;
        let (done, result) = for_each_piece(self.segments, self.pos, len, |gpa, offset, piece| {
            memory.read(gpa, &mut buf[offset..offset + piece])
        });
        self.pos += done as u64;
        result.map(|()| done)
    }

    /// Fills all of `buf`, or reads nothing and fails with [`DataError::Short`].
    pub fn read_exact<M: GuestMemory + ?Sized>(&mut self, memory: &M, buf: &mut [u8]) -> Result<(), DataError> {
        if (buf.len() as u64) > self.remaining() {
            return Err(DataError::Short);
        }
        self.read(memory, buf)?;
        Ok(())
    }

    /// Skips up to `len` bytes; returns how many were skipped.
    pub fn skip(&mut self, len: u64) -> u64 {
        let skipped = len.min(self.remaining());
        self.pos += skipped;
        skipped
    }
}

/// Writes into (a range of) the writable part of a chain as one byte stream.
///
/// Writes are sequential, so what a writer has written is always the prefix
/// `[start, position)` of its range: exactly what the used ring's `len`
/// describes ("at least `len` bytes written, beginning at the first
/// device-writable buffer").
#[derive(Clone, Debug)]
pub struct ChainWriter<'a> {
    segments: &'a [Segment],
    start: u64,
    pos: u64,
    end: u64,
}

impl<'a> ChainWriter<'a> {
    /// Bytes this writer may still write.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    /// Offset of the next byte within the chain's writable part.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Offset within the chain's writable part where this writer's range starts.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Offset within the chain's writable part where this writer's range ends.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Bytes written by this writer.
    pub fn written(&self) -> u64 {
        self.pos - self.start
    }

    /// Whether every byte of the writer's range has been written.
    pub fn is_full(&self) -> bool {
        self.pos == self.end
    }

    /// Takes the last `len` bytes of this writer's unwritten range as a
    /// separate writer (for a trailer such as virtio-blk's status byte) and
    /// shrinks this one; `None` when fewer than `len` bytes remain.
    pub fn split_tail(&mut self, len: u64) -> Option<ChainWriter<'a>> {
        if len > self.remaining() {
            return None;
        }
        let tail_start = self.end - len;
        self.end = tail_start;
        Some(ChainWriter {
            segments: self.segments,
            start: tail_start,
            pos: tail_start,
            end: tail_start + len,
        })
    }

    /// Writes up to `data.len()` bytes; returns how many (fewer only at the
    /// end of the range). On a memory error the position still moves past
    /// the pieces that were copied, so [`written`](Self::written) stays exact.
    pub fn write<M: GuestMemory + ?Sized>(&mut self, memory: &mut M, data: &[u8]) -> Result<usize, MemoryError> {
        let len = (data.len() as u64).min(self.remaining()) as usize;
        let (done, result) = for_each_piece(self.segments, self.pos, len, |gpa, offset, piece| {
            memory.write(gpa, &data[offset..offset + piece])
        });
        self.pos += done as u64;
        result.map(|()| done)
    }

    /// Writes all of `data`, or nothing when it does not fit ([`DataError::Short`]).
    pub fn write_all<M: GuestMemory + ?Sized>(&mut self, memory: &mut M, data: &[u8]) -> Result<(), DataError> {
        if (data.len() as u64) > self.remaining() {
            return Err(DataError::Short);
        }
        self.write(memory, data)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::SliceMemory;

    fn readable(addr: u64, len: u32) -> Segment {
        Segment {
            addr,
            len,
            writable: false,
        }
    }

    fn writable(addr: u64, len: u32) -> Segment {
        Segment {
            addr,
            len,
            writable: true,
        }
    }

    #[test]
    fn push_enforces_the_invariants() {
        let mut chain = DescriptorChain::new(3);
        chain.push(readable(0, 4), 3).unwrap();
        chain.push(writable(8, 4), 3).unwrap();
        assert_eq!(chain.push(readable(16, 4), 3), Err(QueueError::ReadableAfterWritable));
        chain.push(writable(16, 0), 3).unwrap();
        assert_eq!(chain.push(writable(32, 4), 3), Err(QueueError::TooManySegments));
        assert_eq!(chain.head(), 3);
        assert_eq!((chain.readable_len(), chain.writable_len()), (4, 4));
        assert_eq!(chain.readable().len(), 1);
        assert_eq!(chain.writable().len(), 2);

        let mut chain = DescriptorChain::new(0);
        assert_eq!(chain.push(readable(u64::MAX, 1), 8), Err(QueueError::AddressOverflow));
        chain.push(readable(u64::MAX, 0), 8).unwrap();
        chain.push(readable(0, u32::MAX), 8).unwrap();
        assert_eq!(chain.push(writable(0, 1), 8), Err(QueueError::ChainTooLarge));
    }

    #[test]
    fn reader_crosses_segments_and_stops_at_the_end() {
        let mut backing = [0u8; 64];
        for (i, byte) in backing.iter_mut().enumerate() {
            *byte = i as u8;
        }
        let memory = SliceMemory::new(0, &mut backing);
        let chain =
            DescriptorChain::from_segments(0, &[readable(10, 3), readable(40, 0), readable(20, 4), writable(0, 9)])
                .unwrap();
        let mut reader = chain.reader();
        let mut buf = [0u8; 5];
        assert_eq!(reader.read(&memory, &mut buf), Ok(5));
        assert_eq!(buf, [10, 11, 12, 20, 21]);
        assert_eq!(reader.read_exact(&memory, &mut buf), Err(DataError::Short));
        assert_eq!(reader.remaining(), 2);
        assert_eq!(reader.read(&memory, &mut buf), Ok(2));
        assert_eq!(buf[..2], [22, 23]);
        assert_eq!(reader.read(&memory, &mut buf), Ok(0));
    }

    #[test]
    fn reader_skip_and_memory_errors() {
        let mut backing = [7u8; 16];
        let memory = SliceMemory::new(0, &mut backing);
        let chain = DescriptorChain::from_segments(0, &[readable(12, 4), readable(0x1000, 4)]).unwrap();
        let mut reader = chain.reader();
        assert_eq!(reader.skip(2), 2);
        let mut buf = [0u8; 6];
        assert!(reader.read(&memory, &mut buf).is_err());
        assert_eq!(reader.position(), 4, "the copied piece still counts");
        assert_eq!(reader.skip(100), 4);
    }

    #[test]
    fn writer_accounts_exactly_and_splits_a_tail() {
        let mut backing = [0u8; 32];
        let mut memory = SliceMemory::new(0, &mut backing);
        let chain = DescriptorChain::from_segments(0, &[readable(0, 4), writable(8, 2), writable(16, 3)]).unwrap();
        let mut data = chain.writer();
        let mut status = data.split_tail(1).unwrap();
        assert_eq!((status.start(), status.end()), (4, 5));
        assert!(data.split_tail(5).is_none());
        assert_eq!(data.write(&mut memory, &[1, 2, 3, 4, 5, 6]), Ok(4));
        assert!(data.is_full());
        assert_eq!(data.written(), 4);
        status.write_all(&mut memory, &[9]).unwrap();
        assert_eq!(status.write_all(&mut memory, &[9]), Err(DataError::Short));
        assert_eq!(memory.bytes()[8..10], [1, 2]);
        assert_eq!(memory.bytes()[16..19], [3, 4, 9]);
    }

    #[test]
    fn writer_stops_at_a_bad_segment() {
        let mut backing = [0u8; 8];
        let mut memory = SliceMemory::new(0, &mut backing);
        let chain = DescriptorChain::from_segments(0, &[writable(4, 4), writable(100, 4)]).unwrap();
        let mut writer = chain.writer();
        let result = writer.write_all(&mut memory, &[1; 8]);
        assert_eq!(result, Err(DataError::Memory(MemoryError { gpa: 100, len: 4 })));
        assert_eq!(writer.written(), 4);
    }
}

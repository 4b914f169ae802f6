//! A byte ring addressed by cursors: the console output a domain produced
//! (kept while nobody is attached) and Keel's own log. A cursor counts bytes
//! since the ring was made, so a reader that fell behind learns how much it
//! lost instead of reading overwritten bytes.

use alloc::vec;
use alloc::vec::Vec;

pub struct ConsoleRing {
    bytes: Vec<u8>,
    /// Cursor of the next byte to be written.
    end: u64,
}

/// What [`ConsoleRing::read`] copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// Cursor of the first byte copied: later than asked if bytes were lost.
    pub start: u64,
    /// Cursor after the last byte copied.
    pub end: u64,
}

impl ConsoleRing {
    /// A ring of `capacity` bytes (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            bytes: vec![0; capacity.max(1)],
            end: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.bytes.len()
    }

    /// Cursor after the newest byte.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Cursor of the oldest byte still held.
    pub fn start(&self) -> u64 {
        self.end.saturating_sub(self.bytes.len() as u64)
    }

    pub fn push(&mut self, byte: u8) {
        let slot = (self.end % self.bytes.len() as u64) as usize;
        self.bytes[slot] = byte;
        self.end += 1;
    }

    pub fn extend(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.push(byte);
        }
    }

    /// Copies bytes from `cursor` on into `out`, as many as fit.
    pub fn read(&self, cursor: u64, out: &mut [u8]) -> ReadResult {
        let start = cursor.clamp(self.start(), self.end);
        let count = (self.end - start).min(out.len() as u64);
        let capacity = self.bytes.len() as u64;
        for (index, slot) in out.iter_mut().take(count as usize).enumerate() {
            *slot = self.bytes[((start + index as u64) % capacity) as usize];
        }
        ReadResult {
            start,
            end: start + count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_was_written_from_any_cursor() {
        let mut ring = ConsoleRing::new(8);
        ring.extend(b"hello");
        let mut out = [0; 16];
        let read = ring.read(0, &mut out);
        assert_eq!(read, ReadResult { start: 0, end: 5 });
        assert_eq!(&out[..5], b"hello");
        let read = ring.read(3, &mut out);
        assert_eq!(&out[..2], b"lo");
        assert_eq!(read, ReadResult { start: 3, end: 5 });
        assert_eq!(ring.read(5, &mut out), ReadResult { start: 5, end: 5 });
    }

    #[test]
    fn a_reader_that_fell_behind_learns_what_it_lost() {
        let mut ring = ConsoleRing::new(4);
        ring.extend(b"abcdefg");
        let mut out = [0; 8];
        let read = ring.read(1, &mut out);
        assert_eq!(read, ReadResult { start: 3, end: 7 });
        assert_eq!(&out[..4], b"defg");
    }

    #[test]
    fn a_cursor_past_the_end_reads_nothing_and_small_buffers_read_in_parts() {
        let mut ring = ConsoleRing::new(16);
        ring.extend(b"0123456789");
        let mut out = [0; 3];
        assert_eq!(ring.read(99, &mut out), ReadResult { start: 10, end: 10 });
        assert_eq!(ring.read(2, &mut out), ReadResult { start: 2, end: 5 });
        assert_eq!(&out, b"234");
    }

    #[test]
    fn a_zero_capacity_ring_still_works() {
        let mut ring = ConsoleRing::new(0);
        ring.extend(b"xy");
        let mut out = [0; 2];
        assert_eq!(ring.read(0, &mut out), ReadResult { start: 1, end: 2 });
        assert_eq!(out[0], b'y');
    }
}

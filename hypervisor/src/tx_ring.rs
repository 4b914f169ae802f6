//! The console's transmit ring: bytes a console domain printed, waiting for
//! the UART. Writers never wait for the line while the ring has room; the
//! ring drains in FIFO-sized bursts whenever the transmitter is idle.

/// Capacity in bytes: a few seconds of output at 115200 baud.
pub const CAPACITY: usize = 16 * 1024;

pub struct TxRing {
    bytes: [u8; CAPACITY],
    /// Index of the oldest byte.
    head: usize,
    len: usize,
}

impl Default for TxRing {
    fn default() -> Self {
        Self::new()
    }
}

impl TxRing {
    pub const fn new() -> Self {
        Self {
            bytes: [0; CAPACITY],
            head: 0,
            len: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == CAPACITY
    }

    /// Queues `byte`; returns false (and drops nothing) when full.
    pub fn push(&mut self, byte: u8) -> bool {
        if self.is_full() {
            return false;
        }
        let tail = (self.head + self.len) % CAPACITY;
        if let Some(slot) = self.bytes.get_mut(tail) {
            *slot = byte;
            self.len += 1;
        }
        true
    }

    /// Takes the oldest byte.
    pub fn pop(&mut self) -> Option<u8> {
        if self.is_empty() {
            return None;
        }
        let byte = self.bytes.get(self.head).copied();
        self.head = (self.head + 1) % CAPACITY;
        self.len -= 1;
        byte
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_out_in_order_across_the_wrap() {
        let mut ring = Box::new(TxRing::new());
        for round in 0..3u32 {
            for i in 0..CAPACITY - 7 {
                assert!(ring.push((i as u32 + round) as u8));
            }
            for i in 0..CAPACITY - 7 {
                assert_eq!(ring.pop(), Some((i as u32 + round) as u8));
            }
            assert!(ring.is_empty());
        }
        assert_eq!(ring.pop(), None);
    }

    #[test]
    fn a_full_ring_refuses_more() {
        let mut ring = Box::new(TxRing::new());
        for _ in 0..CAPACITY {
            assert!(ring.push(b'x'));
        }
        assert!(ring.is_full());
        assert!(!ring.push(b'y'));
        assert_eq!(ring.pop(), Some(b'x'));
        assert!(ring.push(b'z'));
    }
}

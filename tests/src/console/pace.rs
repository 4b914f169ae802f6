//! Pacing input for an emulated serial port (pure).
//!
//! The UART Keel gives Dom0 has a 16-byte receive FIFO and no flow control:
//! bytes that arrive while the FIFO is full are lost. Input therefore goes
//! out a few bytes at a time with a pause after each chunk, so a pasted,
//! piped or scripted burst survives a guest that is busy for a moment.
//! Typing is far slower than this.

use std::time::{Duration, Instant};

/// Bytes written to the pseudo-terminal at once: half the FIFO.
pub const INPUT_CHUNK: usize = 8;
/// The pause after each chunk.
pub const INPUT_PACE: Duration = Duration::from_millis(30);

/// Decides when the next chunk of input may go out, and how big it is.
#[derive(Debug, Clone)]
pub struct Pacer {
    chunk: usize,
    interval: Duration,
    /// When the last chunk went out.
    last_write: Option<Instant>,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new(INPUT_CHUNK, INPUT_PACE)
    }
}

impl Pacer {
    /// At most `chunk` bytes (at least 1) every `interval`.
    pub fn new(chunk: usize, interval: Duration) -> Self {
        Pacer {
            chunk: chunk.max(1),
            interval,
            last_write: None,
        }
    }

    /// How long after `now` the next chunk may go out (zero: at once).
    pub fn wait(&self, now: Instant) -> Duration {
        self.last_write.map_or(Duration::ZERO, |last| {
            self.interval.saturating_sub(now.saturating_duration_since(last))
        })
    }

    /// The next chunk of `pending`, empty while the pause after the last
    /// chunk lasts. Call [`Pacer::wrote`] with what was actually written.
    pub fn next_chunk<'a>(&self, pending: &'a [u8], now: Instant) -> &'a [u8] {
        if self.wait(now) > Duration::ZERO {
            return &[];
        }
        &pending[..pending.len().min(self.chunk)]
    }

    /// Records that `count` bytes went out at `now`; nothing written starts
    /// no pause.
    pub fn wrote(&mut self, count: usize, now: Instant) {
        if count > 0 {
            self.last_write = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Sends `text` through a pacer with `interval`, ticking a fake clock
    /// by `tick`; returns each chunk with the time it went out.
    fn send_all(text: &[u8], chunk: usize, interval: Duration, tick: Duration) -> Vec<(Duration, Vec<u8>)> {
        let start = Instant::now();
        let mut pacer = Pacer::new(chunk, interval);
        let mut pending = text.to_vec();
        let mut sent = Vec::new();
        let mut now = start;
        while !pending.is_empty() {
            let chunk = pacer.next_chunk(&pending, now).to_vec();
            if !chunk.is_empty() {
                pacer.wrote(chunk.len(), now);
                pending.drain(..chunk.len());
                sent.push((now - start, chunk));
            }
            now += tick;
        }
        sent
    }

    #[test]
    fn the_first_chunk_goes_out_at_once() {
        let pacer = Pacer::default();
        let now = Instant::now();
        assert_eq!(pacer.wait(now), Duration::ZERO);
        assert_eq!(pacer.next_chunk(b"poweroff -f\r", now), b"poweroff");
    }

    #[test]
    fn chunks_are_at_most_the_chunk_size_and_spaced_by_the_interval() {
        let sent = send_all(b"echo shell-says-$((6*7))\r", 8, 30 * MS, MS);
        let chunks: Vec<&[u8]> = sent.iter().map(|(_, chunk)| chunk.as_slice()).collect();
        assert_eq!(chunks, [&b"echo she"[..], b"ll-says-", b"$((6*7))", b"\r"]);
        let times: Vec<Duration> = sent.iter().map(|(at, _)| *at).collect();
        assert_eq!(times, [Duration::ZERO, 30 * MS, 60 * MS, 90 * MS]);
    }

    #[test]
    fn the_wait_counts_down_from_the_last_write() {
        let start = Instant::now();
        let mut pacer = Pacer::new(8, 30 * MS);
        pacer.wrote(8, start);
        assert_eq!(pacer.wait(start), 30 * MS);
        assert_eq!(pacer.wait(start + 12 * MS), 18 * MS);
        assert_eq!(pacer.next_chunk(b"more", start + 29 * MS), b"");
        assert_eq!(pacer.next_chunk(b"more", start + 30 * MS), b"more");
        assert_eq!(pacer.wait(start + 45 * MS), Duration::ZERO);
    }

    #[test]
    fn a_write_of_nothing_starts_no_pause() {
        let now = Instant::now();
        let mut pacer = Pacer::default();
        pacer.wrote(0, now);
        assert_eq!(pacer.wait(now), Duration::ZERO);
    }

    #[test]
    fn a_zero_chunk_size_still_makes_progress() {
        let sent = send_all(b"ab", 0, Duration::ZERO, MS);
        assert_eq!(sent.len(), 2);
    }
}

//! virtio-console (device type 3), the device side (virtio 1.2, section 5.3).
//!
//! One port, without VIRTIO_CONSOLE_F_MULTIPORT: receiveq0 (index
//! [`RX_QUEUE`] = 0) carries bytes to the driver, transmitq0 ([`TX_QUEUE`]
//! = 1) bytes from it, and there is no control queue. Both directions are a
//! plain byte stream: no header, and chain boundaries carry no meaning (a
//! driver's write may arrive in one chain or several, and received bytes
//! are spread over as many posted buffers as they need). Every chain is
//! read or written as a stream, so any descriptor layout is accepted, as
//! VIRTIO_F_VERSION_1 requires.
//!
//! Semantics, decided here and documented in `docs/virtio.md`:
//!
//! - offered: VERSION_1, INDIRECT_DESC, EVENT_IDX, and VIRTIO_CONSOLE_F_SIZE
//!   when [`ConsoleOptions::size`] is set. Not offered: MULTIPORT (so no
//!   control queue, no port names, no open/close events) and EMERG_WRITE;
//! - the configuration is the whole `struct virtio_console_config`
//!   ([`CONFIG_LEN`] bytes): `cols` and `rows` (0 when SIZE is not
//!   offered), `max_nr_ports` = 1 (only meaningful with MULTIPORT, but
//!   true anyway) and `emerg_wr` = 0. The configuration is the same
//!   whatever the driver negotiated; writes to it change nothing (the
//!   only writable field, `emerg_wr`, needs EMERG_WRITE);
//! - transmit: each chain's readable part goes to the [`ConsoleSink`] in
//!   order, through a [`TX_CHUNK_LEN`]-byte stack buffer (so the sink sees
//!   chunks, never an empty one). Writable descriptors in a transmit chain
//!   are ignored. Every chain is completed with used length 0 (Linux
//!   ignores it; it busy-waits for its `hvc` writes to come back, so the
//!   backend must serve the queue promptly). Two things cut a chain
//!   short, counted in [`ConsoleStats::tx_truncated`]: a buffer the memory
//!   refuses (the sink has every byte before it, nothing from it on), and
//!   a readable part longer than [`MAX_TX_CHAIN_LEN`] (the sink gets the
//!   first `MAX_TX_CHAIN_LEN` bytes, the rest is skipped unread). The cap
//!   bounds one chain's work: a chain may describe 4 GiB;
//! - receive: bytes for the driver fill its posted chains in order, each
//!   chain's writable part as far as it goes, each completed with the
//!   bytes written (a prefix of its writable part). A chain without a
//!   writable byte is completed with used length 0 and costs nothing else.
//!   A buffer the memory refuses ends that chain at the bytes written
//!   before it (they are the driver's, and count as consumed); the rest
//!   of the input goes on into the next chain, so nothing is lost or
//!   reordered. Out of buffers, [`Console::receive`] asks for an
//!   available-buffer notification and reports the device starved: the
//!   caller keeps the unconsumed input and retries at the driver's kick.
//!
//! As in [`crate::net`], a bad buffer never breaks the device, it costs
//! that chain its content; only a [`QueueError`] does (see its policy).

mod fuzzing;
#[cfg(test)]
mod tests;

pub use fuzzing::fuzz_console;

use crate::chain::{DescriptorChain, MAX_CHAIN_SEGMENTS};
use crate::features::KEEL_TRANSPORT_FEATURES;
use crate::memory::GuestMemory;
use crate::queue::{Queue, QueueError};

/// Feature bits (virtio 1.2, 5.3.3).
pub const VIRTIO_CONSOLE_F_SIZE: u64 = 1 << 0;
pub const VIRTIO_CONSOLE_F_MULTIPORT: u64 = 1 << 1;
pub const VIRTIO_CONSOLE_F_EMERG_WRITE: u64 = 1 << 2;

/// Queue indices (receiveq0, transmitq0) and count: without MULTIPORT
/// there are no other queues.
pub const RX_QUEUE: u16 = 0;
pub const TX_QUEUE: u16 = 1;
pub const NUM_QUEUES: u16 = 2;
/// Both queues' maximum size. 128, not virtio-net's 256: a console moves
/// few bytes, and Linux fills its receive queue to the brim with one page
/// per entry, so this caps what the guest keeps posted at 512 KiB (QEMU's
/// virtio-serial queues have 128 entries too). Transmit never needs many:
/// Linux's `hvc` waits for each write's chain to come back before the
/// next.
pub const QUEUE_SIZE: u16 = 128;

/// Bytes of `struct virtio_console_config`: `cols` u16, `rows` u16,
/// `max_nr_ports` u32, `emerg_wr` u32, little-endian.
pub const CONFIG_LEN: usize = 12;
/// Offsets of the configuration fields.
pub const CONFIG_COLS: usize = 0;
pub const CONFIG_ROWS: usize = 2;
pub const CONFIG_MAX_NR_PORTS: usize = 4;
pub const CONFIG_EMERG_WR: usize = 8;

/// The stack buffer transmitted bytes pass through: the most one
/// [`ConsoleSink::write`] call gets. A page, the most Linux's `hvc` hands
/// over at once, so a console write usually reaches the sink whole.
pub const TX_CHUNK_LEN: usize = 4096;
/// The most bytes of one transmit chain that reach the sink; the rest is
/// skipped. 1 MiB: Linux's largest chain is a splice of a full pipe, at
/// most `pipe-max-size` (1 MiB by default); its console and port writes
/// are a page and 32 KiB.
pub const MAX_TX_CHAIN_LEN: usize = 1 << 20;

/// Where transmitted bytes go (the Dom0 backend's log, terminal or socket).
pub trait ConsoleSink {
    /// The next bytes the driver transmitted, in order: 1 to
    /// [`TX_CHUNK_LEN`] of them. Chunk boundaries mean nothing. Cannot
    /// fail: a sink with nowhere to put them drops them (a console has no
    /// way to say "later" once the chain is completed).
    fn write(&mut self, bytes: &[u8]);
}

/// How a virtio-console device is set up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsoleOptions {
    /// Offer VIRTIO_CONSOLE_F_SIZE with these dimensions, `(cols, rows)`.
    pub size: Option<(u16, u16)>,
}

/// Why a transmit chain did not reach the sink whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxTruncation {
    /// A buffer the memory refuses: the sink has every byte before it.
    Memory,
    /// The readable part is longer than [`MAX_TX_CHAIN_LEN`]: the sink has
    /// the first `MAX_TX_CHAIN_LEN` bytes.
    TooLong,
}

/// What became of one transmit chain. Either way the chain is completed
/// with used length 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleTxOutcome {
    /// All `len` readable bytes went to the sink.
    Complete { len: usize },
    /// Only the first `len` readable bytes went to the sink.
    Truncated { len: usize, reason: TxTruncation },
}

impl ConsoleTxOutcome {
    /// Bytes handed to the sink.
    pub fn len(&self) -> usize {
        match *self {
            Self::Complete { len } | Self::Truncated { len, .. } => len,
        }
    }

    /// Whether nothing reached the sink.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one pass over the transmit queue did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsoleTxProcessed {
    /// Chains completed.
    pub completed: usize,
    /// Bytes handed to the sink.
    pub bytes: u64,
    /// Chains among `completed` that did not reach the sink whole.
    pub truncated: usize,
    /// The driver wants a used-buffer notification.
    pub notify: bool,
    /// The budget ran out with chains still queued: call again (after
    /// giving other devices their turn).
    pub more: bool,
}

/// What one [`Console::receive`] call did.
///
/// `consumed < input.len()` with `starved` false means the call stopped
/// after [`Queue::size`] chains (a bound on one call's work against a
/// driver posting empty buffers as fast as the device takes them): call
/// again with the rest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsoleRxOutcome {
    /// Bytes of the input now in the driver's buffers, from its start.
    pub consumed: usize,
    /// Chains completed.
    pub completed: usize,
    /// The driver wants a used-buffer notification for the receive queue.
    pub notify: bool,
    /// The driver's buffers ran out before the input did.
    /// Available-buffer notifications are on, so the driver kicks the
    /// receive queue when it posts more: retry with the rest then.
    pub starved: bool,
}

/// Counters since the device was built (they survive resets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsoleStats {
    /// Transmit chains completed, and the bytes of theirs the sink got.
    pub tx_chains: u64,
    pub tx_bytes: u64,
    /// Transmit chains cut short, for any [`TxTruncation`].
    pub tx_truncated: u64,
    /// Receive chains completed (empty ones included), and the bytes
    /// written into them.
    pub rx_chains: u64,
    pub rx_bytes: u64,
    /// Receive chains ended early by a buffer the memory refuses.
    pub rx_faults: u64,
    /// [`Console::receive`] calls that ran out of buffers.
    pub rx_starved: u64,
}

/// A virtio-console device model.
#[derive(Clone, Debug)]
pub struct Console {
    size: Option<(u16, u16)>,
    negotiated: u64,
    stats: ConsoleStats,
}

impl Console {
    pub fn new(options: ConsoleOptions) -> Self {
        Self {
            size: options.size,
            negotiated: 0,
            stats: ConsoleStats::default(),
        }
    }

    /// The features offered.
    pub fn device_features(&self) -> u64 {
        let mut features = KEEL_TRANSPORT_FEATURES;
        if self.size.is_some() {
            features |= VIRTIO_CONSOLE_F_SIZE;
        }
        features
    }

    /// Tells the device what the driver accepted (at FEATURES_OK; 0 at a
    /// reset). Bits the device did not offer are ignored.
    pub fn set_negotiated(&mut self, features: u64) {
        self.negotiated = features & self.device_features();
    }

    pub fn negotiated(&self) -> u64 {
        self.negotiated
    }

    /// The dimensions offered with VIRTIO_CONSOLE_F_SIZE, `(cols, rows)`.
    pub fn size(&self) -> Option<(u16, u16)> {
        self.size
    }

    /// Changes the dimensions (the backend's terminal was resized) and says
    /// whether the [`config`](Self::config) changed: the caller then
    /// presents it (a configuration change, which Linux answers by
    /// resizing `hvc0`). Nothing changes when SIZE is not offered: the
    /// features cannot change after the device is built.
    pub fn set_size(&mut self, cols: u16, rows: u16) -> bool {
        match self.size {
            Some(size) if size != (cols, rows) => {
                self.size = Some((cols, rows));
                true
            }
            _ => false,
        }
    }

    /// Segments a chain may have, for [`Queue::new`]: Linux's splices use
    /// one per pipe buffer, up to 256 for a 1 MiB pipe.
    pub fn max_segments(&self) -> usize {
        MAX_CHAIN_SEGMENTS
    }

    pub fn stats(&self) -> ConsoleStats {
        self.stats
    }

    /// The device configuration space: `cols` and `rows` when SIZE is
    /// offered (else 0), `max_nr_ports` = 1, `emerg_wr` = 0.
    pub fn config(&self) -> [u8; CONFIG_LEN] {
        let mut config = [0u8; CONFIG_LEN];
        let (cols, rows) = self.size.unwrap_or((0, 0));
        config[CONFIG_COLS..CONFIG_COLS + 2].copy_from_slice(&cols.to_le_bytes());
        config[CONFIG_ROWS..CONFIG_ROWS + 2].copy_from_slice(&rows.to_le_bytes());
        config[CONFIG_MAX_NR_PORTS..CONFIG_MAX_NR_PORTS + 4].copy_from_slice(&1u32.to_le_bytes());
        config
    }

    /// Hands one transmit chain's readable part to `sink` and counts it.
    /// The caller returns the chain with [`Queue::add_used`]`(chain.head(),
    /// 0)` whatever the outcome.
    pub fn handle_tx<M, S>(&mut self, memory: &M, sink: &mut S, chain: &DescriptorChain) -> ConsoleTxOutcome
    where
        M: GuestMemory + ?Sized,
        S: ConsoleSink + ?Sized,
    {
        let mut reader = chain.reader();
        // No truncation: the cap fits any usize this crate builds for.
        let wanted = reader.remaining().min(MAX_TX_CHAIN_LEN as u64) as usize;
        let mut chunk = [0u8; TX_CHUNK_LEN];
        let mut len = 0usize;
        let mut fault = false;
        while len < wanted {
            let piece = (wanted - len).min(TX_CHUNK_LEN);
            let before = reader.position();
            let result = reader.read(memory, &mut chunk[..piece]);
            // What was copied before a refused buffer is good data: the
            // reader's position moved past it.
            let copied = (reader.position() - before) as usize;
            if copied > 0 {
                sink.write(&chunk[..copied]);
                len += copied;
            }
            // (A read that copies nothing without an error cannot happen
            // before `wanted`; stopping on it anyway keeps the loop finite.)
            if result.is_err() || copied == 0 {
                fault = true;
                break;
            }
        }
        self.stats.tx_chains += 1;
        self.stats.tx_bytes += len as u64;
        let outcome = if fault {
            ConsoleTxOutcome::Truncated {
                len,
                reason: TxTruncation::Memory,
            }
        } else if chain.readable_len() > wanted as u64 {
            ConsoleTxOutcome::Truncated {
                len,
                reason: TxTruncation::TooLong,
            }
        } else {
            ConsoleTxOutcome::Complete { len }
        };
        if matches!(outcome, ConsoleTxOutcome::Truncated { .. }) {
            self.stats.tx_truncated += 1;
        }
        outcome
    }

    /// Serves the transmit queue: handles up to `budget` chains with
    /// available-buffer notifications off, turns them back on (looping if
    /// chains arrived meanwhile), and says whether to notify the driver. A
    /// [`QueueError`] means the device must be marked DEVICE_NEEDS_RESET.
    pub fn process_tx<M, S>(
        &mut self,
        queue: &mut Queue,
        memory: &mut M,
        sink: &mut S,
        budget: usize,
    ) -> Result<ConsoleTxProcessed, QueueError>
    where
        M: GuestMemory + ?Sized,
        S: ConsoleSink + ?Sized,
    {
        let mut processed = ConsoleTxProcessed::default();
        processed.more = 'outer: loop {
            queue.disable_notification(memory)?;
            while processed.completed < budget {
                let Some(chain) = queue.pop(memory)? else {
                    break;
                };
                let outcome = self.handle_tx(memory, sink, &chain);
                processed.bytes += outcome.len() as u64;
                if matches!(outcome, ConsoleTxOutcome::Truncated { .. }) {
                    processed.truncated += 1;
                }
                queue.add_used(memory, chain.head(), 0)?;
                processed.completed += 1;
            }
            if processed.completed >= budget {
                // Leave notifications off: the caller comes back anyway.
                break 'outer true;
            }
            if !queue.enable_notification(memory)? {
                break 'outer false;
            }
        };
        processed.notify = queue.needs_notification(memory)?;
        Ok(processed)
    }

    /// Writes the start of `input` into one receive chain's writable part,
    /// as much as fits, and returns how many bytes are there (the chain's
    /// used length) and whether a buffer the memory refuses stopped it
    /// short. Counts nothing; [`receive`](Self::receive) is the whole
    /// operation.
    pub fn write_rx<M: GuestMemory + ?Sized>(
        &self,
        memory: &mut M,
        chain: &DescriptorChain,
        input: &[u8],
    ) -> (usize, bool) {
        let mut writer = chain.writer();
        let fits = (input.len() as u64).min(writer.remaining()) as usize;
        let fault = writer.write(memory, &input[..fits]).is_err();
        // No truncation: written ≤ fits ≤ input.len().
        (writer.written() as usize, fault)
    }

    /// Gives the driver as much of `input` as its posted receive buffers
    /// hold: takes chains in order, fills each one's writable part (see
    /// [`write_rx`](Self::write_rx)), completes it with the bytes written,
    /// and stops when the input is consumed, the buffers run out, or
    /// [`Queue::size`] chains were taken. Available-buffer notifications
    /// stay off while buffers last and are turned on when they run out
    /// (then [`ConsoleRxOutcome::starved`]), so the driver kicks the
    /// receive queue only when it posts buffers the device was waiting for.
    /// An empty input touches nothing. A [`QueueError`] means the device
    /// must be marked DEVICE_NEEDS_RESET (what this call wrote is lost with
    /// the queue); on a broken queue every call gets [`QueueError::Broken`].
    pub fn receive<M: GuestMemory + ?Sized>(
        &mut self,
        queue: &mut Queue,
        memory: &mut M,
        input: &[u8],
    ) -> Result<ConsoleRxOutcome, QueueError> {
        if queue.is_broken() {
            return Err(QueueError::Broken);
        }
        let mut outcome = ConsoleRxOutcome::default();
        if input.is_empty() {
            return Ok(outcome);
        }
        let limit = usize::from(queue.size());
        queue.disable_notification(memory)?;
        while outcome.consumed < input.len() && outcome.completed < limit {
            let chain = match queue.pop(memory)? {
                Some(chain) => chain,
                None => {
                    // Out of buffers: ask for a kick, then look again for
                    // buffers posted before the driver could see that
                    // request.
                    if !queue.enable_notification(memory)? {
                        outcome.starved = true;
                        self.stats.rx_starved += 1;
                        break;
                    }
                    queue.disable_notification(memory)?;
                    continue;
                }
            };
            let (written, fault) = self.write_rx(memory, &chain, &input[outcome.consumed..]);
            // No truncation: written ≤ writable_len ≤ u32::MAX.
            queue.add_used(memory, chain.head(), written as u32)?;
            outcome.consumed += written;
            outcome.completed += 1;
            self.stats.rx_chains += 1;
            self.stats.rx_bytes += written as u64;
            if fault {
                self.stats.rx_faults += 1;
            }
        }
        outcome.notify = queue.needs_notification(memory)?;
        Ok(outcome)
    }
}

//! virtio-net (device type 1), the device side (virtio 1.2, section 5.1).
//!
//! One receive queue (index [`RX_QUEUE`] = 0) and one transmit queue
//! ([`TX_QUEUE`] = 1); no control queue, no multiqueue. Every packet on
//! either queue is a descriptor chain read as a stream (any descriptor
//! layout is accepted, as VIRTIO_F_VERSION_1 requires) that starts with the
//! 12-byte [`NetHeader`] (`struct virtio_net_hdr`: with VERSION_1 it always
//! has `num_buffers`) followed by the Ethernet frame, without FCS.
//!
//! Semantics, decided here and documented in `docs/virtio.md`:
//!
//! - offered: VERSION_1, INDIRECT_DESC, EVENT_IDX, MAC, STATUS, and MTU
//!   when [`NetOptions::mtu`] is set. Not offered: checksum and
//!   segmentation offloads (CSUM, GUEST_CSUM, HOST_/GUEST_TSO4/6, UFO,
//!   USO, ECN), MRG_RXBUF, CTRL_VQ and everything that needs it, MQ, RSS,
//!   HASH_REPORT, SPEED_DUPLEX;
//! - the largest frame is the MTU plus the Ethernet header and one VLAN tag
//!   ([`Net::max_frame_len`]): the configured MTU once VIRTIO_NET_F_MTU is
//!   negotiated, else 1500 (1518 bytes); MTUs are clamped to
//!   [`MIN_MTU`]`..=`[`MAX_MTU`]; the smallest frame is the 14-byte
//!   Ethernet header;
//! - transmit: a header that asks for an offload (VIRTIO_NET_HDR_F_NEEDS_CSUM
//!   or a `gso_type` other than NONE; none can have been negotiated), a
//!   readable part shorter than the header, a frame outside the size bounds
//!   or a buffer the memory refuses drops that packet, counted in
//!   [`NetStats::tx_dropped`]; other flag bits are ignored, as the spec
//!   requires. Every transmit chain is completed with used length 0,
//!   dropped or not;
//! - receive: without MRG_RXBUF a frame goes into one chain whose writable
//!   part holds the header and the whole frame (the spec's drivers post
//!   1526 bytes or more; Linux posts 1530). The header is all zero but for
//!   `num_buffers` = 1. A chain too small for the frame, or with a buffer
//!   the memory refuses, is completed with used length 0 and the frame is
//!   dropped (Linux counts that as a length error and refills the ring);
//!   a frame outside the size bounds is dropped without taking a buffer;
//! - with the link down ([`Net::set_link_up`]) transmitted packets are
//!   dropped (their chains still completed) and nothing is received.
//!
//! As in [`crate::blk`], a bad packet never breaks the device; only a
//! [`QueueError`] does (see its policy).

mod fuzzing;
#[cfg(test)]
mod tests;

pub use fuzzing::fuzz_net;

use crate::chain::{DataError, DescriptorChain, MAX_CHAIN_SEGMENTS};
use crate::features::KEEL_TRANSPORT_FEATURES;
use crate::memory::GuestMemory;
use crate::queue::{Queue, QueueError};

/// Feature bits (virtio 1.2, 5.1.3).
pub const VIRTIO_NET_F_CSUM: u64 = 1 << 0;
pub const VIRTIO_NET_F_GUEST_CSUM: u64 = 1 << 1;
pub const VIRTIO_NET_F_CTRL_GUEST_OFFLOADS: u64 = 1 << 2;
pub const VIRTIO_NET_F_MTU: u64 = 1 << 3;
pub const VIRTIO_NET_F_MAC: u64 = 1 << 5;
pub const VIRTIO_NET_F_GUEST_TSO4: u64 = 1 << 7;
pub const VIRTIO_NET_F_GUEST_TSO6: u64 = 1 << 8;
pub const VIRTIO_NET_F_GUEST_ECN: u64 = 1 << 9;
pub const VIRTIO_NET_F_GUEST_UFO: u64 = 1 << 10;
pub const VIRTIO_NET_F_HOST_TSO4: u64 = 1 << 11;
pub const VIRTIO_NET_F_HOST_TSO6: u64 = 1 << 12;
pub const VIRTIO_NET_F_HOST_ECN: u64 = 1 << 13;
pub const VIRTIO_NET_F_HOST_UFO: u64 = 1 << 14;
pub const VIRTIO_NET_F_MRG_RXBUF: u64 = 1 << 15;
pub const VIRTIO_NET_F_STATUS: u64 = 1 << 16;
pub const VIRTIO_NET_F_CTRL_VQ: u64 = 1 << 17;
pub const VIRTIO_NET_F_CTRL_RX: u64 = 1 << 18;
pub const VIRTIO_NET_F_CTRL_VLAN: u64 = 1 << 19;
pub const VIRTIO_NET_F_GUEST_ANNOUNCE: u64 = 1 << 21;
pub const VIRTIO_NET_F_MQ: u64 = 1 << 22;
pub const VIRTIO_NET_F_CTRL_MAC_ADDR: u64 = 1 << 23;
pub const VIRTIO_NET_F_GUEST_USO4: u64 = 1 << 54;
pub const VIRTIO_NET_F_GUEST_USO6: u64 = 1 << 55;
pub const VIRTIO_NET_F_HOST_USO: u64 = 1 << 56;
pub const VIRTIO_NET_F_HASH_REPORT: u64 = 1 << 57;
pub const VIRTIO_NET_F_GUEST_HDRLEN: u64 = 1 << 59;
pub const VIRTIO_NET_F_RSS: u64 = 1 << 60;
pub const VIRTIO_NET_F_RSC_EXT: u64 = 1 << 61;
pub const VIRTIO_NET_F_STANDBY: u64 = 1 << 62;
pub const VIRTIO_NET_F_SPEED_DUPLEX: u64 = 1 << 63;

/// `status` bits in the configuration.
pub const VIRTIO_NET_S_LINK_UP: u16 = 1;
pub const VIRTIO_NET_S_ANNOUNCE: u16 = 2;

/// `flags` bits of [`NetHeader`].
pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
pub const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;
pub const VIRTIO_NET_HDR_F_RSC_INFO: u8 = 4;

/// `gso_type` values of [`NetHeader`].
pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
pub const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
pub const VIRTIO_NET_HDR_GSO_UDP: u8 = 3;
pub const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
pub const VIRTIO_NET_HDR_GSO_UDP_L4: u8 = 5;
pub const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

/// Bytes of `struct virtio_net_hdr` with VIRTIO_F_VERSION_1 (and without
/// VIRTIO_NET_F_HASH_REPORT).
pub const HEADER_LEN: usize = 12;
/// Destination, source, EtherType.
pub const ETH_HEADER_LEN: usize = 14;
/// One 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;
/// The smallest frame either direction accepts: a bare Ethernet header.
pub const MIN_FRAME_LEN: usize = ETH_HEADER_LEN;
/// The MTU without VIRTIO_NET_F_MTU.
pub const DEFAULT_MTU: u16 = 1500;
/// The range a configured MTU is clamped to: the spec's minimum, and the
/// largest jumbo frame this device copies (through a stack buffer).
pub const MIN_MTU: u16 = 68;
pub const MAX_MTU: u16 = 9000;
/// The largest frame with the largest MTU.
pub const MAX_FRAME_LEN: usize = MAX_MTU as usize + ETH_HEADER_LEN + VLAN_TAG_LEN;

/// Queue indices (receiveq1, transmitq1) and count.
pub const RX_QUEUE: u16 = 0;
pub const TX_QUEUE: u16 = 1;
pub const NUM_QUEUES: u16 = 2;
/// Both queues' maximum size.
pub const QUEUE_SIZE: u16 = 256;

/// Bytes of `struct virtio_net_config` presented: the virtio 1.2 layout,
/// through `supported_hash_types`.
pub const CONFIG_LEN: usize = 24;
/// Offsets of the configuration fields Keel fills in.
pub const CONFIG_MAC: usize = 0;
pub const CONFIG_STATUS: usize = 6;
pub const CONFIG_MAX_VIRTQUEUE_PAIRS: usize = 8;
pub const CONFIG_MTU: usize = 10;
pub const CONFIG_SPEED: usize = 12;
pub const CONFIG_DUPLEX: usize = 16;

/// `struct virtio_net_hdr` as VIRTIO_F_VERSION_1 lays it out (12 bytes,
/// little-endian).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetHeader {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
    pub num_buffers: u16,
}

impl NetHeader {
    /// The header of every received frame: no offload, one buffer.
    pub const RX: Self = Self {
        flags: 0,
        gso_type: VIRTIO_NET_HDR_GSO_NONE,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
        num_buffers: 1,
    };

    pub fn from_bytes(bytes: [u8; HEADER_LEN]) -> Self {
        let [flags, gso_type, h0, h1, g0, g1, s0, s1, o0, o1, n0, n1] = bytes;
        Self {
            flags,
            gso_type,
            hdr_len: u16::from_le_bytes([h0, h1]),
            gso_size: u16::from_le_bytes([g0, g1]),
            csum_start: u16::from_le_bytes([s0, s1]),
            csum_offset: u16::from_le_bytes([o0, o1]),
            num_buffers: u16::from_le_bytes([n0, n1]),
        }
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[0] = self.flags;
        bytes[1] = self.gso_type;
        bytes[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        bytes[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        bytes[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        bytes[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        bytes[10..12].copy_from_slice(&self.num_buffers.to_le_bytes());
        bytes
    }

    /// Whether the header asks the device for checksum or segmentation
    /// work: VIRTIO_NET_HDR_F_NEEDS_CSUM, or any `gso_type` but NONE (the
    /// ECN bit included).
    pub fn wants_offload(&self) -> bool {
        self.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 || self.gso_type != VIRTIO_NET_HDR_GSO_NONE
    }
}

/// Where transmitted frames go (the Dom0 backend's switch port or TAP).
pub trait FrameSink {
    /// One frame the driver transmitted: [`MIN_FRAME_LEN`] to
    /// [`Net::max_frame_len`] bytes, from the destination MAC on, without
    /// FCS. Cannot fail: a sink with nowhere to put it drops it, which is
    /// what Ethernet promises anyway.
    fn transmit(&mut self, frame: &[u8]);
}

/// How a virtio-net device is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetOptions {
    /// The device's address (VIRTIO_NET_F_MAC); should be a unicast
    /// address (bit 0 of the first byte clear).
    pub mac: [u8; 6],
    /// Offer VIRTIO_NET_F_MTU with this MTU (clamped to
    /// [`MIN_MTU`]`..=`[`MAX_MTU`]).
    pub mtu: Option<u16>,
}

/// Why a transmitted packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxDrop {
    /// The link is down.
    LinkDown,
    /// The readable part is shorter than the 12-byte header.
    ShortHeader,
    /// The header asks for an offload that cannot have been negotiated.
    Offload { flags: u8, gso_type: u8 },
    /// The frame after the header is shorter than an Ethernet header.
    TooShort { len: u64 },
    /// The frame after the header is longer than [`Net::max_frame_len`].
    TooLong { len: u64 },
    /// A buffer the memory refuses.
    Memory,
}

/// What became of one transmit chain. Either way the chain is completed
/// with used length 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxOutcome {
    /// `len` frame bytes went to the [`FrameSink`].
    Transmitted {
        len: usize,
    },
    Dropped(TxDrop),
}

/// Why a frame was not received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxDrop {
    /// The link is down (no buffer taken).
    LinkDown,
    /// Shorter than an Ethernet header (no buffer taken).
    TooShort,
    /// Longer than [`Net::max_frame_len`] (no buffer taken).
    TooLong,
    /// The chain's writable part cannot hold the header and the frame: the
    /// chain is completed with used length 0.
    BufferTooSmall,
    /// A buffer the memory refuses: the chain is completed with used
    /// length 0.
    Memory,
}

/// What [`Net::receive`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxOutcome {
    /// The frame is in the driver's buffer; `notify`: the driver wants a
    /// used-buffer notification for the receive queue.
    Delivered { notify: bool },
    /// The driver has posted no buffer. Nothing was consumed and
    /// available-buffer notifications are on, so the driver kicks the
    /// receive queue when it posts one: the caller may keep the frame and
    /// retry then, or drop it.
    NoBuffer,
    /// The frame was dropped; `notify` as for `Delivered` (true only when
    /// a buffer was completed).
    Dropped { reason: RxDrop, notify: bool },
}

impl RxOutcome {
    /// Whether the driver wants a used-buffer notification.
    pub fn notify(&self) -> bool {
        match *self {
            Self::Delivered { notify } | Self::Dropped { notify, .. } => notify,
            Self::NoBuffer => false,
        }
    }
}

/// What one pass over the transmit queue did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxProcessed {
    /// Chains completed (transmitted + dropped).
    pub completed: usize,
    /// Frames handed to the sink.
    pub transmitted: usize,
    /// Packets dropped.
    pub dropped: usize,
    /// The driver wants a used-buffer notification.
    pub notify: bool,
    /// The budget ran out with chains still queued: call again (after
    /// giving other devices their turn).
    pub more: bool,
}

/// Counters since the device was built (they survive resets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames handed to the sink and their bytes (without the header).
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Transmit packets dropped, for any [`TxDrop`].
    pub tx_dropped: u64,
    /// Frames written into the driver's buffers and their bytes.
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames dropped on receive, for any [`RxDrop`].
    pub rx_dropped: u64,
    /// [`Net::receive`] calls that found no buffer.
    pub rx_no_buffer: u64,
}

/// A virtio-net device model.
#[derive(Clone, Debug)]
pub struct Net {
    mac: [u8; 6],
    mtu: Option<u16>,
    link_up: bool,
    negotiated: u64,
    stats: NetStats,
}

impl Net {
    pub fn new(options: NetOptions) -> Self {
        Self {
            mac: options.mac,
            mtu: options.mtu.map(|mtu| mtu.clamp(MIN_MTU, MAX_MTU)),
            link_up: true,
            negotiated: 0,
            stats: NetStats::default(),
        }
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The MTU offered with VIRTIO_NET_F_MTU, after clamping.
    pub fn mtu(&self) -> Option<u16> {
        self.mtu
    }

    /// The features offered.
    pub fn device_features(&self) -> u64 {
        let mut features = KEEL_TRANSPORT_FEATURES | VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS;
        if self.mtu.is_some() {
            features |= VIRTIO_NET_F_MTU;
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

    /// The MTU in force: the configured one once VIRTIO_NET_F_MTU is
    /// negotiated, else [`DEFAULT_MTU`].
    pub fn effective_mtu(&self) -> u16 {
        match self.mtu {
            Some(mtu) if self.negotiated & VIRTIO_NET_F_MTU != 0 => mtu,
            _ => DEFAULT_MTU,
        }
    }

    /// The longest frame either direction carries: the MTU, the Ethernet
    /// header and one VLAN tag (1518 for an MTU of 1500).
    pub fn max_frame_len(&self) -> usize {
        usize::from(self.effective_mtu()) + ETH_HEADER_LEN + VLAN_TAG_LEN
    }

    /// Segments a chain may have, for [`Queue::new`].
    pub fn max_segments(&self) -> usize {
        MAX_CHAIN_SEGMENTS
    }

    pub fn link_up(&self) -> bool {
        self.link_up
    }

    /// Sets the link state; the caller then presents the new
    /// [`config`](Self::config) (a configuration change the driver sees
    /// when it negotiated VIRTIO_NET_F_STATUS).
    pub fn set_link_up(&mut self, up: bool) {
        self.link_up = up;
    }

    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// The device configuration space: `mac`, `status` (LINK_UP while the
    /// link is up), `max_virtqueue_pairs` = 1, `mtu` (0 when not offered),
    /// `speed` unknown (0xFFFFFFFF), `duplex` unknown (0xFF), the RSS
    /// fields 0. Fields of features not offered are there but unused.
    pub fn config(&self) -> [u8; CONFIG_LEN] {
        let mut config = [0u8; CONFIG_LEN];
        config[CONFIG_MAC..CONFIG_MAC + 6].copy_from_slice(&self.mac);
        let status = if self.link_up { VIRTIO_NET_S_LINK_UP } else { 0 };
        config[CONFIG_STATUS..CONFIG_STATUS + 2].copy_from_slice(&status.to_le_bytes());
        config[CONFIG_MAX_VIRTQUEUE_PAIRS..CONFIG_MAX_VIRTQUEUE_PAIRS + 2].copy_from_slice(&1u16.to_le_bytes());
        config[CONFIG_MTU..CONFIG_MTU + 2].copy_from_slice(&self.mtu.unwrap_or(0).to_le_bytes());
        config[CONFIG_SPEED..CONFIG_SPEED + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        config[CONFIG_DUPLEX] = 0xFF;
        config
    }

    /// Handles one transmit chain: checks the header and the frame's size,
    /// hands the frame to `sink`, counts it. The caller returns the chain
    /// with [`Queue::add_used`]`(chain.head(), 0)` whatever the outcome.
    pub fn handle_tx<M, S>(&mut self, memory: &M, sink: &mut S, chain: &DescriptorChain) -> TxOutcome
    where
        M: GuestMemory + ?Sized,
        S: FrameSink + ?Sized,
    {
        let mut frame = [0u8; MAX_FRAME_LEN];
        match self.read_tx(memory, chain, &mut frame) {
            Ok(len) => {
                sink.transmit(&frame[..len]);
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += len as u64;
                TxOutcome::Transmitted { len }
            }
            Err(reason) => {
                self.stats.tx_dropped += 1;
                TxOutcome::Dropped(reason)
            }
        }
    }

    /// Copies a transmit chain's frame into `frame`, returning its length.
    fn read_tx<M: GuestMemory + ?Sized>(
        &self,
        memory: &M,
        chain: &DescriptorChain,
        frame: &mut [u8; MAX_FRAME_LEN],
    ) -> Result<usize, TxDrop> {
        if !self.link_up {
            return Err(TxDrop::LinkDown);
        }
        let mut reader = chain.reader();
        let mut header = [0u8; HEADER_LEN];
        reader.read_exact(memory, &mut header).map_err(|error| match error {
            DataError::Short => TxDrop::ShortHeader,
            DataError::Memory(_) => TxDrop::Memory,
        })?;
        let header = NetHeader::from_bytes(header);
        if header.wants_offload() {
            return Err(TxDrop::Offload {
                flags: header.flags,
                gso_type: header.gso_type,
            });
        }
        let len = reader.remaining();
        if len < MIN_FRAME_LEN as u64 {
            return Err(TxDrop::TooShort { len });
        }
        if len > self.max_frame_len() as u64 {
            return Err(TxDrop::TooLong { len });
        }
        // No truncation: len ≤ max_frame_len() ≤ MAX_FRAME_LEN.
        let len = len as usize;
        reader
            .read_exact(memory, &mut frame[..len])
            .map_err(|_| TxDrop::Memory)?;
        Ok(len)
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
    ) -> Result<TxProcessed, QueueError>
    where
        M: GuestMemory + ?Sized,
        S: FrameSink + ?Sized,
    {
        let mut processed = TxProcessed::default();
        processed.more = 'outer: loop {
            queue.disable_notification(memory)?;
            while processed.completed < budget {
                let Some(chain) = queue.pop(memory)? else {
                    break;
                };
                match self.handle_tx(memory, sink, &chain) {
                    TxOutcome::Transmitted { .. } => processed.transmitted += 1,
                    TxOutcome::Dropped(_) => processed.dropped += 1,
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

    /// Whether a frame of `len` bytes may cross the link.
    fn check_frame_len(&self, len: usize) -> Result<(), RxDrop> {
        if len < MIN_FRAME_LEN {
            Err(RxDrop::TooShort)
        } else if len > self.max_frame_len() {
            Err(RxDrop::TooLong)
        } else {
            Ok(())
        }
    }

    /// Writes [`NetHeader::RX`] and `frame` into a receive chain and returns
    /// the used length (header + frame), or why the chain gets used length
    /// 0 instead. Counts nothing; [`receive`](Self::receive) is the whole
    /// operation.
    pub fn write_rx<M: GuestMemory + ?Sized>(
        &self,
        memory: &mut M,
        chain: &DescriptorChain,
        frame: &[u8],
    ) -> Result<u32, RxDrop> {
        self.check_frame_len(frame.len())?;
        let total = HEADER_LEN + frame.len();
        if chain.writable_len() < total as u64 {
            return Err(RxDrop::BufferTooSmall);
        }
        let mut writer = chain.writer();
        writer
            .write_all(memory, &NetHeader::RX.to_bytes())
            .map_err(|_| RxDrop::Memory)?;
        writer.write_all(memory, frame).map_err(|_| RxDrop::Memory)?;
        // No truncation: total ≤ HEADER_LEN + MAX_FRAME_LEN.
        Ok(total as u32)
    }

    /// Receives one frame: takes the driver's next receive chain, writes
    /// the header and the frame, completes the chain and says whether the
    /// driver wants a notification. Available-buffer notifications stay
    /// off while buffers last and are turned on when they run out (then
    /// [`RxOutcome::NoBuffer`]), so the driver kicks the receive queue only
    /// when it posts buffers the device was waiting for. A [`QueueError`]
    /// means the device must be marked DEVICE_NEEDS_RESET (the frame is
    /// lost); on a broken queue every frame gets [`QueueError::Broken`].
    pub fn receive<M: GuestMemory + ?Sized>(
        &mut self,
        queue: &mut Queue,
        memory: &mut M,
        frame: &[u8],
    ) -> Result<RxOutcome, QueueError> {
        if queue.is_broken() {
            return Err(QueueError::Broken);
        }
        let checked = if self.link_up {
            self.check_frame_len(frame.len())
        } else {
            Err(RxDrop::LinkDown)
        };
        if let Err(reason) = checked {
            self.stats.rx_dropped += 1;
            return Ok(RxOutcome::Dropped { reason, notify: false });
        }
        queue.disable_notification(memory)?;
        let chain = match queue.pop(memory)? {
            Some(chain) => chain,
            // Out of buffers: ask for a kick, then look again for buffers
            // posted before the driver could see that request.
            None if queue.enable_notification(memory)? => match queue.pop(memory)? {
                Some(chain) => chain,
                None => return Ok(self.no_buffer()),
            },
            None => return Ok(self.no_buffer()),
        };
        let written = self.write_rx(memory, &chain, frame);
        queue.add_used(memory, chain.head(), written.unwrap_or(0))?;
        let notify = queue.needs_notification(memory)?;
        Ok(match written {
            Ok(_) => {
                self.stats.rx_frames += 1;
                self.stats.rx_bytes += frame.len() as u64;
                RxOutcome::Delivered { notify }
            }
            Err(reason) => {
                self.stats.rx_dropped += 1;
                RxOutcome::Dropped { reason, notify }
            }
        })
    }

    fn no_buffer(&mut self) -> RxOutcome {
        self.stats.rx_no_buffer += 1;
        RxOutcome::NoBuffer
    }
}

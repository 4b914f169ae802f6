//! Where everything lies in the driver's pages, the descriptors and
//! requests the scenarios write, and the garbage `ring-rewrite` writes.

use super::{status, PAGE_SIZE, QUEUE_SIZE, SECTOR_SIZE, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use crate::hostile::Rng;

/// The pages the program hands the device, one each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// The descriptor table (8 × 16 bytes).
    Desc,
    /// The available ring ("driver area").
    Avail,
    /// The used ring ("device area").
    Used,
    /// Request header, GET_ID buffer and status byte ([`REQUEST_HEADER`],
    /// [`REQUEST_ID`], [`REQUEST_STATUS`]).
    Request,
    /// One sector of data.
    Data,
    /// An indirect descriptor table.
    Indirect,
}

impl Page {
    pub const ALL: [Page; 6] = [
        Page::Desc,
        Page::Avail,
        Page::Used,
        Page::Request,
        Page::Data,
        Page::Indirect,
    ];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Offsets in [`Page::Request`].
pub const REQUEST_HEADER: usize = 0;
pub const REQUEST_ID: usize = 0x100;
pub const REQUEST_STATUS: usize = 0x200;
/// GET_ID's answer.
pub const ID_LEN: u32 = 20;
/// The 16-byte virtio-blk request header.
pub const HEADER_LEN: u32 = 16;

/// Avail ring: `flags u16, idx u16, ring[size] u16, used_event u16`.
pub const AVAIL_FLAGS: usize = 0;
pub const AVAIL_IDX: usize = 2;
pub fn avail_entry(slot: u16) -> usize {
    4 + 2 * usize::from(slot % QUEUE_SIZE)
}

/// Used ring: `flags u16, idx u16, ring[size] { id u32, len u32 }, avail_event u16`.
pub const USED_IDX: usize = 2;
pub fn used_entry(slot: u16) -> usize {
    4 + 8 * usize::from(slot % QUEUE_SIZE)
}

pub fn descriptor_offset(index: u16) -> usize {
    16 * usize::from(index)
}

/// A split-virtqueue descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub addr: u64,
    pub len: u32,
    pub flags: u16,
    pub next: u16,
}

impl Descriptor {
    /// The 16 little-endian bytes (`addr u64, len u32, flags u16, next u16`).
    pub fn encode(&self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.addr.to_le_bytes());
        bytes[8..12].copy_from_slice(&self.len.to_le_bytes());
        bytes[12..14].copy_from_slice(&self.flags.to_le_bytes());
        bytes[14..].copy_from_slice(&self.next.to_le_bytes());
        bytes
    }
}

/// A virtio-blk request header: `type u32, reserved u32, sector u64`.
pub fn request_header(kind: u32, sector: u64) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&kind.to_le_bytes());
    bytes[8..].copy_from_slice(&sector.to_le_bytes());
    bytes
}

/// Where the request pieces are, by guest-physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffers {
    pub header: u64,
    pub data: u64,
    pub status: u64,
}

/// The three descriptors of a one-sector request from `first`: header
/// (device-readable), data (device-writable for IN, readable for OUT),
/// status (writable), chained `first`, `first + 1`, `first + 2`.
pub fn sector_request(first: u16, buffers: Buffers, write_to_disk: bool) -> [Descriptor; 3] {
    let data_flags = if write_to_disk { 0 } else { VIRTQ_DESC_F_WRITE };
    [
        Descriptor {
            addr: buffers.header,
            len: HEADER_LEN,
            flags: VIRTQ_DESC_F_NEXT,
            next: first + 1,
        },
        Descriptor {
            addr: buffers.data,
            len: SECTOR_SIZE as u32,
            flags: data_flags | VIRTQ_DESC_F_NEXT,
            next: first + 2,
        },
        Descriptor {
            addr: buffers.status,
            len: 1,
            flags: VIRTQ_DESC_F_WRITE,
            next: 0,
        },
    ]
}

/// A device status byte with the names of its bits, for messages.
pub fn describe_status(value: u8) -> String {
    let names = [
        (status::ACKNOWLEDGE, "ACKNOWLEDGE"),
        (status::DRIVER, "DRIVER"),
        (status::FEATURES_OK, "FEATURES_OK"),
        (status::DRIVER_OK, "DRIVER_OK"),
        (status::DEVICE_NEEDS_RESET, "DEVICE_NEEDS_RESET"),
        (status::FAILED, "FAILED"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| value & bit != 0)
        .map(|&(_, name)| name)
        .collect();
    let known = names.iter().fold(0, |all, (bit, _)| all | bit);
    let mut text = format!("{value:#04x}");
    if !set.is_empty() || value & !known != 0 {
        text.push_str(&format!(" ({})", set.join("|")));
    }
    text
}

// --- ring-rewrite garbage ------------------------------------------------

/// Longest buffer a garbage descriptor has.
pub const GARBAGE_MAX_LEN: u32 = 32;
/// Garbage buffers in RAM start below this offset of [`Page::Request`].
pub const GARBAGE_SPAN: u64 = 0x900;

/// One descriptor of garbage for `ring-rewrite`, whose buffers are either
/// in the request page at `request` (offset below [`GARBAGE_SPAN`]) or
/// that address with bits 40-63 set, which is no DomU's RAM; lengths are
/// at most [`GARBAGE_MAX_LEN`]. Flags and `next` are anything.
///
/// The bounds hold for any mix of old and new descriptor fields the device
/// may copy while the table changes, even byte by byte: every address
/// agrees with `request` in bits 12-39 and has offset bits 8-11 at most 8.
/// So whatever chain the device assembles, it writes only inside the
/// request page, and the readable part of a chain of at most 8 descriptors
/// (a longer one is a loop, refused) is at most 256 bytes: never a header
/// plus a sector, so no OUT request can write the disk. VIRTIO_F_INDIRECT_DESC
/// stays off, so an INDIRECT flag breaks the ring before any table is read.
pub fn garbage_descriptor(rng: &mut Rng, request: u64) -> Descriptor {
    debug_assert!(request < 1 << 40 && request.is_multiple_of(PAGE_SIZE as u64));
    let mut addr = request + rng.below(GARBAGE_SPAN);
    if rng.chance(25) {
        addr |= rng.in_range(1, 1 << 24) << 40;
    }
    let mut flags = 0;
    for (flag, percent) in [
        (VIRTQ_DESC_F_NEXT, 40),
        (VIRTQ_DESC_F_WRITE, 50),
        (VIRTQ_DESC_F_INDIRECT, 8),
    ] {
        if rng.chance(percent) {
            flags |= flag;
        }
    }
    if rng.chance(10) {
        flags |= rng.next_u32() as u16 & !7;
    }
    let next = if rng.chance(80) {
        rng.below(u64::from(QUEUE_SIZE)) as u16
    } else {
        rng.next_u32() as u16
    };
    Descriptor {
        addr,
        len: rng.below(u64::from(GARBAGE_MAX_LEN) + 1) as u32,
        flags,
        next,
    }
}

/// Hex bytes, no separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

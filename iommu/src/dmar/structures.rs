//! Remapping structures (VT-d §8.2 to §8.10): the variable-length records
//! after the DMAR header, each starting with a 2-byte type and a 2-byte
//! length that covers the whole structure, device scopes included.

use keel_memory::{HostPhysAddr, PAGE_SIZE_4K};

use super::scope::DeviceScopes;
use super::{DmarError, UnknownStructurePolicy, HEADER_LEN};
use crate::bytes::{slice_at, u16_at, u32_at, u64_at, u8_at};

/// Remapping structure type codes (VT-d §8.2, table "Remapping Structure
/// Types").
pub mod kind {
    pub const DRHD: u16 = 0;
    pub const RMRR: u16 = 1;
    pub const ATSR: u16 = 2;
    pub const RHSA: u16 = 3;
    pub const ANDD: u16 = 4;
    pub const SATC: u16 = 5;
    pub const SIDP: u16 = 6;
}

/// Type and length.
const STRUCTURE_HEADER_LEN: usize = 4;

/// The fixed part of each known structure type, before any device scopes
/// or names; `None` for types this parser does not know.
fn fixed_len(kind: u16) -> Option<usize> {
    match kind {
        kind::DRHD => Some(16),
        kind::RMRR => Some(24),
        kind::RHSA => Some(20),
        kind::ATSR | kind::ANDD | kind::SATC | kind::SIDP => Some(8),
        _ => None,
    }
}

/// A structure cut out of the table by its declared length, not yet
/// interpreted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawStructure<'a> {
    pub(crate) kind: u16,
    pub(crate) offset: usize,
    pub(crate) bytes: &'a [u8],
}

/// Walks the structures of a table whose header was already checked.
#[derive(Clone, Debug)]
pub(crate) struct RawStructures<'a> {
    table: &'a [u8],
    pos: usize,
}

impl<'a> RawStructures<'a> {
    pub(crate) fn new(table: &'a [u8]) -> Self {
        Self { table, pos: HEADER_LEN }
    }

    pub(crate) fn try_next(&mut self) -> Result<Option<RawStructure<'a>>, DmarError> {
        let offset = self.pos;
        let remaining = self.table.len().saturating_sub(offset);
        if remaining == 0 {
            return Ok(None);
        }
        let (Some(kind), Some(length)) = (u16_at(self.table, offset), u16_at(self.table, offset + 2)) else {
            return Err(DmarError::TruncatedStructureHeader { offset });
        };
        let too_short = DmarError::StructureTooShort { offset, kind, length };
        if usize::from(length) < STRUCTURE_HEADER_LEN {
            return Err(too_short);
        }
        if usize::from(length) > remaining {
            return Err(DmarError::StructureOverflow {
                offset,
                length,
                remaining,
            });
        }
        if fixed_len(kind).is_some_and(|fixed| usize::from(length) < fixed) {
            return Err(too_short);
        }
        let bytes = slice_at(self.table, offset, usize::from(length)).ok_or(too_short)?;
        self.pos += usize::from(length);
        Ok(Some(RawStructure { kind, offset, bytes }))
    }
}

/// One remapping structure of a validated table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemappingStructure<'a> {
    Drhd(Drhd<'a>),
    Rmrr(Rmrr<'a>),
    Atsr(Atsr<'a>),
    Rhsa(Rhsa<'a>),
    Andd(Andd<'a>),
    Satc(Satc<'a>),
    Sidp(Sidp<'a>),
    /// A type this parser does not know; only seen when the table was
    /// parsed with [`UnknownStructurePolicy::Skip`].
    Unknown(UnknownStructure<'a>),
}

impl<'a> RemappingStructure<'a> {
    /// Interprets a raw structure and checks its fixed fields (device
    /// scopes are checked separately).
    pub(crate) fn from_raw(raw: RawStructure<'a>, policy: UnknownStructurePolicy) -> Result<Self, DmarError> {
        let view = View {
            bytes: raw.bytes,
            offset: raw.offset,
        };
        let structure = match raw.kind {
            kind::DRHD => {
                let drhd = Drhd(view);
                let base = drhd.register_base().as_u64();
                if base == 0 || !base.is_multiple_of(PAGE_SIZE_4K) {
                    return Err(DmarError::BadRegisterBase {
                        offset: raw.offset,
                        base,
                    });
                }
                Self::Drhd(drhd)
            }
            kind::RMRR => {
                let rmrr = Rmrr(view);
                let (base, limit) = (rmrr.base().as_u64(), rmrr.limit().as_u64());
                let end_aligned = limit.checked_add(1).is_some_and(|end| end.is_multiple_of(PAGE_SIZE_4K));
                if !base.is_multiple_of(PAGE_SIZE_4K) || !end_aligned || limit < base {
                    return Err(DmarError::BadReservedRegion {
                        offset: raw.offset,
                        base,
                        limit,
                    });
                }
                Self::Rmrr(rmrr)
            }
            kind::ATSR => Self::Atsr(Atsr(view)),
            kind::RHSA => Self::Rhsa(Rhsa(view)),
            kind::ANDD => Self::Andd(Andd(view)),
            kind::SATC => Self::Satc(Satc(view)),
            kind::SIDP => Self::Sidp(Sidp(view)),
            other => match policy {
                UnknownStructurePolicy::Reject => {
                    return Err(DmarError::UnknownStructureType {
                        offset: raw.offset,
                        kind: other,
                    })
                }
                UnknownStructurePolicy::Skip => Self::Unknown(UnknownStructure(view, other)),
            },
        };
        Ok(structure)
    }

    /// The device scopes, for the structure types that have them.
    pub fn scopes(&self) -> Option<DeviceScopes<'a>> {
        match self {
            Self::Drhd(drhd) => Some(drhd.scopes()),
            Self::Rmrr(rmrr) => Some(rmrr.scopes()),
            Self::Atsr(atsr) => Some(atsr.scopes()),
            Self::Satc(satc) => Some(satc.scopes()),
            Self::Sidp(sidp) => Some(sidp.scopes()),
            Self::Rhsa(_) | Self::Andd(_) | Self::Unknown(_) => None,
        }
    }
}

/// A structure's bytes (exactly its declared length, at least its fixed
/// part) and where it starts in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct View<'a> {
    bytes: &'a [u8],
    offset: usize,
}

// The fixed fields were length-checked before a view was made, so the
// `unwrap_or_default`s below never take effect.
impl<'a> View<'a> {
    fn u8(&self, at: usize) -> u8 {
        u8_at(self.bytes, at).unwrap_or_default()
    }

    fn u16(&self, at: usize) -> u16 {
        u16_at(self.bytes, at).unwrap_or_default()
    }

    fn u32(&self, at: usize) -> u32 {
        u32_at(self.bytes, at).unwrap_or_default()
    }

    fn u64(&self, at: usize) -> u64 {
        u64_at(self.bytes, at).unwrap_or_default()
    }

    fn tail(&self, from: usize) -> &'a [u8] {
        self.bytes.get(from..).unwrap_or_default()
    }

    fn scopes(&self, from: usize) -> DeviceScopes<'a> {
        DeviceScopes::new(self.tail(from), self.offset + from)
    }
}

/// DMA Remapping Hardware Unit Definition (type 0, VT-d §8.3): one
/// remapping unit's register set and the devices it translates for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drhd<'a>(View<'a>);

impl<'a> Drhd<'a> {
    pub const INCLUDE_PCI_ALL: u8 = 1 << 0;

    pub fn flags(&self) -> u8 {
        self.0.u8(4)
    }

    /// The unit covers every PCI device of its segment that no other DRHD
    /// names; its scopes then list only I/O APICs, HPETs and ACPI devices.
    pub fn include_pci_all(&self) -> bool {
        self.flags() & Self::INCLUDE_PCI_ALL != 0
    }

    /// Size of the register set: 2^N 4 KiB pages, N in bits 3:0 of byte 5
    /// (reported as 0, i.e. one page, by firmware older than VT-d 2.x).
    pub fn register_set_size(&self) -> u64 {
        PAGE_SIZE_4K << (self.0.u8(5) & 0xf)
    }

    pub fn segment(&self) -> u16 {
        self.0.u16(6)
    }

    pub fn register_base(&self) -> HostPhysAddr {
        HostPhysAddr::new(self.0.u64(8))
    }

    pub fn scopes(&self) -> DeviceScopes<'a> {
        self.0.scopes(16)
    }

    pub fn offset(&self) -> usize {
        self.0.offset
    }
}

/// Reserved Memory Region Reporting (type 1, VT-d §8.4): memory that the
/// listed devices may DMA to at any time (USB legacy emulation buffers,
/// graphics stolen memory), which must stay identity-mapped for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rmrr<'a>(View<'a>);

impl<'a> Rmrr<'a> {
    pub fn segment(&self) -> u16 {
        self.0.u16(6)
    }

    /// 4 KiB aligned.
    pub fn base(&self) -> HostPhysAddr {
        HostPhysAddr::new(self.0.u64(8))
    }

    /// Inclusive; limit + 1 is 4 KiB aligned.
    pub fn limit(&self) -> HostPhysAddr {
        HostPhysAddr::new(self.0.u64(16))
    }

    pub fn scopes(&self) -> DeviceScopes<'a> {
        self.0.scopes(24)
    }

    pub fn offset(&self) -> usize {
        self.0.offset
    }
}

/// Root Port ATS Capability Reporting (type 2, VT-d §8.5): root ports below
/// which devices may use Address Translation Services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Atsr<'a>(View<'a>);

impl<'a> Atsr<'a> {
    pub const ALL_PORTS: u8 = 1 << 0;

    pub fn flags(&self) -> u8 {
        self.0.u8(4)
    }

    pub fn all_ports(&self) -> bool {
        self.flags() & Self::ALL_PORTS != 0
    }

    pub fn segment(&self) -> u16 {
        self.0.u16(6)
    }

    pub fn scopes(&self) -> DeviceScopes<'a> {
        self.0.scopes(8)
    }

    pub fn offset(&self) -> usize {
        self.0.offset
    }
}

/// Remapping Hardware Static Affinity (type 3, VT-d §8.6): the NUMA
/// proximity domain of a remapping unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rhsa<'a>(View<'a>);

impl Rhsa<'_> {
    pub fn register_base(&self) -> HostPhysAddr {
        HostPhysAddr::new(self.0.u64(8))
    }

    pub fn proximity_domain(&self) -> u32 {
        self.0.u32(16)
    }

    pub fn offset(&self) -> usize {
        self.0.offset
    }
}

/// ACPI Name-space Device Declaration (type 4, VT-d §8.7): gives the ACPI
/// device number that type-5 device scopes use as a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Andd<'a>(View<'a>);

impl<'a> Andd<'a> {
    pub fn acpi_device_number(&self) -> u8 {
        self.0.u8(7)
    }

    /// The ACPI object path, without its terminating NUL.
    pub fn object_name(&self) -> &'a [u8] {
        let name = self.0.tail(8);
        let end = name.iter().position(|&byte| byte == 0).unwrap_or(name.len());
        name.get(..end).unwrap_or_default()
    }

    pub fn offset(&self) -> usize {
        self.0.offset
    }
}

/// SoC Integrated Address Translation Cache (type 5, VT-d §8.8): integrated
/// devices with an ATC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Satc<'a>(View<'a>);

impl<'a> Satc<'a> {
    pub const ATC_REQUIRED: u8 = 1 << 0;

    pub fn flags(&self) -> u8 {
        self.0.u8(4)
    }

    /// The devices need ATS enabled to work correctly.
    pub fn atc_required(&self) -> bool {
        self.flags() & Self::ATC_REQUIRED != 0
    }

    pub fn segment(&self) -> u16 {
        self.0.u16(6)
    }

    pub fn scopes(&self) -> DeviceScopes<'a> {
        self.0.scopes(8)
    }

    pub fn offset(&self) -> usize {
        self.0.offset
    }
}

/// SoC Integrated Device Property (type 6, VT-d §8.9): integrated devices
/// with special properties, given by each scope's flags byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sidp<'a>(View<'a>);

impl<'a> Sidp<'a> {
    pub fn segment(&self) -> u16 {
        self.0.u16(6)
    }

    pub fn scopes(&self) -> DeviceScopes<'a> {
        self.0.scopes(8)
    }

    pub fn offset(&self) -> usize {
        self.0.offset
    }
}

/// A structure of a type this parser does not know, kept whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownStructure<'a>(View<'a>, u16);

impl<'a> UnknownStructure<'a> {
    pub fn kind(&self) -> u16 {
        self.1
    }

    /// The whole structure, type and length included.
    pub fn bytes(&self) -> &'a [u8] {
        self.0.bytes
    }

    pub fn offset(&self) -> usize {
        self.0.offset
    }
}

/// The remapping structures of a validated table, in table order.
#[derive(Clone, Debug)]
pub struct Structures<'a> {
    raw: RawStructures<'a>,
    policy: UnknownStructurePolicy,
}

impl<'a> Structures<'a> {
    pub(crate) fn new(table: &'a [u8], policy: UnknownStructurePolicy) -> Self {
        Self {
            raw: RawStructures::new(table),
            policy,
        }
    }
}

impl<'a> Iterator for Structures<'a> {
    type Item = RemappingStructure<'a>;

    /// The table was validated when parsed, so errors cannot occur; one
    /// would end the iteration.
    fn next(&mut self) -> Option<RemappingStructure<'a>> {
        let raw = self.raw.try_next().ok()??;
        RemappingStructure::from_raw(raw, self.policy).ok()
    }
}

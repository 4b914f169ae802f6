//! Device scope entries (VT-d §8.3.1): the devices a remapping structure
//! applies to, each named by a start bus and a path of (device, function)
//! hops through PCI-PCI bridges.

use super::DmarError;
use crate::bytes::{slice_at, u8_at};
use crate::SourceId;

/// Type, length, flags, reserved, enumeration ID, start bus.
pub const SCOPE_HEADER_LEN: usize = 6;
const PATH_ENTRY_LEN: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    /// A single PCI function (type 1).
    PciEndpoint,
    /// A PCI-PCI bridge and every device below it (type 2).
    PciSubHierarchy,
    /// An I/O APIC; the enumeration ID is its APIC ID (type 3).
    IoApic,
    /// An MSI-capable HPET; the enumeration ID is its HPET number (type 4).
    Hpet,
    /// An ACPI namespace device; the enumeration ID is the ACPI device
    /// number an ANDD structure names (type 5).
    AcpiNamespaceDevice,
}

impl ScopeKind {
    pub const fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            1 => Some(Self::PciEndpoint),
            2 => Some(Self::PciSubHierarchy),
            3 => Some(Self::IoApic),
            4 => Some(Self::Hpet),
            5 => Some(Self::AcpiNamespaceDevice),
            _ => None,
        }
    }

    pub const fn raw(self) -> u8 {
        match self {
            Self::PciEndpoint => 1,
            Self::PciSubHierarchy => 2,
            Self::IoApic => 3,
            Self::Hpet => 4,
            Self::AcpiNamespaceDevice => 5,
        }
    }

    /// Endpoint and sub-hierarchy scopes name PCI devices by path; the
    /// others name a non-PCI device by enumeration ID (their path is the
    /// requester ID that device's requests carry).
    pub const fn is_pci(self) -> bool {
        matches!(self, Self::PciEndpoint | Self::PciSubHierarchy)
    }
}

/// One hop of a scope path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PathEntry {
    pub device: u8,
    pub function: u8,
}

/// A validated device scope entry borrowed from the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceScope<'a> {
    kind: ScopeKind,
    /// Exactly the entry's declared length, at least one path entry.
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> DeviceScope<'a> {
    pub fn kind(&self) -> ScopeKind {
        self.kind
    }

    /// Byte 2: flags (VT-d 4.x, used by SIDP scopes; reserved before).
    pub fn flags(&self) -> u8 {
        self.byte(2)
    }

    pub fn enumeration_id(&self) -> u8 {
        self.byte(4)
    }

    pub fn start_bus(&self) -> u8 {
        self.byte(5)
    }

    pub fn path(&self) -> ScopePath<'a> {
        ScopePath {
            entries: self.path_bytes().chunks_exact(PATH_ENTRY_LEN),
        }
    }

    /// The requester ID when the path is a single hop, i.e. the device sits
    /// directly on the start bus and no bridge needs resolving.
    pub fn direct_source_id(&self) -> Option<SourceId> {
        let mut path = self.path();
        match (path.next(), path.next()) {
            (Some(hop), None) => SourceId::new(self.start_bus(), hop.device, hop.function),
            _ => None,
        }
    }

    /// Where the entry starts, from the start of the table.
    pub fn offset(&self) -> usize {
        self.offset
    }

    pub(crate) fn path_bytes(&self) -> &'a [u8] {
        self.bytes.get(SCOPE_HEADER_LEN..).unwrap_or_default()
    }

    fn byte(&self, index: usize) -> u8 {
        u8_at(self.bytes, index).unwrap_or_default()
    }
}

/// The (device, function) hops of a scope, from the start bus down.
#[derive(Clone, Debug)]
pub struct ScopePath<'a> {
    entries: core::slice::ChunksExact<'a, u8>,
}

impl Iterator for ScopePath<'_> {
    type Item = PathEntry;

    fn next(&mut self) -> Option<PathEntry> {
        match *self.entries.next()? {
            [device, function] => Some(PathEntry { device, function }),
            _ => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for ScopePath<'_> {}

/// The device scopes of one remapping structure.
#[derive(Clone, Debug)]
pub struct DeviceScopes<'a> {
    region: &'a [u8],
    region_offset: usize,
    pos: usize,
}

impl<'a> DeviceScopes<'a> {
    /// `region` is the part of a structure after its fixed fields, which
    /// starts `region_offset` bytes into the table.
    pub(crate) fn new(region: &'a [u8], region_offset: usize) -> Self {
        Self {
            region,
            region_offset,
            pos: 0,
        }
    }

    /// The next entry, or an error describing why the bytes are not one.
    pub(crate) fn try_next(&mut self) -> Result<Option<DeviceScope<'a>>, DmarError> {
        let remaining = self.region.len().saturating_sub(self.pos);
        if remaining == 0 {
            return Ok(None);
        }
        let offset = self.region_offset.saturating_add(self.pos);
        let (Some(kind), Some(length)) = (u8_at(self.region, self.pos), u8_at(self.region, self.pos + 1)) else {
            return Err(DmarError::TruncatedScope { offset });
        };
        if usize::from(length) < SCOPE_HEADER_LEN {
            return Err(DmarError::ScopeTooShort { offset, length });
        }
        if usize::from(length) > remaining {
            return Err(DmarError::ScopeOverflow {
                offset,
                length,
                remaining,
            });
        }
        let path_len = usize::from(length) - SCOPE_HEADER_LEN;
        if !path_len.is_multiple_of(PATH_ENTRY_LEN) {
            return Err(DmarError::ScopeLengthMismatch { offset, length });
        }
        if path_len == 0 {
            return Err(DmarError::EmptyScopePath { offset });
        }
        let kind = ScopeKind::from_raw(kind).ok_or(DmarError::UnknownScopeType { offset, kind })?;
        let bytes = slice_at(self.region, self.pos, usize::from(length)).ok_or(DmarError::ScopeOverflow {
            offset,
            length,
            remaining,
        })?;
        let scope = DeviceScope { kind, bytes, offset };
        for (index, hop) in scope.path().enumerate() {
            if hop.device > 31 || hop.function > 7 {
                return Err(DmarError::BadPathEntry {
                    offset: offset + SCOPE_HEADER_LEN + index * PATH_ENTRY_LEN,
                    device: hop.device,
                    function: hop.function,
                });
            }
        }
        self.pos += usize::from(length);
        Ok(Some(scope))
    }
}

impl<'a> Iterator for DeviceScopes<'a> {
    type Item = DeviceScope<'a>;

    /// Tables reach callers only after every scope was validated, so an
    /// error cannot happen here; it would end the iteration.
    fn next(&mut self) -> Option<DeviceScope<'a>> {
        self.try_next().ok().flatten()
    }
}

//! The ACPI DMA Remapping Reporting table (DMAR, VT-d chapter 8).
//!
//! [`parse_dmar`] takes the bytes of the whole table (as found through the
//! RSDP/XSDT, signature `DMAR`), verifies the header, checksum, every
//! structure and device scope length, and the cross-structure rules, and
//! returns a [`Dmar`] that borrows the bytes. Parsing allocates nothing and
//! never panics; iterating a parsed table is infallible because everything
//! was checked up front.
//!
//! Rules beyond lengths (each a [`DmarError`]):
//! - DRHD register bases are non-zero, 4 KiB aligned and distinct;
//! - at most one INCLUDE_PCI_ALL unit per PCI segment;
//! - RMRR ranges are page aligned with base <= limit;
//! - device scopes have a known type and at least one path entry, and no
//!   two remapping-unit scopes name the same device or overlap (a
//!   sub-hierarchy containing another scope's path);
//! - at most [`MAX_DEVICE_SCOPES`] scopes, which bounds the quadratic
//!   overlap check;
//! - structure types beyond those VT-d 4.x defines (0..=6) are errors under
//!   the default [`UnknownStructurePolicy::Reject`]; callers that prefer
//!   forward compatibility can skip them with
//!   [`UnknownStructurePolicy::Skip`] and still see them as
//!   [`RemappingStructure::Unknown`].

#[cfg(any(test, feature = "builder"))]
mod builder;
mod error;
mod resolve;
mod scope;
mod structures;
#[cfg(test)]
mod tests;
mod validate;

#[cfg(any(test, feature = "builder"))]
pub use builder::{fix_checksum, AtsrSpec, DmarBuilder, DrhdSpec, RmrrSpec, SatcSpec, ScopeSpec};
pub use error::DmarError;
pub use resolve::{scope_covers, scope_target, BridgeResolver, BusRange, NoBridges};
pub use scope::{DeviceScope, DeviceScopes, PathEntry, ScopeKind, ScopePath, SCOPE_HEADER_LEN};
pub use structures::{
    kind, Andd, Atsr, Drhd, RemappingStructure, Rhsa, Rmrr, Satc, Sidp, Structures, UnknownStructure,
};

use crate::bytes::{array_at, u32_at, u8_at};

pub const SIGNATURE: [u8; 4] = *b"DMAR";
/// The standard 36-byte ACPI header, Host Address Width, Flags and 10
/// reserved bytes (VT-d §8.1).
pub const HEADER_LEN: usize = 48;
/// Most device scopes a table may have.
pub const MAX_DEVICE_SCOPES: usize = 1024;

const LENGTH_OFFSET: usize = 4;
const REVISION_OFFSET: usize = 8;
const OEM_ID_OFFSET: usize = 10;
const OEM_TABLE_ID_OFFSET: usize = 16;
const HOST_ADDRESS_WIDTH_OFFSET: usize = 36;
const FLAGS_OFFSET: usize = 37;

/// What to do with remapping structure types this parser does not know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownStructurePolicy {
    /// Fail with [`DmarError::UnknownStructureType`].
    #[default]
    Reject,
    /// Keep them, bounds-checked, as [`RemappingStructure::Unknown`].
    Skip,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseOptions {
    pub unknown_structures: UnknownStructurePolicy,
}

/// The DMAR flags byte (offset 37).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DmarFlags(u8);

impl DmarFlags {
    /// The platform supports interrupt remapping.
    pub const INTR_REMAP: Self = Self(1 << 0);
    /// Firmware asks the OS not to enable x2APIC mode.
    pub const X2APIC_OPT_OUT: Self = Self(1 << 1);
    /// Firmware set up DMA protection that the OS is invited to keep.
    pub const DMA_CTRL_PLATFORM_OPT_IN: Self = Self(1 << 2);

    pub const fn from_bits(bits: u8) -> Self {
        Self(bits)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// Parses a DMAR table, rejecting unknown structure types. The single
/// entry point for fuzzing: any input yields `Ok` or a [`DmarError`].
pub fn parse_dmar(bytes: &[u8]) -> Result<Dmar<'_>, DmarError> {
    parse_dmar_with(bytes, ParseOptions::default())
}

/// Parses a DMAR table. Bytes after the header's length are ignored, so a
/// whole mapped page may be passed.
pub fn parse_dmar_with(bytes: &[u8], options: ParseOptions) -> Result<Dmar<'_>, DmarError> {
    if bytes.len() < HEADER_LEN {
        return Err(DmarError::TruncatedHeader { len: bytes.len() });
    }
    let signature: [u8; 4] = array_at(bytes, 0).ok_or(DmarError::TruncatedHeader { len: bytes.len() })?;
    if signature != SIGNATURE {
        return Err(DmarError::BadSignature { found: signature });
    }
    let declared = u32_at(bytes, LENGTH_OFFSET).unwrap_or_default();
    let bad_length = DmarError::BadTableLength {
        declared,
        available: bytes.len(),
    };
    let length = usize::try_from(declared).map_err(|_| bad_length)?;
    if length < HEADER_LEN {
        return Err(bad_length);
    }
    let table = bytes.get(..length).ok_or(bad_length)?;
    let sum = table.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte));
    if sum != 0 {
        return Err(DmarError::BadChecksum { sum });
    }
    let width = u8_at(table, HOST_ADDRESS_WIDTH_OFFSET).unwrap_or_default();
    if width >= 64 {
        return Err(DmarError::BadHostAddressWidth { raw: width });
    }
    validate::validate(table, options.unknown_structures)?;
    Ok(Dmar {
        table,
        policy: options.unknown_structures,
    })
}

/// A validated DMAR table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dmar<'a> {
    /// Exactly the header's length.
    table: &'a [u8],
    policy: UnknownStructurePolicy,
}

impl<'a> Dmar<'a> {
    /// The table's bytes, exactly as long as its header says.
    pub fn bytes(&self) -> &'a [u8] {
        self.table
    }

    pub fn revision(&self) -> u8 {
        u8_at(self.table, REVISION_OFFSET).unwrap_or_default()
    }

    pub fn oem_id(&self) -> [u8; 6] {
        array_at(self.table, OEM_ID_OFFSET).unwrap_or_default()
    }

    pub fn oem_table_id(&self) -> [u8; 8] {
        array_at(self.table, OEM_TABLE_ID_OFFSET).unwrap_or_default()
    }

    /// The maximum DMA physical address width in bits (the byte holds N-1).
    pub fn host_address_width(&self) -> u8 {
        u8_at(self.table, HOST_ADDRESS_WIDTH_OFFSET).unwrap_or_default() + 1
    }

    pub fn flags(&self) -> DmarFlags {
        DmarFlags(u8_at(self.table, FLAGS_OFFSET).unwrap_or_default())
    }

    pub fn structures(&self) -> Structures<'a> {
        Structures::new(self.table, self.policy)
    }

    pub fn drhds(&self) -> impl Iterator<Item = Drhd<'a>> + 'a {
        self.structures().filter_map(|structure| match structure {
            RemappingStructure::Drhd(drhd) => Some(drhd),
            _ => None,
        })
    }

    pub fn rmrrs(&self) -> impl Iterator<Item = Rmrr<'a>> + 'a {
        self.structures().filter_map(|structure| match structure {
            RemappingStructure::Rmrr(rmrr) => Some(rmrr),
            _ => None,
        })
    }

    pub fn atsrs(&self) -> impl Iterator<Item = Atsr<'a>> + 'a {
        self.structures().filter_map(|structure| match structure {
            RemappingStructure::Atsr(atsr) => Some(atsr),
            _ => None,
        })
    }

    pub fn rhsas(&self) -> impl Iterator<Item = Rhsa<'a>> + 'a {
        self.structures().filter_map(|structure| match structure {
            RemappingStructure::Rhsa(rhsa) => Some(rhsa),
            _ => None,
        })
    }

    pub fn andds(&self) -> impl Iterator<Item = Andd<'a>> + 'a {
        self.structures().filter_map(|structure| match structure {
            RemappingStructure::Andd(andd) => Some(andd),
            _ => None,
        })
    }

    pub fn satcs(&self) -> impl Iterator<Item = Satc<'a>> + 'a {
        self.structures().filter_map(|structure| match structure {
            RemappingStructure::Satc(satc) => Some(satc),
            _ => None,
        })
    }

    pub fn sidps(&self) -> impl Iterator<Item = Sidp<'a>> + 'a {
        self.structures().filter_map(|structure| match structure {
            RemappingStructure::Sidp(sidp) => Some(sidp),
            _ => None,
        })
    }
}

//! Encodes DMAR tables: valid ones for tests and firmware overrides, and
//! deliberately broken ones (lying lengths, bad checksums, unknown types)
//! to exercise the parser's errors.

use alloc::vec::Vec;

use super::structures::kind;
use super::{DmarFlags, HEADER_LEN, SCOPE_HEADER_LEN, SIGNATURE};

/// One device scope entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeSpec {
    kind: u8,
    flags: u8,
    enumeration_id: u8,
    start_bus: u8,
    path: Vec<(u8, u8)>,
    declared_len: Option<u8>,
}

impl ScopeSpec {
    /// Any type byte, including invalid ones.
    pub fn raw(kind: u8, enumeration_id: u8, start_bus: u8, path: &[(u8, u8)]) -> Self {
        Self {
            kind,
            flags: 0,
            enumeration_id,
            start_bus,
            path: path.to_vec(),
            declared_len: None,
        }
    }

    pub fn endpoint(start_bus: u8, path: &[(u8, u8)]) -> Self {
        Self::raw(1, 0, start_bus, path)
    }

    pub fn sub_hierarchy(start_bus: u8, path: &[(u8, u8)]) -> Self {
        Self::raw(2, 0, start_bus, path)
    }

    pub fn ioapic(apic_id: u8, start_bus: u8, path: &[(u8, u8)]) -> Self {
        Self::raw(3, apic_id, start_bus, path)
    }

    pub fn hpet(number: u8, start_bus: u8, path: &[(u8, u8)]) -> Self {
        Self::raw(4, number, start_bus, path)
    }

    pub fn acpi_device(device_number: u8, start_bus: u8, path: &[(u8, u8)]) -> Self {
        Self::raw(5, device_number, start_bus, path)
    }

    pub fn flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }

    /// Writes `len` as the entry's length byte whatever its real size.
    pub fn declared_len(mut self, len: u8) -> Self {
        self.declared_len = Some(len);
        self
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let real_len = SCOPE_HEADER_LEN + 2 * self.path.len();
        let len = self.declared_len.unwrap_or(real_len as u8);
        out.extend_from_slice(&[self.kind, len, self.flags, 0, self.enumeration_id, self.start_bus]);
        for &(device, function) in &self.path {
            out.extend_from_slice(&[device, function]);
        }
    }
}

fn encode_scopes(scopes: &[ScopeSpec], out: &mut Vec<u8>) {
    for scope in scopes {
        scope.encode(out);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrhdSpec {
    flags: u8,
    size: u8,
    segment: u16,
    register_base: u64,
    scopes: Vec<ScopeSpec>,
}

impl DrhdSpec {
    pub fn new(register_base: u64) -> Self {
        Self {
            flags: 0,
            size: 0,
            segment: 0,
            register_base,
            scopes: Vec::new(),
        }
    }

    pub fn segment(mut self, segment: u16) -> Self {
        self.segment = segment;
        self
    }

    pub fn include_pci_all(mut self) -> Self {
        self.flags |= 1;
        self
    }

    /// Register set size as log2 of 4 KiB pages.
    pub fn size(mut self, size: u8) -> Self {
        self.size = size;
        self
    }

    pub fn scope(mut self, scope: ScopeSpec) -> Self {
        self.scopes.push(scope);
        self
    }

    fn body(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&[self.flags, self.size]);
        body.extend_from_slice(&self.segment.to_le_bytes());
        body.extend_from_slice(&self.register_base.to_le_bytes());
        encode_scopes(&self.scopes, &mut body);
        body
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RmrrSpec {
    segment: u16,
    base: u64,
    limit: u64,
    scopes: Vec<ScopeSpec>,
}

impl RmrrSpec {
    /// `limit` is inclusive.
    pub fn new(segment: u16, base: u64, limit: u64) -> Self {
        Self {
            segment,
            base,
            limit,
            scopes: Vec::new(),
        }
    }

    pub fn scope(mut self, scope: ScopeSpec) -> Self {
        self.scopes.push(scope);
        self
    }

    fn body(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&self.segment.to_le_bytes());
        body.extend_from_slice(&self.base.to_le_bytes());
        body.extend_from_slice(&self.limit.to_le_bytes());
        encode_scopes(&self.scopes, &mut body);
        body
    }
}

/// ATSR and SATC share a layout: flags, reserved, segment, scopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtsrSpec {
    flags: u8,
    segment: u16,
    scopes: Vec<ScopeSpec>,
}

impl AtsrSpec {
    pub fn new(segment: u16) -> Self {
        Self {
            flags: 0,
            segment,
            scopes: Vec::new(),
        }
    }

    pub fn all_ports(mut self) -> Self {
        self.flags |= 1;
        self
    }

    pub fn scope(mut self, scope: ScopeSpec) -> Self {
        self.scopes.push(scope);
        self
    }

    fn body(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&[self.flags, 0]);
        body.extend_from_slice(&self.segment.to_le_bytes());
        encode_scopes(&self.scopes, &mut body);
        body
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SatcSpec(AtsrSpec);

impl SatcSpec {
    pub fn new(segment: u16) -> Self {
        Self(AtsrSpec::new(segment))
    }

    pub fn atc_required(self) -> Self {
        Self(self.0.all_ports())
    }

    pub fn scope(self, scope: ScopeSpec) -> Self {
        Self(self.0.scope(scope))
    }
}

/// Builds a DMAR table structure by structure; [`DmarBuilder::build`]
/// fills in the length and checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmarBuilder {
    revision: u8,
    host_address_width: u8,
    flags: DmarFlags,
    body: Vec<u8>,
}

impl DmarBuilder {
    /// `host_address_width` in bits (1..=64); the table stores it minus one.
    pub fn new(host_address_width: u8) -> Self {
        Self {
            revision: 1,
            host_address_width: host_address_width.wrapping_sub(1),
            flags: DmarFlags::default(),
            body: Vec::new(),
        }
    }

    /// Stores `raw` as the Host Address Width byte unchanged.
    pub fn raw_host_address_width(mut self, raw: u8) -> Self {
        self.host_address_width = raw;
        self
    }

    pub fn flags(mut self, flags: DmarFlags) -> Self {
        self.flags = flags;
        self
    }

    pub fn drhd(self, drhd: DrhdSpec) -> Self {
        let body = drhd.body();
        self.structure(kind::DRHD, &body)
    }

    pub fn rmrr(self, rmrr: RmrrSpec) -> Self {
        let body = rmrr.body();
        self.structure(kind::RMRR, &body)
    }

    pub fn atsr(self, atsr: AtsrSpec) -> Self {
        let body = atsr.body();
        self.structure(kind::ATSR, &body)
    }

    pub fn rhsa(self, register_base: u64, proximity_domain: u32) -> Self {
        let mut body = Vec::new();
        body.extend_from_slice(&[0; 4]);
        body.extend_from_slice(&register_base.to_le_bytes());
        body.extend_from_slice(&proximity_domain.to_le_bytes());
        self.structure(kind::RHSA, &body)
    }

    /// `name` without its terminating NUL, which this adds.
    pub fn andd(self, acpi_device_number: u8, name: &[u8]) -> Self {
        let mut body = Vec::new();
        body.extend_from_slice(&[0, 0, 0, acpi_device_number]);
        body.extend_from_slice(name);
        body.push(0);
        self.structure(kind::ANDD, &body)
    }

    pub fn satc(self, satc: SatcSpec) -> Self {
        let body = satc.0.body();
        self.structure(kind::SATC, &body)
    }

    pub fn sidp(self, segment: u16, scopes: &[ScopeSpec]) -> Self {
        let mut body = Vec::new();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&segment.to_le_bytes());
        encode_scopes(scopes, &mut body);
        self.structure(kind::SIDP, &body)
    }

    /// A structure of any type with the correct length.
    pub fn structure(self, kind: u16, body: &[u8]) -> Self {
        let len = 4 + body.len() as u16;
        self.raw_structure(kind, len, body)
    }

    /// A structure whose length field says `declared_len` whatever the size
    /// of `body`.
    pub fn raw_structure(mut self, kind: u16, declared_len: u16, body: &[u8]) -> Self {
        self.body.extend_from_slice(&kind.to_le_bytes());
        self.body.extend_from_slice(&declared_len.to_le_bytes());
        self.body.extend_from_slice(body);
        self
    }

    /// Appends bytes after the last structure as they are.
    pub fn raw_bytes(mut self, bytes: &[u8]) -> Self {
        self.body.extend_from_slice(bytes);
        self
    }

    /// The table with a correct length and checksum.
    pub fn build(&self) -> Vec<u8> {
        let mut table = Vec::with_capacity(HEADER_LEN + self.body.len());
        table.extend_from_slice(&SIGNATURE);
        let length = (HEADER_LEN + self.body.len()) as u32;
        table.extend_from_slice(&length.to_le_bytes());
        table.push(self.revision);
        table.push(0);
        table.extend_from_slice(b"KEEL  ");
        table.extend_from_slice(b"KEELDMAR");
        table.extend_from_slice(&1u32.to_le_bytes());
        table.extend_from_slice(b"KEEL");
        table.extend_from_slice(&1u32.to_le_bytes());
        table.push(self.host_address_width);
        table.push(self.flags.bits());
        table.extend_from_slice(&[0; 10]);
        table.extend_from_slice(&self.body);
        fix_checksum(&mut table);
        table
    }
}

/// Sets the checksum byte (offset 9) so all bytes sum to zero; for tests
/// that patch a built table.
pub fn fix_checksum(table: &mut [u8]) {
    let Some(checksum) = table.get_mut(9) else {
        return;
    };
    *checksum = 0;
    let sum = table.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte));
    if let Some(checksum) = table.get_mut(9) {
        *checksum = 0u8.wrapping_sub(sum);
    }
}

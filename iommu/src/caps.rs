//! The version, capability and extended capability registers (VT-d
//! §10.4.1 to §10.4.3), decoded.

/// Adjusted guest address widths: the second-level table depths a unit can
/// walk (CAP.SAGAW bit n, context entry AW value n).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Agaw {
    /// 39-bit, 3-level walk.
    Bits39,
    /// 48-bit, 4-level walk.
    Bits48,
    /// 57-bit, 5-level walk.
    Bits57,
}

impl Agaw {
    pub const ALL: [Self; 3] = [Self::Bits39, Self::Bits48, Self::Bits57];

    /// The context entry's AW encoding and the SAGAW bit number.
    pub const fn encoding(self) -> u8 {
        match self {
            Self::Bits39 => 1,
            Self::Bits48 => 2,
            Self::Bits57 => 3,
        }
    }

    pub const fn from_encoding(encoding: u8) -> Option<Self> {
        match encoding {
            1 => Some(Self::Bits39),
            2 => Some(Self::Bits48),
            3 => Some(Self::Bits57),
            _ => None,
        }
    }

    pub const fn bits(self) -> u8 {
        match self {
            Self::Bits39 => 39,
            Self::Bits48 => 48,
            Self::Bits57 => 57,
        }
    }

    /// Page-table levels of the walk.
    pub const fn levels(self) -> u8 {
        match self {
            Self::Bits39 => 3,
            Self::Bits48 => 4,
            Self::Bits57 => 5,
        }
    }

    /// One past the highest input address the walk translates.
    pub const fn limit(self) -> u64 {
        1 << self.bits()
    }
}

/// Which second-level superpage sizes a unit supports (CAP.SLLPS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LargePages {
    pub size_2m: bool,
    pub size_1g: bool,
}

/// The version register: major in bits 7:4, minor in 3:0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
}

impl Version {
    pub const fn from_raw(raw: u32) -> Self {
        Self {
            major: ((raw >> 4) & 0xf) as u8,
            minor: (raw & 0xf) as u8,
        }
    }
}

const fn bit(value: u64, index: u32) -> bool {
    value >> index & 1 != 0
}

const fn field(value: u64, shift: u32, width: u32) -> u64 {
    value >> shift & ((1 << width) - 1)
}

/// CAP_REG (offset 0x8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Capabilities(u64);

impl Capabilities {
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    pub const fn raw(self) -> u64 {
        self.0
    }

    /// ND: 2^(4 + 2 * ND) domain IDs.
    pub const fn domains(self) -> u32 {
        1 << (4 + 2 * field(self.0, 0, 3))
    }

    /// Whether `domain` may tag context entries: below the ND count, and not
    /// 0 when caching mode is on (hardware tags cached invalid entries with
    /// domain 0 then).
    pub const fn domain_id_usable(self, domain: u16) -> bool {
        (domain as u32) < self.domains() && !(self.caching_mode() && domain == 0)
    }

    /// AFL.
    pub const fn advanced_fault_logging(self) -> bool {
        bit(self.0, 3)
    }

    /// RWBF: software must flush the write buffer (GCMD.WBF) after
    /// updating remapping structures.
    pub const fn requires_write_buffer_flush(self) -> bool {
        bit(self.0, 4)
    }

    /// PLMR.
    pub const fn protected_low_memory_region(self) -> bool {
        bit(self.0, 5)
    }

    /// PHMR.
    pub const fn protected_high_memory_region(self) -> bool {
        bit(self.0, 6)
    }

    /// CM: the unit may cache not-present and invalid entries, so making an
    /// entry present needs an invalidation too (typical of an emulated
    /// IOMMU, VT-d §6.1).
    pub const fn caching_mode(self) -> bool {
        bit(self.0, 7)
    }

    /// SAGAW.
    pub const fn supports(self, agaw: Agaw) -> bool {
        bit(self.0, 8 + agaw.encoding() as u32)
    }

    /// The smallest supported walk covering `address_bits` of input address.
    pub fn agaw_covering(self, address_bits: u8) -> Option<Agaw> {
        Agaw::ALL
            .into_iter()
            .find(|&agaw| self.supports(agaw) && agaw.bits() >= address_bits)
    }

    /// MGAW: input addresses at or above 2^MGAW fault.
    pub const fn max_guest_address_width(self) -> u8 {
        field(self.0, 16, 6) as u8 + 1
    }

    /// ZLR.
    pub const fn zero_length_read(self) -> bool {
        bit(self.0, 22)
    }

    /// FRO: register offset of the first fault recording register.
    pub const fn fault_recording_offset(self) -> u32 {
        field(self.0, 24, 10) as u32 * 16
    }

    /// SLLPS.
    pub const fn large_pages(self) -> LargePages {
        LargePages {
            size_2m: bit(self.0, 34),
            size_1g: bit(self.0, 35),
        }
    }

    /// PSI: page-selective IOTLB invalidation.
    pub const fn page_selective_invalidation(self) -> bool {
        bit(self.0, 39)
    }

    /// NFR: number of fault recording registers.
    pub const fn fault_recording_count(self) -> u32 {
        field(self.0, 40, 8) as u32 + 1
    }

    /// MAMV: the largest address mask of a page-selective invalidation.
    pub const fn max_address_mask(self) -> u8 {
        field(self.0, 48, 6) as u8
    }

    /// DWD.
    pub const fn write_draining(self) -> bool {
        bit(self.0, 54)
    }

    /// DRD.
    pub const fn read_draining(self) -> bool {
        bit(self.0, 55)
    }

    /// PI: posted interrupts.
    pub const fn posted_interrupts(self) -> bool {
        bit(self.0, 59)
    }
}

/// ECAP_REG (offset 0x10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtendedCapabilities(u64);

impl ExtendedCapabilities {
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    pub const fn raw(self) -> u64 {
        self.0
    }

    /// C: page walks snoop processor caches; when clear, table writes need
    /// cache flushes (see [`TableMemory`](crate::TableMemory)).
    pub const fn coherent(self) -> bool {
        bit(self.0, 0)
    }

    /// QI.
    pub const fn queued_invalidation(self) -> bool {
        bit(self.0, 1)
    }

    /// DT: device TLBs (ATS).
    pub const fn device_tlb(self) -> bool {
        bit(self.0, 2)
    }

    /// IR.
    pub const fn interrupt_remapping(self) -> bool {
        bit(self.0, 3)
    }

    /// EIM: 32-bit x2APIC destination IDs in IRTEs.
    pub const fn extended_interrupt_mode(self) -> bool {
        bit(self.0, 4)
    }

    /// PT: context entries may request pass-through.
    pub const fn pass_through(self) -> bool {
        bit(self.0, 6)
    }

    /// SC: second-level entries may set SNP (force snooping).
    pub const fn snoop_control(self) -> bool {
        bit(self.0, 7)
    }

    /// IRO: register offset of the IOTLB registers (IVA, then IOTLB_REG).
    pub const fn iotlb_register_offset(self) -> u32 {
        field(self.0, 8, 10) as u32 * 16
    }

    /// MHMV: the largest handle mask of an interrupt-entry-cache invalidation.
    pub const fn max_handle_mask(self) -> u8 {
        field(self.0, 20, 4) as u8
    }

    /// SMTS: scalable-mode translation (not used by this crate).
    pub const fn scalable_mode(self) -> bool {
        bit(self.0, 43)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Built from the fields QEMU's intel-iommu sets with aw-bits=48 and
    /// intremap=on, caching-mode=on: FRO 0x220, NFR 1, SAGAW 39+48,
    /// MGAW 48, SLLPS 2M+1G, PSI, MAMV 18, DRD/DWD, ND 16 bits.
    const QEMU_CAP: u64 = 0x00d2_008c_222f_0686;

    #[test]
    fn qemu_capabilities_decode() {
        let cap = Capabilities::from_raw(QEMU_CAP);
        assert_eq!(cap.domains(), 65536);
        assert!(cap.caching_mode());
        assert!(!cap.requires_write_buffer_flush());
        assert!(cap.supports(Agaw::Bits39) && cap.supports(Agaw::Bits48));
        assert!(!cap.supports(Agaw::Bits57));
        assert_eq!(cap.max_guest_address_width(), 48);
        assert_eq!(cap.fault_recording_offset(), 0x220);
        assert_eq!(cap.fault_recording_count(), 1);
        assert_eq!(
            cap.large_pages(),
            LargePages {
                size_2m: true,
                size_1g: true
            }
        );
        assert!(cap.page_selective_invalidation());
        assert_eq!(cap.max_address_mask(), 18);
        assert!(cap.read_draining() && cap.write_draining());
        assert!(!cap.posted_interrupts());
        assert_eq!(cap.agaw_covering(32), Some(Agaw::Bits39));
        assert_eq!(cap.agaw_covering(40), Some(Agaw::Bits48));
        assert_eq!(cap.agaw_covering(50), None);
        assert!(!cap.domain_id_usable(0));
        assert!(cap.domain_id_usable(1) && cap.domain_id_usable(u16::MAX));
        let small = Capabilities::from_raw(0);
        assert_eq!(small.domains(), 16);
        assert!(small.domain_id_usable(0) && small.domain_id_usable(15) && !small.domain_id_usable(16));
    }

    #[test]
    fn extended_capabilities_decode() {
        // QI, DT off, IR, EIM, PT, SC off, IRO 0xf0, MHMV 15.
        let ecap = ExtendedCapabilities::from_raw(0x00f0_0f5a);
        assert!(!ecap.coherent());
        assert!(ecap.queued_invalidation());
        assert!(!ecap.device_tlb());
        assert!(ecap.interrupt_remapping());
        assert!(ecap.extended_interrupt_mode());
        assert!(ecap.pass_through());
        assert!(!ecap.snoop_control());
        assert_eq!(ecap.iotlb_register_offset(), 0xf0);
        assert_eq!(ecap.max_handle_mask(), 15);
        assert!(!ecap.scalable_mode());
        assert!(ExtendedCapabilities::from_raw(1 << 43).scalable_mode());
    }

    #[test]
    fn agaw_encodings_round_trip() {
        for agaw in Agaw::ALL {
            assert_eq!(Agaw::from_encoding(agaw.encoding()), Some(agaw));
            assert_eq!(u32::from(agaw.bits()), 12 + 9 * u32::from(agaw.levels()));
        }
        assert_eq!(Agaw::from_encoding(0), None);
        assert_eq!(Agaw::Bits48.limit(), 1 << 48);
        assert_eq!(Version::from_raw(0x10), Version { major: 1, minor: 0 });
    }
}

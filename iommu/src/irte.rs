//! Interrupt remapping (VT-d chapter 5): the interrupt remapping table
//! entry in remapped format (§9.10), the Interrupt Remapping Table Address
//! register (§10.4) and the remappable MSI and I/O APIC formats devices are
//! programmed with (§5.1.2.2, "Interrupt Requests in Remappable Format").

use keel_memory::{HostPhysAddr, PAGE_SIZE_4K};

use crate::{SourceId, TableMemory};

pub const IRTE_LEN: u64 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrteError {
    /// An xAPIC-mode destination above 255.
    DestinationTooWide { destination: u32 },
    /// The software-available field is 4 bits.
    AvailableTooWide,
    /// The source-id qualifier is 2 bits.
    BadQualifier,
    /// A present entry in posted format (IM set), which this crate does not
    /// model.
    PostedFormat,
    /// A reserved delivery mode encoding (3 or 6).
    ReservedDeliveryMode { raw: u8 },
    /// The reserved source validation type 3.
    ReservedValidation,
    /// Entry count not a power of two in 2..=65536, or base not 4 KiB aligned.
    BadTable,
    /// An index beyond the table.
    IndexOutOfRange { index: u32 },
}

/// Whether destinations are 8-bit xAPIC IDs or 32-bit x2APIC IDs (IRTA.EIME,
/// which needs ECAP.EIM).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApicMode {
    XApic,
    X2Apic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryMode {
    Fixed,
    LowestPriority,
    Smi,
    Nmi,
    Init,
    ExtInt,
}

impl DeliveryMode {
    pub const fn raw(self) -> u8 {
        match self {
            Self::Fixed => 0,
            Self::LowestPriority => 1,
            Self::Smi => 2,
            Self::Nmi => 4,
            Self::Init => 5,
            Self::ExtInt => 7,
        }
    }

    pub const fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(Self::Fixed),
            1 => Some(Self::LowestPriority),
            2 => Some(Self::Smi),
            4 => Some(Self::Nmi),
            5 => Some(Self::Init),
            7 => Some(Self::ExtInt),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DestinationMode {
    Physical,
    Logical,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TriggerMode {
    Edge,
    Level,
}

/// Which requests may use the entry (SVT, SQ and SID fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceValidation {
    /// Any requester (SVT 0).
    None,
    /// The requester ID must equal `source`, ignoring the low function bits
    /// that `qualifier` (0..=3) selects (SVT 1).
    RequesterId { source: SourceId, qualifier: u8 },
    /// The requester's bus must lie in `first..=last` (SVT 2): for devices
    /// behind a PCIe-to-PCI bridge.
    BusRange { first: u8, last: u8 },
}

/// A present interrupt remapping table entry in remapped format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Irte {
    pub vector: u8,
    /// The APIC ID (xAPIC: 8 bits; x2APIC: 32 bits) or logical destination.
    pub destination: u32,
    pub delivery_mode: DeliveryMode,
    pub destination_mode: DestinationMode,
    pub trigger_mode: TriggerMode,
    /// RH: lowest-priority style redirection among the logical destination.
    pub redirection_hint: bool,
    /// FPD: do not record faults for this entry.
    pub fault_processing_disable: bool,
    /// AVAIL (bits 11:8): ignored by hardware.
    pub available: u8,
    pub source_validation: SourceValidation,
}

impl Irte {
    /// A fixed, physical, edge-triggered interrupt to `destination`
    /// accepted only from `source`.
    pub const fn fixed(vector: u8, destination: u32, source: SourceId) -> Self {
        Self {
            vector,
            destination,
            delivery_mode: DeliveryMode::Fixed,
            destination_mode: DestinationMode::Physical,
            trigger_mode: TriggerMode::Edge,
            redirection_hint: false,
            fault_processing_disable: false,
            available: 0,
            source_validation: SourceValidation::RequesterId { source, qualifier: 0 },
        }
    }

    /// The two quadwords of the entry, present and in remapped format.
    pub fn encode(&self, mode: ApicMode) -> Result<[u64; 2], IrteError> {
        if self.available > 0xf {
            return Err(IrteError::AvailableTooWide);
        }
        let destination = match mode {
            ApicMode::X2Apic => u64::from(self.destination),
            ApicMode::XApic if self.destination <= 0xff => u64::from(self.destination) << 8,
            ApicMode::XApic => {
                return Err(IrteError::DestinationTooWide {
                    destination: self.destination,
                })
            }
        };
        let low = 1
            | u64::from(self.fault_processing_disable) << 1
            | u64::from(self.destination_mode == DestinationMode::Logical) << 2
            | u64::from(self.redirection_hint) << 3
            | u64::from(self.trigger_mode == TriggerMode::Level) << 4
            | u64::from(self.delivery_mode.raw()) << 5
            | u64::from(self.available) << 8
            | u64::from(self.vector) << 16
            | destination << 32;
        let (svt, qualifier, sid) = match self.source_validation {
            SourceValidation::None => (0, 0, 0),
            SourceValidation::RequesterId { source, qualifier } => {
                if qualifier > 3 {
                    return Err(IrteError::BadQualifier);
                }
                (1, qualifier, source.raw())
            }
            SourceValidation::BusRange { first, last } => (2, 0, u16::from(first) << 8 | u16::from(last)),
        };
        let high = u64::from(sid) | u64::from(qualifier) << 16 | svt << 18;
        Ok([low, high])
    }

    /// `None` for a not-present entry.
    pub fn decode(raw: [u64; 2], mode: ApicMode) -> Result<Option<Self>, IrteError> {
        let [low, high] = raw;
        if low & 1 == 0 {
            return Ok(None);
        }
        if low >> 15 & 1 != 0 {
            return Err(IrteError::PostedFormat);
        }
        let delivery_raw = ((low >> 5) & 0x7) as u8;
        let delivery_mode =
            DeliveryMode::from_raw(delivery_raw).ok_or(IrteError::ReservedDeliveryMode { raw: delivery_raw })?;
        let destination = match mode {
            ApicMode::X2Apic => (low >> 32) as u32,
            ApicMode::XApic => ((low >> 40) & 0xff) as u32,
        };
        let sid = high as u16;
        let source_validation = match (high >> 18) & 0x3 {
            0 => SourceValidation::None,
            1 => SourceValidation::RequesterId {
                source: SourceId::from_raw(sid),
                qualifier: ((high >> 16) & 0x3) as u8,
            },
            2 => SourceValidation::BusRange {
                first: (sid >> 8) as u8,
                last: sid as u8,
            },
            _ => return Err(IrteError::ReservedValidation),
        };
        Ok(Some(Self {
            vector: (low >> 16) as u8,
            destination,
            delivery_mode,
            destination_mode: if low >> 2 & 1 != 0 {
                DestinationMode::Logical
            } else {
                DestinationMode::Physical
            },
            trigger_mode: if low >> 4 & 1 != 0 {
                TriggerMode::Level
            } else {
                TriggerMode::Edge
            },
            redirection_hint: low >> 3 & 1 != 0,
            fault_processing_disable: low >> 1 & 1 != 0,
            available: ((low >> 8) & 0xf) as u8,
            source_validation,
        }))
    }
}

/// IRTA.S: the table holds 2^(S+1) entries, 2 to 65536.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TableSize(u8);

impl TableSize {
    /// 256 entries: one 4 KiB page.
    pub const ONE_PAGE: Self = Self(7);

    pub fn from_entries(entries: u32) -> Result<Self, IrteError> {
        if !entries.is_power_of_two() || !(2..=65536).contains(&entries) {
            return Err(IrteError::BadTable);
        }
        Ok(Self((entries.trailing_zeros() - 1) as u8))
    }

    pub const fn s(self) -> u8 {
        self.0
    }

    pub const fn entries(self) -> u32 {
        2 << self.0
    }

    pub const fn bytes(self) -> u64 {
        self.entries() as u64 * IRTE_LEN
    }
}

/// The IRTA register value: table base, EIME (bit 11) and S (bits 3:0).
pub fn irta_value(base: HostPhysAddr, size: TableSize, mode: ApicMode) -> Result<u64, IrteError> {
    if !base.is_aligned(PAGE_SIZE_4K) {
        return Err(IrteError::BadTable);
    }
    Ok(base.as_u64() | u64::from(mode == ApicMode::X2Apic) << 11 | u64::from(size.s()))
}

/// An interrupt remapping table in memory: `size.bytes()` physically
/// contiguous bytes at a 4 KiB aligned base, zeroed (all entries not
/// present) before use. Changing an entry hardware may have cached needs
/// an interrupt entry cache invalidation afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptRemappingTable {
    base: HostPhysAddr,
    size: TableSize,
    mode: ApicMode,
}

impl InterruptRemappingTable {
    pub fn new(base: HostPhysAddr, size: TableSize, mode: ApicMode) -> Result<Self, IrteError> {
        irta_value(base, size, mode)?;
        Ok(Self { base, size, mode })
    }

    pub fn irta(&self) -> u64 {
        self.base.as_u64() | u64::from(self.mode == ApicMode::X2Apic) << 11 | u64::from(self.size.s())
    }

    pub fn size(&self) -> TableSize {
        self.size
    }

    pub fn mode(&self) -> ApicMode {
        self.mode
    }

    fn entry_address(&self, index: u32) -> Result<HostPhysAddr, IrteError> {
        if index >= self.size.entries() {
            return Err(IrteError::IndexOutOfRange { index });
        }
        Ok(HostPhysAddr::new(self.base.as_u64() + u64::from(index) * IRTE_LEN))
    }

    /// Writes a present entry. The high quadword (source validation) goes
    /// first and the low one (with the present bit) last, so hardware never
    /// sees a present entry with a stale source check.
    pub fn set(&self, index: u32, irte: &Irte, mem: &mut impl TableMemory) -> Result<(), IrteError> {
        let [low, high] = irte.encode(self.mode)?;
        let address = self.entry_address(index)?;
        mem.write_u64(HostPhysAddr::new(address.as_u64() + 8), high);
        mem.write_u64(address, low);
        Ok(())
    }

    /// Marks an entry not present.
    pub fn clear(&self, index: u32, mem: &mut impl TableMemory) -> Result<(), IrteError> {
        let address = self.entry_address(index)?;
        mem.write_u64(address, 0);
        mem.write_u64(HostPhysAddr::new(address.as_u64() + 8), 0);
        Ok(())
    }

    pub fn get(&self, index: u32, mem: &impl TableMemory) -> Result<Option<Irte>, IrteError> {
        let address = self.entry_address(index)?;
        let raw = [
            mem.read_u64(address),
            mem.read_u64(HostPhysAddr::new(address.as_u64() + 8)),
        ];
        Irte::decode(raw, self.mode)
    }
}

/// The MSI address and data that make a device's interrupt a
/// remappable-format request for entry `handle` (VT-d §5.1.2.2): address
/// bits 31:20 = 0xFEE, 19:5 = handle bits 14:0, 4 = 1 (remappable), 3 = SHV,
/// 2 = handle bit 15. With a subhandle (SHV), the entry used is handle plus
/// the subhandle in the data's low 16 bits, which lets a multi-vector MSI
/// pick consecutive entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RemappableMsi {
    /// The low 32 bits of the MSI address (the upper 32 are zero).
    pub address: u32,
    pub data: u32,
}

const MSI_ADDRESS_BASE: u32 = 0xfee0_0000;
const MSI_REMAPPABLE: u32 = 1 << 4;
const MSI_SHV: u32 = 1 << 3;

impl RemappableMsi {
    pub const fn new(handle: u16, subhandle: Option<u16>) -> Self {
        let shv = if subhandle.is_some() { MSI_SHV } else { 0 };
        let handle = handle as u32;
        Self {
            address: MSI_ADDRESS_BASE | (handle & 0x7fff) << 5 | MSI_REMAPPABLE | shv | (handle >> 15) << 2,
            data: match subhandle {
                Some(subhandle) => subhandle as u32,
                None => 0,
            },
        }
    }

    /// The interrupt index hardware will compute; `None` for a
    /// compatibility-format MSI (bit 4 clear).
    pub const fn interrupt_index(address: u32, data: u32) -> Option<u32> {
        if address & MSI_REMAPPABLE == 0 {
            return None;
        }
        let handle = (address >> 5) & 0x7fff | ((address >> 2) & 1) << 15;
        if address & MSI_SHV != 0 {
            Some(handle + (data & 0xffff))
        } else {
            Some(handle)
        }
    }
}

/// An I/O APIC redirection table entry in remappable format (VT-d
/// §5.1.2.2 and "I/OxAPIC Programming" in §5.1.5): vector in 7:0 (must equal the IRTE's vector for
/// level-triggered EOIs to match), index bit 15 in bit 11, polarity 13,
/// trigger mode 15, mask 16, format (1) in bit 48, index bits 14:0 in 63:49.
pub const fn remappable_ioapic_rte(index: u16, vector: u8, level: bool, active_low: bool, masked: bool) -> u64 {
    let index = index as u64;
    vector as u64
        | (index >> 15) << 11
        | (active_low as u64) << 13
        | (level as u64) << 15
        | (masked as u64) << 16
        | 1 << 48
        | (index & 0x7fff) << 49
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::FakeMemory;

    fn sid(bus: u8, device: u8, function: u8) -> SourceId {
        SourceId::new(bus, device, function).unwrap()
    }

    #[test]
    fn a_fixed_entry_encodes_per_the_spec() {
        let irte = Irte::fixed(0x41, 3, sid(0, 2, 0));
        let [low, high] = irte.encode(ApicMode::XApic).unwrap();
        assert_eq!(low, 1 | 0x41 << 16 | 3 << 40);
        assert_eq!(high, 0x0010 | 1 << 18);
        let [low, _] = irte.encode(ApicMode::X2Apic).unwrap();
        assert_eq!(low, 1 | 0x41 << 16 | 3 << 32);
    }

    #[test]
    fn every_field_round_trips() {
        let irte = Irte {
            vector: 0xef,
            destination: 0x1234_5678,
            delivery_mode: DeliveryMode::LowestPriority,
            destination_mode: DestinationMode::Logical,
            trigger_mode: TriggerMode::Level,
            redirection_hint: true,
            fault_processing_disable: true,
            available: 0xa,
            source_validation: SourceValidation::BusRange { first: 4, last: 7 },
        };
        let raw = irte.encode(ApicMode::X2Apic).unwrap();
        assert_eq!(
            raw[0] & 0xffff,
            1 | 1 << 1 | 1 << 2 | 1 << 3 | 1 << 4 | 1 << 5 | 0xa << 8
        );
        assert_eq!(raw[1], 0x0407 | 2 << 18);
        assert_eq!(Irte::decode(raw, ApicMode::X2Apic), Ok(Some(irte)));
        let xapic = Irte {
            destination: 0xfe,
            source_validation: SourceValidation::RequesterId {
                source: sid(3, 0, 0),
                qualifier: 3,
            },
            ..irte
        };
        let raw = xapic.encode(ApicMode::XApic).unwrap();
        assert_eq!(Irte::decode(raw, ApicMode::XApic), Ok(Some(xapic)));
    }

    #[test]
    fn invalid_entries_are_rejected() {
        let irte = Irte::fixed(0x30, 0x100, sid(0, 2, 0));
        assert_eq!(
            irte.encode(ApicMode::XApic),
            Err(IrteError::DestinationTooWide { destination: 0x100 })
        );
        let wide = Irte {
            available: 0x10,
            ..irte
        };
        assert_eq!(wide.encode(ApicMode::X2Apic), Err(IrteError::AvailableTooWide));
        let qualifier = Irte {
            source_validation: SourceValidation::RequesterId {
                source: sid(0, 2, 0),
                qualifier: 4,
            },
            ..irte
        };
        assert_eq!(qualifier.encode(ApicMode::X2Apic), Err(IrteError::BadQualifier));
        assert_eq!(Irte::decode([0, u64::MAX], ApicMode::XApic), Ok(None));
        assert_eq!(
            Irte::decode([1 | 1 << 15, 0], ApicMode::XApic),
            Err(IrteError::PostedFormat)
        );
        assert_eq!(
            Irte::decode([1 | 3 << 5, 0], ApicMode::XApic),
            Err(IrteError::ReservedDeliveryMode { raw: 3 })
        );
        assert_eq!(
            Irte::decode([1, 3 << 18], ApicMode::XApic),
            Err(IrteError::ReservedValidation)
        );
    }

    #[test]
    fn table_size_and_irta() {
        assert_eq!(TableSize::ONE_PAGE.entries(), 256);
        assert_eq!(TableSize::ONE_PAGE.bytes(), 4096);
        assert_eq!(TableSize::from_entries(256), Ok(TableSize::ONE_PAGE));
        assert_eq!(TableSize::from_entries(65536).unwrap().s(), 15);
        assert_eq!(TableSize::from_entries(2).unwrap().s(), 0);
        for bad in [0, 1, 3, 131_072] {
            assert_eq!(TableSize::from_entries(bad), Err(IrteError::BadTable));
        }
        let base = HostPhysAddr::new(0x7000_0000);
        assert_eq!(irta_value(base, TableSize::ONE_PAGE, ApicMode::X2Apic), Ok(0x7000_0807));
        assert_eq!(irta_value(base, TableSize::ONE_PAGE, ApicMode::XApic), Ok(0x7000_0007));
        assert_eq!(
            irta_value(HostPhysAddr::new(0x7000_0100), TableSize::ONE_PAGE, ApicMode::XApic),
            Err(IrteError::BadTable)
        );
    }

    #[test]
    fn the_table_in_memory_sets_gets_and_clears() {
        let mut mem = FakeMemory::default();
        let base = HostPhysAddr::new(0x7000_0000);
        mem.zero_frame(base);
        let table = InterruptRemappingTable::new(base, TableSize::ONE_PAGE, ApicMode::X2Apic).unwrap();
        assert_eq!(table.irta(), 0x7000_0807);
        let irte = Irte::fixed(0x50, 7, sid(0, 3, 0));
        table.set(255, &irte, &mut mem).unwrap();
        assert_eq!(table.get(255, &mem), Ok(Some(irte)));
        assert_eq!(mem.read_u64(HostPhysAddr::new(0x7000_0ff0)) & 1, 1);
        assert_eq!(table.get(0, &mem), Ok(None));
        assert_eq!(
            table.set(256, &irte, &mut mem),
            Err(IrteError::IndexOutOfRange { index: 256 })
        );
        table.clear(255, &mut mem).unwrap();
        assert_eq!(table.get(255, &mem), Ok(None));
    }

    #[test]
    fn remappable_msi_addresses_split_the_handle() {
        let msi = RemappableMsi::new(0x8001, None);
        assert_eq!(msi.address, 0xfee0_0000 | 1 << 5 | 1 << 4 | 1 << 2);
        assert_eq!(msi.data, 0);
        assert_eq!(RemappableMsi::interrupt_index(msi.address, 0x1234), Some(0x8001));
        let multi = RemappableMsi::new(0x20, Some(3));
        assert_eq!(multi.address, 0xfee0_0000 | 0x20 << 5 | 1 << 4 | 1 << 3);
        assert_eq!(RemappableMsi::interrupt_index(multi.address, multi.data), Some(0x23));
        assert_eq!(RemappableMsi::interrupt_index(0xfee0_1000, 0x41), None);
        for handle in [0, 1, 0x7fff, 0x8000, 0xffff] {
            let msi = RemappableMsi::new(handle, None);
            assert_eq!(RemappableMsi::interrupt_index(msi.address, 0), Some(u32::from(handle)));
        }
    }

    #[test]
    fn remappable_ioapic_entries() {
        let rte = remappable_ioapic_rte(0x8005, 0x31, true, true, false);
        assert_eq!(rte, 0x31 | 1 << 11 | 1 << 13 | 1 << 15 | 1 << 48 | 5 << 49);
        assert_eq!(
            remappable_ioapic_rte(2, 0x40, false, false, true),
            0x40 | 1 << 16 | 1 << 48 | 2 << 49
        );
    }
}

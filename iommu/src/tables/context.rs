//! Root entries (VT-d §9.1) and legacy context entries (§9.3), and a root
//! table in memory that creates context tables on demand.

use keel_memory::{FrameAllocator, HostPhysAddr, PAGE_SIZE_4K};

use super::TableError;
use crate::caps::Agaw;
use crate::{SourceId, TableMemory};

const PRESENT: u64 = 1 << 0;
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Root and context entries are 128 bits.
const ENTRY_LEN: u64 = 16;
const BUSES: u64 = 256;

/// A root entry: the context table of one bus, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RootEntry {
    pub context_table: Option<HostPhysAddr>,
}

impl RootEntry {
    /// Bit 0 present, bits 63:12 context-table pointer, upper quadword
    /// reserved.
    pub fn encode(&self) -> [u64; 2] {
        match self.context_table {
            Some(table) => [table.as_u64() & ADDRESS_MASK | PRESENT, 0],
            None => [0, 0],
        }
    }

    pub fn decode(raw: [u64; 2]) -> Self {
        Self {
            context_table: (raw[0] & PRESENT != 0).then_some(HostPhysAddr::new(raw[0] & ADDRESS_MASK)),
        }
    }
}

/// Context entry TT field: how requests from the device are translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TranslationType {
    /// Untranslated requests go through the second-level tables;
    /// translation requests and translated requests (ATS) are blocked.
    Untranslated,
    /// As `Untranslated`, and ATS requests are allowed (needs ECAP.DT).
    WithDeviceTlb,
    /// Addresses pass through untranslated (needs ECAP.PT); the tables are
    /// ignored.
    PassThrough,
}

impl TranslationType {
    const fn raw(self) -> u64 {
        match self {
            Self::Untranslated => 0,
            Self::WithDeviceTlb => 1,
            Self::PassThrough => 2,
        }
    }
}

/// A present legacy-mode context entry. A device with no present entry
/// (or no present root entry for its bus) is blocked: its DMA faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContextEntry {
    /// DID (bits 87:72): tags the IOTLB entries made through this context.
    /// Below CAP.ND's count; 0 is reserved when CAP.CM is set.
    pub domain: u16,
    pub translation_type: TranslationType,
    /// SLPTPTR (bits 63:12): the top table of the second-level walk.
    pub second_level: HostPhysAddr,
    /// AW (bits 66:64): the walk depth, one the unit supports (for
    /// pass-through, the largest it supports).
    pub agaw: Agaw,
    /// FPD (bit 1): do not record faults for this device.
    pub fault_processing_disable: bool,
}

impl ContextEntry {
    /// A context translating through `tables` (its root and walk width).
    pub fn second_level(domain: u16, root: HostPhysAddr, agaw: Agaw) -> Self {
        Self {
            domain,
            translation_type: TranslationType::Untranslated,
            second_level: root,
            agaw,
            fault_processing_disable: false,
        }
    }

    pub fn encode(&self) -> Result<[u64; 2], TableError> {
        if !self.second_level.is_aligned(PAGE_SIZE_4K) || self.second_level.as_u64() & !ADDRESS_MASK != 0 {
            return Err(TableError::Misaligned);
        }
        let low = PRESENT
            | u64::from(self.fault_processing_disable) << 1
            | self.translation_type.raw() << 2
            | self.second_level.as_u64();
        let high = u64::from(self.agaw.encoding()) | u64::from(self.domain) << 8;
        Ok([low, high])
    }

    /// `None` for a not-present entry.
    pub fn decode(raw: [u64; 2]) -> Result<Option<Self>, TableError> {
        let [low, high] = raw;
        if low & PRESENT == 0 {
            return Ok(None);
        }
        let translation_type = match (low >> 2) & 0x3 {
            0 => TranslationType::Untranslated,
            1 => TranslationType::WithDeviceTlb,
            2 => TranslationType::PassThrough,
            _ => return Err(TableError::BadEntry),
        };
        let agaw = Agaw::from_encoding((high & 0x7) as u8).ok_or(TableError::BadEntry)?;
        Ok(Some(Self {
            domain: (high >> 8) as u16,
            translation_type,
            second_level: HostPhysAddr::new(low & ADDRESS_MASK),
            agaw,
            fault_processing_disable: low >> 1 & 1 != 0,
        }))
    }
}

/// The root table and the context tables under it. Owns those frames;
/// dropping it without [`RootTable::destroy`] leaks them.
#[derive(Debug)]
pub struct RootTable {
    root: HostPhysAddr,
}

impl RootTable {
    /// An empty root table: every bus, and so every device, blocked.
    pub fn new(alloc: &mut impl FrameAllocator, mem: &mut impl TableMemory) -> Result<Self, TableError> {
        let root = alloc.allocate_frame().ok_or(TableError::OutOfFrames)?;
        mem.zero_frame(root);
        Ok(Self { root })
    }

    /// For RTADDR.
    pub fn address(&self) -> HostPhysAddr {
        self.root
    }

    fn root_entry_address(&self, bus: u8) -> HostPhysAddr {
        HostPhysAddr::new(self.root.as_u64() + u64::from(bus) * ENTRY_LEN)
    }

    fn context_table(&self, bus: u8, mem: &impl TableMemory) -> Option<HostPhysAddr> {
        let address = self.root_entry_address(bus);
        RootEntry::decode([mem.read_u64(address), 0]).context_table
    }

    fn context_entry_address(table: HostPhysAddr, source: SourceId) -> HostPhysAddr {
        HostPhysAddr::new(table.as_u64() + u64::from(source.devfn()) * ENTRY_LEN)
    }

    /// Installs `entry` for `source`, creating the bus's context table if
    /// needed. The upper half is written first and the half with the
    /// present bit last.
    pub fn set_context(
        &mut self,
        source: SourceId,
        entry: &ContextEntry,
        alloc: &mut impl FrameAllocator,
        mem: &mut impl TableMemory,
    ) -> Result<(), TableError> {
        let [low, high] = entry.encode()?;
        let table = match self.context_table(source.bus(), mem) {
            Some(table) => table,
            None => {
                let table = alloc.allocate_frame().ok_or(TableError::OutOfFrames)?;
                mem.zero_frame(table);
                let [root_low, _] = RootEntry {
                    context_table: Some(table),
                }
                .encode();
                let address = self.root_entry_address(source.bus());
                mem.write_u64(HostPhysAddr::new(address.as_u64() + 8), 0);
                mem.write_u64(address, root_low);
                table
            }
        };
        let address = Self::context_entry_address(table, source);
        mem.write_u64(address, 0);
        mem.write_u64(HostPhysAddr::new(address.as_u64() + 8), high);
        mem.write_u64(address, low);
        Ok(())
    }

    pub fn context(&self, source: SourceId, mem: &impl TableMemory) -> Result<Option<ContextEntry>, TableError> {
        let Some(table) = self.context_table(source.bus(), mem) else {
            return Ok(None);
        };
        let address = Self::context_entry_address(table, source);
        ContextEntry::decode([
            mem.read_u64(address),
            mem.read_u64(HostPhysAddr::new(address.as_u64() + 8)),
        ])
    }

    /// Blocks `source` again (present bit cleared first) and returns the
    /// entry it had. The bus's context table stays until `destroy`.
    pub fn clear_context(
        &mut self,
        source: SourceId,
        mem: &mut impl TableMemory,
    ) -> Result<Option<ContextEntry>, TableError> {
        let previous = self.context(source, mem)?;
        if let Some(table) = self.context_table(source.bus(), mem) {
            let address = Self::context_entry_address(table, source);
            mem.write_u64(address, 0);
            mem.write_u64(HostPhysAddr::new(address.as_u64() + 8), 0);
        }
        Ok(previous)
    }

    /// Frees the context tables and the root table. The unit must no
    /// longer use them (translation disabled, or another root latched and
    /// the context cache invalidated).
    pub fn destroy(self, alloc: &mut impl FrameAllocator, mem: &impl TableMemory) {
        for bus in 0..BUSES {
            if let Some(table) = self.context_table(bus as u8, mem) {
                alloc.free_frame(table);
            }
        }
        alloc.free_frame(self.root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{FakeFrames, FakeMemory};

    fn sid(bus: u8, device: u8, function: u8) -> SourceId {
        SourceId::new(bus, device, function).unwrap()
    }

    #[test]
    fn root_entries_encode_the_context_pointer() {
        let entry = RootEntry {
            context_table: Some(HostPhysAddr::new(0x1234_5000)),
        };
        assert_eq!(entry.encode(), [0x1234_5001, 0]);
        assert_eq!(RootEntry::decode(entry.encode()), entry);
        assert_eq!(RootEntry { context_table: None }.encode(), [0, 0]);
        assert_eq!(RootEntry::decode([0x1234_5000, 0]).context_table, None);
    }

    #[test]
    fn context_entries_encode_every_field() {
        let entry = ContextEntry {
            domain: 0xabcd,
            translation_type: TranslationType::WithDeviceTlb,
            second_level: HostPhysAddr::new(0x8_7654_3000),
            agaw: Agaw::Bits48,
            fault_processing_disable: true,
        };
        let raw = entry.encode().unwrap();
        assert_eq!(raw, [0x8_7654_3000 | 1 | 1 << 1 | 1 << 2, 2 | 0xabcd << 8]);
        assert_eq!(ContextEntry::decode(raw), Ok(Some(entry)));
        let pass_through = ContextEntry {
            translation_type: TranslationType::PassThrough,
            agaw: Agaw::Bits39,
            ..entry
        };
        let raw = pass_through.encode().unwrap();
        assert_eq!((raw[0] >> 2) & 3, 2);
        assert_eq!(raw[1] & 7, 1);
        assert_eq!(ContextEntry::decode([0, u64::MAX]), Ok(None));
        assert_eq!(ContextEntry::decode([1 | 3 << 2, 2]), Err(TableError::BadEntry));
        assert_eq!(ContextEntry::decode([1, 0]), Err(TableError::BadEntry));
        let misaligned = ContextEntry {
            second_level: HostPhysAddr::new(0x1800),
            ..entry
        };
        assert_eq!(misaligned.encode(), Err(TableError::Misaligned));
    }

    #[test]
    fn the_root_table_blocks_everything_until_told_otherwise() {
        let (mut alloc, mut mem) = (FakeFrames::default(), FakeMemory::default());
        let mut root = RootTable::new(&mut alloc, &mut mem).unwrap();
        assert_eq!(alloc.outstanding(), 1);
        for source in [sid(0, 0, 0), sid(0xff, 31, 7), sid(3, 2, 1)] {
            assert_eq!(root.context(source, &mem), Ok(None));
        }
        let entry = ContextEntry::second_level(1, HostPhysAddr::new(0x9000), Agaw::Bits39);
        root.set_context(sid(3, 2, 1), &entry, &mut alloc, &mut mem).unwrap();
        assert_eq!(alloc.outstanding(), 2);
        assert_eq!(root.context(sid(3, 2, 1), &mem), Ok(Some(entry)));
        assert_eq!(root.context(sid(3, 2, 0), &mem), Ok(None));
        // The hardware view: root entry 3 points at the context table,
        // whose entry 0x11 (device 2, function 1) is present.
        let root_low = mem.read_u64(HostPhysAddr::new(root.address().as_u64() + 3 * 16));
        assert_eq!(root_low & 1, 1);
        let context_low = mem.read_u64(HostPhysAddr::new((root_low & !0xfff) + 0x11 * 16));
        assert_eq!(context_low, 0x9001);

        root.set_context(sid(3, 4, 0), &entry, &mut alloc, &mut mem).unwrap();
        assert_eq!(alloc.outstanding(), 2, "same bus, same context table");
        assert_eq!(root.clear_context(sid(3, 2, 1), &mut mem), Ok(Some(entry)));
        assert_eq!(root.context(sid(3, 2, 1), &mem), Ok(None));
        assert_eq!(root.clear_context(sid(9, 0, 0), &mut mem), Ok(None));
        root.destroy(&mut alloc, &mem);
        assert_eq!(alloc.outstanding(), 0);
    }

    #[test]
    fn running_out_of_frames_is_an_error() {
        let (mut alloc, mut mem) = (FakeFrames::default(), FakeMemory::default());
        alloc.limit_allocations(0);
        assert!(matches!(
            RootTable::new(&mut alloc, &mut mem),
            Err(TableError::OutOfFrames)
        ));
        alloc.limit_allocations(1);
        let mut root = RootTable::new(&mut alloc, &mut mem).unwrap();
        let entry = ContextEntry::second_level(1, HostPhysAddr::new(0x9000), Agaw::Bits39);
        assert_eq!(
            root.set_context(sid(0, 1, 0), &entry, &mut alloc, &mut mem),
            Err(TableError::OutOfFrames)
        );
        assert_eq!(root.context(sid(0, 1, 0), &mem), Ok(None));
    }
}

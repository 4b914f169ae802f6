//! The host firmware's ACPI tables Keel reads at boot: the finder
//! (XSDT/RSDT -> a table, over fuzzer-made "physical memory"), the MADT
//! (I/O APICs, ISA overrides) and the MCFG (ECAM windows).
//!
//! Beyond "no panic": a table the finder returns has the signature asked
//! for, its declared length and a zero checksum; ECAM addresses stay inside
//! their window.
#![no_main]

use keel_acpi_tables::find::{find_table, PhysicalMemory, RootTable, Unreadable};
use libfuzzer_sys::fuzz_target;

/// The fuzz input as memory from address 0x1000.
struct Memory<'a>(&'a [u8]);

const BASE: u64 = 0x1000;

impl PhysicalMemory for Memory<'_> {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        let offset = usize::try_from(address.checked_sub(BASE).ok_or(Unreadable)?).map_err(|_| Unreadable)?;
        let end = offset.checked_add(buf.len()).ok_or(Unreadable)?;
        buf.copy_from_slice(self.0.get(offset..end).ok_or(Unreadable)?);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let memory = Memory(data);
    for root in [RootTable::Xsdt(BASE), RootTable::Rsdt(BASE as u32)] {
        for signature in [*b"DMAR", *b"APIC", *b"MCFG"] {
            if let Ok(Some(table)) = find_table(&memory, root, signature) {
                assert_eq!(table[..4], signature);
                assert_eq!(u32::from_le_bytes([table[4], table[5], table[6], table[7]]) as usize, table.len());
                assert_eq!(table.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)), 0);
            }
        }
    }
    if let Ok(madt) = keel_acpi_tables::host_madt::parse(data) {
        for irq in 0..16 {
            let _ = madt.isa_route(irq);
        }
        let _ = madt.io_apic_for(14);
    }
    if let Ok(windows) = keel_pci::mcfg::parse(data) {
        for window in windows {
            let bdf = keel_pci::Bdf::new(window.end_bus, 31, 7).expect("a valid address");
            if let Some(address) = window.address(bdf, 4092) {
                assert!(address >= window.base);
            }
        }
    }
});

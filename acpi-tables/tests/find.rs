//! The host-table finder reads Keel's own guest tables like firmware's.

mod common;

use std::collections::BTreeMap;

use keel_acpi_tables::build_guest_acpi;
use keel_acpi_tables::find::{find_table, PhysicalMemory, RootTable, Unreadable};

struct Blob(BTreeMap<u64, Vec<u8>>);

impl PhysicalMemory for Blob {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        let (start, bytes) = self.0.range(..=address).next_back().ok_or(Unreadable)?;
        let offset = usize::try_from(address - start).map_err(|_| Unreadable)?;
        buf.copy_from_slice(bytes.get(offset..offset + buf.len()).ok_or(Unreadable)?);
        Ok(())
    }
}

#[test]
fn finds_the_madt_of_a_generated_guest() {
    let config = common::typical_config(&[0]);
    let blob = build_guest_acpi(&config, 0xe0000).unwrap();
    let rsdp = (blob.rsdp_gpa - 0xe0000) as usize;
    let xsdt = u64::from_le_bytes(blob.bytes[rsdp + 24..rsdp + 32].try_into().unwrap());
    let memory = Blob(BTreeMap::from([(0xe0000, blob.bytes)]));
    let madt = find_table(&memory, RootTable::Xsdt(xsdt), *b"APIC").unwrap().unwrap();
    assert_eq!(&madt[..4], b"APIC");
    assert_eq!(find_table(&memory, RootTable::Xsdt(xsdt), *b"DMAR"), Ok(None));
}

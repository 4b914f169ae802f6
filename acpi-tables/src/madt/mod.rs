//! Multiple APIC Description Table (ACPI 6.5 §5.2.12): how Linux finds the
//! guest's CPUs, its I/O APIC and the ISA IRQ wiring.

mod entries;
mod validate;

use alloc::vec::Vec;

use crate::bytes::PutLe;
use crate::config::GuestAcpiConfig;
use crate::error::AcpiError;
use crate::sdt::{assemble_table, TableKind};

pub use validate::MAX_GUEST_CPUS;

const KIND: TableKind = TableKind {
    signature: *b"APIC",
    revision: 5,
};
/// Tells the OS a dual-8259 PIC exists and must be masked before using APICs.
const PCAT_COMPAT: u32 = 1 << 0;

pub(crate) fn build_madt(config: &GuestAcpiConfig<'_>) -> Result<Vec<u8>, AcpiError> {
    validate::validate_cpus(config.cpus)?;
    let overrides = validate::interrupt_overrides(config.io_apic.is_some(), config.isa_overrides)?;

    let mut body = Vec::new();
    // An address above 4 GiB cannot go in the 32-bit field; the override entry
    // appended below carries it instead.
    let lapic_address_override = u32::try_from(config.local_apic_address).is_err();
    body.put_u32(u32::try_from(config.local_apic_address).unwrap_or(0));
    body.put_u32(PCAT_COMPAT);
    for (processor_uid, apic_id) in config.cpus.iter().enumerate() {
        entries::encode_processor(processor_uid, *apic_id, &mut body)?;
    }
    if let Some(io_apic) = config.io_apic {
        entries::encode_io_apic(&io_apic, &mut body);
    }
    overrides
        .iter()
        .for_each(|isa_override| entries::encode_interrupt_override(isa_override, &mut body));
    if lapic_address_override {
        entries::encode_local_apic_address_override(config.local_apic_address, &mut body);
    }
    assemble_table(KIND, config.oem_id, &body)
}

//! Interrupt Controller Structures, the variable-length MADT entries.

use alloc::vec::Vec;

use crate::bytes::PutLe;
use crate::config::{IoApicConfig, IsaOverride};
use crate::error::AcpiError;

const TYPE_LOCAL_APIC: u8 = 0;
const TYPE_IO_APIC: u8 = 1;
const TYPE_INTERRUPT_SOURCE_OVERRIDE: u8 = 2;
const TYPE_LOCAL_APIC_ADDRESS_OVERRIDE: u8 = 5;
const TYPE_LOCAL_X2APIC: u8 = 9;

const LOCAL_APIC_LEN: u8 = 8;
const IO_APIC_LEN: u8 = 12;
const INTERRUPT_SOURCE_OVERRIDE_LEN: u8 = 10;
const LOCAL_APIC_ADDRESS_OVERRIDE_LEN: u8 = 12;
const LOCAL_X2APIC_LEN: u8 = 16;

/// Local APIC flags: the processor is usable right away.
const PROCESSOR_ENABLED: u32 = 1 << 0;
/// 0xFF is the xAPIC broadcast id, so the legacy entry covers ids 0-254 only.
pub(crate) const MAX_XAPIC_ID: u32 = 0xFE;
const ISA_BUS: u8 = 0;

/// A legacy Local APIC entry where the id fits, otherwise a Local x2APIC entry.
/// Linux ignores x2APIC entries for ids below 255 once it has seen legacy
/// entries, so ids are never split the other way.
pub(crate) fn encode_processor(processor_uid: usize, apic_id: u32, out: &mut Vec<u8>) -> Result<(), AcpiError> {
    let too_many = AcpiError::TooManyCpus {
        count: processor_uid.saturating_add(1),
        max: super::MAX_GUEST_CPUS,
    };
    match u8::try_from(apic_id) {
        Ok(xapic_id) if apic_id <= MAX_XAPIC_ID => {
            let uid = u8::try_from(processor_uid).map_err(|_| too_many)?;
            out.put_u8(TYPE_LOCAL_APIC);
            out.put_u8(LOCAL_APIC_LEN);
            out.put_u8(uid);
            out.put_u8(xapic_id);
            out.put_u32(PROCESSOR_ENABLED);
        }
        _ => {
            let uid = u32::try_from(processor_uid).map_err(|_| too_many)?;
            out.put_u8(TYPE_LOCAL_X2APIC);
            out.put_u8(LOCAL_X2APIC_LEN);
            out.put_u16(0);
            out.put_u32(apic_id);
            out.put_u32(PROCESSOR_ENABLED);
            out.put_u32(uid);
        }
    }
    Ok(())
}

pub(crate) fn encode_io_apic(io_apic: &IoApicConfig, out: &mut Vec<u8>) {
    out.put_u8(TYPE_IO_APIC);
    out.put_u8(IO_APIC_LEN);
    out.put_u8(io_apic.id);
    out.put_u8(0);
    out.put_u32(io_apic.address);
    out.put_u32(io_apic.gsi_base);
}

pub(crate) fn encode_interrupt_override(isa_override: &IsaOverride, out: &mut Vec<u8>) {
    out.put_u8(TYPE_INTERRUPT_SOURCE_OVERRIDE);
    out.put_u8(INTERRUPT_SOURCE_OVERRIDE_LEN);
    out.put_u8(ISA_BUS);
    out.put_u8(isa_override.source_irq);
    out.put_u32(isa_override.gsi);
    out.put_u16(isa_override.flags);
}

pub(crate) fn encode_local_apic_address_override(address: u64, out: &mut Vec<u8>) {
    out.put_u8(TYPE_LOCAL_APIC_ADDRESS_OVERRIDE);
    out.put_u8(LOCAL_APIC_ADDRESS_OVERRIDE_LEN);
    out.put_u16(0);
    out.put_u64(address);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processor(uid: usize, apic_id: u32) -> Vec<u8> {
        let mut out = Vec::new();
        encode_processor(uid, apic_id, &mut out).unwrap();
        out
    }

    #[test]
    fn small_ids_get_legacy_local_apic_entries() {
        assert_eq!(processor(3, 7), [0, 8, 3, 7, 1, 0, 0, 0]);
        assert_eq!(processor(0, 0xFE), [0, 8, 0, 0xFE, 1, 0, 0, 0]);
    }

    #[test]
    fn ids_from_255_get_x2apic_entries() {
        assert_eq!(processor(2, 0xFF), [9, 16, 0, 0, 0xFF, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(
            processor(1, 0x1_0000),
            [9, 16, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0]
        );
    }

    #[test]
    fn legacy_entry_needs_uid_to_fit_a_byte() {
        let mut out = Vec::new();
        let error = encode_processor(256, 1, &mut out);
        assert!(matches!(error, Err(AcpiError::TooManyCpus { count: 257, .. })));
    }

    #[test]
    fn io_apic_entry_layout() {
        let mut out = Vec::new();
        let io_apic = IoApicConfig {
            id: 4,
            address: 0xFEC0_0000,
            gsi_base: 24,
        };
        encode_io_apic(&io_apic, &mut out);
        assert_eq!(out, [1, 12, 4, 0, 0, 0, 0xC0, 0xFE, 24, 0, 0, 0]);
    }

    #[test]
    fn interrupt_override_entry_layout() {
        let mut out = Vec::new();
        let sci = IsaOverride {
            source_irq: 9,
            gsi: 9,
            flags: IsaOverride::POLARITY_ACTIVE_HIGH | IsaOverride::TRIGGER_LEVEL,
        };
        encode_interrupt_override(&sci, &mut out);
        assert_eq!(out, [2, 10, 0, 9, 9, 0, 0, 0, 0x0D, 0]);
    }

    #[test]
    fn local_apic_address_override_layout() {
        let mut out = Vec::new();
        encode_local_apic_address_override(0x1_FEE0_0000, &mut out);
        assert_eq!(out, [5, 12, 0, 0, 0, 0, 0xE0, 0xFE, 1, 0, 0, 0]);
    }
}

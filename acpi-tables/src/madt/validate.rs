//! Consistency checks on the CPU list and the ISA interrupt overrides.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use crate::config::IsaOverride;
use crate::error::AcpiError;

/// Legacy Local APIC entries carry an 8-bit ACPI processor UID; capping the
/// CPU count keeps every UID representable whichever entry type a CPU gets.
pub const MAX_GUEST_CPUS: usize = 255;
const X2APIC_BROADCAST_ID: u32 = 0xFFFF_FFFF;
const ISA_IRQ_COUNT: u8 = 16;

pub(crate) fn validate_cpus(cpus: &[u32]) -> Result<(), AcpiError> {
    if cpus.is_empty() {
        return Err(AcpiError::NoCpus);
    }
    if cpus.len() > MAX_GUEST_CPUS {
        return Err(AcpiError::TooManyCpus {
            count: cpus.len(),
            max: MAX_GUEST_CPUS,
        });
    }
    let mut seen = BTreeSet::new();
    for &apic_id in cpus {
        if apic_id == X2APIC_BROADCAST_ID {
            return Err(AcpiError::InvalidApicId(apic_id));
        }
        if !seen.insert(apic_id) {
            return Err(AcpiError::DuplicateApicId(apic_id));
        }
    }
    Ok(())
}

/// The overrides to publish: the requested ones, preceded by IRQ0 → GSI2
/// unless the caller routes IRQ0 itself.
pub(crate) fn interrupt_overrides(has_io_apic: bool, requested: &[IsaOverride]) -> Result<Vec<IsaOverride>, AcpiError> {
    if !has_io_apic {
        return if requested.is_empty() {
            Ok(Vec::new())
        } else {
            Err(AcpiError::IsaOverrideWithoutIoApic)
        };
    }
    let mut seen_irqs = BTreeSet::new();
    for isa_override in requested {
        let irq = isa_override.source_irq;
        if irq >= ISA_IRQ_COUNT {
            return Err(AcpiError::InvalidIsaIrq(irq));
        }
        if isa_override.flags & IsaOverride::RESERVED_FLAG_BITS != 0 {
            return Err(AcpiError::InvalidIsaOverrideFlags {
                source_irq: irq,
                flags: isa_override.flags,
            });
        }
        if !seen_irqs.insert(irq) {
            return Err(AcpiError::DuplicateIsaOverride(irq));
        }
    }
    let mut overrides = Vec::with_capacity(requested.len() + 1);
    if !seen_irqs.contains(&IsaOverride::TIMER.source_irq) {
        overrides.push(IsaOverride::TIMER);
    }
    overrides.extend_from_slice(requested);
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCI: IsaOverride = IsaOverride {
        source_irq: 9,
        gsi: 9,
        flags: IsaOverride::POLARITY_ACTIVE_HIGH | IsaOverride::TRIGGER_LEVEL,
    };

    #[test]
    fn cpu_list_must_be_non_empty_and_bounded() {
        assert_eq!(validate_cpus(&[]), Err(AcpiError::NoCpus));
        let ids: Vec<u32> = (0..256).collect();
        assert_eq!(
            validate_cpus(&ids),
            Err(AcpiError::TooManyCpus { count: 256, max: 255 })
        );
        assert_eq!(validate_cpus(&ids[..255]), Ok(()));
    }

    #[test]
    fn apic_ids_must_be_unique_and_not_broadcast() {
        assert_eq!(validate_cpus(&[0, 2, 2]), Err(AcpiError::DuplicateApicId(2)));
        assert_eq!(validate_cpus(&[0, u32::MAX]), Err(AcpiError::InvalidApicId(u32::MAX)));
    }

    #[test]
    fn timer_override_is_added_first() {
        assert_eq!(interrupt_overrides(true, &[SCI]), Ok(vec![IsaOverride::TIMER, SCI]));
        assert_eq!(interrupt_overrides(true, &[]), Ok(vec![IsaOverride::TIMER]));
    }

    #[test]
    fn explicit_irq0_override_replaces_the_default() {
        let timer_on_pin0 = IsaOverride {
            source_irq: 0,
            gsi: 0,
            flags: IsaOverride::TRIGGER_EDGE,
        };
        assert_eq!(interrupt_overrides(true, &[timer_on_pin0]), Ok(vec![timer_on_pin0]));
    }

    #[test]
    fn overrides_need_an_io_apic() {
        assert_eq!(interrupt_overrides(false, &[]), Ok(vec![]));
        assert_eq!(
            interrupt_overrides(false, &[SCI]),
            Err(AcpiError::IsaOverrideWithoutIoApic)
        );
    }

    #[test]
    fn invalid_overrides_are_rejected() {
        let not_isa = IsaOverride { source_irq: 16, ..SCI };
        assert_eq!(interrupt_overrides(true, &[not_isa]), Err(AcpiError::InvalidIsaIrq(16)));
        let reserved_bits = IsaOverride { flags: 0x10, ..SCI };
        assert_eq!(
            interrupt_overrides(true, &[reserved_bits]),
            Err(AcpiError::InvalidIsaOverrideFlags {
                source_irq: 9,
                flags: 0x10
            })
        );
        assert_eq!(
            interrupt_overrides(true, &[SCI, SCI]),
            Err(AcpiError::DuplicateIsaOverride(9))
        );
    }
}

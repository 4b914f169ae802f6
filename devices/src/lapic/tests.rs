//! Register, priority, EOI and IPI tests for the local APIC.

use super::*;

const ID: u32 = 0x802;
const VERSION: u32 = 0x803;
const TPR: u32 = 0x808;
const PPR: u32 = 0x80a;
const EOI: u32 = 0x80b;
const LDR: u32 = 0x80d;
const SVR: u32 = 0x80f;
const ISR0: u32 = 0x810;
const TMR0: u32 = 0x818;
const IRR0: u32 = 0x820;
const ESR: u32 = 0x828;
const ICR: u32 = 0x830;
const LVT_TIMER: u32 = 0x832;
const LVT_LINT0: u32 = 0x835;
const LVT_ERROR: u32 = 0x837;
const TIMER_INITIAL: u32 = 0x838;
const TIMER_CURRENT: u32 = 0x839;
const TIMER_DIVIDE: u32 = 0x83e;
const SELF_IPI: u32 = 0x83f;

pub(super) const CLOCK: TimerClock = TimerClock {
    tsc_hz: 2_000_000_000,
    bus_hz: 1_000_000_000,
};

/// An APIC after Linux's setup: software-enabled with spurious vector 0xff
/// and focus checking disabled.
pub(super) fn enabled_apic(id: u32) -> LocalApic {
    let mut apic = LocalApic::new(id, CLOCK);
    assert_eq!(apic.wrmsr(SVR, 0x3ff, 0), Ok(None));
    apic
}

fn read(apic: &LocalApic, msr: u32) -> u64 {
    apic.rdmsr(msr, 0).unwrap_or_else(|fault| panic!("{msr:#x}: {fault:?}"))
}

fn write(apic: &mut LocalApic, msr: u32, value: u64) -> Option<ApicEffect> {
    apic.wrmsr(msr, value, 0)
        .unwrap_or_else(|fault| panic!("{msr:#x} <- {value:#x}: {fault:?}"))
}

/// Accepts and injects `vector`, as the hypervisor would.
fn deliver(apic: &mut LocalApic, vector: u8, level_triggered: bool) {
    apic.accept(vector, level_triggered);
    assert_eq!(apic.pending_interrupt(), Some(vector));
    assert!(apic.start_delivery(vector));
}

#[test]
fn reset_values() {
    let apic = LocalApic::new(0x23, CLOCK);
    assert_eq!(read(&apic, ID), 0x23);
    assert_eq!(read(&apic, VERSION), 0x0005_0014);
    // Cluster 0x23 >> 4 = 2, member bit 1 << 3.
    assert_eq!(read(&apic, LDR), 0x0002_0008);
    assert_eq!(read(&apic, SVR), 0xff);
    assert!(!apic.software_enabled());
    for zero in [TPR, PPR, ESR, ICR, TIMER_INITIAL, TIMER_CURRENT, TIMER_DIVIDE] {
        assert_eq!(read(&apic, zero), 0, "{zero:#x}");
    }
    for bank in 0..8 {
        assert_eq!(read(&apic, ISR0 + bank), 0);
        assert_eq!(read(&apic, TMR0 + bank), 0);
        assert_eq!(read(&apic, IRR0 + bank), 0);
    }
    for lvt in 0x832..=0x837 {
        assert_eq!(read(&apic, lvt), 0x1_0000, "LVT {lvt:#x} resets masked");
    }
    assert_eq!(apic.tsc_deadline(), 0);
    assert_eq!(apic.next_timer_deadline(), None);
}

#[test]
fn reserved_registers_fault_both_ways() {
    let mut apic = enabled_apic(0);
    // APR, RRD, DFR, CMCI (max LVT is 5), ICR high half, gaps, range ends.
    for msr in [
        0x800, 0x801, 0x809, 0x80c, 0x80e, 0x829, 0x82f, 0x831, 0x83a, 0x83d, 0x840, 0x8ff, 0x7ff, 0x900, 0,
    ] {
        assert_eq!(apic.rdmsr(msr, 0), Err(ApicFault::ReservedRegister), "{msr:#x}");
        assert_eq!(apic.wrmsr(msr, 0, 0), Err(ApicFault::ReservedRegister), "{msr:#x}");
    }
}

#[test]
fn read_only_and_write_only_registers_fault() {
    let mut apic = enabled_apic(1);
    for msr in [ID, VERSION, PPR, LDR, ISR0, 0x817, TMR0, IRR0, 0x827, TIMER_CURRENT] {
        assert_eq!(apic.wrmsr(msr, 0, 0), Err(ApicFault::ReadOnlyRegister), "{msr:#x}");
    }
    assert_eq!(apic.rdmsr(EOI, 0), Err(ApicFault::WriteOnlyRegister));
    assert_eq!(apic.rdmsr(SELF_IPI, 0), Err(ApicFault::WriteOnlyRegister));
    assert_eq!(read(&apic, ID), 1, "ID unchanged");
}

#[test]
fn reserved_bits_fault_and_change_nothing() {
    let mut apic = enabled_apic(0);
    let faulting = [
        (TPR, 0x100),
        (TPR, 1 << 32),
        (SVR, 1 << 12), // EOI-broadcast suppression is not advertised
        (SVR, 0x1ff | 1 << 40),
        (EOI, 1),
        (ESR, 0x40),
        (TIMER_DIVIDE, 0b0100),
        (TIMER_INITIAL, 1 << 32),
        (LVT_TIMER, 0x0006_00ec), // timer mode 3 is reserved
        (LVT_TIMER, 0x0000_04ec), // the timer has no delivery mode
        (LVT_ERROR, 0x0002_00fe),
        (ICR, 0x1000), // delivery status is gone in x2APIC
        (ICR, 0x0001_0000),
        (ICR, 0x0010_0000),
        (SELF_IPI, 0x130),
    ];
    for (msr, value) in faulting {
        assert_eq!(
            apic.wrmsr(msr, value, 0),
            Err(ApicFault::ReservedBits),
            "{msr:#x} <- {value:#x}"
        );
    }
    assert_eq!(read(&apic, TPR), 0);
    assert_eq!(read(&apic, SVR), 0x3ff);
    assert_eq!(read(&apic, LVT_TIMER), 0x1_0000);
    assert_eq!(read(&apic, ICR), 0);
    assert_eq!(apic.pending_interrupt(), None, "no self IPI was sent");
}

#[test]
fn lvt_status_bits_are_read_only_not_reserved() {
    let mut apic = enabled_apic(0);
    // LINT0 as Linux programs it (ExtINT, masked) plus delivery status and
    // remote IRR set, as a read-modify-write might carry them.
    write(&mut apic, LVT_LINT0, 0x0001_5700);
    assert_eq!(read(&apic, LVT_LINT0), 0x0001_0700);
}

#[test]
fn tpr_and_ppr_follow_the_highest_in_service_class() {
    let mut apic = enabled_apic(0);
    write(&mut apic, TPR, 0x42);
    assert_eq!(read(&apic, PPR), 0x42, "TPR wins with nothing in service");
    deliver(&mut apic, 0x61, false);
    assert_eq!(read(&apic, PPR), 0x60, "in-service class 6 beats TPR class 4");
    write(&mut apic, TPR, 0x6a);
    assert_eq!(read(&apic, PPR), 0x6a, "equal class: PPR takes the full TPR");
    write(&mut apic, TPR, 0);
    write(&mut apic, EOI, 0);
    assert_eq!(read(&apic, PPR), 0);
}

#[test]
fn pending_interrupt_respects_priority_classes() {
    let mut apic = enabled_apic(0);
    deliver(&mut apic, 0x31, false);
    apic.accept(0x35, false);
    assert_eq!(apic.pending_interrupt(), None, "same class as in-service waits");
    apic.accept(0x41, false);
    assert_eq!(apic.pending_interrupt(), Some(0x41), "higher class preempts");
    write(&mut apic, TPR, 0x40);
    assert_eq!(apic.pending_interrupt(), None, "TPR class 4 blocks class 4");
    write(&mut apic, TPR, 0);
    assert_eq!(read(&apic, IRR0 + 1), 1 << 0x15, "0x31 moved to ISR");
    assert_eq!(read(&apic, IRR0 + 2), 1 << 1);
    assert_eq!(read(&apic, ISR0 + 1), 1 << 0x11);
    // Only requested vectors can start delivery.
    assert!(!apic.start_delivery(0x99));
    assert_eq!(read(&apic, ISR0 + 4), 0);
}

#[test]
fn eoi_retires_nested_interrupts_innermost_first() {
    let mut apic = enabled_apic(0);
    deliver(&mut apic, 0x31, false);
    apic.accept(0x35, false);
    deliver(&mut apic, 0x61, false);
    assert_eq!(
        write(&mut apic, EOI, 0),
        Some(ApicEffect::Eoi {
            vector: 0x61,
            level_triggered: false
        })
    );
    // 0x35 still waits behind in-service 0x31 (same class).
    assert_eq!(apic.pending_interrupt(), None);
    assert_eq!(
        write(&mut apic, EOI, 0),
        Some(ApicEffect::Eoi {
            vector: 0x31,
            level_triggered: false
        })
    );
    assert_eq!(apic.pending_interrupt(), Some(0x35));
    // A spurious EOI with nothing in service is harmless.
    assert!(apic.start_delivery(0x35));
    write(&mut apic, EOI, 0);
    assert_eq!(write(&mut apic, EOI, 0), None);
}

#[test]
fn level_triggered_eoi_is_reported_for_the_io_apic() {
    let mut apic = enabled_apic(0);
    deliver(&mut apic, 0x41, true);
    assert_eq!(read(&apic, TMR0 + 2), 1 << 1);
    assert_eq!(
        write(&mut apic, EOI, 0),
        Some(ApicEffect::Eoi {
            vector: 0x41,
            level_triggered: true
        })
    );
    // The same vector arriving edge-triggered clears its TMR bit.
    deliver(&mut apic, 0x41, false);
    assert_eq!(read(&apic, TMR0 + 2), 0);
    assert_eq!(
        write(&mut apic, EOI, 0),
        Some(ApicEffect::Eoi {
            vector: 0x41,
            level_triggered: false
        })
    );
}

#[test]
fn software_disabled_apic_drops_interrupts_and_keeps_lvts_masked() {
    let mut apic = LocalApic::new(0, CLOCK);
    apic.accept(0x40, false);
    assert_eq!(read(&apic, IRR0 + 2), 0);
    write(&mut apic, LVT_ERROR, 0xfe);
    assert_eq!(read(&apic, LVT_ERROR), 0x1_00fe, "mask cannot be cleared");

    write(&mut apic, SVR, 0x1ff);
    write(&mut apic, LVT_ERROR, 0xfe);
    assert_eq!(read(&apic, LVT_ERROR), 0xfe);
    write(&mut apic, SVR, 0xff);
    assert_eq!(read(&apic, LVT_ERROR), 0x1_00fe, "disabling masks all LVTs");
}

#[test]
fn illegal_vectors_latch_in_esr_and_signal_the_error_lvt() {
    let mut apic = enabled_apic(0);
    write(&mut apic, LVT_ERROR, 0xfe);
    apic.accept(0x0f, false);
    assert_eq!(read(&apic, ESR), 0, "ESR updates only when written");
    assert_eq!(apic.pending_interrupt(), Some(0xfe));
    write(&mut apic, ESR, 0);
    assert_eq!(read(&apic, ESR), 1 << 6);
    write(&mut apic, SELF_IPI, 0x03);
    write(&mut apic, ESR, 0);
    assert_eq!(read(&apic, ESR), 1 << 5, "send illegal vector");
    write(&mut apic, ESR, 0);
    assert_eq!(read(&apic, ESR), 0);
}

#[test]
fn error_lvt_with_illegal_vector_does_not_recurse() {
    let mut apic = enabled_apic(0);
    write(&mut apic, LVT_ERROR, 0x02);
    apic.accept(0x01, false);
    write(&mut apic, ESR, 0);
    assert_eq!(read(&apic, ESR), 1 << 6);
    assert_eq!(apic.pending_interrupt(), None);
}

#[test]
fn self_ipis_deliver_locally() {
    let mut apic = enabled_apic(5);
    assert_eq!(write(&mut apic, SELF_IPI, 0x40), None);
    assert_eq!(apic.pending_interrupt(), Some(0x40));
    // ICR, self shorthand, fixed.
    assert_eq!(write(&mut apic, ICR, 0x0004_0050), None);
    // ICR, physical destination = own ID.
    assert_eq!(write(&mut apic, ICR, (5 << 32) | 0x60), None);
    assert_eq!(read(&apic, IRR0 + 2), (1 << 0x10) | (1 << 0x00));
    assert_eq!(read(&apic, IRR0 + 3), 1);
    assert_eq!(read(&apic, TMR0 + 2), 0, "IPIs are edge-triggered");
    assert_eq!(read(&apic, ICR), (5 << 32) | 0x60, "ICR reads back");
}

#[test]
fn ipis_to_others_become_effects() {
    let mut apic = enabled_apic(0x12);
    assert_eq!(
        write(&mut apic, ICR, (3 << 32) | 0xfd),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::Physical(3),
            vector: 0xfd,
            mode: IpiDeliveryMode::Fixed
        })
    );
    assert_eq!(apic.pending_interrupt(), None);

    // All including self: delivered here, the rest left to the hypervisor.
    assert_eq!(
        write(&mut apic, ICR, 0x0008_00f0),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::AllExcludingSelf,
            vector: 0xf0,
            mode: IpiDeliveryMode::Fixed
        })
    );
    assert_eq!(apic.pending_interrupt(), Some(0xf0));

    // Logical: cluster 1, members 2 (this APIC, ID 0x12) and 5.
    let logical = ((0x0001_0024_u64) << 32) | 0x800 | 0xe0;
    assert_eq!(
        write(&mut apic, ICR, logical),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::Logical(0x0001_0020),
            vector: 0xe0,
            mode: IpiDeliveryMode::Fixed
        })
    );
    assert!(apic.requested.contains(0xe0));

    // Lowest priority including this APIC: this APIC takes it alone.
    assert_eq!(write(&mut apic, ICR, (u64::MAX << 32) | 0x1d1), None);
    assert!(apic.requested.contains(0xd1));
}

#[test]
fn init_and_startup_ipis_go_to_the_hypervisor() {
    let mut apic = enabled_apic(0);
    // Linux's AP wake-up: INIT assert, INIT de-assert, SIPI, SIPI.
    let init_assert = (1 << 32) | 0xc500;
    let init_deassert = (1 << 32) | 0x8500;
    let startup = (1 << 32) | 0x0609;
    assert_eq!(
        write(&mut apic, ICR, init_assert),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::Physical(1),
            vector: 0,
            mode: IpiDeliveryMode::Init
        })
    );
    assert_eq!(write(&mut apic, ICR, init_deassert), None);
    assert_eq!(
        write(&mut apic, ICR, startup),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::Physical(1),
            vector: 0x09,
            mode: IpiDeliveryMode::StartUp
        })
    );
    // NMI to all including self keeps the full destination.
    assert_eq!(
        write(&mut apic, ICR, 0x0008_0400),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::AllIncludingSelf,
            vector: 0,
            mode: IpiDeliveryMode::Nmi
        })
    );
    // Reserved delivery modes and self-shorthand NMIs send nothing.
    assert_eq!(write(&mut apic, ICR, 0x0300 | 0x40), None);
    assert_eq!(write(&mut apic, ICR, 0x0004_0400), None);
    assert_eq!(apic.pending_interrupt(), None);
}

#[test]
fn fixed_ipi_with_illegal_vector_is_not_sent() {
    let mut apic = enabled_apic(0);
    assert_eq!(write(&mut apic, ICR, (7 << 32) | 0x0e), None);
    write(&mut apic, ESR, 0);
    assert_eq!(read(&apic, ESR), 1 << 5);
}

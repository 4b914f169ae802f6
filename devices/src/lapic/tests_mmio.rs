//! xAPIC MMIO front-end tests. The test clock has 2 TSC cycles per bus
//! cycle.

use super::tests::CLOCK;
use super::*;

const ID: u64 = 0x20;
const VERSION: u64 = 0x30;
const TPR: u64 = 0x80;
const APR: u64 = 0x90;
const PPR: u64 = 0xa0;
const EOI: u64 = 0xb0;
const LDR: u64 = 0xd0;
const DFR: u64 = 0xe0;
const SVR: u64 = 0xf0;
const ISR0: u64 = 0x100;
const TMR0: u64 = 0x180;
const IRR0: u64 = 0x200;
const ESR: u64 = 0x280;
const ICR_LOW: u64 = 0x300;
const ICR_HIGH: u64 = 0x310;
const LVT_TIMER: u64 = 0x320;
const LVT_THERMAL: u64 = 0x330;
const LVT_PERF: u64 = 0x340;
const LVT_LINT0: u64 = 0x350;
const LVT_LINT1: u64 = 0x360;
const LVT_ERROR: u64 = 0x370;
const TIMER_INITIAL: u64 = 0x380;
const TIMER_CURRENT: u64 = 0x390;
const TIMER_DIVIDE: u64 = 0x3e0;
const SELF_IPI: u64 = 0x3f0;

const TIMER_VECTOR: u8 = 0xec;

fn read(apic: &LocalApic, offset: u64) -> u32 {
    apic.mmio_read(offset, 4, 0)
}

fn write(apic: &mut LocalApic, offset: u64, value: u32) -> Option<ApicEffect> {
    apic.mmio_write(offset, 4, value, 0)
}

/// Writes ESR (latching) and reads it, as Linux does.
fn latched_errors(apic: &mut LocalApic) -> u32 {
    assert_eq!(write(apic, ESR, 0), None);
    read(apic, ESR)
}

/// A software-enabled APIC (spurious vector 0xff), otherwise at reset.
fn enabled_xapic(id: u32) -> LocalApic {
    let mut apic = LocalApic::new(id, CLOCK);
    write(&mut apic, SVR, 0x1ff);
    apic
}

#[test]
fn linux_xapic_bring_up() {
    let cpu = 2;
    let mut apic = LocalApic::new(cpu, CLOCK);
    // verify_local_APIC / lapic_get_maxlvt: version 0x14, max LVT 5.
    assert_eq!(read(&apic, VERSION), 0x0005_0014);
    assert_eq!(read(&apic, ID) >> 24, cpu);

    // flat_init_apic_ldr: DFR flat, then read-modify-write LDR.
    write(&mut apic, DFR, 0xffff_ffff);
    let ldr = (read(&apic, LDR) & !0xff00_0000) | ((1 << cpu) << 24);
    write(&mut apic, LDR, ldr);
    assert_eq!(read(&apic, LDR), 0x0400_0000);
    assert_eq!(read(&apic, DFR), 0xffff_ffff);

    // Accept all interrupts, then software-enable with spurious vector 0xff.
    let tpr = read(&apic, TPR) & !0xff;
    write(&mut apic, TPR, tpr);
    let svr = (read(&apic, SVR) & !0xff) | 0x100 | 0xff;
    write(&mut apic, SVR, svr);
    assert!(apic.software_enabled());
    assert_eq!(read(&apic, SVR), 0x1ff);

    // LINT0 ExtINT masked (AP-style), LINT1 NMI, error vector 0xfe.
    write(&mut apic, LVT_LINT0, 0x0001_0700);
    write(&mut apic, LVT_LINT1, 0x0000_0400);
    write(&mut apic, LVT_ERROR, 0xfe);
    // Clear ESR: Linux writes it twice around enabling the error LVT.
    assert_eq!(latched_errors(&mut apic), 0);
    assert_eq!(read(&apic, LVT_LINT0), 0x0001_0700);
    assert_eq!(read(&apic, LVT_LINT1), 0x0000_0400);
    assert_eq!(read(&apic, LVT_ERROR), 0xfe);
    for masked in [LVT_THERMAL, LVT_PERF] {
        assert_eq!(read(&apic, masked), 0x1_0000);
    }

    // Timer calibration style: one-shot, divide by 16, initial count.
    write(&mut apic, LVT_TIMER, u32::from(TIMER_VECTOR));
    write(&mut apic, TIMER_DIVIDE, 0b0011);
    assert_eq!(apic.mmio_write(TIMER_INITIAL, 4, 1000, 1_000), None);
    assert_eq!(apic.mmio_read(TIMER_INITIAL, 4, 1_000), 1000);
    // 16 bus cycles per tick, 2 TSC cycles per bus cycle: 32 TSC per tick.
    assert_eq!(apic.mmio_read(TIMER_CURRENT, 4, 1_000 + 32 * 250), 750);
    assert_eq!(apic.next_timer_deadline(), Some(1_000 + 32 * 1000));
    apic.on_time(1_000 + 32 * 1000 - 1);
    assert_eq!(apic.pending_interrupt(), None);
    apic.on_time(1_000 + 32 * 1000);
    assert_eq!(apic.pending_interrupt(), Some(TIMER_VECTOR));
    assert_eq!(apic.mmio_read(TIMER_CURRENT, 4, 1_000 + 32 * 1000), 0);
    assert_eq!(apic.next_timer_deadline(), None, "one-shot disarms");

    // Take and retire the timer interrupt through MMIO.
    assert!(apic.start_delivery(TIMER_VECTOR));
    assert_eq!(read(&apic, ISR0 + 0x70), 1 << (TIMER_VECTOR - 0xe0));
    assert_eq!(read(&apic, PPR), 0xe0);
    assert_eq!(
        write(&mut apic, EOI, 0),
        Some(ApicEffect::Eoi {
            vector: TIMER_VECTOR,
            level_triggered: false
        })
    );
    assert_eq!(read(&apic, ISR0 + 0x70), 0);
    assert_eq!(read(&apic, PPR), 0);
}

#[test]
fn eoi_takes_any_value() {
    let mut apic = enabled_xapic(0);
    apic.accept(0x41, true);
    apic.accept(0x51, false);
    assert!(apic.start_delivery(0x51));
    assert!(apic.start_delivery(0x41));
    assert_eq!(read(&apic, TMR0 + 0x20), 1 << 1);
    assert_eq!(
        write(&mut apic, EOI, 0xdead_beef),
        Some(ApicEffect::Eoi {
            vector: 0x51,
            level_triggered: false
        })
    );
    assert_eq!(
        write(&mut apic, EOI, 1),
        Some(ApicEffect::Eoi {
            vector: 0x41,
            level_triggered: true
        })
    );
    assert_eq!(write(&mut apic, EOI, 0), None, "nothing in service");
    assert_eq!(read(&apic, EOI), 0, "write-only register reads 0");
    assert_eq!(latched_errors(&mut apic), 0, "EOI is not reserved");
}

#[test]
fn icr_self_ipis_deliver_locally() {
    let mut apic = enabled_xapic(5);
    // Physical destination = own ID, delivery status bit set in the write.
    write(&mut apic, ICR_HIGH, 5 << 24);
    assert_eq!(write(&mut apic, ICR_LOW, 0x1040), None);
    assert_eq!(read(&apic, ICR_LOW), 0x40, "delivery status reads idle");
    assert_eq!(read(&apic, ICR_HIGH), 5 << 24);
    // Self shorthand ignores the destination field.
    write(&mut apic, ICR_HIGH, 9 << 24);
    assert_eq!(write(&mut apic, ICR_LOW, 0x0004_0050), None);
    assert_eq!(read(&apic, IRR0 + 0x20), (1 << 0x10) | 1);
    assert_eq!(read(&apic, TMR0 + 0x20), 0, "IPIs are edge-triggered");
    assert_eq!(apic.pending_interrupt(), Some(0x50));
}

#[test]
fn icr_ipis_to_others_become_effects() {
    let mut apic = enabled_xapic(0);
    // Reserved ICR high bits are dropped.
    write(&mut apic, ICR_HIGH, 0x03ff_ffff);
    assert_eq!(read(&apic, ICR_HIGH), 0x0300_0000);
    assert_eq!(
        write(&mut apic, ICR_LOW, 0xfd),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::Physical(3),
            vector: 0xfd,
            mode: IpiDeliveryMode::Fixed
        })
    );
    assert_eq!(apic.pending_interrupt(), None);

    // Physical 0xFF is a broadcast: this APIC takes its share.
    write(&mut apic, ICR_HIGH, 0xff00_0000);
    assert_eq!(
        write(&mut apic, ICR_LOW, 0xf0),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::AllExcludingSelf,
            vector: 0xf0,
            mode: IpiDeliveryMode::Fixed
        })
    );
    assert_eq!(apic.pending_interrupt(), Some(0xf0));

    // All excluding self (Linux's send_IPI_allbutself).
    assert_eq!(
        write(&mut apic, ICR_LOW, 0x000c_00e0),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::AllExcludingSelf,
            vector: 0xe0,
            mode: IpiDeliveryMode::Fixed
        })
    );
    assert!(!apic.requested.contains(0xe0));

    // A fixed IPI with an illegal vector is not sent.
    write(&mut apic, ICR_HIGH, 3 << 24);
    assert_eq!(write(&mut apic, ICR_LOW, 0x0e), None);
    assert_eq!(latched_errors(&mut apic), 1 << 5);
}

#[test]
fn ap_wake_up_through_mmio() {
    let mut apic = enabled_xapic(0);
    write(&mut apic, ICR_HIGH, 1 << 24);
    assert_eq!(
        write(&mut apic, ICR_LOW, 0xc500),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::Physical(1),
            vector: 0,
            mode: IpiDeliveryMode::Init
        })
    );
    assert_eq!(write(&mut apic, ICR_LOW, 0x8500), None, "INIT de-assert");
    assert_eq!(
        write(&mut apic, ICR_LOW, 0x0609),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::Physical(1),
            vector: 0x09,
            mode: IpiDeliveryMode::StartUp
        })
    );
    // NMI to a physical broadcast names everyone, sender included.
    write(&mut apic, ICR_HIGH, 0xff00_0000);
    assert_eq!(
        write(&mut apic, ICR_LOW, 0x0400),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::AllIncludingSelf,
            vector: 0,
            mode: IpiDeliveryMode::Nmi
        })
    );
}

#[test]
fn logical_flat_destinations() {
    let mut apic = enabled_xapic(1);
    write(&mut apic, LDR, 0x0200_0000);
    // Mask 0x06: this APIC (bit 1) and the one with bit 2. The mask goes
    // out as written because logical IDs may be shared.
    write(&mut apic, ICR_HIGH, 0x0600_0000);
    assert_eq!(
        write(&mut apic, ICR_LOW, 0x0800 | 0x61),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::LogicalFlat(0x06),
            vector: 0x61,
            mode: IpiDeliveryMode::Fixed
        })
    );
    assert!(apic.requested.contains(0x61));
    // Not this APIC.
    write(&mut apic, ICR_HIGH, 0x0400_0000);
    assert_eq!(
        write(&mut apic, ICR_LOW, 0x0800 | 0x62),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::LogicalFlat(0x04),
            vector: 0x62,
            mode: IpiDeliveryMode::Fixed
        })
    );
    assert!(!apic.requested.contains(0x62));
    // Lowest priority including this APIC: taken here alone.
    write(&mut apic, ICR_HIGH, 0x0600_0000);
    assert_eq!(write(&mut apic, ICR_LOW, 0x0900 | 0x63), None);
    assert!(apic.requested.contains(0x63));
    // Logical 0xFF is a broadcast.
    write(&mut apic, ICR_HIGH, 0xff00_0000);
    assert_eq!(
        write(&mut apic, ICR_LOW, 0x0800 | 0x64),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::AllExcludingSelf,
            vector: 0x64,
            mode: IpiDeliveryMode::Fixed
        })
    );
    assert!(apic.requested.contains(0x64));

    // How the hypervisor matches receivers.
    let mut other = enabled_xapic(2);
    write(&mut other, LDR, 0x0400_0000);
    assert!(other.accepts_destination(IpiDestination::LogicalFlat(0x06)));
    assert!(!other.accepts_destination(IpiDestination::LogicalFlat(0x0a)));
    assert!(other.accepts_destination(IpiDestination::Physical(2)));
    assert!(!other.accepts_destination(IpiDestination::Physical(1)));
    assert!(other.accepts_destination(IpiDestination::AllExcludingSelf));
}

#[test]
fn logical_cluster_destinations() {
    let mut apic = enabled_xapic(1);
    write(&mut apic, DFR, 0x0fff_ffff);
    assert_eq!(read(&apic, DFR), 0x0fff_ffff);
    // Cluster 1, member bit 1.
    write(&mut apic, LDR, 0x1200_0000);
    write(&mut apic, ICR_HIGH, 0x1300_0000);
    assert_eq!(
        write(&mut apic, ICR_LOW, 0x0800 | 0x71),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::LogicalCluster(0x13),
            vector: 0x71,
            mode: IpiDeliveryMode::Fixed
        })
    );
    assert!(apic.requested.contains(0x71));
    // Same member bit, other cluster.
    write(&mut apic, ICR_HIGH, 0x2200_0000);
    assert_eq!(
        write(&mut apic, ICR_LOW, 0x0800 | 0x72),
        Some(ApicEffect::Ipi {
            destination: IpiDestination::LogicalCluster(0x22),
            vector: 0x72,
            mode: IpiDeliveryMode::Fixed
        })
    );
    assert!(!apic.requested.contains(0x72));
    assert!(apic.accepts_destination(IpiDestination::LogicalCluster(0x1f)));
    assert!(!apic.accepts_destination(IpiDestination::LogicalCluster(0x11)));
}

#[test]
fn id_register_format() {
    let mut apic = LocalApic::new(0x23, CLOCK);
    assert_eq!(read(&apic, ID), 0x2300_0000);
    // Read-only here: writes are ignored, and are not reserved accesses.
    write(&mut apic, ID, 0x0700_0000);
    assert_eq!(read(&apic, ID), 0x2300_0000);
    assert_eq!(apic.id(), 0x23);
    assert_eq!(latched_errors(&mut apic), 0);
    // The x2APIC view is unchanged.
    assert_eq!(apic.rdmsr(0x802, 0), Ok(0x23));
}

#[test]
fn reset_values() {
    let apic = LocalApic::new(0, CLOCK);
    assert_eq!(read(&apic, DFR), 0xffff_ffff);
    assert_eq!(read(&apic, LDR), 0);
    assert_eq!(read(&apic, SVR), 0xff);
    assert_eq!(read(&apic, APR), 0);
    for zero in [
        TPR,
        PPR,
        ESR,
        ICR_LOW,
        ICR_HIGH,
        TIMER_INITIAL,
        TIMER_CURRENT,
        TIMER_DIVIDE,
    ] {
        assert_eq!(read(&apic, zero), 0, "{zero:#x}");
    }
    for bank in 0..8 {
        assert_eq!(read(&apic, ISR0 + bank * 0x10), 0);
        assert_eq!(read(&apic, TMR0 + bank * 0x10), 0);
        assert_eq!(read(&apic, IRR0 + bank * 0x10), 0);
    }
    for lvt in [LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR] {
        assert_eq!(read(&apic, lvt), 0x1_0000, "{lvt:#x}");
    }
}

#[test]
fn dfr_and_ldr_keep_only_their_fields() {
    let mut apic = enabled_xapic(0);
    write(&mut apic, LDR, 0xffff_ffff);
    assert_eq!(read(&apic, LDR), 0xff00_0000);
    write(&mut apic, DFR, 0x0000_1234);
    assert_eq!(read(&apic, DFR), 0x0fff_ffff, "cluster, low bits read 1s");
    write(&mut apic, DFR, 0x5fff_ffff);
    assert_eq!(read(&apic, DFR), 0x0fff_ffff, "undefined model ignored");
    write(&mut apic, DFR, 0xf000_0000);
    assert_eq!(read(&apic, DFR), 0xffff_ffff);
}

#[test]
fn reserved_bits_are_dropped_not_faulted() {
    let mut apic = enabled_xapic(0);
    write(&mut apic, TPR, 0x1ff);
    assert_eq!(read(&apic, TPR), 0xff);
    write(&mut apic, TPR, 0);
    write(&mut apic, SVR, 0x11ff);
    assert_eq!(read(&apic, SVR), 0x1ff);
    write(&mut apic, LVT_ERROR, 0x0008_00fe);
    assert_eq!(read(&apic, LVT_ERROR), 0xfe);
    write(&mut apic, LVT_LINT0, 0x0001_5700);
    assert_eq!(read(&apic, LVT_LINT0), 0x0001_0700, "status bits read-only");
    write(&mut apic, LVT_TIMER, 0x0006_00ec);
    assert_eq!(read(&apic, LVT_TIMER), 0x1_0000, "timer mode 3 ignored");
    write(&mut apic, TIMER_DIVIDE, 0xffff_fff7);
    assert_eq!(read(&apic, TIMER_DIVIDE), 0b0011);
    write(&mut apic, ICR_LOW, 0xfff3_3000 | 0x0004_0040);
    assert_eq!(read(&apic, ICR_LOW), 0x0004_0040);
    assert_eq!(latched_errors(&mut apic), 0);
}

#[test]
fn read_only_registers_ignore_writes() {
    let mut apic = enabled_xapic(0);
    apic.accept(0x80, false);
    for offset in [VERSION, APR, PPR, ISR0, TMR0, IRR0 + 0x40, TIMER_CURRENT] {
        write(&mut apic, offset, 0xffff_ffff);
    }
    assert_eq!(read(&apic, VERSION), 0x0005_0014);
    assert_eq!(read(&apic, APR), 0);
    assert_eq!(read(&apic, IRR0 + 0x40), 1);
    assert_eq!(read(&apic, TIMER_CURRENT), 0);
    assert_eq!(latched_errors(&mut apic), 0, "not reserved registers");
}

#[test]
fn reserved_registers_read_zero_and_writes_set_esr() {
    let mut apic = enabled_xapic(0);
    // SELF IPI is x2APIC only; 0x2F0 would be CMCI (max LVT is 5).
    for offset in [0x00, 0x10, 0x40, 0xc0, 0x2f0, 0x3a0, 0x3f0, 0x400, 0xff0] {
        assert_eq!(read(&apic, offset), 0, "{offset:#x}");
        assert_eq!(write(&mut apic, offset, 0x40), None, "{offset:#x}");
        assert_eq!(latched_errors(&mut apic), 1 << 7, "{offset:#x}");
    }
    assert_eq!(apic.pending_interrupt(), None, "no self IPI was sent");
    // With the error LVT unmasked, the error is signalled.
    write(&mut apic, LVT_ERROR, 0xfe);
    write(&mut apic, SELF_IPI, 0x40);
    assert_eq!(apic.pending_interrupt(), Some(0xfe));
}

#[test]
fn odd_sized_and_misaligned_accesses_are_harmless() {
    let mut apic = LocalApic::new(0x23, CLOCK);
    write(&mut apic, SVR, 0x1ff);
    write(&mut apic, TPR, 0x20);
    // Sub-dword reads within a register return its bytes.
    assert_eq!(apic.mmio_read(ID + 3, 1, 0), 0x23);
    assert_eq!(apic.mmio_read(ID + 2, 2, 0), 0x2300);
    assert_eq!(apic.mmio_read(VERSION + 2, 1, 0), 0x05);
    assert_eq!(apic.mmio_read(SVR, 2, 0), 0x1ff);
    assert_eq!(apic.mmio_read(SVR, 1, 0), 0xff);
    // Crossing the register's dword, bytes 4-15 of a slot, odd sizes,
    // beyond the page: 0.
    assert_eq!(apic.mmio_read(ID + 3, 2, 0), 0);
    assert_eq!(apic.mmio_read(ID + 1, 4, 0), 0);
    assert_eq!(apic.mmio_read(ID + 4, 4, 0), 0);
    assert_eq!(apic.mmio_read(ID + 12, 4, 0), 0);
    for size in [0, 3, 8, 16, 255] {
        assert_eq!(apic.mmio_read(ID, size, 0), 0, "size {size}");
    }
    for offset in [0x1000, 0x1020, u64::MAX, u64::MAX - 3] {
        assert_eq!(apic.mmio_read(offset, 4, 0), 0, "{offset:#x}");
        assert_eq!(apic.mmio_write(offset, 4, 0x40, 0), None, "{offset:#x}");
    }

    // Writes other than aligned dwords are ignored.
    assert_eq!(apic.mmio_write(TPR, 1, 0xff, 0), None);
    assert_eq!(apic.mmio_write(TPR, 2, 0xff, 0), None);
    assert_eq!(apic.mmio_write(TPR, 8, 0xff, 0), None);
    assert_eq!(apic.mmio_write(TPR + 4, 4, 0xff, 0), None);
    assert_eq!(apic.mmio_write(TPR + 1, 4, 0xff, 0), None);
    assert_eq!(apic.mmio_write(ICR_LOW + 4, 4, 0x0004_0040, 0), None);
    assert_eq!(read(&apic, TPR), 0x20);
    assert_eq!(apic.pending_interrupt(), None);
    assert_eq!(latched_errors(&mut apic), 0, "ignored, not reserved");

    // Nothing anywhere in or near the page panics.
    for offset in 0..0x1010 {
        for size in 0..=9 {
            let _ = apic.mmio_read(offset, size, u64::MAX);
        }
    }
    for offset in (0..0x1010).step_by(4) {
        for value in [0, u32::MAX] {
            let _ = apic.mmio_write(offset, 4, value, u64::MAX);
        }
    }
}

#[test]
fn tsc_deadline_msr_works_alongside_mmio() {
    let mut apic = enabled_xapic(0);
    write(&mut apic, LVT_TIMER, (2 << 17) | u32::from(TIMER_VECTOR));
    assert_eq!(read(&apic, LVT_TIMER), (2 << 17) | u32::from(TIMER_VECTOR));
    apic.set_tsc_deadline(10_000, 100);
    assert_eq!(apic.tsc_deadline(), 10_000);
    assert_eq!(apic.next_timer_deadline(), Some(10_000));
    // Initial-count writes are ignored in TSC-deadline mode.
    assert_eq!(apic.mmio_write(TIMER_INITIAL, 4, 500, 200), None);
    assert_eq!(apic.mmio_read(TIMER_CURRENT, 4, 300), 0);
    assert_eq!(apic.next_timer_deadline(), Some(10_000));
    apic.on_time(10_000);
    assert_eq!(apic.pending_interrupt(), Some(TIMER_VECTOR));
    assert_eq!(apic.tsc_deadline(), 0);
    // Leaving TSC-deadline mode through MMIO disarms a pending deadline.
    apic.set_tsc_deadline(20_000, 10_100);
    apic.mmio_write(LVT_TIMER, 4, u32::from(TIMER_VECTOR), 10_200);
    assert_eq!(apic.tsc_deadline(), 0);
    assert_eq!(apic.next_timer_deadline(), None);
}

#[test]
fn mmio_and_msr_views_share_state() {
    let mut apic = enabled_xapic(4);
    write(&mut apic, TPR, 0x30);
    assert_eq!(apic.rdmsr(0x808, 0), Ok(0x30));
    assert_eq!(apic.wrmsr(0x80f, 0x1fe, 0), Ok(None));
    assert_eq!(read(&apic, SVR), 0x1fe);
    // x2APIC's LDR stays derived from the ID; xAPIC's is the written one.
    write(&mut apic, LDR, 0x0100_0000);
    assert_eq!(apic.rdmsr(0x80d, 0), Ok(0x10));
    assert_eq!(read(&apic, LDR), 0x0100_0000);
}

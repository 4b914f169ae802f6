use keel_memory::FrameAllocator;

use super::fake::{Event, FakeUnit, FRO, IRO};
use super::*;
use crate::invalidation::kind;
use crate::irte::TableSize;
use crate::test_support::{FakeFrames, SharedMemory};

const TES: u32 = 1 << 31;
const RTPS: u32 = 1 << 30;
const QIES: u32 = 1 << 26;
const IRES: u32 = 1 << 25;
const IRTPS: u32 = 1 << 24;
const CFIS: u32 = 1 << 23;

struct Rig {
    unit: RemappingUnit<FakeUnit>,
    mem: SharedMemory,
    config: EnableConfig,
}

impl Rig {
    fn fake(&mut self) -> &mut FakeUnit {
        self.unit.registers()
    }

    fn enable(&mut self) -> Result<(), UnitError> {
        let config = self.config;
        self.unit.enable(&config, &mut self.mem)
    }

    fn events(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.fake().events)
    }

    fn descriptor_kinds(&mut self) -> Vec<u64> {
        self.events()
            .into_iter()
            .filter_map(|event| match event {
                Event::Descriptor(descriptor) => Some(descriptor.kind()),
                _ => None,
            })
            .collect()
    }
}

/// A unit (adjusted by `adjust` before the driver reads its capabilities)
/// with a root table, a one-page queue and an x2APIC interrupt table.
fn rig(adjust: impl FnOnce(&mut FakeUnit)) -> Rig {
    let mem = SharedMemory::default();
    let mut alloc = FakeFrames::default();
    let mut fake = FakeUnit::new(mem.clone());
    adjust(&mut fake);
    let unit = RemappingUnit::new(fake).with_poll_limit(100);
    let mut frame = || {
        let frame = alloc.allocate_frame().unwrap();
        mem.clone().zero_frame(frame);
        frame
    };
    let root = frame();
    let queue = QueueConfig {
        base: frame(),
        size: QueueSize::ONE_PAGE,
        status: frame(),
    };
    let table = InterruptRemappingTable::new(frame(), TableSize::ONE_PAGE, ApicMode::X2Apic).unwrap();
    Rig {
        unit,
        mem,
        config: EnableConfig {
            root_table: root,
            invalidation_queue: Some(queue),
            interrupt_remapping: Some(table),
        },
    }
}

#[test]
fn capabilities_are_read_at_creation() {
    let mut rig = rig(|_| {});
    assert_eq!(rig.unit.version(), Version { major: 1, minor: 0 });
    assert_eq!(rig.unit.capabilities().fault_recording_offset(), FRO);
    assert_eq!(rig.unit.capabilities().fault_recording_count(), 4);
    assert_eq!(rig.unit.extended_capabilities().iotlb_register_offset(), IRO);
    assert!(rig.fake().gcmd_writes.is_empty(), "creating the driver changes nothing");
}

#[test]
fn enable_runs_the_documented_sequence() {
    let mut rig = rig(|_| {});
    rig.enable().unwrap();
    let root = rig.config.root_table.as_u64();
    let irta = rig.config.interrupt_remapping.unwrap().irta();
    let events = rig.events();
    let descriptor = |kind| move |event: &Event| matches!(event, Event::Descriptor(d) if d.kind() == kind);
    let position = |wanted: &dyn Fn(&Event) -> bool| events.iter().position(wanted).unwrap();
    let latched = position(&|event| *event == Event::RootLatched(root));
    let queue_on = position(&|event| *event == Event::Enabled(GlobalCommand::QueuedInvalidation, true));
    let context = position(&descriptor(kind::CONTEXT_CACHE));
    let tlb = position(&descriptor(kind::IOTLB));
    let table = position(&|event| *event == Event::InterruptTableLatched(irta));
    let entry_cache = position(&descriptor(kind::INTERRUPT_ENTRY_CACHE));
    let remapping = position(&|event| *event == Event::Enabled(GlobalCommand::InterruptRemapping, true));
    let translation = position(&|event| *event == Event::Enabled(GlobalCommand::TranslationEnable, true));
    let order = [
        latched,
        queue_on,
        context,
        tlb,
        table,
        entry_cache,
        remapping,
        translation,
    ];
    assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{events:#?}");

    let fake = rig.fake();
    assert_eq!(fake.violations, Vec::<&str>::new());
    assert_eq!(fake.gsts, TES | RTPS | QIES | IRES | IRTPS);
    // The root pointer latched once: no later GCMD write repeated SRTP.
    let srtp_writes = fake.gcmd_writes.iter().filter(|&&value| value & RTPS != 0).count();
    assert_eq!(srtp_writes, 1);
    // The IOTLB flush drains reads and writes, as CAP.DRD/DWD allow.
    assert!(events.iter().any(|event| matches!(
        event,
        Event::Descriptor(d) if d.kind() == kind::IOTLB && d.low & 0xc0 == 0xc0
    )));
}

#[test]
fn enable_without_a_queue_invalidates_through_registers() {
    let mut rig = rig(|fake| fake.ecap &= !(1 << 1));
    rig.config.invalidation_queue = None;
    rig.config.interrupt_remapping = None;
    rig.enable().unwrap();
    let events = rig.events();
    assert_eq!(
        events,
        [
            Event::RootLatched(rig.config.root_table.as_u64()),
            Event::RegisterContextInvalidation(ccmd::ICC | ccmd::GLOBAL),
            Event::RegisterIotlbInvalidation(iotlb::IVT | iotlb::GLOBAL | iotlb::DRAIN_READS | iotlb::DRAIN_WRITES),
            Event::Enabled(GlobalCommand::TranslationEnable, true),
        ]
    );
    assert!(rig.fake().violations.is_empty());
}

#[test]
fn the_write_buffer_is_flushed_where_required() {
    let mut rig = rig(|fake| fake.cap |= 1 << 4);
    rig.enable().unwrap();
    let events = rig.events();
    let root = events.iter().position(|e| matches!(e, Event::RootLatched(_))).unwrap();
    assert_eq!(events[root + 1], Event::WriteBufferFlushed);
}

#[test]
fn configurations_the_unit_cannot_serve_are_refused_untouched() {
    let mut no_ir = rig(|fake| fake.ecap &= !(1 << 3));
    assert_eq!(no_ir.enable(), Err(UnitError::Unsupported(Feature::InterruptRemapping)));
    let mut no_eim = rig(|fake| fake.ecap &= !(1 << 4));
    assert_eq!(
        no_eim.enable(),
        Err(UnitError::Unsupported(Feature::ExtendedInterruptMode))
    );
    let mut no_qi = rig(|fake| fake.ecap &= !(1 << 1));
    assert_eq!(no_qi.enable(), Err(UnitError::Unsupported(Feature::QueuedInvalidation)));
    let mut ir_without_queue = rig(|_| {});
    ir_without_queue.config.invalidation_queue = None;
    assert_eq!(ir_without_queue.enable(), Err(UnitError::NoQueue));
    let mut misaligned = rig(|_| {});
    misaligned.config.root_table = HostPhysAddr::new(0x1234_5800);
    assert_eq!(misaligned.enable(), Err(UnitError::Misaligned));
    for mut rig in [no_ir, no_eim, no_qi, ir_without_queue, misaligned] {
        assert!(rig.fake().gcmd_writes.is_empty());
    }
}

#[test]
fn a_unit_that_never_answers_times_out() {
    let mut rig = rig(|fake| fake.stuck = true);
    assert_eq!(
        rig.enable(),
        Err(UnitError::Timeout(Operation::Command(
            GlobalCommand::SetRootTablePointer
        )))
    );
    rig.config.invalidation_queue = None;
    assert_eq!(
        rig.unit.invalidate(InvalidationScope::Global, &mut rig.mem),
        Err(UnitError::Timeout(Operation::ContextInvalidation))
    );
}

#[test]
fn slow_hardware_is_waited_for_within_the_limit() {
    let mut slow = rig(|fake| fake.delay = 90);
    slow.enable().unwrap();
    let mut slower = rig(|fake| fake.delay = 150);
    assert_eq!(
        slower.enable(),
        Err(UnitError::Timeout(Operation::Command(
            GlobalCommand::SetRootTablePointer
        )))
    );
}

#[test]
fn a_stalled_queue_times_out() {
    let mut rig = rig(|fake| fake.queue_stalled = true);
    assert_eq!(rig.enable(), Err(UnitError::Timeout(Operation::InvalidationWait)));
    // A full queue that never drains times out too.
    let descriptors = [Descriptor::interrupt_entry_cache_global(); 300];
    assert_eq!(
        rig.unit.submit(&descriptors, &mut rig.mem),
        Err(UnitError::Timeout(Operation::QueueSpace))
    );
}

#[test]
fn a_rejected_descriptor_is_reported_with_the_queue_head() {
    let mut rig = rig(|fake| fake.reject_kind = Some(kind::IOTLB));
    let error = rig.enable().unwrap_err();
    // The context-cache descriptor went through; hardware stopped at slot 1.
    assert_eq!(
        error,
        UnitError::InvalidationFailed {
            fault_status: crate::fault::fsts::IQE,
            head: 1 << 4
        }
    );
    assert_eq!(rig.fake().fsts, 0, "the error was acknowledged");
}

#[test]
fn the_queue_wraps_and_waits_for_room() {
    let mut rig = rig(|_| {});
    rig.enable().unwrap();
    rig.events();
    let descriptors = [Descriptor::interrupt_entry_cache_global(); 600];
    for _ in 0..3 {
        rig.unit.submit_and_wait(&descriptors, &mut rig.mem).unwrap();
    }
    let kinds = rig.descriptor_kinds();
    assert_eq!(kinds.len(), 3 * 601);
    assert_eq!(kinds.iter().filter(|&&kind| kind == kind::INVALIDATION_WAIT).count(), 3);
    assert!(rig.fake().violations.is_empty());
}

#[test]
fn invalidation_scopes_reach_the_hardware() {
    let source = SourceId::new(3, 0, 1).unwrap();
    let mut rig = rig(|_| {});
    rig.enable().unwrap();
    rig.events();
    rig.unit
        .invalidate(InvalidationScope::Device { domain: 9, source }, &mut rig.mem)
        .unwrap();
    let events = rig.events();
    let Event::Descriptor(context) = events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(context, Descriptor::context_cache_device(9, source, 0).unwrap());
    let Event::Descriptor(tlb) = events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(tlb.low & 0xffff_00ff, 9 << 16 | 0xc0 | 2 << 4 | kind::IOTLB);

    let mut registers = self::rig(|fake| fake.ecap &= !(1 << 1));
    registers.config.invalidation_queue = None;
    registers.config.interrupt_remapping = None;
    registers.enable().unwrap();
    registers.events();
    registers
        .unit
        .invalidate(InvalidationScope::Domain(5), &mut registers.mem)
        .unwrap();
    assert_eq!(
        registers.events()[0],
        Event::RegisterContextInvalidation(ccmd::ICC | ccmd::DOMAIN | 5)
    );
}

#[test]
fn firmware_state_is_taken_over_without_a_dma_window() {
    let mut rig = rig(|fake| {
        fake.cap |= 1 << 5;
        fake.gsts = TES | RTPS | QIES | IRES | IRTPS | CFIS;
        fake.iqa = 0x7000_0000;
        (fake.iqh, fake.iqt) = (0x40, 0x40);
        fake.pmen = pmen::EPM | pmen::PRS;
    });
    rig.enable().unwrap();
    let events = rig.events();
    assert!(!events.contains(&Event::Enabled(GlobalCommand::TranslationEnable, false)));
    let queue_off = events
        .iter()
        .position(|e| *e == Event::Enabled(GlobalCommand::QueuedInvalidation, false))
        .unwrap();
    let queue_on = events
        .iter()
        .position(|e| *e == Event::Enabled(GlobalCommand::QueuedInvalidation, true))
        .unwrap();
    assert!(queue_off < queue_on);
    assert!(events.contains(&Event::Enabled(GlobalCommand::CompatibilityFormatInterrupts, false)));
    let fake = rig.fake();
    assert_eq!(fake.violations, Vec::<&str>::new());
    assert_eq!(fake.pmen, 0);
    assert_eq!(fake.gsts, TES | RTPS | QIES | IRES | IRTPS);
    assert_eq!(fake.iqa & !0xfff, rig.config.invalidation_queue.unwrap().base.as_u64());
}

#[test]
fn interrupt_remapping_left_on_by_firmware_is_turned_off_when_unwanted() {
    let mut rig = rig(|fake| fake.gsts = RTPS | IRES | IRTPS);
    rig.config.interrupt_remapping = None;
    rig.enable().unwrap();
    assert!(rig
        .events()
        .contains(&Event::Enabled(GlobalCommand::InterruptRemapping, false)));
    assert_eq!(rig.fake().gsts & IRES, 0);
}

#[test]
fn faults_are_drained_oldest_first_and_cleared() {
    let mut rig = rig(|_| {});
    let dma = 0x0010 | 0x05 << 32;
    let interrupt = 0xf8f8 | 0x22 << 32 | 1 << 62;
    rig.fake().record_fault(3, 0xdead_b000, dma);
    rig.fake().record_fault(0, 7 << 48, interrupt);
    rig.fake().fsts = rig.fake().fsts & !0xff00 | 3 << 8 | 1;
    let mut seen = Vec::new();
    let status = rig.unit.take_faults(|record| seen.push(record));
    assert!(status.primary_pending() && status.primary_overflow());
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].address(), Some(0xdead_b000));
    assert_eq!(seen[0].source, SourceId::new(0, 2, 0).unwrap());
    assert_eq!(seen[1].interrupt_index(), Some(7));
    let fake = rig.fake();
    assert!(fake.faults.iter().all(|record| record[1] >> 63 == 0));
    assert_eq!(fake.fsts & 1, 0, "overflow acknowledged");
    assert!(!rig.unit.fault_status().primary_pending());
    assert!(rig.unit.take_faults(|_| panic!("no faults left")).raw() & 0x3 == 0);
}

fn fault_event_message() -> FaultEventMessage {
    FaultEventMessage::new(0x4f, 0x01, true).unwrap()
}

const DMA_WRITE_FAULT: u64 = 0x0018 | 0x05 << 32;

#[test]
fn the_fault_event_interrupt_is_programmed_masked_then_unmasked() {
    let mut rig = rig(|_| {});
    assert!(rig.unit.fault_event_control().masked, "masked out of reset");
    rig.unit.enable_fault_event(&fault_event_message()).unwrap();
    let fake = rig.fake();
    assert_eq!((fake.feaddr, fake.fedata, fake.fectl), (0xfee0_1000, 0x4f, 0));
    assert_eq!(
        rig.unit.fault_event_control(),
        FaultEventControl {
            masked: false,
            pending: false
        }
    );
    rig.unit.mask_fault_event();
    assert_eq!(rig.fake().fectl, event_control::IM);
}

#[test]
fn a_recorded_fault_raises_the_interrupt_and_draining_rearms_it() {
    let mut rig = rig(|_| {});
    rig.unit.enable_fault_event(&fault_event_message()).unwrap();
    rig.fake().record_fault(0, 0x10_6000, DMA_WRITE_FAULT);
    assert!(rig.fake().events.contains(&Event::FaultInterrupt(0xfee0_1000, 0x4f)));
    assert_eq!(rig.fake().fault_interrupts(), 1);
    // A second fault while the first is still recorded: no new interrupt
    // (PPF was already set).
    rig.fake().record_fault(1, 0x10_7000, DMA_WRITE_FAULT);
    assert_eq!(rig.fake().fault_interrupts(), 1);
    let mut seen = Vec::new();
    rig.unit.take_faults(|record| seen.push(record.fault_info));
    assert_eq!(seen, [0x10_6000, 0x10_7000]);
    // Drained: the next fault is a new condition and interrupts again.
    rig.fake().record_fault(2, 0x10_8000, DMA_WRITE_FAULT);
    assert_eq!(rig.fake().fault_interrupts(), 2);
}

#[test]
fn an_overflow_is_acknowledged_so_the_interrupt_rearms() {
    // One fault recording register (CAP.NFR 0).
    let mut rig = rig(|fake| {
        fake.cap &= !(0xff << 40);
        fake.faults.truncate(1);
    });
    rig.unit.enable_fault_event(&fault_event_message()).unwrap();
    rig.fake().record_fault(0, 0x10_6000, DMA_WRITE_FAULT);
    rig.fake().record_fault(0, 0x10_7000, DMA_WRITE_FAULT);
    assert_eq!(rig.fake().fsts & fsts::PFO, fsts::PFO, "the second fault overflowed");
    let status = rig.unit.take_faults(|_| {});
    assert!(status.primary_overflow());
    assert_eq!(rig.fake().fsts & fsts::PFO, 0);
    rig.fake().record_fault(0, 0x10_8000, DMA_WRITE_FAULT);
    assert_eq!(rig.fake().fault_interrupts(), 2);
}

#[test]
fn a_fault_recorded_while_draining_is_taken_in_the_same_call() {
    let mut rig = rig(|_| {});
    rig.unit.enable_fault_event(&fault_event_message()).unwrap();
    rig.fake().record_fault(2, 0x10_6000, DMA_WRITE_FAULT);
    rig.fake().record_fault(3, 0x10_7000, DMA_WRITE_FAULT);
    // Lands in register 1 while register 3 still holds a fault (PPF stays
    // set: hardware raises no interrupt for it), past the empty register 0
    // where a drain following FRI (2) stops: a drain that ended there
    // would leave PPF set and the interrupt dead.
    rig.fake().fault_during_drain = Some((1, 0x10_8000, DMA_WRITE_FAULT));
    let mut seen = Vec::new();
    rig.unit.take_faults(|record| seen.push(record.fault_info));
    assert_eq!(seen, [0x10_6000, 0x10_7000, 0x10_8000]);
    assert_eq!(rig.fake().fault_interrupts(), 1);
    assert!(!rig.unit.fault_status().primary_pending());
    rig.fake().record_fault(1, 0x10_9000, DMA_WRITE_FAULT);
    assert_eq!(rig.fake().fault_interrupts(), 2);
}

#[test]
fn a_fault_held_while_masked_arrives_on_unmasking() {
    let mut rig = rig(|_| {});
    rig.fake().record_fault(0, 0x10_6000, DMA_WRITE_FAULT);
    assert_eq!(rig.fake().fault_interrupts(), 0);
    assert!(rig.unit.fault_event_control().pending);
    rig.unit.enable_fault_event(&fault_event_message()).unwrap();
    assert_eq!(rig.fake().fault_interrupts(), 1);
    assert!(!rig.unit.fault_event_control().pending);
}

#[test]
fn a_unit_that_does_not_keep_the_message_stays_masked() {
    let mut rig = rig(|fake| fake.fedata_stuck = 0x40);
    assert_eq!(
        rig.unit.enable_fault_event(&fault_event_message()),
        Err(UnitError::FaultEventNotProgrammed)
    );
    assert!(rig.unit.fault_event_control().masked);
    rig.fake().record_fault(0, 0x10_6000, DMA_WRITE_FAULT);
    assert_eq!(rig.fake().fault_interrupts(), 0);
}

#[test]
fn x2apic_destinations_need_eim() {
    let mut rig = rig(|fake| fake.ecap &= !(1 << 4));
    let wide = FaultEventMessage::new(0x4f, 0x100, true).unwrap();
    assert_eq!(
        rig.unit.enable_fault_event(&wide),
        Err(UnitError::Unsupported(Feature::ExtendedInterruptMode))
    );
    assert!(rig.unit.fault_event_control().masked);
}

#[test]
fn errors_have_readable_messages() {
    assert_eq!(
        UnitError::Timeout(Operation::InvalidationWait).to_string(),
        "remapping unit timed out: InvalidationWait"
    );
}

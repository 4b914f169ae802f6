use super::*;
use crate::features::{KEEL_TRANSPORT_FEATURES, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC};
use crate::status::{ACKNOWLEDGE, DRIVER, FAILED};
use std::vec::Vec;

const BLK_FLUSH: u64 = 1 << 9;
const FEATURES: u64 = KEEL_TRANSPORT_FEATURES | BLK_FLUSH;

fn config(multiplier: u32) -> FunctionConfig {
    FunctionConfig {
        device_type: device_id::BLOCK,
        device_features: FEATURES,
        num_queues: 2,
        queue_max_size: 256,
        msix_vectors: 3,
        notify_off_multiplier: multiplier,
    }
}

fn device_config() -> Vec<u8> {
    (0..60).map(|i| i as u8 + 1).collect()
}

fn function() -> VirtioPciFunction {
    VirtioPciFunction::new(config(0), &device_config()).unwrap()
}

fn read(f: &mut VirtioPciFunction, offset: u64, size: u8) -> u64 {
    f.mmio_read(COMMON_CFG_OFFSET + offset, size)
}

fn write(f: &mut VirtioPciFunction, offset: u64, size: u8, value: u64) -> Effect {
    f.mmio_write(COMMON_CFG_OFFSET + offset, size, value)
}

fn write_features(f: &mut VirtioPciFunction, features: u64) {
    write(f, common::DRIVER_FEATURE_SELECT, 4, 0);
    write(f, common::DRIVER_FEATURE, 4, features & 0xFFFF_FFFF);
    write(f, common::DRIVER_FEATURE_SELECT, 4, 1);
    write(f, common::DRIVER_FEATURE, 4, features >> 32);
}

/// ACKNOWLEDGE, DRIVER, features, FEATURES_OK: returns the status read back.
fn negotiate(f: &mut VirtioPciFunction, features: u64) -> u8 {
    write(f, common::DEVICE_STATUS, 1, u64::from(ACKNOWLEDGE));
    write(f, common::DEVICE_STATUS, 1, u64::from(ACKNOWLEDGE | DRIVER));
    write_features(f, features);
    write(
        f,
        common::DEVICE_STATUS,
        1,
        u64::from(ACKNOWLEDGE | DRIVER | FEATURES_OK),
    );
    read(f, common::DEVICE_STATUS, 1) as u8
}

fn program_queue(f: &mut VirtioPciFunction, queue: u16, size: u16, desc: u64, driver: u64, device: u64) -> Effect {
    write(f, common::QUEUE_SELECT, 2, u64::from(queue));
    write(f, common::QUEUE_SIZE, 2, u64::from(size));
    write(f, common::QUEUE_DESC, 8, desc);
    write(f, common::QUEUE_DRIVER, 4, driver & 0xFFFF_FFFF);
    write(f, common::QUEUE_DRIVER + 4, 4, driver >> 32);
    write(f, common::QUEUE_DEVICE, 8, device);
    write(f, common::QUEUE_ENABLE, 2, 1)
}

/// A device brought up to DRIVER_OK with both queues enabled.
fn running() -> VirtioPciFunction {
    let mut f = function();
    assert_ne!(negotiate(&mut f, FEATURES) & FEATURES_OK, 0);
    assert_eq!(
        program_queue(&mut f, 0, 256, 0x10000, 0x11000, 0x12000),
        Effect::QueueEnabled(0)
    );
    assert_eq!(
        program_queue(&mut f, 1, 128, 0x20000, 0x21000, 0x22000),
        Effect::QueueEnabled(1)
    );
    let effect = write(
        &mut f,
        common::DEVICE_STATUS,
        1,
        u64::from(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK),
    );
    assert!(matches!(effect, Effect::StatusChanged { new, .. } if new & DRIVER_OK != 0));
    f
}

/// Walks the capability list: (offset, id, cfg_type, bar, offset, length).
fn capabilities(f: &mut VirtioPciFunction) -> Vec<(u16, u8, u8, u8, u32, u32)> {
    let mut caps = Vec::new();
    let mut at = u16::from(CAPABILITIES_POINTER);
    while at != 0 {
        assert_eq!(at % 4, 0);
        let id = f.config_read(at, 1) as u8;
        let next = f.config_read(at + 1, 1) as u16;
        if id == PCI_CAP_ID_VNDR {
            caps.push((
                at,
                id,
                f.config_read(at + 3, 1) as u8,
                f.config_read(at + 4, 1) as u8,
                f.config_read(at + 8, 4),
                f.config_read(at + 12, 4),
            ));
        } else {
            caps.push((at, id, 0, 0, 0, 0));
        }
        at = next;
        assert!(caps.len() < 16, "capability loop");
    }
    caps
}

#[test]
fn rejects_bad_function_configs() {
    let good = config(0);
    let cases = [
        (
            FunctionConfig { num_queues: 0, ..good },
            FunctionConfigError::QueueCount(0),
        ),
        (
            FunctionConfig { num_queues: 33, ..good },
            FunctionConfigError::QueueCount(33),
        ),
        (
            FunctionConfig {
                queue_max_size: 100,
                ..good
            },
            FunctionConfigError::QueueMaxSize(100),
        ),
        (
            FunctionConfig {
                msix_vectors: 0,
                ..good
            },
            FunctionConfigError::MsixVectors(0),
        ),
        (
            FunctionConfig {
                msix_vectors: 65,
                ..good
            },
            FunctionConfigError::MsixVectors(65),
        ),
        (
            FunctionConfig {
                notify_off_multiplier: 8,
                ..good
            },
            FunctionConfigError::NotifyOffMultiplier(8),
        ),
        (
            FunctionConfig {
                device_features: 0,
                ..good
            },
            FunctionConfigError::Features(0),
        ),
        (
            FunctionConfig {
                device_features: FEATURES | VIRTIO_F_RING_PACKED,
                ..good
            },
            FunctionConfigError::Features(FEATURES | VIRTIO_F_RING_PACKED),
        ),
    ];
    for (config, error) in cases {
        assert_eq!(VirtioPciFunction::new(config, &[]).err(), Some(error));
    }
    assert_eq!(
        VirtioPciFunction::new(good, &[0; 257]).err(),
        Some(FunctionConfigError::DeviceConfigLen(257))
    );
}

#[test]
fn identity_and_bars() {
    let f = function();
    let identity = f.identity();
    assert_eq!(identity.vendor_id, 0x1AF4);
    assert_eq!(identity.device_id, 0x1042);
    assert_eq!(identity.revision, 1);
    assert_eq!(identity.class_code, 0x010000);
    assert!(identity.subsystem_id >= 0x40);
    assert_eq!(identity.interrupt_pin, 1);
    let [mmio, notify] = f.bars();
    assert_eq!((mmio.index, mmio.kind, mmio.size), (0, BarKind::Memory32, 0x4000));
    assert_eq!((notify.index, notify.kind, notify.size), (2, BarKind::Io, 4));
    let wide = VirtioPciFunction::new(
        FunctionConfig {
            num_queues: 5,
            notify_off_multiplier: 4,
            ..config(0)
        },
        &[],
    )
    .unwrap();
    assert_eq!(wide.bars()[1].size, 32, "4 × 4 + 2 bytes, rounded up");
}

#[test]
fn capability_list() {
    let mut f = function();
    let caps = capabilities(&mut f);
    assert_eq!(
        caps,
        [
            (CAP_COMMON, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_COMMON_CFG, 0, 0, 0x38),
            (CAP_NOTIFY, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_NOTIFY_CFG, 2, 0, 2),
            (CAP_ISR, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_ISR_CFG, 0, 0x1000, 1),
            (CAP_DEVICE, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_DEVICE_CFG, 0, 0x2000, 60),
            (CAP_PCI_CFG, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0),
            (CAP_MSIX, PCI_CAP_ID_MSIX, 0, 0, 0, 0),
        ]
    );
    // cap_len of the vendor capabilities.
    assert_eq!(f.config_read(CAP_COMMON + 2, 1), 16);
    assert_eq!(f.config_read(CAP_NOTIFY + 2, 1), 20);
    assert_eq!(f.config_read(CAP_PCI_CFG + 2, 1), 20);
    assert_eq!(f.config_read(CAP_NOTIFY + 16, 4), 0, "notify_off_multiplier");
    // MSI-X: table size 3 (encoded 2), table and PBA in BAR0.
    assert_eq!(f.config_read(CAP_MSIX + 2, 2), 2);
    assert_eq!(f.config_read(CAP_MSIX + 4, 4), 0x3000);
    assert_eq!(f.config_read(CAP_MSIX + 8, 4), 0x3800);
    // Header offsets are not ours, the rest of config space reads 0.
    assert_eq!(f.config_read(0, 4), 0);
    assert_eq!(f.config_read(0xFC, 4), 0);
    assert_eq!(f.config_read(0xFF, 4), 0, "crossing the end");

    // Without device configuration the device cap leaves the list.
    let mut bare = VirtioPciFunction::new(
        FunctionConfig {
            notify_off_multiplier: 2,
            ..config(0)
        },
        &[],
    )
    .unwrap();
    let types: Vec<u8> = capabilities(&mut bare).iter().map(|cap| cap.2).collect();
    assert_eq!(types, [1, 2, 3, 5, 0]);
    assert_eq!(bare.config_read(CAP_NOTIFY + 16, 4), 2);
    assert_eq!(bare.config_read(CAP_NOTIFY + 12, 4), 4, "1 × 2 + 2");
}

#[test]
fn capabilities_are_read_only() {
    let mut f = function();
    let before: Vec<u32> = (0x40..0x100).step_by(4).map(|at| f.config_read(at, 4)).collect();
    for at in (0x40..0x100u16).step_by(4) {
        let writable = (CAP_PCI_CFG + 4..CAP_PCI_CFG + 20).contains(&at) || at == CAP_MSIX;
        if !writable {
            f.config_write(at, 4, 0xFFFF_FFFF);
        }
    }
    let after: Vec<u32> = (0x40..0x100).step_by(4).map(|at| f.config_read(at, 4)).collect();
    assert_eq!(before, after);
    // MSI-X control: only enable and function mask change.
    f.config_write(CAP_MSIX + 2, 2, 0xFFFF);
    assert_eq!(f.config_read(CAP_MSIX + 2, 2), 0xC002);
    assert!(f.msix_enabled());
}

#[test]
fn feature_negotiation() {
    let mut f = function();
    write(&mut f, common::DEVICE_FEATURE_SELECT, 4, 0);
    assert_eq!(read(&mut f, common::DEVICE_FEATURE, 4), FEATURES & 0xFFFF_FFFF);
    write(&mut f, common::DEVICE_FEATURE_SELECT, 4, 1);
    assert_eq!(read(&mut f, common::DEVICE_FEATURE, 4), FEATURES >> 32);
    write(&mut f, common::DEVICE_FEATURE_SELECT, 4, 7);
    assert_eq!(read(&mut f, common::DEVICE_FEATURE, 4), 0);

    let accepted = VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX;
    assert_eq!(negotiate(&mut f, accepted), ACKNOWLEDGE | DRIVER | FEATURES_OK);
    assert_eq!(f.negotiated_features(), Some(accepted));
    // Feature writes after FEATURES_OK are ignored.
    write_features(&mut f, FEATURES);
    assert_eq!(f.negotiated_features(), Some(accepted));
    write(&mut f, common::DRIVER_FEATURE_SELECT, 4, 0);
    assert_eq!(read(&mut f, common::DRIVER_FEATURE, 4), VIRTIO_F_EVENT_IDX);
}

#[test]
fn features_ok_refused() {
    // A bit the device never offered.
    let mut f = function();
    assert_eq!(negotiate(&mut f, FEATURES | 1 << 5), ACKNOWLEDGE | DRIVER);
    assert_eq!(f.negotiated_features(), None);
    // No VERSION_1: a legacy driver.
    let mut f = function();
    assert_eq!(negotiate(&mut f, VIRTIO_F_INDIRECT_DESC), ACKNOWLEDGE | DRIVER);
    // The driver may retry with a good set.
    assert_eq!(
        negotiate(&mut f, VIRTIO_F_VERSION_1),
        ACKNOWLEDGE | DRIVER | FEATURES_OK
    );
}

#[test]
fn status_rules() {
    let mut f = function();
    write(&mut f, common::DEVICE_STATUS, 1, u64::from(ACKNOWLEDGE | DRIVER));
    // DRIVER_OK before FEATURES_OK: refused, and the device needs a reset.
    let effect = write(
        &mut f,
        common::DEVICE_STATUS,
        1,
        u64::from(ACKNOWLEDGE | DRIVER | DRIVER_OK),
    );
    assert_eq!(effect, Effect::NeedsReset(None));
    assert_eq!(f.status(), ACKNOWLEDGE | DRIVER | DEVICE_NEEDS_RESET);

    let mut f = function();
    // The driver cannot set DEVICE_NEEDS_RESET nor clear bits.
    write(
        &mut f,
        common::DEVICE_STATUS,
        1,
        u64::from(ACKNOWLEDGE | DEVICE_NEEDS_RESET),
    );
    assert_eq!(f.status(), ACKNOWLEDGE);
    write(&mut f, common::DEVICE_STATUS, 1, u64::from(DRIVER));
    assert_eq!(f.status(), ACKNOWLEDGE | DRIVER);
    assert_eq!(write(&mut f, common::DEVICE_STATUS, 1, u64::from(DRIVER)), Effect::None);
    assert_eq!(
        write(&mut f, common::DEVICE_STATUS, 1, u64::from(FAILED)),
        Effect::StatusChanged {
            old: ACKNOWLEDGE | DRIVER,
            new: ACKNOWLEDGE | DRIVER | FAILED
        }
    );
    // Wrong-size status writes are ignored.
    write(&mut f, common::DEVICE_STATUS, 2, 0);
    assert_ne!(f.status(), 0);
}

#[test]
fn reset_waits_for_the_backend() {
    let mut f = running();
    write(&mut f, common::CONFIG_MSIX_VECTOR, 2, 2);
    write(&mut f, common::QUEUE_MSIX_VECTOR, 2, 1);
    let shown = read(&mut f, common::DEVICE_STATUS, 1);
    assert_eq!(write(&mut f, common::DEVICE_STATUS, 1, 0), Effect::Reset);
    assert!(f.reset_pending());
    assert_eq!(read(&mut f, common::DEVICE_STATUS, 1), shown, "not done yet");
    // Nothing is accepted meanwhile, and nothing is signalled.
    assert_eq!(write(&mut f, common::DEVICE_STATUS, 1, 1), Effect::None);
    assert_eq!(f.notify_write(0, 2, 0), Effect::None);
    assert_eq!(f.signal_queue(0), None);
    f.complete_reset();
    assert_eq!(read(&mut f, common::DEVICE_STATUS, 1), 0);
    assert_eq!(f.queue_config(0), None);
    assert_eq!(f.negotiated_features(), None);
    assert_eq!(read(&mut f, common::CONFIG_MSIX_VECTOR, 2), u64::from(NO_VECTOR));
    for queue in 0..2 {
        write(&mut f, common::QUEUE_SELECT, 2, queue);
        assert_eq!(read(&mut f, common::QUEUE_SIZE, 2), 256);
        assert_eq!(read(&mut f, common::QUEUE_ENABLE, 2), 0);
        assert_eq!(read(&mut f, common::QUEUE_MSIX_VECTOR, 2), u64::from(NO_VECTOR));
        assert_eq!(read(&mut f, common::QUEUE_DESC, 8), 0);
    }
    // And the device comes back.
    assert_ne!(negotiate(&mut f, FEATURES) & FEATURES_OK, 0);
}

#[test]
fn a_reset_from_status_0_is_complete_at_once() {
    // Linux's probe: reset a fresh device, then ACKNOWLEDGE right away.
    let mut f = function();
    assert_eq!(write(&mut f, common::DEVICE_STATUS, 1, 0), Effect::Reset);
    assert!(!f.reset_pending());
    assert_eq!(read(&mut f, common::DEVICE_STATUS, 1), 0);
    write(&mut f, common::DEVICE_STATUS, 1, u64::from(ACKNOWLEDGE));
    assert_eq!(read(&mut f, common::DEVICE_STATUS, 1), u64::from(ACKNOWLEDGE));
}

#[test]
fn queue_registers() {
    let mut f = function();
    negotiate(&mut f, FEATURES);
    assert_eq!(read(&mut f, common::NUM_QUEUES, 2), 2);
    write(&mut f, common::QUEUE_SELECT, 2, 1);
    // Bad sizes are ignored: the register keeps its value.
    for size in [0, 3, 100, 512] {
        write(&mut f, common::QUEUE_SIZE, 2, size);
        assert_eq!(read(&mut f, common::QUEUE_SIZE, 2), 256, "size {size}");
    }
    write(&mut f, common::QUEUE_SIZE, 2, 64);
    assert_eq!(read(&mut f, common::QUEUE_SIZE, 2), 64);
    // 64-bit addresses as halves and whole; misaligned pieces ignored.
    write(&mut f, common::QUEUE_DESC, 4, 0x1234_5000);
    write(&mut f, common::QUEUE_DESC + 4, 4, 0x9);
    write(&mut f, common::QUEUE_DESC + 2, 4, 0xFFFF_FFFF);
    write(&mut f, common::QUEUE_DESC + 4, 8, 0xFFFF_FFFF);
    assert_eq!(read(&mut f, common::QUEUE_DESC, 8), 0x9_1234_5000);
    assert_eq!(read(&mut f, common::QUEUE_DESC + 4, 4), 0x9);
    assert_eq!(read(&mut f, common::QUEUE_NOTIFY_OFF, 2), 0, "multiplier 0");
    // Selecting a queue that does not exist.
    write(&mut f, common::QUEUE_SELECT, 2, 2);
    assert_eq!(read(&mut f, common::QUEUE_SIZE, 2), 0);
    assert_eq!(read(&mut f, common::QUEUE_MSIX_VECTOR, 2), u64::from(NO_VECTOR));
    write(&mut f, common::QUEUE_SIZE, 2, 16);
    assert_eq!(write(&mut f, common::QUEUE_ENABLE, 2, 1), Effect::None);
    // Unaligned multi-field read: num_queues, status, generation.
    let value = read(&mut f, common::NUM_QUEUES, 4);
    assert_eq!(value & 0xFFFF, 2);
    assert_eq!((value >> 16) & 0xFF, u64::from(f.status()));
}

#[test]
fn queue_enable_validates() {
    // Misaligned rings: refused, device needs reset.
    let mut f = function();
    negotiate(&mut f, FEATURES);
    let effect = program_queue(&mut f, 0, 256, 0x10008, 0x11000, 0x12000);
    assert_eq!(effect, Effect::NeedsReset(None));
    assert_eq!(read(&mut f, common::QUEUE_ENABLE, 2), 0);
    assert_ne!(f.status() & DEVICE_NEEDS_RESET, 0);
    assert_eq!(f.queue_config(0), None);

    // Before FEATURES_OK: refused.
    let mut f = function();
    write(&mut f, common::DEVICE_STATUS, 1, u64::from(ACKNOWLEDGE | DRIVER));
    assert_eq!(
        program_queue(&mut f, 0, 256, 0x10000, 0x11000, 0x12000),
        Effect::NeedsReset(None)
    );

    // Good: enabled, then frozen.
    let mut f = function();
    negotiate(&mut f, FEATURES);
    assert_eq!(
        program_queue(&mut f, 0, 64, 0x10000, 0x11002, 0x12004),
        Effect::QueueEnabled(0)
    );
    let expected = QueueConfig {
        size: 64,
        desc_table: 0x10000,
        avail_ring: 0x11002,
        used_ring: 0x12004,
    };
    assert_eq!(f.queue_config(0), Some(expected));
    write(&mut f, common::QUEUE_SIZE, 2, 32);
    write(&mut f, common::QUEUE_DESC, 8, 0x5000);
    assert_eq!(write(&mut f, common::QUEUE_ENABLE, 2, 0), Effect::None);
    assert_eq!(write(&mut f, common::QUEUE_ENABLE, 2, 1), Effect::None);
    assert_eq!(f.queue_config(0), Some(expected));
    assert_eq!(f.queue_config(1), None);
    assert_eq!(f.queue_config(40), None);
}

#[test]
fn notifications() {
    let mut f = running();
    assert_eq!(f.notify_write(0, 2, 1), Effect::QueueNotify(1));
    assert_eq!(f.notify_write(0, 4, 0), Effect::QueueNotify(0));
    assert_eq!(f.notify_write(0, 1, 0), Effect::None, "byte writes");
    assert_eq!(f.notify_write(2, 2, 0), Effect::None, "multiplier 0: one port");
    assert_eq!(f.notify_write(0, 2, 2), Effect::None, "no queue 2");

    // Multiplier 4: the port names the queue.
    let mut f = VirtioPciFunction::new(config(4), &device_config()).unwrap();
    negotiate(&mut f, FEATURES);
    program_queue(&mut f, 1, 256, 0x10000, 0x11000, 0x12000);
    assert_eq!(f.notify_write(4, 2, 1), Effect::None, "before DRIVER_OK");
    write(
        &mut f,
        common::DEVICE_STATUS,
        1,
        u64::from(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK),
    );
    write(&mut f, common::QUEUE_SELECT, 2, 1);
    assert_eq!(read(&mut f, common::QUEUE_NOTIFY_OFF, 2), 1);
    assert_eq!(f.notify_write(4, 2, 0xBAD), Effect::QueueNotify(1));
    assert_eq!(f.notify_write(0, 2, 0), Effect::None, "queue 0 not enabled");
    assert_eq!(f.notify_write(6, 2, 1), Effect::None, "between queues");
    assert_eq!(f.notify_write(!3, 2, 1), Effect::None);
}

#[test]
fn intx_interrupts() {
    let mut f = function();
    assert_eq!(f.signal_queue(0), None, "before DRIVER_OK");
    let mut f = running();
    assert!(!f.msix_enabled());
    assert_eq!(f.signal_queue(0), Some(Interrupt::Intx));
    assert!(f.intx_level());
    assert_eq!(f.mmio_read(ISR_OFFSET, 1), 1);
    assert!(!f.intx_level());
    assert_eq!(f.mmio_read(ISR_OFFSET, 1), 0, "read clears");
    assert_eq!(f.set_device_config(&[9; 4]), Some(Interrupt::Intx));
    assert_eq!(f.mmio_read(ISR_OFFSET, 4), 2);
    assert_eq!(f.signal_queue(7), None);
}

fn program_vector(f: &mut VirtioPciFunction, vector: u64, address: u64, data: u32, masked: bool) {
    let entry = MSIX_TABLE_OFFSET + 16 * vector;
    assert_eq!(f.mmio_write(entry, 8, address), Effect::None);
    f.mmio_write(entry + 8, 4, u64::from(data));
    f.mmio_write(entry + 12, 4, u64::from(masked));
}

#[test]
fn msix_interrupts() {
    let mut f = running();
    f.config_write(CAP_MSIX + 2, 2, u32::from(MSIX_CONTROL_ENABLE));
    assert!(f.msix_enabled());
    // Vector assignment: beyond the table reads back NO_VECTOR.
    write(&mut f, common::QUEUE_SELECT, 2, 0);
    write(&mut f, common::QUEUE_MSIX_VECTOR, 2, 3);
    assert_eq!(read(&mut f, common::QUEUE_MSIX_VECTOR, 2), u64::from(NO_VECTOR));
    assert_eq!(f.signal_queue(0), None, "NO_VECTOR: no interrupt");
    write(&mut f, common::QUEUE_MSIX_VECTOR, 2, 1);
    assert_eq!(f.queue_msix_vector(0), Some(1));
    write(&mut f, common::CONFIG_MSIX_VECTOR, 2, 0);
    assert_eq!(f.config_msix_vector(), 0);

    program_vector(&mut f, 1, 0xFEE0_0000, 0x41, false);
    program_vector(&mut f, 0, 0xFEE0_1000, 0x42, false);
    assert_eq!(f.mmio_read(MSIX_TABLE_OFFSET + 16, 4), 0xFEE0_0000);
    assert_eq!(f.mmio_read(MSIX_TABLE_OFFSET + 24, 8), 0x41);
    let message = MsiMessage {
        address: 0xFEE0_0000,
        data: 0x41,
    };
    assert_eq!(f.signal_queue(0), Some(Interrupt::Msi(message)));
    assert!(!f.intx_level(), "no INTx with MSI-X");
    assert_eq!(
        f.set_needs_reset(),
        Some(Interrupt::Msi(MsiMessage {
            address: 0xFEE0_1000,
            data: 0x42
        }))
    );
    assert_ne!(read(&mut f, common::DEVICE_STATUS, 1) as u8 & DEVICE_NEEDS_RESET, 0);
    assert_eq!(f.set_needs_reset(), None, "once");

    // Masked entry: pending, then released on unmask.
    f.mmio_write(MSIX_TABLE_OFFSET + 16 + 12, 4, 1);
    assert_eq!(f.signal_queue(0), None);
    assert_eq!(f.mmio_read(MSIX_PBA_OFFSET, 8), 0b10);
    assert_eq!(f.next_released_interrupt(), None, "still masked");
    assert_eq!(
        f.mmio_write(MSIX_TABLE_OFFSET + 16 + 12, 4, 0),
        Effect::InterruptsReleased
    );
    assert_eq!(f.next_released_interrupt(), Some(message));
    assert_eq!(f.next_released_interrupt(), None);
    assert_eq!(f.mmio_read(MSIX_PBA_OFFSET, 8), 0);

    // Function mask: same through the capability.
    f.config_write(CAP_MSIX + 3, 1, 0xC0);
    assert_eq!(f.signal_queue(0), None);
    assert_eq!(f.config_write(CAP_MSIX + 3, 1, 0x80), Effect::InterruptsReleased);
    assert_eq!(f.next_released_interrupt(), Some(message));
    // Writes to the PBA and odd-sized table writes do nothing.
    f.mmio_write(MSIX_PBA_OFFSET, 8, u64::MAX);
    assert_eq!(f.mmio_read(MSIX_PBA_OFFSET, 8), 0);
    f.mmio_write(MSIX_TABLE_OFFSET + 16 + 8, 2, 0x99);
    f.mmio_write(MSIX_TABLE_OFFSET + 16 + 4, 8, 0x99);
    assert_eq!(f.mmio_read(MSIX_TABLE_OFFSET + 16 + 8, 4), 0x41);
    // Entries start masked.
    assert_eq!(f.mmio_read(MSIX_TABLE_OFFSET + 32 + 12, 4), 1);
}

#[test]
fn config_generation_and_device_config() {
    let mut f = running();
    assert_eq!(f.mmio_read(DEVICE_CFG_OFFSET, 4), 0x04030201);
    assert_eq!(f.mmio_read(DEVICE_CFG_OFFSET + 58, 4), 0x3C3B, "past the end reads 0");
    assert_eq!(f.mmio_read(DEVICE_CFG_OFFSET + 60, 4), 0);
    let generation = read(&mut f, common::CONFIG_GENERATION, 1);
    assert_eq!(f.set_device_config(&device_config()), None, "unchanged: nothing");
    let mut changed = device_config();
    changed[0] = 0xAA;
    assert_eq!(f.set_device_config(&changed), Some(Interrupt::Intx));
    // The driver's loop: generation, fields, generation again.
    let before = read(&mut f, common::CONFIG_GENERATION, 1);
    assert_eq!(before, generation, "bumped when the driver reads the change");
    assert_eq!(f.mmio_read(DEVICE_CFG_OFFSET, 1), 0xAA);
    let after = read(&mut f, common::CONFIG_GENERATION, 1);
    assert_ne!(after, before, "the driver must retry");
    f.mmio_read(DEVICE_CFG_OFFSET, 1);
    assert_eq!(read(&mut f, common::CONFIG_GENERATION, 1), after, "stable now");

    // Driver writes are reported, not applied.
    assert_eq!(
        f.mmio_write(DEVICE_CFG_OFFSET + 32, 1, 1),
        Effect::DeviceConfigWrite {
            offset: 32,
            size: 1,
            value: 1
        }
    );
    assert_eq!(f.device_config()[32], 33);
}

#[test]
fn pci_cfg_window() {
    let mut f = running();
    let cap = CAP_PCI_CFG;
    // Read num_queues through the window.
    f.config_write(cap + 4, 1, u32::from(MMIO_BAR));
    f.config_write(cap + 8, 4, common::NUM_QUEUES as u32);
    f.config_write(cap + 12, 4, 2);
    assert_eq!(f.config_read(cap + 16, 4) & 0xFFFF, 2);
    // Notify queue 1 through BAR2.
    f.config_write(cap + 4, 1, u32::from(NOTIFY_BAR));
    f.config_write(cap + 8, 4, 0);
    assert_eq!(f.config_write(cap + 16, 2, 1), Effect::QueueNotify(1));
    // Write the status through the window (a reset).
    f.config_write(cap + 4, 1, u32::from(MMIO_BAR));
    f.config_write(cap + 8, 4, common::DEVICE_STATUS as u32);
    f.config_write(cap + 12, 4, 1);
    assert_eq!(f.config_write(cap + 16, 1, 0), Effect::Reset);
    // A bad length does nothing.
    f.complete_reset();
    f.config_write(cap + 12, 4, 3);
    assert_eq!(f.config_write(cap + 16, 4, 0), Effect::None);
    assert_eq!(f.config_read(cap + 16, 4), 0);
    // Other BARs read 0.
    f.config_write(cap + 4, 1, 5);
    f.config_write(cap + 12, 4, 4);
    assert_eq!(f.config_read(cap + 16, 4), 0);
}

#[test]
fn odd_accesses_are_harmless() {
    let mut f = running();
    for size in [0, 3, 5, 16] {
        assert_eq!(f.mmio_read(0, size), 0);
        assert_eq!(f.mmio_write(common::DEVICE_STATUS, size, 0), Effect::None);
        assert_eq!(f.config_read(0x40, size), 0);
        assert_eq!(f.config_write(0x40, size, 0), Effect::None);
    }
    for offset in [0x38, 0x1001, 0x2FFF, 0x3FFF, 0x4000, u64::MAX] {
        assert_eq!(f.mmio_read(offset, 8), 0);
        assert_eq!(f.mmio_write(offset, 8, u64::MAX), Effect::None);
    }
    assert_eq!(f.config_write(u16::MAX, 4, u32::MAX), Effect::None);
    assert_ne!(f.status() & DRIVER_OK, 0);
}

//! The guest's side of an assigned function's level-triggered INTx
//! (`assigned_intx`): the line, Interrupt Status, Interrupt Disable, and
//! when Keel unmasks the host input again.

use keel_devices::passthrough::PassthroughFunction;
use keel_devices::pci_config::{Bar, BarKind, PciIdentity};
use keel_devices::pci_host::PciAddress;

use super::tests::{platform, FakeHost, IOREGSEL, IOWIN};
use super::{VirtualPlatform, LOCAL_APIC_BASE};

const VECTOR: u8 = 0x51;
const EOI: u64 = LOCAL_APIC_BASE + 0xb0;
const STATUS_INTERRUPT: u32 = 1 << 3;
const COMMAND_MEMORY: u32 = 1 << 1;
const COMMAND_INTX_DISABLE: u32 = 1 << 10;

/// An Intel function of class `class_code` with one memory BAR of
/// `bar_bytes` at 0xe000_0000 and INTA, as Keel shows it assigned.
pub(super) fn memory_function(device_id: u16, class_code: u32, bar_bytes: u64) -> PassthroughFunction {
    let identity = PciIdentity::new(0x8086, device_id, class_code, 1);
    let bar = Bar {
        kind: BarKind::Memory32 { prefetchable: false },
        size: bar_bytes,
        address: 0xe000_0000,
    };
    PassthroughFunction::new(identity, &[(0, bar)], 1, 0).unwrap()
}

/// An e1000-like function (one 128 KiB memory BAR, INTA) assigned and
/// forwarded; the guest's I/O APIC pin for its GSI programmed as Linux
/// does from `_PRT` (level, active low) with `trigger` bits.
fn assigned(level: bool) -> (VirtualPlatform<FakeHost>, PciAddress, u32) {
    let (mut platform, _host) = platform();
    let function = memory_function(0x100e, 0x020000, 128 << 10);
    let address = platform.attach_passthrough(function).unwrap();
    let gsi = platform.forward_passthrough_intx(address).unwrap();
    platform.mmio_write(LOCAL_APIC_BASE + 0xf0, 4, 0x1ff);
    let trigger = if level { 0xa000 } else { 0x2000 };
    platform.mmio_write(IOREGSEL, 4, u64::from(0x10 + 2 * gsi));
    platform.mmio_write(IOWIN, 4, trigger | u64::from(VECTOR));
    platform.mmio_write(IOREGSEL, 4, u64::from(0x11 + 2 * gsi));
    platform.mmio_write(IOWIN, 4, 0);
    (platform, address, gsi)
}

fn config_address(address: PciAddress, register: u32) -> u64 {
    u64::from(0x8000_0000 | u32::from(address.device()) << 11 | register)
}

fn status(platform: &mut VirtualPlatform<FakeHost>, address: PciAddress) -> u32 {
    platform.port_write(0xcf8, 4, config_address(address, 4));
    platform.port_read(0xcfc, 4) as u32 >> 16
}

fn write_command(platform: &mut VirtualPlatform<FakeHost>, address: PciAddress, command: u32) {
    platform.port_write(0xcf8, 4, config_address(address, 4));
    platform.port_write(0xcfc, 2, u64::from(command));
}

/// The guest takes the pending interrupt and acknowledges it.
fn take_and_acknowledge(platform: &mut VirtualPlatform<FakeHost>) {
    assert_eq!(platform.pending_interrupt(), Some(VECTOR));
    platform.start_delivery(VECTOR);
    platform.mmio_write(EOI, 4, 0);
}

#[test]
fn a_fired_input_raises_the_line_until_the_guest_acknowledges_it_then_is_resampled() {
    let (mut platform, address, gsi) = assigned(true);
    assert_eq!(gsi, super::PCI_ROOT.intx_gsi(address.device(), 1).unwrap());
    assert_eq!(status(&mut platform, address) & STATUS_INTERRUPT, 0);
    platform.passthrough_intx_fired(address);
    assert_ne!(
        status(&mut platform, address) & STATUS_INTERRUPT,
        0,
        "Interrupt Status shows it"
    );
    assert!(!platform.has_intx_resamples());
    take_and_acknowledge(&mut platform);
    assert_eq!(platform.take_intx_resamples(), [address], "the EOI resamples");
    assert_eq!(
        platform.pending_interrupt(),
        None,
        "the line is low: no second delivery"
    );
    assert_eq!(status(&mut platform, address) & STATUS_INTERRUPT, 0);
    // The device still asserts: the unmasked input fires again.
    platform.passthrough_intx_fired(address);
    take_and_acknowledge(&mut platform);
    assert_eq!(platform.take_intx_resamples(), [address]);
    assert!(platform.take_intx_resamples().is_empty(), "once per acknowledgement");
}

#[test]
fn interrupt_disable_holds_the_line_low_and_clearing_it_resamples_instead_of_replaying() {
    let (mut platform, address, _gsi) = assigned(true);
    write_command(&mut platform, address, COMMAND_MEMORY | COMMAND_INTX_DISABLE);
    platform.passthrough_intx_fired(address);
    assert_eq!(
        platform.pending_interrupt(),
        None,
        "disabled: the guest's line stays low"
    );
    assert_ne!(
        status(&mut platform, address) & STATUS_INTERRUPT,
        0,
        "but Interrupt Status is set"
    );
    assert!(!platform.has_intx_resamples(), "the host input stays masked");
    write_command(&mut platform, address, COMMAND_MEMORY);
    assert_eq!(platform.take_intx_resamples(), [address], "re-enabling resamples");
    assert_eq!(platform.pending_interrupt(), None, "no stale interrupt is replayed");
    assert_eq!(status(&mut platform, address) & STATUS_INTERRUPT, 0);
}

#[test]
fn a_uio_style_handler_masks_in_its_handler_and_unmasks_later() {
    // uio_pci_generic: the handler sees Interrupt Status, sets Interrupt
    // Disable, returns; the EOI follows; user space clears the cause and
    // then Interrupt Disable.
    let (mut platform, address, _gsi) = assigned(true);
    write_command(&mut platform, address, COMMAND_MEMORY);
    assert!(platform.take_intx_resamples().is_empty());
    platform.passthrough_intx_fired(address);
    assert_eq!(platform.pending_interrupt(), Some(VECTOR));
    platform.start_delivery(VECTOR);
    assert_ne!(status(&mut platform, address) & STATUS_INTERRUPT, 0);
    write_command(&mut platform, address, COMMAND_MEMORY | COMMAND_INTX_DISABLE);
    platform.mmio_write(EOI, 4, 0);
    assert!(!platform.has_intx_resamples(), "still disabled: the input stays masked");
    assert_eq!(platform.pending_interrupt(), None);
    write_command(&mut platform, address, COMMAND_MEMORY);
    assert_eq!(platform.take_intx_resamples(), [address]);
    assert_eq!(platform.pending_interrupt(), None);
}

#[test]
fn an_edge_programmed_pin_is_still_resampled_at_its_vectors_eoi() {
    let (mut platform, address, _gsi) = assigned(false);
    platform.passthrough_intx_fired(address);
    take_and_acknowledge(&mut platform);
    assert_eq!(platform.take_intx_resamples(), [address]);
}

#[test]
fn another_vectors_eoi_does_not_resample_and_unknown_functions_are_ignored() {
    let (mut platform, address, _gsi) = assigned(true);
    platform.passthrough_intx_fired(address);
    // A timer interrupt on another vector comes and goes.
    platform.mmio_write(LOCAL_APIC_BASE + 0x320, 4, 0x30);
    platform.mmio_write(EOI, 4, 0);
    assert!(!platform.has_intx_resamples());
    let elsewhere = PciAddress::new(0, 9, 0).unwrap();
    platform.passthrough_intx_fired(elsewhere);
    assert!(platform.forward_passthrough_intx(elsewhere).is_err());
    take_and_acknowledge(&mut platform);
    assert_eq!(platform.take_intx_resamples(), [address]);
}

#[test]
fn a_pulse_on_a_shared_line_leaves_it_up_while_an_assigned_function_asserts_it() {
    let (mut platform, address, gsi) = assigned(true);
    let program = |platform: &mut VirtualPlatform<FakeHost>, masked: bool| {
        platform.mmio_write(IOREGSEL, 4, u64::from(0x10 + 2 * gsi));
        platform.mmio_write(IOWIN, 4, 0xa000 | u64::from(masked) << 16 | u64::from(VECTOR));
    };
    program(&mut platform, true);
    platform.passthrough_intx_fired(address);
    // Another source's edge on the same GSI (a legacy IDE IRQ's pulse).
    platform.pulse_irq(gsi);
    assert_eq!(platform.pending_interrupt(), None, "the pin is masked");
    program(&mut platform, false);
    assert_eq!(
        platform.pending_interrupt(),
        Some(VECTOR),
        "the line is still up: the function still asserts it"
    );
}

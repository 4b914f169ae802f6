//! The guest's side of an assigned function's MSI (`assigned_msi`): the
//! capability Linux programs, what the hypervisor is told, and what reaches
//! the guest's local APIC when the host vector fires.

use keel_devices::passthrough::{PassthroughFunction, PassthroughWrite};
use keel_devices::passthrough_msi::{MsiError, MSI_CONTROL_64BIT, MSI_CONTROL_PER_VECTOR_MASKING};
use keel_devices::pci_config::PciIdentity;
use keel_devices::pci_host::PciAddress;

use super::tests::{platform, FakeHost};
use super::tests_intx::memory_function;
use super::{VirtualPlatform, LOCAL_APIC_BASE};

const VECTOR: u8 = 0x41;
const EOI: u64 = LOCAL_APIC_BASE + 0xb0;
/// The emulated capability and its registers (64-bit, per-vector masking).
const MSI: u32 = 0x50;
const MSI_CONTROL: u32 = MSI + 2;
const MSI_ADDRESS: u32 = MSI + 4;
const MSI_ADDRESS_HIGH: u32 = MSI + 8;
const MSI_DATA: u32 = MSI + 0xc;
const MSI_MASK: u32 = MSI + 0x10;
const MSI_PENDING: u32 = MSI + 0x14;
const CONTROL_ENABLE: u32 = 1;
/// Data bits 10:8, delivery mode.
const NMI: u32 = 0b100 << 8;
const INIT: u32 = 0b101 << 8;
const EXTINT: u32 = 0b111 << 8;

/// An NVMe-like function (one 16 KiB memory BAR, INTA) whose host has MSI
/// with 64-bit addresses, per-vector masking and 32 vectors, assigned; the
/// guest's local APIC software-enabled.
fn assigned() -> (VirtualPlatform<FakeHost>, PciAddress) {
    let (mut platform, _host) = platform();
    let function = memory_function(0x0953, 0x010802, 16 << 10)
        .with_msi(MSI_CONTROL_64BIT | MSI_CONTROL_PER_VECTOR_MASKING | 5 << 1);
    let address = platform.attach_passthrough(function).unwrap();
    platform.mmio_write(LOCAL_APIC_BASE + 0xf0, 4, 0x1ff);
    (platform, address)
}

fn config_address(address: PciAddress, register: u32) -> u64 {
    u64::from(0x8000_0000 | u32::from(address.device()) << 11 | register & !3)
}

pub(super) fn config_read(
    platform: &mut VirtualPlatform<FakeHost>,
    address: PciAddress,
    register: u32,
    size: u8,
) -> u32 {
    platform.port_write(0xcf8, 4, config_address(address, register));
    platform.port_read(0xcfc + (register & 3) as u16, size) as u32
}

pub(super) fn config_write(
    platform: &mut VirtualPlatform<FakeHost>,
    address: PciAddress,
    register: u32,
    size: u8,
    value: u32,
) {
    platform.port_write(0xcf8, 4, config_address(address, register));
    platform.port_write(0xcfc + (register & 3) as u16, size, u64::from(value));
}

/// What Linux's `msi_capability_init` and `__pci_write_msi_msg` do for one
/// vector: find the capability, disable, mask, write the message
/// (`0xfee00000 | dest << 12`, data = vector), enable, and unmask when the
/// IRQ starts.
fn program_like_linux(platform: &mut VirtualPlatform<FakeHost>, address: PciAddress, destination: u32, data: u32) {
    assert_eq!(config_read(platform, address, 0x34, 1), MSI);
    assert_eq!(config_read(platform, address, MSI, 1), 0x05);
    let control = config_read(platform, address, MSI_CONTROL, 2);
    assert_eq!(control & 0b1110, 0, "one vector offered");
    config_write(platform, address, MSI_CONTROL, 2, control & !CONTROL_ENABLE);
    config_write(platform, address, MSI_MASK, 4, 1);
    config_write(platform, address, MSI_ADDRESS, 4, 0xfee0_0000 | destination << 12);
    config_write(platform, address, MSI_ADDRESS_HIGH, 4, 0);
    config_write(platform, address, MSI_DATA, 2, data);
    config_write(platform, address, MSI_CONTROL, 2, control | CONTROL_ENABLE);
    config_write(platform, address, MSI_MASK, 4, 0);
}

/// The guest takes the pending interrupt and acknowledges it.
fn take_and_acknowledge(platform: &mut VirtualPlatform<FakeHost>) {
    assert_eq!(platform.pending_interrupt(), Some(VECTOR));
    platform.start_delivery(VECTOR);
    platform.mmio_write(EOI, 4, 0);
}

#[test]
fn a_linux_programmed_msi_reaches_the_guests_vector_on_every_fire() {
    let (mut platform, address) = assigned();
    program_like_linux(&mut platform, address, 0, u32::from(VECTOR));
    assert_eq!(platform.pending_interrupt(), None, "nothing before the device fires");
    platform.passthrough_msi_fired(address);
    take_and_acknowledge(&mut platform);
    assert_eq!(platform.pending_interrupt(), None, "one fire, one interrupt");
    // Edge-triggered: the next one needs no resample.
    platform.passthrough_msi_fired(address);
    take_and_acknowledge(&mut platform);
    assert!(!platform.has_intx_resamples());
    assert_eq!(platform.passthrough_msi_refused(), 0);
}

#[test]
fn the_msi_change_is_reported_once_with_enable_address_and_data() {
    let (mut platform, address) = assigned();
    assert!(!platform.has_passthrough_msi_changes());
    program_like_linux(&mut platform, address, 3, u32::from(VECTOR));
    assert!(platform.has_passthrough_msi_changes());
    let changes = platform.take_passthrough_msi_changes();
    assert_eq!(changes.len(), 1, "the latest state, once: {changes:?}");
    let (at, state) = changes[0];
    assert_eq!(at, address);
    assert!(state.enabled);
    assert_eq!((state.address, state.data, state.vectors), (0xfee0_3000, 0x41, 1));
    assert!(platform.take_passthrough_msi_changes().is_empty());
    assert!(!platform.has_passthrough_msi_changes());
    assert_eq!(platform.passthrough_msi_state(address), Some(state));
    // Masking and unmasking is the platform's business alone.
    config_write(&mut platform, address, MSI_MASK, 4, 1);
    config_write(&mut platform, address, MSI_MASK, 4, 0);
    assert!(!platform.has_passthrough_msi_changes());
    // Disabling is reported.
    config_write(&mut platform, address, MSI_CONTROL, 2, 0);
    let changes = platform.take_passthrough_msi_changes();
    assert_eq!(
        changes.iter().map(|(_, state)| state.enabled).collect::<Vec<_>>(),
        [false]
    );
    // None of it is a write for the real device.
    let writes = platform.take_passthrough_writes();
    assert!(
        !writes
            .iter()
            .any(|(_, write)| matches!(write, PassthroughWrite::Register { .. })),
        "{writes:?}"
    );
}

#[test]
fn a_masked_vector_waits_for_the_guests_unmask() {
    let (mut platform, address) = assigned();
    program_like_linux(&mut platform, address, 0, u32::from(VECTOR));
    config_write(&mut platform, address, MSI_MASK, 4, 1);
    platform.passthrough_msi_fired(address);
    assert_eq!(platform.pending_interrupt(), None, "masked");
    assert_eq!(config_read(&mut platform, address, MSI_PENDING, 4), 1, "pending");
    config_write(&mut platform, address, MSI_MASK, 4, 0);
    assert_eq!(platform.pending_interrupt(), Some(VECTOR), "released by the unmask");
    assert_eq!(config_read(&mut platform, address, MSI_PENDING, 4), 0);
    take_and_acknowledge(&mut platform);
    config_write(&mut platform, address, MSI_MASK, 4, 0);
    assert_eq!(platform.pending_interrupt(), None, "released once");
}

#[test]
fn a_disabled_msi_drops_what_fires() {
    let (mut platform, address) = assigned();
    platform.passthrough_msi_fired(address);
    assert_eq!(platform.pending_interrupt(), None, "never enabled");
    program_like_linux(&mut platform, address, 0, u32::from(VECTOR));
    config_write(&mut platform, address, MSI_CONTROL, 2, 0);
    platform.passthrough_msi_fired(address);
    assert_eq!(platform.pending_interrupt(), None);
    assert_eq!(config_read(&mut platform, address, MSI_PENDING, 4), 0, "not pending");
    let control = config_read(&mut platform, address, MSI_CONTROL, 2);
    config_write(&mut platform, address, MSI_CONTROL, 2, control | CONTROL_ENABLE);
    assert_eq!(platform.pending_interrupt(), None, "nothing stale on re-enabling");
    assert_eq!(platform.passthrough_msi_refused(), 0);
}

#[test]
fn a_guest_message_that_is_not_a_fixed_interrupt_is_never_delivered() {
    let (mut platform, address) = assigned();
    let mut refused = 0;
    for data in [NMI | 0x41, INIT, EXTINT | 0x41, 0x0f] {
        program_like_linux(&mut platform, address, 0, data);
        platform.passthrough_msi_fired(address);
        refused += 1;
        assert_eq!(platform.pending_interrupt(), None, "data {data:#x}");
        assert_eq!(platform.passthrough_msi_refused(), refused);
    }
    assert_eq!(
        platform.take_passthrough_msi_refusal(),
        Some((address, MsiError::Vector(0x0f)))
    );
    assert_eq!(platform.take_passthrough_msi_refusal(), None, "reported once");
    // Outside the interrupt window: an ordinary write, refused too.
    config_write(&mut platform, address, MSI_ADDRESS, 4, 0x1000);
    config_write(&mut platform, address, MSI_DATA, 2, u32::from(VECTOR));
    platform.passthrough_msi_fired(address);
    assert_eq!(platform.pending_interrupt(), None);
    assert_eq!(
        platform.take_passthrough_msi_refusal(),
        Some((address, MsiError::NotAnInterrupt(0x1000)))
    );
    // Pending while masked, then reprogrammed to NMI and unmasked: the
    // release is checked too.
    program_like_linux(&mut platform, address, 0, u32::from(VECTOR));
    config_write(&mut platform, address, MSI_MASK, 4, 1);
    platform.passthrough_msi_fired(address);
    config_write(&mut platform, address, MSI_DATA, 2, NMI | u32::from(VECTOR));
    config_write(&mut platform, address, MSI_MASK, 4, 0);
    assert_eq!(platform.pending_interrupt(), None);
    assert_eq!(
        platform.take_passthrough_msi_refusal(),
        Some((address, MsiError::DeliveryMode(0b100)))
    );
}

#[test]
fn functions_without_msi_and_unknown_addresses_are_ignored() {
    let (mut platform, _host) = platform();
    let identity = PciIdentity::new(0x8086, 0x100e, 0x020000, 3);
    let function = PassthroughFunction::new(identity, &[], 1, 0).unwrap();
    let address = platform.attach_passthrough(function).unwrap();
    platform.mmio_write(LOCAL_APIC_BASE + 0xf0, 4, 0x1ff);
    assert_eq!(
        config_read(&mut platform, address, 6, 2) & 0x10,
        0,
        "no capability list"
    );
    config_write(&mut platform, address, MSI_ADDRESS, 4, 0xfee0_0000);
    assert!(!platform.has_passthrough_msi_changes());
    assert_eq!(platform.passthrough_msi_state(address), None);
    platform.passthrough_msi_fired(address);
    platform.passthrough_msi_fired(PciAddress::new(0, 9, 0).unwrap());
    assert_eq!(platform.pending_interrupt(), None);
    assert_eq!(platform.passthrough_msi_refused(), 0);
}

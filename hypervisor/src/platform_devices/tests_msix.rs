//! The guest's side of an assigned function's MSI-X (`assigned_msix`): the
//! trapped table pages, what reaches the real device and what does not,
//! what the hypervisor is told, and what reaches the guest's local APIC
//! when an entry's host vector fires.

use keel_devices::passthrough_msi::{HostCapabilities, HostMsix, MsiError};
use keel_devices::pci_host::PciAddress;

use super::tests::{platform, FakeHost};
use super::tests_intx::memory_function;
use super::tests_msi::{config_read, config_write};
use super::{MsixRequest, VirtualPlatform, LOCAL_APIC_BASE};

/// Where the host's firmware put BAR 0 (16 KiB): the guest sees it there.
const BAR: u64 = 0xe000_0000;
const TABLE: u64 = BAR + 0x2000;
const PBA: u64 = BAR + 0x3000;
const MSIX: u32 = 0x70;
const MSIX_CONTROL: u32 = MSIX + 2;
const ENABLE: u32 = 1 << 15;
const FUNCTION_MASK: u32 = 1 << 14;
const EOI: u64 = LOCAL_APIC_BASE + 0xb0;

/// An NVMe-like function (BAR 0, 16 KiB) whose host has MSI-X with 16
/// entries, the table at BAR 0 + 0x2000 and the PBA at + 0x3000, assigned;
/// the guest's local APIC software-enabled and memory decoding on.
fn assigned() -> (VirtualPlatform<FakeHost>, FakeHost, PciAddress) {
    let (mut platform, host) = platform();
    let host_capabilities = HostCapabilities {
        msi_control: None,
        msix: Some(HostMsix {
            control: 15,
            table: 0x2000,
            pba: 0x3000,
        }),
    };
    let mut function = memory_function(0x0010, 0x010802, 16 << 10);
    function
        .set_interrupt_capabilities(host_capabilities)
        .expect("a valid MSI-X capability");
    let address = platform.attach_passthrough(function).unwrap();
    platform.mmio_write(LOCAL_APIC_BASE + 0xf0, 4, 0x1ff);
    config_write(&mut platform, address, 4, 2, 0x0006);
    (platform, host, address)
}

/// What Linux's `msix_capability_init` does for `entries`: MSI-X enabled
/// with the Function Mask set, every entry masked, each message written
/// (`0xfee00000`, data = vector), the Function Mask cleared, then each
/// entry unmasked as its IRQ starts.
fn program_like_linux(platform: &mut VirtualPlatform<FakeHost>, address: PciAddress, entries: &[(u64, u8)]) {
    assert_eq!(
        config_read(platform, address, 0x34, 1),
        MSIX,
        "MSI-X first: no host MSI"
    );
    assert_eq!(config_read(platform, address, MSIX, 1), 0x11);
    assert_eq!(
        config_read(platform, address, MSIX + 4, 4),
        0x2000,
        "table: BAR 0 + 0x2000"
    );
    let control = config_read(platform, address, MSIX_CONTROL, 2);
    config_write(platform, address, MSIX_CONTROL, 2, control | ENABLE | FUNCTION_MASK);
    for entry in 0..16 {
        platform.mmio_write(TABLE + 16 * entry + 12, 4, 1);
    }
    for &(entry, vector) in entries {
        platform.mmio_write(TABLE + 16 * entry, 4, 0xfee0_0000);
        platform.mmio_write(TABLE + 16 * entry + 4, 4, 0);
        platform.mmio_write(TABLE + 16 * entry + 8, 4, u64::from(vector));
    }
    config_write(platform, address, MSIX_CONTROL, 2, control | ENABLE);
    for &(entry, _) in entries {
        platform.mmio_write(TABLE + 16 * entry + 12, 4, 0);
    }
}

fn take_and_acknowledge(platform: &mut VirtualPlatform<FakeHost>, vector: u8) {
    assert_eq!(platform.pending_interrupt(), Some(vector));
    platform.start_delivery(vector);
    platform.mmio_write(EOI, 4, 0);
}

#[test]
fn only_the_table_and_pba_pages_are_trapped_where_the_bar_decodes() {
    let (mut platform, _host, address) = assigned();
    assert!(!platform.is_mmio(BAR), "mapped: the guest reaches the device directly");
    assert!(!platform.is_mmio(BAR + 0x1ffc));
    assert!(platform.is_mmio(TABLE));
    assert!(platform.is_mmio(PBA + 0xff8));
    assert!(!platform.is_mmio(BAR + 0x4000), "past the BAR");
    // Decoding off: nothing is trapped (or mapped).
    config_write(&mut platform, address, 4, 2, 0x0000);
    assert!(!platform.is_mmio(TABLE));
    // Moved: the trap follows the guest's BAR.
    config_write(&mut platform, address, 0x10, 4, 0xd000_0000);
    config_write(&mut platform, address, 4, 2, 0x0002);
    assert!(!platform.is_mmio(TABLE));
    assert!(platform.is_mmio(0xd000_2000));
    let moves = platform.take_passthrough_bar_moves();
    let (_, last) = moves.last().expect("moved");
    assert_eq!(last.pieces.iter().collect::<Vec<_>>(), [(0, 0x2000)]);
}

#[test]
fn the_table_stays_in_the_model_and_the_rest_of_its_page_reaches_the_device() {
    let (mut platform, host, address) = assigned();
    program_like_linux(&mut platform, address, &[(0, 0x41), (3, 0x44)]);
    assert!(host.device.borrow().is_empty(), "no table write reached the device");
    assert_eq!(platform.mmio_read(TABLE + 3 * 16 + 8, 4), 0x44);
    assert_eq!(platform.mmio_read(TABLE + 16 + 12, 4), 1, "entry 1 masked");
    assert_eq!(
        platform.take_passthrough_msix_changes(),
        [address],
        "once, however many writes"
    );
    assert!(platform.take_passthrough_msix_changes().is_empty());
    assert_eq!(
        platform.passthrough_msix_request(address),
        Some(MsixRequest {
            enabled: true,
            unmasked: vec![0, 3]
        })
    );
    // Past the table (16 entries end at + 0x100) but in its page, and
    // after the PBA: the device's registers, at the host's address.
    assert_eq!(platform.mmio_read(TABLE + 0x100, 4), 0x5a5a_5a5a);
    platform.mmio_write(PBA + 0x10, 4, 7);
    assert_eq!(
        *host.device.borrow(),
        [(TABLE + 0x100, 4, None), (PBA + 0x10, 4, Some(7))]
    );
    // The PBA itself is read-only and emulated.
    platform.mmio_write(PBA, 8, u64::MAX);
    assert_eq!(platform.mmio_read(PBA, 8), 0);
    assert_eq!(host.device.borrow().len(), 2);
    // Moved, the device's bytes are still reached at the host's address.
    config_write(&mut platform, address, 4, 2, 0x0000);
    config_write(&mut platform, address, 0x10, 4, 0xd000_0000);
    config_write(&mut platform, address, 4, 2, 0x0002);
    platform.mmio_read(0xd000_2100, 4);
    assert_eq!(host.device.borrow().last(), Some(&(TABLE + 0x100, 4, None)));
    assert_eq!(platform.mmio_read(0xd000_2000 + 8, 4), 0x41, "and the table with it");
}

#[test]
fn entries_fire_pend_while_masked_and_are_released_on_unmask() {
    let (mut platform, _host, address) = assigned();
    program_like_linux(&mut platform, address, &[(0, 0x41), (3, 0x44)]);
    platform.passthrough_msix_fired(address, 3);
    take_and_acknowledge(&mut platform, 0x44);
    platform.passthrough_msix_fired(address, 0);
    take_and_acknowledge(&mut platform, 0x41);
    // The guest masks entry 3 (free_irq): it pends, shows in the PBA.
    platform.mmio_write(TABLE + 3 * 16 + 12, 4, 1);
    platform.passthrough_msix_fired(address, 3);
    assert_eq!(platform.pending_interrupt(), None);
    assert_eq!(platform.mmio_read(PBA, 8), 1 << 3);
    platform.mmio_write(TABLE + 3 * 16 + 12, 4, 0);
    take_and_acknowledge(&mut platform, 0x44);
    assert_eq!(platform.mmio_read(PBA, 8), 0);
    // The Function Mask holds everything back; clearing it releases.
    let control = config_read(&mut platform, address, MSIX_CONTROL, 2);
    config_write(&mut platform, address, MSIX_CONTROL, 2, control | FUNCTION_MASK);
    platform.passthrough_msix_fired(address, 0);
    assert_eq!(platform.pending_interrupt(), None);
    config_write(&mut platform, address, MSIX_CONTROL, 2, control & !FUNCTION_MASK);
    take_and_acknowledge(&mut platform, 0x41);
    // Entries that do not exist, and unknown functions, do nothing.
    platform.passthrough_msix_fired(address, 16);
    platform.passthrough_msix_fired(PciAddress::new(0, 9, 0).unwrap(), 0);
    assert_eq!(platform.pending_interrupt(), None);
}

#[test]
fn a_message_the_guest_may_not_send_is_dropped_and_counted() {
    let (mut platform, _host, address) = assigned();
    program_like_linux(&mut platform, address, &[(0, 0x41)]);
    platform.mmio_write(TABLE + 8, 4, 0x0400 | 0x41); // NMI delivery
    platform.passthrough_msix_fired(address, 0);
    assert_eq!(platform.pending_interrupt(), None);
    assert_eq!(platform.passthrough_msi_refused(), 1);
    assert!(matches!(
        platform.take_passthrough_msi_refusal(),
        Some((refused, MsiError::DeliveryMode(_))) if refused == address
    ));
}

#[test]
fn hostile_accesses_to_the_trapped_pages_never_reach_the_table() {
    let (mut platform, host, address) = assigned();
    // Every size at every offset of the table: the model takes it or drops
    // it; the device sees nothing.
    for offset in 0..0x100u64 {
        for size in [1u8, 2, 4, 8] {
            platform.mmio_write(TABLE + offset, size, u64::MAX);
            let _ = platform.mmio_read(TABLE + offset, size);
        }
    }
    assert!(host.device.borrow().is_empty());
    let _ = platform.take_passthrough_msix_changes();
    let request = platform.passthrough_msix_request(address).expect("MSI-X shown");
    assert!(!request.enabled);
    assert!(request.unmasked.is_empty(), "all ones sets every mask bit");
    for offset in (0..0x100u64).step_by(4) {
        platform.mmio_write(TABLE + offset, 4, 0);
    }
    let request = platform.passthrough_msix_request(address).expect("MSI-X shown");
    assert_eq!(request.unmasked.len(), 16, "zeros clear them");
    assert!(host.device.borrow().is_empty());
}

#[test]
fn keel_reaches_the_mapped_part_of_the_bar_for_the_guest() {
    let (mut platform, host, address) = assigned();
    assert_eq!(platform.assigned_bar_read(BAR + 0x10, 4), Some(0x5a5a_5a5a));
    assert!(platform.assigned_bar_write(BAR + 0x1ffc, 4, 9));
    assert_eq!(
        *host.device.borrow(),
        [(BAR + 0x10, 4, None), (BAR + 0x1ffc, 4, Some(9))]
    );
    assert_eq!(platform.assigned_bar_read(BAR + 0x3ffe, 4), None, "past the BAR's end");
    assert_eq!(platform.assigned_bar_read(BAR - 4, 4), None);
    // Moved: the guest's address, the host's register.
    config_write(&mut platform, address, 4, 2, 0x0000);
    config_write(&mut platform, address, 0x10, 4, 0xd000_0000);
    assert_eq!(platform.assigned_bar_read(0xd000_0010, 4), None, "decoding off");
    config_write(&mut platform, address, 4, 2, 0x0002);
    assert_eq!(platform.assigned_bar_read(0xd000_0010, 4), Some(0x5a5a_5a5a));
    assert_eq!(host.device.borrow().last(), Some(&(BAR + 0x10, 4, None)));
}

#[test]
fn a_bar_moved_over_the_local_apic_leaves_the_apic_emulated_and_the_table_trapped() {
    let (mut platform, host) = platform();
    // The table (256 entries: a whole page) at BAR offset 0, the PBA on
    // the next page.
    let capabilities = HostCapabilities {
        msi_control: None,
        msix: Some(HostMsix {
            control: 255,
            table: 0,
            pba: 0x1000,
        }),
    };
    let mut function = memory_function(0x0010, 0x010802, 16 << 10);
    function
        .set_interrupt_capabilities(capabilities)
        .expect("a valid MSI-X capability");
    let address = platform.attach_passthrough(function).unwrap();
    platform.mmio_write(LOCAL_APIC_BASE + 0xf0, 4, 0x1ff);
    config_write(&mut platform, address, 0x10, 4, LOCAL_APIC_BASE as u32);
    config_write(&mut platform, address, 4, 2, 0x0002);
    // The APIC's page: the APIC answers (its version register), and no
    // path reaches the real table under it.
    assert_eq!(platform.mmio_read(LOCAL_APIC_BASE + 0x30, 4) & 0xff, 0x14);
    assert_eq!(platform.assigned_bar_read(LOCAL_APIC_BASE + 0x10, 4), None);
    assert!(!platform.assigned_bar_write(LOCAL_APIC_BASE + 0x20, 4, 1));
    // The PBA's page, past the APIC's: still trapped, the model's.
    assert!(platform.is_mmio(LOCAL_APIC_BASE + 0x1000));
    assert_eq!(platform.mmio_read(LOCAL_APIC_BASE + 0x1000, 8), 0);
    assert_eq!(platform.assigned_bar_read(LOCAL_APIC_BASE + 0x1000, 4), None);
    // Past the trapped pages: the device's registers.
    assert_eq!(
        platform.assigned_bar_read(LOCAL_APIC_BASE + 0x2000, 4),
        Some(0x5a5a_5a5a)
    );
    assert_eq!(*host.device.borrow(), [(0xe000_2000, 4, None)]);
}

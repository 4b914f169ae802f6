use super::*;
use crate::ioapic::IoApic;
use crate::pci_config::{COMMAND_BUS_MASTER, COMMAND_INTX_DISABLE, STATUS_INTERRUPT};
use crate::pci_host::{PciAddress, PciHost, PCI_CONFIG_ADDRESS_PORT};
use crate::testing::RecordingPlatform;
use crate::{Device, InterruptMessage};
use keel_abi::mgmt::events;

const GSI: u32 = 17;
const REGISTERS_GPA: u64 = 0xC000_0000;
const SHARED_GPA: u64 = 0xC020_0000;
const WINDOW_GPA: u64 = 64 << 30;
const CONFIG: MgmtConfig = MgmtConfig {
    registers_gpa: REGISTERS_GPA,
    shared_gpa: SHARED_GPA,
    window_gpa: WINDOW_GPA,
    gsi: GSI,
};
/// The 32-bit and 64-bit PCI MMIO windows of Keel's DSDT.
const WINDOWS: [(u64, u64); 2] = [(0xC000_0000, 0xFEBF_FFFF), (64 << 30, (128 << 30) - 1)];
const SLOT: u8 = 1;
const ALL_EVENTS: u32 = events::CONSOLE_OUTPUT | events::DOMAIN_STATE;

fn function() -> MgmtFunction {
    MgmtFunction::new(CONFIG).unwrap()
}

fn address() -> PciAddress {
    PciAddress::new(0, SLOT, 0).unwrap()
}

/// A host bridge plus the management function at 00:01.0, as the hypervisor
/// would build it.
fn host() -> PciHost {
    let mut host = PciHost::new();
    host.add_function(address(), Box::new(function())).unwrap();
    host
}

/// Configuration mechanism #1 as Linux's `pci_conf1_read`/`write` use it.
struct Conf1<'a> {
    host: &'a mut PciHost,
    platform: &'a mut RecordingPlatform,
}

impl Conf1<'_> {
    fn select(&mut self, register: u16) {
        let address = 0x8000_0000 | u64::from(SLOT) << 11 | u64::from(register & 0xFC);
        self.host.write(0, 4, address, self.platform);
    }

    fn read(&mut self, register: u16, size: u8) -> u32 {
        self.select(register);
        self.host.read(4 + u64::from(register & 3), size, self.platform) as u32
    }

    fn write(&mut self, register: u16, size: u8, value: u32) {
        self.select(register);
        self.host
            .write(4 + u64::from(register & 3), size, u64::from(value), self.platform);
    }

    fn mgmt(&mut self) -> &mut MgmtFunction {
        self.host.function_as::<MgmtFunction>(address()).unwrap()
    }
}

/// `__pci_read_base` for the BAR at `pos`: returns (low dword, size).
fn linux_read_base(conf: &mut Conf1<'_>, pos: u16) -> (u32, u64) {
    let orig_cmd = conf.read(0x04, 2);
    conf.write(0x04, 2, orig_cmd & !0x3);
    let l = conf.read(pos, 4);
    conf.write(pos, 4, 0xFFFF_FFFF);
    let sz = conf.read(pos, 4);
    conf.write(pos, 4, l);
    let mut sz64 = u64::from(sz & !0xF);
    let mut mask64 = u64::from(!0xFu32);
    if (l >> 1) & 3 == 2 {
        let high = conf.read(pos + 4, 4);
        conf.write(pos + 4, 4, 0xFFFF_FFFF);
        let high_sz = conf.read(pos + 4, 4);
        conf.write(pos + 4, 4, high);
        sz64 |= u64::from(high_sz) << 32;
        mask64 |= u64::from(u32::MAX) << 32;
    }
    conf.write(0x04, 2, orig_cmd);
    let size = mask64 & sz64;
    (l, if size == 0 { 0 } else { size & !(size - 1) })
}

#[test]
fn linux_enumeration_finds_the_contract_and_keeps_firmware_bars() {
    let mut host = host();
    let mut platform = RecordingPlatform::default();
    let mut conf = Conf1 {
        host: &mut host,
        platform: &mut platform,
    };
    assert_eq!(conf.read(0x00, 4), 0x0001_4B45);
    assert_eq!(conf.read(0x08, 4) >> 8, 0x08_80_00);
    assert_eq!(conf.read(0x0E, 1), 0, "type 0, single function");
    assert_eq!(conf.read(0x2C, 4), 0x0001_4B45, "subsystem");
    assert_eq!(conf.read(0x3D, 1), 1, "INTA#");
    assert_eq!(conf.read(0x3C, 1), GSI, "firmware's Interrupt Line");
    assert_eq!(
        conf.read(0x04, 2),
        u32::from(COMMAND_MEMORY),
        "firmware enabled decoding"
    );
    assert_eq!(linux_read_base(&mut conf, 0x10), (0xC000_0000, REGISTER_BYTES));
    assert_eq!(linux_read_base(&mut conf, 0x14), (0, 0), "BAR 1 unimplemented");
    assert_eq!(
        linux_read_base(&mut conf, 0x18),
        (0xC020_000C, SHARED_BYTES),
        "64-bit prefetchable"
    );
    assert_eq!(conf.read(0x1C, 4), 0, "below 4 GiB");
    assert_eq!(
        linux_read_base(&mut conf, 0x20),
        (0x0C, window::BYTES),
        "64-bit prefetchable window"
    );
    assert_eq!(conf.read(0x24, 4), (WINDOW_GPA >> 32) as u32, "above 4 GiB");
    // pci_read_bases also sizes the ROM BAR: nothing there.
    conf.write(0x30, 4, 0xFFFF_F800);
    assert_eq!(conf.read(0x30, 4), 0);
    // Sizing left the layout as firmware made it.
    let layout = conf.mgmt().layout();
    assert_eq!(
        layout,
        MgmtLayout {
            registers: Some(REGISTERS_GPA),
            shared: Some(SHARED_GPA),
            window: Some(WINDOW_GPA),
        }
    );
    assert_eq!(conf.mgmt().take_layout_change(), None);
    assert!(platform.irq_lines.is_empty());
}

#[test]
fn sizing_never_exposes_the_size_mask_as_a_decoding_address() {
    let mut host = host();
    let mut platform = RecordingPlatform::default();
    let mut conf = Conf1 {
        host: &mut host,
        platform: &mut platform,
    };
    // What a hypervisor polling after every configuration write sees.
    let mut seen = Vec::new();
    let orig_cmd = conf.read(0x04, 2);
    let steps: [(u16, u32); 7] = [
        (0x04, orig_cmd & !0x3),
        (0x18, 0xFFFF_FFFF),
        (0x18, 0xC020_0000),
        (0x1C, 0xFFFF_FFFF),
        (0x1C, 0),
        (0x10, 0xFFFF_FFFF),
        (0x10, 0xC000_0000),
    ];
    for (register, value) in steps {
        let size = if register == 0x04 { 2 } else { 4 };
        conf.write(register, size, value);
        if let Some(layout) = conf.mgmt().take_layout_change() {
            seen.push(layout);
        }
    }
    conf.write(0x04, 2, orig_cmd);
    if let Some(layout) = conf.mgmt().take_layout_change() {
        seen.push(layout);
    }
    let off = MgmtLayout {
        registers: None,
        shared: None,
        window: None,
    };
    let on = MgmtLayout {
        registers: Some(REGISTERS_GPA),
        shared: Some(SHARED_GPA),
        window: Some(WINDOW_GPA),
    };
    assert_eq!(seen, vec![off, on]);
}

#[test]
fn linux_moving_a_bar_is_reported_once_decoding_is_back() {
    let mut function = function();
    let mut platform = RecordingPlatform::default();
    // pci_std_update_resource on a 64-bit BAR: decode off, low, high, decode on.
    function.config_write(0x04, 2, 0, &mut platform);
    function.config_write(0x18, 4, 0xD000_000C, &mut platform);
    function.config_write(0x1C, 4, 0, &mut platform);
    assert_eq!(
        function.take_layout_change(),
        Some(MgmtLayout {
            registers: None,
            shared: None,
            window: None,
        })
    );
    function.config_write(0x04, 2, u32::from(COMMAND_MEMORY | COMMAND_BUS_MASTER), &mut platform);
    let moved = MgmtLayout {
        registers: Some(REGISTERS_GPA),
        shared: Some(0xD000_0000),
        window: Some(WINDOW_GPA),
    };
    assert_eq!(function.take_layout_change(), Some(moved));
    assert_eq!(function.take_layout_change(), None);
    // A move with decoding left on is reported too.
    function.config_write(0x10, 4, 0xC010_0000, &mut platform);
    assert_eq!(
        function.take_layout_change(),
        Some(MgmtLayout {
            registers: Some(0xC010_0000),
            shared: Some(0xD000_0000),
            window: Some(WINDOW_GPA),
        })
    );
    // Bus master and I/O Space do not touch the memory layout.
    function.config_write(0x04, 2, u32::from(COMMAND_MEMORY), &mut platform);
    assert_eq!(function.take_layout_change(), None);
}

#[test]
fn layout_within_keeps_only_bars_inside_the_window_and_apart() {
    let windows = &WINDOWS[..1];
    let layout = |registers, shared| MgmtLayout {
        registers,
        shared,
        window: None,
    };
    let fine = layout(Some(0xC000_0000), Some(0xC020_0000));
    assert_eq!(fine.within(windows), fine);
    assert_eq!(
        layout(Some(0xBFFF_F000), Some(0xFEA0_0000)).within(windows),
        layout(None, Some(0xFEA0_0000)),
        "registers below the window; shared ends exactly at its top"
    );
    assert_eq!(
        layout(Some(0xFEBF_F000), Some(0xFEC0_0000)).within(windows),
        layout(Some(0xFEBF_F000), None),
        "shared would cover the I/O APIC"
    );
    assert_eq!(
        layout(Some(0xC010_0000), Some(0xC000_0000)).within(windows),
        layout(None, None),
        "registers inside shared memory"
    );
    assert_eq!(
        layout(Some(!0xFFF), Some(!0x1F_FFFF)).within(&[(0, u64::MAX)]),
        layout(None, None),
        "overlapping at the top of the address space, no overflow"
    );
    assert_eq!(layout(None, None).within(windows), layout(None, None));
    // The memory window fits only the 64-bit window; shared memory may
    // move there too, but not on top of the window.
    let with_window = |shared, window| MgmtLayout {
        registers: Some(REGISTERS_GPA),
        shared,
        window,
    };
    assert_eq!(
        with_window(Some(SHARED_GPA), Some(WINDOW_GPA)).within(&WINDOWS),
        with_window(Some(SHARED_GPA), Some(WINDOW_GPA))
    );
    assert_eq!(
        with_window(Some(SHARED_GPA), Some(WINDOW_GPA)).within(windows),
        with_window(Some(SHARED_GPA), None),
        "no 64-bit window"
    );
    assert_eq!(
        with_window(Some(SHARED_GPA), Some(96 << 30)).within(&WINDOWS),
        with_window(Some(SHARED_GPA), None),
        "the window would end past the 64-bit window"
    );
    assert_eq!(
        with_window(Some(WINDOW_GPA + (2 << 20)), Some(WINDOW_GPA)).within(&WINDOWS),
        with_window(None, None),
        "shared memory inside the window"
    );
}

/// Writes 1 to slot `slot`'s arm register.
fn arm(function: &mut MgmtFunction, slot: u64, platform: &mut RecordingPlatform) {
    let effect = function.register_write(notify_arm_register(slot), 4, 1, platform);
    assert_eq!(effect, None);
}

#[test]
fn notifications_raise_the_line_only_for_armed_slots_and_reads_clear_them() {
    let mut function = function();
    let mut platform = RecordingPlatform::default();
    let _ = function.register_write(regs::EVENT_MASK, 4, u64::from(events::VIRTIO), &mut platform);
    function.notify(3, 0b101, &mut platform);
    assert!(!function.intx_asserted(), "slot 3 is not armed");
    assert_eq!(function.register_read(regs::EVENTS, 4, &mut platform), 0);
    arm(&mut function, 3, &mut platform);
    assert!(function.intx_asserted());
    assert_eq!(platform.irq_lines, vec![(GSI, true)]);
    assert_eq!(function.register_read(notify_arm_register(3), 4, &mut platform), 1);
    // EVENTS shows the level and does not clear it.
    assert_eq!(
        function.register_read(regs::EVENTS, 4, &mut platform),
        u64::from(events::VIRTIO)
    );
    assert!(function.intx_asserted());
    // Narrow reads have no side effect.
    assert_eq!(function.register_read(notify_register(3), 1, &mut platform), 0b101);
    assert_eq!(function.pending_notifications(3), 0b101);
    assert_eq!(function.register_read(notify_register(3), 4, &mut platform), 0b101);
    assert_eq!(function.pending_notifications(3), 0);
    assert!(!function.intx_asserted());
    assert_eq!(platform.irq_lines, vec![(GSI, true), (GSI, false)]);
    // Out-of-range slots and writes to the bits register are ignored.
    function.notify(window::SLOTS as usize, 1, &mut platform);
    let _ = function.register_write(notify_register(3), 4, 0xFF, &mut platform);
    assert_eq!(function.register_read(notify_register(3), 4, &mut platform), 0);
    // Disarming by writing 0; clearing a slot forgets it.
    let _ = function.register_write(notify_arm_register(3), 4, 0, &mut platform);
    function.notify(3, 1, &mut platform);
    assert!(!function.intx_asserted());
    arm(&mut function, 3, &mut platform);
    assert!(function.intx_asserted());
    function.clear_slot(3, &mut platform);
    assert!(!function.intx_asserted());
    assert_eq!(function.register_read(notify_arm_register(3), 4, &mut platform), 0);
}

#[test]
fn masking_a_taken_interrupt_disarms_the_slots_it_woke() {
    let mut function = function();
    let mut platform = RecordingPlatform::default();
    let _ = function.register_write(regs::EVENT_MASK, 4, u64::from(events::VIRTIO), &mut platform);
    arm(&mut function, 0, &mut platform);
    arm(&mut function, 1, &mut platform);
    function.notify(0, 1, &mut platform);
    assert!(function.intx_asserted());
    // uio_pci_generic's handler: pci_check_and_mask_intx.
    let command = function.config_read(0x04, 2);
    function.config_write(0x04, 2, command | u32::from(COMMAND_INTX_DISABLE), &mut platform);
    assert!(!function.intx_asserted());
    // Slot 0 (pending) is disarmed, slot 1 (idle) stays armed.
    assert_eq!(function.register_read(notify_arm_register(0), 4, &mut platform), 0);
    assert_eq!(function.register_read(notify_arm_register(1), 4, &mut platform), 1);
    // Another backend unmasks: slot 0's bits wait for their backend
    // without raising the line again.
    function.config_write(0x04, 2, command, &mut platform);
    assert!(!function.intx_asserted());
    // Slot 1 gets work: the line rises for it.
    function.notify(1, 1 << 16, &mut platform);
    assert!(function.intx_asserted());
    // Slot 0's backend re-arms, then reads its bits.
    arm(&mut function, 0, &mut platform);
    assert_eq!(function.register_read(notify_register(0), 4, &mut platform), 1);
    assert_eq!(function.register_read(notify_register(1), 4, &mut platform), 1 << 16);
    assert!(!function.intx_asserted());
    // Masking while nothing is pending disarms nothing.
    function.config_write(0x04, 2, command | u32::from(COMMAND_INTX_DISABLE), &mut platform);
    assert_eq!(function.register_read(notify_arm_register(0), 4, &mut platform), 1);
}

#[test]
fn register_page_reads_identify_the_abi() {
    let mut function = function();
    let mut platform = RecordingPlatform::default();
    let mut read = |offset, size| function.register_read(offset, size, &mut platform);
    assert_eq!(read(regs::MAGIC, 4), u64::from(u32::from_le_bytes(*b"KEEL")));
    assert_eq!(read(regs::VERSION, 4), u64::from(mgmt::VERSION));
    assert_eq!(read(regs::SHARED_SIZE, 4), SHARED_BYTES);
    assert_eq!(read(regs::DOORBELL, 4), 0);
    assert_eq!(read(regs::EVENT_MASK, 4), 0, "nothing interrupts until asked");
    for offset in [0x18, 0x100, 0x200, 0xFFC, REGISTER_BYTES, !3] {
        assert_eq!(read(offset, 4), 0, "{offset:#x}");
    }
    // Narrow and wide reads assemble the registers' bytes.
    assert_eq!(read(regs::MAGIC, 1), u64::from(b'K'));
    assert_eq!(read(regs::MAGIC + 2, 2), u64::from(u16::from_le_bytes(*b"EL")));
    assert_eq!(
        read(regs::MAGIC, 8),
        u64::from(regs::MAGIC_VALUE) | u64::from(mgmt::VERSION) << 32
    );
    // Bytes 1-4: the rest of the magic, then VERSION's low byte.
    let version_low = mgmt::VERSION.to_le_bytes()[0];
    assert_eq!(
        read(regs::MAGIC + 1, 4),
        u64::from(u32::from_le_bytes([b'E', b'E', b'L', version_low]))
    );
    assert_eq!(read(u64::MAX, 2), 0, "no overflow past the top");
}

#[test]
fn only_a_whole_doorbell_write_of_ring_rings() {
    let mut function = function();
    let mut platform = RecordingPlatform::default();
    let mut write = |offset, size, value| function.register_write(offset, size, value, &mut platform);
    assert_eq!(write(regs::DOORBELL, 4, 1), Some(MgmtEffect::Doorbell));
    assert_eq!(write(regs::DOORBELL, 4, 2), None);
    assert_eq!(write(regs::DOORBELL, 4, 0), None);
    assert_eq!(write(regs::DOORBELL, 1, 1), None, "narrow");
    assert_eq!(write(regs::DOORBELL, 2, 1), None, "narrow");
    assert_eq!(write(regs::DOORBELL + 1, 4, 1 << 24), None, "unaligned");
    assert_eq!(
        write(regs::DOORBELL, 8, 1),
        Some(MgmtEffect::Doorbell),
        "qword covering it"
    );
    assert_eq!(write(regs::MAGIC, 8, 1 << 32), None, "qword over MAGIC/VERSION");
    assert_eq!(write(regs::VERSION, 8, 1 << 32), None, "unaligned qword");
    for offset in [
        regs::MAGIC,
        regs::VERSION,
        regs::SHARED_SIZE,
        regs::EVENTS,
        0x800,
        REGISTER_BYTES,
    ] {
        assert_eq!(write(offset, 4, 1), None, "{offset:#x}");
    }
    assert_eq!(
        function.register_read(regs::MAGIC, 4, &mut platform),
        u64::from(regs::MAGIC_VALUE)
    );
    assert_eq!(
        function.register_read(regs::SHARED_SIZE, 4, &mut platform),
        SHARED_BYTES
    );
    assert!(platform.irq_lines.is_empty());
}

#[test]
fn masked_events_are_kept_but_do_not_interrupt() {
    let mut function = function();
    let mut platform = RecordingPlatform::default();
    function.raise_events(events::CONSOLE_OUTPUT, &mut platform);
    assert!(platform.irq_lines.is_empty());
    assert_eq!(function.header().status() & STATUS_INTERRUPT, 0);
    assert_eq!(function.pending_events(), events::CONSOLE_OUTPUT);
    // Narrow reads show EVENTS without clearing it.
    assert_eq!(function.register_read(regs::EVENTS, 1, &mut platform), 1);
    assert_eq!(function.register_read(regs::EVENTS, 4, &mut platform), 1);
    assert_eq!(
        function.register_read(regs::EVENTS, 4, &mut platform),
        0,
        "read cleared it"
    );
}

#[test]
fn an_unmasked_event_asserts_intx_until_events_is_read() {
    let mut function = function();
    let mut platform = RecordingPlatform::default();
    let _ = function.register_write(regs::EVENT_MASK, 4, u64::from(ALL_EVENTS), &mut platform);
    assert_eq!(
        function.register_read(regs::EVENT_MASK, 4, &mut platform),
        u64::from(ALL_EVENTS)
    );
    function.raise_events(events::DOMAIN_STATE, &mut platform);
    function.raise_events(events::CONSOLE_OUTPUT, &mut platform);
    assert_eq!(platform.irq_lines, [(GSI, true)], "one rising level");
    assert!(function.intx_asserted());
    assert_eq!(function.config_read(0x06, 2), u32::from(STATUS_INTERRUPT));
    // A qword read at EVENTS reads (and clears) EVENTS, then EVENT_MASK.
    assert_eq!(
        function.register_read(regs::EVENTS, 8, &mut platform),
        u64::from(ALL_EVENTS) | u64::from(ALL_EVENTS) << 32
    );
    assert_eq!(platform.irq_lines, [(GSI, true), (GSI, false)]);
    assert_eq!(function.config_read(0x06, 2), 0);
}

#[test]
fn event_mask_changes_drive_the_line_both_ways() {
    let mut function = function();
    let mut platform = RecordingPlatform::default();
    function.raise_events(events::CONSOLE_OUTPUT, &mut platform);
    let _ = function.register_write(regs::EVENT_MASK, 4, u64::from(events::DOMAIN_STATE), &mut platform);
    assert!(platform.irq_lines.is_empty(), "pending event not in the mask");
    let _ = function.register_write(regs::EVENT_MASK, 4, u64::from(events::CONSOLE_OUTPUT), &mut platform);
    assert_eq!(platform.irq_lines, [(GSI, true)]);
    let _ = function.register_write(regs::EVENT_MASK, 4, 0, &mut platform);
    assert_eq!(platform.irq_lines, [(GSI, true), (GSI, false)]);
    assert_eq!(
        function.pending_events(),
        events::CONSOLE_OUTPUT,
        "masking loses nothing"
    );
    // A narrow write to EVENT_MASK is ignored.
    let _ = function.register_write(regs::EVENT_MASK, 2, 0xFFFF, &mut platform);
    assert_eq!(function.event_mask(), 0);
}

#[test]
fn uio_pci_generic_cycle_masks_reads_and_unmasks_without_losing_events() {
    let mut host = host();
    let mut platform = RecordingPlatform::default();
    let mut conf = Conf1 {
        host: &mut host,
        platform: &mut platform,
    };
    // Probe: pci_intx_mask_broken's toggle must read back exactly.
    let orig = conf.read(0x04, 2);
    conf.write(0x04, 2, orig ^ u32::from(COMMAND_INTX_DISABLE));
    assert_eq!(conf.read(0x04, 2), orig ^ u32::from(COMMAND_INTX_DISABLE));
    conf.write(0x04, 2, orig);
    // pcim_enable_device: memory (already on) and bus master.
    conf.write(0x04, 2, orig | u32::from(COMMAND_BUS_MASTER));
    // The tool opts into both events.
    let mgmt = conf.host.function_as::<MgmtFunction>(address()).unwrap();
    let _ = mgmt.register_write(regs::EVENT_MASK, 4, u64::from(ALL_EVENTS), conf.platform);
    // Keel raises an event: the line rises.
    mgmt.raise_events(events::CONSOLE_OUTPUT, conf.platform);
    assert_eq!(conf.platform.irq_lines, [(GSI, true)]);
    // irqhandler -> pci_check_and_mask_intx: one dword read, one word write.
    let dword = conf.read(0x04, 4);
    assert_ne!((dword >> 16) & u32::from(STATUS_INTERRUPT), 0, "ours");
    conf.write(0x04, 2, (dword & 0xFFFF) | u32::from(COMMAND_INTX_DISABLE));
    assert_eq!(conf.platform.irq_lines, [(GSI, true), (GSI, false)], "line released");
    // A shared-IRQ neighbour's check finds Interrupt Status still set.
    assert_ne!(conf.read(0x06, 2) & u32::from(STATUS_INTERRUPT), 0);
    // Another event arrives while masked: no interrupt yet.
    let mgmt = conf.host.function_as::<MgmtFunction>(address()).unwrap();
    mgmt.raise_events(events::DOMAIN_STATE, conf.platform);
    assert_eq!(conf.platform.irq_lines.len(), 2);
    // The tool wakes, reads EVENTS: both events, status clears.
    let mgmt = conf.host.function_as::<MgmtFunction>(address()).unwrap();
    assert_eq!(
        mgmt.register_read(regs::EVENTS, 4, conf.platform),
        u64::from(ALL_EVENTS)
    );
    assert_eq!(conf.read(0x06, 2) & u32::from(STATUS_INTERRUPT), 0);
    // Then unmasks through sysfs `config` (uio howto: byte write at 5).
    let high = conf.read(0x05, 1);
    conf.write(0x05, 1, high & !0x04);
    assert_eq!(conf.read(0x04, 2) & u32::from(COMMAND_INTX_DISABLE), 0);
    assert_eq!(conf.platform.irq_lines.len(), 2, "nothing pending, line stays low");
    // An event raced in between reading EVENTS and unmasking is not lost.
    let command = conf.read(0x04, 2);
    conf.write(0x04, 2, command | u32::from(COMMAND_INTX_DISABLE));
    let mgmt = conf.host.function_as::<MgmtFunction>(address()).unwrap();
    mgmt.raise_events(events::CONSOLE_OUTPUT, conf.platform);
    assert_eq!(conf.platform.irq_lines.len(), 2);
    conf.write(0x04, 2, command & !u32::from(COMMAND_INTX_DISABLE));
    assert_eq!(
        conf.platform.irq_lines[2..],
        [(GSI, true)],
        "unmasking a pending event interrupts"
    );
}

/// Carries recorded line changes into the I/O APIC, as the hypervisor's
/// platform does after each access.
fn settle(platform: &mut RecordingPlatform, ioapic: &mut IoApic) {
    let lines: Vec<_> = platform.irq_lines.drain(..).collect();
    for (gsi, asserted) in lines {
        ioapic.set_irq(gsi, asserted, platform);
    }
}

fn ioapic_program(ioapic: &mut IoApic, platform: &mut RecordingPlatform, pin: u8, low: u32, high: u32) {
    let mut write = |register: u8, value: u32| {
        ioapic.write(0x00, 4, u64::from(register), platform);
        ioapic.write(0x10, 4, u64::from(value), platform);
    };
    write(0x11 + 2 * pin, high);
    write(0x10 + 2 * pin, low);
}

#[test]
fn intx_reaches_a_level_triggered_active_low_ioapic_pin_with_remote_irr() {
    const VECTOR: u8 = 0x31;
    // Linux's entry for a PCI GSI from _PRT: fixed, physical, active low
    // (bit 13), level (bit 15), unmasked, destination APIC 0.
    let low = (1 << 15) | (1 << 13) | u32::from(VECTOR);
    let message = InterruptMessage {
        vector: VECTOR,
        destination: 0,
        level_triggered: true,
    };
    let mut function = function();
    let mut ioapic = IoApic::new(1);
    let mut platform = RecordingPlatform::default();
    ioapic_program(&mut ioapic, &mut platform, GSI as u8, low, 0);
    let _ = function.register_write(regs::EVENT_MASK, 4, u64::from(ALL_EVENTS), &mut platform);
    function.raise_events(events::CONSOLE_OUTPUT, &mut platform);
    settle(&mut platform, &mut ioapic);
    assert_eq!(platform.interrupts, [message]);
    // A handler that EOIs without quieting the device gets the interrupt again.
    ioapic.end_of_interrupt(VECTOR, &mut platform);
    assert_eq!(platform.interrupts, [message, message]);
    // uio's handler masks INTx first, then the EOI finds the line low.
    function.config_write(0x04, 2, u32::from(COMMAND_MEMORY | COMMAND_INTX_DISABLE), &mut platform);
    settle(&mut platform, &mut ioapic);
    ioapic.end_of_interrupt(VECTOR, &mut platform);
    assert_eq!(platform.interrupts.len(), 2, "no interrupt storm");
    // Unmask with the event still pending: delivered once more.
    function.config_write(0x04, 2, u32::from(COMMAND_MEMORY), &mut platform);
    settle(&mut platform, &mut ioapic);
    assert_eq!(platform.interrupts.len(), 3);
    // Reading EVENTS drops the line; the EOI then delivers nothing.
    let _ = function.register_read(regs::EVENTS, 4, &mut platform);
    settle(&mut platform, &mut ioapic);
    ioapic.end_of_interrupt(VECTOR, &mut platform);
    assert_eq!(platform.interrupts.len(), 3);
    // While Linux has the pin masked, an event waits for the unmask.
    ioapic_program(&mut ioapic, &mut platform, GSI as u8, low | (1 << 16), 0);
    function.raise_events(events::DOMAIN_STATE, &mut platform);
    settle(&mut platform, &mut ioapic);
    assert_eq!(platform.interrupts.len(), 3);
    ioapic_program(&mut ioapic, &mut platform, GSI as u8, low, 0);
    assert_eq!(platform.interrupts.len(), 4);
}

#[test]
fn reset_restores_firmware_state_and_releases_the_line() {
    let mut function = function();
    let mut platform = RecordingPlatform::default();
    let _ = function.register_write(regs::EVENT_MASK, 4, u64::from(ALL_EVENTS), &mut platform);
    function.raise_events(events::CONSOLE_OUTPUT, &mut platform);
    function.config_write(0x10, 4, 0xD000_0000, &mut platform);
    function.config_write(0x3C, 1, 0x0B, &mut platform);
    assert!(function.take_layout_change().is_some());
    function.reset(&mut platform);
    assert_eq!(platform.irq_lines, [(GSI, true), (GSI, false)]);
    assert!(!function.intx_asserted());
    assert_eq!((function.pending_events(), function.event_mask()), (0, 0));
    assert_eq!(function.config_read(0x3C, 1), GSI);
    assert_eq!(
        function.take_layout_change(),
        Some(MgmtLayout {
            registers: Some(REGISTERS_GPA),
            shared: Some(SHARED_GPA),
            window: Some(WINDOW_GPA),
        })
    );
    // Resetting a quiet function drives nothing.
    function.reset(&mut platform);
    assert_eq!(platform.irq_lines.len(), 2);
}

#[test]
fn firmware_addresses_must_fit_the_bars() {
    let bad_registers = MgmtConfig {
        registers_gpa: 0xC000_0800,
        ..CONFIG
    };
    assert!(matches!(
        MgmtFunction::new(bad_registers),
        Err(PciConfigError::BarAddress { index: 0, .. })
    ));
    let high_registers = MgmtConfig {
        registers_gpa: 0x1_0000_0000,
        ..CONFIG
    };
    assert!(MgmtFunction::new(high_registers).is_err());
    let bad_shared = MgmtConfig {
        shared_gpa: 0xC010_0000,
        ..CONFIG
    };
    assert!(matches!(
        MgmtFunction::new(bad_shared),
        Err(PciConfigError::BarAddress { index: 2, .. })
    ));
    // 64-bit: shared memory may sit above 4 GiB; a big GSI leaves Interrupt Line "unknown".
    let high = MgmtFunction::new(MgmtConfig {
        shared_gpa: 0x10_0000_0000,
        gsi: 300,
        ..CONFIG
    })
    .unwrap();
    assert_eq!(high.layout().shared, Some(0x10_0000_0000));
    assert_eq!(high.header().interrupt_line(), 0xFF);
}

#[test]
fn survives_any_register_or_config_access() {
    let mut function = function();
    let mut platform = RecordingPlatform::default();
    for offset in (0..0x40).chain([0xFFC, 0xFFF, 0x1000, u64::MAX - 7, u64::MAX]) {
        for size in [0, 1, 2, 3, 4, 5, 8, 255] {
            let _ = function.register_read(offset, size, &mut platform);
            let _ = function.register_write(offset, size, u64::MAX, &mut platform);
        }
    }
    for offset in (0..=0x100).chain([u16::MAX - 1, u16::MAX]) {
        for size in [0, 1, 2, 4, 8] {
            let _ = function.config_read(offset, size);
        }
    }
    // The identity survives all of that; registers still answer.
    assert_eq!(function.config_read(0, 4), 0x0001_4B45);
    assert_eq!(
        function.register_read(regs::MAGIC, 4, &mut platform),
        u64::from(regs::MAGIC_VALUE)
    );
}

#[test]
fn the_host_reaches_only_a_real_mgmt_function() {
    let mut host = host();
    assert!(host.function_as::<MgmtFunction>(address()).is_some());
    assert!(host.function_ref::<MgmtFunction>(address()).is_some());
    assert!(host.function_as::<MgmtFunction>(PciAddress::HOST_BRIDGE).is_none());
    assert!(host
        .function_as::<MgmtFunction>(PciAddress::new(0, 2, 0).unwrap())
        .is_none());
    assert_eq!(PCI_CONFIG_ADDRESS_PORT, 0xCF8);
}

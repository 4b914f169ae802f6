//! An 82093AA-style I/O APIC with 24 pins (version 0x11).
//!
//! MMIO interface (offsets within the 4 KiB window at [`IOAPIC_BASE`]):
//! IOREGSEL at 0x00 selects a register, IOWIN at 0x10 reads/writes it; both
//! take 32-bit accesses only. Any other offset or access size reads 0 and
//! ignores writes, as the datasheet leaves them undefined. Version 0x11 has
//! no directed-EOI register: the guest's local APIC EOI of a level-triggered
//! vector reaches [`IoApic::end_of_interrupt`] as an EOI broadcast.
//!
//! Simplifications, all harmless for Linux on Keel:
//! - lowest-priority delivery is treated as fixed;
//! - SMI, NMI, INIT and ExtINT delivery modes (and reserved ones) deliver
//!   nothing (Linux routes no device pins that way when it uses the I/O
//!   APIC; legacy ExtINT goes through LINT0);
//! - logical destination mode is passed on as the 8-bit destination field
//!   like physical mode (Linux in x2APIC mode without interrupt remapping
//!   programs physical destinations);
//! - the polarity bit is stored but not applied: `set_irq`'s `asserted` is
//!   the logical line state, and the firmware tables Keel builds tell the
//!   guest the polarity that matches;
//! - delivery status (bit 12) always reads idle: delivery is immediate.

use crate::{Device, InterruptMessage, Offset, Platform};

/// Where the hypervisor registers the I/O APIC.
pub const IOAPIC_BASE: u64 = 0xfec0_0000;
/// Length of the MMIO window.
pub const IOAPIC_MMIO_LEN: u64 = 0x1000;
/// Pins (global system interrupts 0..24).
pub const IOAPIC_PIN_COUNT: usize = 24;

const IOREGSEL: Offset = 0x00;
const IOWIN: Offset = 0x10;

const REGISTER_ID: u8 = 0x00;
const REGISTER_VERSION: u8 = 0x01;
const REGISTER_ARBITRATION: u8 = 0x02;
const REDIRECTION_TABLE_FIRST: u8 = 0x10;
/// Version 0x11, maximum redirection entry 23.
const VERSION: u32 = 0x0017_0011;

const ENTRY_DELIVERY_MODE_SHIFT: u32 = 8;
const ENTRY_REMOTE_IRR: u64 = 1 << 14;
const ENTRY_LEVEL_TRIGGERED: u64 = 1 << 15;
const ENTRY_MASKED: u64 = 1 << 16;
const ENTRY_DESTINATION_SHIFT: u32 = 56;
/// Bits software may change: vector, delivery mode, destination mode (0–11),
/// polarity (13), trigger mode (15), mask (16), destination (63:56).
/// Delivery status (12) and Remote IRR (14) are read-only; 55:17 reserved.
const ENTRY_WRITABLE: u64 = 0xff00_0000_0001_afff;

/// One pin: its redirection entry and the state of the line driving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pin {
    entry: u64,
    line_asserted: bool,
}

impl Pin {
    const RESET: Self = Self {
        entry: ENTRY_MASKED,
        line_asserted: false,
    };

    fn masked(&self) -> bool {
        self.entry & ENTRY_MASKED != 0
    }

    fn level_triggered(&self) -> bool {
        self.entry & ENTRY_LEVEL_TRIGGERED != 0
    }

    fn remote_irr(&self) -> bool {
        self.entry & ENTRY_REMOTE_IRR != 0
    }

    fn vector(&self) -> u8 {
        (self.entry & 0xff) as u8
    }

    /// The message this entry sends, or `None` for delivery modes that are
    /// not modelled (see the module documentation).
    fn message(&self) -> Option<InterruptMessage> {
        match (self.entry >> ENTRY_DELIVERY_MODE_SHIFT) & 0b111 {
            // Fixed, lowest priority.
            0b000 | 0b001 => Some(InterruptMessage {
                vector: self.vector(),
                destination: (self.entry >> ENTRY_DESTINATION_SHIFT) as u32,
                level_triggered: self.level_triggered(),
            }),
            _ => None,
        }
    }
}

/// The I/O APIC state.
#[derive(Clone, Debug)]
pub struct IoApic {
    /// I/O APIC ID (4 bits).
    id: u8,
    /// The register IOREGSEL selects.
    selected_register: u8,
    pins: [Pin; IOAPIC_PIN_COUNT],
}

impl IoApic {
    /// An I/O APIC in its reset state (all pins masked) with ID `id` (only
    /// the low 4 bits are kept, as the register is 4 bits wide).
    pub fn new(id: u8) -> Self {
        Self {
            id: id & 0xf,
            selected_register: 0,
            pins: [Pin::RESET; IOAPIC_PIN_COUNT],
        }
    }

    /// A device drives input `pin` to `asserted` (the logical level).
    /// Edge-triggered pins deliver on the rising edge when unmasked (an edge
    /// while masked is lost, as on hardware); level-triggered pins deliver
    /// while asserted, unmasked and Remote IRR is clear. A pulse (asserted
    /// then deasserted straight away, as the power button does) on an edge
    /// pin is therefore one interrupt. Pins beyond the table are ignored.
    pub fn set_irq(&mut self, pin: u32, asserted: bool, platform: &mut dyn Platform) {
        let Some(state) = usize::try_from(pin).ok().and_then(|pin| self.pins.get_mut(pin)) else {
            return;
        };
        let rising = asserted && !state.line_asserted;
        state.line_asserted = asserted;
        if state.level_triggered() {
            Self::service_level(state, platform);
        } else if rising && !state.masked() {
            if let Some(message) = state.message() {
                platform.deliver_interrupt(message);
            }
        }
    }

    /// Whether `pin` is level-triggered and its last interrupt is still in
    /// service (Remote IRR: delivered, not yet acknowledged by an EOI).
    pub fn in_service(&self, pin: u32) -> bool {
        usize::try_from(pin)
            .ok()
            .and_then(|pin| self.pins.get(pin))
            .is_some_and(|state| state.level_triggered() && state.remote_irr())
    }

    /// The vector `pin`'s redirection entry names (masked or not); `None`
    /// for pins beyond the table.
    pub fn vector_of(&self, pin: u32) -> Option<u8> {
        usize::try_from(pin)
            .ok()
            .and_then(|pin| self.pins.get(pin))
            .map(Pin::vector)
    }

    /// A local APIC broadcast an EOI for level-triggered `vector`: clear
    /// Remote IRR on every level-triggered entry using it, and deliver again
    /// where the line is still asserted.
    pub fn end_of_interrupt(&mut self, vector: u8, platform: &mut dyn Platform) {
        for pin in self.pins.iter_mut() {
            if pin.level_triggered() && pin.remote_irr() && pin.vector() == vector {
                pin.entry &= !ENTRY_REMOTE_IRR;
                Self::service_level(pin, platform);
            }
        }
    }

    /// Delivers a level-triggered pin if it should interrupt now, setting
    /// Remote IRR until the EOI.
    fn service_level(pin: &mut Pin, platform: &mut dyn Platform) {
        if !pin.level_triggered() || !pin.line_asserted || pin.masked() || pin.remote_irr() {
            return;
        }
        if let Some(message) = pin.message() {
            pin.entry |= ENTRY_REMOTE_IRR;
            platform.deliver_interrupt(message);
        }
    }

    /// The pin and dword half (high = bits 63:32) a redirection-table
    /// register index names, if it names one.
    fn redirection_slot(register: u8) -> Option<(usize, bool)> {
        let offset = usize::from(register.checked_sub(REDIRECTION_TABLE_FIRST)?);
        let pin = offset / 2;
        (pin < IOAPIC_PIN_COUNT).then_some((pin, offset % 2 == 1))
    }

    fn read_register(&self, register: u8) -> u32 {
        match register {
            REGISTER_ID | REGISTER_ARBITRATION => u32::from(self.id) << 24,
            REGISTER_VERSION => VERSION,
            _ => {
                let Some((pin, high)) = Self::redirection_slot(register) else {
                    return 0;
                };
                let entry = self.pins.get(pin).map_or(0, |pin| pin.entry);
                if high {
                    (entry >> 32) as u32
                } else {
                    entry as u32
                }
            }
        }
    }

    fn write_register(&mut self, register: u8, value: u32, platform: &mut dyn Platform) {
        if register == REGISTER_ID {
            self.id = ((value >> 24) & 0xf) as u8;
            return;
        }
        // Version and arbitration are read-only; other indices are unused.
        let Some((pin, high)) = Self::redirection_slot(register) else {
            return;
        };
        let Some(pin) = self.pins.get_mut(pin) else {
            return;
        };
        let written = if high {
            (pin.entry & 0xffff_ffff) | (u64::from(value) << 32)
        } else {
            (pin.entry & !0xffff_ffff) | u64::from(value)
        };
        pin.entry = (written & ENTRY_WRITABLE) | (pin.entry & !ENTRY_WRITABLE);
        // Switching to edge clears Remote IRR; Linux relies on this to
        // unstick Remote IRR on I/O APICs without an EOI register.
        if !pin.level_triggered() {
            pin.entry &= !ENTRY_REMOTE_IRR;
        }
        // Unmasking an asserted level-triggered line interrupts at once.
        Self::service_level(pin, platform);
    }
}

impl Device for IoApic {
    fn name(&self) -> &'static str {
        "ioapic"
    }

    fn read(&mut self, offset: Offset, size: u8, _platform: &mut dyn Platform) -> u64 {
        match (offset, size) {
            (IOREGSEL, 4) => u64::from(self.selected_register),
            (IOWIN, 4) => u64::from(self.read_register(self.selected_register)),
            _ => 0,
        }
    }

    fn write(&mut self, offset: Offset, size: u8, value: u64, platform: &mut dyn Platform) {
        match (offset, size) {
            // Only bits 7:0 of IOREGSEL exist.
            (IOREGSEL, 4) => self.selected_register = (value & 0xff) as u8,
            (IOWIN, 4) => self.write_register(self.selected_register, value as u32, platform),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RecordingPlatform;

    const VECTOR: u8 = 0x21;
    /// Destination APIC ID 3 in bits 63:56, as the high dword.
    const HIGH_DESTINATION_3: u32 = 3 << 24;
    const LOW_EDGE_UNMASKED: u32 = VECTOR as u32;
    const LOW_LEVEL_UNMASKED: u32 = (1 << 15) | (1 << 13) | VECTOR as u32;

    fn write_register(ioapic: &mut IoApic, platform: &mut RecordingPlatform, reg: u8, value: u32) {
        ioapic.write(IOREGSEL, 4, u64::from(reg), platform);
        ioapic.write(IOWIN, 4, u64::from(value), platform);
    }

    fn read_register(ioapic: &mut IoApic, platform: &mut RecordingPlatform, reg: u8) -> u32 {
        ioapic.write(IOREGSEL, 4, u64::from(reg), platform);
        ioapic.read(IOWIN, 4, platform) as u32
    }

    /// Programs `pin` the way Linux's ioapic_write_entry does: high dword
    /// first, then the low dword that carries the mask bit.
    fn program(ioapic: &mut IoApic, platform: &mut RecordingPlatform, pin: u8, low: u32) {
        write_register(ioapic, platform, 0x11 + 2 * pin, HIGH_DESTINATION_3);
        write_register(ioapic, platform, 0x10 + 2 * pin, low);
    }

    fn message(level_triggered: bool) -> InterruptMessage {
        InterruptMessage {
            vector: VECTOR,
            destination: 3,
            level_triggered,
        }
    }

    #[test]
    fn reset_state_and_identification() {
        let mut ioapic = IoApic::new(0x12);
        let platform = &mut RecordingPlatform::default();
        assert_eq!(read_register(&mut ioapic, platform, 0x00), 0x0200_0000);
        assert_eq!(read_register(&mut ioapic, platform, 0x01), 0x0017_0011);
        assert_eq!(read_register(&mut ioapic, platform, 0x02), 0x0200_0000);
        for pin in 0..IOAPIC_PIN_COUNT as u8 {
            assert_eq!(read_register(&mut ioapic, platform, 0x10 + 2 * pin), 0x1_0000);
            assert_eq!(read_register(&mut ioapic, platform, 0x11 + 2 * pin), 0);
        }
        write_register(&mut ioapic, platform, 0x00, 0x0f00_0000);
        assert_eq!(read_register(&mut ioapic, platform, 0x00), 0x0f00_0000);
        write_register(&mut ioapic, platform, 0x01, 0);
        assert_eq!(read_register(&mut ioapic, platform, 0x01), 0x0017_0011);
        assert_eq!(ioapic.read(IOREGSEL, 4, platform), 0x01);
    }

    #[test]
    fn linux_programming_sequence_reads_back() {
        let mut ioapic = IoApic::new(0);
        let platform = &mut RecordingPlatform::default();
        program(&mut ioapic, platform, 9, LOW_LEVEL_UNMASKED | 0x1_0000);
        assert_eq!(
            read_register(&mut ioapic, platform, 0x22),
            LOW_LEVEL_UNMASKED | 0x1_0000
        );
        assert_eq!(read_register(&mut ioapic, platform, 0x23), HIGH_DESTINATION_3);
        // Unmask by rewriting the low dword.
        write_register(&mut ioapic, platform, 0x22, LOW_LEVEL_UNMASKED);
        assert_eq!(read_register(&mut ioapic, platform, 0x22), LOW_LEVEL_UNMASKED);
        assert!(platform.interrupts.is_empty(), "line is not asserted");
    }

    #[test]
    fn read_only_and_reserved_entry_bits_do_not_stick() {
        let mut ioapic = IoApic::new(0);
        let platform = &mut RecordingPlatform::default();
        // Delivery status, Remote IRR and reserved bits 31:17 / 55:32.
        write_register(&mut ioapic, platform, 0x10, 0xfffe_5000 | LOW_EDGE_UNMASKED);
        write_register(&mut ioapic, platform, 0x11, 0xffff_ffff);
        assert_eq!(read_register(&mut ioapic, platform, 0x10), LOW_EDGE_UNMASKED);
        assert_eq!(read_register(&mut ioapic, platform, 0x11), 0xff00_0000);
    }

    #[test]
    fn edge_triggered_pin_delivers_on_rising_edges_only() {
        let mut ioapic = IoApic::new(0);
        let platform = &mut RecordingPlatform::default();
        program(&mut ioapic, platform, 4, LOW_EDGE_UNMASKED);
        ioapic.set_irq(4, true, platform);
        ioapic.set_irq(4, true, platform);
        assert_eq!(platform.interrupts, [message(false)]);
        ioapic.set_irq(4, false, platform);
        ioapic.set_irq(4, true, platform);
        assert_eq!(platform.interrupts, [message(false), message(false)]);
        // EOIs do not concern edge-triggered pins.
        ioapic.end_of_interrupt(VECTOR, platform);
        assert_eq!(platform.interrupts.len(), 2);
    }

    #[test]
    fn pulse_within_one_access_delivers_exactly_once() {
        // The power button's GED pin (GSI 23), as Linux programs it: edge, active high.
        let mut ioapic = IoApic::new(0);
        let platform = &mut RecordingPlatform::default();
        program(&mut ioapic, platform, 23, LOW_EDGE_UNMASKED);
        // Asserted and deasserted before anything else runs: the rising edge
        // has already delivered, so the pulse is not lost.
        ioapic.set_irq(23, true, platform);
        ioapic.set_irq(23, false, platform);
        assert_eq!(platform.interrupts, [message(false)]);
        // The line is low again, so the next pulse is a new edge; no EOI needed.
        ioapic.set_irq(23, true, platform);
        ioapic.set_irq(23, false, platform);
        assert_eq!(platform.interrupts, [message(false); 2]);
        // Deasserting an already low line is no edge at all.
        ioapic.set_irq(23, false, platform);
        assert_eq!(platform.interrupts.len(), 2);
        // Edge pins keep no Remote IRR and read back as programmed.
        assert_eq!(read_register(&mut ioapic, platform, 0x10 + 2 * 23), LOW_EDGE_UNMASKED);
    }

    #[test]
    fn pulse_on_a_masked_edge_pin_is_lost_and_the_next_one_is_not() {
        let mut ioapic = IoApic::new(0);
        let platform = &mut RecordingPlatform::default();
        program(&mut ioapic, platform, 23, LOW_EDGE_UNMASKED | 0x1_0000);
        ioapic.set_irq(23, true, platform);
        ioapic.set_irq(23, false, platform);
        write_register(&mut ioapic, platform, 0x10 + 2 * 23, LOW_EDGE_UNMASKED);
        assert!(
            platform.interrupts.is_empty(),
            "as on hardware, a masked edge is dropped"
        );
        ioapic.set_irq(23, true, platform);
        ioapic.set_irq(23, false, platform);
        assert_eq!(platform.interrupts, [message(false)]);
    }

    #[test]
    fn pulse_on_a_level_pin_delivers_once_and_the_eoi_finds_it_low() {
        // Were the GED pin level-triggered, a pulse would still be one interrupt.
        let mut ioapic = IoApic::new(0);
        let platform = &mut RecordingPlatform::default();
        program(&mut ioapic, platform, 23, LOW_LEVEL_UNMASKED);
        ioapic.set_irq(23, true, platform);
        ioapic.set_irq(23, false, platform);
        assert_eq!(platform.interrupts, [message(true)]);
        ioapic.end_of_interrupt(VECTOR, platform);
        assert_eq!(platform.interrupts.len(), 1, "deasserted before the EOI: no redelivery");
        assert_eq!(read_register(&mut ioapic, platform, 0x10 + 2 * 23) & (1 << 14), 0);
        ioapic.set_irq(23, true, platform);
        ioapic.set_irq(23, false, platform);
        assert_eq!(platform.interrupts, [message(true); 2]);
    }

    #[test]
    fn level_triggered_pin_waits_for_eoi_and_redelivers() {
        let mut ioapic = IoApic::new(0);
        let platform = &mut RecordingPlatform::default();
        program(&mut ioapic, platform, 10, LOW_LEVEL_UNMASKED);
        ioapic.set_irq(10, true, platform);
        assert_eq!(platform.interrupts, [message(true)]);
        let low = read_register(&mut ioapic, platform, 0x24);
        assert_ne!(low & (1 << 14), 0, "Remote IRR set");
        // Still asserted, but Remote IRR holds further deliveries back.
        ioapic.set_irq(10, true, platform);
        assert_eq!(platform.interrupts.len(), 1);
        // EOI of another vector changes nothing.
        ioapic.end_of_interrupt(VECTOR + 1, platform);
        assert_eq!(platform.interrupts.len(), 1);
        // EOI while the line is still asserted delivers again.
        ioapic.end_of_interrupt(VECTOR, platform);
        assert_eq!(platform.interrupts, [message(true), message(true)]);
        // The device deasserts; the next EOI just clears Remote IRR.
        ioapic.set_irq(10, false, platform);
        ioapic.end_of_interrupt(VECTOR, platform);
        assert_eq!(platform.interrupts.len(), 2);
        assert_eq!(read_register(&mut ioapic, platform, 0x24) & (1 << 14), 0);
    }

    #[test]
    fn active_low_level_pin_takes_the_logical_line_level() {
        // A PCI INTx GSI as Linux programs it from _PRT: level, active low.
        // The polarity bit reads back; `set_irq(true)` means "asserted"
        // (the electrical low), so the device side never inverts.
        let mut ioapic = IoApic::new(0);
        let platform = &mut RecordingPlatform::default();
        let active_low_level = LOW_LEVEL_UNMASKED;
        assert_ne!(active_low_level & (1 << 13), 0);
        program(&mut ioapic, platform, 16, active_low_level);
        assert_eq!(read_register(&mut ioapic, platform, 0x30), active_low_level);
        ioapic.set_irq(16, false, platform);
        assert!(platform.interrupts.is_empty(), "deasserted line is quiet");
        ioapic.set_irq(16, true, platform);
        assert_eq!(platform.interrupts, [message(true)]);
        assert_ne!(read_register(&mut ioapic, platform, 0x30) & (1 << 14), 0, "Remote IRR");
        ioapic.set_irq(16, false, platform);
        ioapic.end_of_interrupt(VECTOR, platform);
        assert_eq!(read_register(&mut ioapic, platform, 0x30), active_low_level);
        assert_eq!(platform.interrupts.len(), 1);
    }

    #[test]
    fn switching_to_edge_clears_remote_irr() {
        let mut ioapic = IoApic::new(0);
        let platform = &mut RecordingPlatform::default();
        program(&mut ioapic, platform, 2, LOW_LEVEL_UNMASKED);
        ioapic.set_irq(2, true, platform);
        ioapic.set_irq(2, false, platform);
        // Linux's __eoi_ioapic_pin fallback: mask + edge, then level again.
        write_register(&mut ioapic, platform, 0x14, LOW_EDGE_UNMASKED | 0x1_0000);
        write_register(&mut ioapic, platform, 0x14, LOW_LEVEL_UNMASKED);
        assert_eq!(read_register(&mut ioapic, platform, 0x14), LOW_LEVEL_UNMASKED);
        ioapic.set_irq(2, true, platform);
        assert_eq!(platform.interrupts, [message(true), message(true)]);
    }

    #[test]
    fn masked_pins_stay_quiet_until_unmasked() {
        let mut ioapic = IoApic::new(0);
        let platform = &mut RecordingPlatform::default();
        program(&mut ioapic, platform, 0, LOW_EDGE_UNMASKED | 0x1_0000);
        program(&mut ioapic, platform, 1, LOW_LEVEL_UNMASKED | 0x1_0000);
        ioapic.set_irq(0, true, platform);
        ioapic.set_irq(1, true, platform);
        assert!(platform.interrupts.is_empty());
        // Unmasking an asserted level pin delivers; an edge already seen is lost.
        write_register(&mut ioapic, platform, 0x10, LOW_EDGE_UNMASKED);
        write_register(&mut ioapic, platform, 0x12, LOW_LEVEL_UNMASKED);
        assert_eq!(platform.interrupts, [message(true)]);
    }

    #[test]
    fn unmodelled_delivery_modes_deliver_nothing() {
        let mut ioapic = IoApic::new(0);
        let platform = &mut RecordingPlatform::default();
        for (pin, mode) in [(0u8, 0b010u32), (1, 0b100), (2, 0b101), (3, 0b111)] {
            program(&mut ioapic, platform, pin, (mode << 8) | LOW_EDGE_UNMASKED);
            ioapic.set_irq(u32::from(pin), true, platform);
        }
        // Lowest priority is treated as fixed.
        program(&mut ioapic, platform, 5, (0b001 << 8) | LOW_EDGE_UNMASKED);
        ioapic.set_irq(5, true, platform);
        assert_eq!(platform.interrupts, [message(false)]);
    }

    #[test]
    fn out_of_range_pins_registers_and_accesses_are_ignored() {
        let mut ioapic = IoApic::new(0);
        let platform = &mut RecordingPlatform::default();
        for pin in [24, 255, u32::MAX] {
            ioapic.set_irq(pin, true, platform);
        }
        for register in [0x03, 0x0f, 0x40, 0xff] {
            write_register(&mut ioapic, platform, register, 0xffff_ffff);
            assert_eq!(read_register(&mut ioapic, platform, register), 0);
        }
        // Wrong sizes and offsets: reads 0, writes ignored.
        ioapic.write(IOREGSEL, 4, 0x10, platform);
        ioapic.write(IOWIN, 1, 0, platform);
        ioapic.write(IOWIN, 8, 0, platform);
        ioapic.write(0x20, 4, 0, platform);
        ioapic.write(u64::MAX, 4, 0, platform);
        assert_eq!(ioapic.read(IOWIN, 2, platform), 0);
        assert_eq!(ioapic.read(0x40, 4, platform), 0);
        assert_eq!(ioapic.read(IOWIN, 4, platform), 0x1_0000, "entry 0 untouched");
        // IOREGSEL keeps only its 8 implemented bits.
        ioapic.write(IOREGSEL, 4, 0x1_0001, platform);
        assert_eq!(ioapic.read(IOREGSEL, 4, platform), 0x01);
        assert!(platform.interrupts.is_empty());
    }
}

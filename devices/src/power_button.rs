//! The guest's power button: a control-method button (ACPI `PNP0C0C`) that a
//! Generic Event Device (`ACPI0013`) notifies when its interrupt fires (see
//! `keel_acpi_tables::PowerButtonConfig` for the AML). The model is only the
//! interrupt line: it has no registers, and nothing for the guest to
//! acknowledge.
//!
//! A press pulses the line: asserted, then deasserted at once. The DSDT
//! declares the GED's interrupt edge-triggered and active high, so Linux
//! programs the I/O APIC pin edge-triggered and the rising edge delivers the
//! interrupt exactly once; the line is low again before anything else
//! happens, so the next press is a new edge. (Were the pin level-triggered it
//! would also deliver once: Remote IRR holds it until the EOI, by which time
//! the line is low.) An edge while the pin is masked is lost, as on hardware:
//! Linux keeps the pin unmasked from the moment the GED driver binds.

use crate::Platform;

/// The power button wired to I/O APIC input `gsi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerButton {
    gsi: u32,
    presses: u64,
}

impl PowerButton {
    pub const fn new(gsi: u32) -> Self {
        Self { gsi, presses: 0 }
    }

    /// The I/O APIC input the button's GED interrupt arrives on.
    pub const fn gsi(&self) -> u32 {
        self.gsi
    }

    /// Presses and releases the button: one pulse (assert, deassert) of the
    /// line, which the guest sees as one KEY_POWER press.
    pub fn press(&mut self, platform: &mut dyn Platform) {
        platform.set_irq_line(self.gsi, true);
        platform.set_irq_line(self.gsi, false);
        self.presses = self.presses.saturating_add(1);
    }

    /// How often the button has been pressed.
    pub const fn presses(&self) -> u64 {
        self.presses
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioapic::IoApic;
    use crate::testing::RecordingPlatform;
    use crate::{Device, InterruptMessage};

    const GSI: u32 = 23;
    const VECTOR: u8 = 0x31;

    /// Programs `pin` as Linux does for the GED's interrupt: edge-triggered,
    /// active high, fixed delivery to APIC 0, unmasked.
    fn ioapic_with_ged_pin(platform: &mut RecordingPlatform) -> IoApic {
        let mut ioapic = IoApic::new(1);
        let low_register = 0x10 + 2 * GSI as u64;
        for (register, value) in [(low_register + 1, 0), (low_register, u64::from(VECTOR))] {
            ioapic.write(0x00, 4, register, platform);
            ioapic.write(0x10, 4, value, platform);
        }
        ioapic
    }

    /// What the hypervisor does after an access: carries the lines a device
    /// drove, in order, to the I/O APIC.
    fn settle(ioapic: &mut IoApic, platform: &mut RecordingPlatform) {
        let lines = core::mem::take(&mut platform.irq_lines);
        for (gsi, asserted) in lines {
            ioapic.set_irq(gsi, asserted, platform);
        }
    }

    #[test]
    fn a_press_is_one_pulse_of_its_line() {
        let mut button = PowerButton::new(GSI);
        let platform = &mut RecordingPlatform::default();
        assert_eq!((button.gsi(), button.presses()), (GSI, 0));
        button.press(platform);
        assert_eq!(platform.irq_lines, [(GSI, true), (GSI, false)]);
        assert_eq!(button.presses(), 1);
        assert!(platform.interrupts.is_empty(), "the line reaches no APIC by itself");
    }

    #[test]
    fn each_press_delivers_exactly_one_edge_interrupt() {
        let platform = &mut RecordingPlatform::default();
        let mut ioapic = ioapic_with_ged_pin(platform);
        let mut button = PowerButton::new(GSI);
        let message = InterruptMessage {
            vector: VECTOR,
            destination: 0,
            level_triggered: false,
        };
        button.press(platform);
        settle(&mut ioapic, platform);
        assert_eq!(platform.interrupts, [message]);
        // No EOI is needed (or expected) before the next press.
        button.press(platform);
        button.press(platform);
        settle(&mut ioapic, platform);
        assert_eq!(platform.interrupts, [message; 3]);
        assert_eq!(button.presses(), 3);
    }
}

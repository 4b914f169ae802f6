//! A recording [`Platform`] for device-model tests.

use crate::{InterruptMessage, Platform, PowerAction};

#[derive(Default)]
pub struct RecordingPlatform {
    pub irq_lines: Vec<(u32, bool)>,
    pub interrupts: Vec<InterruptMessage>,
    pub console: Vec<u8>,
    pub power: Vec<PowerAction>,
    pub now_ns: u64,
}

impl Platform for RecordingPlatform {
    fn set_irq_line(&mut self, gsi: u32, asserted: bool) {
        self.irq_lines.push((gsi, asserted));
    }
    fn deliver_interrupt(&mut self, message: InterruptMessage) {
        self.interrupts.push(message);
    }
    fn console_output(&mut self, byte: u8) {
        self.console.push(byte);
    }
    fn power(&mut self, action: PowerAction) {
        self.power.push(action);
    }
    fn now_ns(&self) -> u64 {
        self.now_ns
    }
}

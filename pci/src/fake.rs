//! A fake configuration space for tests: functions as 256-byte arrays;
//! BARs answer the sizing protocol; absent functions read all ones.

use std::collections::BTreeMap;

use crate::{header, Bdf, ConfigAccess};

pub struct FakeFunction {
    pub space: [u32; 64],
    /// Per BAR (index 0..6): the size mask its writable bits allow
    /// (e.g. !(0x1000 - 1) for a 4 KiB memory BAR), 0 for none.
    pub bar_masks: [u32; 6],
}

#[derive(Default)]
pub struct FakeConfig {
    pub functions: BTreeMap<Bdf, FakeFunction>,
    pub reads: usize,
    /// Every write, in order: (function, offset, value).
    pub writes: Vec<(Bdf, u16, u32)>,
}

impl FakeConfig {
    pub fn add(&mut self, bdf: Bdf, vendor: u16, device: u16, class: u32, header_type: u8) -> &mut FakeFunction {
        let function = self.functions.entry(bdf).or_default();
        function.space[0] = u32::from(vendor) | u32::from(device) << 16;
        function.space[2] = class << 8;
        function.space[3] = u32::from(header_type) << 16;
        function
    }
}

impl Default for FakeFunction {
    fn default() -> Self {
        Self {
            space: [0; 64],
            bar_masks: [0; 6],
        }
    }
}

impl FakeFunction {
    pub fn set8(&mut self, offset: u16, value: u8) {
        let word = &mut self.space[usize::from(offset / 4)];
        let shift = (offset % 4) * 8;
        *word = (*word & !(0xff << shift)) | u32::from(value) << shift;
    }

    pub fn set_status(&mut self, status: u16) {
        let word = &mut self.space[1];
        *word = (*word & 0xffff) | u32::from(status) << 16;
    }
}

impl ConfigAccess for FakeConfig {
    fn read32(&mut self, function: Bdf, offset: u16) -> u32 {
        self.reads += 1;
        self.functions
            .get(&function)
            .and_then(|f| f.space.get(usize::from(offset / 4)).copied())
            .unwrap_or(u32::MAX)
    }

    fn write32(&mut self, function: Bdf, offset: u16, value: u32) {
        self.writes.push((function, offset, value));
        let Some(f) = self.functions.get_mut(&function) else {
            return;
        };
        let index = usize::from(offset / 4);
        let bar = usize::from(offset.wrapping_sub(header::BAR0) / 4);
        if (header::BAR0..header::BAR0 + 24).contains(&offset) {
            let mask = f.bar_masks[bar];
            // The upper half of a 64-bit BAR has no type bits.
            let upper_half = bar > 0 && f.space[index - 1] & 0x7 == 0x4;
            let type_bits = if upper_half {
                0
            } else {
                f.space[index] & if f.space[index] & 1 != 0 { 0x3 } else { 0xf }
            };
            f.space[index] = (value & mask) | type_bits;
        } else if let Some(word) = f.space.get_mut(index) {
            *word = value;
        }
    }
}

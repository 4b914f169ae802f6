//! Dom0's memory window (ABI 1.3): DomUs' RAM mapped into slots of the
//! management function's BAR 4, so that Dom0's backends reach the rings and
//! buffers of the DomUs they serve. Only Dom0's EPT ever maps it; a slot is
//! unmapped (and the caller flushes Dom0's EPT translations) before the
//! DomU's RAM goes back to the host, so no page is reachable after reuse.

use alloc::vec::Vec;

use keel_abi::mgmt::virtio::window;
use keel_memory::HostPhysAddr;

use super::{Domain, DomainError};

/// One DomU's RAM as (guest-physical, host-physical, length) runs.
pub type RamRuns = Vec<(u64, HostPhysAddr, u64)>;

/// Where the window decodes and what each slot maps.
#[derive(Default)]
pub struct Window {
    base: Option<u64>,
    slots: [Option<RamRuns>; window::SLOTS as usize],
}

impl Window {
    /// Guest-physical address of `gpa` of slot `slot` at `base`.
    fn address(base: u64, slot: usize, gpa: u64) -> u64 {
        base + slot as u64 * window::SLOT_BYTES + gpa
    }
}

impl Domain {
    /// Maps `runs` (a DomU's RAM, each run below the slot size) into window
    /// slot `slot`, replacing what the slot mapped. Where the window does
    /// not decode, the runs are kept and mapped when it does. The caller
    /// flushes the EPT translations.
    pub fn map_window_slot(&mut self, slot: usize, runs: RamRuns) -> Result<(), DomainError> {
        if slot >= self.window.slots.len()
            || runs
                .iter()
                .any(|&(gpa, _, len)| gpa.checked_add(len).is_none_or(|end| end > window::SLOT_BYTES))
        {
            return Err(DomainError::WindowSlot(slot));
        }
        self.unmap_window_slot(slot);
        if let Some(base) = self.window.base {
            self.map_runs(base, slot, &runs)?;
        }
        self.window.slots[slot] = Some(runs);
        Ok(())
    }

    /// Unmaps window slot `slot`. The caller flushes the EPT translations
    /// (INVEPT) before Dom0 runs again and before the RAM is reused.
    pub fn unmap_window_slot(&mut self, slot: usize) {
        let Some(runs) = self.window.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        if let Some(base) = self.window.base {
            for &(gpa, _, _) in &runs {
                self.unmap_shared(Window::address(base, slot, gpa));
            }
        }
    }

    /// The window now decodes at `base` (or nowhere): every mapped slot
    /// moves with it. The caller flushes the EPT translations.
    pub fn move_window(&mut self, base: Option<u64>) {
        if self.window.base == base {
            return;
        }
        let slots: Vec<(usize, RamRuns)> = (0..self.window.slots.len())
            .filter_map(|slot| Some((slot, self.window.slots[slot].clone()?)))
            .collect();
        for &(slot, _) in &slots {
            self.unmap_window_slot(slot);
        }
        self.window.base = base;
        for (slot, runs) in slots {
            if let Err(error) = self.map_window_slot(slot, runs) {
                log::warn!("domain {}: window slot {slot} not mapped: {error}", self.id);
            }
        }
    }

    /// Records where the window decodes before anything is mapped.
    pub(super) fn set_window_base(&mut self, base: Option<u64>) {
        self.window.base = base;
    }

    fn map_runs(&mut self, base: u64, slot: usize, runs: &[(u64, HostPhysAddr, u64)]) -> Result<(), DomainError> {
        for (index, &(gpa, hpa, len)) in runs.iter().enumerate() {
            if let Err(error) = self.map_shared(Window::address(base, slot, gpa), hpa, len) {
                for &(gpa, _, _) in &runs[..index] {
                    self.unmap_shared(Window::address(base, slot, gpa));
                }
                return Err(error);
            }
        }
        Ok(())
    }
}

//! Register semantics shared by the x2APIC MSR and xAPIC MMIO front ends.
//!
//! A front end decodes its address into a [`Register`], handles the few
//! registers whose format differs between the modes (ID, LDR, ICR, DFR,
//! SELF IPI), and otherwise validates the value its own way (x2APIC faults
//! on reserved bits, xAPIC drops them) before calling
//! [`LocalApic::write_common`]; reads go through [`LocalApic::read_common`].

use super::registers::{LvtEntry, Register, LVT_MASKED, SVR_SOFTWARE_ENABLE};
use super::{ApicEffect, LocalApic, APIC_VERSION};

impl LocalApic {
    /// A register whose value reads the same in both modes, at guest TSC
    /// `now_tsc`. `None` for the mode-specific ones (ID, LDR, ICR) and the
    /// write-only ones (EOI, SELF IPI), which the front ends handle.
    pub(super) fn read_common(&self, register: Register, now_tsc: u64) -> Option<u32> {
        let value = match register {
            Register::Version => APIC_VERSION,
            Register::TaskPriority => self.task_priority,
            Register::ProcessorPriority => self.processor_priority(),
            Register::SpuriousVector => self.spurious_vector,
            Register::InService(bank) => self.in_service.bank(bank),
            Register::TriggerMode(bank) => self.trigger_mode.bank(bank),
            Register::InterruptRequest(bank) => self.requested.bank(bank),
            Register::ErrorStatus => self.error_status,
            Register::Lvt(entry) => self.lvt.get(entry),
            Register::TimerInitialCount => self.timer_initial_count,
            Register::TimerCurrentCount => self.timer_current_count(now_tsc),
            Register::TimerDivideConfig => self.timer_divide_config,
            Register::Id
            | Register::LogicalDestination
            | Register::InterruptCommand
            | Register::EndOfInterrupt
            | Register::SelfIpi => return None,
        };
        Some(value)
    }

    /// Applies a write the front end has already validated: `value` sets no
    /// reserved bits (for LVTs: is what [`LvtEntry::sanitize`] or
    /// [`LvtEntry::truncate`] returned, with a non-reserved timer mode).
    /// Read-only and mode-specific registers are the front end's business
    /// and are ignored here.
    pub(super) fn write_common(&mut self, register: Register, value: u32, now_tsc: u64) -> Option<ApicEffect> {
        match register {
            Register::EndOfInterrupt => return self.end_of_interrupt(),
            Register::TaskPriority => self.task_priority = value,
            Register::SpuriousVector => self.write_spurious_vector(value),
            // The write latches the errors seen since the last write into
            // the readable register; the value written does not matter.
            Register::ErrorStatus => self.error_status = core::mem::take(&mut self.pending_errors),
            Register::Lvt(entry) => self.write_lvt(entry, value, now_tsc),
            Register::TimerInitialCount => self.write_timer_initial_count(value, now_tsc),
            Register::TimerDivideConfig => self.write_timer_divide_config(value, now_tsc),
            Register::Id
            | Register::Version
            | Register::ProcessorPriority
            | Register::LogicalDestination
            | Register::InService(_)
            | Register::TriggerMode(_)
            | Register::InterruptRequest(_)
            | Register::InterruptCommand
            | Register::TimerCurrentCount
            | Register::SelfIpi => {}
        }
        None
    }

    fn write_spurious_vector(&mut self, value: u32) {
        self.spurious_vector = value;
        // SDM 11.4.7.2: software-disabling masks every LVT entry.
        if value & SVR_SOFTWARE_ENABLE == 0 {
            self.lvt.mask_all();
        }
    }

    fn write_lvt(&mut self, entry: LvtEntry, mut value: u32, now_tsc: u64) {
        // While software-disabled, LVT mask bits cannot be cleared.
        if !self.software_enabled() {
            value |= LVT_MASKED;
        }
        if entry == LvtEntry::Timer {
            self.write_lvt_timer(value, now_tsc);
        } else {
            self.lvt.set(entry, value);
        }
    }
}

//! `IA32_VMX_MISC` decoding (SDM A.6).

/// Guest activity states (values of the `GUEST_ACTIVITY_STATE` VMCS field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ActivityState {
    Active = 0,
    Hlt = 1,
    Shutdown = 2,
    WaitForSipi = 3,
}

/// Miscellaneous VMX limits and features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmxMisc {
    /// The preemption timer counts down by 1 each time TSC bit X changes,
    /// where X is this value (i.e. it ticks at TSC rate / 2^X).
    pub preemption_timer_rate: u8,
    /// VM exits store EFER.LMA into the "IA-32e mode guest" entry control.
    pub stores_lma_on_exit: bool,
    pub activity_hlt: bool,
    pub activity_shutdown: bool,
    pub activity_wait_for_sipi: bool,
    /// Number of CR3-target values the processor honours.
    pub cr3_target_count: u16,
    /// Recommended maximum entries in each VM-exit/entry MSR list.
    pub max_msr_list_entries: u32,
    /// VMWRITE may modify the read-only VM-exit information fields.
    pub vmwrite_any_field: bool,
    /// Software interrupts/exceptions may be injected with instruction length 0.
    pub inject_zero_length_instruction: bool,
}

impl VmxMisc {
    pub fn from_msr(raw: u64) -> Self {
        let bit = |n: u32| raw & (1u64 << n) != 0;
        Self {
            preemption_timer_rate: (raw & 0x1F) as u8,
            stores_lma_on_exit: bit(5),
            activity_hlt: bit(6),
            activity_shutdown: bit(7),
            activity_wait_for_sipi: bit(8),
            cr3_target_count: ((raw >> 16) & 0x1FF) as u16,
            max_msr_list_entries: (((raw >> 25) & 0x7) as u32 + 1) * 512,
            vmwrite_any_field: bit(29),
            inject_zero_length_instruction: bit(30),
        }
    }

    /// Whether the guest may be entered in `state`; Active is always allowed.
    pub fn supports_activity_state(&self, state: ActivityState) -> bool {
        match state {
            ActivityState::Active => true,
            ActivityState::Hlt => self.activity_hlt,
            ActivityState::Shutdown => self.activity_shutdown,
            ActivityState::WaitForSipi => self.activity_wait_for_sipi,
        }
    }

    /// Preemption-timer ticks covering `tsc_cycles` TSC cycles (rounded down).
    pub fn tsc_to_preemption_ticks(&self, tsc_cycles: u64) -> u64 {
        tsc_cycles >> self.preemption_timer_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_skylake_misc() {
        // Skylake client: rate 5, LMA store, HLT/shutdown/SIPI, 4 CR3 targets,
        // 512 MSR entries, VMWRITE-any, zero-length injection.
        let misc = VmxMisc::from_msr(0x7004_C1E5);
        assert_eq!(misc.preemption_timer_rate, 5);
        assert!(misc.stores_lma_on_exit);
        assert!(misc.activity_hlt && misc.activity_shutdown && misc.activity_wait_for_sipi);
        assert_eq!(misc.cr3_target_count, 4);
        assert_eq!(misc.max_msr_list_entries, 512);
        assert!(misc.vmwrite_any_field);
        assert!(misc.inject_zero_length_instruction);
        assert_eq!(misc.tsc_to_preemption_ticks(1000), 31);
    }

    #[test]
    fn msr_list_size_scales_with_bits_27_25() {
        assert_eq!(VmxMisc::from_msr(0b111 << 25).max_msr_list_entries, 4096);
        assert_eq!(VmxMisc::from_msr(0b001 << 25).max_msr_list_entries, 1024);
    }

    #[test]
    fn activity_states_follow_bits() {
        let misc = VmxMisc::from_msr(1 << 6);
        assert!(misc.supports_activity_state(ActivityState::Active));
        assert!(misc.supports_activity_state(ActivityState::Hlt));
        assert!(!misc.supports_activity_state(ActivityState::Shutdown));
        assert!(!misc.supports_activity_state(ActivityState::WaitForSipi));
    }
}

//! VM-execution, VM-exit and VM-entry control bits (SDM Vol. 3 24.6–24.8).
//!
//! These are the values passed as `required`/`optional` to
//! [`crate::caps::AllowedControls::adjust`] (via `.bits()`); the adjusted
//! `u32` is what gets written to the VMCS.

use bitflags::bitflags;

bitflags! {
    /// Pin-based VM-execution controls (`PIN_BASED_VM_EXEC_CONTROL`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PinBasedControls: u32 {
        const EXTERNAL_INTERRUPT_EXITING = 1 << 0;
        const NMI_EXITING = 1 << 3;
        const VIRTUAL_NMIS = 1 << 5;
        const PREEMPTION_TIMER = 1 << 6;
        const PROCESS_POSTED_INTERRUPTS = 1 << 7;
    }
}

bitflags! {
    /// Primary processor-based VM-execution controls (`CPU_BASED_VM_EXEC_CONTROL`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PrimaryControls: u32 {
        const INTERRUPT_WINDOW_EXITING = 1 << 2;
        const USE_TSC_OFFSETTING = 1 << 3;
        const HLT_EXITING = 1 << 7;
        const INVLPG_EXITING = 1 << 9;
        const MWAIT_EXITING = 1 << 10;
        const RDPMC_EXITING = 1 << 11;
        const RDTSC_EXITING = 1 << 12;
        const CR3_LOAD_EXITING = 1 << 15;
        const CR3_STORE_EXITING = 1 << 16;
        const ACTIVATE_TERTIARY = 1 << 17;
        const CR8_LOAD_EXITING = 1 << 19;
        const CR8_STORE_EXITING = 1 << 20;
        const USE_TPR_SHADOW = 1 << 21;
        const NMI_WINDOW_EXITING = 1 << 22;
        const MOV_DR_EXITING = 1 << 23;
        const UNCONDITIONAL_IO_EXITING = 1 << 24;
        const USE_IO_BITMAPS = 1 << 25;
        const MONITOR_TRAP_FLAG = 1 << 27;
        const USE_MSR_BITMAPS = 1 << 28;
        const MONITOR_EXITING = 1 << 29;
        const PAUSE_EXITING = 1 << 30;
        const ACTIVATE_SECONDARY = 1 << 31;
    }
}

bitflags! {
    /// Secondary processor-based VM-execution controls (`SECONDARY_VM_EXEC_CONTROL`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SecondaryControls: u32 {
        const VIRTUALIZE_APIC_ACCESSES = 1 << 0;
        const ENABLE_EPT = 1 << 1;
        const DESCRIPTOR_TABLE_EXITING = 1 << 2;
        const ENABLE_RDTSCP = 1 << 3;
        const VIRTUALIZE_X2APIC = 1 << 4;
        const ENABLE_VPID = 1 << 5;
        const WBINVD_EXITING = 1 << 6;
        const UNRESTRICTED_GUEST = 1 << 7;
        const APIC_REGISTER_VIRT = 1 << 8;
        const VIRTUAL_INTERRUPT_DELIVERY = 1 << 9;
        const PAUSE_LOOP_EXITING = 1 << 10;
        const RDRAND_EXITING = 1 << 11;
        const ENABLE_INVPCID = 1 << 12;
        const ENABLE_VMFUNC = 1 << 13;
        const VMCS_SHADOWING = 1 << 14;
        const ENCLS_EXITING = 1 << 15;
        const RDSEED_EXITING = 1 << 16;
        const ENABLE_PML = 1 << 17;
        const EPT_VIOLATION_VE = 1 << 18;
        const CONCEAL_VMX_FROM_PT = 1 << 19;
        const ENABLE_XSAVES = 1 << 20;
        const MODE_BASED_EPT_EXECUTE = 1 << 22;
        const SUBPAGE_WRITE_PERMISSIONS = 1 << 23;
        const PT_USES_GUEST_PHYSICAL = 1 << 24;
        const USE_TSC_SCALING = 1 << 25;
        const ENABLE_USER_WAIT_PAUSE = 1 << 26;
        const ENABLE_PCONFIG = 1 << 27;
        const ENCLV_EXITING = 1 << 28;
    }
}

bitflags! {
    /// VM-exit controls (`VM_EXIT_CONTROLS`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct ExitControls: u32 {
        const SAVE_DEBUG_CONTROLS = 1 << 2;
        /// Return to a 64-bit host; required for a 64-bit hypervisor.
        const HOST_ADDRESS_SPACE_SIZE = 1 << 9;
        const LOAD_PERF_GLOBAL = 1 << 12;
        const ACK_INTERRUPT_ON_EXIT = 1 << 15;
        const SAVE_PAT = 1 << 18;
        const LOAD_PAT = 1 << 19;
        const SAVE_EFER = 1 << 20;
        const LOAD_EFER = 1 << 21;
        const SAVE_PREEMPTION_TIMER = 1 << 22;
        const CLEAR_BNDCFGS = 1 << 23;
        const CONCEAL_VMX_FROM_PT = 1 << 24;
        const CLEAR_RTIT_CTL = 1 << 25;
        const LOAD_CET_STATE = 1 << 28;
        const LOAD_PKRS = 1 << 29;
    }
}

bitflags! {
    /// VM-entry controls (`VM_ENTRY_CONTROLS`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct EntryControls: u32 {
        const LOAD_DEBUG_CONTROLS = 1 << 2;
        /// The guest runs in IA-32e (long) mode after entry.
        const IA32E_MODE_GUEST = 1 << 9;
        const ENTRY_TO_SMM = 1 << 10;
        const DEACTIVATE_DUAL_MONITOR = 1 << 11;
        const LOAD_PERF_GLOBAL = 1 << 13;
        const LOAD_PAT = 1 << 14;
        const LOAD_EFER = 1 << 15;
        const LOAD_BNDCFGS = 1 << 16;
        const CONCEAL_VMX_FROM_PT = 1 << 17;
        const LOAD_RTIT_CTL = 1 << 18;
        const LOAD_CET_STATE = 1 << 20;
        const LOAD_PKRS = 1 << 22;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdm_bit_positions() {
        assert_eq!(PinBasedControls::EXTERNAL_INTERRUPT_EXITING.bits(), 0x1);
        assert_eq!(PinBasedControls::PREEMPTION_TIMER.bits(), 0x40);
        assert_eq!(PrimaryControls::HLT_EXITING.bits(), 0x80);
        assert_eq!(PrimaryControls::USE_IO_BITMAPS.bits(), 0x0200_0000);
        assert_eq!(PrimaryControls::USE_MSR_BITMAPS.bits(), 0x1000_0000);
        assert_eq!(PrimaryControls::ACTIVATE_SECONDARY.bits(), 0x8000_0000);
        assert_eq!(SecondaryControls::ENABLE_EPT.bits(), 0x2);
        assert_eq!(SecondaryControls::UNRESTRICTED_GUEST.bits(), 0x80);
        assert_eq!(SecondaryControls::USE_TSC_SCALING.bits(), 0x0200_0000);
        assert_eq!(ExitControls::HOST_ADDRESS_SPACE_SIZE.bits(), 0x200);
        assert_eq!(ExitControls::LOAD_EFER.bits(), 0x0020_0000);
        assert_eq!(EntryControls::IA32E_MODE_GUEST.bits(), 0x200);
        assert_eq!(EntryControls::LOAD_EFER.bits(), 0x8000);
    }

    #[test]
    fn flags_compose_into_control_words() {
        let wanted = ExitControls::HOST_ADDRESS_SPACE_SIZE | ExitControls::SAVE_EFER | ExitControls::LOAD_EFER;
        assert_eq!(wanted.bits(), 0x0030_0200);
        assert_eq!(
            PrimaryControls::from_bits_truncate(0x8000_0080),
            PrimaryControls::ACTIVATE_SECONDARY | PrimaryControls::HLT_EXITING
        );
    }
}

//! `IA32_VMX_EPT_VPID_CAP` decoding (SDM A.10).

/// EPT and VPID features the processor supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EptVpidCaps {
    pub execute_only: bool,
    pub page_walk_4: bool,
    pub page_walk_5: bool,
    pub memtype_uc: bool,
    pub memtype_wb: bool,
    pub pages_2m: bool,
    pub pages_1g: bool,
    pub invept: bool,
    pub accessed_dirty: bool,
    pub advanced_exit_info: bool,
    pub invept_single_context: bool,
    pub invept_all_context: bool,
    pub invvpid: bool,
    pub invvpid_individual_address: bool,
    pub invvpid_single_context: bool,
    pub invvpid_all_context: bool,
    pub invvpid_single_context_retaining_globals: bool,
}

impl EptVpidCaps {
    pub fn from_msr(raw: u64) -> Self {
        let bit = |n: u32| raw & (1u64 << n) != 0;
        Self {
            execute_only: bit(0),
            page_walk_4: bit(6),
            page_walk_5: bit(7),
            memtype_uc: bit(8),
            memtype_wb: bit(14),
            pages_2m: bit(16),
            pages_1g: bit(17),
            invept: bit(20),
            accessed_dirty: bit(21),
            advanced_exit_info: bit(22),
            invept_single_context: bit(25),
            invept_all_context: bit(26),
            invvpid: bit(32),
            invvpid_individual_address: bit(40),
            invvpid_single_context: bit(41),
            invvpid_all_context: bit(42),
            invvpid_single_context_retaining_globals: bit(43),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_typical_skylake_value() {
        // Value reported by a Skylake client part (and by Bochs' skylake model).
        let caps = EptVpidCaps::from_msr(0x0000_0F01_0633_4141);
        assert!(caps.execute_only);
        assert!(caps.page_walk_4);
        assert!(!caps.page_walk_5);
        assert!(caps.memtype_uc);
        assert!(caps.memtype_wb);
        assert!(caps.pages_2m);
        assert!(caps.pages_1g);
        assert!(caps.invept);
        assert!(caps.accessed_dirty);
        assert!(!caps.advanced_exit_info);
        assert!(caps.invept_single_context);
        assert!(caps.invept_all_context);
        assert!(caps.invvpid);
        assert!(caps.invvpid_individual_address);
        assert!(caps.invvpid_single_context);
        assert!(caps.invvpid_all_context);
        assert!(caps.invvpid_single_context_retaining_globals);
    }

    #[test]
    fn zero_means_nothing_supported() {
        assert_eq!(EptVpidCaps::from_msr(0), EptVpidCaps::default());
    }

    #[test]
    fn single_bits_map_to_single_flags() {
        assert!(EptVpidCaps::from_msr(1 << 14).memtype_wb);
        assert!(!EptVpidCaps::from_msr(1 << 14).memtype_uc);
        assert!(EptVpidCaps::from_msr(1 << 42).invvpid_all_context);
        assert!(!EptVpidCaps::from_msr(1 << 42).invvpid);
    }
}

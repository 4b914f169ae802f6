//! What guests see of CPUID: the host's answers with virtualization-sensitive
//! features hidden, the hypervisor bit set, and Keel's own leaves answered.
//! Pure logic so it is unit-tested on the host.

use keel_abi::cpuid::{
    signature_registers, HYPERVISOR_LEAF_BASE, HYPERVISOR_LEAF_MAX, LEAF1_ECX_HYPERVISOR, LEAF1_ECX_SMX,
    LEAF1_ECX_VMX,
};

/// One CPUID answer: EAX, EBX, ECX, EDX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// The hypervisor range Keel owns: 0x4000_0000..=0x4FFF_FFFF.
pub fn is_hypervisor_leaf(leaf: u32) -> bool {
    leaf & 0xf000_0000 == HYPERVISOR_LEAF_BASE
}

/// Answers a hypervisor-range leaf (no host CPUID needed).
pub fn hypervisor_leaf(leaf: u32) -> CpuidResult {
    if leaf == HYPERVISOR_LEAF_BASE {
        let [ebx, ecx, edx] = signature_registers();
        CpuidResult { eax: HYPERVISOR_LEAF_MAX, ebx, ecx, edx }
    } else {
        CpuidResult { eax: 0, ebx: 0, ecx: 0, edx: 0 }
    }
}

/// Adjusts the host's answer for `leaf` before the guest sees it.
pub fn filter_host_leaf(leaf: u32, mut host: CpuidResult) -> CpuidResult {
    if leaf == 1 {
        host.ecx &= !(LEAF1_ECX_VMX | LEAF1_ECX_SMX);
        host.ecx |= LEAF1_ECX_HYPERVISOR;
    }
    host
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_one_hides_vmx_and_smx_and_sets_hypervisor() {
        let host = CpuidResult { eax: 0x806ec, ebx: 0, ecx: 0x7ffa_fbff, edx: 0xbfeb_fbff };
        let guest = filter_host_leaf(1, host);
        assert_eq!(guest.ecx & LEAF1_ECX_VMX, 0);
        assert_eq!(guest.ecx & LEAF1_ECX_SMX, 0);
        assert_ne!(guest.ecx & LEAF1_ECX_HYPERVISOR, 0);
        assert_eq!(guest.eax, host.eax);
        assert_eq!(guest.edx, host.edx);
    }

    #[test]
    fn other_leaves_pass_through() {
        let host = CpuidResult { eax: 1, ebx: 2, ecx: 3, edx: 4 };
        assert_eq!(filter_host_leaf(7, host), host);
    }

    #[test]
    fn signature_leaf_spells_keel() {
        let answer = hypervisor_leaf(0x4000_0000);
        assert_eq!(answer.eax, HYPERVISOR_LEAF_MAX);
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&answer.ebx.to_le_bytes());
        bytes[4..8].copy_from_slice(&answer.ecx.to_le_bytes());
        bytes[8..].copy_from_slice(&answer.edx.to_le_bytes());
        assert_eq!(&bytes, b"KeelKeelKeel");
        assert!(is_hypervisor_leaf(0x4000_0001));
        assert!(!is_hypervisor_leaf(0x8000_0000));
        assert_eq!(hypervisor_leaf(0x4000_0005), CpuidResult { eax: 0, ebx: 0, ecx: 0, edx: 0 });
    }
}

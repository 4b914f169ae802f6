//! Which control-register values a guest may load, and which CR4 bits it
//! may change without an exit. CR4 must match what CPUID shows: a guest
//! must not turn on a feature Keel hides (VMX, SMX, XSAVE, protection
//! keys, CET, 5-level paging, ...), because Keel does not virtualize it.

use crate::cpuid_policy::CpuidResult;

pub const CR0_PE: u64 = 1;
pub const CR0_NW: u64 = 1 << 29;
pub const CR0_CD: u64 = 1 << 30;
pub const CR0_PG: u64 = 1 << 31;

pub const CR4_VME: u64 = 1;
pub const CR4_PVI: u64 = 1 << 1;
pub const CR4_TSD: u64 = 1 << 2;
pub const CR4_DE: u64 = 1 << 3;
pub const CR4_PSE: u64 = 1 << 4;
pub const CR4_PAE: u64 = 1 << 5;
pub const CR4_MCE: u64 = 1 << 6;
pub const CR4_PGE: u64 = 1 << 7;
pub const CR4_PCE: u64 = 1 << 8;
pub const CR4_OSFXSR: u64 = 1 << 9;
pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
pub const CR4_FSGSBASE: u64 = 1 << 16;
pub const CR4_PCIDE: u64 = 1 << 17;
pub const CR4_OSXSAVE: u64 = 1 << 18;
pub const CR4_SMEP: u64 = 1 << 20;
pub const CR4_SMAP: u64 = 1 << 21;

const EFER_LMA: u64 = 1 << 10;

const LEAF1_ECX_PCID: u32 = 1 << 17;
const LEAF1_ECX_XSAVE: u32 = 1 << 26;
const LEAF1_EDX_VME: u32 = 1 << 1;
const LEAF1_EDX_DE: u32 = 1 << 2;
const LEAF1_EDX_PSE: u32 = 1 << 3;
const LEAF1_EDX_PAE: u32 = 1 << 6;
const LEAF1_EDX_MCE: u32 = 1 << 7;
const LEAF1_EDX_PGE: u32 = 1 << 13;
const LEAF1_EDX_FXSR: u32 = 1 << 24;
const LEAF1_EDX_SSE: u32 = 1 << 25;
const LEAF7_EBX_FSGSBASE: u32 = 1;
const LEAF7_EBX_SMEP: u32 = 1 << 7;
const LEAF7_EBX_SMAP: u32 = 1 << 20;

/// CR4 bits a guest may set, given the CPUID leaves 1 and 7 (subleaf 0)
/// *it* sees.
pub fn cr4_allowed(leaf1: CpuidResult, leaf7: CpuidResult) -> u64 {
    let edx = |bit: u32, cr4: u64| if leaf1.edx & bit != 0 { cr4 } else { 0 };
    let ecx = |bit: u32, cr4: u64| if leaf1.ecx & bit != 0 { cr4 } else { 0 };
    let ebx7 = |bit: u32, cr4: u64| if leaf7.ebx & bit != 0 { cr4 } else { 0 };
    // TSD and PCE need no CPUID flag (RDTSC and RDPMC exist everywhere).
    CR4_TSD
        | CR4_PCE
        | edx(LEAF1_EDX_VME, CR4_VME | CR4_PVI)
        | edx(LEAF1_EDX_DE, CR4_DE)
        | edx(LEAF1_EDX_PSE, CR4_PSE)
        | edx(LEAF1_EDX_PAE, CR4_PAE)
        | edx(LEAF1_EDX_MCE, CR4_MCE)
        | edx(LEAF1_EDX_PGE, CR4_PGE)
        | edx(LEAF1_EDX_FXSR, CR4_OSFXSR)
        | edx(LEAF1_EDX_SSE, CR4_OSXMMEXCPT)
        | ecx(LEAF1_ECX_PCID, CR4_PCIDE)
        | ecx(LEAF1_ECX_XSAVE, CR4_OSXSAVE)
        | ebx7(LEAF7_EBX_FSGSBASE, CR4_FSGSBASE)
        | ebx7(LEAF7_EBX_SMEP, CR4_SMEP)
        | ebx7(LEAF7_EBX_SMAP, CR4_SMAP)
}

/// CR4 bits the guest changes without an exit: ones that need no checks
/// and that Linux flips often (PGE, for every global TLB flush), minus any
/// VMX pins (`fixed0`: must stay 1; `!fixed1`: must stay 0). Every other
/// bit, all 64 of them, is Keel's: writing it exits and is checked.
pub fn cr4_guest_owned(allowed: u64, fixed0: u64, fixed1: u64) -> u64 {
    let free = CR4_TSD | CR4_DE | CR4_PSE | CR4_MCE | CR4_PGE | CR4_PCE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    free & allowed & !fixed0 & fixed1
}

/// The CR4 guest/host mask: every bit the guest does not own.
pub fn cr4_mask(allowed: u64, fixed0: u64, fixed1: u64) -> u64 {
    !cr4_guest_owned(allowed, fixed0, fixed1)
}

/// The #GP checks of MOV to CR0 (SDM vol. 2, "MOV—Move to Control
/// Registers") that VMX's fixed bits do not cover. `code_64bit`: the guest
/// runs 64-bit code (IA-32e mode and CS.L).
pub fn cr0_valid(value: u64, code_64bit: bool) -> bool {
    value >> 32 == 0
        && !(value & CR0_PG != 0 && value & CR0_PE == 0)
        && !(value & CR0_NW != 0 && value & CR0_CD == 0)
        // Software leaves long mode from compatibility mode, not 64-bit code.
        && !(code_64bit && value & CR0_PG == 0)
}

/// The #GP checks of MOV to CR4: only bits CPUID shows (`allowed`), and
/// PAE stays set while long mode is active.
pub fn cr4_valid(value: u64, allowed: u64, efer: u64) -> bool {
    value & !allowed == 0 && !(efer & EFER_LMA != 0 && value & CR4_PAE == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EFER_LMA_SET: u64 = EFER_LMA | (1 << 8);

    fn skylake() -> (CpuidResult, CpuidResult) {
        let leaf1 = CpuidResult {
            eax: 0,
            ebx: 0,
            ecx: LEAF1_ECX_PCID,
            edx: 0xbfeb_fbff,
        };
        let leaf7 = CpuidResult {
            eax: 0,
            ebx: LEAF7_EBX_FSGSBASE | LEAF7_EBX_SMEP | LEAF7_EBX_SMAP,
            ecx: 0,
            edx: 0,
        };
        (leaf1, leaf7)
    }

    #[test]
    fn hidden_features_cannot_be_enabled() {
        let (leaf1, leaf7) = skylake();
        let allowed = cr4_allowed(leaf1, leaf7);
        let linux = CR4_PAE | CR4_PGE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_FSGSBASE | CR4_PCIDE | CR4_SMEP;
        assert!(cr4_valid(linux, allowed, EFER_LMA_SET));
        // VMXE, SMXE, OSXSAVE (XSAVE hidden), UMIP, LA57, PKE, CET and any
        // bit from 24 up.
        for bit in [13, 14, 18, 11, 12, 22, 23, 24, 32, 40, 63] {
            assert!(!cr4_valid(linux | 1 << bit, allowed, EFER_LMA_SET), "bit {bit}");
        }
    }

    #[test]
    fn osxsave_follows_cpuids_xsave_flag() {
        let (mut leaf1, leaf7) = skylake();
        assert_eq!(cr4_allowed(leaf1, leaf7) & CR4_OSXSAVE, 0);
        leaf1.ecx |= LEAF1_ECX_XSAVE;
        assert_ne!(cr4_allowed(leaf1, leaf7) & CR4_OSXSAVE, 0);
    }

    #[test]
    fn pae_stays_on_in_long_mode() {
        let (leaf1, leaf7) = skylake();
        let allowed = cr4_allowed(leaf1, leaf7);
        assert!(!cr4_valid(CR4_PGE, allowed, EFER_LMA_SET));
        assert!(cr4_valid(CR4_PGE, allowed, 0));
    }

    #[test]
    fn the_mask_leaves_only_harmless_bits_to_the_guest_and_covers_the_high_half() {
        let (leaf1, leaf7) = skylake();
        let allowed = cr4_allowed(leaf1, leaf7);
        let vmxe = 1 << 13;
        let mask = cr4_mask(allowed, vmxe, !0);
        assert_eq!(mask & CR4_PGE, 0, "PGE flips on every global TLB flush");
        for owned in [
            vmxe,
            CR4_OSXSAVE,
            CR4_PAE,
            CR4_SMEP,
            CR4_FSGSBASE,
            CR4_PCIDE,
            1 << 22,
            1 << 40,
            1 << 63,
        ] {
            assert_eq!(mask & owned, owned, "{owned:#x}");
        }
    }

    #[test]
    fn cr0_checks() {
        assert!(cr0_valid(CR0_PE | CR0_PG, true));
        assert!(!cr0_valid(CR0_PG, false), "PG without PE");
        assert!(!cr0_valid(CR0_PE | CR0_NW, false), "NW without CD");
        assert!(!cr0_valid(CR0_PE, true), "clearing PG in 64-bit code");
        assert!(cr0_valid(CR0_PE, false), "clearing PG from compatibility mode");
        assert!(!cr0_valid(CR0_PE | CR0_PG | 1 << 32, true), "reserved high bits");
    }
}

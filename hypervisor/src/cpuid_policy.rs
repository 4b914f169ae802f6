//! What guests see of CPUID: the host's answers with features Keel does not
//! virtualize hidden, the hypervisor bit set, the TSC frequency announced
//! (leaves 0x15/0x16, so guests need no calibration) and Keel's own leaves.
//! Pure logic so it is unit-tested on the host.

use keel_abi::cpuid::{
    signature_registers, HYPERVISOR_LEAF_BASE, HYPERVISOR_LEAF_MAX, LEAF1_ECX_HYPERVISOR, LEAF1_ECX_SMX, LEAF1_ECX_VMX,
};

/// One CPUID answer: EAX, EBX, ECX, EDX.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// Facts about the virtual machine that shape the answers.
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestCpu {
    /// TSC frequency, when known (announced through leaves 0x15/0x16).
    pub tsc_hz: Option<u64>,
    /// The vCPU's (x2)APIC ID.
    pub apic_id: u32,
    /// RDTSCP and INVPCID are only enabled for guests when VMX offers them;
    /// otherwise CPUID must not advertise them (they would raise #UD).
    pub rdtscp: bool,
    pub invpcid: bool,
    /// Leaf 7 EDX: the speculation controls the guest may use
    /// (`speculation::Mitigations::guest_leaf7_edx`).
    pub leaf7_edx: u32,
}

const LEAF7_EBX_INVPCID: u32 = 1 << 10;
const LEAF7_EBX_TSC_ADJUST: u32 = 1 << 1;
const EXTENDED_EDX_RDTSCP: u32 = 1 << 27;

const TSC_LEAF: u32 = 0x15;
const FREQUENCY_LEAF: u32 = 0x16;

// Leaf 1 ECX: monitoring, power-management and XSAVE/AVX features Keel does
// not virtualize (XSAVE is hidden because Bochs' leaf 0xD is inconsistent
// and Keel does not handle XSETBV yet; AVX needs XSAVE).
const LEAF1_ECX_HIDDEN: u32 = LEAF1_ECX_VMX
    | LEAF1_ECX_SMX
    | (1 << 2) // DTES64
    | (1 << 3) // MONITOR/MWAIT
    | (1 << 4) // DS-CPL
    | (1 << 7) // EST
    | (1 << 8) // TM2
    | (1 << 11) // SDBG
    | (1 << 15) // PDCM
    | (1 << 26) // XSAVE
    | (1 << 27) // OSXSAVE
    | (1 << 28); // AVX
                 // Leaf 1 ECX: x2APIC is hidden (Linux needs interrupt remapping to use it
                 // under a hypervisor it does not know); the TSC-deadline timer is offered.
const LEAF1_ECX_X2APIC: u32 = 1 << 21;
const LEAF1_ECX_TSC_DEADLINE: u32 = 1 << 24;
// Leaf 1 EDX: machine check, MTRRs, debug store, thermal monitor, HTT.
const LEAF1_EDX_HIDDEN: u32 =
    (1 << 7) | (1 << 12) | (1 << 14) | (1 << 21) | (1 << 22) | (1 << 28) | (1 << 29) | (1 << 31);
// Leaf 7 EBX features guests may use: FSGSBASE, TSC_ADJUST (Keel emulates
// the MSR; with the invariant TSC it tells Linux the TSC needs no
// clocksource watchdog), BMI1, SMEP, BMI2, ERMS, INVPCID, RDSEED, ADX, SMAP,
// CLFLUSHOPT, CLWB, SHA.
const LEAF7_EBX_ALLOWED: u32 = 1
    | LEAF7_EBX_TSC_ADJUST
    | (1 << 3)
    | (1 << 7)
    | (1 << 8)
    | (1 << 9)
    | (1 << 10)
    | (1 << 18)
    | (1 << 19)
    | (1 << 20)
    | (1 << 23)
    | (1 << 24)
    | (1 << 29);

/// The hypervisor range Keel owns: 0x4000_0000..=0x4FFF_FFFF.
pub fn is_hypervisor_leaf(leaf: u32) -> bool {
    leaf & 0xf000_0000 == HYPERVISOR_LEAF_BASE
}

/// Answers a hypervisor-range leaf (no host CPUID needed).
pub fn hypervisor_leaf(leaf: u32) -> CpuidResult {
    if leaf == HYPERVISOR_LEAF_BASE {
        let [ebx, ecx, edx] = signature_registers();
        CpuidResult {
            eax: HYPERVISOR_LEAF_MAX,
            ebx,
            ecx,
            edx,
        }
    } else {
        CpuidResult::default()
    }
}

/// The guest's answer for `leaf`/`subleaf`, given the host's answer.
pub fn guest_leaf(leaf: u32, subleaf: u32, host: CpuidResult, cpu: &GuestCpu) -> CpuidResult {
    let _ = subleaf;
    let mut answer = host;
    match leaf {
        0 if cpu.tsc_hz.is_some() => answer.eax = answer.eax.max(FREQUENCY_LEAF),
        1 => {
            answer.ecx &= !(LEAF1_ECX_HIDDEN | LEAF1_ECX_X2APIC);
            answer.ecx |= LEAF1_ECX_HYPERVISOR | LEAF1_ECX_TSC_DEADLINE;
            answer.edx &= !LEAF1_EDX_HIDDEN;
            // EBX: initial APIC ID in 31:24, one logical processor.
            answer.ebx = (answer.ebx & 0x0000_ffff) | (1 << 16) | (cpu.apic_id << 24);
        }
        7 => {
            answer = if subleaf == 0 {
                let mut ebx = host.ebx & LEAF7_EBX_ALLOWED;
                if !cpu.invpcid {
                    ebx &= !LEAF7_EBX_INVPCID;
                }
                CpuidResult {
                    ebx,
                    edx: cpu.leaf7_edx,
                    ..CpuidResult::default()
                }
            } else {
                CpuidResult::default()
            };
        }
        // Monitor/MWAIT, thermal and power, PMU, topology, XSAVE, RDT, SGX,
        // processor trace: not virtualized.
        5 | 6 | 0xa | 0xb | 0xd | 0xf | 0x10 | 0x12 | 0x14 | 0x1f => answer = CpuidResult::default(),
        TSC_LEAF => {
            answer = match cpu.tsc_hz {
                // TSC = crystal * EBX / EAX with a crystal at the TSC rate.
                Some(hz) => CpuidResult {
                    eax: 1,
                    ebx: 1,
                    ecx: hz.min(u64::from(u32::MAX)) as u32,
                    edx: 0,
                },
                None => CpuidResult::default(),
            }
        }
        FREQUENCY_LEAF => {
            answer = match cpu.tsc_hz {
                Some(hz) => {
                    let mhz = (hz / 1_000_000).min(0xffff) as u32;
                    CpuidResult {
                        eax: mhz,
                        ebx: mhz,
                        ecx: 100,
                        edx: 0,
                    }
                }
                None => CpuidResult::default(),
            }
        }
        0x8000_0001 if !cpu.rdtscp => answer.edx &= !EXTENDED_EDX_RDTSCP,
        // Only the invariant-TSC bit of the power-management leaf.
        0x8000_0007 => {
            answer = CpuidResult {
                edx: host.edx & (1 << 8),
                ..CpuidResult::default()
            }
        }
        _ => {}
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKYLAKE_LEAF1: CpuidResult = CpuidResult {
        eax: 0x50654,
        ebx: 0x0001_0800,
        ecx: 0x7ffa_fbff,
        edx: 0xbfeb_fbff,
    };

    fn guest(leaf: u32, host: CpuidResult) -> CpuidResult {
        guest_leaf(
            leaf,
            0,
            host,
            &GuestCpu {
                tsc_hz: Some(10_000_000),
                apic_id: 0,
                rdtscp: true,
                invpcid: true,
                leaf7_edx: 0,
            },
        )
    }

    #[test]
    fn instructions_vmx_does_not_enable_are_not_advertised() {
        let host = CpuidResult {
            eax: 0,
            ebx: u32::MAX,
            ecx: u32::MAX,
            edx: u32::MAX,
        };
        let cpu = GuestCpu {
            tsc_hz: None,
            apic_id: 0,
            rdtscp: false,
            invpcid: false,
            leaf7_edx: 1 << 26,
        };
        assert_eq!(guest_leaf(7, 0, host, &cpu).ebx & LEAF7_EBX_INVPCID, 0);
        assert_eq!(
            guest_leaf(7, 0, host, &cpu).edx,
            1 << 26,
            "leaf 7 EDX is the speculation policy's, not the host's"
        );
        assert_eq!(guest_leaf(0x8000_0001, 0, host, &cpu).edx & EXTENDED_EDX_RDTSCP, 0);
        assert_ne!(guest(0x8000_0001, host).edx & EXTENDED_EDX_RDTSCP, 0);
        assert_ne!(guest(7, host).ebx & LEAF7_EBX_INVPCID, 0);
    }

    #[test]
    fn leaf_one_hides_virtualization_and_unvirtualized_features() {
        let answer = guest(1, SKYLAKE_LEAF1);
        assert_eq!(answer.ecx & LEAF1_ECX_VMX, 0);
        assert_eq!(answer.ecx & LEAF1_ECX_SMX, 0);
        assert_eq!(answer.ecx & (1 << 26), 0, "XSAVE hidden");
        assert_eq!(answer.ecx & (1 << 28), 0, "AVX hidden");
        assert_ne!(answer.ecx & LEAF1_ECX_HYPERVISOR, 0);
        assert_eq!(answer.ecx & LEAF1_ECX_X2APIC, 0);
        assert_ne!(answer.ecx & LEAF1_ECX_TSC_DEADLINE, 0);
        assert_eq!(answer.edx & (1 << 7), 0, "MCE hidden");
        assert_eq!(answer.edx & (1 << 12), 0, "MTRR hidden");
        assert_ne!(answer.edx & 1, 0, "FPU kept");
        assert_eq!(answer.eax, SKYLAKE_LEAF1.eax);
        assert_eq!(answer.ebx >> 16, 1, "one logical CPU, APIC ID 0");
    }

    #[test]
    fn tsc_frequency_is_announced() {
        let leaf15 = guest(TSC_LEAF, CpuidResult::default());
        let hz = u64::from(leaf15.ecx) * u64::from(leaf15.ebx) / u64::from(leaf15.eax);
        assert_eq!(hz, 10_000_000);
        assert_eq!(guest(FREQUENCY_LEAF, CpuidResult::default()).eax, 10);
        assert!(
            guest(
                0,
                CpuidResult {
                    eax: 0xd,
                    ..CpuidResult::default()
                }
            )
            .eax >= FREQUENCY_LEAF
        );
    }

    #[test]
    fn without_a_known_tsc_the_leaves_are_empty() {
        let cpu = GuestCpu::default();
        assert_eq!(
            guest_leaf(
                TSC_LEAF,
                0,
                CpuidResult {
                    eax: 2,
                    ebx: 3,
                    ecx: 4,
                    edx: 5
                },
                &cpu
            ),
            CpuidResult::default()
        );
        assert_eq!(
            guest_leaf(
                0,
                0,
                CpuidResult {
                    eax: 0xd,
                    ..CpuidResult::default()
                },
                &cpu
            )
            .eax,
            0xd
        );
    }

    #[test]
    fn leaf_seven_keeps_only_allowed_features() {
        let host = CpuidResult {
            eax: 0,
            ebx: u32::MAX,
            ecx: u32::MAX,
            edx: u32::MAX,
        };
        let answer = guest(7, host);
        assert_eq!(answer.ebx, LEAF7_EBX_ALLOWED);
        assert_eq!((answer.ecx, answer.edx), (0, 0));
        assert_eq!(guest(0xd, host), CpuidResult::default());
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
        assert_eq!(hypervisor_leaf(0x4000_0005), CpuidResult::default());
    }
}

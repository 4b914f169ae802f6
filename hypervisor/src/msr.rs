//! Model-specific registers as guests see them. MSRs whose guest value the
//! CPU keeps apart from Keel's pass through the MSR bitmap (set up in
//! [`pass_through_msrs`]); the ones that exit are emulated here, and any
//! other MSR raises #GP in the guest, as on a CPU that lacks it.

use keel_vmx::msr as vmx_msr;

use crate::domain::Domain;
use crate::vcpu::{GuestFault, Vcpu};
use crate::vmx::VmxVcpu;

const IA32_TSC: u32 = 0x10;
const IA32_TSC_ADJUST: u32 = 0x3b;
const IA32_PLATFORM_ID: u32 = 0x17;
const IA32_APIC_BASE: u32 = 0x1b;
const IA32_BIOS_UPDT_TRIG: u32 = 0x79;
const IA32_BIOS_SIGN_ID: u32 = 0x8b;
const IA32_MISC_ENABLE: u32 = 0x1a0;
const IA32_STAR: u32 = 0xc000_0081;
const IA32_LSTAR: u32 = 0xc000_0082;
const IA32_CSTAR: u32 = 0xc000_0083;
const IA32_FMASK: u32 = 0xc000_0084;
const IA32_TSC_AUX: u32 = 0xc000_0103;

/// xAPIC enabled (bit 11) at the architectural base, bootstrap CPU.
const APIC_BASE_VALUE: u64 = crate::vplatform::LOCAL_APIC_BASE | (1 << 11) | (1 << 8);
/// Locked, VMX off: guests cannot use VMX.
const FEATURE_CONTROL_VALUE: u64 = 1;
/// Fast strings on; branch-trace and PEBS unavailable.
const MISC_ENABLE_VALUE: u64 = 1 | (1 << 11) | (1 << 12);

/// Lets the guest use directly the MSRs whose values VMX switches (VMCS
/// guest-state fields) or that Keel never uses in root mode.
pub fn pass_through_msrs(vcpu: &mut VmxVcpu) {
    for msr in [
        vmx_msr::IA32_FS_BASE,
        vmx_msr::IA32_GS_BASE,
        vmx_msr::IA32_KERNEL_GS_BASE,
        vmx_msr::IA32_SYSENTER_CS,
        vmx_msr::IA32_SYSENTER_ESP,
        vmx_msr::IA32_SYSENTER_EIP,
        vmx_msr::IA32_PAT,
        IA32_STAR,
        IA32_LSTAR,
        IA32_CSTAR,
        IA32_FMASK,
        IA32_TSC_AUX,
    ] {
        vcpu.pass_through_msr(msr, true, true);
    }
    vcpu.pass_through_msr(IA32_TSC, true, false);
}

pub fn read(domain: &mut Domain, vcpu: &impl Vcpu, msr: u32) -> Result<u64, GuestFault> {
    if let Some(result) = domain
        .platform
        .as_deref_mut()
        .and_then(|platform| platform.apic_rdmsr(msr))
    {
        return result.map_err(|_| GuestFault::GeneralProtection);
    }
    if let Some(result) = vcpu.speculation_msr_read(msr) {
        return result;
    }
    match msr {
        IA32_APIC_BASE if domain.platform.is_some() => Ok(APIC_BASE_VALUE),
        vmx_msr::IA32_EFER => Ok(vcpu.efer()),
        vmx_msr::IA32_FEATURE_CONTROL => Ok(FEATURE_CONTROL_VALUE),
        IA32_MISC_ENABLE => Ok(MISC_ENABLE_VALUE),
        IA32_BIOS_SIGN_ID | IA32_PLATFORM_ID => Ok(0),
        IA32_TSC => Ok(crate::arch::tsc::read().wrapping_add(domain.tsc_offset)),
        // The offset is Keel's (set at boot), not one the guest asked for.
        IA32_TSC_ADJUST => Ok(0),
        _ => Err(unknown(msr, "read")),
    }
}

pub fn write(domain: &mut Domain, vcpu: &mut impl Vcpu, msr: u32, value: u64) -> Result<(), GuestFault> {
    if let Some(result) = domain
        .platform
        .as_deref_mut()
        .and_then(|platform| platform.apic_wrmsr(msr, value))
    {
        return result.map_err(|_| GuestFault::GeneralProtection);
    }
    if let Some(result) = vcpu.speculation_msr_write(msr, value) {
        return result;
    }
    match msr {
        // The APIC stays enabled at its base in xAPIC mode.
        IA32_APIC_BASE if domain.platform.is_some() && value == APIC_BASE_VALUE => Ok(()),
        vmx_msr::IA32_EFER => vcpu.set_efer(value),
        // Microcode loading and its signature: accepted, nothing to load.
        IA32_BIOS_UPDT_TRIG | IA32_BIOS_SIGN_ID => Ok(()),
        IA32_MISC_ENABLE if value == MISC_ENABLE_VALUE => Ok(()),
        // Moving the guest's TSC is not supported yet; keeping it is.
        IA32_TSC_ADJUST if value == 0 => Ok(()),
        _ => Err(unknown(msr, "write")),
    }
}

fn unknown(msr: u32, access: &str) -> GuestFault {
    log::debug!("guest {access} of MSR {msr:#x}: #GP");
    GuestFault::GeneralProtection
}

//! The Intel VMX backend: turning VMX root operation on for this CPU and
//! running vCPUs on VMCSs. Decoding and control arithmetic live in the
//! `keel-vmx` library; this module is the part that touches the hardware.

mod guest_state;
mod vcpu;
mod vcpu_trait;
mod vmcs;
mod vmcs_access;

pub use vcpu::VmxVcpu;

use keel_hypervisor::speculation::Mitigations;
use keel_memory::{HostPhysAddr, PAGE_SIZE_4K};
use keel_vmx::caps::FeatureControl;
use keel_vmx::caps::{
    cr_is_valid, fixed_cr, CapabilityMsrs, ControlError, VmxAvailability, VmxBasic, VmxMisc, CR4_VMXE,
};
use keel_vmx::{instructions, msr, VmFail};

use crate::arch::instructions::{rdmsr, read_cr0, read_cr4, write_cr0, write_cr4, wrmsr};
use crate::arch::HostTables;
use crate::memory;

const CR4_OSFXSR: u64 = 1 << 9;

/// Why VMX root operation could not be entered. Each names the missing piece.
#[derive(Debug)]
pub enum VmxError {
    NotSupported,
    DisabledByFirmware,
    MissingFeature(&'static str),
    Controls(ControlError),
    HostCr0Invalid(u64),
    OutOfMemory,
    Instruction(&'static str, VmFail),
}

impl core::fmt::Display for VmxError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::NotSupported => f.write_str("VMX not supported by this CPU (CPUID.1:ECX.VMX = 0)"),
            Self::DisabledByFirmware => {
                f.write_str("VMX disabled by firmware (IA32_FEATURE_CONTROL locked without VMX)")
            }
            Self::MissingFeature(what) => write!(f, "VMX lacks a feature Keel needs: {what}"),
            Self::Controls(error) => write!(f, "{error}"),
            Self::HostCr0Invalid(cr0) => write!(f, "host CR0 {cr0:#x} violates the VMX fixed bits"),
            Self::OutOfMemory => f.write_str("out of memory for VMX structures"),
            Self::Instruction(name, VmFail::Invalid) => write!(f, "{name} failed (VMfailInvalid)"),
            Self::Instruction(name, VmFail::Valid) => write!(f, "{name} failed (VMfailValid)"),
        }
    }
}

/// This CPU in VMX root operation, with the capabilities it reported.
pub struct VmxCpu {
    caps: CapabilityMsrs,
    basic: VmxBasic,
    misc: VmxMisc,
    host: HostTables,
    /// CR4 bits guests may set: what their CPUID shows (`cr_policy`).
    cr4_allowed: u64,
    /// Side-channel mitigations for this CPU.
    pub mitigations: Mitigations,
    host_leaf7_edx: u32,
    _vmxon_region: HostPhysAddr,
}

impl VmxCpu {
    /// What CPUID may tell guests, given the VMX controls in use.
    pub fn guest_cpu(&self, tsc_hz: Option<u64>, apic_id: u32) -> keel_hypervisor::cpuid_policy::GuestCpu {
        use keel_vmx::caps::ControlKind;
        use keel_vmx::controls::SecondaryControls;
        let offered = SecondaryControls::ENABLE_RDTSCP | SecondaryControls::ENABLE_INVPCID;
        let secondary = SecondaryControls::from_bits_retain(
            self.caps
                .adjust_controls(ControlKind::SecondaryProcessor, 0, offered.bits())
                .unwrap_or(0),
        );
        keel_hypervisor::cpuid_policy::GuestCpu {
            tsc_hz,
            apic_id,
            rdtscp: secondary.contains(SecondaryControls::ENABLE_RDTSCP),
            invpcid: secondary.contains(SecondaryControls::ENABLE_INVPCID),
            leaf7_edx: self.mitigations.guest_leaf7_edx(self.host_leaf7_edx),
        }
    }

    /// Whether VM exits save the preemption timer, so guest time is measured.
    pub fn saves_preemption_timer(&self) -> bool {
        use keel_vmx::caps::ControlKind;
        use keel_vmx::controls::ExitControls;
        self.caps
            .allowed_controls(ControlKind::Exit)
            .supports(ExitControls::SAVE_PREEMPTION_TIMER.bits())
    }

    pub fn revision_id(&self) -> u32 {
        self.basic.revision_id
    }
}

fn has_vmx() -> bool {
    raw_cpuid::CpuId::new()
        .get_feature_info()
        .is_some_and(|features| features.has_vmx())
}

/// Enters VMX root operation on the calling CPU.
pub fn enable(host: HostTables) -> Result<VmxCpu, VmxError> {
    if !has_vmx() {
        return Err(VmxError::NotSupported);
    }
    // SAFETY: IA32_FEATURE_CONTROL exists on every CPU that reports VMX.
    let feature_control = unsafe { rdmsr(msr::IA32_FEATURE_CONTROL) };
    match FeatureControl::from_msr(feature_control).availability() {
        VmxAvailability::Enabled => {}
        VmxAvailability::DisabledByFirmware => return Err(VmxError::DisabledByFirmware),
        VmxAvailability::CallerMayEnable => {
            // SAFETY: the MSR is unlocked, so writing the lock bit with VMX
            // outside SMX enabled is permitted and only affects VMX availability.
            unsafe {
                wrmsr(
                    msr::IA32_FEATURE_CONTROL,
                    feature_control | FeatureControl::ENABLE_VALUE,
                )
            };
        }
    }
    // SAFETY: read_with only reads capability MSRs the CPU reports as present.
    let caps = CapabilityMsrs::read_with(|index| unsafe { rdmsr(index) });
    let basic = caps.vmx_basic();
    let misc = caps.vmx_misc();
    let ept = caps.ept_vpid();
    if !(ept.page_walk_4 && ept.memtype_wb && ept.invept && ept.invept_single_context) {
        return Err(VmxError::MissingFeature(
            "EPT with 4-level walks, write-back tables and single-context INVEPT",
        ));
    }
    if !(ept.invvpid && ept.invvpid_single_context) {
        return Err(VmxError::MissingFeature("VPID with single-context INVVPID"));
    }
    vmcs::check_controls(&caps).map_err(VmxError::Controls)?;

    // Firmware may leave bits VMX pins (CR0.NE, say) in another state.
    let cr0 = fixed_cr(read_cr0(), caps.cr0_fixed0, caps.cr0_fixed1);
    if !cr_is_valid(cr0, caps.cr0_fixed0, caps.cr0_fixed1) || cr0 & (1 << 31) == 0 {
        return Err(VmxError::HostCr0Invalid(cr0));
    }
    // SAFETY: the fixed bits only add protection/numeric-error bits to a
    // paged, protected-mode CR0; the hypervisor's mappings are unaffected.
    unsafe { write_cr0(cr0) };
    // OSFXSR lets Keel reset guests' SSE state with FXRSTOR (it never uses SSE itself).
    let cr4 = fixed_cr(read_cr4() | CR4_VMXE | CR4_OSFXSR, caps.cr4_fixed0, caps.cr4_fixed1);
    // SAFETY: the new CR4 only adds VMXE and bits VMX requires; paging state is unchanged.
    unsafe { write_cr4(cr4) };

    let (mitigations, host_leaf7_edx) = host_mitigations();
    log::info!(
        "speculation: IBPB on domain switch {}, L1D flush on entry {}, VERW on entry {}, guest SPEC_CTRL bits {:#x}",
        on_off(mitigations.ibpb_on_switch),
        on_off(mitigations.l1d_flush_on_entry),
        on_off(mitigations.verw_on_entry),
        mitigations.guest_spec_ctrl
    );
    let region = allocate_vmx_region(basic.revision_id).ok_or(VmxError::OutOfMemory)?;
    // SAFETY: CR4.VMXE is set, the region is a zeroed, page-aligned frame
    // holding the revision id, and it stays allocated while VMX is on.
    unsafe { instructions::vmxon(region.as_u64()) }.map_err(|fail| VmxError::Instruction("VMXON", fail))?;
    Ok(VmxCpu {
        caps,
        basic,
        misc,
        host,
        cr4_allowed: guest_cr4_allowed(),
        mitigations,
        host_leaf7_edx,
        _vmxon_region: region,
    })
}

/// The host's speculation controls and what Keel does with them.
fn host_mitigations() -> (Mitigations, u32) {
    use keel_hypervisor::speculation::{leaf7_edx, IA32_ARCH_CAPABILITIES};
    let leaf7_edx = if core::arch::x86_64::__cpuid(0).eax >= 7 {
        core::arch::x86_64::__cpuid_count(7, 0).edx
    } else {
        0
    };
    let arch_capabilities = (leaf7_edx & leaf7_edx::ARCH_CAPABILITIES != 0)
        // SAFETY: CPUID says the MSR exists; reading it has no side effects.
        .then(|| unsafe { rdmsr(IA32_ARCH_CAPABILITIES) });
    (Mitigations::for_host(leaf7_edx, arch_capabilities), leaf7_edx)
}

/// The CR4 bits guests may set, from the CPUID leaves 1 and 7 they see.
fn guest_cr4_allowed() -> u64 {
    use keel_hypervisor::cpuid_policy::{guest_leaf, CpuidResult, GuestCpu};
    let host = |leaf| {
        let answer = core::arch::x86_64::__cpuid_count(leaf, 0);
        CpuidResult {
            eax: answer.eax,
            ebx: answer.ebx,
            ecx: answer.ecx,
            edx: answer.edx,
        }
    };
    let guest = GuestCpu::default();
    keel_hypervisor::cr_policy::cr4_allowed(guest_leaf(1, 0, host(1), &guest), guest_leaf(7, 0, host(7), &guest))
}

/// The VMCS current on this CPU (what VMREAD/VMWRITE act on), 0 for none.
/// One CPU today; with SMP this becomes per-CPU state.
static CURRENT_VMCS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn current_vmcs() -> Option<HostPhysAddr> {
    let raw = CURRENT_VMCS.load(core::sync::atomic::Ordering::Relaxed);
    (raw != 0).then(|| HostPhysAddr::new(raw))
}

fn set_current_vmcs(vmcs: Option<HostPhysAddr>) {
    CURRENT_VMCS.store(
        vmcs.map_or(0, HostPhysAddr::as_u64),
        core::sync::atomic::Ordering::Relaxed,
    );
}

/// Makes `vmcs` current again after another VMCS was loaded.
fn restore_current_vmcs(vmcs: Option<HostPhysAddr>) {
    if let Some(vmcs) = vmcs.filter(|&vmcs| current_vmcs() != Some(vmcs)) {
        // SAFETY: `vmcs` was current before, so it is a live, initialized VMCS.
        match unsafe { instructions::vmptrld(vmcs.as_u64()) } {
            Ok(()) => set_current_vmcs(Some(vmcs)),
            Err(fail) => log::error!("VMPTRLD of {vmcs} failed ({fail:?})"),
        }
    }
}

/// A VMXON region or VMCS: one zeroed frame starting with the revision id.
fn allocate_vmx_region(revision_id: u32) -> Option<HostPhysAddr> {
    let frame = memory::allocate_zeroed(PAGE_SIZE_4K, PAGE_SIZE_4K)?;
    // SAFETY: the frame was just allocated to us and is identity-mapped.
    unsafe { (frame.as_u64() as *mut u32).write(revision_id & 0x7fff_ffff) };
    Some(frame)
}

fn on_off(enabled: bool) -> &'static str {
    if enabled {
        "on"
    } else {
        "off"
    }
}

/// Drops the translations the CPU caches for the EPT tables of `eptp`,
/// whichever VMCS is current (e.g. Dom0's window after a DomU's RAM left
/// it while the DomU's VMCS was loaded).
pub fn invalidate_ept(eptp: u64) {
    // SAFETY: Keel is in VMX root operation from `enable` on (domains exist
    // only after it), and `enable` checked single-context INVEPT support.
    if let Err(fail) = unsafe { instructions::invept(instructions::InveptKind::SingleContext, eptp) } {
        log::error!("INVEPT of {eptp:#x} failed ({fail:?})");
    }
}

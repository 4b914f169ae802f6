//! Building a VMCS: the execution controls Keel asks for, and the host and
//! guest state for a 64-bit guest.

use keel_guest_loader::long_mode::{CODE64_ACCESS_RIGHTS, DATA_ACCESS_RIGHTS, TSS_ACCESS_RIGHTS};
use keel_vmx::caps::{cr0_fixed0_unrestricted, fixed_cr, CapabilityMsrs, ControlError, ControlKind};
use keel_vmx::controls::{EntryControls, ExitControls, PinBasedControls, PrimaryControls, SecondaryControls};
use keel_vmx::instructions::vmwrite;
use keel_vmx::{msr, VmFail, VmcsField as F};

use super::VmxCpu;
use crate::arch::gdt::{CODE_SELECTOR, DATA_SELECTOR, TSS_SELECTOR};
use crate::arch::instructions::{rdmsr, read_cr0, read_cr3, read_cr4};
use crate::vcpu::LongModeEntry;

const MACHINE_CHECK_VECTOR: u32 = 18;
const DEBUG_VECTOR: u32 = 1;
const ALIGNMENT_CHECK_VECTOR: u32 = 17;
const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;
const UNUSABLE_SEGMENT: u64 = 1 << 16;
const RFLAGS_FIXED: u64 = 1 << 1;
const DR7_DEFAULT: u64 = 0x400;

/// The controls Keel needs (`required`) and would use when offered (`optional`).
struct ControlRequest {
    kind: ControlKind,
    required: u32,
    optional: u32,
}

fn requested_controls() -> [ControlRequest; 5] {
    [
        ControlRequest {
            kind: ControlKind::PinBased,
            required: (PinBasedControls::EXTERNAL_INTERRUPT_EXITING
                | PinBasedControls::NMI_EXITING
                | PinBasedControls::PREEMPTION_TIMER)
                .bits(),
            optional: PinBasedControls::VIRTUAL_NMIS.bits(),
        },
        ControlRequest {
            kind: ControlKind::PrimaryProcessor,
            // MWAIT/MONITOR would let a guest idle the CPU beyond the
            // preemption timer's reach; RDPMC would read the host's counters;
            // CR8 is the physical APIC's TPR without a TPR shadow.
            required: (PrimaryControls::HLT_EXITING
                | PrimaryControls::USE_IO_BITMAPS
                | PrimaryControls::USE_TSC_OFFSETTING
                | PrimaryControls::USE_MSR_BITMAPS
                | PrimaryControls::ACTIVATE_SECONDARY
                | PrimaryControls::MWAIT_EXITING
                | PrimaryControls::MONITOR_EXITING
                | PrimaryControls::RDPMC_EXITING
                | PrimaryControls::CR8_LOAD_EXITING
                | PrimaryControls::CR8_STORE_EXITING)
                .bits(),
            optional: 0,
        },
        ControlRequest {
            kind: ControlKind::SecondaryProcessor,
            required: (SecondaryControls::ENABLE_EPT | SecondaryControls::ENABLE_VPID).bits(),
            // WBINVD would make every other domain's cache lines pay for
            // one guest's flush; with no device DMA into guest memory
            // (coherent or not) Keel completes it as a no-op.
            optional: (SecondaryControls::UNRESTRICTED_GUEST
                | SecondaryControls::WBINVD_EXITING
                | SecondaryControls::ENABLE_RDTSCP
                | SecondaryControls::ENABLE_INVPCID)
                .bits(),
        },
        ControlRequest {
            kind: ControlKind::Exit,
            // Debug controls and PAT are switched so a guest's DR7/DEBUGCTL
            // and PAT survive exits and never leak into the host.
            required: (ExitControls::HOST_ADDRESS_SPACE_SIZE
                | ExitControls::SAVE_EFER
                | ExitControls::LOAD_EFER
                | ExitControls::ACK_INTERRUPT_ON_EXIT
                | ExitControls::SAVE_DEBUG_CONTROLS
                | ExitControls::SAVE_PAT
                | ExitControls::LOAD_PAT)
                .bits(),
            optional: ExitControls::SAVE_PREEMPTION_TIMER.bits(),
        },
        ControlRequest {
            kind: ControlKind::Entry,
            required: (EntryControls::IA32E_MODE_GUEST
                | EntryControls::LOAD_EFER
                | EntryControls::LOAD_PAT
                | EntryControls::LOAD_DEBUG_CONTROLS)
                .bits(),
            optional: 0,
        },
    ]
}

/// Fails early, with the unsupported bits named, if the CPU cannot give Keel
/// the controls it requires.
pub fn check_controls(caps: &CapabilityMsrs) -> Result<(), ControlError> {
    for request in requested_controls() {
        caps.adjust_controls(request.kind, request.required, request.optional)?;
    }
    Ok(())
}

/// A failed VMWRITE: which field, and how.
#[derive(Clone, Copy, Debug)]
pub struct FieldError {
    pub field: F,
    pub fail: VmFail,
}

/// Writes fields to the current VMCS, remembering the first failure so a
/// long setup sequence reads as a list of assignments.
struct Writer(Result<(), FieldError>);

impl Writer {
    fn set(&mut self, field: F, value: u64) {
        if self.0.is_ok() {
            // SAFETY: callers only construct a Writer with a current VMCS in
            // VMX root operation; a rejected field reports VMfail, not UB.
            if let Err(fail) = unsafe { vmwrite(field, value) } {
                self.0 = Err(FieldError { field, fail });
            }
        }
    }
}

/// Per-vCPU addresses the VMCS points at.
pub struct VmcsResources {
    pub io_bitmaps: u64,
    pub msr_bitmap: u64,
    pub eptp: u64,
    pub vpid: u16,
    pub preemption_timer: u32,
    /// Added to the host's TSC for every guest read (RDTSC, RDTSCP,
    /// RDMSR of IA32_TSC): each domain's TSC starts near zero at its boot.
    pub tsc_offset: u64,
}

/// Fills the current VMCS for a 64-bit guest entering at `entry`.
///
/// The caller must have made the VMCS current with VMPTRLD.
pub fn configure(cpu: &VmxCpu, entry: &LongModeEntry, resources: &VmcsResources) -> Result<(), FieldError> {
    let mut w = Writer(Ok(()));
    let caps = &cpu.caps;
    for request in requested_controls() {
        // check_controls succeeded at VMXON, so adjustment cannot fail now.
        let value = caps
            .adjust_controls(request.kind, request.required, request.optional)
            .unwrap_or(request.required);
        let field = match request.kind {
            ControlKind::PinBased => F::PinBasedControls,
            ControlKind::PrimaryProcessor => F::PrimaryProcessorControls,
            ControlKind::SecondaryProcessor => F::SecondaryProcessorControls,
            ControlKind::Exit => F::ExitControls,
            ControlKind::Entry => F::EntryControls,
        };
        w.set(field, u64::from(value));
    }

    // Machine checks belong to the host, not to whichever guest was running.
    // #DB and #AC exit so that a guest whose delivery of one raises the same
    // exception again (a breakpoint on its #DB stack; #AC while pushing the
    // #AC frame) loops through Keel, where its time slice still ends,
    // instead of inside the CPU's microcode forever (XSA-156,
    // CVE-2015-5307, CVE-2015-8104). Keel reflects both to the guest.
    w.set(
        F::ExceptionBitmap,
        (1 << MACHINE_CHECK_VECTOR) | (1 << DEBUG_VECTOR) | (1 << ALIGNMENT_CHECK_VECTOR),
    );
    w.set(F::IoBitmapA, resources.io_bitmaps);
    w.set(F::IoBitmapB, resources.io_bitmaps + 4096);
    w.set(F::MsrBitmap, resources.msr_bitmap);
    w.set(F::EptPointer, resources.eptp);
    w.set(F::VirtualProcessorId, u64::from(resources.vpid));
    w.set(F::PreemptionTimerValue, u64::from(resources.preemption_timer));
    w.set(F::VmcsLinkPointer, u64::MAX);
    w.set(F::TscOffset, resources.tsc_offset);
    w.set(F::Cr3TargetCount, 0);
    w.set(F::ExitMsrStoreCount, 0);
    w.set(F::ExitMsrLoadCount, 0);
    w.set(F::EntryMsrLoadCount, 0);
    w.set(F::EntryInterruptionInfo, 0);

    // Guest control registers: the CPU needs the fixed bits set; the guest
    // sees its own values through the read shadows, and the bits Keel owns
    // (the fixed ones) exit when the guest writes them.
    let cr0_fixed0 = guest_cr0_fixed0(cpu);
    let state = &entry.state;
    w.set(F::GuestCr0, fixed_cr(state.cr0, cr0_fixed0, caps.cr0_fixed1));
    w.set(F::Cr0ReadShadow, state.cr0);
    w.set(F::Cr0GuestHostMask, owned_bits(cr0_fixed0, caps.cr0_fixed1));
    w.set(F::GuestCr4, fixed_cr(state.cr4, caps.cr4_fixed0, caps.cr4_fixed1));
    w.set(F::Cr4ReadShadow, state.cr4);
    w.set(
        F::Cr4GuestHostMask,
        keel_hypervisor::cr_policy::cr4_mask(cpu.cr4_allowed, caps.cr4_fixed0, caps.cr4_fixed1),
    );
    w.set(F::GuestCr3, state.cr3);
    w.set(F::GuestDr7, DR7_DEFAULT);
    w.set(F::GuestRsp, entry.rsp);
    w.set(F::GuestRip, entry.rip);
    w.set(F::GuestRflags, RFLAGS_FIXED);
    w.set(F::GuestIa32Efer, state.efer);
    w.set(F::GuestIa32Pat, PAT_DEFAULT);
    w.set(F::GuestIa32Debugctl, 0);
    w.set(F::GuestSysenterCs, 0);
    w.set(F::GuestSysenterEsp, 0);
    w.set(F::GuestSysenterEip, 0);
    w.set(F::GuestInterruptibility, 0);
    w.set(F::GuestActivityState, 0);
    w.set(F::GuestPendingDebugExceptions, 0);

    let flat = |w: &mut Writer, selector: F, base: F, limit: F, rights: F, value: u16, access: u32| {
        w.set(selector, u64::from(value));
        w.set(base, 0);
        w.set(limit, 0xffff_ffff);
        w.set(rights, u64::from(access));
    };
    flat(
        &mut w,
        F::GuestCsSelector,
        F::GuestCsBase,
        F::GuestCsLimit,
        F::GuestCsAccessRights,
        state.code_selector,
        CODE64_ACCESS_RIGHTS,
    );
    for (selector, base, limit, rights) in [
        (
            F::GuestDsSelector,
            F::GuestDsBase,
            F::GuestDsLimit,
            F::GuestDsAccessRights,
        ),
        (
            F::GuestEsSelector,
            F::GuestEsBase,
            F::GuestEsLimit,
            F::GuestEsAccessRights,
        ),
        (
            F::GuestSsSelector,
            F::GuestSsBase,
            F::GuestSsLimit,
            F::GuestSsAccessRights,
        ),
        (
            F::GuestFsSelector,
            F::GuestFsBase,
            F::GuestFsLimit,
            F::GuestFsAccessRights,
        ),
        (
            F::GuestGsSelector,
            F::GuestGsBase,
            F::GuestGsLimit,
            F::GuestGsAccessRights,
        ),
    ] {
        flat(
            &mut w,
            selector,
            base,
            limit,
            rights,
            state.data_selector,
            DATA_ACCESS_RIGHTS,
        );
    }
    // A busy 64-bit TSS descriptor is mandatory state even if the guest never uses it.
    w.set(F::GuestTrSelector, 0);
    w.set(F::GuestTrBase, 0);
    w.set(F::GuestTrLimit, 0x67);
    w.set(F::GuestTrAccessRights, u64::from(TSS_ACCESS_RIGHTS));
    w.set(F::GuestLdtrSelector, 0);
    w.set(F::GuestLdtrBase, 0);
    w.set(F::GuestLdtrLimit, 0);
    w.set(F::GuestLdtrAccessRights, UNUSABLE_SEGMENT);
    w.set(F::GuestGdtrBase, state.gdtr_base);
    w.set(F::GuestGdtrLimit, u64::from(state.gdtr_limit));
    // No IDT yet: an exception in the guest escalates to a triple fault,
    // which stops that guest with a diagnostic.
    w.set(F::GuestIdtrBase, 0);
    w.set(F::GuestIdtrLimit, 0);

    write_host_state(&mut w, cpu);
    w.0
}

/// CR0 bits a guest must keep set: with unrestricted guest, PE and PG are free.
pub fn guest_cr0_fixed0(cpu: &VmxCpu) -> u64 {
    let secondary = cpu
        .caps
        .adjust_controls(
            ControlKind::SecondaryProcessor,
            0,
            SecondaryControls::UNRESTRICTED_GUEST.bits(),
        )
        .unwrap_or(0);
    if secondary & SecondaryControls::UNRESTRICTED_GUEST.bits() != 0 {
        cr0_fixed0_unrestricted(cpu.caps.cr0_fixed0)
    } else {
        cpu.caps.cr0_fixed0
    }
}

/// CR0 bits whose value VMX pins, and every reserved bit (all of 63:32
/// among them): writing them exits, and Keel checks the value.
fn owned_bits(fixed0: u64, fixed1: u64) -> u64 {
    fixed0 | !fixed1
}

fn write_host_state(w: &mut Writer, cpu: &VmxCpu) {
    extern "C" {
        fn keel_vmx_exit();
    }
    w.set(F::HostCr0, read_cr0());
    w.set(F::HostCr3, read_cr3());
    w.set(F::HostCr4, read_cr4());
    w.set(F::HostCsSelector, u64::from(CODE_SELECTOR));
    for field in [F::HostSsSelector, F::HostDsSelector, F::HostEsSelector] {
        w.set(field, u64::from(DATA_SELECTOR));
    }
    w.set(F::HostFsSelector, 0);
    w.set(F::HostGsSelector, 0);
    w.set(F::HostTrSelector, u64::from(TSS_SELECTOR));
    w.set(F::HostFsBase, 0);
    w.set(F::HostGsBase, 0);
    w.set(F::HostTrBase, cpu.host.tss_base);
    w.set(F::HostGdtrBase, cpu.host.gdt_base);
    w.set(F::HostIdtrBase, cpu.host.idt_base);
    w.set(F::HostSysenterCs, 0);
    w.set(F::HostSysenterEsp, 0);
    w.set(F::HostSysenterEip, 0);
    // SAFETY: EFER and PAT exist on every CPU with VMX.
    let (efer, pat) = unsafe { (rdmsr(msr::IA32_EFER), rdmsr(msr::IA32_PAT)) };
    w.set(F::HostIa32Efer, efer);
    w.set(F::HostIa32Pat, pat);
    // HOST_RSP is written by keel_vmx_run, which knows its own stack.
    w.set(F::HostRip, keel_vmx_exit as *const () as u64);
}

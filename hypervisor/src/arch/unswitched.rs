//! CPU state VMX does not switch between guests: x87/SSE registers, the
//! debug address and status registers, CR2 and the SYSCALL MSRs. Keel
//! itself never uses any of it, so the live registers belong to whichever
//! vCPU ran last; the scheduler saves them into that vCPU's area and loads
//! the next vCPU's before it runs a different one.

use core::arch::asm;

use super::instructions::{rdmsr, wrmsr};

const IA32_STAR: u32 = 0xc000_0081;
const IA32_LSTAR: u32 = 0xc000_0082;
const IA32_CSTAR: u32 = 0xc000_0083;
const IA32_FMASK: u32 = 0xc000_0084;
const IA32_KERNEL_GS_BASE: u32 = 0xc000_0102;
const IA32_TSC_AUX: u32 = 0xc000_0103;

/// The SYSCALL MSRs every x86-64 CPU has.
const SYSCALL_MSRS: [u32; 5] = [IA32_STAR, IA32_LSTAR, IA32_CSTAR, IA32_FMASK, IA32_KERNEL_GS_BASE];
/// DR6 after reset: reserved bits set, no conditions.
const DR6_RESET: u64 = 0xffff_0ff0;

/// One vCPU's copy of the unswitched state.
#[repr(C, align(16))]
pub struct UnswitchedState {
    /// FXSAVE image (x87, MMX, SSE, MXCSR); 16-byte aligned as FXSAVE needs.
    fxsave: [u8; 512],
    cr2: u64,
    debug_address: [u64; 4],
    dr6: u64,
    syscall_msrs: [u64; 5],
    tsc_aux: u64,
    /// Whether this CPU has TSC_AUX (RDTSCP), looked up once.
    has_tsc_aux: bool,
}

fn has_rdtscp() -> bool {
    raw_cpuid::CpuId::new()
        .get_extended_processor_and_feature_identifiers()
        .is_some_and(|features| features.has_rdtscp())
}

impl UnswitchedState {
    /// The state after reset: default x87 control word and MXCSR, empty
    /// registers, no breakpoints.
    pub fn reset() -> Self {
        let mut fxsave = [0u8; 512];
        fxsave[0] = 0x7f; // FCW = 0x037f
        fxsave[1] = 0x03;
        fxsave[24] = 0x80; // MXCSR = 0x1f80
        fxsave[25] = 0x1f;
        Self {
            fxsave,
            cr2: 0,
            debug_address: [0; 4],
            dr6: DR6_RESET,
            syscall_msrs: [0; 5],
            tsc_aux: 0,
            has_tsc_aux: has_rdtscp(),
        }
    }

    /// Copies the live registers into this area.
    pub fn save(&mut self) {
        let (cr2, dr0, dr1, dr2, dr3, dr6): (u64, u64, u64, u64, u64, u64);
        // SAFETY: CR4.OSFXSR is set (vmx::enable), so FXSAVE64 writes the
        // 512-byte, 16-byte-aligned area this struct owns; reading CR2 and
        // the debug registers has no side effects in ring 0.
        unsafe {
            asm!("fxsave64 [{}]", in(reg) self.fxsave.as_mut_ptr(), options(nostack));
            asm!(
                "mov {cr2}, cr2", "mov {dr0}, dr0", "mov {dr1}, dr1", "mov {dr2}, dr2", "mov {dr3}, dr3",
                "mov {dr6}, dr6",
                cr2 = out(reg) cr2, dr0 = out(reg) dr0, dr1 = out(reg) dr1, dr2 = out(reg) dr2,
                dr3 = out(reg) dr3, dr6 = out(reg) dr6, options(nostack, nomem),
            );
        }
        self.cr2 = cr2;
        self.debug_address = [dr0, dr1, dr2, dr3];
        self.dr6 = dr6;
        for (slot, msr) in self.syscall_msrs.iter_mut().zip(SYSCALL_MSRS) {
            // SAFETY: architectural MSRs on every x86-64 CPU.
            *slot = unsafe { rdmsr(msr) };
        }
        if self.has_tsc_aux {
            // SAFETY: TSC_AUX exists when RDTSCP does.
            self.tsc_aux = unsafe { rdmsr(IA32_TSC_AUX) };
        }
    }

    /// Loads this area into the live registers.
    pub fn restore(&self) {
        let [dr0, dr1, dr2, dr3] = self.debug_address;
        // SAFETY: FXRSTOR64 reads the aligned area this struct owns (its
        // MXCSR came from FXSAVE or the reset image, so no reserved bits);
        // Keel uses none of CR2, DR0-3 or DR6 (DR7, which arms
        // breakpoints, is switched by VMX), so writing them only affects
        // the guest that runs next.
        unsafe {
            asm!("fxrstor64 [{}]", in(reg) self.fxsave.as_ptr(), options(nostack, readonly));
            asm!(
                "mov cr2, {cr2}", "mov dr0, {dr0}", "mov dr1, {dr1}", "mov dr2, {dr2}", "mov dr3, {dr3}",
                "mov dr6, {dr6}",
                cr2 = in(reg) self.cr2, dr0 = in(reg) dr0, dr1 = in(reg) dr1, dr2 = in(reg) dr2,
                dr3 = in(reg) dr3, dr6 = in(reg) self.dr6, options(nostack, nomem),
            );
        }
        for (&value, msr) in self.syscall_msrs.iter().zip(SYSCALL_MSRS) {
            // SAFETY: architectural MSRs; Keel never executes SYSCALL or
            // SWAPGS, so their values only matter to the next guest. The
            // values came from RDMSR or are 0, so they are canonical.
            unsafe { wrmsr(msr, value) };
        }
        if self.has_tsc_aux {
            // SAFETY: as above; TSC_AUX exists when RDTSCP does.
            unsafe { wrmsr(IA32_TSC_AUX, self.tsc_aux) };
        }
    }
}

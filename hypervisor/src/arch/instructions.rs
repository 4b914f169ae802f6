//! Thin wrappers over privileged instructions the hypervisor uses.

use core::arch::asm;

/// Reads a model-specific register.
///
/// # Safety
/// `msr` must exist on this CPU (else #GP, which the hypervisor treats as fatal).
#[inline]
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists; RDMSR has no other effect.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags)) };
    (u64::from(high) << 32) | u64::from(low)
}

/// Writes a model-specific register.
///
/// # Safety
/// `msr` must exist and `value` must be valid for it; the write may change
/// CPU behaviour the caller must be prepared for.
#[inline]
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: delegated to the caller as documented.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nomem, nostack, preserves_flags))
    };
}

/// Writes one byte to an I/O port.
///
/// # Safety
/// The port write must not break hardware the hypervisor relies on.
#[inline]
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: delegated to the caller as documented.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) };
}

/// Reads one byte from an I/O port.
///
/// # Safety
/// Reading the port must not have side effects the caller is unprepared for.
#[inline]
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: delegated to the caller as documented.
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Writes a doubleword to an I/O port.
///
/// # Safety
/// As for [`outb`].
#[inline]
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: delegated to the caller as documented.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags)) };
}

/// Reads a doubleword from an I/O port.
///
/// # Safety
/// As for [`inb`].
#[inline]
pub unsafe fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: delegated to the caller as documented.
    unsafe { asm!("in eax, dx", in("dx") port, out("eax") value, options(nomem, nostack, preserves_flags)) };
    value
}

pub fn read_cr0() -> u64 {
    let value;
    // SAFETY: reading CR0 has no side effects in ring 0.
    unsafe { asm!("mov {}, cr0", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

pub fn read_cr2() -> u64 {
    let value;
    // SAFETY: reading CR2 has no side effects in ring 0.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// IBPB: branch predictions made before it cannot steer indirect branches
/// after it. Only where CPUID shows IBRS/IBPB.
pub fn indirect_branch_prediction_barrier() {
    use keel_hypervisor::speculation::{IA32_PRED_CMD, PRED_CMD_IBPB};
    // SAFETY: callers check CPUID first; the command has no other effect.
    unsafe { wrmsr(IA32_PRED_CMD, PRED_CMD_IBPB) };
}

/// Sets the page-fault address the guest will see (Keel itself takes no
/// page faults: its own mappings are fixed at boot).
pub fn write_cr2(value: u64) {
    // SAFETY: CR2 only reports the last page-fault address; nothing in
    // the CPU's operation depends on it.
    unsafe { asm!("mov cr2, {}", in(reg) value, options(nomem, nostack, preserves_flags)) };
}

pub fn read_cr3() -> u64 {
    let value;
    // SAFETY: reading CR3 has no side effects in ring 0.
    unsafe { asm!("mov {}, cr3", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

pub fn read_cr4() -> u64 {
    let value;
    // SAFETY: reading CR4 has no side effects in ring 0.
    unsafe { asm!("mov {}, cr4", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// # Safety
/// `value` must be a valid CR0 for the running hypervisor (paging stays on).
pub unsafe fn write_cr0(value: u64) {
    // SAFETY: delegated to the caller as documented.
    unsafe { asm!("mov cr0, {}", in(reg) value, options(nostack, preserves_flags)) };
}

/// # Safety
/// `value` must be a valid CR4 for the running hypervisor (PAE stays on).
pub unsafe fn write_cr4(value: u64) {
    // SAFETY: delegated to the caller as documented.
    unsafe { asm!("mov cr4, {}", in(reg) value, options(nostack, preserves_flags)) };
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: disabling interrupts and halting only stops this CPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// DR6 of the vCPU whose debug registers are live.
pub fn read_dr6() -> u64 {
    let value: u64;
    // SAFETY: reading DR6 in ring 0 has no side effects.
    unsafe { asm!("mov {}, dr6", out(reg) value, options(nostack, nomem)) };
    value
}

/// Sets DR6 (the live vCPU's; Keel does not use the debug registers).
pub fn write_dr6(value: u64) {
    // Bits 63:32 must be zero.
    // SAFETY: DR6 only reports debug conditions; Keel sets no breakpoints.
    unsafe { asm!("mov dr6, {}", in(reg) value & 0xffff_ffff, options(nostack, nomem)) };
}

/// Clears MCG_STATUS.MCIP after a machine check reached Keel through a VM
/// exit: with it set, a second machine check would shut the CPU down.
pub fn clear_machine_check_in_progress() {
    const IA32_MCG_STATUS: u32 = 0x17a;
    const MCIP: u64 = 1 << 2;
    // SAFETY: MCG_STATUS exists on every CPU with machine-check architecture,
    // which is the only way to get a machine-check exception; writing MCIP to
    // 0 is what a machine-check handler does when it is done.
    unsafe {
        let status = rdmsr(IA32_MCG_STATUS);
        wrmsr(IA32_MCG_STATUS, status & !MCIP);
    }
}

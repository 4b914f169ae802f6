//! The host's own local-APIC timer, used only to sleep: when no vCPU can
//! run, the scheduler arms the TSC-deadline timer for the earliest wake-up
//! and halts the CPU (`sti; hlt`) instead of spinning. On hardware that
//! saves power; in an emulator it lets the emulator skip idle time.
//!
//! The APIC runs in x2APIC mode (MSR access only, no MMIO mapping needed).
//! Without x2APIC or the TSC-deadline mode the scheduler spins instead.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, Ordering};

use super::instructions::{rdmsr, wrmsr};

/// The timer's interrupt vector and the APIC's spurious vector.
pub const TIMER_VECTOR: u8 = 0xef;
pub const SPURIOUS_VECTOR: u8 = 0xff;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
const APIC_X2APIC_ENABLE: u64 = 1 << 10;
const IA32_TSC_DEADLINE: u32 = 0x6e0;
const X2APIC_EOI: u32 = 0x80b;
const X2APIC_SPURIOUS: u32 = 0x80f;
const X2APIC_LVT_TIMER: u32 = 0x832;
const APIC_SOFTWARE_ENABLE: u64 = 1 << 8;
const LVT_TSC_DEADLINE_MODE: u64 = 0b10 << 17;

static AVAILABLE: AtomicBool = AtomicBool::new(false);

global_asm!(
    ".global keel_host_timer_interrupt",
    "keel_host_timer_interrupt:",
    "push rax",
    "push rcx",
    "push rdx",
    "mov ecx, {eoi}",
    "xor eax, eax",
    "xor edx, edx",
    "wrmsr",
    "pop rdx",
    "pop rcx",
    "pop rax",
    "iretq",
    ".global keel_host_spurious_interrupt",
    "keel_host_spurious_interrupt:",
    // A spurious interrupt needs no EOI.
    "iretq",
    eoi = const X2APIC_EOI,
);

extern "C" {
    fn keel_host_timer_interrupt();
    fn keel_host_spurious_interrupt();
}

pub fn timer_handler_address() -> u64 {
    keel_host_timer_interrupt as *const () as u64
}

pub fn spurious_handler_address() -> u64 {
    keel_host_spurious_interrupt as *const () as u64
}

/// Puts the local APIC in x2APIC mode with the timer in TSC-deadline mode
/// (disarmed). Returns whether the CPU has what that needs.
pub fn init() -> bool {
    let cpuid = raw_cpuid::CpuId::new();
    let Some(features) = cpuid.get_feature_info() else {
        return false;
    };
    if !(features.has_x2apic() && features.has_tsc_deadline()) {
        return false;
    }
    // SAFETY: the CPU has x2APIC, so setting EN and EXTD in IA32_APIC_BASE
    // switches the APIC to x2APIC mode (from xAPIC or disabled, both legal
    // transitions); the spurious-vector and LVT-timer MSRs then exist. The
    // timer stays disarmed (deadline 0) until `sleep_until` arms it, and
    // interrupts stay disabled outside `sleep_until`'s STI window.
    unsafe {
        let base = rdmsr(IA32_APIC_BASE);
        if base & APIC_GLOBAL_ENABLE == 0 {
            wrmsr(IA32_APIC_BASE, base | APIC_GLOBAL_ENABLE);
        }
        wrmsr(IA32_APIC_BASE, base | APIC_GLOBAL_ENABLE | APIC_X2APIC_ENABLE);
        wrmsr(X2APIC_SPURIOUS, APIC_SOFTWARE_ENABLE | u64::from(SPURIOUS_VECTOR));
        wrmsr(IA32_TSC_DEADLINE, 0);
        wrmsr(X2APIC_LVT_TIMER, LVT_TSC_DEADLINE_MODE | u64::from(TIMER_VECTOR));
    }
    AVAILABLE.store(true, Ordering::Relaxed);
    true
}

/// Sleeps until the TSC reaches `deadline` (or returns at once when the
/// host timer is unavailable: the caller then spins).
pub fn sleep_until(deadline: u64) -> bool {
    if !AVAILABLE.load(Ordering::Relaxed) {
        return false;
    }
    // SAFETY: init() put the APIC in x2APIC TSC-deadline mode with a
    // handler at TIMER_VECTOR that only sends EOI. STI's one-instruction
    // shadow makes `sti; hlt` atomic: the timer interrupt, even if already
    // due, wakes the HLT rather than slipping in before it. Disarming
    // afterwards keeps a late expiry from interrupting a guest.
    unsafe {
        wrmsr(IA32_TSC_DEADLINE, deadline.max(1));
        asm!("sti", "hlt", "cli", options(nomem, nostack));
        wrmsr(IA32_TSC_DEADLINE, 0);
    }
    true
}

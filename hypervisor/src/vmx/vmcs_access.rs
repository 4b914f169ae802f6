//! VMREAD/VMWRITE for the exit path: no VMfail bookkeeping on reads (a
//! failure is impossible with a current VMCS and reads as 0), one flag
//! check on writes.

use keel_vmx::VmcsField as F;

/// VMREAD of a field the current VMCS always has; a failure would mean no
/// current VMCS, which `run` already rules out, so it reads as 0.
#[inline(always)]
pub(super) fn read(field: F) -> u64 {
    // VMREAD leaves its destination untouched when it fails, so a failure
    // reads as the 0 loaded first; on the exit path that saves a flag check.
    let value: u64;
    // SAFETY: only called while this vCPU's VMCS is current in VMX root
    // operation; VMREAD touches nothing but its destination register.
    unsafe {
        core::arch::asm!(
            "xor {value:e}, {value:e}",
            "vmread {value}, {field}",
            value = out(reg) value,
            field = in(reg) u64::from(field.encoding()),
            options(nostack, nomem),
        );
    }
    value
}

#[inline(always)]
pub(super) fn write(field: F, value: u64) {
    let failed: u8;
    // SAFETY: as for `read`; the fields written here are guest state or
    // controls whose values the callers keep consistent.
    unsafe {
        core::arch::asm!(
            "vmwrite {field}, {value}",
            "setbe {failed}",
            field = in(reg) u64::from(field.encoding()),
            value = in(reg) value,
            failed = out(reg_byte) failed,
            options(nostack, nomem),
        );
    }
    if failed != 0 {
        write_failed(field);
    }
}

#[cold]
fn write_failed(field: F) {
    log::error!("VMWRITE {} failed", field.name());
}

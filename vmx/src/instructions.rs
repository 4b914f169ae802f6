//! Thin wrappers around the VMX instructions; the only unsafe code in the crate.
//!
//! Every wrapper reads CF/ZF right after the instruction and converts them
//! with [`VmFail::check`]. All of them require the CPU to be in VMX operation
//! (except `vmxon`, which enters it) at CPL 0; outside it they raise #UD,
//! which is why they are `unsafe` even when the operands are correct.

use core::arch::asm;

use crate::error::{VmFail, VmInstructionError};
use crate::fields::VmcsField;

/// INVEPT invalidation types (SDM 30.3, "INVEPT").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum InveptKind {
    /// Mappings tagged with one EPTP.
    SingleContext = 1,
    AllContexts = 2,
}

/// INVVPID invalidation types (SDM 30.3, "INVVPID").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum InvvpidKind {
    IndividualAddress = 0,
    SingleContext = 1,
    AllContexts = 2,
    SingleContextRetainingGlobals = 3,
}

/// Enters VMX root operation.
///
/// # Safety
/// CR4.VMXE must be set, CR0/CR4 must satisfy the VMX fixed bits,
/// IA32_FEATURE_CONTROL must allow VMX, and `vmxon_region` must be the
/// 4-KiB-aligned physical address of a zeroed region of
/// `IA32_VMX_BASIC.region_size` bytes starting with the revision id, which
/// stays reserved for as long as VMX operation lasts.
#[inline(always)]
pub unsafe fn vmxon(vmxon_region: u64) -> Result<(), VmFail> {
    let (carry, zero): (u8, u8);
    // SAFETY: the caller guarantees the preconditions above; the operand is a
    // stack slot holding the physical address, read by the instruction.
    unsafe {
        asm!("vmxon [{}]", "setc {}", "setz {}", in(reg) &vmxon_region, out(reg_byte) carry, out(reg_byte) zero, options(nostack));
    }
    VmFail::check(carry != 0, zero != 0)
}

/// Leaves VMX operation.
///
/// # Safety
/// Must be in VMX root operation; guest memory protected only by EPT is no
/// longer isolated afterwards.
#[inline(always)]
pub unsafe fn vmxoff() -> Result<(), VmFail> {
    let (carry, zero): (u8, u8);
    // SAFETY: the caller guarantees VMX root operation; no memory operand.
    unsafe {
        asm!("vmxoff", "setc {}", "setz {}", out(reg_byte) carry, out(reg_byte) zero, options(nostack, nomem));
    }
    VmFail::check(carry != 0, zero != 0)
}

/// Flushes the VMCS at `vmcs` to memory and marks it clear (not launched).
///
/// # Safety
/// Must be in VMX root operation; `vmcs` must be the 4-KiB-aligned physical
/// address of a VMCS region (not the VMXON region).
#[inline(always)]
pub unsafe fn vmclear(vmcs: u64) -> Result<(), VmFail> {
    let (carry, zero): (u8, u8);
    // SAFETY: the caller guarantees VMX root operation and a valid region; the
    // CPU writes VMCS data into that region, which the caller owns.
    unsafe {
        asm!("vmclear [{}]", "setc {}", "setz {}", in(reg) &vmcs, out(reg_byte) carry, out(reg_byte) zero, options(nostack));
    }
    VmFail::check(carry != 0, zero != 0)
}

/// Makes the VMCS at `vmcs` current.
///
/// # Safety
/// Must be in VMX root operation; `vmcs` must be the 4-KiB-aligned physical
/// address of a VMCS region whose first dword holds the revision id and which
/// stays allocated while current.
#[inline(always)]
pub unsafe fn vmptrld(vmcs: u64) -> Result<(), VmFail> {
    let (carry, zero): (u8, u8);
    // SAFETY: the caller guarantees VMX root operation and a valid region.
    unsafe {
        asm!("vmptrld [{}]", "setc {}", "setz {}", in(reg) &vmcs, out(reg_byte) carry, out(reg_byte) zero, options(nostack));
    }
    VmFail::check(carry != 0, zero != 0)
}

/// Reads a field of the current VMCS.
///
/// # Safety
/// Must be in VMX root operation.
#[inline(always)]
pub unsafe fn vmread(field: VmcsField) -> Result<u64, VmFail> {
    let value: u64;
    let (carry, zero): (u8, u8);
    // SAFETY: the caller guarantees VMX root operation; VMREAD only accesses
    // the current VMCS, which the CPU manages.
    unsafe {
        asm!("vmread {}, {}", "setc {}", "setz {}", out(reg) value, in(reg) u64::from(field.encoding()), out(reg_byte) carry, out(reg_byte) zero, options(nostack));
    }
    VmFail::check(carry != 0, zero != 0).map(|()| value)
}

/// Writes a field of the current VMCS.
///
/// # Safety
/// Must be in VMX root operation, and `value` must keep the VMCS consistent
/// with the hypervisor's own memory (e.g. host RIP/RSP, bitmap addresses).
#[inline(always)]
pub unsafe fn vmwrite(field: VmcsField, value: u64) -> Result<(), VmFail> {
    let (carry, zero): (u8, u8);
    // SAFETY: the caller guarantees VMX root operation and a sound value.
    unsafe {
        asm!("vmwrite {}, {}", "setc {}", "setz {}", in(reg) u64::from(field.encoding()), in(reg) value, out(reg_byte) carry, out(reg_byte) zero, options(nostack));
    }
    VmFail::check(carry != 0, zero != 0)
}

/// Reads and decodes `VM_INSTRUCTION_ERROR` after a VMfailValid.
///
/// # Safety
/// Must be in VMX root operation with a current VMCS.
#[inline(always)]
pub unsafe fn last_instruction_error() -> Result<VmInstructionError, VmFail> {
    // SAFETY: forwarded caller obligations.
    let raw = unsafe { vmread(VmcsField::VmInstructionError) }?;
    Ok(VmInstructionError::from_u32(raw as u32))
}

/// Invalidates EPT-derived translations.
///
/// # Safety
/// Must be in VMX root operation and `kind` must be supported per
/// `IA32_VMX_EPT_VPID_CAP`.
#[inline(always)]
pub unsafe fn invept(kind: InveptKind, eptp: u64) -> Result<(), VmFail> {
    let descriptor: [u64; 2] = [eptp, 0];
    let (carry, zero): (u8, u8);
    // SAFETY: the caller guarantees VMX root operation; the descriptor is a
    // live 16-byte stack array read by the instruction.
    unsafe {
        asm!("invept {}, [{}]", "setc {}", "setz {}", in(reg) kind as u64, in(reg) &descriptor, out(reg_byte) carry, out(reg_byte) zero, options(nostack));
    }
    VmFail::check(carry != 0, zero != 0)
}

/// Invalidates VPID-tagged linear translations.
///
/// # Safety
/// Must be in VMX root operation and `kind` must be supported per
/// `IA32_VMX_EPT_VPID_CAP`; `vpid` must be non-zero except for all-contexts.
#[inline(always)]
pub unsafe fn invvpid(kind: InvvpidKind, vpid: u16, linear_address: u64) -> Result<(), VmFail> {
    let descriptor: [u64; 2] = [u64::from(vpid), linear_address];
    let (carry, zero): (u8, u8);
    // SAFETY: the caller guarantees VMX root operation; the descriptor is a
    // live 16-byte stack array read by the instruction.
    unsafe {
        asm!("invvpid {}, [{}]", "setc {}", "setz {}", in(reg) kind as u64, in(reg) &descriptor, out(reg_byte) carry, out(reg_byte) zero, options(nostack));
    }
    VmFail::check(carry != 0, zero != 0)
}

//! The x2APIC MSR interface (SDM 11.12.1.2): RDMSR/WRMSR of 0x800–0x8FF.
//!
//! Every register is 32 bits wide except the ICR; writing non-zero bits
//! 63:32 of any other register, or any reserved bit, faults.

use super::ipi::{Destination, ICR_RESERVED};
use super::registers::{LvtEntry, Register, DIVIDE_WRITABLE, SVR_WRITABLE, TPR_WRITABLE};
use super::timer::TimerMode;
use super::{ApicEffect, ApicFault, LocalApic};

/// IA32_TSC_DEADLINE, handled by [`LocalApic::tsc_deadline`] and
/// [`LocalApic::set_tsc_deadline`].
pub const IA32_TSC_DEADLINE: u32 = 0x6e0;

const X2APIC_MSR_BASE: u32 = 0x800;
const X2APIC_MSR_LAST: u32 = 0x8ff;

/// Whether `msr` is in the x2APIC register range that
/// [`LocalApic::rdmsr`]/[`LocalApic::wrmsr`] handle.
pub const fn is_x2apic_msr(msr: u32) -> bool {
    msr >= X2APIC_MSR_BASE && msr <= X2APIC_MSR_LAST
}

fn decode(msr: u32) -> Result<Register, ApicFault> {
    if !is_x2apic_msr(msr) {
        return Err(ApicFault::ReservedRegister);
    }
    Register::from_index(msr - X2APIC_MSR_BASE).ok_or(ApicFault::ReservedRegister)
}

/// The low 32 bits of a write to a 32-bit register; bits 63:32 are reserved.
fn low_dword(value: u64) -> Result<u32, ApicFault> {
    u32::try_from(value).map_err(|_| ApicFault::ReservedBits)
}

/// `value` if it sets no bits outside `writable`.
fn only(value: u32, writable: u32) -> Result<u32, ApicFault> {
    if value & !writable != 0 {
        return Err(ApicFault::ReservedBits);
    }
    Ok(value)
}

impl LocalApic {
    /// RDMSR of an x2APIC register at guest TSC `now_tsc` (the timer's
    /// current count depends on it).
    pub fn rdmsr(&self, msr: u32, now_tsc: u64) -> Result<u64, ApicFault> {
        let register = decode(msr)?;
        let value = match register {
            Register::Id => self.id,
            Register::LogicalDestination => self.logical_id(),
            Register::InterruptCommand => return Ok(self.interrupt_command),
            Register::EndOfInterrupt | Register::SelfIpi => return Err(ApicFault::WriteOnlyRegister),
            _ => self.read_common(register, now_tsc).ok_or(ApicFault::ReservedRegister)?,
        };
        Ok(u64::from(value))
    }

    /// WRMSR of an x2APIC register at guest TSC `now_tsc`. On `Ok`, the
    /// write took effect and may ask the hypervisor for an [`ApicEffect`];
    /// afterwards re-read [`Self::next_timer_deadline`] and
    /// [`Self::pending_interrupt`], which any write may change. On `Err`,
    /// nothing changed and the guest gets #GP(0).
    pub fn wrmsr(&mut self, msr: u32, value: u64, now_tsc: u64) -> Result<Option<ApicEffect>, ApicFault> {
        let register = decode(msr)?;
        if register == Register::InterruptCommand {
            if value & ICR_RESERVED != 0 {
                return Err(ApicFault::ReservedBits);
            }
            self.interrupt_command = value;
            return Ok(self.send_ipi(value as u32, Destination::X2apic((value >> 32) as u32)));
        }
        let value = low_dword(value)?;
        let value = match register {
            Register::Id
            | Register::Version
            | Register::ProcessorPriority
            | Register::LogicalDestination
            | Register::InService(_)
            | Register::TriggerMode(_)
            | Register::InterruptRequest(_)
            | Register::TimerCurrentCount => return Err(ApicFault::ReadOnlyRegister),
            // x2APIC EOI and ESR writes accept only 0 (SDM table 11-6).
            Register::EndOfInterrupt | Register::ErrorStatus => only(value, 0)?,
            Register::TaskPriority => only(value, TPR_WRITABLE)?,
            Register::SpuriousVector => only(value, SVR_WRITABLE)?,
            Register::Lvt(entry) => {
                let value = entry.sanitize(value).ok_or(ApicFault::ReservedBits)?;
                if entry == LvtEntry::Timer && TimerMode::is_reserved(value) {
                    return Err(ApicFault::ReservedBits);
                }
                value
            }
            Register::TimerInitialCount => value,
            Register::TimerDivideConfig => only(value, DIVIDE_WRITABLE)?,
            Register::SelfIpi => {
                self.send_self_ipi(only(value, 0xff)? as u8);
                return Ok(None);
            }
            // Handled above, before the 32-bit check.
            Register::InterruptCommand => return Ok(None),
        };
        Ok(self.write_common(register, value, now_tsc))
    }
}

//! The xAPIC MMIO interface (SDM 11.4.1, table 11-1): the 4 KiB page at
//! IA32_APIC_BASE, 0xFEE00000 by default.
//!
//! Registers are 32 bits wide at 16-byte-aligned offsets; the offset divided
//! by 16 is the same register index the x2APIC MSRs use. MMIO has no #GP,
//! so nothing here faults:
//! - aligned 4-byte accesses are the architectural ones;
//! - other reads of 1, 2 or 4 bytes that lie within a register's dword
//!   return those bytes of the register (little-endian); every other read
//!   (other sizes, bytes 4–15 of a slot, beyond the page) returns 0;
//! - every other write is ignored;
//! - reserved bits in written values are dropped;
//! - writes to read-only registers are ignored;
//! - writes to reserved registers are ignored and set ESR bit 7 (illegal
//!   register address). Reads of reserved registers return 0 and record
//!   nothing (a read cannot change state here).
//!
//! Formats that differ from x2APIC:
//! - ID (0x20): the ID in bits 31:24. Read-only here (some CPUs let xAPIC
//!   software change it; nothing Keel runs does).
//! - LDR (0xD0): writable, logical ID in bits 31:24.
//! - DFR (0xE0): exists; model in bits 31:28 (0xF flat, 0x0 cluster), bits
//!   27:0 read as 1s. Writes of any other model are ignored.
//! - APR (0x90): reads 0.
//! - ICR: low half at 0x300 (writing it sends the IPI; delivery status, bit
//!   12, always reads 0 because delivery is immediate), high half at 0x310
//!   (destination in bits 31:24).
//! - EOI (0xB0) and ESR (0x280) take any value.
//! - SELF IPI (0x3F0) does not exist: it is a reserved register.

use super::ipi::Destination;
use super::registers::{
    LvtEntry, Register, DFR_MODEL, DIVIDE_WRITABLE, ESR_ILLEGAL_REGISTER_ADDRESS, SVR_WRITABLE, TPR_WRITABLE,
};
use super::timer::TimerMode;
use super::{ApicEffect, LocalApic};

/// Size of the xAPIC register page.
pub const XAPIC_MMIO_SIZE: u64 = 0x1000;

/// Register slots are 16 bytes apart; only their first dword exists.
const SLOT_SIZE: u64 = 16;
const REGISTER_SIZE: u64 = 4;

/// The 8-bit destination / logical ID field of LDR and ICR high.
const DESTINATION_FIELD: u32 = 0xff00_0000;
/// ICR low bits software may write: vector (7:0), delivery mode (10:8),
/// destination mode (11), level (14), trigger mode (15), shorthand (19:18).
/// Delivery status (12) is read-only; the rest are reserved.
const ICR_LOW_WRITABLE: u32 = 0x000c_cfff;

/// An xAPIC register: one the x2APIC also has, or one only xAPIC has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum XapicRegister {
    Shared(Register),
    ArbitrationPriority,
    DestinationFormat,
    InterruptCommandHigh,
}

/// The register at a 16-byte-aligned page offset, `None` when reserved.
fn decode(offset: u64) -> Option<XapicRegister> {
    let index = u32::try_from(offset / SLOT_SIZE).ok()?;
    match index {
        0x09 => Some(XapicRegister::ArbitrationPriority),
        0x0e => Some(XapicRegister::DestinationFormat),
        0x31 => Some(XapicRegister::InterruptCommandHigh),
        // SELF IPI is x2APIC only.
        0x3f => None,
        _ => Register::from_index(index).map(XapicRegister::Shared),
    }
}

impl LocalApic {
    /// A guest read of `size` bytes at `offset` in the xAPIC page at guest
    /// TSC `now_tsc`, zero-extended. See the module documentation for
    /// accesses other than aligned dwords; this never panics.
    pub fn mmio_read(&self, offset: u64, size: u8, now_tsc: u64) -> u32 {
        let size = u64::from(size);
        let within = offset % SLOT_SIZE;
        let fits = matches!(size, 1 | 2 | 4) && within + size <= REGISTER_SIZE;
        if offset >= XAPIC_MMIO_SIZE || !fits {
            return 0;
        }
        let dword = self.xapic_read(offset - within, now_tsc);
        let bytes = dword >> (8 * within);
        match size {
            1 => bytes & 0xff,
            2 => bytes & 0xffff,
            _ => bytes,
        }
    }

    /// A guest write of `size` bytes at `offset` in the xAPIC page at guest
    /// TSC `now_tsc`. Only aligned 4-byte writes do anything; see the module
    /// documentation. Afterwards act on the effect and re-read
    /// [`Self::next_timer_deadline`] and [`Self::pending_interrupt`], as
    /// after [`Self::wrmsr`].
    pub fn mmio_write(&mut self, offset: u64, size: u8, value: u32, now_tsc: u64) -> Option<ApicEffect> {
        if offset >= XAPIC_MMIO_SIZE || u64::from(size) != REGISTER_SIZE || !offset.is_multiple_of(SLOT_SIZE) {
            return None;
        }
        let Some(register) = decode(offset) else {
            self.record_error(ESR_ILLEGAL_REGISTER_ADDRESS);
            return None;
        };
        match register {
            XapicRegister::Shared(register) => self.xapic_write(register, value, now_tsc),
            // Read-only on every CPU that still has it.
            XapicRegister::ArbitrationPriority => None,
            XapicRegister::DestinationFormat => {
                let model = value & DFR_MODEL;
                if model == 0 || model == DFR_MODEL {
                    self.destination_format = model | !DFR_MODEL;
                }
                None
            }
            XapicRegister::InterruptCommandHigh => {
                let high = u64::from(value & DESTINATION_FIELD) << 32;
                self.interrupt_command = high | (self.interrupt_command & 0xffff_ffff);
                None
            }
        }
    }

    /// The register at 16-byte-aligned `offset` (within the page).
    fn xapic_read(&self, offset: u64, now_tsc: u64) -> u32 {
        let Some(register) = decode(offset) else {
            return 0;
        };
        match register {
            XapicRegister::ArbitrationPriority => 0,
            XapicRegister::DestinationFormat => self.destination_format,
            XapicRegister::InterruptCommandHigh => (self.interrupt_command >> 32) as u32,
            XapicRegister::Shared(register) => match register {
                Register::Id => (self.id & 0xff) << 24,
                Register::LogicalDestination => self.xapic_logical_destination,
                Register::InterruptCommand => self.interrupt_command as u32,
                // Write-only: reads return 0.
                Register::EndOfInterrupt | Register::SelfIpi => 0,
                _ => self.read_common(register, now_tsc).unwrap_or(0),
            },
        }
    }

    fn xapic_write(&mut self, register: Register, value: u32, now_tsc: u64) -> Option<ApicEffect> {
        let value = match register {
            Register::Id
            | Register::Version
            | Register::ProcessorPriority
            | Register::InService(_)
            | Register::TriggerMode(_)
            | Register::InterruptRequest(_)
            | Register::TimerCurrentCount
            // Never decoded from MMIO (reserved there); ignore regardless.
            | Register::SelfIpi => return None,
            Register::LogicalDestination => {
                self.xapic_logical_destination = value & DESTINATION_FIELD;
                return None;
            }
            Register::InterruptCommand => {
                let low = value & ICR_LOW_WRITABLE;
                self.interrupt_command = (self.interrupt_command & !0xffff_ffff) | u64::from(low);
                let destination = (self.interrupt_command >> 56) as u8;
                return self.send_ipi(low, Destination::Xapic(destination));
            }
            // Any value: Linux writes 0 to EOI, and ESR writes only latch.
            Register::EndOfInterrupt | Register::ErrorStatus => 0,
            Register::TaskPriority => value & TPR_WRITABLE,
            Register::SpuriousVector => value & SVR_WRITABLE,
            Register::Lvt(entry) => {
                let value = entry.truncate(value);
                // Timer mode 3 is reserved: ignore the whole write.
                if entry == LvtEntry::Timer && TimerMode::is_reserved(value) {
                    return None;
                }
                value
            }
            Register::TimerInitialCount => value,
            Register::TimerDivideConfig => value & DIVIDE_WRITABLE,
        };
        self.write_common(register, value, now_tsc)
    }
}

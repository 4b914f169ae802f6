//! String instructions Keel performs for a guest: INS/OUTS (always an
//! exit) and MOVS/STOS/LODS that touch device memory or a hole (an EPT
//! violation). The instruction is decoded by `keel-insn`; this module gives
//! it the guest's view of memory: segment bases, the guest's page tables
//! (with U/S checked for user code, so Keel never writes where the guest's
//! own code could not), RAM through the checked guest-memory map, devices
//! through the platform (an assigned device's mapped registers too: an
//! instruction that faulted on its trapped MSI-X page may run on into
//! them), and all ones for addresses with neither.

use keel_insn::mmio::{AccessSize, CodeBitness};
use keel_insn::string::{Progress, Segment, StringEnv, StringInstruction, StringRegs};
use keel_insn::walk::{AccessKind, PagingState, TranslationFault, WalkError};
use keel_memory::{GuestMemory, GuestMemoryRead, GuestPhysAddr};

use crate::domain::GuestRam;
use crate::vcpu::{GuestFault, Vcpu};

/// Elements performed per exit. A longer REP continues after the next
/// entry (RIP stays on the instruction), so one exit never holds the CPU
/// for long and interrupts get in between, as REP allows on hardware.
const ELEMENTS_PER_EXIT: u64 = 64;

const PAGE_SIZE: u64 = 4096;
const RFLAGS_DF: u64 = 1 << 10;
const RFLAGS_TF: u64 = 1 << 8;

/// Ports and device memory as a string instruction reaches them.
pub trait Devices {
    fn is_mmio(&self, gpa: u64) -> bool;
    fn mmio_read(&mut self, gpa: u64, size: u8) -> u64;
    fn mmio_write(&mut self, gpa: u64, size: u8, value: u64);
    fn port_read(&mut self, port: u16, size: u8) -> u64;
    fn port_write(&mut self, port: u16, size: u8, value: u64);
    /// An assigned device's mapped registers, reached by Keel for the
    /// guest (an element beyond the page that faulted): `None` where
    /// there are none.
    fn assigned_read(&mut self, _gpa: u64, _size: u8) -> Option<u64> {
        None
    }
    /// The same for a write; `false` where there are none.
    fn assigned_write(&mut self, _gpa: u64, _size: u8, _value: u64) -> bool {
        false
    }
}

impl Devices for crate::vplatform::VirtualPlatform {
    fn is_mmio(&self, gpa: u64) -> bool {
        Self::is_mmio(self, gpa)
    }
    fn mmio_read(&mut self, gpa: u64, size: u8) -> u64 {
        Self::mmio_read(self, gpa, size)
    }
    fn mmio_write(&mut self, gpa: u64, size: u8, value: u64) {
        Self::mmio_write(self, gpa, size, value)
    }
    fn port_read(&mut self, port: u16, size: u8) -> u64 {
        Self::port_read(self, port, size)
    }
    fn port_write(&mut self, port: u16, size: u8, value: u64) {
        Self::port_write(self, port, size, value)
    }
    fn assigned_read(&mut self, gpa: u64, size: u8) -> Option<u64> {
        self.assigned_bar_read(gpa, size)
    }
    fn assigned_write(&mut self, gpa: u64, size: u8, value: u64) -> bool {
        self.assigned_bar_write(gpa, size, value)
    }
}

/// Why a string instruction did not complete.
pub enum StringError {
    /// The fault the guest's own access would have raised.
    Fault(GuestFault),
    /// Something Keel cannot perform: the domain stops with this reason.
    Stop(&'static str),
}

/// Decoded and performs the string instruction at the guest's RIP (up to
/// [`ELEMENTS_PER_EXIT`] elements of it). `expected` checks it is the kind
/// of instruction the exit said (a port exit must be INS/OUTS).
pub fn emulate(
    memory: &mut GuestRam,
    devices: &mut impl Devices,
    vcpu: &mut impl Vcpu,
    bytes: &[u8],
    bitness: CodeBitness,
    expected: impl FnOnce(&StringInstruction) -> bool,
) -> Result<(), StringError> {
    let instruction = keel_insn::string::decode_string(bytes, bitness)
        .map_err(|_| StringError::Stop("the instruction is not a supported MMIO access"))?;
    if !expected(&instruction) {
        return Err(StringError::Stop("the instruction at RIP does not match the exit"));
    }
    let (cr0, cr3, cr4, efer) = vcpu.paging_registers();
    let mut regs = {
        let all = vcpu.regs();
        StringRegs {
            rax: all.rax,
            rcx: all.rcx,
            rdx: all.rdx,
            rsi: all.rsi,
            rdi: all.rdi,
            backwards: false,
        }
    };
    regs.backwards = vcpu.rflags() & RFLAGS_DF != 0;
    let mut access = GuestAccess {
        memory,
        devices,
        paging: PagingState::new(cr0, cr3, cr4, efer),
        user: vcpu.privilege_level() == 3,
        bitness,
        bases: [
            Segment::Es,
            Segment::Cs,
            Segment::Ss,
            Segment::Ds,
            Segment::Fs,
            Segment::Gs,
        ]
        .map(|segment| vcpu.segment_base(segment)),
    };
    // Under RFLAGS.TF every iteration ends in its own single-step #DB, as
    // on hardware: one element per exit then.
    let single_step = vcpu.rflags() & RFLAGS_TF != 0;
    let batch = if single_step { 1 } else { ELEMENTS_PER_EXIT };
    let result = instruction.execute(&mut regs, &mut access, batch);
    // Completed elements stay done, also when a later one faults.
    {
        let all = vcpu.regs();
        all.rax = regs.rax;
        all.rcx = regs.rcx;
        all.rsi = regs.rsi;
        all.rdi = regs.rdi;
    }
    match result? {
        Progress::Done => vcpu.advance_rip(instruction.len as u64),
        Progress::More if single_step => vcpu.single_step_iteration(),
        Progress::More => {}
    }
    Ok(())
}

struct GuestAccess<'a, D> {
    memory: &'a mut GuestRam,
    devices: &'a mut D,
    paging: PagingState,
    user: bool,
    bitness: CodeBitness,
    /// Segment bases by `Segment as usize`.
    bases: [u64; 6],
}

impl<D: Devices> GuestAccess<'_, D> {
    fn linear(&self, segment: Segment, offset: u64) -> u64 {
        // In 64-bit mode only FS and GS have a base.
        let base = match (self.bitness, segment) {
            (CodeBitness::Bits64, Segment::Fs | Segment::Gs) | (CodeBitness::Bits16 | CodeBitness::Bits32, _) => {
                self.bases[segment as usize]
            }
            (CodeBitness::Bits64, _) => 0,
        };
        base.wrapping_add(offset) & self.bitness.linear_mask()
    }

    fn translate(&self, linear: u64, write: bool) -> Result<u64, StringError> {
        let kind = if write { AccessKind::Write } else { AccessKind::Read };
        self.paging
            .translate_as(&*self.memory, linear, kind, self.user)
            .map_err(|error| fault_for(error, write, self.user))
    }

    /// The guest-physical address of each byte of an access (an element
    /// may straddle two unrelated pages).
    fn byte_addresses(&self, linear: u64, size: AccessSize, write: bool) -> Result<[u64; 8], StringError> {
        let mut addresses = [0; 8];
        let first = self.translate(linear, write)?;
        let crosses = linear % PAGE_SIZE + u64::from(size.bytes()) > PAGE_SIZE;
        let second = if crosses {
            Some(self.translate(linear.wrapping_add(PAGE_SIZE - linear % PAGE_SIZE), write)?)
        } else {
            None
        };
        for (index, slot) in addresses.iter_mut().enumerate().take(usize::from(size.bytes())) {
            let byte_linear = linear.wrapping_add(index as u64);
            *slot = match second {
                Some(second) if byte_linear % PAGE_SIZE < linear % PAGE_SIZE => second + byte_linear % PAGE_SIZE,
                _ => first + index as u64,
            };
        }
        Ok(addresses)
    }

    fn read_physical(&mut self, gpa: u64, size: u8) -> u64 {
        let mut bytes = [0u8; 8];
        let len = usize::from(size);
        if self.memory.read(GuestPhysAddr::new(gpa), &mut bytes[..len]).is_ok() {
            return u64::from_le_bytes(bytes);
        }
        if self.devices.is_mmio(gpa) {
            return self.devices.mmio_read(gpa, size);
        }
        self.devices
            .assigned_read(gpa, size)
            .unwrap_or(keel_devices::all_ones(size))
    }

    fn write_physical(&mut self, gpa: u64, size: u8, value: u64) {
        let len = usize::from(size);
        let bytes = value.to_le_bytes();
        if self.memory.check_ram(GuestPhysAddr::new(gpa), len as u64).is_ok() {
            let _ = self.memory.write(GuestPhysAddr::new(gpa), &bytes[..len]);
        } else if self.devices.is_mmio(gpa) {
            self.devices.mmio_write(gpa, size, value);
        } else {
            // An assigned device's mapped registers, or nothing: then the
            // write goes nowhere, as on a PC.
            self.devices.assigned_write(gpa, size, value);
        }
    }
}

fn fault_for(error: WalkError, write: bool, user: bool) -> StringError {
    match error.guest_fault(write, user) {
        Some(TranslationFault::PageFault { linear, error_code }) => {
            StringError::Fault(GuestFault::PageFault { linear, error_code })
        }
        Some(TranslationFault::GeneralProtection) => StringError::Fault(GuestFault::GeneralProtection),
        None => StringError::Stop(
            "a string instruction's operand cannot be translated (unsupported paging, or page tables outside RAM)",
        ),
    }
}

impl<D: Devices> StringEnv for GuestAccess<'_, D> {
    type Error = StringError;

    fn read(&mut self, segment: Segment, offset: u64, size: AccessSize) -> Result<u64, StringError> {
        let linear = self.linear(segment, offset);
        let addresses = self.byte_addresses(linear, size, false)?;
        let contiguous = addresses[usize::from(size.bytes()) - 1] == addresses[0] + u64::from(size.bytes()) - 1;
        if contiguous {
            return Ok(self.read_physical(addresses[0], size.bytes()));
        }
        let mut value = 0;
        for (index, gpa) in addresses.iter().take(usize::from(size.bytes())).enumerate() {
            value |= (self.read_physical(*gpa, 1) & 0xff) << (8 * index);
        }
        Ok(value)
    }

    fn write(&mut self, segment: Segment, offset: u64, size: AccessSize, value: u64) -> Result<(), StringError> {
        let linear = self.linear(segment, offset);
        let addresses = self.byte_addresses(linear, size, true)?;
        let contiguous = addresses[usize::from(size.bytes()) - 1] == addresses[0] + u64::from(size.bytes()) - 1;
        if contiguous {
            self.write_physical(addresses[0], size.bytes(), value);
            return Ok(());
        }
        for (index, gpa) in addresses.iter().take(usize::from(size.bytes())).enumerate() {
            self.write_physical(*gpa, 1, (value >> (8 * index)) & 0xff);
        }
        Ok(())
    }

    fn check_write(&mut self, segment: Segment, offset: u64, size: AccessSize) -> Result<(), StringError> {
        let linear = self.linear(segment, offset);
        self.byte_addresses(linear, size, true).map(|_| ())
    }

    fn port_in(&mut self, port: u16, size: AccessSize) -> u64 {
        self.devices.port_read(port, size.bytes())
    }

    fn port_out(&mut self, port: u16, size: AccessSize, value: u64) {
        self.devices.port_write(port, size.bytes(), value)
    }
}
